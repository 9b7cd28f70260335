//! The VAES + VPCLMULQDQ backend on 256-bit registers: two blocks per
//! instruction, eight blocks per bulk iteration, and a short-message path
//! that encrypts `J0` in the same AES pass as the message's last blocks.
//!
//! # Representation
//!
//! Everything the AES-NI backend's module docs say about the field holds
//! here, one 128-bit lane at a time: a `ymm` register holds two consecutive
//! blocks (block `2i` in the low lane, `2i + 1` in the high one), byte-reversed
//! within their lanes into the reflected form, and `VPCLMULQDQ` multiplies both
//! lanes at once. Powers of the hash key are stored times `x^-1`, so a product
//! needs no shift, and sums of unreduced products are reduced once with the
//! same two-multiply fold (`aesni::reduce`).
//!
//! # Powers of H
//!
//! The key holds `H^17 .. H^1` (times `x^-1`), highest first, then one zero
//! block: `h_powers[i] = H^(17 - i)`. Hashing `M` blocks under one reduction
//! multiplies block `j` by `H^(M - j)`, which is `h_powers[17 - M + j]`, so the
//! two powers for the pair of blocks `j, j + 1` are one unaligned 32-byte load
//! at that index; the zero block makes a final half-empty pair load cleanly.
//! Seventeen is the most one reduction ever covers: the last bulk batch of an
//! encryption (eight blocks hashed after the loop), a tail of up to eight
//! blocks and the length block. A message under 128 bytes hashes its AAD block
//! (ESP's 8 or 12 bytes), its blocks and the length block, at most ten, under
//! one reduction too.
//!
//! Products are schoolbook (four multiplies per register, the two middle
//! ones summed). Karatsuba would save one multiply per register for a lane
//! shuffle, two XORs and a table of half-sums; it has not been tried here.
//!
//! # Loop shape
//!
//! The bulk loop takes 128 bytes (four registers) per iteration. Encrypting,
//! it hashes the previous batch's ciphertext while the current counters go
//! through the AES rounds; decrypting, it hashes the batch it decrypts. Each
//! of the first four rounds is followed by one register's four multiplies, so
//! the AES units and the multiplier work side by side, and the eight products
//! are reduced once. The last encrypted batch is not hashed in the loop: it
//! joins the tail's reduction.
//!
//! # The tail and `J0`
//!
//! What is left after the bulk loop (`N` = 0..=8 blocks, the last possibly
//! partial) is one pass of `N / 2 + 1` registers through AES: counters
//! `ctr .. ctr + N - 1` in block slots `0 .. N - 1` and `J0` in slot `N`, so
//! the tag mask costs no AES pass of its own. The hash of those blocks reuses
//! the same slots: the length block goes into slot `N`, where `J0` was. So a
//! 64-byte ESP packet is three AES registers and one reduction covering the
//! AAD block, four data blocks and the length block, and nothing else but
//! loads, stores and the tag. Partial blocks are read and written with the
//! AES-NI backend's overlapping word accesses (`read_partial`,
//! `write_partial`), not byte loops.
//!
//! AAD longer than a block (not ESP's case) is hashed by the AES-NI key this
//! key is built on, as is the stand-alone `ghash` entry point.
//!
//! # Safety
//!
//! Every function that uses the instructions carries
//! `#[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]`.
//! A [`Vaes256Key`] is made only by [`Vaes256Key::new`], which returns `None`
//! unless run-time detection found all of them, so calling those functions
//! through a key is sound. Memory is touched through fixed-size array
//! references or through a [`Bulk`], whose constructors take slices and whose
//! accessors are `unsafe fn`s called only with a batch index below its batch
//! count.

use super::aesni::{self, AesNiKey, byte_reverse, init_with, load, read_partial, store, to_bytes, write_partial};
use super::bulk::Bulk;
use super::{Discard, KeyBytes, PlaintextSink, SealInto};
use core::arch::x86_64::{
    __m128i, __m256i, _mm_add_epi32, _mm_set_epi8, _mm_set_epi32, _mm_set_epi64x, _mm_set1_epi8, _mm_setzero_si128,
    _mm_xor_si128, _mm256_add_epi32, _mm256_aesenc_epi128, _mm256_aesenclast_epi128, _mm256_and_si256,
    _mm256_blend_epi32, _mm256_broadcastsi128_si256, _mm256_bslli_epi128, _mm256_bsrli_epi128, _mm256_castsi256_si128,
    _mm256_clmulepi64_epi128, _mm256_extracti128_si256, _mm256_loadu_si256, _mm256_permute2x128_si256,
    _mm256_set_epi32, _mm256_set_m128i, _mm256_setzero_si256, _mm256_shuffle_epi8, _mm256_storeu_si256,
    _mm256_xor_si256, _mm256_zextsi128_si256,
};
use core::mem::MaybeUninit;
use zeroize::Zeroize;

