//! The VAES + VPCLMULQDQ backend on 512-bit registers (AVX-512).
//!
//! # Shape
//!
//! One `zmm` register holds four blocks, one per 128-bit lane, and `VAESENC`
//! and `VPCLMULQDQ` work on each lane independently. The field arithmetic is
//! the AES-NI backend's (see `aesni`'s module docs): blocks are byte-reversed
//! into reflected form, every stored power of H is pre-multiplied by `x^-1`,
//! and a 256-bit product is reduced with two carry-less multiplies by the
//! constant `0xC2 << 56`; here all four lanes are reduced at once and then
//! added together.
//!
//! - **Key:** the AES-NI key (round keys, `H`) plus `H^33..H^1`, highest
//!   first, followed by four zero blocks, so that a run of `n` blocks finds
//!   its powers as one unaligned load per four blocks, and a partial last
//!   group loads zeros past `H^1`. Round keys are broadcast to all four
//!   lanes as they are used; the number of rounds is a compile-time constant
//!   (one copy of the code per key size), so the loops unroll.
//! - **Bulk:** sixteen blocks (256 bytes, four registers) per batch; two
//!   batches share one reduction (32 products summed unreduced). Sealing
//!   hashes batch `k - 1` while it encrypts batch `k` and leaves the last
//!   batch for the final reduction; opening hashes each pair of batches
//!   while it decrypts them. Four-term products (schoolbook) are added with
//!   three-input XORs (`VPTERNLOGQ`). Counters are advanced in memory order
//!   with one add per register while the counter's last byte does not wrap,
//!   and through the byte-reversed form when it does.
//! - **Tail:** the last 1..=255 bytes are up to four registers moved with
//!   AVX-512 byte-masked loads and stores (no byte loops and no reads past
//!   the buffer: masked-off bytes are never touched), hashed under one final
//!   reduction with the length block (and, when sealing, the last batch).
//! - **Per call:** `E(K, J0)` and a short AAD's hash run on the 128-bit units
//!   in the caller's frame, independent of the data path, so they overlap
//!   with it. Messages of one block or less run on the AES-NI key's code,
//!   whose setup is shorter.

//! # Safety
//!
//! Every function that uses the instructions carries
//! `#[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]`.
//! A [`Vaes512Key`] can only be made by [`Vaes512Key::new`], which returns
//! `None` unless run-time detection found all of them; calling those functions
//! through a key is therefore sound. Memory is read and written through
//! fixed-size references, through masked accesses whose mask never covers a
//! byte outside the slice, or through a [`Bulk`], whose accessors are called
//! only with a batch index below its batch count.

use super::aesni::{AesNiKey, gf_mul, init_with, length_block};
use super::bulk::Bulk;
use super::{Discard, KeyBytes, PlaintextSink, SealInto};
use core::arch::x86_64::{
    __m128i, __m512i, _MM_PERM_BADC, _mm_clmulepi64_si128, _mm_cvtsi128_si32, _mm_set_epi8, _mm_setzero_si128,
    _mm_xor_si128, _mm256_castsi256_si128, _mm256_extracti128_si256, _mm256_xor_si256, _mm512_add_epi32,
    _mm512_aesenc_epi128, _mm512_aesenclast_epi128, _mm512_broadcast_i32x4, _mm512_bslli_epi128, _mm512_bsrli_epi128,
    _mm512_castsi512_si128, _mm512_castsi512_si256, _mm512_clmulepi64_epi128, _mm512_extracti64x4_epi64,
    _mm512_loadu_si512, _mm512_mask_storeu_epi8, _mm512_maskz_loadu_epi8, _mm512_maskz_mov_epi8, _mm512_set_epi32,
    _mm512_set1_epi64, _mm512_set4_epi32, _mm512_setzero_si512, _mm512_shuffle_epi8, _mm512_shuffle_epi32,
    _mm512_storeu_si512, _mm512_ternarylogic_epi64, _mm512_xor_si512, _mm512_zextsi128_si512,
};
use core::mem::MaybeUninit;
use zeroize::Zeroize;

/// Blocks per bulk iteration (four registers).
const BLOCKS: usize = 16;
/// Bytes per bulk iteration.
const BATCH: usize = 16 * BLOCKS;
/// Powers of H kept: thirty-two for a pair of bulk iterations (one reduction
/// per pair), and thirty-three for the final hash of a sealed message (its
/// last batch, up to fifteen blocks of tail and the length block).
const POWERS: usize = 2 * BLOCKS + 1;
/// The power table: `H^POWERS..H^1`, then four zero blocks.
const TABLE: usize = POWERS + 4;
/// Messages shorter than this (one block or less) go to the 128-bit code of
/// the AES-NI key, whose setup is shorter; from two blocks up the 512-bit
/// path is as fast or faster (measured with interleaved runs: 16 B 75 vs
/// 85 TSC ticks, 17 to 64 B 76 to 78 against 83 to 95 for AES-NI).
const SHORT: usize = 17;

