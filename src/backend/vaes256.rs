//! The VAES + VPCLMULQDQ backend on 256-bit registers (AVX2): the stitched
//! skeleton with two blocks per register, eight per batch.
//!
//! # Shape
//!
//! A [`Y`] holds two consecutive blocks, one per 128-bit lane, and the
//! 256-bit forms of `VAESENC` and `VPCLMULQDQ` work on both lanes at once. A
//! batch is four registers (128 bytes), hashed under one reduction while
//! the next batch goes through the first four AES rounds. Products are
//! schoolbook (four multiplies per register); without AVX-512 there is no
//! three-input XOR, so the middle terms take two XORs.
//!
//! This is the backend for CPUs with VAES but no AVX-512 (Alder Lake and
//! later client cores, Zen 3); its detection asks only for what the 256-bit
//! forms need (see `cpu::has_vaes256`). Partial registers in the tail are a
//! whole 16-byte load or store and the AES-NI backend's overlapping word
//! accesses for the rest, never byte loops, never a byte outside the buffer.
//! Messages of a block or less run on the AES-NI code of the same key
//! ([`X`]), which sets up faster.
//!
//! # Safety
//!
//! A [`Vaes256Token`] is made only by [`Vaes256Token::detect`], after
//! run-time detection found VAES, VPCLMULQDQ, AVX2 and AES-NI (with SSSE3
//! and SSE4.1). A [`Y`] is made only from a token or from other `Y`s, so
//! every register operation below runs on a CPU that has the instructions;
//! that is the one argument behind the `unsafe` blocks in [`Y`]'s methods.
//! The entry points carry the matching `#[target_feature]`, into which the
//! skeleton is inlined. Memory is touched through pointers whose validity
//! the skeleton's callers guarantee (see the `unsafe fn`s of [`Lanes`]).

use super::KeyBytes;
use super::aesni::{AesNiToken, X};
use super::stitched::{self, Lanes, Shape};
use core::arch::x86_64::{
    __m256i, _mm_set_epi8, _mm_xor_si128, _mm256_add_epi32, _mm256_aesenc_epi128, _mm256_aesenclast_epi128,
    _mm256_and_si256, _mm256_broadcastsi128_si256, _mm256_bslli_epi128, _mm256_bsrli_epi128, _mm256_castsi256_si128,
    _mm256_clmulepi64_epi128, _mm256_extracti128_si256, _mm256_loadu_si256, _mm256_set_epi32, _mm256_set_epi64x,
    _mm256_set_m128i, _mm256_set1_epi64x, _mm256_setzero_si256, _mm256_shuffle_epi8, _mm256_shuffle_epi32,
    _mm256_storeu_si256, _mm256_xor_si256, _mm256_zextsi128_si256,
};

/// Proof that this CPU has VAES, VPCLMULQDQ, AVX2 and AES-NI (with SSSE3
/// and SSE4.1).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Vaes256Token(());

impl Vaes256Token {
    /// The token, if run-time detection finds the features.
    pub(crate) fn detect() -> Option<Vaes256Token> {
        (super::cpu::has_vaes256() == Some(true)).then_some(Vaes256Token(()))
    }
}

/// Two blocks in a 256-bit register.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct Y(__m256i);

/// Run an instruction that needs the features a `Y` proves.
macro_rules! y {
    ($e:expr) => {
        // SAFETY: a `Y` (or the token it came from) exists only where
        // detection found VAES, VPCLMULQDQ, AVX2 and AES-NI (module docs).
        unsafe { $e }
    };
}

/// `[0xFF; 32]` then `[0; 32]`: the 32 bytes from offset `32 - n` keep the
/// first `n` bytes of a register.
static KEEP: [u8; 64] = {
    let mut m = [0u8; 64];
    let mut i = 0;
    while i < 32 {
        m[i] = 0xFF;
        i += 1;
    }
    m
};

impl Lanes for Y {
    type Token = Vaes256Token;
    type Narrow = X;
    const BLOCKS: usize = 2;
    const KARATSUBA: bool = false;
    const GROUP_BLOCKS: [usize; 2] = [0, 0];
    const SHORT: usize = 17;

