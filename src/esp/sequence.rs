//! The sender's sequence numbers, handed out to many threads at once.
//!
//! The ESP sequence number is also the IV, so each one is handed out
//! exactly once: a reservation is one compare-and-swap on the next free
//! number, for a single packet or a whole burst, and it never passes the
//! end of the sequence space (2^32 - 1 without ESN, 2^64 - 1 with), where
//! the SA must be re-keyed. Numbers are never given back: a packet refused
//! after its number was taken leaves a gap, which the receiver's window
//! does not mind, and which is what keeps an IV from being used twice.
//!
//! Two more ceilings can stop a reservation before the end of the space:
//! the SA's hard packet lifetime (fixed when the SA is made), and a limit
//! the caller moves ([`Sequence::set_limit`]): a daemon that keeps manual
//! keys across restarts writes "numbers below N may be in use" to disk
//! first and only then raises the limit to N, so that after a crash it
//! resumes at N and no IV is ever used twice.

use std::sync::atomic::{AtomicU64, Ordering};

/// The value of [`Sequence::limit`] that means "no limit".
pub(crate) const NO_LIMIT: u64 = u64::MAX;

/// The sequence numbers an SA has handed out, and where they stop.
#[derive(Debug)]
pub(crate) struct Sequence {
    /// How many numbers were handed out: they are 1 to `used`.
    used: AtomicU64,
    /// Numbers from this one on are refused; [`NO_LIMIT`]: none. Beside
    /// `used`, so a reservation reads one cache line.
    limit: AtomicU64,
    /// The last number of the space (2^32 - 1 without ESN, 2^64 - 1 with).
    end: u64,
    /// The last number the SA's hard packet lifetime allows (`u64::MAX`:
    /// no such limit): sequence numbers count the packets sent.
    hard_packets: u64,
}

/// Why numbers could not be handed out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// The sequence space is used up; `last` was the last number.
    Exhausted { last: u64 },
    /// The hard packet lifetime is reached.
    Packets,
    /// The caller's limit: numbers from `limit` on are refused.
    Limit { limit: u64 },
}

/// Numbers handed out: `first` to `first + count - 1`; when fewer than asked
/// for, `short` says why the rest were not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reservation {
    pub first: u64,
    pub count: u64,
    pub short: Option<Stop>,
}

impl Sequence {
    /// A fresh SA: numbers 1 to `end`, or to `hard_packets` if lower.
    pub(crate) fn new(end: u64, hard_packets: Option<u64>) -> Sequence {
        Sequence {
            used: AtomicU64::new(0),
            limit: AtomicU64::new(NO_LIMIT),
            end,
            hard_packets: hard_packets.unwrap_or(u64::MAX),
        }
    }

    /// The highest `used` count `limit` allows.
    #[inline]
    fn cap(&self, limit: u64) -> u64 {
        let by_limit = if limit == NO_LIMIT { u64::MAX } else { limit.saturating_sub(1) };
        self.end.min(self.hard_packets).min(by_limit)
    }

    /// Why nothing past `used` can be handed out under `limit`.
    fn stop(&self, used: u64, limit: u64) -> Stop {
        if used >= self.end {
            Stop::Exhausted { last: used }
        } else if used >= self.hard_packets {
            Stop::Packets
        } else {
            Stop::Limit { limit }
        }
    }

