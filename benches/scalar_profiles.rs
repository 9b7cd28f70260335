//! The scalar backend against RustCrypto `aes-gcm` built soft-only, as
//! interleaved ratios: AES-128 and AES-256, seal and open, 1420 B and 16 KiB.
//! The project's goal is at least 2x in every common build profile.
//!
//! ```text
//! benches/scalar_profiles.sh          # all four profiles, one target dir each
//! # one profile by hand (the cfg makes RustCrypto soft-only; espgcm ignores it):
//! RUSTFLAGS='--cfg aes_backend="soft" --cfg polyval_backend="soft"' \
//!     CARGO_TARGET_DIR=target/soft cargo bench --bench scalar_profiles
//! ```
//!
//! Each cell alternates batches of about 1 ms of the two implementations and
//! keeps the fastest batch of each (interference only ever adds time). Open
//! decrypts in place with nothing copied: it alternates between the
//! ciphertext with its tag and the plaintext with the tag of the plaintext
//! read as ciphertext, which CTR mode makes valid. Both implementations'
//! outputs are checked against each other before timing.
//!
//! Arguments: `--rounds N` (default 30), `--label TEXT` (printed in the
//! header, e.g. the profile name), `--cell OP/BITS/BYTES` (only cells whose
//! name contains this, e.g. `seal/128/16384`), and `--instructions`: no
//! timing, just ten calls of each implementation per cell inside
//! `counted_scalar` and `counted_peer`, for an instruction count that a noisy
//! machine does not disturb:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='*counted_scalar*' \
//!     target/.../scalar_profiles-HASH --instructions --cell seal/128/16384
//! ```
//!
//! `--halves` times GHASH and AES apart instead (see [`halves`]).

use aes_gcm::aead::{AeadInOut, KeyInit, Tag, consts::U12};
use espgcm::{Backend, Gcm};
use espgcm_testkit::timing::race;
use std::hint::black_box;
use std::time::Instant;

const SIZES: [usize; 2] = [1420, 16384];
/// ESP's AAD: SPI and sequence number.
const AAD: [u8; 8] = [0x00, 0x00, 0x12, 0x34, 0x00, 0x00, 0x00, 0x01];
const IV: [u8; 12] = [0x5a; 12];
/// Target length of one timed batch.
const BATCH_SECONDS: f64 = 0.001;

/// One implementation as the bench drives it.
trait Aead {
    fn seal(&self, buf: &mut [u8]) -> [u8; 16];
    fn open(&self, buf: &mut [u8], tag: &[u8; 16]) -> bool;
}

struct Espgcm(Gcm);

impl Aead for Espgcm {
    fn seal(&self, buf: &mut [u8]) -> [u8; 16] {
        self.0.encrypt(&IV, &AAD, buf).expect("espgcm seal")
    }
    fn open(&self, buf: &mut [u8], tag: &[u8; 16]) -> bool {
        self.0.decrypt(&IV, &AAD, buf, tag).is_ok()
    }
}

struct RustCrypto<A>(A);

impl<A: AeadInOut<NonceSize = U12>> Aead for RustCrypto<A> {
    fn seal(&self, buf: &mut [u8]) -> [u8; 16] {
        let tag = self.0.encrypt_inout_detached(&IV.into(), &AAD, buf.into()).expect("RustCrypto seal");
        tag.as_slice().try_into().expect("16-byte tag")
    }
    fn open(&self, buf: &mut [u8], tag: &[u8; 16]) -> bool {
        let tag = Tag::<A>::try_from(&tag[..]).expect("16-byte tag");
        self.0.decrypt_inout_detached(&IV.into(), &AAD, buf.into(), &tag).is_ok()
    }
}

/// What one open loop needs: the two buffers it alternates between, and
/// their tags (`texts[1]` is `texts[0]` decrypted, and vice versa).
struct OpenInputs {
    texts: [Vec<u8>; 2],
    tags: [[u8; 16]; 2],
}

