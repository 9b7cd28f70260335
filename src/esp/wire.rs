//! ESP's own wire format, in the shape of the views of [`crate::net`]: the
//! ESP header (RFC 4303 §2) with the 8-byte IV of AES-GCM/GMAC (RFC 4106
//! §3, RFC 4543 §3.1), and the trailer inside the decrypted payload.

use super::{EspError, Header};
use crate::net::{ByteRange, read_array, read_bytes, read_u32, write_u32};

mod field {
    use super::ByteRange;
    pub const SPI: ByteRange = 0..4;
    pub const SEQUENCE: ByteRange = 4..8;
    pub const IV: ByteRange = 8..16;
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
    /// Wrap a buffer without checking it: for a buffer already checked or
    /// built whole (accessors panic on one that is too short).
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
        read_u32(self.buffer.as_ref(), field::SPI)
    }

    /// Sequence number (the low 32 bits with ESN).
    pub fn sequence(&self) -> u32 {
        read_u32(self.buffer.as_ref(), field::SEQUENCE)
    }

    /// The explicit IV.
    pub fn iv(&self) -> [u8; IV_LEN] {
        read_array::<IV_LEN>(self.buffer.as_ref(), field::IV)
    }

    /// SPI, sequence number and IV: the bytes before the ciphertext.
    pub fn header_and_iv(&self) -> &[u8] {
        read_bytes(self.buffer.as_ref(), ..field::IV.end)
    }

    /// Everything after the IV: ciphertext (or, with GMAC, the clear
    /// payload and trailer) followed by the ICV.
    pub fn body(&self) -> &[u8] {
        read_bytes(self.buffer.as_ref(), field::IV.end..)
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
        write_u32(buf, field::SPI, self.spi);
        write_u32(buf, field::SEQUENCE, self.sequence);
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

/// Append the clear text of the ESP trailer ([`Trailer`]) to `out`.
#[inline]
pub(crate) fn push_padding_and_trailer(out: &mut Vec<u8>, pad: usize, next_header: u8) {
    out.extend_from_slice(Trailer::new(pad, next_header).as_bytes());
}

/// The clear text of the ESP trailer: the default padding 1, 2, 3..., the
/// pad length and the next header, one variant per padding length (there
/// are only four), so each is a fixed-size array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trailer {
    /// No padding: pad length 0, next header.
    Pad0([u8; 2]),
    /// Padding 1.
    Pad1([u8; 3]),
    /// Padding 1, 2.
    Pad2([u8; 4]),
    /// Padding 1, 2, 3.
    Pad3([u8; 5]),
}

impl Trailer {
    /// The trailer for `pad` bytes of padding ([`pad_len`], 0 to 3).
    #[inline]
    pub(crate) fn new(pad: usize, next_header: u8) -> Trailer {
        match pad {
            0 => Trailer::Pad0([0, next_header]),
            1 => Trailer::Pad1([1, 1, next_header]),
            2 => Trailer::Pad2([1, 2, 2, next_header]),
            // `pad_len` is below 4.
            _ => Trailer::Pad3([1, 2, 3, 3, next_header]),
        }
    }

    /// The bytes of the trailer for `pad` bytes of padding (0 to 3)
    /// followed by zeros to 8 bytes: for writing it with one store where at
    /// least 8 bytes are free (the ICV follows). Arithmetic rather than a
    /// `match` on the variant: the jump it compiled to cost about 2 ns of a
    /// 64-byte burst packet's 70.
    #[inline]
    pub(crate) fn padded8(pad: usize, next_header: u8) -> [u8; 8] {
        // Little-endian: padding 1, 2, 3 cut to `pad` bytes, then the pad
        // length, then the next header. `pad` is below 4 (`pad_len`); the
        // mask keeps a larger one from shifting past the word.
        let pad = (pad & 3) as u32;
        let padding = 0x0003_0201u64 & ((1u64 << (8 * pad)) - 1);
        let word = padding | (u64::from(pad) << (8 * pad)) | (u64::from(next_header) << (8 * pad + 8));
        word.to_le_bytes()
    }

