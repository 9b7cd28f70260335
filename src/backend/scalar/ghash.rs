//! GHASH in portable Rust, constant time, by carry-less multiplication done
//! with ordinary integer multiplies (the idea of BearSSL's `ghash_ctmul64`).
//!
//! # Field representation
//!
//! A 16-byte block is read as a big-endian `u128`. GCM numbers bits the other
//! way round: bit 127 of that integer is the coefficient of `x^0` and bit 0
//! that of `x^127` ("reflected" form). Multiplying two reflected 128-bit values
//! carry-lessly gives the reflected product over 255 bits: bit `254 - s` holds
//! the coefficient of `x^s`.
//!
//! Each hash key power `H^k` is stored pre-multiplied by `x^-1`. The product of
//! a block with that stored value is then exactly the 256-bit reflected form of
//! `block * H^k` (bit `255 - s` is the coefficient of `x^s`), so no one-bit
//! shift is needed per multiplication.
//!
//! Reduction modulo `g = x^128 + x^7 + x^2 + x + 1` folds the low 128 bits
//! (coefficients of `x^128..x^255`) onto the high ones: `x^(128+m)` becomes
//! `x^m + x^(m+1) + x^(m+2) + x^(m+7)`, which in reflected form is the value
//! XORed with itself shifted right by 1, 2 and 7. The bits those shifts push out
//! of the bottom are `x^128` and above once more; they are folded a second
//! time, after which nothing is left over.
//!
//! # Carry-less products from integer multiplies
//!
//! Split `x` into four classes of every fourth bit (`x_i = x & M_i`, bits
//! `i, i+4, ...`, 16 bits each) and split the low 60 bits of `y` the same way
//! (`y_j`, 15 bits each). In the integer product `x_i * y_j`, the coefficient
//! at a position congruent to `i + j` (mod 4) counts at most 15 one-bit
//! products, so it fits in four bits: its carries reach only the three
//! positions above it, none of which is congruent to `i + j`. Each bit of that
//! class is therefore the parity of the count, exactly the carry-less
//! coefficient. XOR the 16 products by class, keep each class's own positions.
//!
//! The top four bits of `y` (`t = y >> 60`) are done with four more
//! multiplies: `x_i * t` is the sum of `x_i` shifted by 0 to 3 places, and
//! those shifted copies sit on four different classes, so they never overlap
//! and the integer product is the carry-less one. Shifted up by 60 and XORed
//! in, that completes the 64 x 64 -> 128-bit carry-less product in 20
//! multiplies. Three of those give a 128 x 128 product (Karatsuba), and up to
//! sixteen blocks (a counter-mode window's worth), multiplied by
//! `H^n..H^1`, are summed before one reduction.
//!
//! The sums run class by class of the result: for each Karatsuba part, one
//! loop over the blocks keeps five 128-bit accumulators (four classes and
//! the nibble), and every product is a load, one widening multiply with the
//! key operand from memory, and two XORs. The loop's trip count is the block
//! count, so one copy of its body serves every length.
//!
//! # Why it is constant time
//!
//! Only AND, XOR, OR, shifts by constant amounts and 64 x 64 -> 128-bit integer
//! multiplications are used; no branch, index or shift amount depends on the
//! key or the data. This relies on the CPU's multiplier taking the same time
//! for every operand, which holds for x86-64 and 64-bit ARM cores (it does not
//! hold on some old or embedded cores, e.g. ARM Cortex-M3 or PowerPC 970; see
//! BearSSL's notes on constant-time multiplication).

use super::aes::gpr;
use zeroize::Zeroize;

/// Blocks hashed per reduction: a counter-mode window.
pub(crate) const AGGREGATE: usize = 16;

/// Bits of a 64-bit word whose index is `class` mod 4.
const fn class_mask64(class: u32) -> u64 {
    0x1111_1111_1111_1111 << class
}

/// Bits of a 128-bit word whose index is `class` mod 4.
const fn class_mask128(class: u32) -> u128 {
    0x1111_1111_1111_1111_1111_1111_1111_1111 << class
}

/// Bits of `y` that go through the class products; the rest is the nibble `t`.
const LOW60: u64 = (1 << 60) - 1;
const M64: [u64; 4] = [class_mask64(0), class_mask64(1), class_mask64(2), class_mask64(3)];
const M128: [u128; 4] = [class_mask128(0), class_mask128(1), class_mask128(2), class_mask128(3)];

