//! The one's complement sum of RFC 1071, as native-order 64-bit arithmetic:
//! the core of the Internet checksum (`net::checksum` builds checksums,
//! pseudo-headers and incremental updates on it), and [`PlaintextSum`], the
//! sink a backend feeds while it encrypts, so that ESP gets the sum of the
//! inner packet without a pass of its own.
//!
//! The one's complement sum does not care about byte order (RFC 1071
//! §2(B)): summing 16-bit words in the machine's own order and swapping the
//! folded result once gives the same answer as summing big-endian words. It
//! also does not care about word width: 2^16 is congruent to 1 modulo
//! 0xFFFF, so a 64-bit word is congruent to the sum of its four 16-bit words,
//! and a carry out of bit 63 is worth 1 (the "end-around carry").
//!
//! So [`sum_native`] treats each 64-byte block as one 512-bit number and adds the
//! blocks into an eight-limb accumulator with one add-with-carry chain per
//! block (on x86-64: `add` then seven `adc` with memory operands), counting
//! the carries out of the top limb: with the loop, about 11 instructions
//! per 64 bytes. The chains of successive blocks overlap (limb *i* of one block
//! only waits for limb *i* of the previous block and the carry from limb
//! *i - 1*), so it runs as fast as SSE2 code that widens 16-bit words into
//! 32-bit lanes while executing fewer instructions; LLVM derives it from
//! plain `overflowing_add`, without `unsafe` or target-specific flags. The
//! limbs, the carry count and the last few words are folded in with
//! end-around carries at the end, then the 64-bit total is folded to 16
//! bits with two add-and-rotate steps.
//!
//! A sum here is a `u64` holding the one's complement sum of a byte string
//! taken as native-order 16-bit words (the last one zero-padded), not yet
//! folded: 2^64 is congruent to 1 modulo 0xFFFF, so any 64-bit value stands
//! for its folded 16-bit sum. `net::checksum::to_network_order(fold(x))`
//! turns one into the big-endian checksum arithmetic's value.

/// Fold a 64-bit one's complement sum to 16 bits.
///
/// Adding a value to itself rotated by half its width leaves, in the top
/// half, the two halves' sum plus the carry out of the bottom half: the
/// end-around-carry fold in one addition. Zero stays zero and nothing else
/// becomes zero, as with repeated folding.
#[inline]
pub(crate) fn fold(acc: u64) -> u16 {
    let half = (acc.wrapping_add(acc.rotate_left(32)) >> 32) as u32;
    (half.wrapping_add(half.rotate_left(16)) >> 16) as u16
}

/// One's complement addition of 64-bit words: the carry out of bit 63 is
/// added back in (2^64 is congruent to 1 modulo 0xFFFF).
#[inline(always)]
pub(crate) fn add_folding(a: u64, b: u64) -> u64 {
    let (sum, carry) = a.overflowing_add(b);
    // `sum` is at most 2^64 - 2 when there was a carry, so this cannot wrap.
    sum + u64::from(carry)
}

/// Add with carry in and carry out (the limb step of a multi-word addition;
/// LLVM turns a chain of these into `add`, `adc`, `adc`, ...).
#[inline(always)]
fn add_with_carry(a: u64, b: u64, carry: bool) -> (u64, bool) {
    let (sum, c1) = a.overflowing_add(b);
    let (sum, c2) = sum.overflowing_add(u64::from(carry));
    (sum, c1 | c2)
}

/// The one's complement sum of `data` as native-order 16-bit words (the
/// last one zero-padded), in a 64-bit word not yet folded.
#[inline(always)]
pub(crate) fn sum_native(data: &[u8]) -> u64 {
    if let Ok(header) = <&[u8; 20]>::try_from(data) {
        // An IPv4 header without options, the most frequent short input:
        // summed where it is needed, without a call.
        let (total, rest) = add_piece::<16>(0, header);
        add_folding(total, sum_short(rest))
    } else if data.len() < 64 {
        // A small packet's segment (44 bytes of TCP in a 64-byte packet):
        // inline too. Through the call below it cost about 4 ns of a
        // 64-byte ESP packet, most of it the call's own prologue.
        sum_below_block(0, data)
    } else {
        sum_any(data)
    }
}

