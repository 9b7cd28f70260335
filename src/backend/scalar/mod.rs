//! The portable, constant-time backend: bitsliced AES ([`aes`]) in counter
//! mode and GHASH by integer-multiply carry-less products ([`ghash`]).
//!
//! It runs on every CPU Rust targets, uses no CPU-specific instructions, and
//! is the reference that verify mode checks SIMD backends against, so it is
//! written for speed as well. A message is encrypted a counter-mode window
//! at a time: sixteen counter blocks in one row-sliced AES pass (with most of
//! the first round precomputed, see [`aes::rows`]), XORed into the data as
//! 64-bit words, and hashed sixteen blocks per GHASH reduction. The block
//! that masks the tag (`E(K, J0)`) is in the first window whenever it can be
//! (always, for 96-bit IVs). Messages of fewer than eight blocks run on
//! four-block fixsliced passes instead, with `J0` in a free slot. Everything
//! stays in integer registers (see [`aes`] for why).
//!
//! # Code shape
//!
//! The speed of this backend must not depend on how the user builds it (the
//! default release profile, codegen-units = 1, thin or fat LTO), so its shape
//! is fixed in the source rather than left to the inliner: the units the
//! driver loops over (a counter window, [`aes::rows::Ctr::window`]; a
//! four-block pass, [`aes::fixslice::Keys::encrypt4`]; a GHASH of up to
//! sixteen blocks, [`ghash::GhashKey::absorb`]) are `#[inline(never)]`, and
//! everything inside them is `#[inline(always)]` with loops whose bodies are
//! whole rounds or whole blocks. Each unit is then compiled the same way in
//! every profile, and together they fit the instruction cache. Between the
//! units data travels as 64-bit words, read back in the width it was stored
//! in, so no load waits for narrower stores to retire (a store-forwarding
//! stall) whatever the compiler does with the code around them.
//!
//! Constant time: see the headers of [`aes`] and [`ghash`]. This file adds only
//! loops and branches whose bounds are message lengths and counter values
//! (public) and XORs.

pub(crate) mod aes;
pub(crate) mod ghash;

use crate::backend::KeyBytes;
use aes::{RoundKeys, fixslice, gpr, le_words, rows};
use ghash::GhashKey;

/// Messages shorter than this many blocks take four-block passes: their
/// blocks and the tag mask fit two of them, which cost less than one
/// sixteen-block window.
const SHORT_BLOCKS: usize = 2 * fixslice::BLOCKS;

/// Key material of the scalar backend: round keys in both AES layouts and
/// powers of H.
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
        self.crypt::<false>(j0, aad, buf)
    }

    /// Decrypt `buf` in place and return the tag computed over `aad` and the
    /// ciphertext it held. The caller compares tags and wipes `buf` on mismatch.
    pub(crate) fn open(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        self.crypt::<true>(j0, aad, buf)
    }

    fn crypt<const DECRYPT: bool>(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        let mut acc = 0u128;
        self.ghash.update_padded(&mut acc, aad);
        let tag_mask = if buf.len().div_ceil(16) < SHORT_BLOCKS {
            self.crypt_short::<DECRYPT>(j0, &mut acc, buf)
        } else {
            self.crypt_windows::<DECRYPT>(j0, &mut acc, buf)
        };
        let bits = |len: usize| (len as u128) * 8;
        self.ghash.update_block(&mut acc, (bits(aad.len()) << 64) | bits(buf.len()));
        let tag = acc.to_be_bytes();
        let mask = aes::le_bytes(&tag_mask);
        core::array::from_fn(|i| tag[i] ^ mask[i])
    }

    /// A short message: its counter blocks and J0 (in the first free slot)
    /// through two four-block passes at most. Returns `E(K, J0)`.
    fn crypt_short<const DECRYPT: bool>(&self, j0: u128, acc: &mut u128, buf: &mut [u8]) -> [u64; 2] {
        let n = buf.len().div_ceil(16);
        let mut blocks = [[0u64; 2]; 2 * fixslice::BLOCKS];
        for (i, block) in blocks.iter_mut().take(n).enumerate() {
            *block = counter_words(j0, 1 + i as u32);
        }
        blocks[n] = counter_words(j0, 0);
        let mut ks = [[0u64; 2]; 2 * fixslice::BLOCKS];
        for (pass, out) in
            blocks.chunks_exact(fixslice::BLOCKS).zip(ks.chunks_exact_mut(fixslice::BLOCKS)).take(n / 4 + 1)
        {
            let four = pass.first_chunk::<{ fixslice::BLOCKS }>().copied().unwrap_or_default();
            out.copy_from_slice(&self.aes.fixslice.encrypt4(&four));
        }
        if DECRYPT {
            self.ghash.update_padded(acc, buf);
            xor_keystream(buf, &ks);
        } else {
            xor_keystream(buf, &ks);
            self.ghash.update_padded(acc, buf);
        }
        ks[n]
    }

    /// The general case: a counter window at a time. Returns `E(K, J0)`.
    fn crypt_windows<const DECRYPT: bool>(&self, j0: u128, acc: &mut u128, buf: &mut [u8]) -> [u64; 2] {
        let prefix = j0.to_be_bytes();
        let mut ctr = rows::Ctr::new(&self.aes.rows, prefix.first_chunk::<12>().copied().unwrap_or_default());
        let j0_counter = j0 as u32;
        let first = j0_counter.wrapping_add(1);
        let (mut window, mut slot) = (first >> 4, (first & 15) as usize);
        // J0 is slot `j0_counter mod 16` of the first window unless it is
        // that window's last slot (then the data starts a window later).
        let mut tag_mask = None;
        if j0_counter >> 4 != window {
            let mut four = [[0u64; 2]; fixslice::BLOCKS];
            four[0] = counter_words(j0, 0);
            tag_mask = Some(self.aes.fixslice.encrypt4(&four)[0]);
        }
        let mut rest = buf;
        while !rest.is_empty() {
            let ks = ctr.window(window);
            if tag_mask.is_none() {
                tag_mask = Some(ks[(j0_counter & 15) as usize]);
            }
            let n = ((rows::BLOCKS - slot) * 16).min(rest.len());
            let (chunk, tail) = core::mem::take(&mut rest).split_at_mut(n);
            let ks = ks.get(slot..).unwrap_or_default();
            if DECRYPT {
                self.ghash.absorb(acc, chunk);
                xor_keystream(chunk, ks);
            } else {
                xor_keystream(chunk, ks);
                self.ghash.absorb(acc, chunk);
            }
            rest = tail;
            window = window.wrapping_add(1) & (u32::MAX >> 4);
            slot = 0;
        }
        tag_mask.unwrap_or_default()
    }
}

