//! ESP header (RFC 4303 §2) with the 8-byte IV of AES-GCM/GMAC (RFC 4106
//! §3, RFC 4543 §3.1), and the trailer inside the decrypted payload.

use super::{Field, get_array, get_u32, set_u32, slice};
use crate::esp::{EspError, Header};

mod field {
    use super::Field;
    pub const SPI: usize = 0;
    pub const SEQUENCE: usize = 4;
    pub const IV: Field = 8..16;
}

/// SPI and sequence number.
pub const HEADER_LEN: usize = 8;
/// The explicit IV of AES-GCM and AES-GMAC.
pub const IV_LEN: usize = 8;
/// Pad length and next header.
pub const TRAILER_LEN: usize = 2;

/// A checked view of an ESP packet: header, IV, then ciphertext and ICV
/// (whose split depends on the SA).
#[derive(Clone, Copy, Debug)]
pub struct EspPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EspPacket<T> {
    /// Wrap a buffer without checking it.
    pub fn new_unchecked(buffer: T) -> EspPacket<T> {
        EspPacket { buffer }
    }

    /// Wrap a buffer after checking that it holds the header and IV.
    ///
    /// # Errors
    /// [`EspError::Truncated`] (ESP) below 16 bytes.
    pub fn new_checked(buffer: T) -> Result<EspPacket<T>, EspError> {
        let available = buffer.as_ref().len();
        let needed = HEADER_LEN + IV_LEN;
        if available < needed {
            return Err(EspError::Truncated { header: Header::Esp, needed, available });
        }
        Ok(EspPacket { buffer })
    }

    /// Security Parameter Index.
    pub fn spi(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SPI)
    }

    /// Sequence number (the low 32 bits with ESN).
    pub fn sequence(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQUENCE)
    }

    /// The explicit IV.
    pub fn iv(&self) -> [u8; IV_LEN] {
        get_array::<IV_LEN>(self.buffer.as_ref(), field::IV.start)
    }

    /// SPI, sequence number and IV: the bytes before the ciphertext.
    pub fn header_and_iv(&self) -> &[u8] {
        slice(self.buffer.as_ref(), 0..field::IV.end)
    }

    /// Everything after the IV: ciphertext (or, with GMAC, the clear
    /// payload and trailer) followed by the ICV.
    pub fn body(&self) -> &[u8] {
        let buf = self.buffer.as_ref();
        slice(buf, field::IV.end..buf.len())
    }
}

/// The typed fields of an ESP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EspRepr {
    /// Security Parameter Index.
    pub spi: u32,
    /// Sequence number as sent (low 32 bits with ESN).
    pub sequence: u32,
}

impl EspRepr {
    /// Read the fields of a checked packet.
    pub fn parse<T: AsRef<[u8]>>(packet: &EspPacket<T>) -> EspRepr {
        EspRepr { spi: packet.spi(), sequence: packet.sequence() }
    }

    /// Write SPI and sequence number at the start of `buf`.
    ///
    /// # Errors
    /// [`EspError::Truncated`] if `buf` is shorter than 8 bytes.
    pub fn emit(&self, buf: &mut [u8]) -> Result<(), EspError> {
        if buf.len() < HEADER_LEN {
            return Err(EspError::Truncated { header: Header::Esp, needed: HEADER_LEN, available: buf.len() });
        }
        set_u32(buf, field::SPI, self.spi);
        set_u32(buf, field::SEQUENCE, self.sequence);
        Ok(())
    }
}

impl EspRepr {
    /// SPI, sequence number and `iv`: the 16 bytes in front of the
    /// ciphertext.
    #[inline]
    pub(crate) fn with_iv(&self, iv: [u8; IV_LEN]) -> [u8; HEADER_LEN + IV_LEN] {
        let value =
            (u128::from(self.spi) << 96) | (u128::from(self.sequence) << 64) | u128::from(u64::from_be_bytes(iv));
        value.to_be_bytes()
    }
}

/// Append the clear text of the ESP trailer ([`trailer`]) to `out`.
#[inline]
pub(crate) fn push_padding_and_trailer(out: &mut Vec<u8>, pad: usize, next_header: u8) {
    let (bytes, len) = trailer(pad, next_header);
    out.extend_from_slice(bytes.get(..len).unwrap_or(&bytes));
}

