//! `Gcm::encrypt_batch` and `Gcm::decrypt_batch` against single calls on
//! every backend this CPU runs: every batch size 1..=64, random mixes of
//! lengths 0..=2048 and AAD 0..=64, forged and shortened tags at random
//! positions (only those jobs fail, with their data zeroed). RustCrypto's
//! aes-gcm checks the single calls themselves on a sample, so that "equal to
//! single calls" rests on an outside oracle. The NIST CAVP files run through
//! the batch path in tests/known_answers.rs.

use aes_gcm::aead::array::Array;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use espgcm::{Error, Gcm, Job};
use espgcm_testkit::backends::supported as supported_backends;
use espgcm_testkit::rng::Rng;

/// One message of a test batch.
struct Message {
    iv: [u8; 12],
    aad: Vec<u8>,
    plaintext: Vec<u8>,
}

fn messages(rng: &mut Rng, count: usize, max_len: usize) -> Vec<Message> {
    (0..count)
        .map(|_| {
            // Mostly short (the data-plane case), sometimes long.
            let len = if rng.below(4) == 0 { rng.below(max_len + 1) } else { rng.below(129) };
            let aad_len = rng.below(65);
            let mut iv = [0u8; 12];
            iv.copy_from_slice(&rng.bytes(12));
            Message { iv, aad: rng.bytes(aad_len), plaintext: rng.bytes(len) }
        })
        .collect()
}

fn reference_seal(key: &[u8], m: &Message) -> (Vec<u8>, [u8; 16]) {
    let mut buf = m.plaintext.clone();
    let nonce = Array::from(m.iv);
    let tag = match key.len() {
        16 => Aes128Gcm::new_from_slice(key).unwrap().encrypt_inout_detached(&nonce, &m.aad, buf.as_mut_slice().into()),
        32 => Aes256Gcm::new_from_slice(key).unwrap().encrypt_inout_detached(&nonce, &m.aad, buf.as_mut_slice().into()),
        n => panic!("no reference for {n}-byte keys"),
    }
    .unwrap();
    (buf, tag.into())
}

#[test]
fn batches_of_every_size_equal_single_calls_byte_for_byte_and_tag_for_tag() {
    let mut rng = Rng(0xba7c_4000_0000_0001);
    for backend in supported_backends() {
        for key_len in [16, 24, 32] {
            let key = rng.bytes(key_len);
            let gcm = Gcm::with_backend(&key, backend).unwrap();
            for size in 1..=64 {
                let msgs = messages(&mut rng, size, 2048);
                let mut bufs: Vec<Vec<u8>> = msgs.iter().map(|m| m.plaintext.clone()).collect();
                let mut jobs: Vec<Job<'_>> =
                    bufs.iter_mut().zip(&msgs).map(|(b, m)| Job::new(m.iv, &m.aad, b)).collect();
                gcm.encrypt_batch(&mut jobs);
                let tags: Vec<[u8; 16]> = jobs.iter().map(|j| j.tag).collect();
                assert!(jobs.iter().all(|j| j.result.is_ok()), "{backend} size {size}");
                drop(jobs);
                for (i, m) in msgs.iter().enumerate() {
                    let mut single = m.plaintext.clone();
                    let tag = gcm.encrypt(&m.iv, &m.aad, &mut single).unwrap();
                    assert_eq!(bufs[i], single, "{backend} AES-{} batch of {size}, job {i}", key_len * 8);
                    assert_eq!(tags[i], tag, "{backend} AES-{} batch of {size}, job {i}", key_len * 8);
                    if key_len != 24 && i == size / 2 {
                        assert_eq!(reference_seal(&key, m), (single, tag), "{backend}: RustCrypto disagrees");
                    }
                }
                // And back, all tags intact.
                let mut jobs: Vec<Job<'_>> =
                    bufs.iter_mut().zip(&msgs).map(|(b, m)| Job::new(m.iv, &m.aad, b)).collect();
                for (job, tag) in jobs.iter_mut().zip(&tags) {
                    job.tag = *tag;
                }
                gcm.decrypt_batch(&mut jobs);
                assert!(jobs.iter().all(|j| j.result.is_ok()), "{backend} size {size}");
                drop(jobs);
                for (b, m) in bufs.iter().zip(&msgs) {
                    assert_eq!(*b, m.plaintext, "{backend} size {size}");
                }
            }
        }
    }
}

