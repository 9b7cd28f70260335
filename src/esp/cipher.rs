//! The SA's AEAD: nonce and AAD construction for AES-GCM (RFC 4106) and
//! AES-GMAC (RFC 4543) over the crate's [`Gcm`].
//!
//! - Nonce: the 4-byte salt (last bytes of the keying material) followed by
//!   the 8-byte IV carried in the packet (RFC 4106 §4).
//! - AAD for GCM: SPI || sequence number (8 bytes), or with ESN
//!   SPI || high half || low half (12 bytes) (RFC 4106 §5).
//! - GMAC: the AAD is SPI || sequence (|| ESN as above) || IV || payload ||
//!   padding || pad length || next header, and nothing is encrypted
//!   (RFC 4543 §3.3); the ICV is the tag.

use super::key_claims::KeyClaim;
use super::wire::{self as esp, EspPacket};
use super::{EspError, Header, Limitation, SaConfig, Transform};
use crate::ones_complement::sum_native;
use crate::{Backend, Gcm};
use zeroize::Zeroize;

/// What the cipher takes from an ESP packet's header: the SPI and the full
/// sequence number (with ESN, both halves) go into the AAD, the IV into the
/// nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeaderFields {
    pub spi: u32,
    pub seq: u64,
    pub iv: [u8; esp::IV_LEN],
}

/// GCM's AAD (RFC 4106 §5): SPI || sequence number, or with ESN SPI ||
/// high half || low half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Aad {
    Sequence([u8; 8]),
    Extended([u8; 12]),
}

impl Aad {
    #[inline]
    fn as_bytes(&self) -> &[u8] {
        match self {
            Aad::Sequence(bytes) => bytes,
            Aad::Extended(bytes) => bytes,
        }
    }
}

/// `buf[start..]` of a buffer this module has just filled past `start`.
/// Were it shorter, that would be a bug here, reported as an error rather
/// than taken as no bytes.
fn written(buf: &[u8], start: usize) -> Result<&[u8], EspError> {
    buf.get(start..).ok_or(EspError::Truncated { header: Header::Esp, needed: start, available: buf.len() })
}

/// [`written`], writable.
fn written_mut(buf: &mut [u8], start: usize) -> Result<&mut [u8], EspError> {
    let available = buf.len();
    buf.get_mut(start..).ok_or(EspError::Truncated { header: Header::Esp, needed: start, available })
}

/// What the SA keys AES-GCM with.
#[derive(Clone)]
pub(crate) struct SaCipher {
    gcm: Gcm,
    salt: [u8; 4],
    gmac: bool,
    esn: bool,
    icv_len: usize,
}

impl core::fmt::Debug for SaCipher {
    /// The key's backend and size and the transform; never the salt or key.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SaCipher")
            .field("gcm", &self.gcm)
            .field("gmac", &self.gmac)
            .field("esn", &self.esn)
            .field("icv_len", &self.icv_len)
            .finish_non_exhaustive()
    }
}

impl Drop for SaCipher {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

impl SaCipher {
    /// Check `cfg`, set up its key, and wipe the key material from `cfg`
    /// whatever the outcome (the SA keeps it only inside the key schedule).
    pub(crate) fn from_config(cfg: &mut SaConfig) -> Result<SaCipher, EspError> {
        let cipher = cfg.validate().and_then(|()| SaCipher::new(cfg));
        cfg.keymat.zeroize();
        cfg.keymat = Vec::new();
        cipher
    }

    fn new(cfg: &SaConfig) -> Result<SaCipher, EspError> {
        let backend = cfg.backend.unwrap_or_else(Backend::best);
        let mut gcm = Gcm::with_backend(cfg.key(), backend).map_err(|e| match e {
            crate::Error::Unsupported(b) => EspError::Unsupported(Limitation::Backend(b)),
            other => EspError::Crypto(other),
        })?;
        gcm.set_verify(cfg.verify);
        Ok(SaCipher {
            gcm,
            salt: cfg.salt(),
            gmac: cfg.transform == Transform::AesGmac,
            esn: cfg.esn,
            icv_len: cfg.icv_len,
        })
    }

    pub(crate) fn backend(&self) -> Backend {
        self.gcm.backend()
    }

    /// Claim this key and salt for one sender (see [`KeyClaim`]).
    pub(crate) fn claim(&self) -> Option<KeyClaim> {
        KeyClaim::new(&self.gcm, self.salt)
    }

    pub(crate) fn icv_len(&self) -> usize {
        self.icv_len
    }

    /// Extra room `seal`/`open` need in `out` beyond the packet itself
    /// (GMAC with ESN builds its AAD in place with the high half inserted).
    pub(crate) fn scratch_len(&self) -> usize {
        if self.gmac && self.esn { 4 } else { 0 }
    }

