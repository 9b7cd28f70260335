//! ESP seal and open beside raw AES-GCM of the same length, on every
//! supported backend, in one run.
//!
//! ```text
//! cargo bench --bench esp
//! cargo bench --bench esp -- 'seal/1420'     # one group
//! cargo bench --bench esp -- checksum        # the internet checksum alone
//! ```
//!
//! The ESP packets are TCP over IPv4 in transport mode (the size is the IP
//! packet's length), sealed and opened with every check on: IPv4 header and
//! TCP checksums before encryption and after decryption, padding, replay.
//! `open` reopens one sealed packet, so its SA runs with the replay window
//! off (the window check is a comparison and a bit test either way). Raw
//! AES-GCM encrypts or decrypts a buffer of the same length in place with
//! an 8-byte AAD; its decrypt input is copied outside the timed region.
//! Throughput is in bytes of IP packet (ESP) or message (raw), so the two
//! lines of a size compare directly.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use espgcm::esp::{Inbound, Outbound};
use espgcm::{Backend, Gcm};
use std::hint::black_box;
use std::time::Duration;

#[path = "esp_workload/mod.rs"]
mod esp_workload;
use esp_workload::{KEY, SIZES, config, tcp_packet};

fn bench(c: &mut Criterion) {
    let backends: Vec<Backend> = Backend::ALL.into_iter().filter(|b| b.is_supported()).collect();
    let iv = [0x5au8; 12];
    let aad = [0u8; 8];
    for op in ["seal", "open"] {
        for size in SIZES {
            let mut group = c.benchmark_group(format!("{op}/{size}"));
            group.warm_up_time(Duration::from_millis(500));
            group.measurement_time(Duration::from_secs(3));
            group.throughput(Throughput::Bytes(size as u64));
            for &backend in &backends {
                let packet = tcp_packet(size);
                let tx = Outbound::new(config(backend)).expect("valid SA");
                let rx = Inbound::new(config(backend)).expect("valid SA");
                let gcm = Gcm::with_backend(&KEY, backend).expect("supported backend");
                let mut sealed = Vec::new();
                let mut opened = Vec::new();
                tx.seal(&packet, &mut sealed).expect("seal");
                rx.open(&sealed, &mut opened).expect("open");
                let mut raw = vec![0u8; size];
                let tag = gcm.encrypt(&iv, &aad, &mut raw).expect("encrypt");
                if op == "seal" {
                    group.bench_function(BenchmarkId::new("esp", backend.name()), |b| {
                        b.iter(|| tx.seal(black_box(&packet), &mut sealed))
                    });
                    group.bench_function(BenchmarkId::new("raw-gcm", backend.name()), |b| {
                        b.iter(|| gcm.encrypt(black_box(&iv), black_box(&aad), black_box(&mut raw)))
                    });
                } else {
                    group.bench_function(BenchmarkId::new("esp", backend.name()), |b| {
                        b.iter(|| rx.open(black_box(&sealed), &mut opened))
                    });
                    group.bench_function(BenchmarkId::new("raw-gcm", backend.name()), |b| {
                        b.iter_batched_ref(
                            || raw.clone(),
                            |ct| gcm.decrypt(black_box(&iv), black_box(&aad), black_box(ct), &tag),
                            BatchSize::LargeInput,
                        )
                    });
                }
            }
            group.finish();
        }
    }
}

/// The internet checksum alone (one pass over the bytes), for reference.
fn bench_checksum(c: &mut Criterion) {
    let mut group = c.benchmark_group("checksum");
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(2));
    for size in SIZES {
        let data: Vec<u8> = (0..size).map(|i| (i * 7) as u8).collect();
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| espgcm::net::checksum::sum(black_box(&data)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench, bench_checksum);
criterion_main!(benches);
