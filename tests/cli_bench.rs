//! `espgcm bench` as a user runs it: the JSON report covers every supported
//! backend, the chart is a valid SVG with one line per implementation, and
//! mistakes are explained. The runs are tiny (a fraction of a second); no
//! timing is asserted, only that the figures are there and consistent.

use espgcm::Backend;
use serde_json::Value;
use std::collections::HashSet;
use std::process::{Command, Output};

fn espgcm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_espgcm"))
        .args(args)
        .env_remove("ESPGCM_BACKEND")
        .env_remove("ESPGCM_DISABLE")
        .output()
        .expect("the espgcm binary runs")
}

fn supported() -> Vec<&'static str> {
    Backend::ALL.into_iter().filter(|b| b.is_supported()).map(|b| b.name()).collect()
}

fn json_run(extra: &[&str]) -> Value {
    let mut args = vec!["bench", "--json", "--seconds", "0.2", "--sizes", "16,1420,4K"];
    args.extend_from_slice(extra);
    let out = espgcm(&args);
    assert!(out.status.success(), "bench failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("bench --json prints JSON")
}

#[test]
fn json_covers_every_supported_backend_at_every_size_key_and_operation() {
    let report = json_run(&[]);
    let names: Vec<&str> =
        report["implementations"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap()).collect();
    for b in supported() {
        assert!(names.contains(&b), "{b} missing from {names:?}");
    }
    // Unsupported backends are listed as skipped, with the reason.
    let skipped = report["skipped"].as_array().unwrap();
    for b in Backend::ALL.into_iter().filter(|b| !b.is_supported()) {
        let entry = skipped.iter().find(|s| s["name"] == b.name()).unwrap_or_else(|| panic!("{b} not skipped"));
        assert_eq!(entry["reason"].as_str(), b.unsupported_reason());
    }
    let results = report["results"].as_array().unwrap();
    // Every implementation x {16, 1420, 4096} x {128, 256} x {seal, open}.
    assert_eq!(results.len(), names.len() * 3 * 2 * 2);
    let mut cells = HashSet::new();
    for r in results {
        let gbps = r["gbps"].as_f64().unwrap();
        let ns = r["ns_per_op"].as_f64().unwrap();
        let size = r["size"].as_u64().unwrap();
        assert!(gbps.is_finite() && gbps > 0.0, "{r}");
        // GB/s is bytes per nanosecond.
        assert!((gbps * ns / size as f64 - 1.0).abs() < 1e-9, "{r}");
        if cfg!(target_arch = "x86_64") {
            assert!(r["cycles_per_byte"].as_f64().unwrap() > 0.0, "{r}");
        }
        assert!([16, 1420, 4096].contains(&size), "{r}");
        assert!([128, 256].contains(&r["key_bits"].as_u64().unwrap()), "{r}");
        let op = r["op"].as_str().unwrap();
        assert!(op == "seal" || op == "open", "{r}");
        assert!(cells.insert((r["implementation"].to_string(), op.to_string(), r["key_bits"].clone(), size)));
    }
    // Exactly one fastest per (op, key size, size), and it is the largest GB/s.
    for op in ["seal", "open"] {
        for bits in [128, 256] {
            for size in [16, 1420, 4096] {
                let cell: Vec<&Value> =
                    results.iter().filter(|r| r["op"] == op && r["key_bits"] == bits && r["size"] == size).collect();
                let fastest: Vec<&&Value> = cell.iter().filter(|r| r["fastest"] == true).collect();
                assert_eq!(fastest.len(), 1, "{op} {bits} {size}");
                let top = cell.iter().map(|r| r["gbps"].as_f64().unwrap()).fold(0.0, f64::max);
                assert_eq!(fastest[0]["gbps"].as_f64().unwrap(), top);
            }
        }
    }
    assert_eq!(report["units"]["gbps"], "10^9 bytes per second");
}

#[test]
fn backend_and_key_bits_select_what_is_timed() {
    let report = json_run(&["--backend", "scalar", "--key-bits", "192"]);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 3 * 2);
    assert!(results.iter().all(|r| r["implementation"] == "scalar" && r["key_bits"] == 192));
}

#[test]
fn plot_writes_an_svg_with_one_line_per_implementation_in_each_panel() {
    let dir = std::env::temp_dir().join(format!("espgcm-cli-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg_path = dir.join("bench.svg");
    let report = json_run(&["--plot", svg_path.to_str().unwrap()]);
    let names: Vec<String> =
        report["implementations"].as_array().unwrap().iter().map(|i| i["name"].as_str().unwrap().to_string()).collect();
    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the chart is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let panels = ["seal AES-128", "seal AES-256", "open AES-128", "open AES-256"];
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or("").trim().to_string())
        .collect();
    for p in panels {
        assert_eq!(texts.iter().filter(|t| *t == p).count(), 1, "panel title {p}");
    }
    // Data lines: the thick polylines through one point per size (legend
    // samples have two points); one per implementation per panel, each
    // implementation in its own colour.
    let mut per_colour: std::collections::HashMap<String, usize> = Default::default();
    for n in doc.descendants().filter(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2")) {
        let points = n.attribute("points").unwrap_or("").split_whitespace().count();
        if points == 3 {
            *per_colour.entry(n.attribute("stroke").unwrap().to_string()).or_default() += 1;
        }
    }
    assert_eq!(per_colour.len(), names.len(), "{per_colour:?}");
    assert!(per_colour.values().all(|&n| n == panels.len()), "{per_colour:?}");
    // And the legend of every panel names every implementation.
    for name in &names {
        assert_eq!(texts.iter().filter(|t| *t == name).count(), panels.len(), "legend entries for {name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_table_marks_the_fastest_and_names_the_units() {
    let out = espgcm(&["bench", "--seconds", "0.1", "--sizes", "64", "--key-bits", "128"]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("c/B = TSC ticks per byte"), "{t}");
    assert!(t.contains("seal AES-128") && t.contains("open AES-128"), "{t}");
    for b in supported() {
        assert!(t.lines().any(|l| l.starts_with(b)), "no row for {b}:\n{t}");
    }
    // One * per table (one size, two tables).
    assert_eq!(t.matches('*').count() - t.matches("* =").count(), 2, "{t}");
}

#[test]
fn mistakes_are_explained() {
    let out = espgcm(&["bench", "--backend", "nosuch"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(e.contains("--backend nosuch: no such implementation; this build has") && e.contains("scalar"), "{e}");
    let out = espgcm(&["bench", "--sizes", "0"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("out of range"));
    let out = espgcm(&["bench", "--key-bits", "512", "--seconds", "0.1"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("AES keys are 128, 192 or 256 bits"));
    let help = espgcm(&["bench", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("espgcm bench --json > bench.json"));
}
