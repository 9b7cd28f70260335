//! Differential tests: espgcm against RustCrypto's `aes-gcm`, on every backend
//! this CPU and build support.
//!
//! Every test runs on each supported backend of [`Backend::ALL`]; the others
//! are reported on stderr ("skipped <name>: <reason>"), never silently left
//! out. Inputs come from a seeded ChaCha generator, so a failure reproduces.

use aes::{Aes128, Aes192, Aes256};
use aes_gcm::AesGcm;
use aes_gcm::aead::array::{Array, ArraySize};
use aes_gcm::aead::consts::{
    U1, U2, U7, U8, U11, U12, U13, U15, U16, U17, U24, U31, U32, U33, U48, U60, U64, U100, U128, U256,
};
use aes_gcm::aead::{AeadInOut, KeyInit};
use espgcm::{Backend, Error, Gcm};
use espgcm_testkit::backends::supported as supported_backends;
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngAlgorithm, TestRng, TestRunner};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A deterministic ChaCha generator; `label` picks the stream so that the
/// tests do not all see the same bytes.
fn seeded_rng(label: &str) -> TestRng {
    let mut seed = [0x5eu8; 32];
    for (i, b) in label.bytes().enumerate() {
        seed[i % 32] = seed[i % 32].rotate_left(3) ^ b;
    }
    TestRng::from_seed(RngAlgorithm::ChaCha, &seed)
}

fn random_bytes(rng: &mut TestRng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill_bytes(&mut v);
    v
}

