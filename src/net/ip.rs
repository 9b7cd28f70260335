//! An IP packet of either version: its fixed header parsed by the version
//! nibble, its addresses, and where its upper-layer header is.
//!
//! A [`Datagram`] holds offsets and values, not the bytes, so a caller can
//! parse a buffer, change it (ESP restores a header in place) and read it
//! again; the methods that return bytes take the buffer the datagram was
//! parsed from.

use super::checksum::{self, Mismatch, Sum};
use super::{ChecksumKind, Field, Header, Ipv4Packet, Ipv6Chain, Ipv6Packet, WireError, ipv4, ipv6, protocol};
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
        a.src[..4].copy_from_slice(&src);
        a.dst[..4].copy_from_slice(&dst);
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

/// The checked fixed header of an IPv4 or IPv6 packet.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IpHeader {
    /// 4 or 6.
    pub version: u8,
    /// Length of the datagram (bytes after it are link padding or TFC padding).
    pub len: usize,
    /// IPv4 header length, or 40 for IPv6.
    pub header_len: usize,
    /// IPv4 protocol / the IPv6 fixed header's next header.
    pub protocol: u8,
    /// IPv4 more-fragments or a fragment offset (IPv6 says so in its chain).
    pub ipv4_fragment: bool,
    /// IPv4 TOS / IPv6 traffic class.
    pub ds_field: u8,
    /// IPv4 DF (false for IPv6).
    pub dont_frag: bool,
}

impl IpHeader {
    /// Parse the fixed header at the start of `bytes` (IPv4 or IPv6 by its
    /// first nibble), with every length checked against the bytes present.
    ///
    /// # Errors
    /// As [`Ipv4Packet::new_checked`] and [`Ipv6Packet::new_checked`];
    /// [`WireError::Truncated`] (IP) for no bytes, [`WireError::Malformed`]
    /// (IP version) for another version.
    #[inline]
    pub(crate) fn parse(bytes: &[u8]) -> Result<IpHeader, WireError> {
        let Some(first) = bytes.first() else {
            return Err(WireError::Truncated { header: Header::Ip, needed: 1, available: 0 });
        };
        match first >> 4 {
            4 => {
                let p = Ipv4Packet::new_checked(bytes)?;
                Ok(IpHeader {
                    version: 4,
                    len: p.total_len(),
                    header_len: p.header_len(),
                    protocol: p.protocol(),
                    ipv4_fragment: p.is_fragment(),
                    ds_field: p.dscp_ecn(),
                    dont_frag: p.dont_frag(),
                })
            }
            6 => {
                let p = Ipv6Packet::new_checked(bytes)?;
                Ok(IpHeader {
                    version: 6,
                    len: ipv6::HEADER_LEN + p.payload_len(),
                    header_len: ipv6::HEADER_LEN,
                    protocol: p.next_header(),
                    ipv4_fragment: false,
                    ds_field: p.traffic_class(),
                    dont_frag: false,
                })
            }
            v => Err(WireError::Malformed { field: Field::IpVersion, value: v.into() }),
        }
    }

