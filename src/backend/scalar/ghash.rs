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
//! multiplies. Three of those give a 128 x 128 product (Karatsuba), and eight
//! blocks, multiplied by `H^8..H^1`, are summed before one reduction.
//!
//! # Why it is constant time
//!
//! Only AND, XOR, OR, shifts by constant amounts and 64 x 64 -> 128-bit integer
//! multiplications are used; no branch, index or shift amount depends on the
//! key or the data. This relies on the CPU's multiplier taking the same time
//! for every operand, which holds for x86-64 and 64-bit ARM cores (it does not
//! hold on some old or embedded cores, e.g. ARM Cortex-M3 or PowerPC 970; see
//! BearSSL's notes on constant-time multiplication).

use zeroize::{DefaultIsZeroes, Zeroize};

/// Blocks hashed per reduction.
pub(crate) const AGGREGATE: usize = 8;

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

/// A 64-bit multiplicand (from the key side) split for [`clmul_sum`]: the four
/// classes of its low 60 bits, then its top nibble.
#[derive(Clone, Copy, Default)]
struct Split([u64; 5]);

impl Split {
    fn new(y: u64) -> Split {
        let low = y & LOW60;
        Split([low & M64[0], low & M64[1], low & M64[2], low & M64[3], y >> 60])
    }
}

/// A 64-bit multiplicand (from the data side) split into its four classes.
type Classes = [u64; 4];

#[inline(always)]
fn classes(x: u64) -> Classes {
    [x & M64[0], x & M64[1], x & M64[2], x & M64[3]]
}

/// One power of H (times `x^-1`), split for the three Karatsuba products.
#[derive(Clone, Copy, Default)]
struct Power {
    lo: Split,
    hi: Split,
    mid: Split,
}

impl DefaultIsZeroes for Power {}

impl Power {
    fn new(h_times_x_inv: u128) -> Power {
        let lo = h_times_x_inv as u64;
        let hi = (h_times_x_inv >> 64) as u64;
        Power { lo: Split::new(lo), hi: Split::new(hi), mid: Split::new(lo ^ hi) }
    }
}

/// `sum over k of x[k] * y[k]`, carry-less, each 64 x 64 -> 128 bits.
///
/// The work runs class by class of the *result* ([`clmul_class`]), so that
/// one 128-bit accumulator and the multiplier's two output registers are all
/// that stay live: every product is a load, a multiply and two XORs.
#[inline(always)]
fn clmul_sum(x: &[Classes], y: &[&Split]) -> u128 {
    let mut nibble = 0u128;
    for (xk, yk) in x.iter().zip(y.iter()) {
        for &xi in xk {
            nibble ^= u128::from(xi) * u128::from(yk.0[4]);
        }
    }
    (nibble << 60) ^ (clmul_class::<0>(x, y) | clmul_class::<1>(x, y) | clmul_class::<2>(x, y) | clmul_class::<3>(x, y))
}

/// The bits of class `C` of `sum x[k] * y[k]` (low 60 bits of `y` only):
/// products `x_i * y_j` with `i + j = C (mod 4)`.
#[inline(always)]
fn clmul_class<const C: usize>(x: &[Classes], y: &[&Split]) -> u128 {
    let mut z = 0u128;
    for (xk, yk) in x.iter().zip(y.iter()) {
        for (i, &xi) in xk.iter().enumerate() {
            z ^= u128::from(xi) * u128::from(yk.0[(C + 4 - i) % 4]);
        }
    }
    z & M128[C]
}

/// Reduce a 256-bit reflected product `(hi, lo)` modulo the GCM polynomial.
#[inline(always)]
fn reduce(hi: u128, lo: u128) -> u128 {
    let spill = (lo << 127) ^ (lo << 126) ^ (lo << 121);
    hi ^ lo ^ (lo >> 1) ^ (lo >> 2) ^ (lo >> 7) ^ spill ^ (spill >> 1) ^ (spill >> 2) ^ (spill >> 7)
}

/// `h * x^-1` in the field (reflected form). `x^-1 = x^127 + x^6 + x + 1`.
fn mul_x_inv(h: u128) -> u128 {
    let carry = 0u128.wrapping_sub(h >> 127); // all ones if the x^0 coefficient is set
    const X_INV: u128 = 1 | (1 << 121) | (1 << 126) | (1 << 127);
    (h << 1) ^ (carry & X_INV)
}

