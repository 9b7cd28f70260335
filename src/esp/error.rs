//! Why a packet was refused, in a form a program can match on and a person
//! can act on.

use crate::net::{self, WireError};
use core::fmt;

/// Which checksum failed (the network layer's names for them).
pub use crate::net::ChecksumKind;

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
    /// A UDP header or datagram (also the NAT-T encapsulation).
    Udp,
    /// A TCP header.
    Tcp,
    /// An ICMP or ICMPv6 header.
    Icmp,
    /// The ESP header, IV, ciphertext and ICV.
    Esp,
    /// The ESP trailer (pad length and next header) inside the decrypted payload.
    EspTrailer,
    /// The inner packet carried in tunnel mode.
    Inner,
}

impl Header {
    fn name(self) -> &'static str {
        match self {
            Header::Ip => "IP",
            Header::Ipv4 => "IPv4",
            Header::Ipv6 => "IPv6",
            Header::Ipv6Extension => "IPv6 extension header",
            Header::Udp => "UDP",
            Header::Tcp => "TCP",
            Header::Icmp => "ICMP",
            Header::Esp => "ESP",
            Header::EspTrailer => "ESP trailer",
            Header::Inner => "inner (tunnelled) packet",
        }
    }
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A header field whose value is impossible or not allowed.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// The IP version nibble is neither 4 nor 6.
    IpVersion,
    /// IPv4 IHL below 5 (20 bytes).
    Ipv4HeaderLength,
    /// IPv4 total length below the header length.
    Ipv4TotalLength,
    /// The IPv4 header checksum does not verify.
    Ipv4HeaderChecksum,
    /// The IP protocol / next header is not the one this SA expects
    /// (ESP, or UDP for NAT-T).
    Protocol,
    /// A hop-by-hop options header anywhere but first in the IPv6 chain.
    Ipv6HopByHopPosition,
    /// The UDP length field disagrees with the bytes the IP header gives it.
    UdpLength,
    /// UDP-encapsulated payload that is neither ESP, a non-ESP marker nor a keepalive.
    UdpEncapsulation,
    /// TCP data offset below 5 words or past the end of the segment.
    TcpDataOffset,
    /// ESP ciphertext length is not a multiple of 4 bytes (RFC 4303 §2.4).
    EspCiphertextLength,
    /// The sequence number cannot be placed (ESN estimate past 2^64).
    SequenceNumber,
    /// The next header in the ESP trailer does not fit the SA's mode or the
    /// inner packet (tunnel mode needs 4 for IPv4 or 41 for IPv6).
    NextHeader,
    /// The inner packet's own length is larger than the decrypted payload.
    InnerLength,
}

