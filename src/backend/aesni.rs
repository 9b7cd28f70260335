//! The AES-NI + PCLMULQDQ backend: 128-bit registers, eight blocks per
//! iteration, counter-mode encryption stitched with GHASH.
//!
//! # What the CPU does for us
//!
//! `AESENC`/`AESENCLAST` perform one AES round on a 16-byte block; the key
//! schedule uses `AESKEYGENASSIST` for SubWord/RotWord. `PCLMULQDQ` multiplies
//! two 64-bit polynomials over GF(2) into a 128-bit product. All of these take
//! the same time for every operand, so this backend has no secret-dependent
//! timing either; it is not the reference (see `scalar`), only the fast path.
//!
//! # Field representation
//!
//! As in the scalar backend, a 16-byte GHASH block is read as a big-endian
//! 128-bit integer (in a register: the block byte-reversed with `PSHUFB`), so
//! bit 127 is the coefficient of `x^0` and bit 0 that of `x^127` ("reflected"
//! form). A carry-less product of two reflected values is the reflected
//! product shifted by one place: `clmul(R(a), R(b)) = R256(a * b * x)`. Every
//! stored power of the hash key is therefore `H^k * x^-1`; multiplying a data
//! block by it gives exactly `R256(block * H^k)`, with no per-product shift.
//!
//! # Reduction
//!
//! In the 256-bit reflected product, the low 128 bits hold the coefficients of
//! `x^128..x^255`. Reading bit positions as powers of `y`, adding a multiple of
//! `P*(y) = y^128 + y^127 + y^126 + y^121 + 1` (the reversed GCM polynomial)
//! adds a multiple of `x^128 + x^7 + x^2 + x + 1` in the GCM field. So the low
//! half is cleared 64 bits at a time, Montgomery style: for the lowest word
//! `w`, add `w * P*` shifted into place. `w * 1` cancels `w`; `w * y^128` is a
//! move by two words (done with a 64-bit lane swap); and `w * (y^121 + y^126 +
//! y^127)` is one `PCLMULQDQ` with the constant `0xC2 << 56` placed a word up.
//! Two such folds leave the reduced value in the high half: two carry-less
//! multiplies per reduction.
//!
//! # Loop shape
//!
//! The key holds `H^1..H^9` (times `x^-1`) and, for each, the XOR of its two
//! 64-bit halves, so each block costs three multiplies (Karatsuba) and eight
//! blocks share one reduction: `acc' = (acc + C1) H^8 + C2 H^7 + ... + C8 H`.
//! The bulk loop runs eight counter blocks through AES while it hashes eight
//! ciphertext blocks: the previous batch when encrypting (its ciphertext only
//! now exists), the current one when decrypting (the input is the ciphertext).
//! One block's multiplies sit after each of the first eight AES rounds, so the
//! AES unit and the carry-less multiplier run side by side. The tail (under
//! 128 bytes) is one unrolled batch of exactly as many blocks as it needs,
//! hashed together with the length block; the AAD and the tag block are hashed
//! on chains that do not depend on AES, so short messages overlap them too.
//! Partial blocks are read and written with overlapping word accesses, never
//! byte loops. (The ninth power lets the longest tail, eight blocks, share its
//! reduction with the length block.)
//!
//! # Out of place, with a plaintext sink
//!
//! The bulk loops read and write through a [`Bulk`]: the same memory when
//! working in place, or the caller's input and the spare capacity of an
//! output `Vec` (`super::SealInto`), which ESP uses to encrypt a payload
//! straight from the packet it was handed. Sealing also hands each 64 bytes
//! of plaintext it loads to a [`PlaintextSink`] (ESP's sums them for the
//! inner checksum, `crate::ones_complement`): the loop keeps the vector
//! ports busy and leaves the integer ones idle, so a sink's add-with-carry
//! chain runs beside it, over exactly the bytes that were encrypted.
//! Decryption feeds no sink: summing plaintext there means reading back
//! what was just stored.
//!
//! # Safety
//!
//! Every function that uses the instructions carries
//! `#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]`. An [`AesNiKey`]
//! can only be made by [`AesNiKey::new`], which returns `None` unless run-time
//! detection found all four features; calling those functions through a key is
//! therefore sound. Memory is touched through fixed-size array references
//! (in bounds by type) or through a [`Bulk`], whose constructors take slices
//! and whose accessors are `unsafe fn`s called only with a batch index below
//! its batch count.

use super::bulk::Bulk;
use super::{Discard, KeyBytes, PlaintextSink, SealInto};
use core::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_aesenc_si128, _mm_aesenclast_si128, _mm_aeskeygenassist_si128, _mm_clmulepi64_si128,
    _mm_extract_epi32, _mm_loadu_si128, _mm_set_epi8, _mm_set_epi32, _mm_set_epi64x, _mm_setzero_si128,
    _mm_shuffle_epi8, _mm_shuffle_epi32, _mm_slli_si128, _mm_srli_si128, _mm_storeu_si128, _mm_xor_si128,
};
use core::mem::MaybeUninit;
use zeroize::Zeroize;

