//! ESP against injected keystream faults (the ZooKeeper incident, end to
//! end): with verify off, a fault on the sender's SIMD backend yields a
//! packet whose ICV is valid for the corrupted ciphertext, so only what the
//! receiver checks after decryption can stop it: the padding, the next
//! header the SA delivers (`SaConfig::next_headers`) and the inner checksum.
//! Every block position of a packet is hit in turn, the ESP trailer
//! included, and nothing corrupted may be delivered. With verify `Full` on
//! the SA the fault is caught before the packet leaves, and every packet
//! arrives intact. The same holds for a fault on the receiver's backend.
//!
//! Run with `cargo test --release --features fault-injection --test faults_esp`.

mod faults_support;

use espgcm::esp::{EspError, Inbound, Outbound, SaConfig};
use espgcm::fault::{self, FaultPlan};
use espgcm::{Backend, VerifyPolicy, health};
use espgcm_testkit::backends::simd as simd_backends;
use espgcm_testkit::packets::{V4_DST, V4_SRC, V6_DST, V6_SRC, keymat, tcp_v4, udp_v6};
use faults_support::serial;
use std::collections::BTreeMap;

const PACKETS: usize = 300;

/// Corruption patterns. On the zero payloads used here a pattern changes
/// the one's complement sum of what it covers by the sum of its own words,
/// which for these is never 0 (mod 0xffff), so the inner checksum sees any
/// hit on the data. `LAST_BIT` and `BIT_6` fall on a block's last byte,
/// the next header when the trailer ends the block: TCP (6) becomes 7 or
/// 70, protocols without a checksum, which only the next-header check stops.
const LAST_BIT: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01];
const BIT_6: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40];
const PAD_LEN: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0];
const RAMP: [u8; 16] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
const PATTERNS: [[u8; 16]; 4] = [LAST_BIT, BIT_6, PAD_LEN, RAMP];

fn sa(backend: Backend, verify: VerifyPolicy) -> SaConfig {
    SaConfig { backend: Some(backend), verify, ..SaConfig::new(0x4242, &keymat(16)) }
}

/// A packet of zeros: TCP over IPv4 or UDP over IPv6, `data_len` bytes of data.
fn zeros(v6: bool, data_len: usize) -> Vec<u8> {
    let data = vec![0u8; data_len];
    if v6 { udp_v6(V6_SRC, V6_DST, &data) } else { tcp_v4(V4_SRC, V4_DST, &data) }
}

/// The name of the check that refused a corrupted packet; panics on an
/// outcome that is not a check of the decrypted packet (an ICV failure
/// would mean the injected fault did not model the 2015 bug).
fn caught_by(e: &EspError) -> &'static str {
    match e {
        EspError::ChecksumAfterDecrypt { .. } => "inner checksum",
        EspError::UnexpectedNextHeader { .. } => "next header",
        EspError::BadPadding { .. } => "padding",
        EspError::Malformed { .. } | EspError::Truncated { .. } => "inner header",
        other => panic!("a corrupted packet was refused by an unexpected check: {other}"),
    }
}

