//! IPv4 header (RFC 791), options included.

use super::{Field, get_array, get_u8, get_u16, set_bytes, set_u8, set_u16, slice};
use crate::esp::checksum::Sum;
use crate::esp::{EspError, Field as BadField, Header};
use std::net::Ipv4Addr;

mod field {
    use super::Field;
    pub const VER_IHL: usize = 0;
    pub const DS_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLAGS_FRAG: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: Field = 12..16;
    pub const DST: Field = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;
/// Byte offset of the protocol field.
pub const PROTOCOL_OFFSET: usize = field::PROTOCOL;
/// Source then destination address: the part of the header the
/// upper-layer pseudo-header repeats.
pub(crate) const ADDRESSES: Field = field::SRC.start..field::DST.end;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET: u16 = 0x1fff;

/// A checked view of an IPv4 packet.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wrap a buffer without checking it (accessors never panic, but may
    /// read zeros). Use [`new_checked`](Self::new_checked) on untrusted input.
    pub fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wrap a buffer after checking version, header length and total length
    /// against the bytes present. Bytes past the total length (link-layer
    /// padding) are allowed and ignored.
    ///
    /// # Errors
    /// [`EspError::Truncated`] or [`EspError::Malformed`] naming the field.
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>, EspError> {
        let packet = Ipv4Packet { buffer };
        packet.check_len()?;
        Ok(packet)
    }

    /// The checks of [`new_checked`](Self::new_checked).
    ///
    /// # Errors
    /// As [`new_checked`](Self::new_checked).
    pub fn check_len(&self) -> Result<(), EspError> {
        let available = self.buffer.as_ref().len();
        if available < HEADER_LEN {
            return Err(EspError::Truncated { header: Header::Ipv4, needed: HEADER_LEN, available });
        }
        if self.version() != 4 {
            return Err(EspError::Malformed { field: BadField::IpVersion, value: self.version().into() });
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(EspError::Malformed { field: BadField::Ipv4HeaderLength, value: (header_len / 4) as u64 });
        }
        if header_len > available {
            return Err(EspError::Truncated { header: Header::Ipv4, needed: header_len, available });
        }
        let total = self.total_len();
        if total < header_len {
            return Err(EspError::Malformed { field: BadField::Ipv4TotalLength, value: total as u64 });
        }
        if total > available {
            return Err(EspError::Truncated { header: Header::Ipv4, needed: total, available });
        }
        Ok(())
    }

    /// The buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version nibble (4).
    pub fn version(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::VER_IHL) >> 4
    }

    /// Header length in bytes (IHL x 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(get_u8(self.buffer.as_ref(), field::VER_IHL) & 0x0f) * 4
    }

    /// The DS field and ECN bits (the former TOS byte).
    pub fn dscp_ecn(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::DS_ECN)
    }

    /// Total length (header and payload).
    pub fn total_len(&self) -> usize {
        usize::from(get_u16(self.buffer.as_ref(), field::LENGTH))
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_DF != 0
    }

    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        usize::from(get_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FRAG_OFFSET) * 8
    }

    /// Whether this is a fragment (more-fragments set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::TTL)
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::PROTOCOL)
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(get_array::<4>(self.buffer.as_ref(), field::SRC.start))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(get_array::<4>(self.buffer.as_ref(), field::DST.start))
    }

    /// Whether the header checksum verifies.
    pub fn verify_checksum(&self) -> bool {
        Sum::ZERO.add_bytes(self.header()).verifies()
    }

    /// The checksum the header's bytes call for.
    pub fn expected_checksum(&self) -> u16 {
        let found = self.checksum();
        // Remove the stored value from the sum: adding its complement.
        Sum::ZERO.add_bytes(self.header()).add_u16(!found).checksum()
    }

    /// The header, options included.
    pub fn header(&self) -> &[u8] {
        slice(self.buffer.as_ref(), 0..self.header_len())
    }

    /// The payload (up to the total length; link padding excluded).
    pub fn payload(&self) -> &[u8] {
        slice(self.buffer.as_ref(), self.header_len()..self.total_len())
    }

    /// The packet up to its total length.
    pub fn packet(&self) -> &[u8] {
        slice(self.buffer.as_ref(), 0..self.total_len())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Set the total length.
    pub fn set_total_len(&mut self, len: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Set the protocol.
    pub fn set_protocol(&mut self, protocol: u8) {
        set_u8(self.buffer.as_mut(), field::PROTOCOL, protocol);
    }

    /// Recompute and store the header checksum.
    pub fn fill_checksum(&mut self) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let checksum = Sum::ZERO.add_bytes(self.header()).checksum();
        set_u16(self.buffer.as_mut(), field::CHECKSUM, checksum);
    }
}

/// The typed fields of an IPv4 header without options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Payload protocol.
    pub protocol: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// DS field and ECN.
    pub dscp_ecn: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Read the fields of a checked packet (options are skipped; the payload
    /// length is the total length minus the full header length).
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Ipv4Repr {
        Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.total_len().saturating_sub(packet.header_len()),
            ttl: packet.ttl(),
            dscp_ecn: packet.dscp_ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        }
    }

    /// Write a 20-byte header (with its checksum) to the start of `buf`.
    ///
    /// # Errors
    /// [`EspError::Truncated`] if `buf` is shorter than 20 bytes,
    /// [`EspError::TooLarge`] if the total length exceeds 65535.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), EspError> {
        let total = HEADER_LEN + self.payload_len;
        let total16 =
            u16::try_from(total).map_err(|_| EspError::TooLarge { len: total, max: usize::from(u16::MAX) })?;
        let Some(header) = buf.get_mut(..HEADER_LEN) else {
            return Err(EspError::Truncated { header: Header::Ipv4, needed: HEADER_LEN, available: buf.len() });
        };
        set_u8(header, field::VER_IHL, 0x45);
        set_u8(header, field::DS_ECN, self.dscp_ecn);
        set_u16(header, field::LENGTH, total16);
        set_u16(header, field::IDENT, self.ident);
        set_u16(header, field::FLAGS_FRAG, if self.dont_frag { FLAG_DF } else { 0 });
        set_u8(header, field::TTL, self.ttl);
        set_u8(header, field::PROTOCOL, self.protocol);
        set_bytes(header, field::SRC.start, &self.src_addr.octets());
        set_bytes(header, field::DST.start, &self.dst_addr.octets());
        Ipv4Packet::new_unchecked(header).fill_checksum();
        Ok(())
    }
}
