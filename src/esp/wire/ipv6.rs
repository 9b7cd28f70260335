//! IPv6 header (RFC 8200) and the extension headers ESP has to walk
//! (hop-by-hop, routing, destination options, fragment).

use super::{Field, get_array, get_u8, get_u16, get_u32, protocol, set_bytes, set_u8, set_u16, set_u32, slice};
use crate::esp::{EspError, Field as BadField, Header, Limitation};
use std::net::Ipv6Addr;

mod field {
    use super::Field;
    pub const VER_TC_FLOW: usize = 0;
    pub const LENGTH: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: Field = 8..24;
    pub const DST: Field = 24..40;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// Source then destination address: the part of the header the
/// upper-layer pseudo-header repeats.
pub(crate) const ADDRESSES: Field = field::SRC.start..field::DST.end;
/// Byte offset of the fixed header's next-header field.
pub const NEXT_HEADER_OFFSET: usize = field::NEXT_HEADER;

/// A checked view of an IPv6 packet.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wrap a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> Ipv6Packet<T> {
        Ipv6Packet { buffer }
    }

    /// Wrap a buffer after checking the version and that the payload length
    /// fits the bytes present (bytes past it are ignored).
    ///
    /// # Errors
    /// [`EspError::Truncated`], [`EspError::Malformed`], or
    /// [`EspError::Unsupported`] for a jumbogram.
    pub fn new_checked(buffer: T) -> Result<Ipv6Packet<T>, EspError> {
        let packet = Ipv6Packet { buffer };
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
            return Err(EspError::Truncated { header: Header::Ipv6, needed: HEADER_LEN, available });
        }
        if self.version() != 6 {
            return Err(EspError::Malformed { field: BadField::IpVersion, value: self.version().into() });
        }
        if self.payload_len() == 0 && self.next_header() == protocol::HOP_BY_HOP {
            return Err(EspError::Unsupported(Limitation::Jumbogram));
        }
        let needed = HEADER_LEN + self.payload_len();
        if needed > available {
            return Err(EspError::Truncated { header: Header::Ipv6, needed, available });
        }
        Ok(())
    }

    /// The buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version nibble (6).
    pub fn version(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::VER_TC_FLOW) >> 4
    }

    /// Traffic class (DS field and ECN).
    pub fn traffic_class(&self) -> u8 {
        ((get_u32(self.buffer.as_ref(), field::VER_TC_FLOW) >> 20) & 0xff) as u8
    }

    /// Flow label.
    pub fn flow_label(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Payload length (everything after the fixed header).
    pub fn payload_len(&self) -> usize {
        usize::from(get_u16(self.buffer.as_ref(), field::LENGTH))
    }

    /// Next header of the fixed header.
    pub fn next_header(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::NEXT_HEADER)
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        get_u8(self.buffer.as_ref(), field::HOP_LIMIT)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(get_array::<16>(self.buffer.as_ref(), field::SRC.start))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(get_array::<16>(self.buffer.as_ref(), field::DST.start))
    }

    /// The packet up to the end of its payload.
    pub fn packet(&self) -> &[u8] {
        slice(self.buffer.as_ref(), 0..HEADER_LEN + self.payload_len())
    }

    /// The payload (extension headers included).
    pub fn payload(&self) -> &[u8] {
        slice(self.buffer.as_ref(), HEADER_LEN..HEADER_LEN + self.payload_len())
    }

    /// The start of the extension-header chain.
    pub fn chain_start(&self) -> ChainPos {
        ChainPos { next_header: self.next_header(), offset: HEADER_LEN, next_header_at: field::NEXT_HEADER }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Set the payload length.
    pub fn set_payload_len(&mut self, len: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, len);
    }
}

/// A position in an IPv6 header chain: the header of type `next_header`
/// starts at byte `offset` of the packet, and byte `next_header_at` is the
/// field that names it (6 for the fixed header, or the first byte of the
/// previous extension header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainPos {
    /// Type of the header at `offset`.
    pub next_header: u8,
    /// Where that header starts.
    pub offset: usize,
    /// Where the byte naming it is.
    pub next_header_at: usize,
}

