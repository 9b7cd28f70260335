//! Verify `Full` against injected keystream faults, on every SIMD backend
//! the CPU has: every message comes out identical to RustCrypto's aes-gcm,
//! every corrupted block is reported (with the exact corruption), the
//! backend is quarantined and keys move off it.
//!
//! Run with `cargo test --release --features fault-injection --test faults_full`.

mod faults_support;

use espgcm::fault::{self, FaultPlan};
use espgcm::{Backend, FaultKind, FaultReport, Gcm, VerifyPolicy, health};
use espgcm_testkit::{backends::simd as simd_backends, reference::IV_LENS, reference::reference, rng::Rng};
use faults_support::serial;

const XOR: [u8; 16] = [0, 0x40, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0, 0, 0x80];

/// The key moves to the next backend in preference order that is usable.
fn moved_to(from: Backend) -> Backend {
    let after = Backend::ALL.into_iter().skip_while(|b| *b != from).skip(1);
    after.into_iter().find(|b| Backend::available().contains(b)).unwrap_or(Backend::Scalar)
}

/// A report's blocks must differ by the injected pattern, cut to the bytes
/// the message had in that block.
fn check_report(r: &FaultReport, backend: Backend, msg_len: usize) {
    assert_eq!(r.backend, backend, "{r}");
    assert_eq!(r.kind, FaultKind::Keystream, "{r}");
    let covered = msg_len.saturating_sub(r.block_index as usize * 16).min(16);
    assert!(covered > 0, "block {} is past a {msg_len}-byte message", r.block_index);
    for (i, x) in XOR.iter().enumerate() {
        let want = if i < covered { *x } else { 0 };
        assert_eq!(r.expected[i] ^ r.actual[i], want, "{r}: byte {i}");
    }
}

#[test]
fn full_verify_gives_reference_output_reports_every_injected_block_and_quarantines() {
    let _serial = serial();
    for backend in simd_backends() {
        fault::reset_health();
        let events = espgcm::fault_events();
        fault::inject(backend, FaultPlan { one_in_blocks: 40, run_blocks: 3, xor: XOR });
        let mut rng = Rng(0xfa01_7000 + backend as u64);
        let (mut injected, mut detections, mut messages) = (0u64, 0u64, 0u64);
        for i in 0..3000 {
            let key = rng.bytes([16, 24, 32][i % 3]);
            let iv_len = IV_LENS[rng.below(IV_LENS.len())];
            let iv = rng.bytes(iv_len);
            let aad_len = rng.below(40);
            let aad = rng.bytes(aad_len);
            let len = rng.below(2048);
            let msg = if i % 2 == 0 { vec![0u8; len] } else { rng.bytes(len) };
            let mut gcm = Gcm::with_backend(&key, backend).unwrap();
            gcm.set_verify(VerifyPolicy::Full);
            // An unchecked key on the same backend, to see it move too.
            let bystander = Gcm::with_backend(&key, backend).unwrap();
            assert_eq!(gcm.backend(), backend, "message {i}: nothing is quarantined yet");

            let mut expected = msg.clone();
            let expected_tag = reference(&key, &iv, &aad, &mut expected, None).unwrap();
            let mut sealed = msg.clone();
            let tag = gcm.encrypt(&iv, &aad, &mut sealed).unwrap();
            assert_eq!(sealed, expected, "message {i} ({len} bytes): ciphertext");
            assert_eq!(tag, expected_tag, "message {i} ({len} bytes): tag");

            // Open is checked too (if encryption quarantined the backend,
            // this runs on the next one: still correct).
            let mut opened = expected.clone();
            gcm.decrypt(&iv, &aad, &mut opened, &expected_tag).unwrap();
            assert_eq!(opened, msg, "message {i} ({len} bytes): plaintext");
            messages += 2;

            let h = health();
            assert_eq!(h.faults, fault::injected(), "message {i}: every corrupted block is reported, nothing else");
            if h.faults == 0 {
                continue;
            }
            detections += 1;
            injected += h.faults;
            assert_eq!(h.quarantined, vec![backend], "message {i}");
            assert!(!h.is_healthy());
            assert!(!Backend::available().contains(&backend));
            assert_ne!(Backend::best(), backend);
            let next = moved_to(backend);
            assert_eq!(gcm.backend(), next, "message {i}: the key moved");
            assert_eq!(bystander.backend(), next, "message {i}: every key on the backend moved");
            let reports: Vec<FaultReport> = events.try_iter().collect();
            assert_eq!(reports.len() as u64, h.faults, "message {i}: one event per fault");
            assert_eq!(h.last_fault, reports.last().copied());
            for r in &reports {
                check_report(r, backend, len);
            }
            // With the injection still on, the moved keys are right, and
            // nothing more is injected: they no longer run on `backend`.
            let before = fault::injected();
            let mut again = msg.clone();
            assert_eq!(bystander.encrypt(&iv, &aad, &mut again).unwrap(), expected_tag);
            assert_eq!(again, expected);
            assert_eq!(fault::injected(), before, "message {i}");
            // Lift the quarantine to go on injecting.
            fault::reset_health();
        }
        fault::clear();
        eprintln!(
            "{}: {messages} checked calls, {detections} with faults, {injected} corrupted blocks all reported",
            backend.name()
        );
        // 3000 messages of 64 blocks on average, a run starting in about 1
        // block in 40: hundreds of detections are expected.
        assert!(detections > 100, "{backend}: only {detections} messages had an injected fault");
        assert!(injected > detections, "{backend}: runs of 3 blocks give several faults per message");
    }
}

