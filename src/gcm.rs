//! AES-GCM (NIST SP 800-38D) over a backend: length rules, J0, tag checking.
//!
//! The backend does the bulk work (counter-mode encryption fused with GHASH).
//! This layer decides everything that must be the same on every backend: which
//! lengths are legal, how the pre-counter block J0 is derived from the IV, and
//! how a tag is checked: in constant time, possibly truncated, and with the
//! buffer wiped before an authentication failure is returned.

use crate::backend::Backend;
use crate::backend::KeyBytes;
use crate::engine::Engine;
use crate::error::Error;
use crate::verify::VerifyPolicy;
use crate::{policy, verify};
use aead::array::Array;
use aead::consts::{U12, U16, U24, U32};
use aead::inout::InOutBuf;
use aead::{AeadCore, AeadInOut, Key, KeyInit, KeySizeUser, Nonce, Tag, TagPosition};
use core::fmt;
use std::sync::OnceLock;
use zeroize::Zeroize;

/// Longest message under one IV: 2^39 - 256 bits (SP 800-38D, 5.2.1.1).
pub const MAX_MESSAGE_LEN: u64 = (1 << 36) - 32;
/// Longest AAD: 2^64 - 1 bits, rounded down to whole bytes.
pub const MAX_AAD_LEN: u64 = (1 << 61) - 1;
/// Longest IV: 2^64 - 1 bits, rounded down to whole bytes.
pub const MAX_IV_LEN: u64 = (1 << 61) - 1;
/// Shortest tag `decrypt` accepts, in bytes.
pub const MIN_TAG_LEN: usize = 4;

/// Whether `tag` (4 to 16 bytes) is a prefix of the `computed` tag, in
/// constant time: both are read as 128-bit numbers (`tag` zero-padded), the
/// bytes past `tag.len()` are masked off (the length is public) and the
/// difference is compared with zero behind an optimization barrier
/// ([`crate::backend::is_zero_ct`]), with no branch or early exit on the
/// data. The computed tag (the right tag for what may be a forgery) is
/// wiped afterwards, as one 128-bit word: a volatile store per byte cost
/// more than the rest of the comparison. A whole 16-byte tag (the common
/// case; the branch is on the public length) is compared as one word in
/// memory order, without the partial tag's shifts, masks and byte swaps:
/// opening a batch of 64-byte messages measured about 1 ns a message
/// faster that way.
#[inline]
pub(crate) fn tags_match(computed: [u8; 16], tag: &[u8]) -> bool {
    let matched = prefix_matches(&computed, tag);
    let mut computed = u128::from_ne_bytes(computed);
    computed.zeroize();
    matched
}

/// [`tags_match`] without the wipe, for a caller that holds the computed
/// tags itself and wipes them (a batch wipes a group's at once, and only
/// when one of them did not match: a matching tag equals the one the
/// caller handed in). A whole tag is compared in memory order, with no
/// byte swaps: only a partial tag needs the bytes as a number, to mask
/// off those past its end.
#[inline(always)]
pub(crate) fn prefix_matches(computed: &[u8; 16], tag: &[u8]) -> bool {
    let diff = match <&[u8; 16]>::try_from(tag) {
        Ok(whole) => u128::from_ne_bytes(*computed) ^ u128::from_ne_bytes(*whole),
        Err(_) => {
            let n = tag.len().min(16);
            let mask = u128::MAX.checked_shl(8 * (16 - n as u32)).unwrap_or(0);
            (u128::from_be_bytes(*computed) ^ given_tag(tag)) & mask
        }
    };
    crate::backend::is_zero_ct((diff >> 64) as u64 | diff as u64)
}

