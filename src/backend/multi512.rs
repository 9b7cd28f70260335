//! Four short messages at once on 512-bit registers (VAES, VPCLMULQDQ,
//! AVX-512): the kernel under `Gcm::encrypt_batch` / `decrypt_batch`.
//!
//! # Why
//!
//! A message of a few blocks is a chain of dependent AES rounds followed by
//! a short chain of multiplies, so single-message code leaves the AES units
//! mostly waiting. Here each 128-bit lane of a register holds a different
//! message: lane `l` of the register for block `k` is block `k` of message
//! `l`, and one `VAESENC` advances the same block of four messages. The
//! four messages' pre-counter blocks `J0` share one more register.
//!
//! # Shape
//!
//! The four messages of a group have the same number of blocks `B` (up to
//! 16) and the same number of AAD blocks `A` (0 or 1: up to 16 bytes, the
//! ESP cases), so block `k` of every message is multiplied by the same
//! power of H: a message hashes `A + B + 1` blocks (AAD, ciphertext, length
//! block), and the `i`-th of them is multiplied by `H^(A + B + 1 - i)`, one
//! broadcast from the key's table. Lengths within the last block, AAD
//! lengths up to 16 bytes and IVs differ freely. Products are summed
//! unreduced per lane (schoolbook, four multiplies, added with three-input
//! XORs) and each lane is reduced once at the end, all four together, with
//! the AES-NI backend's two-multiply fold; the field representation is that
//! backend's (blocks byte-reversed into reflected form, powers stored times
//! `x^-1`; see `aesni`'s module docs).
//!
//! Each lane's blocks are moved with byte-masked 128-bit loads and stores,
//! so nothing outside a message is read or written and partial blocks need
//! no byte loops; ciphertext is hashed zero-padded (the keystream bytes past
//! a message's end are masked off before hashing).
//!
//! # Safety
//!
//! Every function that uses the instructions carries
//! `#[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]`.
//! A [`MultiKey`] can only be made by [`MultiKey::new`], which returns `None`
//! unless run-time detection found all of them; calling those functions
//! through a key is therefore sound. Memory is touched only by masked loads
//! and stores whose masks cover bytes inside the lane's slice (pointers
//! past a slice's end are formed with `wrapping_add` and never dereferenced
//! unmasked), and by unaligned loads and stores of local arrays of the
//! right size.

use super::KeyBytes;
use super::aesni::X;
use super::stitched::{Lanes, Material};
use super::vaes512::{Vaes512Token, Z};
use core::arch::x86_64::{
    __m128i, __m512i, __mmask16, _MM_PERM_BADC, _mm_mask_storeu_epi8, _mm_maskz_loadu_epi8, _mm_set_epi8,
    _mm_set_epi64x, _mm512_aesenc_epi128, _mm512_aesenclast_epi128, _mm512_broadcast_i32x4, _mm512_bslli_epi128,
    _mm512_bsrli_epi128, _mm512_castsi128_si512, _mm512_clmulepi64_epi128, _mm512_extracti32x4_epi32,
    _mm512_inserti32x4, _mm512_loadu_si512, _mm512_maskz_mov_epi8, _mm512_or_si512, _mm512_set_epi64,
    _mm512_set1_epi64, _mm512_setzero_si512, _mm512_shuffle_epi8, _mm512_shuffle_epi32, _mm512_ternarylogic_epi64,
    _mm512_xor_si512,
};
use zeroize::Zeroize;

/// Messages per group.
pub(crate) const LANES: usize = 4;
/// Longest message a group takes, in blocks.
pub(crate) const MAX_BLOCKS: usize = 16;
/// Longest AAD a group takes, in bytes.
pub(crate) const MAX_AAD: usize = 16;
/// Highest power of H a group needs: one AAD block, 16 data blocks, the
/// length block.
const POWERS: usize = 1 + MAX_BLOCKS + 1;

/// One message of a group: in place, like `Gcm::encrypt`.
pub(crate) struct Lane<'a> {
    pub(crate) iv: [u8; 12],
    pub(crate) aad: &'a [u8],
    pub(crate) data: &'a mut [u8],
}

