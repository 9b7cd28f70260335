//! # espgcm-rustls: a rustls crypto provider with espgcm's AES-GCM
//!
//! [`provider()`] is rustls's ring provider with its cipher suites replaced
//! by AES-GCM suites whose record protection is espgcm's: TLS 1.3
//! `TLS13_AES_256_GCM_SHA384` and `TLS13_AES_128_GCM_SHA256`, and the TLS 1.2
//! ECDHE-ECDSA and ECDHE-RSA AES-GCM suites. Everything else (key
//! exchange, signatures, certificate verification, hashes, HKDF, the TLS 1.2
//! PRF, randomness, ticket encryption) is ring's, through rustls.
//!
//! ```
//! use std::sync::Arc;
//!
//! let provider = Arc::new(espgcm_rustls::provider());
//! // Any rustls configuration takes it; here a client trusting no root yet.
//! let config = rustls::ClientConfig::builder_with_provider(provider)
//!     .with_safe_default_protocol_versions()?
//!     .with_root_certificates(rustls::RootCertStore::empty())
//!     .with_no_client_auth();
//! assert_eq!(config.crypto_provider().cipher_suites.len(), 6);
//! # Ok::<(), rustls::Error>(())
//! ```
//!
//! ## How records are protected
//!
//! - TLS 1.3 (RFC 8446 §5.2, §5.3): the nonce is the traffic IV XOR the
//!   64-bit record sequence number (big-endian, in the IV's last 8 bytes);
//!   the AAD is the 5-byte record header (type 23, legacy version 0x0303,
//!   length of the encrypted record); the inner plaintext carries the real
//!   content type after the data.
//! - TLS 1.2 (RFC 5288): the nonce is the 4-byte implicit salt from the key
//!   block followed by an 8-byte explicit nonce sent at the start of each
//!   record; the explicit nonce is the sequence number XOR 8 bytes of the key
//!   block (as rustls's own providers do), so it never repeats under a key;
//!   the AAD is the sequence number, type, version and plaintext length.
//!
//! Keys are set up with [`espgcm::Gcm`] on the best backend for this CPU,
//! with verify mode sampling one record in 4096 against the constant-time
//! scalar backend (as ESP SAs do by default: a host whose AES hardware
//! corrupts output is found and its backend quarantined). A decryption that
//! fails leaves no plaintext behind (espgcm zeroes the record) and is
//! reported to rustls as [`rustls::Error::DecryptError`], which ends the
//! connection.
//!
//! ## Limits
//!
//! `confidentiality_limit` is 2^24 records for every suite, as rustls's
//! documentation asks for AES-GCM (an attacker's advantage stays below
//! 2^-60 with records of up to 2^14 bytes); rustls updates TLS 1.3 keys
//! before it is reached and closes TLS 1.2 connections. No integrity limit
//! applies over TCP: the first record that fails to decrypt ends the
//! connection. QUIC is not offered by these suites (`quic: None`).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use espgcm::{Gcm, VerifyPolicy};
use rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, KeyBlockShape, MessageDecrypter, MessageEncrypter, Nonce,
    OutboundOpaqueMessage, OutboundPlainMessage, PrefixedPayload, Tls12AeadAlgorithm, Tls13AeadAlgorithm,
    UnsupportedOperationError, make_tls12_aad, make_tls13_aad,
};
use rustls::crypto::{CipherSuiteCommon, CryptoProvider, KeyExchangeAlgorithm, ring};
use rustls::{
    ConnectionTrafficSecrets, ContentType, Error, ProtocolVersion, SupportedCipherSuite, Tls12CipherSuite,
    Tls13CipherSuite,
};

/// The AES-GCM confidentiality limit rustls's documentation gives: 2^24
/// full-size records per key.
pub const CONFIDENTIALITY_LIMIT: u64 = 1 << 24;

/// The verify policy of every record key: one record in 4096, chosen at
/// random, is cross-checked against espgcm's constant-time scalar backend.
pub const VERIFY: VerifyPolicy = espgcm::esp::DEFAULT_VERIFY;

