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
