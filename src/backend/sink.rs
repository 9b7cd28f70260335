//! A [`PlaintextSink`]: somewhere for the plaintext a backend reads anyway.
//!
//! Encrypting out of place, a backend loads every byte of the plaintext into
//! registers once. A caller that needs a pass of its own over the same bytes
//! (ESP's inner checksum, `crate::ones_complement`) can have it fused into
//! the cipher's loop instead: the backend hands each 64-byte block to the
//! sink as it loads it, and what is left once at the end. The cipher only
//! knows that bytes go in; what the sink makes of them is its own business.
//! Backends are generic over the sink, so [`Discard`] costs nothing.

/// Receives the plaintext of one message in order: whole 64-byte blocks,
/// then the remainder once (any length, possibly empty).
pub(crate) trait PlaintextSink {
    /// The next 64 bytes.
    fn block(&mut self, block: &[u8; 64]);
    /// The bytes after the last whole block; called at most once, last.
    fn rest(&mut self, bytes: &[u8]);
}

/// The sink that keeps nothing.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Discard;

impl PlaintextSink for Discard {
    #[inline(always)]
    fn block(&mut self, _: &[u8; 64]) {}

    #[inline(always)]
    fn rest(&mut self, _: &[u8]) {}
}

/// The one's complement sum (ESP's inner checksum), fed as the cipher reads.
impl PlaintextSink for crate::ones_complement::PlaintextSum {
    #[inline(always)]
    fn block(&mut self, block: &[u8; 64]) {
        self.add_block(block);
    }

    #[inline]
    fn rest(&mut self, bytes: &[u8]) {
        self.add_rest(bytes);
    }
}
