//! Fixsliced AES encryption in portable Rust, constant time.
//!
//! # Representation
//!
//! Four AES blocks are held as eight 64-bit words (a "bitsliced state"): word `j`
//! holds bit `j` of every byte of the four blocks. Inside a word, byte `(row r,
//! column c)` of block `b` (AES byte index `r + 4c`) sits at bit
//!
//! ```text
//!     position = 16*r + 4*c + b          (r, c, b in 0..4)
//! ```
//!
//! so each row is one 16-bit lane, each column a nibble of that lane and the
//! four blocks are the four bits of the nibble. Every AES step becomes
//! whole-word logic on those eight words:
//!
//! - SubBytes is a Boolean circuit evaluated on the eight words: the 113-gate
//!   circuit of Boyar, Matthews and Peralta (32 AND, 81 XOR; "A very compact
//!   S-box for AES", 2011/2013), with its four NOT gates moved into the round
//!   keys (they add the constant 0x63, which passes through MixColumns and
//!   ShiftRows unchanged).
//! - AddRoundKey is eight XORs with a round key packed the same way.
//! - MixColumns multiplies each column by the circulant (2 3 1 1). Row `r + 1`
//!   of the same column is one word rotation away (16 bits), so the whole step
//!   is rotations and XORs.
//! - ShiftRows is never executed ("fixslicing", Adomnicai and Peyrin, TCHES
//!   2021). After `k` skipped ShiftRows the state we hold is `SR^-k` of the real
//!   one, so round `i` uses the MixColumns variant `SR^-k . MC . SR^k` with
//!   `k = i mod 4` (row `r + d` of column `c + k*d` instead of column `c`), and
//!   its round key is stored already permuted by `SR^-k`. After the last round
//!   one fix-up of `SR^(rounds mod 4)` brings the state back (nothing for
//!   AES-192; rows 1 and 3 swap column pairs for AES-128 and AES-256).
//!
//! # Why it is constant time
//!
//! Every operation above is a fixed sequence of AND, XOR, OR and rotations by
//! constant amounts on whole words. No secret value selects a branch, a loop
//! bound, a memory address or a shift amount: the key schedule runs the same
//! S-box circuit instead of a table, and the round count depends only on the
//! key *length*. Packing bytes into the sliced form (and back) is a fixed
//! network of masked shifts ("swapmoves"). The only data-dependent thing is the
//! data itself, flowing through instructions whose timing does not depend on
//! their operands on any CPU Rust targets.
//!
//! # Why general-purpose registers
//!
//! The state lives in 64-bit integer registers, not vector registers, by
//! choice. This backend is the reference that SIMD output is checked
//! against, and the failure it must catch (2015, Xen paravirtual guests) was
//! corruption of vector register state. A reference computed in the same
//! register file could be corrupted the same way and then "correct" a healthy
//! backend. The price is speed: x86-64 integer instructions are two-operand,
//! so the S-box circuit costs about one register copy per two gates.

use crate::backend::KeyBytes;
use zeroize::Zeroize;

/// Blocks carried by one sliced state.
pub(crate) const BLOCKS: usize = 4;

/// A sliced state: eight bit-planes of four blocks.
pub(crate) type State = [u64; 8];

/// Exchange the bits of `a` selected by `mask << shift` with the bits of `b`
/// selected by `mask` (a "swapmove").
#[inline(always)]
fn swapmove(a: &mut u64, b: &mut u64, mask: u64, shift: u32) {
    let t = ((*a >> shift) ^ *b) & mask;
    *b ^= t;
    *a ^= t << shift;
}

/// Exchange, inside one word, the bits selected by `mask << shift` with those
/// selected by `mask`.
#[inline(always)]
fn delta_swap(a: u64, mask: u64, shift: u32) -> u64 {
    let t = ((a >> shift) ^ a) & mask;
    a ^ t ^ (t << shift)
}

/// Reorder the bytes of a word from `[c1 r1 r0]` to `[r1 r0 c1]` (byte index
/// bits, high to low): interleave the two 32-bit halves byte by byte. It is an
/// involution's inverse pair: [`byte_interleave`] then [`byte_deinterleave`]
/// is the identity.
#[inline(always)]
fn byte_interleave(w: u64) -> u64 {
    delta_swap(delta_swap(w, 0x0000_0000_FFFF_0000, 16), 0x0000_FF00_0000_FF00, 8)
}

