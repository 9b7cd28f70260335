//! Stitched AES-GCM, written once for every SIMD register width.
//!
//! The SIMD backends (`aesni`, `vaes256`, `vaes512` on x86-64, `armv8` on
//! AArch64) run the same algorithm on registers of one, two or four 16-byte
//! blocks. This module is that algorithm; each backend supplies its
//! register type (a [`Lanes`]: loads and stores, AES rounds, carry-less
//! multiplies, shuffles) and its shape (registers per batch, batches per
//! reduction), and nothing else.
//!
//! # Field representation
//!
//! A 16-byte GHASH block is read as a big-endian 128-bit integer (in a
//! register: the block byte-reversed within its lane), so bit 127 is the
//! coefficient of `x^0` and bit 0 that of `x^127` ("reflected" form). A
//! carry-less product of two reflected values is the reflected product
//! shifted by one place: `clmul(R(a), R(b)) = R256(a * b * x)`. Every stored
//! power of the hash key is therefore `H^k * x^-1`; multiplying a data block
//! by it gives exactly `R256(block * H^k)`, with no per-product shift.
//!
//! # Reduction
//!
//! In the 256-bit reflected product, the low 128 bits hold the coefficients
//! of `x^128..x^255`. Reading bit positions as powers of `y`, adding a
//! multiple of `P*(y) = y^128 + y^127 + y^126 + y^121 + 1` (the reversed GCM
//! polynomial) adds a multiple of `x^128 + x^7 + x^2 + x + 1` in the GCM
//! field. So the low half is cleared 64 bits at a time, Montgomery style: for
//! the lowest word `w`, add `w * P*` shifted into place. `w * 1` cancels `w`;
//! `w * y^128` is a move by two words (a 64-bit lane swap); and
//! `w * (y^121 + y^126 + y^127)` is one carry-less multiply by the constant
//! `0xC2 << 56` placed a word up. Two such folds leave the reduced value in
//! the high half. Products are summed unreduced (their three parts, low,
//! middle and high, kept apart) and reduced once per batch or pair of
//! batches; a wide register reduces all its lanes at once and then adds
//! them together.
//!
//! # Powers of H
//!
//! The key holds `H^33..H^1` (times `x^-1`), highest first, then zero
//! blocks ([`Material`]). Hashing `F` blocks under one reduction multiplies
//! block `j` by `H^(F - j)`, which sits at table index `POWERS - F + j`, so
//! the powers for a register of consecutive blocks are one unaligned load,
//! and the zeros after `H^1` make a register that runs past the message's
//! last block load cleanly (its blocks there are zero too). Thirty-three is
//! the most one reduction covers: two 16-block batches in the 512-bit bulk
//! loop, or a batch left over from the bulk loop, a tail of up to a batch,
//! and the length block. Beside each power the key keeps the XOR of its two
//! 64-bit halves, for Karatsuba's middle product.
//!
//! # Loop shape
//!
//! Counters go through AES a batch at a time (several registers), while the
//! multiplier hashes another batch: when sealing, the previous batch (its
//! ciphertext only now exists), when opening the current one (the input is
//! the ciphertext). One register's multiplies follow each of the first AES
//! rounds, so the AES units and the multiplier work side by side. Sealing
//! leaves its last batch unhashed, to share the final reduction with the
//! tail and the length block. Counters are advanced in memory order, with
//! one add per register, while the counter's last byte does not wrap within
//! a batch (255 times in 256), and through the byte-reversed form when it
//! does.
//!
//! # Tail and per-call work
//!
//! The bytes after the last whole batch are at most a batch: as many
//! registers as they need, the last one moved with the backend's partial
//! loads and stores (masked on AVX-512, overlapping word accesses on the
//! others; never a byte loop, never a byte outside the buffer), hashed with
//! the length block (and, when sealing, the pending batch) under one final
//! reduction. `E(K, J0)` and a short AAD's hash run on 128-bit registers,
//! independent of the data path, so they overlap with it; when the message
//! is shorter than a batch, a short AAD (ESP's 8 or 12 bytes) joins the
//! final reduction instead of costing one of its own. Messages shorter than
//! [`Lanes::SHORT`] run on the 128-bit code of the same key, whose setup is
//! shorter.
//!
//! # Safety
//!
//! A [`Lanes`] value is made only from its [`Lanes::Token`], which run-time
//! detection alone creates, or from other values of its type: holding one
//! proves that the CPU runs its instructions. So the register operations are
//! safe to call; the few that touch memory through raw pointers are `unsafe
//! fn`s whose callers here keep every access inside the buffers they were
//! given (a [`Bulk`]'s batches, or the tail's slice). The backends run this
//! code from one `#[target_feature]` function per entry point, into which
//! all of it is inlined.

