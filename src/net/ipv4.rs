//! IPv4 header (RFC 791), options included.

use super::checksum::Sum;
use super::{ByteRange, Field as BadField, Header, WireError, read_array, read_u16, write_u16};
use std::net::Ipv4Addr;

mod field {
    use super::ByteRange;
    pub const VER_IHL: usize = 0;
    pub const DS_ECN: usize = 1;
    pub const LENGTH: ByteRange = 2..4;
    pub const IDENT: ByteRange = 4..6;
    pub const FLAGS_FRAG: ByteRange = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: ByteRange = 10..12;
    pub const SRC: ByteRange = 12..16;
    pub const DST: ByteRange = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = 20;
/// Byte offset of the protocol field.
pub const PROTOCOL_OFFSET: usize = field::PROTOCOL;
/// Source then destination address: the part of the header the
/// upper-layer pseudo-header repeats.
pub(crate) const ADDRESSES: ByteRange = field::SRC.start..field::DST.end;

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const FRAG_OFFSET: u16 = 0x1fff;

/// A checked view of an IPv4 packet.
#[derive(Clone, Copy, Debug)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wrap a buffer without checking it: for a buffer already checked or
    /// built whole (accessors panic on one that is too short). Use
    /// [`new_checked`](Self::new_checked) on untrusted input.
    pub fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// Wrap a buffer after checking version, header length and total length
    /// against the bytes present. Bytes past the total length (link-layer
    /// padding) are allowed and ignored.
    ///
    /// # Errors
    /// [`WireError::Truncated`] or [`WireError::Malformed`] naming the field.
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>, WireError> {
        let packet = Ipv4Packet { buffer };
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
            return Err(WireError::Truncated { header: Header::Ipv4, needed: HEADER_LEN, available });
        }
        if self.version() != 4 {
            return Err(WireError::Malformed { field: BadField::IpVersion, value: self.version().into() });
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN {
            return Err(WireError::Malformed { field: BadField::Ipv4HeaderLength, value: (header_len / 4) as u64 });
        }
        if header_len > available {
            return Err(WireError::Truncated { header: Header::Ipv4, needed: header_len, available });
        }
        let total = self.total_len();
        if total < header_len {
            return Err(WireError::Malformed { field: BadField::Ipv4TotalLength, value: total as u64 });
        }
        if total > available {
            return Err(WireError::Truncated { header: Header::Ipv4, needed: total, available });
        }
        Ok(())
    }

    /// The buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version nibble (4).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL x 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The DS field and ECN bits (the former TOS byte).
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DS_ECN]
    }

    /// Total length (header and payload).
    pub fn total_len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::LENGTH))
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// Don't-fragment flag.
    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_DF != 0
    }

    /// More-fragments flag.
    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::FLAGS_FRAG) & FRAG_OFFSET) * 8
    }

    /// Whether this is a fragment (more-fragments set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_array::<4>(self.buffer.as_ref(), field::SRC))
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_array::<4>(self.buffer.as_ref(), field::DST))
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
        &self.buffer.as_ref()[..self.header_len()]
    }

    /// The payload (up to the total length; link padding excluded).
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..self.total_len()]
    }

    /// The packet up to its total length.
    pub fn packet(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.total_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Set the total length.
    pub fn set_total_len(&mut self, len: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Set the protocol.
    pub fn set_protocol(&mut self, protocol: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol;
    }

    /// Recompute and store the header checksum.
    pub fn fill_checksum(&mut self) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM, 0);
        let checksum = Sum::ZERO.add_bytes(self.header()).checksum();
        write_u16(self.buffer.as_mut(), field::CHECKSUM, checksum);
    }

    /// Set the total length and protocol and recompute the header checksum
    /// (what `set_total_len`, `set_protocol` and `fill_checksum` do).
    ///
    /// A header without options is rewritten whole: it is read as two
    /// words, changed and summed in registers and stored back in one piece.
    /// Storing the fields one by one and then summing (or later verifying)
    /// the header with word-sized loads makes each load wait for the small
    /// stores it overlaps to reach the cache, because a store cannot be
    /// forwarded to a load that spans several stores.
    pub(crate) fn set_total_len_protocol_and_checksum(&mut self, total_len: u16, protocol: u8) {
        let buffer = self.buffer.as_mut();
        if let Some(header) = buffer.first_chunk_mut::<HEADER_LEN>()
            && header.first() == Some(&0x45)
        {
            let (front, back) = split_header(header);
            // Bytes 2-3 total length, 9 protocol, 10-11 checksum (in the
            // big-endian 128-bit front, byte i sits at bits 120 - 8i).
            let cleared = front & !((0xffff << 96) | (0xff_ffff << 32));
            let front = cleared | (u128::from(total_len) << 96) | (u128::from(protocol) << 48);
            let checksum = Sum::ZERO.add_bytes(&join_header(front, back)).checksum();
            *header = join_header(front | (u128::from(checksum) << 32), back);
            return;
        }
        self.set_total_len(total_len);
        self.set_protocol(protocol);
        self.fill_checksum();
    }
}

