//! Write-ahead sequence reservations: the SAs may use only the sequence
//! numbers already recorded in the state file ([`crate::seqstate`]).
//!
//! Each outbound SA carries a limit (`Outbound::set_sequence_limit`):
//! numbers at or past it are refused, unused, with a typed error. The
//! reservation writer keeps every limit a block ahead of the SA's next
//! sequence number: when an SA has used half of its block, the writer
//! records the next limit on disk (flushed) and only then raises the SA's
//! limit. On start, each SA resumes at its recorded limit, so no number
//! recorded as possibly used is used again. On a clean stop the exact next
//! numbers are recorded, so a planned restart skips nothing.
//!
//! The writer runs on its own thread, woken early by a worker whose SA
//! refused packets at its limit; it is never on the packet path.

use crate::seqstate::StateFile;
use espgcm::esp::{EspError, Outbound};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What the writer needs from an SA (implemented by `Outbound`; the tests
/// use a model).
pub trait Reservable: Send + Sync {
    /// The number the next packet will carry (`None`: all used).
    fn next_sequence(&self) -> Option<u64>;
    /// Continue from `next` (never moves back).
    ///
    /// # Errors
    /// A message if `next` is not acceptable.
    fn skip_to_sequence(&self, next: u64) -> Result<(), String>;
    /// Refuse numbers from `limit` on.
    fn set_sequence_limit(&self, limit: u64);
    /// The last number of the sequence space (2^32 - 1, or 2^64 - 1 with
    /// ESN).
    fn last_sequence(&self) -> u64;
}

impl Reservable for Outbound {
    fn next_sequence(&self) -> Option<u64> {
        Outbound::next_sequence(self)
    }

    fn skip_to_sequence(&self, next: u64) -> Result<(), String> {
        Outbound::skip_to_sequence(self, next).map_err(|e| e.to_string())
    }

    fn set_sequence_limit(&self, limit: u64) {
        Outbound::set_sequence_limit(self, limit);
    }

    fn last_sequence(&self) -> u64 {
        if self.config().esn { u64::MAX } else { u64::from(u32::MAX) }
    }
}

/// Whether a sealing error means "wait for the reservation writer".
pub fn is_limit_error(e: &EspError) -> bool {
    matches!(e, EspError::SequenceLimit { .. })
}

/// One SA under reservation.
struct Entry<S> {
    sa: Arc<S>,
    spi: u32,
    key_id: String,
    /// The limit the SA has now (recorded on disk before it was set).
    limit: u64,
}

impl<S: Reservable> Entry<S> {
    /// The first number this SA has not used: its next one, or one past
    /// the space when all are used.
    fn next(&self) -> u64 {
        self.sa.next_sequence().unwrap_or_else(|| self.sa.last_sequence().saturating_add(1))
    }

    /// The limit one block past `from`, never past the space.
    fn limit_after(&self, from: u64, block: u64) -> u64 {
        from.saturating_add(block).min(self.sa.last_sequence().saturating_add(1))
    }
}

/// The reservation writer.
pub struct Reserver<S> {
    inner: Mutex<(StateFile, Vec<Entry<S>>)>,
    block: u64,
    woken: Mutex<bool>,
    bell: Condvar,
    /// The last write failed (the SAs will stop at their limits).
    failed: Mutex<Option<String>>,
}

impl<S: Reservable> Reserver<S> {
    /// Resume every SA after its recorded reservation, record the first
    /// block for each, and set the limits.
    ///
    /// `sas` are (SA, SPI, key fingerprint). An SA the state file does not
    /// know starts at 1 only if `new_keys` says its key was never used.
    ///
    /// # Errors
    /// An SA without a record (and no `new_keys`), an SA whose sequence
    /// space is used up, or the state file cannot be written.
    pub fn start(
        mut state: StateFile,
        sas: Vec<(Arc<S>, u32, String)>,
        block: u64,
        new_keys: bool,
    ) -> Result<Reserver<S>, String> {
        let mut entries = Vec::new();
        for (sa, spi, key_id) in sas {
            match state.resume_at(spi, &key_id) {
                Some(at) if at > sa.last_sequence() => {
                    return Err(format!(
                        "SA {spi:#010x} has used every sequence number under its key (state file {}); \
                         it must be re-keyed",
                        state.path().display()
                    ));
                }
                Some(at) => {
                    if sa.next_sequence().is_some_and(|n| at > n) {
                        sa.skip_to_sequence(at).map_err(|e| format!("SA {spi:#010x}: resuming at {at}: {e}"))?;
                    }
                }
                None if new_keys => {}
                None => {
                    return Err(format!(
                        "SA {spi:#010x} has no entry in the sequence state {}: if its key ever sent packets, \
                         starting at sequence number 1 would repeat IVs. Re-key it, or if this key is new, \
                         start once with --new-keys",
                        state.path().display()
                    ));
                }
            }
            entries.push(Entry { sa, spi, key_id, limit: 0 });
        }
        for e in &mut entries {
            e.limit = e.limit_after(e.next(), block);
            state.set(e.spi, &e.key_id, e.limit);
        }
        state.save()?;
        for e in &entries {
            e.sa.set_sequence_limit(e.limit);
        }
        Ok(Reserver {
            inner: Mutex::new((state, entries)),
            block,
            woken: Mutex::new(false),
            bell: Condvar::new(),
            failed: Mutex::new(None),
        })
    }

    /// One pass: every SA past half of its block gets the next block,
    /// recorded first. Returns how many limits were raised.
    ///
    /// # Errors
    /// The state file could not be written (no limit was raised).
    pub fn top_up(&self) -> Result<usize, String> {
        let Ok(mut guard) = self.inner.lock() else {
            return Err("reservation state lock poisoned".into());
        };
        let (state, entries) = &mut *guard;
        let mut raise = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let next = e.next();
            let new_limit = e.limit_after(next, self.block);
            if e.limit.saturating_sub(next) <= self.block / 2 && new_limit > e.limit {
                raise.push((i, new_limit));
            }
        }
        if raise.is_empty() {
            return Ok(0);
        }
        for &(i, limit) in &raise {
            if let Some(e) = entries.get(i) {
                state.set(e.spi, &e.key_id, limit);
            }
        }
        if let Err(err) = state.save() {
            // Put the recorded values back: what is on disk is the old ones.
            for e in entries.iter() {
                state.set(e.spi, &e.key_id, e.limit);
            }
            return Err(err);
        }
        for (i, limit) in raise.iter().copied() {
            if let Some(e) = entries.get_mut(i) {
                e.limit = limit;
                e.sa.set_sequence_limit(limit);
            }
        }
        Ok(raise.len())
    }

    /// Wake the writer now (an SA refused packets at its limit).
    pub fn wake(&self) {
        if let Ok(mut w) = self.woken.lock() {
            *w = true;
            self.bell.notify_one();
        }
    }

    /// Keep topping up until `shutdown`, every 20 ms or when woken.
    pub fn run(&self, shutdown: &AtomicBool) {
        while !shutdown.load(Ordering::Relaxed) {
            if let Ok(w) = self.woken.lock()
                && let Ok((mut w, _)) = self.bell.wait_timeout_while(w, Duration::from_millis(20), |w| !*w)
            {
                *w = false;
            }
            let result = self.top_up();
            if let Ok(mut failed) = self.failed.lock() {
                *failed = result.err();
            }
        }
    }

    /// Why the last write failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failed.lock().ok().and_then(|f| f.clone())
    }

    /// After every worker stopped (joined: a worker that could still seal
    /// makes this unsafe, so the caller skips it then): record each SA's
    /// exact next number, so a planned restart skips nothing.
    ///
    /// # Errors
    /// The state file could not be written (the block-ahead values stay
    /// recorded, which is safe).
    pub fn finish(&self) -> Result<(), String> {
        let Ok(mut guard) = self.inner.lock() else {
            return Err("reservation state lock poisoned".into());
        };
        let (state, entries) = &mut *guard;
        for e in entries.iter() {
            state.set(e.spi, &e.key_id, e.next());
        }
        state.save()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seqstate::key_id;
    use std::sync::atomic::AtomicU64;

    /// A model SA: a next number and a limit.
    struct Model {
        next: AtomicU64,
        limit: AtomicU64,
        last: u64,
    }

    impl Model {
        fn new(last: u64) -> Arc<Model> {
            Arc::new(Model { next: AtomicU64::new(1), limit: AtomicU64::new(u64::MAX), last })
        }
        /// Send `n` packets; returns how many the limit let through.
        fn send(&self, n: u64) -> u64 {
            let mut sent = 0;
            for _ in 0..n {
                let next = self.next.load(Ordering::Relaxed);
                if next >= self.limit.load(Ordering::Relaxed) || next > self.last {
                    break;
                }
                self.next.store(next + 1, Ordering::Relaxed);
                sent += 1;
            }
            sent
        }
    }

    impl Reservable for Model {
        fn next_sequence(&self) -> Option<u64> {
            let n = self.next.load(Ordering::Relaxed);
            (n <= self.last).then_some(n)
        }
        fn skip_to_sequence(&self, next: u64) -> Result<(), String> {
            if next < self.next.load(Ordering::Relaxed) {
                return Err("backwards".into());
            }
            self.next.store(next, Ordering::Relaxed);
            Ok(())
        }
        fn set_sequence_limit(&self, limit: u64) {
            self.limit.store(limit, Ordering::Relaxed);
        }
        fn last_sequence(&self) -> u64 {
            self.last
        }
    }

    fn state_path(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("espgcm-tunnel-reserve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d.join("state.seq")
    }

    /// Across crashes (no `finish`) and clean stops, the numbers a model SA
    /// sends never repeat, and no number is sent before it is on disk.
    #[test]
    fn restarts_never_reuse_a_number() {
        let path = state_path("restarts");
        let id = key_id(&[7; 20]);
        let mut used = std::collections::HashSet::new();
        for run in 0..6 {
            let sa = Model::new(u64::from(u32::MAX));
            let state = StateFile::load(&path, run == 0).expect("state");
            let r = Reserver::start(state, vec![(sa.clone(), 0x1000, id.clone())], 1000, run == 0).expect("start");
            for _ in 0..7 {
                let first = sa.next.load(Ordering::Relaxed);
                let sent = sa.send(400);
                for n in first..first + sent {
                    assert!(used.insert(n), "number {n} used twice (run {run})");
                }
                let on_disk = StateFile::load(&path, false).expect("reads").resume_at(0x1000, &id).expect("entry");
                assert!(sa.next.load(Ordering::Relaxed) <= on_disk, "a number was used before it was recorded");
                r.top_up().expect("writes");
            }
            if run % 2 == 1 {
                r.finish().expect("clean stop");
            }
        }
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }

    #[test]
    fn an_unknown_sa_needs_new_keys_and_an_exhausted_one_a_new_key() {
        let path = state_path("unknown");
        let sa = Model::new(u64::from(u32::MAX));
        let state = StateFile::load(&path, true).expect("empty");
        let err =
            Reserver::start(state, vec![(sa.clone(), 0x2000, key_id(&[1; 20]))], 1000, false).err().expect("refused");
        assert!(err.contains("--new-keys"), "{err}");

        let mut state = StateFile::load(&path, true).expect("empty");
        state.set(0x2000, &key_id(&[1; 20]), u64::from(u32::MAX) + 1);
        let err = Reserver::start(state, vec![(sa, 0x2000, key_id(&[1; 20]))], 1000, true).err().expect("refused");
        assert!(err.contains("re-keyed"), "{err}");
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }

    #[test]
    fn the_limit_stops_at_the_end_of_the_space() {
        let path = state_path("end");
        let sa = Model::new(3000);
        let state = StateFile::load(&path, true).expect("empty");
        let r = Reserver::start(state, vec![(sa.clone(), 0x3000, key_id(&[2; 20]))], 2000, true).expect("start");
        assert_eq!(sa.limit.load(Ordering::Relaxed), 2001);
        assert_eq!(sa.send(5000), 2000);
        r.top_up().expect("writes");
        assert_eq!(sa.limit.load(Ordering::Relaxed), 3001);
        assert_eq!(sa.send(5000), 1000);
        assert_eq!(r.top_up().expect("writes"), 0);
        r.finish().expect("stop");
        let on_disk = StateFile::load(&path, false).expect("reads").resume_at(0x3000, &key_id(&[2; 20]));
        assert_eq!(on_disk, Some(3001));
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }
}
