//! `espgcm burnin`: a clean run passes with exit 0; with injected faults
//! (feature `fault-injection`) it prints the wrong rows as xxd does and
//! exits 1.

#![cfg(feature = "cli")]

use std::process::Command;

fn burnin(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_espgcm")).arg("burnin").args(args).output().expect("run espgcm");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_short_burnin_on_a_healthy_host_passes_with_exit_0() {
    let (code, out) = burnin(&["--seconds", "1"]);
    assert_eq!(code, 0, "{out}");
    let verdict = out.lines().find(|l| l.starts_with("verdict: ")).unwrap_or_else(|| panic!("no verdict: {out}"));
    assert!(verdict.starts_with("verdict: PASS"), "{verdict}");
    assert!(!out.contains("MISMATCH"), "{out}");
    for b in espgcm::Backend::ALL.into_iter().filter(|b| *b != espgcm::Backend::Scalar) {
        match b.unsupported_reason() {
            Some(why) => assert!(out.contains(&format!("{:<8} skipped: {why}", b.name())), "{out}"),
            None => assert!(out.contains(&format!("  {:<8} ", b.name())) && out.contains("all identical"), "{out}"),
        }
    }
}

#[test]
fn the_reference_and_unsupported_backends_are_refused_with_exit_2() {
    let (code, out) = burnin(&["--seconds", "1", "--backend", "scalar"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("scalar is the reference"), "{out}");
    if let Some(b) = espgcm::Backend::ALL.into_iter().find(|b| !b.is_supported()) {
        let (code, out) = burnin(&["--seconds", "1", "--backend", b.name()]);
        assert_eq!(code, 2, "{out}");
        assert!(out.contains("is not supported"), "{out}");
    }
}

#[cfg(feature = "fault-injection")]
#[test]
fn injected_faults_are_printed_as_xxd_rows_and_fail_with_exit_1() {
    let Some(backend) = espgcm::Backend::ALL.into_iter().find(|b| *b != espgcm::Backend::Scalar && b.is_supported())
    else {
        eprintln!("skipped: no SIMD backend is supported here");
        return;
    };
    // One run in 16 blocks of 16 KiB messages: the first message is hit
    // (the chance it is not is (15/16)^1024).
    let (code, out) = burnin(&[
        "--seconds",
        "0",
        "--size",
        "16384",
        "--backend",
        backend.name(),
        "--inject",
        "--inject-one-in",
        "16",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("MISMATCH {backend} seal, zeros, message 0 (16384 bytes, AES-128)")), "{out}");
    // Zeros in: the receiver sees rows of the pattern, each under an
    // offset that is a multiple of 16, with the expected zeros beneath.
    let row = out.lines().find(|l| l.contains(": 5a5a 5a5a 5a5a 5a5a 5a5a 5a5a 5a5a 5a5a  ZZZZZZZZZZZZZZZZ"));
    let row = row.unwrap_or_else(|| panic!("no xxd row of the pattern: {out}"));
    let offset = usize::from_str_radix(&row[..8], 16).unwrap();
    assert_eq!(offset % 16, 0, "{row}");
    let expected = format!("{:08x}: 0000 0000 0000 0000 0000 0000 0000 0000  ................  (expected)", offset);
    assert!(out.contains(&expected), "{out}");
    assert!(out.lines().any(|l| l.starts_with("verdict: FAIL")), "{out}");
}
