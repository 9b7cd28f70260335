//! `Gcm::encrypt_batch` / `decrypt_batch` of 32 jobs against 32 single
//! calls on the same key, interleaved, best of N rounds, ns per message.
//! A third column runs the single calls over the same `Job` array the
//! batch gets, built the same way: what the batch call itself adds or
//! saves, apart from building the jobs (about 1 ns a message, which a
//! caller of the batch pays and a caller of single calls does not).
//!
//! ```text
//! cargo bench --bench batch
//! ```
//!
//! (`cargo bench --features ipsec-mb --bench ipsec_mb` puts intel-ipsec-mb's
//! single-buffer calls beside these.)

use arrayvec::ArrayVec;
use espgcm::{Backend, Gcm, Job};
use espgcm_testkit::timing::race3;
use std::hint::black_box;

const JOBS: usize = 32;
const ROUNDS: usize = 30;
const SIZES: [usize; 6] = [64, 128, 256, 576, 768, 1420];

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    println!("batch of {JOBS} against {JOBS} single calls, 8-byte AAD, best of {ROUNDS} (ns per message)");
    println!(
        "{:<8} {:<4} {:<7} {:>6} {:>9} {:>9} {:>9} {:>7} {:>10}",
        "backend", "key", "op", "bytes", "batch", "single", "job loop", "ratio", "vs loop"
    );
    for backend in Backend::ALL {
        if let Some(why) = backend.unsupported_reason() {
            println!("{:<8} skipped: {why}", backend.name());
            continue;
        }
        if !filter.is_empty() && !filter.iter().any(|f| backend.name().contains(f.as_str())) {
            continue;
        }
        for key_len in [16, 32] {
            let gcm = Gcm::with_backend(&vec![0x42; key_len], backend).expect("supported");
            for size in SIZES {
                let aad = [0u8; 8];
                let plain: Vec<Vec<u8>> = (0..JOBS).map(|i| vec![i as u8; size]).collect();
                let (mut for_batch, mut for_single, mut for_loop) = (plain.clone(), plain.clone(), plain.clone());
                let iters = (400_000 / (JOBS * (size + 100))).max(4);
                let (batch, single, looped) = race3(
                    ROUNDS,
                    iters,
                    || {
                        let mut jobs = jobs_over(&mut for_batch, &aad, None);
                        gcm.encrypt_batch(black_box(&mut jobs));
                    },
                    || {
                        for (i, b) in for_single.iter_mut().enumerate() {
                            black_box(gcm.encrypt(&[i as u8; 12], &aad, black_box(b))).expect("encrypt");
                        }
                    },
                    || {
                        let mut jobs = jobs_over(&mut for_loop, &aad, None);
                        for job in black_box(&mut jobs).iter_mut() {
                            job.tag = gcm.encrypt(&job.iv, job.aad, job.data).expect("encrypt");
                        }
                    },
                );
                let name = format!("AES{}", key_len * 8);
                report(backend, &name[3..], "seal", size, [batch, single, looped]);
                // Decrypt fresh ciphertexts each time (copied in, both sides).
                let mut ciphertexts = plain.clone();
                let tags: Vec<[u8; 16]> = ciphertexts
                    .iter_mut()
                    .enumerate()
                    .map(|(i, b)| gcm.encrypt(&[i as u8; 12], &aad, b).expect("encrypt"))
                    .collect();
                let (batch, single, looped) = race3(
                    ROUNDS,
                    iters,
                    || {
                        for (b, c) in for_batch.iter_mut().zip(&ciphertexts) {
                            b.copy_from_slice(c);
                        }
                        let mut jobs = jobs_over(&mut for_batch, &aad, Some(&tags));
                        gcm.decrypt_batch(black_box(&mut jobs));
                        assert!(jobs.iter().all(|j| j.result.is_ok()));
                    },
                    || {
                        // All copied in first, as on the batch side: a burst
                        // arrives whole before it is opened, and at 1420
                        // bytes 32 packets do not fit in L1 (copying each
                        // just before its call would favour this side).
                        for (b, c) in for_single.iter_mut().zip(&ciphertexts) {
                            b.copy_from_slice(c);
                        }
                        for (i, b) in for_single.iter_mut().enumerate() {
                            gcm.decrypt(&[i as u8; 12], &aad, black_box(b), &tags[i]).expect("decrypt");
                        }
                    },
                    || {
                        for (b, c) in for_loop.iter_mut().zip(&ciphertexts) {
                            b.copy_from_slice(c);
                        }
                        let mut jobs = jobs_over(&mut for_loop, &aad, Some(&tags));
                        for job in black_box(&mut jobs).iter_mut() {
                            job.result = gcm.decrypt(&job.iv, job.aad, job.data, &job.tag[..job.tag_len]);
                        }
                        assert!(jobs.iter().all(|j| j.result.is_ok()));
                    },
                );
                report(backend, &name[3..], "open", size, [batch, single, looped]);
            }
        }
    }
}

/// One row: per message, the batch, the single calls and the single calls
/// over the batch's jobs (totals for [`JOBS`] messages), and how the batch
/// compares with each.
fn report(backend: Backend, key: &str, op: &str, size: usize, totals: [f64; 3]) {
    let [batch, single, looped] = totals.map(|t| t / JOBS as f64);
    println!(
        "{:<8} {:<4} {:<7} {:>6} {:>9.1} {:>9.1} {:>9.1} {:>6.2}x {:>9.2}x",
        backend.name(),
        key,
        op,
        size,
        batch,
        single,
        looped,
        single / batch,
        looped / batch
    );
}

/// The batch's jobs over `buffers` (job `i` with IV `[i; 12]` and, to
/// decrypt, `tags[i]`), on the stack as a data plane keeps them (the ESP
/// bursts do): a `Vec` would time an allocation per batch, about 2 ns a
/// message at 64 bytes, which the batch call does not make. Each job is
/// written once, in place: `core::array::from_fn` built the array and then
/// copied it (2.3 KiB), about 1 ns a message at 64 bytes.
#[inline(always)]
fn jobs_over<'a>(buffers: &'a mut [Vec<u8>], aad: &'a [u8], tags: Option<&[[u8; 16]]>) -> ArrayVec<Job<'a>, JOBS> {
    let mut jobs = ArrayVec::new();
    for (i, buffer) in buffers.iter_mut().enumerate().take(JOBS) {
        let mut job = Job::new([i as u8; 12], aad, &mut buffer[..]);
        if let Some(tag) = tags.and_then(|t| t.get(i)) {
            job.tag = *tag;
        }
        jobs.push(job);
    }
    jobs
}