mod ghash;
mod loops;
pub(crate) mod multi;
mod tail;
#[cfg(test)]
mod tests;

use super::bulk::Bulk;
use super::{KeyBytes, PlaintextSink, SealInto};
use core::mem::MaybeUninit;
pub(crate) use ghash::Material;
use loops::Counters;
use tail::Last;

/// Highest power of H the key keeps (see the module docs).
pub(super) const POWERS: usize = 33;
/// Most round keys any key size needs (AES-256: 14 rounds).
pub(super) const MAX_ROUND_KEYS: usize = 15;

/// One vector register of [`BLOCKS`](Self::BLOCKS) 16-byte blocks, one per
/// 128-bit lane, and the instructions the skeleton uses on it. Every method
/// is `#[inline(always)]` in the implementations, so that it lands in the
/// backend's `#[target_feature]` entry point.
pub(crate) trait Lanes: Copy {
    /// Proof that this CPU runs the type's instructions; made only by
    /// run-time detection.
    type Token: Copy;
    /// The same backend's 128-bit register, for per-call work.
    type Narrow: Block;
    /// 16-byte blocks per register.
    const BLOCKS: usize;
    /// Karatsuba (three carry-less multiplies per block and a table of
    /// half-sums) rather than schoolbook (four).
    const KARATSUBA: bool;
    /// Messages shorter than this run on [`Lanes::Narrow`]'s code.
    const SHORT: usize;
    /// The longest messages, in blocks, that a batch runs through the group
    /// kernel (`multi`) rather than one by one, sealing and opening: where
    /// the group kernel measured faster than single calls on this width
    /// (`benches/batch.rs`); 0 where it never did.
    const GROUP_BLOCKS: [usize; 2];

    /// The token of the 128-bit register (every SIMD backend has it).
    fn narrow(t: Self::Token) -> <Self::Narrow as Lanes>::Token;
    /// All zeros.
    fn zero(t: Self::Token) -> Self;
    /// `x` in every lane.
    fn splat(t: Self::Token, x: Self::Narrow) -> Self;
    /// `x` in lane 0, zeros in the others.
    fn low(t: Self::Token, x: Self::Narrow) -> Self;
    /// Dword `dword` (0..4) of lane `i` holds `first + i * step`; the other
    /// dwords are zero. For counters.
    fn dwords(t: Self::Token, dword: usize, first: u32, step: u32) -> Self;
    /// `v` in both 64-bit halves of every lane.
    fn splat64(t: Self::Token, v: u64) -> Self;
    /// `16 * BLOCKS` bytes from `src`.
    ///
    /// # Safety
    /// They must be readable.
    unsafe fn load(t: Self::Token, src: *const u8) -> Self;
    /// Write `16 * BLOCKS` bytes to `dst`.
    ///
    /// # Safety
    /// They must be writable.
    unsafe fn store(self, dst: *mut u8);
    /// `n` (1..=`16 * BLOCKS`) bytes from `src`, zeros after them; nothing
    /// past them is read.
    ///
    /// # Safety
    /// The `n` bytes must be readable.
    unsafe fn load_partial(t: Self::Token, src: *const u8, n: usize) -> Self;
    /// Write the first `n` (1..=`16 * BLOCKS`) bytes to `dst`, nothing past
    /// them.
    ///
    /// # Safety
    /// The `n` bytes must be writable.
    unsafe fn store_partial(self, dst: *mut u8, n: usize);
    /// The first `n` (0..=`16 * BLOCKS`) bytes kept, the rest zeroed.
    fn keep(self, n: usize) -> Self;
    fn xor(self, other: Self) -> Self;
    /// `self ^ b ^ c`.
    fn xor3(self, b: Self, c: Self) -> Self;
    /// Add the 32-bit words lane by lane.
    fn add32(self, other: Self) -> Self;
    /// Reverse the bytes of each lane.
    fn byte_reverse(self) -> Self;
    /// AES's first step on each lane, with round key 0. The skeleton runs
    /// AES as `aes_first(k0)`, `aes_round(k1)` .. `aes_round(k(R-1))`,
    /// `aes_last(kR)`, and looks at nothing in between, so a backend may
    /// cut the rounds where its instructions do. x86's `AESENC` finishes a
    /// round with the key XOR, so there this step is that XOR alone (the
    /// default); ARMv8's `AESE` starts one with it, so there this step is
    /// `AESE` with round key 0, each `aes_round` is `AESMC` then `AESE`, and
    /// `aes_last` is the XOR with the last key.
    #[inline(always)]
    fn aes_first(self, round_key: Self) -> Self {
        self.xor(round_key)
    }
    /// One AES round on each lane (see [`aes_first`](Self::aes_first)).
    fn aes_round(self, round_key: Self) -> Self;
    /// The last AES round on each lane (see [`aes_first`](Self::aes_first)).
    fn aes_last(self, round_key: Self) -> Self;
    /// Carry-less multiply of one 64-bit half of each lane by one of
    /// `other`'s: `IMM` 0x00 low by low, 0x11 high by high, 0x01 high of
    /// `self` by low of `other`, 0x10 the reverse.
    fn clmul<const IMM: i32>(self, other: Self) -> Self;
    /// The two 64-bit halves of each lane swapped.
    fn swap_halves(self) -> Self;
    /// Each lane shifted up by eight bytes (low half to high, zeros in).
    fn shift_up8(self) -> Self;
    /// Each lane shifted down by eight bytes.
    fn shift_down8(self) -> Self;
    /// The XOR of all lanes.
    fn fold_lanes(self) -> Self::Narrow;
    /// Lane 0.
    fn lane0(self) -> Self::Narrow;

