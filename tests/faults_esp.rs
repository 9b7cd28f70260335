//! ESP against injected keystream faults (the ZooKeeper incident, end to
//! end): with verify off, a fault on the sender's SIMD backend yields a
//! packet whose ICV is valid for the corrupted ciphertext, and only the
//! receiver's inner checksum check after decryption stops it
//! (`EspError::ChecksumAfterDecrypt`); with verify `Full` on the SA the fault
//! is caught before the packet leaves, and every packet arrives intact. The
//! same holds for a fault on the receiver's backend.
//!
//! Run with `cargo test --release --features fault-injection --test faults_esp`.

#![cfg(feature = "fault-injection")]

mod esp_support;
mod faults_support;

use esp_support::{V4_DST, V4_SRC, keymat, tcp_v4};
use espgcm::esp::{EspError, Inbound, Outbound, SaConfig};
use espgcm::fault::{self, FaultPlan};
use espgcm::{Backend, VerifyPolicy, health};
use faults_support::{serial, simd_backends};

/// Only the last byte of a block: on the zero payloads used here, and on the
/// TCP header bytes it falls on (the window's low byte is zero), it adds
/// exactly 1 to the one's complement sum per corrupted block, so the TCP
/// checksum cannot miss it however many blocks are hit.
///
/// The packets are sized so that the ESP trailer's last byte (the next
/// header) is never the last byte of a block: a fault there would turn the
/// restored packet's protocol from TCP (6) into 7, a protocol without a
/// checksum, and transport mode would deliver it. That is a limit of what
/// inner checksums can catch (the next header is protected by the ICV
/// alone), and one more reason for verify mode.
const XOR: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01];
const PACKETS: usize = 300;

fn sa(backend: Backend, verify: VerifyPolicy) -> SaConfig {
    SaConfig { backend: Some(backend), verify, ..SaConfig::new(0x4242, &keymat(16)) }
}

/// A TCP packet of zeros whose ESP plaintext (20 bytes of TCP header, the
/// data, no padding, pad length, next header) is 4 more than a multiple of
/// 16 bytes long: its last block is partial, so `XOR` never reaches it.
fn packet(i: usize) -> Vec<u8> {
    let data_len = 16 * (60 + i % 25) + 14;
    assert_eq!((20 + data_len + 2) % 16, 4);
    tcp_v4(V4_SRC, V4_DST, &vec![0u8; data_len])
}

#[test]
fn a_fault_on_seal_with_verify_off_is_caught_only_by_the_receivers_checksum_check() {
    let _serial = serial();
    for backend in simd_backends() {
        fault::reset_health();
        let mut tx = Outbound::new(sa(backend, VerifyPolicy::Off)).unwrap();
        let mut rx = Inbound::new(sa(Backend::Scalar, VerifyPolicy::Off)).unwrap();
        fault::inject(backend, FaultPlan { one_in_blocks: 30, run_blocks: 1, xor: XOR });
        let (mut sealed, mut opened) = (Vec::new(), Vec::new());
        let (mut corrupted, mut checksum_errors) = (0, 0);
        for i in 0..PACKETS {
            let p = packet(i);
            let before = fault::injected();
            tx.seal(&p, &mut sealed).unwrap();
            let hit = fault::injected() > before;
            match rx.open(&sealed, &mut opened) {
                Ok(()) => {
                    assert!(!hit, "packet {i}: a corrupted packet was delivered");
                    assert_eq!(opened, p, "packet {i}");
                }
                Err(e) => {
                    assert!(hit, "packet {i}: an intact packet was refused: {e}");
                    corrupted += 1;
                    // Not Auth: the ICV was computed over the corrupted
                    // ciphertext, so it passes.
                    assert!(matches!(e, EspError::ChecksumAfterDecrypt { .. }), "packet {i}: {e}");
                    checksum_errors += 1;
                }
            }
        }
        fault::clear();
        eprintln!(
            "{}: {corrupted} of {PACKETS} packets corrupted on seal, all passed the ICV and were caught by the \
             inner checksum after decryption",
            backend.name()
        );
        // About 80 blocks a packet, one in 30 hit: nearly every packet.
        assert!(checksum_errors > PACKETS / 2, "{backend}: {checksum_errors} checksum errors");
        assert_eq!(rx.stats().checksum_after_decrypt, checksum_errors as u64);
        assert_eq!(health().faults, 0, "verify off reports nothing");
    }
}

#[test]
fn a_fault_on_seal_with_verify_full_never_reaches_the_receiver() {
    let _serial = serial();
    for backend in simd_backends() {
        fault::reset_health();
        let mut tx = Outbound::new(sa(backend, VerifyPolicy::Full)).unwrap();
        let mut rx = Inbound::new(sa(Backend::Scalar, VerifyPolicy::Off)).unwrap();
        fault::inject(backend, FaultPlan { one_in_blocks: 30, run_blocks: 1, xor: XOR });
        let (mut sealed, mut opened) = (Vec::new(), Vec::new());
        let mut detections = 0;
        for i in 0..PACKETS {
            let p = packet(i);
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
            let mut tx = Outbound::new(sa(Backend::Scalar, VerifyPolicy::Off)).unwrap();
            let mut rx = Inbound::new(sa(backend, verify)).unwrap();
            fault::inject(backend, FaultPlan { one_in_blocks: 1, run_blocks: 1, xor: XOR });
            let (mut sealed, mut opened) = (Vec::new(), Vec::new());
            let p = packet(3);
            tx.seal(&p, &mut sealed).unwrap();
            let result = rx.open(&sealed, &mut opened);
            fault::clear();
            if verify == VerifyPolicy::Off {
                assert!(matches!(result, Err(EspError::ChecksumAfterDecrypt { .. })), "{backend}: {result:?}");
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