/// [`sum_native`] for any length.
#[inline(never)]
fn sum_any(data: &[u8]) -> u64 {
    let (blocks, tail) = data.as_chunks::<64>();
    let total = if blocks.is_empty() { 0 } else { sum_blocks_fastest(blocks) };
    sum_below_block(total, tail)
}

/// `total` plus the sum of `tail`, fewer than 64 bytes starting at an even
/// offset: at most one piece of each size, each added with its own short
/// carry chain (no loop, no call).
#[inline(always)]
fn sum_below_block(total: u64, tail: &[u8]) -> u64 {
    let (total, rest) = add_piece::<32>(total, tail);
    let (total, rest) = add_piece::<16>(total, rest);
    let (total, rest) = add_piece::<8>(total, rest);
    add_folding(total, sum_short(rest))
}

/// If `bytes` holds at least `N` (a multiple of 8) bytes, add the first `N`
/// to `total` as 64-bit words and return the rest.
#[inline(always)]
fn add_piece<const N: usize>(total: u64, bytes: &[u8]) -> (u64, &[u8]) {
    let Some((piece, rest)) = bytes.split_first_chunk::<N>() else {
        return (total, bytes);
    };
    let (words, _) = piece.as_chunks::<8>();
    let mut sum = total;
    let mut carry = false;
    for word in words {
        (sum, carry) = add_with_carry(sum, u64::from_ne_bytes(*word), carry);
    }
    (add_folding(sum, u64::from(carry)), rest)
}

/// The sum of fewer than 8 bytes (at an even offset). Each piece starts at
/// an even offset, so it can be added as its own value: moving a 16-bit word
/// by 16 bits multiplies it by 2^16, which is 1 modulo 0xFFFF.
#[inline(always)]
fn sum_short(bytes: &[u8]) -> u64 {
    let mut total = 0u64;
    let mut rest = bytes;
    if let Some((word, after)) = rest.split_first_chunk::<4>() {
        total += u64::from(u32::from_ne_bytes(*word));
        rest = after;
    }
    if let Some((word, after)) = rest.split_first_chunk::<2>() {
        total += u64::from(u16::from_ne_bytes(*word));
        rest = after;
    }
    if let Some(&byte) = rest.first() {
        // The odd last byte is the first byte of a word padded with zero.
        total += u64::from(u16::from_ne_bytes([byte, 0]));
    }
    total
}

/// The sum of whole 64-byte blocks, with the CPU's vector unit where the
/// backends have a kernel for it (AVX2: several times faster from a few
/// blocks up), else [`sum_blocks`].
#[inline]
fn sum_blocks_fastest(blocks: &[[u8; 64]]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if blocks.len() >= VECTOR_FROM
        && let Some(total) = crate::backend::checksum::sum_blocks(blocks)
    {
        return total;
    }
    sum_blocks(blocks)
}

/// The fewest blocks handed to the vector kernel: below it, its set-up and
/// final reduction cost more than the add-with-carry chain.
#[cfg(target_arch = "x86_64")]
const VECTOR_FROM: usize = 2;

/// The sum of whole 64-byte blocks: each block is added to eight 64-bit
/// limbs as one 512-bit number, and the carries out of the top limb are
/// counted (each is worth 2^512, which is 1 modulo 0xFFFF).
fn sum_blocks(blocks: &[[u8; 64]]) -> u64 {
    let mut limbs = [0u64; 8];
    let mut carries = 0u64;
    // Two blocks per iteration: the loop overhead is then about one
    // instruction per 32 bytes.
    let (pairs, last) = blocks.as_chunks::<2>();
    for pair in pairs {
        for block in pair {
            carries += add_block(&mut limbs, block);
        }
    }
    for block in last {
        carries += add_block(&mut limbs, block);
    }
    // Fold the limbs and the carry count with one more carry chain.
    let mut total = carries;
    let mut carry = false;
    for limb in limbs {
        (total, carry) = add_with_carry(total, limb, carry);
    }
    add_folding(total, u64::from(carry))
}