/// A GCM tag is 16 bytes.
const TAG_LEN: usize = 16;
/// TLS 1.2's explicit nonce, sent at the start of each record.
const EXPLICIT_NONCE_LEN: usize = 8;
/// The largest TLS plaintext record (RFC 8446 §5.1, RFC 5246 §6.2.1).
const MAX_FRAGMENT_LEN: usize = 1 << 14;

/// rustls's ring provider, with these AES-GCM suites in place of its own:
/// key exchange, signatures, hashes, HKDF, PRF and randomness come from ring.
///
/// ring's key exchange has no post-quantum hybrid group (X25519MLKEM768),
/// which is why rustls 0.23.48 deprecated its ring provider. For that, put
/// these suites on another provider with [`with_suites`], for example
/// `with_suites(rustls::crypto::aws_lc_rs::default_provider())`.
pub fn provider() -> CryptoProvider {
    // ring is what this crate is built on (lighter to build than aws-lc-rs);
    // its provider is deprecated only for the key exchange noted above.
    #[allow(deprecated)]
    with_suites(ring::default_provider())
}

/// `base` with its cipher suites replaced by this crate's
/// ([`ALL_CIPHER_SUITES`]): record protection by espgcm, everything else by
/// `base` (the suites' hash, HKDF and TLS 1.2 PRF are ring's whatever `base`
/// is).
pub fn with_suites(base: CryptoProvider) -> CryptoProvider {
    CryptoProvider { cipher_suites: ALL_CIPHER_SUITES.to_vec(), ..base }
}

/// Every suite of this provider, most preferred first (ring's order).
pub static ALL_CIPHER_SUITES: &[SupportedCipherSuite] = &[
    TLS13_AES_256_GCM_SHA384,
    TLS13_AES_128_GCM_SHA256,
    TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
];

/// The TLS 1.3 suite of ring's provider with this name: its hash and HKDF
/// are reused.
const fn ring13(suite: SupportedCipherSuite) -> &'static Tls13CipherSuite {
    match suite {
        SupportedCipherSuite::Tls13(s) => s,
        SupportedCipherSuite::Tls12(_) => panic!("not a TLS 1.3 suite"),
    }
}

/// The TLS 1.2 suite of ring's provider with this name: its hash, PRF and
/// signature schemes are reused.
const fn ring12(suite: SupportedCipherSuite) -> &'static Tls12CipherSuite {
    match suite {
        SupportedCipherSuite::Tls12(s) => s,
        SupportedCipherSuite::Tls13(_) => panic!("not a TLS 1.2 suite"),
    }
}

/// A TLS 1.3 suite: ring's `base` with espgcm's AEAD.
const fn tls13(base: SupportedCipherSuite, aead: &'static Gcm13) -> Tls13CipherSuite {
    let base = ring13(base);
    Tls13CipherSuite {
        common: CipherSuiteCommon {
            suite: base.common.suite,
            hash_provider: base.common.hash_provider,
            confidentiality_limit: CONFIDENTIALITY_LIMIT,
        },
        hkdf_provider: base.hkdf_provider,
        aead_alg: aead,
        quic: None,
    }
}

/// A TLS 1.2 suite: ring's `base` with espgcm's AEAD.
const fn tls12(base: SupportedCipherSuite, aead: &'static Gcm12) -> Tls12CipherSuite {
    let base = ring12(base);
    Tls12CipherSuite {
        common: CipherSuiteCommon {
            suite: base.common.suite,
            hash_provider: base.common.hash_provider,
            confidentiality_limit: CONFIDENTIALITY_LIMIT,
        },
        prf_provider: base.prf_provider,
        kx: KeyExchangeAlgorithm::ECDHE,
        sign: base.sign,
        aead_alg: aead,
    }
}

static AES128_GCM_13: Gcm13 = Gcm13 { key_len: 16 };
static AES256_GCM_13: Gcm13 = Gcm13 { key_len: 32 };
static AES128_GCM_12: Gcm12 = Gcm12 { key_len: 16 };
static AES256_GCM_12: Gcm12 = Gcm12 { key_len: 32 };

