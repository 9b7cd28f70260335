//! Per-SA counters: one for every outcome, so that rejections can be
//! audited without a log line per packet (which an attacker could use to
//! flood the logs).
//!
//! An SA is used by many threads at once, so its counters are kept in a few
//! shards, a cache line apart, each owned by one thread (a counter every
//! thread increments in one place would bounce its cache line between cores
//! on every packet, and a locked increment costs more than the rest of the
//! counting); [`Counters`] is the sum, taken when asked for.

use super::EspError;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// What one direction of an SA has done, by outcome. Counters only grow.
///
/// Outbound SAs use `packets`, `bytes`, the checksum-before-encrypt,
/// sequence-exhausted, malformed/truncated/fragment/unsupported/too-large
/// counters and `dummies` (sent); inbound SAs use the rest.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets sealed or opened successfully.
    pub packets: u64,
    /// Bytes of IP packets handed to `seal` (outbound) or delivered by `open`
    /// (inbound), for successful packets.
    pub bytes: u64,
    /// Packets cut short ([`EspError::Truncated`]).
    pub truncated: u64,
    /// Packets with an impossible header field ([`EspError::Malformed`]).
    pub malformed: u64,
    /// IP fragments refused ([`EspError::Fragment`]).
    pub fragments: u64,
    /// Packets for another SPI ([`EspError::UnknownSpi`]).
    pub unknown_spi: u64,
    /// Duplicates inside the replay window ([`EspError::Replay`]).
    pub replayed: u64,
    /// Sequence numbers below the window ([`EspError::TooOld`]).
    pub too_old: u64,
    /// ICV failures ([`EspError::Auth`]).
    pub auth_failed: u64,
    /// Bad padding after decryption ([`EspError::BadPadding`]).
    pub bad_padding: u64,
    /// Packets refused by `seal` for a wrong checksum
    /// ([`EspError::ChecksumBeforeEncrypt`]).
    pub checksum_before_encrypt: u64,
    /// Decrypted packets with a wrong checksum ([`EspError::ChecksumAfterDecrypt`]).
    pub checksum_after_decrypt: u64,
    /// Decrypted packets whose next header the SA does not deliver
    /// ([`EspError::UnexpectedNextHeader`]).
    pub unexpected_next_header: u64,
    /// `seal` calls refused because the sequence space is used up.
    pub sequence_exhausted: u64,
    /// Dummy packets sent (outbound) or received and dropped (inbound).
    pub dummies: u64,
    /// NAT keepalives received.
    pub keepalives: u64,
    /// Non-ESP (IKE) packets received on the NAT-T port.
    pub non_esp: u64,
    /// Packets this engine cannot handle ([`EspError::Unsupported`]).
    pub unsupported: u64,
    /// Packets too large for their IP length field ([`EspError::TooLarge`]).
    pub too_large: u64,
    /// Packets refused for the path MTU ([`EspError::PacketTooBig`]).
    pub too_big_for_path: u64,
    /// Packets outside the SA's traffic selectors ([`EspError::NotCovered`]).
    pub not_covered: u64,
    /// Tunnel-mode inner fragments carried whose upper-layer checksum cannot
    /// be verified (it covers the reassembled datagram). Also counted in
    /// `packets`.
    pub unverifiable_fragments: u64,
    /// Other failures (invalid arguments, AES-GCM layer errors).
    pub other: u64,
    /// `seal` calls refused at the sequence limit
    /// ([`EspError::SequenceLimit`]).
    pub sequence_limit: u64,
    /// Calls refused because the SA crossed a hard lifetime limit
    /// ([`EspError::LifetimeExpired`]).
    pub lifetime_expired: u64,
}

/// How many counters [`Counters`] has.
const FIELDS: usize = 25;

impl Counters {
    /// Every counter, in one order that [`SharedCounters`] keeps.
    fn fields_mut(&mut self) -> [&mut u64; FIELDS] {
        [
            &mut self.packets,
            &mut self.bytes,
            &mut self.truncated,
            &mut self.malformed,
            &mut self.fragments,
            &mut self.unknown_spi,
            &mut self.replayed,
            &mut self.too_old,
            &mut self.auth_failed,
            &mut self.bad_padding,
            &mut self.checksum_before_encrypt,
            &mut self.checksum_after_decrypt,
            &mut self.unexpected_next_header,
            &mut self.sequence_exhausted,
            &mut self.dummies,
            &mut self.keepalives,
            &mut self.non_esp,
            &mut self.unsupported,
            &mut self.too_large,
            &mut self.too_big_for_path,
            &mut self.not_covered,
            &mut self.unverifiable_fragments,
            &mut self.other,
            &mut self.sequence_limit,
            &mut self.lifetime_expired,
        ]
    }