/// Counter block `inc32^i(J0)` as little-endian words (the low 32 bits wrap,
/// as GCM's inc32 does).
#[inline(always)]
fn counter_words(j0: u128, i: u32) -> [u64; 2] {
    let block = (j0 & !u128::from(u32::MAX)) | u128::from((j0 as u32).wrapping_add(i));
    le_words(&block.to_be_bytes())
}

/// XOR keystream blocks (as little-endian words) into `data`, which may end
/// in a partial block: eight bytes at a time, then bytes.
#[inline(always)]
fn xor_keystream(data: &mut [u8], ks: &[[u64; 2]]) {
    let ks = ks.as_flattened();
    let (words, tail) = data.as_chunks_mut::<8>();
    for (w, k) in words.iter_mut().zip(ks) {
        *w = gpr(u64::from_le_bytes(*w) ^ k).to_le_bytes();
    }
    if let Some(k) = ks.get(words.len()) {
        for (b, kb) in tail.iter_mut().zip(k.to_le_bytes()) {
            *b ^= kb;
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

    fn check(k: &ScalarKey, key: &[u8; 16], j0: [u8; 16], aad: &[u8], len: usize) {
        let msg: Vec<u8> = (0..len).map(|i| (i * 7 + 1) as u8).collect();
        let mut ours = msg.clone();
        let mut theirs = msg.clone();
        let tag = k.seal(u128::from_be_bytes(j0), aad, &mut ours);
        let expect = reference_seal(key, j0, aad, &mut theirs);
        let at = format!("length {len}, J0 counter {:#x}", u32::from_be_bytes([j0[12], j0[13], j0[14], j0[15]]));
        assert_eq!(ours, theirs, "ciphertext, {at}");
        assert_eq!(tag, expect, "tag, {at}");
        let mut back = ours.clone();
        assert_eq!(k.open(u128::from_be_bytes(j0), aad, &mut back), tag, "open's tag, {at}");
        assert_eq!(back, msg, "plaintext, {at}");
    }

    #[test]
    fn counter_wraps_modulo_2_pow_32_like_inc32() {
        let key = [9u8; 16];
        let k = ScalarKey::new(KeyBytes::Aes128(&key));
        let mut j0 = [0x5au8; 16];
        j0[12..].copy_from_slice(&0xFFFF_FFF9u32.to_be_bytes());
        let aad = [1u8; 13];
        for len in [0usize, 1, 16, 100, 127, 128, 129, 300, 4200] {
            check(&k, &key, j0, &aad, len);
        }
    }

    /// Every position of J0 in its window (including the last slot, where
    /// the data starts a window later), every window boundary of the data,
    /// the short path and its edge, and epoch changes (every 256 counters).
    #[test]
    fn every_j0_slot_and_length_around_window_and_epoch_edges() {
        let key = [0x3cu8; 16];
        let k = ScalarKey::new(KeyBytes::Aes128(&key));
        let aad = [7u8; 8];
        for start in [0u32, 1, 2, 7, 14, 15, 16, 0xF0, 0xFE, 0xFF, 0x1FF, 0xFFFF_FFEF, 0xFFFF_FFFF] {
            let mut j0 = [0xa5u8; 16];
            j0[12..].copy_from_slice(&start.to_be_bytes());
            for len in [1usize, 95, 96, 97, 111, 112, 113, 240, 241, 255, 256, 257, 1420, 4096, 4111, 4112, 4113] {
                check(&k, &key, j0, &aad, len);
            }
        }
    }
}