/// A 64-bit multiplicand (from the key side) split for [`part_sums`]: the
/// four classes of its low 60 bits, then its top nibble.
type Split = [u64; 5];

fn split(y: u64) -> Split {
    let low = y & LOW60;
    [low & M64[0], low & M64[1], low & M64[2], low & M64[3], y >> 60]
}

/// A 64-bit multiplicand (from the data side) split into its four classes.
type Classes = [u64; 4];

#[inline(always)]
fn classes(x: u64) -> Classes {
    [gpr(x & M64[0]), gpr(x & M64[1]), gpr(x & M64[2]), gpr(x & M64[3])]
}

/// One power of H (times `x^-1`), split for the three Karatsuba products:
/// low half, high half, and their XOR.
type Power = [Split; 3];

fn power(h_times_x_inv: u128) -> Power {
    let lo = h_times_x_inv as u64;
    let hi = (h_times_x_inv >> 64) as u64;
    [split(lo), split(hi), split(lo ^ hi)]
}

/// A 128-bit accumulator as two words in general-purpose registers.
///
/// Each product is XORed in as it comes out of the multiplier (which writes
/// fixed registers), into an accumulator that first passes through [`gpr`]:
/// without that barrier LLVM reassociates the XORs into trees, which keep
/// several products alive at once and cost register copies per product.
#[derive(Clone, Copy, Default)]
struct Acc {
    lo: u64,
    hi: u64,
}

impl Acc {
    #[inline(always)]
    fn add(&mut self, x: u64, y: u64) {
        let p = u128::from(x) * u128::from(y);
        self.lo = gpr(self.lo) ^ p as u64;
        self.hi = gpr(self.hi) ^ (p >> 64) as u64;
    }

    #[inline(always)]
    fn get(self) -> u128 {
        (u128::from(self.hi) << 64) | u128::from(self.lo)
    }
}

/// Class `C` of `sum over k of x[k][P] * y[k][P]` for the three Karatsuba
/// parts `P` at once (low 60 bits of `y` only): the products `x_i * y_j` with
/// `i + j = C (mod 4)`.
///
/// One loop per class keeps three accumulators (six registers) and uses each
/// loaded operand once, so every product compiles to a load, a widening
/// multiply by a key word read from memory, and two XORs, with nothing
/// spilled. Each loop is a function of its own (never inlined) so that its
/// registers are allocated for it alone: inlined into one function, the
/// five loops' counters compete with the multiplier's fixed output
/// registers and get spilled.
#[inline(never)]
fn class_sums<const C: usize>(x: &[[Classes; 3]], y: &[Power]) -> [u128; 3] {
    let mut z = [Acc::default(); 3];
    for (xk, yk) in x.iter().zip(y) {
        for p in 0..3 {
            let (xp, yp) = (&xk[p], &yk[p]);
            z[p].add(xp[0], yp[C]);
            z[p].add(xp[1], yp[(C + 3) % 4]);
            z[p].add(xp[2], yp[(C + 2) % 4]);
            z[p].add(xp[3], yp[(C + 1) % 4]);
        }
    }
    z.map(|v| v.get() & M128[C])
}

/// The top-nibble products `x * t`, for the three parts, shifted into place.
#[inline(never)]
fn nibble_sums(x: &[[Classes; 3]], y: &[Power]) -> [u128; 3] {
    let mut z = [Acc::default(); 3];
    for (xk, yk) in x.iter().zip(y) {
        for p in 0..3 {
            let (xp, t) = (&xk[p], yk[p][4]);
            for &xi in xp {
                z[p].add(xi, t);
            }
        }
    }
    z.map(|v| v.get() << 60)
}

/// `sum over k of x[k][P] * y[k][P]` for the three parts `P`, carry-less,
/// each 64 x 64 -> 128 bits.
#[inline(always)]
fn part_sums(x: &[[Classes; 3]], y: &[Power]) -> [u128; 3] {
    let sums =
        [class_sums::<0>(x, y), class_sums::<1>(x, y), class_sums::<2>(x, y), class_sums::<3>(x, y), nibble_sums(x, y)];
    core::array::from_fn(|p| sums.iter().fold(0, |acc, s| acc ^ s[p]))
}