/// The first 16 bytes of `tag` as a big-endian number, zero-padded. Tags
/// of 4 to 16 bytes are read as two words whose ends overlap where the
/// length is not a multiple of the word: copied byte-wise into a stack
/// buffer instead, the 16-byte load after the copy waited for its narrower
/// stores (a failed store forward), about a third of `decrypt`'s own time.
/// The branches are on the length, which is public.
#[inline(always)]
fn given_tag(tag: &[u8]) -> u128 {
    let n = tag.len().min(16);
    let word = |at: usize| tag.get(at..).and_then(<[u8]>::first_chunk::<8>).map_or(0, |w| u64::from_be_bytes(*w));
    let half = |at: usize| tag.get(at..).and_then(<[u8]>::first_chunk::<4>).map_or(0, |w| u32::from_be_bytes(*w));
    if n >= 8 {
        // Bytes 8..n are the low end of the word that ends at n.
        let low = word(n - 8).checked_shl(8 * (16 - n as u32)).unwrap_or(0);
        (u128::from(word(0)) << 64) | u128::from(low)
    } else if n >= 4 {
        let low = half(n - 4).checked_shl(8 * (8 - n as u32)).unwrap_or(0);
        u128::from((u64::from(half(0)) << 32) | u64::from(low)) << 64
    } else {
        tag.iter().take(n).enumerate().fold(0, |acc, (i, &b)| acc | (u128::from(b) << (120 - 8 * i)))
    }
}

/// Check every length rule of SP 800-38D for one call.
pub(crate) fn check_lengths(iv_len: usize, aad_len: usize, msg_len: usize) -> Result<(), Error> {
    if iv_len == 0 || iv_len as u64 > MAX_IV_LEN {
        return Err(Error::IvLength);
    }
    if msg_len as u64 > MAX_MESSAGE_LEN || aad_len as u64 > MAX_AAD_LEN {
        return Err(Error::TooLong);
    }
    Ok(())
}

/// AES-GCM with a key of 16, 24 or 32 bytes (AES-128, AES-192, AES-256),
/// running on one [`Backend`] chosen when the key is set up.
///
/// ```
/// use espgcm::{Error, Gcm};
///
/// let gcm = Gcm::new(&[0x42; 16])?;
/// let iv = [7u8; 12];
/// let aad = b"spi+seq";
/// let mut buf = *b"attack at dawn";
/// let tag = gcm.encrypt(&iv, aad, &mut buf)?;
/// assert_ne!(&buf, b"attack at dawn");
///
/// gcm.decrypt(&iv, aad, &mut buf, &tag)?;
/// assert_eq!(&buf, b"attack at dawn");
///
/// // A damaged tag is refused and nothing is released.
/// let mut bad = tag;
/// bad[0] ^= 1;
/// gcm.encrypt(&iv, aad, &mut buf)?;
/// assert_eq!(gcm.decrypt(&iv, aad, &mut buf, &bad), Err(Error::Auth));
/// assert_eq!(buf, [0u8; 14]);
/// # Ok::<(), Error>(())
/// ```
#[derive(Clone)]
pub struct Gcm {
    /// The engine on the backend chosen at key setup: every call goes here
    /// unless that backend has been quarantined.
    engine: Engine,
    /// Engines for other backends, built at first need: the scalar one as
    /// the reference for verify mode, and the one the key moves to if its
    /// own backend is quarantined. Indexed like [`Backend::ALL`].
    others: [OnceLock<Engine>; Backend::ALL.len()],
    /// The key itself, to build those engines (zeroized on drop, as the
    /// engines' own key schedules are).
    key: StoredKey,
    verify: VerifyPolicy,
}

/// A copy of the AES key, wiped when dropped.
#[derive(Clone)]
enum StoredKey {
    Aes128([u8; 16]),
    Aes192([u8; 24]),
    Aes256([u8; 32]),
}

impl StoredKey {
    fn new(key: KeyBytes<'_>) -> StoredKey {
        match key {
            KeyBytes::Aes128(k) => StoredKey::Aes128(*k),
            KeyBytes::Aes192(k) => StoredKey::Aes192(*k),
            KeyBytes::Aes256(k) => StoredKey::Aes256(*k),
        }
    }

    fn get(&self) -> KeyBytes<'_> {
        match self {
            StoredKey::Aes128(k) => KeyBytes::Aes128(k),
            StoredKey::Aes192(k) => KeyBytes::Aes192(k),
            StoredKey::Aes256(k) => KeyBytes::Aes256(k),
        }
    }
}

impl Drop for StoredKey {
    fn drop(&mut self) {
        match self {
            StoredKey::Aes128(k) => k.zeroize(),
            StoredKey::Aes192(k) => k.zeroize(),
            StoredKey::Aes256(k) => k.zeroize(),
        }
    }
}

