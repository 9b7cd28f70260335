//! Fuzz target `gcm_differential`: the checks are `espgcm_fuzz::gcm_differential` (fuzz/src/checks.rs),
//! which `cargo test` also runs over the committed corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| espgcm_fuzz::gcm_differential(data));