    #[inline(always)]
    fn narrow(_: Vaes256Token) -> AesNiToken {
        // SAFETY: `has_vaes256` requires AES-NI, PCLMULQDQ, SSSE3 and SSE4.1
        // as well.
        unsafe { AesNiToken::implied() }
    }
    #[inline(always)]
    fn zero(_: Vaes256Token) -> Y {
        Y(y!(_mm256_setzero_si256()))
    }
    #[inline(always)]
    fn splat(_: Vaes256Token, x: X) -> Y {
        Y(y!(_mm256_broadcastsi128_si256(x.raw())))
    }
    #[inline(always)]
    fn low(_: Vaes256Token, x: X) -> Y {
        Y(y!(_mm256_zextsi128_si256(x.raw())))
    }
    #[inline(always)]
    fn dwords(_: Vaes256Token, dword: usize, first: u32, step: u32) -> Y {
        let d = |lane: u32, i: usize| if i == dword { first.wrapping_add(lane.wrapping_mul(step)) as i32 } else { 0 };
        Y(y!(_mm256_set_epi32(d(1, 3), d(1, 2), d(1, 1), d(1, 0), d(0, 3), d(0, 2), d(0, 1), d(0, 0))))
    }
    #[inline(always)]
    fn splat64(_: Vaes256Token, v: u64) -> Y {
        Y(y!(_mm256_set1_epi64x(v as i64)))
    }
    #[inline(always)]
    unsafe fn load(_: Vaes256Token, src: *const u8) -> Y {
        // SAFETY: 32 readable bytes (caller); the token proves the features.
        Y(unsafe { _mm256_loadu_si256(src.cast()) })
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut u8) {
        // SAFETY: 32 writable bytes (caller); `self` proves the features.
        unsafe { _mm256_storeu_si256(dst.cast(), self.0) }
    }
    #[inline(always)]
    unsafe fn load_partial(t: Vaes256Token, src: *const u8, n: usize) -> Y {
        let n = n.min(32);
        let (lo_len, hi_len) = (n.min(16), n.saturating_sub(16));
        let x = Y::narrow(t);
        // SAFETY: the first `lo_len` and the next `hi_len` of the `n`
        // readable bytes (caller).
        let (lo, hi) = unsafe {
            (
                if lo_len == 16 { X::load(x, src) } else { X::load_partial(x, src, lo_len) },
                if hi_len == 0 { X::zero(x) } else { X::load_partial(x, src.add(16), hi_len) },
            )
        };
        Y(y!(_mm256_set_m128i(hi.raw(), lo.raw())))
    }
    #[inline(always)]
    unsafe fn store_partial(self, dst: *mut u8, n: usize) {
        let n = n.min(32);
        // SAFETY: `self` proves the features, which imply AES-NI's.
        let (lo, hi) = unsafe {
            (X::from_raw(_mm256_castsi256_si128(self.0)), X::from_raw(_mm256_extracti128_si256::<1>(self.0)))
        };
        // SAFETY: the first `n` bytes at `dst` are writable (caller).
        unsafe {
            if n >= 16 {
                lo.store(dst);
                if n > 16 {
                    hi.store_partial(dst.add(16), n - 16);
                }
            } else {
                lo.store_partial(dst, n);
            }
        }
    }
    #[inline(always)]
    fn keep(self, n: usize) -> Y {
        let mask = KEEP.get(32 - n.min(32)..).and_then(|m| m.first_chunk::<32>()).copied().unwrap_or([0; 32]);
        Y(y!(_mm256_and_si256(self.0, _mm256_loadu_si256(mask.as_ptr().cast()))))
    }
    #[inline(always)]
    fn xor(self, other: Y) -> Y {
        Y(y!(_mm256_xor_si256(self.0, other.0)))
    }
    #[inline(always)]
    fn xor3(self, b: Y, c: Y) -> Y {
        self.xor(b).xor(c)
    }
    #[inline(always)]
    fn add32(self, other: Y) -> Y {
        Y(y!(_mm256_add_epi32(self.0, other.0)))
    }
    #[inline(always)]
    fn byte_reverse(self) -> Y {
        let mask = y!(_mm256_broadcastsi128_si256(_mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)));
        Y(y!(_mm256_shuffle_epi8(self.0, mask)))
    }
    #[inline(always)]
    fn aes_round(self, round_key: Y) -> Y {
        Y(y!(_mm256_aesenc_epi128(self.0, round_key.0)))
    }
    #[inline(always)]
    fn aes_last(self, round_key: Y) -> Y {
        Y(y!(_mm256_aesenclast_epi128(self.0, round_key.0)))
    }
    #[inline(always)]
    fn clmul<const IMM: i32>(self, other: Y) -> Y {
        Y(y!(_mm256_clmulepi64_epi128::<IMM>(self.0, other.0)))
    }
    #[inline(always)]
    fn swap_halves(self) -> Y {
        Y(y!(_mm256_shuffle_epi32::<0x4e>(self.0)))
    }
    #[inline(always)]
    fn shift_up8(self) -> Y {
        Y(y!(_mm256_bslli_epi128::<8>(self.0)))
    }
    #[inline(always)]
    fn shift_down8(self) -> Y {
        Y(y!(_mm256_bsrli_epi128::<8>(self.0)))
    }
    #[inline(always)]
    fn lane0(self) -> X {
        y!(X::from_raw(_mm256_castsi256_si128(self.0)))
    }
    #[inline(always)]
    fn fold_lanes(self) -> X {
        y!(X::from_raw(_mm_xor_si128(_mm256_castsi256_si128(self.0), _mm256_extracti128_si256::<1>(self.0))))
    }
    #[inline(always)]
    fn from_lanes(_: Vaes256Token, lanes: [X; 4]) -> Y {
        Y(y!(_mm256_set_m128i(lanes[1].raw(), lanes[0].raw())))
    }
    #[inline(always)]
    fn lane(self, i: usize) -> X {
        if i == 0 { self.lane0() } else { y!(X::from_raw(_mm256_extracti128_si256::<1>(self.0))) }
    }
    #[inline(always)]
    unsafe fn gather(t: Vaes256Token, lanes: [(*const u8, usize); 4]) -> Y {
        let x = Y::narrow(t);
        // SAFETY: each lane's bytes are readable (caller).
        let (lo, hi) = unsafe { (X::gather(x, [lanes[0]; 4]), X::gather(x, [lanes[1]; 4])) };
        Y::from_lanes(t, [lo, hi, lo, hi])
    }
    #[inline(always)]
    unsafe fn scatter(self, lanes: [(*mut u8, usize); 4]) {
        // SAFETY: each lane's bytes are writable (caller).
        unsafe {
            self.lane(0).scatter([lanes[0]; 4]);
            self.lane(1).scatter([lanes[1]; 4]);
        }
    }
    #[inline(always)]
    unsafe fn gather_full(t: Vaes256Token, lanes: [*const u8; 4]) -> Y {
        let x = Y::narrow(t);
        // SAFETY: 16 readable bytes at each pointer (caller).
        let (lo, hi) = unsafe { (X::load(x, lanes[0]), X::load(x, lanes[1])) };
        Y(y!(_mm256_set_m128i(hi.raw(), lo.raw())))
    }
    #[inline(always)]
    unsafe fn scatter_full(self, lanes: [*mut u8; 4]) {
        // SAFETY: 16 writable bytes at each pointer (caller).
        unsafe {
            self.lane(0).store(lanes[0]);
            self.lane(1).store(lanes[1]);
        }
    }
    #[inline(always)]
    fn keep_lanes(self, n: [usize; 4]) -> Y {
        let (lo, hi) = (self.lane(0).keep(n[0]), self.lane(1).keep(n[1]));
        Y(y!(_mm256_set_m128i(hi.raw(), lo.raw())))
    }
    #[inline(always)]
    fn select_lanes(self, lanes: u32) -> Y {
        let all = |bit: u32| if lanes & bit != 0 { -1i64 } else { 0 };
        Y(y!(_mm256_and_si256(self.0, _mm256_set_epi64x(all(2), all(2), all(1), all(1)))))
    }
}