impl Gcm {
    /// Set up a key on [`Backend::best()`].
    ///
    /// # Errors
    /// [`Error::KeyLength`] unless `key` is 16, 24 or 32 bytes.
    pub fn new(key: &[u8]) -> Result<Gcm, Error> {
        Gcm::with_backend(key, Backend::best())
    }

    /// Set up a key on a given backend.
    ///
    /// This is an explicit choice: it succeeds for any backend the CPU
    /// supports, even one removed from [`Backend::available`] by
    /// `ESPGCM_DISABLE` (so that tools can still examine it).
    ///
    /// # Errors
    /// [`Error::KeyLength`] for a bad key length;
    /// [`Error::Unsupported`] if the CPU (or this build) lacks the backend.
    pub fn with_backend(key: &[u8], backend: Backend) -> Result<Gcm, Error> {
        let key = KeyBytes::new(key).ok_or(Error::KeyLength)?;
        if !backend.is_supported() {
            return Err(Error::Unsupported(backend));
        }
        let engine = Engine::new(backend, key).ok_or(Error::Unsupported(backend))?;
        Ok(Gcm::from_engine(engine, key))
    }

    fn from_engine(engine: Engine, key: KeyBytes<'_>) -> Gcm {
        Gcm { engine, others: Default::default(), key: StoredKey::new(key), verify: VerifyPolicy::Off }
    }

    /// The backend this key runs on: the one it was set up on, or, if that
    /// one has since been quarantined by verify mode, the one its calls
    /// have moved to (see [`health`](crate::health)).
    pub fn backend(&self) -> Backend {
        policy::current_backend(self.engine.backend())
    }

    /// Key length in bytes: 16, 24 or 32.
    pub fn key_len(&self) -> usize {
        self.key.get().as_slice().len()
    }

    /// The engine calls go to: the key's own, or another one if its backend
    /// is quarantined. When nothing is quarantined this is one relaxed load.
    #[inline(always)]
    pub(crate) fn active(&self) -> &Engine {
        if policy::any_quarantined() { self.moved() } else { &self.engine }
    }

    #[cold]
    #[inline(never)]
    fn moved(&self) -> &Engine {
        self.engine_for(policy::current_backend(self.engine.backend()))
    }

    /// The engine for `backend`, built on first use.
    fn engine_for(&self, backend: Backend) -> &Engine {
        if backend == self.engine.backend() {
            return &self.engine;
        }
        let slot = Backend::ALL.iter().position(|b| *b == backend).unwrap_or(Backend::ALL.len() - 1);
        let Some(cell) = self.others.get(slot) else {
            return &self.engine;
        };
        cell.get_or_init(|| {
            let key = self.key.get();
            Engine::new(backend, key).unwrap_or_else(|| Engine::scalar(key))
        })
    }

    /// The scalar engine to check `engine` against, if this call is to be
    /// checked: never for the scalar backend itself; per the policy
    /// otherwise.
    #[inline(always)]
    pub(crate) fn reference_for(&self, engine: &Engine) -> Option<&Engine> {
        if self.verify != VerifyPolicy::Off && engine.backend() != Backend::Scalar && self.verify.check_next() {
            Some(self.engine_for(Backend::Scalar))
        } else {
            None
        }
    }

    /// Choose how much SIMD output is cross-checked against the scalar
    /// backend (see [`VerifyPolicy`]). On a mismatch the call still returns
    /// the correct (scalar) result, the fault is recorded in
    /// [`health`](crate::health), and the backend is quarantined.
    pub fn set_verify(&mut self, policy: VerifyPolicy) {
        self.verify = policy;
    }

    /// The current verify policy.
    pub fn verify(&self) -> VerifyPolicy {
        self.verify
    }