    /// Count one failed call.
    pub(crate) fn record(&mut self, error: &EspError) {
        let counter = match error {
            EspError::Truncated { .. } => &mut self.truncated,
            EspError::Malformed { .. } => &mut self.malformed,
            EspError::Fragment => &mut self.fragments,
            EspError::UnknownSpi { .. } | EspError::NoSa { .. } => &mut self.unknown_spi,
            EspError::Replay { .. } => &mut self.replayed,
            EspError::TooOld { .. } => &mut self.too_old,
            EspError::Auth { .. } => &mut self.auth_failed,
            EspError::BadPadding { .. } => &mut self.bad_padding,
            EspError::ChecksumBeforeEncrypt { .. } => &mut self.checksum_before_encrypt,
            EspError::ChecksumAfterDecrypt { .. } => &mut self.checksum_after_decrypt,
            EspError::UnexpectedNextHeader { .. } => &mut self.unexpected_next_header,
            EspError::SequenceExhausted { .. } => &mut self.sequence_exhausted,
            EspError::SequenceLimit { .. } => &mut self.sequence_limit,
            EspError::LifetimeExpired { .. } => &mut self.lifetime_expired,
            EspError::Dummy { .. } => &mut self.dummies,
            EspError::NatKeepalive => &mut self.keepalives,
            EspError::NonEsp => &mut self.non_esp,
            EspError::Unsupported(_) => &mut self.unsupported,
            EspError::TooLarge { .. } => &mut self.too_large,
            EspError::PacketTooBig { .. } => &mut self.too_big_for_path,
            EspError::NotCovered { .. } => &mut self.not_covered,
            EspError::Invalid { .. }
            | EspError::Crypto(_)
            | EspError::KeyInUse { .. }
            | EspError::SaExists { .. }
            | EspError::NoSuchSa { .. }
            | EspError::NoSuchPolicy { .. } => &mut self.other,
        };
        *counter = counter.saturating_add(1);
    }

    /// Refuse every packet of `results` with `error`, counting each.
    pub(crate) fn refuse(&mut self, results: &mut [Result<(), EspError>], error: &EspError) {
        for result in results.iter_mut() {
            self.record(error);
            *result = Err(error.clone());
        }
    }

    /// Count one successful packet of `bytes` bytes.
    pub(crate) fn record_packet(&mut self, bytes: usize) {
        self.packets = self.packets.saturating_add(1);
        self.bytes = self.bytes.saturating_add(bytes as u64);
    }

    /// Rejections that may point at an attack or a fault: everything but
    /// successful packets, dummies, keepalives and IKE packets.
    pub fn rejected(&self) -> u64 {
        [
            self.truncated,
            self.malformed,
            self.fragments,
            self.unknown_spi,
            self.replayed,
            self.too_old,
            self.auth_failed,
            self.bad_padding,
            self.checksum_before_encrypt,
            self.checksum_after_decrypt,
            self.unexpected_next_header,
            self.sequence_exhausted,
            self.unsupported,
            self.too_large,
            self.too_big_for_path,
            self.not_covered,
            self.other,
            self.sequence_limit,
            self.lifetime_expired,
        ]
        .iter()
        .fold(0u64, |a, b| a.saturating_add(*b))
    }
}

/// Shards per SA direction that a thread can own, plus one shared by the
/// rest: enough for a worker per core on the machines this runs on.
const SHARDS: usize = 8;

/// One shard: counters on cache lines of their own, and the thread that
/// owns it (0: nobody yet).
#[repr(align(128))]
#[derive(Default)]
struct Shard {
    owner: AtomicU64,
    values: [AtomicU64; FIELDS],
}

/// Counters that many threads add to at once.
///
/// A thread adds to the shard its number picks. The first thread to use a
/// shard owns it for good: only the owner ever writes it, so its additions
/// are a plain load and store, not a locked read-modify-write (which costs
/// more than the rest of counting a packet). Threads whose shard is owned by
/// another add to the shared shard, atomically. Reading sums every shard,
/// so no count is lost either way.
pub(crate) struct SharedCounters {
    /// `SHARDS` ownable shards, then the shared one.
    shards: Box<[Shard]>,
}

impl Default for SharedCounters {
    fn default() -> SharedCounters {
        SharedCounters { shards: (0..=SHARDS).map(|_| Shard::default()).collect() }
    }
}

impl core::fmt::Debug for SharedCounters {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.snapshot().fmt(f)
    }
}

thread_local! {
    /// This thread's number (never 0), assigned at first use.
    static THREAD: Cell<u64> = const { Cell::new(0) };
}

/// The next thread's number.
static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

fn this_thread() -> u64 {
    THREAD
        .try_with(|t| {
            if t.get() == 0 {
                t.set(NEXT_THREAD.fetch_add(1, Ordering::Relaxed));
            }
            t.get()
        })
        .unwrap_or(u64::MAX)
}

impl SharedCounters {
    /// Run `f` on this thread's shard's values, saying whether this thread
    /// owns it (and so may add without a locked instruction).
    #[inline]
    fn with_shard(&self, f: impl FnOnce(&[AtomicU64; FIELDS], bool)) {
        let me = this_thread();
        let mine = self.shards.get((me % SHARDS as u64) as usize);
        let owned = mine.filter(|shard| {
            let owner = shard.owner.load(Ordering::Relaxed);
            owner == me
                || (owner == 0 && shard.owner.compare_exchange(0, me, Ordering::Relaxed, Ordering::Relaxed).is_ok())
        });
        if let Some(shard) = owned.or_else(|| self.shards.get(SHARDS)) {
            f(&shard.values, owned.is_some());
        }
    }

