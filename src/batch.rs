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
//! On the 512-bit VAES backend, short messages of one shape (the same
//! number of blocks, up to 16, and of AAD blocks, 0 or 1) run four at a
//! time through a kernel that holds one message per 128-bit lane
//! (`backend::multi512`); everything else runs one by one. The results are
//! those of single calls, byte for byte and tag for tag.

use crate::Error;
use crate::engine::Engine;
use crate::gcm::{Gcm, MIN_TAG_LEN, check_lengths, tags_match};
use zeroize::Zeroize;

/// One message of a batch: in place, with its own IV, AAD, tag and result.
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

    /// Jobs that the verify policy picks, and jobs the four-message kernel
    /// cannot take, run one by one; the rest wait in a bucket per shape
    /// until four are there, and run together. What is left in the buckets
    /// at the end runs one by one.
    fn run_batch<const DECRYPT: bool>(&self, jobs: &mut [Job<'_>]) {
        let engine = self.active();
        #[cfg(target_arch = "x86_64")]
        let group_key = self.group_key(engine);
        #[cfg(target_arch = "x86_64")]
        let mut buckets = Buckets::default();
        for i in 0..jobs.len() {
            let Some(job) = jobs.get_mut(i) else { continue };
            if let Err(e) = self.admit::<DECRYPT>(job) {
                job.result = Err(e);
                continue;
            }
            let reference = self.reference_for(engine);
            #[cfg(target_arch = "x86_64")]
            if let (Some(key), None, Some(shape)) =
                (group_key, reference, crate::backend::multi512::shape(job.aad.len(), job.data.len()))
            {
                if let Some(group) = buckets.add(shape, i) {
                    self.run_group::<DECRYPT>(engine, key, jobs, group);
                }
                continue;
            }
            self.run_one::<DECRYPT>(engine, reference, job);
        }
        #[cfg(target_arch = "x86_64")]
        for i in buckets.left() {
            if let Some(job) = jobs.get_mut(i) {
                self.run_one::<DECRYPT>(engine, None, job);
            }
        }
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

    /// Four jobs of one shape through the kernel.
    #[cfg(target_arch = "x86_64")]
    fn run_group<const DECRYPT: bool>(
        &self,
        engine: &Engine,
        key: &crate::backend::multi512::MultiKey,
        jobs: &mut [Job<'_>],
        group: [usize; 4],
    ) {
        use crate::backend::multi512::Lane;
        let Ok(four) = jobs.get_disjoint_mut(group) else {
            // Not reachable (a bucket holds distinct indices); each job
            // still gets its answer.
            for i in group {
                if let Some(job) = jobs.get_mut(i) {
                    self.run_one::<DECRYPT>(engine, None, job);
                }
            }
            return;
        };
        let [a, b, c, d] = four;
        let tags = {
            let mut lanes =
                [&mut *a, &mut *b, &mut *c, &mut *d].map(|j| Lane { iv: j.iv, aad: j.aad, data: &mut *j.data });
            if DECRYPT {
                crate::engine::open_group(engine, key, &mut lanes)
            } else {
                crate::engine::seal_group(engine, key, &mut lanes)
            }
        };
        for (job, tag) in [a, b, c, d].into_iter().zip(tags) {
            if DECRYPT {
                job.result = settle(tag, job);
            } else {
                job.tag = tag;
                job.result = Ok(());
            }
        }
    }
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

/// Jobs waiting for three more of their shape: one bucket per (AAD blocks,
/// data blocks).
#[cfg(target_arch = "x86_64")]
struct Buckets {
    waiting: [[usize; 3]; 2 * crate::backend::multi512::MAX_BLOCKS],
    count: [u8; 2 * crate::backend::multi512::MAX_BLOCKS],
}

#[cfg(target_arch = "x86_64")]
impl Default for Buckets {
    fn default() -> Buckets {
        Buckets {
            waiting: [[0; 3]; 2 * crate::backend::multi512::MAX_BLOCKS],
            count: [0; 2 * crate::backend::multi512::MAX_BLOCKS],
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Buckets {
    /// Add job `i` of `shape`; a full group of four when this completes one.
    fn add(&mut self, (aad_blocks, blocks): (usize, usize), i: usize) -> Option<[usize; 4]> {
        let s = aad_blocks * crate::backend::multi512::MAX_BLOCKS + blocks - 1;
        let (waiting, count) = (self.waiting.get_mut(s)?, self.count.get_mut(s)?);
        if *count == 3 {
            *count = 0;
            Some([waiting[0], waiting[1], waiting[2], i])
        } else {
            waiting[usize::from(*count)] = i;
            *count += 1;
            None
        }
    }

    /// The jobs still waiting.
    fn left(&self) -> impl Iterator<Item = usize> + '_ {
        self.waiting.iter().zip(&self.count).flat_map(|(w, &n)| w.iter().copied().take(usize::from(n)))
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
