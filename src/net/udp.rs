//! UDP header (RFC 768).

use super::checksum::Sum;
use super::{ByteRange, Field as BadField, Header, WireError, read_u16, write_u16};

mod field {
    use super::ByteRange;
    pub const SRC_PORT: ByteRange = 0..2;
    pub const DST_PORT: ByteRange = 2..4;
    pub const LENGTH: ByteRange = 4..6;
    pub const CHECKSUM: ByteRange = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = 8;
/// Byte offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// A checked view of a UDP datagram.
#[derive(Clone, Copy, Debug)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wrap a buffer without checking it: for a buffer already checked or
    /// built whole (accessors panic on one that is too short).
    pub fn new_unchecked(buffer: T) -> UdpPacket<T> {
        UdpPacket { buffer }
    }

    /// Wrap a datagram after checking that the UDP length field equals the
    /// buffer's length (the buffer is the IP payload).
    ///
    /// # Errors
    /// [`WireError::Truncated`] below 8 bytes, [`WireError::Malformed`] (UDP
    /// length) when the field disagrees with the bytes present.
    pub fn new_checked(buffer: T) -> Result<UdpPacket<T>, WireError> {
        let packet = UdpPacket { buffer };
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
            return Err(WireError::Truncated { header: Header::Udp, needed: HEADER_LEN, available });
        }
        let len = self.len();
        if len > available {
            return Err(WireError::Truncated { header: Header::Udp, needed: len, available });
        }
        if len != available {
            return Err(WireError::Malformed { field: BadField::UdpLength, value: len as u64 });
        }
        Ok(())
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length field (header and payload).
    pub fn len(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::LENGTH))
    }

    /// Whether the datagram has no payload.
    pub fn is_empty(&self) -> bool {
        self.len() <= HEADER_LEN
    }

    /// Checksum field (0: none, allowed over IPv4 only).
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len()]
    }
}

impl<'a> UdpPacket<&'a [u8]> {
    /// The payload, borrowed from the buffer rather than from the view.
    pub fn into_payload(self) -> &'a [u8] {
        let len = self.len();
        &self.buffer[HEADER_LEN..len]
    }
}

/// The typed fields of a UDP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
}

impl UdpRepr {
    /// Length of the header [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Read the ports of a checked datagram.
    pub fn parse<T: AsRef<[u8]>>(packet: &UdpPacket<T>) -> UdpRepr {
        UdpRepr { src_port: packet.src_port(), dst_port: packet.dst_port() }
    }

    /// Write the 8-byte header for a payload of `payload_len` bytes at the
    /// start of `buf`. With `pseudo_header` (the pseudo-header sum), the
    /// checksum is computed over `buf`, which must then hold the whole
    /// datagram; without, it is sent as 0 (no checksum, IPv4 only).
    ///
    /// # Errors
    /// [`WireError::Truncated`] if `buf` is too short, [`WireError::TooLarge`]
    /// past 65535 bytes.
    pub fn emit(&self, buf: &mut [u8], payload_len: usize, pseudo_header: Option<Sum>) -> Result<(), WireError> {
        let total = HEADER_LEN + payload_len;
        let len = u16::try_from(total).map_err(|_| WireError::TooLarge { len: total, max: usize::from(u16::MAX) })?;
        if buf.len() < HEADER_LEN || (pseudo_header.is_some() && buf.len() < total) {
            return Err(WireError::Truncated { header: Header::Udp, needed: total, available: buf.len() });
        }
        write_u16(buf, field::SRC_PORT, self.src_port);
        write_u16(buf, field::DST_PORT, self.dst_port);
        write_u16(buf, field::LENGTH, len);
        write_u16(buf, field::CHECKSUM, 0);
        if let Some(pseudo) = pseudo_header {
            let checksum = pseudo.add_bytes(&buf[..total]).checksum();
            // A computed 0 is sent as all ones (0 means "no checksum").
            write_u16(buf, field::CHECKSUM, if checksum == 0 { 0xffff } else { checksum });
        }
        Ok(())
    }
}