/// Blocks per bulk iteration.
const BLOCKS: usize = 8;
/// Registers per bulk iteration.
const REGS: usize = BLOCKS / 2;
/// Bytes per bulk iteration.
const BATCH: usize = 16 * BLOCKS;
/// Powers of H kept: a batch, the longest tail and the length block.
const POWERS: usize = 2 * BLOCKS + 1;
/// Most round keys any key size needs (AES-256: 14 rounds).
const MAX_ROUND_KEYS: usize = 15;

/// `[0xFF; 16]` then `[0; 16]`: the 16 bytes from offset `16 - r` keep the
/// first `r` bytes of a block.
const KEEP_MASKS: [u8; 32] = {
    let mut m = [0u8; 32];
    let mut i = 0;
    while i < 16 {
        m[i] = 0xFF;
        i += 1;
    }
    m
};

/// Reverse the bytes of each 128-bit lane.
#[inline]
#[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
fn byte_reverse2(a: __m256i) -> __m256i {
    let mask = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    _mm256_shuffle_epi8(a, _mm256_broadcastsi128_si256(mask))
}

#[inline]
#[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
fn xor2(a: __m256i, b: __m256i) -> __m256i {
    _mm256_xor_si256(a, b)
}

/// The low lane of a register.
#[inline]
#[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
fn low(a: __m256i) -> __m128i {
    _mm256_castsi256_si128(a)
}

/// The high lane of a register.
#[inline]
#[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
fn high(a: __m256i) -> __m128i {
    _mm256_extracti128_si256::<1>(a)
}

/// Lane `lane` (0 or 1) of a register.
#[inline]
#[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
fn lane(a: __m256i, lane: usize) -> __m128i {
    if lane == 0 { low(a) } else { high(a) }
}

/// A block in the low lane, zero in the high one.
#[inline]
#[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
fn widen(a: __m128i) -> __m256i {
    _mm256_zextsi128_si256(a)
}

/// The GCM length block (reflected): bit lengths of the AAD and the message.
#[inline]
#[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
fn length_block(aad_len: usize, len: usize) -> __m128i {
    _mm_set_epi64x((aad_len as u64 * 8) as i64, (len as u64 * 8) as i64)
}

/// An unreduced GHASH sum: per lane, the three schoolbook parts.
#[derive(Clone, Copy)]
struct Wide {
    lo: __m256i,
    mid: __m256i,
    hi: __m256i,
}

impl Wide {
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
    fn zero() -> Wide {
        Wide { lo: _mm256_setzero_si256(), mid: _mm256_setzero_si256(), hi: _mm256_setzero_si256() }
    }

    /// Add `x * h` lane by lane (both reflected, `h` a stored power pair).
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
    fn mul_add(&mut self, x: __m256i, h: __m256i) {
        self.lo = xor2(self.lo, _mm256_clmulepi64_epi128::<0x00>(x, h));
        self.hi = xor2(self.hi, _mm256_clmulepi64_epi128::<0x11>(x, h));
        let cross = xor2(_mm256_clmulepi64_epi128::<0x01>(x, h), _mm256_clmulepi64_epi128::<0x10>(x, h));
        self.mid = xor2(self.mid, cross);
    }

    /// Add the two lanes and reduce: the reflected 128-bit sum.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
    fn reduce(self) -> __m128i {
        let lo = xor2(self.lo, _mm256_bslli_epi128::<8>(self.mid));
        let hi = xor2(self.hi, _mm256_bsrli_epi128::<8>(self.mid));
        aesni::reduce(_mm_xor_si128(low(lo), high(lo)), _mm_xor_si128(low(hi), high(hi)))
    }
}

/// This backend's batches.
type Batches<'a> = Bulk<'a, BATCH>;

/// The four registers of input batch `batch`.
///
/// # Safety
/// `batch < io.batches`.
#[inline]
#[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
unsafe fn load_batch(io: &Batches<'_>, batch: usize) -> [__m256i; REGS] {
    core::array::from_fn(|i| {
        // SAFETY: register `i` of a batch that exists (caller); no alignment rule.
        unsafe { _mm256_loadu_si256(io.input(batch, 32 * i).cast()) }
    })
}