    // Several messages at once, one per lane (`multi`): each of the first
    // `BLOCKS` entries of these arrays is a lane's.

    /// A register of one block per lane.
    fn from_lanes(t: Self::Token, lanes: [Self::Narrow; 4]) -> Self;
    /// Lane `i` (`i < BLOCKS`).
    fn lane(self, i: usize) -> Self::Narrow;
    /// Lane `i` from the `n` (0..=16) bytes at its pointer, zeros after
    /// them; a lane with `n` 0 touches no memory.
    ///
    /// # Safety
    /// Each lane's `n` bytes must be readable.
    unsafe fn gather(t: Self::Token, lanes: [(*const u8, usize); 4]) -> Self;
    /// Lane `i` from the 16 bytes at its pointer.
    ///
    /// # Safety
    /// Each lane's 16 bytes must be readable.
    unsafe fn gather_full(t: Self::Token, lanes: [*const u8; 4]) -> Self;
    /// Write lane `i` to the 16 bytes at its pointer.
    ///
    /// # Safety
    /// Each lane's 16 bytes must be writable.
    unsafe fn scatter_full(self, lanes: [*mut u8; 4]);
    /// Write the first `n` (0..=16) bytes of lane `i` to its pointer.
    ///
    /// # Safety
    /// Each lane's `n` bytes must be writable.
    unsafe fn scatter(self, lanes: [(*mut u8, usize); 4]);
    /// The first `n` (0..=16) bytes of lane `i` kept, the rest zeroed.
    fn keep_lanes(self, n: [usize; 4]) -> Self;
    /// The lanes whose bit is set in `lanes` kept, the others zeroed.
    fn select_lanes(self, lanes: u32) -> Self;
    /// The 4 x 4 transpose of four registers' blocks: lane `l` of register
    /// `k` of the result is lane `k` of register `l` of `regs`. Only for
    /// [`BLOCKS`](Self::BLOCKS) 4 (`multi`'s kernel for messages of one
    /// register, which no narrower width runs); this default goes through
    /// the lanes one by one, and a register type with a shuffle overrides it.
    #[inline(always)]
    fn transpose4(t: Self::Token, regs: [Self; 4]) -> [Self; 4] {
        let mut out = regs;
        for (k, o) in out.iter_mut().enumerate() {
            let mut lanes = [regs[0].lane(0); 4];
            for (lane, reg) in lanes.iter_mut().zip(regs) {
                *lane = reg.lane(k);
            }
            *o = Self::from_lanes(t, lanes);
        }
        out
    }
}

