//! With verify `Off`, an injected keystream fault goes through unnoticed,
//! exactly like the 2015 Xen/AES-NI bug: the ciphertext is wrong, its tag is
//! valid for it, and an independent receiver (RustCrypto aes-gcm) accepts it
//! and releases the corrupted plaintext. This proves the injection is real,
//! which is what makes the `Full` and `Sample` tests mean something.
//!
//! Run with `cargo test --release --features fault-injection --test faults_off`.

mod faults_support;

use espgcm::fault::{self, FaultPlan};
use espgcm::{Backend, Gcm, health};
use espgcm_testkit::{backends::simd as simd_backends, reference::IV_LENS, reference::reference, rng::Rng};
use faults_support::serial;

const XOR: [u8; 16] = *b"\x01\x00\x00\x00XEN\x00\x00\x00\x00\x00\x00\x00\x00\x80";

/// `a ^ b`, as a bit mask of the blocks that differ.
fn differing_blocks(a: &[u8], b: &[u8]) -> Vec<usize> {
    a.chunks(16).zip(b.chunks(16)).enumerate().filter(|(_, (x, y))| x != y).map(|(i, _)| i).collect()
}

#[test]
fn with_verify_off_corrupted_ciphertext_is_produced_and_the_receiver_accepts_it() {
    let _serial = serial();
    for backend in simd_backends() {
        fault::reset_health();
        fault::inject(backend, FaultPlan { one_in_blocks: 8, run_blocks: 2, xor: XOR });
        let mut rng = Rng(0x0ff0 + backend as u64);
        let (mut corrupted_messages, mut accepted) = (0, 0);
        for i in 0..500 {
            let key = rng.bytes([16, 24, 32][i % 3]);
            let iv_len = IV_LENS[rng.below(IV_LENS.len())];
            let iv = rng.bytes(iv_len);
            let aad = rng.bytes(i % 24);
            let len = 1 + rng.below(1500);
            let msg = vec![0u8; len];
            let gcm = Gcm::with_backend(&key, backend).unwrap();

            let before = fault::injected();
            let mut sealed = msg.clone();
            let tag = gcm.encrypt(&iv, &aad, &mut sealed).unwrap();
            let corrupted = fault::injected() - before;
            let mut expected = msg.clone();
            let expected_tag = reference(&key, &iv, &aad, &mut expected, None).unwrap();
            let wrong = differing_blocks(&sealed, &expected);
            assert_eq!(wrong.len() as u64, corrupted, "message {i}: injected() counts the corrupted blocks");
            if corrupted == 0 {
                assert_eq!((&sealed, tag), (&expected, expected_tag), "message {i}");
                continue;
            }
            corrupted_messages += 1;
            assert_ne!(tag, expected_tag, "message {i}: the tag follows the wrong ciphertext");
            // The receiver's integrity check passes...
            let mut received = sealed.clone();
            assert_eq!(reference(&key, &iv, &aad, &mut received, Some(&tag)), Some(tag), "message {i}");
            accepted += 1;
            // ... and hands over zeros XOR the pattern: the `xxd` view of the
            // 2015 incident.
            for b in wrong {
                let got = &received[b * 16..(b * 16 + 16).min(len)];
                assert_eq!(got, &XOR[..got.len()], "message {i}, block {b}");
            }
        }
        fault::clear();
        eprintln!("{}: {accepted} corrupted messages of 500 accepted by the receiver", backend.name());
        assert!(corrupted_messages > 100, "{backend}: only {corrupted_messages} messages were corrupted");
        let h = health();
        assert_eq!((h.faults, h.verified_blocks), (0, 0), "verify off checks nothing");
        assert!(h.quarantined.is_empty());
    }
}

#[test]
fn with_verify_off_decryption_releases_wrong_plaintext_under_a_valid_tag() {
    let _serial = serial();
    for backend in simd_backends() {
        fault::reset_health();
        let key = [0x33u8; 16];
        let gcm = Gcm::with_backend(&key, backend).unwrap();
        let msg = b"an intact message of forty-two bytes......".to_vec();
        let mut ct = msg.clone();
        let tag = reference(&key, &[9; 12], b"", &mut ct, None).unwrap();
        fault::inject(backend, FaultPlan { one_in_blocks: 1, run_blocks: 1, xor: XOR });
        let mut opened = ct.clone();
        assert_eq!(gcm.decrypt(&[9; 12], b"", &mut opened, &tag), Ok(()));
        assert_eq!(fault::injected(), 3);
        let expected: Vec<u8> = msg.iter().enumerate().map(|(i, m)| m ^ XOR[i % 16]).collect();
        assert_eq!(opened, expected);
        // After clear() the same key is right again.
        fault::clear();
        let mut opened = ct.clone();
        gcm.decrypt(&[9; 12], b"", &mut opened, &tag).unwrap();
        assert_eq!(opened, msg);
    }
}

#[test]
fn a_plan_for_one_backend_leaves_the_others_alone() {
    let _serial = serial();
    for backend in simd_backends() {
        fault::inject(backend, FaultPlan { one_in_blocks: 1, run_blocks: 1, xor: XOR });
        let key = [0x44u8; 24];
        let scalar = Gcm::with_backend(&key, Backend::Scalar).unwrap();
        let mut buf = vec![0u8; 1000];
        let mut expected = buf.clone();
        let tag = reference(&key, &[2; 12], b"a", &mut expected, None).unwrap();
        assert_eq!(scalar.encrypt(&[2; 12], b"a", &mut buf).unwrap(), tag);
        assert_eq!(buf, expected);
        assert_eq!(fault::injected(), 0);
        fault::clear();
    }
}

#[test]
fn faults_reach_batches_too_with_their_tags_valid_for_the_corruption() {
    let _serial = serial();
    for backend in simd_backends() {
        fault::reset_health();
        let key = [0x3cu8; 16];
        let gcm = Gcm::with_backend(&key, backend).unwrap();
        // Sixteen 64-byte messages: on vaes512 they run four at a time in
        // its batch kernel, elsewhere one by one; a fault reaches either.
        let msgs: Vec<Vec<u8>> = (0..16).map(|i| vec![i as u8; 64]).collect();
        let mut bufs = msgs.clone();
        fault::inject(backend, FaultPlan { one_in_blocks: 1, run_blocks: 1, xor: XOR });
        let tags: Vec<[u8; 16]> = {
            let mut jobs: Vec<espgcm::Job<'_>> =
                bufs.iter_mut().enumerate().map(|(i, b)| espgcm::Job::new([i as u8; 12], b"esp!", b)).collect();
            gcm.encrypt_batch(&mut jobs);
            jobs.iter().map(|j| j.tag).collect()
        };
        fault::clear();
        assert_eq!(fault::injected(), 16 * 4, "{backend}: every block of every job");
        for (i, (sealed, msg)) in bufs.iter().zip(&msgs).enumerate() {
            let mut expected = msg.clone();
            reference(&key, &[i as u8; 12], b"esp!", &mut expected, None).unwrap();
            assert_ne!(*sealed, expected, "{backend} job {i}: the fault changed the ciphertext");
            let mut received = sealed.clone();
            assert!(
                reference(&key, &[i as u8; 12], b"esp!", &mut received, Some(&tags[i])).is_some(),
                "{backend} job {i}"
            );
            assert_ne!(received, *msg, "{backend} job {i}: the receiver got corrupted plaintext");
        }
        assert_eq!(health().faults, 0);
    }
}
