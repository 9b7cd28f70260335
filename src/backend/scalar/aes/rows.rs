//! The sixteen-block row-sliced layout: the bulk of counter mode.
//!
//! # Representation
//!
//! Sixteen AES blocks are held as 32 words `x[r][j]`: row `r` of the AES
//! state, bit `j` of every byte. Inside a word, byte `(row r, column c)` of
//! block `b` sits at bit
//!
//! ```text
//!     position = 16*c + b          (c in 0..4, b in 0..16)
//! ```
//!
//! so each word is one row of all sixteen blocks, a 16-bit lane per column.
//! Because the rows are separate words, every step of a round is cheap:
//!
//! - SubBytes is the shared S-box circuit ([`super::sub_bytes`]) on the
//!   eight words of each row: four evaluations per round, the same cost per
//!   byte as in any 64-bit bitsliced layout.
//! - ShiftRows moves row `r` left by `r` columns: one rotation of each of its
//!   eight words by `16*r` bits. It is applied to the S-box outputs while they
//!   are still in registers.
//! - MixColumns combines the four rows of a column, which sit at the same bit
//!   positions of different words, so it is XORs of whole words and nothing
//!   else: with `T = a0 ^ a1 ^ a2 ^ a3`, row `r` becomes
//!   `a_r ^ T ^ 2*(a_r ^ a_(r+1))`, where doubling in GF(2^8) moves bit-plane
//!   `j` to `j + 1` and adds plane 7 into planes 0, 1, 3 and 4 (the taps of
//!   x^8 + x^4 + x^3 + x + 1). The round key is added in the same pass.
//!
//! Per 256 bytes and round that is 452 S-box gates, 24 rotations and about
//! 150 XORs; the four-block fixsliced layout ([`super::fixslice`]) spends
//! about 340 rotations, masks and XORs on MixColumns for the same bytes,
//! because three of its four MixColumns variants move columns across lanes.
//!
//! # Counter mode
//!
//! [`Ctr`] encrypts the counter blocks of one message a window at a time:
//! window `m` holds the sixteen counters `16m .. 16m + 15` (the low 32 bits of
//! the block, GCM's `inc32` counter) in slots `0..16`, so the first and last
//! windows of a message may have slots it does not use. Aligning windows this
//! way makes the counter bytes cheap to slice and lets the first round be
//! mostly precomputed:
//!
//! - Bytes 0..12 (the IV part) are the same in every block of the message:
//!   they are sliced once, with the first round key added.
//! - Byte 15 (row 3, column 3) is `16*(m mod 16) + slot`: its low four
//!   bit-planes are fixed patterns of the slot number and its high four are
//!   all ones or all zeros in column 3, per window.
//! - Bytes 12..14 (rows 0..2, column 3) change every 256 counters. Within
//!   those 256 counters (an "epoch": sixteen windows) rows 0..2 of the first
//!   round's input are constant, so their S-boxes, ShiftRows and their share
//!   of MixColumns are computed once per epoch; a window computes the first
//!   round as one S-box evaluation (row 3) and a few XORs.
//!
//! Constant time: the layout changes nothing in the argument of the parent
//! module; the counter values and the window and epoch numbers are public
//! (they come from the IV and the message length), and the only branches
//! taken on them are the loop bounds and the epoch check.

use super::{gpr, le_words, sub_bytes, swapmove};

/// Blocks carried by one sliced state.
pub(crate) const BLOCKS: usize = 16;

/// Eight bit-planes of one row of sixteen blocks.
type Row = [u64; 8];

/// A sliced state: four rows.
pub(crate) type State = [Row; 4];

/// Keystream of a window: per block, its two little-endian 64-bit words.
pub(crate) type Keystream = [[u64; 2]; BLOCKS];

/// Column 3 of every block: where the counter bytes 12..15 sit.
const COLUMN3: u64 = 0xFFFF << 48;

/// The slot number's bits in bit-planes 0..3 of byte 15 (row 3), column 3:
/// plane `j` has slot `b`'s bit `j` at position `48 + b`.
const SLOT_PLANES: [u64; 4] = [0xAAAA << 48, 0xCCCC << 48, 0xF0F0 << 48, 0xFF00 << 48];

