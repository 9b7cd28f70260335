//! Per-SA counters: one for every outcome, so that rejections can be
//! audited without a log line per packet (which an attacker could use to
//! flood the logs).
//!
//! An SA is used by many threads at once, so its counters are kept in a few
//! shards of atomics, one cache line apart, each thread adding to its own
//! (a counter every thread increments in one place would bounce its cache
//! line between cores on every packet); [`Counters`] is the sum, taken when
//! asked for.

use super::EspError;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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
    /// Tunnel-mode inner fragments carried whose upper-layer checksum cannot
    /// be verified (it covers the reassembled datagram). Also counted in
    /// `packets`.
    pub unverifiable_fragments: u64,
    /// Other failures (invalid arguments, AES-GCM layer errors).
    pub other: u64,
}

/// How many counters [`Counters`] has.
const FIELDS: usize = 22;

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
            &mut self.unverifiable_fragments,
            &mut self.other,
        ]
    }

    /// Count one failed call.
    pub(crate) fn record(&mut self, error: &EspError) {
        let counter = match error {
            EspError::Truncated { .. } => &mut self.truncated,
            EspError::Malformed { .. } => &mut self.malformed,
            EspError::Fragment => &mut self.fragments,
            EspError::UnknownSpi { .. } => &mut self.unknown_spi,
            EspError::Replay { .. } => &mut self.replayed,
            EspError::TooOld { .. } => &mut self.too_old,
            EspError::Auth { .. } => &mut self.auth_failed,
            EspError::BadPadding { .. } => &mut self.bad_padding,
            EspError::ChecksumBeforeEncrypt { .. } => &mut self.checksum_before_encrypt,
            EspError::ChecksumAfterDecrypt { .. } => &mut self.checksum_after_decrypt,
            EspError::UnexpectedNextHeader { .. } => &mut self.unexpected_next_header,
            EspError::SequenceExhausted { .. } => &mut self.sequence_exhausted,
            EspError::Dummy { .. } => &mut self.dummies,
            EspError::NatKeepalive => &mut self.keepalives,
            EspError::NonEsp => &mut self.non_esp,
            EspError::Unsupported(_) => &mut self.unsupported,
            EspError::TooLarge { .. } => &mut self.too_large,
            EspError::PacketTooBig { .. } => &mut self.too_big_for_path,
            EspError::Invalid { .. } | EspError::Crypto(_) | EspError::KeyInUse { .. } => &mut self.other,
        };
        *counter = counter.saturating_add(1);
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
            self.other,
        ]
        .iter()
        .fold(0u64, |a, b| a.saturating_add(*b))
    }
}

/// Shards per SA direction: enough that a handful of worker threads rarely
/// share one.
const SHARDS: usize = 8;

/// One shard: the counters one group of threads adds to, on cache lines of
/// its own.
#[repr(align(128))]
#[derive(Default)]
struct Shard([AtomicU64; FIELDS]);

/// Counters that many threads add to at once.
pub(crate) struct SharedCounters {
    shards: Box<[Shard]>,
}

impl Default for SharedCounters {
    fn default() -> SharedCounters {
        SharedCounters { shards: (0..SHARDS).map(|_| Shard::default()).collect() }
    }
}

impl core::fmt::Debug for SharedCounters {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.snapshot().fmt(f)
    }
}

thread_local! {
    /// This thread's shard, assigned round-robin at first use.
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The next thread's shard.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

fn my_shard() -> usize {
    SHARD
        .try_with(|s| {
            if s.get() == usize::MAX {
                s.set(NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS);
            }
            s.get()
        })
        .unwrap_or(0)
}

impl SharedCounters {
    /// Add every counter of `delta` (a burst's worth, say) to this thread's
    /// shard.
    pub(crate) fn add(&self, delta: &Counters) {
        let mut delta = *delta;
        if let Some(shard) = self.shards.get(my_shard()) {
            for (slot, value) in shard.0.iter().zip(delta.fields_mut()) {
                if *value != 0 {
                    slot.fetch_add(*value, Ordering::Relaxed);
                }
            }
        }
    }

    /// Count one failed call.
    pub(crate) fn record(&self, error: &EspError) {
        let mut delta = Counters::default();
        delta.record(error);
        self.add(&delta);
    }

    /// The sum of every shard.
    pub(crate) fn snapshot(&self) -> Counters {
        let mut total = Counters::default();
        for shard in self.shards.iter() {
            for (sum, slot) in total.fields_mut().into_iter().zip(shard.0.iter()) {
                *sum = sum.saturating_add(slot.load(Ordering::Relaxed));
            }
        }
        total
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

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
