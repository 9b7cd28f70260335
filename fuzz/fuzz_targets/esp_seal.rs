//! Fuzz target `esp_seal`: the checks are `espgcm_fuzz::esp_seal` (fuzz/src/checks.rs),
//! which `cargo test` also runs over the committed corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| espgcm_fuzz::esp_seal(data));