/// All ones in column 3 if bit `bit` of `value` is set, else zero; no branch.
#[inline(always)]
fn column3_if(value: u32, bit: u32) -> u64 {
    0u64.wrapping_sub(u64::from((value >> bit) & 1)) & COLUMN3
}

/// The bit transpose between blocks and slices.
///
/// Before packing, word `16h + b` of the flattened state holds columns `h`
/// and `h + 2` of block `b` (bytes `4h..4h+4` in its low half, `8+4h..12+4h`
/// in its high half), so its bit `(c1 r1 r0 j2 j1 j0)` is bit `j` of byte
/// `(r, 2*c1 + h)`. Each of five swapmove layers exchanges the bit of value
/// `d` of the word index with the bit of value `d` of the position, for
/// `d` = 1, 2, 4, 8, 16: afterwards the word index is `(r1 r0 j2 j1 j0)`,
/// i.e. word `8r + j` is `x[r][j]`, and the position is `(c1 c0 b3 b2 b1
/// b0) = 16c + b`, the layout above. The layers commute and each is an
/// involution, so the same network packs and unpacks.
///
/// Layers 1, 2 and 4 pair words within runs of eight, layers 8 and 16 within
/// the four words `i, i+8, i+16, i+24`: each group is done in registers.
#[inline(always)]
fn transpose_runs(x: &mut State) {
    for run in x.iter_mut() {
        let mut v = *run;
        let [w0, w1, w2, w3, w4, w5, w6, w7] = &mut v;
        for (a, b) in [(&mut *w0, &mut *w1), (w2, w3), (w4, w5), (w6, w7)] {
            swapmove(a, b, 0x5555_5555_5555_5555, 1);
        }
        let [w0, w1, w2, w3, w4, w5, w6, w7] = &mut v;
        for (a, b) in [(&mut *w0, &mut *w2), (w1, w3), (w4, w6), (w5, w7)] {
            swapmove(a, b, 0x3333_3333_3333_3333, 2);
        }
        let [w0, w1, w2, w3, w4, w5, w6, w7] = &mut v;
        for (a, b) in [(&mut *w0, &mut *w4), (w1, w5), (w2, w6), (w3, w7)] {
            swapmove(a, b, 0x0F0F_0F0F_0F0F_0F0F, 4);
        }
        *run = v.map(gpr);
    }
}

/// Layers 8 and 16 on words `j, j+8, j+16, j+24` (rows 0..3, plane `j`
/// once packed; blocks `j` and `j + 8` before).
#[inline(always)]
fn transpose_quad(q: &mut [u64; 4]) {
    let [a, b, c, d] = q;
    swapmove(a, b, 0x00FF_00FF_00FF_00FF, 8);
    swapmove(c, d, 0x00FF_00FF_00FF_00FF, 8);
    swapmove(a, c, 0x0000_FFFF_0000_FFFF, 16);
    swapmove(b, d, 0x0000_FFFF_0000_FFFF, 16);
}

/// Slice sixteen blocks, each given as its two little-endian words.
#[inline(always)]
fn pack(words: &[[u64; 2]; BLOCKS]) -> State {
    let mut x: State = [[0; 8]; 4];
    for j in 0..8 {
        let ([lo0, hi0], [lo1, hi1]) = (words[j], words[j + 8]);
        let mut q = [
            (lo0 & 0xFFFF_FFFF) | (hi0 << 32),
            (lo1 & 0xFFFF_FFFF) | (hi1 << 32),
            (lo0 >> 32) | (hi0 & 0xFFFF_FFFF_0000_0000),
            (lo1 >> 32) | (hi1 & 0xFFFF_FFFF_0000_0000),
        ];
        transpose_quad(&mut q);
        for (r, v) in q.into_iter().enumerate() {
            x[r][j] = gpr(v);
        }
    }
    transpose_runs(&mut x);
    x
}