impl Field {
    fn describe(self) -> &'static str {
        match self {
            Field::IpVersion => "IP version is neither 4 nor 6",
            Field::Ipv4HeaderLength => "IPv4 header length (IHL) is below 5 words",
            Field::Ipv4TotalLength => "IPv4 total length is smaller than its header",
            Field::Ipv4HeaderChecksum => "IPv4 header checksum does not verify",
            Field::Protocol => "IP protocol/next header is not the one this SA expects (50 for ESP, 17 for NAT-T)",
            Field::Ipv6HopByHopPosition => "IPv6 hop-by-hop options header is not first in the chain",
            Field::UdpLength => "UDP length field disagrees with the IP payload length",
            Field::UdpEncapsulation => {
                "UDP payload on the NAT-T port is neither ESP, a non-ESP marker nor a NAT keepalive"
            }
            Field::TcpDataOffset => "TCP data offset is below 5 words or past the end of the segment",
            Field::EspCiphertextLength => "ESP ciphertext length is not a multiple of 4 bytes",
            Field::SequenceNumber => "ESP sequence number lies beyond the 64-bit sequence space",
            Field::NextHeader => "ESP next header does not fit the SA's mode or the inner packet",
            Field::InnerLength => "inner packet length is larger than the decrypted payload",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

impl From<net::Header> for Header {
    fn from(header: net::Header) -> Header {
        match header {
            net::Header::Ip => Header::Ip,
            net::Header::Ipv4 => Header::Ipv4,
            net::Header::Ipv6 => Header::Ipv6,
            net::Header::Ipv6Extension => Header::Ipv6Extension,
            net::Header::Udp => Header::Udp,
            net::Header::Tcp => Header::Tcp,
            net::Header::Icmp => Header::Icmp,
        }
    }
}

impl From<net::Field> for Field {
    fn from(field: net::Field) -> Field {
        match field {
            net::Field::IpVersion => Field::IpVersion,
            net::Field::Ipv4HeaderLength => Field::Ipv4HeaderLength,
            net::Field::Ipv4TotalLength => Field::Ipv4TotalLength,
            net::Field::Ipv6HopByHopPosition => Field::Ipv6HopByHopPosition,
            net::Field::UdpLength => Field::UdpLength,
            net::Field::TcpDataOffset => Field::TcpDataOffset,
        }
    }
}

/// A header the network layer refused is the packet's fault: the same
/// header, field and lengths, in ESP's terms.
impl From<WireError> for EspError {
    fn from(e: WireError) -> EspError {
        match e {
            WireError::Truncated { header, needed, available } => {
                EspError::Truncated { header: header.into(), needed, available }
            }
            WireError::Malformed { field, value } => EspError::Malformed { field: field.into(), value },
            WireError::TooLarge { len, max } => EspError::TooLarge { len, max },
            WireError::UnsupportedExtension(nh) => EspError::Unsupported(Limitation::Ipv6ExtensionHeader(nh)),
            WireError::RoutingHeaderInTransit => EspError::Unsupported(Limitation::RoutingHeaderInTransit),
            WireError::Jumbogram => EspError::Unsupported(Limitation::Jumbogram),
        }
    }
}

/// Something a packet or a setting asks for that this engine does not do.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limitation {
    /// The requested AES-GCM backend cannot run here.
    Backend(crate::Backend),
    /// An IPv6 extension header this engine does not walk (AH, mobility, ...),
    /// found where ESP or the upper-layer header was expected.
    Ipv6ExtensionHeader(u8),
    /// An IPv6 routing header with segments left: the final destination (used
    /// in the upper-layer pseudo-header) would have to be read from the
    /// routing header, which is not implemented, so the checksum cannot be
    /// verified.
    RoutingHeaderInTransit,
    /// IPv6 jumbograms (payload length 0 with a jumbo option).
    Jumbogram,
    /// `nat_original` addresses are of the other IP family than the packet.
    NatOriginalFamily,
    /// A dummy packet in transport mode needs the endpoints' addresses.
    DummyNeedsAddresses,
}

impl fmt::Display for Limitation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limitation::Backend(b) => match b.unsupported_reason() {
                Some(why) => write!(f, "backend {b} cannot run here ({why}); leave SaConfig::backend as None"),
                None => write!(f, "backend {b} is not usable here"),
            },
            Limitation::Ipv6ExtensionHeader(nh) => {
                write!(f, "IPv6 extension header {nh} is not supported where ESP or TCP/UDP was expected")
            }
            Limitation::RoutingHeaderInTransit => f.write_str(
                "IPv6 routing header with segments left: the final destination for the checksum \
                 pseudo-header is not derived, so the packet cannot be checked",
            ),
            Limitation::Jumbogram => f.write_str("IPv6 jumbograms (payload length 0) are not supported"),
            Limitation::NatOriginalFamily => {
                f.write_str("SaConfig::nat_original is of the other IP family than the packet")
            }
            Limitation::DummyNeedsAddresses => {
                f.write_str("a transport-mode dummy packet needs the source and destination addresses")
            }
        }
    }
}

