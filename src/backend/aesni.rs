//! The AES-NI + PCLMULQDQ backend: the stitched skeleton on 128-bit
//! registers, eight blocks per batch.
//!
//! # What the CPU does for us
//!
//! `AESENC`/`AESENCLAST` perform one AES round on a 16-byte block; key
//! expansion uses `AESKEYGENASSIST` for SubWord/RotWord. `PCLMULQDQ`
//! multiplies two 64-bit polynomials over GF(2) into a 128-bit product. All
//! of these take the same time for every operand, so this backend has no
//! secret-dependent timing either; it is not the reference (see `scalar`),
//! only a fast path. `PSHUFB` (SSSE3) reverses a block's bytes into the
//! reflected form and `PEXTRD` (SSE4.1) reads a word during key expansion.
//!
//! # Shape
//!
//! An [`X`] is one block, so a batch is eight registers (128 bytes), hashed
//! under one reduction: `acc' = (acc + C1) H^8 + C2 H^7 + ... + C8 H`, one
//! block's multiplies after each of the first eight AES rounds of the next
//! batch. Products are Karatsuba's (three `PCLMULQDQ` per block, the key's
//! table of half-sums supplying `h_lo + h_hi`): on 128-bit units the saved
//! multiply is worth the shuffle and two XORs. Partial blocks are read and
//! written with overlapping word accesses (at most four loads or stores for
//! 1 to 15 bytes), never byte loops, and nothing outside the buffer is
//! touched. Every other SIMD backend uses [`X`] for its per-call work (the
//! tag mask, a short AAD's hash) and for messages of a block or less.
//!
//! # Safety
//!
//! An [`AesNiToken`] is made only by [`AesNiToken::detect`], after run-time
//! detection found AES-NI, PCLMULQDQ, SSSE3 and SSE4.1 (or by a wider
//! backend whose own detection implies them, through
//! [`AesNiToken::implied`]). An [`X`] is made only from a token or from
//! other `X`s, so every register operation below runs on a CPU that has the
//! instructions; that is the one argument behind the `unsafe` blocks in
//! [`X`]'s methods. The entry points carry
//! `#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]`, into which
//! the skeleton is inlined. Memory is touched through references to arrays
//! of the right size, or through pointers whose validity the skeleton's
//! callers guarantee (see the `unsafe fn`s of [`Lanes`]).

use super::KeyBytes;
use super::stitched::{self, Block, Lanes, MAX_ROUND_KEYS, Shape};
use core::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_aesenc_si128, _mm_aesenclast_si128, _mm_aeskeygenassist_si128, _mm_and_si128,
    _mm_clmulepi64_si128, _mm_cvtsi128_si32, _mm_extract_epi32, _mm_loadu_si128, _mm_set_epi8, _mm_set_epi32,
    _mm_set_epi64x, _mm_set1_epi64x, _mm_setzero_si128, _mm_shuffle_epi8, _mm_shuffle_epi32, _mm_slli_si128,
    _mm_srli_si128, _mm_storeu_si128, _mm_xor_si128,
};
use zeroize::Zeroize;

/// Proof that this CPU has AES-NI, PCLMULQDQ, SSSE3 and SSE4.1.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AesNiToken(());

impl AesNiToken {
    /// The token, if run-time detection finds the features.
    pub(crate) fn detect() -> Option<AesNiToken> {
        (super::cpu::has_aesni() == Some(true)).then_some(AesNiToken(()))
    }

    /// The token for a CPU that a wider backend's detection has already
    /// vouched for.
    ///
    /// # Safety
    /// The CPU must have AES-NI, PCLMULQDQ, SSSE3 and SSE4.1.
    pub(super) unsafe fn implied() -> AesNiToken {
        AesNiToken(())
    }
}

/// One block in a 128-bit register.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct X(__m128i);

impl X {
    /// The register.
    #[inline(always)]
    pub(super) fn raw(self) -> __m128i {
        self.0
    }

    /// A register computed by a wider backend.
    ///
    /// # Safety
    /// The CPU must have AES-NI, PCLMULQDQ, SSSE3 and SSE4.1.
    #[inline(always)]
    pub(super) unsafe fn from_raw(raw: __m128i) -> X {
        X(raw)
    }
}