/// AES rounds 1..=8 on the eight blocks `$b`, with one block of `$hashed`
/// folded into a GHASH sum after each round (block 0 first, plus `$acc`);
/// evaluates to the reduced hash. The blocks still need rounds 9 and up.
///
/// A macro rather than a function so that it is always inlined into the two
/// bulk loops (`#[inline(always)]` cannot be combined with
/// `#[target_feature]`, and a call per batch costs spills of every register).
macro_rules! rounds_1_to_8_with_ghash {
    ($key:expr, $b:expr, $hashed:expr, $acc:expr) => {{
        let key: &AesNiKey = $key;
        let mut wide = Wide::zero();
        // Every key size has at least nine middle rounds.
        for (i, (&x, k)) in $hashed.iter().zip(&key.round_keys[1..=BLOCKS]).enumerate() {
            for y in $b.iter_mut() {
                *y = _mm_aesenc_si128(*y, *k);
            }
            let x = if i == 0 { xor(x, $acc) } else { x };
            wide.mul_add(x, key.h[BLOCKS - 1 - i], key.hk[BLOCKS - 1 - i]);
        }
        wide.reduce()
    }};
}

/// Blocks per bulk iteration.
const BLOCKS: usize = 8;
/// Powers of H kept: one per block of a batch, and one more so that the
/// longest tail (eight blocks) and the length block share one reduction.
const POWERS: usize = BLOCKS + 1;
/// Bytes per bulk iteration.
const BATCH: usize = 16 * BLOCKS;
/// Most round keys any key size needs (AES-256: 14 rounds).
const MAX_ROUND_KEYS: usize = 15;

/// `0xC2 << 56` in both 64-bit lanes: the reversed polynomial's terms
/// `y^57 + y^62 + y^63` (see the module docs, Reduction).
#[inline]
#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
fn fold_constant() -> __m128i {
    _mm_set_epi64x(0xC200_0000_0000_0000_u64 as i64, 0xC200_0000_0000_0000_u64 as i64)
}

/// `PSHUFB` mask that reverses the 16 bytes of a register.
#[inline]
#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
fn byte_reverse_mask() -> __m128i {
    _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
}

#[inline]
#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
fn xor(a: __m128i, b: __m128i) -> __m128i {
    _mm_xor_si128(a, b)
}

#[inline]
#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
pub(super) fn byte_reverse(a: __m128i) -> __m128i {
    _mm_shuffle_epi8(a, byte_reverse_mask())
}

/// Load a 16-byte block as it sits in memory.
#[inline]
#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
pub(super) fn load(block: &[u8; 16]) -> __m128i {
    // SAFETY: `block` is 16 readable bytes; `loadu` has no alignment rule.
    unsafe { _mm_loadu_si128(block.as_ptr().cast()) }
}

/// Store a register to a 16-byte block.
#[inline]
#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
pub(super) fn store(block: &mut [u8; 16], value: __m128i) {
    // SAFETY: `block` is 16 writable bytes; `storeu` has no alignment rule.
    unsafe { _mm_storeu_si128(block.as_mut_ptr().cast(), value) }
}

/// A register as the 16 bytes it would store.
#[inline]
#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
pub(super) fn to_bytes(value: __m128i) -> [u8; 16] {
    let mut out = [0u8; 16];
    store(&mut out, value);
    out
}

/// Up to 15 bytes, zero-padded to a block, read with at most four word loads
/// (overlapping where the length is not a power of two) instead of a loop.
#[inline]
pub(super) fn read_partial(bytes: &[u8]) -> [u8; 16] {
    let n = bytes.len();
    let mut lo = 0u64;
    let mut hi = 0u64;
    let word8 = |at: usize| bytes.get(at..at + 8).and_then(|s| s.try_into().ok()).map_or(0, u64::from_le_bytes);
    let word4 = |at: usize| bytes.get(at..at + 4).and_then(|s| s.try_into().ok()).map_or(0, u32::from_le_bytes);
    let byte = |at: usize| bytes.get(at).copied().map_or(0, u64::from);
    match n {
        0 => {}
        1..=3 => lo = byte(0) | byte(n / 2) << (8 * (n / 2)) | byte(n - 1) << (8 * (n - 1)),
        4..=7 => lo = u64::from(word4(0)) | u64::from(word4(n - 4)) << (8 * (n - 4)),
        8..=15 => {
            lo = word8(0);
            // The last eight bytes end at `n`; shift out those below byte 8.
            hi = word8(n - 8).checked_shr(8 * (16 - n as u32)).unwrap_or(0);
        }
        _ => {
            lo = word8(0);
            hi = word8(8);
        }
    }
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&lo.to_le_bytes());
    out[8..].copy_from_slice(&hi.to_le_bytes());
    out
}

