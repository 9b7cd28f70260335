//! The VAES + VPCLMULQDQ backend on 512-bit registers (AVX-512): the
//! stitched skeleton with four blocks per register, sixteen per batch.
//!
//! # Shape
//!
//! A [`Z`] holds four blocks, one per 128-bit lane, and `VAESENC` and
//! `VPCLMULQDQ` work on each lane independently. A batch is four registers
//! (256 bytes); two batches share one reduction (32 products summed
//! unreduced, `H^32..H^1`), so sealing hashes a pair of batches in the
//! rounds of the next two and opening hashes each pair while it decrypts
//! it. Products are schoolbook (four multiplies per register) with the
//! middle terms added by three-input XORs (`VPTERNLOGQ`). All four lanes are
//! reduced at once and then added together.
//!
//! The tail (up to 255 bytes) is up to four registers moved with AVX-512
//! byte-masked loads and stores: no byte loops, and masked-off bytes are
//! neither read nor written, so nothing outside the buffer is touched.
//! Messages of a block or less run on the AES-NI code of the same key
//! ([`X`]), which sets up faster.
//!
//! # Safety
//!
//! A [`Vaes512Token`] is made only by [`Vaes512Token::detect`], after
//! run-time detection found VAES, VPCLMULQDQ, AVX-512 F/BW/VL and AES-NI
//! (with SSSE3 and SSE4.1). A [`Z`] is made only from a token or from other
//! `Z`s, so every register operation below runs on a CPU that has the
//! instructions; that is the one argument behind the `unsafe` blocks in
//! [`Z`]'s methods. The entry points carry the matching
//! `#[target_feature]`, into which the skeleton is inlined. Memory is
//! touched through pointers whose validity the skeleton's callers guarantee
//! (see the `unsafe fn`s of [`Lanes`]), and masked accesses touch only the
//! bytes their mask covers.

use super::KeyBytes;
use super::aesni::{AesNiToken, X};
use super::stitched::{self, Lanes, Shape};
use core::arch::x86_64::{
    __m512i, _MM_PERM_BADC, _mm_mask_storeu_epi8, _mm_maskz_loadu_epi8, _mm_set_epi8, _mm_xor_si128,
    _mm256_castsi256_si128, _mm256_extracti128_si256, _mm256_xor_si256, _mm512_add_epi32, _mm512_aesenc_epi128,
    _mm512_aesenclast_epi128, _mm512_broadcast_i32x4, _mm512_bslli_epi128, _mm512_bsrli_epi128, _mm512_castsi512_si128,
    _mm512_castsi512_si256, _mm512_clmulepi64_epi128, _mm512_extracti32x4_epi32, _mm512_extracti64x4_epi64,
    _mm512_inserti32x4, _mm512_loadu_si512, _mm512_mask_storeu_epi8, _mm512_maskz_loadu_epi8, _mm512_maskz_mov_epi8,
    _mm512_maskz_mov_epi64, _mm512_set_epi32, _mm512_set1_epi64, _mm512_setzero_si512, _mm512_shuffle_epi8,
    _mm512_shuffle_epi32, _mm512_shuffle_i64x2, _mm512_storeu_si512, _mm512_ternarylogic_epi64, _mm512_xor_si512,
    _mm512_zextsi128_si512,
};

/// Proof that this CPU has VAES, VPCLMULQDQ, AVX-512 F/BW/VL and AES-NI
/// (with SSSE3 and SSE4.1).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Vaes512Token(());

impl Vaes512Token {
    /// The token, if run-time detection finds the features.
    pub(crate) fn detect() -> Option<Vaes512Token> {
        (super::cpu::has_vaes512() == Some(true)).then_some(Vaes512Token(()))
    }
}

/// Four blocks in a 512-bit register.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct Z(__m512i);

/// Run an instruction that needs the features a `Z` proves.
macro_rules! z {
    ($e:expr) => {
        // SAFETY: a `Z` (or the token it came from) exists only where
        // detection found VAES, VPCLMULQDQ, AVX-512 F/BW/VL and AES-NI
        // (module docs).
        unsafe { $e }
    };
}

