//! SA lifetimes (RFC 4301 §4.4.2.1): soft and hard limits on the bytes,
//! packets and time an SA may carry.
//!
//! Crossing a soft limit raises an event for the key manager to re-key in
//! time ([`SaTable::poll`](super::SaTable::poll), or
//! [`Outbound::poll_lifetime`](super::Outbound::poll_lifetime) /
//! [`Inbound::poll_lifetime`](super::Inbound::poll_lifetime)); crossing a hard
//! limit stops the SA: every later `seal` or `open` is refused with
//! [`EspError::LifetimeExpired`](super::EspError::LifetimeExpired), counted.
//! Without ESN the end of the 32-bit sequence space is a hard limit of
//! every outbound SA, with a soft warning [`SEQUENCE_SOFT_MARGIN`] numbers
//! ahead of it.
//!
//! # What it costs, and how far a limit can be overshot
//!
//! The packet path reads one word of SA state per call (is the SA
//! stopped?) and nothing else. The totals are compared with the limits, and
//! the clock read, at the end of every burst and every 64th single-packet
//! call per thread (the count comes from the counter shard the call updates
//! anyway), and whenever the key manager polls. So a hard limit on bytes,
//! inbound packets or time can be overshot by at most one burst per thread
//! (a run of 64 single-packet calls counts as a burst), or, for an idle SA,
//! until the next poll: poll every second or so. The outbound packet limit
//! is exact: sequence numbers count the packets sent, and the hard limit is
//! a ceiling on them.

use super::EspError;
use core::fmt;
use std::time::Duration;

/// How far ahead of the end of the 32-bit sequence space (without ESN) the
/// soft sequence warning comes: 2^28 numbers, 1/16 of the space. At 20
/// million packets a second (both cores of a small machine sealing 64-byte
/// packets on one SA) that is 13 seconds to re-key, enough for an IKE
/// exchange with retransmissions; slower SAs get proportionally more.
pub const SEQUENCE_SOFT_MARGIN: u64 = 1 << 28;

/// Soft and hard limits of one SA (RFC 4301 §4.4.2.1); `None` is no limit.
///
/// Bytes are those of the IP packets handed to `seal` (outbound) or
/// delivered by `open` (inbound), as in [`Counters::bytes`](super::Counters::bytes);
/// packets are those sealed (counted by sequence number, so numbers skipped
/// with [`Outbound::skip_to_sequence`](super::Outbound::skip_to_sequence)
/// count as sent) or opened; time runs from when the SA was made
/// ([`Outbound::new`](super::Outbound::new), [`Inbound::new`](super::Inbound::new)).
///
/// ```
/// use espgcm::esp::{Lifetime, SaConfig};
/// use std::time::Duration;
///
/// let cfg = SaConfig {
///     lifetime: Lifetime {
///         soft_bytes: Some(900_000_000),
///         hard_bytes: Some(1_000_000_000),
///         soft_time: Some(Duration::from_secs(3000)),
///         hard_time: Some(Duration::from_secs(3600)),
///         ..Lifetime::default()
///     },
///     ..SaConfig::new(0x1000, &[7; 20])
/// };
/// assert!(cfg.validate().is_ok());
/// assert_eq!(SaConfig::new(0x1000, &[7; 20]).lifetime, Lifetime::NONE);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Lifetime {
    /// Bytes after which the key manager is told to re-key.
    pub soft_bytes: Option<u64>,
    /// Bytes after which the SA stops.
    pub hard_bytes: Option<u64>,
    /// Packets after which the key manager is told to re-key.
    pub soft_packets: Option<u64>,
    /// Packets after which the SA stops.
    pub hard_packets: Option<u64>,
    /// Time after which the key manager is told to re-key.
    pub soft_time: Option<Duration>,
    /// Time after which the SA stops.
    pub hard_time: Option<Duration>,
}

impl Lifetime {
    /// No limit at all (what [`SaConfig::new`](super::SaConfig::new) sets).
    pub const NONE: Lifetime = Lifetime {
        soft_bytes: None,
        hard_bytes: None,
        soft_packets: None,
        hard_packets: None,
        soft_time: None,
        hard_time: None,
    };

