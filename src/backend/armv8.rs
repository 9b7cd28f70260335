//! The ARMv8 Cryptography Extension backend (AArch64): the stitched
//! skeleton on 128-bit NEON registers, eight blocks per batch.
//!
//! # What the CPU does for us
//!
//! `AESE` performs the first half of an AES round on a 16-byte block:
//! AddRoundKey, then SubBytes and ShiftRows. `AESMC` is MixColumns.
//! `PMULL`/`PMULL2` multiply the low/high 64-bit halves of two registers as
//! polynomials over GF(2) into a 128-bit product. All of these take the same
//! time for every operand, so this backend has no secret-dependent timing
//! either; it is not the reference (see `scalar`), only a fast path. NEON
//! itself (byte reversal with `REV64` and `EXT`, 32-bit adds, table lookups)
//! is part of every AArch64 CPU.
//!
//! # Rounds
//!
//! x86's `AESENC` ends a round with the key XOR; `AESE` begins one with it.
//! The skeleton only asks for the rounds in order, `aes_first(k0)`,
//! `aes_round(k1)` .. `aes_round(k(R-1))`, `aes_last(kR)`, and never looks
//! at the state in between, so this backend cuts the rounds where its
//! instructions do: `aes_first` is `AESE` with round key 0 (the key XOR,
//! SubBytes and ShiftRows of round 1), each `aes_round` is `AESMC` (the
//! rest of the previous round) then `AESE` with the next key, and
//! `aes_last` is the XOR with the last key. That is `2R` instructions per
//! block, the count of hand-written ARM code, in the same order (`AESE`,
//! `AESMC`, `AESE`, ...), so the pairs that many cores fuse into one
//! operation (an `AESE` followed by an `AESMC` of its result) stay adjacent.
//! Mapping x86's rounds one to one (`AESE` with a zero key, `AESMC`, then an
//! `EOR` with the key) would cost `3R - 1`, half as much again on the same
//! pipes. The round keys are the standard FIPS 197 schedule.
//!
//! # Shape
//!
//! An [`X`] is one block, so a batch is eight registers (128 bytes), hashed
//! under one reduction: `acc' = (acc + C1) H^8 + C2 H^7 + ... + C8 H`, one
//! block's multiplies after each of the first eight AES rounds of the next
//! batch, as on AES-NI. Products are Karatsuba's (three `PMULL`s per block,
//! the key's table of half-sums supplying `h_lo + h_hi`), which saves a
//! multiply for an `EXT` and two `EOR`s. Thirty-two vector registers hold
//! the eight counters, the hash's running sums and operands, and most round
//! keys and powers of H, so the loop loads little besides its data.
//!
//! A partial block of 1 to 15 bytes is read with at most two 8-byte loads
//! (or two 4-byte, or three 1-byte ones), the second ending where the bytes
//! end and shifted into place, and written the same way with overlapping
//! stores (for 9 to 15 bytes the second store's bytes picked with `TBL`):
//! never a byte loop, and nothing outside the buffer is touched.
//!
//! # Key expansion
//!
//! There is no `AESKEYGENASSIST`: SubWord is `AESE` with a zero key on a
//! register holding the word in all four columns (ShiftRows moves bytes
//! between columns, which are equal, so column 0 is SubWord of the word);
//! RotWord and the round constant are integer operations.
//!
//! # Safety
//!
//! An [`Armv8Token`] is made only by [`Armv8Token::detect`], after run-time
//! detection found the AES and PMULL instructions on a little-endian build.
//! An [`X`] is made only from a token or from other `X`s, so every register
//! operation below runs on a CPU that has the instructions; that is the one
//! argument behind the `unsafe` blocks in [`X`]'s methods. The entry points
//! carry `#[target_feature(enable = "neon,aes")]`, into which the skeleton
//! is inlined. Memory is touched through references to arrays of the right
//! size, or through pointers whose validity the skeleton's callers
//! guarantee (see the `unsafe fn`s of [`Lanes`]).

