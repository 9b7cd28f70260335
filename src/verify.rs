//! Verify mode: SIMD output cross-checked against the constant-time scalar
//! backend. What it finds goes to [`crate::health`] (fault reports, counts)
//! and, through it, to [`crate::policy`] (quarantine).
//!
//! Why: in 2015 an AES-NI path under some Xen paravirtual guests corrupted
//! 16-byte blocks during encryption. The tag was computed over the already
//! wrong ciphertext, so the receiver's integrity check passed and corrupted
//! data reached applications. A tag cannot catch that; only a second,
//! independent computation can.
//!
//! How a checked call works (see [`VerifyPolicy`] for which calls are
//! checked): the input is copied into a per-thread scratch buffer, the SIMD
//! backend does its work in the caller's buffer, the scalar backend does the
//! same work in the scratch buffer, and the two results and tags are compared
//! (one `memcmp` when they agree, which is the normal case). The scalar work
//! is done once per checked message, never twice. On a mismatch:
//!
//! 1. the caller gets the scalar (correct) result and tag;
//! 2. every 16-byte block that differs is recorded as a [`FaultReport`](crate::FaultReport)
//!    (expected and actual keystream block), counted in [`health`](crate::health()), kept as
//!    [`Health::last_fault`](crate::Health::last_fault) and sent to every [`fault_events`](crate::fault_events) receiver;
//! 3. the SIMD backend is quarantined for the whole process:
//!    [`Backend::available`] and [`Backend::best`] stop offering it, and every
//!    key set up on it moves, at its next call, to the next backend in
//!    preference order that is still usable (the scalar backend last, which
//!    is never quarantined: it is the reference).
//!
//! The scratch buffer is kept per thread (up to 64 KiB, larger messages use
//! a temporary one), so a data plane with verify on allocates nothing per
//! message once each thread has seen its largest message. After a checked
//! decryption the plaintext left in it is wiped.

use crate::backend::Backend;
use crate::engine::Engine;
use crate::health::{self, FaultKind, FaultReport};
use std::cell::Cell;
use zeroize::Zeroize;

/// How much of a SIMD backend's output a key cross-checks against the
/// constant-time scalar backend before a call returns.
///
/// Set per key with [`Gcm::set_verify`](crate::Gcm::set_verify) (also on
/// [`Aes128Gcm`](crate::Aes128Gcm) and the other `aead` types, and per SA
/// with `esp::SaConfig::verify`). A key running on the scalar backend has
/// nothing to cross-check (it *is* the reference), so the policy costs
/// nothing there.
///
/// ```
/// use espgcm::{Gcm, VerifyPolicy};
///
/// let mut gcm = Gcm::new(&[7u8; 16])?;
/// // About one message in 4096, chosen at random, is checked in full.
/// gcm.set_verify(VerifyPolicy::Sample { one_in: 4096 });
/// let mut buf = [0u8; 64];
/// let tag = gcm.encrypt(&[1u8; 12], b"", &mut buf)?;
/// gcm.decrypt(&[1u8; 12], b"", &mut buf, &tag)?;
/// assert_eq!(buf, [0u8; 64]);
/// assert!(espgcm::health().is_healthy());
/// # Ok::<(), espgcm::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum VerifyPolicy {
    /// No cross-check and no cost.
    #[default]
    Off,
    /// About one message in `one_in`, chosen unpredictably (a per-thread
    /// random generator seeded from the operating system, not every n-th
    /// message), is checked in full.
    Sample {
        /// Average number of messages per checked message (0 and 1 mean every
        /// message).
        one_in: u32,
    },
    /// Every keystream block and every tag is checked.
    Full,
}

impl VerifyPolicy {
    /// Whether the next message should be checked (decided per call; for
    /// `Sample`, at random).
    #[inline]
    pub(crate) fn check_next(self) -> bool {
        match self {
            VerifyPolicy::Off => false,
            VerifyPolicy::Full => true,
            VerifyPolicy::Sample { one_in } => one_in <= 1 || crate::rng::random_below(u64::from(one_in)) == 0,
        }
    }
}

