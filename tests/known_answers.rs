//! Known-answer tests: the NIST CAVP GCM response files and the test cases of
//! the GCM specification, on every backend this CPU supports.
//!
//! This target has its own `main` (`harness = false` in Cargo.toml), so what
//! it prints always shows in `cargo test --release`: one line per file and
//! backend, a total per backend, and a `skipped` line, with the reason, for
//! each backend that cannot run here. It exits with status 1 on any wrong
//! answer, on any damaged vector file, or if no backend ran at all.
//!
//! The vector files are described, with their SHA-256 and case counts, in
//! `vectors/README.md`; the values checked below must match it.

#[path = "known_answers/gcm_spec.rs"]
mod gcm_spec;

use espgcm::{Backend, Error, Gcm, kat};
use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::process::exit;

/// How many failures to print per backend.
const SHOW_FAILURES: usize = 20;

/// One compressed CAVP response file and what it must contain.
struct VectorFile {
    name: &'static str,
    gz: &'static [u8],
    /// SHA-256 of the uncompressed file, as in `vectors/README.md`.
    sha256: &'static str,
    /// AES key length of every case, in bytes.
    key_len: usize,
    cases: usize,
    /// Cases marked `FAIL` (the tag must be rejected).
    fail_cases: usize,
}

macro_rules! vector_file {
    ($name:literal, $sha256:literal, $key_len:literal, $cases:literal, $fail_cases:literal) => {
        VectorFile {
            name: $name,
            gz: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/vectors/nist-cavp/", $name, ".gz")),
            sha256: $sha256,
            key_len: $key_len,
            cases: $cases,
            fail_cases: $fail_cases,
        }
    };
}

const VECTOR_FILES: [VectorFile; 6] = [
    vector_file!(
        "gcmEncryptExtIV128.rsp",
        "30156236f768b0d81e58a3e5bd3bd79ce294cf9ef0ba0a84cf7b869c89ebd9fd",
        16,
        7875,
        0
    ),
    vector_file!(
        "gcmEncryptExtIV192.rsp",
        "86827942bf67d1c67f34532bd057adf0a41cd911396a36023d9033f89fc6f571",
        24,
        7875,
        0
    ),
    vector_file!(
        "gcmEncryptExtIV256.rsp",
        "4448b4998c3f58cd9f5542ddf7c573189a721ff3d3ac24cd5177bb4910a787f8",
        32,
        7875,
        0
    ),
    vector_file!(
        "gcmDecrypt128.rsp",
        "0d1f98d0c9e176ede1f3e85484dd13de92c3436ca97df378ec3481e04c19a732",
        16,
        7875,
        4011
    ),
    vector_file!(
        "gcmDecrypt192.rsp",
        "ca65640844441d58828e29bff87b7ec4571ef6778f4c331fc06697264edb2ffd",
        24,
        7875,
        3978
    ),
    vector_file!(
        "gcmDecrypt256.rsp",
        "ed318735a517d5a85c82d2846c23dcf56e57a352fb0f0a163d9e7617a7bd12ad",
        32,
        7875,
        3919
    ),
];

/// A vector file that passed its integrity checks, parsed.
struct Loaded {
    file: &'static VectorFile,
    cases: Vec<kat::Case>,
}