impl OpenInputs {
    fn new(gcm: &dyn Aead, size: usize) -> OpenInputs {
        let plain: Vec<u8> = (0..size).map(|i| (i * 7 + 3) as u8).collect();
        let mut ct = plain.clone();
        let tag_ct = gcm.seal(&mut ct);
        // Sealing the ciphertext gives the plaintext back (CTR mode) and the
        // tag that makes the plaintext a valid ciphertext.
        let mut again = ct.clone();
        let tag_plain = gcm.seal(&mut again);
        assert_eq!(again, plain);
        OpenInputs { texts: [ct, plain], tags: [tag_ct, tag_plain] }
    }
}

/// A closure that runs `op` once per call on its own buffer, in place.
fn runner<'a>(imp: &'a dyn Aead, open: bool, size: usize) -> impl FnMut() + 'a {
    let inputs = OpenInputs::new(imp, size);
    let mut buf = inputs.texts[0].clone();
    let mut turn = 0usize;
    move || {
        if open {
            let ok = imp.open(black_box(&mut buf), &inputs.tags[turn & 1]);
            assert!(ok, "open failed");
            turn += 1;
        } else {
            black_box(imp.seal(black_box(&mut buf)));
        }
    }
}

/// Calls per batch so that one batch takes about [`BATCH_SECONDS`].
fn calibrate(f: &mut dyn FnMut()) -> usize {
    f();
    let start = Instant::now();
    let mut n = 0usize;
    while start.elapsed().as_secs_f64() < BATCH_SECONDS / 4.0 || n < 2 {
        f();
        n += 1;
    }
    let per_call = start.elapsed().as_secs_f64() / n as f64;
    ((BATCH_SECONDS / per_call) as usize).max(2)
}

/// Calls per cell in `--instructions` mode.
const COUNTED_CALLS: usize = 10;

// Two functions with distinct bodies (the black_box'd tag), so that the
// compiler does not merge them into one symbol.
#[inline(never)]
fn counted_scalar(f: &mut dyn FnMut()) {
    black_box("scalar");
    for _ in 0..COUNTED_CALLS {
        f();
    }
}

#[inline(never)]
fn counted_peer(f: &mut dyn FnMut()) {
    black_box("peer");
    for _ in 0..COUNTED_CALLS {
        f();
    }
}

fn check_agreement(ours: &dyn Aead, theirs: &dyn Aead, size: usize) {
    let plain: Vec<u8> = (0..size).map(|i| (i * 13 + 1) as u8).collect();
    let (mut a, mut b) = (plain.clone(), plain.clone());
    let (ta, tb) = (ours.seal(&mut a), theirs.seal(&mut b));
    assert!(a == b && ta == tb, "espgcm scalar and RustCrypto disagree at {size} bytes");
    assert!(theirs.open(&mut a, &ta) && a == plain, "RustCrypto does not open espgcm's output");
    assert!(ours.open(&mut b, &tb) && b == plain, "espgcm does not open RustCrypto's output");
}

