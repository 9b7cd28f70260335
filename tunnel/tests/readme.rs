//! The README's two-host example is a working configuration: both files
//! load (the `[tunnel]` table and the SAs and policies), and each host's
//! outbound SA is the other's inbound one.

use espgcm_tunnel::{sas, settings};

/// The TOML block that follows `marker` in the README.
fn block_after(readme: &str, marker: &str) -> String {
    let start = readme.find(marker).unwrap_or_else(|| panic!("README has {marker}"));
    let rest = &readme[start..];
    let open = rest.find("```toml\n").expect("a toml block") + "```toml\n".len();
    let close = rest[open..].find("```").expect("its end");
    rest[open..open + close].to_string()
}

#[test]
fn the_two_host_example_loads() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README");
    let dir = std::env::temp_dir().join(format!("espgcm-tunnel-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut spis = Vec::new();
    for host in ["`host-a.toml`:", "`host-b.toml`"] {
        let path = dir.join("host.toml");
        std::fs::write(&path, block_after(&readme, host)).expect("write");
        let s = settings::load(&path).unwrap_or_else(|e| panic!("{host}: {e}"));
        let set = sas::load(&path, &s).unwrap_or_else(|e| panic!("{host}: {e}"));
        assert_eq!((set.outbound.len(), set.inbound.len(), set.policies), (1, 1, 1), "{host}");
        assert!(set.needs_udp() && !set.needs_raw());
        let out = set.outbound[0].sa.config().spi;
        let inb = set.inbound[0].config().spi;
        spis.push((out, inb));
    }
    assert_eq!(spis[0], (spis[1].1, spis[1].0), "A's outbound SA is B's inbound SA and the other way round");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_documented_tunnel_table_is_the_one_the_code_reads() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README");
    assert!(readme.contains(settings::EXAMPLE.trim_end()), "the README shows settings::EXAMPLE as it is");
}