#[test]
fn every_block_position_corrupted_on_seal_with_verify_off_is_refused_by_the_receiver() {
    let _serial = serial();
    for backend in simd_backends() {
        fault::reset_health();
        let rx = Inbound::new(sa(Backend::Scalar, VerifyPolicy::Off)).unwrap();
        let tx = Outbound::new(sa(backend, VerifyPolicy::Off)).unwrap();
        let (mut sealed, mut opened) = (Vec::new(), Vec::new());
        let mut caught: BTreeMap<&str, u64> = BTreeMap::new();
        let (mut corrupted, mut unchanged) = (0u64, 0u64);
        // Data lengths 0..=67 put the trailer at every 4-byte position of a
        // block, over one to six blocks of ESP plaintext.
        for v6 in [false, true] {
            for data_len in 0..=67 {
                let p = zeros(v6, data_len);
                tx.seal(&p, &mut sealed).unwrap();
                let ip_header = if v6 { 40 } else { 20 };
                let blocks = (sealed.len() - ip_header - 16 - 16).div_ceil(16) as u64;
                for first_block in 0..blocks {
                    for run_blocks in [1, 4] {
                        for xor in PATTERNS {
                            fault::inject_at(backend, first_block, run_blocks, xor);
                            let before = fault::injected();
                            tx.seal(&p, &mut sealed).unwrap();
                            fault::clear();
                            let result = rx.open(&sealed, &mut opened);
                            let what = format!(
                                "{} data {data_len}, block {first_block}+{run_blocks} of {blocks}, xor {xor:02x?}",
                                if v6 { "UDP/IPv6" } else { "TCP/IPv4" }
                            );
                            if fault::injected() == before {
                                // The pattern's bytes all fell past the end
                                // of a partial last block: nothing changed.
                                assert!(xor != RAMP, "{what}: RAMP reaches every block");
                                assert_eq!(result, Ok(()), "{what}");
                                assert_eq!(opened, p, "{what}");
                                unchanged += 1;
                                continue;
                            }
                            corrupted += 1;
                            match result {
                                Ok(()) => panic!("{backend}: a corrupted packet was delivered ({what})"),
                                Err(e) => *caught.entry(caught_by(&e)).or_default() += 1,
                            }
                            assert!(opened.is_empty(), "{what}");
                        }
                    }
                }
                // The same packet without a fault still arrives intact.
                tx.seal(&p, &mut sealed).unwrap();
                rx.open(&sealed, &mut opened).unwrap();
                assert_eq!(opened, p);
            }
        }
        eprintln!(
            "{backend}: {corrupted} packets corrupted on seal, 0 delivered; refused by {caught:?} \
             ({unchanged} faults fell past a partial last block and changed nothing)"
        );
        assert_eq!(caught.values().sum::<u64>(), corrupted);
        // Each check had work to do: the trailer was hit as often as the data.
        for check in ["inner checksum", "next header", "padding"] {
            assert!(caught.get(check).copied().unwrap_or(0) > 0, "{backend}: nothing caught by the {check} check");
        }
        let stats = rx.stats();
        assert_eq!(stats.checksum_after_decrypt, caught.get("inner checksum").copied().unwrap_or(0));
        assert_eq!(stats.unexpected_next_header, caught.get("next header").copied().unwrap_or(0));
        assert_eq!(stats.bad_padding, caught.get("padding").copied().unwrap_or(0));
        assert_eq!(stats.auth_failed, 0, "the ICV was computed over the corrupted ciphertext, so it passed");
        assert_eq!(health().faults, 0, "verify off reports nothing");
    }
}

#[test]
fn random_runs_of_four_corrupted_blocks_on_seal_with_verify_off_are_never_delivered() {
    let _serial = serial();
    for backend in simd_backends() {
        fault::reset_health();
        let tx = Outbound::new(sa(backend, VerifyPolicy::Off)).unwrap();
        let rx = Inbound::new(sa(Backend::Scalar, VerifyPolicy::Off)).unwrap();
        let (mut sealed, mut opened) = (Vec::new(), Vec::new());
        let mut caught: BTreeMap<&str, u64> = BTreeMap::new();
        let (mut corrupted, mut delivered) = (0u64, 0u64);
        for i in 0..PACKETS {
            let p = zeros(i % 2 == 1, 7 * i % 1400);
            fault::inject(backend, FaultPlan { one_in_blocks: 40, run_blocks: 4, xor: PATTERNS[i % 4] });
            let before = fault::injected();
            tx.seal(&p, &mut sealed).unwrap();
            fault::clear();
            let hit = fault::injected() > before;
            match rx.open(&sealed, &mut opened) {
                Ok(()) => {
                    assert!(!hit, "packet {i}: a corrupted packet was delivered");
                    assert_eq!(opened, p, "packet {i}");
                    delivered += 1;
                }
                Err(e) => {
                    assert!(hit, "packet {i}: an intact packet was refused: {e}");
                    corrupted += 1;
                    *caught.entry(caught_by(&e)).or_default() += 1;
                }
            }
        }
        eprintln!(
            "{backend}: {corrupted} of {PACKETS} packets corrupted on seal, all refused ({caught:?}); \
             {delivered} intact ones delivered"
        );
        assert!(corrupted > PACKETS as u64 / 4, "{backend}: only {corrupted} packets were hit");
        assert_eq!(corrupted + delivered, PACKETS as u64);
    }
}

#[test]
fn a_fault_on_seal_with_verify_full_never_reaches_the_receiver() {
    let _serial = serial();
    for backend in simd_backends() {
        fault::reset_health();
        let tx = Outbound::new(sa(backend, VerifyPolicy::Full)).unwrap();
        let rx = Inbound::new(sa(Backend::Scalar, VerifyPolicy::Off)).unwrap();
        fault::inject(backend, FaultPlan { one_in_blocks: 30, run_blocks: 1, xor: LAST_BIT });
        let (mut sealed, mut opened) = (Vec::new(), Vec::new());
        let mut detections = 0;
        for i in 0..PACKETS {
            let p = zeros(false, 960 + 16 * (i % 25) + i % 16);
            tx.seal(&p, &mut sealed).unwrap();
            rx.open(&sealed, &mut opened).unwrap_or_else(|e| panic!("packet {i}: {e}"));
            assert_eq!(opened, p, "packet {i}");
            let h = health();
            assert_eq!(h.faults, fault::injected(), "packet {i}: every corrupted block reported");
            if h.faults > 0 {
                detections += 1;
                assert_eq!(h.quarantined, vec![backend]);
                assert_ne!(tx.backend(), backend, "the SA's key moved off the quarantined backend");
                fault::reset_health();
                assert_eq!(tx.backend(), backend);
            }
        }
        fault::clear();
        eprintln!("{}: {detections} of {PACKETS} packets had a fault caught before sending", backend.name());
        assert!(detections > PACKETS / 2, "{backend}: {detections} detections");
    }
}

