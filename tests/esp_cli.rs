//! `espgcm check` includes an ESP round trip on every supported backend.

use std::process::Command;

#[test]
fn check_reports_an_esp_round_trip_on_every_supported_backend() {
    let out = Command::new(env!("CARGO_BIN_EXE_espgcm"))
        .arg("check")
        .env_remove("ESPGCM_BACKEND")
        .env_remove("ESPGCM_DISABLE")
        .output()
        .expect("the espgcm binary runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("\nESP round trip:\n"), "{text}");
    for b in espgcm::Backend::ALL.into_iter().filter(|b| b.is_supported()) {
        let line = format!("  {:<8} 6 packets sealed and opened intact; damaged ones refused", b.name());
        assert!(text.contains(&line), "missing {line:?}:\n{text}");
        assert!(text.contains(&format!("ESP round trip on {}", b.name())), "{text}");
    }
}