/// Write output batch `batch`.
///
/// # Safety
/// `batch < io.batches`.
#[inline]
#[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
unsafe fn store_batch(io: &Batches<'_>, batch: usize, regs: &[__m256i; REGS]) {
    for (i, reg) in regs.iter().enumerate() {
        // SAFETY: register `i` of a batch that exists (caller); no alignment rule.
        unsafe { _mm256_storeu_si256(io.output(batch, 32 * i).cast(), *reg) }
    }
}

/// Key material of the 256-bit VAES backend.
#[derive(Clone)]
pub(crate) struct Vaes256Key {
    /// The AES-NI key this one is built on: key expansion, `H`, and GHASH of
    /// long AAD.
    base: AesNiKey,
    /// Round keys `0..=rounds`, each in both lanes; the rest are zero.
    round_keys: [__m256i; MAX_ROUND_KEYS],
    /// 10, 12 or 14.
    rounds: usize,
    /// `h_powers[i] = H^(POWERS - i) * x^-1`, reflected; the last is zero.
    h_powers: [__m128i; POWERS + 1],
}

impl Drop for Vaes256Key {
    fn drop(&mut self) {
        self.round_keys.zeroize();
        self.h_powers.zeroize();
    }
}

impl Vaes256Key {
    /// Key setup; `None` unless this CPU has what the backend needs (so that
    /// holding a `Vaes256Key` proves it does).
    pub(crate) fn new(key: KeyBytes<'_>) -> Option<Vaes256Key> {
        if crate::backend::cpu::has_vaes256() != Some(true) {
            return None;
        }
        let base = AesNiKey::new(key)?;
        // AES-128/192/256: 4/6/8 key words, 10/12/14 rounds.
        let rounds = key.as_slice().len() / 4 + 6;
        // SAFETY: the features were detected just above.
        Some(unsafe { Vaes256Key::setup(base, rounds) })
    }

    #[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
    fn setup(base: AesNiKey, rounds: usize) -> Vaes256Key {
        let mut round_keys = [_mm256_setzero_si256(); MAX_ROUND_KEYS];
        for (wide, k) in round_keys.iter_mut().zip(base.round_keys()).take(rounds + 1) {
            *wide = _mm256_broadcastsi128_si256(*k);
        }
        let h1 = base.h1();
        let mut h_powers = [_mm_setzero_si128(); POWERS + 1];
        let mut power = h1;
        for slot in h_powers[..POWERS].iter_mut().rev() {
            *slot = power;
            // (H^i x^-1)(H x^-1) x = H^(i+1) x^-1.
            power = aesni::gf_mul(power, h1);
        }
        power.zeroize();
        Vaes256Key { base, round_keys, rounds, h_powers }
    }

    /// The powers of H for the block pair at `at`: `h_powers[at]` in the low
    /// lane, `h_powers[at + 1]` in the high one.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
    fn power_pair(&self, at: usize) -> __m256i {
        let pair = &self.h_powers[at..at + 2];
        // SAFETY: `pair` is two `__m128i`, 32 readable bytes; no alignment rule.
        unsafe { _mm256_loadu_si256(pair.as_ptr().cast()) }
    }

    /// GHASH `data` (zero-padded) into `acc`, given and returned as the
    /// big-endian integer of the block.
    pub(crate) fn ghash(&self, acc: &mut u128, data: &[u8]) {
        self.base.ghash(acc, data)
    }

    /// GHASH one block given as a big-endian integer.
    pub(crate) fn ghash_block(&self, acc: &mut u128, block: u128) {
        self.base.ghash_block(acc, block)
    }

    /// Encrypt `buf` in place with counters `inc32(J0)`, ... and return the
    /// full tag over `aad` and the ciphertext.
    #[inline]
    pub(crate) fn seal(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        // One block or less: the AES-NI code's setup is shorter (measured
        // 31 against 51 ns at 16 B; open is as fast either way).
        if buf.len() <= 16 {
            return self.base.seal(j0, aad, buf);
        }
        let (bulk, rest) = Batches::in_place(buf);
        // SAFETY: a `Vaes256Key` exists only if the features were detected.
        unsafe { self.crypt::<false, _>(j0, aad, bulk, &mut Discard, rest) }
    }

    /// Decrypt `buf` in place and return the tag computed over `aad` and the
    /// ciphertext it held. The caller compares tags and wipes `buf` on mismatch.
    #[inline]
    pub(crate) fn open(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        let (bulk, rest) = Batches::in_place(buf);
        // SAFETY: a `Vaes256Key` exists only if the features were detected.
        unsafe { self.crypt::<true, _>(j0, aad, bulk, &mut Discard, rest) }
    }