/// Whether a message goes in a group, and which: messages of one shape
/// share their powers of H.
pub(crate) fn shape(aad_len: usize, data_len: usize) -> Option<(usize, usize)> {
    let blocks = data_len.div_ceil(16);
    (aad_len <= MAX_AAD && (1..=MAX_BLOCKS).contains(&blocks)).then_some((usize::from(aad_len > 0), blocks))
}

/// Key material for groups: round keys and `H^1..H^18` times `x^-1`.
#[derive(Clone)]
pub(crate) struct MultiKey {
    /// `powers[p - 1]` = `H^p * x^-1`, reflected.
    powers: [__m128i; POWERS],
    round_keys: [__m128i; 15],
    rounds: usize,
}

impl Drop for MultiKey {
    fn drop(&mut self) {
        self.powers.zeroize();
        self.round_keys.zeroize();
    }
}

impl MultiKey {
    /// Key setup; `None` unless this CPU has everything the kernel uses (so
    /// that holding a `MultiKey` proves it does).
    pub(crate) fn new(key: KeyBytes<'_>) -> Option<MultiKey> {
        let t = Vaes512Token::detect()?;
        let material = Material::<X>::new(Z::narrow(t), key);
        let powers = core::array::from_fn(|p| material.power(p + 1).raw());
        let round_keys = material.round_keys().map(X::raw);
        let rounds = material.rounds();
        Some(MultiKey { powers, round_keys, rounds })
    }