/// One lane's `n` (0..=16) bytes, zeros after them.
///
/// # Safety
/// The `n` bytes at the pointer must be readable, and the CPU must have
/// AVX-512 BW/VL (a caller holding a `Z` token).
#[inline(always)]
unsafe fn load_lane((src, n): (*const u8, usize)) -> X {
    // SAFETY: the mask covers the lane's `n` readable bytes (caller) and no
    // others; masked-off bytes are neither read nor faulted on.
    unsafe { X::from_raw(_mm_maskz_loadu_epi8(lane_bytes(n), src.cast())) }
}

/// The byte mask of the first `n` (0..=16) bytes of a lane.
#[inline(always)]
fn lane_bytes(n: usize) -> u16 {
    u16::MAX.checked_shr(16 - n.min(16) as u32).unwrap_or(0)
}

/// The byte mask of the first `n` (0..=64) bytes of a register.
#[inline(always)]
fn first_bytes(n: usize) -> u64 {
    u64::MAX.checked_shr(64 - n.min(64) as u32).unwrap_or(0)
}

impl Lanes for Z {
    type Token = Vaes512Token;
    type Narrow = X;
    const BLOCKS: usize = 4;
    const KARATSUBA: bool = false;
    const GROUP_BLOCKS: [usize; 2] = [16, 16];
    const SHORT: usize = 17;

