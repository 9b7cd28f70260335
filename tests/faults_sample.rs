//! Verify `Sample { one_in }` against injected faults: about one message in
//! `one_in` is checked, so faults are caught at about that rate; a caught
//! message comes out right, a missed one comes out wrong (the injection
//! corrupts every block here).
//!
//! Run with `cargo test --release --features fault-injection --test faults_sample`.

mod faults_support;

use espgcm::fault::{self, FaultPlan};
use espgcm::{Gcm, VerifyPolicy, health};
use espgcm_testkit::{backends::simd as simd_backends, reference::reference};
use faults_support::serial;

#[test]
fn sampled_verify_catches_faults_at_about_one_message_in_one_in() {
    let _serial = serial();
    const MESSAGES: u64 = 20_000;
    const ONE_IN: u32 = 50;
    for backend in simd_backends() {
        fault::reset_health();
        let key = [0x21u8; 16];
        let mut gcm = Gcm::with_backend(&key, backend).unwrap();
        gcm.set_verify(VerifyPolicy::Sample { one_in: ONE_IN });
        fault::inject(backend, FaultPlan { one_in_blocks: 1, run_blocks: 1, xor: [0x5a; 16] });
        let mut expected = [0u8; 48];
        let expected_tag = reference(&key, &[3; 12], b"", &mut expected, None).unwrap();
        let mut caught = 0u64;
        for i in 0..MESSAGES {
            let mut buf = [0u8; 48];
            let tag = gcm.encrypt(&[3; 12], b"", &mut buf).unwrap();
            if health().faults > 0 {
                // Checked: the right answer, three blocks reported.
                assert_eq!((buf, tag), (expected, expected_tag), "message {i}");
                assert_eq!(health().faults, 3);
                assert_eq!(health().verified_messages, 1, "message {i}");
                caught += 1;
                fault::reset_health();
            } else {
                // Not checked: the corruption went through.
                assert_ne!(buf, expected, "message {i}");
                assert_eq!(health().verified_messages, 0, "message {i}");
                assert_eq!(gcm.backend(), backend);
            }
        }
        fault::clear();
        // Binomial(20000, 1/50): mean 400, standard deviation 19.8. The
        // bounds are 6 standard deviations out (a false failure about once
        // in 10^9 runs).
        eprintln!("{}: {caught} of {MESSAGES} messages checked at 1 in {ONE_IN}", backend.name());
        assert!((281..=519).contains(&caught), "{backend}: {caught} of {MESSAGES} caught at 1 in {ONE_IN}");
    }
}

#[test]
fn sample_of_one_checks_every_message() {
    let _serial = serial();
    for backend in simd_backends() {
        fault::reset_health();
        let mut gcm = Gcm::with_backend(&[7u8; 32], backend).unwrap();
        gcm.set_verify(VerifyPolicy::Sample { one_in: 1 });
        for len in 0..100usize {
            let mut buf = vec![1u8; len];
            let tag = gcm.encrypt(&[1; 12], b"x", &mut buf).unwrap();
            gcm.decrypt(&[1; 12], b"x", &mut buf, &tag).unwrap();
        }
        let h = health();
        assert_eq!(h.verified_messages, 200);
        // Blocks of lengths 0..100, twice (seal and open).
        let blocks: u64 = (0..100u64).map(|l| l.div_ceil(16)).sum();
        assert_eq!(h.verified_blocks, 2 * blocks);
        assert!(h.is_healthy(), "{h}");
    }
}

#[test]
fn sampled_verify_checks_the_jobs_it_picks_in_batches_and_only_those() {
    let _serial = serial();
    // Bursts of eight 64-byte jobs go to the group kernel directly on
    // vaes512; a job the policy picks runs alone, checked, and the rest of
    // its eight still run together (or alone, when more than four are
    // picked, which at one in three happens in about one run in eleven).
    const BATCHES: usize = 50;
    const JOBS: usize = 64;
    const ONE_IN: u32 = 3;
    for backend in simd_backends() {
        fault::reset_health();
        let key = [0x44u8; 16];
        let mut gcm = Gcm::with_backend(&key, backend).unwrap();
        gcm.set_verify(VerifyPolicy::Sample { one_in: ONE_IN });
        fault::inject(backend, FaultPlan { one_in_blocks: 1, run_blocks: 1, xor: [0x5a; 16] });
        let mut checked = 0u64;
        for b in 0..BATCHES {
            // A caught fault quarantines the backend for the key's next
            // calls; a batch keeps the engine it started with.
            fault::reset_health();
            assert_eq!(gcm.backend(), backend);
            let checked_before = checked;
            let msgs: Vec<Vec<u8>> = (0..JOBS).map(|i| vec![(b * JOBS + i) as u8; 64]).collect();
            let iv = |i: usize| {
                let mut iv = [0u8; 12];
                iv[..8].copy_from_slice(&((b * JOBS + i) as u64).to_be_bytes());
                iv
            };
            let mut bufs = msgs.clone();
            let tags: Vec<[u8; 16]> = {
                let mut jobs: Vec<espgcm::Job<'_>> =
                    bufs.iter_mut().enumerate().map(|(i, buf)| espgcm::Job::new(iv(i), b"spi+seq!", buf)).collect();
                gcm.encrypt_batch(&mut jobs);
                assert!(jobs.iter().all(|j| j.result.is_ok()));
                jobs.iter().map(|j| j.tag).collect()
            };
            for (i, ((sealed, msg), tag)) in bufs.iter().zip(&msgs).zip(&tags).enumerate() {
                let mut expected = msg.clone();
                let expected_tag = reference(&key, &iv(i), b"spi+seq!", &mut expected, None).unwrap();
                if *sealed == expected {
                    // Checked: the scalar result, tag included.
                    assert_eq!(*tag, expected_tag, "{backend} batch {b} job {i}");
                    checked += 1;
                } else {
                    // Not checked: the corruption went through, with a tag
                    // that is valid for it (the 2015 failure, which only
                    // checking catches).
                    let mut received = sealed.clone();
                    assert!(
                        reference(&key, &iv(i), b"spi+seq!", &mut received, Some(tag)).is_some(),
                        "{backend} batch {b} job {i}"
                    );
                }
            }
            let (h, in_batch) = (health(), checked - checked_before);
            assert_eq!(
                h.verified_messages, in_batch,
                "{backend} batch {b}: the checked jobs came out right, only they"
            );
            assert_eq!(h.faults, 4 * in_batch, "{backend} batch {b}: four corrupted blocks reported per checked job");
        }
        fault::clear();
        // Binomial(3200, 1/3): mean 1066.7, standard deviation 26.7; the
        // bounds are 6 standard deviations out.
        let total = (BATCHES * JOBS) as u64;
        eprintln!("{}: {checked} of {total} jobs checked at 1 in {ONE_IN}", backend.name());
        assert!((907..=1227).contains(&checked), "{backend}: {checked} of {total} checked at 1 in {ONE_IN}");
        fault::reset_health();
    }
}
