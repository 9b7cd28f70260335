//! Checked views over packet bytes, one module per header.
//!
//! Each header has a view, `XxxPacket<T: AsRef<[u8]>>`, over a byte buffer.
//! `new_checked` validates every length field against the bytes present,
//! once; afterwards no accessor can read out of bounds (they use checked
//! slicing and would return zeros rather than panic, but after
//! `new_checked` that cannot happen). Field offsets live in a `field`
//! module per header. A `XxxRepr` holds the typed values of a header and
//! can `parse` them from a view and `emit` them into a buffer.
//!
//! Nothing here allocates, and nothing trusts a length field before it has
//! been compared with the buffer.

pub mod esp;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

pub use esp::{EspPacket, EspRepr};
pub use ipv4::{Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6ExtHeader, Ipv6Packet, Ipv6Repr};
pub use tcp::{TcpPacket, TcpRepr};
pub use udp::{UdpPacket, UdpRepr};

/// IP protocol numbers (IANA) that ESP cares about.
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

/// A byte range of a header.
pub(crate) type Field = core::ops::Range<usize>;

/// Big-endian u16 at `at` (0 if out of bounds, which checked views rule out).
#[inline]
pub(crate) fn get_u16(buf: &[u8], at: usize) -> u16 {
    buf.get(at..).and_then(<[u8]>::first_chunk::<2>).map_or(0, |b| u16::from_be_bytes(*b))
}

/// Big-endian u32 at `at` (0 if out of bounds).
#[inline]
pub(crate) fn get_u32(buf: &[u8], at: usize) -> u32 {
    buf.get(at..).and_then(<[u8]>::first_chunk::<4>).map_or(0, |b| u32::from_be_bytes(*b))
}

/// The byte at `at` (0 if out of bounds).
#[inline]
pub(crate) fn get_u8(buf: &[u8], at: usize) -> u8 {
    buf.get(at).copied().unwrap_or(0)
}

/// `N` bytes at `at` (zeros if out of bounds).
#[inline]
pub(crate) fn get_array<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    buf.get(at..).and_then(<[u8]>::first_chunk::<N>).copied().unwrap_or([0; N])
}

/// Write a big-endian u16 at `at` (no-op if out of bounds).
#[inline]
pub(crate) fn set_u16(buf: &mut [u8], at: usize, value: u16) {
    if let Some(b) = buf.get_mut(at..).and_then(<[u8]>::first_chunk_mut::<2>) {
        *b = value.to_be_bytes();
    }
}

/// Write a big-endian u32 at `at` (no-op if out of bounds).
#[inline]
pub(crate) fn set_u32(buf: &mut [u8], at: usize, value: u32) {
    if let Some(b) = buf.get_mut(at..).and_then(<[u8]>::first_chunk_mut::<4>) {
        *b = value.to_be_bytes();
    }
}

/// Write a byte at `at` (no-op if out of bounds).
#[inline]
pub(crate) fn set_u8(buf: &mut [u8], at: usize, value: u8) {
    if let Some(b) = buf.get_mut(at) {
        *b = value;
    }
}

/// Copy `src` to `at` (no-op if it does not fit).
#[inline]
pub(crate) fn set_bytes(buf: &mut [u8], at: usize, src: &[u8]) {
    if let Some(dst) = buf.get_mut(at..).and_then(|b| b.get_mut(..src.len())) {
        dst.copy_from_slice(src);
    }
}

/// Append `bytes` to `out`. Headers of the usual lengths (a 20-byte IPv4
/// header, a 40-byte IPv6 header) are copied with fixed-size moves instead
/// of a `memcpy` call, which costs more than the copy at these sizes.
#[inline(always)]
pub(crate) fn extend_header(out: &mut Vec<u8>, bytes: &[u8]) {
    if let Ok(header) = <&[u8; 20]>::try_from(bytes) {
        out.extend_from_slice(header);
    } else if let Ok(header) = <&[u8; 40]>::try_from(bytes) {
        out.extend_from_slice(header);
    } else {
        out.extend_from_slice(bytes);
    }
}

/// `buf[range]`, or empty if out of bounds.
#[inline]
pub(crate) fn slice(buf: &[u8], range: Field) -> &[u8] {
    buf.get(range).unwrap_or(&[])
}