    #[inline(always)]
    fn narrow(_: Vaes512Token) -> AesNiToken {
        // SAFETY: `has_vaes512` requires AES-NI, PCLMULQDQ, SSSE3 and SSE4.1
        // as well.
        unsafe { AesNiToken::implied() }
    }
    #[inline(always)]
    fn zero(_: Vaes512Token) -> Z {
        Z(z!(_mm512_setzero_si512()))
    }
    #[inline(always)]
    fn splat(_: Vaes512Token, x: X) -> Z {
        Z(z!(_mm512_broadcast_i32x4(x.raw())))
    }
    #[inline(always)]
    fn low(_: Vaes512Token, x: X) -> Z {
        Z(z!(_mm512_zextsi128_si512(x.raw())))
    }
    #[inline(always)]
    fn dwords(_: Vaes512Token, dword: usize, first: u32, step: u32) -> Z {
        let d = |lane: u32, i: usize| if i == dword { first.wrapping_add(lane.wrapping_mul(step)) as i32 } else { 0 };
        Z(z!(_mm512_set_epi32(
            d(3, 3),
            d(3, 2),
            d(3, 1),
            d(3, 0),
            d(2, 3),
            d(2, 2),
            d(2, 1),
            d(2, 0),
            d(1, 3),
            d(1, 2),
            d(1, 1),
            d(1, 0),
            d(0, 3),
            d(0, 2),
            d(0, 1),
            d(0, 0),
        )))
    }
    #[inline(always)]
    fn splat64(_: Vaes512Token, v: u64) -> Z {
        Z(z!(_mm512_set1_epi64(v as i64)))
    }
    #[inline(always)]
    unsafe fn load(_: Vaes512Token, src: *const u8) -> Z {
        // SAFETY: 64 readable bytes (caller); the token proves the features.
        Z(unsafe { _mm512_loadu_si512(src.cast()) })
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut u8) {
        // SAFETY: 64 writable bytes (caller); `self` proves the features.
        unsafe { _mm512_storeu_si512(dst.cast(), self.0) }
    }
    #[inline(always)]
    unsafe fn load_partial(_: Vaes512Token, src: *const u8, n: usize) -> Z {
        // SAFETY: the mask covers the `n` readable bytes (caller) and no
        // others; masked-off bytes are neither read nor faulted on.
        Z(unsafe { _mm512_maskz_loadu_epi8(first_bytes(n), src.cast()) })
    }
    #[inline(always)]
    unsafe fn store_partial(self, dst: *mut u8, n: usize) {
        // SAFETY: the mask covers the `n` writable bytes (caller) and no
        // others.
        unsafe { _mm512_mask_storeu_epi8(dst.cast(), first_bytes(n), self.0) }
    }
    #[inline(always)]
    fn keep(self, n: usize) -> Z {
        Z(z!(_mm512_maskz_mov_epi8(first_bytes(n), self.0)))
    }
    #[inline(always)]
    fn xor(self, other: Z) -> Z {
        Z(z!(_mm512_xor_si512(self.0, other.0)))
    }
    #[inline(always)]
    fn xor3(self, b: Z, c: Z) -> Z {
        Z(z!(_mm512_ternarylogic_epi64::<0x96>(self.0, b.0, c.0)))
    }
    #[inline(always)]
    fn add32(self, other: Z) -> Z {
        Z(z!(_mm512_add_epi32(self.0, other.0)))
    }
    #[inline(always)]
    fn byte_reverse(self) -> Z {
        let mask = z!(_mm512_broadcast_i32x4(_mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)));
        Z(z!(_mm512_shuffle_epi8(self.0, mask)))
    }
    #[inline(always)]
    fn aes_round(self, round_key: Z) -> Z {
        Z(z!(_mm512_aesenc_epi128(self.0, round_key.0)))
    }
    #[inline(always)]
    fn aes_last(self, round_key: Z) -> Z {
        Z(z!(_mm512_aesenclast_epi128(self.0, round_key.0)))
    }
    #[inline(always)]
    fn clmul<const IMM: i32>(self, other: Z) -> Z {
        Z(z!(_mm512_clmulepi64_epi128::<IMM>(self.0, other.0)))
    }
    #[inline(always)]
    fn swap_halves(self) -> Z {
        Z(z!(_mm512_shuffle_epi32::<_MM_PERM_BADC>(self.0)))
    }
    #[inline(always)]
    fn shift_up8(self) -> Z {
        Z(z!(_mm512_bslli_epi128::<8>(self.0)))
    }
    #[inline(always)]
    fn shift_down8(self) -> Z {
        Z(z!(_mm512_bsrli_epi128::<8>(self.0)))
    }
    #[inline(always)]
    fn lane0(self) -> X {
        z!(X::from_raw(_mm512_castsi512_si128(self.0)))
    }
    #[inline(always)]
    fn transpose4(_: Vaes512Token, regs: [Z; 4]) -> [Z; 4] {
        let [a, b, c, d] = regs.map(|r| r.0);
        // Lanes 0-1 and 2-3 of each pair of registers, then the pairs.
        let (ab01, ab23) = (z!(_mm512_shuffle_i64x2::<0x44>(a, b)), z!(_mm512_shuffle_i64x2::<0xee>(a, b)));
        let (cd01, cd23) = (z!(_mm512_shuffle_i64x2::<0x44>(c, d)), z!(_mm512_shuffle_i64x2::<0xee>(c, d)));
        [
            Z(z!(_mm512_shuffle_i64x2::<0x88>(ab01, cd01))),
            Z(z!(_mm512_shuffle_i64x2::<0xdd>(ab01, cd01))),
            Z(z!(_mm512_shuffle_i64x2::<0x88>(ab23, cd23))),
            Z(z!(_mm512_shuffle_i64x2::<0xdd>(ab23, cd23))),
        ]
    }
    #[inline(always)]
    fn from_lanes(_: Vaes512Token, lanes: [X; 4]) -> Z {
        let z = z!(_mm512_zextsi128_si512(lanes[0].raw()));
        let z = z!(_mm512_inserti32x4::<1>(z, lanes[1].raw()));
        let z = z!(_mm512_inserti32x4::<2>(z, lanes[2].raw()));
        Z(z!(_mm512_inserti32x4::<3>(z, lanes[3].raw())))
    }
    #[inline(always)]
    fn lane(self, i: usize) -> X {
        z!(X::from_raw(match i {
            0 => _mm512_castsi512_si128(self.0),
            1 => _mm512_extracti32x4_epi32::<1>(self.0),
            2 => _mm512_extracti32x4_epi32::<2>(self.0),
            _ => _mm512_extracti32x4_epi32::<3>(self.0),
        }))
    }
    #[inline(always)]
    unsafe fn gather(t: Vaes512Token, lanes: [(*const u8, usize); 4]) -> Z {
        // SAFETY: each lane's bytes are readable (caller).
        let l = unsafe { [load_lane(lanes[0]), load_lane(lanes[1]), load_lane(lanes[2]), load_lane(lanes[3])] };
        Z::from_lanes(t, l)
    }
    #[inline(always)]
    unsafe fn scatter(self, lanes: [(*mut u8, usize); 4]) {
        for (i, (dst, n)) in lanes.into_iter().enumerate() {
            // SAFETY: the mask covers the lane's `n` writable bytes (caller)
            // and no others.
            unsafe { _mm_mask_storeu_epi8(dst.cast(), lane_bytes(n), self.lane(i).raw()) };
        }
    }
    #[inline(always)]
    unsafe fn gather_full(t: Vaes512Token, lanes: [*const u8; 4]) -> Z {
        let x = Z::narrow(t);
        // SAFETY: 16 readable bytes at each pointer (caller).
        let l = unsafe { [X::load(x, lanes[0]), X::load(x, lanes[1]), X::load(x, lanes[2]), X::load(x, lanes[3])] };
        Z::from_lanes(t, l)
    }
    #[inline(always)]
    unsafe fn scatter_full(self, lanes: [*mut u8; 4]) {
        // SAFETY: 16 writable bytes at each pointer (caller).
        unsafe {
            self.lane(0).store(lanes[0]);
            self.lane(1).store(lanes[1]);
            self.lane(2).store(lanes[2]);
            self.lane(3).store(lanes[3]);
        }
    }
    #[inline(always)]
    fn keep_lanes(self, n: [usize; 4]) -> Z {
        let mask = n.iter().enumerate().fold(0u64, |m, (i, &n)| m | (u64::from(lane_bytes(n)) << (16 * i)));
        Z(z!(_mm512_maskz_mov_epi8(mask, self.0)))
    }
    #[inline(always)]
    fn select_lanes(self, lanes: u32) -> Z {
        // Two 64-bit elements per lane.
        let mask = (0..4).fold(0u8, |m, i| if lanes & (1 << i) != 0 { m | (3 << (2 * i)) } else { m });
        Z(z!(_mm512_maskz_mov_epi64(mask, self.0)))
    }
    #[inline(always)]
    fn fold_lanes(self) -> X {
        let half = z!(_mm256_xor_si256(_mm512_castsi512_si256(self.0), _mm512_extracti64x4_epi64::<1>(self.0)));
        z!(X::from_raw(_mm_xor_si128(_mm256_castsi256_si128(half), _mm256_extracti128_si256::<1>(half))))
    }
}

