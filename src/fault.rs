//! Fault injection (cargo feature `fault-injection`): corrupt a backend's
//! keystream blocks the way the 2015 Xen/AES-NI bug did, so that verify mode
//! and the ESP checks can be shown to catch it.
//!
//! The corruption happens *before GHASH sees the ciphertext*: on encryption
//! the wrong ciphertext carries a tag that is valid for it, so a receiver
//! accepts it; on decryption the plaintext comes out wrong while the tag
//! (computed over the intact ciphertext) checks. It is applied to the output
//! of the key's own backend, after the backend ran: the chosen ciphertext
//! blocks are XORed with the pattern and the tag is corrected by the change
//! in GHASH (`GHASH` is linear, so `T' = T ^ GHASH_H(C ^ C')` with the length
//! block's multiplication), which is exactly the result of a keystream block
//! XORed with the pattern inside the backend. The scalar reference that
//! verify mode compares against is never corrupted.
//!
//! Without the feature none of this is compiled: no hook, no check, no cost.
//!
//! ```
//! use espgcm::fault::{self, FaultPlan};
//! use espgcm::{Backend, Gcm, VerifyPolicy};
//!
//! # fault::reset_health();
//! // Corrupt every block of the scalar backend's output (a demonstration:
//! // real use targets a SIMD backend, as the tests do).
//! fault::inject(Backend::Scalar, FaultPlan { one_in_blocks: 1, run_blocks: 1, xor: [0x01; 16] });
//! let gcm = Gcm::with_backend(&[9u8; 16], Backend::Scalar)?;
//! let mut buf = [0u8; 32];
//! let tag = gcm.encrypt(&[0u8; 12], b"", &mut buf)?;
//! fault::clear();
//! assert_eq!(fault::injected(), 2);
//!
//! // The receiver accepts the corrupted message: the tag matches it.
//! let mut back = buf;
//! gcm.decrypt(&[0u8; 12], b"", &mut back, &tag)?;
//! assert_eq!(back, [0x01; 32]);
//! # Ok::<(), espgcm::Error>(())
//! ```

use crate::Backend;
use crate::backend::{self, KeyBytes};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

/// Which keystream blocks to corrupt and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FaultPlan {
    /// About one block in this many starts a run of corrupted blocks
    /// (chosen at random per block; 0 and 1 mean every block).
    pub one_in_blocks: u64,
    /// Length of each run in blocks (0 counts as 1); a run ends with its
    /// message.
    pub run_blocks: u32,
    /// XORed into each corrupted keystream block (for the message's last,
    /// partial block, only the bytes that cover the message).
    pub xor: [u8; 16],
}

/// A backend's engine with this module's faults applied to its output: what
/// the GCM and verify layers call when the feature is on (see
/// `crate::engine`). Faults planned for the scalar backend reach verify
/// mode's reference too, as a faulty scalar path would.
#[derive(Clone)]
pub(crate) struct Engine(backend::Engine);

impl Engine {
    pub(crate) fn new(backend: Backend, key: KeyBytes<'_>) -> Option<Engine> {
        backend::Engine::new(backend, key).map(Engine)
    }

    pub(crate) fn scalar(key: KeyBytes<'_>) -> Engine {
        Engine(backend::Engine::scalar(key))
    }

    pub(crate) fn backend(&self) -> Backend {
        self.0.backend()
    }

    pub(crate) fn ghash(&self, acc: &mut u128, data: &[u8]) {
        self.0.ghash(acc, data);
    }

    pub(crate) fn ghash_block(&self, acc: &mut u128, block: u128) {
        self.0.ghash_block(acc, block);
    }

    pub(crate) fn seal(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        let mut tag = self.0.seal(j0, aad, buf);
        corrupt_sealed(&self.0, buf, &mut tag);
        tag
    }

    pub(crate) fn seal_append(&self, j0: u128, aad: &[u8], parts: [&[u8]; 2], out: &mut Vec<u8>) -> ([u8; 16], u64) {
        let start = out.len();
        let (mut tag, mut sum) = self.0.seal_append(j0, aad, parts, out);
        corrupt_sealed(&self.0, out.get_mut(start..).unwrap_or_default(), &mut tag);
        corrupt_sum(&self.0, &mut sum);
        (tag, sum)
    }