/// A data plane's bursts: many messages of one size, or of close sizes,
/// with ESP's 8-byte AAD, which go to the group kernel eight consecutive
/// jobs at a time without being sorted; and the same with something in the
/// way (a long job, a job past the limits, an AAD too long for a group, a
/// length too far from the rest) at every position of the first eight, so
/// that runs start and stop everywhere. Every job equals its single call.
#[test]
fn bursts_of_one_size_and_of_close_sizes_equal_single_calls() {
    let mut rng = Rng(0xba7c_4000_0000_0003);
    let aad = [0x5au8; 8];
    for backend in supported_backends() {
        for key_len in [16, 32] {
            let key = rng.bytes(key_len);
            let gcm = Gcm::with_backend(&key, backend).unwrap();
            for base in [1usize, 16, 44, 64, 100, 576, 768] {
                for count in [8usize, 9, 16, 32, 33] {
                    for odd_one in [None, Some(0), Some(3), Some(7)] {
                        for kind in 0..4 {
                            let mut lens: Vec<usize> = (0..count)
                                .map(|i| if i % 3 == 0 { base } else { base + rng.below(base / 8 + 1) })
                                .collect();
                            let mut aads: Vec<Vec<u8>> = vec![aad.to_vec(); count];
                            if let Some(at) = odd_one {
                                match kind {
                                    0 => lens[at] = 2048,
                                    1 => lens[at] = base * 3 + 40,
                                    2 => aads[at] = rng.bytes(40),
                                    _ => lens[at] = 0,
                                }
                            }
                            let ivs: Vec<[u8; 12]> = (0..count).map(|_| rng.bytes(12).try_into().unwrap()).collect();
                            let plain: Vec<Vec<u8>> = lens.iter().map(|&l| rng.bytes(l)).collect();
                            let mut bufs = plain.clone();
                            let mut jobs: Vec<Job<'_>> =
                                bufs.iter_mut().zip(&ivs).zip(&aads).map(|((b, iv), a)| Job::new(*iv, a, b)).collect();
                            gcm.encrypt_batch(&mut jobs);
                            let tags: Vec<[u8; 16]> = jobs.iter().map(|j| j.tag).collect();
                            assert!(jobs.iter().all(|j| j.result.is_ok()), "{backend}");
                            drop(jobs);
                            for i in 0..count {
                                let mut single = plain[i].clone();
                                let tag = gcm.encrypt(&ivs[i], &aads[i], &mut single).unwrap();
                                let what = format!(
                                    "{backend} AES-{} base {base} count {count} {odd_one:?}/{kind} job {i}",
                                    key_len * 8
                                );
                                assert_eq!(bufs[i], single, "{what}");
                                assert_eq!(tags[i], tag, "{what}");
                            }
                            let m = Message {
                                iv: ivs[count / 2],
                                aad: aads[count / 2].clone(),
                                plaintext: plain[count / 2].clone(),
                            };
                            assert_eq!(
                                reference_seal(&key, &m),
                                (bufs[count / 2].clone(), tags[count / 2]),
                                "{backend}: RustCrypto disagrees"
                            );
                        }
                    }
                }
            }
        }
    }
}

/// A burst's length blocks change from set to set (four jobs a set), within
/// one kernel call and from call to call: every tag must still be that of a
/// single call. (The 512-bit kernel hashes a set of one length block with
/// `L * H` kept from the sets before; kept for the wrong length block, these
/// tags would differ.)
#[test]
fn sets_whose_length_blocks_change_equal_single_calls() {
    let mut rng = Rng(0xba7c_4000_0000_0005);
    // (data length, AAD length) of each set of four jobs; 49..=64 bytes is
    // one block count, so the sets share a group.
    let patterns: [&[(usize, usize)]; 3] = [
        &[(64, 8), (64, 8), (60, 8), (60, 8), (64, 8), (49, 8), (49, 12), (64, 12)],
        &[(64, 8), (64, 12), (64, 8), (64, 12), (33, 8), (33, 8), (17, 8), (64, 8)],
        &[(16, 8), (16, 8), (15, 8), (16, 8), (1, 0), (1, 8), (16, 16), (16, 8)],
    ];
    for backend in supported_backends() {
        for key_len in [16, 32] {
            let key = rng.bytes(key_len);
            let gcm = Gcm::with_backend(&key, backend).unwrap();
            for sets in patterns {
                let shape: Vec<(usize, usize)> = sets.iter().flat_map(|&s| [s; 4]).collect();
                let ivs: Vec<[u8; 12]> = shape.iter().map(|_| rng.bytes(12).try_into().unwrap()).collect();
                let aads: Vec<Vec<u8>> = shape.iter().map(|&(_, a)| rng.bytes(a)).collect();
                let plain: Vec<Vec<u8>> = shape.iter().map(|&(l, _)| rng.bytes(l)).collect();
                let mut bufs = plain.clone();
                let mut jobs: Vec<Job<'_>> =
                    bufs.iter_mut().zip(&ivs).zip(&aads).map(|((b, iv), a)| Job::new(*iv, a, b)).collect();
                gcm.encrypt_batch(&mut jobs);
                let mut tags: Vec<[u8; 16]> = jobs.iter().map(|j| j.tag).collect();
                drop(jobs);
                for i in 0..shape.len() {
                    let mut single = plain[i].clone();
                    let tag = gcm.encrypt(&ivs[i], &aads[i], &mut single).unwrap();
                    let what = format!("{backend} AES-{} {:?} job {i}", key_len * 8, shape[i]);
                    assert_eq!((&bufs[i], tags[i]), (&single, tag), "{what}");
                }
                let m = Message { iv: ivs[9], aad: aads[9].clone(), plaintext: plain[9].clone() };
                assert_eq!(reference_seal(&key, &m), (bufs[9].clone(), tags[9]), "{backend}: RustCrypto disagrees");
                // Opened as one batch, with one forged tag in a set of one
                // length block: every other job opens.
                tags[21][3] ^= 0x10;
                let mut jobs: Vec<Job<'_>> = bufs
                    .iter_mut()
                    .zip(&ivs)
                    .zip(&aads)
                    .zip(&tags)
                    .map(|(((b, iv), a), t)| Job { tag: *t, ..Job::new(*iv, a, b) })
                    .collect();
                gcm.decrypt_batch(&mut jobs);
                let results: Vec<Result<(), Error>> = jobs.iter().map(|j| j.result).collect();
                drop(jobs);
                for i in 0..shape.len() {
                    let what = format!("{backend} AES-{} {:?} job {i}", key_len * 8, shape[i]);
                    if i == 21 {
                        assert_eq!((results[i], bufs[i].clone()), (Err(Error::Auth), vec![0; shape[i].0]), "{what}");
                    } else {
                        assert_eq!((results[i], &bufs[i]), (Ok(()), &plain[i]), "{what}");
                    }
                }
            }
        }
    }
}

