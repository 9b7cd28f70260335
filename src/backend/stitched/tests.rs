//! The skeleton on every SIMD backend this CPU runs, against the scalar
//! backend: every length and shape boundary, counter wraps, GHASH, and the
//! out-of-place seal with its plaintext sum.

use crate::backend::{Backend, Engine, KeyBytes};

const KEYS: [&[u8]; 3] = [&[0x11; 16], &[0x22; 24], &[0x33; 32]];

/// Every supported SIMD backend's engine for `key`, with the scalar one;
/// unsupported backends are reported as skipped.
fn engines(key: &[u8]) -> Vec<(Backend, Engine, Engine)> {
    let kb = KeyBytes::new(key).unwrap();
    Backend::ALL
        .into_iter()
        .filter(|b| *b != Backend::Scalar)
        .filter_map(|b| match b.unsupported_reason() {
            Some(why) => {
                eprintln!("skipped {b}: {why}");
                None
            }
            None => Some((b, Engine::new(b, kb).unwrap(), Engine::scalar(kb))),
        })
        .collect()
}

fn message(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i.wrapping_mul(37) ^ (i >> 8)) as u8).collect()
}

/// Seal and open `len` bytes on both; equal ciphertext and tags, and the
/// message back.
fn check(b: Backend, fast: &Engine, reference: &Engine, j0: u128, aad: &[u8], len: usize) {
    let msg = message(len);
    let (mut x, mut y) = (msg.clone(), msg.clone());
    let tx = fast.seal(j0, aad, &mut x);
    let ty = reference.seal(j0, aad, &mut y);
    assert_eq!(x, y, "{b}: ciphertext, length {len}, aad {}", aad.len());
    assert_eq!(tx, ty, "{b}: tag, length {len}, aad {}", aad.len());
    assert_eq!(fast.open(j0, aad, &mut x), tx, "{b}: open tag, length {len}, aad {}", aad.len());
    assert_eq!(x, msg, "{b}: open plaintext, length {len}");
}

#[test]
fn every_length_to_600_every_key_size_and_three_aad_lengths_match_scalar() {
    let aad = message(40);
    for key in KEYS {
        for (b, fast, reference) in engines(key) {
            let j0 = u128::from_be_bytes(*b"0123456789ab\0\0\0\x01");
            for len in 0..=600 {
                for aad_len in [0, 8, 40] {
                    check(b, &fast, &reference, j0, &aad[..aad_len], len);
                }
            }
        }
    }
}

#[test]
fn aad_lengths_and_batch_boundaries_match_scalar() {
    let aad = message(300);
    let j0 = 0x0102_0304_0506_0708_090a_0b0c_0000_0001;
    let mut lens = vec![];
    for blocks in [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 47, 48, 49, 64, 89, 128, 1024] {
        lens.extend([16 * blocks - 1, 16 * blocks, 16 * blocks + 1]);
    }
    for (b, fast, reference) in engines(&[0x42; 16]) {
        for aad_len in [0, 1, 4, 8, 12, 15, 16, 17, 31, 32, 33, 128, 129, 300] {
            for &len in &lens {
                check(b, &fast, &reference, j0, &aad[..aad_len], len);
            }
        }
    }
}

#[test]
fn counter_wraps_modulo_2_pow_32_like_scalar() {
    for key in KEYS {
        for (b, fast, reference) in engines(key) {
            let mut j0 = [0xa5u8; 16];
            j0[12..].copy_from_slice(&0xFFFF_FFF3u32.to_be_bytes());
            let j0 = u128::from_be_bytes(j0);
            for len in [0usize, 1, 15, 16, 17, 127, 128, 129, 255, 256, 257, 511, 512, 600, 1000, 4096] {
                check(b, &fast, &reference, j0, b"aad", len);
            }
            // J0 itself at the wrap point.
            let j0 = u128::from_be_bytes([0x77; 16]) | 0xFFFF_FFFF;
            for len in [0usize, 16, 33, 144, 255, 600] {
                check(b, &fast, &reference, j0, b"", len);
            }
        }
    }
}

#[test]
fn every_counter_start_byte_and_batch_count_matches_scalar() {
    // The bulk loops add to the counter's last byte while it does not wrap
    // inside a batch: every start byte meets every wrap position.
    let msg = message(2100);
    for (b, fast, reference) in engines(&[0x55; 16]) {
        for low in 0..=255u128 {
            let j0 = 0x0a0b_0c0d_0e0f_1011_1213_1415_1617_0000u128 | (0xFE << 8) | low;
            for len in [128, 256, 384, 512, 768, 1024, 1604, 2100] {
                let (mut x, mut y) = (msg[..len].to_vec(), msg[..len].to_vec());
                let tx = fast.seal(j0, b"", &mut x);
                let ty = reference.seal(j0, b"", &mut y);
                assert_eq!(x, y, "{b}: ciphertext, length {len}, counter low byte {low:#x}");
                assert_eq!(tx, ty, "{b}: tag, length {len}, counter low byte {low:#x}");
                assert_eq!(fast.open(j0, b"", &mut x), tx, "{b}");
                assert_eq!(x, &msg[..len], "{b}");
            }
        }
    }
}