// AArch64's intrinsics are `#[inline(always)]` with their target features
// (x86's are plain `#[inline]`), so rustc notes that they cannot be inlined
// into the methods below, which have no target features. They are inlined
// where it matters: the methods are inlined into the `#[target_feature]`
// entry points, and the intrinsics into those (no calls to them in the
// release build's code).
#![allow(unknown_lints, inline_always_mismatching_target_features)]

use super::KeyBytes;
use super::stitched::{self, Block, Lanes, MAX_ROUND_KEYS, Shape};
use core::arch::aarch64::{
    uint8x16_t, vaddq_u32, vaeseq_u8, vaesmcq_u8, vandq_u8, vcombine_u8, vcombine_u64, vcreate_u8, vcreate_u64,
    vdup_n_s64, vdupq_n_u8, vdupq_n_u32, vdupq_n_u64, veorq_u8, vextq_u8, vget_low_u8, vgetq_lane_u32, vgetq_lane_u64,
    vld1_u8, vld1q_u8, vmull_high_p64, vmull_p64, vqtbl1_u8, vreinterpret_u8_u64, vreinterpret_u64_u8,
    vreinterpretq_p64_u8, vreinterpretq_u8_p128, vreinterpretq_u8_u32, vreinterpretq_u8_u64, vreinterpretq_u32_u8,
    vreinterpretq_u64_u8, vrev64q_u8, vshl_u64, vst1_u8, vst1q_u8,
};
use zeroize::Zeroize;

/// Proof that this CPU has the ARMv8 AES and PMULL instructions (and that
/// this build is little-endian, as the lane conversions below assume).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Armv8Token(());

impl Armv8Token {
    /// The token, if run-time detection finds the features.
    pub(crate) fn detect() -> Option<Armv8Token> {
        (super::cpu::has_armv8() == Some(true)).then_some(Armv8Token(()))
    }
}

/// One block in a 128-bit NEON register.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(crate) struct X(uint8x16_t);

impl Zeroize for X {
    fn zeroize(&mut self) {
        self.0.zeroize();
    }
}

/// Run an instruction that needs the features an `X` proves.
macro_rules! n {
    ($e:expr) => {
        // SAFETY: an `X` (or the token it came from) exists only where
        // detection found the AES and PMULL instructions (module docs);
        // NEON is part of every AArch64 CPU.
        unsafe { $e }
    };
}

/// `0, 1, .., 15`: from offset `k`, the `TBL` indices that move bytes
/// `k..k + 8` of a block to the bottom.
static IOTA: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

impl X {
    /// The register with `lo` in its low 64 bits and `hi` in its high.
    #[inline(always)]
    fn from_words(lo: u64, hi: u64) -> X {
        X(n!(vreinterpretq_u8_u64(vcombine_u64(vcreate_u64(lo), vcreate_u64(hi)))))
    }

    /// The low 64 bits.
    #[inline(always)]
    fn low_u64(self) -> u64 {
        n!(vgetq_lane_u64::<0>(vreinterpretq_u64_u8(self.0)))
    }
}

impl Lanes for X {
    type Token = Armv8Token;
    type Narrow = X;
    const BLOCKS: usize = 1;
    const KARATSUBA: bool = true;
    // The group kernel is compiled and tested here but not used by batches:
    // whether it beats single calls on ARM cores was never measured (qemu
    // says nothing about speed).
    const GROUP_BLOCKS: [usize; 2] = [0, 0];
    const SHORT: usize = 0;

