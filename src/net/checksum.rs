//! The Internet checksum (RFC 1071), its incremental update (RFC 1624),
//! the IPv4/IPv6 pseudo-headers and the check of an upper-layer (TCP, UDP,
//! ICMP, ICMPv6) checksum: the one checksum routine of the crate. The
//! check of a whole upper-layer packet, which needs the TCP, UDP and ICMP
//! views (themselves users of [`Sum`]), is in `net::upper`.
//!
//! # How it is fast
//!
//! The arithmetic lives in `crate::ones_complement`, shared with the
//! backends that compute the sum of a plaintext while they encrypt or
//! decrypt it (so ESP gets the inner checksum of a packet without a pass of
//! its own); its module docs explain the add-with-carry chains.
//!
//! # Representation
//!
//! A [`Sum`] is a partial one's complement sum. `Sum::value()` is the folded
//! 16-bit sum in network order (the value whose big-endian bytes would go on
//! the wire before complementing); a checksum field holds its complement.
//! Data added with [`Sum::add_bytes`] must start at an even offset of the
//! checksummed region (every use in this crate does).

use crate::ones_complement::{add_folding, fold, sum_native};
use core::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Which checksum failed.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChecksumKind {
    /// The IPv4 header checksum of the inner packet.
    Ipv4Header,
    /// TCP (with the IPv4 or IPv6 pseudo-header).
    Tcp,
    /// UDP (with the pseudo-header; over IPv6 a zero checksum is a failure).
    Udp,
    /// ICMP for IPv4 (no pseudo-header).
    Icmpv4,
    /// ICMPv6 (with the IPv6 pseudo-header).
    Icmpv6,
}

impl fmt::Display for ChecksumKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChecksumKind::Ipv4Header => "IPv4 header",
            ChecksumKind::Tcp => "TCP",
            ChecksumKind::Udp => "UDP",
            ChecksumKind::Icmpv4 => "ICMP",
            ChecksumKind::Icmpv6 => "ICMPv6",
        })
    }
}

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

/// The folded one's complement sum of `data` as big-endian 16-bit words
/// (an odd trailing byte is the high byte of a last word padded with zero).
///
/// Inlined, so that a short input (an IPv4 header, a small packet's
/// segment) is summed where it is needed: through a call, the call was
/// most of the work.
#[inline]
pub fn sum(data: &[u8]) -> u16 {
    // `sum_native` adds words in the machine's byte order; the folded result
    // is then byte-swapped relative to network order on little-endian CPUs.
    to_network_order(fold(sum_native(data)))
}

#[inline(always)]
pub(crate) fn to_network_order(native: u16) -> u16 {
    u16::from_be_bytes(native.to_ne_bytes())
}

/// The one's complement sum of a region of a packet (an ESP plaintext)
/// computed by the cipher in the pass that encrypted or decrypted it, from
/// which the bytes around an upper-layer segment are taken away to leave
/// the segment's own sum, so the segment is never read again.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RegionSum(u64);

impl RegionSum {
    /// The region's sum as the backends return it (native order, unfolded;
    /// see `crate::ones_complement`).
    pub(crate) fn new(native: u64) -> RegionSum {
        RegionSum(native)
    }

    /// Take away `bytes`, which sit at `offset` in the region. A byte at an
    /// odd offset is the low half of a 16-bit word rather than the high
    /// half, so an odd offset swaps the halves of their sum (a rotation by 8
    /// bits, which is multiplication by 2^8 modulo 0xFFFF).
    #[inline]
    pub(crate) fn remove(self, bytes: &[u8], offset: usize) -> RegionSum {
        if bytes.is_empty() {
            return self;
        }
        let sum = fold(sum_native(bytes));
        let sum = if offset % 2 == 1 { sum.swap_bytes() } else { sum };
        // One's complement subtraction: add the complement.
        RegionSum(add_folding(self.0, u64::from(!sum)))
    }

    /// Take away the first `len` bytes of `region`, the bytes this sum
    /// was taken over.
    ///
    /// # Panics
    /// If `len` is larger than the region: a caller's logic error.
    #[inline]
    pub(crate) fn remove_prefix(self, region: &[u8], len: usize) -> RegionSum {
        self.remove(&region[..len], 0)
    }