/// TLS 1.3 `TLS_AES_128_GCM_SHA256` with espgcm's AES-GCM.
pub static TLS13_AES_128_GCM_SHA256: SupportedCipherSuite =
    SupportedCipherSuite::Tls13(&tls13(ring::cipher_suite::TLS13_AES_128_GCM_SHA256, &AES128_GCM_13));

/// TLS 1.3 `TLS_AES_256_GCM_SHA384` with espgcm's AES-GCM.
pub static TLS13_AES_256_GCM_SHA384: SupportedCipherSuite =
    SupportedCipherSuite::Tls13(&tls13(ring::cipher_suite::TLS13_AES_256_GCM_SHA384, &AES256_GCM_13));

/// TLS 1.2 `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256` with espgcm's AES-GCM.
pub static TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: SupportedCipherSuite =
    SupportedCipherSuite::Tls12(&tls12(ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, &AES128_GCM_12));

/// TLS 1.2 `TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384` with espgcm's AES-GCM.
pub static TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: SupportedCipherSuite =
    SupportedCipherSuite::Tls12(&tls12(ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, &AES256_GCM_12));

/// TLS 1.2 `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256` with espgcm's AES-GCM.
pub static TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256: SupportedCipherSuite =
    SupportedCipherSuite::Tls12(&tls12(ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, &AES128_GCM_12));

/// TLS 1.2 `TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384` with espgcm's AES-GCM.
pub static TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384: SupportedCipherSuite =
    SupportedCipherSuite::Tls12(&tls12(ring::cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, &AES256_GCM_12));

/// An espgcm key for a record key rustls derived, with the provider's
/// verify policy; `None` if rustls handed over a key of the wrong length
/// (it does not: it asks `key_len` first), which then fails every record
/// rather than panicking.
fn record_key(key: &AeadKey) -> Option<Gcm> {
    let mut gcm = Gcm::new(key.as_ref()).ok()?;
    gcm.set_verify(VERIFY);
    Some(gcm)
}

/// The `ConnectionTrafficSecrets` of an AES-GCM key (for kTLS and the like).
fn secrets(key_len: usize, key: AeadKey, iv: Iv) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
    match key_len {
        16 => Ok(ConnectionTrafficSecrets::Aes128Gcm { key, iv }),
        32 => Ok(ConnectionTrafficSecrets::Aes256Gcm { key, iv }),
        _ => Err(UnsupportedOperationError),
    }
}

/// AES-GCM for TLS 1.3 records.
struct Gcm13 {
    key_len: usize,
}

impl Tls13AeadAlgorithm for Gcm13 {
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        Box::new(Seal13 { gcm: record_key(&key), iv })
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        Box::new(Open13 { gcm: record_key(&key), iv })
    }

    fn key_len(&self) -> usize {
        self.key_len
    }

    fn extract_keys(&self, key: AeadKey, iv: Iv) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        secrets(self.key_len, key, iv)
    }

    fn fips(&self) -> bool {
        false
    }
}

/// Sends TLS 1.3 records.
struct Seal13 {
    gcm: Option<Gcm>,
    iv: Iv,
}

impl MessageEncrypter for Seal13 {
    fn encrypt(&mut self, msg: OutboundPlainMessage<'_>, seq: u64) -> Result<OutboundOpaqueMessage, Error> {
        let gcm = self.gcm.as_ref().ok_or(Error::EncryptError)?;
        let total_len = self.encrypted_payload_len(msg.payload.len());
        // TLSInnerPlaintext: the data, then the real content type (no padding).
        let mut payload = PrefixedPayload::with_capacity(total_len);
        payload.extend_from_chunks(&msg.payload);
        payload.extend_from_slice(&msg.typ.to_array());
        let nonce = Nonce::new(&self.iv, seq).0;
        let tag = gcm.encrypt(&nonce, &make_tls13_aad(total_len), payload.as_mut()).map_err(|_| Error::EncryptError)?;
        payload.extend_from_slice(&tag);
        // Every TLS 1.3 record goes out as application data, version 1.2.
        Ok(OutboundOpaqueMessage::new(ContentType::ApplicationData, ProtocolVersion::TLSv1_2, payload))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + 1 + TAG_LEN
    }
}

