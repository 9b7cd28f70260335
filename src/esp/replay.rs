//! Anti-replay window (RFC 6479) and extended sequence number
//! reconstruction (RFC 4303 appendix A), shared by every thread that opens
//! an SA's packets.
//!
//! The window is a ring of 64-bit words, each standing for one block of 32
//! consecutive sequence numbers: the low 32 bits say which of them were
//! received, the high 32 bits name the block (its number, truncated), so a
//! word that still describes an older block reads as empty for a newer one.
//! Sliding forward is then nothing at all: the first packet of a new block
//! replaces the word it lands on. The ring holds at least one block more
//! than the window spans, so a word is only ever replaced by a block whose
//! sequence numbers put the replaced one's below the window.
//!
//! Every update is one compare-and-swap on one word, and the top (highest
//! sequence number received) only grows (`fetch_max`), so several threads
//! can open one SA's packets at once without a lock. The receiver first
//! [`check`](ReplayWindow::check)s a packet (before the ICV is verified, so
//! forged packets cost nothing more than a lookup) and
//! [`accept`](ReplayWindow::accept)s it only after the ICV has verified, so a
//! forged packet can never move the window. `accept` decides: of two threads
//! holding the same sequence number, exactly one gets `Ok`.

use super::EspError;
use std::sync::atomic::{AtomicU64, Ordering};

/// Sequence numbers per ring word.
const BLOCK: u64 = 32;

/// An RFC 6479 anti-replay window over 64-bit sequence numbers, safe to
/// share between threads (`&self` everywhere).
///
/// ```
/// use espgcm::esp::{EspError, ReplayWindow};
///
/// let w = ReplayWindow::new(64);
/// assert!(w.check(5).is_ok());
/// w.accept(5)?;
/// assert!(w.check(5).is_err()); // duplicate
/// assert_eq!(w.accept(5), Err(EspError::Replay { seq: 5 }));
/// assert!(w.check(4).is_ok()); // reordered, inside the window
/// w.accept(200)?;
/// assert!(w.check(100).is_err()); // below 200 - 64: too old
/// # Ok::<(), EspError>(())
/// ```
pub struct ReplayWindow {
    /// Window size in packets (0: no replay check).
    window: u32,
    /// Highest sequence number accepted so far (0: none yet).
    top: AtomicU64,
    /// Everything at or below this was declared received by
    /// [`advance_to`](Self::advance_to) (0: nothing).
    floor: AtomicU64,
    /// The ring; its length is a power of two (empty when `window` is 0).
    words: Box<[AtomicU64]>,
}

impl Clone for ReplayWindow {
    /// A snapshot: another window with the same state, not shared.
    fn clone(&self) -> ReplayWindow {
        ReplayWindow {
            window: self.window,
            top: AtomicU64::new(self.top.load(Ordering::Acquire)),
            floor: AtomicU64::new(self.floor.load(Ordering::Acquire)),
            words: self.words.iter().map(|w| AtomicU64::new(w.load(Ordering::Acquire))).collect(),
        }
    }
}

impl core::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("window", &self.window)
            .field("top", &self.top())
            .field("floor", &self.floor.load(Ordering::Relaxed))
            .field("words", &self.words.len())
            .finish()
    }
}

/// What a ring word says about a block.
enum Slot {
    /// The word describes this block: these bits are received.
    Current(u64),
    /// The word describes an older block: nothing of this one is received.
    Older,
    /// The word describes a newer block: this one fell out of the window.
    Newer,
}