    /// En- or decrypt the batches of `first` (handing their input to
    /// `sink`), then all of `rest` in place; return the tag over `aad` and
    /// the ciphertext of both.
    #[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
    fn crypt<const DECRYPT: bool, S: PlaintextSink>(
        &self,
        j0: u128,
        aad: &[u8],
        first: Batches<'_>,
        sink: &mut S,
        rest: &mut [u8],
    ) -> [u8; 16] {
        let lengths = length_block(aad.len(), first.batches * BATCH + rest.len());
        // J0 as a big-endian integer is the byte-reversed block: its counter
        // word (the block's last four bytes) is lane 0, so `PADDD` is inc32.
        let j0 = _mm_set_epi64x((j0 >> 64) as i64, j0 as i64);
        let mut ctr = _mm_add_epi32(j0, _mm_set_epi32(0, 0, 0, 1));
        // ESP's AAD (8 or 12 bytes) is one block that joins the tail's
        // reduction; longer AAD is hashed up front.
        let (mut acc, mut head) = if aad.len() <= 16 {
            (_mm_setzero_si128(), (!aad.is_empty()).then(|| byte_reverse(load(&read_partial(aad)))))
        } else {
            let mut acc = 0u128;
            self.base.ghash(&mut acc, aad);
            (_mm_set_epi64x((acc >> 64) as i64, acc as i64), None)
        };
        let (second, tail) = Batches::in_place(rest);
        let mut pending = None;
        if first.batches + second.batches > 0 {
            if let Some(block) = head.take() {
                let mut wide = Wide::zero();
                wide.mul_add(widen(block), self.power_pair(POWERS - 1));
                acc = wide.reduce();
            }
            if DECRYPT {
                self.open_bulk(&mut ctr, &mut acc, first);
                self.open_bulk(&mut ctr, &mut acc, second);
            } else {
                self.seal_bulk(&mut ctr, &mut acc, &mut pending, first, sink);
                self.seal_bulk(&mut ctr, &mut acc, &mut pending, second, &mut Discard);
            }
        }
        // Every vector handed over is a whole register: the tail reloads
        // them as such, never as a wider load over two narrower stores.
        let end = End {
            counters: Self::counter_pairs::<1>(ctr)[0],
            j0: _mm256_broadcastsi128_si256(j0),
            acc: widen(acc),
            head: widen(head.unwrap_or(_mm_setzero_si128())),
            has_head: head.is_some(),
            pending: pending.as_ref(),
            lengths: widen(lengths),
        };
        match tail.len().div_ceil(16) {
            0 => self.finish::<0, 1, DECRYPT>(end, tail),
            1 => self.finish::<1, 1, DECRYPT>(end, tail),
            2 => self.finish::<2, 2, DECRYPT>(end, tail),
            3 => self.finish::<3, 2, DECRYPT>(end, tail),
            4 => self.finish::<4, 3, DECRYPT>(end, tail),
            5 => self.finish::<5, 3, DECRYPT>(end, tail),
            6 => self.finish::<6, 4, DECRYPT>(end, tail),
            7 => self.finish::<7, 4, DECRYPT>(end, tail),
            _ => self.finish::<8, 5, DECRYPT>(end, tail),
        }
    }

    /// `Y` counter-block pairs from `ctr` (reflected form, not yet whitened):
    /// `ctr + 2y` in the low lane of register `y`, `ctr + 2y + 1` in the high.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
    fn counter_pairs<const Y: usize>(ctr: __m128i) -> [__m256i; Y] {
        let base = _mm256_add_epi32(_mm256_broadcastsi128_si256(ctr), _mm256_set_epi32(0, 0, 0, 1, 0, 0, 0, 0));
        core::array::from_fn(|y| {
            let step = 2 * y as i32;
            _mm256_add_epi32(base, _mm256_set_epi32(0, 0, 0, step, 0, 0, 0, step))
        })
    }

    /// Reflected counter blocks to memory order, plus round key 0.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
    fn whiten<const Y: usize>(&self, blocks: [__m256i; Y]) -> [__m256i; Y] {
        blocks.map(|b| xor2(byte_reverse2(b), self.round_keys[0]))
    }

    /// AES rounds `from..rounds` and the last round.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
    fn finish_rounds<const Y: usize>(&self, b: &mut [__m256i; Y], from: usize) {
        for k in &self.round_keys[from..self.rounds] {
            for x in b.iter_mut() {
                *x = _mm256_aesenc_epi128(*x, *k);
            }
        }
        let last = self.round_keys[self.rounds];
        for x in b.iter_mut() {
            *x = _mm256_aesenclast_epi128(*x, last);
        }
    }