impl Zeroize for X {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

/// Run an instruction that needs the features an `X` proves.
macro_rules! x {
    ($e:expr) => {
        // SAFETY: an `X` (or the token it came from) exists only where
        // detection found AES-NI, PCLMULQDQ, SSSE3 and SSE4.1 (module docs).
        unsafe { $e }
    };
}

impl Lanes for X {
    type Token = AesNiToken;
    type Narrow = X;
    const BLOCKS: usize = 1;
    const KARATSUBA: bool = true;
    const GROUP_BLOCKS: [usize; 2] = [0, 0];
    const SHORT: usize = 0;

    #[inline(always)]
    fn narrow(t: AesNiToken) -> AesNiToken {
        t
    }
    #[inline(always)]
    fn zero(_: AesNiToken) -> X {
        X(x!(_mm_setzero_si128()))
    }
    #[inline(always)]
    fn splat(_: AesNiToken, x: X) -> X {
        x
    }
    #[inline(always)]
    fn low(_: AesNiToken, x: X) -> X {
        x
    }
    #[inline(always)]
    fn dwords(_: AesNiToken, dword: usize, first: u32, _step: u32) -> X {
        let d = |i: usize| if i == dword { first as i32 } else { 0 };
        X(x!(_mm_set_epi32(d(3), d(2), d(1), d(0))))
    }
    #[inline(always)]
    fn splat64(_: AesNiToken, v: u64) -> X {
        X(x!(_mm_set1_epi64x(v as i64)))
    }
    #[inline(always)]
    unsafe fn load(_: AesNiToken, src: *const u8) -> X {
        // SAFETY: 16 readable bytes (caller); the token proves the features.
        X(unsafe { _mm_loadu_si128(src.cast()) })
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut u8) {
        // SAFETY: 16 writable bytes (caller); `self` proves the features.
        unsafe { _mm_storeu_si128(dst.cast(), self.0) }
    }
    #[inline(always)]
    unsafe fn load_partial(t: AesNiToken, src: *const u8, n: usize) -> X {
        // SAFETY: `n` readable bytes (caller).
        X::from_partial(t, unsafe { core::slice::from_raw_parts(src, n.min(16)) })
    }
    #[inline(always)]
    unsafe fn store_partial(self, dst: *mut u8, n: usize) {
        // SAFETY: `n` writable bytes (caller), not aliased while we write.
        write_partial(unsafe { core::slice::from_raw_parts_mut(dst, n.min(16)) }, &self.to_bytes());
    }
    #[inline(always)]
    fn keep(self, n: usize) -> X {
        let mask = stitched::keep_mask(n);
        X(x!(_mm_and_si128(self.0, _mm_loadu_si128(mask.as_ptr().cast()))))
    }
    #[inline(always)]
    fn xor(self, other: X) -> X {
        X(x!(_mm_xor_si128(self.0, other.0)))
    }
    #[inline(always)]
    fn xor3(self, b: X, c: X) -> X {
        self.xor(b).xor(c)
    }
    #[inline(always)]
    fn add32(self, other: X) -> X {
        X(x!(_mm_add_epi32(self.0, other.0)))
    }
    #[inline(always)]
    fn byte_reverse(self) -> X {
        X(x!(_mm_shuffle_epi8(self.0, _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15))))
    }
    #[inline(always)]
    fn aes_round(self, round_key: X) -> X {
        X(x!(_mm_aesenc_si128(self.0, round_key.0)))
    }
    #[inline(always)]
    fn aes_last(self, round_key: X) -> X {
        X(x!(_mm_aesenclast_si128(self.0, round_key.0)))
    }
    #[inline(always)]
    fn clmul<const IMM: i32>(self, other: X) -> X {
        X(x!(_mm_clmulepi64_si128::<IMM>(self.0, other.0)))
    }
    #[inline(always)]
    fn swap_halves(self) -> X {
        X(x!(_mm_shuffle_epi32::<0x4e>(self.0)))
    }
    #[inline(always)]
    fn shift_up8(self) -> X {
        X(x!(_mm_slli_si128::<8>(self.0)))
    }
    #[inline(always)]
    fn shift_down8(self) -> X {
        X(x!(_mm_srli_si128::<8>(self.0)))
    }
    #[inline(always)]
    fn fold_lanes(self) -> X {
        self
    }
    stitched::one_lane!(AesNiToken);
}

