//! What verify mode has found, process-wide: counts of checked blocks and
//! messages, fault reports, their subscribers, and the [`health`] snapshot.
//! Recording a fault quarantines its backend (through [`crate::policy`]).

use crate::backend::Backend;
use crate::policy;
use core::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, mpsc};

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
    Health {
        verified_blocks: VERIFIED_BLOCKS.load(Ordering::Relaxed),
        verified_messages: VERIFIED_MESSAGES.load(Ordering::Relaxed),
        faults: FAULTS.load(Ordering::Relaxed),
        quarantined: policy::quarantined(),
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

/// Count one cross-checked message of `blocks` 16-byte blocks.
pub(crate) fn count_verified(blocks: u64) {
    VERIFIED_BLOCKS.fetch_add(blocks, Ordering::Relaxed);
    VERIFIED_MESSAGES.fetch_add(1, Ordering::Relaxed);
}

/// Record a fault: count it, keep it as the last one, tell the subscribers,
/// quarantine its backend (never the scalar one, which is the reference).
pub(crate) fn record(report: FaultReport) {
    FAULTS.fetch_add(1, Ordering::Relaxed);
    *lock(&LAST_FAULT) = Some(report);
    lock(&SUBSCRIBERS).retain(|tx| tx.send(report).is_ok());
    policy::quarantine(report.backend);
}

/// Lift every quarantine and zero the counters (tests and demonstrations,
/// through `fault::reset_health`).
#[cfg(feature = "fault-injection")]
pub(crate) fn reset() {
    policy::lift_quarantines();
    VERIFIED_BLOCKS.store(0, Ordering::Relaxed);
    VERIFIED_MESSAGES.store(0, Ordering::Relaxed);
    FAULTS.store(0, Ordering::Relaxed);
    *lock(&LAST_FAULT) = None;
}

#[cfg(test)]
mod tests {
    use super::*;

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