/// Inverse of [`pack`] (it consumes the state: the caller is done with it).
#[inline(always)]
fn unpack(mut x: State) -> Keystream {
    transpose_runs(&mut x);
    let mut out = [[0u64; 2]; BLOCKS];
    for j in 0..8 {
        let mut q = [x[0][j], x[1][j], x[2][j], x[3][j]];
        transpose_quad(&mut q);
        let [a, b, c, d] = q;
        out[j] = [gpr((a & 0xFFFF_FFFF) | (c << 32)), gpr((a >> 32) | (c & 0xFFFF_FFFF_0000_0000))];
        out[j + 8] = [gpr((b & 0xFFFF_FFFF) | (d << 32)), gpr((b >> 32) | (d & 0xFFFF_FFFF_0000_0000))];
    }
    out
}

/// SubBytes and ShiftRows on row `r`.
#[inline(always)]
fn sub_shift(row: &mut Row, r: usize) {
    sub_bytes(row);
    for w in row.iter_mut() {
        *w = gpr(w.rotate_right(16 * r as u32));
    }
}

/// SubBytes and ShiftRows on the whole state: a loop over the rows, with
/// one copy of the S-box circuit (see [`mix_add`] on loops).
#[inline(always)]
fn sub_shift_all(x: &mut State) {
    for (r, row) in x.iter_mut().enumerate() {
        sub_shift(row, r);
    }
}

/// Multiplication by x in GF(2^8), plane by plane.
#[inline(always)]
fn double(c: &Row) -> Row {
    [c[7], c[0] ^ c[7], c[1], c[2] ^ c[7], c[3] ^ c[7], c[4], c[5], c[6]]
}

/// MixColumns then AddRoundKey (see the module header), plane by plane:
/// plane `j` of `2*c` is plane `j - 1` of `c` (plane 7 for `j = 0`), plus
/// plane 7 for `j` in {1, 3, 4}, so each plane needs only its own `c`, the
/// previous plane's and plane 7's.
///
/// A loop, not eight copies: the state stays in memory between the rounds'
/// steps and each step's registers are allocated on their own, which
/// compiles to fewer instructions than the unrolled form, in every profile.
/// (The test on `j` is on the loop counter, not on data.)
#[inline(always)]
fn mix_add(x: &mut State, k: &State) {
    let c7: [u64; 4] = core::array::from_fn(|r| x[r][7] ^ x[(r + 1) % 4][7]);
    let mut prev = c7;
    for j in 0..8 {
        let a = [x[0][j], x[1][j], x[2][j], x[3][j]];
        let c = [a[0] ^ a[1], a[1] ^ a[2], a[2] ^ a[3], a[3] ^ a[0]];
        let t = c[0] ^ c[2];
        for r in 0..4 {
            let mut v = a[r] ^ t ^ prev[r] ^ k[r][j];
            if matches!(j, 1 | 3 | 4) {
                v ^= c7[r];
            }
            x[r][j] = gpr(v);
        }
        prev = c;
    }
}

#[inline(always)]
fn add(x: &mut State, k: &State) {
    for (xr, kr) in x.iter_mut().zip(k) {
        for (v, kv) in xr.iter_mut().zip(kr) {
            *v = gpr(*v ^ kv);
        }
    }
}

/// The round keys in this layout: each round key sliced into all sixteen
/// block slots.
#[derive(Clone)]
pub(crate) struct Keys {
    keys: [State; 15],
    rounds: usize,
}

impl Keys {
    /// Slice `rounds + 1` round keys given in byte form (with the S-box's
    /// constant already folded into keys 1 and up).
    pub(crate) fn new(round_keys: &[[u8; 16]; 15], rounds: usize) -> Keys {
        let mut keys = [[[0; 8]; 4]; 15];
        for (slot, rk) in keys.iter_mut().zip(round_keys.iter().take(rounds + 1)) {
            let mut words = [le_words(rk); BLOCKS];
            *slot = pack(&words);
            zeroize::Zeroize::zeroize(&mut words);
        }
        Keys { keys, rounds }
    }

    /// Rounds `first..=rounds` on a state that has been through round
    /// `first - 1`. One loop whose body is a whole round, so that the code
    /// holds one copy of the round whatever the key size.
    #[inline(always)]
    fn rounds_from(&self, x: &mut State, first: usize) {
        let last = self.rounds;
        let mut i = first;
        loop {
            sub_shift_all(x);
            if i == last {
                add(x, &self.keys[last]);
                return;
            }
            mix_add(x, &self.keys[i]);
            i += 1;
        }
    }