/// Write the first `out.len()` (at most 16) bytes of `block` with overlapping
/// word stores instead of a loop.
#[inline]
pub(super) fn write_partial(out: &mut [u8], block: &[u8; 16]) {
    let n = out.len().min(16);
    let (lo, hi) = block.split_at(8);
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
            out[..8].copy_from_slice(lo);
            out[n - 8..n].copy_from_slice(&block[n - 8..n]);
        }
        _ => {
            out[..8].copy_from_slice(lo);
            out[8..16].copy_from_slice(hi);
        }
    }
}

/// This backend's batches.
type Batches<'a> = Bulk<'a, BATCH>;

/// The eight blocks of input batch `batch`.
///
/// # Safety
/// `batch < io.batches`.
#[inline]
#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
unsafe fn load_batch(io: &Batches<'_>, batch: usize) -> [__m128i; BLOCKS] {
    core::array::from_fn(|i| {
        // SAFETY: block `i` of a batch that exists (caller); no alignment rule.
        unsafe { _mm_loadu_si128(io.input(batch, 16 * i).cast()) }
    })
}

/// Write output batch `batch`.
///
/// # Safety
/// `batch < io.batches`.
#[inline]
#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
unsafe fn store_batch(io: &Batches<'_>, batch: usize, blocks: &[__m128i; BLOCKS]) {
    for (i, block) in blocks.iter().enumerate() {
        // SAFETY: block `i` of a batch that exists (caller); no alignment rule.
        unsafe { _mm_storeu_si128(io.output(batch, 16 * i).cast(), *block) }
    }
}

/// Fill `dst` with `parts` one after the other (their lengths must add up
/// to `dst.len()`; anything left over is zero-filled) and return it as
/// initialised bytes.
pub(super) fn init_with<'a>(dst: &'a mut [MaybeUninit<u8>], parts: [&[u8]; 2]) -> &'a mut [u8] {
    let mut at = 0;
    for part in parts {
        let n = part.len().min(dst.len() - at);
        // SAFETY: `n` bytes readable in `part`, writable in `dst` from `at`
        // (`at + n <= dst.len()`); `&` and `&mut` do not overlap.
        unsafe { core::ptr::copy_nonoverlapping(part.as_ptr(), dst.as_mut_ptr().add(at).cast::<u8>(), n) };
        at += n;
    }
    for byte in dst.get_mut(at..).unwrap_or_default() {
        byte.write(0);
    }
    // SAFETY: every byte of `dst` was written above.
    unsafe { &mut *(core::ptr::from_mut::<[MaybeUninit<u8>]>(dst) as *mut [u8]) }
}

/// The GCM length block: bit lengths of the AAD and of the message.
#[inline]
#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
pub(super) fn length_block(aad_len: usize, len: usize) -> __m128i {
    _mm_set_epi64x((aad_len as u64 * 8) as i64, (len as u64 * 8) as i64)
}

/// An unreduced 256-bit GHASH sum, kept as Karatsuba's three parts.
#[derive(Clone, Copy)]
struct Wide {
    lo: __m128i,
    mid: __m128i,
    hi: __m128i,
}

impl Wide {
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    fn zero() -> Wide {
        Wide { lo: _mm_setzero_si128(), mid: _mm_setzero_si128(), hi: _mm_setzero_si128() }
    }

    /// Add `x * h` (x reflected, h a stored power with its half-sum `hk`).
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    fn mul_add(&mut self, x: __m128i, h: __m128i, hk: __m128i) {
        self.lo = xor(self.lo, _mm_clmulepi64_si128::<0x00>(x, h));
        self.hi = xor(self.hi, _mm_clmulepi64_si128::<0x11>(x, h));
        let x_halves = xor(x, _mm_shuffle_epi32::<0x4e>(x));
        self.mid = xor(self.mid, _mm_clmulepi64_si128::<0x00>(x_halves, hk));
    }

    /// Finish Karatsuba and reduce: the reflected 128-bit result.
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    fn reduce(self) -> __m128i {
        let mid = xor(self.mid, xor(self.lo, self.hi));
        let lo = xor(self.lo, _mm_slli_si128::<8>(mid));
        let hi = xor(self.hi, _mm_srli_si128::<8>(mid));
        reduce(lo, hi)
    }
}

