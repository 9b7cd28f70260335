//! SA lifetimes (RFC 4301 §4.4.2.1) at each limit: bytes, packets, time and
//! the sequence space; soft limits reported once, hard ones stopping the SA
//! with a typed, counted error; the overshoot a hard limit allows (one
//! burst, or 64 single calls per thread) and no more; events through the
//! table's poll.

use espgcm::esp::{
    Direction, EspError, Inbound, Lifetime, LifetimeKind, LifetimeStatus, Outbound, PacketBuf, SEQUENCE_SOFT_MARGIN,
    SaConfig, SaEvent, SaKey, SaTable,
};
use espgcm_testkit::packets::*;
use std::time::{Duration, Instant};

/// An SA with these limits; its key depends on the SPI (one live sender
/// per key in a process).
fn with(lifetime: Lifetime, spi: u32) -> SaConfig {
    let mut key = keymat(16);
    key[..4].copy_from_slice(&spi.to_be_bytes());
    SaConfig { lifetime, replay_window: 0, ..SaConfig::new(spi, &key) }
}

fn expired(spi: u32, which: LifetimeKind) -> EspError {
    EspError::LifetimeExpired { spi, which }
}

const SOFT: fn(LifetimeKind) -> LifetimeStatus = |k| LifetimeStatus { soft: Some(k), hard: None };

#[test]
fn the_outbound_packet_limit_is_exact_and_its_refusal_uses_no_number() {
    let cfg = with(Lifetime { soft_packets: Some(50), hard_packets: Some(100), ..Lifetime::NONE }, 0x7100);
    let (tx, rx) = pair(&cfg);
    let input = udp_v4(V4_SRC, V4_DST, b"counted");
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    for _ in 0..49 {
        tx.seal(&input, &mut sealed).unwrap();
    }
    assert_eq!(tx.poll_lifetime(Instant::now()), LifetimeStatus::default());
    tx.seal(&input, &mut sealed).unwrap();
    assert_eq!(tx.poll_lifetime(Instant::now()), SOFT(LifetimeKind::Packets), "soft at 50");
    for _ in 50..100 {
        tx.seal(&input, &mut sealed).unwrap();
        rx.open(&sealed, &mut opened).unwrap();
    }
    assert_eq!(tx.seal(&input, &mut sealed), Err(expired(0x7100, LifetimeKind::Packets)));
    assert!(sealed.is_empty());
    assert_eq!(tx.next_sequence(), Some(101), "no number used past the limit");
    // A burst gets the same answer for every packet.
    let mut burst: Vec<PacketBuf> = (0..4).map(|_| PacketBuf::from_packet(&input)).collect();
    let mut results = vec![Ok(()); 4];
    tx.seal_burst(&mut burst, &mut results);
    assert!(results.iter().all(|r| *r == Err(expired(0x7100, LifetimeKind::Packets))));
    let stats = tx.stats();
    assert_eq!((stats.packets, stats.lifetime_expired), (100, 5));
    assert_eq!(tx.poll_lifetime(Instant::now()), LifetimeStatus { soft: None, hard: Some(LifetimeKind::Packets) });
    assert_eq!(tx.poll_lifetime(Instant::now()), LifetimeStatus::default(), "each reported once");
    assert_eq!(tx.lifetime(), LifetimeStatus { soft: Some(LifetimeKind::Packets), hard: Some(LifetimeKind::Packets) });
}

#[test]
fn a_hard_byte_limit_is_overshot_by_at_most_one_burst_or_64_single_calls() {
    let input = tcp_v4(V4_SRC, V4_DST, &[7; 460]); // 500 bytes
    let len = input.len() as u64;
    let hard = 20_000;
    // Single calls: the totals are checked every 64th packet of a thread.
    let cfg = with(Lifetime { soft_bytes: Some(10_000), hard_bytes: Some(hard), ..Lifetime::NONE }, 0x7101);
    let (tx, rx) = pair(&cfg);
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    let mut sent = 0u64;
    let refusal = loop {
        match tx.seal(&input, &mut sealed) {
            Ok(()) => {
                sent += 1;
                rx.open(&sealed, &mut opened).unwrap();
            }
            Err(e) => break e,
        }
    };
    assert_eq!(refusal, expired(0x7101, LifetimeKind::Bytes));
    assert!(sent * len >= hard, "stopped before the limit: {sent} packets");
    assert!(sent * len < hard + 64 * len, "overshot by more than 64 packets: {sent}");
    assert_eq!(sent, 64, "checked at the 64th packet: 40 packets reach 20,000 bytes, 64 are let through");
    // The receiver counts what it delivered and stops likewise.
    assert_eq!(
        rx.poll_lifetime(Instant::now()),
        LifetimeStatus { soft: Some(LifetimeKind::Bytes), hard: Some(LifetimeKind::Bytes) }
    );
    assert_eq!(rx.open(&sealed, &mut opened), Err(expired(0x7101, LifetimeKind::Bytes)));
    assert_eq!(rx.stats().lifetime_expired, 1);

    // Bursts: checked at the end of every burst.
    let cfg = with(Lifetime { hard_bytes: Some(hard), ..Lifetime::NONE }, 0x7102);
    let tx = Outbound::new(cfg).unwrap();
    let mut results = vec![Ok(()); 8];
    let mut sent = 0u64;
    for _ in 0..20 {
        let mut burst: Vec<PacketBuf> = (0..8).map(|_| PacketBuf::from_packet(&input)).collect();
        tx.seal_burst(&mut burst, &mut results);
        sent += results.iter().filter(|r| r.is_ok()).count() as u64;
    }
    assert_eq!(sent, 40, "the burst that reached 20,000 bytes was the last");
    assert_eq!(tx.stats().lifetime_expired, 120);
}

