//! Re-keying without loss (make-before-break): the new inbound SA is
//! installed while the old one still accepts, outbound traffic switches in
//! one step (`SaTable::replace_outbound`), and the old inbound SA is retired
//! after a grace period. Two threads carry traffic through it, each with
//! packets in flight (sealed, not yet opened) at the switch; every packet
//! is counted: none is lost or refused.

use espgcm::esp::{Action, Inbound, MAX_REPLAY_WINDOW, Outbound, Policy, SaConfig, SaEvent, SaKey, SaTable};
use espgcm_testkit::packets::*;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const OLD: u32 = 0x8001;
const NEW: u32 = 0x8002;
/// Packets each thread keeps in flight between sealing and opening.
const IN_FLIGHT: usize = 32;

/// An SA with its own key. The replay window is the largest: the two
/// threads' packets interleave however the scheduler runs them (one can be
/// descheduled holding its in-flight packets while the other sends tens of
/// thousands), and this test is about the switch, not about reordering.
fn sa(spi: u32) -> SaConfig {
    let mut k = keymat(16);
    k[..4].copy_from_slice(&spi.to_be_bytes());
    SaConfig { replay_window: MAX_REPLAY_WINDOW, ..SaConfig::new(spi, &k) }
}

fn spi_of(sealed: &[u8]) -> u32 {
    u32::from_be_bytes(sealed[20..24].try_into().unwrap())
}

#[test]
fn a_rekey_under_two_threads_of_traffic_loses_and_refuses_nothing() {
    let (sender, receiver) = (Arc::new(SaTable::new()), Arc::new(SaTable::new()));
    let old_cfg = sa(OLD);
    sender.add_outbound(Outbound::new(old_cfg.clone()).unwrap(), None).unwrap();
    let old_tx = sender.outbound(SaKey::outbound(OLD)).unwrap();
    sender.add_policy(Policy { selectors: vec![], action: Action::Protect(old_tx.clone()) });
    let old_rx = receiver.add_inbound(Inbound::new(old_cfg).unwrap(), None, None).unwrap();

    let switched = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    // Packets sent so far, per thread.
    let sent_by = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let threads: Vec<_> = (0..2u8)
        .map(|t| {
            let (sender, receiver) = (sender.clone(), receiver.clone());
            let (switched, stop, sent_by) = (switched.clone(), stop.clone(), sent_by.clone());
            std::thread::spawn(move || {
                let mut flight: VecDeque<(Vec<u8>, Vec<u8>)> = VecDeque::new();
                let (mut sent, mut received, mut old_after_switch) = (0u64, 0u64, 0u64);
                let mut opened = Vec::new();
                let mut deliver = |flight: &mut VecDeque<(Vec<u8>, Vec<u8>)>| {
                    let (plain, sealed) = flight.pop_front().unwrap();
                    let late = switched.load(Ordering::Acquire) && spi_of(&sealed) == OLD;
                    receiver.open(&sealed, &mut opened).unwrap_or_else(|e| panic!("thread {t}: refused: {e}"));
                    assert_eq!(opened, plain, "thread {t}: delivered wrong");
                    (late as u64, 1u64)
                };
                while !stop.load(Ordering::Relaxed) {
                    let mut data = vec![t; 24];
                    data[..8].copy_from_slice(&sent.to_be_bytes());
                    let plain = udp_v4(V4_SRC, V4_DST, &data);
                    let Some(Action::Protect(sa)) = sender.outbound_for(&plain).unwrap() else { panic!("no SA") };
                    let mut sealed = Vec::new();
                    sa.seal(&plain, &mut sealed).unwrap_or_else(|e| panic!("thread {t}: seal refused: {e}"));
                    flight.push_back((plain, sealed));
                    sent += 1;
                    sent_by[usize::from(t)].store(sent, Ordering::Relaxed);
                    if flight.len() > IN_FLIGHT {
                        let (late, n) = deliver(&mut flight);
                        old_after_switch += late;
                        received += n;
                    }
                }
                while !flight.is_empty() {
                    let (late, n) = deliver(&mut flight);
                    old_after_switch += late;
                    received += n;
                }
                (sent, received, old_after_switch)
            })
        })
        .collect();

    // Until each thread has sent `n` more packets than `from`.
    let wait_for = |from: [u64; 2], n: u64| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while (0..2).any(|t| sent_by[t].load(Ordering::Relaxed) < from[t] + n) {
            assert!(Instant::now() < deadline, "traffic stalled");
            std::thread::yield_now();
        }
    };
    wait_for([0, 0], 2_500);
    // Make: the new inbound SA first, while the old one still accepts.
    let new_cfg = sa(NEW);
    let new_rx = receiver.add_inbound(Inbound::new(new_cfg.clone()).unwrap(), None, None).unwrap();
    // Switch: every policy at once.
    let new_tx = sender.replace_outbound(SaKey::outbound(OLD), Outbound::new(new_cfg).unwrap()).unwrap();
    switched.store(true, Ordering::Release);
    // Break, later: packets sealed with the old SA are still in flight.
    let grace = Duration::from_millis(300);
    let retired_at = Instant::now();
    receiver.retire_inbound(SaKey::inbound(OLD), grace).unwrap();
    let at_switch = [0, 1].map(|t| sent_by[t].load(Ordering::Relaxed));
    wait_for(at_switch, 2_500);
    stop.store(true, Ordering::Relaxed);
    let results: Vec<(u64, u64, u64)> = threads.into_iter().map(|t| t.join().unwrap()).collect();

    for (t, &(sent, received, late)) in results.iter().enumerate() {
        assert_eq!(sent, received, "thread {t}: every packet sent was received");
        assert!(late > 0, "thread {t}: no old-SA packet was in flight at the switch");
    }
    let total: u64 = results.iter().map(|r| r.0).sum();
    let (old_out, old_in, new_out, new_in) = (old_tx.stats(), old_rx.stats(), new_tx.stats(), new_rx.stats());
    assert_eq!(old_out.packets + new_out.packets, total);
    assert_eq!((old_in.packets, new_in.packets), (old_out.packets, new_out.packets));
    assert!(old_out.packets >= 5_000 && new_out.packets >= 5_000);
    for c in [old_out, old_in, new_out, new_in, receiver.stats()] {
        assert_eq!(c.rejected(), 0, "{c:?}");
    }
    // The old inbound SA stays until the grace period is over.
    assert!(receiver.poll_at(retired_at + grace - Duration::from_millis(1)).is_empty());
    assert!(receiver.inbound(SaKey::inbound(OLD)).is_some());
    let events = receiver.poll_at(Instant::now() + grace);
    assert_eq!(events, [SaEvent::Retired { key: SaKey::inbound(OLD) }]);
    assert!(receiver.inbound(SaKey::inbound(OLD)).is_none());
    assert_eq!(receiver.inbound_len(), 1);
}
