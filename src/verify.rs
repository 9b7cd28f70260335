//! Verify mode: SIMD output cross-checked against the constant-time scalar
//! backend, fault reports, process-wide quarantine, and [`health`].
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
//! 2. every 16-byte block that differs is recorded as a [`FaultReport`]
//!    (expected and actual keystream block), counted in [`health`], kept as
//!    [`Health::last_fault`] and sent to every [`fault_events`] receiver;
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

use crate::Backend;
use crate::backend::{Engine, Overrides};
use core::fmt;
use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, mpsc};
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
            VerifyPolicy::Sample { one_in } => one_in <= 1 || random_below(u64::from(one_in)) == 0,
        }
    }
}

/// What a [`FaultReport`] is about.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// A keystream block (the block `E(K, J0 + 1 + block_index)` that
    /// en- or decrypts message block `block_index`) differed.
    Keystream,
    /// Every keystream block agreed but the tag differed (a GHASH or
    /// tag-mask fault). `block_index` is then the message's block count.
    Tag,
    /// The one's complement sum a backend computed over a plaintext while
    /// encrypting it (the sum ESP checks the inner checksum with) differed.
    /// `block_index` is the number of 16-byte blocks summed; `expected` and
    /// `actual` hold the folded 16-bit sums, big-endian, in their last two
    /// bytes.
    ChecksumSum,
}

/// One wrong 16-byte block found by a cross-check.
///
/// ```
/// # use espgcm::{Backend, FaultKind, FaultReport};
/// let r = FaultReport {
///     backend: Backend::AesNi,
///     kind: FaultKind::Keystream,
///     block_index: 3,
///     expected: [0x11; 16],
///     actual: [0x13; 16],
/// };
/// assert_eq!(
///     r.to_string(),
///     "aesni: keystream block 3 wrong: expected 11111111111111111111111111111111, \
///      got 13131313131313131313131313131313 (xor 02020202020202020202020202020202)"
/// );
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FaultReport {
    /// The backend that produced the wrong block (now quarantined).
    pub backend: Backend,
    /// Keystream block or tag.
    pub kind: FaultKind,
    /// Index of the block in the message (0 is the first 16 bytes); for a
    /// [`FaultKind::Tag`] fault, the number of blocks in the message.
    pub block_index: u64,
    /// What the scalar backend computed: the keystream block, or the tag.
    pub expected: [u8; 16],
    /// What the SIMD backend computed. For the message's last, partial
    /// block only the bytes that covered the message were compared; the
    /// others are shown equal to `expected`.
    pub actual: [u8; 16],
}

impl fmt::Display for FaultReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = |b: &[u8; 16]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let diff: [u8; 16] = core::array::from_fn(|i| self.expected[i] ^ self.actual[i]);
        let what = match self.kind {
            FaultKind::Keystream => format!("keystream block {}", self.block_index),
            FaultKind::Tag => format!("tag (after {} correct keystream blocks)", self.block_index),
            FaultKind::ChecksumSum => format!("checksum sum over {} plaintext blocks", self.block_index),
        };
        write!(
            f,
            "{}: {what} wrong: expected {}, got {} (xor {})",
            self.backend,
            hex(&self.expected),
            hex(&self.actual),
            hex(&diff)
        )
    }
}

/// A process-wide snapshot of what verify mode has done: see [`health`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Health {
    /// Keystream blocks (16 bytes each; a short last block counts as one)
    /// checked against the scalar backend since the process started.
    pub verified_blocks: u64,
    /// Messages checked against the scalar backend.
    pub verified_messages: u64,
    /// Wrong blocks found (each one is a [`FaultReport`]).
    pub faults: u64,
    /// Backends quarantined after a fault, most preferred first. They are
    /// gone from [`Backend::available`] until the process restarts.
    pub quarantined: Vec<Backend>,
    /// The most recent fault.
    pub last_fault: Option<FaultReport>,
}

