//! Fuzz target `wire`: the checks are `espgcm_fuzz::wire` (fuzz/src/checks.rs),
//! which `cargo test` also runs over the committed corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| espgcm_fuzz::wire(data));
