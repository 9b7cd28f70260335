//! Anti-replay (RFC 6479 window), extended sequence numbers (RFC 4303
//! appendix A) and sequence-number exhaustion.

use espgcm::esp::{EspError, Inbound, Outbound, ReplayWindow, SaConfig};
use espgcm_testkit::packets::*;

fn sa(window: u32, esn: bool) -> SaConfig {
    SaConfig { replay_window: window, esn, ..SaConfig::new(0x2000, &keymat(16)) }
}

/// Seal `count` packets and return them in order (sequence numbers 1..=count
/// after `start`).
fn sealed_stream(tx: &mut Outbound, count: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..count {
        let mut sealed = Vec::new();
        tx.seal(&tcp_v4(V4_SRC, V4_DST, &pattern(8, i as u8)), &mut sealed).unwrap();
        out.push(sealed);
    }
    out
}

fn open(rx: &mut Inbound, packet: &[u8]) -> Result<(), EspError> {
    let mut out = Vec::new();
    let r = rx.open(packet, &mut out);
    assert_eq!(r.is_ok(), !out.is_empty(), "out is filled exactly on success");
    r
}

#[test]
fn open_rejects_replayed_sequence() {
    let (mut tx, mut rx) = pair(&sa(64, false));
    let packets = sealed_stream(&mut tx, 3);
    open(&mut rx, &packets[0]).unwrap();
    assert_eq!(open(&mut rx, &packets[0]), Err(EspError::Replay { seq: 1 }));
    open(&mut rx, &packets[2]).unwrap();
    assert_eq!(open(&mut rx, &packets[2]), Err(EspError::Replay { seq: 3 }));
    open(&mut rx, &packets[1]).unwrap();
    assert_eq!(open(&mut rx, &packets[1]), Err(EspError::Replay { seq: 2 }));
    assert_eq!(rx.stats().replayed, 3);
    assert_eq!(rx.stats().packets, 3);
}

#[test]
fn open_accepts_reordering_inside_the_window_and_rejects_too_old() {
    let (mut tx, mut rx) = pair(&sa(64, false));
    let packets = sealed_stream(&mut tx, 200);
    open(&mut rx, &packets[199]).unwrap(); // seq 200
    // 200 - 64 + 1 = 137 is the oldest still inside.
    for seq in (137..200).rev() {
        open(&mut rx, &packets[seq - 1]).unwrap_or_else(|e| panic!("seq {seq}: {e}"));
    }
    assert_eq!(open(&mut rx, &packets[135]), Err(EspError::TooOld { seq: 136, highest: 200, window: 64 }));
    assert_eq!(open(&mut rx, &packets[0]), Err(EspError::TooOld { seq: 1, highest: 200, window: 64 }));
    assert_eq!(rx.stats().too_old, 2);
    assert_eq!(rx.stats().packets, 64);
}

#[test]
fn replay_window_zero_disables_the_check() {
    let (mut tx, mut rx) = pair(&sa(0, false));
    let packets = sealed_stream(&mut tx, 3);
    for _ in 0..3 {
        for p in packets.iter().rev() {
            open(&mut rx, p).unwrap();
        }
    }
    assert_eq!(rx.stats().packets, 9);
}

#[test]
fn forged_packets_never_move_the_window() {
    let (mut tx, mut rx) = pair(&sa(64, false));
    let packets = sealed_stream(&mut tx, 2);
    open(&mut rx, &packets[0]).unwrap();
    // A forged packet claiming a far-ahead sequence number.
    let mut forged = packets[1].clone();
    forged[24..28].copy_from_slice(&1_000_000u32.to_be_bytes());
    assert_eq!(open(&mut rx, &forged), Err(EspError::Auth { seq: 1_000_000 }));
    assert_eq!(rx.replay_window().top(), 1);
    // The genuine packet 2 is still accepted.
    open(&mut rx, &packets[1]).unwrap();
    assert_eq!(rx.stats().auth_failed, 1);
}

#[test]
fn large_windows_work_up_to_32768_and_beyond() {
    for window in [32768u32, 100_000] {
        let w = ReplayWindow::new(window);
        let top = 1_000_000u64;
        w.accept(top).unwrap();
        // Every sequence number in the window is new exactly once.
        for seq in (top - u64::from(window) + 1)..top {
            assert!(w.check(seq).is_ok(), "window {window} seq {seq}");
            w.accept(seq).unwrap();
            assert_eq!(w.check(seq), Err(EspError::Replay { seq }));
        }
        let below = top - u64::from(window);
        assert!(matches!(w.check(below), Err(EspError::TooOld { .. })));
    }
}