/// Reduce the 256-bit reflected value `hi:lo` modulo the GCM polynomial.
#[inline]
#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
pub(super) fn reduce(lo: __m128i, hi: __m128i) -> __m128i {
    let c = fold_constant();
    // Clear the lowest word w0: w0 * y^128 lands two words up (the lane swap),
    // w0 * (y^121 + y^126 + y^127) one word up (the multiply).
    let folded = xor(_mm_shuffle_epi32::<0x4e>(lo), _mm_clmulepi64_si128::<0x00>(lo, c));
    // Same for the next word, which now sits in the low lane of `folded`.
    xor(hi, xor(_mm_shuffle_epi32::<0x4e>(folded), _mm_clmulepi64_si128::<0x00>(folded, c)))
}

/// Full product of two reflected values (schoolbook), reduced. Key setup only.
#[inline]
#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
pub(super) fn gf_mul(a: __m128i, b: __m128i) -> __m128i {
    let lo = _mm_clmulepi64_si128::<0x00>(a, b);
    let hi = _mm_clmulepi64_si128::<0x11>(a, b);
    let mid = xor(_mm_clmulepi64_si128::<0x01>(a, b), _mm_clmulepi64_si128::<0x10>(a, b));
    reduce(xor(lo, _mm_slli_si128::<8>(mid)), xor(hi, _mm_srli_si128::<8>(mid)))
}

/// `SubWord(RotWord(w)) ^ Rcon[i]` for key expansion (`i` in 1..=10).
#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
fn sub_rot_word(w: u32, i: usize) -> u32 {
    // AESKEYGENASSIST works on words 1 and 3; put `w` in word 3. Its word 3
    // result is RotWord(SubWord(w)) ^ rcon, and RotWord commutes with SubWord.
    let x = _mm_set_epi32(w as i32, 0, 0, 0);
    let r = match i {
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
    };
    _mm_extract_epi32::<3>(r) as u32
}

/// `SubWord(w)`, the extra step of AES-256 key expansion.
#[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
fn sub_word(w: u32) -> u32 {
    let x = _mm_set_epi32(w as i32, 0, 0, 0);
    _mm_extract_epi32::<2>(_mm_aeskeygenassist_si128::<0x00>(x)) as u32
}

/// Key material of the AES-NI backend.
#[derive(Clone)]
pub(crate) struct AesNiKey {
    /// Round keys 0..=rounds; the rest are zero.
    round_keys: [__m128i; MAX_ROUND_KEYS],
    /// 10, 12 or 14.
    rounds: usize,
    /// `h[k]` = `H^(k+1) * x^-1`, reflected.
    h: [__m128i; POWERS],
    /// `hk[k]`: the XOR of the two 64-bit halves of `h[k]`, in both lanes.
    hk: [__m128i; POWERS],
}

impl Drop for AesNiKey {
    fn drop(&mut self) {
        self.round_keys.zeroize();
        self.h.zeroize();
        self.hk.zeroize();
    }
}

impl AesNiKey {
    /// Key setup; `None` unless this CPU has AES-NI, PCLMULQDQ, SSSE3 and
    /// SSE4.1 (so that holding an `AesNiKey` proves it does).
    pub(crate) fn new(key: KeyBytes<'_>) -> Option<AesNiKey> {
        if crate::backend::cpu::has_aesni() != Some(true) {
            return None;
        }
        // SAFETY: the features were detected just above.
        Some(unsafe { AesNiKey::setup(key) })
    }

    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    fn setup(key: KeyBytes<'_>) -> AesNiKey {
        let key = key.as_slice();
        let nk = key.len() / 4;
        let rounds = nk + 6;
        let total = 4 * (rounds + 1);
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
        let mut round_keys = [_mm_setzero_si128(); MAX_ROUND_KEYS];
        for (rk, words) in round_keys.iter_mut().zip(w.chunks_exact(4)).take(rounds + 1) {
            *rk = _mm_set_epi32(words[3] as i32, words[2] as i32, words[1] as i32, words[0] as i32);
        }
        w.zeroize();

        let mut k =
            AesNiKey { round_keys, rounds, h: [_mm_setzero_si128(); POWERS], hk: [_mm_setzero_si128(); POWERS] };

        // H = E(K, 0), reflected, times x^-1 (see the module docs). Dividing by
        // x is a left shift of the reflected form; the bit shifted out (the
        // x^0 coefficient) comes back as x^-1 = x^127 + x^6 + x + 1.
        let mut h_bytes = to_bytes(k.encrypt_block(_mm_setzero_si128()));
        let h = u128::from_be_bytes(h_bytes);
        let carry = 0u128.wrapping_sub(h >> 127);
        let mut h_shifted = (h << 1) ^ (carry & 0xC200_0000_0000_0000_0000_0000_0000_0001);
        let h1 = _mm_set_epi64x((h_shifted >> 64) as i64, h_shifted as i64);
        h_bytes.zeroize();
        h_shifted.zeroize();

        let mut power = h1;
        for (h, hk) in k.h.iter_mut().zip(k.hk.iter_mut()) {
            *h = power;
            *hk = xor(power, _mm_shuffle_epi32::<0x4e>(power));
            // (H^i x^-1)(H x^-1) x = H^(i+1) x^-1.
            power = gf_mul(power, h1);
        }
        k
    }