    /// AES rounds 1..=4 on `ks`, each followed by the multiplies of one of
    /// the eight blocks in `hashed` (with `acc` added to the first), then
    /// the reduction: the new hash. `ks` still needs rounds 5 and up.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
    fn rounds_with_ghash(&self, ks: &mut [__m256i; REGS], hashed: &[__m256i; REGS], acc: __m128i) -> __m128i {
        let mut wide = Wide::zero();
        for (i, &x) in hashed.iter().enumerate() {
            let k = self.round_keys[1 + i];
            for y in ks.iter_mut() {
                *y = _mm256_aesenc_epi128(*y, k);
            }
            let x = if i == 0 { xor2(x, widen(acc)) } else { x };
            wide.mul_add(x, self.power_pair(POWERS - BLOCKS + 2 * i));
        }
        wide.reduce()
    }

    /// Encrypt whole batches. Each batch's ciphertext is hashed while the
    /// next one is encrypted; the last one is left in `pending` (reflected)
    /// for the tail's reduction. The plaintext goes to `sink` too (whose
    /// work, if any, runs on the integer units, which this loop leaves idle).
    #[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
    fn seal_bulk<S: PlaintextSink>(
        &self,
        ctr: &mut __m128i,
        acc: &mut __m128i,
        pending: &mut Option<[__m256i; REGS]>,
        io: Batches<'_>,
        sink: &mut S,
    ) {
        let step = _mm_set_epi32(0, 0, 0, BLOCKS as i32);
        let (mut c, mut a) = (*ctr, *acc);
        // The first batch has nothing before it to hash: peeled off, so that
        // the loop itself has no branch.
        let (mut prev, first) = match pending {
            Some(p) => (*p, 0),
            None if io.batches == 0 => return,
            None => {
                let mut ks = self.whiten(Self::counter_pairs::<REGS>(c));
                c = _mm_add_epi32(c, step);
                self.finish_rounds(&mut ks, 1);
                // SAFETY: `0 < io.batches` (checked above).
                (unsafe { self.seal_output(&ks, io, 0, sink) }, 1)
            }
        };
        for batch in first..io.batches {
            let mut ks = self.whiten(Self::counter_pairs::<REGS>(c));
            c = _mm_add_epi32(c, step);
            a = self.rounds_with_ghash(&mut ks, &prev, a);
            self.finish_rounds(&mut ks, 1 + REGS);
            // SAFETY: `batch < io.batches` (the loop bound).
            prev = unsafe { self.seal_output(&ks, io, batch, sink) };
        }
        (*ctr, *acc) = (c, a);
        *pending = Some(prev);
    }

    /// XOR batch `batch` of the input with the keystream `ks`, store it,
    /// hand the input to `sink`; returns the ciphertext reflected, for
    /// hashing.
    ///
    /// # Safety
    /// `batch < io.batches`.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
    unsafe fn seal_output<S: PlaintextSink>(
        &self,
        ks: &[__m256i; REGS],
        io: Batches<'_>,
        batch: usize,
        sink: &mut S,
    ) -> [__m256i; REGS] {
        // SAFETY: `batch < io.batches` (caller).
        unsafe { io.feed(batch, sink) };
        // SAFETY: `batch < io.batches` (caller).
        let input = unsafe { load_batch(&io, batch) };
        let mut output = [_mm256_setzero_si256(); REGS];
        for ((out, i), k) in output.iter_mut().zip(input).zip(ks) {
            *out = xor2(i, *k);
        }
        // SAFETY: `batch < io.batches` (caller).
        unsafe { store_batch(&io, batch, &output) };
        for out in output.iter_mut() {
            *out = byte_reverse2(*out);
        }
        output
    }

    /// Decrypt whole batches, each hashed while it is decrypted.
    #[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
    fn open_bulk(&self, ctr: &mut __m128i, acc: &mut __m128i, io: Batches<'_>) {
        let step = _mm_set_epi32(0, 0, 0, BLOCKS as i32);
        let (mut c, mut a) = (*ctr, *acc);
        for batch in 0..io.batches {
            // SAFETY: `batch < io.batches` (the loop bound).
            let ct = unsafe { load_batch(&io, batch) };
            let mut hashed = ct;
            for h in hashed.iter_mut() {
                *h = byte_reverse2(*h);
            }
            let mut ks = self.whiten(Self::counter_pairs::<REGS>(c));
            c = _mm_add_epi32(c, step);
            a = self.rounds_with_ghash(&mut ks, &hashed, a);
            self.finish_rounds(&mut ks, 1 + REGS);
            let mut output = [_mm256_setzero_si256(); REGS];
            for ((out, i), k) in output.iter_mut().zip(ct).zip(ks) {
                *out = xor2(i, k);
            }
            // SAFETY: `batch < io.batches` (the loop bound).
            unsafe { store_batch(&io, batch, &output) };
        }
        (*ctr, *acc) = (c, a);
    }

