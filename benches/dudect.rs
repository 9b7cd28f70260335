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
//! `-- --filter NAME` runs the benches whose name contains NAME, and
//! `-- --continuous NAME` keeps one running and prints the t statistic as
//! samples accumulate. (The crate's `ctbench_main!` refuses the `--bench`
//! flag `cargo bench` passes, hence the small `main` at the end.) The primitives come from
//! `espgcm::ct_probe`, a hidden module that is not part of the stable API.

use dudect_bencher::ctbench::{BenchMetadata, BenchName, BenchOpts, run_benches_console};
use dudect_bencher::rand::Rng;
use dudect_bencher::{BenchRng, Class, CtRunner};
use espgcm::ct_probe::{ScalarAes, ScalarGcm, ScalarGhash, tags_match};
use std::hint::black_box;

/// Samples per bench run.
const SAMPLES: usize = 500_000;

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

/// A whole scalar AES-128-GCM seal of 256 bytes (sixteen blocks: the
/// row-sliced counter window and sixteen blocks of GHASH per reduction)
/// under a fixed random key and IV: plaintext all zeros vs random.
fn gcm_plaintext(runner: &mut CtRunner, rng: &mut BenchRng) {
    let gcm = ScalarGcm::new(&random::<16>(rng)).expect("16-byte key");
    let iv: [u8; 12] = random(rng);
    let inputs: Vec<(Class, [u8; 256])> = (0..SAMPLES / 4)
        .map(|_| match class(rng) {
            Class::Left => (Class::Left, [0u8; 256]),
            Class::Right => (Class::Right, random(rng)),
        })
        .collect();
    for (c, data) in inputs {
        runner.run_one(c, || {
            let mut buf = black_box(data);
            gcm.seal(&iv, &[], &mut buf)
        });
    }
}

/// Key setup and a 256-byte seal of a fixed plaintext: key all zeros vs
/// random.
fn gcm_key(runner: &mut CtRunner, rng: &mut BenchRng) {
    let plain: [u8; 256] = random(rng);
    let iv: [u8; 12] = random(rng);
    let inputs: Vec<(Class, [u8; 16])> = (0..SAMPLES / 4)
        .map(|_| match class(rng) {
            Class::Left => (Class::Left, [0u8; 16]),
            Class::Right => (Class::Right, random(rng)),
        })
        .collect();
    for (c, key) in inputs {
        runner.run_one(c, || {
            let gcm = ScalarGcm::new(black_box(&key)).expect("16-byte key");
            let mut buf = plain;
            gcm.seal(&iv, &[], &mut buf)
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

/// Control: a byte loop that returns at the first difference, on 64-byte
/// values equal vs differing in the first byte. This one is *not* constant
/// time, and its large |t| shows the method can see a leak on this machine.
fn control_early_exit(runner: &mut CtRunner, rng: &mut BenchRng) {
    fn early_exit_eq(a: &[u8; 64], b: &[u8; 64]) -> bool {
        for (x, y) in a.iter().zip(b) {
            if black_box(x) != black_box(y) {
                return false;
            }
        }
        true
    }
    let inputs: Vec<(Class, [u8; 64], [u8; 64])> = (0..SAMPLES)
        .map(|_| {
            let a: [u8; 64] = random(rng);
            let mut b = a;
            let c = class(rng);
            if matches!(c, Class::Right) {
                b[0] ^= 1;
            }
            (c, a, b)
        })
        .collect();
    for (c, a, b) in inputs {
        runner.run_one(c, || early_exit_eq(black_box(&a), black_box(&b)));
    }
}

/// One dudect bench function.
type Bench = fn(&mut CtRunner, &mut BenchRng);

fn main() -> std::io::Result<()> {
    let benches: [(&'static str, Bench); 9] = [
        ("aes_plaintext", aes_plaintext),
        ("aes_key", aes_key),
        ("gcm_plaintext", gcm_plaintext),
        ("gcm_key", gcm_key),
        ("ghash_data", ghash_data),
        ("ghash_key", ghash_key),
        ("tag_compare", tag_compare),
        ("tag_compare_position", tag_compare_position),
        ("control_early_exit", control_early_exit),
    ];
    let mut opts = BenchOpts::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--filter" => opts.filter = args.next(),
            "--continuous" => {
                opts.filter = args.next();
                opts.continuous = true;
            }
            // `cargo bench` passes `--bench`; nothing else is meant for us.
            _ => {}
        }
    }
    let benches = benches
        .into_iter()
        .map(|(name, benchfn)| BenchMetadata { name: BenchName(name), seed: None, benchfn })
        .collect();
    run_benches_console(opts, benches)
}