/// Whether `next_header` is an extension header that [`Ipv6ExtHeader`] can
/// walk over (hop-by-hop, routing, destination options, fragment).
pub fn is_walkable_extension(next_header: u8) -> bool {
    matches!(next_header, protocol::HOP_BY_HOP | protocol::ROUTING | protocol::DESTINATION_OPTIONS | protocol::FRAGMENT)
}

/// A checked view of one IPv6 extension header (hop-by-hop, routing,
/// destination options: length in 8-byte units after the first 8; fragment:
/// always 8 bytes).
#[derive(Clone, Copy, Debug)]
pub struct Ipv6ExtHeader<'a> {
    bytes: &'a [u8],
    kind: u8,
}

impl<'a> Ipv6ExtHeader<'a> {
    /// The extension header of type `kind` at the start of `buf`, checked
    /// against the bytes present.
    ///
    /// # Errors
    /// [`EspError::Truncated`] (extension header) when its length runs past
    /// `buf`; [`EspError::Unsupported`] for a type that is not walkable.
    pub fn new_checked(buf: &'a [u8], kind: u8) -> Result<Ipv6ExtHeader<'a>, EspError> {
        if !is_walkable_extension(kind) {
            return Err(EspError::Unsupported(Limitation::Ipv6ExtensionHeader(kind)));
        }
        if buf.len() < 8 {
            return Err(EspError::Truncated { header: Header::Ipv6Extension, needed: 8, available: buf.len() });
        }
        let len = if kind == protocol::FRAGMENT { 8 } else { (usize::from(get_u8(buf, 1)) + 1) * 8 };
        match buf.get(..len) {
            Some(bytes) => Ok(Ipv6ExtHeader { bytes, kind }),
            None => Err(EspError::Truncated { header: Header::Ipv6Extension, needed: len, available: buf.len() }),
        }
    }

    /// The type of this header.
    pub fn kind(&self) -> u8 {
        self.kind
    }

    /// The type of the header after it.
    pub fn next_header(&self) -> u8 {
        get_u8(self.bytes, 0)
    }

    /// Length of this header in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: an extension header has at least 8 bytes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Routing header: segments left (0 for other types).
    pub fn segments_left(&self) -> u8 {
        if self.kind == protocol::ROUTING { get_u8(self.bytes, 3) } else { 0 }
    }
}

/// Step over the walkable extension header at `pos` in `packet`.
///
/// # Errors
/// As [`Ipv6ExtHeader::new_checked`].
pub fn step<'a>(packet: &'a [u8], pos: ChainPos) -> Result<(Ipv6ExtHeader<'a>, ChainPos), EspError> {
    let rest = packet.get(pos.offset..).unwrap_or(&[]);
    let ext = Ipv6ExtHeader::new_checked(rest, pos.next_header)?;
    let next = ChainPos { next_header: ext.next_header(), offset: pos.offset + ext.len(), next_header_at: pos.offset };
    Ok((ext, next))
}

/// The typed fields of the fixed IPv6 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header.
    pub next_header: u8,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Read the fields of a checked packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Ipv6Repr {
        Ipv6Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: packet.payload_len(),
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        }
    }

    /// Write the 40-byte fixed header to the start of `buf`.
    ///
    /// # Errors
    /// [`EspError::Truncated`] if `buf` is shorter than 40 bytes,
    /// [`EspError::TooLarge`] if the payload exceeds 65535 bytes.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), EspError> {
        let len = u16::try_from(self.payload_len)
            .map_err(|_| EspError::TooLarge { len: self.payload_len, max: usize::from(u16::MAX) })?;
        let Some(header) = buf.get_mut(..HEADER_LEN) else {
            return Err(EspError::Truncated { header: Header::Ipv6, needed: HEADER_LEN, available: buf.len() });
        };
        let first = (6u32 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0x000f_ffff);
        set_u32(header, field::VER_TC_FLOW, first);
        set_u16(header, field::LENGTH, len);
        set_u8(header, field::NEXT_HEADER, self.next_header);
        set_u8(header, field::HOP_LIMIT, self.hop_limit);
        set_bytes(header, field::SRC.start, &self.src_addr.octets());
        set_bytes(header, field::DST.start, &self.dst_addr.octets());
        Ok(())
    }
}