/// Three-way XOR in one instruction.
#[inline]
#[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
fn xor3(a: __m512i, b: __m512i, c: __m512i) -> __m512i {
    _mm512_ternarylogic_epi64::<0x96>(a, b, c)
}

/// Reverse the bytes of each 128-bit lane.
#[inline]
#[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
fn byte_reverse(x: __m512i) -> __m512i {
    let mask = _mm512_broadcast_i32x4(_mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    _mm512_shuffle_epi8(x, mask)
}

/// The byte mask of group `g` (bytes `64g..64g+64`) of an `r`-byte tail.
#[inline]
fn group_mask(r: usize, g: usize) -> u64 {
    let bytes = r.saturating_sub(64 * g).min(64) as u32;
    u64::MAX.checked_shr(64 - bytes).unwrap_or(0)
}

/// An unreduced GHASH sum in four lanes: schoolbook low, middle and high
/// products.
#[derive(Clone, Copy)]
struct Wide {
    lo: __m512i,
    mid: __m512i,
    hi: __m512i,
}

impl Wide {
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn zero() -> Wide {
        Wide { lo: _mm512_setzero_si512(), mid: _mm512_setzero_si512(), hi: _mm512_setzero_si512() }
    }

    /// The four products of `x` and `h`, lane by lane.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn product(x: __m512i, h: __m512i) -> Wide {
        Wide {
            lo: _mm512_clmulepi64_epi128::<0x00>(x, h),
            mid: _mm512_xor_si512(_mm512_clmulepi64_epi128::<0x01>(x, h), _mm512_clmulepi64_epi128::<0x10>(x, h)),
            hi: _mm512_clmulepi64_epi128::<0x11>(x, h),
        }
    }

    /// Add `x * h`.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn mul_add(&mut self, x: __m512i, h: __m512i) {
        self.lo = _mm512_xor_si512(self.lo, _mm512_clmulepi64_epi128::<0x00>(x, h));
        self.mid = xor3(self.mid, _mm512_clmulepi64_epi128::<0x01>(x, h), _mm512_clmulepi64_epi128::<0x10>(x, h));
        self.hi = _mm512_xor_si512(self.hi, _mm512_clmulepi64_epi128::<0x11>(x, h));
    }

    /// Add the 128-bit product `x * h` (in lane 0).
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn mul_add_128(&mut self, x: __m128i, h: __m128i) {
        let lo = _mm_clmulepi64_si128::<0x00>(x, h);
        let mid = _mm_xor_si128(_mm_clmulepi64_si128::<0x01>(x, h), _mm_clmulepi64_si128::<0x10>(x, h));
        let hi = _mm_clmulepi64_si128::<0x11>(x, h);
        self.lo = _mm512_xor_si512(self.lo, _mm512_zextsi128_si512(lo));
        self.mid = _mm512_xor_si512(self.mid, _mm512_zextsi128_si512(mid));
        self.hi = _mm512_xor_si512(self.hi, _mm512_zextsi128_si512(hi));
    }

    /// Reduce each lane, add the four lanes: the reflected 128-bit hash.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn reduce(self) -> __m128i {
        let lo = _mm512_xor_si512(self.lo, _mm512_bslli_epi128::<8>(self.mid));
        let hi = _mm512_xor_si512(self.hi, _mm512_bsrli_epi128::<8>(self.mid));
        // The AES-NI backend's two folds, in every lane at once.
        let c = _mm512_set1_epi64(0xC200_0000_0000_0000_u64 as i64);
        let folded =
            _mm512_xor_si512(_mm512_shuffle_epi32::<_MM_PERM_BADC>(lo), _mm512_clmulepi64_epi128::<0x00>(lo, c));
        let r = xor3(hi, _mm512_shuffle_epi32::<_MM_PERM_BADC>(folded), _mm512_clmulepi64_epi128::<0x00>(folded, c));
        let half = _mm256_xor_si256(_mm512_castsi512_si256(r), _mm512_extracti64x4_epi64::<1>(r));
        _mm_xor_si128(_mm256_castsi256_si128(half), _mm256_extracti128_si256::<1>(half))
    }
}

/// The round keys of one call, for `R` rounds (10, 12 or 14, a constant so
/// that the round loops unroll and the keys can stay in registers), broadcast
/// to all four lanes as they are used (copying fifteen 64-byte registers per
/// call would cost more than short messages take).
#[derive(Clone, Copy)]
struct Schedule<'k, const R: usize> {
    rk: &'k [__m128i; 15],
}

impl<'k, const R: usize> Schedule<'k, R> {
    fn new(base: &'k AesNiKey) -> Schedule<'k, R> {
        const { assert!(R == 10 || R == 12 || R == 14) };
        debug_assert_eq!(base.rounds(), R);
        Schedule { rk: base.round_keys() }
    }

    /// Counter groups `ctr + 4g` (lanes `ctr, ctr+1, ctr+2, ctr+3` in the
    /// byte-reversed form where `ADD` is inc32), in memory order, with round
    /// key 0 added.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn counter_blocks<const G: usize>(&self, ctr: __m512i) -> [__m512i; G] {
        let rk0 = _mm512_broadcast_i32x4(self.rk[0]);
        core::array::from_fn(|g| {
            let c = _mm512_add_epi32(ctr, _mm512_set4_epi32(0, 0, 0, 4 * g as i32));
            _mm512_xor_si512(byte_reverse(c), rk0)
        })
    }