/// Why an ESP operation failed.
///
/// Every variant says which field, which sequence number or which setting,
/// so that a log line made from it (by the caller, who decides how often to
/// log) can be acted on. [`is_benign`](EspError::is_benign) separates
/// outcomes that are part of normal operation (dummy packets, NAT keepalives,
/// IKE packets on port 4500) from rejections.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EspError {
    /// A header's bytes ran out: it needs `needed` bytes and only
    /// `available` were there.
    Truncated {
        /// The header being read.
        header: Header,
        /// Bytes the header (or its length field) asks for.
        needed: usize,
        /// Bytes actually present.
        available: usize,
    },
    /// A header field holds an impossible or unexpected value.
    Malformed {
        /// Which field.
        field: Field,
        /// The value found.
        value: u64,
    },
    /// An IP fragment (offset or more-fragments set, or an IPv6 fragment
    /// header) where a whole datagram is needed: ESP is applied to and
    /// removed from whole datagrams; reassemble first.
    Fragment,
    /// The packet carries another SPI than this SA's.
    UnknownSpi {
        /// The SPI in the packet.
        spi: u32,
        /// This SA's SPI.
        expected: u32,
    },
    /// The sequence number was already received (inside the replay window).
    Replay {
        /// The (reconstructed, with ESN) sequence number.
        seq: u64,
    },
    /// The sequence number lies below the replay window (or is 0).
    TooOld {
        /// The (reconstructed) sequence number.
        seq: u64,
        /// The highest sequence number received so far.
        highest: u64,
        /// The window size in packets.
        window: u32,
    },
    /// The ICV does not verify: wrong key, damaged or forged packet, or a
    /// wrong ESN guess. Nothing was released; the replay window is unchanged.
    Auth {
        /// The (reconstructed) sequence number of the packet.
        seq: u64,
    },
    /// The decrypted padding is not 1, 2, 3, ... or the pad length does not
    /// fit the payload.
    BadPadding {
        /// Sequence number of the packet.
        seq: u64,
        /// The pad length byte.
        pad_len: u8,
    },
    /// The packet handed to `seal` has a wrong checksum: it was damaged
    /// before encryption. Nothing was sent.
    ChecksumBeforeEncrypt {
        /// Which checksum.
        kind: ChecksumKind,
        /// The checksum in the packet.
        found: u16,
        /// The checksum the packet's bytes call for.
        expected: u16,
    },
    /// The decrypted packet has a wrong checksum: it was damaged before the
    /// peer encrypted it (the ICV covers only what the peer encrypted).
    ChecksumAfterDecrypt {
        /// Sequence number of the packet.
        seq: u64,
        /// Which checksum.
        kind: ChecksumKind,
        /// The checksum in the packet (after any NAT-T fix-up).
        found: u16,
        /// The checksum the packet's bytes call for.
        expected: u16,
    },
    /// The decrypted packet carries a protocol this SA does not deliver
    /// ([`SaConfig::next_headers`](super::SaConfig::next_headers)): the
    /// peer sent another protocol, or the trailer's next header was
    /// corrupted before the peer's ICV was computed over it. Dropped.
    UnexpectedNextHeader {
        /// Sequence number of the packet.
        seq: u64,
        /// The protocol found: the trailer's next header (in transport mode
        /// over IPv6, the header that follows the extension headers carried
        /// inside ESP).
        next_header: u8,
    },
    /// Every sequence number of this SA has been used: re-key. Nothing was sent.
    SequenceExhausted {
        /// The last sequence number sent.
        last: u64,
    },
    /// The next sequence number is at or past the limit set with
    /// [`Outbound::set_sequence_limit`](super::Outbound::set_sequence_limit):
    /// nothing was sent and no number was used. Record a higher
    /// reservation, then raise the limit.
    SequenceLimit {
        /// The limit: numbers from this one on are refused.
        limit: u64,
    },
    /// An authentic dummy packet (next header 59, RFC 4303 §2.6): drop it
    /// silently. Not an attack.
    Dummy {
        /// Sequence number of the packet.
        seq: u64,
    },
    /// A NAT-T keepalive (a single 0xFF byte on UDP 4500, RFC 3948 §2.3):
    /// nothing to do. Not an attack.
    NatKeepalive,
    /// A UDP 4500 datagram starting with the non-ESP marker (four zero bytes,
    /// RFC 3948 §2.2): an IKE message for the key-exchange daemon, not ESP.
    /// Not an attack.
    NonEsp,
    /// The packet (after any ESP overhead) would not fit its IP length field.
    TooLarge {
        /// The length it would need.
        len: usize,
        /// The largest length the field can say.
        max: usize,
    },
    /// No inbound SA is installed for this SPI (and the packet's addresses)
    /// in the [`SaTable`](super::SaTable).
    NoSa {
        /// The SPI in the packet.
        spi: u32,
    },
    /// The packet's addresses, protocol or ports are outside the SA's
    /// traffic selectors ([`SaConfig::selectors`](super::SaConfig::selectors)):
    /// after decryption, a peer sending for addresses it may not speak for
    /// (dropped); before encryption, a packet this SA does not carry (not
    /// sent: look up the SA that covers it).
    NotCovered {
        /// Sequence number of a received packet; `None` on the sending side.
        seq: Option<u64>,
    },
    /// Sealed, the packet would exceed the SA's path MTU
    /// ([`SaConfig::path_mtu`](super::SaConfig::path_mtu)) and may not be
    /// fragmented (IPv4 with DF set, or IPv6). Nothing was sent: tell the
    /// sender with ICMP "fragmentation needed" or ICMPv6 "packet too big"
    /// carrying `mtu`.
    PacketTooBig {
        /// The length the sealed packet would have had.
        len: usize,
        /// The largest packet (before ESP) that fits: the MTU to report.
        mtu: usize,
    },
    /// The SA crossed a hard lifetime limit
    /// ([`SaConfig::lifetime`](super::SaConfig::lifetime)) and is stopped:
    /// nothing was sent or delivered. Re-key (the key manager was told at
    /// the soft limit).
    LifetimeExpired {
        /// The SA's SPI.
        spi: u32,
        /// Which limit.
        which: super::LifetimeKind,
    },
    /// [`SaTable`](super::SaTable): an SA with this key is already
    /// installed (delete it first, or use another SPI).
    SaExists {
        /// The key that is taken.
        key: super::SaKey,
    },
    /// [`SaTable`](super::SaTable): no SA with this key is installed.
    NoSuchSa {
        /// The key asked for.
        key: super::SaKey,
    },
    /// [`SaTable`](super::SaTable): no policy with this id is installed.
    NoSuchPolicy {
        /// The id asked for.
        id: super::PolicyId,
    },
    /// Something this engine does not do.
    Unsupported(Limitation),
    /// A setting or argument is not acceptable.
    Invalid {
        /// Which setting or argument (an `SaConfig` field name or a parameter name).
        parameter: &'static str,
        /// What is wrong and what would be accepted.
        reason: &'static str,
    },
    /// The AES-GCM layer refused a call (not an authentication failure).
    Crypto(crate::Error),
    /// Another live `Outbound` in this process already sends under this key
    /// and salt. Two senders would both use sequence numbers (IVs) 1, 2, 3,
    /// ... under one key, which AES-GCM does not survive: share the one SA
    /// between threads instead (it is `Send + Sync`), or re-key.
    KeyInUse {
        /// The SPI of the SA that was refused.
        spi: u32,
    },
}

