//! The `espgcm` binary as an operator runs it.

use std::process::{Command, Output};

fn espgcm(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_espgcm"));
    cmd.args(args).env_remove("ESPGCM_BACKEND").env_remove("ESPGCM_DISABLE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the espgcm binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn check_passes_and_reports_every_backend_and_the_known_answer_counts() {
    let out = espgcm(&["check"], &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "check failed:\n{text}");
    for name in ["scalar", "aesni", "vaes256", "vaes512", "armv8"] {
        assert!(text.lines().any(|l| l.trim_start().starts_with(name)), "no line for {name}:\n{text}");
    }
    // All 47,250 NIST cases (23,625 decrypt cases of which 11,908 are forgeries).
    assert!(text.contains("scalar   47250 cases passed (11908 forged tags rejected as expected)"), "{text}");
    let verdict = text.lines().last().unwrap_or_default();
    assert!(verdict.starts_with("verdict: PASS"), "{verdict}");
}

#[test]
fn no_arguments_means_check() {
    let out = espgcm(&[], &[]);
    assert!(out.status.success());
    assert!(stdout(&out).lines().last().unwrap_or_default().starts_with("verdict: PASS"));
}

#[test]
fn unsupported_backends_are_reported_as_skipped_with_a_reason() {
    let out = espgcm(&["check"], &[]);
    let text = stdout(&out);
    for b in espgcm::Backend::ALL.into_iter().filter(|b| !b.is_supported()) {
        let line = format!("{:<8} skipped: {}", b.name(), b.unsupported_reason().unwrap_or_default());
        assert!(text.contains(&line), "missing {line:?} in:\n{text}");
    }
}

#[test]
fn forcing_the_scalar_backend_is_reported() {
    let out = espgcm(&["check"], &[("ESPGCM_BACKEND", "scalar")]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("chosen for new keys (forced by ESPGCM_BACKEND=scalar)"), "{text}");
    assert!(text.lines().last().unwrap_or_default().ends_with("new keys get scalar"), "{text}");
}

#[test]
fn bad_override_names_are_warned_about_not_fatal() {
    let out = espgcm(&["check"], &[("ESPGCM_BACKEND", "aes-ni"), ("ESPGCM_DISABLE", "vaes512,nonsense")]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("warning: ESPGCM_BACKEND: unknown backend \"aes-ni\""), "{text}");
    assert!(text.contains("warning: ESPGCM_DISABLE: unknown backend \"nonsense\""), "{text}");
}

#[test]
fn disabling_every_backend_falls_back_to_scalar_with_a_warning() {
    let out = espgcm(&["check"], &[("ESPGCM_DISABLE", "scalar,aesni,vaes256,vaes512,armv8")]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("rules out every supported backend; the scalar backend is used"), "{text}");
    assert!(text.lines().last().unwrap_or_default().ends_with("new keys get scalar"), "{text}");
}

#[test]
fn help_shows_an_example() {
    let out = espgcm(&["check", "--help"], &[]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("Example"), "{}", stdout(&out));
    let out = espgcm(&["no-such-command"], &[]);
    assert!(!out.status.success());
}

#[test]
fn aesni_is_known_answer_tested_cross_checked_and_overridable_where_the_cpu_has_it() {
    if let Some(why) = espgcm::Backend::AesNi.unsupported_reason() {
        eprintln!("skipped aesni: {why}");
        return;
    }
    let text = stdout(&espgcm(&["check"], &[]));
    assert!(text.contains("aesni    47250 cases passed (11908 forged tags rejected as expected)"), "{text}");
    assert!(text.contains("aesni    3000 messages identical to scalar"), "{text}");

    // Disabled by the operator: still tested (it is supported), never chosen.
    let out = espgcm(&["check"], &[("ESPGCM_DISABLE", "aesni")]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("aesni    supported, disabled by ESPGCM_DISABLE"), "{text}");
    assert!(!text.lines().last().unwrap_or_default().ends_with("new keys get aesni"), "{text}");

    // Forced: new keys get it even if a faster backend exists.
    let out = espgcm(&["check"], &[("ESPGCM_BACKEND", "aesni")]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("chosen for new keys (forced by ESPGCM_BACKEND=aesni)"), "{text}");
    assert!(text.lines().last().unwrap_or_default().ends_with("new keys get aesni"), "{text}");
}

#[test]
fn the_readme_lists_every_subcommand_the_binary_has() {
    let out = espgcm(&["--help"], &[]);
    let help = stdout(&out);
    // clap's list: "Commands:" then one indented "name  description" line each.
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .collect();
    assert!(commands.len() >= 5, "{help}");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
    let count = format!("`espgcm` has {} subcommands", words.get(commands.len()).copied().unwrap_or("many"));
    assert!(readme.contains(&count), "README should say \"{count}\"");
    for name in &commands {
        assert!(readme.contains(&format!("| `espgcm {name}`")), "README's command table lacks `espgcm {name}`");
    }
}