#[inline(always)]
fn byte_deinterleave(w: u64) -> u64 {
    delta_swap(delta_swap(w, 0x0000_FF00_0000_FF00, 8), 0x0000_0000_FFFF_0000, 16)
}

/// Pack four blocks into the sliced layout described in the module header.
///
/// Each block is read as two little-endian words. For `c0` in {0, 1}, the
/// bytes of columns `c0` and `c0 + 2` are gathered into one word (index
/// `4*c0 + b`), whose byte index bits are then `[c1 r1 r0]`; a byte interleave
/// makes them `[r1 r0 c1]`; three swapmove layers then exchange the bit-in-byte
/// index (`j2 j1 j0`) with the word index (`c0 b1 b0`).
#[inline(always)]
pub(crate) fn pack4(blocks: &[[u8; 16]; BLOCKS]) -> State {
    let mut w = [0u64; 8];
    for (b, block) in blocks.iter().enumerate() {
        let [l0, l1, l2, l3, l4, l5, l6, l7, h0, h1, h2, h3, h4, h5, h6, h7] = *block;
        let lo = u64::from_le_bytes([l0, l1, l2, l3, l4, l5, l6, l7]);
        let hi = u64::from_le_bytes([h0, h1, h2, h3, h4, h5, h6, h7]);
        w[b] = byte_interleave((lo & 0xFFFF_FFFF) | (hi << 32));
        w[4 + b] = byte_interleave((lo >> 32) | (hi & 0xFFFF_FFFF_0000_0000));
    }
    transpose_bits(&mut w);
    w
}

/// Inverse of [`pack4`].
#[inline(always)]
pub(crate) fn unpack4(state: &State, out: &mut [[u8; 16]; BLOCKS]) {
    let mut w = *state;
    transpose_bits(&mut w);
    for (b, block) in out.iter_mut().enumerate() {
        let even = byte_deinterleave(w[b]);
        let odd = byte_deinterleave(w[4 + b]);
        let lo = (even & 0xFFFF_FFFF) | (odd << 32);
        let hi = (even >> 32) | (odd & 0xFFFF_FFFF_0000_0000);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&lo.to_le_bytes());
        bytes[8..].copy_from_slice(&hi.to_le_bytes());
        *block = bytes;
    }
}

/// Exchange word-index bit `k` with position bit `k` for k = 0, 1, 2. It is an
/// involution, so it serves both packing and unpacking.
#[inline(always)]
fn transpose_bits(w: &mut [u64; 8]) {
    let [w0, w1, w2, w3, w4, w5, w6, w7] = w;
    swapmove(w0, w1, 0x5555_5555_5555_5555, 1);
    swapmove(w2, w3, 0x5555_5555_5555_5555, 1);
    swapmove(w4, w5, 0x5555_5555_5555_5555, 1);
    swapmove(w6, w7, 0x5555_5555_5555_5555, 1);
    swapmove(w0, w2, 0x3333_3333_3333_3333, 2);
    swapmove(w1, w3, 0x3333_3333_3333_3333, 2);
    swapmove(w4, w6, 0x3333_3333_3333_3333, 2);
    swapmove(w5, w7, 0x3333_3333_3333_3333, 2);
    swapmove(w0, w4, 0x0F0F_0F0F_0F0F_0F0F, 4);
    swapmove(w1, w5, 0x0F0F_0F0F_0F0F_0F0F, 4);
    swapmove(w2, w6, 0x0F0F_0F0F_0F0F_0F0F, 4);
    swapmove(w3, w7, 0x0F0F_0F0F_0F0F_0F0F, 4);
}

