//! Several short messages at once (the kernel under `Gcm::encrypt_batch`):
//! what a group is, independent of the backend that runs it.

/// Messages per group. (Groups of 32, so that more sets' rounds could
/// overlap the hash of the set before within a call, measured level with
/// eight at 16-200 bytes.)
pub(crate) const GROUP: usize = 8;
/// The fewest messages that go through the group kernel together; fewer
/// of similar length run one by one.
pub(crate) const MIN_GROUP: usize = 4;
/// The longest message a group takes, in blocks; longer ones are better
/// served by the single-message bulk loop.
pub(crate) const MAX_BLOCKS: usize = 48;
/// The most AAD a message of a group may have, in bytes.
pub(crate) const MAX_AAD: usize = 16;

/// One message of a group: in place, like a single call.
pub(crate) struct Message<'a> {
    /// The pre-counter block as a big-endian integer.
    pub(crate) j0: u128,
    pub(crate) aad: &'a [u8],
    pub(crate) data: &'a mut [u8],
}

/// Whether a message may join a group whose kernel takes up to
/// `max_blocks` (at most [`MAX_BLOCKS`]) blocks: 1 to `max_blocks` blocks
/// of data, at most [`MAX_AAD`] bytes of AAD.
pub(crate) fn fits(aad_len: usize, data_len: usize, max_blocks: usize) -> bool {
    aad_len <= MAX_AAD && (1..=max_blocks.min(MAX_BLOCKS) * 16).contains(&data_len)
}

/// The last uniform length block a batch's group kernel hashed, and its
/// product with `H`, reduced, in that kernel's representation.
///
/// In a burst of one packet size every message has the same length block
/// `L`, and `L * H` is the last term of every message's hash: computing it
/// once per batch instead of once per message takes one multiply-add of
/// six out of a 64-byte message's hash. Local drivers, 32 x 64 B, pinned,
/// interleaved (2026-12-07): AES-256 seal 14.7 against 15.0-15.1 ns a
/// message, open 15.6-16.0 against 16.0-16.3; AES-128 open 14.0-14.1
/// against 14.2-14.3, seal level. One value serves one key on one
/// backend: a batch makes its own.
pub(crate) struct LengthHash {
    /// The length block (`0`: none yet; a message of a group has data, so
    /// its length block is never zero).
    pub(crate) bits: u128,
    /// `L * H`, reduced: derived from the key, so wiped on drop.
    pub(crate) hash: u128,
}

impl LengthHash {
    /// Nothing cached.
    pub(crate) const fn new() -> LengthHash {
        LengthHash { bits: 0, hash: 0 }
    }
}

impl Drop for LengthHash {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.hash);
    }
}