impl ReplayWindow {
    /// A window of `window` packets (0 turns the replay check off; the top
    /// is still tracked for ESN). Memory: the next power of two of
    /// `window / 32 + 2` words of 8 bytes, allocated here once.
    pub fn new(window: u32) -> ReplayWindow {
        let words = if window == 0 { 0 } else { (u64::from(window).div_ceil(BLOCK) as usize + 2).next_power_of_two() };
        ReplayWindow {
            window,
            top: AtomicU64::new(0),
            floor: AtomicU64::new(0),
            words: (0..words).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The window size in packets.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// The highest sequence number accepted so far (0 before the first).
    pub fn top(&self) -> u64 {
        self.top.load(Ordering::Acquire)
    }

    /// Whether `seq` may be new: not 0, not below the window, not seen.
    ///
    /// # Errors
    /// [`EspError::TooOld`] below the window (or for 0), [`EspError::Replay`]
    /// for a sequence number already accepted.
    pub fn check(&self, seq: u64) -> Result<(), EspError> {
        let top = self.top();
        self.in_window(seq, top)?;
        if self.window == 0 || seq > top {
            return Ok(());
        }
        match self.slot(seq, self.word(seq).map_or(0, |w| w.load(Ordering::Acquire))) {
            Slot::Current(bits) if bits & bit(seq) != 0 => Err(EspError::Replay { seq }),
            Slot::Newer => Err(self.too_old(seq, top)),
            _ => Ok(()),
        }
    }

    /// Record `seq` as received: call only after its ICV verified. This is
    /// where the decision is made when threads race: the sequence number is
    /// taken by exactly one caller, and a window that moved on since
    /// [`check`](Self::check) is respected.
    ///
    /// # Errors
    /// [`EspError::Replay`] if `seq` was already accepted (by another thread
    /// since `check`, or `check` was skipped), [`EspError::TooOld`] if it is
    /// below the window now.
    pub fn accept(&self, seq: u64) -> Result<(), EspError> {
        self.in_window(seq, self.top())?;
        if let Some(word) = self.word(seq) {
            let mut current = word.load(Ordering::Acquire);
            loop {
                let next = match self.slot(seq, current) {
                    Slot::Current(bits) if bits & bit(seq) != 0 => return Err(EspError::Replay { seq }),
                    Slot::Current(_) => current | bit(seq),
                    Slot::Older => (tag(seq) << 32) | bit(seq),
                    Slot::Newer => return Err(self.too_old(seq, self.top())),
                };
                match word.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => break,
                    Err(seen) => current = seen,
                }
            }
        }
        if seq > self.top() {
            self.top.fetch_max(seq, Ordering::AcqRel);
        }
        Ok(())
    }

    /// Move the window forward to `seq`, treating every sequence number up
    /// to it as received (for restoring state after a restart or fail-over:
    /// nothing at or below `seq` will be accepted again). Never moves back.
    pub fn advance_to(&self, seq: u64) {
        if self.top.fetch_max(seq, Ordering::AcqRel) < seq {
            self.floor.fetch_max(seq, Ordering::AcqRel);
        }
    }

    /// The checks that need only the top: 0, below the window, at or below
    /// the restored floor.
    fn in_window(&self, seq: u64, top: u64) -> Result<(), EspError> {
        if seq == 0 {
            return Err(self.too_old(seq, top));
        }
        if self.window == 0 || seq > top {
            return Ok(());
        }
        if top - seq >= u64::from(self.window) {
            return Err(self.too_old(seq, top));
        }
        if seq <= self.floor.load(Ordering::Acquire) {
            return Err(EspError::Replay { seq });
        }
        Ok(())
    }

    /// The ring word for `seq`'s block (`None` with the window off).
    fn word(&self, seq: u64) -> Option<&AtomicU64> {
        let mask = (self.words.len() as u64).wrapping_sub(1);
        self.words.get(((seq / BLOCK) & mask) as usize)
    }

    /// Read a ring word for `seq`'s block. Block numbers are compared by
    /// their truncated difference, which is exact while the blocks a word
    /// held are less than 2^31 blocks apart; a word left untouched longer
    /// (a jump of 2^36 sequence numbers) can only err towards refusing.
    fn slot(&self, seq: u64, word: u64) -> Slot {
        let held = (word >> 32) as u32;
        match (tag(seq) as u32).wrapping_sub(held) as i32 {
            0 => Slot::Current(word & 0xffff_ffff),
            d if d > 0 || word == 0 => Slot::Older,
            _ => Slot::Newer,
        }
    }

    /// Reconstruct the full 64-bit sequence number from the 32 bits on the
    /// wire (RFC 4303 appendix A2.2), relative to the top of the window.
    ///
    /// With the window off, the guess picks the candidate nearest to the top
    /// (a window of 2^31 for the purpose of the guess).
    ///
    /// # Errors
    /// [`EspError::TooOld`] when the guess would fall below sequence number 0,
    /// [`EspError::Malformed`] (sequence number) when it would pass 2^64 - 1.
    pub fn estimate_esn(&self, low: u32) -> Result<u64, EspError> {
        let w: u32 = if self.window == 0 { 1 << 31 } else { self.window };
        let top = self.top();
        let top_high = (top >> 32) as u32;
        let top_low = top as u32;
        let high = if top_low >= w - 1 {
            // Case A: the window lies within one 2^32 block.
            if low >= top_low - (w - 1) { Some(top_high) } else { top_high.checked_add(1) }
        } else {
            // Case B: the window reaches back into the previous block.
            if low >= top_low.wrapping_sub(w - 1) { top_high.checked_sub(1) } else { Some(top_high) }
        };
        match high {
            Some(high) => Ok((u64::from(high) << 32) | u64::from(low)),
            None if top_high == 0 => Err(self.too_old(u64::from(low), top)),
            None => Err(EspError::Malformed { field: super::Field::SequenceNumber, value: u64::from(low) }),
        }
    }

    fn too_old(&self, seq: u64, top: u64) -> EspError {
        EspError::TooOld { seq, highest: top, window: self.window }
    }
}

/// The block number `seq` falls in, as a word's tag holds it.
fn tag(seq: u64) -> u64 {
    (seq / BLOCK) & 0xffff_ffff
}

/// `seq`'s bit in its block's word.
fn bit(seq: u64) -> u64 {
    1 << (seq % BLOCK)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ring_size_is_a_power_of_two_with_a_spare_block() {
        assert_eq!(ReplayWindow::new(0).words.len(), 0);
        assert_eq!(ReplayWindow::new(1).words.len(), 4);
        assert_eq!(ReplayWindow::new(64).words.len(), 4);
        assert_eq!(ReplayWindow::new(65).words.len(), 8);
        assert_eq!(ReplayWindow::new(32768).words.len(), 2048);
    }

    #[test]
    fn of_threads_racing_for_one_sequence_number_exactly_one_wins() {
        let w = std::sync::Arc::new(ReplayWindow::new(4096));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || (1..=20_000u64).filter(|&s| w.accept(s).is_ok()).count())
            })
            .collect();
        let won: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(won, 20_000);
        assert_eq!(w.top(), 20_000);
    }

    #[test]
    fn esn_estimate_follows_rfc4303_appendix_a() {
        let w = ReplayWindow::new(64);
        // Fresh SA: top 0, case B; low halves near 2^32 would be in block -1.
        assert_eq!(w.estimate_esn(1), Ok(1));
        assert!(matches!(w.estimate_esn(u32::MAX), Err(EspError::TooOld { .. })));
        w.accept(0xffff_fff0).unwrap();
        // Case A: inside the window stays in block 0, below it goes to block 1.
        assert_eq!(w.estimate_esn(0xffff_ffc0), Ok(0xffff_ffc0));
        assert_eq!(w.estimate_esn(0xffff_fff8), Ok(0xffff_fff8));
        assert_eq!(w.estimate_esn(5), Ok(0x1_0000_0005));
        w.accept(0x1_0000_0005).unwrap();
        // Case B: high low halves belong to the previous block.
        assert_eq!(w.estimate_esn(0xffff_fff9), Ok(0xffff_fff9));
        assert_eq!(w.estimate_esn(7), Ok(0x1_0000_0007));
        assert_eq!(w.estimate_esn(0x8000_0000), Ok(0x1_8000_0000));
    }

    #[test]
    fn esn_estimate_with_the_window_off_picks_the_nearest() {
        let w = ReplayWindow::new(0);
        w.accept(0x3_0000_0010).unwrap();
        assert_eq!(w.estimate_esn(0x10), Ok(0x3_0000_0010));
        assert_eq!(w.estimate_esn(0xf000_0000), Ok(0x2_f000_0000));
        assert_eq!(w.estimate_esn(0x7000_0000), Ok(0x3_7000_0000));
    }
}
