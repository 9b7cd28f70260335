//! The Internet checksum (RFC 1071), its incremental update (RFC 1624) and
//! the IPv4/IPv6 pseudo-headers: the one checksum routine of the crate.
//!
//! # How it is fast
//!
//! The one's complement sum does not care about byte order (RFC 1071
//! §2(B)): summing 16-bit words in the machine's own order and swapping the
//! folded result once gives the same answer as summing big-endian words. It
//! also does not care about word width: a 32-bit word is congruent to the sum
//! of its two 16-bit halves modulo 0xFFFF. So [`sum`] adds the data as native
//! 32-bit words into eight independent 64-bit accumulators, 32 bytes per
//! step. There are no carries to propagate inside the loop (a 64-bit
//! accumulator can take 2^32 such additions), the eight lanes have no
//! dependency on each other, and LLVM turns the loop into SIMD
//! widening adds on any x86-64 (SSE2) or AArch64 without `unsafe` or
//! target-specific flags. The lanes are folded to 16 bits once at the end.
//!
//! # Representation
//!
//! A [`Sum`] is a partial one's complement sum. `Sum::value()` is the folded
//! 16-bit sum in network order (the value whose big-endian bytes would go on
//! the wire before complementing); a checksum field holds its complement.
//! Data added with [`Sum::add_bytes`] must start at an even offset of the
//! checksummed region (every use in this crate does).

use std::net::{Ipv4Addr, Ipv6Addr};

/// A partial one's complement sum (RFC 1071), not yet complemented.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sum(u64);

impl Sum {
    /// The empty sum.
    pub const ZERO: Sum = Sum(0);

    /// Add bytes (starting at an even offset of the checksummed region; an
    /// odd length is padded with one zero byte, as RFC 1071 says for the end
    /// of the data).
    #[inline]
    pub fn add_bytes(self, data: &[u8]) -> Sum {
        Sum(self.0 + u64::from(sum(data)))
    }

    /// Add one 16-bit word (host value, e.g. a protocol number or length).
    #[inline]
    pub fn add_u16(self, word: u16) -> Sum {
        Sum(self.0 + u64::from(word))
    }

    /// Add a 32-bit value as two 16-bit words.
    #[inline]
    pub fn add_u32(self, word: u32) -> Sum {
        Sum(self.0 + u64::from(word >> 16) + u64::from(word & 0xffff))
    }

    /// Combine two partial sums of adjacent regions (the first ending at an
    /// even offset).
    #[inline]
    pub fn combine(self, other: Sum) -> Sum {
        Sum(self.0 + other.0)
    }

    /// The folded 16-bit sum.
    #[inline]
    pub fn value(self) -> u16 {
        fold(self.0)
    }

    /// The checksum field value: the complement of the folded sum.
    #[inline]
    pub fn checksum(self) -> u16 {
        !self.value()
    }

    /// Whether data that includes its own checksum field verifies (its folded
    /// sum is all ones).
    #[inline]
    pub fn verifies(self) -> bool {
        self.value() == 0xffff
    }
}

/// Fold a 64-bit accumulator to 16 bits with end-around carries.
#[inline]
fn fold(mut acc: u64) -> u16 {
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc as u16
}

/// The folded one's complement sum of `data` as big-endian 16-bit words
/// (an odd trailing byte is the high byte of a last word padded with zero).
pub fn sum(data: &[u8]) -> u16 {
    // Each lane takes at most 2^32 additions of values below 2^32 before it
    // could overflow; 1 GiB chunks keep every lane far below that.
    let mut total = 0u64;
    for chunk in data.chunks(1 << 30) {
        total += u64::from(fold(sum_native(chunk)));
    }
    // `sum_native` adds words in the machine's byte order; the folded result
    // is then byte-swapped relative to network order on little-endian CPUs.
    u16::from_be_bytes(fold(total).to_ne_bytes())
}

/// Sum `data` as native-order 32-bit words (zero-padded at the end) into a
/// 64-bit total, eight lanes at a time.
#[inline]
fn sum_native(data: &[u8]) -> u64 {
    let (blocks, tail) = data.as_chunks::<32>();
    let mut lanes = [0u64; 8];
    for block in blocks {
        let (words, _) = block.as_chunks::<4>();
        for (lane, word) in lanes.iter_mut().zip(words) {
            *lane += u64::from(u32::from_ne_bytes(*word));
        }
    }
    let (words, rest) = tail.as_chunks::<4>();
    let mut total: u64 = lanes.iter().sum();
    for word in words {
        total += u64::from(u32::from_ne_bytes(*word));
    }
    let mut last = [0u8; 4];
    for (dst, src) in last.iter_mut().zip(rest) {
        *dst = *src;
    }
    total + u64::from(u32::from_ne_bytes(last))
}

