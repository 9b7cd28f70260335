//! ESP against raw AES-GCM, as ratios that survive a noisy machine.
//!
//! ```text
//! cargo bench --bench esp_ratio
//! ```
//!
//! Criterion (`benches/esp.rs`) measures each function on its own, one after
//! the other; on a shared host a burst of load that lasts seconds shifts one
//! measurement and not its partner, and the ratio with it. This bench
//! alternates: for each backend, size and direction it runs a batch of ESP
//! operations, then a batch of raw `Gcm` operations of the same length, and
//! repeats that for 1.5 s (and at least 40 times), keeping the fastest
//! batch of each (interference only ever adds time). The ratio is raw time
//! over ESP time: 1.0 means ESP costs nothing beyond the AES-GCM it
//! contains. `seal32` / `open32` are
//! bursts of 32 packets (`seal_burst` / `open_burst`), per packet, against
//! the same single raw calls (the set-up of each burst's buffers, a copy of
//! the packet into each, is timed with it, as refilling a receive ring
//! would be).
//!
//! Same workload as `benches/esp.rs`: TCP/IPv4 transport-mode packets with
//! every check on (IPv4 header and TCP checksums before encryption and after
//! decryption, padding); raw AES-GCM encrypts or decrypts a buffer of the
//! same length in place with an 8-byte AAD. The raw decrypt input is
//! restored before each call by copying it, which ESP `open` does too (it
//! copies the ciphertext into its output buffer before decrypting in place);
//! the copy is timed in both. The raw calls' IV and AAD pass through
//! `black_box`: `Gcm::encrypt` inlines into this loop, and constants would
//! let the compiler fold its per-call work away, which ESP's calls (a new
//! sequence number each) never get.

#[path = "esp_workload/mod.rs"]
mod esp_workload;

use esp_workload::{KEY, SIZES, config, tcp_packet};
use espgcm::esp::{Inbound, Outbound, PacketBuf};
use espgcm::{Backend, Gcm};
use espgcm_testkit::timing::race_for;
use std::hint::black_box;
use std::time::Duration;

/// Alternating rounds per measurement, at least.
const ROUNDS: usize = 40;
/// And for at least this long: this host's interference comes in spells
/// that can outlast forty rounds (see `race_for`).
const BUDGET: Duration = Duration::from_millis(1500);
/// Operations per batch: a batch takes about a millisecond.
fn batch(size: usize) -> usize {
    (2_000_000 / (size + 500)).max(100)
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument picks backends by name.
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let iv = [0x5au8; 12];
    let aad = [0u8; 8];
    println!(
        "ESP vs raw AES-GCM, same backend, best of alternating batches for {:.1} s (ns per packet)",
        BUDGET.as_secs_f64()
    );
    println!("{:<8} {:<6} {:>6} {:>10} {:>10} {:>7}", "backend", "op", "bytes", "esp", "raw", "ratio");
    for backend in Backend::ALL {
        if let Some(why) = backend.unsupported_reason() {
            println!("{:<8} skipped: {why}", backend.name());
            continue;
        }
        if !filter.is_empty() && !filter.iter().any(|f| backend.name().contains(f.as_str())) {
            continue;
        }
        for size in SIZES {
            let packet = tcp_packet(size);
            let tx = Outbound::new(config(backend)).expect("valid SA");
            let rx = Inbound::new(config(backend)).expect("valid SA");
            let gcm = Gcm::with_backend(&KEY, backend).expect("supported backend");
            let (mut sealed, mut opened) = (Vec::new(), Vec::new());
            tx.seal(&packet, &mut sealed).expect("seal");
            rx.open(&sealed, &mut opened).expect("open");
            assert_eq!(opened, packet, "the round trip must give the packet back");
            let mut raw = vec![0u8; size];
            let tag = gcm.encrypt(&iv, &aad, &mut raw).expect("encrypt");
            let ciphertext = raw.clone();
            let iters = batch(size);

            let (esp, plain) = race_for(
                BUDGET,
                ROUNDS,
                iters,
                || {
                    black_box(tx.seal(black_box(&packet), &mut sealed)).expect("seal");
                },
                || {
                    black_box(gcm.encrypt(black_box(&iv), black_box(&aad), black_box(&mut raw))).expect("encrypt");
                },
            );
            report(backend, "seal", size, esp, plain);
            let (esp, plain) = race_for(
                BUDGET,
                ROUNDS,
                iters,
                || {
                    black_box(rx.open(black_box(&sealed), &mut opened)).expect("open");
                },
                || {
                    raw.copy_from_slice(&ciphertext);
                    black_box(gcm.decrypt(black_box(&iv), black_box(&aad), black_box(&mut raw), &tag))
                        .expect("decrypt");
                },
            );
            report(backend, "open", size, esp, plain);

            // Bursts of 32, per packet, against the same single raw call.
            const BURST: usize = 32;
            let mut burst: Vec<PacketBuf> = (0..BURST).map(|_| PacketBuf::from_packet(&packet)).collect();
            let mut results = vec![Ok(()); BURST];
            let (esp, plain) = race_for(
                BUDGET,
                ROUNDS,
                iters.div_ceil(BURST),
                || {
                    for b in burst.iter_mut() {
                        b.set(&packet);
                    }
                    tx.seal_burst(black_box(&mut burst), &mut results);
                },
                || {
                    for _ in 0..BURST {
                        black_box(gcm.encrypt(black_box(&iv), black_box(&aad), black_box(&mut raw))).expect("encrypt");
                    }
                },
            );
            assert!(results.iter().all(|r| r.is_ok()));
            report(backend, "seal32", size, esp / BURST as f64, plain / BURST as f64);
            let (esp, plain) = race_for(
                BUDGET,
                ROUNDS,
                iters.div_ceil(BURST),
                || {
                    for b in burst.iter_mut() {
                        b.set(&sealed);
                    }
                    rx.open_burst(black_box(&mut burst), &mut results);
                },
                || {
                    for _ in 0..BURST {
                        raw.copy_from_slice(&ciphertext);
                        black_box(gcm.decrypt(black_box(&iv), black_box(&aad), black_box(&mut raw), &tag))
                            .expect("decrypt");
                    }
                },
            );
            assert!(results.iter().all(|r| r.is_ok()));
            report(backend, "open32", size, esp / BURST as f64, plain / BURST as f64);
        }
    }
}

fn report(backend: Backend, op: &str, size: usize, esp_ns: f64, raw_ns: f64) {
    println!("{:<8} {:<6} {:>6} {:>10.1} {:>10.1} {:>6.2}x", backend.name(), op, size, esp_ns, raw_ns, raw_ns / esp_ns);
}