    /// Add every counter of `delta` (a burst's worth, say).
    pub(crate) fn add(&self, delta: &Counters) {
        // Packets and bytes are what a burst of good packets adds; the
        // other 23 counters are walked only when one of them moved (the
        // walk costs more than opening one small packet's headers).
        // Compared where `delta` lies, not copied first: a copy of the
        // whole struct is a `memcpy` whose wide stores the next reads wait
        // for (about 15 ns a call, what a burst of one packet spent here).
        let (packets, bytes) = (delta.packets, delta.bytes);
        let others = *delta != Counters { packets, bytes, ..Counters::default() };
        self.with_shard(|values, owned| {
            let [packets_slot, bytes_slot, ..] = values;
            if packets != 0 {
                add(packets_slot, packets, owned);
            }
            if bytes != 0 {
                add(bytes_slot, bytes, owned);
            }
            if others {
                let mut rest = *delta;
                (rest.packets, rest.bytes) = (0, 0);
                for (slot, value) in values.iter().zip(rest.fields_mut()) {
                    if *value != 0 {
                        add(slot, *value, owned);
                    }
                }
            }
        });
    }

    /// A burst the SA refuses whole: every result set to `error`, each
    /// counted.
    pub(crate) fn refuse_burst(&self, results: &mut [Result<(), EspError>], error: &EspError) {
        let mut tally = Counters::default();
        tally.refuse(results, error);
        self.add(&tally);
    }

    /// Count one failed call.
    pub(crate) fn record(&self, error: &EspError) {
        let mut delta = Counters::default();
        delta.record(error);
        self.add(&delta);
    }

    /// Count one successful packet of `bytes` bytes (and, when
    /// `unverifiable`, an unverifiable fragment): the per-packet path.
    /// Returns the packets this thread's shard has counted, for work done
    /// every so many packets (lifetime checks).
    pub(crate) fn record_packet(&self, bytes: usize, unverifiable: bool) -> u64 {
        let mut count = 0;
        self.with_shard(|values, owned| {
            if let (Some(packets), Some(total)) = (values.get(PACKETS), values.get(BYTES)) {
                count = add(packets, 1, owned);
                add(total, bytes as u64, owned);
            }
            if unverifiable && let Some(slot) = values.get(UNVERIFIABLE) {
                add(slot, 1, owned);
            }
        });
        count
    }

    /// (packets, bytes) over every shard: what lifetime limits compare.
    pub(crate) fn packets_and_bytes(&self) -> (u64, u64) {
        self.shards.iter().fold((0u64, 0u64), |(p, b), shard| {
            let read = |i: usize| shard.values.get(i).map_or(0, |v| v.load(Ordering::Relaxed));
            (p.wrapping_add(read(PACKETS)), b.wrapping_add(read(BYTES)))
        })
    }

    /// The sum of every shard.
    pub(crate) fn snapshot(&self) -> Counters {
        let mut total = Counters::default();
        for shard in self.shards.iter() {
            for (sum, slot) in total.fields_mut().into_iter().zip(shard.values.iter()) {
                *sum = sum.saturating_add(slot.load(Ordering::Relaxed));
            }
        }
        total
    }
}

/// Positions in `Counters::fields_mut` the per-packet path uses.
const PACKETS: usize = 0;
const BYTES: usize = 1;
const UNVERIFIABLE: usize = 21;

/// Add `n` to `slot`: by its owner with a plain load and store (nobody else
/// writes it), otherwise atomically. Returns the new value.
#[inline(always)]
fn add(slot: &AtomicU64, n: u64, owned: bool) -> u64 {
    if owned {
        let value = slot.load(Ordering::Relaxed).wrapping_add(n);
        slot.store(value, Ordering::Relaxed);
        value
    } else {
        slot.fetch_add(n, Ordering::Relaxed).wrapping_add(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_packet_path_adds_to_the_right_counters() {
        let shared = SharedCounters::default();
        shared.record_packet(100, false);
        shared.record_packet(60, true);
        let c = shared.snapshot();
        assert_eq!((c.packets, c.bytes, c.unverifiable_fragments, c.rejected()), (2, 160, 1, 0));
    }

    #[test]
    fn counts_from_many_threads_add_up() {
        let shared = std::sync::Arc::new(SharedCounters::default());
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let mut packet = Counters::default();
                    packet.record_packet(100);
                    for _ in 0..1000 {
                        shared.add(&packet);
                        shared.record(&EspError::Replay { seq: 1 });
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let c = shared.snapshot();
        assert_eq!((c.packets, c.bytes, c.replayed, c.rejected()), (6000, 600_000, 6000, 6000));
    }
}