    #[inline(always)]
    fn narrow(t: Armv8Token) -> Armv8Token {
        t
    }
    #[inline(always)]
    fn zero(_: Armv8Token) -> X {
        X(n!(vdupq_n_u8(0)))
    }
    #[inline(always)]
    fn splat(_: Armv8Token, x: X) -> X {
        x
    }
    #[inline(always)]
    fn low(_: Armv8Token, x: X) -> X {
        x
    }
    #[inline(always)]
    fn dwords(t: Armv8Token, dword: usize, first: u32, _step: u32) -> X {
        X::from_u128(t, u128::from(first).checked_shl(32 * dword as u32).unwrap_or(0))
    }
    #[inline(always)]
    fn splat64(_: Armv8Token, v: u64) -> X {
        X(n!(vreinterpretq_u8_u64(vdupq_n_u64(v))))
    }
    #[inline(always)]
    unsafe fn load(_: Armv8Token, src: *const u8) -> X {
        // SAFETY: 16 readable bytes (caller); the token proves the features.
        X(unsafe { vld1q_u8(src) })
    }
    #[inline(always)]
    unsafe fn store(self, dst: *mut u8) {
        // SAFETY: 16 writable bytes (caller); `self` proves the features.
        unsafe { vst1q_u8(dst, self.0) }
    }
    #[inline(always)]
    unsafe fn load_partial(t: Armv8Token, src: *const u8, n: usize) -> X {
        // SAFETY: every read below lies inside `src..src + n`, which is
        // readable (caller); `t` proves the features.
        unsafe {
            match n {
                0 => X::zero(t),
                1..=3 => {
                    let byte = |at: usize| u64::from(src.add(at).read());
                    let w = byte(0) | byte(n / 2) << (8 * (n / 2)) | byte(n - 1) << (8 * (n - 1));
                    X::from_words(w, 0)
                }
                4..=7 => {
                    let word = |at: usize| u64::from(u32::from_le(src.add(at).cast::<u32>().read_unaligned()));
                    X::from_words(word(0) | word(n - 4) << (8 * (n - 4)), 0)
                }
                8 => X(vcombine_u8(vld1_u8(src), vcreate_u8(0))),
                9..=15 => {
                    // The second load ends at `n`: shifted down by the
                    // `16 - n` bytes it shares with the first, it holds
                    // bytes 8..n with zeros after.
                    let hi = vreinterpret_u64_u8(vld1_u8(src.add(n - 8)));
                    let hi = vshl_u64(hi, vdup_n_s64(-8 * (16 - n) as i64));
                    X(vcombine_u8(vld1_u8(src), vreinterpret_u8_u64(hi)))
                }
                _ => X(vld1q_u8(src)),
            }
        }
    }
    #[inline(always)]
    unsafe fn store_partial(self, dst: *mut u8, n: usize) {
        // SAFETY: every write below lies inside `dst..dst + n`, which is
        // writable and not otherwise borrowed (caller); `IOTA` has the 8
        // bytes from `n - 8 <= 7`; `self` proves the features.
        unsafe {
            match n {
                0 => {}
                1..=3 => {
                    // First, middle and last byte (some the same).
                    let w = self.low_u64();
                    dst.write(w as u8);
                    dst.add(n / 2).write((w >> (8 * (n / 2))) as u8);
                    dst.add(n - 1).write((w >> (8 * (n - 1))) as u8);
                }
                4..=7 => {
                    let w = self.low_u64();
                    dst.cast::<u32>().write_unaligned((w as u32).to_le());
                    dst.add(n - 4).cast::<u32>().write_unaligned(((w >> (8 * (n - 4))) as u32).to_le());
                }
                8 => vst1_u8(dst, vget_low_u8(self.0)),
                9..=15 => {
                    // Bytes n-8..n, overlapping the first store.
                    let last8 = vqtbl1_u8(self.0, vld1_u8(IOTA.as_ptr().add(n - 8)));
                    vst1_u8(dst, vget_low_u8(self.0));
                    vst1_u8(dst.add(n - 8), last8);
                }
                _ => vst1q_u8(dst, self.0),
            }
        }
    }
    #[inline(always)]
    fn keep(self, n: usize) -> X {
        let mask = stitched::keep_mask(n);
        X(n!(vandq_u8(self.0, vld1q_u8(mask.as_ptr()))))
    }
    #[inline(always)]
    fn xor(self, other: X) -> X {
        X(n!(veorq_u8(self.0, other.0)))
    }
    #[inline(always)]
    fn xor3(self, b: X, c: X) -> X {
        self.xor(b).xor(c)
    }
    #[inline(always)]
    fn add32(self, other: X) -> X {
        X(n!(vreinterpretq_u8_u32(vaddq_u32(vreinterpretq_u32_u8(self.0), vreinterpretq_u32_u8(other.0)))))
    }
    #[inline(always)]
    fn byte_reverse(self) -> X {
        // Each half reversed, then the halves swapped.
        let r = n!(vrev64q_u8(self.0));
        X(n!(vextq_u8::<8>(r, r)))
    }
    #[inline(always)]
    fn aes_first(self, round_key: X) -> X {
        X(n!(vaeseq_u8(self.0, round_key.0)))
    }
    #[inline(always)]
    fn aes_round(self, round_key: X) -> X {
        X(n!(vaeseq_u8(vaesmcq_u8(self.0), round_key.0)))
    }
    #[inline(always)]
    fn aes_last(self, round_key: X) -> X {
        self.xor(round_key)
    }
    #[inline(always)]
    fn clmul<const IMM: i32>(self, other: X) -> X {
        let (a, b) = (n!(vreinterpretq_u64_u8(self.0)), n!(vreinterpretq_u64_u8(other.0)));
        let product = n!(match IMM {
            // The two the data path uses are single instructions; the
            // mixed ones serve key setup.
            0x00 => vmull_p64(vgetq_lane_u64::<0>(a), vgetq_lane_u64::<0>(b)),
            0x11 => vmull_high_p64(vreinterpretq_p64_u8(self.0), vreinterpretq_p64_u8(other.0)),
            0x01 => vmull_p64(vgetq_lane_u64::<1>(a), vgetq_lane_u64::<0>(b)),
            _ => vmull_p64(vgetq_lane_u64::<0>(a), vgetq_lane_u64::<1>(b)),
        });
        X(n!(vreinterpretq_u8_p128(product)))
    }
    #[inline(always)]
    fn swap_halves(self) -> X {
        X(n!(vextq_u8::<8>(self.0, self.0)))
    }
    #[inline(always)]
    fn shift_up8(self) -> X {
        X(n!(vextq_u8::<8>(vdupq_n_u8(0), self.0)))
    }
    #[inline(always)]
    fn shift_down8(self) -> X {
        X(n!(vextq_u8::<8>(self.0, vdupq_n_u8(0))))
    }
    #[inline(always)]
    fn fold_lanes(self) -> X {
        self
    }
    stitched::one_lane!(Armv8Token);
}