    /// The trailer's bytes.
    #[inline]
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            Trailer::Pad0(bytes) => bytes,
            Trailer::Pad1(bytes) => bytes,
            Trailer::Pad2(bytes) => bytes,
            Trailer::Pad3(bytes) => bytes,
        }
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
    // The last `pad` bytes of `rest` must be 1, 2, ..., pad. Up to 8 (what
    // senders that align to 4 or 8 bytes add) are compared as one word,
    // where the byte-by-byte loop was a tenth of a small packet's open.
    if let Some(last8) = rest.last_chunk::<8>()
        && pad <= 8
    {
        // The low `pad` bytes of the big-endian word.
        let shift = 64 - 8 * pad as u32;
        let mask = u64::MAX.checked_shr(shift).unwrap_or(0);
        let want = 0x0102_0304_0506_0708u64.checked_shr(shift).unwrap_or(0);
        if u64::from_be_bytes(*last8) & mask != want {
            return Err(TrailerError::BadPadding(pad_len));
        }
    } else if !rest.iter().rev().zip((1..=pad_len).rev()).all(|(&byte, expected)| byte == expected) {
        return Err(TrailerError::BadPadding(pad_len));
    }
    Ok((payload_len, next_header))
}

/// GMAC with ESN authenticates SPI || high half || low half || IV || body,
/// but the packet holds SPI || low half || IV || body: the SPI goes into
/// the 4 bytes in front of the ESP header at `esp_at` of `memory` (the end of the IP
/// or UDP header, saved and returned) and the high half where the SPI was,
/// until the tag is checked.
pub(crate) fn borrow_for_esn(memory: &mut [u8], esp_at: usize, spi: u32, seq: u64) -> Option<[u8; 4]> {
    let at = esp_at.checked_sub(4)?;
    let place = memory.get_mut(at..)?.first_chunk_mut::<8>()?;
    let saved = place.first_chunk::<4>().copied()?;
    let [s0, s1, s2, s3] = spi.to_be_bytes();
    let [h0, h1, h2, h3] = ((seq >> 32) as u32).to_be_bytes();
    *place = [s0, s1, s2, s3, h0, h1, h2, h3];
    Some(saved)
}

/// Undo [`borrow_for_esn`]: the saved bytes back, the SPI back.
pub(crate) fn give_back(memory: &mut [u8], esp_at: usize, spi: u32, saved: [u8; 4]) {
    let place = esp_at.checked_sub(4).and_then(|at| memory.get_mut(at..)).and_then(<[u8]>::first_chunk_mut::<8>);
    if let Some(place) = place {
        let [a, b, c, d] = saved;
        let [s0, s1, s2, s3] = spi.to_be_bytes();
        *place = [a, b, c, d, s0, s1, s2, s3];
    }
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
    fn the_trailer_padded_to_8_bytes_starts_with_the_trailer() {
        for pad in 0..4 {
            for next_header in [0, 4, 6, 17, 41, 59, 255] {
                let t = Trailer::new(pad, next_header);
                let padded = Trailer::padded8(pad, next_header);
                assert_eq!(&padded[..t.as_bytes().len()], t.as_bytes(), "pad {pad}");
                assert!(padded[t.as_bytes().len()..].iter().all(|&b| b == 0), "pad {pad}");
            }
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

    /// Every pad length up to 255 behind short and long payloads (the word
    /// compare and the loop), right, and with each pad byte or the byte in
    /// front of the padding changed.
    #[test]
    fn every_pad_byte_is_checked_at_every_length() {
        for payload in [0, 1, 5, 6, 7, 8, 9, 30] {
            for pad in (0..=20).chain([254, 255]) {
                let mut t: Vec<u8> = (0..payload).map(|i| 0x80 | i as u8).collect();
                t.extend((1..=pad).map(|b: usize| b as u8));
                t.extend([pad as u8, 17]);
                assert_eq!(parse_trailer(&t), Ok((payload, 17)), "payload {payload}, pad {pad}");
                for at in payload..payload + pad {
                    for flip in [1u8, 0x80] {
                        let mut bad = t.clone();
                        bad[at] ^= flip;
                        let got = parse_trailer(&bad);
                        assert_eq!(
                            got,
                            Err(TrailerError::BadPadding(pad as u8)),
                            "payload {payload}, pad {pad}, at {at}"
                        );
                    }
                }
                // The payload's last byte is not padding, whatever it holds.
                if payload > 0 {
                    let mut other = t.clone();
                    other[payload - 1] = pad as u8 + 1;
                    assert_eq!(parse_trailer(&other), Ok((payload, 17)), "payload {payload}, pad {pad}");
                }
                // A pad length past the start.
                let mut past = t.clone();
                let at = past.len() - 2;
                past[at] = (payload + pad + 1).min(255) as u8;
                if payload + pad < 255 {
                    assert_eq!(
                        parse_trailer(&past),
                        Err(TrailerError::BadPadding(past[at])),
                        "payload {payload}, pad {pad}"
                    );
                }
            }
        }
    }
}
