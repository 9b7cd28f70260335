//! The sender's sequence numbers, handed out to many threads at once.
//!
//! The ESP sequence number is also the IV, so each one is handed out
//! exactly once: a reservation is one compare-and-swap on the next free
//! number, for a single packet or a whole burst, and it never passes the
//! end of the sequence space (2^32 - 1 without ESN, 2^64 - 1 with), where
//! the SA must be re-keyed. Numbers are never given back: a packet refused
//! after its number was taken leaves a gap, which the receiver's window
//! does not mind, and which is what keeps an IV from being used twice.

use super::EspError;
use std::sync::atomic::{AtomicU64, Ordering};

/// The sequence numbers an SA has handed out, and the last one there is.
#[derive(Debug)]
pub(crate) struct Sequence {
    /// How many numbers were handed out: they are 1 to `used`.
    used: AtomicU64,
    last: u64,
}

impl Sequence {
    /// A fresh SA: numbers 1 to `last`.
    pub(crate) fn new(last: u64) -> Sequence {
        Sequence { used: AtomicU64::new(0), last }
    }

    /// Take up to `n` consecutive numbers: `(first, count)`, with `count`
    /// less than `n` only when the space runs out on the way.
    ///
    /// # Errors
    /// [`EspError::SequenceExhausted`] when nothing is left (or `n` is 0).
    pub(crate) fn reserve(&self, n: u64) -> Result<(u64, u64), EspError> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            if n == 0 || used >= self.last {
                return Err(EspError::SequenceExhausted { last: used });
            }
            let count = n.min(self.last - used);
            match self.used.compare_exchange_weak(used, used + count, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok((used + 1, count)),
                Err(seen) => used = seen,
            }
        }
    }

    /// The number the next packet will carry, or `None` when used up.
    pub(crate) fn peek(&self) -> Option<u64> {
        let used = self.used.load(Ordering::Relaxed);
        (used < self.last).then_some(used + 1)
    }

    /// Continue from `next`, which must not be below the next number.
    ///
    /// # Errors
    /// [`EspError::Invalid`] for 0, a number past the space, or one below
    /// the next number.
    pub(crate) fn skip_to(&self, next: u64) -> Result<(), EspError> {
        if next == 0 || next > self.last {
            return Err(EspError::Invalid {
                parameter: "next",
                reason: "past the sequence space (2^32 - 1 without ESN, 2^64 - 1 with), or 0",
            });
        }
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            if next - 1 < used {
                return Err(EspError::Invalid {
                    parameter: "next",
                    reason: "the sequence number can only move forward (an IV must never repeat)",
                });
            }
            match self.used.compare_exchange_weak(used, next - 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(seen) => used = seen,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn numbers_run_from_one_to_the_end_and_never_past_it() {
        let s = Sequence::new(10);
        assert_eq!(s.reserve(1), Ok((1, 1)));
        assert_eq!(s.reserve(4), Ok((2, 4)));
        assert_eq!(s.peek(), Some(6));
        assert_eq!(s.reserve(32), Ok((6, 5)), "a burst gets what is left");
        assert_eq!(s.reserve(1), Err(EspError::SequenceExhausted { last: 10 }));
        assert_eq!(s.peek(), None);
        let esn = Sequence::new(u64::MAX);
        esn.skip_to(u64::MAX - 1).unwrap();
        assert_eq!(esn.reserve(8), Ok((u64::MAX - 1, 2)));
        assert_eq!(esn.reserve(1), Err(EspError::SequenceExhausted { last: u64::MAX }));
    }

    #[test]
    fn skipping_moves_forward_only() {
        let s = Sequence::new(u64::from(u32::MAX));
        s.reserve(5).unwrap();
        assert!(s.skip_to(5).is_err(), "5 was used");
        s.skip_to(6).unwrap();
        s.skip_to(100).unwrap();
        assert_eq!(s.reserve(1), Ok((100, 1)));
        assert!(s.skip_to(0).is_err());
        assert!(s.skip_to(u64::from(u32::MAX) + 1).is_err());
    }

    #[test]
    fn threads_get_every_number_once() {
        let s = std::sync::Arc::new(Sequence::new(u64::MAX));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let mut mine = Vec::new();
                    for i in 0..2000u64 {
                        let (first, count) = s.reserve(1 + (i + t) % 32).unwrap();
                        mine.extend(first..first + count);
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
}