/// `sum(blocks[k] * powers[n-1-k])` for `n = blocks.len()` (1..=8), reduced.
#[inline(always)]
fn mul_sum(powers: &[Power; AGGREGATE], blocks: &[u128]) -> u128 {
    let n = blocks.len().min(AGGREGATE);
    let mut xl = [Classes::default(); AGGREGATE];
    let mut xh = [Classes::default(); AGGREGATE];
    let mut xm = [Classes::default(); AGGREGATE];
    let mut yl = [&powers[0].lo; AGGREGATE];
    let mut yh = [&powers[0].hi; AGGREGATE];
    let mut ym = [&powers[0].mid; AGGREGATE];
    for (k, &x) in blocks.iter().take(n).enumerate() {
        let (lo, hi) = (x as u64, (x >> 64) as u64);
        (xl[k], xh[k], xm[k]) = (classes(lo), classes(hi), classes(lo ^ hi));
        let p = &powers[n - 1 - k];
        (yl[k], yh[k], ym[k]) = (&p.lo, &p.hi, &p.mid);
    }
    let lo = clmul_sum(&xl[..n], &yl[..n]);
    let hi = clmul_sum(&xh[..n], &yh[..n]);
    let mid = clmul_sum(&xm[..n], &ym[..n]) ^ lo ^ hi;
    reduce(hi ^ (mid >> 64), lo ^ (mid << 64))
}

/// The hash key: `H^1..H^8`, each times `x^-1`, split for multiplication.
#[derive(Clone)]
pub(crate) struct GhashKey {
    powers: [Power; AGGREGATE],
}

impl GhashKey {
    /// `h` is `E(K, 0^128)`.
    pub(crate) fn new(h: &[u8; 16]) -> GhashKey {
        let h = u128::from_be_bytes(*h);
        let mut powers = [Power::default(); AGGREGATE];
        let h1 = Power::new(mul_x_inv(h));
        let mut hk = h;
        for p in powers.iter_mut() {
            *p = Power::new(mul_x_inv(hk));
            hk = mul_sum(&[h1; AGGREGATE], &[hk]);
        }
        hk.zeroize();
        GhashKey { powers }
    }

    /// Absorb eight whole blocks: `acc = (acc ^ X1) H^8 ^ X2 H^7 ^ ... ^ X8 H`.
    ///
    /// Never inlined, like the AES pass (see `RoundKeys::encrypt4`).
    #[inline(never)]
    pub(crate) fn update8(&self, acc: &mut u128, chunk: &[u8; 16 * AGGREGATE]) {
        let mut blocks = [0u128; AGGREGATE];
        for (b, bytes) in blocks.iter_mut().zip(chunk.chunks_exact(16)) {
            let mut v = [0u8; 16];
            v.copy_from_slice(bytes);
            *b = u128::from_be_bytes(v);
        }
        blocks[0] ^= *acc;
        *acc = mul_sum(&self.powers, &blocks);
    }

    /// Absorb `data`, zero-padding its last block (GCM pads AAD and ciphertext
    /// separately).
    pub(crate) fn update_padded(&self, acc: &mut u128, data: &[u8]) {
        let mut chunks = data.chunks_exact(16 * AGGREGATE);
        for chunk in &mut chunks {
            let mut c = [0u8; 16 * AGGREGATE];
            c.copy_from_slice(chunk);
            self.update8(acc, &c);
        }
        let rest = chunks.remainder();
        if rest.is_empty() {
            return;
        }
        let mut blocks = [0u128; AGGREGATE];
        let n = rest.len().div_ceil(16);
        for (b, bytes) in blocks.iter_mut().zip(rest.chunks(16)) {
            let mut v = [0u8; 16];
            v[..bytes.len()].copy_from_slice(bytes);
            *b = u128::from_be_bytes(v);
        }
        blocks[0] ^= *acc;
        *acc = mul_sum(&self.powers, &blocks[..n]);
    }

    /// Absorb one block given as an integer (the lengths block).
    pub(crate) fn update_block(&self, acc: &mut u128, block: u128) {
        *acc = mul_sum(&self.powers, &[*acc ^ block]);
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
                let got = clmul_sum(&[classes(x)], &[&Split::new(y)]);
                assert_eq!(got, clmul_naive(x, y), "{x:#x} * {y:#x}");
            }
        }
        // A sum of several products is the XOR of the products.
        let xs: Vec<u64> = (0..8).map(|_| lcg(&mut s)).collect();
        let ys: Vec<Split> = xs.iter().map(|&x| Split::new(x.rotate_left(17) ^ u64::MAX)).collect();
        let want = xs.iter().fold(0u128, |a, &x| a ^ clmul_naive(x, x.rotate_left(17) ^ u64::MAX));
        let xc: Vec<Classes> = xs.iter().map(|&x| classes(x)).collect();
        let yr: Vec<&Split> = ys.iter().collect();
        assert_eq!(clmul_sum(&xc, &yr), want);
    }

    fn reference(h: [u8; 16], data: &[u8]) -> [u8; 16] {
        let mut g = GHash::new(&h.into());
        g.update_padded(data);
        g.finalize().into()
    }

    #[test]
    fn matches_rustcrypto_ghash_for_every_length_up_to_300() {
        let mut s = 7u64;
        let h: [u8; 16] = core::array::from_fn(|_| lcg(&mut s) as u8);
        let data: Vec<u8> = (0..300).map(|_| lcg(&mut s) as u8).collect();
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
        let p = Power::new(mul_x_inv(1u128 << 126)); // (x) * x^-1 stored
        let product = mul_sum(&[p; AGGREGATE], &[x_inv]);
        // x^-1 * x = 1
        assert_eq!(product, one);
    }
}