    /// Encrypt four messages of one [`shape`] in place; their tags.
    pub(crate) fn seal(&self, lanes: &mut [Lane<'_>; LANES]) -> [[u8; 16]; LANES] {
        // SAFETY: holding a `MultiKey` proves the CPU has the features.
        unsafe { self.crypt::<false>(lanes) }
    }

    /// Decrypt four messages of one [`shape`] in place; the tags computed
    /// over their ciphertexts (the caller compares them and wipes a message
    /// whose tag does not match).
    pub(crate) fn open(&self, lanes: &mut [Lane<'_>; LANES]) -> [[u8; 16]; LANES] {
        // SAFETY: holding a `MultiKey` proves the CPU has the features.
        unsafe { self.crypt::<true>(lanes) }
    }

    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn crypt<const DECRYPT: bool>(&self, lanes: &mut [Lane<'_>; LANES]) -> [[u8; 16]; LANES] {
        match self.rounds {
            10 => self.crypt_rounds::<DECRYPT, 10>(lanes),
            12 => self.crypt_rounds::<DECRYPT, 12>(lanes),
            _ => self.crypt_rounds::<DECRYPT, 14>(lanes),
        }
    }

    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn crypt_rounds<const DECRYPT: bool, const R: usize>(&self, lanes: &mut [Lane<'_>; LANES]) -> [[u8; 16]; LANES] {
        let aad_blocks = usize::from(lanes.iter().any(|l| !l.aad.is_empty()));
        let blocks = lanes.iter().map(|l| l.data.len().div_ceil(16)).max().unwrap_or(0).min(MAX_BLOCKS);
        let mut g = Group {
            key: self,
            reflect: _mm512_broadcast_i32x4(_mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)),
            ivs: ivs(lanes),
            hashed: aad_blocks + blocks + 1,
            aad_blocks,
            lo: _mm512_setzero_si512(),
            mid: _mm512_setzero_si512(),
            hi: _mm512_setzero_si512(),
            j0: _mm512_setzero_si512(),
        };
        if aad_blocks == 1 {
            let mut parts = [(core::ptr::null(), 0); LANES];
            for (part, lane) in parts.iter_mut().zip(lanes.iter()) {
                *part = (lane.aad.as_ptr(), byte_mask(lane.aad.len()));
            }
            g.mul_add(gather(parts), g.hashed);
        }
        // The first chunk carries J0 (lane l: message l's pre-counter block)
        // beside up to seven data blocks; later chunks up to eight. Chunk
        // sizes are compile-time constants so that the blocks stay in
        // registers through the rounds.
        let first = blocks.min(7);
        match first {
            0 => g.chunk::<DECRYPT, R, 1, true>(lanes, 0),
            1 => g.chunk::<DECRYPT, R, 2, true>(lanes, 0),
            2 => g.chunk::<DECRYPT, R, 3, true>(lanes, 0),
            3 => g.chunk::<DECRYPT, R, 4, true>(lanes, 0),
            4 => g.chunk::<DECRYPT, R, 5, true>(lanes, 0),
            5 => g.chunk::<DECRYPT, R, 6, true>(lanes, 0),
            6 => g.chunk::<DECRYPT, R, 7, true>(lanes, 0),
            _ => g.chunk::<DECRYPT, R, 8, true>(lanes, 0),
        }
        let mut k0 = first;
        while k0 < blocks {
            let n = (blocks - k0).min(8);
            match n {
                1 => g.chunk::<DECRYPT, R, 1, false>(lanes, k0),
                2 => g.chunk::<DECRYPT, R, 2, false>(lanes, k0),
                3 => g.chunk::<DECRYPT, R, 3, false>(lanes, k0),
                4 => g.chunk::<DECRYPT, R, 4, false>(lanes, k0),
                5 => g.chunk::<DECRYPT, R, 5, false>(lanes, k0),
                6 => g.chunk::<DECRYPT, R, 6, false>(lanes, k0),
                7 => g.chunk::<DECRYPT, R, 7, false>(lanes, k0),
                _ => g.chunk::<DECRYPT, R, 8, false>(lanes, k0),
            }
            k0 += n;
        }

        // The length blocks, [len(A)]_64 || [len(C)]_64 in bits: in
        // reflected form these are the (high, low) words as they are.
        let bits = |n: usize| (n as u64).wrapping_mul(8) as i64;
        let lengths = _mm512_set_epi64(
            bits(lanes[3].aad.len()),
            bits(lanes[3].data.len()),
            bits(lanes[2].aad.len()),
            bits(lanes[2].data.len()),
            bits(lanes[1].aad.len()),
            bits(lanes[1].data.len()),
            bits(lanes[0].aad.len()),
            bits(lanes[0].data.len()),
        );
        g.mul_add_reflected(lengths, 1);

        let tags = _mm512_xor_si512(_mm512_shuffle_epi8(g.reduce(), g.reflect), g.j0);
        let mut out = [[0u8; 16]; LANES];
        for (l, tag) in out.iter_mut().enumerate() {
            store_lane(tags, l, tag.as_mut_ptr(), 0xffff);
        }
        out
    }
}

/// The four lanes' IVs in one register, counter bytes zero.
#[inline]
#[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
fn ivs(lanes: &[Lane<'_>; LANES]) -> __m512i {
    let mut ivs = [0u8; 64];
    for (chunk, lane) in ivs.chunks_exact_mut(16).zip(lanes.iter()) {
        chunk[..12].copy_from_slice(&lane.iv);
    }
    // SAFETY: `ivs` is 64 bytes.
    unsafe { _mm512_loadu_si512(ivs.as_ptr().cast()) }
}

/// One group's running state: the hash sums and `E(K, J0)` per lane.
struct Group<'k> {
    key: &'k MultiKey,
    reflect: __m512i,
    ivs: __m512i,
    /// Blocks hashed per message: AAD, data, length block.
    hashed: usize,
    aad_blocks: usize,
    lo: __m512i,
    mid: __m512i,
    hi: __m512i,
    j0: __m512i,
}

impl Group<'_> {
    /// Counter block `c` of every lane.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn counter(&self, c: u32) -> __m512i {
        _mm512_or_si512(self.ivs, _mm512_broadcast_i32x4(_mm_set_epi64x(i64::from(c.swap_bytes()) << 32, 0)))
    }

    /// Add `x` (four blocks as stored) times `H^power` to the sums.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn mul_add(&mut self, x: __m512i, power: usize) {
        self.mul_add_reflected(_mm512_shuffle_epi8(x, self.reflect), power);
    }