#[test]
fn the_inbound_packet_limit_stops_the_receiver_after_at_most_one_burst() {
    let cfg = with(Lifetime { soft_packets: Some(10), hard_packets: Some(20), ..Lifetime::NONE }, 0x7103);
    let tx = Outbound::new(SaConfig { lifetime: Lifetime::NONE, ..cfg.clone() }).unwrap();
    let rx = Inbound::new(cfg).unwrap();
    let input = udp_v4(V4_SRC, V4_DST, b"in");
    let mut delivered = 0;
    let mut refused = 0;
    for _ in 0..5 {
        let mut burst: Vec<PacketBuf> = (0..8).map(|_| PacketBuf::from_packet(&input)).collect();
        let mut results = vec![Ok(()); 8];
        tx.seal_burst(&mut burst, &mut results);
        rx.open_burst(&mut burst, &mut results);
        for r in &results {
            match r {
                Ok(()) => delivered += 1,
                Err(e) => {
                    assert_eq!(*e, expired(0x7103, LifetimeKind::Packets));
                    refused += 1;
                }
            }
        }
    }
    assert_eq!((delivered, refused), (24, 16), "three bursts delivered (the third crossed 20), two refused");
    assert_eq!(rx.stats().lifetime_expired, 16);
}

#[test]
fn a_time_limit_stops_the_sa_when_its_time_comes() {
    // Moved forward by polling with a later time: soft, then hard.
    let limits = Lifetime {
        soft_time: Some(Duration::from_secs(50)),
        hard_time: Some(Duration::from_secs(60)),
        ..Lifetime::NONE
    };
    let cfg = with(limits, 0x7104);
    let (tx, rx) = pair(&cfg);
    let input = tcp_v4(V4_SRC, V4_DST, b"timed");
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    let t0 = Instant::now();
    tx.seal(&input, &mut sealed).unwrap();
    assert_eq!(tx.poll_lifetime(t0 + Duration::from_secs(49)), LifetimeStatus::default());
    assert_eq!(tx.poll_lifetime(t0 + Duration::from_secs(51)), SOFT(LifetimeKind::Time));
    tx.seal(&input, &mut sealed).unwrap();
    rx.open(&sealed, &mut opened).unwrap();
    assert_eq!(tx.poll_lifetime(t0 + Duration::from_secs(61)).hard, Some(LifetimeKind::Time));
    assert_eq!(tx.seal(&input, &mut sealed), Err(expired(0x7104, LifetimeKind::Time)));
    assert_eq!(rx.poll_lifetime(t0 + Duration::from_secs(61)).hard, Some(LifetimeKind::Time));
    assert_eq!(rx.open(&sealed, &mut opened), Err(expired(0x7104, LifetimeKind::Time)));
    assert!(tx.age() < Duration::from_secs(60), "the SA's own clock did not move");

    // A real short limit: a burst reads the clock.
    let short = with(Lifetime { hard_time: Some(Duration::from_millis(30)), ..Lifetime::NONE }, 0x7105);
    let tx = Outbound::new(short).unwrap();
    let mut results = vec![Ok(()); 2];
    let mut burst: Vec<PacketBuf> = (0..2).map(|_| PacketBuf::from_packet(&input)).collect();
    tx.seal_burst(&mut burst, &mut results);
    std::thread::sleep(Duration::from_millis(40));
    let mut burst: Vec<PacketBuf> = (0..2).map(|_| PacketBuf::from_packet(&input)).collect();
    tx.seal_burst(&mut burst, &mut results); // this one ends by reading the clock
    let mut burst: Vec<PacketBuf> = (0..2).map(|_| PacketBuf::from_packet(&input)).collect();
    tx.seal_burst(&mut burst, &mut results);
    assert!(results.iter().all(|r| *r == Err(expired(0x7105, LifetimeKind::Time))), "{results:?}");
}

