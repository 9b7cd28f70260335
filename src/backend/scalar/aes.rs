//! AES encryption in portable Rust, constant time: bitsliced, in two
//! layouts that share one S-box circuit and one key schedule.
//!
//! A bitsliced AES holds bit `j` of many bytes in one word, so that SubBytes
//! becomes a Boolean circuit evaluated on whole words and every other step
//! becomes word rotations and XORs. Both layouts put 64 bytes' worth of one
//! bit in each 64-bit word; they differ in how the bytes of the AES state are
//! arranged, and so in how many blocks a pass carries:
//!
//! - [`rows`]: sixteen blocks, one row of all of them per word. Its rounds
//!   are the cheapest per byte (ShiftRows is a rotation, MixColumns pure
//!   XORs), and counter mode precomputes most of the first round. It carries
//!   the bulk of every message.
//! - [`fixslice`]: four blocks, all four rows in one word, ShiftRows folded
//!   into the round keys ("fixslicing"). A pass costs a quarter of a
//!   sixteen-block pass, so it is used where only a few blocks are needed:
//!   short messages, the tag mask when it falls outside the message's
//!   windows, key setup.
//!
//! SubBytes is the 113-gate circuit of Boyar, Matthews and Peralta (32 AND,
//! 81 XOR; "A very compact S-box for AES", 2011/2013), with its four NOT
//! gates moved into the round keys: they add the constant 0x63 to every byte,
//! which passes through ShiftRows and MixColumns unchanged, so round keys 1
//! and up carry it instead.
//!
//! # Why it is constant time
//!
//! Every operation is a fixed sequence of AND, XOR, OR and rotations by
//! constant amounts on whole words. No secret value selects a branch, a loop
//! bound, a memory address or a shift amount: the key schedule runs the same
//! S-box circuit instead of a table, the round count depends only on the key
//! *length*, and which layout runs depends only on message lengths. Packing
//! bytes into a sliced form (and back) is a fixed network of masked shifts
//! ("swapmoves"). The only data-dependent thing is the data itself, flowing
//! through instructions whose timing does not depend on their operands on any
//! CPU Rust targets.
//!
//! # Why general-purpose registers
//!
//! The state lives in 64-bit integer registers (and the stack), not vector
//! registers, by choice. This backend is the reference that SIMD output is
//! checked against, and the failure it must catch (2015, Xen paravirtual
//! guests) was corruption of vector register state. A reference computed in
//! the same register file could be corrupted the same way and then "correct"
//! a healthy backend. The price is speed: x86-64 integer instructions are
//! two-operand, so the S-box circuit costs about one register copy per two
//! gates.

pub(crate) mod fixslice;
pub(crate) mod rows;

use crate::backend::KeyBytes;
use zeroize::Zeroize;

/// `x`, unchanged, in a general-purpose register: an optimization barrier
/// that emits no instruction.
///
/// LLVM's SLP vectorizer turns runs of identical word operations on
/// neighbouring memory (the rows of a sliced state, the words of a block)
/// into SSE instructions on vector registers. This backend must compute in
/// integer registers (see above), so each word a step produces passes
/// through here before it is stored: the vectorizer cannot see through the
/// empty `asm!`, and the value is in a general-purpose register by
/// construction. On targets without it this is the identity.
#[inline(always)]
pub(crate) fn gpr(x: u64) -> u64 {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64", target_arch = "loongarch64"))]
    {
        let mut x = x;
        // SAFETY: the template is empty: no instruction is emitted and no
        // memory, stack or flag is touched; the only effect is that `x` must
        // be in a general-purpose register here and that the compiler treats
        // its value as unknown.
        unsafe { core::arch::asm!("/* {0} */", inout(reg) x, options(pure, nomem, nostack, preserves_flags)) };
        x
    }
    #[cfg(not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64",
        target_arch = "loongarch64"
    )))]
    x
}

/// A block as its two little-endian words, the form both layouts take and
/// give blocks in (the counter-mode driver XORs data in this form).
#[inline(always)]
pub(crate) fn le_words(block: &[u8; 16]) -> [u64; 2] {
    let (lo, hi) = block.split_at(8);
    [lo, hi].map(|h| {
        let mut w = [0u8; 8];
        w.copy_from_slice(h);
        u64::from_le_bytes(w)
    })
}

/// Inverse of [`le_words`].
#[inline(always)]
pub(crate) fn le_bytes(words: &[u64; 2]) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&words[0].to_le_bytes());
    b[8..].copy_from_slice(&words[1].to_le_bytes());
    b
}

