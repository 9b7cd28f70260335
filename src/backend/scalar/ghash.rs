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
//! Split `x` and `y` (64 bits each) into four classes of every fourth bit
//! (`x_i = x & M_i`, bits `i, i+4, ...`, 16 bits each). In the integer
//! product `x_i * y_j`, only positions congruent to `i + j` (mod 4) receive
//! one-bit products, and below bit 64 each counts at most 16 of them, 16
//! only from bit 60 up. A count below 16 fits in four bits, so its carries
//! land on the three positions above it, which belong to other classes and
//! receive nothing else; a count of 16 carries past bit 63. So in the low 64
//! bits of the product every bit of class `i + j` is the parity of its count,
//! exactly the carry-less coefficient: sixteen ordinary 64-bit multiplies
//! (`wrapping_mul`, one instruction that writes any register), XORed by class
//! and masked, give the low half of the carry-less 64 x 64 product.
//!
//! The high half comes from the same computation on bit-reversed operands:
//! the low 64 bits of `rev(x) * rev(y)` are the coefficients 63..126 of
//! `x * y` in reverse order, so `rev(that) >> 1` is the high half. Three
//! 64 x 64 products give a 128 x 128 one (Karatsuba), so a block costs 96
//! multiplies. The reversals are cheap where they happen: the key's powers
//! are reversed once at key setup, the data once per block, and the
//! reversed sums once per reduction, since reversal commutes with XOR.
//!
//! (Widening 64 x 64 -> 128 multiplies would need 20 per 64 x 64 product,
//! with the operands' top four bits done apart to keep counts under 16, but
//! on current x86-64 cores a widening multiply costs about twice a plain one
//! and writes two fixed registers; the plain form measured faster.)
//!
//! Up to sixteen blocks (a counter-mode window's worth), multiplied by
//! `H^n..H^1`, are summed before one reduction. The sums run class by class
//! of the result: one loop over the blocks per class keeps six 64-bit
//! accumulators (three Karatsuba parts, low and reversed), and every product
//! is a load, a multiply by a key word read from memory and an XOR. The
//! loop's trip count is the block count, so one copy of its body serves every
//! length.
//!
//! # Why it is constant time
//!
//! Only AND, XOR, OR, shifts by constant amounts, bit reversal (byte swaps
//! and masked shifts) and 64 x 64 -> 64-bit integer multiplications are
//! used; no branch, index or shift amount depends on the key or the data.
//! This relies on the CPU's multiplier taking the same time for every
//! operand, which holds for x86-64 and 64-bit ARM cores (it does not hold on
//! some old or embedded cores, e.g. ARM Cortex-M3 or PowerPC 970; see
//! BearSSL's notes on constant-time multiplication).

use super::aes::gpr;
use zeroize::Zeroize;

/// Blocks hashed per reduction: a counter-mode window.
pub(crate) const AGGREGATE: usize = 16;

/// Bits of a 64-bit word whose index is `class` mod 4.
const fn class_mask(class: u32) -> u64 {
    0x1111_1111_1111_1111 << class
}

const M64: [u64; 4] = [class_mask(0), class_mask(1), class_mask(2), class_mask(3)];

/// A 64-bit operand split into its four classes.
type Classes = [u64; 4];

#[inline(always)]
fn classes(x: u64) -> Classes {
    [gpr(x & M64[0]), gpr(x & M64[1]), gpr(x & M64[2]), gpr(x & M64[3])]
}

/// A 128-bit operand ready for Karatsuba: for each part (low half, high
/// half, their XOR), the classes of the word and of its bit reversal.
type Split = [[Classes; 2]; 3];

#[inline(always)]
fn split(v: u128) -> Split {
    let (lo, hi) = (v as u64, (v >> 64) as u64);
    let (rlo, rhi) = (lo.reverse_bits(), hi.reverse_bits());
    [[classes(lo), classes(rlo)], [classes(hi), classes(rhi)], [classes(lo ^ hi), classes(rlo ^ rhi)]]
}

/// Class `C` of the low 64 bits of `sum over k of x[k][p][h] * y[k][p][h]`
/// for the three parts `p` and both forms `h` (plain, reversed): the
/// products `x_i * y_j` with `i + j = C (mod 4)`.
///
/// Each product is a load, a multiply by a key word read from memory and an
/// XOR into an accumulator that first passes through [`gpr`]: without that
/// barrier LLVM reassociates the XORs into trees, which keep several
/// products alive at once and cost register copies. Each loop is a function
/// of its own (never inlined) so that its registers are allocated for it
/// alone, the same way in every build profile.
#[inline(never)]
fn class_sums<const C: usize>(x: &[Split], y: &[Split]) -> [u64; 6] {
    let mut z = [0u64; 6];
    for (xk, yk) in x.iter().zip(y) {
        for p in 0..3 {
            for h in 0..2 {
                let (xs, ys) = (&xk[p][h], &yk[p][h]);
                let acc = &mut z[2 * p + h];
                *acc = gpr(*acc) ^ xs[0].wrapping_mul(ys[C]);
                *acc = gpr(*acc) ^ xs[1].wrapping_mul(ys[(C + 3) % 4]);
                *acc = gpr(*acc) ^ xs[2].wrapping_mul(ys[(C + 2) % 4]);
                *acc = gpr(*acc) ^ xs[3].wrapping_mul(ys[(C + 1) % 4]);
            }
        }
    }
    z.map(|v| v & M64[C])
}