/// Receives TLS 1.3 records.
struct Open13 {
    gcm: Option<Gcm>,
    iv: Iv,
}

impl MessageDecrypter for Open13 {
    fn decrypt<'a>(&mut self, mut msg: InboundOpaqueMessage<'a>, seq: u64) -> Result<InboundPlainMessage<'a>, Error> {
        let gcm = self.gcm.as_ref().ok_or(Error::DecryptError)?;
        let payload = &mut msg.payload;
        let len = payload.len();
        let Some(plain_len) = len.checked_sub(TAG_LEN) else {
            return Err(Error::DecryptError);
        };
        let nonce = Nonce::new(&self.iv, seq).0;
        let (ciphertext, tag) = payload.split_at_mut(plain_len);
        gcm.decrypt(&nonce, &make_tls13_aad(len), ciphertext, tag).map_err(|_| Error::DecryptError)?;
        payload.truncate(plain_len);
        // Strips the padding and reads the real content type.
        msg.into_tls13_unpadded_message()
    }
}

/// AES-GCM for TLS 1.2 records (RFC 5288).
struct Gcm12 {
    key_len: usize,
}

/// The 12-byte IV of TLS 1.2 AES-GCM: the implicit salt, then the 8 bytes of
/// the key block that the sequence number is XORed into for each record's
/// explicit nonce.
fn tls12_iv(salt: &[u8], explicit: &[u8]) -> Option<Iv> {
    let mut iv = [0u8; 12];
    iv.get_mut(..4)?.copy_from_slice(salt.get(..4)?);
    iv.get_mut(4..)?.copy_from_slice(explicit.get(..EXPLICIT_NONCE_LEN)?);
    Some(Iv::from(iv))
}

impl Tls12AeadAlgorithm for Gcm12 {
    fn encrypter(&self, key: AeadKey, iv: &[u8], extra: &[u8]) -> Box<dyn MessageEncrypter> {
        match tls12_iv(iv, extra) {
            Some(iv) => Box::new(Seal12 { gcm: record_key(&key), iv }),
            None => Box::new(Seal12 { gcm: None, iv: Iv::from([0; 12]) }),
        }
    }

    fn decrypter(&self, key: AeadKey, iv: &[u8]) -> Box<dyn MessageDecrypter> {
        let mut salt = [0u8; 4];
        let gcm = match iv.get(..4) {
            Some(s) => {
                salt.copy_from_slice(s);
                record_key(&key)
            }
            None => None,
        };
        Box::new(Open12 { gcm, salt })
    }

    fn key_block_shape(&self) -> KeyBlockShape {
        KeyBlockShape { enc_key_len: self.key_len, fixed_iv_len: 4, explicit_nonce_len: EXPLICIT_NONCE_LEN }
    }

    fn extract_keys(
        &self,
        key: AeadKey,
        iv: &[u8],
        explicit: &[u8],
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        secrets(self.key_len, key, tls12_iv(iv, explicit).ok_or(UnsupportedOperationError)?)
    }

    fn fips(&self) -> bool {
        false
    }
}

/// Sends TLS 1.2 records.
struct Seal12 {
    gcm: Option<Gcm>,
    iv: Iv,
}