/// Add one block to the limbs; returns the carry out of the top limb.
#[inline(always)]
fn add_block(limbs: &mut [u64; 8], block: &[u8; 64]) -> u64 {
    let (words, _) = block.as_chunks::<8>();
    let mut carry = false;
    for (limb, word) in limbs.iter_mut().zip(words) {
        (*limb, carry) = add_with_carry(*limb, u64::from_ne_bytes(*word), carry);
    }
    u64::from(carry)
}

/// A running sum over whole 64-byte blocks, for loops that see a message a
/// block at a time. Equivalent to [`sum_native`] over the concatenated
/// blocks.
#[derive(Clone, Copy, Default)]
struct BlockSum {
    limbs: [u64; 8],
    carries: u64,
}

impl BlockSum {
    /// Add the next 64 bytes.
    #[inline(always)]
    fn add(&mut self, block: &[u8; 64]) {
        self.carries += add_block(&mut self.limbs, block);
    }

    /// The sum of every block added, unfolded.
    #[inline]
    fn finish(self) -> u64 {
        let mut total = self.carries;
        let mut carry = false;
        for limb in self.limbs {
            (total, carry) = add_with_carry(total, limb, carry);
        }
        add_folding(total, u64::from(carry))
    }
}

/// The one's complement sum of everything a backend's plaintext sink (`backend::PlaintextSink`) is
/// fed: whole 64-byte blocks on the add-with-carry chain of [`BlockSum`]
/// (integer units the cipher's vector loop leaves idle), the remainder with
/// [`sum_native`].
#[derive(Clone, Copy, Default)]
pub(crate) struct PlaintextSum {
    blocks: BlockSum,
    rest: u64,
}

impl PlaintextSum {
    /// The sum of all bytes fed, unfolded (as [`sum_native`] of them).
    #[inline]
    pub(crate) fn total(self) -> u64 {
        add_folding(self.blocks.finish(), self.rest)
    }
}

impl PlaintextSum {
    /// Add the next 64 bytes.
    #[inline(always)]
    pub(crate) fn add_block(&mut self, block: &[u8; 64]) {
        self.blocks.add(block);
    }

    /// Add the bytes after the last whole block.
    #[inline]
    pub(crate) fn add_rest(&mut self, bytes: &[u8]) {
        // Whole blocks before `bytes`, so it starts at an even offset.
        self.rest = add_folding(self.rest, sum_native(bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sum_equals_the_sum_of_the_concatenated_blocks() {
        let data: Vec<u8> = (0..64 * 40).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
        let ones = vec![0xffu8; 64 * 40];
        for bytes in [&data, &ones] {
            for blocks in 0..=40 {
                let mut s = BlockSum::default();
                for block in bytes[..64 * blocks].as_chunks::<64>().0 {
                    s.add(block);
                }
                assert_eq!(fold(s.finish()), fold(sum_native(&bytes[..64 * blocks])), "{blocks} blocks");
            }
        }
    }

    #[test]
    fn plaintext_sum_of_blocks_and_rest_equals_the_sum_of_the_whole() {
        let data: Vec<u8> = (0..64 * 5 + 37).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for blocks in 0..=5 {
            for end in [64 * blocks, 64 * blocks + 1, 64 * blocks + 20, data.len()] {
                let mut s = PlaintextSum::default();
                for block in data[..64 * blocks].as_chunks::<64>().0 {
                    s.add_block(block);
                }
                s.add_rest(&data[64 * blocks..end]);
                assert_eq!(fold(s.total()), fold(sum_native(&data[..end])), "{blocks} blocks, {end} bytes");
            }
        }
    }
}
