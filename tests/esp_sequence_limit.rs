//! `Outbound::set_sequence_limit`: the write-ahead reservation that keeps a
//! manually keyed SA from repeating an IV across restarts. Numbers at or
//! past the limit are refused with a typed error, nothing is sent, no number
//! is used; raising the limit lets sealing go on; two threads sealing while
//! the limit rises never get a number past what was recorded first.

use espgcm::esp::{EspError, Inbound, Outbound, PacketBuf, SaConfig};
use espgcm_testkit::packets::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// The sequence number of a sealed transport-mode IPv4 packet (no options).
fn seq_of(sealed: &[u8]) -> u64 {
    u64::from(u32::from_be_bytes(sealed[24..28].try_into().unwrap()))
}

#[test]
fn a_packet_at_the_limit_is_refused_uses_no_number_and_is_counted() {
    let cfg = SaConfig::new(0x3100, &keymat(16));
    let (tx, rx) = pair(&cfg);
    assert_eq!(tx.sequence_limit(), None, "no limit by default");
    tx.set_sequence_limit(3);
    assert_eq!(tx.sequence_limit(), Some(3));
    let input = tcp_v4(V4_SRC, V4_DST, b"limited");
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    for expected in 1..=2 {
        tx.seal(&input, &mut sealed).unwrap();
        assert_eq!(seq_of(&sealed), expected);
        rx.open(&sealed, &mut opened).unwrap();
    }
    assert_eq!(tx.seal(&input, &mut sealed), Err(EspError::SequenceLimit { limit: 3 }));
    assert!(sealed.is_empty(), "nothing to send");
    assert_eq!(tx.seal(&input, &mut sealed), Err(EspError::SequenceLimit { limit: 3 }));
    assert_eq!(tx.next_sequence(), Some(3), "the refused packets used no number");
    let stats = tx.stats();
    assert_eq!((stats.packets, stats.sequence_limit, stats.rejected()), (2, 2, 2));
    tx.set_sequence_limit(10);
    tx.seal(&input, &mut sealed).unwrap();
    assert_eq!(seq_of(&sealed), 3, "the next packet gets the number the refused ones did not use");
    rx.open(&sealed, &mut opened).unwrap();
    assert_eq!(opened, input);
    tx.set_sequence_limit(u64::MAX);
    assert_eq!(tx.sequence_limit(), None, "u64::MAX is no limit");
}

#[test]
fn a_burst_is_cut_at_the_limit_and_the_rest_are_refused() {
    let cfg = SaConfig::new(0x3101, &keymat(16));
    let (tx, rx) = pair(&cfg);
    tx.set_sequence_limit(6);
    let input = udp_v4(V4_SRC, V4_DST, b"burst");
    let mut burst: Vec<PacketBuf> = (0..8).map(|_| PacketBuf::from_packet(&input)).collect();
    let mut results = vec![Ok(()); 8];
    tx.seal_burst(&mut burst, &mut results);
    for (i, (pkt, r)) in burst.iter().zip(&results).enumerate() {
        if i < 5 {
            assert_eq!(*r, Ok(()), "packet {i}");
            assert_eq!(seq_of(pkt.data()), i as u64 + 1);
        } else {
            assert_eq!(*r, Err(EspError::SequenceLimit { limit: 6 }), "packet {i}");
            assert_eq!(pkt.data(), input.as_slice(), "a refused packet is left as it was");
        }
    }
    assert_eq!(tx.stats().sequence_limit, 3);
    assert_eq!(tx.next_sequence(), Some(6));
    let mut opened = burst[..5].to_vec();
    let mut open_results = vec![Ok(()); 5];
    rx.open_burst(&mut opened, &mut open_results);
    assert!(open_results.iter().all(Result::is_ok), "{open_results:?}");
}