    /// The last `tail.len()` (< 128) bytes, `N` blocks (the last possibly
    /// partial) in `Y = N / 2 + 1` registers, en- or decrypted in place
    /// together with `J0` (slot `N`); then everything not yet hashed (the
    /// AAD block or the last encrypted batch, the tail and the length block,
    /// in slot `N`) under one reduction. Returns the tag.
    #[inline]
    #[target_feature(enable = "vaes,vpclmulqdq,avx2,avx,aes,pclmulqdq,ssse3,sse4.1")]
    fn finish<const N: usize, const Y: usize, const DECRYPT: bool>(&self, end: End<'_>, tail: &mut [u8]) -> [u8; 16] {
        const { assert!(Y == N / 2 + 1 && N <= BLOCKS) };
        let End { counters, j0, acc, head, has_head, pending, lengths } = end;

        // AES: counters in slots 0..N, J0 in slot N.
        let mut ks = [counters; Y];
        for (y, k) in ks.iter_mut().enumerate() {
            let step = 2 * y as i32;
            *k = _mm256_add_epi32(*k, _mm256_set_epi32(0, 0, 0, step, 0, 0, 0, step));
        }
        ks[N / 2] = if N.is_multiple_of(2) {
            _mm256_blend_epi32::<0x0F>(ks[N / 2], j0)
        } else {
            _mm256_blend_epi32::<0xF0>(ks[N / 2], j0)
        };
        let mut ks = self.whiten(ks);
        self.finish_rounds(&mut ks, 1);
        let tag_mask = lane(ks[N / 2], N % 2);

        // The data: whole blocks, then the partial one zero-padded.
        let (blocks, partial) = tail.as_chunks_mut::<16>();
        let zero = _mm_setzero_si128();
        // Block `N - 1` is the partial one if there is one; the others are
        // whole (`blocks.len()` is `N` or `N - 1`).
        let last_in = if partial.is_empty() {
            blocks.get(N.wrapping_sub(1)).map_or(zero, |b| load(b))
        } else {
            load(&read_partial(partial))
        };
        let block_in = |i: usize| match i {
            _ if i + 1 < N => blocks.get(i).map_or(zero, |b| load(b)),
            _ if i + 1 == N => last_in,
            _ => zero,
        };
        let mut data = [_mm256_setzero_si256(); Y];
        for (y, d) in data.iter_mut().enumerate() {
            *d = _mm256_set_m128i(block_in(2 * y + 1), block_in(2 * y));
        }
        let mut output = data;
        for (out, k) in output.iter_mut().zip(ks) {
            *out = xor2(*out, k);
        }
        for i in 0..N {
            let out = lane(output[i / 2], i % 2);
            if i + 1 < N || partial.is_empty() {
                if let Some(b) = blocks.get_mut(i) {
                    store(b, out);
                }
            } else {
                write_partial(partial, &to_bytes(out));
            }
        }

        // What to hash: the ciphertext (zero-padded, zero from slot N on),
        // with the length block in slot N.
        let mut hashed: [__m256i; Y] = if DECRYPT {
            data
        } else {
            let r = if partial.is_empty() { 16 } else { partial.len() };
            let ones = _mm_set1_epi8(-1);
            let last_keep = KEEP_MASKS.get(16 - r..).and_then(|m| m.first_chunk::<16>()).map_or(zero, |m| load(m));
            let keep = |i: usize| match i {
                _ if i + 1 < N => ones,
                _ if i + 1 == N => last_keep,
                _ => zero,
            };
            let mut masked = output;
            // Only the registers holding block N - 1 and slot N need it.
            for (y, out) in masked.iter_mut().enumerate().skip((N / 2).saturating_sub(1)) {
                *out = _mm256_and_si256(*out, _mm256_set_m128i(keep(2 * y + 1), keep(2 * y)));
            }
            masked
        }
        .map(|x| byte_reverse2(x));
        let lengths_slot =
            if N.is_multiple_of(2) { lengths } else { _mm256_permute2x128_si256::<0x08>(lengths, lengths) };
        hashed[N / 2] = xor2(hashed[N / 2], lengths_slot);

        // One reduction over [head | pending batch] and the tail: block j of
        // M gets H^(M - j).
        let m = usize::from(has_head) + if pending.is_some() { BLOCKS } else { 0 } + N + 1;
        let mut at = POWERS - m;
        let mut wide = Wide::zero();
        let mut carry = acc;
        if has_head {
            wide.mul_add(xor2(head, carry), self.power_pair(at));
            carry = _mm256_setzero_si256();
            at += 1;
        }
        if let Some(prev) = pending {
            for x in prev {
                wide.mul_add(xor2(*x, carry), self.power_pair(at));
                carry = _mm256_setzero_si256();
                at += 2;
            }
        }
        for x in hashed {
            wide.mul_add(xor2(x, carry), self.power_pair(at));
            carry = _mm256_setzero_si256();
            at += 2;
        }
        to_bytes(_mm_xor_si128(byte_reverse(wide.reduce()), tag_mask))
    }
}