    /// Whether any limit is set.
    pub fn is_limited(&self) -> bool {
        *self != Lifetime::NONE
    }

    /// Why these limits cannot be used, if they cannot.
    pub(crate) fn problem(&self) -> Option<&'static str> {
        fn ordered<T: PartialOrd>(soft: Option<T>, hard: Option<T>) -> bool {
            match (soft, hard) {
                (Some(s), Some(h)) => s < h,
                _ => true,
            }
        }
        let zero = [self.soft_bytes, self.hard_bytes, self.soft_packets, self.hard_packets].contains(&Some(0))
            || [self.soft_time, self.hard_time].contains(&Some(Duration::ZERO));
        if zero {
            return Some("a limit of 0 would stop the SA before its first packet; leave it out (None) for no limit");
        }
        if !ordered(self.soft_bytes, self.hard_bytes)
            || !ordered(self.soft_packets, self.hard_packets)
            || !ordered(self.soft_time, self.hard_time)
        {
            return Some("a soft limit must be below its hard limit, so that re-keying starts before the SA stops");
        }
        None
    }
}

/// Which limit an SA crossed.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LifetimeKind {
    /// [`Lifetime::soft_bytes`] / [`Lifetime::hard_bytes`].
    Bytes,
    /// [`Lifetime::soft_packets`] / [`Lifetime::hard_packets`].
    Packets,
    /// [`Lifetime::soft_time`] / [`Lifetime::hard_time`].
    Time,
    /// The sequence space without ESN: the soft warning
    /// [`SEQUENCE_SOFT_MARGIN`] numbers before its end; the hard end is
    /// reported by `seal` as [`EspError::SequenceExhausted`].
    Sequence,
}

impl LifetimeKind {
    /// Every kind, in the order of their state bits.
    pub(crate) const ALL: [LifetimeKind; 4] =
        [LifetimeKind::Bytes, LifetimeKind::Packets, LifetimeKind::Time, LifetimeKind::Sequence];

    fn name(self) -> &'static str {
        match self {
            LifetimeKind::Bytes => "byte",
            LifetimeKind::Packets => "packet",
            LifetimeKind::Time => "time",
            LifetimeKind::Sequence => "sequence number",
        }
    }
}

impl fmt::Display for LifetimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which limits an SA has crossed so far (or, from a poll, newly crossed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LifetimeStatus {
    /// The first soft limit crossed: re-key.
    pub soft: Option<LifetimeKind>,
    /// The first hard limit crossed: the SA is stopped.
    pub hard: Option<LifetimeKind>,
}

/// Check the limits of an SA configuration.
pub(crate) fn validate(lifetime: &Lifetime) -> Result<(), EspError> {
    match lifetime.problem() {
        Some(reason) => Err(EspError::Invalid { parameter: "lifetime", reason }),
        None => Ok(()),
    }
}

/// The state bits: the soft kinds crossed, the hard kinds crossed, and
/// whether each has been reported.
const SOFT_SHIFT: u32 = 0;
const HARD_SHIFT: u32 = 4;
const KIND_MASK: u32 = 0xf;
const SOFT_REPORTED: u32 = 1 << 8;
const HARD_REPORTED: u32 = 1 << 9;

fn bit(kind: LifetimeKind) -> u32 {
    match kind {
        LifetimeKind::Bytes => 1,
        LifetimeKind::Packets => 2,
        LifetimeKind::Time => 4,
        LifetimeKind::Sequence => 8,
    }
}

/// The first kind (in [`LifetimeKind::ALL`] order) among `bits`.
fn first_kind(bits: u32) -> Option<LifetimeKind> {
    LifetimeKind::ALL.into_iter().find(|&k| bits & bit(k) != 0)
}

/// What an SA has carried, for comparing with its limits.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Totals {
    pub bytes: u64,
    pub packets: u64,
}