/// The AES S-box without its affine constant (the result is `S(x) ^ 0x63`),
/// on eight bit-planes: `s[7]` is the most significant bit of every byte.
///
/// Gate list: Boyar, Matthews, Peralta, 113 gates. Names follow the paper
/// (`u` inputs, `y` top linear layer, `t` middle, `z` products, `tc` bottom).
#[inline(always)]
pub(crate) fn sub_bytes(s: &mut State) {
    let [u7, u6, u5, u4, u3, u2, u1, u0] = *s;

    // Top linear transformation.
    let y14 = u3 ^ u5;
    let y13 = u0 ^ u6;
    let y9 = u0 ^ u3;
    let y8 = u0 ^ u5;
    let t0 = u1 ^ u2;
    let y1 = t0 ^ u7;
    let y4 = y1 ^ u3;
    let y12 = y13 ^ y14;
    let y2 = y1 ^ u0;
    let y5 = y1 ^ u6;
    let y3 = y5 ^ y8;
    let t1 = u4 ^ y12;
    let y15 = t1 ^ u5;
    let y20 = t1 ^ u1;
    let y6 = y15 ^ u7;
    let y10 = y15 ^ t0;
    let y11 = y20 ^ y9;
    let y7 = u7 ^ y11;
    let y17 = y10 ^ y11;
    let y19 = y10 ^ y8;
    let y16 = t0 ^ y11;
    let y21 = y13 ^ y16;
    let y18 = u0 ^ y16;

    // Shared non-linear middle: inversion in GF(2^4) towers.
    let t2 = y12 & y15;
    let t3 = y3 & y6;
    let t4 = t3 ^ t2;
    let t5 = y4 & u7;
    let t6 = t5 ^ t2;
    let t7 = y13 & y16;
    let t8 = y5 & y1;
    let t9 = t8 ^ t7;
    let t10 = y2 & y7;
    let t11 = t10 ^ t7;
    let t12 = y9 & y11;
    let t13 = y14 & y17;
    let t14 = t13 ^ t12;
    let t15 = y8 & y10;
    let t16 = t15 ^ t12;
    let t17 = t4 ^ y20;
    let t18 = t6 ^ t16;
    let t19 = t9 ^ t14;
    let t20 = t11 ^ t16;
    let t21 = t17 ^ t14;
    let t22 = t18 ^ y19;
    let t23 = t19 ^ y21;
    let t24 = t20 ^ y18;
    let t25 = t21 ^ t22;
    let t26 = t21 & t23;
    let t27 = t24 ^ t26;
    let t28 = t25 & t27;
    let t29 = t28 ^ t22;
    let t30 = t23 ^ t24;
    let t31 = t22 ^ t26;
    let t32 = t31 & t30;
    let t33 = t32 ^ t24;
    let t34 = t23 ^ t33;
    let t35 = t27 ^ t33;
    let t36 = t24 & t35;
    let t37 = t36 ^ t34;
    let t38 = t27 ^ t36;
    let t39 = t29 & t38;
    let t40 = t25 ^ t39;
    let t41 = t40 ^ t37;
    let t42 = t29 ^ t33;
    let t43 = t29 ^ t40;
    let t44 = t33 ^ t37;
    let t45 = t42 ^ t41;
    let z0 = t44 & y15;
    let z1 = t37 & y6;
    let z2 = t33 & u7;
    let z3 = t43 & y16;
    let z4 = t40 & y1;
    let z5 = t29 & y7;
    let z6 = t42 & y11;
    let z7 = t45 & y17;
    let z8 = t41 & y10;
    let z9 = t44 & y12;
    let z10 = t37 & y3;
    let z11 = t33 & y4;
    let z12 = t43 & y13;
    let z13 = t40 & y5;
    let z14 = t29 & y2;
    let z15 = t42 & y9;
    let z16 = t45 & y14;
    let z17 = t41 & y8;

    // Bottom linear transformation (the four XNORs of the circuit are plain
    // XORs here; their constant 0x63 is folded into the round keys).
    let tc1 = z15 ^ z16;
    let tc2 = z10 ^ tc1;
    let tc3 = z9 ^ tc2;
    let tc4 = z0 ^ z2;
    let tc5 = z1 ^ z0;
    let tc6 = z3 ^ z4;
    let tc7 = z12 ^ tc4;
    let tc8 = z7 ^ tc6;
    let tc9 = z8 ^ tc7;
    let tc10 = tc8 ^ tc9;
    let tc11 = tc6 ^ tc5;
    let tc12 = z3 ^ z5;
    let tc13 = z13 ^ tc1;
    let tc14 = tc4 ^ tc12;
    let s3 = tc3 ^ tc11;
    let tc16 = z6 ^ tc8;
    let tc17 = z14 ^ tc10;
    let tc18 = tc13 ^ tc14;
    let s7 = z12 ^ tc18;
    let tc20 = z15 ^ tc16;
    let tc21 = tc2 ^ z11;
    let s0 = tc3 ^ tc16;
    let s6 = tc10 ^ tc18;
    let s4 = tc14 ^ s3;
    let s1 = s3 ^ tc16;
    let tc26 = tc17 ^ tc20;
    let s2 = tc26 ^ z17;
    let s5 = tc21 ^ tc17;

    *s = [s7, s6, s5, s4, s3, s2, s1, s0];
}