/// Reduce a 256-bit reflected product `(hi, lo)` modulo the GCM polynomial.
#[inline(always)]
fn reduce(hi: u128, lo: u128) -> u128 {
    let spill = (lo << 127) ^ (lo << 126) ^ (lo << 121);
    hi ^ lo ^ (lo >> 1) ^ (lo >> 2) ^ (lo >> 7) ^ spill ^ (spill >> 1) ^ (spill >> 2) ^ (spill >> 7)
}

/// `sum(blocks[k] * powers[k])`, reduced, for as many blocks as `powers`
/// has (at most [`AGGREGATE`]).
#[inline(always)]
fn mul_sum(blocks: &[u128], powers: &[Power]) -> u128 {
    let n = blocks.len().min(powers.len()).min(AGGREGATE);
    let mut x = [[Classes::default(); 3]; AGGREGATE];
    for (xk, &b) in x.iter_mut().zip(&blocks[..n]) {
        let (lo, hi) = (b as u64, (b >> 64) as u64);
        *xk = [classes(lo), classes(hi), classes(lo ^ hi)];
    }
    let [lo, hi, mid] = part_sums(&x[..n], &powers[..n]);
    let mid = mid ^ lo ^ hi;
    reduce(hi ^ (mid >> 64), lo ^ (mid << 64))
}

/// `h * x^-1` in the field (reflected form). `x^-1 = x^127 + x^6 + x + 1`.
fn mul_x_inv(h: u128) -> u128 {
    let carry = 0u128.wrapping_sub(h >> 127); // all ones if the x^0 coefficient is set
    const X_INV: u128 = 1 | (1 << 121) | (1 << 126) | (1 << 127);
    (h << 1) ^ (carry & X_INV)
}

/// A block as a big-endian integer, read as two 8-byte words (the same
/// accesses the counter-mode XOR stores with, so a read right after a write
/// is forwarded from the store buffer); a short block is zero-padded.
#[inline(always)]
fn load_block(bytes: &[u8]) -> u128 {
    let word = |h: &[u8; 8]| u128::from(u64::from_be_bytes(*h));
    if let Some((hi, rest)) = bytes.split_first_chunk::<8>()
        && let Some(lo) = rest.first_chunk::<8>()
    {
        return (word(hi) << 64) | word(lo);
    }
    let mut b = [0u8; 16];
    for (d, s) in b.iter_mut().zip(bytes) {
        *d = *s;
    }
    u128::from_be_bytes(b)
}

/// The hash key: `H^16..H^1`, each times `x^-1`, split for multiplication
/// (highest power first, so `n` blocks use the last `n`).
#[derive(Clone)]
pub(crate) struct GhashKey {
    powers: [Power; AGGREGATE],
}

impl GhashKey {
    /// `h` is `E(K, 0^128)`.
    pub(crate) fn new(h: &[u8; 16]) -> GhashKey {
        let h = u128::from_be_bytes(*h);
        let h1 = [power(mul_x_inv(h))];
        let mut powers = [[[0u64; 5]; 3]; AGGREGATE];
        let mut hk = h;
        for p in powers.iter_mut().rev() {
            *p = power(mul_x_inv(hk));
            hk = mul_sum(&[hk], &h1);
        }
        hk.zeroize();
        GhashKey { powers }
    }

    /// Absorb up to [`AGGREGATE`] blocks, the last one zero-padded if short:
    /// `acc = (acc ^ X1) H^n ^ X2 H^(n-1) ^ ... ^ Xn H`, one reduction.
    ///
    /// Never inlined, like the AES passes: one copy of this code serves the
    /// message, the AAD, the lengths block and every build profile.
    #[inline(never)]
    pub(crate) fn absorb(&self, acc: &mut u128, data: &[u8]) {
        let mut blocks = [0u128; AGGREGATE];
        let mut n = 0;
        for (b, bytes) in blocks.iter_mut().zip(data.chunks(16)) {
            *b = load_block(bytes);
            n += 1;
        }
        if n == 0 {
            return;
        }
        blocks[0] ^= *acc;
        *acc = mul_sum(&blocks[..n], &self.powers[AGGREGATE - n..]);
    }

    /// Absorb `data`, zero-padding its last block (GCM pads AAD and ciphertext
    /// separately).
    pub(crate) fn update_padded(&self, acc: &mut u128, data: &[u8]) {
        for chunk in data.chunks(16 * AGGREGATE) {
            self.absorb(acc, chunk);
        }
    }

