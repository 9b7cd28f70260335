//! The portable, constant-time backend: fixsliced AES ([`aes`]) in counter
//! mode and GHASH by integer-multiply carry-less products ([`ghash`]).
//!
//! It runs on every CPU Rust targets, uses no CPU-specific instructions, and
//! is the reference that verify mode checks SIMD backends against, so it is
//! written for speed as well: counter blocks go through the cipher eight at a
//! time (two sliced passes of four), eight blocks are hashed per reduction,
//! a short tail costs one sliced pass instead of two, and the block that masks
//! the tag (`E(K, J0)`) rides in a free slot of the last counter batch instead
//! of costing a pass of its own. Everything stays in integer registers (see
//! [`aes`] for why).
//!
//! Constant time: see the headers of [`aes`] and [`ghash`]. This file adds only
//! loops whose bounds are message lengths (public) and XORs.

pub(crate) mod aes;
pub(crate) mod ghash;

use crate::backend::KeyBytes;
use aes::RoundKeys;
use ghash::{AGGREGATE, GhashKey};

/// Blocks per sliced AES pass, and per GHASH reduction.
const BATCH: usize = 2 * aes::BLOCKS;
const _: () = assert!(BATCH == AGGREGATE);

/// Key material of the scalar backend: sliced round keys and powers of H.
#[derive(Clone)]
pub(crate) struct ScalarKey {
    aes: RoundKeys,
    ghash: GhashKey,
}

impl ScalarKey {
    /// Key setup.
    pub(crate) fn new(key: KeyBytes<'_>) -> ScalarKey {
        let aes = RoundKeys::new(key);
        let mut h = [[0u8; 16]; 1];
        aes.encrypt_blocks(&mut h);
        let ghash = GhashKey::new(&h[0]);
        zeroize::Zeroize::zeroize(&mut h);
        ScalarKey { aes, ghash }
    }

    /// GHASH `data` (zero-padded) into `acc`: used to derive J0 from IVs that
    /// are not 96 bits long.
    pub(crate) fn ghash(&self, acc: &mut u128, data: &[u8]) {
        self.ghash.update_padded(acc, data);
    }

    /// GHASH one block given as an integer.
    pub(crate) fn ghash_block(&self, acc: &mut u128, block: u128) {
        self.ghash.update_block(acc, block);
    }

    /// Encrypt `buf` in place with counters `inc32(J0)`, ... and return the
    /// full 16-byte tag over `aad` and the ciphertext.
    /// `j0` is the pre-counter block as a big-endian integer.
    pub(crate) fn seal(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        self.crypt::<false>(&j0.to_be_bytes(), aad, buf)
    }

    /// Decrypt `buf` in place and return the tag computed over `aad` and the
    /// ciphertext it held. The caller compares tags and wipes `buf` on mismatch.
    pub(crate) fn open(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        self.crypt::<true>(&j0.to_be_bytes(), aad, buf)
    }

    fn crypt<const DECRYPT: bool>(&self, j0: &[u8; 16], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        let mut acc = 0u128;
        self.ghash.update_padded(&mut acc, aad);

        let counters = Counters::new(j0);
        let mut next = 1u32; // offset from J0 of the next data counter
        let (chunks, rest) = buf.as_chunks_mut::<{ 16 * BATCH }>();
        for chunk in chunks.iter_mut() {
            let mut ks = [[0u8; 16]; BATCH];
            counters.fill(&mut ks, next);
            self.encrypt_batch(&mut ks);
            next = next.wrapping_add(BATCH as u32);
            if DECRYPT {
                self.ghash.update8(&mut acc, chunk);
                xor_into(chunk, &ks);
            } else {
                xor_into(chunk, &ks);
                self.ghash.update8(&mut acc, chunk);
            }
        }

        // Last batch: the remaining (possibly partial) blocks, then J0 itself
        // in the first free slot; its keystream block masks the tag. Only when
        // the remainder fills all eight slots does J0 need a pass of its own.
        let n = rest.len().div_ceil(16);
        let mut ks = [[0u8; 16]; BATCH];
        counters.fill(&mut ks[..n], next);
        let tag_mask = if n < BATCH {
            ks[n] = *j0;
            self.encrypt_first(&mut ks, n + 1);
            ks[n]
        } else {
            self.encrypt_batch(&mut ks);
            let mut j = [*j0; BATCH];
            self.encrypt_first(&mut j, 1);
            j[0]
        };
        if DECRYPT {
            self.ghash.update_padded(&mut acc, rest);
            xor_into(rest, &ks[..n]);
        } else {
            xor_into(rest, &ks[..n]);
            self.ghash.update_padded(&mut acc, rest);
        }

        let bits = |len: usize| (len as u128) * 8;
        self.ghash.update_block(&mut acc, (bits(aad.len()) << 64) | bits(buf.len()));
        let mut tag = acc.to_be_bytes();
        for (t, k) in tag.iter_mut().zip(tag_mask.iter()) {
            *t ^= k;
        }
        tag
    }