/// Reduce a 256-bit reflected product `(hi, lo)` modulo the GCM polynomial.
#[inline(always)]
fn reduce(hi: u128, lo: u128) -> u128 {
    let spill = (lo << 127) ^ (lo << 126) ^ (lo << 121);
    hi ^ lo ^ (lo >> 1) ^ (lo >> 2) ^ (lo >> 7) ^ spill ^ (spill >> 1) ^ (spill >> 2) ^ (spill >> 7)
}

/// `sum(x[k] * y[k])` over the split operands, reduced.
#[inline(always)]
fn mul_sum(x: &[Split], y: &[Split]) -> u128 {
    let sums = [class_sums::<0>(x, y), class_sums::<1>(x, y), class_sums::<2>(x, y), class_sums::<3>(x, y)];
    let z: [u64; 6] = core::array::from_fn(|i| sums.iter().fold(0, |acc, s| acc | s[i]));
    // Part p's 128-bit product: low half z[2p], high half from the reversed sum.
    let part = |p: usize| (u128::from(z[2 * p + 1].reverse_bits() >> 1) << 64) | u128::from(z[2 * p]);
    let (lo, hi) = (part(0), part(1));
    let mid = part(2) ^ lo ^ hi;
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
    powers: [Split; AGGREGATE],
}

impl GhashKey {
    /// `h` is `E(K, 0^128)`.
    pub(crate) fn new(h: &[u8; 16]) -> GhashKey {
        let h = u128::from_be_bytes(*h);
        let h1 = [split(mul_x_inv(h))];
        let mut powers = [[[[0u64; 4]; 2]; 3]; AGGREGATE];
        let mut hk = h;
        for p in powers.iter_mut().rev() {
            *p = split(mul_x_inv(hk));
            hk = mul_sum(&[split(hk)], &h1);
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
        let n = data.len().div_ceil(16).min(AGGREGATE);
        if n == 0 {
            return;
        }
        // Only the first `n` entries are written and read: zeroing all 3 KB
        // first was a `memset` per window, 3-4% of this backend's time.
        let mut x = [core::mem::MaybeUninit::<Split>::uninit(); AGGREGATE];
        let mut acc_in = *acc;
        for (xk, bytes) in x.iter_mut().zip(data.chunks(16)) {
            xk.write(split(load_block(bytes) ^ acc_in));
            acc_in = 0;
        }
        // SAFETY: the loop wrote the first `min(AGGREGATE, chunks)` = `n`
        // entries, and `MaybeUninit<Split>` has `Split`'s layout.
        let x: &[Split] = unsafe { &*(x.get(..n).unwrap_or_default() as *const [_] as *const [Split]) };
        *acc = mul_sum(x, self.powers.get(AGGREGATE - n..).unwrap_or_default());
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

    /// The 128 x 128 carry-less product, reflected form in and out, as
    /// [`mul_sum`] computes it before reduction, from the naive product.
    fn clmul128_naive(x: u128, y: u128) -> (u128, u128) {
        let (xl, xh, yl, yh) = (x as u64, (x >> 64) as u64, y as u64, (y >> 64) as u64);
        let (ll, hh) = (clmul_naive(xl, yl), clmul_naive(xh, yh));
        let mid = clmul_naive(xl ^ xh, yl ^ yh) ^ ll ^ hh;
        (hh ^ (mid >> 64), ll ^ (mid << 64))
    }

    #[test]
    fn integer_multiply_clmul_matches_bitwise_clmul() {
        let mut s = 1u64;
        // Edge cases: full classes (counts of 16 at the top), single bits.
        let edge = [0u64, 1, u64::MAX, 0x8000_0000_0000_0000, 0xF000_0000_0000_0000, M64[0], M64[3], !M64[2]];
        let mut inputs: Vec<u64> = edge.to_vec();
        inputs.extend((0..120).map(|_| lcg(&mut s)));
        for &a in &inputs {
            for &b in &inputs[..30] {
                for &c in &inputs[..4] {
                    let (x, y) = ((u128::from(a) << 64) | u128::from(c), (u128::from(b) << 64) | u128::from(a ^ c));
                    let (hi, lo) = clmul128_naive(x, y);
                    // mul_sum reduces; compare against the naive product reduced the same way.
                    assert_eq!(mul_sum(&[split(x)], &[split(y)]), reduce(hi, lo), "{x:#x} * {y:#x}");
                }
            }
        }
        // A sum of several products is the XOR of the products.
        let xs: Vec<u128> = (0..16).map(|_| (u128::from(lcg(&mut s)) << 64) | u128::from(lcg(&mut s))).collect();
        let ys: Vec<u128> = xs.iter().map(|&x| x.rotate_left(17) ^ u128::MAX).collect();
        let want = xs.iter().zip(&ys).fold(0u128, |acc, (&x, &y)| {
            let (hi, lo) = clmul128_naive(x, y);
            acc ^ reduce(hi, lo)
        });
        let xsplit: Vec<Split> = xs.iter().map(|&x| split(x)).collect();
        let ysplit: Vec<Split> = ys.iter().map(|&y| split(y)).collect();
        assert_eq!(mul_sum(&xsplit, &ysplit), want);
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
        let p = split(mul_x_inv(1u128 << 126)); // (x) * x^-1 stored
        let product = mul_sum(&[split(x_inv)], &[p]);
        // x^-1 * x = 1
        assert_eq!(product, one);
    }
}