/// The clear text of the ESP trailer for `pad` bytes of padding ([`pad_len`],
/// 0 to 3): the default padding 1, 2, 3..., the pad length and
/// `next_header`, in a fixed array; the length used is `pad + 2`.
#[inline]
pub(crate) fn trailer(pad: usize, next_header: u8) -> ([u8; 5], usize) {
    match pad {
        0 => ([0, next_header, 0, 0, 0], 2),
        1 => ([1, 1, next_header, 0, 0], 3),
        2 => ([1, 2, 2, next_header, 0], 4),
        // `pad_len` is below 4.
        _ => ([1, 2, 3, 3, next_header], 5),
    }
}

/// Length of the padding that brings `payload_len` plus the 2-byte trailer
/// to a multiple of 4 (RFC 4303 §2.4; GCM needs no block alignment).
pub fn pad_len(payload_len: usize) -> usize {
    (4 - (payload_len + TRAILER_LEN) % 4) % 4
}

/// The default padding bytes 1, 2, 3 (no more are ever needed to reach a
/// multiple of 4).
pub const PADDING: [u8; 3] = [1, 2, 3];

/// Why a decrypted trailer is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrailerError {
    /// Fewer than 2 bytes: no room for pad length and next header.
    Truncated,
    /// The pad length runs past the start, or the padding is not 1, 2, 3, ...
    BadPadding(u8),
}

/// Split a decrypted ESP payload into (payload length, next header),
/// checking that the padding reads 1, 2, 3, ... (RFC 4303 §2.4).
///
/// # Errors
/// [`TrailerError`].
pub fn parse_trailer(plaintext: &[u8]) -> Result<(usize, u8), TrailerError> {
    let Some((rest, &[pad_len, next_header])) = plaintext.split_last_chunk::<2>() else {
        return Err(TrailerError::Truncated);
    };
    let pad = usize::from(pad_len);
    let Some(payload_len) = rest.len().checked_sub(pad) else {
        return Err(TrailerError::BadPadding(pad_len));
    };
    let padding = slice(rest, payload_len..rest.len());
    if !padding.iter().zip(1u8..).all(|(&byte, expected)| byte == expected) {
        return Err(TrailerError::BadPadding(pad_len));
    }
    Ok((payload_len, next_header))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn padding_reaches_the_next_multiple_of_four() {
        assert_eq!((0..8).map(pad_len).collect::<Vec<_>>(), [2, 1, 0, 3, 2, 1, 0, 3]);
    }

    #[test]
    fn padding_and_trailer_parse_back() {
        for len in 0..12 {
            let pad = pad_len(len);
            let mut out = vec![0xaa; len];
            push_padding_and_trailer(&mut out, pad, 6);
            assert_eq!(out.len() % 4, 0, "len {len}");
            assert_eq!(&out[len..len + pad], &PADDING[..pad]);
            assert_eq!(parse_trailer(&out), Ok((len, 6)), "len {len}");
        }
    }

    #[test]
    fn header_with_iv_is_spi_sequence_iv() {
        let bytes = EspRepr { spi: 0x0102_0304, sequence: 0x0506_0708 }.with_iv([9, 10, 11, 12, 13, 14, 15, 16]);
        assert_eq!(bytes, core::array::from_fn::<u8, 16, _>(|i| i as u8 + 1));
    }

    #[test]
    fn trailer_parsing_checks_every_pad_byte() {
        assert_eq!(parse_trailer(&[9, 9, 1, 2, 2, 6]), Ok((2, 6)));
        assert_eq!(parse_trailer(&[9, 0, 6]), Ok((1, 6)));
        assert_eq!(parse_trailer(&[9, 1, 3, 2, 6]), Err(TrailerError::BadPadding(2)));
        assert_eq!(parse_trailer(&[1, 2, 3, 6]), Err(TrailerError::BadPadding(3)));
        assert_eq!(parse_trailer(&[6]), Err(TrailerError::Truncated));
    }
}