#[test]
fn a_restart_resumes_past_the_recorded_reservation() {
    // A "daemon" seals under a limit it records first, "crashes" (the SA is
    // dropped with numbers below the record possibly used), and the next
    // run resumes at the record: the receiver, which saw everything the
    // first run sent, accepts every new packet (no number repeats).
    let cfg = SaConfig::new(0x3102, &keymat(16));
    let rx = Inbound::new(cfg.clone()).unwrap();
    let input = tcp_v4(V4_SRC, V4_DST, b"restart");
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    let block = 16;
    let mut recorded = 0u64; // stands for the file on disk
    {
        let tx = Outbound::new(cfg.clone()).unwrap();
        recorded += block;
        tx.set_sequence_limit(recorded);
        for _ in 0..20 {
            match tx.seal(&input, &mut sealed) {
                Ok(()) => rx.open(&sealed, &mut opened).unwrap(),
                Err(EspError::SequenceLimit { limit }) => {
                    assert_eq!(limit, recorded);
                    recorded += block;
                    tx.set_sequence_limit(recorded);
                }
                Err(e) => panic!("{e}"),
            }
        }
    }
    let tx = Outbound::new(cfg).unwrap();
    tx.skip_to_sequence(recorded).unwrap();
    let resumed_at = recorded;
    recorded += block;
    tx.set_sequence_limit(recorded);
    tx.seal(&input, &mut sealed).unwrap();
    assert_eq!(seq_of(&sealed), resumed_at);
    rx.open(&sealed, &mut opened).unwrap();
    assert_eq!(rx.stats().replayed, 0);
}

#[test]
fn two_threads_sealing_while_the_limit_rises_never_pass_the_record() {
    // The writer records a value (an atomic stands for the disk) and only
    // then raises the limit to it. Every number a sealing thread gets must
    // be below the record as it stood when the seal returned, every number
    // is used once, and the receiver opens every packet.
    let cfg = SaConfig { replay_window: 0, ..SaConfig::new(0x3103, &keymat(16)) };
    let (tx, rx) = pair(&cfg);
    let (tx, rx) = (Arc::new(tx), Arc::new(rx));
    let record = Arc::new(AtomicU64::new(64));
    tx.set_sequence_limit(64);
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|t| {
            let (tx, rx, record, stop) = (tx.clone(), rx.clone(), record.clone(), stop.clone());
            std::thread::spawn(move || {
                let input = udp_v4(V4_SRC, V4_DST, &[t; 40]);
                let (mut sealed, mut opened) = (Vec::new(), Vec::new());
                let (mut mine, mut refused) = (Vec::new(), 0u64);
                let mut burst: Vec<PacketBuf> = Vec::new();
                let mut results = vec![Ok(()); 4];
                while !stop.load(Ordering::Relaxed) {
                    if t == 0 {
                        match tx.seal(&input, &mut sealed) {
                            Ok(()) => {
                                let seq = seq_of(&sealed);
                                assert!(seq < record.load(Ordering::Acquire), "seq {seq} past the record");
                                rx.open(&sealed, &mut opened).unwrap();
                                mine.push(seq);
                            }
                            Err(EspError::SequenceLimit { .. }) => refused += 1,
                            Err(e) => panic!("{e}"),
                        }
                    } else {
                        burst.clear();
                        burst.extend((0..4).map(|_| PacketBuf::from_packet(&input)));
                        tx.seal_burst(&mut burst, &mut results);
                        for (pkt, r) in burst.iter_mut().zip(&results) {
                            match r {
                                Ok(()) => {
                                    let seq = seq_of(pkt.data());
                                    assert!(seq < record.load(Ordering::Acquire), "seq {seq} past the record");
                                    mine.push(seq);
                                    rx.open(pkt.data(), &mut opened).unwrap();
                                }
                                Err(EspError::SequenceLimit { .. }) => refused += 1,
                                Err(e) => panic!("{e}"),
                            }
                        }
                    }
                }
                (mine, refused)
            })
        })
        .collect();
    let mut limit = 64u64;
    for _ in 0..400 {
        limit += 64;
        record.store(limit, Ordering::Release);
        tx.set_sequence_limit(limit);
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    stop.store(true, Ordering::Relaxed);
    let (mut all, mut refused) = (Vec::new(), 0);
    for w in workers {
        let (mine, r) = w.join().unwrap();
        all.extend(mine);
        refused += r;
    }
    all.sort_unstable();
    let n = all.len() as u64;
    assert!(n > 0);
    assert!(all.iter().copied().eq(1..=n), "every number used once, none skipped by a refusal");
    assert!(n < limit);
    let (sent, received) = (tx.stats(), rx.stats());
    assert_eq!((sent.packets, sent.sequence_limit), (n, refused));
    assert_eq!((received.packets, received.rejected()), (n, 0));
}