/// A value in `0..n`.
fn below(rng: &mut TestRng, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// aes-gcm with a given AES variant and nonce size: encrypt `buf` in place and
/// return the 16-byte tag.
fn reference_with<C: KeyInit + AeadInOut<TagSize = U16>>(
    key: &[u8],
    iv: &[u8],
    aad: &[u8],
    buf: &mut [u8],
) -> [u8; 16] {
    let cipher = C::new_from_slice(key).expect("reference key length");
    let nonce = Array::try_from(iv).expect("reference nonce length");
    let tag = cipher.encrypt_inout_detached(&nonce, aad, buf.into()).expect("reference encrypt");
    tag.into()
}

/// aes-gcm with the AES variant picked by the key length.
fn reference_with_nonce<N: ArraySize>(key: &[u8], iv: &[u8], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
    match key.len() {
        16 => reference_with::<AesGcm<Aes128, N>>(key, iv, aad, buf),
        24 => reference_with::<AesGcm<Aes192, N>>(key, iv, aad, buf),
        32 => reference_with::<AesGcm<Aes256, N>>(key, iv, aad, buf),
        n => panic!("no AES variant for a {n}-byte key"),
    }
}

/// IV lengths the reference can check (aes-gcm fixes the nonce size in a type
/// parameter, so each length needs its own instantiation).
const REFERENCE_IV_LENS: [usize; 20] = [1, 2, 7, 8, 11, 12, 13, 15, 16, 17, 24, 31, 32, 33, 48, 60, 64, 100, 128, 256];

/// RustCrypto aes-gcm: encrypt `buf` in place and return the tag.
fn reference_seal(key: &[u8], iv: &[u8], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
    match iv.len() {
        1 => reference_with_nonce::<U1>(key, iv, aad, buf),
        2 => reference_with_nonce::<U2>(key, iv, aad, buf),
        7 => reference_with_nonce::<U7>(key, iv, aad, buf),
        8 => reference_with_nonce::<U8>(key, iv, aad, buf),
        11 => reference_with_nonce::<U11>(key, iv, aad, buf),
        12 => reference_with_nonce::<U12>(key, iv, aad, buf),
        13 => reference_with_nonce::<U13>(key, iv, aad, buf),
        15 => reference_with_nonce::<U15>(key, iv, aad, buf),
        16 => reference_with_nonce::<U16>(key, iv, aad, buf),
        17 => reference_with_nonce::<U17>(key, iv, aad, buf),
        24 => reference_with_nonce::<U24>(key, iv, aad, buf),
        31 => reference_with_nonce::<U31>(key, iv, aad, buf),
        32 => reference_with_nonce::<U32>(key, iv, aad, buf),
        33 => reference_with_nonce::<U33>(key, iv, aad, buf),
        48 => reference_with_nonce::<U48>(key, iv, aad, buf),
        60 => reference_with_nonce::<U60>(key, iv, aad, buf),
        64 => reference_with_nonce::<U64>(key, iv, aad, buf),
        100 => reference_with_nonce::<U100>(key, iv, aad, buf),
        128 => reference_with_nonce::<U128>(key, iv, aad, buf),
        256 => reference_with_nonce::<U256>(key, iv, aad, buf),
        n => panic!("no reference instantiation for a {n}-byte IV; add it to reference_seal"),
    }
}

/// Seal with espgcm and with aes-gcm, require identical ciphertext and tag,
/// then require that espgcm's decrypt restores the plaintext.
fn check_against_reference(gcm: &Gcm, key: &[u8], iv: &[u8], aad: &[u8], msg: &[u8]) -> (Vec<u8>, [u8; 16]) {
    let ctx = || {
        format!(
            "backend {}, key {} B, iv {} B, aad {} B, msg {} B",
            gcm.backend(),
            key.len(),
            iv.len(),
            aad.len(),
            msg.len()
        )
    };
    let mut expected = msg.to_vec();
    let expected_tag = reference_seal(key, iv, aad, &mut expected);

    let mut ours = msg.to_vec();
    let tag = gcm.encrypt(iv, aad, &mut ours).unwrap_or_else(|e| panic!("encrypt failed ({e}): {}", ctx()));
    assert!(ours == expected, "ciphertext differs from aes-gcm: {}", ctx());
    assert!(tag == expected_tag, "tag differs from aes-gcm: {}", ctx());

    gcm.decrypt(iv, aad, &mut ours, &tag).unwrap_or_else(|e| panic!("decrypt of own output failed ({e}): {}", ctx()));
    assert!(ours == msg, "decrypt did not restore the plaintext: {}", ctx());
    (expected, tag)
}

/// Message lengths of the sweep: every length up to 600, and 128n - 1, 128n,
/// 128n + 1 up to 8192 (+1), so every batch boundary of every backend is hit.
fn sweep_lengths() -> Vec<usize> {
    let mut lens: Vec<usize> = (0..=600).collect();
    for n in 1..=64usize {
        lens.extend([n * 128 - 1, n * 128, n * 128 + 1]);
    }
    lens.sort_unstable();
    lens.dedup();
    lens
}

const SWEEP_AAD_LENS: [usize; 8] = [0, 1, 8, 12, 13, 16, 17, 100];
const KEY_LENS: [usize; 3] = [16, 24, 32];

/// The start of a 64-byte-aligned region inside `buf`, so that `start + off`
/// sits at an address that is `off` modulo 64 whatever the allocator did.
fn aligned_start(buf: &[u8]) -> usize {
    let start = buf.as_ptr().align_offset(64);
    assert!(start < 64, "cannot align a byte buffer");
    start
}

// ---------------------------------------------------------------------------
// Deterministic sweep
// ---------------------------------------------------------------------------

#[test]
fn sweep_matches_aes_gcm_for_every_length_to_600_and_around_multiples_of_128_to_8192() {
    let backends = supported_backends();
    let lens = sweep_lengths();
    let mut rng = seeded_rng("sweep");
    let mut checked = 0usize;
    for &backend in &backends {
        for key_len in KEY_LENS {
            for aad_len in SWEEP_AAD_LENS {
                // A fresh key per (key size, AAD length): key setup is checked
                // as well, and no single H has to carry the sweep.
                let key = random_bytes(&mut rng, key_len);
                let gcm = Gcm::with_backend(&key, backend).expect("supported backend");
                assert_eq!(gcm.backend(), backend);
                assert_eq!(gcm.key_len(), key_len);
                for &len in &lens {
                    let iv = random_bytes(&mut rng, 12);
                    let aad = random_bytes(&mut rng, aad_len);
                    let msg = random_bytes(&mut rng, len);
                    check_against_reference(&gcm, &key, &iv, &aad, &msg);
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, backends.len() * KEY_LENS.len() * SWEEP_AAD_LENS.len() * lens.len());
}

// ---------------------------------------------------------------------------
// Unaligned buffers
// ---------------------------------------------------------------------------

#[test]
fn unaligned_buffers_at_offsets_1_to_15_give_the_aligned_result_and_match_aes_gcm() {
    let mut rng = seeded_rng("unaligned");
    let lens = [0usize, 1, 15, 16, 17, 31, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1000, 1500, 4095, 4097];
    for backend in supported_backends() {
        for key_len in KEY_LENS {
            let key = random_bytes(&mut rng, key_len);
            let gcm = Gcm::with_backend(&key, backend).expect("supported backend");
            for len in lens {
                let iv = random_bytes(&mut rng, 12);
                let aad_len = below(&mut rng, 40);
                let aad = random_bytes(&mut rng, aad_len);
                let msg = random_bytes(&mut rng, len);

                // Aligned: the message starts on a 64-byte boundary.
                let mut store = vec![0u8; len + 64 + 16 + 16];
                let base = aligned_start(&store);
                store[base..base + len].copy_from_slice(&msg);
                let aligned_tag = gcm.encrypt(&iv, &aad, &mut store[base..base + len]).unwrap();
                let aligned_ct = store[base..base + len].to_vec();
                let (expected_ct, expected_tag) = check_against_reference(&gcm, &key, &iv, &aad, &msg);
                assert_eq!(aligned_ct, expected_ct, "aligned ciphertext, {backend}, len {len}");
                assert_eq!(aligned_tag, expected_tag, "aligned tag, {backend}, len {len}");

                for off in 1..=15usize {
                    let ctx = format!("{backend}, key {key_len} B, len {len}, offset {off}");
                    // Guard bytes around the message must survive every call.
                    let mut store = vec![0xA5u8; len + 64 + 16 + 16];
                    let start = aligned_start(&store) + off;
                    assert_eq!(store[start..].as_ptr() as usize % 64, off);
                    store[start..start + len].copy_from_slice(&msg);

                    let tag = gcm.encrypt(&iv, &aad, &mut store[start..start + len]).unwrap();
                    assert_eq!(&store[start..start + len], &expected_ct[..], "ciphertext, {ctx}");
                    assert_eq!(tag, expected_tag, "tag, {ctx}");
                    assert!(store[..start].iter().all(|&b| b == 0xA5), "bytes before the message changed, {ctx}");
                    assert!(store[start + len..].iter().all(|&b| b == 0xA5), "bytes after the message changed, {ctx}");

                    gcm.decrypt(&iv, &aad, &mut store[start..start + len], &tag).unwrap();
                    assert_eq!(&store[start..start + len], &msg[..], "decrypt, {ctx}");
                    assert!(store[..start].iter().all(|&b| b == 0xA5), "bytes before the message changed, {ctx}");
                    assert!(store[start + len..].iter().all(|&b| b == 0xA5), "bytes after the message changed, {ctx}");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// IVs that are not 96 bits
// ---------------------------------------------------------------------------

#[test]
fn ivs_of_other_lengths_than_12_bytes_match_aes_gcm() {
    let mut rng = seeded_rng("iv lengths");
    let msg_lens = [0usize, 1, 16, 60, 129, 300, 1025];
    for backend in supported_backends() {
        for key_len in KEY_LENS {
            let key = random_bytes(&mut rng, key_len);
            let gcm = Gcm::with_backend(&key, backend).expect("supported backend");
            for iv_len in REFERENCE_IV_LENS {
                for msg_len in msg_lens {
                    let iv = random_bytes(&mut rng, iv_len);
                    let aad_len = below(&mut rng, 50);
                    let aad = random_bytes(&mut rng, aad_len);
                    let msg = random_bytes(&mut rng, msg_len);
                    check_against_reference(&gcm, &key, &iv, &aad, &msg);
                }
            }
            // A 16-byte IV whose first 12 bytes equal a 12-byte IV must not
            // take the 96-bit shortcut: the two ciphertexts differ.
            let iv12 = random_bytes(&mut rng, 12);
            let mut iv16 = iv12.clone();
            iv16.extend_from_slice(&[0, 0, 0, 1]);
            let msg = random_bytes(&mut rng, 48);
            let (ct12, tag12) = check_against_reference(&gcm, &key, &iv12, b"", &msg);
            let (ct16, tag16) = check_against_reference(&gcm, &key, &iv16, b"", &msg);
            assert_ne!((ct12, tag12), (ct16, tag16), "{backend}: a 16-byte IV must be hashed into J0");
        }
    }
}

// ---------------------------------------------------------------------------
// Random inputs (proptest)
// ---------------------------------------------------------------------------

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(16usize), Just(24), Just(32)].prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n))
}

#[test]
fn random_inputs_at_random_offsets_match_aes_gcm_and_round_trip() {
    // Asked once, so that the skipped backends are reported once, not per case.
    let backends = supported_backends();
    // Failing seeds go to tests/differential.proptest-regressions.
    let config = ProptestConfig {
        source_file: Some(file!()),
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::with_cases(64)
    };
    let strategy = (
        key_strategy(),
        any::<[u8; 12]>(),
        proptest::collection::vec(any::<u8>(), 0..300),
        proptest::collection::vec(any::<u8>(), 0..8192),
        0usize..16,
    );
    let result = TestRunner::new(config).run(&strategy, |(key, iv, aad, msg, offset)| {
        let mut expected = msg.clone();
        let expected_tag = reference_seal(&key, &iv, &aad, &mut expected);
        for &backend in &backends {
            let gcm = Gcm::with_backend(&key, backend).expect("supported backend");
            let mut store = vec![0u8; msg.len() + 64 + 16];
            let start = aligned_start(&store) + offset;
            let buf = &mut store[start..start + msg.len()];
            buf.copy_from_slice(&msg);

            let tag = gcm.encrypt(&iv, &aad, buf).unwrap();
            prop_assert_eq!(&buf[..], &expected[..], "ciphertext on {}", backend);
            prop_assert_eq!(tag, expected_tag, "tag on {}", backend);
            prop_assert_eq!(gcm.decrypt(&iv, &aad, buf, &tag), Ok(()), "decrypt on {}", backend);
            prop_assert_eq!(&buf[..], &msg[..], "round trip on {}", backend);
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

// ---------------------------------------------------------------------------
// Tamper detection
// ---------------------------------------------------------------------------

/// Decrypt a copy of `ct` with the given inputs: must fail with `Auth` and
/// leave the whole buffer zeroed.
fn expect_auth_failure(gcm: &Gcm, iv: &[u8], aad: &[u8], ct: &[u8], tag: &[u8], what: &str) {
    let mut buf = ct.to_vec();
    let result = gcm.decrypt(iv, aad, &mut buf, tag);
    assert_eq!(result, Err(Error::Auth), "{what} on {} was accepted", gcm.backend());
    assert!(buf.iter().all(|&b| b == 0), "{what} on {}: buffer not zeroed after a failed decrypt", gcm.backend());
}

/// Bit positions to flip in a field of `len` bytes: every bit when the field
/// is short, else every bit of the first and last two bytes, of the bytes
/// around each 16-byte boundary in the first 256 bytes, and random others.
fn flip_positions(rng: &mut TestRng, len: usize) -> Vec<(usize, u8)> {
    if len <= 96 {
        return (0..len).flat_map(|i| (0..8).map(move |b| (i, 1u8 << b))).collect();
    }
    let mut bytes = vec![0, 1, len - 2, len - 1];
    bytes.extend((16..256.min(len)).step_by(16).flat_map(|i| [i - 1, i]));
    bytes.extend((0..32).map(|_| below(rng, len)));
    bytes.sort_unstable();
    bytes.dedup();
    bytes.into_iter().flat_map(|i| (0..8).map(move |b| (i, 1u8 << b))).collect()
}

#[test]
fn flipping_any_bit_of_ciphertext_tag_aad_or_iv_fails_with_auth_and_zeroes_the_buffer() {
    let mut rng = seeded_rng("tamper");
    for backend in supported_backends() {
        for key_len in KEY_LENS {
            let key = random_bytes(&mut rng, key_len);
            let gcm = Gcm::with_backend(&key, backend).expect("supported backend");
            // (message length, AAD length, IV length)
            for (msg_len, aad_len, iv_len) in
                [(67, 21, 12), (0, 13, 12), (1, 0, 12), (4100, 200, 12), (33, 5, 16), (16, 16, 1)]
            {
                let iv = random_bytes(&mut rng, iv_len);
                let aad = random_bytes(&mut rng, aad_len);
                let msg = random_bytes(&mut rng, msg_len);
                let (ct, tag) = check_against_reference(&gcm, &key, &iv, &aad, &msg);

                for (i, bit) in flip_positions(&mut rng, ct.len()) {
                    let mut bad = ct.clone();
                    bad[i] ^= bit;
                    expect_auth_failure(&gcm, &iv, &aad, &bad, &tag, &format!("ciphertext byte {i} bit {bit:#04x}"));
                }
                for (i, bit) in flip_positions(&mut rng, 16) {
                    let mut bad = tag;
                    bad[i] ^= bit;
                    expect_auth_failure(&gcm, &iv, &aad, &ct, &bad, &format!("tag byte {i} bit {bit:#04x}"));
                }
                for (i, bit) in flip_positions(&mut rng, aad.len()) {
                    let mut bad = aad.clone();
                    bad[i] ^= bit;
                    expect_auth_failure(&gcm, &iv, &bad, &ct, &tag, &format!("AAD byte {i} bit {bit:#04x}"));
                }
                for (i, bit) in flip_positions(&mut rng, iv.len()) {
                    let mut bad = iv.clone();
                    bad[i] ^= bit;
                    expect_auth_failure(&gcm, &bad, &aad, &ct, &tag, &format!("IV byte {i} bit {bit:#04x}"));
                }
                // Changing a length is tampering too.
                if !aad.is_empty() {
                    expect_auth_failure(&gcm, &iv, &aad[..aad.len() - 1], &ct, &tag, "AAD shortened by one byte");
                }
                if !ct.is_empty() {
                    expect_auth_failure(&gcm, &iv, &aad, &ct[..ct.len() - 1], &tag, "ciphertext shortened by one byte");
                }
                let mut longer = ct.clone();
                longer.push(0);
                expect_auth_failure(&gcm, &iv, &aad, &longer, &tag, "ciphertext lengthened by one byte");

                // The untouched inputs still verify after all that.
                let mut buf = ct.clone();
                assert_eq!(gcm.decrypt(&iv, &aad, &mut buf, &tag), Ok(()));
                assert_eq!(buf, msg);
            }
        }
    }
}

#[test]
fn truncated_tags_of_4_to_16_bytes_verify_and_fail_with_one_flipped_bit() {
    let mut rng = seeded_rng("truncated tags");
    for backend in supported_backends() {
        for key_len in KEY_LENS {
            let key = random_bytes(&mut rng, key_len);
            let gcm = Gcm::with_backend(&key, backend).expect("supported backend");
            for msg_len in [0usize, 5, 200] {
                let iv = random_bytes(&mut rng, 12);
                let aad = random_bytes(&mut rng, 9);
                let msg = random_bytes(&mut rng, msg_len);
                let (ct, tag) = check_against_reference(&gcm, &key, &iv, &aad, &msg);
                for tag_len in 4..=16usize {
                    let mut buf = ct.clone();
                    assert_eq!(
                        gcm.decrypt(&iv, &aad, &mut buf, &tag[..tag_len]),
                        Ok(()),
                        "{backend}: {tag_len}-byte prefix of the tag refused"
                    );
                    assert_eq!(buf, msg, "{backend}: {tag_len}-byte tag");

                    for (i, bit) in flip_positions(&mut rng, tag_len) {
                        let mut bad = tag;
                        bad[i] ^= bit;
                        let what = format!("{tag_len}-byte tag with byte {i} bit {bit:#04x} flipped");
                        expect_auth_failure(&gcm, &iv, &aad, &ct, &bad[..tag_len], &what);
                    }
                    // A correct truncated tag does not rescue a bad ciphertext.
                    if !ct.is_empty() {
                        let mut bad = ct.clone();
                        let i = below(&mut rng, bad.len());
                        bad[i] ^= 0x01;
                        expect_auth_failure(&gcm, &iv, &aad, &bad, &tag[..tag_len], "ciphertext with a truncated tag");
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Backends against each other
// ---------------------------------------------------------------------------

#[test]
fn every_supported_backend_gives_byte_identical_results_to_scalar() {
    let backends = supported_backends();
    let others: Vec<Backend> = backends.iter().copied().filter(|&b| b != Backend::Scalar).collect();
    if others.is_empty() {
        eprintln!("only the scalar backend is supported here: the cross-check compares scalar with fresh scalar keys");
    }
    let mut rng = seeded_rng("cross-check");
    for round in 0..200 {
        let key_len = KEY_LENS[below(&mut rng, 3)];
        let key = random_bytes(&mut rng, key_len);
        let iv_len = if round % 4 == 0 { 1 + below(&mut rng, 64) } else { 12 };
        let iv = random_bytes(&mut rng, iv_len);
        let aad_len = below(&mut rng, 300);
        let aad = random_bytes(&mut rng, aad_len);
        // Mostly short packets, some long ones.
        let msg_len = if round % 8 == 0 { below(&mut rng, 20_000) } else { below(&mut rng, 2_000) };
        let msg = random_bytes(&mut rng, msg_len);

        let scalar = Gcm::with_backend(&key, Backend::Scalar).unwrap();
        let mut scalar_ct = msg.clone();
        let scalar_tag = scalar.encrypt(&iv, &aad, &mut scalar_ct).unwrap();

        for &backend in &backends {
            let ctx = format!("{backend} vs scalar: key {key_len} B, iv {iv_len} B, aad {aad_len} B, msg {msg_len} B");
            // A fresh key and a clone of it must both agree with scalar.
            let gcm = Gcm::with_backend(&key, backend).unwrap();
            for gcm in [gcm.clone(), gcm] {
                let mut ct = msg.clone();
                let tag = gcm.encrypt(&iv, &aad, &mut ct).unwrap();
                assert!(ct == scalar_ct, "ciphertext differs: {ctx}");
                assert_eq!(tag, scalar_tag, "tag differs: {ctx}");

                // Each backend opens what scalar sealed, and vice versa.
                let mut pt = scalar_ct.clone();
                assert_eq!(gcm.decrypt(&iv, &aad, &mut pt, &scalar_tag), Ok(()), "{ctx}");
                assert!(pt == msg, "plaintext differs: {ctx}");
                let mut pt = ct.clone();
                assert_eq!(scalar.decrypt(&iv, &aad, &mut pt, &tag), Ok(()), "{ctx}");
                assert!(pt == msg, "plaintext differs: {ctx}");
            }
        }
    }
}