    /// Absorb one block given as an integer (the lengths block).
    pub(crate) fn update_block(&self, acc: &mut u128, block: u128) {
        self.absorb(acc, &block.to_be_bytes());
    }
}

impl Drop for GhashKey {
    fn drop(&mut self) {
        self.powers.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::ghash::{GHash, universal_hash::UniversalHash};

    /// Bit-at-a-time carry-less product, the textbook way.
    fn clmul_naive(x: u64, y: u64) -> u128 {
        let mut z = 0u128;
        for i in 0..64 {
            if (y >> i) & 1 == 1 {
                z ^= u128::from(x) << i;
            }
        }
        z
    }

    fn lcg(state: &mut u64) -> u64 {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *state ^ (*state >> 29)
    }

    #[test]
    fn integer_multiply_clmul_matches_bitwise_clmul() {
        let mut s = 1u64;
        // Edge cases: full classes (the largest counts), the top nibble alone.
        let edge = [0u64, 1, u64::MAX, 0x8000_0000_0000_0000, 0xF000_0000_0000_0000, M64[0], M64[3], !M64[2], LOW60];
        let mut inputs: Vec<u64> = edge.to_vec();
        inputs.extend((0..200).map(|_| lcg(&mut s)));
        for &x in &inputs {
            for &y in &inputs[..40] {
                let got = part_sums(&[[classes(x), [0; 4], [0; 4]]], &[[split(y), [0; 5], [0; 5]]])[0];
                assert_eq!(got, clmul_naive(x, y), "{x:#x} * {y:#x}");
            }
        }
        // A sum of several products is the XOR of the products.
        let xs: Vec<u64> = (0..8).map(|_| lcg(&mut s)).collect();
        let ys: Vec<Power> = xs.iter().map(|&x| [[0; 5], split(x.rotate_left(17) ^ u64::MAX), [0; 5]]).collect();
        let want = xs.iter().fold(0u128, |a, &x| a ^ clmul_naive(x, x.rotate_left(17) ^ u64::MAX));
        let xc: Vec<[Classes; 3]> = xs.iter().map(|&x| [[0; 4], classes(x), [0; 4]]).collect();
        assert_eq!(part_sums(&xc, &ys)[1], want);
    }

    fn reference(h: [u8; 16], data: &[u8]) -> [u8; 16] {
        let mut g = GHash::new(&h.into());
        g.update_padded(data);
        g.finalize().into()
    }

    #[test]
    fn matches_rustcrypto_ghash_for_every_length_up_to_600() {
        let mut s = 7u64;
        let h: [u8; 16] = core::array::from_fn(|_| lcg(&mut s) as u8);
        let data: Vec<u8> = (0..600).map(|_| lcg(&mut s) as u8).collect();
        let key = GhashKey::new(&h);
        for len in 0..=data.len() {
            let mut acc = 0u128;
            key.update_padded(&mut acc, &data[..len]);
            assert_eq!(acc.to_be_bytes(), reference(h, &data[..len]), "length {len}");
        }
    }

    #[test]
    fn chained_updates_equal_one_update_of_padded_pieces() {
        let h = [0x42u8; 16];
        let key = GhashKey::new(&h);
        let a = [1u8; 37];
        let b = [2u8; 150];
        let mut acc = 0u128;
        key.update_padded(&mut acc, &a);
        key.update_padded(&mut acc, &b);
        key.update_block(&mut acc, 0x1234);
        let mut joined = vec![0u8; 48];
        joined[..37].copy_from_slice(&a);
        joined.extend_from_slice(&b);
        joined.extend_from_slice(&[0u8; 10]);
        joined.extend_from_slice(&0x1234u128.to_be_bytes());
        assert_eq!(acc.to_be_bytes(), reference(h, &joined));
    }

    #[test]
    fn x_inverse_times_x_is_one() {
        // x in reflected form is bit 126; x^-1 * x must be 1 (bit 127).
        let one = 1u128 << 127;
        let x_inv = mul_x_inv(one);
        let p = power(mul_x_inv(1u128 << 126)); // (x) * x^-1 stored
        let product = mul_sum(&[x_inv], &[p]);
        // x^-1 * x = 1
        assert_eq!(product, one);
    }
}
