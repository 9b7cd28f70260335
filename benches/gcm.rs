//! AES-GCM throughput: every supported espgcm backend beside the peers, in
//! one run, so that ratios are measured under the same load.
//!
//! ```text
//! cargo bench --bench gcm                      # espgcm backends and RustCrypto aes-gcm
//! cargo bench --bench gcm --features peers     # ... and ring and aws-lc-rs
//! # RustCrypto built soft-only (no AES-NI/CLMUL), for the scalar comparison:
//! RUSTFLAGS='--cfg aes_backend="soft" --cfg polyval_backend="soft"' \
//!     CARGO_TARGET_DIR=target/soft cargo bench --bench gcm
//! ```
//!
//! Every implementation seals in place with the same key, 12-byte nonce and
//! 8-byte AAD (ESP's SPI and sequence number) at 16 B to 16 KiB, AES-128 and
//! AES-256; `open` decrypts a fresh copy of the ciphertext each iteration
//! (copied outside the timed region). Before timing, each peer's ciphertext
//! and tag are compared with espgcm's, so the bench cannot time a wrong
//! answer. Filter with criterion's usual argument, e.g.
//! `cargo bench --bench gcm --features peers -- 'seal/aes128/1420'`.

use criterion::measurement::WallTime;
use criterion::{BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use espgcm::{Backend, Gcm};
use std::hint::black_box;
use std::time::Duration;

const SIZES: [usize; 6] = [16, 64, 576, 1420, 8192, 16384];
/// ESP's AAD: SPI and sequence number.
const AAD: [u8; 8] = [0x00, 0x00, 0x12, 0x34, 0x00, 0x00, 0x00, 0x01];
const IV: [u8; 12] = [0x5a; 12];

/// Seal or open.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Seal,
    Open,
}

/// Time one implementation at one size. `seal` encrypts in place and returns
/// the tag; `open` decrypts in place and says whether the tag verified.
fn bench_one(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    op: Op,
    size: usize,
    reference: &(Vec<u8>, [u8; 16]),
    seal: impl Fn(&mut [u8]) -> [u8; 16],
    open: impl Fn(&mut [u8], &[u8; 16]) -> bool,
) {
    let mut buf = vec![0u8; size];
    let tag = seal(&mut buf);
    assert!(buf == reference.0 && tag == reference.1, "{name} disagrees with espgcm at {size} bytes");
    let mut check = buf.clone();
    assert!(open(&mut check, &tag) && check.iter().all(|&b| b == 0), "{name} does not open its own output");
    group.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| match op {
        Op::Seal => b.iter(|| black_box(seal(black_box(&mut buf)))),
        Op::Open => {
            b.iter_batched_ref(|| buf.clone(), |ct| black_box(open(black_box(ct), &tag)), BatchSize::SmallInput)
        }
    });
}

fn rustcrypto_name() -> &'static str {
    if cfg!(aes_backend = "soft") { "rustcrypto-soft" } else { "rustcrypto" }
}

/// RustCrypto aes-gcm at one size.
fn bench_rustcrypto<A>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    key: &[u8],
    op: Op,
    size: usize,
    r: &(Vec<u8>, [u8; 16]),
) where
    A: aes_gcm::aead::AeadInOut<NonceSize = aes_gcm::aead::consts::U12> + aes_gcm::aead::KeyInit,
{
    let cipher = A::new_from_slice(key).expect("key length");
    let nonce = IV.into();
    let seal = |buf: &mut [u8]| {
        let tag = cipher.encrypt_inout_detached(&nonce, &AAD, buf.into()).expect("seal");
        tag.as_slice().try_into().unwrap_or([0; 16])
    };
    let open = |buf: &mut [u8], tag: &[u8; 16]| {
        let tag = aes_gcm::aead::Tag::<A>::try_from(&tag[..]).expect("tag length");
        cipher.decrypt_inout_detached(&nonce, &AAD, buf.into(), &tag).is_ok()
    };
    bench_one(group, rustcrypto_name(), op, size, r, seal, open);
}