    /// Extra room `open` needs in `out` beyond the ciphertext: GMAC with ESN
    /// builds SPI || high || low || IV || body there before moving the body
    /// down.
    pub(crate) fn open_room(&self) -> usize {
        if self.gmac && self.esn { esp::HEADER_LEN + 4 + esp::IV_LEN } else { 0 }
    }

    /// The key, for batches.
    pub(crate) fn gcm(&self) -> &Gcm {
        &self.gcm
    }

    /// AES-GMAC (RFC 4543): nothing is encrypted, everything is AAD.
    pub(crate) fn is_gmac(&self) -> bool {
        self.gmac
    }

    /// Extended sequence numbers: the high half enters the AAD.
    pub(crate) fn esn(&self) -> bool {
        self.esn
    }

    /// GCM's AAD for (SPI, seq) written to the start of `buf`; returns its
    /// length (8, or 12 with ESN).
    #[inline]
    pub(crate) fn write_aad(&self, spi: u32, seq: u64, buf: &mut [u8; 12]) -> usize {
        match self.aad(spi, seq) {
            Aad::Sequence(bytes) => {
                if let Some(head) = buf.first_chunk_mut::<8>() {
                    *head = bytes;
                }
                8
            }
            Aad::Extended(bytes) => {
                *buf = bytes;
                12
            }
        }
    }

    /// The 12-byte nonce: salt || `iv`.
    ///
    /// Written as an 8-byte word and a 4-byte one, the two pieces in which
    /// GCM reads a 96-bit IV back (to form J0) a few instructions later:
    /// written as salt (4) and IV (8), the 8-byte read spanned both writes
    /// and had to wait for them to reach the cache (a failed store
    /// forward, about 1.5 ns of every single seal and open).
    #[inline]
    pub(crate) fn nonce(&self, iv: [u8; 8]) -> [u8; 12] {
        let iv = u64::from_be_bytes(iv);
        let head = (u64::from(u32::from_be_bytes(self.salt)) << 32) | (iv >> 32);
        let mut nonce = [0u8; 12];
        let (first, last) = nonce.split_at_mut(8);
        first.copy_from_slice(&head.to_be_bytes());
        last.copy_from_slice(&(iv as u32).to_be_bytes());
        nonce
    }

    /// GCM's AAD for (SPI, seq).
    #[inline]
    fn aad(&self, spi: u32, seq: u64) -> Aad {
        if self.esn {
            let [s0, s1, s2, s3] = spi.to_be_bytes();
            let [h0, h1, h2, h3, l0, l1, l2, l3] = seq.to_be_bytes();
            Aad::Extended([s0, s1, s2, s3, h0, h1, h2, h3, l0, l1, l2, l3])
        } else {
            Aad::Sequence(((u64::from(spi) << 32) | u64::from(seq as u32)).to_be_bytes())
        }
    }

    /// Seal the ESP packet whose header (`header`'s SPI, low sequence
    /// number and IV) ends `out`, starting at `out[esp_start]`: append the encryption
    /// of `payload || trailer` (padding, pad length, next header) and the
    /// ICV. The payload is read where it is, never copied into `out` first.
    ///
    /// Returns the one's complement sum of `payload` (see
    /// [`RegionSum`](crate::net::checksum::RegionSum)), computed in the pass that
    /// encrypted it, so the caller can check the checksum of exactly the
    /// bytes that were encrypted.
    pub(crate) fn seal(
        &self,
        out: &mut Vec<u8>,
        esp_start: usize,
        header: HeaderFields,
        payload: &[u8],
        trailer: &[u8],
    ) -> Result<u64, EspError> {
        let HeaderFields { spi, seq, iv } = header;
        let body_start = esp_start + esp::HEADER_LEN + esp::IV_LEN;
        if out.len() != body_start {
            return Err(EspError::Truncated {
                header: Header::Esp,
                needed: body_start - esp_start,
                available: out.len().saturating_sub(esp_start),
            });
        }
        let nonce = self.nonce(iv);
        let (tag, sum) = if !self.gmac {
            let aad = self.aad(spi, seq);
            self.gcm.encrypt_append(&nonce, aad.as_bytes(), [payload, trailer], out).map_err(EspError::Crypto)?
        } else {
            // GMAC: the payload travels in the clear and is authenticated.
            out.extend_from_slice(payload);
            out.extend_from_slice(trailer);
            let sum = sum_native(payload);
            (self.gmac_tag(out, esp_start, seq, &nonce)?, sum)
        };
        self.push_icv(out, &tag);
        Ok(sum)
    }