#[test]
fn ghash_matches_scalar_for_every_length_to_300() {
    let data = message(300);
    for key in KEYS {
        for (b, fast, reference) in engines(key) {
            for len in 0..=data.len() {
                let (mut x, mut y) = (0x0123_4567_89ab_cdef_u128 << 40, 0x0123_4567_89ab_cdef_u128 << 40);
                fast.ghash(&mut x, &data[..len]);
                reference.ghash(&mut y, &data[..len]);
                assert_eq!(x, y, "{b}: length {len}");
            }
            let (mut x, mut y) = (5u128, 5u128);
            fast.ghash_block(&mut x, u128::MAX - 3);
            reference.ghash_block(&mut y, u128::MAX - 3);
            assert_eq!(x, y, "{b}");
        }
    }
}

#[test]
fn seal_append_matches_seal_and_sums_the_first_part() {
    let j0 = u128::from_be_bytes([0x0f; 16]);
    let backing = message(2000);
    let extras: [&[u8]; 4] = [&[], &[1, 2, 3, 4, 5, 6, 7], &backing[..130], &backing[..300]];
    for (b, fast, _) in engines(&[0x99; 32]) {
        for len in [0usize, 1, 20, 64, 127, 128, 129, 255, 256, 257, 511, 512, 576, 1000, 1420, 1439] {
            for offset in [0usize, 1, 3] {
                for extra in extras {
                    let src = &backing[offset..offset + len];
                    let mut expect: Vec<u8> = [src, extra].concat();
                    let tag = fast.seal(j0, b"12345678", &mut expect);
                    // Unaligned output start too: existing bytes before it.
                    let mut out = vec![0xEE; offset];
                    let (got_tag, sum) = fast.seal_append(j0, b"12345678", [src, extra], &mut out);
                    assert_eq!(&out[..offset], &vec![0xEE; offset][..], "{b}: prefix kept");
                    assert_eq!(&out[offset..], &expect[..], "{b}: ciphertext, length {len}+{}", extra.len());
                    assert_eq!(got_tag, tag, "{b}: tag, length {len}+{}", extra.len());
                    assert_eq!(
                        crate::ones_complement::fold(sum),
                        crate::ones_complement::fold(crate::ones_complement::sum_native(src)),
                        "{b}: sum, length {len}"
                    );
                }
            }
        }
    }
}

/// A xorshift64 generator from `seed` (not zero): test inputs, not secrets.
fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// Messages `plain` (with `aads` and `j0s`) through `fast`'s group kernel,
/// sealing and opening, against `reference`'s single calls: the same data
/// and tags, and no tag written past the group's.
fn assert_group_equals_single(
    b: Backend,
    fast: &Engine,
    reference: &Engine,
    plain: &[Vec<u8>],
    aads: &[Vec<u8>],
    j0s: &[u128],
) {
    use crate::backend::group::{GROUP, Message};
    let count = plain.len();
    let lens: Vec<usize> = plain.iter().map(Vec::len).collect();
    for decrypt in [false, true] {
        let mut data = plain.to_vec();
        let mut tags = [[0u8; 16]; GROUP];
        {
            let mut msgs: Vec<Message<'_>> =
                data.iter_mut().zip(aads).zip(j0s).map(|((d, a), &j0)| Message { j0, aad: a, data: d }).collect();
            let mut lengths = crate::backend::group::LengthHash::new();
            let ran = if decrypt {
                fast.crypt_group::<true>(&mut msgs, &mut tags, &mut lengths)
            } else {
                fast.crypt_group::<false>(&mut msgs, &mut tags, &mut lengths)
            };
            assert!(ran, "{b} has a group kernel");
        }
        for i in 0..count {
            let mut expect = plain[i].clone();
            let tag = if decrypt {
                reference.open(j0s[i], &aads[i], &mut expect)
            } else {
                reference.seal(j0s[i], &aads[i], &mut expect)
            };
            let what = format!("{b}: message {i} of {count}, lengths {lens:?}, decrypt {decrypt}");
            assert_eq!(data[i], expect, "{what}");
            assert_eq!(tags[i], tag, "{what}");
        }
        assert!(tags[count..].iter().all(|t| *t == [0; 16]), "{b}: a tag past {count} was written");
    }
}