/// The 256-bit backend's shape: four registers per batch, one batch per
/// reduction.
pub(crate) enum Vaes256 {}

impl Shape for Vaes256 {
    type V = Y;
    type Batch = [Y; 4];
    const PAIR: usize = 1;
    // Sealing two batches late: 3-6% faster with AES-128; level with AES-192 and 5-7% slower with AES-256.
    const LAGGED_SEAL: [bool; 3] = [true, false, false];
    type Narrow = super::aesni::AesNi;
}

stitched::kernel!(Vaes256, "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1", multi = (2, 2));

/// A key of this backend.
pub(crate) type Vaes256Key = stitched::Key<Vaes256>;

impl Vaes256Key {
    /// Key setup; `None` unless this CPU has what the backend needs.
    pub(crate) fn new(key: KeyBytes<'_>) -> Option<Vaes256Key> {
        Vaes256Token::detect().map(|t| stitched::Key::with_token(t, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_accesses_touch_exactly_n_bytes_and_keep_masks_the_rest() {
        let Some(t) = Vaes256Token::detect() else {
            eprintln!("skipped vaes256: {}", crate::backend::Backend::Vaes256.unsupported_reason().unwrap_or("?"));
            return;
        };
        let src: Vec<u8> = (1..=32).collect();
        // SAFETY: 32 readable bytes.
        let ones = unsafe { Y::load(t, [0xFFu8; 32].as_ptr()) };
        for n in 1..=32 {
            // SAFETY: `n` bytes of `src` are readable.
            let v = unsafe { Y::load_partial(t, src.as_ptr(), n) };
            let mut out = [0xEEu8; 33];
            // SAFETY: `out` has 33 writable bytes.
            unsafe { v.store_partial(out.as_mut_ptr(), n) };
            assert_eq!(&out[..n], &src[..n], "{n}");
            assert!(out[n..].iter().all(|&b| b == 0xEE), "nothing past {n} written");
            let mut full = [0u8; 32];
            // SAFETY: `full` is 32 writable bytes.
            unsafe { v.store(full.as_mut_ptr()) };
            assert!(full[n..].iter().all(|&b| b == 0), "zeros past {n} read");
            // SAFETY: as above.
            unsafe { ones.keep(n).store(full.as_mut_ptr()) };
            assert!(full[..n].iter().all(|&b| b == 0xFF) && full[n..].iter().all(|&b| b == 0), "keep {n}");
        }
    }
}