/// RFC 1624 (eqn. 3) incremental update: the checksum field `old_checksum`
/// of a region in which the bytes `old` were replaced by `new` (both of the
/// same even length, at an even offset).
///
/// `HC' = ~(~HC + ~m + m')`, computed word by word.
pub fn update(old_checksum: u16, old: &[u8], new: &[u8]) -> u16 {
    // ~m summed over words equals the complement of m's folded sum.
    let acc = Sum::ZERO.add_u16(!old_checksum).add_u16(!sum(old)).add_u16(sum(new));
    acc.checksum()
}

/// The sum of the IPv4 pseudo-header (RFC 793/768): source, destination,
/// zero, protocol, upper-layer length.
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u16) -> Sum {
    pseudo_header(&src.octets(), &dst.octets(), protocol, u32::from(len))
}

/// The sum of the IPv6 pseudo-header (RFC 8200 §8.1): source, destination,
/// 32-bit upper-layer length, 24 zero bits, next header.
pub fn pseudo_header_v6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, len: u32) -> Sum {
    pseudo_header(&src.octets(), &dst.octets(), next_header, len)
}

/// Both pseudo-headers have the same sum: the addresses, the protocol as a
/// 16-bit word and the length (16 or 32 bits, the same sum below 2^16).
pub(crate) fn pseudo_header(src: &[u8], dst: &[u8], protocol: u8, len: u32) -> Sum {
    Sum::ZERO.add_bytes(src).add_bytes(dst).add_u16(u16::from(protocol)).add_u32(len)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Straight from RFC 1071's definition: big-endian words, end-around carry.
    fn reference(data: &[u8]) -> u16 {
        let mut acc = 0u32;
        for pair in data.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            acc += u32::from(word);
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    #[test]
    fn ipv4_header_checksum_matches_the_textbook_example() {
        // 45 00 00 73 00 00 40 00 40 11 [b8 61] c0 a8 00 01 c0 a8 00 c7
        let mut header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(Sum::ZERO.add_bytes(&header).checksum(), 0xb861);
        header[10] = 0xb8;
        header[11] = 0x61;
        assert!(Sum::ZERO.add_bytes(&header).verifies());
    }

    #[test]
    fn sum_matches_the_definition_at_every_length_and_alignment() {
        let data: Vec<u8> = (0..700u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for start in 0..4 {
            for len in 0..(data.len() - start) {
                let slice = &data[start..start + len];
                assert_eq!(sum(slice), reference(slice), "start {start} len {len}");
            }
        }
        let ones = vec![0xffu8; 4096];
        assert_eq!(sum(&ones), 0xffff);
        assert_eq!(sum(&[]), 0);
    }

    #[test]
    fn incremental_update_agrees_with_recomputation() {
        let mut packet: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37)).collect();
        packet[16] = 0;
        packet[17] = 0;
        let c = Sum::ZERO.add_bytes(&packet).checksum();
        packet[16..18].copy_from_slice(&c.to_be_bytes());
        let old = packet[4..12].to_vec();
        let new = [0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0xff, 0xfe];
        packet[4..12].copy_from_slice(&new);
        let updated = update(c, &old, &new);
        packet[16..18].copy_from_slice(&updated.to_be_bytes());
        assert!(Sum::ZERO.add_bytes(&packet).verifies());
    }

    #[test]
    fn pseudo_headers_of_both_families_have_the_rfc_layout() {
        let v4 = pseudo_header_v4(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2), 6, 20);
        let bytes = [10, 0, 0, 1, 10, 0, 0, 2, 0, 6, 0, 20];
        assert_eq!(v4.value(), reference(&bytes));
        let s = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
        let d = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
        let v6 = pseudo_header_v6(s, d, 17, 0x1_0002);
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&s.octets());
        bytes.extend_from_slice(&d.octets());
        bytes.extend_from_slice(&0x1_0002u32.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 17]);
        assert_eq!(v6.value(), reference(&bytes));
    }
}