#[test]
fn the_end_of_the_sequence_space_warns_ahead_and_then_stops_the_sa() {
    let cfg = with(Lifetime::NONE, 0x7106);
    let (tx, _) = pair(&cfg);
    let input = udp_v4(V4_SRC, V4_DST, b"seq");
    let mut sealed = Vec::new();
    let soft_at = u64::from(u32::MAX) - SEQUENCE_SOFT_MARGIN;
    tx.skip_to_sequence(soft_at - 10).unwrap();
    tx.seal(&input, &mut sealed).unwrap();
    assert_eq!(tx.poll_lifetime(Instant::now()), LifetimeStatus::default());
    // 64 single calls later the totals are checked: past the mark.
    for _ in 0..63 {
        tx.seal(&input, &mut sealed).unwrap();
    }
    assert_eq!(tx.lifetime(), SOFT(LifetimeKind::Sequence), "noticed by the packet path itself");
    assert_eq!(tx.poll_lifetime(Instant::now()), SOFT(LifetimeKind::Sequence));
    tx.skip_to_sequence(u64::from(u32::MAX)).unwrap();
    tx.seal(&input, &mut sealed).unwrap();
    assert_eq!(tx.seal(&input, &mut sealed), Err(EspError::SequenceExhausted { last: u64::from(u32::MAX) }));
    assert_eq!(tx.seal(&input, &mut sealed), Err(EspError::SequenceExhausted { last: u64::from(u32::MAX) }));
    assert_eq!(tx.poll_lifetime(Instant::now()).hard, Some(LifetimeKind::Sequence));
    assert_eq!(tx.stats().sequence_exhausted, 2);
    // ESN: no warning (2^64 numbers).
    let esn = Outbound::new(SaConfig { esn: true, ..with(Lifetime::NONE, 0x7107) }).unwrap();
    esn.skip_to_sequence(u64::from(u32::MAX)).unwrap();
    assert_eq!(esn.poll_lifetime(Instant::now()), LifetimeStatus::default());
}

#[test]
fn the_table_reports_each_crossing_once_and_lifetimes_are_checked_on_load() {
    let table = SaTable::new();
    let limits = Lifetime {
        soft_time: Some(Duration::from_secs(10)),
        hard_time: Some(Duration::from_secs(20)),
        ..Lifetime::NONE
    };
    let tx = table.add_outbound(Outbound::new(with(limits, 0x7108)).unwrap(), None).unwrap();
    let _rx = table
        .add_inbound(
            Inbound::new(with(Lifetime { hard_time: Some(Duration::from_secs(15)), ..limits }, 0x7109)).unwrap(),
            None,
            None,
        )
        .unwrap();
    let plain = table.add_inbound(Inbound::new(with(Lifetime::NONE, 0x710a)).unwrap(), None, None).unwrap();
    let t0 = Instant::now();
    assert!(table.poll_at(t0).is_empty());
    let mut events = table.poll_at(t0 + Duration::from_secs(12));
    events.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(
        events,
        [
            SaEvent::SoftLifetime { key: SaKey::inbound(0x7109), which: LifetimeKind::Time },
            SaEvent::SoftLifetime { key: SaKey::outbound(0x7108), which: LifetimeKind::Time },
        ]
    );
    assert!(table.poll_at(t0 + Duration::from_secs(13)).is_empty(), "reported once");
    assert_eq!(
        table.poll_at(t0 + Duration::from_secs(16)),
        [SaEvent::HardLifetime { key: SaKey::inbound(0x7109), which: LifetimeKind::Time }]
    );
    assert_eq!(
        table.poll_at(t0 + Duration::from_secs(21)),
        [SaEvent::HardLifetime { key: SaKey::outbound(0x7108), which: LifetimeKind::Time }]
    );
    let info = table.query(SaKey::outbound(0x7108)).unwrap();
    assert_eq!((info.key.direction, info.lifetime.hard), (Direction::Outbound, Some(LifetimeKind::Time)));
    assert_eq!(info.config.lifetime, limits);
    assert_eq!(tx.seal(&udp_v4(V4_SRC, V4_DST, b"x"), &mut Vec::new()), Err(expired(0x7108, LifetimeKind::Time)));
    assert_eq!(plain.lifetime(), LifetimeStatus::default());
}

#[test]
fn limits_that_cannot_work_are_refused() {
    for (limits, what) in [
        (Lifetime { hard_bytes: Some(0), ..Lifetime::NONE }, "limit of 0"),
        (Lifetime { soft_packets: Some(10), hard_packets: Some(5), ..Lifetime::NONE }, "soft limit must be below"),
        (
            Lifetime {
                soft_time: Some(Duration::from_secs(9)),
                hard_time: Some(Duration::from_secs(9)),
                ..Lifetime::NONE
            },
            "soft limit must be below",
        ),
    ] {
        match Outbound::new(with(limits, 0x710b)) {
            Err(EspError::Invalid { parameter: "lifetime", reason }) => assert!(reason.contains(what), "{reason}"),
            other => panic!("{limits:?}: {other:?}"),
        }
    }
}