#[test]
fn groups_equal_single_calls_for_mixed_lengths_and_aad_on_every_backend() {
    use crate::backend::group::{GROUP, MAX_AAD, MAX_BLOCKS};
    let mut next = xorshift(0x6d75_6c74_6900_0001);
    for key in KEYS {
        for (b, fast, reference) in engines(key) {
            for round in 0..400 {
                let count = 1 + (next() as usize) % GROUP;
                // Some groups of one length (the uniform path), some mixed,
                // some long enough to be hashed in segments.
                let uniform = round % 3 == 0;
                let max_len = if round % 5 == 0 { MAX_BLOCKS * 16 } else { 130 };
                let fixed = 1 + (next() as usize) % max_len;
                let lens: Vec<usize> =
                    (0..count).map(|_| if uniform { fixed } else { 1 + (next() as usize) % max_len }).collect();
                let aads: Vec<Vec<u8>> =
                    (0..count).map(|i| vec![i as u8 ^ 0x5a; (next() as usize) % (MAX_AAD + 1)]).collect();
                let j0s: Vec<u128> =
                    (0..count).map(|_| u128::from(next()) << 64 | u128::from(next() & 0xffff_ffff)).collect();
                let plain: Vec<Vec<u8>> = lens.iter().map(|&n| (0..n).map(|_| next() as u8).collect()).collect();
                assert_group_equals_single(b, &fast, &reference, &plain, &aads, &j0s);
            }
        }
    }
}

/// Groups the short kernel takes (`multi::run_short` on 512-bit registers:
/// whole registers of messages of one block count, at most sixteen blocks,
/// 96-bit IVs) equal single calls, sealing and opening, for every count,
/// block count and last-block length; other backends run them through the
/// lane kernel, which must agree too. A message whose `J0` counter is not 1
/// sends its group to the lane kernel, with the same results.
#[test]
fn short_groups_of_one_block_count_equal_single_calls_on_every_backend() {
    use crate::backend::group::{GROUP, MAX_AAD};
    let mut next = xorshift(0x7368_6f72_7400_0001);
    for key in KEYS {
        for (b, fast, reference) in engines(key) {
            for round in 0..640 {
                let count = 4 * (1 + round % (GROUP / 4));
                let blocks = 1 + (round / 8) % 16;
                // Lengths with that block count: whole last blocks and
                // partial ones.
                let lens: Vec<usize> = (0..count)
                    .map(|_| if round % 3 == 0 { 16 * blocks } else { 16 * (blocks - 1) + 1 + (next() as usize) % 16 })
                    .collect();
                let aads: Vec<Vec<u8>> =
                    (0..count).map(|i| vec![i as u8 ^ 0xa5; (next() as usize) % (MAX_AAD + 1)]).collect();
                // 96-bit IVs (counter 1), except one message in some rounds.
                let odd_one = (round % 5 == 4).then(|| (next() as usize) % count);
                let j0s: Vec<u128> = (0..count)
                    .map(|i| {
                        let counter = if odd_one == Some(i) { 0xffff_fffe } else { 1 };
                        u128::from(next()) << 64 | u128::from(next() & 0xffff_ffff_0000_0000) | counter
                    })
                    .collect();
                let plain: Vec<Vec<u8>> = lens.iter().map(|&n| (0..n).map(|_| next() as u8).collect()).collect();
                assert_group_equals_single(b, &fast, &reference, &plain, &aads, &j0s);
            }
        }
    }
}

/// `Key::open_split` of one backend: (buffer, batches in the first bulk).
type OpenSplit<'a> = &'a dyn Fn(&mut [u8], usize) -> [u8; 16];

/// A decryption whose whole batches come in two bulks (the first leaves
/// its last batch pending for the second to hash): the same plaintext and
/// tag as one bulk, for every split and tail on every backend.
#[test]
fn an_open_split_over_two_bulks_equals_one() {
    for key in KEYS {
        for (b, fast, _) in engines(key) {
            let j0 = u128::from_be_bytes(*b"split-bulks\0\0\0\0\x01");
            let (batch, open_split): (usize, OpenSplit<'_>) = match &fast {
                #[cfg(target_arch = "x86_64")]
                Engine::AesNi(k) => (k.batch_len(), &|buf, n| k.open_split(j0, b"aad", buf, n)),
                #[cfg(target_arch = "x86_64")]
                Engine::Vaes256(k) => (k.batch_len(), &|buf, n| k.open_split(j0, b"aad", buf, n)),
                #[cfg(target_arch = "x86_64")]
                Engine::Vaes512(k) => (k.batch_len(), &|buf, n| k.open_split(j0, b"aad", buf, n)),
                #[cfg(target_arch = "aarch64")]
                Engine::Armv8(k) => (k.batch_len(), &|buf, n| k.open_split(j0, b"aad", buf, n)),
                _ => continue,
            };
            for batches in 2..=5 {
                for extra in [0, 1, 17, batch - 1] {
                    let msg = message(batches * batch + extra);
                    let mut sealed = msg.clone();
                    let tag = fast.seal(j0, b"aad", &mut sealed);
                    for first in 1..batches {
                        let mut x = sealed.clone();
                        assert_eq!(
                            open_split(&mut x, first),
                            tag,
                            "{b}: {batches} batches + {extra}, split after {first}"
                        );
                        assert_eq!(x, msg, "{b}: {batches} batches + {extra}, split after {first}");
                    }
                }
            }
        }
    }
}
