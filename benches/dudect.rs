//! dudect-style constant-time evidence for the scalar backend (Reparaz,
//! Balasch, Verbauwhede, "Dude, is my code constant time?", 2017): each
//! bench times one operation on inputs of two classes, a fixed one (Left)
//! and random ones (Right), interleaved at random, and Welch's t-test
//! compares the two timing distributions (after dudect's cropping of the
//! slow tail). |t| above about 5 means the time depends on the class, that
//! is on secret data; below it, no dependence was found in this many runs.
//!
//! Run (not in CI; timings need a quiet, pinned CPU):
//!
//! ```sh
//! taskset -c 0 nice -n 15 cargo bench --bench dudect
//! ```
//!
//! `-- --continuous aes_plaintext` keeps one bench running and prints the
//! t statistic as samples accumulate. The primitives come from
//! `espgcm::ct_probe`, a hidden module that is not part of the stable API.

use dudect_bencher::rand::Rng;
use dudect_bencher::{BenchRng, Class, CtRunner, ctbench_main};
use espgcm::ct_probe::{ScalarAes, ScalarGhash, tags_match};
use std::hint::black_box;

/// Samples per bench run.
const SAMPLES: usize = 200_000;

fn class(rng: &mut BenchRng) -> Class {
    if rng.next_u32() & 1 == 0 { Class::Left } else { Class::Right }
}

fn random<const N: usize>(rng: &mut BenchRng) -> [u8; N] {
    let mut a = [0u8; N];
    rng.fill_bytes(&mut a);
    a
}

/// AES-128 on four blocks (one sliced pass) under a fixed random key:
/// plaintext all zeros vs random.
fn aes_plaintext(runner: &mut CtRunner, rng: &mut BenchRng) {
    let aes = ScalarAes::new(&random::<16>(rng)).expect("16-byte key");
    let inputs: Vec<(Class, [[u8; 16]; 4])> = (0..SAMPLES)
        .map(|_| match class(rng) {
            Class::Left => (Class::Left, [[0u8; 16]; 4]),
            Class::Right => (Class::Right, [random(rng), random(rng), random(rng), random(rng)]),
        })
        .collect();
    for (c, blocks) in inputs {
        runner.run_one(c, || {
            let mut b = black_box(blocks);
            aes.encrypt_blocks(&mut b);
            b
        });
    }
}

/// AES-128 key schedule and one sliced pass on a fixed block: key all zeros
/// vs random.
fn aes_key(runner: &mut CtRunner, rng: &mut BenchRng) {
    let block: [u8; 16] = random(rng);
    let inputs: Vec<(Class, [u8; 16])> = (0..SAMPLES)
        .map(|_| match class(rng) {
            Class::Left => (Class::Left, [0u8; 16]),
            Class::Right => (Class::Right, random(rng)),
        })
        .collect();
    for (c, key) in inputs {
        runner.run_one(c, || {
            let aes = ScalarAes::new(black_box(&key)).expect("16-byte key");
            let mut blocks = [block; 4];
            aes.encrypt_blocks(&mut blocks);
            blocks
        });
    }
}

/// GHASH of 128 bytes (one aggregated reduction) under a fixed random H:
/// data all zeros vs random.
fn ghash_data(runner: &mut CtRunner, rng: &mut BenchRng) {
    let ghash = ScalarGhash::new(&random(rng));
    let inputs: Vec<(Class, [u8; 128])> = (0..SAMPLES)
        .map(|_| match class(rng) {
            Class::Left => (Class::Left, [0u8; 128]),
            Class::Right => (Class::Right, random(rng)),
        })
        .collect();
    for (c, data) in inputs {
        runner.run_one(c, || ghash.hash(black_box(&data)));
    }
}

/// GHASH key setup (powers of H) and 128 bytes of fixed data: H all zeros
/// vs random.
fn ghash_key(runner: &mut CtRunner, rng: &mut BenchRng) {
    let data: [u8; 128] = random(rng);
    let inputs: Vec<(Class, [u8; 16])> = (0..SAMPLES)
        .map(|_| match class(rng) {
            Class::Left => (Class::Left, [0u8; 16]),
            Class::Right => (Class::Right, random(rng)),
        })
        .collect();
    for (c, h) in inputs {
        runner.run_one(c, || ScalarGhash::new(black_box(&h)).hash(&data));
    }
}

/// The tag comparison of `Gcm::decrypt`: a tag equal to the computed one vs
/// a random (mismatching) one, 16 bytes.
fn tag_compare(runner: &mut CtRunner, rng: &mut BenchRng) {
    let inputs: Vec<(Class, [u8; 16], [u8; 16])> = (0..SAMPLES)
        .map(|_| {
            let computed: [u8; 16] = random(rng);
            match class(rng) {
                Class::Left => (Class::Left, computed, computed),
                Class::Right => (Class::Right, computed, random(rng)),
            }
        })
        .collect();
    for (c, computed, tag) in inputs {
        runner.run_one(c, || tags_match(black_box(computed), black_box(&tag)));
    }
}

/// The same comparison, mismatch in the first byte vs in the last: an early
/// exit would show here.
fn tag_compare_position(runner: &mut CtRunner, rng: &mut BenchRng) {
    let inputs: Vec<(Class, [u8; 16], [u8; 16])> = (0..SAMPLES)
        .map(|_| {
            let computed: [u8; 16] = random(rng);
            let mut tag = computed;
            let c = class(rng);
            let at = if matches!(c, Class::Left) { 0 } else { 15 };
            tag[at] ^= 0x5a;
            (c, computed, tag)
        })
        .collect();
    for (c, computed, tag) in inputs {
        runner.run_one(c, || tags_match(black_box(computed), black_box(&tag)));
    }
}

ctbench_main!(aes_plaintext, aes_key, ghash_data, ghash_key, tag_compare, tag_compare_position);