    /// Round keys `0..=rounds()` (zero after), for the VAES backends to widen.
    pub(super) fn round_keys(&self) -> &[__m128i; MAX_ROUND_KEYS] {
        &self.round_keys
    }

    /// 10, 12 or 14.
    pub(super) fn rounds(&self) -> usize {
        self.rounds
    }

    /// `H * x^-1`, reflected (see the module docs): the hash key in the form
    /// every power is derived from.
    pub(super) fn h1(&self) -> __m128i {
        self.h[0]
    }

    /// Encrypt one block.
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    pub(super) fn encrypt_block(&self, block: __m128i) -> __m128i {
        let rk = &self.round_keys;
        let mut b = xor(block, rk[0]);
        for k in &rk[1..self.rounds] {
            b = _mm_aesenc_si128(b, *k);
        }
        _mm_aesenclast_si128(b, rk[self.rounds])
    }

    /// Hash `N` (at most 9) reflected blocks into `acc` with one reduction:
    /// `(acc + x0) H^N + x1 H^(N-1) + ... + x(N-1) H`.
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    fn ghash_blocks<const N: usize>(&self, acc: __m128i, x: &[__m128i; N]) -> __m128i {
        const { assert!(N >= 1 && N <= POWERS) };
        let mut wide = Wide::zero();
        for (i, &block) in x.iter().enumerate() {
            let block = if i == 0 { xor(block, acc) } else { block };
            wide.mul_add(block, self.h[N - 1 - i], self.hk[N - 1 - i]);
        }
        wide.reduce()
    }

    /// GHASH of at most 16 bytes (ESP's 8- or 12-byte AAD) from zero: small
    /// enough to be inlined into the per-call setup, where a call to
    /// [`ghash_bytes`](Self::ghash_bytes) would pass its result through memory.
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    fn ghash_short(&self, data: &[u8]) -> __m128i {
        if data.is_empty() {
            _mm_setzero_si128()
        } else {
            self.ghash_blocks::<1>(_mm_setzero_si128(), &[byte_reverse(load(&read_partial(data)))])
        }
    }

    /// GHASH `data`, zero-padded to whole blocks, into the reflected `acc`.
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    pub(super) fn ghash_bytes(&self, mut acc: __m128i, data: &[u8]) -> __m128i {
        if data.len() <= 16 {
            // ESP's 8- or 12-byte AAD: one block, nothing to loop over.
            return if data.is_empty() {
                acc
            } else {
                self.ghash_blocks::<1>(acc, &[byte_reverse(load(&read_partial(data)))])
            };
        }
        let (chunks, rest) = data.as_chunks::<BATCH>();
        for chunk in chunks {
            let blocks = chunk.as_chunks::<16>().0;
            let x: [__m128i; BLOCKS] = core::array::from_fn(|i| byte_reverse(load(&blocks[i])));
            acc = self.ghash_blocks(acc, &x);
        }
        let (blocks, partial) = rest.as_chunks::<16>();
        let mut x = [_mm_setzero_si128(); BLOCKS];
        for (xi, b) in x.iter_mut().zip(blocks) {
            *xi = byte_reverse(load(b));
        }
        let mut n = blocks.len();
        if !partial.is_empty() {
            x[n] = byte_reverse(load(&read_partial(partial)));
            n += 1;
        }
        self.ghash_prefix(acc, &x, n)
    }

    /// Hash the first `n` (0..=8) of `x` into `acc`, one reduction.
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    fn ghash_prefix(&self, acc: __m128i, x: &[__m128i; BLOCKS], n: usize) -> __m128i {
        macro_rules! prefix {
            ($n:literal) => {{
                let head: [__m128i; $n] = core::array::from_fn(|i| x[i]);
                self.ghash_blocks::<$n>(acc, &head)
            }};
        }
        match n {
            0 => acc,
            1 => prefix!(1),
            2 => prefix!(2),
            3 => prefix!(3),
            4 => prefix!(4),
            5 => prefix!(5),
            6 => prefix!(6),
            7 => prefix!(7),
            _ => prefix!(8),
        }
    }

    /// GHASH `data` (zero-padded) into `acc`, given and returned as the
    /// big-endian integer of the block (the scalar backend's convention).
    pub(crate) fn ghash(&self, acc: &mut u128, data: &[u8]) {
        // SAFETY: an `AesNiKey` exists only if the features were detected.
        *acc = unsafe { self.ghash_u128(*acc, data) };
    }