/// Exchange the bits of `a` selected by `mask << shift` with the bits of `b`
/// selected by `mask` (a "swapmove").
#[inline(always)]
fn swapmove(a: &mut u64, b: &mut u64, mask: u64, shift: u32) {
    let t = ((*a >> shift) ^ *b) & mask;
    *b ^= t;
    *a ^= t << shift;
}

/// The AES S-box without its affine constant (the result is `S(x) ^ 0x63`),
/// on eight bit-planes: `s[j]` holds bit `j` of every byte (the paper's `u0`
/// is the most significant bit, `s[7]`).
///
/// Gate list: Boyar, Matthews, Peralta, 113 gates. Names follow the paper
/// (`u` inputs, `y` top linear layer, `t` middle, `z` products, `tc` bottom).
#[inline(always)]
pub(crate) fn sub_bytes(s: &mut [u64; 8]) {
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

/// Expanded key in both layouts.
#[derive(Clone)]
pub(crate) struct RoundKeys {
    pub(crate) fixslice: fixslice::Keys,
    pub(crate) rows: rows::Keys,
}

impl RoundKeys {
    /// Expand an AES key.
    pub(crate) fn new(key: KeyBytes<'_>) -> Self {
        let (rounds, mut bytes) = expand_key(key);
        for rk in bytes.iter_mut().take(rounds + 1).skip(1) {
            // The S-box circuit omits the constant 0x63; add it here.
            for byte in rk.iter_mut() {
                *byte ^= 0x63;
            }
        }
        let keys = RoundKeys { fixslice: fixslice::Keys::new(&bytes, rounds), rows: rows::Keys::new(&bytes, rounds) };
        bytes.zeroize();
        keys
    }

    /// Encrypt blocks in place: sixteen per pass while more than eight
    /// remain (a sixteen-block pass costs about as much as three four-block
    /// ones), then four per pass. For key setup, the tag mask and tests; the
    /// counter-mode driver calls the layouts itself.
    pub(crate) fn encrypt_blocks(&self, blocks: &mut [[u8; 16]]) {
        let mut rest = blocks;
        while !rest.is_empty() {
            let pass = if rest.len() > 2 * fixslice::BLOCKS { rows::BLOCKS } else { fixslice::BLOCKS };
            let n = pass.min(rest.len());
            let (chunk, tail) = core::mem::take(&mut rest).split_at_mut(n);
            let mut words = [[0u64; 2]; rows::BLOCKS];
            for (w, b) in words.iter_mut().zip(chunk.iter()) {
                *w = le_words(b);
            }
            let out = if pass == rows::BLOCKS {
                self.rows.encrypt16(&words)
            } else {
                let mut out = [[0u64; 2]; rows::BLOCKS];
                let four = words.first_chunk::<{ fixslice::BLOCKS }>().copied().unwrap_or_default();
                out[..fixslice::BLOCKS].copy_from_slice(&self.fixslice.encrypt4(&four));
                out
            };
            for (b, w) in chunk.iter_mut().zip(out.iter()) {
                *b = le_bytes(w);
            }
            words.zeroize();
            rest = tail;
        }
    }
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
            let mut blocks = [pt; 21];
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

    /// RustCrypto's AES (not soft-only here, which does not matter: any
    /// correct AES is a reference) for a key of any length.
    pub(super) fn reference_encrypt(key: &[u8], blocks: &mut [[u8; 16]]) {
        match key.len() {
            16 => {
                let c = aes::Aes128::new_from_slice(key).expect("key");
                blocks.iter_mut().for_each(|b| c.encrypt_block(b.into()));
            }
            24 => {
                let c = aes::Aes192::new_from_slice(key).expect("key");
                blocks.iter_mut().for_each(|b| c.encrypt_block(b.into()));
            }
            _ => {
                let c = aes::Aes256::new_from_slice(key).expect("key");
                blocks.iter_mut().for_each(|b| c.encrypt_block(b.into()));
            }
        }
    }

    #[test]
    fn both_layouts_match_rustcrypto_aes_on_distinct_blocks_for_every_count_to_40() {
        for key_len in [16usize, 24, 32] {
            let key: Vec<u8> = (0..key_len).map(|i| (i * 37 + key_len) as u8).collect();
            let rk = RoundKeys::new(KeyBytes::new(&key).expect("valid key length"));
            for count in 0..=40 {
                let mut blocks: Vec<[u8; 16]> =
                    (0..count).map(|n| core::array::from_fn(|i| (n * 31 + i * 7 + count) as u8)).collect();
                let mut expect = blocks.clone();
                reference_encrypt(&key, &mut expect);
                rk.encrypt_blocks(&mut blocks);
                assert_eq!(blocks, expect, "AES-{}, {count} blocks", key_len * 8);
            }
        }
    }
}
