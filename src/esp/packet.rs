//! An IP datagram as ESP sees it: its family and addresses, where its
//! upper-layer header is, and whether its checksums verify.
//!
//! `seal` runs this on the packet it is given (before anything is
//! encrypted) and `open` on what it decrypted (tunnel mode: the inner
//! packet; transport mode: the restored packet), so one piece of code
//! decides what "a correct packet" means on both sides.

use super::checksum::{self, Sum};
use super::wire::{self, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket, get_u16, ipv4, ipv6, protocol, tcp, udp};
use super::{ChecksumKind, ChecksumPolicy, EspError, Field, Header, Limitation};
use core::ops::Range;
use std::net::IpAddr;

/// Source and destination of one family, as bytes. IPv4 addresses fill the
/// first 4 bytes and the rest stays zero, so sums over the whole arrays are
/// the sums over the addresses (zeros add nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Addresses {
    src: [u8; 16],
    dst: [u8; 16],
    ipv4: bool,
}

impl Addresses {
    pub(crate) fn new(src: IpAddr, dst: IpAddr) -> Addresses {
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => Addresses::v4(s.octets(), d.octets()),
            _ => Addresses::v6(ipv6_octets(src), ipv6_octets(dst)),
        }
    }

    #[inline]
    pub(crate) fn v4(src: [u8; 4], dst: [u8; 4]) -> Addresses {
        let mut a = Addresses { src: [0; 16], dst: [0; 16], ipv4: true };
        if let Some(bytes) = a.src.first_chunk_mut::<4>() {
            *bytes = src;
        }
        if let Some(bytes) = a.dst.first_chunk_mut::<4>() {
            *bytes = dst;
        }
        a
    }

    #[inline]
    pub(crate) fn v6(src: [u8; 16], dst: [u8; 16]) -> Addresses {
        Addresses { src, dst, ipv4: false }
    }

    pub(crate) fn is_ipv4(&self) -> bool {
        self.ipv4
    }

    /// The pseudo-header sum for an upper-layer packet of `len` bytes.
    #[inline]
    pub(crate) fn pseudo_header(&self, protocol: u8, len: usize) -> Sum {
        checksum::pseudo_header(&self.src, &self.dst, protocol, len as u32)
    }

    /// The sum of both addresses (the part of the pseudo-header a NAT changes).
    pub(crate) fn sum(&self) -> u16 {
        Sum::ZERO.add_bytes(&self.src).add_bytes(&self.dst).value()
    }
}

fn ipv6_octets(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// Where the upper-layer data of a datagram is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Upper {
    /// The upper-layer header of `protocol` starts at `offset`.
    At { protocol: u8, offset: usize },
    /// A fragment: the upper-layer checksum covers the reassembled datagram
    /// and cannot be checked here.
    Fragment,
}

/// A parsed, length-checked IP datagram.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Datagram {
    /// 4 or 6.
    pub version: u8,
    /// Length of the datagram (bytes after it are link padding or TFC padding).
    pub len: usize,
    /// IPv4 header length, or 40 for IPv6.
    pub header_len: usize,
    pub upper: Upper,
    /// IPv4 TOS / IPv6 traffic class.
    pub ds_field: u8,
    /// IPv4 DF (false for IPv6).
    pub dont_frag: bool,
}

impl Datagram {
    /// A fragment's protocol as selectors see it: the IPv4 protocol field,
    /// or for IPv6 the fragment header's number (what follows it is not
    /// known without reassembly).
    pub(crate) fn fragment_protocol(&self, bytes: &[u8]) -> u8 {
        if self.version == 4 { Ipv4Packet::new_unchecked(bytes).protocol() } else { protocol::FRAGMENT }
    }

    /// Source and destination address as they sit in the header `bytes`
    /// this datagram was parsed from: 8 bytes (IPv4) or 32 (IPv6).
    #[inline]
    pub(crate) fn address_bytes<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        wire::slice(bytes, if self.version == 4 { ipv4::ADDRESSES } else { ipv6::ADDRESSES })
    }

    /// The addresses of the datagram whose header is `bytes`, copied.
    pub(crate) fn addresses(&self, bytes: &[u8]) -> Addresses {
        let both = self.address_bytes(bytes);
        let (src, dst) = both.split_at(both.len() / 2);
        if self.version == 4 {
            Addresses::v4(src.try_into().unwrap_or_default(), dst.try_into().unwrap_or_default())
        } else {
            Addresses::v6(src.try_into().unwrap_or_default(), dst.try_into().unwrap_or_default())
        }
    }
}