impl Health {
    /// No fault was ever found and nothing is quarantined. (A process with
    /// verify off everywhere is "healthy" by this test and has checked
    /// nothing: look at `verified_blocks` too.)
    pub fn is_healthy(&self) -> bool {
        self.faults == 0 && self.quarantined.is_empty()
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let q: Vec<&str> = self.quarantined.iter().map(|b| b.name()).collect();
        write!(
            f,
            "{}: {} blocks in {} messages cross-checked, {} faults, quarantined: {}",
            if self.is_healthy() { "healthy" } else { "FAULTY" },
            self.verified_blocks,
            self.verified_messages,
            self.faults,
            if q.is_empty() { "none".to_string() } else { q.join(", ") }
        )?;
        if let Some(last) = &self.last_fault {
            write!(f, "; last fault: {last}")?;
        }
        Ok(())
    }
}

static VERIFIED_BLOCKS: AtomicU64 = AtomicU64::new(0);
static VERIFIED_MESSAGES: AtomicU64 = AtomicU64::new(0);
static FAULTS: AtomicU64 = AtomicU64::new(0);
/// Bit `1 << (backend as u32)` set: quarantined.
static QUARANTINED: AtomicU32 = AtomicU32::new(0);
static LAST_FAULT: Mutex<Option<FaultReport>> = Mutex::new(None);
static SUBSCRIBERS: Mutex<Vec<mpsc::Sender<FaultReport>>> = Mutex::new(Vec::new());

/// A lock that a panic elsewhere cannot make unusable: the data under these
/// locks is always consistent (single assignments).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What verify mode has done in this process: blocks checked, faults found,
/// backends quarantined, the last fault.
///
/// ```
/// let h = espgcm::health();
/// println!("{h}");
/// assert!(h.is_healthy());
/// ```
pub fn health() -> Health {
    let mask = QUARANTINED.load(Ordering::Acquire);
    Health {
        verified_blocks: VERIFIED_BLOCKS.load(Ordering::Relaxed),
        verified_messages: VERIFIED_MESSAGES.load(Ordering::Relaxed),
        faults: FAULTS.load(Ordering::Relaxed),
        quarantined: Backend::ALL.into_iter().filter(|b| mask & bit(*b) != 0).collect(),
        last_fault: *lock(&LAST_FAULT),
    }
}

/// A channel that receives every [`FaultReport`] from now on, so that an
/// operator's thread can alert on it (the sending side never blocks; a
/// dropped receiver is forgotten at the next fault).
///
/// ```no_run
/// let faults = espgcm::fault_events();
/// std::thread::spawn(move || {
///     for report in faults {
///         eprintln!("ALERT: AES-GCM hardware fault: {report}");
///     }
/// });
/// ```
pub fn fault_events() -> mpsc::Receiver<FaultReport> {
    let (tx, rx) = mpsc::channel();
    lock(&SUBSCRIBERS).push(tx);
    rx
}

#[inline(always)]
fn bit(b: Backend) -> u32 {
    1 << (b as u32)
}

/// Whether any backend is quarantined: one relaxed load, the only cost
/// quarantine adds to a call when all is well.
#[inline(always)]
pub(crate) fn any_quarantined() -> bool {
    QUARANTINED.load(Ordering::Relaxed) != 0
}

/// Whether `backend` is quarantined.
pub(crate) fn is_quarantined(backend: Backend) -> bool {
    QUARANTINED.load(Ordering::Acquire) & bit(backend) != 0
}

/// The backend a key set up on `backend` runs on now: `backend` itself
/// unless it is quarantined, else the next backend after it in preference
/// order ([`Backend::ALL`]) that is supported, not disabled and not
/// quarantined; the scalar backend as the last resort.
pub(crate) fn current_backend(backend: Backend) -> Backend {
    if !is_quarantined(backend) {
        return backend;
    }
    let disabled = &Overrides::get().disabled;
    Backend::ALL
        .into_iter()
        .skip_while(|b| *b != backend)
        .skip(1)
        .find(|b| b.is_supported() && !disabled.contains(b) && !is_quarantined(*b))
        .unwrap_or(Backend::Scalar)
}