    /// The folded sum in network order, as [`sum`] gives it for the bytes
    /// left (which must start at an even offset of the region), except that
    /// a zero sum may come out as 0xFFFF, one's complement's other zero:
    /// added to a pseudo-header or any non-zero sum it makes no difference.
    #[inline]
    pub(crate) fn value(self) -> u16 {
        to_network_order(fold(self.0))
    }
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
#[inline]
pub(crate) fn pseudo_header(src: &[u8], dst: &[u8], protocol: u8, len: u32) -> Sum {
    let addresses = to_network_order(fold(add_folding(sum_native(src), sum_native(dst))));
    Sum::ZERO.add_u16(addresses).add_u16(u16::from(protocol)).add_u32(len)
}

/// The pseudo-header sum from the source and destination addresses as they
/// sit together in an IP header: 8 bytes (IPv4) or 32 (IPv6).
#[inline]
pub(crate) fn pseudo_header_of(addresses: &[u8], protocol: u8, len: u32) -> Sum {
    let native = if let Ok(v4) = <&[u8; 8]>::try_from(addresses) {
        u64::from_ne_bytes(*v4)
    } else if let Ok(v6) = <&[u8; 32]>::try_from(addresses) {
        let (words, _) = v6.as_chunks::<8>();
        words.iter().fold(0, |total, word| add_folding(total, u64::from_ne_bytes(*word)))
    } else {
        sum_native(addresses)
    };
    Sum::ZERO.add_u16(to_network_order(fold(native))).add_u16(u16::from(protocol)).add_u32(len)
}

/// A checksum that does not verify: which one, the value found in the
/// packet and the value its bytes call for. The caller decides what error
/// that is (ESP: before encryption or after decryption).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Mismatch {
    pub kind: ChecksumKind,
    pub found: u16,
    pub expected: u16,
}

#[cfg(test)]
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
    fn region_sum_minus_its_surroundings_is_the_segment_sum() {
        let data: Vec<u8> = (0..700u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
        // Segments start at even offsets (IP and extension header lengths are).
        for (start, end) in [(0, 700), (0, 699), (20, 700), (20, 697), (40, 41), (6, 301), (2, 3), (0, 0), (34, 34)] {
            let whole = RegionSum::new(sum_native(&data));
            let segment = whole.remove(&data[..start], 0).remove(&data[end..], end);
            // One's complement has two zeros (0x0000 and 0xFFFF): equal modulo 0xFFFF.
            assert_eq!(segment.value() % 0xffff, sum(&data[start..end]) % 0xffff, "{start}..{end}");
        }
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
        let data: Vec<u8> = (0..2100u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for start in 0..8 {
            for len in 0..=2048 {
                let slice = &data[start..start + len];
                assert_eq!(sum(slice), reference(slice), "start {start} len {len}");
            }
        }
        assert_eq!(sum(&[]), 0);
    }

    #[test]
    fn sum_carries_correctly_when_every_limb_overflows() {
        // All-ones data makes every limb addition and every fold carry.
        let ones = vec![0xffu8; 4096 + 8];
        for start in 0..8 {
            for len in [1, 2, 63, 64, 65, 127, 128, 129, 1420, 4095, 4096] {
                let slice = &ones[start..start + len];
                assert_eq!(sum(slice), reference(slice), "start {start} len {len}");
            }
        }
        assert_eq!(sum(&ones), 0xffff);
        // Words that sum to a multiple of 0xffff but are not all zero fold to
        // 0xffff, never to 0.
        assert_eq!(sum(&[0x12, 0x34, 0xed, 0xcb]), 0xffff);
        assert_eq!(sum(&[0u8; 100]), 0);
    }

    #[test]
    fn sum_of_a_large_buffer_matches_the_definition() {
        let data: Vec<u8> = (0..(1u32 << 20) + 37).map(|i| (i.wrapping_mul(0x9e37_79b9) >> 23) as u8).collect();
        assert_eq!(sum(&data), reference(&data));
        let high: Vec<u8> = data.iter().map(|b| b | 0xf0).collect();
        assert_eq!(sum(&high), reference(&high));
    }

    #[test]
    fn fold_agrees_with_repeated_end_around_carries() {
        fn slow(mut acc: u64) -> u16 {
            while acc > 0xffff {
                acc = (acc & 0xffff) + (acc >> 16);
            }
            acc as u16
        }
        let mut x = 0x0123_4567_89ab_cdefu64;
        for special in [0, 1, 0xffff, 0x1_0000, 0xffff_ffff, 0x1_0000_0000, u64::MAX, u64::MAX - 1, 1 << 63] {
            assert_eq!(fold(special), slow(special), "{special:#x}");
        }
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            assert_eq!(fold(x), slow(x), "{x:#x}");
            assert_eq!(fold(x >> 20), slow(x >> 20), "{:#x}", x >> 20);
        }
    }

    #[test]
    fn pseudo_header_from_header_bytes_matches_the_separate_addresses() {
        let bytes: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(151) ^ 0xa5).collect();
        for len in [8, 32, 0, 4, 12] {
            let (src, dst) = bytes[..len].split_at(len / 2);
            for (protocol, upper_len) in [(6u8, 20u32), (17, 0xffff), (58, 0x1_0001)] {
                assert_eq!(
                    pseudo_header_of(&bytes[..len], protocol, upper_len).value(),
                    pseudo_header(src, dst, protocol, upper_len).value(),
                    "{len} address bytes"
                );
            }
        }
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