impl Block for X {
    #[inline(always)]
    fn from_u128(_: Armv8Token, v: u128) -> X {
        X::from_words(v as u64, (v >> 64) as u64)
    }
    #[inline(always)]
    fn to_u128(self) -> u128 {
        let hi = n!(vgetq_lane_u64::<1>(vreinterpretq_u64_u8(self.0)));
        u128::from(hi) << 64 | u128::from(self.low_u64())
    }
    #[inline(always)]
    fn low_u32(self) -> u32 {
        n!(vgetq_lane_u32::<0>(vreinterpretq_u32_u8(self.0)))
    }
    #[inline(always)]
    fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        // SAFETY: `out` is 16 writable bytes.
        unsafe { self.store(out.as_mut_ptr()) };
        out
    }
    #[inline(always)]
    fn from_partial(t: Armv8Token, bytes: &[u8]) -> X {
        // SAFETY: at most `bytes.len()` bytes of `bytes` are read.
        unsafe { X::load_partial(t, bytes.as_ptr(), bytes.len().min(16)) }
    }
    #[inline(always)]
    fn expand_key(t: Armv8Token, key: KeyBytes<'_>) -> [X; MAX_ROUND_KEYS] {
        /// Round constants, `x^(i-1)` in GF(2^8), for `i` in 1..=10.
        const RCON: [u32; 10] = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1b, 0x36];
        let key = key.as_slice();
        let nk = key.len() / 4;
        let total = 4 * (nk + 7);
        let mut w = [0u32; 4 * MAX_ROUND_KEYS];
        for (word, bytes) in w.iter_mut().zip(key.chunks_exact(4)) {
            *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for i in nk..total {
            let mut temp = w[i - 1];
            if i % nk == 0 {
                // RotWord (a byte rotation of the little-endian word)
                // commutes with SubWord.
                temp = sub_word(t, temp).rotate_right(8) ^ RCON[i / nk - 1];
            } else if nk == 8 && i % nk == 4 {
                temp = sub_word(t, temp);
            }
            w[i] = w[i - nk] ^ temp;
        }
        let mut round_keys = [X::zero(t); MAX_ROUND_KEYS];
        for (rk, words) in round_keys.iter_mut().zip(w.chunks_exact(4)).take(nk + 7) {
            let lo = u64::from(words[0]) | u64::from(words[1]) << 32;
            let hi = u64::from(words[2]) | u64::from(words[3]) << 32;
            *rk = X::from_words(lo, hi);
        }
        w.zeroize();
        round_keys
    }
}