    /// Add `x` (four blocks in reflected form) times `H^power` to the sums.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn mul_add_reflected(&mut self, x: __m512i, power: usize) {
        let h = _mm512_broadcast_i32x4(self.key.powers[power - 1]);
        self.lo = _mm512_xor_si512(self.lo, _mm512_clmulepi64_epi128::<0x00>(x, h));
        self.hi = _mm512_xor_si512(self.hi, _mm512_clmulepi64_epi128::<0x11>(x, h));
        self.mid = _mm512_ternarylogic_epi64::<0x96>(
            self.mid,
            _mm512_clmulepi64_epi128::<0x01>(x, h),
            _mm512_clmulepi64_epi128::<0x10>(x, h),
        );
    }

    /// Reduce every lane's sum: fold the middle words in, then two folds by
    /// the reversed polynomial's constant, as in the AES-NI backend.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn reduce(&self) -> __m512i {
        let lo = _mm512_xor_si512(self.lo, _mm512_bslli_epi128::<8>(self.mid));
        let hi = _mm512_xor_si512(self.hi, _mm512_bsrli_epi128::<8>(self.mid));
        let c = _mm512_set1_epi64(0xC200_0000_0000_0000u64 as i64);
        let folded =
            _mm512_xor_si512(_mm512_shuffle_epi32::<{ _MM_PERM_BADC }>(lo), _mm512_clmulepi64_epi128::<0x00>(lo, c));
        _mm512_ternarylogic_epi64::<0x96>(
            hi,
            _mm512_shuffle_epi32::<{ _MM_PERM_BADC }>(folded),
            _mm512_clmulepi64_epi128::<0x00>(folded, c),
        )
    }

    /// Data blocks `k0..` of every lane (`N` registers, the first of them
    /// J0 when `J`): through the rounds, into the data, into the hash.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn chunk<const DECRYPT: bool, const R: usize, const N: usize, const J: bool>(
        &mut self,
        lanes: &mut [Lane<'_>; LANES],
        k0: usize,
    ) {
        let rk = &self.key.round_keys;
        let skip = usize::from(J);
        // Plain loops rather than `array::from_fn`: the std helpers are not
        // inlined into a function with target features, and a register
        // array returned through memory costs a round trip per block.
        let mut b = [_mm512_setzero_si512(); N];
        for (i, x) in b.iter_mut().enumerate() {
            *x = if J && i == 0 { self.counter(1) } else { self.counter((k0 + i - skip) as u32 + 2) };
        }
        let rk0 = _mm512_broadcast_i32x4(rk[0]);
        for x in b.iter_mut() {
            *x = _mm512_xor_si512(*x, rk0);
        }
        for k in &rk[1..R] {
            let k = _mm512_broadcast_i32x4(*k);
            for x in b.iter_mut() {
                *x = _mm512_aesenc_epi128(*x, k);
            }
        }
        let last = _mm512_broadcast_i32x4(rk[R]);
        for x in b.iter_mut() {
            *x = _mm512_aesenclast_epi128(*x, last);
        }
        if J {
            self.j0 = b[0];
        }
        for (i, ks) in b.iter().enumerate().skip(skip) {
            let k = k0 + i - skip;
            let mut masks = [0; LANES];
            let mut parts = [(core::ptr::null(), 0); LANES];
            for ((mask, part), lane) in masks.iter_mut().zip(parts.iter_mut()).zip(lanes.iter()) {
                *mask = byte_mask(lane.data.len().saturating_sub(16 * k));
                *part = (lane.data.as_ptr().wrapping_add(16 * k), *mask);
            }
            let input = gather(parts);
            let output = _mm512_xor_si512(input, *ks);
            for (l, lane) in lanes.iter_mut().enumerate() {
                store_lane(output, l, lane.data.as_mut_ptr().wrapping_add(16 * k), masks[l]);
            }
            let ciphertext = if DECRYPT { input } else { _mm512_maskz_mov_epi8(wide_mask(masks), output) };
            self.mul_add(ciphertext, self.hashed - self.aad_blocks - k);
        }
    }
}

/// The byte mask for a block with `remaining` bytes of its message left.
#[inline(always)]
fn byte_mask(remaining: usize) -> __mmask16 {
    ((1u32 << remaining.min(16)) - 1) as __mmask16
}