    /// AES rounds `from..=R` on blocks that had the earlier ones.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn finish_rounds<const G: usize>(&self, b: &mut [__m512i; G], from: usize) {
        for i in from..R {
            let k = _mm512_broadcast_i32x4(self.rk[i]);
            for x in b.iter_mut() {
                *x = _mm512_aesenc_epi128(*x, k);
            }
        }
        let last = _mm512_broadcast_i32x4(self.rk[R]);
        for x in b.iter_mut() {
            *x = _mm512_aesenclast_epi128(*x, last);
        }
    }
}

/// The counters of the bulk loops, kept in memory order so that a batch
/// costs one add per register: while the counter's last byte does not wrap
/// inside a batch (15 batches in 16), adding to that byte is inc32. The
/// other batch takes the byte-reversed route.
struct Counters {
    /// Lanes `ctr, ctr+1, ctr+2, ctr+3`, as the blocks sit in memory.
    mem: __m512i,
    /// The last byte of lane 0's counter.
    low: u32,
}

impl Counters {
    /// From the byte-reversed lanes `ctr..ctr+3`.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn new(reflected: __m512i) -> Counters {
        let low = _mm_cvtsi128_si32(_mm512_castsi512_si128(reflected)) as u32 & 0xff;
        Counters { mem: byte_reverse(reflected), low }
    }

    /// The byte-reversed lanes of the next counters.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn reflected(&self) -> __m512i {
        byte_reverse(self.mem)
    }

    /// The sixteen counter blocks of the next batch with round key 0 added;
    /// moves on by sixteen.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn next_batch(&mut self, rk0: __m512i) -> [__m512i; 4] {
        // The batch's counters end at `low + 15`.
        let groups = if self.low + 15 <= 0xff {
            // The last byte is the top byte of each lane's fourth dword.
            core::array::from_fn(|g| {
                let step = _mm512_set4_epi32(((4 * g as u32) << 24) as i32, 0, 0, 0);
                _mm512_xor_si512(_mm512_add_epi32(self.mem, step), rk0)
            })
        } else {
            let reflected = self.reflected();
            core::array::from_fn(|g| {
                let c = _mm512_add_epi32(reflected, _mm512_set4_epi32(0, 0, 0, 4 * g as i32));
                _mm512_xor_si512(byte_reverse(c), rk0)
            })
        };
        // Lane 3 holds `low + 3`: after the step it must still fit the byte.
        self.mem = if self.low + 3 + 16 <= 0xff {
            _mm512_add_epi32(self.mem, _mm512_set4_epi32(16 << 24, 0, 0, 0))
        } else {
            byte_reverse(_mm512_add_epi32(self.reflected(), _mm512_set4_epi32(0, 0, 0, 16)))
        };
        self.low = (self.low + 16) & 0xff;
        groups
    }
}

/// This backend's batches.
type Batches<'a> = Bulk<'a, BATCH>;

/// The sixteen blocks of input batch `batch`.
///
/// # Safety
/// `batch < io.batches`.
#[inline]
#[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
unsafe fn load_batch(io: &Batches<'_>, batch: usize) -> [__m512i; 4] {
    core::array::from_fn(|g| {
        // SAFETY: register `g` of a batch that exists (caller); no alignment rule.
        unsafe { _mm512_loadu_si512(io.input(batch, 64 * g).cast()) }
    })
}

/// Write output batch `batch`.
///
/// # Safety
/// `batch < io.batches`.
#[inline]
#[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
unsafe fn store_batch(io: &Batches<'_>, batch: usize, groups: &[__m512i; 4]) {
    for (g, v) in groups.iter().enumerate() {
        // SAFETY: register `g` of a batch that exists (caller); no alignment rule.
        unsafe { _mm512_storeu_si512(io.output(batch, 64 * g).cast(), *v) }
    }
}

