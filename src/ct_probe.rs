//! The constant-time scalar primitives, exposed for the dudect timing bench
//! (`benches/dudect.rs`) only. **Not part of the stable API**: hidden from
//! the docs, and may change or go away in any release.
//!
//! Each wrapper calls the very code the scalar backend runs: fixsliced AES
//! (`backend::scalar::aes`), the integer-multiply GHASH
//! (`backend::scalar::ghash`), a whole scalar seal (which takes the
//! sixteen-block row-sliced counter path from eight blocks up) and the tag
//! comparison of `Gcm::decrypt`.

use crate::backend::KeyBytes;
use crate::backend::scalar::ScalarKey;
use crate::backend::scalar::aes::RoundKeys;
use crate::backend::scalar::ghash::GhashKey;

/// Scalar AES with an expanded key.
pub struct ScalarAes(RoundKeys);

impl ScalarAes {
    /// Expand a 16-, 24- or 32-byte key; `None` for other lengths.
    pub fn new(key: &[u8]) -> Option<ScalarAes> {
        KeyBytes::new(key).map(|k| ScalarAes(RoundKeys::new(k)))
    }

    /// Encrypt blocks in place (four per sliced pass).
    pub fn encrypt_blocks(&self, blocks: &mut [[u8; 16]]) {
        self.0.encrypt_blocks(blocks);
    }
}

/// Scalar GHASH under a hash key `H`.
pub struct ScalarGhash(GhashKey);

impl ScalarGhash {
    /// Set up the powers of `h`.
    pub fn new(h: &[u8; 16]) -> ScalarGhash {
        ScalarGhash(GhashKey::new(h))
    }

    /// GHASH of `data`, zero-padded to whole blocks, from a zero accumulator.
    pub fn hash(&self, data: &[u8]) -> u128 {
        let mut acc = 0;
        self.0.update_padded(&mut acc, data);
        acc
    }
}

/// The scalar backend's AES-GCM with a set-up key.
pub struct ScalarGcm(ScalarKey);

impl ScalarGcm {
    /// Set up a 16-, 24- or 32-byte key; `None` for other lengths.
    pub fn new(key: &[u8]) -> Option<ScalarGcm> {
        KeyBytes::new(key).map(|k| ScalarGcm(ScalarKey::new(k)))
    }

    /// Encrypt `buf` in place under the 96-bit `iv` with `aad`; the tag.
    pub fn seal(&self, iv: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        let mut j0 = [0u8; 16];
        j0[..12].copy_from_slice(iv);
        j0[15] = 1;
        self.0.seal(u128::from_be_bytes(j0), aad, buf)
    }
}

/// Whether `tag` (4 to 16 bytes) is a prefix of `computed`: the comparison
/// `Gcm::decrypt` makes.
pub fn tags_match(computed: [u8; 16], tag: &[u8]) -> bool {
    crate::gcm::tags_match(computed, tag)
}