/// Masks of destination columns, replicated in every 16-bit row lane.
const fn columns(mask16: u64) -> u64 {
    mask16 * 0x0001_0001_0001_0001
}

/// `new(r, c) = old(r + dr, c + dc)` for every row and column (indices mod 4).
///
/// A plain rotation when `dc == 0`. Otherwise the columns that wrap around
/// (the last `dc` of each row) must come from one row further down, i.e. from
/// the same rotation turned 16 bits further: one masked merge of the two.
#[inline(always)]
fn shift(x: u64, dr: u32, dc: u32) -> u64 {
    let r = x.rotate_right(16 * dr + 4 * dc);
    let wrapped = match dc {
        0 => return r,
        1 => columns(0xF000),
        2 => columns(0xFF00),
        _ => columns(0xFFF0),
    };
    r ^ ((r ^ r.rotate_left(16)) & wrapped)
}

/// MixColumns on a state that has skipped `K` ShiftRows: row `r + d` of column
/// `c + K*d` plays the part of row `r + d` of column `c`.
///
/// With `b = rows+1 of a`, `c = a ^ b`: `out = b ^ 2c ^ (rows+2 of c)`, which
/// expands to `2a_r ^ 3a_{r+1} ^ a_{r+2} ^ a_{r+3}`.
#[inline(always)]
fn mix_columns<const K: u32>(s: &mut State) {
    let a = *s;
    let b: State = core::array::from_fn(|j| shift(a[j], 1, K % 4));
    let c: State = core::array::from_fn(|j| a[j] ^ b[j]);
    // Multiplication by x (xtime) of c, bit-plane j, modulo x^8+x^4+x^3+x+1.
    let c2 = [c[7], c[0] ^ c[7], c[1], c[2] ^ c[7], c[3] ^ c[7], c[4], c[5], c[6]];
    for j in 0..8 {
        s[j] = b[j] ^ c2[j] ^ shift(c[j], 2, (2 * K) % 4);
    }
}

#[inline(always)]
fn add_round_key(s: &mut State, rk: &State) {
    for j in 0..8 {
        s[j] ^= rk[j];
    }
}

/// `SR^2` on the sliced state: rows 1 and 3 exchange their column pairs
/// (swap the two bytes of their 16-bit lanes).
#[inline(always)]
fn shift_rows_twice(s: &mut State) {
    let mask = 0x00FF_0000_00FF_0000;
    for w in s.iter_mut() {
        let t = (w.rotate_right(8) ^ *w) & mask;
        *w = *w ^ t ^ t.rotate_right(64 - 8);
    }
}

/// Expanded key: one sliced round key per round (plus the initial one).
#[derive(Clone)]
pub(crate) struct RoundKeys {
    keys: [State; 15],
    rounds: usize,
}

impl RoundKeys {
    /// Expand an AES key.
    pub(crate) fn new(key: KeyBytes<'_>) -> Self {
        let (rounds, mut bytes) = expand_key(key);
        let zero = [0; 8];
        let mut keys = [zero; 15];
        for (i, rk) in bytes.iter().take(rounds + 1).enumerate() {
            let mut k = shift_rows_inverse(rk, i % 4);
            if i > 0 {
                // The S-box circuit omits the constant 0x63; add it here.
                for byte in k.iter_mut() {
                    *byte ^= 0x63;
                }
            }
            let mut block = [k; BLOCKS];
            keys[i] = pack4(&block);
            k.zeroize();
            block.zeroize();
        }
        bytes.zeroize();
        RoundKeys { keys, rounds }
    }

