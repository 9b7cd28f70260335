//! NAT traversal (RFC 3948): what arrives on the UDP encapsulation port,
//! and the transport-mode checksum fix-up for addresses a NAT rewrote.
//!
//! On port 4500 three things share the socket: ESP (its first four bytes are
//! the SPI, never 0), IKE (prefixed by the four-zero-byte non-ESP marker)
//! and NAT keepalives (a single 0xFF byte). [`classify`] tells them apart
//! so that IKE and keepalives are reported as what they are, not as broken
//! ESP.
//!
//! In transport mode the TCP/UDP checksum inside ESP was computed by the
//! sender over its own view of the addresses; a NAT on the way rewrote the
//! outer (and only) IP header, so the checksum no longer matches. RFC 3948
//! §3.1.2 offers three ways out; espgcm takes option 1: incrementally
//! replace the original addresses (from NAT-OA) by the received ones in the
//! checksum (RFC 1624 arithmetic), then verify the checksum in full. Option 3
//! (not checking at all) is what let corrupted data through in the incident
//! this crate was built after, and is never taken.

use super::{EspError, Field};
use crate::net::checksum::Sum;
use crate::net::ip::Addresses;
use crate::net::protocol;
use crate::net::upper::pseudo_header_checksum_offset;

/// The NAT keepalive payload (RFC 3948 §2.3).
pub const KEEPALIVE: u8 = 0xff;
/// The non-ESP marker (RFC 3948 §2.2).
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];

/// What a UDP payload on the NAT-T port is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UdpPayload<'a> {
    /// An ESP packet (SPI first).
    Esp(&'a [u8]),
    /// A NAT keepalive.
    Keepalive,
    /// An IKE message behind the non-ESP marker.
    NonEsp,
}

/// Tell ESP, IKE and keepalives apart.
///
/// # Errors
/// [`EspError::Malformed`] (UDP encapsulation) for 0 to 3 bytes that are not
/// a keepalive.
pub fn classify(payload: &[u8]) -> Result<UdpPayload<'_>, EspError> {
    match payload {
        [KEEPALIVE] => Ok(UdpPayload::Keepalive),
        [a, b, c, d, ..] if [*a, *b, *c, *d] == NON_ESP_MARKER => Ok(UdpPayload::NonEsp),
        [_, _, _, _, ..] => Ok(UdpPayload::Esp(payload)),
        _ => Err(EspError::Malformed { field: Field::UdpEncapsulation, value: payload.len() as u64 }),
    }
}

/// RFC 3948 §3.1.2 option 1: rewrite the checksum of the upper-layer packet
/// `segment` (of protocol `proto`) so that it is computed over the
/// `received` addresses instead of the `original` ones. Protocols without a
/// pseudo-header, and UDP over IPv4 without a checksum, are left alone.
pub(crate) fn fix_up_checksum(segment: &mut [u8], proto: u8, original: &Addresses, received: &Addresses) {
    let Some(at) = pseudo_header_checksum_offset(proto) else {
        return;
    };
    let Some(field) = segment.get_mut(at..).and_then(<[u8]>::first_chunk_mut::<2>) else {
        return; // The full check that follows reports the truncation.
    };
    let old = u16::from_be_bytes(*field);
    if proto == protocol::UDP && old == 0 && received.is_ipv4() {
        return;
    }
    // RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
    let mut new = Sum::ZERO.add_u16(!old).add_u16(!original.sum()).add_u16(received.sum()).checksum();
    if proto == protocol::UDP && new == 0 {
        new = 0xffff;
    }
    *field = new.to_be_bytes();
}