impl EspError {
    /// True for outcomes that are part of normal operation and not evidence
    /// of an attack or a fault: [`Dummy`](EspError::Dummy),
    /// [`NatKeepalive`](EspError::NatKeepalive) and
    /// [`NonEsp`](EspError::NonEsp).
    pub fn is_benign(&self) -> bool {
        matches!(self, EspError::Dummy { .. } | EspError::NatKeepalive | EspError::NonEsp)
    }

    /// The sequence number the error is about, when it has one.
    pub fn seq(&self) -> Option<u64> {
        match *self {
            EspError::Replay { seq }
            | EspError::TooOld { seq, .. }
            | EspError::Auth { seq }
            | EspError::BadPadding { seq, .. }
            | EspError::ChecksumAfterDecrypt { seq, .. }
            | EspError::UnexpectedNextHeader { seq, .. }
            | EspError::NotCovered { seq: Some(seq) }
            | EspError::Dummy { seq } => Some(seq),
            EspError::SequenceExhausted { last } => Some(last),
            EspError::SequenceLimit { limit } => Some(limit),
            _ => None,
        }
    }
}

impl fmt::Display for EspError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EspError::Truncated { header, needed, available } => write!(
                f,
                "truncated {header}: it needs {needed} bytes but only {available} are present; \
                 the packet was cut short or a length field lies"
            ),
            EspError::Malformed { field, value } => write!(f, "malformed packet: {field} (value {value})"),
            EspError::Fragment => {
                f.write_str("IP fragment: ESP needs whole datagrams; reassemble before open (and fragment after seal)")
            }
            EspError::UnknownSpi { spi, expected } => write!(
                f,
                "SPI {spi:#010x} does not belong to this SA (SPI {expected:#010x}); look the SA up by SPI first"
            ),
            EspError::Replay { seq } => write!(f, "replayed packet: sequence number {seq} was already received"),
            EspError::TooOld { seq, highest, window } => write!(
                f,
                "sequence number {seq} is too old: the highest received is {highest} and the replay window \
                 is {window} packets"
            ),
            EspError::Auth { seq } => write!(
                f,
                "ICV check failed for sequence number {seq}: the packet is damaged or forged, or the keys \
                 disagree; nothing was released and the replay window is unchanged"
            ),
            EspError::BadPadding { seq, pad_len } => write!(
                f,
                "bad ESP padding in sequence number {seq} (pad length {pad_len}): padding must read 1, 2, 3, ... \
                 and fit in the payload"
            ),
            EspError::ChecksumBeforeEncrypt { kind, found, expected } => write!(
                f,
                "{kind} checksum of the packet to seal is {found:#06x} but its bytes call for {expected:#06x}: \
                 the packet was damaged before encryption, so it was not sent"
            ),
            EspError::ChecksumAfterDecrypt { seq, kind, found, expected } => write!(
                f,
                "{kind} checksum of decrypted sequence number {seq} is {found:#06x} but its bytes call for \
                 {expected:#06x}: the packet was damaged before the peer encrypted it; dropped"
            ),
            EspError::UnexpectedNextHeader { seq, next_header } => write!(
                f,
                "decrypted sequence number {seq} carries next header {next_header}, which this SA does not \
                 deliver (SaConfig::next_headers): another protocol from the peer, or a trailer corrupted \
                 before the peer's ICV was computed; dropped"
            ),
            EspError::SequenceExhausted { last } => {
                write!(f, "sequence numbers exhausted (last sent {last}): the SA must be re-keyed; nothing was sent")
            }
            EspError::SequenceLimit { limit } => write!(
                f,
                "sequence number limit reached: numbers from {limit} on are refused until the limit is \
                 raised (Outbound::set_sequence_limit, after recording the new reservation); nothing was sent"
            ),
            EspError::Dummy { seq } => {
                write!(f, "dummy packet (next header 59), sequence number {seq}: dropped as RFC 4303 says")
            }
            EspError::NatKeepalive => f.write_str("NAT-T keepalive (0xFF): nothing to deliver"),
            EspError::NonEsp => f.write_str("non-ESP marker on the NAT-T port: an IKE message; hand it to IKE"),
            EspError::TooLarge { len, max } => {
                write!(f, "packet too large: {len} bytes, but the IP length field allows at most {max}")
            }
            EspError::NoSa { spi } => write!(
                f,
                "no inbound SA for SPI {spi:#010x} (and these addresses) in the SA table: unknown, expired or \
                 removed; dropped"
            ),
            EspError::NotCovered { seq: Some(seq) } => write!(
                f,
                "decrypted sequence number {seq} is outside the SA's traffic selectors (addresses, protocol or \
                 ports): the peer may not send it on this SA; dropped"
            ),
            EspError::NotCovered { seq: None } => f.write_str(
                "the packet is outside the SA's traffic selectors (addresses, protocol or ports): not sent; \
                 seal it with the SA whose selectors cover it",
            ),
            EspError::PacketTooBig { len, mtu } => write!(
                f,
                "packet too big for the path: sealed it would be {len} bytes and may not be fragmented; \
                 nothing was sent; report an MTU of {mtu} to the sender (ICMP fragmentation needed / \
                 ICMPv6 packet too big)"
            ),
            EspError::LifetimeExpired { spi, which } => write!(
                f,
                "SA {spi:#010x} reached its hard {which} lifetime and is stopped; nothing was sent or \
                 delivered: re-key (install a new SA)"
            ),
            EspError::SaExists { key } => {
                write!(f, "{key} is already installed in the SA table; delete it first or use another SPI")
            }
            EspError::NoSuchSa { key } => write!(f, "no {key} is installed in the SA table"),
            EspError::NoSuchPolicy { id } => write!(f, "no {id} is installed in the SA table"),
            EspError::Unsupported(what) => write!(f, "unsupported: {what}"),
            EspError::Invalid { parameter, reason } => write!(f, "invalid {parameter}: {reason}"),
            EspError::Crypto(e) => write!(f, "AES-GCM: {e}"),
            EspError::KeyInUse { spi } => write!(
                f,
                "SA {spi:#010x}: another live Outbound in this process already sends under this key and salt; \
                 two senders would repeat IVs, so share that SA between threads instead of making a second one"
            ),
        }
    }
}

impl std::error::Error for EspError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EspError::Crypto(e) => Some(e),
            _ => None,
        }
    }
}
