//! TCP header (RFC 9293), as far as checksums need it.

use super::checksum::Sum;
use super::{ByteRange, Field as BadField, Header, WireError, read_u16, read_u32, write_u16, write_u32};

mod field {
    use super::ByteRange;
    pub const SRC_PORT: ByteRange = 0..2;
    pub const DST_PORT: ByteRange = 2..4;
    pub const SEQ: ByteRange = 4..8;
    pub const ACK: ByteRange = 8..12;
    pub const OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WINDOW: ByteRange = 14..16;
    pub const CHECKSUM: ByteRange = 16..18;
    pub const URGENT: ByteRange = 18..20;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = 20;
/// Byte offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// A checked view of a TCP segment.
#[derive(Clone, Copy, Debug)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wrap a buffer without checking it: for a buffer already checked or
    /// built whole (accessors panic on one that is too short).
    pub fn new_unchecked(buffer: T) -> TcpPacket<T> {
        TcpPacket { buffer }
    }

    /// Wrap a segment after checking the fixed header and the data offset
    /// against the bytes present.
    ///
    /// # Errors
    /// [`WireError::Truncated`] below 20 bytes, [`WireError::Malformed`] (data
    /// offset) below 5 words or past the end.
    pub fn new_checked(buffer: T) -> Result<TcpPacket<T>, WireError> {
        let packet = TcpPacket { buffer };
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
            return Err(WireError::Truncated { header: Header::Tcp, needed: HEADER_LEN, available });
        }
        let header_len = self.header_len();
        if header_len < HEADER_LEN || header_len > available {
            return Err(WireError::Malformed { field: BadField::TcpDataOffset, value: (header_len / 4) as u64 });
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

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQ)
    }

    /// Acknowledgement number.
    pub fn ack_number(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::ACK)
    }

    /// Header length in bytes (data offset x 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::OFFSET] >> 4) * 4
    }

    /// Flag bits (CWR ECE URG ACK PSH RST SYN FIN).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Window.
    pub fn window(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WINDOW)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    pub fn urgent(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// The data after the header and options.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

/// The typed fields of a TCP header without options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgement number.
    pub ack_number: u32,
    /// Flag bits.
    pub flags: u8,
    /// Window.
    pub window: u16,
}

impl TcpRepr {
    /// Length of the header [`emit`](Self::emit) writes (no options).
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Read the fields of a checked segment.
    pub fn parse<T: AsRef<[u8]>>(packet: &TcpPacket<T>) -> TcpRepr {
        TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window: packet.window(),
        }
    }

    /// Write a 20-byte header at the start of `segment` (which holds the
    /// whole segment: header then data) and fill the checksum using the
    /// pseudo-header sum `pseudo_header`.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if `segment` is shorter than 20 bytes.
    pub fn emit(&self, segment: &mut [u8], pseudo_header: Sum) -> Result<(), WireError> {
        if segment.len() < HEADER_LEN {
            return Err(WireError::Truncated { header: Header::Tcp, needed: HEADER_LEN, available: segment.len() });
        }
        write_u16(segment, field::SRC_PORT, self.src_port);
        write_u16(segment, field::DST_PORT, self.dst_port);
        write_u32(segment, field::SEQ, self.seq_number);
        write_u32(segment, field::ACK, self.ack_number);
        segment[field::OFFSET] = 5 << 4;
        segment[field::FLAGS] = self.flags;
        write_u16(segment, field::WINDOW, self.window);
        write_u16(segment, field::CHECKSUM, 0);
        write_u16(segment, field::URGENT, 0);
        let checksum = pseudo_header.add_bytes(segment).checksum();
        write_u16(segment, field::CHECKSUM, checksum);
        Ok(())
    }
}