    /// Encrypt sixteen blocks given as little-endian word pairs. Never
    /// inlined (see the scalar module's notes on code shape).
    #[inline(never)]
    pub(crate) fn encrypt16(&self, words: &[[u64; 2]; BLOCKS]) -> Keystream {
        let mut x = pack(words);
        add(&mut x, &self.keys[0]);
        self.rounds_from(&mut x, 1);
        unpack(x)
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.keys);
    }
}

/// Counter-mode keystream for one message (see the module header).
pub(crate) struct Ctr<'k> {
    keys: &'k Keys,
    /// The IV part of every counter block, sliced, with round key 0 added;
    /// column 3 holds round key 0 alone.
    base: State,
    /// Row 3 of round 1's input without the window's bits (planes 4..7 of
    /// column 3): the slot patterns are in planes 0..3.
    row3: Row,
    /// The epoch (counter bits 8..32) that `first_round` is for.
    epoch: Option<u32>,
    /// Round 1's output for this epoch without row 3's share, round key 1
    /// added: row 3 then enters as `a3` in rows 0 and 1, `3*a3` in row 2 and
    /// `2*a3` in row 3 (with `a0..a3` the rows after SubBytes and ShiftRows:
    /// row 0 of MixColumns is `a1 ^ a2 ^ a3 ^ 2*(a0 ^ a1)`, and so on).
    first_round: State,
}

impl<'k> Ctr<'k> {
    /// `prefix`: bytes 0..12 of the counter blocks.
    pub(crate) fn new(keys: &'k Keys, prefix: [u8; 12]) -> Ctr<'k> {
        let mut block = [0u8; 16];
        block[..12].copy_from_slice(&prefix);
        let mut base = pack(&[le_words(&block); BLOCKS]);
        add(&mut base, &keys.keys[0]);
        let mut row3 = base[3];
        for (plane, pattern) in row3.iter_mut().zip(SLOT_PLANES) {
            *plane ^= pattern;
        }
        Ctr { keys, base, row3, epoch: None, first_round: [[0; 8]; 4] }
    }

    /// Rows 0..2 of round 1 for counters `256*epoch ..`: their S-boxes,
    /// ShiftRows and share of MixColumns.
    #[inline(never)]
    fn start_epoch(&mut self, epoch: u32) {
        // Byte 12 + r is bits 16 - 8r .. 24 - 8r of the epoch.
        let mut a: [Row; 3] = core::array::from_fn(|r| {
            core::array::from_fn(|j| gpr(self.base[r][j] ^ column3_if(epoch, (16 - 8 * r + j) as u32)))
        });
        for (r, row) in a.iter_mut().enumerate() {
            sub_shift(row, r);
        }
        let k = &self.keys.keys[1];
        let d01 = double(&core::array::from_fn(|j| a[0][j] ^ a[1][j]));
        let d12 = double(&core::array::from_fn(|j| a[1][j] ^ a[2][j]));
        let d2 = double(&a[2]);
        let d0 = double(&a[0]);
        for j in 0..8 {
            self.first_round[0][j] = gpr(a[1][j] ^ a[2][j] ^ d01[j] ^ k[0][j]);
            self.first_round[1][j] = gpr(a[0][j] ^ a[2][j] ^ d12[j] ^ k[1][j]);
            self.first_round[2][j] = gpr(a[0][j] ^ a[1][j] ^ d2[j] ^ k[2][j]);
            self.first_round[3][j] = gpr(a[0][j] ^ a[1][j] ^ a[2][j] ^ d0[j] ^ k[3][j]);
        }
        zeroize::Zeroize::zeroize(&mut a);
        self.epoch = Some(epoch);
    }

    /// The keystream of window `m` (counters `16m .. 16m + 15`, `m < 2^28`).
    #[inline(never)]
    pub(crate) fn window(&mut self, m: u32) -> Keystream {
        let epoch = m >> 4;
        if self.epoch != Some(epoch) {
            self.start_epoch(epoch);
        }
        // Round 1: row 3 (byte 15 = 16 * (m mod 16) + slot) through the
        // S-box, then MixColumns from the epoch's rows 0..2.
        let mut a3 = self.row3;
        for (j, plane) in a3.iter_mut().enumerate().skip(4) {
            *plane = gpr(*plane ^ column3_if(m, j as u32 - 4));
        }
        sub_shift(&mut a3, 3);
        let d3 = double(&a3);
        let e = &self.first_round;
        let mut x: State = [[0; 8]; 4];
        for j in 0..8 {
            x[0][j] = gpr(e[0][j] ^ a3[j]);
            x[1][j] = gpr(e[1][j] ^ a3[j]);
            x[2][j] = gpr(e[2][j] ^ a3[j] ^ d3[j]);
            x[3][j] = gpr(e[3][j] ^ d3[j]);
        }
        self.keys.rounds_from(&mut x, 2);
        unpack(x)
    }
}

impl Drop for Ctr<'_> {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.base);
        zeroize::Zeroize::zeroize(&mut self.row3);
        zeroize::Zeroize::zeroize(&mut self.first_round);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(blocks: &[[u8; 16]; BLOCKS]) -> [[u64; 2]; BLOCKS] {
        blocks.map(|b| le_words(&b))
    }