#[test]
fn the_window_slides_by_whole_words_and_forgets_what_fell_out() {
    let w = ReplayWindow::new(64);
    for seq in 1..=64 {
        w.accept(seq).unwrap();
    }
    // Slide by exactly one word: 65..=128 are new; 64 is still in the window.
    w.accept(128).unwrap();
    for seq in 65..128 {
        assert!(w.check(seq).is_ok(), "{seq}");
    }
    assert_eq!(w.check(128), Err(EspError::Replay { seq: 128 }));
    assert_eq!(w.check(65 + 63), Err(EspError::Replay { seq: 128 }));
    assert_eq!(w.check(64), Err(EspError::TooOld { seq: 64, highest: 128, window: 64 }));
    // A jump far larger than the ring clears everything.
    w.accept(10_000).unwrap();
    for seq in 9_937..10_000 {
        assert!(w.check(seq).is_ok(), "{seq}");
    }
    // Bits set in the ring slot that 10_000 - 64 .. map to are gone.
    w.accept(9_999).unwrap();
    assert_eq!(w.check(9_999), Err(EspError::Replay { seq: 9_999 }));
    assert!(w.check(9_998).is_ok());
}

#[test]
fn window_of_one_accepts_only_increasing_sequence_numbers() {
    let w = ReplayWindow::new(1);
    w.accept(5).unwrap();
    assert!(matches!(w.check(4), Err(EspError::TooOld { .. })));
    assert_eq!(w.check(5), Err(EspError::Replay { seq: 5 }));
    assert!(w.check(6).is_ok());
}

#[test]
fn sequence_zero_is_never_accepted() {
    let w = ReplayWindow::new(64);
    assert!(matches!(w.check(0), Err(EspError::TooOld { seq: 0, .. })));
    let w = ReplayWindow::new(0);
    assert!(matches!(w.check(0), Err(EspError::TooOld { seq: 0, .. })));
}

#[test]
fn esn_low_half_wraps_into_the_high_half() {
    let (mut tx, mut rx) = pair(&sa(64, true));
    let start = u64::from(u32::MAX) - 2;
    tx.skip_to_sequence(start).unwrap();
    rx.advance_to(start - 1);
    let packets = sealed_stream(&mut tx, 6); // 2^32-3 ..= 2^32+2
    assert_eq!(tx.next_sequence(), Some(start + 6));
    // Only the low half is on the wire: 0xfffffffd, e, f, 0, 1, 2.
    let lows: Vec<u32> = packets.iter().map(|p| u32::from_be_bytes(p[24..28].try_into().unwrap())).collect();
    assert_eq!(lows, [0xffff_fffd, 0xffff_fffe, 0xffff_ffff, 0, 1, 2]);
    // The IV carries the whole 64-bit counter, so it never repeats.
    let ivs: Vec<u64> = packets.iter().map(|p| u64::from_be_bytes(p[28..36].try_into().unwrap())).collect();
    assert_eq!(ivs, (start..start + 6).collect::<Vec<_>>());
    // Deliver out of order across the wrap.
    for i in [0, 3, 1, 5, 2, 4] {
        open(&mut rx, &packets[i]).unwrap_or_else(|e| panic!("packet {i}: {e}"));
    }
    assert_eq!(rx.replay_window().top(), (1 << 32) + 2);
    assert_eq!(open(&mut rx, &packets[1]), Err(EspError::Replay { seq: u64::from(u32::MAX) - 1 }));
    assert_eq!(open(&mut rx, &packets[3]), Err(EspError::Replay { seq: 1 << 32 }));
    assert_eq!(open(&mut rx, &packets[4]), Err(EspError::Replay { seq: (1 << 32) + 1 }));
}

#[test]
fn esn_high_half_is_authenticated_not_sent() {
    // The same packet opened by a receiver that guesses another high half
    // fails the ICV: the high half is in the AAD.
    let (mut tx, _) = pair(&sa(64, true));
    tx.skip_to_sequence((5 << 32) + 10).unwrap();
    let packets = sealed_stream(&mut tx, 1);
    let mut rx = Inbound::new(sa(64, true)).unwrap();
    rx.advance_to((4 << 32) + 9);
    assert_eq!(open(&mut rx, &packets[0]), Err(EspError::Auth { seq: (4 << 32) + 10 }));
    let mut rx = Inbound::new(sa(64, true)).unwrap();
    rx.advance_to((5 << 32) + 9);
    open(&mut rx, &packets[0]).unwrap();
}