    /// GHASH one block given as a big-endian integer.
    pub(crate) fn ghash_block(&self, acc: &mut u128, block: u128) {
        self.ghash(acc, &block.to_be_bytes());
    }

    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    fn ghash_u128(&self, acc: u128, data: &[u8]) -> u128 {
        // The reflected register form *is* the big-endian integer.
        let acc = _mm_set_epi64x((acc >> 64) as i64, acc as i64);
        let out = to_bytes(self.ghash_bytes(acc, data));
        u128::from_le_bytes(out)
    }

    /// Encrypt `buf` in place with counters `inc32(J0)`, ... and return the
    /// full tag over `aad` and the ciphertext.
    #[inline]
    pub(crate) fn seal(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        // SAFETY: an `AesNiKey` exists only if the features were detected.
        unsafe { self.crypt_in_place::<false>(j0, aad, buf) }
    }

    /// Decrypt `buf` in place and return the tag computed over `aad` and the
    /// ciphertext it held. The caller compares tags and wipes `buf` on mismatch.
    #[inline]
    pub(crate) fn open(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        // SAFETY: an `AesNiKey` exists only if the features were detected.
        unsafe { self.crypt_in_place::<true>(j0, aad, buf) }
    }

    /// The tag mask `E(K, J0)`, the hash of the AAD and the first data
    /// counter: everything that comes before the message.
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    pub(super) fn begin(&self, j0: u128, aad: &[u8]) -> (__m128i, __m128i, __m128i) {
        let (tag_mask, ctr) = self.mask_and_counter(j0);
        (tag_mask, self.hash_aad(aad), ctr)
    }

    /// The tag mask `E(K, J0)` and the first data counter (byte-reversed,
    /// so that `PADDD` on lane 0 is inc32). Small, so that callers keep it
    /// in their own frame.
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    pub(super) fn mask_and_counter(&self, j0: u128) -> (__m128i, __m128i) {
        // J0 as a big-endian integer is the byte-reversed block: its counter
        // word (the block's last four bytes) is lane 0.
        let j0 = _mm_set_epi64x((j0 >> 64) as i64, j0 as i64);
        (self.encrypt_block(byte_reverse(j0)), _mm_add_epi32(j0, _mm_set_epi32(0, 0, 0, 1)))
    }

    /// The hash of the AAD, independent of the data path: ESP's short AAD
    /// inline, longer AAD through [`ghash_bytes`](Self::ghash_bytes).
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    pub(super) fn hash_aad(&self, aad: &[u8]) -> __m128i {
        if aad.len() <= 16 { self.ghash_short(aad) } else { self.ghash_bytes(_mm_setzero_si128(), aad) }
    }

    /// The tag from the final hash and the mask.
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    pub(super) fn tag(acc: __m128i, tag_mask: __m128i) -> [u8; 16] {
        to_bytes(xor(byte_reverse(acc), tag_mask))
    }

    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    fn crypt_in_place<const DECRYPT: bool>(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        let (tag_mask, acc, ctr) = self.begin(j0, aad);
        let lengths = length_block(aad.len(), buf.len());
        let acc = self.finish_in_place::<DECRYPT>(ctr, acc, buf, lengths);
        Self::tag(acc, tag_mask)
    }

    /// Out of place: `src || extra` encrypted into `dst`, which has exactly
    /// that length, `src` handed to `sink` on the way; returns the tag.
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    fn seal_between<S: PlaintextSink>(
        &self,
        j0: u128,
        aad: &[u8],
        src: &[u8],
        extra: &[u8],
        dst: &mut [MaybeUninit<u8>],
        sink: &mut S,
    ) -> [u8; 16] {
        let (tag_mask, acc, mut ctr) = self.begin(j0, aad);
        let lengths = length_block(aad.len(), src.len() + extra.len());
        let (bulk, rest_src, rest_dst) = Batches::between(src, dst);
        let acc = self.seal_bulk(&mut ctr, acc, bulk, sink);
        sink.rest(rest_src);
        // The rest of `src` (under 128 bytes) and `extra` are copied to the
        // end of `dst` and finished there in place.
        let work = init_with(rest_dst, [rest_src, extra]);
        let acc = self.finish_in_place::<false>(ctr, acc, work, lengths);
        Self::tag(acc, tag_mask)
    }