thread_local! {
    /// Reusable scratch space for the scalar side of a cross-check.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Messages up to this size keep their thread's scratch buffer for next time.
const SCRATCH_KEEP: usize = 64 * 1024;

/// Run `f` on a scratch buffer of exactly `len` bytes (contents unspecified).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    // Taking the buffer out (leaving an empty one) makes a nested call, say
    // from a fault-event receiver on this thread, safe: it gets its own.
    let mut buf = SCRATCH.try_with(Cell::take).unwrap_or_default();
    buf.resize(len, 0);
    let r = f(&mut buf);
    if buf.capacity() <= SCRATCH_KEEP {
        let _ = SCRATCH.try_with(|s| s.set(buf));
    }
    r
}

/// The SIMD side of a checked call, after the fact: which backend, which
/// pre-counter block, and the reference engine to recompute keystream blocks.
struct Check<'a> {
    backend: Backend,
    reference: &'a Engine,
    j0: u128,
}

impl Check<'_> {
    /// Compare the SIMD result `actual` (and `tag`) with the scalar result
    /// `expected` (and `expected_tag`); on a difference, report every wrong
    /// block and replace the result and tag with the scalar ones.
    fn settle(&self, actual: &mut [u8], tag: &mut [u8; 16], expected: &[u8], expected_tag: [u8; 16]) {
        health::count_verified(actual.len().div_ceil(16) as u64);
        if actual == expected && *tag == expected_tag {
            return;
        }
        self.report(actual, tag, expected, expected_tag);
        actual.copy_from_slice(expected);
        *tag = expected_tag;
    }

    #[cold]
    #[inline(never)]
    fn report(&self, actual: &[u8], tag: &[u8; 16], expected: &[u8], expected_tag: [u8; 16]) {
        let mut wrong_blocks = 0u64;
        for (index, (a, e)) in actual.chunks(16).zip(expected.chunks(16)).enumerate() {
            if a == e {
                continue;
            }
            // Result blocks differ exactly as keystream blocks do (both are
            // the same input XOR a keystream block).
            let mut diff = [0u8; 16];
            for (d, (x, y)) in diff.iter_mut().zip(a.iter().zip(e)) {
                *d = x ^ y;
            }
            let expected = self.keystream_block(index as u64);
            let actual: [u8; 16] = core::array::from_fn(|i| expected[i] ^ diff[i]);
            health::record(FaultReport {
                backend: self.backend,
                kind: FaultKind::Keystream,
                block_index: index as u64,
                expected,
                actual,
            });
            wrong_blocks += 1;
        }
        if wrong_blocks == 0 && *tag != expected_tag {
            health::record(FaultReport {
                backend: self.backend,
                kind: FaultKind::Tag,
                block_index: actual.len().div_ceil(16) as u64,
                expected: expected_tag,
                actual: *tag,
            });
        }
    }

    /// The scalar backend's keystream block for message block `index`:
    /// `E(K, inc32^(index + 1)(J0))`, as the encryption of 16 zero bytes
    /// under a pre-counter block moved on by `index`.
    fn keystream_block(&self, index: u64) -> [u8; 16] {
        let low = (self.j0 as u32).wrapping_add(index as u32);
        let j = (self.j0 & !u128::from(u32::MAX)) | u128::from(low);
        let mut block = [0u8; 16];
        let _ = self.reference.seal(j, &[], &mut block);
        block
    }
}

/// Encrypt `buf` in place on `engine` and cross-check it with `reference`
/// (the scalar engine for the same key); returns the correct tag.
#[inline(never)]
pub(crate) fn seal_checked(engine: &Engine, reference: &Engine, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
    with_scratch(buf.len(), |expected| {
        expected.copy_from_slice(buf);
        let mut tag = engine.seal(j0, aad, buf);
        let expected_tag = reference.seal(j0, aad, expected);
        Check { backend: engine.backend(), reference, j0 }.settle(buf, &mut tag, expected, expected_tag);
        tag
    })
}