fn main() {
    let mut rounds = 30usize;
    let mut label = String::from("(unnamed)");
    let mut cell_filter = String::new();
    let mut instructions = false;
    let mut halves = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rounds" => rounds = args.next().and_then(|v| v.parse().ok()).unwrap_or(rounds),
            "--label" => label = args.next().unwrap_or(label),
            "--cell" => cell_filter = args.next().unwrap_or_default(),
            "--instructions" => instructions = true,
            "--halves" => halves = true,
            // `cargo bench` passes `--bench`; nothing else is meant for us.
            _ => {}
        }
    }
    if halves {
        self::halves(rounds);
        return;
    }
    let peer = if cfg!(aes_backend = "soft") { "rustcrypto-soft" } else { "rustcrypto (NOT soft: hardware AES)" };
    println!("espgcm scalar against {peer}, profile: {label}");
    if !cfg!(aes_backend = "soft") {
        println!(
            "note: build with RUSTFLAGS='--cfg aes_backend=\"soft\" --cfg polyval_backend=\"soft\"' \
             (benches/scalar_profiles.sh does) for the soft-only peer"
        );
    }
    println!("in place, 8-byte AAD, 12-byte IV; best of {rounds} interleaved ~1 ms batches; GB/s = 10^9 bytes/s");
    println!(
        "{:<5} {:<4} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "op", "key", "bytes", "scalar", "peer", "scalar", "peer", "ratio"
    );
    println!("{:<5} {:<4} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7}", "", "", "", "GB/s", "GB/s", "us", "us", "");
    let mut worst = f64::INFINITY;
    for key_len in [16usize, 32] {
        let key = vec![0x42u8; key_len];
        let ours = Espgcm(Gcm::with_backend(&key, Backend::Scalar).expect("scalar backend"));
        let theirs: Box<dyn Aead> = if key_len == 16 {
            Box::new(RustCrypto(aes_gcm::Aes128Gcm::new_from_slice(&key).expect("key")))
        } else {
            Box::new(RustCrypto(aes_gcm::Aes256Gcm::new_from_slice(&key).expect("key")))
        };
        for open in [false, true] {
            for size in SIZES {
                let op = if open { "open" } else { "seal" };
                if !format!("{op}/{}/{size}", key_len * 8).contains(cell_filter.as_str()) {
                    continue;
                }
                check_agreement(&ours, theirs.as_ref(), size);
                let mut a = runner(&ours, open, size);
                let mut b = runner(theirs.as_ref(), open, size);
                if instructions {
                    a();
                    b();
                    counted_scalar(&mut a);
                    counted_peer(&mut b);
                    println!("{op}/{}/{size}: {COUNTED_CALLS} calls each counted", key_len * 8);
                    continue;
                }
                let iters = calibrate(&mut a).min(calibrate(&mut b));
                let (ta, tb) = race(rounds, iters, &mut a, &mut b);
                let gbs = |ns: f64| size as f64 / ns;
                let ratio = tb / ta;
                worst = worst.min(ratio);
                println!(
                    "{:<5} {:<4} {:>6} {:>9.3} {:>9.3} {:>9.2} {:>9.2} {:>6.2}x",
                    op,
                    key_len * 8,
                    size,
                    gbs(ta),
                    gbs(tb),
                    ta / 1e3,
                    tb / 1e3,
                    ratio
                );
            }
        }
    }
    if instructions {
        return;
    }
    println!("worst ratio (scalar throughput / peer throughput): {worst:.2}x (goal >= 2.00x) [{label}]");
}

/// `--halves`: GHASH and AES timed apart against RustCrypto's `ghash` and
/// `aes` (soft-only under the same cfg), 16 KiB each: where the time goes.
/// AES is block encryption here, not espgcm's counter mode (which also
/// precomputes most of the first round).
fn halves(rounds: usize) {
    use aes_gcm::aes::cipher::{BlockCipherEncrypt, KeyInit as _};
    use ghash::{GHash, universal_hash::UniversalHash};
    let data = vec![0x5au8; 16384];
    let h = [0x42u8; 16];
    let ours = espgcm::ct_probe::ScalarGhash::new(&h);
    let (a, b) = race(
        rounds,
        20,
        || {
            black_box(ours.hash(black_box(&data)));
        },
        || {
            let mut g = GHash::new(&h.into());
            g.update_padded(black_box(&data));
            black_box(g.finalize());
        },
    );
    println!("GHASH, 16 KiB:          scalar {:>7.2} us, RustCrypto {:>7.2} us, ratio {:.2}x", a / 1e3, b / 1e3, b / a);
    for key_len in [16usize, 32] {
        let key = vec![0x42u8; key_len];
        let ours = espgcm::ct_probe::ScalarAes::new(&key).expect("key");
        let mut blocks = vec![[0x5au8; 16]; 1024];
        let mut theirs_blocks = vec![aes_gcm::aes::Block::default(); 1024];
        let (a, b) = if key_len == 16 {
            let theirs = aes_gcm::aes::Aes128::new_from_slice(&key).expect("key");
            race(
                rounds,
                20,
                || ours.encrypt_blocks(black_box(&mut blocks)),
                || theirs.encrypt_blocks(black_box(&mut theirs_blocks)),
            )
        } else {
            let theirs = aes_gcm::aes::Aes256::new_from_slice(&key).expect("key");
            race(
                rounds,
                20,
                || ours.encrypt_blocks(black_box(&mut blocks)),
                || theirs.encrypt_blocks(black_box(&mut theirs_blocks)),
            )
        };
        println!(
            "AES-{}, 1024 blocks:   scalar {:>7.2} us, RustCrypto {:>7.2} us, ratio {:.2}x",
            key_len * 8,
            a / 1e3,
            b / 1e3,
            b / a
        );
    }
}