    /// Take up to `n` consecutive numbers.
    ///
    /// # Errors
    /// The reason, when not one number can be handed out (or `n` is 0).
    #[inline]
    pub(crate) fn reserve(&self, n: u64) -> Result<Reservation, Stop> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            // Read with every attempt: a raised limit lets the retry through.
            // Acquire pairs with `set_limit`: whatever the caller did before
            // raising the limit (recording it) happened before numbers
            // below it are handed out.
            let limit = self.limit.load(Ordering::Acquire);
            let cap = self.cap(limit);
            if n == 0 || used >= cap {
                return Err(self.stop(used, limit));
            }
            let count = n.min(cap - used);
            match self.used.compare_exchange_weak(used, used + count, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => {
                    let short = (count < n).then(|| self.stop(used + count, limit));
                    return Ok(Reservation { first: used + 1, count, short });
                }
                Err(seen) => used = seen,
            }
        }
    }

    /// The number the next packet will carry, or `None` when the space is
    /// used up (the next packet may still be refused by a limit).
    pub(crate) fn peek(&self) -> Option<u64> {
        let used = self.used.load(Ordering::Relaxed);
        (used < self.end).then_some(used + 1)
    }

    /// How many numbers were handed out (or skipped over).
    pub(crate) fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Refuse numbers from `limit` on ([`NO_LIMIT`]: no limit).
    ///
    /// Every number handed out is below a limit that was set at the time it
    /// was reserved (the limit is read in the same attempt as the
    /// compare-and-swap that takes the numbers), so as long as the limit
    /// only rises, every number ever handed out is below the current one.
    pub(crate) fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Release);
    }

    /// The limit, `None` when there is none.
    pub(crate) fn limit(&self) -> Option<u64> {
        let limit = self.limit.load(Ordering::Relaxed);
        (limit != NO_LIMIT).then_some(limit)
    }

    /// Continue from `next`, which must not be below the next number.
    ///
    /// # Errors
    /// `Err(reason)` for 0, a number past the space, or one below the next
    /// number.
    pub(crate) fn skip_to(&self, next: u64) -> Result<(), &'static str> {
        if next == 0 || next > self.end {
            return Err("past the sequence space (2^32 - 1 without ESN, 2^64 - 1 with), or 0");
        }
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            if next - 1 < used {
                return Err("the sequence number can only move forward (an IV must never repeat)");
            }
            match self.used.compare_exchange_weak(used, next - 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(seen) => used = seen,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn got(first: u64, count: u64) -> Result<Reservation, Stop> {
        Ok(Reservation { first, count, short: None })
    }

    #[test]
    fn numbers_run_from_one_to_the_end_and_never_past_it() {
        let s = Sequence::new(10, None);
        assert_eq!(s.reserve(1), got(1, 1));
        assert_eq!(s.reserve(4), got(2, 4));
        assert_eq!(s.peek(), Some(6));
        assert_eq!(
            s.reserve(32),
            Ok(Reservation { first: 6, count: 5, short: Some(Stop::Exhausted { last: 10 }) }),
            "a burst gets what is left"
        );
        assert_eq!(s.reserve(1), Err(Stop::Exhausted { last: 10 }));
        assert_eq!(s.peek(), None);
        let esn = Sequence::new(u64::MAX, None);
        esn.skip_to(u64::MAX - 1).unwrap();
        assert_eq!(esn.reserve(8).map(|r| (r.first, r.count)), Ok((u64::MAX - 1, 2)));
        assert_eq!(esn.reserve(1), Err(Stop::Exhausted { last: u64::MAX }));
    }

    #[test]
    fn skipping_moves_forward_only() {
        let s = Sequence::new(u64::from(u32::MAX), None);
        s.reserve(5).unwrap();
        assert!(s.skip_to(5).is_err(), "5 was used");
        s.skip_to(6).unwrap();
        s.skip_to(100).unwrap();
        assert_eq!(s.reserve(1), got(100, 1));
        assert!(s.skip_to(0).is_err());
        assert!(s.skip_to(u64::from(u32::MAX) + 1).is_err());
    }

    #[test]
    fn the_limit_refuses_numbers_from_it_on_and_takes_nothing() {
        let s = Sequence::new(u64::from(u32::MAX), None);
        s.set_limit(4);
        assert_eq!(s.limit(), Some(4));
        assert_eq!(s.reserve(8), Ok(Reservation { first: 1, count: 3, short: Some(Stop::Limit { limit: 4 }) }));
        assert_eq!(s.reserve(1), Err(Stop::Limit { limit: 4 }));
        assert_eq!(s.peek(), Some(4), "the refused number is not used");
        s.set_limit(6);
        assert_eq!(s.reserve(1), got(4, 1));
        s.set_limit(NO_LIMIT);
        assert_eq!(s.limit(), None);
        assert_eq!(s.reserve(2), got(5, 2));
        s.set_limit(0);
        assert_eq!(s.reserve(1), Err(Stop::Limit { limit: 0 }));
    }

    #[test]
    fn the_hard_packet_lifetime_is_a_ceiling_of_its_own() {
        let s = Sequence::new(u64::from(u32::MAX), Some(5));
        assert_eq!(s.reserve(8), Ok(Reservation { first: 1, count: 5, short: Some(Stop::Packets) }));
        assert_eq!(s.reserve(1), Err(Stop::Packets));
        // The end of the space is reported before the lifetime when both apply.
        let both = Sequence::new(3, Some(3));
        assert_eq!(both.reserve(4).map(|r| r.short), Ok(Some(Stop::Exhausted { last: 3 })));
    }

    #[test]
    fn threads_get_every_number_once() {
        let s = std::sync::Arc::new(Sequence::new(u64::MAX, None));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..2000u64 {
                        let r = s.reserve(1 + (i + t) % 32).unwrap();
                        mine.extend(r.first..r.first + r.count);
                    }
                    mine
                })
            })
            .collect();
        let mut all: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        all.sort_unstable();
        let n = all.len() as u64;
        assert!(all.iter().copied().eq(1..=n), "every number exactly once");
    }

    #[test]
    fn a_limit_raised_while_threads_reserve_is_never_passed() {
        // Two threads reserve while a third raises the limit step by step,
        // as a daemon does after each write-ahead record: every number
        // handed out is below the limit in force when it was reserved, and
        // below the final one; each is handed out once.
        let s = std::sync::Arc::new(Sequence::new(u64::from(u32::MAX), None));
        s.set_limit(100);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let workers: Vec<_> = (0..2)
            .map(|t| {
                let (s, stop) = (s.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        match s.reserve(1 + (i + t) % 8) {
                            Ok(r) => mine.extend(r.first..r.first + r.count),
                            Err(Stop::Limit { limit }) => assert!(limit >= 100),
                            Err(other) => panic!("{other:?}"),
                        }
                        i += 1;
                    }
                    mine
                })
            })
            .collect();
        let mut limit = 100;
        for _ in 0..2000 {
            limit += 50;
            s.set_limit(limit);
            std::thread::yield_now();
        }
        stop.store(true, Ordering::Relaxed);
        let mut all: Vec<u64> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
        all.sort_unstable();
        assert!(all.windows(2).all(|w| w[0] < w[1]), "a number handed out twice");
        assert!(all.last().is_none_or(|&last| last < limit), "a number at or past the limit");
        assert_eq!(all.len() as u64, s.used(), "refusals took no numbers");
    }
}
