//! Why bytes are not a well-formed header, in terms of the header alone.
//!
//! The views of this layer know nothing of what their caller does with a
//! packet, so their errors name only the header, the field and the lengths.
//! A protocol built on them (ESP: `From<WireError> for EspError`) turns a
//! `WireError` into its own error type.

use core::fmt;

/// A header whose bytes ran out before its own length said they would.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Header {
    /// The first byte of an IP packet (the version nibble).
    Ip,
    /// An IPv4 header or its payload.
    Ipv4,
    /// The fixed IPv6 header or its payload.
    Ipv6,
    /// An IPv6 extension header (hop-by-hop, routing, destination options or fragment).
    Ipv6Extension,
    /// A UDP header or datagram.
    Udp,
    /// A TCP header.
    Tcp,
    /// An ICMP or ICMPv6 header.
    Icmp,
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Header::Ip => "IP",
            Header::Ipv4 => "IPv4",
            Header::Ipv6 => "IPv6",
            Header::Ipv6Extension => "IPv6 extension header",
            Header::Udp => "UDP",
            Header::Tcp => "TCP",
            Header::Icmp => "ICMP",
        })
    }
}

/// A header field whose value is impossible.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// The IP version nibble is neither 4 nor 6 (or not the one the view is for).
    IpVersion,
    /// IPv4 IHL below 5 (20 bytes).
    Ipv4HeaderLength,
    /// IPv4 total length below the header length.
    Ipv4TotalLength,
    /// A hop-by-hop options header anywhere but first in the IPv6 chain.
    Ipv6HopByHopPosition,
    /// The UDP length field disagrees with the bytes the IP header gives it.
    UdpLength,
    /// TCP data offset below 5 words or past the end of the segment.
    TcpDataOffset,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::IpVersion => "IP version is neither 4 nor 6",
            Field::Ipv4HeaderLength => "IPv4 header length (IHL) is below 5 words",
            Field::Ipv4TotalLength => "IPv4 total length is smaller than its header",
            Field::Ipv6HopByHopPosition => "IPv6 hop-by-hop options header is not first in the chain",
            Field::UdpLength => "UDP length field disagrees with the IP payload length",
            Field::TcpDataOffset => "TCP data offset is below 5 words or past the end of the segment",
        })
    }
}

/// Why a view, a walk or an `emit` refused its bytes.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WireError {
    /// A header's bytes ran out: it needs `needed` bytes and only
    /// `available` were there.
    Truncated {
        /// The header being read or written.
        header: Header,
        /// Bytes the header (or its length field) asks for.
        needed: usize,
        /// Bytes actually present.
        available: usize,
    },
    /// A header field holds an impossible value.
    Malformed {
        /// Which field.
        field: Field,
        /// The value found.
        value: u64,
    },
    /// A length that does not fit the header's 16-bit length field.
    TooLarge {
        /// The length it would need.
        len: usize,
        /// The largest length the field can say.
        max: usize,
    },
    /// An IPv6 extension header of this type cannot be walked over
    /// (AH, mobility, ...): its length is not in the common format.
    UnsupportedExtension(u8),
    /// An IPv6 routing header with segments left: the final destination,
    /// which the upper-layer pseudo-header uses, would have to be read from
    /// the routing header, so the upper-layer checksum cannot be checked.
    RoutingHeaderInTransit,
    /// An IPv6 jumbogram (payload length 0 with a jumbo option).
    Jumbogram,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated { header, needed, available } => write!(
                f,
                "truncated {header}: it needs {needed} bytes but only {available} are present; \
                 the packet was cut short or a length field lies"
            ),
            WireError::Malformed { field, value } => write!(f, "malformed packet: {field} (value {value})"),
            WireError::TooLarge { len, max } => {
                write!(f, "packet too large: {len} bytes, but the IP length field allows at most {max}")
            }
            WireError::UnsupportedExtension(nh) => {
                write!(f, "IPv6 extension header {nh} is not supported where ESP or TCP/UDP was expected")
            }
            WireError::RoutingHeaderInTransit => f.write_str(
                "IPv6 routing header with segments left: the final destination for the checksum \
                 pseudo-header is not derived, so the packet cannot be checked",
            ),
            WireError::Jumbogram => f.write_str("IPv6 jumbograms (payload length 0) are not supported"),
        }
    }
}

impl std::error::Error for WireError {}