/// The first 16 bytes of a 20-byte header as a big-endian number, and the
/// last 4.
#[inline]
fn split_header(header: &[u8; HEADER_LEN]) -> (u128, u32) {
    (u128::from_be_bytes(read_array(header, 0..16)), u32::from_be_bytes(read_array(header, 16..HEADER_LEN)))
}

/// The inverse of [`split_header`].
#[inline]
fn join_header(front: u128, back: u32) -> [u8; HEADER_LEN] {
    let mut header = [0; HEADER_LEN];
    let (first, last) = header.split_at_mut(16);
    first.copy_from_slice(&front.to_be_bytes());
    last.copy_from_slice(&back.to_be_bytes());
    header
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
    /// Length of the header [`emit`](Self::emit) writes (no options).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

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
    /// [`WireError::Truncated`] if `buf` is shorter than 20 bytes,
    /// [`WireError::TooLarge`] if the total length exceeds 65535.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), WireError> {
        let total = HEADER_LEN + self.payload_len;
        let total16 =
            u16::try_from(total).map_err(|_| WireError::TooLarge { len: total, max: usize::from(u16::MAX) })?;
        let Some(header) = buf.first_chunk_mut::<HEADER_LEN>() else {
            return Err(WireError::Truncated { header: Header::Ipv4, needed: HEADER_LEN, available: buf.len() });
        };
        // Built in registers and stored whole (see
        // `Ipv4Packet::set_total_len_protocol_and_checksum`): version 4,
        // IHL 5, DS/ECN, total length, identification, flags, TTL,
        // protocol, checksum (0 for now), source; then destination.
        let flags = if self.dont_frag { FLAG_DF } else { 0 };
        let front = (0x45 << 120)
            | (u128::from(self.dscp_ecn) << 112)
            | (u128::from(total16) << 96)
            | (u128::from(self.ident) << 80)
            | (u128::from(flags) << 64)
            | (u128::from(self.ttl) << 56)
            | (u128::from(self.protocol) << 48)
            | u128::from(u32::from(self.src_addr));
        let back = u32::from(self.dst_addr);
        let checksum = Sum::ZERO.add_bytes(&join_header(front, back)).checksum();
        *header = join_header(front | (u128::from(checksum) << 32), back);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// `set_total_len_protocol_and_checksum` writes what the three field
    /// setters write, with and without options.
    /// `Ipv4Repr::emit` lays the fields out as RFC 791 says.
    #[test]
    fn emitted_header_has_every_field_in_place() {
        let repr = Ipv4Repr {
            src_addr: Ipv4Addr::new(192, 0, 2, 1),
            dst_addr: Ipv4Addr::new(198, 51, 100, 7),
            protocol: 50,
            payload_len: 4,
            ttl: 63,
            dscp_ecn: 0xb8,
            ident: 0x1234,
            dont_frag: true,
        };
        let mut buf = [0xeeu8; 24];
        repr.emit(&mut buf).unwrap();
        let mut expected =
            [0x45, 0xb8, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 63, 50, 0, 0, 192, 0, 2, 1, 198, 51, 100, 7];
        let checksum = Sum::ZERO.add_bytes(&expected).checksum().to_be_bytes();
        expected[10..12].copy_from_slice(&checksum);
        assert_eq!(&buf[..20], &expected);
        assert_eq!(&buf[20..], &[0xee; 4]);
        let parsed = Ipv4Repr::parse(&Ipv4Packet::new_checked(&buf[..]).unwrap());
        assert_eq!(parsed, repr);
        let no_df = Ipv4Repr { dont_frag: false, ..repr };
        no_df.emit(&mut buf).unwrap();
        assert_eq!(&buf[6..8], &[0, 0]);
        assert!(Ipv4Packet::new_unchecked(&buf[..]).verify_checksum());
    }

    #[test]
    fn whole_header_rewrite_matches_the_field_setters() {
        for options in [0usize, 4, 40] {
            let mut header: Vec<u8> = (0..HEADER_LEN + options).map(|i| (i as u8).wrapping_mul(73) ^ 0x5c).collect();
            header[0] = 0x40 | ((HEADER_LEN + options) / 4) as u8;
            for (total_len, protocol) in [(20u16, 50u8), (1420, 17), (0xffff, 0xff), (0, 0)] {
                let mut fast = header.clone();
                Ipv4Packet::new_unchecked(&mut fast[..]).set_total_len_protocol_and_checksum(total_len, protocol);
                let mut slow = header.clone();
                let mut ip = Ipv4Packet::new_unchecked(&mut slow[..]);
                ip.set_total_len(total_len);
                ip.set_protocol(protocol);
                ip.fill_checksum();
                assert_eq!(fast, slow, "options {options}, length {total_len}, protocol {protocol}");
                assert!(Ipv4Packet::new_unchecked(&fast[..]).verify_checksum());
            }
        }
    }
}
