//! One SA on one thread, one SA shared by two threads, and two SAs on two
//! threads: packets per second for bursts of 32, seal and open.
//!
//! ```text
//! cargo bench --bench esp_threads
//! ```
//!
//! Each configuration runs for a fixed number of rounds, alternating with
//! the others, and the best round counts (a shared machine only ever adds
//! time). The figure that matters is the ratio: two threads on one SA
//! against one thread, which is what the shared sequence counter, replay
//! window and counters cost when cores contend for them. The receiving SA
//! runs with its replay window off so the same packets can be opened again
//! and again; the window's update is a compare-and-swap per packet either
//! way. The last column, two threads on one SA against two threads on two
//! SAs, is that cost alone: on a shared host the second CPU is not always
//! there, which lowers both two-thread figures of a round alike.
//!
//! Each thread is pinned to its own CPU (on Linux, among those the process
//! may use), as a data plane pins its workers. Unpinned, the scheduler
//! often left both of a round's new threads on one CPU for much of the
//! round (a round is about a millisecond): the same code then read 1.0x to
//! 1.6x from run to run at 576 and 1420 bytes, two SAs on two threads no
//! better than one SA, where pinned runs read 1.9x to 2.0x. With a single
//! CPU to run on, the threads are not pinned and the bench says so.

#[path = "esp_workload/mod.rs"]
mod esp_workload;

use esp_workload::{SIZES, config, tcp_packet};
use espgcm::Backend;
use espgcm::esp::{Inbound, Outbound, PacketBuf, SaConfig};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const BURST: usize = 32;
const ROUNDS: usize = 15;
/// Bursts per thread per round.
fn bursts(size: usize) -> usize {
    (200_000 / (size + 200)).max(20)
}

/// The CPUs the process may run on, in order (Linux); empty elsewhere or
/// if they cannot be read, and then nothing is pinned.
fn usable_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    if let Ok(set) = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        return (0..nix::sched::CpuSet::count()).filter(|&cpu| set.is_set(cpu).unwrap_or(false)).collect();
    }
    Vec::new()
}

/// Pin the calling thread to `cpu` (Linux); elsewhere, nothing.
fn pin(cpu: usize) {
    #[cfg(target_os = "linux")]
    {
        let mut set = nix::sched::CpuSet::new();
        if set.set(cpu).is_ok() {
            // A failure leaves the thread unpinned: a slower round, which the
            // best of the rounds absorbs.
            let _ = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpu;
}

/// Run `work` on `threads` threads at once, `n` bursts each, thread `t`
/// on `cpus[t]` if there is one; the wall time.
fn timed(threads: usize, cpus: &[usize], work: &(dyn Fn(usize) + Sync)) -> Duration {
    let barrier = Barrier::new(threads);
    let start = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                let cpu = cpus.get(t).copied();
                s.spawn(move || {
                    if let Some(cpu) = cpu {
                        pin(cpu);
                    }
                    barrier.wait();
                    let t0 = Instant::now();
                    work(t);
                    t0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread")).min().expect("a thread")
    });
    start.elapsed()
}

fn main() {
    let backend = Backend::best();
    // The last usable CPUs first: CPU 0 takes more of the machine's
    // interrupts.
    let mut cpus = usable_cpus();
    cpus.reverse();
    if cpus.len() < 2 {
        println!("fewer than two CPUs to pin threads to: threads are not pinned");
        cpus.clear();
    }
    println!("ESP bursts of {BURST} on {backend}: million packets per second, best of {ROUNDS} rounds");
    if let [first, second, ..] = cpus[..] {
        println!("threads pinned: the first to CPU {first}, the second to CPU {second}");
    }
    println!(
        "{:<5} {:>6} {:>12} {:>14} {:>14} {:>10} {:>12}",
        "op", "bytes", "1 thread", "2 thr, 1 SA", "2 thr, 2 SAs", "1 SA 2x/1x", "1 SA/2 SAs"
    );
    for size in SIZES {
        let packet = tcp_packet(size);
        let second = SaConfig { spi: 0x2000, keymat: vec![0x77; 20], ..config(backend) };
        let tx = Arc::new(Outbound::new(config(backend)).expect("valid SA"));
        let tx2 = Arc::new(Outbound::new(second.clone()).expect("valid SA"));
        let rx = Arc::new(Inbound::new(config(backend)).expect("valid SA"));
        let rx2 = Arc::new(Inbound::new(second).expect("valid SA"));
        let mut sealed = Vec::new();
        tx.seal(&packet, &mut sealed).expect("seal");
        let mut sealed2 = Vec::new();
        tx2.seal(&packet, &mut sealed2).expect("seal");
        let n = bursts(size);
        for op in ["seal", "open"] {
            let run = |sas: [(&Outbound, &Inbound, &[u8]); 2], t: usize| {
                let (tx, rx, sealed) = sas[t % 2];
                let input: &[u8] = if op == "seal" { &packet } else { sealed };
                let mut burst: Vec<PacketBuf> = (0..BURST).map(|_| PacketBuf::from_packet(input)).collect();
                let mut results = vec![Ok(()); BURST];
                for _ in 0..n {
                    for b in burst.iter_mut() {
                        b.set(input);
                    }
                    if op == "seal" {
                        tx.seal_burst(&mut burst, &mut results);
                    } else {
                        rx.open_burst(&mut burst, &mut results);
                    }
                    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
                }
            };
            let one = [(&*tx, &*rx, sealed.as_slice()), (&*tx, &*rx, sealed.as_slice())];
            let two = [(&*tx, &*rx, sealed.as_slice()), (&*tx2, &*rx2, sealed2.as_slice())];
            let mut best = [Duration::MAX; 3];
            for _ in 0..ROUNDS {
                best[0] = best[0].min(timed(1, &cpus, &|t| run(one, t)));
                best[1] = best[1].min(timed(2, &cpus, &|t| run(one, t)));
                best[2] = best[2].min(timed(2, &cpus, &|t| run(two, t)));
            }
            let mpps = |threads: usize, d: Duration| (threads * n * BURST) as f64 / d.as_secs_f64() / 1e6;
            let (a, b, c) = (mpps(1, best[0]), mpps(2, best[1]), mpps(2, best[2]));
            println!("{op:<5} {size:>6} {a:>12.2} {b:>14.2} {c:>14.2} {:>9.2}x {:>11.2}x", b / a, b / c);
        }
    }
}
