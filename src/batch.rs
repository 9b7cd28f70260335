//! Many messages under one key at once: [`Job`], [`Gcm::encrypt_batch`] and
//! [`Gcm::decrypt_batch`].
//!
//! A data plane seals and opens packets in bursts. Each job carries its own
//! 12-byte IV, AAD and data (in place) and gets its own tag and result, so
//! one bad job never fails its neighbours. The verify policy of the key
//! applies per job (`Full` checks every job, `Sample` samples jobs), and a
//! job that fails to decrypt has its data zeroed, exactly as a single
//! [`Gcm::decrypt`] would.
//!
//! Every SIMD backend has a kernel that runs eight short messages (at most
//! 16 bytes of AAD, ESP's case) at once, one per 128-bit lane
//! (`backend::stitched::multi`); on 512-bit registers, groups of messages
//! of one block count of at most 64 bytes with 96-bit IVs (a burst of one
//! packet size) take a shorter kernel, one message per register. A batch
//! hands the group kernel the messages its backend runs faster that way
//! than one by one, as measured by `benches/batch.rs` (today: sealing and
//! opening messages of up to 64 bytes on the 512-bit VAES backend; the
//! single-message code, whose per-call work overlaps well on this
//! generation of CPUs, is as fast or faster elsewhere): eight consecutive
//! jobs of similar length go to the group kernel as they come (a burst of
//! one packet size); otherwise jobs are sorted by length within windows of
//! 64, and up to eight of similar length form a group. Everything else,
//! jobs the verify policy picks, and leftovers too few for a group (fewer
//! than four) run one by one, as single calls would.
//! The results are those of single calls, byte for byte and tag for tag.

use crate::backend::group::{self, GROUP, LengthHash, MIN_GROUP, Message};
use crate::engine::Engine;
use crate::error::Error;
use crate::gcm::{Gcm, MIN_TAG_LEN, check_lengths, prefix_matches, tags_match};
use crate::verify::VerifyPolicy;
use zeroize::Zeroize;

/// One message of a batch: in place, with its own IV, AAD, tag and result.
///
/// A job is 72 bytes on 64-bit targets, so at 64-byte messages building
/// the jobs is a visible part of a batch's cost. Write each one once, in
/// place: a burst's jobs in an `arrayvec::ArrayVec` on the stack (as the
/// ESP bursts do) cost about 1 ns a message less than
/// `core::array::from_fn`, which built the array and then copied it
/// (sealing 32 x 64 B, 2026-12-07), and a `Vec` allocates per batch.
///
/// ```
/// use espgcm::{Gcm, Job};
///
/// let gcm = Gcm::new(&[0x42; 16])?;
/// let (mut a, mut b) = (*b"first packet", *b"second, longer packet");
/// let mut jobs = [Job::new([1; 12], b"spi+seq1", &mut a), Job::new([2; 12], b"spi+seq2", &mut b)];
/// gcm.encrypt_batch(&mut jobs);
/// assert!(jobs.iter().all(|j| j.result.is_ok()));
///
/// // Damage the second tag: only that job fails, and its data is zeroed.
/// jobs[1].tag[0] ^= 1;
/// gcm.decrypt_batch(&mut jobs);
/// assert_eq!(jobs[0].result, Ok(()));
/// assert_eq!(jobs[1].result, Err(espgcm::Error::Auth));
/// assert_eq!(a, *b"first packet");
/// assert_eq!(b, [0; 21]);
/// # Ok::<(), espgcm::Error>(())
/// ```
#[derive(Debug)]
pub struct Job<'a> {
    /// The 96-bit IV (nonce). Never reuse one under a key.
    pub iv: [u8; 12],
    /// Additional authenticated data.
    pub aad: &'a [u8],
    /// Plaintext in, ciphertext out ([`Gcm::encrypt_batch`]), or the
    /// reverse; a failed decryption leaves it zeroed.
    pub data: &'a mut [u8],
    /// Written by [`Gcm::encrypt_batch`] (all 16 bytes); read by
    /// [`Gcm::decrypt_batch`] (its first `tag_len` bytes).
    pub tag: [u8; 16],
    /// How many bytes of `tag` [`Gcm::decrypt_batch`] compares: 4 to 16
    /// (16 by default).
    pub tag_len: usize,
    /// This job's outcome, set by the batch call.
    pub result: Result<(), Error>,
}