/// ring and aws-lc-rs, which share an API.
#[cfg(feature = "peers")]
macro_rules! bench_ring_like {
    ($krate:ident, $name:literal, $group:expr, $key:expr, $op:expr, $size:expr, $r:expr) => {{
        use $krate::aead::{AES_128_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
        let alg = if $key.len() == 16 { &AES_128_GCM } else { &AES_256_GCM };
        let key = LessSafeKey::new(UnboundKey::new(alg, $key).expect("key length"));
        let seal = |buf: &mut [u8]| {
            let nonce = Nonce::assume_unique_for_key(IV);
            let tag = key.seal_in_place_separate_tag(nonce, Aad::from(&AAD), buf).expect("seal");
            tag.as_ref().try_into().unwrap_or([0; 16])
        };
        let open = |buf: &mut [u8], tag: &[u8; 16]| {
            let nonce = Nonce::assume_unique_for_key(IV);
            bench_ring_like!(@open $krate, key, nonce, buf, tag)
        };
        bench_one($group, $name, $op, $size, $r, seal, open);
    }};
    (@open ring, $key:ident, $nonce:ident, $buf:ident, $tag:ident) => {{
        let tag = ring::aead::Tag::try_from(&$tag[..]).expect("tag length");
        $key.open_in_place_separate_tag($nonce, ring::aead::Aad::from(&AAD), tag, $buf, 0..).is_ok()
    }};
    (@open aws_lc_rs, $key:ident, $nonce:ident, $buf:ident, $tag:ident) => {{
        $key.open_in_place_separate_tag($nonce, aws_lc_rs::aead::Aad::from(&AAD), $tag, $buf).is_ok()
    }};
}

fn bench_key_size(c: &mut Criterion, key_len: usize) {
    let key = vec![0x42u8; key_len];
    let bits = key_len * 8;
    let ours: Vec<(Backend, Gcm)> = Backend::ALL
        .into_iter()
        .filter(|b| b.is_supported())
        .filter_map(|b| Gcm::with_backend(&key, b).ok().map(|g| (b, g)))
        .collect();
    let reference = Gcm::with_backend(&key, Backend::Scalar).expect("scalar backend");
    for op in [Op::Seal, Op::Open] {
        let op_name = if op == Op::Seal { "seal" } else { "open" };
        let mut group = c.benchmark_group(format!("{op_name}/aes{bits}"));
        group.warm_up_time(Duration::from_millis(300));
        group.measurement_time(Duration::from_secs(1));
        for size in SIZES {
            group.throughput(Throughput::Bytes(size as u64));
            let mut ct = vec![0u8; size];
            let tag = reference.encrypt(&IV, &AAD, &mut ct).expect("reference seal");
            let r = (ct, tag);
            for (backend, gcm) in &ours {
                let seal = |buf: &mut [u8]| gcm.encrypt(&IV, &AAD, buf).unwrap_or([0; 16]);
                let open = |buf: &mut [u8], tag: &[u8; 16]| gcm.decrypt(&IV, &AAD, buf, tag).is_ok();
                bench_one(&mut group, backend.name(), op, size, &r, seal, open);
            }
            if key_len == 16 {
                bench_rustcrypto::<aes_gcm::Aes128Gcm>(&mut group, &key, op, size, &r);
            } else {
                bench_rustcrypto::<aes_gcm::Aes256Gcm>(&mut group, &key, op, size, &r);
            }
            #[cfg(feature = "peers")]
            {
                bench_ring_like!(ring, "ring", &mut group, &key, op, size, &r);
                bench_ring_like!(aws_lc_rs, "aws-lc-rs", &mut group, &key, op, size, &r);
            }
        }
        group.finish();
    }
}

fn benches(c: &mut Criterion) {
    bench_key_size(c, 16);
    bench_key_size(c, 32);
}

criterion_group!(gcm, benches);
criterion_main!(gcm);