// SAFETY: `crypt` writes the bulk batches of `dst` and `init_with` the rest.
unsafe impl SealInto for Vaes256Key {
    const BATCH: usize = BATCH;

    #[inline]
    fn seal(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        Vaes256Key::seal(self, j0, aad, buf)
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
        let (bulk, rest_src, rest_dst) = Batches::between(src, dst);
        // The rest of `src` (under 128 bytes) and `extra` are copied to the
        // end of the output and finished there in place.
        let work = init_with(rest_dst, [rest_src, extra]);
        // SAFETY: a `Vaes256Key` exists only if the features were detected.
        let tag = unsafe { self.crypt::<false, _>(j0, aad, bulk, sink, work) };
        sink.rest(rest_src);
        tag
    }
}

/// The state the bulk loops hand to the tail.
#[derive(Clone, Copy)]
struct End<'a> {
    /// The next two counters (reflected), as `counter_pairs` makes them.
    counters: __m256i,
    /// `J0` (reflected) in both lanes, encrypted with the tail for the tag mask.
    j0: __m256i,
    /// The hash so far (reflected), in the low lane.
    acc: __m256i,
    /// The AAD block (reflected) in the low lane, if `has_head`.
    head: __m256i,
    /// Whether the AAD block still needs hashing.
    has_head: bool,
    /// The last encrypted batch, not hashed yet (reflected).
    pending: Option<&'a [__m256i; REGS]>,
    /// The length block (reflected), in the low lane.
    lengths: __m256i,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::scalar::ScalarKey;

    const KEYS: [&[u8]; 3] = [&[0x11; 16], &[0x22; 24], &[0x33; 32]];

    fn keys(key: &[u8]) -> Option<(Vaes256Key, ScalarKey)> {
        let kb = KeyBytes::new(key)?;
        Some((Vaes256Key::new(kb)?, ScalarKey::new(kb)))
    }

    fn message(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i.wrapping_mul(37) ^ (i >> 8)) as u8).collect()
    }

    /// Seal and open `len` bytes with both keys; assert equal ciphertext and
    /// tags, and that opening restores the message.
    fn check(fast: &Vaes256Key, reference: &ScalarKey, j0: u128, aad: &[u8], len: usize) {
        let msg = message(len);
        let (mut a, mut b) = (msg.clone(), msg.clone());
        let ta = fast.seal(j0, aad, &mut a);
        let tb = reference.seal(j0, aad, &mut b);
        assert_eq!(a, b, "ciphertext, length {len}, aad {}", aad.len());
        assert_eq!(ta, tb, "tag, length {len}, aad {}", aad.len());
        assert_eq!(fast.open(j0, aad, &mut a), ta, "open tag, length {len}, aad {}", aad.len());
        assert_eq!(a, msg, "open plaintext, length {len}");
    }

    #[test]
    fn powers_of_h_are_stored_highest_first_and_zero_padded() {
        let Some((k, _)) = keys(&[0x5c; 16]) else {
            eprintln!("skipped: this CPU lacks VAES/VPCLMULQDQ/AVX2");
            return;
        };
        // SAFETY: a key exists, so the features were detected.
        let bytes = |i: usize| unsafe { to_bytes(k.h_powers[i]) };
        // SAFETY: as above.
        assert_eq!(bytes(POWERS - 1), unsafe { to_bytes(k.base.h1()) });
        assert_eq!(bytes(POWERS), [0u8; 16]);
        // H^2 x^-1 = (H x^-1)(H x^-1) x.
        // SAFETY: as above.
        let h2 = unsafe { to_bytes(aesni::gf_mul(k.base.h1(), k.base.h1())) };
        assert_eq!(bytes(POWERS - 2), h2);
        assert_ne!(bytes(0), bytes(1));
    }

    #[test]
    fn seal_and_open_match_the_scalar_backend_for_every_length_to_600() {
        for key in KEYS {
            let Some((fast, reference)) = keys(key) else {
                eprintln!("skipped: this CPU lacks VAES/VPCLMULQDQ/AVX2");
                return;
            };
            let j0 = u128::from_be_bytes(*b"\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\0\0\0\x01");
            for len in 0..=600 {
                check(&fast, &reference, j0, &[0x00, 0x00, 0x12, 0x34, 0x00, 0x00, 0x00, 0x01], len);
            }
        }
    }

    #[test]
    fn every_aad_length_and_block_count_boundary_matches_the_scalar_backend() {
        let Some((fast, reference)) = keys(&[0x42; 16]) else {
            eprintln!("skipped: this CPU lacks VAES/VPCLMULQDQ/AVX2");
            return;
        };
        let aad = message(300);
        let j0 = 0x0102_0304_0506_0708_090a_0b0c_0000_0001;
        let mut lens = vec![];
        for blocks in [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 23, 24, 25, 32, 64, 89, 128, 1024] {
            lens.extend([16 * blocks - 1, 16 * blocks, 16 * blocks + 1]);
        }
        for aad_len in [0, 1, 4, 8, 12, 15, 16, 17, 31, 32, 33, 128, 129, 300] {
            for &len in &lens {
                check(&fast, &reference, j0, &aad[..aad_len], len);
            }
        }
    }

    #[test]
    fn counter_wraps_modulo_2_pow_32_like_the_scalar_backend() {
        for key in KEYS {
            let Some((fast, reference)) = keys(key) else {
                eprintln!("skipped: this CPU lacks VAES/VPCLMULQDQ/AVX2");
                return;
            };
            let mut j0 = [0xa5u8; 16];
            j0[12..].copy_from_slice(&0xFFFF_FFF3u32.to_be_bytes());
            let j0 = u128::from_be_bytes(j0);
            for len in [0usize, 1, 15, 16, 17, 127, 128, 129, 200, 255, 256, 300, 1000] {
                check(&fast, &reference, j0, b"aad", len);
            }
            // J0 itself at the wrap point: the tail's J0 slot must not be
            // confused with a counter.
            let j0 = u128::from_be_bytes([0x77; 16]) | 0xFFFF_FFFF;
            for len in [0usize, 16, 33, 144, 255] {
                check(&fast, &reference, j0, b"", len);
            }
        }
    }

    #[test]
    fn ghash_matches_the_scalar_backend() {
        let Some((fast, reference)) = keys(&[0x3c; 32]) else {
            eprintln!("skipped: this CPU lacks VAES/VPCLMULQDQ/AVX2");
            return;
        };
        let data = message(300);
        for len in 0..=data.len() {
            let (mut a, mut b) = (0x0123_4567_89ab_cdef_u128 << 40, 0x0123_4567_89ab_cdef_u128 << 40);
            fast.ghash(&mut a, &data[..len]);
            reference.ghash(&mut b, &data[..len]);
            assert_eq!(a, b, "length {len}");
        }
        let (mut a, mut b) = (5u128, 5u128);
        fast.ghash_block(&mut a, u128::MAX - 3);
        reference.ghash_block(&mut b, u128::MAX - 3);
        assert_eq!(a, b);
    }

    #[test]
    fn seal_append_matches_seal_and_sums_the_first_part() {
        let Some((fast, _)) = keys(&[0x99; 32]) else {
            eprintln!("skipped: this CPU lacks VAES/VPCLMULQDQ/AVX2");
            return;
        };
        let j0 = u128::from_be_bytes([0x0f; 16]);
        let backing = message(2000);
        let extras: [&[u8]; 4] = [&[], &[1, 2, 3, 4, 5, 6, 7], &backing[..130], &backing[..300]];
        for len in [0usize, 1, 20, 64, 127, 128, 129, 255, 256, 257, 576, 1420, 1439] {
            for offset in [0usize, 1, 3] {
                for extra in extras {
                    let src = &backing[offset..offset + len];
                    let mut expect: Vec<u8> = [src, extra].concat();
                    let tag = fast.seal(j0, b"12345678", &mut expect);
                    // Unaligned output start too: existing bytes before it.
                    let mut out = vec![0xEE; offset];
                    let (got_tag, sum) =
                        crate::backend::seal_append_summed(&fast, j0, b"12345678", [src, extra], &mut out);
                    assert_eq!(&out[..offset], &vec![0xEE; offset][..], "prefix kept");
                    assert_eq!(&out[offset..], &expect[..], "ciphertext, length {len}+{}", extra.len());
                    assert_eq!(got_tag, tag, "tag, length {len}+{}", extra.len());
                    assert_eq!(
                        crate::ones_complement::fold(sum),
                        crate::ones_complement::fold(crate::ones_complement::sum_native(src)),
                        "sum, length {len}"
                    );
                }
            }
        }
    }
}
