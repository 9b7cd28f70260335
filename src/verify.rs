//! Verify policy: how much SIMD output is cross-checked against the scalar
//! backend.

/// How much of a SIMD backend's output a key cross-checks against the
/// constant-time scalar backend before a call returns.
///
/// Set per key with [`Gcm::set_verify`](crate::Gcm::set_verify). A key on the
/// scalar backend has nothing to cross-check (it *is* the reference), so the
/// policy changes nothing for it. This build ships only the scalar backend;
/// the cross-check itself arrives with the SIMD backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum VerifyPolicy {
    /// No cross-check and no cost.
    #[default]
    Off,
    /// About one message in `one_in`, chosen unpredictably, is checked in full.
    Sample {
        /// Average number of messages per checked message (0 and 1 mean every
        /// message).
        one_in: u32,
    },
    /// Every keystream block and every tag is checked.
    Full,
}