    #[test]
    fn pack_then_unpack_is_identity() {
        let blocks: [[u8; 16]; BLOCKS] =
            core::array::from_fn(|b| core::array::from_fn(|i| (b * 37 + i * 11) as u8 ^ 0x5a));
        let w = words(&blocks);
        assert_eq!(unpack(pack(&w)), w);
    }

    #[test]
    fn pack_places_every_bit_where_the_layout_says() {
        for b in 0..BLOCKS {
            for byte in 0..16 {
                for j in 0..8 {
                    let mut blocks = [[0u8; 16]; BLOCKS];
                    blocks[b][byte] = 1 << j;
                    let x = pack(&words(&blocks));
                    let (r, c) = (byte % 4, byte / 4);
                    for (rr, row) in x.iter().enumerate() {
                        for (jj, &w) in row.iter().enumerate() {
                            let expect = if (rr, jj) == (r, j) { 1u64 << (16 * c + b) } else { 0 };
                            assert_eq!(w, expect, "block {b} byte {byte} bit {j}: word ({rr}, {jj})");
                        }
                    }
                }
            }
        }
    }

    /// Window `m` against RustCrypto's AES of each counter block.
    fn check_window(ctr: &mut Ctr<'_>, key: &[u8], prefix: [u8; 12], m: u32) {
        let ks = ctr.window(m);
        let mut expect: Vec<[u8; 16]> = (0..BLOCKS as u32)
            .map(|slot| {
                let mut b = [0u8; 16];
                b[..12].copy_from_slice(&prefix);
                b[12..].copy_from_slice(&(16 * m + slot).to_be_bytes());
                b
            })
            .collect();
        crate::backend::scalar::aes::tests::reference_encrypt(key, &mut expect);
        for (slot, (got, want)) in ks.iter().zip(&expect).enumerate() {
            assert_eq!(*got, le_words(want), "key {} bytes, window {m:#x}, slot {slot}", key.len());
        }
    }

    #[test]
    fn counter_windows_match_rustcrypto_across_epochs_and_the_wrap() {
        for key_len in [16usize, 24, 32] {
            let key: Vec<u8> = (0..key_len).map(|i| (i * 13 + 7) as u8).collect();
            let rk = crate::backend::scalar::aes::RoundKeys::new(crate::backend::KeyBytes::new(&key).expect("key"));
            let prefix: [u8; 12] = core::array::from_fn(|i| (i * 29 + 3) as u8);
            let mut ctr = Ctr::new(&rk.rows, prefix);
            // In order across an epoch boundary, then back (the epoch cache
            // must follow), then the last windows before the 32-bit wrap.
            for m in [0, 1, 14, 15, 16, 17, 3, 0x0ab_cdef, 0x0ab_cdf0, 0x0FFF_FFFE, 0x0FFF_FFFF, 0] {
                check_window(&mut ctr, &key, prefix, m);
            }
        }
    }

    #[test]
    fn slot_patterns_are_the_slot_numbers() {
        for slot in 0..16u64 {
            for (j, pattern) in SLOT_PLANES.iter().enumerate() {
                assert_eq!((pattern >> (48 + slot)) & 1, (slot >> j) & 1, "slot {slot} plane {j}");
            }
        }
    }
}
