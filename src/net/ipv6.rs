//! IPv6 header (RFC 8200) and its extension-header chain (hop-by-hop,
//! routing, destination options, fragment), walked in one place:
//! [`Ipv6Chain`].

use super::{
    ByteRange, Field as BadField, Header, WireError, protocol, read_array, read_u16, read_u32, write_u16, write_u32,
};
use std::net::Ipv6Addr;

mod field {
    use super::ByteRange;
    pub const VER_TC_FLOW: ByteRange = 0..4;
    pub const LENGTH: ByteRange = 4..6;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: ByteRange = 8..24;
    pub const DST: ByteRange = 24..40;
}

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// Source then destination address: the part of the header the
/// upper-layer pseudo-header repeats.
pub(crate) const ADDRESSES: ByteRange = field::SRC.start..field::DST.end;
/// Byte offset of the fixed header's next-header field.
pub const NEXT_HEADER_OFFSET: usize = field::NEXT_HEADER;

/// A checked view of an IPv6 packet.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wrap a buffer without checking it: for a buffer already checked or
    /// built whole (accessors panic on one that is too short).
    pub fn new_unchecked(buffer: T) -> Ipv6Packet<T> {
        Ipv6Packet { buffer }
    }

    /// Wrap a buffer after checking the version and that the payload length
    /// fits the bytes present (bytes past it are ignored).
    ///
    /// # Errors
    /// [`WireError::Truncated`], [`WireError::Malformed`], or
    /// [`WireError::Jumbogram`].
    pub fn new_checked(buffer: T) -> Result<Ipv6Packet<T>, WireError> {
        let packet = Ipv6Packet { buffer };
        packet.check_len()?;
        Ok(packet)
    }

    /// The checks of [`new_checked`](Self::new_checked).
    ///
    /// # Errors
    /// As [`new_checked`](Self::new_checked).
    pub fn check_len(&self) -> Result<(), WireError> {
        let available = self.buffer.as_ref().len();
        if available < HEADER_LEN {
            return Err(WireError::Truncated { header: Header::Ipv6, needed: HEADER_LEN, available });
        }
        if self.version() != 6 {
            return Err(WireError::Malformed { field: BadField::IpVersion, value: self.version().into() });
        }
        if self.payload_len() == 0 && self.next_header() == protocol::HOP_BY_HOP {
            return Err(WireError::Jumbogram);
        }
        let needed = HEADER_LEN + self.payload_len();
        if needed > available {
            return Err(WireError::Truncated { header: Header::Ipv6, needed, available });
        }
        Ok(())
    }

    /// The buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version nibble (6).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_TC_FLOW.start] >> 4
    }

    /// Traffic class (DS field and ECN).
    pub fn traffic_class(&self) -> u8 {
        ((read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) >> 20) & 0xff) as u8
    }

    /// Flow label.
    pub fn flow_label(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::VER_TC_FLOW) & 0x000f_ffff
    }

    /// Payload length (everything after the fixed header).
    pub fn payload_len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::LENGTH))
    }

    /// Next header of the fixed header.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NEXT_HEADER]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read_array::<16>(self.buffer.as_ref(), field::SRC))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read_array::<16>(self.buffer.as_ref(), field::DST))
    }

    /// The packet up to the end of its payload.
    pub fn packet(&self) -> &[u8] {
        &self.buffer.as_ref()[..HEADER_LEN + self.payload_len()]
    }

    /// The payload (extension headers included).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len()]
    }

    /// The start of the extension-header chain.
    pub fn chain_start(&self) -> ChainPos {
        ChainPos { next_header: self.next_header(), offset: HEADER_LEN, next_header_at: field::NEXT_HEADER }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Set the payload length.
    pub fn set_payload_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Set the next-header byte at `at`: the fixed header's, or the first
    /// byte of an extension header (as [`ChainPos::next_header_at`] names
    /// it).
    pub fn set_next_header_at(&mut self, at: usize, next_header: u8) {
        self.buffer.as_mut()[at] = next_header;
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
/// read (hop-by-hop, routing, destination options, fragment).
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
    /// [`WireError::Truncated`] (extension header) when its length runs past
    /// `buf`; [`WireError::UnsupportedExtension`] for a type that is not
    /// walkable.
    pub fn new_checked(buf: &'a [u8], kind: u8) -> Result<Ipv6ExtHeader<'a>, WireError> {
        if !is_walkable_extension(kind) {
            return Err(WireError::UnsupportedExtension(kind));
        }
        if buf.len() < 8 {
            return Err(WireError::Truncated { header: Header::Ipv6Extension, needed: 8, available: buf.len() });
        }
        let len = if kind == protocol::FRAGMENT { 8 } else { (usize::from(buf[1]) + 1) * 8 };
        match buf.get(..len) {
            Some(bytes) => Ok(Ipv6ExtHeader { bytes, kind }),
            None => Err(WireError::Truncated { header: Header::Ipv6Extension, needed: len, available: buf.len() }),
        }
    }

    /// The type of this header.
    pub fn kind(&self) -> u8 {
        self.kind
    }

    /// The type of the header after it.
    pub fn next_header(&self) -> u8 {
        self.bytes[0]
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
        if self.kind == protocol::ROUTING { self.bytes[3] } else { 0 }
    }
}

/// The walk along an IPv6 packet's extension-header chain: the one place
/// where the chain is read.
///
/// [`next`](Self::next) steps over one hop-by-hop, routing or
/// destination-options header at a time, checking its length against the
/// packet and that hop-by-hop comes first (RFC 8200 §4.1). It stops, leaving
/// [`pos`](Self::pos) on it, at any other header: the upper layer, ESP, AH,
/// or a fragment header (what follows a fragment header is the fragment's
/// data, not a header the receiver can read). What to do there is the
/// caller's decision.
#[derive(Clone, Copy, Debug)]
pub struct Ipv6Chain<'a> {
    packet: &'a [u8],
    pos: ChainPos,
}

impl<'a> Ipv6Chain<'a> {
    /// The chain of a checked packet (up to the end of its payload), at
    /// its first header.
    pub fn new(packet: Ipv6Packet<&'a [u8]>) -> Ipv6Chain<'a> {
        let (pos, len) = (packet.chain_start(), HEADER_LEN + packet.payload_len());
        Ipv6Chain { packet: &packet.into_inner()[..len], pos }
    }

    /// The header the walk stands on.
    pub fn pos(&self) -> ChainPos {
        self.pos
    }

    /// Step over the extension header at [`pos`](Self::pos), if it is a
    /// hop-by-hop, routing or destination-options header, and return it;
    /// `None` (without moving) at any other header.
    ///
    /// # Errors
    /// [`WireError::Malformed`] (hop-by-hop position) for a hop-by-hop
    /// header after the first, [`WireError::Truncated`] (extension header)
    /// for one that runs past the packet.
    // Not `Iterator`: a walk ends on a header the caller still has to look at.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Ipv6ExtHeader<'a>>, WireError> {
        let pos = self.pos;
        match pos.next_header {
            protocol::HOP_BY_HOP if pos.offset != HEADER_LEN => {
                Err(WireError::Malformed { field: BadField::Ipv6HopByHopPosition, value: pos.offset as u64 })
            }
            protocol::HOP_BY_HOP | protocol::ROUTING | protocol::DESTINATION_OPTIONS => {
                let ext = Ipv6ExtHeader::new_checked(&self.packet[pos.offset..], pos.next_header)?;
                self.pos = ChainPos {
                    next_header: ext.next_header(),
                    offset: pos.offset + ext.len(),
                    next_header_at: pos.offset,
                };
                Ok(Some(ext))
            }
            _ => Ok(None),
        }
    }

    /// The packet split at [`pos`](Self::pos): the headers walked over
    /// (the fixed header first), and the rest from the current header on.
    pub fn split(&self) -> (&'a [u8], &'a [u8]) {
        self.packet.split_at(self.pos.offset)
    }
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
    /// Length of the header [`emit`](Self::emit) writes (the fixed header).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

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
    /// [`WireError::Truncated`] if `buf` is shorter than 40 bytes,
    /// [`WireError::TooLarge`] if the payload exceeds 65535 bytes.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let len = u16::try_from(self.payload_len)
            .map_err(|_| WireError::TooLarge { len: self.payload_len, max: usize::from(u16::MAX) })?;
        let Some(header) = buf.get_mut(..HEADER_LEN) else {
            return Err(WireError::Truncated { header: Header::Ipv6, needed: HEADER_LEN, available: buf.len() });
        };
        let first = (6u32 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0x000f_ffff);
        write_u32(header, field::VER_TC_FLOW, first);
        write_u16(header, field::LENGTH, len);
        header[field::NEXT_HEADER] = self.next_header;
        header[field::HOP_LIMIT] = self.hop_limit;
        header[field::SRC].copy_from_slice(&self.src_addr.octets());
        header[field::DST].copy_from_slice(&self.dst_addr.octets());
        Ok(())
    }
}