/// The 512-bit backend's shape: four registers per batch, two batches per
/// reduction.
pub(crate) enum Vaes512 {}

impl Shape for Vaes512 {
    type V = Z;
    type Batch = [Z; 4];
    const PAIR: usize = 2;
    // Sealing two batches late: 5-8% faster from 768 B up with AES-128 and AES-256, level with AES-192.
    const LAGGED_SEAL: [bool; 3] = [true, false, true];
    type Narrow = super::aesni::AesNi;
}

stitched::kernel!(Vaes512, "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1", multi = (1, 4));

/// A key of this backend.
pub(crate) type Vaes512Key = stitched::Key<Vaes512>;

impl Vaes512Key {
    /// Key setup; `None` unless this CPU has what the backend needs.
    pub(crate) fn new(key: KeyBytes<'_>) -> Option<Vaes512Key> {
        Vaes512Token::detect().map(|t| stitched::Key::with_token(t, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_accesses_touch_exactly_n_bytes() {
        let Some(t) = Vaes512Token::detect() else {
            eprintln!("skipped vaes512: {}", crate::backend::Backend::Vaes512.unsupported_reason().unwrap_or("?"));
            return;
        };
        let src: Vec<u8> = (1..=64).collect();
        for n in 1..=64 {
            // SAFETY: `n` bytes of `src` are readable.
            let v = unsafe { Z::load_partial(t, src.as_ptr(), n) };
            let mut out = [0xEEu8; 65];
            // SAFETY: `out` has 65 writable bytes.
            unsafe { v.store_partial(out.as_mut_ptr(), n) };
            assert_eq!(&out[..n], &src[..n], "{n}");
            assert!(out[n..].iter().all(|&b| b == 0xEE), "nothing past {n} written");
            let mut full = [0u8; 64];
            // SAFETY: `full` is 64 writable bytes.
            unsafe { v.store(full.as_mut_ptr()) };
            assert!(full[n..].iter().all(|&b| b == 0), "zeros past {n} read");
        }
        assert_eq!(first_bytes(0), 0);
        assert_eq!(first_bytes(64), u64::MAX);
    }
}
