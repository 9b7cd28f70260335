//! The fuzz corpora as ordinary tests: every file under `fuzz/corpus/<target>/`
//! goes through the same checks as the fuzz target of that name (the checks
//! live in `fuzz/src/checks.rs`, included here, so there is one copy), and
//! so do the seed inputs the corpora were grown from. CI keeps every input
//! the fuzzer ever found interesting without running a fuzzer.

#[path = "../fuzz/src/checks.rs"]
#[allow(dead_code)]
mod checks;

use std::fs;
use std::path::{Path, PathBuf};

/// A fuzz target's check.
type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 4] = [
    ("esp_open", checks::esp_open),
    ("esp_seal", checks::esp_seal),
    ("gcm_differential", checks::gcm_differential),
    ("wire", checks::wire),
];

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (the committed corpus is missing)", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(target: &str) {
    // The ESP checks seal with the fuzz keys (see `sender_turn`).
    let _turn = espgcm_testkit::packets::sender_turn();
    let check = TARGETS.iter().find(|(name, _)| *name == target).expect("known target").1;
    let files = corpus(target);
    assert!(files.len() >= 10, "{target}: only {} corpus files; expected the committed corpus", files.len());
    for file in &files {
        let data = fs::read(file).expect("readable corpus file");
        let outcome = std::panic::catch_unwind(|| check(&data));
        assert!(outcome.is_ok(), "{target}: corpus file {} fails its check", file.display());
    }
    println!("{target}: {} corpus files replayed", files.len());
}

#[test]
fn esp_open_corpus_replays_clean() {
    replay("esp_open");
}

#[test]
fn esp_seal_corpus_replays_clean() {
    replay("esp_seal");
}

#[test]
fn gcm_differential_corpus_replays_clean() {
    replay("gcm_differential");
}

#[test]
fn wire_corpus_replays_clean() {
    replay("wire");
}

#[test]
fn every_seed_passes_its_check_and_every_target_has_seeds() {
    // The ESP checks seal with the fuzz keys (see `sender_turn`).
    let _turn = espgcm_testkit::packets::sender_turn();
    let seeds = checks::seeds();
    for (target, check) in TARGETS {
        let mine: Vec<&Vec<u8>> = seeds.iter().filter(|(t, _)| *t == target).map(|(_, s)| s).collect();
        assert!(mine.len() >= 4, "{target}: {} seeds", mine.len());
        for seed in mine {
            check(seed);
        }
    }
}

#[test]
fn esp_open_seeds_open_as_built() {
    use espgcm::esp::Inbound;
    // The raw seeds are packets espgcm sealed: they must open. This pins
    // the seed layout to `sa_config`, so a change there cannot quietly turn
    // the corpora into garbage.
    let mut opened = 0;
    for (target, seed) in checks::seeds() {
        if target != "esp_open" || seed[1] & 0x40 != 0 {
            continue;
        }
        let cfg = checks::sa_config(seed[0], seed[1]);
        let rx = Inbound::new(cfg).unwrap();
        let mut out = Vec::new();
        assert_eq!(rx.open(&seed[2..], &mut out), Ok(()), "seed {:02x} {:02x}", seed[0], seed[1]);
        opened += 1;
    }
    assert!(opened >= 10, "only {opened} raw esp_open seeds");
}