/// Parse the datagram at the start of `bytes` (IPv4 or IPv6 by its first
/// nibble) and find its upper-layer header.
#[inline]
pub(crate) fn parse(bytes: &[u8]) -> Result<Datagram, EspError> {
    let Some(first) = bytes.first() else {
        return Err(EspError::Truncated { header: Header::Ip, needed: 1, available: 0 });
    };
    match first >> 4 {
        4 => {
            let p = Ipv4Packet::new_checked(bytes)?;
            let upper = if p.is_fragment() {
                Upper::Fragment
            } else {
                Upper::At { protocol: p.protocol(), offset: p.header_len() }
            };
            Ok(Datagram {
                version: 4,
                len: p.total_len(),
                header_len: p.header_len(),
                upper,
                ds_field: p.dscp_ecn(),
                dont_frag: p.dont_frag(),
            })
        }
        6 => parse_v6(bytes),
        v => Err(EspError::Malformed { field: Field::IpVersion, value: v.into() }),
    }
}

fn parse_v6(bytes: &[u8]) -> Result<Datagram, EspError> {
    let p = Ipv6Packet::new_checked(bytes)?;
    let upper = find_upper_v6(p.packet(), p.chain_start())?;
    Ok(Datagram {
        version: 6,
        len: p.packet().len(),
        header_len: ipv6::HEADER_LEN,
        upper,
        ds_field: p.traffic_class(),
        dont_frag: false,
    })
}

/// Walk an IPv6 chain from `pos` to the upper-layer header.
pub(crate) fn find_upper_v6(packet: &[u8], mut pos: ipv6::ChainPos) -> Result<Upper, EspError> {
    loop {
        match pos.next_header {
            protocol::FRAGMENT => return Ok(Upper::Fragment),
            protocol::HOP_BY_HOP if pos.offset != ipv6::HEADER_LEN => {
                return Err(EspError::Malformed { field: Field::Ipv6HopByHopPosition, value: pos.offset as u64 });
            }
            protocol::HOP_BY_HOP | protocol::ROUTING | protocol::DESTINATION_OPTIONS => {
                let (ext, next) = ipv6::step(packet, pos)?;
                if ext.segments_left() > 0 {
                    return Err(EspError::Unsupported(Limitation::RoutingHeaderInTransit));
                }
                pos = next;
            }
            other => return Ok(Upper::At { protocol: other, offset: pos.offset }),
        }
    }
}

/// Where a failed checksum was found, to build the right error.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stage {
    BeforeEncrypt,
    AfterDecrypt { seq: u64 },
}

impl Stage {
    fn mismatch(self, kind: ChecksumKind, found: u16, expected: u16) -> EspError {
        match self {
            Stage::BeforeEncrypt => EspError::ChecksumBeforeEncrypt { kind, found, expected },
            Stage::AfterDecrypt { seq } => EspError::ChecksumAfterDecrypt { seq, kind, found, expected },
        }
    }
}

/// Verify the IPv4 header checksum (always) and the upper-layer checksum
/// (under [`ChecksumPolicy::Verify`]) of `d`, whose bytes are `bytes`,
/// reading the upper-layer bytes to sum them.
///
/// Returns whether the upper layer was a fragment (carried unchecked).
#[inline]
pub(crate) fn verify(d: &Datagram, bytes: &[u8], policy: ChecksumPolicy, stage: Stage) -> Result<bool, EspError> {
    verify_ipv4_header(d, bytes, stage)?;
    match upper_check(d, bytes, policy)? {
        UpperPlan::Fragment => Ok(true),
        UpperPlan::Nothing => Ok(false),
        UpperPlan::Check { check, segment } => {
            check.verify(checksum::sum(wire::slice(bytes, segment)), stage)?;
            Ok(false)
        }
    }
}

/// Verify the IPv4 header checksum of `d` (nothing for IPv6).
#[inline]
pub(crate) fn verify_ipv4_header(d: &Datagram, bytes: &[u8], stage: Stage) -> Result<(), EspError> {
    if d.version == 4 {
        let header = Ipv4Packet::new_unchecked(bytes);
        if !header.verify_checksum() {
            return Err(stage.mismatch(ChecksumKind::Ipv4Header, header.checksum(), header.expected_checksum()));
        }
    }
    Ok(())
}

/// What checking a datagram's upper-layer checksum takes.
#[derive(Clone, Debug)]
pub(crate) enum UpperPlan {
    /// A fragment: the checksum covers the reassembled datagram.
    Fragment,
    /// No checksum to verify (the policy skips it, the protocol has none,
    /// or UDP over IPv4 was sent without one).
    Nothing,
    /// Verify `check` against the sum of the bytes `segment` of the datagram.
    Check { check: UpperCheck, segment: Range<usize> },
}