/// The last hash, one reduction: `$pending` (`Option<&[__m512i; 4]>`, a
/// batch of reflected ciphertext not yet hashed), then the `$n` blocks of the
/// tail in the registers `$hashed` (zero past `$n`), then the length block;
/// `$acc` joins the first block. Block `j` of the `F` blocks is multiplied by
/// `H^(F - j)`. A macro so that the tail's registers reach it without a trip
/// through memory (`#[inline(always)]` cannot be combined with
/// `#[target_feature]`, and the compiler outlined it as a function).
macro_rules! final_hash {
    ($key:expr, $acc:expr, $pending:expr, $hashed:expr, $n:expr, $lengths:expr) => {{
        let key: &Vaes512Key = $key;
        let (acc, pending, hashed, n, lengths): (__m128i, Option<&[__m512i; 4]>, &[__m512i], usize, __m128i) =
            ($acc, $pending, $hashed, $n, $lengths);
        if pending.is_none() && hashed.is_empty() {
            // Only the length block: acc joins it.
            gf_mul(_mm_xor_si128(acc, lengths), key.table[POWERS - 1])
        } else {
            let acc = _mm512_zextsi128_si512(acc);
            // The length block gets H^1, the last table entry.
            let mut wide = Wide::zero();
            wide.mul_add_128(lengths, key.table[POWERS - 1]);
            // Tail block j gets H^(n + 1 - j): table index POWERS - 1 - n + j.
            let first = POWERS - 1 - n;
            if let Some(batch) = pending {
                // Pending block j gets H^(17 + n - j): table index POWERS - 17 - n + j.
                for (g, &x) in batch.iter().enumerate() {
                    let x = if g == 0 { _mm512_xor_si512(x, acc) } else { x };
                    wide.mul_add(x, key.powers(first - BLOCKS + 4 * g));
                }
            }
            for (g, &x) in hashed.iter().enumerate() {
                let x = if g == 0 && pending.is_none() { _mm512_xor_si512(x, acc) } else { x };
                wide.mul_add(x, key.powers(first + 4 * g));
            }
            wide.reduce()
        }
    }};
}

/// Key material of the 512-bit VAES backend.
#[derive(Clone)]
pub(crate) struct Vaes512Key {
    /// Round keys and `H`, and the 128-bit code for per-call work.
    base: AesNiKey,
    /// `table[i]` = `H^(POWERS - i) * x^-1`, reflected, for `i < POWERS`;
    /// zero after.
    table: [__m128i; TABLE],
}

impl Drop for Vaes512Key {
    fn drop(&mut self) {
        self.table.zeroize();
    }
}

impl Vaes512Key {
    /// Key setup; `None` unless this CPU has VAES, VPCLMULQDQ, AVX-512 F/BW/VL
    /// and AES-NI (so that holding a `Vaes512Key` proves it does).
    pub(crate) fn new(key: KeyBytes<'_>) -> Option<Vaes512Key> {
        if crate::backend::cpu::has_vaes512() != Some(true) {
            return None;
        }
        let base = AesNiKey::new(key)?;
        // SAFETY: the features were detected just above.
        Some(unsafe { Vaes512Key::setup(base) })
    }

    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn setup(base: AesNiKey) -> Vaes512Key {
        let mut table = [_mm_setzero_si128(); TABLE];
        let h1 = base.h1();
        let mut power = h1;
        for slot in table[..POWERS].iter_mut().rev() {
            *slot = power;
            // (H^i x^-1)(H x^-1) x = H^(i+1) x^-1.
            power = gf_mul(power, h1);
        }
        Vaes512Key { base, table }
    }

    /// Four consecutive entries of the power table from `at` (callers keep
    /// `at + 4 <= TABLE`; past the end reads as zeros rather than out of
    /// bounds).
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn powers(&self, at: usize) -> __m512i {
        match self.table.get(at..at + 4) {
            // SAFETY: `four` is 64 readable bytes; `loadu` has no alignment rule.
            Some(four) => unsafe { _mm512_loadu_si512(four.as_ptr().cast()) },
            None => _mm512_setzero_si512(),
        }
    }

    /// GHASH `data` (zero-padded) into `acc`, as big-endian integers.
    pub(crate) fn ghash(&self, acc: &mut u128, data: &[u8]) {
        self.base.ghash(acc, data);
    }

    /// GHASH one block given as a big-endian integer.
    pub(crate) fn ghash_block(&self, acc: &mut u128, block: u128) {
        self.base.ghash_block(acc, block);
    }

    /// Encrypt `buf` in place with counters `inc32(J0)`, ... and return the
    /// full tag over `aad` and the ciphertext.
    #[inline]
    pub(crate) fn seal(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        if buf.len() < SHORT {
            return self.base.seal(j0, aad, buf);
        }
        // SAFETY: a `Vaes512Key` exists only if the features were detected.
        unsafe {
            match self.base.rounds() {
                10 => self.crypt_in_place::<false, 10>(j0, aad, buf),
                12 => self.crypt_in_place::<false, 12>(j0, aad, buf),
                _ => self.crypt_in_place::<false, 14>(j0, aad, buf),
            }
        }
    }

