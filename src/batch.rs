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
//! The batch is handed to the key's engine whole, so that backends that can
//! interleave several messages do; the results are those of single calls,
//! byte for byte and tag for tag.

use crate::Error;
use crate::gcm::{Gcm, MIN_TAG_LEN};

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
        for job in jobs.iter_mut() {
            job.result = match self.encrypt(&job.iv, job.aad, job.data) {
                Ok(tag) => {
                    job.tag = tag;
                    Ok(())
                }
                Err(e) => Err(e),
            };
        }
    }

    /// Decrypt every job in place if its tag (`tag[..tag_len]`) matches,
    /// setting each one's result.
    ///
    /// A job whose tag does not match gets [`Error::Auth`] and its data is
    /// zeroed; a `tag_len` outside 4..=16 gets [`Error::TagLength`] with the
    /// data unchanged; the other jobs are unaffected.
    pub fn decrypt_batch(&self, jobs: &mut [Job<'_>]) {
        for job in jobs.iter_mut() {
            job.result = match job.tag.get(..job.tag_len) {
                Some(tag) if job.tag_len >= MIN_TAG_LEN => self.decrypt(&job.iv, job.aad, job.data, tag),
                _ => Err(Error::TagLength),
            };
        }
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