    /// Encrypt all eight blocks (two sliced passes).
    #[inline(always)]
    fn encrypt_batch(&self, blocks: &mut [[u8; 16]; BATCH]) {
        self.encrypt_first(blocks, BATCH);
    }

    /// Encrypt at least the first `count` blocks, one sliced pass per four.
    #[inline(always)]
    fn encrypt_first(&self, blocks: &mut [[u8; 16]; BATCH], count: usize) {
        for half in blocks.as_chunks_mut::<{ aes::BLOCKS }>().0.iter_mut().take(count.div_ceil(aes::BLOCKS)) {
            self.aes.encrypt4(half);
        }
    }
}

/// Counter blocks `J0 + offset` (the low 32 bits wrap, as GCM's inc32 does).
struct Counters {
    prefix: [u8; 12],
    base: u32,
}

impl Counters {
    fn new(j0: &[u8; 16]) -> Counters {
        let mut prefix = [0u8; 12];
        prefix.copy_from_slice(&j0[..12]);
        let base = u32::from_be_bytes([j0[12], j0[13], j0[14], j0[15]]);
        Counters { prefix, base }
    }

    #[inline(always)]
    fn fill(&self, out: &mut [[u8; 16]], first: u32) {
        for (i, block) in out.iter_mut().enumerate() {
            block[..12].copy_from_slice(&self.prefix);
            let ctr = self.base.wrapping_add(first).wrapping_add(i as u32);
            block[12..].copy_from_slice(&ctr.to_be_bytes());
        }
    }
}

/// XOR keystream blocks into `data` (which may end in a partial block).
#[inline(always)]
fn xor_into(data: &mut [u8], ks: &[[u8; 16]]) {
    for (d, k) in data.chunks_mut(16).zip(ks.iter()) {
        for (x, y) in d.iter_mut().zip(k.iter()) {
            *x ^= y;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::aes::cipher::{BlockCipherEncrypt, KeyInit};

    /// GCM from its definition with RustCrypto's AES and GHASH, for an
    /// arbitrary J0 (so counter wrap-around can be tested directly).
    fn reference_seal(key: &[u8; 16], j0: [u8; 16], aad: &[u8], msg: &mut [u8]) -> [u8; 16] {
        use ::ghash::{GHash, universal_hash::UniversalHash};
        let aes = ::aes::Aes128::new(key.into());
        let mut h = [0u8; 16];
        aes.encrypt_block((&mut h).into());
        let mut ctr = u32::from_be_bytes([j0[12], j0[13], j0[14], j0[15]]);
        for chunk in msg.chunks_mut(16) {
            ctr = ctr.wrapping_add(1);
            let mut block = j0;
            block[12..].copy_from_slice(&ctr.to_be_bytes());
            aes.encrypt_block((&mut block).into());
            for (m, k) in chunk.iter_mut().zip(block.iter()) {
                *m ^= k;
            }
        }
        let mut g = GHash::new(&h.into());
        g.update_padded(aad);
        g.update_padded(msg);
        let mut lens = [0u8; 16];
        lens[..8].copy_from_slice(&(aad.len() as u64 * 8).to_be_bytes());
        lens[8..].copy_from_slice(&(msg.len() as u64 * 8).to_be_bytes());
        g.update_padded(&lens);
        let mut tag: [u8; 16] = g.finalize().into();
        let mut ek = j0;
        aes.encrypt_block((&mut ek).into());
        for (t, k) in tag.iter_mut().zip(ek.iter()) {
            *t ^= k;
        }
        tag
    }

    #[test]
    fn counter_wraps_modulo_2_pow_32_like_inc32() {
        let key = [9u8; 16];
        let k = ScalarKey::new(KeyBytes::Aes128(&key));
        let mut j0 = [0x5au8; 16];
        j0[12..].copy_from_slice(&0xFFFF_FFF9u32.to_be_bytes());
        let aad = [1u8; 13];
        for len in [0usize, 1, 16, 100, 127, 128, 129, 300] {
            let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut ours = msg.clone();
            let mut theirs = msg.clone();
            let tag = k.seal(u128::from_be_bytes(j0), &aad, &mut ours);
            let expect = reference_seal(&key, j0, &aad, &mut theirs);
            assert_eq!(ours, theirs, "ciphertext, length {len}");
            assert_eq!(tag, expect, "tag, length {len}");
            let mut back = ours.clone();
            assert_eq!(k.open(u128::from_be_bytes(j0), &aad, &mut back), tag);
            assert_eq!(back, msg);
        }
    }
}