/// The 128-bit register: what key setup and per-call work need beyond
/// [`Lanes`].
pub(crate) trait Block: Lanes<Narrow = Self> + zeroize::Zeroize {
    /// The register holding the 128-bit integer `v` (for a block read as a
    /// big-endian integer: its reflected form).
    fn from_u128(t: Self::Token, v: u128) -> Self;
    /// The 128-bit integer the register holds.
    fn to_u128(self) -> u128;
    /// The low 32 bits.
    fn low_u32(self) -> u32;
    /// The 16 bytes the register would store.
    fn to_bytes(self) -> [u8; 16];
    /// At most 16 bytes, zero-padded (read without a byte loop).
    fn from_partial(t: Self::Token, bytes: &[u8]) -> Self;
    /// The AES round keys of `key` (FIPS 197 key expansion), zero past the
    /// last.
    fn expand_key(t: Self::Token, key: KeyBytes<'_>) -> [Self; MAX_ROUND_KEYS];
}

/// A batch: a fixed number of registers (an array of them).
pub(crate) trait Regs<V: Copy>: Copy {
    /// Registers per batch.
    const LEN: usize;
    /// Every register `v`.
    fn splat(v: V) -> Self;
    fn regs(&self) -> &[V];
    fn regs_mut(&mut self) -> &mut [V];
}

impl<V: Copy, const N: usize> Regs<V> for [V; N] {
    const LEN: usize = N;
    #[inline(always)]
    fn splat(v: V) -> Self {
        [v; N]
    }
    #[inline(always)]
    fn regs(&self) -> &[V] {
        self
    }
    #[inline(always)]
    fn regs_mut(&mut self) -> &mut [V] {
        self
    }
}

/// A backend's shape: its register type, how many registers make a batch,
/// and how many batches share a reduction.
pub(crate) trait Shape: Sized {
    /// The register type.
    type V: Lanes;
    /// A batch of registers.
    type Batch: Regs<Self::V>;
    /// Batches per reduction (1 or 2).
    const PAIR: usize;
    /// Whether sealing a message of many batches hashes each batch two
    /// batches late, read back from memory (`loops::seal_lagged`), for
    /// AES-128, AES-192 and AES-256: where `benches/ipsec_mb.rs` measured
    /// it faster than holding the batch before in registers.
    const LAGGED_SEAL: [bool; 3] = [false; 3];
    /// The kernel of the 128-bit register, for messages under
    /// [`Lanes::SHORT`] bytes.
    type Narrow: Kernel<V = <Self::V as Lanes>::Narrow>;
    /// Bytes per batch.
    const BATCH: usize = 16 * <Self::V as Lanes>::BLOCKS * <Self::Batch as Regs<Self::V>>::LEN;
}

/// The token of a shape's register type.
pub(crate) type TokenOf<K> = <<K as Shape>::V as Lanes>::Token;
/// The key material of a shape (its 128-bit registers).
pub(crate) type MaterialOf<K> = Material<<<K as Shape>::V as Lanes>::Narrow>;
/// The 128-bit register of a shape.
pub(crate) type NarrowOf<K> = <<K as Shape>::V as Lanes>::Narrow;

/// A backend's entry points: the skeleton's pieces instantiated for its
/// shape, each in a function with the backend's `#[target_feature]`
/// ([`kernel!`] writes them). A message shorter than a batch runs inside
/// the `crypt` entry point with no call at all; longer ones go to
/// `crypt_long`, whose frame holds the bulk loops.
///
/// # Safety
/// Implementations run the skeleton only with the token they are handed.
/// Every method is `unsafe` only because it carries `#[target_feature]`;
/// holding the token is all a caller needs.
pub(crate) unsafe trait Kernel: Shape {
    /// [`crypt`] on this shape.
    unsafe fn crypt<const DECRYPT: bool, S: PlaintextSink>(
        t: TokenOf<Self>,
        m: &MaterialOf<Self>,
        j0: u128,
        aad: &[u8],
        first: Bulk<'_>,
        sink: &mut S,
        rest: &mut [u8],
    ) -> [u8; 16];
    /// [`crypt_long`] on this shape, out of line.
    unsafe fn crypt_long<const DECRYPT: bool, const R: usize, S: PlaintextSink>(
        t: TokenOf<Self>,
        m: &MaterialOf<Self>,
        j0: u128,
        aad: &[u8],
        first: Bulk<'_>,
        sink: &mut S,
        rest: &mut [u8],
    ) -> [u8; 16];
    /// [`multi::run`]: up to `group::GROUP` short messages at once.
    unsafe fn multi<const DECRYPT: bool>(
        t: TokenOf<Self>,
        m: &MaterialOf<Self>,
        msgs: &mut [super::group::Message<'_>],
        tags: &mut [[u8; 16]],
        lengths: &mut super::group::LengthHash,
    );
    /// Key setup ([`Material::new`]).
    unsafe fn setup(t: TokenOf<Self>, key: KeyBytes<'_>) -> MaterialOf<Self>;
    /// [`ghash`] (for J0 from long IVs).
    unsafe fn ghash(t: TokenOf<Self>, m: &MaterialOf<Self>, acc: u128, data: &[u8]) -> u128;
}

/// Implement [`Kernel`] for a [`Shape`], every entry point with the
/// `#[target_feature]` list given (the one place a backend names it).
macro_rules! kernel {
    ($shape:ty, $features:literal, multi = ($sets:literal, $chunk:literal)) => {
        // SAFETY: every entry point runs the skeleton with the token or key
        // material (made with the token) it is handed.
        unsafe impl $crate::backend::stitched::Kernel for $shape {
            #[target_feature(enable = $features)]
            unsafe fn crypt<const DECRYPT: bool, S: $crate::backend::PlaintextSink>(
                t: $crate::backend::stitched::TokenOf<Self>,
                m: &$crate::backend::stitched::MaterialOf<Self>,
                j0: u128,
                aad: &[u8],
                first: $crate::backend::bulk::Bulk<'_>,
                sink: &mut S,
                rest: &mut [u8],
            ) -> [u8; 16] {
                $crate::backend::stitched::crypt::<Self, DECRYPT, S>(t, m, j0, aad, first, sink, rest)
            }

            #[inline(never)]
            #[target_feature(enable = $features)]
            unsafe fn crypt_long<const DECRYPT: bool, const R: usize, S: $crate::backend::PlaintextSink>(
                t: $crate::backend::stitched::TokenOf<Self>,
                m: &$crate::backend::stitched::MaterialOf<Self>,
                j0: u128,
                aad: &[u8],
                first: $crate::backend::bulk::Bulk<'_>,
                sink: &mut S,
                rest: &mut [u8],
            ) -> [u8; 16] {
                $crate::backend::stitched::crypt_long::<Self, DECRYPT, R, S>(t, m, j0, aad, first, sink, rest)
            }

            #[target_feature(enable = $features)]
            unsafe fn multi<const DECRYPT: bool>(
                t: $crate::backend::stitched::TokenOf<Self>,
                m: &$crate::backend::stitched::MaterialOf<Self>,
                msgs: &mut [$crate::backend::group::Message<'_>],
                tags: &mut [[u8; 16]],
                lengths: &mut $crate::backend::group::LengthHash,
            ) {
                $crate::backend::stitched::multi::run::<Self, $sets, $chunk, DECRYPT>(t, m, msgs, tags, lengths)
            }

            #[target_feature(enable = $features)]
            unsafe fn setup(
                t: $crate::backend::stitched::TokenOf<Self>,
                key: $crate::backend::KeyBytes<'_>,
            ) -> $crate::backend::stitched::MaterialOf<Self> {
                $crate::backend::stitched::Material::new(<Self::V as $crate::backend::stitched::Lanes>::narrow(t), key)
            }

            #[target_feature(enable = $features)]
            unsafe fn ghash(
                t: $crate::backend::stitched::TokenOf<Self>,
                m: &$crate::backend::stitched::MaterialOf<Self>,
                acc: u128,
                data: &[u8],
            ) -> u128 {
                $crate::backend::stitched::ghash(<Self::V as $crate::backend::stitched::Lanes>::narrow(t), m, acc, data)
            }
        }
    };
}
pub(crate) use kernel;

/// The group kernel's per-lane operations (`multi`) for a register of one
/// 128-bit lane (`aesni`, `armv8`): each is the single-block operation on
/// lane 0's entry, so the group kernel runs one message at a time on them.
/// Expands inside the register type's `impl Lanes`, given its token type.
macro_rules! one_lane {
    ($token:ty) => {
        #[inline(always)]
        fn lane0(self) -> Self {
            self
        }
        #[inline(always)]
        fn from_lanes(_: $token, lanes: [Self; 4]) -> Self {
            lanes[0]
        }
        #[inline(always)]
        fn lane(self, _: usize) -> Self {
            self
        }
        #[inline(always)]
        unsafe fn gather(t: $token, lanes: [(*const u8, usize); 4]) -> Self {
            let (src, n) = lanes[0];
            // SAFETY: `n` readable bytes at `src` (caller); none touched for 0.
            unsafe {
                match n {
                    0 => Self::zero(t),
                    16.. => Self::load(t, src),
                    _ => Self::load_partial(t, src, n),
                }
            }
        }
        #[inline(always)]
        unsafe fn scatter(self, lanes: [(*mut u8, usize); 4]) {
            let (dst, n) = lanes[0];
            // SAFETY: `n` writable bytes at `dst` (caller); none touched for 0.
            unsafe {
                match n {
                    0 => {}
                    16.. => self.store(dst),
                    _ => self.store_partial(dst, n),
                }
            }
        }
        #[inline(always)]
        unsafe fn gather_full(t: $token, lanes: [*const u8; 4]) -> Self {
            // SAFETY: 16 readable bytes (caller).
            unsafe { Self::load(t, lanes[0]) }
        }
        #[inline(always)]
        unsafe fn scatter_full(self, lanes: [*mut u8; 4]) {
            // SAFETY: 16 writable bytes (caller).
            unsafe { self.store(lanes[0]) }
        }
        #[inline(always)]
        fn keep_lanes(self, n: [usize; 4]) -> Self {
            self.keep(n[0])
        }
        #[inline(always)]
        fn select_lanes(self, lanes: u32) -> Self {
            if lanes & 1 != 0 { self } else { self.xor(self) }
        }
    };
}
pub(crate) use one_lane;

/// `[0xFF; 16]` then `[0; 16]`: the 16 bytes from offset `16 - n` keep
/// the first `n` bytes of a block.
static KEEP: [u8; 32] = {
    let mut m = [0u8; 32];
    let mut i = 0;
    while i < 16 {
        m[i] = 0xFF;
        i += 1;
    }
    m
};

/// The byte mask that keeps the first `n` (at most 16) bytes of a 128-bit
/// block: what `Lanes::keep` of a one-lane register ANDs with.
#[inline(always)]
pub(crate) fn keep_mask(n: usize) -> [u8; 16] {
    KEEP.get(16 - n.min(16)..).and_then(|m| m.first_chunk::<16>()).copied().unwrap_or([0; 16])
}

/// A key of one SIMD backend: its token and key material.
pub(crate) struct Key<K: Kernel> {
    token: TokenOf<K>,
    material: MaterialOf<K>,
}

impl<K: Kernel> Clone for Key<K> {
    fn clone(&self) -> Self {
        Key { token: self.token, material: self.material.clone() }
    }
}

impl<K: Kernel> Key<K> {
    /// Key setup with the token detection handed out.
    pub(super) fn with_token(token: TokenOf<K>, key: KeyBytes<'_>) -> Key<K> {
        // SAFETY: holding the token proves the features.
        Key { token, material: unsafe { K::setup(token, key) } }
    }

    /// GHASH `data` (zero-padded) into `acc`, given and returned as the
    /// big-endian integer of the block (the scalar backend's convention).
    pub(crate) fn ghash(&self, acc: &mut u128, data: &[u8]) {
        // SAFETY: holding the token proves the features.
        *acc = unsafe { K::ghash(self.token, &self.material, *acc, data) };
    }

    /// GHASH one block given as a big-endian integer.
    pub(crate) fn ghash_block(&self, acc: &mut u128, block: u128) {
        self.ghash(acc, &block.to_be_bytes());
    }

    /// Encrypt `buf` in place with counters `inc32(J0)`, ... and return the
    /// full tag over `aad` and the ciphertext.
    #[inline]
    pub(crate) fn seal(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        if buf.len() < K::V::SHORT {
            return self.narrow::<false>(j0, aad, buf);
        }
        let (bulk, rest) = Bulk::in_place(buf, K::BATCH);
        // SAFETY: holding the token proves the features.
        unsafe { K::crypt::<false, _>(self.token, &self.material, j0, aad, bulk, &mut super::Discard, rest) }
    }

    /// Decrypt `buf` in place and return the tag computed over `aad` and
    /// the ciphertext it held. The caller compares tags and wipes `buf` on
    /// mismatch.
    #[inline]
    pub(crate) fn open(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        if buf.len() < K::V::SHORT {
            return self.narrow::<true>(j0, aad, buf);
        }
        let (bulk, rest) = Bulk::in_place(buf, K::BATCH);
        // SAFETY: holding the token proves the features.
        unsafe { K::crypt::<true, _>(self.token, &self.material, j0, aad, bulk, &mut super::Discard, rest) }
    }

    /// [`open`](Self::open) with the first `first_batches` batches as the
    /// skeleton's first bulk and the rest (more whole batches, then the
    /// tail) as its second: no caller splits a decryption so, but the bulk
    /// loop must take a batch left pending by the first bulk (tests).
    #[cfg(test)]
    pub(crate) fn open_split(&self, j0: u128, aad: &[u8], buf: &mut [u8], first_batches: usize) -> [u8; 16] {
        let (head, rest) = buf.split_at_mut((first_batches * K::BATCH).min(buf.len()));
        let (bulk, _) = Bulk::in_place(head, K::BATCH);
        // SAFETY: holding the token proves the features.
        unsafe { K::crypt::<true, _>(self.token, &self.material, j0, aad, bulk, &mut super::Discard, rest) }
    }

    /// Bytes per bulk batch (tests).
    #[cfg(test)]
    pub(crate) fn batch_len(&self) -> usize {
        K::BATCH
    }
}

impl<K: Kernel> Key<K> {
    /// The longest message (in blocks) a batch should hand to
    /// [`crypt_group`](Self::crypt_group) when sealing or opening.
    pub(crate) fn group_blocks<const DECRYPT: bool>(&self) -> usize {
        K::V::GROUP_BLOCKS[usize::from(DECRYPT)]
    }

    /// Up to `group::GROUP` messages that `group::fits` allows, at
    /// once; `tags[i]` gets message `i`'s tag (computed over the
    /// ciphertext when opening).
    #[inline]
    pub(crate) fn crypt_group<const DECRYPT: bool>(
        &self,
        msgs: &mut [super::group::Message<'_>],
        tags: &mut [[u8; 16]],
        lengths: &mut super::group::LengthHash,
    ) {
        // SAFETY: holding the token proves the features.
        unsafe { K::multi::<DECRYPT>(self.token, &self.material, msgs, tags, lengths) }
    }

    /// A short message on the 128-bit code of the same key, which sets up
    /// faster.
    #[inline]
    fn narrow<const DECRYPT: bool>(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        let (bulk, rest) = Bulk::in_place(buf, K::BATCH);
        let t = K::V::narrow(self.token);
        // SAFETY: this token implies the 128-bit one.
        unsafe { K::Narrow::crypt::<DECRYPT, _>(t, &self.material, j0, aad, bulk, &mut super::Discard, rest) }
    }
}

// SAFETY: `seal_into` has the bulk loops write whole batches of `dst` and
// `init_with` write the rest.
unsafe impl<K: Kernel> SealInto for Key<K> {
    const BATCH: usize = K::BATCH;

    #[inline]
    fn seal(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        Key::seal(self, j0, aad, buf)
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
        let (bulk, rest_src, rest_dst) = Bulk::between(src, dst, K::BATCH);
        // The rest of `src` (under a batch) and `extra` are copied to the end
        // of `dst` and finished there in place.
        let work = init_with(rest_dst, [rest_src, extra]);
        // SAFETY: holding the token proves the features.
        let tag = unsafe { K::crypt::<false, _>(self.token, &self.material, j0, aad, bulk, sink, work) };
        sink.rest(rest_src);
        tag
    }
}

/// Fill `dst` with `parts` one after the other (their lengths must add up
/// to `dst.len()`; anything left over is zero-filled) and return it as
/// initialised bytes.
fn init_with<'a>(dst: &'a mut [MaybeUninit<u8>], parts: [&[u8]; 2]) -> &'a mut [u8] {
    let mut at = 0;
    for part in parts {
        let n = part.len().min(dst.len() - at);
        if let (Some(to), Some(from)) = (dst.get_mut(at..at + n), part.get(..n)) {
            for (t, &f) in to.iter_mut().zip(from) {
                t.write(f);
            }
        }
        at += n;
    }
    for byte in dst.get_mut(at..).unwrap_or_default() {
        byte.write(0);
    }
    // SAFETY: every byte of `dst` was written above.
    unsafe { &mut *(core::ptr::from_mut::<[MaybeUninit<u8>]>(dst) as *mut [u8]) }
}

/// En- or decrypt the batches of `first` (handing their input to `sink`),
/// then all of `rest` in place; return the tag over the AAD and the
/// ciphertext of both. Inlined into the backend's `crypt` entry point.
#[inline(always)]
pub(crate) fn crypt<K: Kernel, const DECRYPT: bool, S: PlaintextSink>(
    t: TokenOf<K>,
    m: &MaterialOf<K>,
    j0: u128,
    aad: &[u8],
    first: Bulk<'_>,
    sink: &mut S,
    rest: &mut [u8],
) -> [u8; 16] {
    if first.batches == 0 && rest.len() < K::V::SHORT {
        // A block or less: the 128-bit code sets up faster.
        // SAFETY: this token implies the 128-bit one.
        return unsafe { K::Narrow::crypt::<DECRYPT, S>(K::V::narrow(t), m, j0, aad, first, sink, rest) };
    }
    match m.rounds {
        10 => crypt_rounds::<K, DECRYPT, 10, S>(t, m, j0, aad, first, sink, rest),
        12 => crypt_rounds::<K, DECRYPT, 12, S>(t, m, j0, aad, first, sink, rest),
        _ => crypt_rounds::<K, DECRYPT, 14, S>(t, m, j0, aad, first, sink, rest),
    }
}

/// [`crypt`] for `R` rounds (a constant, so that the round loops unroll):
/// a message shorter than a batch here, a longer one in [`crypt_long`].
#[inline(always)]
fn crypt_rounds<K: Kernel, const DECRYPT: bool, const R: usize, S: PlaintextSink>(
    t: TokenOf<K>,
    m: &MaterialOf<K>,
    j0: u128,
    aad: &[u8],
    first: Bulk<'_>,
    sink: &mut S,
    rest: &mut [u8],
) -> [u8; 16] {
    if first.batches > 0 || rest.len() >= K::BATCH {
        // SAFETY: holding the token proves the features.
        return unsafe { K::crypt_long::<DECRYPT, R, S>(t, m, j0, aad, first, sink, rest) };
    }
    let n = K::V::narrow(t);
    let j0 = NarrowOf::<K>::from_u128(n, j0);
    let ctr = Counters::<K::V>::new(t, j0.add32(NarrowOf::<K>::dwords(n, 0, 1, 0)));
    let lengths = length_block(n, aad.len(), rest.len());
    // A short AAD (ESP's 8 or 12 bytes) waits for the final reduction.
    let (acc, head) = if aad.len() <= 16 {
        (NarrowOf::<K>::zero(n), (!aad.is_empty()).then(|| NarrowOf::<K>::from_partial(n, aad).byte_reverse()))
    } else {
        (m.hash_bytes(n, NarrowOf::<K>::zero(n), aad), None)
    };
    finish_any::<K, DECRYPT, R>(m, j0, ctr, acc, Last::Pending(None), head, rest, lengths)
}

/// A message with whole batches: the bulk loops, then the tail.
#[inline(always)]
pub(crate) fn crypt_long<K: Kernel, const DECRYPT: bool, const R: usize, S: PlaintextSink>(
    t: TokenOf<K>,
    m: &MaterialOf<K>,
    j0: u128,
    aad: &[u8],
    first: Bulk<'_>,
    sink: &mut S,
    rest: &mut [u8],
) -> [u8; 16] {
    let n = K::V::narrow(t);
    let j0 = NarrowOf::<K>::from_u128(n, j0);
    let mut ctr = Counters::<K::V>::new(t, j0.add32(NarrowOf::<K>::dwords(n, 0, 1, 0)));
    let (second, tail) = Bulk::in_place(rest, K::BATCH);
    let lengths = length_block(n, aad.len(), (first.batches + second.batches) * K::BATCH + tail.len());
    let mut acc = m.hash_bytes(n, NarrowOf::<K>::zero(n), aad);
    let mut pending = None;
    let mut started = None;
    if DECRYPT {
        // The last bulk with batches starts the final hash.
        let tail_blocks = tail.len().div_ceil(16);
        let ends = |more: bool| (!more).then_some(tail_blocks);
        started = loops::open::<K, R>(m, &mut ctr, &mut acc, &mut pending, first, ends(second.batches > 0));
        started = loops::open::<K, R>(m, &mut ctr, &mut acc, &mut pending, second, ends(false)).or(started);
    } else {
        loops::seal::<K, R, S>(m, &mut ctr, &mut acc, &mut pending, first, sink);
        loops::seal::<K, R, _>(m, &mut ctr, &mut acc, &mut pending, second, &mut super::Discard);
    }
    let last = match started {
        Some(wide) => Last::Started(wide),
        None => Last::Pending(pending.as_ref()),
    };
    finish_any::<K, DECRYPT, R>(m, j0, ctr, acc, last, None, tail, lengths)
}

/// [`tail::finish`] for however many registers the tail takes.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn finish_any<K: Kernel, const DECRYPT: bool, const R: usize>(
    m: &MaterialOf<K>,
    j0: NarrowOf<K>,
    ctr: Counters<K::V>,
    acc: NarrowOf<K>,
    last: Last<'_, K>,
    head: Option<NarrowOf<K>>,
    tail: &mut [u8],
    lengths: NarrowOf<K>,
) -> [u8; 16] {
    // At most a batch's registers, so that the arms past it are dropped
    // from narrower shapes.
    let regs = tail.len().div_ceil(16 * K::V::BLOCKS).min(<K::Batch as Regs<K::V>>::LEN);
    macro_rules! finish_with {
        ($g:literal) => {
            tail::finish::<K, $g, R, DECRYPT>(m, j0, ctr, acc, last, head, tail, lengths)
        };
    }
    match regs {
        0 => finish_with!(0),
        1 => finish_with!(1),
        2 => finish_with!(2),
        3 => finish_with!(3),
        4 => finish_with!(4),
        5 => finish_with!(5),
        6 => finish_with!(6),
        7 => finish_with!(7),
        _ => finish_with!(8),
    }
}

/// GHASH `data` into `acc` (big-endian integers) on the 128-bit code.
#[inline(always)]
pub(crate) fn ghash<N: Block>(t: N::Token, m: &Material<N>, acc: u128, data: &[u8]) -> u128 {
    m.hash_bytes(t, N::from_u128(t, acc), data).to_u128()
}

/// The GCM length block, reflected: bit lengths of the AAD and the message.
#[inline(always)]
fn length_block<N: Block>(t: N::Token, aad_len: usize, len: usize) -> N {
    N::from_u128(t, (u128::from(aad_len as u64 * 8) << 64) | u128::from(len as u64 * 8))
}