impl MessageEncrypter for Seal12 {
    fn encrypt(&mut self, msg: OutboundPlainMessage<'_>, seq: u64) -> Result<OutboundOpaqueMessage, Error> {
        let gcm = self.gcm.as_ref().ok_or(Error::EncryptError)?;
        let mut payload = PrefixedPayload::with_capacity(self.encrypted_payload_len(msg.payload.len()));
        let nonce = Nonce::new(&self.iv, seq).0;
        let aad = make_tls12_aad(seq, msg.typ, msg.version, msg.payload.len());
        // explicit nonce || ciphertext || tag
        payload.extend_from_slice(nonce.get(4..).ok_or(Error::EncryptError)?);
        payload.extend_from_chunks(&msg.payload);
        let data = payload.as_mut().get_mut(EXPLICIT_NONCE_LEN..).ok_or(Error::EncryptError)?;
        let tag = gcm.encrypt(&nonce, &aad, data).map_err(|_| Error::EncryptError)?;
        payload.extend_from_slice(&tag);
        Ok(OutboundOpaqueMessage::new(msg.typ, msg.version, payload))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + EXPLICIT_NONCE_LEN + TAG_LEN
    }
}

/// Receives TLS 1.2 records.
struct Open12 {
    gcm: Option<Gcm>,
    salt: [u8; 4],
}

impl MessageDecrypter for Open12 {
    fn decrypt<'a>(&mut self, mut msg: InboundOpaqueMessage<'a>, seq: u64) -> Result<InboundPlainMessage<'a>, Error> {
        let gcm = self.gcm.as_ref().ok_or(Error::DecryptError)?;
        let len = msg.payload.len();
        let Some(plain_len) = len.checked_sub(EXPLICIT_NONCE_LEN + TAG_LEN) else {
            return Err(Error::DecryptError);
        };
        let aad = make_tls12_aad(seq, msg.typ, msg.version, plain_len);
        let (explicit, rest) = msg.payload.split_at_mut(EXPLICIT_NONCE_LEN);
        let mut nonce = [0u8; 12];
        nonce[..4].copy_from_slice(&self.salt);
        nonce[4..].copy_from_slice(explicit);
        let (ciphertext, tag) = rest.split_at_mut(plain_len);
        gcm.decrypt(&nonce, &aad, ciphertext, tag).map_err(|_| Error::DecryptError)?;
        if plain_len > MAX_FRAGMENT_LEN {
            return Err(Error::PeerSentOversizedRecord);
        }
        Ok(msg.into_plain_message_range(EXPLICIT_NONCE_LEN..EXPLICIT_NONCE_LEN + plain_len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CipherSuite;

    #[test]
    fn suites_are_ring_s_with_espgcm_record_protection() {
        #[allow(deprecated)]
        let ring = ring::default_provider();
        for ours in ALL_CIPHER_SUITES {
            let theirs = ring.cipher_suites.iter().find(|s| s.suite() == ours.suite()).expect("ring has the suite");
            assert_eq!(ours.version(), theirs.version());
            match (ours, theirs) {
                (SupportedCipherSuite::Tls13(o), SupportedCipherSuite::Tls13(t)) => {
                    assert_eq!(o.common.hash_provider.algorithm(), t.common.hash_provider.algorithm());
                    assert_eq!(o.common.confidentiality_limit, 1 << 24);
                    assert_eq!(o.aead_alg.key_len(), t.aead_alg.key_len());
                    assert!(o.quic.is_none());
                }
                (SupportedCipherSuite::Tls12(o), SupportedCipherSuite::Tls12(t)) => {
                    assert_eq!(o.common.hash_provider.algorithm(), t.common.hash_provider.algorithm());
                    assert_eq!(o.common.confidentiality_limit, 1 << 24);
                    assert_eq!(o.aead_alg.key_block_shape().enc_key_len, t.aead_alg.key_block_shape().enc_key_len);
                    assert_eq!(o.sign, t.sign);
                }
                _ => panic!("{:?}: versions differ", ours.suite()),
            }
        }
        let names: Vec<CipherSuite> = ALL_CIPHER_SUITES.iter().map(|s| s.suite()).collect();
        assert_eq!(
            names,
            [
                CipherSuite::TLS13_AES_256_GCM_SHA384,
                CipherSuite::TLS13_AES_128_GCM_SHA256,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
                CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            ]
        );
        assert!(!provider().fips() && provider().kx_groups.len() == ring.kx_groups.len());
    }
}