/// Decrypt `buf` in place on `engine` and cross-check it with `reference`;
/// returns the correct computed tag (the caller compares it with the
/// received one). The scalar plaintext left in the scratch buffer is wiped.
#[inline(never)]
pub(crate) fn open_checked(engine: &Engine, reference: &Engine, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
    with_scratch(buf.len(), |expected| {
        expected.copy_from_slice(buf);
        let mut tag = engine.open(j0, aad, buf);
        let expected_tag = reference.open(j0, aad, expected);
        Check { backend: engine.backend(), reference, j0 }.settle(buf, &mut tag, expected, expected_tag);
        expected.as_mut_slice().zeroize();
        tag
    })
}

/// `Engine::seal_append` on `engine`, cross-checked with `reference`.
///
/// The one's complement sum of `parts[0]` is cross-checked too: a wrong one
/// cannot pass a corrupted packet, but it makes ESP refuse good ones, which
/// on a sick host would be packet loss that no health counter explains. The
/// correct sum is returned.
#[inline(never)]
pub(crate) fn seal_append_checked(
    engine: &Engine,
    reference: &Engine,
    j0: u128,
    aad: &[u8],
    parts: [&[u8]; 2],
    out: &mut Vec<u8>,
) -> ([u8; 16], u64) {
    let start = out.len();
    let (mut tag, mut sum) = engine.seal_append(j0, aad, parts, out);
    let actual = out.get_mut(start..).unwrap_or_default();
    check_sum(engine.backend(), parts[0], &mut sum);
    with_scratch(actual.len(), |expected| {
        let (first, second) = expected.split_at_mut(parts[0].len().min(actual.len()));
        first.copy_from_slice(parts[0]);
        second.copy_from_slice(parts[1]);
        let expected_tag = reference.seal(j0, aad, expected);
        Check { backend: engine.backend(), reference, j0 }.settle(actual, &mut tag, expected, expected_tag);
    });
    (tag, sum)
}

/// Compare a backend's fused one's complement sum of `data` with a plain
/// one; on a difference, report it and put the plain one in its place.
fn check_sum(backend: Backend, data: &[u8], sum: &mut u64) {
    let expected = crate::ones_complement::sum_native(data);
    // Sums are equal modulo 0xFFFF; folding gives each residue one form.
    let (want, got) = (crate::ones_complement::fold(expected), crate::ones_complement::fold(*sum));
    if want != got {
        let block = |v: u16| {
            let mut b = [0u8; 16];
            b[14..].copy_from_slice(&v.to_be_bytes());
            b
        };
        health::record(FaultReport {
            backend,
            kind: FaultKind::ChecksumSum,
            block_index: data.len().div_ceil(16) as u64,
            expected: block(want),
            actual: block(got),
        });
        *sum = expected;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_rates_are_about_right_and_off_and_full_are_exact() {
        assert!(!VerifyPolicy::Off.check_next());
        assert!(VerifyPolicy::Full.check_next());
        assert!(VerifyPolicy::Sample { one_in: 0 }.check_next());
        assert!(VerifyPolicy::Sample { one_in: 1 }.check_next());
        // 100,000 draws at 1 in 100: mean 1000, standard deviation 31.5;
        // the bounds are 8 standard deviations out.
        let hits = (0..100_000).filter(|_| VerifyPolicy::Sample { one_in: 100 }.check_next()).count();
        assert!((748..=1252).contains(&hits), "{hits} of 100000 sampled at 1 in 100");
    }

    #[test]
    fn sampling_is_not_periodic() {
        // Every n-th message would give identical gaps; random gaps vary.
        let picks: Vec<usize> = (0..20_000).filter(|_| VerifyPolicy::Sample { one_in: 10 }.check_next()).collect();
        let gaps: std::collections::HashSet<usize> = picks.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.len() > 10, "gaps between sampled messages: {gaps:?}");
    }

    #[test]
    fn scratch_has_the_asked_length_and_nests() {
        with_scratch(100, |a| {
            assert_eq!(a.len(), 100);
            a.fill(1);
            with_scratch(10, |b| {
                assert_eq!(b.len(), 10);
                b.fill(2);
            });
            assert_eq!(a.as_slice(), &[1u8; 100][..]);
        });
        with_scratch(SCRATCH_KEEP + 1, |a| assert_eq!(a.len(), SCRATCH_KEEP + 1));
    }
}