#[test]
fn a_fault_on_open_is_caught_by_the_checksum_when_off_and_corrected_when_full() {
    let _serial = serial();
    for backend in simd_backends() {
        for verify in [VerifyPolicy::Off, VerifyPolicy::Full] {
            fault::reset_health();
            let tx = Outbound::new(sa(Backend::Scalar, VerifyPolicy::Off)).unwrap();
            let rx = Inbound::new(sa(backend, verify)).unwrap();
            fault::inject(backend, FaultPlan { one_in_blocks: 1, run_blocks: 1, xor: LAST_BIT });
            let (mut sealed, mut opened) = (Vec::new(), Vec::new());
            let p = zeros(false, 1000);
            tx.seal(&p, &mut sealed).unwrap();
            let result = rx.open(&sealed, &mut opened);
            fault::clear();
            if verify == VerifyPolicy::Off {
                // Every block's last byte is hit, so the trailer's next
                // header is too when it ends a block.
                assert!(
                    matches!(
                        result,
                        Err(EspError::ChecksumAfterDecrypt { .. } | EspError::UnexpectedNextHeader { .. })
                    ),
                    "{backend}: {result:?}"
                );
                assert!(opened.is_empty());
            } else {
                assert_eq!(result, Ok(()), "{backend}");
                assert_eq!(opened, p);
                assert_eq!(health().faults, fault::injected());
                assert_eq!(health().quarantined, vec![backend]);
            }
        }
    }
}

#[test]
fn a_fault_on_open_that_hits_the_next_header_is_refused() {
    let _serial = serial();
    for backend in simd_backends() {
        let tx = Outbound::new(sa(Backend::Scalar, VerifyPolicy::Off)).unwrap();
        let rx = Inbound::new(sa(backend, VerifyPolicy::Off)).unwrap();
        // 20 bytes of TCP header, 10 of data, pad 0, pad length, next header:
        // 32 bytes, so the next header is the last byte of block 1.
        let p = zeros(false, 10);
        let (mut sealed, mut opened) = (Vec::new(), Vec::new());
        tx.seal(&p, &mut sealed).unwrap();
        fault::inject_at(backend, 1, 1, BIT_6);
        let result = rx.open(&sealed, &mut opened);
        fault::clear();
        assert_eq!(result, Err(EspError::UnexpectedNextHeader { seq: 1, next_header: 70 }), "{backend}");
        assert!(opened.is_empty());
        assert_eq!(rx.stats().unexpected_next_header, 1);
    }
}

#[test]
fn a_wrong_fused_checksum_sum_is_a_fault_under_verify_and_silent_loss_without() {
    let _serial = serial();
    for backend in simd_backends() {
        let p = zeros(false, 600);
        let (mut sealed, mut opened) = (Vec::new(), Vec::new());

        // Verify off: the good packet is refused by seal, and nothing in
        // health says why.
        fault::reset_health();
        let tx = Outbound::new(sa(backend, VerifyPolicy::Off)).unwrap();
        fault::inject_checksum_sum(backend);
        let result = tx.seal(&p, &mut sealed);
        fault::clear();
        assert!(matches!(result, Err(EspError::ChecksumBeforeEncrypt { .. })), "{backend}: {result:?}");
        assert_eq!(health().faults, 0);
        drop(tx); // one live sender per key

        // Verify full: the sum is cross-checked, the fault reported against
        // the backend, and the packet sent with the right sum.
        fault::reset_health();
        let tx = Outbound::new(sa(backend, VerifyPolicy::Full)).unwrap();
        let rx = Inbound::new(sa(Backend::Scalar, VerifyPolicy::Off)).unwrap();
        fault::inject_checksum_sum(backend);
        tx.seal(&p, &mut sealed).unwrap_or_else(|e| panic!("{backend}: {e}"));
        fault::clear();
        rx.open(&sealed, &mut opened).unwrap();
        assert_eq!(opened, p);
        let h = health();
        assert_eq!((h.faults, fault::injected()), (1, 1), "{backend}");
        assert_eq!(h.quarantined, vec![backend]);
        let report = h.last_fault.unwrap();
        assert_eq!((report.backend, report.kind), (backend, espgcm::FaultKind::ChecksumSum));
        let (want, got) = (u16::from_be_bytes([report.expected[14], report.expected[15]]), report.actual);
        assert_ne!(want, u16::from_be_bytes([got[14], got[15]]));
        assert_eq!(report.expected[..14], [0; 14]);
    }
}