#[test]
fn a_key_moves_to_the_next_backend_at_its_next_call_and_gets_the_right_answer() {
    let _serial = serial();
    for backend in simd_backends() {
        fault::reset_health();
        let key = [0x5au8; 32];
        let mut checked = Gcm::with_backend(&key, backend).unwrap();
        checked.set_verify(VerifyPolicy::Full);
        let unchecked = Gcm::new(&key).unwrap();
        let unchecked_backend = unchecked.backend();
        fault::inject(backend, FaultPlan { one_in_blocks: 1, run_blocks: 1, xor: [0xff; 16] });

        // Zeros in, as with `nc | xxd`: the first checked call catches it.
        let mut buf = [0u8; 256];
        let mut expected = buf;
        let expected_tag = reference(&key, &[1; 12], b"hdr", &mut expected, None).unwrap();
        let tag = checked.encrypt(&[1; 12], b"hdr", &mut buf).unwrap();
        assert_eq!((buf, tag), (expected, expected_tag));
        let h = health();
        assert_eq!(h.faults, 16, "all 16 blocks of the message were corrupted and reported");
        assert_eq!(fault::injected(), 16);
        assert_eq!(h.verified_messages, 1);
        assert_eq!(h.verified_blocks, 16);
        assert_eq!(h.quarantined, vec![backend]);
        let last = h.last_fault.unwrap();
        assert_eq!(last.block_index, 15);
        assert_eq!(last.actual, last.expected.map(|b| !b));
        // best() explains the quarantine when it is what moved best() (a
        // slower backend's quarantine does not change the choice).
        let rank = |b: Backend| Backend::ALL.iter().position(|x| *x == b);
        if rank(backend) < rank(Backend::best()) {
            assert!(Backend::best_reason().contains("quarantined"), "{}", Backend::best_reason());
        }

        // The key moved: the next call is not corrupted (and costs no check
        // if it moved to the scalar backend, which needs none).
        let next = moved_to(backend);
        assert_eq!(checked.backend(), next);
        let mut buf = [0u8; 256];
        assert_eq!(checked.encrypt(&[1; 12], b"hdr", &mut buf).unwrap(), expected_tag);
        assert_eq!(buf, expected);
        assert_eq!(fault::injected(), 16);
        // A key set up on `backend` through best() moved as well.
        if unchecked_backend == backend {
            assert_eq!(unchecked.backend(), next);
            let mut buf = [0u8; 256];
            assert_eq!(unchecked.encrypt(&[1; 12], b"hdr", &mut buf).unwrap(), expected_tag);
            assert_eq!(buf, expected);
        }
        // New keys do not get it.
        assert_ne!(Gcm::new(&key).unwrap().backend(), backend);
        fault::clear();
    }
}

#[test]
fn full_verify_checks_every_job_of_a_batch_and_corrects_each_one() {
    let _serial = serial();
    for backend in simd_backends() {
        fault::reset_health();
        let mut rng = Rng(0xba7c_f011 + backend as u64);
        let key = rng.bytes(16);
        let mut gcm = Gcm::with_backend(&key, backend).unwrap();
        gcm.set_verify(VerifyPolicy::Full);
        let msgs: Vec<(Vec<u8>, Vec<u8>)> = (0..32).map(|i| (rng.bytes(8), rng.bytes(16 + 37 * i))).collect();
        let blocks: u64 = msgs.iter().map(|(_, m)| m.len().div_ceil(16) as u64).sum();
        let batch = |faulty: bool| {
            let mut bufs: Vec<Vec<u8>> = msgs.iter().map(|(_, m)| m.clone()).collect();
            if faulty {
                // Every block of every job is corrupted on the SIMD side.
                fault::inject(backend, FaultPlan { one_in_blocks: 1, run_blocks: 1, xor: XOR });
            }
            let mut jobs: Vec<espgcm::Job<'_>> = bufs
                .iter_mut()
                .zip(&msgs)
                .enumerate()
                .map(|(i, (b, (aad, _)))| espgcm::Job::new([i as u8; 12], aad, b))
                .collect();
            gcm.encrypt_batch(&mut jobs);
            fault::clear();
            let tags: Vec<[u8; 16]> = jobs.iter().map(|j| j.tag).collect();
            drop(jobs);
            for (i, ((aad, m), got)) in msgs.iter().zip(&bufs).enumerate() {
                let mut expected = m.clone();
                let tag = reference(&key, &[i as u8; 12], aad, &mut expected, None).unwrap();
                assert_eq!(*got, expected, "{backend} job {i}, faulty {faulty}");
                assert_eq!(tags[i], tag, "{backend} job {i}, faulty {faulty}");
            }
        };
        batch(false);
        let h = health();
        assert_eq!((h.verified_messages, h.verified_blocks, h.faults), (32, blocks, 0), "every job checked: {h}");
        batch(true);
        let h = health();
        // The first job's faults are all reported and quarantine the
        // backend; the key's later jobs run on the next usable backend.
        assert!(h.faults >= msgs[0].1.len().div_ceil(16) as u64, "{h}");
        assert_eq!(h.faults, fault::injected(), "every corrupted block reported: {h}");
        assert_eq!(h.quarantined, vec![backend]);
    }
}