    /// Whole batches of `buf` and then its tail, in place, then the length
    /// block; returns the final hash.
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    fn finish_in_place<const DECRYPT: bool>(
        &self,
        mut ctr: __m128i,
        mut acc: __m128i,
        buf: &mut [u8],
        lengths: __m128i,
    ) -> __m128i {
        let (bulk, rest) = Batches::in_place(buf);
        if bulk.batches > 0 {
            acc = if DECRYPT {
                self.open_bulk(&mut ctr, acc, bulk)
            } else {
                self.seal_bulk(&mut ctr, acc, bulk, &mut Discard)
            };
        }
        match rest.len().div_ceil(16) {
            0 => self.ghash_blocks::<1>(acc, &[lengths]),
            1 => self.tail::<1, 2, DECRYPT>(ctr, rest, acc, lengths),
            2 => self.tail::<2, 3, DECRYPT>(ctr, rest, acc, lengths),
            3 => self.tail::<3, 4, DECRYPT>(ctr, rest, acc, lengths),
            4 => self.tail::<4, 5, DECRYPT>(ctr, rest, acc, lengths),
            5 => self.tail::<5, 6, DECRYPT>(ctr, rest, acc, lengths),
            6 => self.tail::<6, 7, DECRYPT>(ctr, rest, acc, lengths),
            7 => self.tail::<7, 8, DECRYPT>(ctr, rest, acc, lengths),
            _ => self.tail::<8, 9, DECRYPT>(ctr, rest, acc, lengths),
        }
    }

    /// Counter blocks `ctr, ctr+1, ...` (inc32 on the byte-reversed counter),
    /// in memory order, with round key 0 already added.
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    fn counter_blocks<const N: usize>(&self, ctr: __m128i) -> [__m128i; N] {
        let rk0 = self.round_keys[0];
        core::array::from_fn(|i| xor(byte_reverse(_mm_add_epi32(ctr, _mm_set_epi32(0, 0, 0, i as i32))), rk0))
    }

    /// AES rounds 1..=rounds on blocks that already had round key 0 added.
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    fn finish_rounds<const N: usize>(&self, b: &mut [__m128i; N], from_round: usize) {
        let rk = &self.round_keys;
        for k in &rk[from_round..self.rounds] {
            for x in b.iter_mut() {
                *x = _mm_aesenc_si128(*x, *k);
            }
        }
        let last = rk[self.rounds];
        for x in b.iter_mut() {
            *x = _mm_aesenclast_si128(*x, last);
        }
    }

    /// Encrypt whole batches; returns the hash including all their
    /// ciphertext. Batch `i` is hashed while batch `i + 1` is encrypted. The
    /// plaintext goes to `sink` too (whose work, if any, runs on the integer
    /// units, which this loop leaves idle).
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    fn seal_bulk<S: PlaintextSink>(
        &self,
        ctr: &mut __m128i,
        mut acc: __m128i,
        io: Batches<'_>,
        sink: &mut S,
    ) -> __m128i {
        let step = _mm_set_epi32(0, 0, 0, BLOCKS as i32);
        let mut prev = [_mm_setzero_si128(); BLOCKS];
        for batch in 0..io.batches {
            let mut ks = self.counter_blocks::<BLOCKS>(*ctr);
            *ctr = _mm_add_epi32(*ctr, step);
            if batch == 0 {
                // The first batch has no earlier ciphertext to hash alongside.
                self.finish_rounds(&mut ks, 1);
            } else {
                acc = rounds_1_to_8_with_ghash!(self, ks, prev, acc);
                self.finish_rounds(&mut ks, BLOCKS + 1);
            }
            // SAFETY: `batch < io.batches` (the loop bound).
            unsafe { io.feed(batch, sink) };
            // SAFETY: `batch < io.batches` (the loop bound).
            let input = unsafe { load_batch(&io, batch) };
            let output: [__m128i; BLOCKS] = core::array::from_fn(|i| xor(input[i], ks[i]));
            // SAFETY: `batch < io.batches` (the loop bound).
            unsafe { store_batch(&io, batch, &output) };
            prev = output.map(|c| byte_reverse(c));
        }
        if io.batches == 0 { acc } else { self.ghash_blocks(acc, &prev) }
    }

    /// Decrypt whole batches; returns the hash including all their
    /// ciphertext, each batch hashed while it is decrypted.
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    fn open_bulk(&self, ctr: &mut __m128i, mut acc: __m128i, io: Batches<'_>) -> __m128i {
        let step = _mm_set_epi32(0, 0, 0, BLOCKS as i32);
        for batch in 0..io.batches {
            // SAFETY: `batch < io.batches` (the loop bound).
            let ct = unsafe { load_batch(&io, batch) };
            let hashed = ct.map(|c| byte_reverse(c));
            let mut ks = self.counter_blocks::<BLOCKS>(*ctr);
            *ctr = _mm_add_epi32(*ctr, step);
            acc = rounds_1_to_8_with_ghash!(self, ks, hashed, acc);
            self.finish_rounds(&mut ks, BLOCKS + 1);
            let output: [__m128i; BLOCKS] = core::array::from_fn(|i| xor(ct[i], ks[i]));
            // SAFETY: `batch < io.batches` (the loop bound).
            unsafe { store_batch(&io, batch, &output) };
        }
        acc
    }