    /// Encrypt one sliced state (`BLOCKS` blocks) in place.
    ///
    /// The middle rounds run as a loop over groups of four (one of each
    /// MixColumns variant) that stops after the last middle round, so the
    /// code holds exactly four round bodies whatever the key size: small
    /// enough to stay in the instruction cache beside GHASH.
    #[inline(always)]
    fn encrypt_sliced(&self, s: &mut State) {
        let last = self.rounds;
        add_round_key(s, &self.keys[0]);
        let mut keys = self.keys[1..last].iter();
        loop {
            let Some(k) = keys.next() else { break };
            round::<1>(s, k);
            let Some(k) = keys.next() else { break };
            round::<2>(s, k);
            let Some(k) = keys.next() else { break };
            round::<3>(s, k);
            let Some(k) = keys.next() else { break };
            round::<0>(s, k);
        }
        sub_bytes(s);
        add_round_key(s, &self.keys[last]);
        if last % 4 == 2 {
            shift_rows_twice(s);
        }
    }

    /// Encrypt four blocks in place: one sliced pass.
    ///
    /// Never inlined, in every build profile: the pass is the unit the
    /// callers loop over, and keeping it one out-of-line function keeps the
    /// hot loop small and its register allocation the same whatever
    /// codegen-units or LTO the user builds with.
    #[inline(never)]
    pub(crate) fn encrypt4(&self, blocks: &mut [[u8; 16]; BLOCKS]) {
        let mut s = pack4(blocks);
        self.encrypt_sliced(&mut s);
        unpack4(&s, blocks);
    }

    /// Encrypt blocks in place, four per sliced pass.
    pub(crate) fn encrypt_blocks(&self, blocks: &mut [[u8; 16]]) {
        for chunk in blocks.chunks_mut(BLOCKS) {
            let mut tmp = [[0u8; 16]; BLOCKS];
            tmp[..chunk.len()].copy_from_slice(chunk);
            self.encrypt4(&mut tmp);
            chunk.copy_from_slice(&tmp[..chunk.len()]);
        }
    }
}

impl Drop for RoundKeys {
    fn drop(&mut self) {
        for rk in self.keys.iter_mut() {
            rk.zeroize();
        }
    }
}

/// One middle round: SubBytes, MixColumns variant `K`, AddRoundKey.
#[inline(always)]
fn round<const K: u32>(s: &mut State, rk: &State) {
    sub_bytes(s);
    mix_columns::<K>(s);
    add_round_key(s, rk);
}

/// `SR^-k` on a block in byte form: `out(r, c) = in(r, c - k*r)`.
fn shift_rows_inverse(block: &[u8; 16], k: usize) -> [u8; 16] {
    core::array::from_fn(|i| {
        let (r, c) = (i % 4, i / 4);
        block[r + 4 * ((c + 4 * 4 - k * r) % 4)]
    })
}

/// The AES S-box applied to each byte of `bytes` (at most 64), in constant
/// time, by running the sliced circuit on a word whose bit `q` is byte `q`.
fn sub_bytes_ct(bytes: &mut [u8]) {
    let mut planes = [0u64; 8];
    for (q, &byte) in bytes.iter().enumerate().take(64) {
        for (j, plane) in planes.iter_mut().enumerate() {
            *plane |= u64::from((byte >> j) & 1) << q;
        }
    }
    sub_bytes(&mut planes);
    for (q, byte) in bytes.iter_mut().enumerate().take(64) {
        let mut v = 0u8;
        for (j, plane) in planes.iter().enumerate() {
            v |= (((plane >> q) & 1) as u8) << j;
        }
        *byte = v ^ 0x63;
    }
}