    /// Decrypt `buf` in place and return the tag computed over `aad` and the
    /// ciphertext it held. The caller compares tags and wipes `buf` on mismatch.
    #[inline]
    pub(crate) fn open(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        if buf.len() < SHORT {
            return self.base.open(j0, aad, buf);
        }
        // SAFETY: a `Vaes512Key` exists only if the features were detected.
        unsafe {
            match self.base.rounds() {
                10 => self.crypt_in_place::<true, 10>(j0, aad, buf),
                12 => self.crypt_in_place::<true, 12>(j0, aad, buf),
                _ => self.crypt_in_place::<true, 14>(j0, aad, buf),
            }
        }
    }

    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn crypt_in_place<const DECRYPT: bool, const R: usize>(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        // `AesNiKey::begin` in its two parts, so that it stays in this frame
        // (as one call it was outlined and returned through memory).
        let (tag_mask, ctr) = self.base.mask_and_counter(j0);
        let acc = self.base.hash_aad(aad);
        let lengths = length_block(aad.len(), buf.len());
        let s = Schedule::new(&self.base);
        let ctr = first_counters(ctr);
        // Short messages (ESP's usual case) go straight to the tail: one
        // call fewer, and no frame set up for the bulk loops.
        let acc = if buf.len() < BATCH {
            self.finish_tail::<DECRYPT, R>(s, ctr, acc, None, buf, lengths)
        } else {
            self.finish_in_place::<DECRYPT, R>(s, ctr, acc, buf, lengths)
        };
        AesNiKey::tag(acc, tag_mask)
    }

    /// Out of place: `src || extra` encrypted into `dst`, which has exactly
    /// that length, `src` handed to `sink` on the way; returns the tag.
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn seal_between<S: PlaintextSink, const R: usize>(
        &self,
        j0: u128,
        aad: &[u8],
        src: &[u8],
        extra: &[u8],
        dst: &mut [MaybeUninit<u8>],
        sink: &mut S,
    ) -> [u8; 16] {
        let (tag_mask, acc, ctr) = self.base.begin(j0, aad);
        let lengths = length_block(aad.len(), src.len() + extra.len());
        let s = Schedule::new(&self.base);
        let mut ctr = first_counters(ctr);
        let (bulk, rest_src, rest_dst) = Batches::between(src, dst);
        let (acc, pending) = self.seal_bulk::<S, R>(s, &mut ctr, acc, bulk, sink);
        // The rest of `src` (under 256 bytes) and `extra` are copied to the
        // end of `dst` and finished there in place, the last batch hashed
        // with them.
        sink.rest(rest_src);
        let work = init_with(rest_dst, [rest_src, extra]);
        let acc = if work.len() < BATCH {
            self.finish_tail::<false, R>(s, ctr, acc, pending, work, lengths)
        } else {
            // A batch straddles `src` and `extra`: hash the pending batch on
            // its own and run the whole loop again on the copy.
            let acc = match pending {
                Some(batch) => self.hash_batches(&self.bulk_powers(), acc, &batch),
                None => acc,
            };
            self.finish_in_place::<false, R>(s, ctr, acc, work, lengths)
        };
        AesNiKey::tag(acc, tag_mask)
    }