/// Record a fault: count it, keep it as the last one, tell the subscribers,
/// quarantine its backend (never the scalar one, which is the reference).
fn record(report: FaultReport) {
    FAULTS.fetch_add(1, Ordering::Relaxed);
    *lock(&LAST_FAULT) = Some(report);
    lock(&SUBSCRIBERS).retain(|tx| tx.send(report).is_ok());
    if report.backend != Backend::Scalar {
        QUARANTINED.fetch_or(bit(report.backend), Ordering::AcqRel);
    }
}

/// Lift every quarantine and zero the counters (tests and demonstrations,
/// through `fault::reset_health`).
#[cfg(feature = "fault-injection")]
pub(crate) fn reset() {
    QUARANTINED.store(0, Ordering::Release);
    VERIFIED_BLOCKS.store(0, Ordering::Relaxed);
    VERIFIED_MESSAGES.store(0, Ordering::Relaxed);
    FAULTS.store(0, Ordering::Relaxed);
    *lock(&LAST_FAULT) = None;
}

thread_local! {
    /// The per-thread generator behind `Sample` (and fault injection):
    /// SplitMix64, seeded on first use from std's `RandomState` (keys from
    /// the operating system), so which messages are checked cannot be
    /// predicted from outside.
    static RANDOM: Cell<u64> = const { Cell::new(0) };
    /// Reusable scratch space for the scalar side of a cross-check.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

fn random_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64) | 1
}

/// A random number from the per-thread generator.
#[inline]
pub(crate) fn random() -> u64 {
    let state = RANDOM
        .try_with(|s| {
            let mut x = s.get();
            if x == 0 {
                x = random_seed();
            }
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            s.set(x);
            x
        })
        .unwrap_or_else(|_| random_seed());
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A random number in `0..n` (`n` >= 1), by multiply-high (no division).
#[inline]
pub(crate) fn random_below(n: u64) -> u64 {
    ((u128::from(random()) * u128::from(n)) >> 64) as u64
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
        let blocks = actual.len().div_ceil(16) as u64;
        VERIFIED_BLOCKS.fetch_add(blocks, Ordering::Relaxed);
        VERIFIED_MESSAGES.fetch_add(1, Ordering::Relaxed);
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
            record(FaultReport {
                backend: self.backend,
                kind: FaultKind::Keystream,
                block_index: index as u64,
                expected,
                actual,
            });
            wrong_blocks += 1;
        }
        if wrong_blocks == 0 && *tag != expected_tag {
            record(FaultReport {
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
        #[allow(unused_mut)]
        let mut tag = engine.seal(j0, aad, buf);
        #[cfg(feature = "fault-injection")]
        crate::fault::corrupt_sealed(engine, buf, &mut tag);
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
        #[cfg(feature = "fault-injection")]
        crate::fault::corrupt_opened(engine, buf);
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
    #[allow(unused_mut)]
    let (mut tag, mut sum) = engine.seal_append(j0, aad, parts, out);
    let actual = out.get_mut(start..).unwrap_or_default();
    #[cfg(feature = "fault-injection")]
    {
        crate::fault::corrupt_sealed(engine, actual, &mut tag);
        crate::fault::corrupt_sum(engine, &mut sum);
    }
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
        record(FaultReport {
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
    fn random_below_stays_in_range() {
        for n in [1u64, 2, 3, 1000, u64::MAX] {
            for _ in 0..1000 {
                assert!(random_below(n) < n);
            }
        }
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

    #[test]
    fn fault_report_names_backend_block_and_difference() {
        let r = FaultReport {
            backend: Backend::AesNi,
            kind: FaultKind::Tag,
            block_index: 89,
            expected: [0; 16],
            actual: [0xff; 16],
        };
        let s = r.to_string();
        assert!(s.starts_with("aesni: tag (after 89 correct keystream blocks) wrong"), "{s}");
        assert!(s.ends_with("(xor ffffffffffffffffffffffffffffffff)"), "{s}");
    }
}