/// Plan the upper-layer check of `d` (whose bytes are `bytes`): the header
/// of the upper layer is length-checked now; the checksum itself needs the
/// sum of the segment, which the caller may already have from the cipher.
#[inline]
pub(crate) fn upper_check(d: &Datagram, bytes: &[u8], policy: ChecksumPolicy) -> Result<UpperPlan, EspError> {
    match d.upper {
        Upper::Fragment => Ok(UpperPlan::Fragment),
        Upper::At { .. } if policy == ChecksumPolicy::Skip => Ok(UpperPlan::Nothing),
        Upper::At { protocol, offset } => {
            let segment = offset..d.len;
            match UpperCheck::new(
                d.address_bytes(bytes),
                d.version == 4,
                protocol,
                wire::slice(bytes, segment.clone()),
            )? {
                Some(check) => Ok(UpperPlan::Check { check, segment }),
                None => Ok(UpperPlan::Nothing),
            }
        }
    }
}

/// The checksum check of one upper-layer packet (TCP, UDP, ICMP, ICMPv6),
/// everything but the sum of its bytes: which kind, the pseudo-header sum
/// and the checksum field as found.
#[derive(Clone, Debug)]
pub(crate) struct UpperCheck {
    kind: ChecksumKind,
    pseudo_header: Sum,
    found: u16,
}

impl UpperCheck {
    /// Length-check the upper-layer header of `segment` (of protocol
    /// `proto`, in an IP header carrying `addresses`, IPv4 if `ipv4`) and
    /// prepare its checksum check; `None` if it has no checksum to verify.
    #[inline]
    pub(crate) fn new(addresses: &[u8], ipv4: bool, proto: u8, segment: &[u8]) -> Result<Option<UpperCheck>, EspError> {
        let pseudo_header = || checksum::pseudo_header_of(addresses, proto, segment.len() as u32);
        let (kind, at, pseudo_header) = match proto {
            protocol::TCP => {
                TcpPacket::new_checked(segment)?;
                (ChecksumKind::Tcp, tcp::CHECKSUM_OFFSET, pseudo_header())
            }
            protocol::UDP => {
                let datagram = UdpPacket::new_checked(segment)?;
                if datagram.checksum() == 0 && ipv4 {
                    return Ok(None); // RFC 768: no checksum was computed.
                }
                (ChecksumKind::Udp, udp::CHECKSUM_OFFSET, pseudo_header())
            }
            protocol::ICMP if ipv4 => (ChecksumKind::Icmpv4, ICMP_CHECKSUM_OFFSET, Sum::ZERO),
            protocol::ICMPV6 if !ipv4 => (ChecksumKind::Icmpv6, ICMP_CHECKSUM_OFFSET, pseudo_header()),
            _ => return Ok(None),
        };
        if segment.len() < ICMP_HEADER_LEN {
            return Err(EspError::Truncated {
                header: Header::Icmp,
                needed: ICMP_HEADER_LEN,
                available: segment.len(),
            });
        }
        Ok(Some(UpperCheck { kind, pseudo_header, found: get_u16(segment, at) }))
    }

    /// Whether the checksum covers a pseudo-header (every kind but ICMPv4).
    pub(crate) fn has_pseudo_header(&self) -> bool {
        self.pseudo_header != Sum::ZERO
    }

    /// Verify, given the folded network-order sum of the segment's bytes
    /// (as [`checksum::sum`] computes it).
    #[inline]
    pub(crate) fn verify(&self, segment_sum: u16, stage: Stage) -> Result<(), EspError> {
        let total = self.pseudo_header.add_u16(segment_sum);
        // UDP over IPv6 with a zero checksum: the data cannot verify, so the
        // zero is reported against the value it should have had.
        if total.verifies() && !(self.kind == ChecksumKind::Udp && self.found == 0) {
            return Ok(());
        }
        Err(mismatch(self.kind, total, self.found, stage))
    }
}

#[cold]
fn mismatch(kind: ChecksumKind, total: Sum, found: u16, stage: Stage) -> EspError {
    // Where the rest sums to zero, only 0xffff is sure to verify (+0 and -0
    // cannot be told apart here); UDP also reserves 0 for "no checksum".
    let mut expected = total.add_u16(!found).checksum();
    if expected == 0 {
        expected = 0xffff;
    }
    stage.mismatch(kind, found, expected)
}

/// ICMP and ICMPv6: type, code, checksum.
const ICMP_HEADER_LEN: usize = 4;
const ICMP_CHECKSUM_OFFSET: usize = 2;

/// Offset of the checksum field in an upper-layer header whose checksum
/// covers a pseudo-header (the ones a NAT's address rewrite affects).
pub(crate) fn pseudo_header_checksum_offset(proto: u8) -> Option<usize> {
    match proto {
        protocol::TCP => Some(tcp::CHECKSUM_OFFSET),
        protocol::UDP => Some(udp::CHECKSUM_OFFSET),
        protocol::ICMPV6 => Some(ICMP_CHECKSUM_OFFSET),
        _ => None,
    }
}
