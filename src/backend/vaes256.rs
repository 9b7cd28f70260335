//! The VAES + VPCLMULQDQ backend on 256-bit registers.
//!
//! Work in progress: until its own loops land, every call runs on the
//! AES-NI key it is built on.

use super::KeyBytes;
use super::aesni::AesNiKey;

/// Key material of the 256-bit VAES backend.
#[derive(Clone)]
pub(crate) struct Vaes256Key {
    base: AesNiKey,
}

impl Vaes256Key {
    /// Key setup; `None` unless this CPU has what the backend needs.
    pub(crate) fn new(key: KeyBytes<'_>) -> Option<Vaes256Key> {
        if crate::backend::cpu::has_vaes256() != Some(true) {
            return None;
        }
        Some(Vaes256Key { base: AesNiKey::new(key)? })
    }

    pub(crate) fn ghash(&self, acc: &mut u128, data: &[u8]) {
        self.base.ghash(acc, data)
    }

    pub(crate) fn ghash_block(&self, acc: &mut u128, block: u128) {
        self.base.ghash_block(acc, block)
    }

    #[inline]
    pub(crate) fn seal(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        self.base.seal(j0, aad, buf)
    }

    #[inline]
    pub(crate) fn open(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        self.base.open(j0, aad, buf)
    }

    #[inline]
    pub(crate) fn seal_append(&self, j0: u128, aad: &[u8], parts: [&[u8]; 2], out: &mut Vec<u8>) -> ([u8; 16], u64) {
        self.base.seal_append(j0, aad, parts, out)
    }
}