/// A wrong answer: where (file or "GCM spec"), which case, and what.
struct Failure {
    source: &'static str,
    case: String,
    reason: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Decompress, hash, parse and count one file. Any mismatch with what
/// `vectors/README.md` records is an error: a truncated or damaged file must
/// fail the suite, not shrink it.
fn load(file: &'static VectorFile) -> Result<Loaded, String> {
    let mut raw = Vec::new();
    GzDecoder::new(file.gz).read_to_end(&mut raw).map_err(|e| format!("cannot decompress: {e}"))?;
    let digest = hex(&Sha256::digest(&raw));
    if digest != file.sha256 {
        return Err(format!("SHA-256 of the uncompressed file is {digest}, expected {}", file.sha256));
    }
    let text = String::from_utf8(raw).map_err(|e| format!("not UTF-8: {e}"))?;
    let cases = kat::parse_rsp(&text).map_err(|e| format!("cannot parse: {e}"))?;
    let fail_cases = cases.iter().filter(|c| c.pt.is_none()).count();
    if (cases.len(), fail_cases) != (file.cases, file.fail_cases) {
        return Err(format!(
            "{} cases ({fail_cases} FAIL), expected {} ({} FAIL)",
            cases.len(),
            file.cases,
            file.fail_cases
        ));
    }
    if let Some(c) = cases.iter().find(|c| c.key.len() != file.key_len) {
        return Err(format!("line {}: {}-byte key in a file of {}-byte keys", c.line, c.key.len(), file.key_len));
    }
    Ok(Loaded { file, cases })
}

/// Run one specification test case on `backend`: encryption must give C and
/// T, decryption with T must give P, and decryption with one tag bit flipped
/// must fail with `Error::Auth` and leave the buffer zeroed.
fn check_spec_case(case: &gcm_spec::SpecCase, backend: Backend) -> Result<(), String> {
    let gcm = Gcm::with_backend(case.key, backend).map_err(|e| format!("key setup: {e}"))?;

    let mut buf = case.pt.to_vec();
    let tag = gcm.encrypt(case.iv, case.aad, &mut buf).map_err(|e| format!("encrypt: {e}"))?;
    if buf != case.ct {
        return Err(format!("encrypt gave C = {}, expected {}", hex(&buf), hex(case.ct)));
    }
    if tag != case.tag {
        return Err(format!("encrypt gave T = {}, expected {}", hex(&tag), hex(&case.tag)));
    }

    let mut buf = case.ct.to_vec();
    gcm.decrypt(case.iv, case.aad, &mut buf, &case.tag).map_err(|e| format!("decrypt with T: {e}"))?;
    if buf != case.pt {
        return Err(format!("decrypt gave P = {}, expected {}", hex(&buf), hex(case.pt)));
    }

    // A different bit in each case, so every byte position of the tag is hit.
    let bit = (case.number as usize * 7) % 128;
    let mut bad_tag = case.tag;
    bad_tag[bit / 8] ^= 1 << (bit % 8);
    let mut buf = case.ct.to_vec();
    match gcm.decrypt(case.iv, case.aad, &mut buf, &bad_tag) {
        Err(Error::Auth) if buf.iter().all(|&b| b == 0) => Ok(()),
        Err(Error::Auth) => Err(format!("tag with bit {bit} flipped was rejected but the buffer was not zeroed")),
        other => Err(format!("tag with bit {bit} flipped: expected Err(Auth), got {other:?}")),
    }
}

/// Everything on one backend; returns (cases passed, failures).
fn run_backend(backend: Backend, files: &[Loaded]) -> (usize, Vec<Failure>) {
    let name = backend.name();
    let mut passed = 0;
    let mut failures = Vec::new();

    for loaded in files {
        let file = loaded.file;
        match kat::run(&loaded.cases, backend) {
            Ok(tally) => {
                let complete = tally.total() == file.cases && tally.passed == file.cases;
                if complete && tally.rejected_as_expected == file.fail_cases {
                    let rejected = if file.fail_cases > 0 {
                        format!(" ({} rejected as expected)", tally.rejected_as_expected)
                    } else {
                        String::new()
                    };
                    println!("known answers: {name}: {} {} cases{rejected} ok", file.name, tally.passed);
                } else {
                    println!(
                        "known answers: {name}: {} {} cases: {} passed, {} FAILED ({} rejected as expected, {} expected)",
                        file.name,
                        tally.total(),
                        tally.passed,
                        tally.failures.len(),
                        tally.rejected_as_expected,
                        file.fail_cases
                    );
                    if tally.failures.is_empty() {
                        failures.push(Failure {
                            source: file.name,
                            case: "(all)".to_string(),
                            reason: format!(
                                "ran {} cases, {} rejected; expected {} and {}",
                                tally.total(),
                                tally.rejected_as_expected,
                                file.cases,
                                file.fail_cases
                            ),
                        });
                    }
                }
                passed += tally.passed;
                failures.extend(tally.failures.into_iter().map(|f| Failure {
                    source: file.name,
                    case: format!("line {} (Count = {})", f.line, f.count),
                    reason: f.reason,
                }));
            }
            Err(e) => {
                println!("known answers: {name}: {} could not run: {e}", file.name);
                failures.push(Failure { source: file.name, case: "(all)".to_string(), reason: e.to_string() });
            }
        }
    }

    // The same files through the batch path: every case with a 96-bit IV,
    // in batches of 1 to 16 jobs beside other messages.
    for loaded in files {
        let file = loaded.file;
        match kat::run_batched(&loaded.cases, backend) {
            Ok((tally, other_iv)) => {
                let expected = file.cases - other_iv;
                if tally.failures.is_empty() && tally.passed == expected && expected > 0 {
                    println!(
                        "known answers: {name}: {} {} cases ok through encrypt_batch/decrypt_batch \
                         ({} rejected as expected; {other_iv} with other IV lengths are not batchable)",
                        file.name, tally.passed, tally.rejected_as_expected
                    );
                } else {
                    println!(
                        "known answers: {name}: {} through the batch path: {} passed, {} FAILED of {expected}",
                        file.name,
                        tally.passed,
                        tally.failures.len()
                    );
                    if tally.failures.is_empty() {
                        failures.push(Failure {
                            source: file.name,
                            case: "(batch)".to_string(),
                            reason: format!("ran {} of {expected} batchable cases", tally.total()),
                        });
                    }
                }
                passed += tally.passed;
                failures.extend(tally.failures.into_iter().map(|f| Failure {
                    source: file.name,
                    case: format!("line {} (Count = {}), batch path", f.line, f.count),
                    reason: f.reason,
                }));
            }
            Err(e) => {
                println!("known answers: {name}: {} could not run through the batch path: {e}", file.name);
                failures.push(Failure { source: file.name, case: "(batch)".to_string(), reason: e.to_string() });
            }
        }
    }

    let spec_failures_before = failures.len();
    for case in &gcm_spec::CASES {
        match check_spec_case(case, backend) {
            Ok(()) => passed += 1,
            Err(reason) => {
                failures.push(Failure { source: "GCM spec", case: format!("test case {}", case.number), reason })
            }
        }
    }
    let spec_failed = failures.len() - spec_failures_before;
    if spec_failed == 0 {
        println!("known answers: {name}: GCM spec test cases 1-18 ok");
    } else {
        println!("known answers: {name}: GCM spec test cases 1-18: {spec_failed} of 18 FAILED");
    }

    (passed, failures)
}

fn main() {
    let mut ok = true;

    let mut files = Vec::new();
    for file in &VECTOR_FILES {
        match load(file) {
            Ok(loaded) => {
                println!(
                    "known answers: vectors: {} sha256 {} ok, {} cases, {} FAIL",
                    file.name, file.sha256, file.cases, file.fail_cases
                );
                files.push(loaded);
            }
            Err(e) => {
                println!("known answers: vectors: {}: DAMAGED: {e}", file.name);
                ok = false;
            }
        }
    }
    if let Err(e) = gcm_spec::check_table() {
        println!("known answers: GCM spec table is damaged: {e}");
        ok = false;
    }

    let mut ran = 0;
    for backend in Backend::ALL {
        if !backend.is_supported() {
            let why = backend.unsupported_reason().unwrap_or("no reason given");
            println!("known answers: {}: skipped: {why}", backend.name());
            continue;
        }
        ran += 1;
        let (passed, failures) = run_backend(backend, &files);
        if failures.is_empty() {
            println!("known answers: {}: {passed} cases passed", backend.name());
        } else {
            ok = false;
            println!("known answers: {}: {passed} cases passed, {} FAILED", backend.name(), failures.len());
            for f in failures.iter().take(SHOW_FAILURES) {
                println!("known answers: {}:   {} {}: {}", backend.name(), f.source, f.case, f.reason);
            }
            if failures.len() > SHOW_FAILURES {
                println!("known answers: {}:   ... and {} more", backend.name(), failures.len() - SHOW_FAILURES);
            }
        }
    }

    if ran == 0 {
        println!("known answers: no backend could run on this machine");
        ok = false;
    }
    if !ok {
        println!("known answers: FAILED");
        exit(1);
    }
    println!("known answers: all passed on {ran} backend(s)");
}