    /// [`seal`](Self::seal) for a body already at the end of `out` (after the
    /// header at `esp_start`), encrypted in place: for dummy packets, whose
    /// payload exists nowhere else.
    pub(crate) fn seal_in_place(
        &self,
        out: &mut Vec<u8>,
        esp_start: usize,
        header: HeaderFields,
    ) -> Result<(), EspError> {
        let HeaderFields { spi, seq, iv } = header;
        let body_start = esp_start + esp::HEADER_LEN + esp::IV_LEN;
        let nonce = self.nonce(iv);
        let tag = if !self.gmac {
            let aad = self.aad(spi, seq);
            let body = written_mut(out, body_start)?;
            self.gcm.encrypt(&nonce, aad.as_bytes(), body).map_err(EspError::Crypto)?
        } else {
            self.gmac_tag(out, esp_start, seq, &nonce)?
        };
        self.push_icv(out, &tag);
        Ok(())
    }

    /// GMAC's tag over SPI || sequence number (|| ESN) || IV || body, all of
    /// which is `out[esp_start..]` except the ESN high half.
    fn gmac_tag(&self, out: &mut Vec<u8>, esp_start: usize, seq: u64, nonce: &[u8; 12]) -> Result<[u8; 16], EspError> {
        if !self.esn {
            return self.gcm.encrypt(nonce, written(out, esp_start)?, &mut []).map_err(EspError::Crypto);
        }
        // Insert the high half after the SPI for the AAD, then take it out.
        let high_at = esp_start + 4;
        let end = out.len();
        out.extend_from_slice(&[0; 4]);
        out.copy_within(high_at..end, high_at + 4);
        if let Some(high) = out.get_mut(high_at..).and_then(<[u8]>::first_chunk_mut::<4>) {
            *high = ((seq >> 32) as u32).to_be_bytes();
        }
        let tag =
            written(out, esp_start).and_then(|aad| self.gcm.encrypt(nonce, aad, &mut []).map_err(EspError::Crypto));
        out.copy_within(high_at + 4..end + 4, high_at);
        out.truncate(end);
        tag
    }

    /// Append the ICV: the tag truncated to the SA's length, with fixed-size
    /// copies for the lengths there are (no memcpy call).
    fn push_icv(&self, out: &mut Vec<u8>, tag: &[u8; 16]) {
        match self.icv_len {
            16 => out.extend_from_slice(tag),
            12 => out.extend_from_slice(tag.first_chunk::<12>().unwrap_or(&[0; 12])),
            8 => out.extend_from_slice(tag.first_chunk::<8>().unwrap_or(&[0; 8])),
            n => out.extend_from_slice(tag.get(..n).unwrap_or(tag)),
        }
    }

    /// Verify (and with GCM decrypt) the ESP packet `esp_bytes` (SPI through
    /// ICV, already length-checked by the caller: at least 16 bytes plus the
    /// ICV) with sequence number `seq`, appending the plaintext (payload,
    /// padding, trailer) to `out`.
    ///
    /// On failure `out` is returned to its length on entry and everything
    /// written past it has been zeroed. (The ciphertext is copied into `out`
    /// and decrypted there: decrypting straight from the packet into `out`
    /// measured no faster.)
    pub(crate) fn open(&self, esp_bytes: &[u8], seq: u64, out: &mut Vec<u8>) -> Result<(), EspError> {
        let start = out.len();
        let header = EspPacket::new_checked(esp_bytes)?;
        let nonce = self.nonce(header.iv());
        let Some((authenticated, icv)) = esp_bytes.split_at_checked(esp_bytes.len().saturating_sub(self.icv_len))
        else {
            return Err(EspError::Auth { seq });
        };
        let authenticated_view = EspPacket::new_checked(authenticated)?;
        let body = authenticated_view.body();
        let decrypt_error = |e| match e {
            crate::Error::Auth => EspError::Auth { seq },
            other => EspError::Crypto(other),
        };
        let result = if !self.gmac {
            let aad = self.aad(header.spi(), seq);
            out.extend_from_slice(body);
            written_mut(out, start)
                .and_then(|buf| self.gcm.decrypt(&nonce, aad.as_bytes(), buf, icv).map_err(decrypt_error))
        } else if !self.esn {
            let r = self.gcm.decrypt(&nonce, authenticated, &mut [], icv).map_err(decrypt_error);
            if r.is_ok() {
                out.extend_from_slice(body);
            }
            r
        } else {
            // Build SPI || high || low || IV || body in `out`, verify, then
            // move the body down over the header.
            out.extend_from_slice(&header.spi().to_be_bytes());
            out.extend_from_slice(&((seq >> 32) as u32).to_be_bytes());
            out.extend_from_slice(&header.sequence().to_be_bytes());
            out.extend_from_slice(&header.iv());
            out.extend_from_slice(body);
            let r =
                written(out, start).and_then(|aad| self.gcm.decrypt(&nonce, aad, &mut [], icv).map_err(decrypt_error));
            let head = esp::HEADER_LEN + 4 + esp::IV_LEN;
            let end = out.len();
            out.copy_within(start + head..end, start);
            out.truncate(end - head);
            r
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Some(written) = out.get_mut(start..) {
                    written.fill(0);
                }
                out.truncate(start);
                Err(e)
            }
        }
    }
}