#[test]
fn forged_tags_fail_only_their_own_jobs_and_zero_only_their_data() {
    let mut rng = Rng(0xf02e_d000_0000_0002);
    for backend in supported_backends() {
        let key = rng.bytes(16);
        let gcm = Gcm::with_backend(&key, backend).unwrap();
        for round in 0..40 {
            let size = 1 + rng.below(64);
            let msgs = messages(&mut rng, size, 1500);
            let mut bufs: Vec<Vec<u8>> = msgs.iter().map(|m| m.plaintext.clone()).collect();
            let mut tags = Vec::new();
            for (b, m) in bufs.iter_mut().zip(&msgs) {
                tags.push(gcm.encrypt(&m.iv, &m.aad, b).unwrap());
            }
            let ciphertexts = bufs.clone();
            // Each job: intact, forged (one bit of the tag), truncated to a
            // random legal length (still valid), or given a bad tag length.
            let kinds: Vec<usize> = (0..size).map(|_| rng.below(4)).collect();
            let mut jobs: Vec<Job<'_>> = bufs.iter_mut().zip(&msgs).map(|(b, m)| Job::new(m.iv, &m.aad, b)).collect();
            for (i, job) in jobs.iter_mut().enumerate() {
                job.tag = tags[i];
                match kinds[i] {
                    1 => {
                        job.tag_len = 4 + rng.below(13);
                        let bit = rng.below(job.tag_len * 8);
                        job.tag[bit / 8] ^= 1 << (bit % 8);
                    }
                    2 => job.tag_len = 4 + rng.below(13),
                    3 => job.tag_len = [0, 1, 3, 17, 100][rng.below(5)],
                    _ => {}
                }
            }
            gcm.decrypt_batch(&mut jobs);
            let results: Vec<Result<(), Error>> = jobs.iter().map(|j| j.result).collect();
            drop(jobs);
            for i in 0..size {
                let what = format!("{backend} round {round}, job {i} of {size}, kind {}", kinds[i]);
                match kinds[i] {
                    1 => {
                        assert_eq!(results[i], Err(Error::Auth), "{what}");
                        assert!(bufs[i].iter().all(|&b| b == 0), "{what}: forged job not zeroed");
                    }
                    3 => {
                        assert_eq!(results[i], Err(Error::TagLength), "{what}");
                        assert_eq!(bufs[i], ciphertexts[i], "{what}: refused before decrypting");
                    }
                    _ => {
                        assert_eq!(results[i], Ok(()), "{what}");
                        assert_eq!(bufs[i], msgs[i].plaintext, "{what}");
                    }
                }
            }
        }
    }
}

#[test]
fn empty_batches_and_empty_messages_work() {
    for backend in supported_backends() {
        let zero = Gcm::with_backend(&[0; 16], backend).unwrap();
        zero.encrypt_batch(&mut []);
        zero.decrypt_batch(&mut []);
        // The GCM specification's test case 1: key, IV and message empty or zero.
        let mut empty: [u8; 0] = [];
        let mut jobs = [Job::new([0; 12], b"", &mut empty)];
        zero.encrypt_batch(&mut jobs);
        assert_eq!(jobs[0].tag, hex_literal::hex!("58e2fccefa7e3061367f1d57a4e7455a"), "{backend}");
        zero.decrypt_batch(&mut jobs);
        assert_eq!(jobs[0].result, Ok(()));
    }
}