impl<'a> Job<'a> {
    /// A job with a zero tag, `tag_len` 16 and result `Ok(())`.
    pub fn new(iv: [u8; 12], aad: &'a [u8], data: &'a mut [u8]) -> Job<'a> {
        Job { iv, aad, data, tag: [0; 16], tag_len: 16, result: Ok(()) }
    }
}

impl Gcm {
    /// Encrypt every job in place, writing each one's tag and result.
    ///
    /// Each job is judged alone: one with a length past the SP 800-38D
    /// limits gets [`Error::TooLong`] and keeps its data, the others are
    /// encrypted. The results are those [`encrypt`](Self::encrypt) would
    /// give job by job.
    pub fn encrypt_batch(&self, jobs: &mut [Job<'_>]) {
        self.run_batch::<false>(jobs);
    }

    /// Decrypt every job in place if its tag (`tag[..tag_len]`) matches,
    /// setting each one's result.
    ///
    /// A job whose tag does not match gets [`Error::Auth`] and its data is
    /// zeroed; a `tag_len` outside 4..=16 gets [`Error::TagLength`] with the
    /// data unchanged; the other jobs are unaffected.
    pub fn decrypt_batch(&self, jobs: &mut [Job<'_>]) {
        self.run_batch::<true>(jobs);
    }

    /// Jobs that the verify policy picks, and jobs no group takes, run one
    /// by one. Eight consecutive jobs that a group takes, of close lengths,
    /// go to the group kernel at once ([`run_direct`](Self::run_direct));
    /// other jobs a group takes wait in a window, and each full window (and
    /// the last) is sorted by length and cut into groups.
    fn run_batch<const DECRYPT: bool>(&self, jobs: &mut [Job<'_>]) {
        let engine = self.active();
        let group_blocks = engine.group_blocks::<DECRYPT>();
        if group_blocks == 0 || jobs.len() < MIN_GROUP {
            // No group can form: skip setting up the window, which costs
            // more than a small job.
            for job in jobs.iter_mut() {
                match self.admit::<DECRYPT>(job) {
                    Ok(()) => {
                        let reference = self.reference_for(engine);
                        self.run_one::<DECRYPT>(engine, reference, job);
                    }
                    Err(e) => job.result = Err(e),
                }
            }
            return;
        }
        // Set up (1 KiB zeroed) only when a job waits: a burst of one
        // packet size goes to the group kernel directly, without it.
        let mut window: Option<[(usize, usize); WINDOW]> = None;
        let mut lengths = LengthHash::new();
        let mut waiting = 0;
        let mut i = 0;
        while i < jobs.len() {
            if waiting == 0
                && self.verify() != VerifyPolicy::Full
                && jobs.get(i).is_some_and(|job| group::fits(job.aad.len(), job.data.len(), group_blocks))
                && let Some(run) = jobs.get_mut(i..i + GROUP)
                && self.run_direct::<DECRYPT>(engine, group_blocks, run, &mut lengths)
            {
                i += GROUP;
                continue;
            }
            i += 1;
            let Some(job) = jobs.get_mut(i - 1) else { continue };
            if let Err(e) = self.admit::<DECRYPT>(job) {
                job.result = Err(e);
                continue;
            }
            let reference = self.reference_for(engine);
            if reference.is_none() && group::fits(job.aad.len(), job.data.len(), group_blocks) {
                let slots = window.get_or_insert([(0, 0); WINDOW]);
                if let Some(slot) = slots.get_mut(waiting) {
                    *slot = (job.data.len().div_ceil(16), i - 1);
                    waiting += 1;
                    if waiting == WINDOW {
                        self.run_window::<DECRYPT>(engine, jobs, slots, &mut lengths);
                        waiting = 0;
                    }
                    continue;
                }
            }
            self.run_one::<DECRYPT>(engine, reference, job);
        }
        if let Some(slots) = window.as_mut() {
            self.run_window::<DECRYPT>(engine, jobs, slots.get_mut(..waiting).unwrap_or_default(), &mut lengths);
        }
    }

    /// Waiting jobs `(blocks, index)`: sorted by length, then groups of up
    /// to [`GROUP`] whose lengths are close (a group costs what its longest
    /// message costs in every lane); groups of fewer than [`MIN_GROUP`] run
    /// one by one.
    fn run_window<const DECRYPT: bool>(
        &self,
        engine: &Engine,
        jobs: &mut [Job<'_>],
        waiting: &mut [(usize, usize)],
        lengths: &mut LengthHash,
    ) {
        // A burst of one packet size comes in sorted already.
        if !waiting.is_sorted() {
            waiting.sort_unstable();
        }
        let mut at = 0;
        while let Some(&(shortest, _)) = waiting.get(at) {
            let longest = longest_close_to(shortest);
            let len =
                waiting.get(at..).unwrap_or_default().iter().take(GROUP).take_while(|(b, _)| *b <= longest).count();
            let members = waiting.get_mut(at..at + len).unwrap_or_default();
            if len >= MIN_GROUP {
                members.sort_unstable_by_key(|&(_, i)| i);
                self.run_group::<DECRYPT>(engine, jobs, members, lengths);
            } else {
                for &(_, i) in members.iter() {
                    if let Some(job) = jobs.get_mut(i) {
                        self.run_one::<DECRYPT>(engine, None, job);
                    }
                }
            }
            at += len.max(1);
        }
    }

    /// `run` ([`GROUP`] consecutive jobs) through the group kernel at once
    /// if every one of them would join a group (admitted, short enough)
    /// and their lengths are close: a data plane's burst of one packet
    /// size, without the window and its second pass. `false` (nothing done,
    /// nothing set, no sample drawn) otherwise. The verify policy (not
    /// `Full`, the caller checked) then decides job by job, in order, as
    /// the window's path would: a job it picks runs alone, checked, and
    /// the others still make a group (or run alone, if too few are left).
    fn run_direct<const DECRYPT: bool>(
        &self,
        engine: &Engine,
        group_blocks: usize,
        run: &mut [Job<'_>],
        lengths: &mut LengthHash,
    ) -> bool {
        let (mut shortest, mut longest) = (usize::MAX, 0);
        for job in run.iter() {
            if self.admit::<DECRYPT>(job).is_err() || !group::fits(job.aad.len(), job.data.len(), group_blocks) {
                return false;
            }
            let blocks = job.data.len().div_ceil(16);
            (shortest, longest) = (shortest.min(blocks), longest.max(blocks));
        }
        if run.len() != GROUP || longest > longest_close_to(shortest) {
            return false;
        }
        let mut references: [Option<&Engine>; GROUP] = [None; GROUP];
        for reference in references.iter_mut() {
            *reference = self.reference_for(engine);
        }
        if references.iter().all(Option::is_none) {
            self.run_members::<DECRYPT, _>(engine, run, lengths);
            return true;
        }
        let picked = references.iter().filter(|r| r.is_some()).count();
        let mut rest: [Option<&mut Job<'_>>; GROUP] = Default::default();
        let mut count = 0;
        for (job, reference) in run.iter_mut().zip(references) {
            match (reference, rest.get_mut(count)) {
                (None, Some(slot)) if GROUP - picked >= MIN_GROUP => {
                    *slot = Some(job);
                    count += 1;
                }
                (reference, _) => self.run_one::<DECRYPT>(engine, reference, job),
            }
        }
        if count > 0 {
            self.run_members::<DECRYPT, _>(engine, &mut rest, lengths);
        }
        true
    }

    /// The length checks of a single call.
    fn admit<const DECRYPT: bool>(&self, job: &Job<'_>) -> Result<(), Error> {
        if DECRYPT && !(MIN_TAG_LEN..=16).contains(&job.tag_len) {
            return Err(Error::TagLength);
        }
        check_lengths(job.iv.len(), job.aad.len(), job.data.len())
    }

    /// One job on its own, as a single call would run it.
    fn run_one<const DECRYPT: bool>(&self, engine: &Engine, reference: Option<&Engine>, job: &mut Job<'_>) {
        if DECRYPT {
            let computed = self.open_job(engine, reference, &job.iv, job.aad, job.data);
            job.result = settle(computed, job);
        } else {
            job.tag = self.seal_job(engine, reference, &job.iv, job.aad, job.data);
            job.result = Ok(());
        }
    }

    /// The jobs at `members` (indices in ascending order, at most
    /// [`GROUP`]) through the group kernel.
    fn run_group<const DECRYPT: bool>(
        &self,
        engine: &Engine,
        jobs: &mut [Job<'_>],
        members: &[(usize, usize)],
        lengths: &mut LengthHash,
    ) {
        if let Some(indices) = <&[(usize, usize); GROUP]>::try_from(members).ok().map(|m| m.map(|(_, i)| i))
            && let Ok(all) = jobs.get_disjoint_mut(indices)
        {
            return self.run_members::<DECRYPT, _>(engine, &mut all.map(Some), lengths);
        }
        let mut chosen: [Option<&mut Job<'_>>; GROUP] = Default::default();
        let mut count = 0;
        let mut wanted = members.iter().map(|&(_, i)| i).peekable();
        for (i, job) in jobs.iter_mut().enumerate() {
            if wanted.peek() == Some(&i) {
                wanted.next();
                if let Some(slot) = chosen.get_mut(count) {
                    *slot = Some(job);
                    count += 1;
                }
            }
        }
        self.run_members::<DECRYPT, _>(engine, &mut chosen, lengths);
    }

    /// The jobs of `members` (at most [`GROUP`]) through the group kernel;
    /// if it does not take them, each runs on its own.
    fn run_members<'a, const DECRYPT: bool, M: Member<'a>>(
        &self,
        engine: &Engine,
        members: &mut [M],
        lengths: &mut LengthHash,
    ) {
        let mut tags = [[0u8; 16]; GROUP];
        let ran = {
            let mut msgs: [Message<'_>; GROUP] = core::array::from_fn(|_| Message { j0: 0, aad: &[], data: &mut [] });
            let mut count = 0;
            for (msg, job) in msgs.iter_mut().zip(members.iter_mut().filter_map(Member::job)) {
                *msg = Message { j0: j0_of(&job.iv), aad: job.aad, data: &mut *job.data };
                count += 1;
            }
            engine.crypt_group::<DECRYPT>(msgs.get_mut(..count).unwrap_or_default(), &mut tags, lengths)
        };
        if !ran {
            for job in members.iter_mut().filter_map(Member::job) {
                self.run_one::<DECRYPT>(engine, None, job);
            }
        } else if DECRYPT {
            settle_group(&mut tags, members);
        } else {
            for (job, tag) in members.iter_mut().filter_map(Member::job).zip(tags) {
                job.tag = tag;
                job.result = Ok(());
            }
        }
    }
}

/// A job as a group's slice holds it: itself (a run of consecutive jobs)
/// or a chosen one (empty places after the last).
trait Member<'a> {
    fn job(&mut self) -> Option<&mut Job<'a>>;
}

impl<'a> Member<'a> for Job<'a> {
    fn job(&mut self) -> Option<&mut Job<'a>> {
        Some(self)
    }
}

impl<'a> Member<'a> for Option<&mut Job<'a>> {
    fn job(&mut self) -> Option<&mut Job<'a>> {
        self.as_deref_mut()
    }
}

/// The longest message (in blocks) a group whose shortest has `shortest`
/// blocks takes: a group costs what its longest message costs in every
/// lane, so its lengths must be close.
fn longest_close_to(shortest: usize) -> usize {
    shortest + shortest / 4 + 1
}

/// Jobs that wait to be sorted into groups at a time.
const WINDOW: usize = 64;

/// `J0` for a 96-bit IV: `IV || 0^31 || 1`, as a big-endian integer.
fn j0_of(iv: &[u8; 12]) -> u128 {
    let mut block = [0u8; 16];
    block[..12].copy_from_slice(iv);
    block[15] = 1;
    u128::from_be_bytes(block)
}

/// A decrypted job's verdict: its tag against the computed one; a job that
/// fails is wiped.
fn settle(computed: [u8; 16], job: &mut Job<'_>) -> Result<(), Error> {
    if job.tag.get(..job.tag_len).is_some_and(|tag| tags_match(computed, tag)) {
        Ok(())
    } else {
        job.data.zeroize();
        Err(Error::Auth)
    }
}

/// [`settle`] for a group's jobs at once: `computed[i]` is the tag
/// computed for the `i`th job. The computed tags are wiped once, and only
/// when a job failed (a matching tag is the one the job brought): settling
/// each job in a call of its own, with its own wipe and byte swaps,
/// measured about 1 ns a message slower opening 64-byte messages (15.8-15.9
/// against 14.7-15.1 ns).
#[inline(always)]
fn settle_group<'a, M: Member<'a>>(computed: &mut [[u8; 16]; GROUP], members: &mut [M]) {
    // Whole tags that all match (a burst's usual verdict): one comparison
    // for the group, then the results. Opening 32 x 64 B (local driver,
    // 2026-12-07): 13.8-13.9 ns a message against 14.0-14.1 (AES-128),
    // 15.4 against 15.6-15.7 (AES-256). Writing the results in the first
    // loop, to be set again if the group failed, measured slower.
    let (mut whole, mut diff) = (true, 0u128);
    for (job, tag) in members.iter_mut().filter_map(Member::job).zip(computed.iter()) {
        whole &= job.tag_len == 16;
        diff |= u128::from_ne_bytes(*tag) ^ u128::from_ne_bytes(job.tag);
    }
    if whole && crate::backend::is_zero_ct((diff >> 64) as u64 | diff as u64) {
        for job in members.iter_mut().filter_map(Member::job) {
            job.result = Ok(());
        }
        return;
    }
    let mut failed = false;
    for (job, tag) in members.iter_mut().filter_map(Member::job).zip(computed.iter()) {
        let matched = job.tag.get(..job.tag_len).is_some_and(|given| prefix_matches(tag, given));
        job.result = if matched {
            Ok(())
        } else {
            job.data.zeroize();
            failed = true;
            Err(Error::Auth)
        };
    }
    if failed {
        computed.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Backend;

    #[test]
    fn each_job_is_judged_alone() {
        for backend in Backend::ALL.into_iter().filter(|b| b.is_supported()) {
            let gcm = Gcm::with_backend(&[7; 32], backend).unwrap();
            let mut bufs: Vec<Vec<u8>> = (0..6).map(|i| vec![i as u8; 40 * i]).collect();
            let originals = bufs.clone();
            let mut jobs: Vec<Job<'_>> =
                bufs.iter_mut().enumerate().map(|(i, b)| Job::new([i as u8; 12], b"aad", b)).collect();
            gcm.encrypt_batch(&mut jobs);
            assert!(jobs.iter().all(|j| j.result.is_ok()), "{backend}");
            jobs[1].tag[15] ^= 0x80;
            jobs[3].tag_len = 3;
            jobs[4].tag_len = 17;
            jobs[5].tag_len = 4;
            gcm.decrypt_batch(&mut jobs);
            let results: Vec<_> = jobs.iter().map(|j| j.result).collect();
            assert_eq!(
                results,
                [Ok(()), Err(Error::Auth), Ok(()), Err(Error::TagLength), Err(Error::TagLength), Ok(())],
                "{backend}"
            );
            drop(jobs);
            assert_eq!(bufs[0], originals[0]);
            assert_eq!(bufs[1], vec![0; 40], "a forged job is zeroed");
            assert_eq!(bufs[2], originals[2]);
            assert_ne!(bufs[3], originals[3], "a refused tag length leaves the ciphertext");
            assert_eq!(bufs[5], originals[5]);
        }
    }
}