impl Block for X {
    #[inline(always)]
    fn from_u128(_: AesNiToken, v: u128) -> X {
        X(x!(_mm_set_epi64x((v >> 64) as i64, v as i64)))
    }
    #[inline(always)]
    fn to_u128(self) -> u128 {
        u128::from_le_bytes(self.to_bytes())
    }
    #[inline(always)]
    fn low_u32(self) -> u32 {
        x!(_mm_cvtsi128_si32(self.0)) as u32
    }
    #[inline(always)]
    fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        // SAFETY: `out` is 16 writable bytes.
        unsafe { self.store(out.as_mut_ptr()) };
        out
    }
    #[inline(always)]
    fn from_partial(t: AesNiToken, bytes: &[u8]) -> X {
        let block = read_partial(bytes);
        // SAFETY: `block` is 16 readable bytes.
        unsafe { X::load(t, block.as_ptr()) }
    }
    #[inline(always)]
    fn expand_key(_: AesNiToken, key: KeyBytes<'_>) -> [X; MAX_ROUND_KEYS] {
        let key = key.as_slice();
        let nk = key.len() / 4;
        let total = 4 * (nk + 7);
        let mut w = [0u32; 4 * MAX_ROUND_KEYS];
        for (word, bytes) in w.iter_mut().zip(key.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for i in nk..total {
            let mut t = w[i - 1];
            if i % nk == 0 {
                t = sub_rot_word(t, i / nk);
            } else if nk == 8 && i % nk == 4 {
                t = sub_word(t);
            }
            w[i] = w[i - nk] ^ t;
        }
        let mut round_keys = [X(x!(_mm_setzero_si128())); MAX_ROUND_KEYS];
        for (rk, words) in round_keys.iter_mut().zip(w.chunks_exact(4)).take(nk + 7) {
            *rk = X(x!(_mm_set_epi32(words[3] as i32, words[2] as i32, words[1] as i32, words[0] as i32)));
        }
        w.zeroize();
        round_keys
    }
}

/// `SubWord(RotWord(w)) ^ Rcon[i]` for key expansion (`i` in 1..=10).
#[inline(always)]
fn sub_rot_word(w: u32, i: usize) -> u32 {
    // AESKEYGENASSIST works on words 1 and 3; put `w` in word 3. Its word 3
    // result is RotWord(SubWord(w)) ^ rcon, and RotWord commutes with SubWord.
    let x = x!(_mm_set_epi32(w as i32, 0, 0, 0));
    let r = x!(match i {
        1 => _mm_aeskeygenassist_si128::<0x01>(x),
        2 => _mm_aeskeygenassist_si128::<0x02>(x),
        3 => _mm_aeskeygenassist_si128::<0x04>(x),
        4 => _mm_aeskeygenassist_si128::<0x08>(x),
        5 => _mm_aeskeygenassist_si128::<0x10>(x),
        6 => _mm_aeskeygenassist_si128::<0x20>(x),
        7 => _mm_aeskeygenassist_si128::<0x40>(x),
        8 => _mm_aeskeygenassist_si128::<0x80>(x),
        9 => _mm_aeskeygenassist_si128::<0x1b>(x),
        _ => _mm_aeskeygenassist_si128::<0x36>(x),
    });
    x!(_mm_extract_epi32::<3>(r)) as u32
}

/// `SubWord(w)`, the extra step of AES-256 key expansion.
#[inline(always)]
fn sub_word(w: u32) -> u32 {
    let x = x!(_mm_set_epi32(w as i32, 0, 0, 0));
    x!(_mm_extract_epi32::<2>(_mm_aeskeygenassist_si128::<0x00>(x))) as u32
}

/// Up to 15 bytes, zero-padded to a block, read with at most four word loads
/// (overlapping where the length is not a power of two) instead of a loop.
#[inline(always)]
pub(super) fn read_partial(bytes: &[u8]) -> [u8; 16] {
    let n = bytes.len();
    let word8 = |at: usize| bytes.get(at..at + 8).and_then(|s| s.try_into().ok()).map_or(0, u64::from_le_bytes);
    let word4 = |at: usize| bytes.get(at..at + 4).and_then(|s| s.try_into().ok()).map_or(0, u32::from_le_bytes);
    let byte = |at: usize| bytes.get(at).copied().map_or(0, u64::from);
    let (lo, hi) = match n {
        0 => (0, 0),
        1..=3 => (byte(0) | byte(n / 2) << (8 * (n / 2)) | byte(n - 1) << (8 * (n - 1)), 0),
        4..=7 => (u64::from(word4(0)) | u64::from(word4(n - 4)) << (8 * (n - 4)), 0),
        // The last eight bytes end at `n`; shift out those below byte 8.
        8..=15 => (word8(0), word8(n - 8).checked_shr(8 * (16 - n as u32)).unwrap_or(0)),
        _ => (word8(0), word8(8)),
    };
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&lo.to_le_bytes());
    out[8..].copy_from_slice(&hi.to_le_bytes());
    out
}

