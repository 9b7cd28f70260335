//! The checksum check of an upper-layer packet (TCP, UDP, ICMP, ICMPv6)
//! and where its checksum field lies: the part of checksumming that needs
//! the protocol views. It sits above both `checksum` (the arithmetic) and
//! `tcp`/`udp`/`icmp` (which use that arithmetic to emit), so neither of
//! those depends on the other through it.

use super::checksum::{Mismatch, Sum, pseudo_header_of};
use super::{ChecksumKind, IcmpPacket, TcpPacket, UdpPacket, WireError, icmp, protocol, tcp, udp};

/// The checksum check of one upper-layer packet (TCP, UDP, ICMP, ICMPv6),
/// everything but the sum of its bytes: which kind, the pseudo-header sum
/// and the checksum field as found. The sum comes separately because a
/// caller may already have it (ESP's cipher sums what it encrypts).
#[derive(Clone, Debug)]
pub(crate) struct UpperCheck {
    kind: ChecksumKind,
    pseudo_header: Sum,
    found: u16,
}

impl UpperCheck {
    /// Length-check the upper-layer header of `segment` (of protocol
    /// `proto`, in an IP header carrying `addresses`, IPv4 if `ipv4`) and
    /// prepare its checksum check; `None` if it has no checksum to verify
    /// (another protocol, or UDP over IPv4 sent without one).
    ///
    /// # Errors
    /// As the `new_checked` of the header's view.
    #[inline]
    pub(crate) fn new(
        addresses: &[u8],
        ipv4: bool,
        proto: u8,
        segment: &[u8],
    ) -> Result<Option<UpperCheck>, WireError> {
        let pseudo_header = || pseudo_header_of(addresses, proto, segment.len() as u32);
        let (kind, found, pseudo_header) = match proto {
            protocol::TCP => (ChecksumKind::Tcp, TcpPacket::new_checked(segment)?.checksum(), pseudo_header()),
            protocol::UDP => {
                let found = UdpPacket::new_checked(segment)?.checksum();
                if found == 0 && ipv4 {
                    return Ok(None); // RFC 768: no checksum was computed.
                }
                (ChecksumKind::Udp, found, pseudo_header())
            }
            protocol::ICMP if ipv4 => (ChecksumKind::Icmpv4, IcmpPacket::new_checked(segment)?.checksum(), Sum::ZERO),
            protocol::ICMPV6 if !ipv4 => {
                (ChecksumKind::Icmpv6, IcmpPacket::new_checked(segment)?.checksum(), pseudo_header())
            }
            _ => return Ok(None),
        };
        Ok(Some(UpperCheck { kind, pseudo_header, found }))
    }

    /// Whether the checksum covers a pseudo-header (every kind but ICMPv4).
    pub(crate) fn has_pseudo_header(&self) -> bool {
        self.pseudo_header != Sum::ZERO
    }

    /// Verify, given the folded network-order sum of the segment's bytes
    /// (as [`sum`](super::checksum::sum) computes it).
    ///
    /// # Errors
    /// The [`Mismatch`].
    #[inline]
    pub(crate) fn verify(&self, segment_sum: u16) -> Result<(), Mismatch> {
        let total = self.pseudo_header.add_u16(segment_sum);
        // UDP over IPv6 with a zero checksum: the data cannot verify, so the
        // zero is reported against the value it should have had.
        if total.verifies() && !(self.kind == ChecksumKind::Udp && self.found == 0) {
            return Ok(());
        }
        Err(mismatch(self.kind, total, self.found))
    }
}

#[cold]
fn mismatch(kind: ChecksumKind, total: Sum, found: u16) -> Mismatch {
    // Where the rest sums to zero, only 0xffff is sure to verify (+0 and -0
    // cannot be told apart here); UDP also reserves 0 for "no checksum".
    let mut expected = total.add_u16(!found).checksum();
    if expected == 0 {
        expected = 0xffff;
    }
    Mismatch { kind, found, expected }
}

/// Offset of the checksum field in an upper-layer header whose checksum
/// covers a pseudo-header (the ones a NAT's address rewrite affects).
pub(crate) fn pseudo_header_checksum_offset(proto: u8) -> Option<usize> {
    match proto {
        protocol::TCP => Some(tcp::CHECKSUM_OFFSET),
        protocol::UDP => Some(udp::CHECKSUM_OFFSET),
        protocol::ICMPV6 => Some(icmp::CHECKSUM_OFFSET),
        _ => None,
    }
}