/// One SA direction's limits and how far it has come towards them.
///
/// The packet path reads `state` once per call ([`LifeState::stopped`]);
/// the comparisons run in [`LifeState::check`], at the end of bursts, every
/// 64th single-packet call per thread, and on polls.
#[derive(Debug)]
pub(crate) struct LifeState {
    limits: Lifetime,
    created: std::time::Instant,
    /// The sequence count (numbers used) at which the soft sequence warning
    /// is given (outbound SAs without ESN).
    soft_sequence: Option<u64>,
    /// Crossed and reported bits (see the constants above). Written rarely
    /// (once per crossing), read by every call.
    state: std::sync::atomic::AtomicU32,
}

impl LifeState {
    pub(crate) fn new(limits: Lifetime, soft_sequence: Option<u64>) -> LifeState {
        LifeState {
            limits,
            created: std::time::Instant::now(),
            soft_sequence,
            state: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// Whether the totals need checking at all.
    #[inline]
    pub(crate) fn is_checked(&self) -> bool {
        self.soft_sequence.is_some() || self.limits.is_limited()
    }

    /// Whether byte or packet totals are compared (so worth summing).
    #[inline]
    pub(crate) fn counts_traffic(&self) -> bool {
        let l = &self.limits;
        l.soft_bytes.is_some() || l.hard_bytes.is_some() || l.soft_packets.is_some() || l.hard_packets.is_some()
    }

    /// The hard limit the SA has crossed, if it has: the packet path's one
    /// read.
    #[inline]
    pub(crate) fn stopped(&self) -> Option<LifetimeKind> {
        let state = self.state.load(std::sync::atomic::Ordering::Relaxed);
        if state & (KIND_MASK << HARD_SHIFT) == 0 { None } else { first_kind(state >> HARD_SHIFT) }
    }

    /// Record that `kind` was crossed (soft or hard); a hard crossing stops
    /// the SA.
    #[cold]
    pub(crate) fn cross(&self, kind: LifetimeKind, hard: bool) {
        let b = bit(kind) << if hard { HARD_SHIFT } else { SOFT_SHIFT };
        // A hard limit crossed is a soft one crossed too (a key manager that
        // only listens for soft events still hears of it).
        let b = if hard { b | (bit(kind) << SOFT_SHIFT) } else { b };
        if self.state.load(std::sync::atomic::Ordering::Relaxed) & b != b {
            self.state.fetch_or(b, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Compare `totals` (packets: opened inbound, sequence numbers used
    /// outbound) and the time (`now`, asked for only when a time limit is
    /// set) with the limits.
    pub(crate) fn check(&self, totals: Totals, now: impl FnOnce() -> std::time::Instant) {
        let l = &self.limits;
        let over = |limit: Option<u64>, value: u64| limit.is_some_and(|limit| value >= limit);
        if over(l.soft_bytes, totals.bytes) {
            self.cross(LifetimeKind::Bytes, false);
        }
        if over(l.hard_bytes, totals.bytes) {
            self.cross(LifetimeKind::Bytes, true);
        }
        if over(l.soft_packets, totals.packets) {
            self.cross(LifetimeKind::Packets, false);
        }
        if over(l.hard_packets, totals.packets) {
            self.cross(LifetimeKind::Packets, true);
        }
        if over(self.soft_sequence, totals.packets) {
            self.cross(LifetimeKind::Sequence, false);
        }
        if l.soft_time.is_some() || l.hard_time.is_some() {
            let age = now().saturating_duration_since(self.created);
            if l.soft_time.is_some_and(|t| age >= t) {
                self.cross(LifetimeKind::Time, false);
            }
            if l.hard_time.is_some_and(|t| age >= t) {
                self.cross(LifetimeKind::Time, true);
            }
        }
    }

    /// The limits crossed so far.
    pub(crate) fn status(&self) -> LifetimeStatus {
        let state = self.state.load(std::sync::atomic::Ordering::Relaxed);
        LifetimeStatus { soft: first_kind(state >> SOFT_SHIFT), hard: first_kind(state >> HARD_SHIFT) }
    }

    /// The crossings not reported before, now marked reported: each of
    /// soft and hard is reported once.
    pub(crate) fn take_new(&self) -> LifetimeStatus {
        use std::sync::atomic::Ordering::Relaxed;
        let mut state = self.state.load(Relaxed);
        loop {
            let mut report = 0;
            if state & (KIND_MASK << SOFT_SHIFT) != 0 && state & SOFT_REPORTED == 0 {
                report |= SOFT_REPORTED;
            }
            if state & (KIND_MASK << HARD_SHIFT) != 0 && state & HARD_REPORTED == 0 {
                report |= HARD_REPORTED;
            }
            if report == 0 {
                return LifetimeStatus::default();
            }
            match self.state.compare_exchange_weak(state, state | report, Relaxed, Relaxed) {
                Ok(_) => {
                    return LifetimeStatus {
                        soft: if report & SOFT_REPORTED != 0 { first_kind(state >> SOFT_SHIFT) } else { None },
                        hard: if report & HARD_REPORTED != 0 { first_kind(state >> HARD_SHIFT) } else { None },
                    };
                }
                Err(seen) => state = seen,
            }
        }
    }

    /// How long ago the SA was made.
    pub(crate) fn age(&self, now: std::time::Instant) -> Duration {
        now.saturating_duration_since(self.created)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn each_crossing_is_reported_once_and_hard_implies_soft() {
        let life =
            LifeState::new(Lifetime { soft_bytes: Some(100), hard_bytes: Some(200), ..Lifetime::NONE }, Some(1000));
        life.check(Totals { bytes: 99, packets: 0 }, Instant::now);
        assert_eq!(life.take_new(), LifetimeStatus::default());
        life.check(Totals { bytes: 100, packets: 0 }, Instant::now);
        assert_eq!(life.stopped(), None);
        assert_eq!(life.take_new(), LifetimeStatus { soft: Some(LifetimeKind::Bytes), hard: None });
        assert_eq!(life.take_new(), LifetimeStatus::default(), "reported once");
        life.check(Totals { bytes: 250, packets: 1000 }, Instant::now);
        assert_eq!(life.stopped(), Some(LifetimeKind::Bytes));
        assert_eq!(life.take_new(), LifetimeStatus { soft: None, hard: Some(LifetimeKind::Bytes) });
        assert_eq!(life.status(), LifetimeStatus { soft: Some(LifetimeKind::Bytes), hard: Some(LifetimeKind::Bytes) });
        // A hard crossing with nothing soft before it reports both at once.
        let sudden = LifeState::new(Lifetime { hard_packets: Some(5), ..Lifetime::NONE }, None);
        sudden.cross(LifetimeKind::Packets, true);
        let both = Some(LifetimeKind::Packets);
        assert_eq!(sudden.take_new(), LifetimeStatus { soft: both, hard: both });
    }

    #[test]
    fn time_is_read_only_when_a_time_limit_is_set() {
        let life = LifeState::new(Lifetime { hard_bytes: Some(10), ..Lifetime::NONE }, None);
        life.check(Totals::default(), || panic!("the clock was read"));
        let timed = LifeState::new(
            Lifetime {
                soft_time: Some(Duration::from_secs(10)),
                hard_time: Some(Duration::from_secs(20)),
                ..Lifetime::NONE
            },
            None,
        );
        let later = Instant::now() + Duration::from_secs(15);
        timed.check(Totals::default(), || later);
        assert_eq!(timed.status(), LifetimeStatus { soft: Some(LifetimeKind::Time), hard: None });
        timed.check(Totals::default(), || later + Duration::from_secs(5));
        assert_eq!(timed.stopped(), Some(LifetimeKind::Time));
    }

    #[test]
    fn limits_must_be_positive_and_soft_below_hard() {
        assert!(Lifetime::NONE.problem().is_none());
        let zero = Lifetime { hard_packets: Some(0), ..Lifetime::NONE };
        assert!(zero.problem().unwrap().contains("limit of 0"));
        let inverted = Lifetime { soft_bytes: Some(10), hard_bytes: Some(10), ..Lifetime::NONE };
        assert!(inverted.problem().unwrap().contains("soft limit must be below"));
        let soft_only = Lifetime { soft_time: Some(Duration::from_secs(1)), ..Lifetime::NONE };
        assert!(soft_only.problem().is_none());
    }
}