/// Write the first `out.len()` (at most 16) bytes of `block` with overlapping
/// word stores instead of a loop.
#[inline(always)]
pub(super) fn write_partial(out: &mut [u8], block: &[u8; 16]) {
    let n = out.len().min(16);
    match n {
        0 => {}
        1..=3 => {
            out[0] = block[0];
            out[n / 2] = block[n / 2];
            out[n - 1] = block[n - 1];
        }
        4..=7 => {
            out[..4].copy_from_slice(&block[..4]);
            out[n - 4..n].copy_from_slice(&block[n - 4..n]);
        }
        8..=15 => {
            out[..8].copy_from_slice(&block[..8]);
            out[n - 8..n].copy_from_slice(&block[n - 8..n]);
        }
        _ => out[..16].copy_from_slice(block),
    }
}

/// The AES-NI backend's shape: eight 128-bit registers per batch, one
/// batch per reduction.
pub(crate) enum AesNi {}

impl Shape for AesNi {
    type V = X;
    type Batch = [X; 8];
    const PAIR: usize = 1;
    // Sealing two batches late: 7-13% faster with AES-256; 5-9% slower with AES-128 and AES-192.
    const LAGGED_SEAL: [bool; 3] = [false, false, true];
    type Narrow = AesNi;
}

stitched::kernel!(AesNi, "aes,pclmulqdq,ssse3,sse4.1", multi = (2, 4));

/// A key of this backend.
pub(crate) type AesNiKey = stitched::Key<AesNi>;

impl AesNiKey {
    /// Key setup; `None` unless this CPU has what the backend needs.
    pub(crate) fn new(key: KeyBytes<'_>) -> Option<AesNiKey> {
        AesNiToken::detect().map(|t| stitched::Key::with_token(t, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_reads_and_writes_cover_every_length() {
        let src: Vec<u8> = (1..=16).collect();
        for n in 0..=16 {
            let block = read_partial(&src[..n]);
            let mut expect = [0u8; 16];
            expect[..n].copy_from_slice(&src[..n]);
            assert_eq!(block, expect, "read {n}");
            let mut out = vec![0xEEu8; n];
            let full: [u8; 16] = src.as_slice().try_into().unwrap();
            write_partial(&mut out, &full);
            assert_eq!(out, &src[..n], "write {n}");
        }
    }

    #[test]
    fn round_keys_match_fips_197_appendix_a() {
        let Some(t) = AesNiToken::detect() else {
            eprintln!("skipped aesni: {}", crate::backend::Backend::AesNi.unsupported_reason().unwrap_or("?"));
            return;
        };
        let round_key = |key: &[u8], i: usize| X::expand_key(t, KeyBytes::new(key).unwrap())[i].to_bytes();
        // FIPS-197 A.1: AES-128, round key 10.
        let key = hex_literal::hex!("2b7e151628aed2a6abf7158809cf4f3c");
        assert_eq!(round_key(&key, 10), hex_literal::hex!("d014f9a8c9ee2589e13f0cc8b6630ca6"));
        // FIPS-197 A.2: AES-192, round key 12.
        let key = hex_literal::hex!("8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b");
        assert_eq!(round_key(&key, 12), hex_literal::hex!("e98ba06f448c773c8ecc720401002202"));
        // FIPS-197 A.3: AES-256, round key 14.
        let key = hex_literal::hex!("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
        assert_eq!(round_key(&key, 14), hex_literal::hex!("fe4890d1e6188d0b046df344706c631e"));
    }

    #[test]
    fn keep_clears_every_byte_past_n() {
        let Some(t) = AesNiToken::detect() else {
            eprintln!("skipped aesni: {}", crate::backend::Backend::AesNi.unsupported_reason().unwrap_or("?"));
            return;
        };
        let ones = X::from_u128(t, u128::MAX);
        for n in 0..=16 {
            let mut expect = [0u8; 16];
            expect[..n].fill(0xFF);
            assert_eq!(ones.keep(n).to_bytes(), expect, "keep {n}");
        }
    }
}
