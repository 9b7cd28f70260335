//! How much reordering several threads opening one SA's packets cause, and
//! what replay window it takes to lose none of them.
//!
//! ```text
//! cargo bench --bench esp_reorder
//! ```
//!
//! One sender seals 200,000 packets; they are dealt round-robin, in bursts
//! of 32, to 2 or 4 receiving threads that open them from one shared
//! `Inbound` as fast as they can (what a data plane does when one SA's
//! traffic is spread over several receive queues or workers). A thread
//! that falls behind the others by more than the window has its packets
//! refused as too old. Printed: the share refused for each window size,
//! and the largest lag seen (how far below the highest sequence number
//! received a packet arrived).

#[path = "esp_workload/mod.rs"]
mod esp_workload;

use esp_workload::{SIZES, config, tcp_packet};
use espgcm::Backend;
use espgcm::esp::{EspError, Inbound, Outbound, PacketBuf, SaConfig};
use std::sync::atomic::{AtomicU64, Ordering};

const PACKETS: usize = 200_000;
const BURST: usize = 32;

fn main() {
    let backend = Backend::best();
    let base = config(backend);
    let tx = Outbound::new(base.clone()).expect("valid SA");
    let packet = tcp_packet(SIZES[0]);
    let sealed: Vec<Vec<u8>> = (0..PACKETS)
        .map(|_| {
            let mut out = Vec::new();
            tx.seal(&packet, &mut out).expect("seal");
            out
        })
        .collect();
    println!(
        "{PACKETS} packets of {} bytes, bursts of {BURST} dealt round-robin to the threads, on {backend}",
        SIZES[0]
    );
    println!("{:>7} {:>8} {:>10} {:>12}", "threads", "window", "refused", "largest lag");
    for threads in [2usize, 4] {
        for window in [1024u32, 4096, 16384, 65536] {
            let rx = Inbound::new(SaConfig { replay_window: window, ..base.clone() }).expect("valid SA");
            let refused = AtomicU64::new(0);
            let lag = AtomicU64::new(0);
            std::thread::scope(|s| {
                for t in 0..threads {
                    let (rx, sealed, refused, lag) = (&rx, &sealed, &refused, &lag);
                    s.spawn(move || {
                        let mut burst: Vec<PacketBuf> = (0..BURST).map(|_| PacketBuf::with_capacity(200)).collect();
                        let mut results = vec![Ok(()); BURST];
                        for chunk in sealed.chunks(BURST).skip(t).step_by(threads) {
                            let top = rx.replay_window().top();
                            let first =
                                u64::from(u32::from_be_bytes([chunk[0][24], chunk[0][25], chunk[0][26], chunk[0][27]]));
                            lag.fetch_max(top.saturating_sub(first), Ordering::Relaxed);
                            for (b, p) in burst.iter_mut().zip(chunk) {
                                b.set(p);
                            }
                            rx.open_burst(&mut burst[..chunk.len()], &mut results[..chunk.len()]);
                            let old =
                                results[..chunk.len()].iter().filter(|r| matches!(r, Err(EspError::TooOld { .. })));
                            refused.fetch_add(old.count() as u64, Ordering::Relaxed);
                        }
                    });
                }
            });
            let refused = refused.into_inner();
            println!(
                "{threads:>7} {window:>8} {:>9.3}% {:>12}",
                100.0 * refused as f64 / PACKETS as f64,
                lag.into_inner()
            );
        }
    }
}