/// FIPS-197 key expansion in byte form. Returns the round count and the
/// round keys (`rounds + 1` of them are meaningful).
fn expand_key(key: KeyBytes<'_>) -> (usize, [[u8; 16]; 15]) {
    let key = key.as_slice();
    let nk = key.len() / 4;
    let rounds = nk + 6;
    let total = 4 * (rounds + 1);
    let mut w = [[0u8; 4]; 60];
    for (i, word) in w.iter_mut().take(nk).enumerate() {
        word.copy_from_slice(&key[4 * i..4 * i + 4]);
    }
    let mut rcon = 1u8;
    for i in nk..total {
        let mut t = w[i - 1];
        if i % nk == 0 {
            t.rotate_left(1);
            sub_bytes_ct(&mut t);
            t[0] ^= rcon;
            rcon = (rcon << 1) ^ (0x1b * (rcon >> 7));
        } else if nk > 6 && i % nk == 4 {
            sub_bytes_ct(&mut t);
        }
        for (k, byte) in t.iter_mut().enumerate() {
            *byte ^= w[i - nk][k];
        }
        w[i] = t;
    }
    let mut out = [[0u8; 16]; 15];
    for (r, rk) in out.iter_mut().take(rounds + 1).enumerate() {
        for c in 0..4 {
            rk[4 * c..4 * c + 4].copy_from_slice(&w[4 * r + c]);
        }
    }
    // The expanded words are key material too.
    w.zeroize();
    (rounds, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes::cipher::{BlockCipherEncrypt, KeyInit};

    /// The S-box from its definition: multiplicative inverse in GF(2^8), then
    /// the affine map. Independent of the circuit under test.
    fn sbox_reference(x: u8) -> u8 {
        let mul = |mut a: u8, mut b: u8| {
            let mut p = 0u8;
            while b != 0 {
                if b & 1 != 0 {
                    p ^= a;
                }
                a = (a << 1) ^ if a & 0x80 != 0 { 0x1b } else { 0 };
                b >>= 1;
            }
            p
        };
        let inv = (1..=255u8).find(|&y| mul(x, y) == 1).unwrap_or(0);
        inv ^ inv.rotate_left(1) ^ inv.rotate_left(2) ^ inv.rotate_left(3) ^ inv.rotate_left(4) ^ 0x63
    }

    #[test]
    fn sbox_circuit_matches_definition_for_all_256_inputs() {
        let mut all: Vec<u8> = (0..=255).collect();
        for chunk in all.chunks_mut(64) {
            sub_bytes_ct(chunk);
        }
        for x in 0..=255u8 {
            assert_eq!(all[x as usize], sbox_reference(x), "S({x:#04x})");
        }
        assert_eq!(all[0x00], 0x63);
        assert_eq!(all[0x53], 0xed);
    }

    #[test]
    fn pack_then_unpack_is_identity() {
        let blocks: [[u8; 16]; BLOCKS] = core::array::from_fn(|b| core::array::from_fn(|i| (b * 16 + i) as u8 ^ 0xa5));
        let mut out = [[0u8; 16]; 4];
        unpack4(&pack4(&blocks), &mut out);
        assert_eq!(blocks, out);
    }

    #[test]
    fn pack_places_bits_where_the_layout_says() {
        let mut blocks = [[0u8; 16]; 4];
        // Block 2, row 1, column 3 (byte 13), bit 5.
        blocks[2][13] = 1 << 5;
        let s = pack4(&blocks);
        for (j, w) in s.iter().enumerate() {
            let expect = if j == 5 { 1u64 << (16 + 4 * 3 + 2) } else { 0 };
            assert_eq!(*w, expect, "word {j}");
        }
    }

    fn fips197_check() {
        // FIPS-197 appendix C.1, C.2, C.3.
        let pt = hex_literal::hex!("00112233445566778899aabbccddeeff");
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
        for (key, ct) in cases {
            let rk = RoundKeys::new(KeyBytes::new(key).expect("valid key length"));
            let mut blocks = [pt; 5];
            rk.encrypt_blocks(&mut blocks);
            for b in &blocks {
                assert_eq!(*b, ct, "key length {}", key.len());
            }
        }
    }

    #[test]
    fn fips197_vectors() {
        fips197_check();
    }

    #[test]
    fn matches_rustcrypto_aes_on_distinct_blocks() {
        for key_len in [16usize, 24, 32] {
            let key: Vec<u8> = (0..key_len).map(|i| (i * 37 + key_len) as u8).collect();
            let rk = RoundKeys::new(KeyBytes::new(&key).expect("valid key length"));
            let mut blocks: Vec<[u8; 16]> = (0..19).map(|n| core::array::from_fn(|i| (n * 31 + i * 7) as u8)).collect();
            let mut expect = blocks.clone();
            match key_len {
                16 => {
                    let c = aes::Aes128::new_from_slice(&key).unwrap();
                    expect.iter_mut().for_each(|b| c.encrypt_block(b.into()));
                }
                24 => {
                    let c = aes::Aes192::new_from_slice(&key).unwrap();
                    expect.iter_mut().for_each(|b| c.encrypt_block(b.into()));
                }
                _ => {
                    let c = aes::Aes256::new_from_slice(&key).unwrap();
                    expect.iter_mut().for_each(|b| c.encrypt_block(b.into()));
                }
            }
            rk.encrypt_blocks(&mut blocks);
            assert_eq!(blocks, expect, "AES-{}", key_len * 8);
        }
    }
}
