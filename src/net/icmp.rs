//! ICMP (RFC 792) and ICMPv6 (RFC 4443) headers, as far as checksums need
//! them: both start with type, code and a checksum over the whole message
//! (ICMPv6's also covers the IPv6 pseudo-header).

use super::checksum::Sum;
use super::{ByteRange, Header, WireError, read_u16, write_u16};

mod field {
    use super::ByteRange;
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: ByteRange = 2..4;
}

/// Type, code and checksum: the part of the header both versions share.
pub const HEADER_LEN: usize = 4;
/// Byte offset of the checksum field.
pub const CHECKSUM_OFFSET: usize = field::CHECKSUM.start;

/// A checked view of an ICMP or ICMPv6 message.
#[derive(Clone, Copy, Debug)]
pub struct IcmpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> IcmpPacket<T> {
    /// Wrap a buffer without checking it: for a buffer already checked or
    /// built whole (accessors panic on one that is too short).
    pub fn new_unchecked(buffer: T) -> IcmpPacket<T> {
        IcmpPacket { buffer }
    }

    /// Wrap a message after checking that it holds type, code and checksum.
    ///
    /// # Errors
    /// [`WireError::Truncated`] (ICMP) below 4 bytes.
    pub fn new_checked(buffer: T) -> Result<IcmpPacket<T>, WireError> {
        let packet = IcmpPacket { buffer };
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
            return Err(WireError::Truncated { header: Header::Icmp, needed: HEADER_LEN, available });
        }
        Ok(())
    }

    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buffer.as_ref()[field::TYPE]
    }

    /// Message code.
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Everything after type, code and checksum.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..]
    }
}

/// The typed fields of the common ICMP/ICMPv6 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpRepr {
    /// Message type.
    pub msg_type: u8,
    /// Message code.
    pub code: u8,
}

impl IcmpRepr {
    /// Length of the header [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Read the fields of a checked message.
    pub fn parse<T: AsRef<[u8]>>(packet: &IcmpPacket<T>) -> IcmpRepr {
        IcmpRepr { msg_type: packet.msg_type(), code: packet.code() }
    }

    /// Write type and code at the start of `message` (which holds the whole
    /// message) and fill the checksum, adding `pseudo_header`: the IPv6
    /// pseudo-header sum for ICMPv6, [`Sum::ZERO`] for ICMP.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if `message` is shorter than 4 bytes.
    pub fn emit(&self, message: &mut [u8], pseudo_header: Sum) -> Result<(), WireError> {
        if message.len() < HEADER_LEN {
            return Err(WireError::Truncated { header: Header::Icmp, needed: HEADER_LEN, available: message.len() });
        }
        message[field::TYPE] = self.msg_type;
        message[field::CODE] = self.code;
        write_u16(message, field::CHECKSUM, 0);
        let checksum = pseudo_header.add_bytes(message).checksum();
        write_u16(message, field::CHECKSUM, checksum);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn emitted_echo_request_verifies_and_parses_back() {
        let mut message = [0u8, 0, 0xaa, 0xaa, 0, 1, 0, 7, b'p', b'i', b'n', b'g'];
        let repr = IcmpRepr { msg_type: 8, code: 0 };
        repr.emit(&mut message, Sum::ZERO).unwrap();
        assert!(Sum::ZERO.add_bytes(&message).verifies());
        let view = IcmpPacket::new_checked(&message[..]).unwrap();
        assert_eq!(IcmpRepr::parse(&view), repr);
        assert_eq!(view.payload(), &message[4..]);
        assert_eq!(
            IcmpPacket::new_checked(&message[..3]).unwrap_err(),
            WireError::Truncated { header: Header::Icmp, needed: 4, available: 3 }
        );
    }
}
