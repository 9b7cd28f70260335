//! What verify mode costs: AES-128-GCM seal on the scalar backend alone, and
//! on each SIMD backend with verify Off, Full and Sample { one_in: 4096 }
//! (the README's recommended default), at 64 B, 1420 B and 16 KiB (criterion), then the two ratios the project's
//! goals name (Full against scalar, Sample against Off; the goal is stated
//! at 1420 B, 64 B is shown too) measured as interleaved batches, best of
//! 40, which a noisy shared machine disturbs less than separate criterion
//! runs.
//!
//! `cargo bench --bench verify` (all), `cargo bench --bench verify -- ratios-only`
//! (a criterion filter that matches nothing: only the interleaved ratios).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use espgcm::{Backend, Gcm, VerifyPolicy};
use std::hint::black_box;
use std::time::{Duration, Instant};

const SIZES: [usize; 3] = [64, 1420, 16384];
const AAD: [u8; 8] = [0, 0, 0x12, 0x34, 0, 0, 0, 1];
const IV: [u8; 12] = [0x5a; 12];
const KEY: [u8; 16] = [0x42; 16];
/// The sample rate the README recommends as the default.
const SAMPLE_ONE_IN: u32 = 4096;

/// The configurations measured: a name and a key.
fn configs() -> Vec<(String, Gcm)> {
    let mut list = vec![("scalar".to_string(), Gcm::with_backend(&KEY, Backend::Scalar).expect("scalar"))];
    for b in espgcm_testkit::backends::simd() {
        for (label, policy) in [
            ("off", VerifyPolicy::Off),
            ("full", VerifyPolicy::Full),
            ("sample", VerifyPolicy::Sample { one_in: SAMPLE_ONE_IN }),
            // Pays the per-call sampling decision, checks (almost) nothing.
            ("sample-never", VerifyPolicy::Sample { one_in: u32::MAX }),
        ] {
            let mut gcm = Gcm::with_backend(&KEY, b).expect("supported backend");
            gcm.set_verify(policy);
            list.push((format!("{}-{label}", b.name()), gcm));
        }
    }
    list
}

fn bench(c: &mut Criterion) {
    let configs = configs();
    let mut group = c.benchmark_group("verify/seal");
    group.measurement_time(Duration::from_secs(2));
    for size in SIZES {
        group.throughput(Throughput::Bytes(size as u64));
        for (name, gcm) in &configs {
            let mut buf = vec![0u8; size];
            group.bench_with_input(BenchmarkId::new(name, size), &size, |b, _| {
                b.iter(|| black_box(gcm.encrypt(&IV, &AAD, black_box(&mut buf))))
            });
        }
    }
    group.finish();
}

/// Best time per call over 40 interleaved batches of each configuration.
///
/// Batches last about 2 ms (calibrated per configuration), so that on a
/// loaded machine some of them run without being preempted. A sampled
/// configuration is the exception: its batches must hold many checked
/// messages (about 50), or the best batch would be one that happened to
/// check none; they last longer and so suffer more from a loaded machine,
/// which is why [`ratios`] also composes Sample's cost from short batches.
fn interleaved(configs: &[(String, Gcm)], size: usize) -> Vec<f64> {
    let mut buf = vec![0u8; size];
    let per_batch: Vec<usize> = configs
        .iter()
        .map(|(name, gcm)| {
            if name.ends_with("-sample") {
                return 50_000;
            }
            let start = Instant::now();
            for _ in 0..50 {
                black_box(gcm.encrypt(&IV, &AAD, black_box(&mut buf)).ok());
            }
            let per_call = start.elapsed().as_secs_f64() / 50.0;
            ((0.002 / per_call) as usize).clamp(10, 100_000)
        })
        .collect();
    let mut best = vec![f64::INFINITY; configs.len()];
    for _ in 0..40 {
        for (((_, gcm), best), &n) in configs.iter().zip(best.iter_mut()).zip(&per_batch) {
            let start = Instant::now();
            for _ in 0..n {
                black_box(gcm.encrypt(&IV, &AAD, black_box(&mut buf)).ok());
            }
            *best = best.min(start.elapsed().as_secs_f64() / n as f64);
        }
    }
    best
}

fn ratios() {
    let configs = configs();
    for size in [64, 1420] {
        let times = interleaved(&configs, size);
        let time = |name: &str| configs.iter().zip(&times).find(|(c, _)| c.0 == name).map(|(_, t)| *t);
        println!("\ninterleaved, best of 40 batches, AES-128 seal, {size} B:");
        for ((name, _), t) in configs.iter().zip(&times) {
            println!("  {name:<20} {:>9.1} ns  {:>6.3} GB/s", t * 1e9, size as f64 / t / 1e9);
        }
        let Some(scalar) = time("scalar") else { return };
        for b in espgcm_testkit::backends::simd() {
            let (Some(off), Some(full), Some(sample), Some(never)) = (
                time(&format!("{b}-off")),
                time(&format!("{b}-full")),
                time(&format!("{b}-sample")),
                time(&format!("{b}-sample-never")),
            ) else {
                continue;
            };
            // One message in SAMPLE_ONE_IN costs a Full check, the rest the decision.
            let n = f64::from(SAMPLE_ONE_IN);
            let composed = ((n - 1.0) * never + full) / n;
            println!(
                "  {b}, {size} B: Full throughput / scalar throughput = {:.3} (goal >= 0.8); \
                 Sample{{{SAMPLE_ONE_IN}}} time / Off time = {:.3} composed from short batches, {:.3} measured directly \
                 in long batches (goal <= 1.05 at 1420 B)",
                scalar / full,
                composed / off,
                sample / off
            );
        }
    }
    println!("  {}", espgcm::health());
}

criterion_group!(verify, bench);

fn main() {
    verify();
    if !std::env::args().any(|a| a == "--test" || a == "--list") {
        ratios();
    }
    Criterion::default().configure_from_args().final_summary();
}
