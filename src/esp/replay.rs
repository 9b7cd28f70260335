//! Anti-replay window (RFC 6479) and extended sequence number
//! reconstruction (RFC 4303 appendix A).
//!
//! The window is a ring of 64-bit words: bit `s mod (64 * words)` stands for
//! sequence number `s`. It holds one word more than the window needs, so that
//! sliding forward is done by zeroing whole words (the words the top moves
//! into) instead of shifting a bitmap; each word is zeroed at most once per
//! 64 sequence numbers, so the cost per packet is O(1). Checking is one
//! comparison and one bit test.
//!
//! The receiver first [`check`](ReplayWindow::check)s a packet (before the
//! ICV is verified, so forged packets cost nothing more than a lookup) and
//! [`accept`](ReplayWindow::accept)s it only after the ICV has verified, so a
//! forged packet can never move the window.

use super::EspError;

/// An RFC 6479 anti-replay window over 64-bit sequence numbers.
///
/// ```
/// use espgcm::esp::ReplayWindow;
///
/// let mut w = ReplayWindow::new(64);
/// assert!(w.check(5).is_ok());
/// w.accept(5);
/// assert!(w.check(5).is_err()); // duplicate
/// assert!(w.check(4).is_ok()); // reordered, inside the window
/// w.accept(200);
/// assert!(w.check(100).is_err()); // below 200 - 64: too old
/// ```
#[derive(Clone, Debug)]
pub struct ReplayWindow {
    /// Window size in packets (0: no replay check).
    window: u32,
    /// Highest sequence number accepted so far (0: none yet).
    top: u64,
    /// The ring; its length is a power of two (empty when `window` is 0).
    words: Vec<u64>,
}

impl ReplayWindow {
    /// A window of `window` packets (0 turns the replay check off; the top
    /// is still tracked for ESN). Memory: the next power of two of
    /// `window / 64 + 1` words, allocated here once.
    pub fn new(window: u32) -> ReplayWindow {
        let words = if window == 0 { 0 } else { (window.div_ceil(64) as usize + 1).next_power_of_two() };
        ReplayWindow { window, top: 0, words: vec![0; words] }
    }

    /// The window size in packets.
    pub fn window(&self) -> u32 {
        self.window
    }

    /// The highest sequence number accepted so far (0 before the first).
    pub fn top(&self) -> u64 {
        self.top
    }

    /// Whether `seq` may be new: not 0, not below the window, not seen.
    ///
    /// # Errors
    /// [`EspError::TooOld`] below the window (or for 0), [`EspError::Replay`]
    /// for a sequence number already accepted.
    pub fn check(&self, seq: u64) -> Result<(), EspError> {
        if seq == 0 {
            return Err(self.too_old(seq));
        }
        if self.window == 0 || seq > self.top {
            return Ok(());
        }
        if self.top - seq >= u64::from(self.window) {
            return Err(self.too_old(seq));
        }
        let (index, bit) = self.position(seq);
        match self.words.get(index) {
            Some(word) if word & bit != 0 => Err(EspError::Replay { seq }),
            _ => Ok(()),
        }
    }

    /// Record `seq` as received (call only after its ICV verified and
    /// [`check`](Self::check) passed). Slides the window when `seq` is new
    /// top, zeroing the words it moves into.
    pub fn accept(&mut self, seq: u64) {
        if seq > self.top {
            if !self.words.is_empty() {
                let current = self.top >> 6;
                let steps = (seq >> 6) - current;
                let len = self.words.len() as u64;
                let mask = len - 1;
                for i in 1..=steps.min(len) {
                    if let Some(word) = self.words.get_mut(((current + i) & mask) as usize) {
                        *word = 0;
                    }
                }
            }
            self.top = seq;
        }
        if self.window != 0 {
            let (index, bit) = self.position(seq);
            if let Some(word) = self.words.get_mut(index) {
                *word |= bit;
            }
        }
    }

    /// Move the window forward to `seq`, treating every sequence number up
    /// to it as received (for restoring state after a restart or fail-over:
    /// nothing at or below `seq` will be accepted again). Never moves back.
    pub fn advance_to(&mut self, seq: u64) {
        if seq > self.top {
            self.top = seq;
            self.words.fill(u64::MAX);
            // Bits above the top in its own word must read "not received":
            // the window only zeroes words it slides into.
            let (index, bit) = self.position(seq);
            if let Some(word) = self.words.get_mut(index) {
                *word = bit | (bit - 1);
            }
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
        let top_high = (self.top >> 32) as u32;
        let top_low = self.top as u32;
        let high = if top_low >= w - 1 {
            // Case A: the window lies within one 2^32 block.
            if low >= top_low - (w - 1) { Some(top_high) } else { top_high.checked_add(1) }
        } else {
            // Case B: the window reaches back into the previous block.
            if low >= top_low.wrapping_sub(w - 1) { top_high.checked_sub(1) } else { Some(top_high) }
        };
        match high {
            Some(high) => Ok((u64::from(high) << 32) | u64::from(low)),
            None if top_high == 0 => Err(self.too_old(u64::from(low))),
            None => Err(EspError::Malformed { field: super::Field::SequenceNumber, value: u64::from(low) }),
        }
    }

    fn too_old(&self, seq: u64) -> EspError {
        EspError::TooOld { seq, highest: self.top, window: self.window }
    }

    /// Word index and bit mask of `seq` in the ring.
    fn position(&self, seq: u64) -> (usize, u64) {
        let mask = (self.words.len() as u64).wrapping_sub(1);
        (((seq >> 6) & mask) as usize, 1u64 << (seq & 63))
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ring_size_is_a_power_of_two_with_a_spare_word() {
        assert_eq!(ReplayWindow::new(0).words.len(), 0);
        assert_eq!(ReplayWindow::new(1).words.len(), 2);
        assert_eq!(ReplayWindow::new(64).words.len(), 2);
        assert_eq!(ReplayWindow::new(65).words.len(), 4);
        assert_eq!(ReplayWindow::new(32768).words.len(), 1024);
    }

    #[test]
    fn esn_estimate_follows_rfc4303_appendix_a() {
        let mut w = ReplayWindow::new(64);
        // Fresh SA: top 0, case B; low halves near 2^32 would be in block -1.
        assert_eq!(w.estimate_esn(1), Ok(1));
        assert!(matches!(w.estimate_esn(u32::MAX), Err(EspError::TooOld { .. })));
        w.accept(0xffff_fff0);
        // Case A: inside the window stays in block 0, below it goes to block 1.
        assert_eq!(w.estimate_esn(0xffff_ffc0), Ok(0xffff_ffc0));
        assert_eq!(w.estimate_esn(0xffff_fff8), Ok(0xffff_fff8));
        assert_eq!(w.estimate_esn(5), Ok(0x1_0000_0005));
        w.accept(0x1_0000_0005);
        // Case B: high low halves belong to the previous block.
        assert_eq!(w.estimate_esn(0xffff_fff9), Ok(0xffff_fff9));
        assert_eq!(w.estimate_esn(7), Ok(0x1_0000_0007));
        assert_eq!(w.estimate_esn(0x8000_0000), Ok(0x1_8000_0000));
    }

    #[test]
    fn esn_estimate_with_the_window_off_picks_the_nearest() {
        let mut w = ReplayWindow::new(0);
        w.accept(0x3_0000_0010);
        assert_eq!(w.estimate_esn(0x10), Ok(0x3_0000_0010));
        assert_eq!(w.estimate_esn(0xf000_0000), Ok(0x2_f000_0000));
        assert_eq!(w.estimate_esn(0x7000_0000), Ok(0x3_7000_0000));
    }
}