/// The four lanes' byte masks as one mask over a register.
#[inline(always)]
fn wide_mask(masks: [__mmask16; LANES]) -> u64 {
    masks.iter().enumerate().fold(0u64, |m, (l, &lane)| m | (u64::from(lane) << (16 * l)))
}

/// Load lane `l` of a register from `parts[l]`: 16 bytes at the pointer
/// under the byte mask (zero where the mask is clear).
#[inline]
#[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
fn gather(parts: [(*const u8, __mmask16); LANES]) -> __m512i {
    let load = |(ptr, mask): (*const u8, __mmask16)| {
        // SAFETY: the mask covers only bytes inside the lane's slice
        // (`byte_mask` of the bytes it has left); masked-off bytes are not
        // accessed, and an all-zero mask accesses nothing.
        unsafe { _mm_maskz_loadu_epi8(mask, ptr.cast()) }
    };
    let z = _mm512_castsi128_si512(load(parts[0]));
    let z = _mm512_inserti32x4::<1>(z, load(parts[1]));
    let z = _mm512_inserti32x4::<2>(z, load(parts[2]));
    _mm512_inserti32x4::<3>(z, load(parts[3]))
}

/// Store lane `l` of `x` to `ptr` under the byte mask.
#[inline]
#[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
fn store_lane(x: __m512i, l: usize, ptr: *mut u8, mask: __mmask16) {
    let lane = match l {
        0 => _mm512_extracti32x4_epi32::<0>(x),
        1 => _mm512_extracti32x4_epi32::<1>(x),
        2 => _mm512_extracti32x4_epi32::<2>(x),
        _ => _mm512_extracti32x4_epi32::<3>(x),
    };
    // SAFETY: the mask covers only bytes inside the slice; an all-zero
    // mask accesses nothing.
    unsafe { _mm_mask_storeu_epi8(ptr.cast(), mask, lane) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Gcm;

    #[test]
    fn groups_equal_single_calls() {
        let Some(key) = MultiKey::new(KeyBytes::new(&[7u8; 16]).unwrap()) else {
            eprintln!("skipped multi512: {}", crate::Backend::Vaes512.unsupported_reason().unwrap_or("not supported"));
            return;
        };
        let gcm = Gcm::with_backend(&[7u8; 16], crate::Backend::Scalar).unwrap();
        for blocks in 1..=MAX_BLOCKS {
            for aad_len in [0, 8, 12, 16] {
                let lens = [16 * blocks, 16 * blocks - 1, 16 * blocks - 15, 16 * (blocks - 1) + 7];
                let mut bufs: Vec<Vec<u8>> =
                    lens.iter().map(|&n| (0..n).map(|i| (i * 7 + n) as u8).collect()).collect();
                let originals = bufs.clone();
                let aads: Vec<Vec<u8>> =
                    (0..4).map(|l| vec![l as u8 + 1; if l == 2 { aad_len.min(5) } else { aad_len }]).collect();
                let ivs: Vec<[u8; 12]> = (0..4).map(|l| [l as u8 * 3 + blocks as u8; 12]).collect();
                let tags = {
                    let mut it = bufs.iter_mut();
                    let mut lanes: [Lane<'_>; 4] =
                        core::array::from_fn(|l| Lane { iv: ivs[l], aad: &aads[l], data: it.next().unwrap() });
                    key.seal(&mut lanes)
                };
                for l in 0..4 {
                    let mut expected = originals[l].clone();
                    let tag = gcm.encrypt(&ivs[l], &aads[l], &mut expected).unwrap();
                    assert_eq!(bufs[l], expected, "blocks {blocks} aad {aad_len} lane {l}");
                    assert_eq!(tags[l], tag, "blocks {blocks} aad {aad_len} lane {l}");
                }
                let opened = {
                    let mut it = bufs.iter_mut();
                    let mut lanes: [Lane<'_>; 4] =
                        core::array::from_fn(|l| Lane { iv: ivs[l], aad: &aads[l], data: it.next().unwrap() });
                    key.open(&mut lanes)
                };
                assert_eq!(opened, tags);
                assert_eq!(bufs, originals);
            }
        }
    }
}
