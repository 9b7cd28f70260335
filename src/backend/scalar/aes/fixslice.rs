//! The four-block fixsliced layout: short messages (a few blocks and the
//! tag mask), where a sixteen-block pass would mostly compute unused
//! slots.
//!
//! # Representation
//!
//! Four AES blocks are held as eight 64-bit words: word `j` holds bit `j` of
//! every byte of the four blocks. Inside a word, byte `(row r, column c)` of
//! block `b` (AES byte index `r + 4c`) sits at bit
//!
//! ```text
//!     position = 16*r + 4*c + b          (r, c, b in 0..4)
//! ```
//!
//! so each row is one 16-bit lane, each column a nibble of that lane and the
//! four blocks are the four bits of the nibble.
//!
//! - SubBytes is the shared S-box circuit ([`super::sub_bytes`]) on the
//!   eight words.
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
//! The three variants that move columns cost a masked merge per rotation,
//! which is why the sixteen-block layout ([`super::rows`]), whose rows are
//! separate words, does a round in fewer operations per byte.
//!
//! Constant time: as for the whole module (see [`super`]): whole-word logic,
//! rotations by constant amounts, no secret-dependent branch or address.

use super::{le_words, sub_bytes, swapmove};

/// Blocks carried by one sliced state.
pub(crate) const BLOCKS: usize = 4;

/// A sliced state: eight bit-planes of four blocks.
pub(crate) type State = [u64; 8];

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

/// Pack four blocks, each given as its two little-endian words, into the
/// sliced layout described in the module header.
///
/// For `c0` in {0, 1}, the bytes of columns `c0` and `c0 + 2` of each block
/// are gathered into one word (index `4*c0 + b`), whose byte index bits are
/// then `[c1 r1 r0]`; a byte interleave makes them `[r1 r0 c1]`; three
/// swapmove layers then exchange the bit-in-byte index (`j2 j1 j0`) with the
/// word index (`c0 b1 b0`).
#[inline(always)]
fn pack4(words: &[[u64; 2]; BLOCKS]) -> State {
    let mut w = [0u64; 8];
    for (b, &[lo, hi]) in words.iter().enumerate() {
        w[b] = byte_interleave((lo & 0xFFFF_FFFF) | (hi << 32));
        w[4 + b] = byte_interleave((lo >> 32) | (hi & 0xFFFF_FFFF_0000_0000));
    }
    transpose_bits(&mut w);
    w
}

/// Inverse of [`pack4`].
#[inline(always)]
fn unpack4(state: &State) -> [[u64; 2]; BLOCKS] {
    let mut w = *state;
    transpose_bits(&mut w);
    core::array::from_fn(|b| {
        let even = byte_deinterleave(w[b]);
        let odd = byte_deinterleave(w[4 + b]);
        [(even & 0xFFFF_FFFF) | (odd << 32), (even >> 32) | (odd & 0xFFFF_FFFF_0000_0000)]
    })
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

/// The round keys in this layout: round key `i` permuted by `SR^-(i mod 4)`
/// and sliced (the same key in all four block slots).
#[derive(Clone)]
pub(crate) struct Keys {
    keys: [State; 15],
    rounds: usize,
}

impl Keys {
    /// Slice `rounds + 1` round keys given in byte form (with the S-box's
    /// constant already folded into keys 1 and up).
    pub(crate) fn new(round_keys: &[[u8; 16]; 15], rounds: usize) -> Keys {
        let mut keys = [[0; 8]; 15];
        for (i, rk) in round_keys.iter().take(rounds + 1).enumerate() {
            let mut words = [le_words(&shift_rows_inverse(rk, i % 4)); BLOCKS];
            keys[i] = pack4(&words);
            zeroize::Zeroize::zeroize(&mut words);
        }
        Keys { keys, rounds }
    }

    /// Encrypt one sliced state (`BLOCKS` blocks) in place.
    ///
    /// The middle rounds run as a loop over groups of four (one of each
    /// MixColumns variant) that stops after the last middle round, so the
    /// code holds exactly four round bodies whatever the key size.
    #[inline(always)]
    fn encrypt_sliced(&self, s: &mut State) {
        let last = self.rounds;
        add_round_key(s, &self.keys[0]);
        let mut keys = self.keys[1..last].iter();
        while let Some(k) = keys.next() {
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

    /// Encrypt four blocks given as little-endian word pairs: one sliced
    /// pass. Never inlined (see the scalar module's notes on code shape).
    #[inline(never)]
    pub(crate) fn encrypt4(&self, words: &[[u64; 2]; BLOCKS]) -> [[u64; 2]; BLOCKS] {
        let mut s = pack4(words);
        self.encrypt_sliced(&mut s);
        unpack4(&s)
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.keys);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_then_unpack_is_identity() {
        let blocks: [[u8; 16]; BLOCKS] = core::array::from_fn(|b| core::array::from_fn(|i| (b * 16 + i) as u8 ^ 0xa5));
        let words = blocks.map(|b| le_words(&b));
        assert_eq!(unpack4(&pack4(&words)), words);
    }

    #[test]
    fn pack_places_bits_where_the_layout_says() {
        let mut blocks = [[0u8; 16]; 4];
        // Block 2, row 1, column 3 (byte 13), bit 5.
        blocks[2][13] = 1 << 5;
        let s = pack4(&blocks.map(|b| le_words(&b)));
        for (j, w) in s.iter().enumerate() {
            let expect = if j == 5 { 1u64 << (16 + 4 * 3 + 2) } else { 0 };
            assert_eq!(*w, expect, "word {j}");
        }
    }
}
