//! AES-GCM throughput: every supported espgcm backend beside RustCrypto's
//! `aes-gcm`, in one run, so that ratios are measured under the same load.
//!
//! ```text
//! cargo bench --bench gcm
//! # RustCrypto built soft-only (no AES-NI/CLMUL), for the scalar comparison:
//! RUSTFLAGS='--cfg aes_backend="soft" --cfg polyval_backend="soft"' \
//!     CARGO_TARGET_DIR=target/soft cargo bench --bench gcm
//! ```
//!
//! The `RUSTFLAGS` cfgs only change how RustCrypto's crates build; espgcm
//! ignores them. Filter with criterion's usual argument, e.g.
//! `cargo bench --bench gcm -- 'seal/aes128/1420'`.

use aes_gcm::aead::AeadInOut;
use aes_gcm::aead::KeyInit;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use espgcm::{Backend, Gcm};
use std::hint::black_box;
use std::time::Duration;

const SIZES: [usize; 6] = [16, 64, 576, 1420, 8192, 16384];
/// ESP's AAD: SPI and sequence number.
const AAD: [u8; 8] = [0x00, 0x00, 0x12, 0x34, 0x00, 0x00, 0x00, 0x01];
const IV: [u8; 12] = [0x5a; 12];

fn rustcrypto_name() -> &'static str {
    if cfg!(aes_backend = "soft") { "rustcrypto-soft" } else { "rustcrypto" }
}

fn bench_key_size(c: &mut Criterion, key_len: usize) {
    let key = vec![0x42u8; key_len];
    let bits = key_len * 8;
    let ours: Vec<(Backend, Gcm)> = Backend::ALL
        .into_iter()
        .filter(|b| b.is_supported())
        .filter_map(|b| Gcm::with_backend(&key, b).ok().map(|g| (b, g)))
        .collect();
    for op in ["seal", "open"] {
        let mut group = c.benchmark_group(format!("{op}/aes{bits}"));
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));
        for size in SIZES {
            group.throughput(Throughput::Bytes(size as u64));
            for (backend, gcm) in &ours {
                let mut buf = vec![0u8; size];
                let tag = gcm.encrypt(&IV, &AAD, &mut buf).unwrap_or([0; 16]);
                group.bench_with_input(BenchmarkId::new(backend.name(), size), &size, |b, _| {
                    if op == "seal" {
                        b.iter(|| black_box(gcm.encrypt(&IV, &AAD, black_box(&mut buf))));
                    } else {
                        // Each iteration opens a fresh copy of the ciphertext
                        // (copied outside the timed region).
                        b.iter_batched_ref(
                            || buf.clone(),
                            |ct| black_box(gcm.decrypt(&IV, &AAD, ct, &tag)),
                            BatchSize::SmallInput,
                        );
                    }
                });
            }
            let mut buf = vec![0u8; size];
            let peer = |group: &mut criterion::BenchmarkGroup<'_, _>, buf: &mut Vec<u8>| match key_len {
                16 => bench_peer(group, aes_gcm::Aes128Gcm::new_from_slice(&key).ok(), op, size, buf),
                _ => bench_peer(group, aes_gcm::Aes256Gcm::new_from_slice(&key).ok(), op, size, buf),
            };
            peer(&mut group, &mut buf);
        }
        group.finish();
    }
}

fn bench_peer<A: AeadInOut<NonceSize = aes_gcm::aead::consts::U12>>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    cipher: Option<A>,
    op: &str,
    size: usize,
    buf: &mut [u8],
) {
    let Some(cipher) = cipher else { return };
    let nonce = IV.into();
    let tag = cipher.encrypt_inout_detached(&nonce, &AAD, (&mut *buf).into());
    let Ok(tag) = tag else { return };
    group.bench_with_input(BenchmarkId::new(rustcrypto_name(), size), &size, |b, _| {
        if op == "seal" {
            b.iter(|| black_box(cipher.encrypt_inout_detached(&nonce, &AAD, black_box(&mut *buf).into())));
        } else {
            b.iter_batched_ref(
                || buf.to_vec(),
                |ct| black_box(cipher.decrypt_inout_detached(&nonce, &AAD, ct.as_mut_slice().into(), &tag)),
                BatchSize::SmallInput,
            );
        }
    });
}

fn benches(c: &mut Criterion) {
    bench_key_size(c, 16);
    bench_key_size(c, 32);
}

criterion_group!(gcm, benches);
criterion_main!(gcm);
