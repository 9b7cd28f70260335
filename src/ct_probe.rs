//! The constant-time scalar primitives, exposed for the dudect timing bench
//! (`benches/dudect.rs`) only. **Not part of the stable API**: hidden from
//! the docs, and may change or go away in any release.
//!
//! Each wrapper calls the very code the scalar backend runs: fixsliced AES
//! (`backend::scalar::aes`), the integer-multiply GHASH
//! (`backend::scalar::ghash`) and the tag comparison of `Gcm::decrypt`.

use crate::backend::KeyBytes;
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

/// Whether `tag` (4 to 16 bytes) is a prefix of `computed`: the comparison
/// `Gcm::decrypt` makes.
pub fn tags_match(computed: [u8; 16], tag: &[u8]) -> bool {
    crate::gcm::tags_match(computed, tag)
}