/// `SubWord(w)`: `AESE` with a zero key on `w` in all four columns, where
/// ShiftRows changes nothing.
#[inline(always)]
fn sub_word(_: Armv8Token, w: u32) -> u32 {
    n!(vgetq_lane_u32::<0>(vreinterpretq_u32_u8(vaeseq_u8(vreinterpretq_u8_u32(vdupq_n_u32(w)), vdupq_n_u8(0)))))
}

/// The ARMv8 backend's shape: eight 128-bit registers per batch, one batch
/// per reduction.
pub(crate) enum Armv8 {}

impl Shape for Armv8 {
    type V = X;
    type Batch = [X; 8];
    const PAIR: usize = 1;
    type Narrow = Armv8;
}

stitched::kernel!(Armv8, "neon,aes", multi = (2, 4));

/// A key of this backend.
pub(crate) type Armv8Key = stitched::Key<Armv8>;

impl Armv8Key {
    /// Key setup; `None` unless this CPU has what the backend needs.
    pub(crate) fn new(key: KeyBytes<'_>) -> Option<Armv8Key> {
        Armv8Token::detect().map(|t| stitched::Key::with_token(t, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token, or `None` with the reason printed; with
    /// `ESPGCM_REQUIRE_ARMV8=1` (CI's qemu step) a missing backend fails
    /// instead of skipping, so that a run never passes without it.
    fn token() -> Option<Armv8Token> {
        let t = Armv8Token::detect();
        if t.is_none() {
            let why = crate::backend::Backend::Armv8.unsupported_reason().unwrap_or("?");
            assert!(std::env::var_os("ESPGCM_REQUIRE_ARMV8").is_none(), "armv8 required but unsupported: {why}");
            eprintln!("skipped armv8: {why}");
        }
        t
    }

    #[test]
    fn backend_is_detected_where_required() {
        if std::env::var_os("ESPGCM_REQUIRE_ARMV8").is_some() {
            assert!(
                crate::backend::Backend::Armv8.is_supported(),
                "{:?}",
                crate::backend::Backend::Armv8.unsupported_reason()
            );
            assert!(crate::backend::Backend::available().contains(&crate::backend::Backend::Armv8));
        }
        assert_eq!(token().is_some(), crate::backend::Backend::Armv8.is_supported());
    }

    #[test]
    fn partial_loads_and_stores_cover_every_length_and_touch_nothing_else() {
        let Some(t) = token() else { return };
        // Guard bytes on both sides of the `n` bytes.
        let src: Vec<u8> = (0xA0..=0xC1).collect();
        for n in 0..=16 {
            // SAFETY: bytes 8..8 + n of `src` are readable.
            let got = unsafe { X::load_partial(t, src.as_ptr().add(8), n) }.to_bytes();
            let mut expect = [0u8; 16];
            expect[..n].copy_from_slice(&src[8..8 + n]);
            assert_eq!(got, expect, "load {n}");
            assert_eq!(X::from_partial(t, &src[8..8 + n]).to_bytes(), expect, "from_partial {n}");

            let block: [u8; 16] = core::array::from_fn(|i| i as u8 + 1);
            let mut out = [0xEEu8; 32];
            // SAFETY: bytes 8..8 + n of `out` are writable.
            unsafe { X::from_partial(t, &block).store_partial(out.as_mut_ptr().add(8), n) };
            assert_eq!(&out[8..8 + n], &block[..n], "store {n}");
            assert!(out[..8].iter().chain(&out[8 + n..]).all(|&b| b == 0xEE), "store {n} wrote outside");
        }
    }

    #[test]
    fn round_keys_match_fips_197_appendix_a() {
        let Some(t) = token() else { return };
        let round_key = |key: &[u8], i: usize| X::expand_key(t, KeyBytes::new(key).unwrap())[i].to_bytes();
        // FIPS-197 A.1: AES-128, round keys 1 and 10.
        let key = hex_literal::hex!("2b7e151628aed2a6abf7158809cf4f3c");
        assert_eq!(round_key(&key, 1), hex_literal::hex!("a0fafe1788542cb123a339392a6c7605"));
        assert_eq!(round_key(&key, 10), hex_literal::hex!("d014f9a8c9ee2589e13f0cc8b6630ca6"));
        // FIPS-197 A.2: AES-192, round key 12.
        let key = hex_literal::hex!("8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b");
        assert_eq!(round_key(&key, 12), hex_literal::hex!("e98ba06f448c773c8ecc720401002202"));
        // FIPS-197 A.3: AES-256, round key 14.
        let key = hex_literal::hex!("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
        assert_eq!(round_key(&key, 14), hex_literal::hex!("fe4890d1e6188d0b046df344706c631e"));
    }

    #[test]
    fn rounds_cut_the_arm_way_encrypt_the_fips_197_block() {
        let Some(t) = token() else { return };
        // FIPS-197 C.1-C.3: the same plaintext under AES-128/192/256.
        let plaintext = hex_literal::hex!("00112233445566778899aabbccddeeff");
        let cases: [(&[u8], [u8; 16]); 3] = [
            (
                &hex_literal::hex!("000102030405060708090a0b0c0d0e0f"),
                hex_literal::hex!("69c4e0d86a7b0430d8cdb78070b4c55a"),
            ),
            (
                &hex_literal::hex!("000102030405060708090a0b0c0d0e0f1011121314151617"),
                hex_literal::hex!("dda97ca4864cdfe06eaf70a0ec0d7191"),
            ),
            (
                &hex_literal::hex!("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
                hex_literal::hex!("8ea2b7ca516745bfeafc49904b496089"),
            ),
        ];
        for (key, expect) in cases {
            let rk = X::expand_key(t, KeyBytes::new(key).unwrap());
            let rounds = key.len() / 4 + 6;
            let mut b = X::from_partial(t, &plaintext).aes_first(rk[0]);
            for k in &rk[1..rounds] {
                b = b.aes_round(*k);
            }
            assert_eq!(b.aes_last(rk[rounds]).to_bytes(), expect, "AES-{}", key.len() * 8);
        }
    }

    #[test]
    fn keep_clears_every_byte_past_n() {
        let Some(t) = token() else { return };
        let ones = X::from_u128(t, u128::MAX);
        for n in 0..=16 {
            let mut expect = [0u8; 16];
            expect[..n].fill(0xFF);
            assert_eq!(ones.keep(n).to_bytes(), expect, "keep {n}");
        }
    }

    #[test]
    fn carry_less_multiplies_pick_the_halves_pclmulqdq_would() {
        let Some(t) = token() else { return };
        // (x + 1)(x + 1) = x^2 + 1 and x^63 * x^63 = x^126, from each pair
        // of halves.
        let a = X::from_u128(t, 3 | (1u128 << 127));
        let b = X::from_u128(t, 3 | (1u128 << 127));
        assert_eq!(a.clmul::<0x00>(b).to_u128(), 5);
        assert_eq!(a.clmul::<0x11>(b).to_u128(), 1 << 126);
        assert_eq!(a.clmul::<0x01>(b).to_u128(), 3 << 63);
        assert_eq!(a.clmul::<0x10>(b).to_u128(), 3 << 63);
        let c = X::from_u128(t, 1 | (2u128 << 64));
        assert_eq!(a.clmul::<0x01>(c).to_u128(), 1 << 63);
        assert_eq!(a.clmul::<0x10>(c).to_u128(), 6);
    }
}