    /// The datagram in `bytes` (the buffer this header was parsed from), up
    /// to its length.
    #[inline]
    pub(crate) fn datagram<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        &bytes[..self.len]
    }

    /// The IPv4 header of the datagram in `bytes`, options included, and
    /// the rest of the datagram.
    #[inline]
    pub(crate) fn split_ipv4_header<'b>(&self, bytes: &'b [u8]) -> (&'b [u8], &'b [u8]) {
        self.datagram(bytes).split_at(self.header_len)
    }

    /// The walk along the IPv6 extension-header chain of the datagram in
    /// `bytes` (which must be an IPv6 one).
    #[inline]
    pub(crate) fn ipv6_chain<'b>(&self, bytes: &'b [u8]) -> Ipv6Chain<'b> {
        Ipv6Chain::new(Ipv6Packet::new_unchecked(self.datagram(bytes)))
    }

    /// Source and destination address as they sit in the header `bytes`:
    /// 8 bytes (IPv4) or 32 (IPv6).
    #[inline]
    pub(crate) fn address_bytes<'b>(&self, bytes: &'b [u8]) -> &'b [u8] {
        &bytes[if self.version == 4 { ipv4::ADDRESSES } else { ipv6::ADDRESSES }]
    }

    /// The addresses of the datagram whose header is `bytes`, copied.
    pub(crate) fn addresses(&self, bytes: &[u8]) -> Addresses {
        if self.version == 4 {
            let ip = Ipv4Packet::new_unchecked(bytes);
            Addresses::v4(ip.src_addr().octets(), ip.dst_addr().octets())
        } else {
            let ip = Ipv6Packet::new_unchecked(bytes);
            Addresses::v6(ip.src_addr().octets(), ip.dst_addr().octets())
        }
    }

    /// Whether the IPv4 header checksum of the packet in `bytes` verifies
    /// (IPv6 has none: always `Ok`).
    ///
    /// # Errors
    /// A [`Mismatch`] of [`ChecksumKind::Ipv4Header`].
    #[inline]
    pub(crate) fn verify_header_checksum(&self, bytes: &[u8]) -> Result<(), Mismatch> {
        if self.version == 4 {
            let header = Ipv4Packet::new_unchecked(bytes);
            if !header.verify_checksum() {
                return Err(Mismatch {
                    kind: ChecksumKind::Ipv4Header,
                    found: header.checksum(),
                    expected: header.expected_checksum(),
                });
            }
        }
        Ok(())
    }
}

/// A parsed, length-checked IP datagram and where its upper-layer header is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Datagram {
    /// The fixed header.
    pub ip: IpHeader,
    /// The upper layer.
    pub upper: Upper,
}

impl Datagram {
    /// Parse the datagram at the start of `bytes` and find its upper-layer
    /// header: after the IPv4 header, or at the end of the IPv6
    /// extension-header chain. A routing header with segments left stops
    /// the walk: the pseudo-header would need the final destination, which
    /// sits in that header.
    ///
    /// # Errors
    /// As [`IpHeader::parse`] and [`Ipv6Chain::next`];
    /// [`WireError::RoutingHeaderInTransit`].
    #[inline]
    pub(crate) fn parse(bytes: &[u8]) -> Result<Datagram, WireError> {
        let ip = IpHeader::parse(bytes)?;
        let upper = if ip.version == 4 {
            if ip.ipv4_fragment { Upper::Fragment } else { Upper::At { protocol: ip.protocol, offset: ip.header_len } }
        } else {
            let mut chain = ip.ipv6_chain(bytes);
            while let Some(ext) = chain.next()? {
                if ext.segments_left() > 0 {
                    return Err(WireError::RoutingHeaderInTransit);
                }
            }
            match chain.pos() {
                pos if pos.next_header == protocol::FRAGMENT => Upper::Fragment,
                pos => Upper::At { protocol: pos.next_header, offset: pos.offset },
            }
        };
        Ok(Datagram { ip, upper })
    }

    /// The upper-layer segment of the datagram in `bytes` (the buffer it
    /// was parsed from), from its header to the end of the datagram; `None`
    /// for a fragment.
    #[inline]
    pub(crate) fn upper_segment<'b>(&self, bytes: &'b [u8]) -> Option<&'b [u8]> {
        match self.upper {
            Upper::At { offset, .. } => Some(&self.ip.datagram(bytes)[offset..]),
            Upper::Fragment => None,
        }
    }

    /// [`upper_segment`](Self::upper_segment), writable.
    #[inline]
    pub(crate) fn upper_segment_mut<'b>(&self, bytes: &'b mut [u8]) -> Option<&'b mut [u8]> {
        match self.upper {
            Upper::At { offset, .. } => Some(&mut bytes[offset..self.ip.len]),
            Upper::Fragment => None,
        }
    }
}