#[test]
fn seal_stops_at_the_end_of_the_32_bit_sequence_space() {
    let (tx, mut rx) = pair(&sa(64, false));
    tx.skip_to_sequence(u64::from(u32::MAX)).unwrap();
    rx.advance_to(u64::from(u32::MAX) - 1);
    let input = tcp_v4(V4_SRC, V4_DST, b"last");
    let mut sealed = Vec::new();
    tx.seal(&input, &mut sealed).unwrap();
    assert_eq!(&sealed[24..28], &[0xff; 4]);
    open(&mut rx, &sealed).unwrap();
    assert_eq!(tx.next_sequence(), None);
    assert_eq!(tx.seal(&input, &mut sealed), Err(EspError::SequenceExhausted { last: u64::from(u32::MAX) }));
    assert!(sealed.is_empty(), "nothing is sent");
    assert_eq!(tx.stats().sequence_exhausted, 1);
    assert_eq!(tx.stats().packets, 1);
    assert!(tx.seal_dummy(None, 4, &mut sealed).is_err());
}

#[test]
fn seal_stops_at_the_end_of_the_64_bit_sequence_space_with_esn() {
    let (tx, _) = pair(&sa(64, true));
    tx.skip_to_sequence(u64::MAX).unwrap();
    let input = tcp_v4(V4_SRC, V4_DST, b"last");
    let mut sealed = Vec::new();
    tx.seal(&input, &mut sealed).unwrap();
    assert_eq!(tx.seal(&input, &mut sealed), Err(EspError::SequenceExhausted { last: u64::MAX }));
    assert!(sealed.is_empty());
}

#[test]
fn the_sequence_counter_only_moves_forward() {
    let (mut tx, _) = pair(&sa(64, false));
    assert_eq!(tx.next_sequence(), Some(1));
    sealed_stream(&mut tx, 2);
    assert_eq!(tx.next_sequence(), Some(3));
    assert!(matches!(tx.skip_to_sequence(2), Err(EspError::Invalid { parameter: "next", .. })));
    assert!(matches!(tx.skip_to_sequence(1 << 32), Err(EspError::Invalid { parameter: "next", .. })));
    tx.skip_to_sequence(10).unwrap();
    assert_eq!(tx.next_sequence(), Some(10));
}

#[test]
fn a_packet_refused_before_encryption_does_not_use_a_sequence_number() {
    let (tx, mut rx) = pair(&sa(64, false));
    let mut bad = tcp_v4(V4_SRC, V4_DST, b"malformed");
    bad[0] = 0x44; // IPv4 header length 16 bytes: refused before anything is encrypted
    let mut sealed = Vec::new();
    assert!(tx.seal(&bad, &mut sealed).is_err());
    assert_eq!(tx.next_sequence(), Some(1));
    tx.seal(&tcp_v4(V4_SRC, V4_DST, b"fine"), &mut sealed).unwrap();
    assert_eq!(&sealed[24..28], &[0, 0, 0, 1]);
    open(&mut rx, &sealed).unwrap();
}

#[test]
fn a_packet_refused_for_its_checksum_burns_its_sequence_number() {
    // The TCP checksum is checked over the bytes the cipher encrypted, in the
    // same pass; so a damaged packet was encrypted under its IV before it
    // was refused, and that IV must never encrypt anything else.
    let (tx, mut rx) = pair(&sa(64, false));
    let mut bad = tcp_v4(V4_SRC, V4_DST, b"damaged");
    bad[45] ^= 0x40;
    let mut sealed = Vec::new();
    assert!(matches!(tx.seal(&bad, &mut sealed), Err(EspError::ChecksumBeforeEncrypt { .. })));
    assert!(sealed.is_empty(), "nothing is sent");
    assert_eq!(tx.next_sequence(), Some(2));
    tx.seal(&tcp_v4(V4_SRC, V4_DST, b"fine"), &mut sealed).unwrap();
    assert_eq!(&sealed[24..28], &[0, 0, 0, 2]);
    open(&mut rx, &sealed).unwrap();
}

#[test]
fn restored_inbound_state_refuses_everything_up_to_the_saved_top() {
    let (mut tx, _) = pair(&sa(64, false));
    let packets = sealed_stream(&mut tx, 5);
    let mut rx = Inbound::new(sa(64, false)).unwrap();
    rx.advance_to(3);
    assert!(open(&mut rx, &packets[2]).is_err());
    assert!(open(&mut rx, &packets[0]).is_err());
    open(&mut rx, &packets[3]).unwrap();
    rx.advance_to(2); // never moves back
    assert_eq!(rx.replay_window().top(), 4);
}