    /// Encrypt `buf` in place and return the 16-byte tag.
    ///
    /// Any IV of at least one byte is accepted; 12 bytes is the fast path
    /// (other lengths are hashed into J0 as SP 800-38D specifies). Never
    /// reuse an IV under the same key.
    ///
    /// # Errors
    /// [`Error::IvLength`] for an empty IV, [`Error::TooLong`] past the
    /// SP 800-38D limits. `buf` is unchanged on error.
    #[inline]
    pub fn encrypt(&self, iv: &[u8], aad: &[u8], buf: &mut [u8]) -> Result<[u8; 16], Error> {
        check_lengths(iv.len(), aad.len(), buf.len())?;
        let engine = self.active();
        if let Some(reference) = self.reference_for(engine) {
            let j0 = j0(reference, iv);
            return Ok(verify::seal_checked(engine, reference, j0, aad, buf));
        }
        Ok(engine.seal(j0(engine, iv), aad, buf))
    }

    /// Decrypt `buf` in place if `tag` (4 to 16 bytes, a prefix of the full
    /// tag) matches; the comparison takes the same time wherever they differ.
    ///
    /// # Errors
    /// [`Error::Auth`] if the tag does not match: `buf` is then all zeros, so
    /// unverified plaintext is never released. [`Error::TagLength`],
    /// [`Error::IvLength`] or [`Error::TooLong`] for bad lengths, with `buf`
    /// unchanged.
    #[inline]
    pub fn decrypt(&self, iv: &[u8], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> Result<(), Error> {
        if !(MIN_TAG_LEN..=16).contains(&tag.len()) {
            return Err(Error::TagLength);
        }
        check_lengths(iv.len(), aad.len(), buf.len())?;
        let engine = self.active();
        let computed = if let Some(reference) = self.reference_for(engine) {
            verify::open_checked(engine, reference, j0(reference, iv), aad, buf)
        } else {
            engine.open(j0(engine, iv), aad, buf)
        };
        if tags_match(computed, tag) {
            Ok(())
        } else {
            buf.zeroize();
            Err(Error::Auth)
        }
    }

    /// [`encrypt`](Self::encrypt) of a batch job (lengths already checked)
    /// on `engine`, cross-checked with `reference` when given.
    #[inline]
    pub(crate) fn seal_job(
        &self,
        engine: &Engine,
        reference: Option<&Engine>,
        iv: &[u8],
        aad: &[u8],
        buf: &mut [u8],
    ) -> [u8; 16] {
        match reference {
            Some(r) => verify::seal_checked(engine, r, j0(r, iv), aad, buf),
            None => engine.seal(j0(engine, iv), aad, buf),
        }
    }

    /// The tag [`decrypt`](Self::decrypt) computes for a batch job, which
    /// it has decrypted in place; the caller compares and wipes.
    #[inline]
    pub(crate) fn open_job(
        &self,
        engine: &Engine,
        reference: Option<&Engine>,
        iv: &[u8],
        aad: &[u8],
        buf: &mut [u8],
    ) -> [u8; 16] {
        match reference {
            Some(r) => verify::open_checked(engine, r, j0(r, iv), aad, buf),
            None => engine.open(j0(engine, iv), aad, buf),
        }
    }

    /// Encrypt `parts[0] || parts[1]` (a 12-byte-or-other IV as in
    /// [`encrypt`](Self::encrypt)) and append the ciphertext to `out`,
    /// without copying the plaintext there first. Returns the tag and the
    /// one's complement sum of `parts[0]` (`crate::ones_complement`),
    /// computed in the same pass on backends that can. For ESP, which seals
    /// a packet's payload (whose checksum it verifies) followed by padding
    /// it does not own.
    ///
    /// On error nothing is appended.
    pub(crate) fn encrypt_append(
        &self,
        iv: &[u8],
        aad: &[u8],
        parts: [&[u8]; 2],
        out: &mut Vec<u8>,
    ) -> Result<([u8; 16], u64), Error> {
        check_lengths(iv.len(), aad.len(), parts[0].len().saturating_add(parts[1].len()))?;
        let engine = self.active();
        if let Some(reference) = self.reference_for(engine) {
            let j0 = j0(reference, iv);
            return Ok(verify::seal_append_checked(engine, reference, j0, aad, parts, out));
        }
        Ok(engine.seal_append(j0(engine, iv), aad, parts, out))
    }
}

/// The pre-counter block as a big-endian integer: `IV || 0^31 || 1` for
/// 12-byte IVs, otherwise `GHASH(IV, zero-padded || 0^64 || [bits(IV)]_64)`
/// computed by `engine` (the scalar reference in a checked call, so that a
/// faulty SIMD GHASH cannot skew both sides of the comparison alike).
fn j0(engine: &Engine, iv: &[u8]) -> u128 {
    if let Some((head, tail)) = <&[u8; 12]>::try_from(iv).ok().map(|iv| iv.split_at(8)) {
        let head = u64::from_be_bytes(head.try_into().unwrap_or_default());
        let tail = u32::from_be_bytes(tail.try_into().unwrap_or_default());
        (u128::from(head) << 64) | (u128::from(tail) << 32) | 1
    } else {
        let mut acc = 0u128;
        engine.ghash(&mut acc, iv);
        engine.ghash_block(&mut acc, (iv.len() as u128) * 8);
        acc
    }
}

impl fmt::Debug for Gcm {
    /// Shows the backend, key size and verify policy; never key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gcm")
            .field("backend", &self.backend())
            .field("key_bits", &(self.key_len() * 8))
            .field("verify", &self.verify)
            .finish_non_exhaustive()
    }
}