    /// Whole batches of `buf` and then its tail, in place, then the length
    /// block; returns the final hash.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn finish_in_place<const DECRYPT: bool, const R: usize>(
        &self,
        s: Schedule<'_, R>,
        mut ctr: __m512i,
        mut acc: __m128i,
        buf: &mut [u8],
        lengths: __m128i,
    ) -> __m128i {
        let (bulk, rest) = Batches::in_place(buf);
        // Sealing leaves the last batch's ciphertext unhashed, to share the
        // final reduction with the tail and the length block.
        let mut pending = None;
        if bulk.batches > 0 {
            if DECRYPT {
                acc = self.open_bulk::<R>(s, &mut ctr, acc, bulk);
            } else {
                (acc, pending) = self.seal_bulk::<Discard, R>(s, &mut ctr, acc, bulk, &mut Discard);
            }
        }
        self.finish_tail::<DECRYPT, R>(s, ctr, acc, pending, rest, lengths)
    }

    /// The tail (under 256 bytes) in place, and the final hash.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn finish_tail<const DECRYPT: bool, const R: usize>(
        &self,
        s: Schedule<'_, R>,
        ctr: __m512i,
        acc: __m128i,
        pending: Option<[__m512i; 4]>,
        rest: &mut [u8],
        lengths: __m128i,
    ) -> __m128i {
        let pending = pending.as_ref();
        match rest.len().div_ceil(64) {
            0 => final_hash!(self, acc, pending, &[], 0, lengths),
            1 => self.tail_and_hash::<1, DECRYPT, R>(s, ctr, acc, pending, rest, lengths),
            2 => self.tail_and_hash::<2, DECRYPT, R>(s, ctr, acc, pending, rest, lengths),
            3 => self.tail_and_hash::<3, DECRYPT, R>(s, ctr, acc, pending, rest, lengths),
            _ => self.tail_and_hash::<4, DECRYPT, R>(s, ctr, acc, pending, rest, lengths),
        }
    }

    /// [`tail`](Self::tail) and `final_hash!` for one
    /// register count: a function of its own so that the tail's registers
    /// reach the hash without a trip through memory.
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn tail_and_hash<const G: usize, const DECRYPT: bool, const R: usize>(
        &self,
        s: Schedule<'_, R>,
        ctr: __m512i,
        acc: __m128i,
        pending: Option<&[__m512i; 4]>,
        rest: &mut [u8],
        lengths: __m128i,
    ) -> __m128i {
        let n = rest.len().div_ceil(16);
        let hashed = self.tail::<G, DECRYPT, R>(s, ctr, rest);
        final_hash!(self, acc, pending, &hashed, n, lengths)
    }

    /// `(acc + x0) H^(4N) + x1 H^(4N-1) + ... + x(4N-1) H` for the `N`
    /// registers `x` (16 or 32 blocks), one reduction.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn hash_batches<const N: usize>(&self, h: &[__m512i; 8], acc: __m128i, x: &[__m512i; N]) -> __m128i {
        const { assert!(N == 4 || N == 8) };
        // `h` holds H^32..H^1: the last N registers are the powers needed.
        let h = &h[8 - N..];
        let mut wide = Wide::product(_mm512_xor_si512(x[0], _mm512_zextsi128_si512(acc)), h[0]);
        for g in 1..N {
            wide.mul_add(x[g], h[g]);
        }
        wide.reduce()
    }

    /// `H^32..H^1` as eight registers.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn bulk_powers(&self) -> [__m512i; 8] {
        core::array::from_fn(|g| self.powers(POWERS - 2 * BLOCKS + 4 * g))
    }

    /// Encrypt whole batches; returns the hash of all but the last batch's
    /// ciphertext, and that batch byte-reversed (`None` if there are no
    /// batches) for
    /// `final_hash!`. Batch `k - 1` is hashed while batch
    /// `k` is encrypted, two batches (32 products) per reduction (a single
    /// batch first if their number is odd). The plaintext goes to `sink` too.
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn seal_bulk<S: PlaintextSink, const R: usize>(
        &self,
        s: Schedule<'_, R>,
        ctr: &mut __m512i,
        mut acc: __m128i,
        io: Batches<'_>,
        sink: &mut S,
    ) -> (__m128i, Option<[__m512i; 4]>) {
        if io.batches == 0 {
            return (acc, None);
        }
        let h = self.bulk_powers();
        let rk0 = _mm512_broadcast_i32x4(s.rk[0]);
        let mut counters = Counters::new(*ctr);
        let mut prev = [_mm512_setzero_si512(); 4];
        let mut wide = Wide::zero();
        // Batches hashed in the loop: all but the last.
        let odd = (io.batches - 1) % 2 == 1;
        for batch in 0..io.batches {
            let mut ks = counters.next_batch(rk0);
            if batch > 0 {
                let i = batch - 1;
                if odd && i == 0 {
                    acc = self.hash_batches(&h, acc, &prev);
                } else if (i % 2 == 0) != odd {
                    // First of a pair: H^32..H^17, with acc.
                    wide = Wide::product(_mm512_xor_si512(prev[0], _mm512_zextsi128_si512(acc)), h[0]);
                    for g in 1..4 {
                        wide.mul_add(prev[g], h[g]);
                    }
                } else {
                    for g in 0..4 {
                        wide.mul_add(prev[g], h[4 + g]);
                    }
                    acc = wide.reduce();
                }
            }
            s.finish_rounds(&mut ks, 1);
            // SAFETY: `batch < io.batches` (the loop bound).
            unsafe { io.feed(batch, sink) };
            // SAFETY: `batch < io.batches` (the loop bound).
            let input = unsafe { load_batch(&io, batch) };
            let output: [__m512i; 4] = core::array::from_fn(|g| _mm512_xor_si512(input[g], ks[g]));
            // SAFETY: `batch < io.batches` (the loop bound).
            unsafe { store_batch(&io, batch, &output) };
            prev = output.map(|c| byte_reverse(c));
        }
        *ctr = counters.reflected();
        (acc, Some(prev))
    }

    /// Decrypt whole batches; returns the hash including all their
    /// ciphertext, each pair of batches hashed while it is decrypted.
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn open_bulk<const R: usize>(
        &self,
        s: Schedule<'_, R>,
        ctr: &mut __m512i,
        mut acc: __m128i,
        io: Batches<'_>,
    ) -> __m128i {
        let h = self.bulk_powers();
        let rk0 = _mm512_broadcast_i32x4(s.rk[0]);
        let mut counters = Counters::new(*ctr);
        let pairs = io.batches / 2;
        for pair in 0..pairs {
            // SAFETY: `2 * pair + 1 < 2 * pairs <= io.batches`.
            let (ct_a, ct_b) = unsafe { (load_batch(&io, 2 * pair), load_batch(&io, 2 * pair + 1)) };
            let ct: [__m512i; 8] = core::array::from_fn(|i| if i < 4 { ct_a[i] } else { ct_b[i - 4] });
            let (a, b) = (counters.next_batch(rk0), counters.next_batch(rk0));
            let mut ks: [__m512i; 8] = core::array::from_fn(|i| if i < 4 { a[i] } else { b[i - 4] });
            acc = self.hash_batches(&h, acc, &ct.map(|c| byte_reverse(c)));
            s.finish_rounds(&mut ks, 1);
            for half in 0..2 {
                let output: [__m512i; 4] =
                    core::array::from_fn(|g| _mm512_xor_si512(ct[4 * half + g], ks[4 * half + g]));
                // SAFETY: `2 * pair + half < 2 * pairs <= io.batches`.
                unsafe { store_batch(&io, 2 * pair + half, &output) };
            }
        }
        if io.batches % 2 == 1 {
            let batch = io.batches - 1;
            // SAFETY: `batch < io.batches`.
            let ct = unsafe { load_batch(&io, batch) };
            let mut ks = counters.next_batch(rk0);
            acc = self.hash_batches(&h, acc, &ct.map(|c| byte_reverse(c)));
            s.finish_rounds(&mut ks, 1);
            let output: [__m512i; 4] = core::array::from_fn(|g| _mm512_xor_si512(ct[g], ks[g]));
            // SAFETY: `batch < io.batches`.
            unsafe { store_batch(&io, batch, &output) };
        }
        *ctr = counters.reflected();
        acc
    }

    /// The last `rest.len()` (1..=255) bytes in `G` groups of up to 64,
    /// en- or decrypted in place with masked loads and stores; returns the
    /// ciphertext, byte-reversed and zero-padded, for the final hash.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
    fn tail<const G: usize, const DECRYPT: bool, const R: usize>(
        &self,
        s: Schedule<'_, R>,
        ctr: __m512i,
        rest: &mut [u8],
    ) -> [__m512i; G] {
        let r = rest.len();
        let masks: [u64; G] = core::array::from_fn(|g| group_mask(r, g));
        let base = rest.as_mut_ptr();
        let input: [__m512i; G] = core::array::from_fn(|g| {
            // `wrapping_add`: forming the address is never out-of-bounds UB.
            // SAFETY: the mask covers only bytes `64g..r` of `rest` (none if
            // `64g >= r`); masked-off bytes are neither read nor faulted on.
            unsafe { _mm512_maskz_loadu_epi8(masks[g], base.wrapping_add(64 * g).cast()) }
        });
        let mut ks = s.counter_blocks::<G>(ctr);
        s.finish_rounds(&mut ks, 1);
        core::array::from_fn(|g| {
            let output = _mm512_maskz_mov_epi8(masks[g], _mm512_xor_si512(input[g], ks[g]));
            // SAFETY: as for the load: the mask covers only bytes of `rest`.
            unsafe { _mm512_mask_storeu_epi8(base.wrapping_add(64 * g).cast(), masks[g], output) };
            byte_reverse(if DECRYPT { input[g] } else { output })
        })
    }
}

