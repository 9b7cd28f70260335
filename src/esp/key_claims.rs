//! One live sender per key and salt in a process.
//!
//! AES-GCM does not survive a repeated nonce under one key, and an ESP
//! nonce is the salt followed by the sequence number. Two `Outbound`s made
//! from one `SaConfig` (the obvious way to give each worker its own) would
//! both send sequence numbers 1, 2, 3, ... under the same key. So each
//! `Outbound` claims its key and salt here for as long as it lives, and a
//! second claim is refused: the SA is to be shared (it is `Send + Sync`),
//! never cloned.
//!
//! A claim holds a fingerprint, never the key: the tag of an empty message
//! under the key, with the salt as AAD and a nonce reserved for this
//! purpose, which is computed in process and never sent, and from which the
//! key cannot be recovered.

use crate::Gcm;
use std::collections::HashSet;
use std::sync::{LazyLock, Mutex, PoisonError};
use zeroize::Zeroize;

/// The nonce of the fingerprint computation.
const CLAIM_NONCE: [u8; 12] = *b"espgcm-claim";

static CLAIMS: LazyLock<Mutex<HashSet<[u8; 16]>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

/// A key and salt held by one live sender; released when dropped.
pub(crate) struct KeyClaim {
    fingerprint: [u8; 16],
}

impl KeyClaim {
    /// Claim `gcm`'s key with `salt`; `None` if a live claim holds them.
    pub(crate) fn new(gcm: &Gcm, salt: [u8; 4]) -> Option<KeyClaim> {
        // An empty message with a 12-byte nonce cannot fail.
        let fingerprint = gcm.encrypt(&CLAIM_NONCE, &salt, &mut []).ok()?;
        let mut claims = CLAIMS.lock().unwrap_or_else(PoisonError::into_inner);
        if claims.insert(fingerprint) { Some(KeyClaim { fingerprint }) } else { None }
    }
}

impl Drop for KeyClaim {
    fn drop(&mut self) {
        let mut claims = CLAIMS.lock().unwrap_or_else(PoisonError::into_inner);
        claims.remove(&self.fingerprint);
        self.fingerprint.zeroize();
    }
}

impl core::fmt::Debug for KeyClaim {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("KeyClaim")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_key_and_salt_are_claimed_once_while_the_claim_lives() {
        let gcm = Gcm::new(&[0x5c; 16]).unwrap();
        let first = KeyClaim::new(&gcm, [1, 2, 3, 4]).unwrap();
        assert!(KeyClaim::new(&gcm, [1, 2, 3, 4]).is_none(), "a second sender on the same key and salt");
        // Another salt gives other nonces: no conflict.
        let other_salt = KeyClaim::new(&gcm, [1, 2, 3, 5]).unwrap();
        // The same key set up on another backend is the same key.
        let scalar = Gcm::with_backend(&[0x5c; 16], crate::Backend::Scalar).unwrap();
        assert!(KeyClaim::new(&scalar, [1, 2, 3, 4]).is_none());
        drop(first);
        let again = KeyClaim::new(&scalar, [1, 2, 3, 4]).unwrap();
        drop((again, other_salt));
    }
}