    /// The last `rest.len()` (< 128) bytes: `N` blocks, the last possibly
    /// partial, en- or decrypted in place and hashed together with the
    /// length block (`M = N + 1` blocks in all).
    #[inline]
    #[target_feature(enable = "aes,pclmulqdq,ssse3,sse4.1")]
    fn tail<const N: usize, const M: usize, const DECRYPT: bool>(
        &self,
        ctr: __m128i,
        rest: &mut [u8],
        acc: __m128i,
        lengths: __m128i,
    ) -> __m128i {
        const { assert!(M == N + 1) };
        let mut ks = self.counter_blocks::<N>(ctr);
        self.finish_rounds(&mut ks, 1);

        let (blocks, partial) = rest.as_chunks_mut::<16>();
        // The blocks to hash, then the length block.
        let mut hashed = [lengths; M];
        for ((b, k), h) in blocks.iter_mut().zip(ks).zip(hashed.iter_mut()) {
            let input = load(b);
            let output = xor(input, k);
            store(b, output);
            *h = byte_reverse(if DECRYPT { input } else { output });
        }
        if !partial.is_empty() {
            // Bytes past the end are zero on input; on output, clear the
            // keystream that landed there so the hash sees zero padding.
            let input = load(&read_partial(partial));
            let output = to_bytes(xor(input, ks[N - 1]));
            write_partial(partial, &output);
            let hashed_bytes = if DECRYPT { to_bytes(input) } else { read_partial(&output[..partial.len()]) };
            hashed[N - 1] = byte_reverse(load(&hashed_bytes));
        }
        self.ghash_blocks(acc, &hashed)
    }
}

// SAFETY: `seal_between` writes its bulk batches and `init_with` the rest
// of `dst`: every byte.
unsafe impl SealInto for AesNiKey {
    const BATCH: usize = BATCH;

    #[inline]
    fn seal(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        AesNiKey::seal(self, j0, aad, buf)
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
        // SAFETY: an `AesNiKey` exists only if the features were detected.
        unsafe { self.seal_between(j0, aad, src, extra, dst, sink) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::scalar::ScalarKey;

    fn keys(key: &[u8]) -> Option<(AesNiKey, ScalarKey)> {
        let kb = KeyBytes::new(key)?;
        Some((AesNiKey::new(kb)?, ScalarKey::new(kb)))
    }

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
        // FIPS-197 A.1: the last round key of the AES-128 example key.
        let key = hex_literal::hex!("2b7e151628aed2a6abf7158809cf4f3c");
        let Some(k) = KeyBytes::new(&key).and_then(AesNiKey::new) else {
            eprintln!("skipped: this CPU lacks AES-NI");
            return;
        };
        // SAFETY: a key exists, so the features were detected.
        let round_key = |k: &AesNiKey, i: usize| unsafe { to_bytes(k.round_keys[i]) };
        assert_eq!(round_key(&k, 10), hex_literal::hex!("d014f9a8c9ee2589e13f0cc8b6630ca6"));
        // FIPS-197 A.3: AES-256, round key 14.
        let key = hex_literal::hex!("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
        let k = KeyBytes::new(&key).and_then(AesNiKey::new).unwrap();
        assert_eq!(round_key(&k, 14), hex_literal::hex!("fe4890d1e6188d0b046df344706c631e"));
        // FIPS-197 A.2: AES-192, round key 12.
        let key = hex_literal::hex!("8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b");
        let k = KeyBytes::new(&key).and_then(AesNiKey::new).unwrap();
        assert_eq!(round_key(&k, 12), hex_literal::hex!("e98ba06f448c773c8ecc720401002202"));
    }

    #[test]
    fn ghash_matches_the_scalar_backend_for_every_length_to_300() {
        let Some((fast, reference)) = keys(&[0x3c; 16]) else {
            eprintln!("skipped: this CPU lacks AES-NI");
            return;
        };
        let data: Vec<u8> = (0..300u32).map(|i| (i * 131 + 7) as u8).collect();
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
    fn counter_wraps_modulo_2_pow_32_like_the_scalar_backend() {
        for key in [[0x11u8; 16].as_slice(), &[0x22; 24], &[0x33; 32]] {
            let Some((fast, reference)) = keys(key) else {
                eprintln!("skipped: this CPU lacks AES-NI");
                return;
            };
            let mut j0 = [0xa5u8; 16];
            j0[12..].copy_from_slice(&0xFFFF_FFF3u32.to_be_bytes());
            for len in [0usize, 1, 15, 16, 17, 127, 128, 129, 255, 256, 300, 1000] {
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
}
