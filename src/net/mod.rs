//! A protocol-neutral network layer: checked views of IPv4, IPv6 (with its
//! extension-header chain), UDP, TCP and ICMP/ICMPv6 headers, and the
//! Internet checksum with its pseudo-headers.
//!
//! Each header has a view, `XxxPacket<T: AsRef<[u8]>>`, over a byte buffer.
//! `new_checked` runs `check_len`, which compares every length field with
//! the bytes present, once; afterwards the accessors index the buffer
//! directly, and none of them can reach past it. An accessor that panicked
//! would mean a bug in `check_len`, not bad input: the fuzz targets in
//! `fuzz/` feed arbitrary bytes through every view to show that none does.
//! (A view made with `new_unchecked` promises nothing: it is for buffers the
//! caller has already checked or built.) Field offsets live in a `field`
//! module per header. A `XxxRepr` holds the typed values of a header: it is
//! read from a checked view with `parse`, knows its length on the wire
//! (`buffer_len`) and writes itself with `emit`.
//!
//! Errors are [`WireError`]s naming the header and the field; this layer
//! does not know what a caller (ESP, in this crate) does with a packet.
//! Nothing here allocates, and nothing trusts a length field before it has
//! been compared with the buffer.
//!
//! ```
//! use espgcm::net::checksum::pseudo_header_v4;
//! use espgcm::net::{Ipv4Packet, Ipv4Repr, UdpPacket, UdpRepr, protocol};
//! use std::net::Ipv4Addr;
//!
//! let (src, dst) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
//! let ip = Ipv4Repr { src_addr: src, dst_addr: dst, protocol: protocol::UDP, payload_len: 8 + 4,
//!                     ttl: 64, dscp_ecn: 0, ident: 1, dont_frag: false };
//! let udp = UdpRepr { src_port: 5000, dst_port: 53 };
//! let mut packet = vec![0u8; ip.buffer_len() + udp.buffer_len() + 4];
//! ip.emit(&mut packet)?;
//! packet[28..].copy_from_slice(b"ping");
//! udp.emit(&mut packet[20..], 4, Some(pseudo_header_v4(src, dst, protocol::UDP, 12)))?;
//!
//! let view = Ipv4Packet::new_checked(&packet[..])?;
//! assert!(view.verify_checksum());
//! let datagram = UdpPacket::new_checked(view.payload())?;
//! assert_eq!((datagram.dst_port(), datagram.payload()), (53, &b"ping"[..]));
//! assert!(Ipv4Packet::new_checked(&packet[..19]).is_err());
//! # Ok::<(), espgcm::net::WireError>(())
//! ```

#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod checksum;
mod error;
pub mod icmp;
pub(crate) mod ip;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;
pub(crate) mod upper;

pub use checksum::ChecksumKind;
pub use error::{Field, Header, WireError};
pub use icmp::{IcmpPacket, IcmpRepr};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Chain, Ipv6ExtHeader, Ipv6Packet, Ipv6Repr};
pub use tcp::{TcpPacket, TcpRepr};
pub use udp::{UdpPacket, UdpRepr};

/// IP protocol numbers (IANA) this layer and ESP use.
pub mod protocol {
    /// IPv6 hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// IPv4 inside IP (tunnel mode next header).
    pub const IPV4: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 inside IP (tunnel mode next header).
    pub const IPV6: u8 = 41;
    /// IPv6 routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Encapsulating Security Payload.
    pub const ESP: u8 = 50;
    /// Authentication Header.
    pub const AH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// No next header (ESP dummy packets).
    pub const NO_NEXT_HEADER: u8 = 59;
    /// IPv6 destination options.
    pub const DESTINATION_OPTIONS: u8 = 60;
}

/// A byte range of a header (the constants of each `field` module).
pub(crate) type ByteRange = core::ops::Range<usize>;

// The field readers and writers index directly: they are called with
// ranges that a view's `check_len` (or the caller's own construction of the
// buffer) has put inside the buffer, so an out-of-bounds range is a bug to
// be seen, not a value to be read as zero.

/// The big-endian u16 in `buf[field]` (two bytes).
#[inline]
pub(crate) fn read_u16(buf: &[u8], field: ByteRange) -> u16 {
    let b = &buf[field];
    u16::from_be_bytes([b[0], b[1]])
}

/// The big-endian u32 in `buf[field]` (four bytes).
#[inline]
pub(crate) fn read_u32(buf: &[u8], field: ByteRange) -> u32 {
    u32::from_be_bytes(read_array(buf, field))
}

/// The `N` bytes of `buf[field]`.
#[inline]
pub(crate) fn read_array<const N: usize>(buf: &[u8], field: ByteRange) -> [u8; N] {
    let mut bytes = [0; N];
    bytes.copy_from_slice(&buf[field]);
    bytes
}

/// Store `value` big-endian in `buf[field]` (two bytes).
#[inline]
pub(crate) fn write_u16(buf: &mut [u8], field: ByteRange, value: u16) {
    buf[field].copy_from_slice(&value.to_be_bytes());
}

/// Store `value` big-endian in `buf[field]` (four bytes).
#[inline]
pub(crate) fn write_u32(buf: &mut [u8], field: ByteRange, value: u32) {
    buf[field].copy_from_slice(&value.to_be_bytes());
}

/// `buf[range]`: the readers above for a field of any length, for the
/// views of protocols built on this layer (ESP's header view) once their
/// own length check has passed.
#[inline]
pub(crate) fn read_bytes<R: core::slice::SliceIndex<[u8], Output = [u8]>>(buf: &[u8], range: R) -> &[u8] {
    &buf[range]
}