    pub(crate) fn open(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        let tag = self.0.open(j0, aad, buf);
        corrupt_opened(&self.0, buf);
        tag
    }

    pub(crate) fn group_blocks<const DECRYPT: bool>(&self) -> usize {
        self.0.group_blocks::<DECRYPT>()
    }

    pub(crate) fn crypt_group<const DECRYPT: bool>(
        &self,
        msgs: &mut [backend::group::Message<'_>],
        tags: &mut [[u8; 16]],
        lengths: &mut backend::group::LengthHash,
    ) -> bool {
        if !self.0.crypt_group::<DECRYPT>(msgs, tags, lengths) {
            return false;
        }
        for (msg, tag) in msgs.iter_mut().zip(tags.iter_mut()) {
            if DECRYPT {
                corrupt_opened(&self.0, msg.data);
            } else {
                corrupt_sealed(&self.0, msg.data, tag);
            }
        }
        true
    }
}

/// Which blocks of each message a plan corrupts.
#[derive(Clone, Copy, Debug)]
enum Plan {
    /// Runs starting at random blocks ([`inject`]).
    Random(FaultPlan),
    /// The same blocks of every message ([`inject_at`]).
    At { first_block: u64, run_blocks: u32, xor: [u8; 16] },
}

/// Bit `1 << (backend as u32)`: a plan is active for the backend.
static ACTIVE: AtomicU32 = AtomicU32::new(0);
static PLANS: Mutex<Vec<(Backend, Plan)>> = Mutex::new(Vec::new());
static INJECTED: AtomicU64 = AtomicU64::new(0);
/// Bit `1 << (backend as u32)`: the backend's fused sums are corrupted.
static SUM_ACTIVE: AtomicU32 = AtomicU32::new(0);

/// Start corrupting `backend`'s keystream as `plan` says, replacing any
/// earlier plan for it, in every key of the process, from the next call on.
pub fn inject(backend: Backend, plan: FaultPlan) {
    install(backend, Plan::Random(plan));
}

/// Start corrupting blocks `first_block .. first_block + run_blocks` (0
/// counts as 1) of every message `backend` encrypts or decrypts, replacing
/// any earlier plan for it: a fault placed deliberately, so that a test can
/// hit every block position of a message (an ESP trailer included) in turn.
///
/// ```
/// use espgcm::fault;
/// use espgcm::{Backend, Gcm};
///
/// # fault::reset_health();
/// fault::inject_at(Backend::Scalar, 1, 1, [0xff; 16]);
/// let gcm = Gcm::with_backend(&[9u8; 16], Backend::Scalar)?;
/// let mut buf = [0u8; 48];
/// let mut clean = buf;
/// gcm.encrypt(&[0u8; 12], b"", &mut buf)?;
/// fault::clear();
/// gcm.encrypt(&[0u8; 12], b"", &mut clean)?;
/// let differs: Vec<bool> = buf.chunks(16).zip(clean.chunks(16)).map(|(a, b)| a != b).collect();
/// assert_eq!(differs, [false, true, false]);
/// assert_eq!(fault::injected(), 1);
/// # Ok::<(), espgcm::Error>(())
/// ```
pub fn inject_at(backend: Backend, first_block: u64, run_blocks: u32, xor: [u8; 16]) {
    install(backend, Plan::At { first_block, run_blocks, xor });
}

fn install(backend: Backend, plan: Plan) {
    let mut plans = PLANS.lock().unwrap_or_else(PoisonError::into_inner);
    plans.retain(|(b, _)| *b != backend);
    plans.push((backend, plan));
    ACTIVE.fetch_or(1 << (backend as u32), Ordering::AcqRel);
}

/// Start corrupting the one's complement sum that `backend` computes over
/// a plaintext while encrypting it for ESP (the sum `seal` checks the inner
/// checksum with): each such sum is off by one. The ciphertext and tag stay
/// right, so without verify mode the damage shows only as good packets
/// refused by `seal` ([`EspError::ChecksumBeforeEncrypt`](crate::esp::EspError::ChecksumBeforeEncrypt));
/// verify mode reports it as a [`FaultKind::ChecksumSum`](crate::FaultKind::ChecksumSum)
/// fault. Each corrupted sum counts as one in [`injected`].
pub fn inject_checksum_sum(backend: Backend) {
    SUM_ACTIVE.fetch_or(1 << (backend as u32), Ordering::AcqRel);
}

/// Stop every injection. The count of [`injected`] blocks is kept.
pub fn clear() {
    let mut plans = PLANS.lock().unwrap_or_else(PoisonError::into_inner);
    plans.clear();
    ACTIVE.store(0, Ordering::Release);
    SUM_ACTIVE.store(0, Ordering::Release);
}

/// Blocks (and fused sums) corrupted so far in this process (a block whose
/// pattern bytes fell wholly past the end of the message changed nothing and
/// is not counted).
pub fn injected() -> u64 {
    INJECTED.load(Ordering::Relaxed)
}

/// Lift every quarantine and zero the [`health`](crate::health) counters
/// and the [`injected`] count, so that a test or demonstration can start
/// again in the same process. Not for production (where a quarantine lasts
/// until the process restarts), hence only with this feature.
pub fn reset_health() {
    crate::health::reset();
    INJECTED.store(0, Ordering::Relaxed);
}

/// The plan for `backend`, if any (one relaxed load when there is none).
#[inline]
fn plan_for(backend: Backend) -> Option<Plan> {
    if ACTIVE.load(Ordering::Relaxed) & (1 << (backend as u32)) == 0 {
        return None;
    }
    let plans = PLANS.lock().unwrap_or_else(PoisonError::into_inner);
    plans.iter().find(|(b, _)| *b == backend).map(|(_, p)| *p)
}

/// XOR the pattern into the blocks of `data` the plan picks; returns how
/// many blocks changed.
fn corrupt(plan: &Plan, data: &mut [u8]) -> u64 {
    let mut changed = 0;
    let mut run_left = 0u32;
    for (index, block) in data.chunks_mut(16).enumerate() {
        let xor = match *plan {
            Plan::Random(p) => {
                if run_left == 0 && (p.one_in_blocks <= 1 || crate::rng::random_below(p.one_in_blocks) == 0) {
                    run_left = p.run_blocks.max(1);
                }
                if run_left == 0 {
                    continue;
                }
                run_left -= 1;
                p.xor
            }
            Plan::At { first_block, run_blocks, xor } => {
                let index = index as u64;
                if index < first_block || index - first_block >= u64::from(run_blocks.max(1)) {
                    continue;
                }
                xor
            }
        };
        let mut any = 0u8;
        for (d, x) in block.iter_mut().zip(xor.iter()) {
            *d ^= x;
            any |= x;
        }
        changed += u64::from(any != 0);
    }
    INJECTED.fetch_add(changed, Ordering::Relaxed);
    changed
}

/// After `engine` encrypted `data` with tag `tag`: corrupt the ciphertext as
/// a corrupted keystream would have, with the tag recomputed to match it.
#[inline]
fn corrupt_sealed(engine: &backend::Engine, data: &mut [u8], tag: &mut [u8; 16]) {
    let Some(plan) = plan_for(engine.backend()) else {
        return;
    };
    let mut before = 0u128;
    engine.ghash(&mut before, data);
    if corrupt(&plan, data) == 0 {
        return;
    }
    let mut after = 0u128;
    engine.ghash(&mut after, data);
    // GHASH(C') ^ GHASH(C) from a zero accumulator is GHASH(C ^ C'); the
    // AAD before it contributes equally to both, and the length block after
    // it adds one more multiplication by H.
    let mut delta = before ^ after;
    engine.ghash_block(&mut delta, 0);
    for (t, d) in tag.iter_mut().zip(delta.to_be_bytes()) {
        *t ^= d;
    }
}

/// After `engine` summed a plaintext while encrypting it: corrupt the sum
/// if [`inject_checksum_sum`] asked for it.
#[inline]
fn corrupt_sum(engine: &backend::Engine, sum: &mut u64) {
    if SUM_ACTIVE.load(Ordering::Relaxed) & (1 << (engine.backend() as u32)) != 0 {
        *sum = crate::ones_complement::add_folding(*sum, 1);
        INJECTED.fetch_add(1, Ordering::Relaxed);
    }
}

/// After `engine` decrypted into `data`: corrupt the plaintext as a
/// corrupted keystream would have (the tag, over the ciphertext, is intact).
#[inline]
fn corrupt_opened(engine: &backend::Engine, data: &mut [u8]) {
    if let Some(plan) = plan_for(engine.backend()) {
        corrupt(&plan, data);
    }
}