// SAFETY: `seal_between` writes the bulk batches of `dst` and `init_with`
// the rest.
unsafe impl SealInto for Vaes512Key {
    const BATCH: usize = BATCH;

    #[inline]
    fn seal(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        Vaes512Key::seal(self, j0, aad, buf)
    }

    #[inline]
    fn seal_into<S: PlaintextSink>(
        &self,
        j0: u128,
        aad: &[u8],
        src: &[u8],
        extra: &[u8],
        dst: &mut [MaybeUninit<u8>],
        sink: &mut S,
    ) -> [u8; 16] {
        // SAFETY: a `Vaes512Key` exists only if the features were detected.
        unsafe {
            match self.base.rounds() {
                10 => self.seal_between::<S, 10>(j0, aad, src, extra, dst, sink),
                12 => self.seal_between::<S, 12>(j0, aad, src, extra, dst, sink),
                _ => self.seal_between::<S, 14>(j0, aad, src, extra, dst, sink),
            }
        }
    }
}

/// The first data counters `ctr, ctr+1, ctr+2, ctr+3` in four lanes, from
/// the 128-bit counter `begin` returns.
#[inline]
#[target_feature(enable = "vaes,vpclmulqdq,avx512f,avx512bw,avx512vl,aes,pclmulqdq,ssse3,sse4.1")]
fn first_counters(ctr: __m128i) -> __m512i {
    _mm512_add_epi32(_mm512_broadcast_i32x4(ctr), _mm512_set_epi32(0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::scalar::ScalarKey;

    fn keys(key: &[u8]) -> Option<(Vaes512Key, ScalarKey)> {
        let kb = KeyBytes::new(key)?;
        Some((Vaes512Key::new(kb)?, ScalarKey::new(kb)))
    }

    #[test]
    fn group_masks_cover_exactly_the_tail() {
        assert_eq!(group_mask(1, 0), 1);
        assert_eq!(group_mask(64, 0), u64::MAX);
        assert_eq!(group_mask(65, 0), u64::MAX);
        assert_eq!(group_mask(65, 1), 1);
        assert_eq!(group_mask(255, 3), u64::MAX >> 1);
        assert_eq!(group_mask(100, 2), 0);
    }

    #[test]
    fn seal_and_open_match_the_scalar_backend_for_every_length_to_600_and_every_key_size() {
        for key in [[0x11u8; 16].as_slice(), &[0x22; 24], &[0x33; 32]] {
            let Some((fast, reference)) = keys(key) else {
                eprintln!("skipped vaes512: {}", crate::Backend::Vaes512.unsupported_reason().unwrap_or("?"));
                return;
            };
            let msg: Vec<u8> = (0..600u32).map(|i| (i * 29 + 3) as u8).collect();
            let j0 = u128::from_be_bytes(*b"0123456789ab\0\0\0\x01");
            for len in 0..=msg.len() {
                for aad in [&b""[..], b"spi+seq!", b"a longer additional data block, over 16"] {
                    let (mut a, mut b) = (msg[..len].to_vec(), msg[..len].to_vec());
                    let ta = fast.seal(j0, aad, &mut a);
                    let tb = reference.seal(j0, aad, &mut b);
                    assert_eq!(a, b, "ciphertext, length {len}");
                    assert_eq!(ta, tb, "tag, length {len}");
                    assert_eq!(fast.open(j0, aad, &mut a), ta, "open tag, length {len}");
                    assert_eq!(a, &msg[..len], "plaintext, length {len}");
                }
            }
        }
    }

    #[test]
    fn counter_wraps_modulo_2_pow_32_like_the_scalar_backend() {
        for key in [[0x11u8; 16].as_slice(), &[0x22; 24], &[0x33; 32]] {
            let Some((fast, reference)) = keys(key) else {
                eprintln!("skipped vaes512: {}", crate::Backend::Vaes512.unsupported_reason().unwrap_or("?"));
                return;
            };
            let mut j0 = [0xa5u8; 16];
            j0[12..].copy_from_slice(&0xFFFF_FFF3u32.to_be_bytes());
            for len in [0usize, 1, 15, 16, 17, 255, 256, 257, 511, 512, 600, 1000, 4096] {
                let msg: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
                let (mut a, mut b) = (msg.clone(), msg.clone());
                let j0 = u128::from_be_bytes(j0);
                let ta = fast.seal(j0, b"aad", &mut a);
                let tb = reference.seal(j0, b"aad", &mut b);
                assert_eq!(a, b, "ciphertext, length {len}");
                assert_eq!(ta, tb, "tag, length {len}");
                assert_eq!(fast.open(j0, b"aad", &mut a), ta);
                assert_eq!(a, msg);
            }
        }
    }

    #[test]
    fn every_counter_start_byte_and_batch_count_matches_the_scalar_backend() {
        let Some((fast, reference)) = keys(&[0x55; 16]) else {
            eprintln!("skipped vaes512: {}", crate::Backend::Vaes512.unsupported_reason().unwrap_or("?"));
            return;
        };
        let msg: Vec<u8> = (0..2100u32).map(|i| (i * 31 + 5) as u8).collect();
        for low in 0..=255u128 {
            let j0 = 0x0a0b_0c0d_0e0f_1011_1213_1415_1617_0000u128 | (0xFE << 8) | low;
            for len in [256, 512, 768, 1024, 1604, 2100] {
                let (mut a, mut b) = (msg[..len].to_vec(), msg[..len].to_vec());
                let ta = fast.seal(j0, b"", &mut a);
                let tb = reference.seal(j0, b"", &mut b);
                assert_eq!(a, b, "ciphertext, length {len}, counter low byte {low:#x}");
                assert_eq!(ta, tb, "tag, length {len}, counter low byte {low:#x}");
                assert_eq!(fast.open(j0, b"", &mut a), ta);
                assert_eq!(a, &msg[..len]);
            }
        }
    }

    #[test]
    fn seal_append_matches_seal_with_the_payload_sum() {
        let Some((fast, _)) = keys(&[0x44; 16]) else {
            eprintln!("skipped vaes512: {}", crate::Backend::Vaes512.unsupported_reason().unwrap_or("?"));
            return;
        };
        let j0 = 0x0102_0304_0506_0708_090a_0b0c_0000_0001u128;
        let data: Vec<u8> = (0..1200u32).map(|i| (i * 13 + 1) as u8).collect();
        for (len, extra_len) in [(0, 2), (255, 2), (256, 2), (257, 17), (511, 3), (512, 0), (1000, 14), (1199, 1)] {
            let (payload, extra) = (&data[..len], &data[len..len + extra_len]);
            let mut whole = [payload, extra].concat();
            let tag = fast.seal(j0, b"hdr", &mut whole);
            let mut out = b"prefix".to_vec();
            let (tag2, sum) = crate::backend::seal_append_summed(&fast, j0, b"hdr", [payload, extra], &mut out);
            assert_eq!(&out[..6], b"prefix");
            assert_eq!(&out[6..], &whole[..], "length {len}+{extra_len}");
            assert_eq!(tag2, tag);
            assert_eq!(
                crate::ones_complement::fold(sum),
                crate::ones_complement::fold(crate::ones_complement::sum_native(payload))
            );
        }
    }
}