macro_rules! fixed_key_gcm {
    ($(#[$doc:meta])* $name:ident, $variant:ident, $key_size:ty, $key_len:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $name(Gcm);

        impl $name {
            /// Set up a key on a given backend (see [`Gcm::with_backend`]).
            ///
            /// # Errors
            #[doc = concat!("[`Error::KeyLength`] unless `key` is ", stringify!($key_len), " bytes;")]
            /// [`Error::Unsupported`] if the CPU lacks the backend.
            pub fn with_backend(key: &[u8], backend: Backend) -> Result<Self, Error> {
                if key.len() != $key_len {
                    return Err(Error::KeyLength);
                }
                Gcm::with_backend(key, backend).map($name)
            }

            /// The backend this key runs on.
            pub fn backend(&self) -> Backend {
                self.0.backend()
            }

            /// Choose how much SIMD output is cross-checked (see [`VerifyPolicy`]).
            pub fn set_verify(&mut self, policy: VerifyPolicy) {
                self.0.set_verify(policy);
            }

            /// The key-length-agnostic handle.
            pub fn as_gcm(&self) -> &Gcm {
                &self.0
            }
        }

        impl KeySizeUser for $name {
            type KeySize = $key_size;
        }

        impl KeyInit for $name {
            /// Key setup on [`Backend::best()`].
            fn new(key: &Key<Self>) -> Self {
                let key = KeyBytes::$variant(key.as_ref());
                // `best()` is always supported; should this build lack it
                // anyway, the scalar backend (which needs nothing from the
                // CPU) takes the key.
                let engine = Engine::new(Backend::best(), key).unwrap_or_else(|| Engine::scalar(key));
                $name(Gcm::from_engine(engine, key))
            }
        }

        impl AeadCore for $name {
            type NonceSize = U12;
            type TagSize = U16;
            const TAG_POSITION: TagPosition = TagPosition::Postfix;
        }

        impl AeadInOut for $name {
            #[inline]
            fn encrypt_inout_detached(
                &self,
                nonce: &Nonce<Self>,
                associated_data: &[u8],
                buffer: InOutBuf<'_, '_, u8>,
            ) -> aead::Result<Tag<Self>> {
                let buf = buffer.into_out_with_copied_in();
                let tag = self.0.encrypt(nonce.as_slice(), associated_data, buf).map_err(|_| aead::Error)?;
                Ok(Array::from(tag))
            }

            #[inline]
            fn decrypt_inout_detached(
                &self,
                nonce: &Nonce<Self>,
                associated_data: &[u8],
                buffer: InOutBuf<'_, '_, u8>,
                tag: &Tag<Self>,
            ) -> aead::Result<()> {
                let buf = buffer.into_out_with_copied_in();
                self.0.decrypt(nonce.as_slice(), associated_data, buf, tag.as_slice()).map_err(|_| aead::Error)
            }
        }
    };
}

fixed_key_gcm!(
    /// AES-128-GCM with the `aead` traits (12-byte nonce, 16-byte tag).
    ///
    /// ```
    /// use espgcm::Aes128Gcm;
    /// use espgcm::aead::{Aead, KeyInit, Payload};
    ///
    /// let key = [0u8; 16];
    /// let cipher = Aes128Gcm::new(&key.into());
    /// let nonce = [1u8; 12].into();
    /// let sealed = cipher.encrypt(&nonce, Payload { msg: b"hello", aad: b"hdr" }).unwrap();
    /// assert_eq!(sealed.len(), 5 + 16);
    /// let opened = cipher.decrypt(&nonce, Payload { msg: &sealed, aad: b"hdr" }).unwrap();
    /// assert_eq!(opened, b"hello");
    /// ```
    Aes128Gcm,
    Aes128,
    U16,
    16
);
fixed_key_gcm!(
    /// AES-192-GCM with the `aead` traits (12-byte nonce, 16-byte tag).
    Aes192Gcm,
    Aes192,
    U24,
    24
);
fixed_key_gcm!(
    /// AES-256-GCM with the `aead` traits (12-byte nonce, 16-byte tag).
    Aes256Gcm,
    Aes256,
    U32,
    32
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_rules_follow_sp800_38d() {
        assert_eq!(check_lengths(0, 0, 0), Err(Error::IvLength));
        assert_eq!(check_lengths(1, 0, 0), Ok(()));
        assert_eq!(check_lengths(12, 0, MAX_MESSAGE_LEN as usize), Ok(()));
        assert_eq!(check_lengths(12, 0, MAX_MESSAGE_LEN as usize + 1), Err(Error::TooLong));
        assert_eq!(check_lengths(12, MAX_AAD_LEN as usize, 0), Ok(()));
        assert_eq!(check_lengths(12, MAX_AAD_LEN as usize + 1, 0), Err(Error::TooLong));
        assert_eq!(check_lengths(MAX_IV_LEN as usize + 1, 0, 0), Err(Error::IvLength));
        assert_eq!(MAX_MESSAGE_LEN, 68_719_476_704);
    }

    #[test]
    fn bad_key_lengths_are_refused_with_an_actionable_message() {
        for len in [0usize, 1, 15, 17, 20, 28, 31, 33, 64] {
            let err = Gcm::new(&vec![0u8; len]).unwrap_err();
            assert_eq!(err, Error::KeyLength, "length {len}");
        }
        assert!(Error::KeyLength.to_string().contains("16, 24 or 32 bytes"));
        assert_eq!(Aes128Gcm::with_backend(&[0u8; 32], Backend::Scalar).unwrap_err(), Error::KeyLength);
        assert_eq!(Aes256Gcm::with_backend(&[0u8; 16], Backend::Scalar).unwrap_err(), Error::KeyLength);
    }

    #[test]
    fn unsupported_backends_are_refused_not_faked() {
        for b in Backend::ALL.into_iter().filter(|b| !b.is_supported()) {
            let err = Gcm::with_backend(&[0u8; 16], b).unwrap_err();
            assert_eq!(err, Error::Unsupported(b));
            assert!(err.to_string().contains(b.name()), "{err}");
        }
    }

    #[test]
    fn a_given_tag_reads_as_its_zero_padded_first_16_bytes() {
        let bytes: [u8; 20] = core::array::from_fn(|i| (i * 53 + 11) as u8);
        for len in 0..=20 {
            let mut padded = [0u8; 16];
            let n = len.min(16);
            padded[..n].copy_from_slice(&bytes[..n]);
            assert_eq!(given_tag(&bytes[..len]), u128::from_be_bytes(padded), "length {len}");
        }
    }

    #[test]
    fn tag_comparison_checks_exactly_the_given_prefix() {
        let computed: [u8; 16] = core::array::from_fn(|i| (i * 37 + 5) as u8);
        for len in MIN_TAG_LEN..=16 {
            assert!(tags_match(computed, &computed[..len]), "length {len}");
            for byte in 0..len {
                for bit in 0..8 {
                    let mut wrong = computed;
                    wrong[byte] ^= 1 << bit;
                    assert!(!tags_match(computed, &wrong[..len]), "length {len}, byte {byte}, bit {bit}");
                }
            }
            // Bytes past the given prefix do not matter.
            let mut tail_differs = computed;
            if len < 16 {
                tail_differs[len] ^= 0xff;
                assert!(tags_match(tail_differs, &computed[..len]), "length {len}");
            }
        }
    }

    #[test]
    fn tag_lengths_outside_4_to_16_are_refused_and_buffer_untouched() {
        let gcm = Gcm::with_backend(&[1u8; 16], Backend::Scalar).unwrap();
        let mut buf = [9u8; 20];
        for len in [0usize, 1, 3, 17, 32] {
            let tag = vec![0u8; len];
            assert_eq!(gcm.decrypt(&[0u8; 12], b"", &mut buf, &tag), Err(Error::TagLength));
            assert_eq!(buf, [9u8; 20]);
        }
    }

    #[test]
    fn truncated_tags_verify_and_a_wrong_byte_fails() {
        let gcm = Gcm::with_backend(&[3u8; 32], Backend::Scalar).unwrap();
        let msg = *b"sixteen byte msg and more";
        let mut buf = msg;
        let tag = gcm.encrypt(&[5u8; 12], b"aad", &mut buf).unwrap();
        let ct = buf;
        for len in 4..=16 {
            let mut b = ct;
            assert_eq!(gcm.decrypt(&[5u8; 12], b"aad", &mut b, &tag[..len]), Ok(()));
            assert_eq!(b, msg);
            let mut bad = tag;
            bad[len - 1] ^= 0x80;
            let mut b = ct;
            assert_eq!(gcm.decrypt(&[5u8; 12], b"aad", &mut b, &bad[..len]), Err(Error::Auth));
            assert_eq!(b, [0u8; 25], "buffer must be wiped, tag length {len}");
        }
    }

    /// Every backend this CPU runs.
    fn supported() -> Vec<Backend> {
        Backend::ALL.into_iter().filter(|b| b.is_supported()).collect()
    }

    #[test]
    fn encrypt_append_gives_the_in_place_result_and_the_sum_of_the_first_part_on_every_backend() {
        use crate::ones_complement::{fold, sum_native};
        let data: Vec<u8> = (0..2400u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8).collect();
        let prefix = b"header bytes that stay";
        for backend in supported() {
            for key_len in [16, 32] {
                let gcm = Gcm::with_backend(&data[..key_len], backend).unwrap();
                let lens = (0..=300).chain([511, 512, 513, 1024, 1400, 1420, 2047, 2048]);
                for (n, len) in lens.enumerate() {
                    // Extras of 0 to 70 bytes: past 64 the backends fall back to copying.
                    let extra_len = (n * 7) % 71;
                    let (main, extra) = (&data[..len], &data[2300..2300 + extra_len]);
                    let iv = &data[len % 100..len % 100 + 12];
                    let mut whole = [main, extra].concat();
                    let plain = whole.clone();
                    let tag = gcm.encrypt(iv, b"spi+seq", &mut whole).unwrap();

                    let mut out = prefix.to_vec();
                    let (tag2, sum) = gcm.encrypt_append(iv, b"spi+seq", [main, extra], &mut out).unwrap();
                    let what = format!("{backend} aes{} len {len} extra {extra_len}", key_len * 8);
                    assert_eq!(&out[..prefix.len()], prefix, "{what}");
                    assert_eq!(&out[prefix.len()..], &whole[..], "{what}: ciphertext");
                    assert_eq!(tag2, tag, "{what}: tag");
                    assert_eq!(fold(sum), fold(sum_native(main)), "{what}: sum of the first part");
                    let mut back = out[prefix.len()..].to_vec();
                    gcm.decrypt(iv, b"spi+seq", &mut back, &tag2).unwrap();
                    assert_eq!(back, plain, "{what}: round trip");
                }
            }
        }
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let gcm = Gcm::with_backend(&[0xAB; 16], Backend::Scalar).unwrap();
        let s = format!("{gcm:?}");
        assert!(s.contains("backend: Scalar") && s.contains("key_bits: 128"), "{s}");
        assert!(!s.to_lowercase().contains("ab, ab") && !s.contains("171"), "{s}");
    }
}
