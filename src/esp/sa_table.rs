//! The SA database and the security policy database (RFC 4301 §4.4): which
//! inbound SA a received packet belongs to, what to do with a packet to be
//! sent, and the calls a key manager (an IKE daemon, a control socket, a
//! manual-keying file) drives them with.
//!
//! - **Inbound (SAD):** SAs are found by SPI, and where configured by SPI and
//!   destination, or SPI, destination and source (the three lookups RFC 4301
//!   §4.1 allows; the most specific entry that matches wins), so that two
//!   peers may pick the same SPI. (SPI and source alone is allowed too, and
//!   ranks between SPI alone and SPI and destination.)
//! - **Outbound (SPD):** an ordered list of policies, each a set of
//!   selectors and an action: protect with an SA, bypass (send in the clear)
//!   or discard. The first policy whose selectors cover the packet decides.
//!   Outbound SAs are also kept by SPI (and, optionally, the peer's
//!   address), so that they can be queried, updated and deleted.
//!
//! # Concurrency
//!
//! The packet path reads a snapshot of the tables through `arc-swap` and
//! takes no lock: [`SaTable::open_burst`] and [`SaTable::snapshot`] load it
//! once per burst, and a packet in flight keeps the SA it found even if
//! that SA is removed meanwhile. [`SaTable::open`], for one packet, keeps
//! the inbound half of the tables on its thread between calls and checks
//! with one load that it is still current (see its docs for what that
//! keeps alive). A change (add, delete, update) is made
//! under a lock that only changes take, on a copy, and published in one
//! store. The inbound SAs are split into [`SHARDS`] shards by SPI, each
//! shared between snapshots until it changes, so a change copies one shard
//! (about 160 entries at 10,000 SAs) and the shard list, not the whole
//! table; and when a packet thread happens to hold the last reference to a
//! replaced snapshot, freeing it drops one shard, not the table. (Replaced
//! policies and outbound SAs are not kept around any longer than readers
//! hold them: a deleted outbound SA must let go of its key at once, so that
//! the same keys can be installed again, one live sender per key. The
//! inbound half a change replaced is held by the table until its next
//! change or poll, so that the packet threads that kept it do not free it.)

use super::inbound::find_esp_v6;
use super::natt::{self, UdpPayload};
use super::packet_buf::{PacketBuf, PacketBuffer};
use super::selector::{self, Selector};
use super::wire::EspPacket;
use super::{Counters, Encap, EspError, Field, Inbound, LifetimeKind, LifetimeStatus, Mode, Outbound, SaConfig};
use crate::esp::counters::SharedCounters;
use crate::net::ip::{Datagram, IpHeader};
use crate::net::{UdpPacket, protocol};
use arc_swap::ArcSwap;
use core::fmt;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// A value for [`SaTable`]'s `generation` that no table has had: tables
/// are told apart by it, so a new table at a freed table's address is not
/// taken for it.
fn next_generation() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The SAD a thread last opened a packet through with [`SaTable::open`],
/// and the table generation it was current for.
struct KeptSad {
    generation: u64,
    sad: Arc<Sad>,
    /// The SA of an SPI this thread saw twice in a row, when `sad` gives
    /// every packet with that SPI to it (one entry, kept under no
    /// addresses): consecutive packets for it skip the lookup. Valid as
    /// long as `sad` is, and dropped with it.
    last: Option<(u32, Arc<Inbound>)>,
    /// The SPI of the previous packet (0, which no ESP packet carries, for
    /// none). `last` is only taken on the second packet of a run, so that
    /// traffic that alternates between SAs never pays a reference count.
    previous_spi: u32,
}

impl KeptSad {
    fn new(generation: u64, sad: Arc<Sad>) -> KeptSad {
        KeptSad { generation, sad, last: None, previous_spi: 0 }
    }
}

thread_local! {
    /// One per thread, for the table it last used: a thread that opens
    /// through one table finds it current with one load and a comparison,
    /// where a snapshot costs two locked operations (arc-swap's debt slot,
    /// taken and paid back).
    static KEPT_SAD: Cell<Option<Box<KeptSad>>> = const { Cell::new(None) };
}

/// How many shards the inbound SAs are split into (by SPI).
pub const SHARDS: usize = 64;

/// What the SPD says about a packet to be sent.
#[derive(Clone, Debug)]
pub enum Action {
    /// Seal it with this SA.
    Protect(Arc<Outbound>),
    /// Send it as it is.
    Bypass,
    /// Drop it.
    Discard,
}

/// One SPD entry: what to do with packets its selectors cover (no
/// selectors: every packet, for a last, catch-all entry).
#[derive(Clone, Debug)]
pub struct Policy {
    /// The traffic the policy is for (a packet matches if one selector
    /// covers it, from this end's point of view: source in `local`).
    pub selectors: Vec<Selector>,
    /// What to do with it.
    pub action: Action,
}

/// The name the table gives a policy when it is added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyId(u64);

impl PolicyId {
    /// The number behind the id (unique in its table, never reused).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "policy {}", self.0)
    }
}

/// Which way an SA carries traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Received packets: [`Inbound`].
    Inbound,
    /// Packets to send: [`Outbound`].
    Outbound,
}

/// How the table names an SA: its direction, its SPI and the addresses it
/// is kept under.
///
/// For an inbound SA, `dst` and `src` are the outer addresses a received
/// packet must carry for the SA to be found by them (`None`: any; the most
/// specific entry wins). For an outbound SA they only tell apart SAs whose
/// SPIs two peers happened to choose alike (give the peer's address as
/// `dst`); packets find outbound SAs through policies.
///
/// ```
/// use espgcm::esp::{Direction, SaKey};
///
/// let key = SaKey::inbound(0x1001).with_dst("192.0.2.1".parse()?);
/// assert_eq!((key.direction, key.spi, key.src), (Direction::Inbound, 0x1001, None));
/// assert_eq!(key.to_string(), "inbound SA 0x00001001 (dst 192.0.2.1)");
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SaKey {
    /// Inbound or outbound.
    pub direction: Direction,
    /// The SPI.
    pub spi: u32,
    /// The destination address it is kept under (`None`: any).
    pub dst: Option<IpAddr>,
    /// The source address it is kept under (`None`: any).
    pub src: Option<IpAddr>,
}

impl SaKey {
    /// An inbound SA found by SPI alone.
    pub fn inbound(spi: u32) -> SaKey {
        SaKey { direction: Direction::Inbound, spi, dst: None, src: None }
    }

    /// An outbound SA kept by SPI alone.
    pub fn outbound(spi: u32) -> SaKey {
        SaKey { direction: Direction::Outbound, spi, dst: None, src: None }
    }

    /// The same key with a destination address.
    pub fn with_dst(self, dst: IpAddr) -> SaKey {
        SaKey { dst: Some(dst), ..self }
    }

    /// The same key with a source address.
    pub fn with_src(self, src: IpAddr) -> SaKey {
        SaKey { src: Some(src), ..self }
    }
}

impl fmt::Display for SaKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let direction = match self.direction {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        };
        write!(f, "{direction} SA {:#010x}", self.spi)?;
        match (self.dst, self.src) {
            (None, None) => Ok(()),
            (Some(d), None) => write!(f, " (dst {d})"),
            (None, Some(s)) => write!(f, " (src {s})"),
            (Some(d), Some(s)) => write!(f, " (dst {d}, src {s})"),
        }
    }
}

/// An SA of either direction, as the table hands it out.
#[derive(Clone, Debug)]
pub enum SaHandle {
    /// A receiving SA.
    Inbound(Arc<Inbound>),
    /// A sending SA.
    Outbound(Arc<Outbound>),
}

/// What [`SaTable::query`] reports about an SA.
#[derive(Clone, Debug)]
pub struct SaInfo {
    /// The SA's key in the table.
    pub key: SaKey,
    /// Its configuration, without key material (wiped when the SA was
    /// made), with the outer addresses and ports it uses now (after any
    /// NAT rebinding).
    pub config: SaConfig,
    /// Its counters.
    pub counters: Counters,
    /// Outbound: the sequence number the next packet will carry (`None`
    /// when the space is used up).
    pub next_sequence: Option<u64>,
    /// Outbound: the [sequence limit](Outbound::set_sequence_limit), if set.
    pub sequence_limit: Option<u64>,
    /// Inbound: the highest sequence number received (0: none yet).
    pub replay_top: Option<u64>,
    /// The lifetime limits crossed so far.
    pub lifetime: LifetimeStatus,
    /// How long ago the SA was made.
    pub age: Duration,
}

/// A change to an installed SA ([`SaTable::update`]); fields left `None`
/// stay as they are.
#[derive(Clone, Debug, Default)]
pub struct SaUpdate {
    /// Outbound: the outer tunnel addresses and UDP ports to send with
    /// from now on (the peer's NAT mapping changed, RFC 3948), as
    /// [`Outbound::set_endpoints`] takes them. Sequence numbers and
    /// counters are untouched.
    pub endpoints: Option<(Mode, Encap)>,
    /// Inbound: the (destination, source) the SA is found by from now on
    /// (its key changes with them). Its replay window and counters are
    /// untouched.
    pub lookup: Option<(Option<IpAddr>, Option<IpAddr>)>,
}

/// Something [`SaTable::poll`] reports, once each.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SaEvent {
    /// The SA crossed a soft lifetime limit: re-key it.
    SoftLifetime {
        /// The SA.
        key: SaKey,
        /// Which limit.
        which: LifetimeKind,
    },
    /// The SA crossed a hard lifetime limit and is stopped: delete it (it
    /// refuses every packet meanwhile).
    HardLifetime {
        /// The SA.
        key: SaKey,
        /// Which limit.
        which: LifetimeKind,
    },
    /// An inbound SA given to [`SaTable::retire_inbound`] was removed.
    Retired {
        /// The SA.
        key: SaKey,
    },
}

/// Where an SPI's probe starts in a shard of `mask + 1` places: one
/// multiplication, folded. SPIs in the table are chosen by this end (random,
/// or by the administrator), never by a sender, so a keyed hash buys
/// nothing; a lookup with a hostile SPI only probes. (The shard was picked
/// by the product's top bits; these are its folded middle ones.)
#[inline]
fn place_of(spi: u32, mask: usize) -> usize {
    let product = u64::from(spi).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ((product ^ (product >> 29)) >> 16) as usize & mask
}

/// The shard an SPI's inbound SAs live in.
#[inline]
fn shard_of(spi: u32) -> usize {
    (spi.wrapping_mul(0x9e37_79b1) >> (32 - SHARDS.trailing_zeros())) as usize
}

/// An inbound SA and the addresses it is looked up by.
#[derive(Clone, Debug)]
struct InboundEntry {
    sa: Arc<Inbound>,
    /// The destination and source it is kept under, when it is kept under
    /// either (few are): behind a pointer, so that an entry is two words
    /// and a shard's places stay small.
    addresses: Option<Arc<(Option<IpAddr>, Option<IpAddr>)>>,
}

impl InboundEntry {
    fn new(sa: Arc<Inbound>, dst: Option<IpAddr>, src: Option<IpAddr>) -> InboundEntry {
        InboundEntry { sa, addresses: (dst.is_some() || src.is_some()).then(|| Arc::new((dst, src))) }
    }

    /// The destination it is kept under.
    fn dst(&self) -> Option<IpAddr> {
        self.addresses.as_deref().and_then(|(dst, _)| *dst)
    }

    /// The source it is kept under.
    fn src(&self) -> Option<IpAddr> {
        self.addresses.as_deref().and_then(|(_, src)| *src)
    }

    /// Whether it is kept under no addresses: every packet with its SPI
    /// belongs to it.
    fn anywhere(&self) -> bool {
        self.addresses.is_none()
    }

    /// Whether it is kept under exactly these addresses.
    fn kept_under(&self, dst: Option<IpAddr>, src: Option<IpAddr>) -> bool {
        (self.dst(), self.src()) == (dst, src)
    }

    /// How specific the entry is, if it matches the packet's addresses, in
    /// RFC 4301 §4.4.2's order (SPI, destination and source; SPI and
    /// destination; SPI alone), with SPI and source (this table's addition)
    /// between the last two.
    fn matches(&self, dst: IpAddr, src: IpAddr) -> Option<u8> {
        match (self.dst(), self.src()) {
            (None, None) => Some(0),
            (None, Some(s)) => (s == src).then_some(1),
            (Some(d), None) => (d == dst).then_some(2),
            (Some(d), Some(s)) => (d == dst && s == src).then_some(3),
        }
    }

    fn key(&self) -> SaKey {
        SaKey { direction: Direction::Inbound, spi: self.sa.config().spi, dst: self.dst(), src: self.src() }
    }
}

/// The entries of one SPI: usually one, kept in the map itself (one
/// pointer fewer to follow on the packet path).
#[derive(Clone, Debug)]
enum Slot {
    One(InboundEntry),
    Many(Arc<[InboundEntry]>),
}

impl Slot {
    fn entries(&self) -> &[InboundEntry] {
        match self {
            Slot::One(entry) => core::slice::from_ref(entry),
            Slot::Many(list) => list,
        }
    }
}

/// One shard of the SAD: the entries of each SPI, in an open-addressing
/// table (linear probing, under three quarters full) that a change
/// rebuilds whole (it copies the shard anyway, so the snapshot it replaces
/// is untouched).
///
/// The places sit in the allocation the snapshot's shard pointer points
/// at, and the pointer carries their count: a lookup reads the pointer and
/// then the place, where a general hash map's header and control bytes
/// were two dependent loads more on every packet.
#[derive(Clone, Debug)]
struct Shard {
    /// A power of two of places, each empty or an SPI and its entries.
    places: Arc<[Option<(u32, Slot)>]>,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard::arrange(&[], |_| None)
    }
}

impl Shard {
    /// The fewest places a shard has.
    const MIN_PLACES: usize = 8;

    /// A shard of `spis` (distinct), the `i`th one's entries given by
    /// `take(i)`, once. The places are worked out first and the shard then
    /// written in one pass, in place: building it a place at a time moved
    /// each entry through the stack, and the copies stalled.
    fn arrange(spis: &[u32], mut take: impl FnMut(usize) -> Option<(u32, Slot)>) -> Shard {
        let count = (spis.len() * 4 / 3 + 1).next_power_of_two().max(Shard::MIN_PLACES);
        let mask = count - 1;
        // Which of `spis` each place holds.
        let mut holds: Vec<Option<usize>> = vec![None; count];
        for (i, &spi) in spis.iter().enumerate() {
            let mut at = place_of(spi, mask);
            // Under three quarters full: a free place is always found.
            while holds.get(at).is_some_and(Option::is_some) {
                at = (at + 1) & mask;
            }
            if let Some(place) = holds.get_mut(at) {
                *place = Some(i);
            }
        }
        Shard { places: holds.iter().map(|held| held.and_then(&mut take)).collect() }
    }

    /// The entries of an SPI.
    #[inline]
    fn get(&self, spi: u32) -> Option<&Slot> {
        let mask = self.places.len().wrapping_sub(1);
        let mut at = place_of(spi, mask);
        // Bounded by the count of places, though an empty place always
        // comes first (the shard is under three quarters full).
        for _ in 0..self.places.len() {
            match self.places.get(at)? {
                Some((found, slot)) if *found == spi => return Some(slot),
                Some(_) => at = (at + 1) & mask,
                None => return None,
            }
        }
        None
    }

    /// Every SPI's entries.
    fn slots(&self) -> impl Iterator<Item = &(u32, Slot)> {
        self.places.iter().flatten()
    }

    /// This shard with `spi`'s entries replaced by `slot` (or removed).
    fn with(&self, spi: u32, slot: Option<Slot>) -> Shard {
        let kept: Vec<&(u32, Slot)> = self.slots().filter(|(other, _)| *other != spi).collect();
        let mut spis: Vec<u32> = kept.iter().map(|(spi, _)| *spi).collect();
        spis.extend(slot.is_some().then_some(spi));
        let mut slot = slot;
        Shard::arrange(&spis, |i| match kept.get(i) {
            Some(&kept) => Some(kept.clone()),
            None => slot.take().map(|slot| (spi, slot)),
        })
    }
}

/// A policy and its id.
#[derive(Debug)]
struct PolicyEntry {
    id: PolicyId,
    policy: Policy,
}

/// The inbound half of the tables (the SAD): what a received packet is
/// looked up in. Its shards are shared by every snapshot until an SA of
/// theirs changes; the array of them sits in the snapshot itself, one
/// dependent load less on every lookup than behind a pointer of its own
/// (a policy change copies the [`SHARDS`] pointers).
#[derive(Clone, Debug)]
struct Sad {
    shards: [Shard; SHARDS],
}

impl Sad {
    fn entries(&self, spi: u32) -> &[InboundEntry] {
        self.shards.get(shard_of(spi)).and_then(|shard| shard.get(spi)).map_or(&[], Slot::entries)
    }

    /// The most specific inbound SA for (SPI, destination, source).
    #[inline]
    fn inbound_for(&self, spi: u32, src: IpAddr, dst: IpAddr) -> Option<&Arc<Inbound>> {
        let entries = self.entries(spi);
        if let [only] = entries {
            // The common case: one SA per SPI.
            return only.matches(dst, src).map(|_| &only.sa);
        }
        entries
            .iter()
            .filter_map(|e| e.matches(dst, src).map(|rank| (rank, e)))
            .max_by_key(|(rank, _)| *rank)
            .map(|(_, e)| &e.sa)
    }

    /// The SA of a packet whose SPI and outer addresses [`esp_header_v4`]
    /// read, among `entries`, its SPI's entries: the only one when it is
    /// kept under no addresses (every packet with the SPI belongs to it),
    /// else the most specific that matches.
    #[inline]
    fn pick_v4<'s>(&'s self, entries: &'s [InboundEntry], found: &EspAddresses<'_>) -> Option<&'s Arc<Inbound>> {
        if let [only] = entries
            && only.anywhere()
        {
            return Some(&only.sa);
        }
        self.inbound_for(found.spi, address(found.src)?, address(found.dst)?)
    }

    /// The SA of a received IP packet, with the packet's SPI.
    #[inline]
    fn lookup(&self, ip_packet: &[u8]) -> Result<(u32, &Arc<Inbound>), EspError> {
        if let Some(found) = esp_header_v4(ip_packet) {
            let spi = found.spi;
            return self.pick_v4(self.entries(spi), &found).map(|sa| (spi, sa)).ok_or(EspError::NoSa { spi });
        }
        let (spi, src, dst) = esp_header(ip_packet)?;
        self.inbound_for(spi, src, dst).map(|sa| (spi, sa)).ok_or(EspError::NoSa { spi })
    }

    /// The entry with exactly this key.
    fn exact(&self, spi: u32, dst: Option<IpAddr>, src: Option<IpAddr>) -> Option<&InboundEntry> {
        self.entries(spi).iter().find(|e| e.kept_under(dst, src))
    }

    fn inbound_entries(&self) -> impl Iterator<Item = &InboundEntry> {
        self.shards.iter().flat_map(|shard| shard.slots().flat_map(|(_, slot)| slot.entries()))
    }

    /// Open a burst of received packets, each with its own SA found here:
    /// each run of packets for one SA is opened as a burst of that SA.
    /// Packets no SA is found for get the lookup's error, counted in
    /// `counters`.
    fn open_burst_in<B: PacketBuffer>(
        &self,
        counters: &SharedCounters,
        pkts: &mut [B],
        results: &mut [Result<(), EspError>],
    ) {
        /// Packets looked up together before any is opened: their lookups
        /// are independent, so the processor overlaps their cache misses.
        const AHEAD: usize = 32;
        let n = pkts.len().min(results.len());
        let mut misses = Counters::default();
        let mut start = 0;
        while start < n {
            let end = (start + AHEAD).min(n);
            // 1. Find every packet's SA, in three passes, so that the hash
            // probes (each a chain of dependent loads that may miss the
            // cache: the shard pointer, then the place) sit in a short loop of
            // their own, where the processor overlaps many: with 32 packets
            // for 32 SAs among 10,000, parsing and probing in one loop added
            // about 25 ns per packet to opening, these passes about 12.
            // a. The SPI, read from the common header (IPv4 without options,
            // ESP or ESP in UDP).
            let mut spis: [Option<u32>; AHEAD] = [None; AHEAD];
            let mut runs = 0;
            let mut previous = None;
            for (spi, pkt) in spis.iter_mut().zip(pkts.get(start..end).unwrap_or_default()) {
                *spi = esp_header_v4(pkt.data()).map(|h| h.spi);
                runs += usize::from(*spi != previous || spi.is_none());
                previous = *spi;
            }
            // b. The SA of every packet whose SPI has one entry kept under
            // no addresses (the usual case): every packet with that SPI
            // belongs to it. A packet with the SPI of the one before reuses
            // its probe (a burst is mostly runs of one SA).
            let mut found: [Option<&Arc<Inbound>>; AHEAD] = [None; AHEAD];
            let mut before: Option<(u32, &[InboundEntry])> = None;
            if runs == 1
                && let Some(spi) = previous
                && let [only] = self.entries(spi)
                && only.anywhere()
            {
                // One SPI throughout, of one SA: the whole chunk is its.
                found.iter_mut().take(end - start).for_each(|slot| *slot = Some(&only.sa));
            }
            for (slot, spi) in found.iter_mut().zip(&spis).filter(|(slot, _)| slot.is_none()) {
                if let Some(spi) = *spi {
                    let entries = match before {
                        Some((same, entries)) if same == spi => entries,
                        _ => self.entries(spi),
                    };
                    before = Some((spi, entries));
                    if let [only] = entries
                        && only.anywhere()
                    {
                        *slot = Some(&only.sa);
                    }
                }
            }
            // c. Everything else (SAs kept under addresses, other headers,
            // unknown SPIs): the full lookup, and a packet it finds no SA
            // for gets its error.
            for (i, slot) in found.iter_mut().enumerate().take(end - start).filter(|(_, slot)| slot.is_none()) {
                let at = start + i;
                if let (Some(pkt), Some(result)) = (pkts.get(at), results.get_mut(at)) {
                    match self.lookup(pkt.data()) {
                        Ok((_, sa)) => *slot = Some(sa),
                        Err(e) => {
                            misses.record(&e);
                            *result = Err(e);
                        }
                    }
                }
            }
            // 2. Open each run of packets for one SA as a burst of that SA.
            let mut i = start;
            while i < end {
                let Some(sa) = found.get(i - start).copied().flatten() else {
                    // No SA: its error is set (c).
                    i += 1;
                    continue;
                };
                let mut j = i + 1;
                while j < end && found.get(j - start).copied().flatten().is_some_and(|next| Arc::ptr_eq(next, sa)) {
                    j += 1;
                }
                if let (Some(run), Some(run_results)) = (pkts.get_mut(i..j), results.get_mut(i..j)) {
                    sa.open_burst_in(run, run_results);
                }
                i = j;
            }
            start = end;
        }
        if misses != Counters::default() {
            counters.add(&misses);
        }
    }
}

/// What the packet path reads: one snapshot.
#[derive(Debug)]
struct Tables {
    /// Behind a pointer of its own so that a packet thread can keep it
    /// between calls ([`SaTable::open`]) without keeping the policies, and
    /// with them the outbound SAs and their key claims.
    inbound: Arc<Sad>,
    policies: Arc<[Arc<PolicyEntry>]>,
}

impl Tables {
    fn empty() -> Tables {
        Tables {
            inbound: Arc::new(Sad { shards: core::array::from_fn(|_| Shard::default()) }),
            policies: Arc::from([]),
        }
    }

    fn entries(&self, spi: u32) -> &[InboundEntry] {
        self.inbound.entries(spi)
    }

    /// The entry with exactly this key.
    fn exact(&self, spi: u32, dst: Option<IpAddr>, src: Option<IpAddr>) -> Option<&InboundEntry> {
        self.inbound.exact(spi, dst, src)
    }

    fn inbound_entries(&self) -> impl Iterator<Item = &InboundEntry> {
        self.inbound.inbound_entries()
    }

    fn outbound_for(&self, ip_packet: &[u8]) -> Result<Option<&Action>, EspError> {
        let d = Datagram::parse(ip_packet)?;
        let datagram = d.ip.datagram(ip_packet);
        let (addrs, proto, ports) = selector::flow(&d, datagram);
        Ok(self
            .policies
            .iter()
            .find(|p| selector::covered(&p.policy.selectors, false, addrs, proto, ports))
            .map(|p| &p.policy.action))
    }

    /// These tables with `spi`'s entries replaced by `entries`.
    fn with_entries(&self, spi: u32, entries: Vec<InboundEntry>) -> Tables {
        let mut shards = self.inbound.shards.clone();
        if let Some(shard) = shards.get_mut(shard_of(spi)) {
            let slot = match <[InboundEntry; 1]>::try_from(entries) {
                Ok([one]) => Some(Slot::One(one)),
                Err(entries) if entries.is_empty() => None,
                Err(entries) => Some(Slot::Many(Arc::from(entries))),
            };
            *shard = shard.with(spi, slot);
        }
        Tables { inbound: Arc::new(Sad { shards }), policies: self.policies.clone() }
    }

    fn with_policies(&self, policies: Vec<Arc<PolicyEntry>>) -> Tables {
        Tables { inbound: self.inbound.clone(), policies: Arc::from(policies) }
    }
}

/// What only changes and queries use, under the writers' lock.
#[derive(Debug, Default)]
struct Registry {
    outbound: HashMap<(u32, Option<IpAddr>, Option<IpAddr>), Arc<Outbound>>,
    next_policy: u64,
    /// SPIs handed out by `fresh_spi` and not yet installed.
    reserved: HashSet<u32>,
    /// Inbound SAs to remove, and when.
    retiring: Vec<(SaKey, Instant)>,
    /// The SAD the last change replaced, freed by the next change or poll
    /// rather than by a packet thread (see [`SaTable::publish`]).
    replaced_sad: Option<Arc<Sad>>,
}

/// The SAD and SPD of a data plane, driven like a kernel's by a key
/// manager.
///
/// The calls an IKE daemon's kernel interface makes are here:
/// [`fresh_spi`](Self::fresh_spi), [`add_inbound`](Self::add_inbound) /
/// [`add_outbound`](Self::add_outbound), [`update`](Self::update),
/// [`delete`](Self::delete), [`query`](Self::query),
/// [`add_policy`](Self::add_policy) / [`delete_policy`](Self::delete_policy),
/// [`flush`](Self::flush); for re-keying,
/// [`replace_outbound`](Self::replace_outbound) and
/// [`retire_inbound`](Self::retire_inbound); and [`poll`](Self::poll)
/// reports lifetime events. The packet path uses
/// [`open_burst`](Self::open_burst) (or [`snapshot`](Self::snapshot)) on
/// the way in and [`outbound_for`](Self::outbound_for) on the way out.
///
/// ```
/// use espgcm::esp::{Action, Inbound, Outbound, Policy, SaConfig, SaKey, SaTable, Selector};
///
/// let table = SaTable::new();
/// // Inbound: this end picks the SPI.
/// let spi = table.fresh_spi()?;
/// let rx = table.add_inbound(Inbound::new(SaConfig::new(spi, &[0x31u8; 20]))?, None, None)?;
/// assert_eq!(rx.config().spi, spi);
/// // Outbound: the peer picked the SPI; a policy sends 10.1/16 -> 10.2/16 through it.
/// let tx = table.add_outbound(Outbound::new(SaConfig::new(0x7002, &[0x32u8; 20]))?, None)?;
/// let to_peer = Selector::between(("10.1.0.0".parse()?, 16), ("10.2.0.0".parse()?, 16));
/// let id = table.add_policy(Policy { selectors: vec![to_peer], action: Action::Protect(tx) });
/// assert_eq!((table.inbound_len(), table.outbound_len(), table.policies().len()), (1, 1, 1));
/// assert_eq!(table.query(SaKey::outbound(0x7002))?.next_sequence, Some(1));
/// table.delete_policy(id)?;
/// table.flush();
/// assert_eq!(table.inbound_len() + table.outbound_len(), 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SaTable {
    tables: ArcSwap<Tables>,
    /// Which tables are current: a value no other table and no earlier
    /// state of this one had (see [`next_generation`]), stored after each
    /// publish, so that a packet thread's kept SAD ([`SaTable::open`]) is
    /// known to be current with one plain load.
    generation: AtomicU64,
    registry: Mutex<Registry>,
    /// Received packets no SA could be found for, by outcome.
    counters: SharedCounters,
}

impl Default for SaTable {
    fn default() -> SaTable {
        SaTable::new()
    }
}

impl SaTable {
    /// An empty table: no SA, no policy.
    pub fn new() -> SaTable {
        SaTable {
            tables: ArcSwap::from_pointee(Tables::empty()),
            generation: AtomicU64::new(next_generation()),
            registry: Mutex::new(Registry::default()),
            counters: SharedCounters::default(),
        }
    }

    /// The writers' lock. A panic while it was held cannot leave the tables
    /// half changed (they are replaced in one store), so a poisoned lock is
    /// taken as it is.
    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publish `tables` (under the writers' lock, which `_registry`
    /// proves is held).
    fn publish(&self, registry: &mut Registry, tables: Tables) {
        let replaced = self.tables.swap(Arc::new(tables));
        // After the swap: a reader that sees the new value loads the new
        // tables (or later ones) when it finds its kept SAD stale.
        self.generation.store(next_generation(), Ordering::Release);
        // Packet threads keep the SAD they last used (`open`), so they
        // would mostly hold the last reference to the one replaced here,
        // and free it (a shard's places and the SAs deleted with it, a few
        // microseconds) on the packet path at their next call. The table
        // holds it instead until the next change, or a poll that finds no
        // thread holding it, and frees it there; the one replaced before is
        // freed now (unless a thread still keeps it).
        registry.replaced_sad = Some(Arc::clone(&replaced.inbound));
        drop(replaced);
    }

    /// Free the SAD the last change replaced if no packet thread keeps it
    /// any longer (see [`publish`](Self::publish)).
    fn free_replaced(registry: &mut Registry) {
        if registry.replaced_sad.as_ref().is_some_and(|sad| Arc::strong_count(sad) == 1) {
            registry.replaced_sad = None;
        }
    }

    /// A random SPI (256 or above) that no inbound SA in the table uses and
    /// that no earlier call handed out: the SPI an IKE daemon proposes for
    /// an inbound SA (strongSwan's `get_spi`). It stays reserved until an
    /// inbound SA with it is added, [`release_spi`](Self::release_spi) or
    /// [`flush`](Self::flush).
    ///
    /// # Errors
    /// [`EspError::Invalid`] if no free SPI was found (only when billions
    /// are in use).
    pub fn fresh_spi(&self) -> Result<u32, EspError> {
        let mut registry = self.registry();
        let tables = self.tables.load();
        for _ in 0..1000 {
            let spi = crate::rng::random() as u32;
            if spi >= 256 && tables.entries(spi).is_empty() && !registry.reserved.contains(&spi) {
                registry.reserved.insert(spi);
                return Ok(spi);
            }
        }
        Err(EspError::Invalid { parameter: "spi", reason: "no free SPI was found: the table holds too many" })
    }

    /// Give back an SPI from [`fresh_spi`](Self::fresh_spi) that will not be
    /// used (the negotiation failed).
    pub fn release_spi(&self, spi: u32) {
        self.registry().reserved.remove(&spi);
    }

    /// Install an inbound SA, found by its SPI and, when given, the
    /// packet's destination (and source); returns the shared handle.
    ///
    /// # Errors
    /// [`EspError::SaExists`] if an SA with the same SPI and addresses is
    /// already installed.
    pub fn add_inbound(&self, sa: Inbound, dst: Option<IpAddr>, src: Option<IpAddr>) -> Result<Arc<Inbound>, EspError> {
        let spi = sa.config().spi;
        let entry = InboundEntry::new(Arc::new(sa), dst, src);
        let mut registry = self.registry();
        let tables = self.tables.load_full();
        if tables.exact(spi, dst, src).is_some() {
            return Err(EspError::SaExists { key: entry.key() });
        }
        let mut entries = tables.entries(spi).to_vec();
        entries.push(entry.clone());
        let changed = tables.with_entries(spi, entries);
        registry.reserved.remove(&spi);
        self.publish(&mut registry, changed);
        Ok(entry.sa)
    }

    /// Install an outbound SA, kept by its SPI and, when given, the peer's
    /// address (to tell apart SAs whose SPIs two peers chose alike); returns
    /// the shared handle for policies to protect with.
    ///
    /// # Errors
    /// [`EspError::SaExists`] if an outbound SA with the same SPI and
    /// address is installed.
    pub fn add_outbound(&self, sa: Outbound, dst: Option<IpAddr>) -> Result<Arc<Outbound>, EspError> {
        let key = SaKey { direction: Direction::Outbound, spi: sa.config().spi, dst, src: None };
        let mut registry = self.registry();
        if registry.outbound.contains_key(&(key.spi, dst, None)) {
            return Err(EspError::SaExists { key });
        }
        let sa = Arc::new(sa);
        registry.outbound.insert((key.spi, dst, None), sa.clone());
        Ok(sa)
    }

    /// The inbound SA with exactly this key.
    pub fn inbound(&self, key: SaKey) -> Option<Arc<Inbound>> {
        if key.direction != Direction::Inbound {
            return None;
        }
        self.tables.load().exact(key.spi, key.dst, key.src).map(|e| e.sa.clone())
    }

    /// The outbound SA with exactly this key.
    pub fn outbound(&self, key: SaKey) -> Option<Arc<Outbound>> {
        if key.direction != Direction::Outbound {
            return None;
        }
        self.registry().outbound.get(&(key.spi, key.dst, key.src)).cloned()
    }

    /// The keys of every SA installed, inbound first.
    pub fn keys(&self) -> Vec<SaKey> {
        let mut keys: Vec<SaKey> = self.tables.load().inbound_entries().map(InboundEntry::key).collect();
        let registry = self.registry();
        keys.extend(registry.outbound.keys().map(|&(spi, dst, src)| SaKey {
            direction: Direction::Outbound,
            spi,
            dst,
            src,
        }));
        keys
    }

    /// What an SA is and how it is doing: configuration (no key material),
    /// counters, sequence numbers, lifetime.
    ///
    /// # Errors
    /// [`EspError::NoSuchSa`] if no SA has this key.
    pub fn query(&self, key: SaKey) -> Result<SaInfo, EspError> {
        match key.direction {
            Direction::Inbound => {
                let sa = self.inbound(key).ok_or(EspError::NoSuchSa { key })?;
                Ok(SaInfo {
                    key,
                    config: sa.config().clone(),
                    counters: sa.stats(),
                    next_sequence: None,
                    sequence_limit: None,
                    replay_top: Some(sa.replay_window().top()),
                    lifetime: sa.lifetime(),
                    age: sa.age(),
                })
            }
            Direction::Outbound => {
                let sa = self.outbound(key).ok_or(EspError::NoSuchSa { key })?;
                let (mode, encap) = sa.endpoints();
                Ok(SaInfo {
                    key,
                    config: SaConfig { mode, encap, ..sa.config().clone() },
                    counters: sa.stats(),
                    next_sequence: sa.next_sequence(),
                    sequence_limit: sa.sequence_limit(),
                    replay_top: None,
                    lifetime: sa.lifetime(),
                    age: sa.age(),
                })
            }
        }
    }

    /// Change an installed SA without re-creating it: an outbound SA's
    /// outer addresses and UDP ports (NAT rebinding), an inbound SA's
    /// lookup addresses. Sequence numbers, the replay window and counters
    /// are untouched.
    ///
    /// ```
    /// use espgcm::esp::{Encap, Mode, Outbound, SaConfig, SaKey, SaTable, SaUpdate};
    ///
    /// let table = SaTable::new();
    /// let tunnel = Mode::Tunnel { src: "192.0.2.1".parse()?, dst: "198.51.100.2".parse()? };
    /// let cfg = SaConfig { mode: tunnel, encap: Encap::NAT_T, ..SaConfig::new(0x1003, &[3u8; 20]) };
    /// table.add_outbound(Outbound::new(cfg)?, None)?;
    /// // The peer's NAT mapping moved to 198.51.100.9:40400.
    /// let moved = Mode::Tunnel { src: "192.0.2.1".parse()?, dst: "198.51.100.9".parse()? };
    /// let endpoints = (moved, Encap::Udp { src_port: 4500, dst_port: 40400 });
    /// table.update(SaKey::outbound(0x1003), SaUpdate { endpoints: Some(endpoints), ..SaUpdate::default() })?;
    /// let info = table.query(SaKey::outbound(0x1003))?;
    /// assert_eq!(((info.config.mode, info.config.encap), info.next_sequence), (endpoints, Some(1)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`EspError::NoSuchSa`]; [`EspError::Invalid`] for a change that does
    /// not apply to the SA's direction or endpoints
    /// [`Outbound::set_endpoints`] refuses; [`EspError::SaExists`] if the
    /// new lookup addresses are another SA's.
    pub fn update(&self, key: SaKey, update: SaUpdate) -> Result<(), EspError> {
        match key.direction {
            Direction::Outbound => {
                if update.lookup.is_some() {
                    return Err(EspError::Invalid {
                        parameter: "lookup",
                        reason: "an outbound SA is found through policies, not by addresses",
                    });
                }
                let sa = self.outbound(key).ok_or(EspError::NoSuchSa { key })?;
                if let Some((mode, encap)) = update.endpoints {
                    sa.set_endpoints(mode, encap)?;
                }
                Ok(())
            }
            Direction::Inbound => {
                if update.endpoints.is_some() {
                    return Err(EspError::Invalid {
                        parameter: "endpoints",
                        reason: "an inbound SA accepts packets from any outer address and port; change its \
                                 lookup addresses instead",
                    });
                }
                let Some((dst, src)) = update.lookup else {
                    return if self.inbound(key).is_some() { Ok(()) } else { Err(EspError::NoSuchSa { key }) };
                };
                let mut registry = self.registry();
                let tables = self.tables.load_full();
                let entry = tables.exact(key.spi, key.dst, key.src).ok_or(EspError::NoSuchSa { key })?;
                let moved = InboundEntry::new(entry.sa.clone(), dst, src);
                if (dst, src) != (key.dst, key.src) && tables.exact(key.spi, dst, src).is_some() {
                    return Err(EspError::SaExists { key: moved.key() });
                }
                let entries: Vec<InboundEntry> = tables
                    .entries(key.spi)
                    .iter()
                    .map(|e| if e.kept_under(key.dst, key.src) { moved.clone() } else { e.clone() })
                    .collect();
                let changed = tables.with_entries(key.spi, entries);
                self.publish(&mut registry, changed);
                Ok(())
            }
        }
    }

    /// Remove an SA. Packets in flight keep it until they are done.
    /// Policies that protected with a deleted outbound SA now discard
    /// (RFC 4301: traffic for an SA that is gone is dropped, never sent in
    /// the clear or by a later policy) until [`update_policy`](Self::update_policy)
    /// gives them another SA; use [`replace_outbound`](Self::replace_outbound)
    /// to re-key without a gap.
    ///
    /// # Errors
    /// [`EspError::NoSuchSa`] if no SA has this key.
    pub fn delete(&self, key: SaKey) -> Result<SaHandle, EspError> {
        let mut registry = self.registry();
        let tables = self.tables.load_full();
        match key.direction {
            Direction::Inbound => {
                let entry = tables.exact(key.spi, key.dst, key.src).ok_or(EspError::NoSuchSa { key })?;
                let sa = entry.sa.clone();
                let rest: Vec<InboundEntry> =
                    tables.entries(key.spi).iter().filter(|e| !e.kept_under(key.dst, key.src)).cloned().collect();
                let changed = tables.with_entries(key.spi, rest);
                self.publish(&mut registry, changed);
                Ok(SaHandle::Inbound(sa))
            }
            Direction::Outbound => {
                let sa = registry.outbound.remove(&(key.spi, key.dst, key.src)).ok_or(EspError::NoSuchSa { key })?;
                if tables.policies.iter().any(|p| protects_with(&p.policy, &sa)) {
                    let policies = tables
                        .policies
                        .iter()
                        .map(|p| {
                            if protects_with(&p.policy, &sa) {
                                Arc::new(PolicyEntry {
                                    id: p.id,
                                    policy: Policy { selectors: p.policy.selectors.clone(), action: Action::Discard },
                                })
                            } else {
                                p.clone()
                            }
                        })
                        .collect();
                    let changed = tables.with_policies(policies);
                    self.publish(&mut registry, changed);
                }
                Ok(SaHandle::Outbound(sa))
            }
        }
    }

    /// Remove the inbound SA with this SPI and addresses; the SA itself
    /// lives on while packets hold it. (The same as [`delete`](Self::delete)
    /// with an inbound key.)
    pub fn remove_inbound(&self, spi: u32, dst: Option<IpAddr>, src: Option<IpAddr>) -> Option<Arc<Inbound>> {
        match self.delete(SaKey { direction: Direction::Inbound, spi, dst, src }) {
            Ok(SaHandle::Inbound(sa)) => Some(sa),
            _ => None,
        }
    }

    /// Switch outbound traffic from one SA to another in one step (the
    /// "switch" of a make-before-break re-key): the new SA is installed
    /// under the old one's addresses, every policy that protected with the
    /// old SA protects with the new one from the same snapshot on, and the
    /// old SA leaves the table (packets already sealing with it finish).
    /// Install the new inbound SA before (the peer may start using it as
    /// soon as it sees it), and retire the old inbound SA after
    /// ([`retire_inbound`](Self::retire_inbound)).
    ///
    /// ```
    /// use espgcm::esp::{Action, Inbound, Outbound, Policy, SaConfig, SaEvent, SaKey, SaTable};
    /// use std::time::{Duration, Instant};
    ///
    /// let (here, peer) = (SaTable::new(), SaTable::new());
    /// let old = here.add_outbound(Outbound::new(SaConfig::new(0x1001, &[1u8; 20]))?, None)?;
    /// here.add_policy(Policy { selectors: vec![], action: Action::Protect(old) });
    /// peer.add_inbound(Inbound::new(SaConfig::new(0x1001, &[1u8; 20]))?, None, None)?;
    ///
    /// let new = SaConfig::new(0x2002, &[2u8; 20]);
    /// peer.add_inbound(Inbound::new(new.clone())?, None, None)?; // make
    /// let tx = here.replace_outbound(SaKey::outbound(0x1001), Outbound::new(new)?)?; // switch
    /// assert!(matches!(&here.policies()[0].1.action, Action::Protect(sa) if sa.config().spi == 0x2002));
    /// peer.retire_inbound(SaKey::inbound(0x1001), Duration::from_secs(2))?; // break, later
    /// let events = peer.poll_at(Instant::now() + Duration::from_secs(3));
    /// assert_eq!(events, [SaEvent::Retired { key: SaKey::inbound(0x1001) }]);
    /// # drop(tx);
    /// # Ok::<(), espgcm::esp::EspError>(())
    /// ```
    ///
    /// # Errors
    /// [`EspError::NoSuchSa`] if `old` is not installed;
    /// [`EspError::SaExists`] if the new SA's key is another SA's.
    pub fn replace_outbound(&self, old: SaKey, new: Outbound) -> Result<Arc<Outbound>, EspError> {
        if old.direction != Direction::Outbound {
            return Err(EspError::NoSuchSa { key: old });
        }
        let new_key = (new.config().spi, old.dst, old.src);
        let mut registry = self.registry();
        let previous =
            registry.outbound.get(&(old.spi, old.dst, old.src)).cloned().ok_or(EspError::NoSuchSa { key: old })?;
        if new_key != (old.spi, old.dst, old.src) && registry.outbound.contains_key(&new_key) {
            return Err(EspError::SaExists {
                key: SaKey { direction: Direction::Outbound, spi: new_key.0, dst: new_key.1, src: new_key.2 },
            });
        }
        let new = Arc::new(new);
        let tables = self.tables.load_full();
        let policies = tables
            .policies
            .iter()
            .map(|p| {
                if protects_with(&p.policy, &previous) {
                    Arc::new(PolicyEntry {
                        id: p.id,
                        policy: Policy { selectors: p.policy.selectors.clone(), action: Action::Protect(new.clone()) },
                    })
                } else {
                    p.clone()
                }
            })
            .collect();
        registry.outbound.remove(&(old.spi, old.dst, old.src));
        registry.outbound.insert(new_key, new.clone());
        let changed = tables.with_policies(policies);
        self.publish(&mut registry, changed);
        Ok(new)
    }

    /// Remove an inbound SA `after` from now (the end of a make-before-break
    /// re-key: packets the peer sealed with it before switching may still
    /// be on their way). It keeps accepting until then; the removal is
    /// carried out by the first [`poll`](Self::poll) after that time, which
    /// reports it as [`SaEvent::Retired`].
    ///
    /// # Errors
    /// [`EspError::NoSuchSa`] if no inbound SA has this key.
    pub fn retire_inbound(&self, key: SaKey, after: Duration) -> Result<(), EspError> {
        if self.inbound(key).is_none() {
            return Err(EspError::NoSuchSa { key });
        }
        let when = Instant::now() + after;
        let mut registry = self.registry();
        registry.retiring.retain(|(k, _)| *k != key);
        registry.retiring.push((key, when));
        Ok(())
    }

    /// Housekeeping a key manager runs every second or so: checks every
    /// SA's lifetime limits (time ones included) and reports each soft and
    /// hard crossing once, and carries out retirements that are due.
    pub fn poll(&self) -> Vec<SaEvent> {
        self.poll_at(Instant::now())
    }

    /// [`poll`](Self::poll) as of `now` (a time in the future counts as
    /// come: tests and simulations move time this way).
    pub fn poll_at(&self, now: Instant) -> Vec<SaEvent> {
        let mut events = Vec::new();
        let due: Vec<SaKey> = {
            let mut registry = self.registry();
            let (due, waiting): (Vec<_>, Vec<_>) = registry.retiring.drain(..).partition(|&(_, when)| when <= now);
            registry.retiring = waiting;
            SaTable::free_replaced(&mut registry);
            due.into_iter().map(|(key, _)| key).collect()
        };
        for key in due {
            if self.delete(key).is_ok() {
                events.push(SaEvent::Retired { key });
            }
        }
        let mut report = |key: SaKey, status: LifetimeStatus| {
            if let Some(which) = status.soft {
                events.push(SaEvent::SoftLifetime { key, which });
            }
            if let Some(which) = status.hard {
                events.push(SaEvent::HardLifetime { key, which });
            }
        };
        let tables = self.tables.load_full();
        for entry in tables.inbound_entries() {
            report(entry.key(), entry.sa.poll_lifetime(now));
        }
        let outbound: Vec<(SaKey, Arc<Outbound>)> = self
            .registry()
            .outbound
            .iter()
            .map(|(&(spi, dst, src), sa)| (SaKey { direction: Direction::Outbound, spi, dst, src }, sa.clone()))
            .collect();
        for (key, sa) in outbound {
            report(key, sa.poll_lifetime(now));
        }
        events
    }

    /// How many inbound SAs are installed.
    pub fn inbound_len(&self) -> usize {
        self.tables
            .load()
            .inbound
            .shards
            .iter()
            .map(|shard| shard.slots().map(|(_, s)| s.entries().len()).sum::<usize>())
            .sum()
    }

    /// How many outbound SAs are installed.
    pub fn outbound_len(&self) -> usize {
        self.registry().outbound.len()
    }

    /// Add a policy at the end of the SPD (consulted after those before it);
    /// returns its id.
    pub fn add_policy(&self, policy: Policy) -> PolicyId {
        let mut registry = self.registry();
        let tables = self.tables.load_full();
        let position = tables.policies.len();
        self.insert_locked(&mut registry, &tables, position, policy)
    }

    /// The same as [`add_policy`](Self::add_policy).
    pub fn push_policy(&self, policy: Policy) -> PolicyId {
        self.add_policy(policy)
    }

    /// Insert a policy at `position` in the SPD (0: consulted first; past
    /// the end: last); returns its id.
    pub fn insert_policy(&self, position: usize, policy: Policy) -> PolicyId {
        let mut registry = self.registry();
        let tables = self.tables.load_full();
        self.insert_locked(&mut registry, &tables, position, policy)
    }

    fn insert_locked(&self, registry: &mut Registry, tables: &Tables, position: usize, policy: Policy) -> PolicyId {
        registry.next_policy += 1;
        let id = PolicyId(registry.next_policy);
        let mut policies: Vec<Arc<PolicyEntry>> = tables.policies.to_vec();
        policies.insert(position.min(policies.len()), Arc::new(PolicyEntry { id, policy }));
        let changed = tables.with_policies(policies);
        self.publish(registry, changed);
        id
    }

    /// Give a policy another action (a new SA to protect with, say) in one
    /// step; its place in the SPD stays.
    ///
    /// # Errors
    /// [`EspError::NoSuchPolicy`] if no policy has this id.
    pub fn update_policy(&self, id: PolicyId, action: Action) -> Result<(), EspError> {
        let mut registry = self.registry();
        let tables = self.tables.load_full();
        if !tables.policies.iter().any(|p| p.id == id) {
            return Err(EspError::NoSuchPolicy { id });
        }
        let policies = tables
            .policies
            .iter()
            .map(|p| {
                if p.id == id {
                    Arc::new(PolicyEntry {
                        id,
                        policy: Policy { selectors: p.policy.selectors.clone(), action: action.clone() },
                    })
                } else {
                    p.clone()
                }
            })
            .collect();
        let changed = tables.with_policies(policies);
        self.publish(&mut registry, changed);
        Ok(())
    }

    /// Remove a policy; returns it.
    ///
    /// # Errors
    /// [`EspError::NoSuchPolicy`] if no policy has this id.
    pub fn delete_policy(&self, id: PolicyId) -> Result<Policy, EspError> {
        let mut registry = self.registry();
        let tables = self.tables.load_full();
        let removed = tables.policies.iter().find(|p| p.id == id).ok_or(EspError::NoSuchPolicy { id })?;
        let policy = removed.policy.clone();
        let rest = tables.policies.iter().filter(|p| p.id != id).cloned().collect();
        let changed = tables.with_policies(rest);
        self.publish(&mut registry, changed);
        Ok(policy)
    }

    /// Remove every policy whose action is to protect with `sa`.
    pub fn remove_policies_for(&self, sa: &Arc<Outbound>) {
        let mut registry = self.registry();
        let tables = self.tables.load_full();
        let rest = tables.policies.iter().filter(|p| !protects_with(&p.policy, sa)).cloned().collect();
        let changed = tables.with_policies(rest);
        self.publish(&mut registry, changed);
    }

    /// The SPD in order, with each policy's id.
    pub fn policies(&self) -> Vec<(PolicyId, Policy)> {
        self.tables.load().policies.iter().map(|p| (p.id, p.policy.clone())).collect()
    }

    /// Remove every SA (and pending retirement and SPI reservation).
    /// Policies that protected with an outbound SA now discard.
    pub fn flush_sas(&self) {
        let mut registry = self.registry();
        let tables = self.tables.load_full();
        registry.outbound.clear();
        registry.reserved.clear();
        registry.retiring.clear();
        let policies: Vec<Arc<PolicyEntry>> = tables
            .policies
            .iter()
            .map(|p| match p.policy.action {
                Action::Protect(_) => Arc::new(PolicyEntry {
                    id: p.id,
                    policy: Policy { selectors: p.policy.selectors.clone(), action: Action::Discard },
                }),
                _ => p.clone(),
            })
            .collect();
        let changed = Tables { inbound: Tables::empty().inbound, policies: Arc::from(policies) };
        self.publish(&mut registry, changed);
    }

    /// Remove every policy.
    pub fn flush_policies(&self) {
        let mut registry = self.registry();
        let tables = self.tables.load_full();
        let changed = tables.with_policies(Vec::new());
        self.publish(&mut registry, changed);
    }

    /// Remove every SA and every policy.
    pub fn flush(&self) {
        let mut registry = self.registry();
        registry.outbound.clear();
        registry.reserved.clear();
        registry.retiring.clear();
        self.publish(&mut registry, Tables::empty());
    }

    /// The inbound SA a received IP packet (ESP, or ESP in UDP) belongs to.
    ///
    /// # Errors
    /// [`EspError::NoSa`] when none is installed for its SPI and addresses;
    /// the errors of reading the headers ([`EspError::Truncated`],
    /// [`EspError::Malformed`], [`EspError::Fragment`]), and
    /// [`EspError::NatKeepalive`] / [`EspError::NonEsp`] for NAT-T control
    /// traffic.
    pub fn inbound_for(&self, ip_packet: &[u8]) -> Result<Arc<Inbound>, EspError> {
        self.snapshot().inbound_for(ip_packet).cloned()
    }

    /// A snapshot of the tables for a burst of lookups: one load, and then
    /// lookups that take no lock and touch no reference count. Hold it for
    /// a burst, not longer (it keeps the SAs of its time alive).
    ///
    /// ```
    /// use espgcm::esp::{Inbound, SaConfig, SaTable};
    ///
    /// let table = SaTable::new();
    /// table.add_inbound(Inbound::new(SaConfig::new(0x1004, &[4u8; 20]))?, None, None)?;
    /// let snapshot = table.snapshot();
    /// # let received: Vec<Vec<u8>> = Vec::new();
    /// for packet in &received {
    ///     match snapshot.inbound_for(packet) {
    ///         Ok(_sa) => { /* open it with the SA, or gather it for its open_burst */ }
    ///         Err(_refused) => { /* count and drop */ }
    ///     }
    /// }
    /// let (src, dst) = ("198.51.100.2".parse()?, "192.0.2.1".parse()?);
    /// assert_eq!(snapshot.find(0x1004, src, dst).map(|sa| sa.config().spi), Some(0x1004));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn snapshot(&self) -> SaSnapshot {
        SaSnapshot { tables: self.tables.load() }
    }

    /// Find the SA of a received packet and open it with it.
    ///
    /// The calling thread keeps the inbound half of the tables it looked
    /// the packet up in, and its next call, if the table has not changed
    /// meanwhile, finds it current with one load instead of taking a
    /// snapshot (arc-swap's two locked operations: 3-4 ns of a 64-byte
    /// packet's 80). From the second packet of a run for one SA (found by
    /// SPI alone) on, it also keeps that SA, and the run's packets skip the
    /// lookup. Every change is seen by the next call, as before; what
    /// the kept half delays is only the freeing of inbound SAs deleted
    /// since: their memory, keys included, is freed by the table's next
    /// change or [`poll`](Self::poll) once every thread that kept them has
    /// let go, which it does at its next call here (on any table), when it
    /// ends, or by [`release_kept`](Self::release_kept). (The table, not a
    /// packet thread, frees them, so that the packet path does not pay for
    /// it.) Outbound SAs and policies are not kept.
    ///
    /// # Errors
    /// Those of [`inbound_for`](Self::inbound_for) (counted in
    /// [`stats`](Self::stats)) and of [`Inbound::open`].
    pub fn open(&self, ip_packet: &[u8], out: &mut Vec<u8>) -> Result<(), EspError> {
        out.clear();
        let generation = self.generation.load(Ordering::Acquire);
        // The kept SAD is taken out of the thread's slot and put back after,
        // rather than used inside `with`: the 48-byte `Result` handed out of
        // a closure was copied through stack slots a byte apart, and the
        // copies stalled (a profile put 4 ns a packet there). It is boxed so
        // that taking it and putting it back move one word. A nested call
        // finds the slot empty and loads the tables itself, and so does a
        // call from a thread-local destructor, once the slot is gone.
        let mut kept = match KEPT_SAD.try_with(Cell::take).ok().flatten() {
            Some(k) if k.generation == generation => k,
            // Stale, another table's or none: take the current SAD, in the
            // same box if there is one (the stale SAD is let go of here).
            stale => {
                let current = KeptSad::new(generation, Arc::clone(&self.tables.load().inbound));
                match stale {
                    Some(mut k) => {
                        *k = current;
                        k
                    }
                    None => Box::new(current),
                }
            }
        };
        let outcome = self.open_kept(&mut kept, ip_packet, out);
        // (If the slot is gone, `kept` is dropped with the closure.)
        let _ = KEPT_SAD.try_with(move |slot| slot.set(Some(kept)));
        outcome
    }

    /// Let go of what [`open`](Self::open) keeps on this thread, so that
    /// inbound SAs deleted since its last call can be freed (and their keys
    /// wiped) by the table's next change or [`poll`](Self::poll) without
    /// waiting for this thread's next call: for a packet thread about to
    /// wait a long time for traffic.
    ///
    /// ```
    /// use espgcm::esp::{Inbound, SaConfig, SaKey, SaTable};
    ///
    /// let table = SaTable::new();
    /// let sa = table.add_inbound(Inbound::new(SaConfig::new(0x1005, &[5u8; 20]))?, None, None)?;
    /// # let packet = [0u8; 20];
    /// let _ = table.open(&packet, &mut Vec::new()); // this thread now keeps the SAD
    /// drop(table.delete(SaKey::inbound(0x1005))?);
    /// SaTable::release_kept();
    /// table.poll(); // the key manager's regular call frees what nobody keeps
    /// assert_eq!(std::sync::Arc::strong_count(&sa), 1); // only this handle is left
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn release_kept() {
        drop(KEPT_SAD.try_with(Cell::take));
    }

    /// Find the SA of a received packet in a thread's kept SAD and open it
    /// with it.
    #[inline(always)]
    fn open_kept(&self, kept: &mut KeptSad, ip_packet: &[u8], out: &mut Vec<u8>) -> Result<(), EspError> {
        let Some(found) = esp_header_v4(ip_packet) else {
            return self.open_in(&kept.sad, ip_packet, out);
        };
        let spi = found.spi;
        let previous = core::mem::replace(&mut kept.previous_spi, spi);
        let sa = match &kept.last {
            Some((last, sa)) if *last == spi => sa,
            _ => match kept.sad.entries(spi) {
                [only] if only.anywhere() => {
                    if previous == spi {
                        kept.last = Some((spi, Arc::clone(&only.sa)));
                    }
                    &only.sa
                }
                entries => match kept.sad.pick_v4(entries, &found) {
                    Some(sa) => sa,
                    None => {
                        let e = EspError::NoSa { spi };
                        self.counters.record(&e);
                        return Err(e);
                    }
                },
            },
        };
        sa.open(ip_packet, out)
    }

    /// Find the SA of a received packet in `sad` and open it with it.
    #[inline(always)]
    fn open_in(&self, sad: &Sad, ip_packet: &[u8], out: &mut Vec<u8>) -> Result<(), EspError> {
        match sad.lookup(ip_packet) {
            Ok((_, sa)) => sa.open(ip_packet, out),
            Err(e) => {
                self.counters.record(&e);
                Err(e)
            }
        }
    }

    /// Open a burst of received packets, each with its own SA, where they
    /// lie: one snapshot for the whole burst, each run of packets for one
    /// SA opened as a burst of that SA ([`Inbound::open_burst`]).
    /// `results[i]` says what became of `pkts[i]`; a packet no SA is found
    /// for gets the lookup's error (counted in [`stats`](Self::stats)).
    ///
    /// ```
    /// use espgcm::esp::{Inbound, Outbound, PacketBuf, SaConfig, SaTable};
    /// # use espgcm::net::{Ipv4Repr, UdpRepr, protocol, checksum::pseudo_header_v4};
    /// # let (src, dst) = ("10.0.0.1".parse()?, "10.0.0.2".parse()?);
    /// # let mut packet = vec![0u8; 28];
    /// # Ipv4Repr { src_addr: src, dst_addr: dst, protocol: protocol::UDP, payload_len: 8, ttl: 64,
    /// #             dscp_ecn: 0, ident: 1, dont_frag: true }.emit(&mut packet)?;
    /// # UdpRepr { src_port: 1, dst_port: 2 }.emit(&mut packet[20..], 0, Some(pseudo_header_v4(src, dst, 17, 8)))?;
    ///
    /// let table = SaTable::new();
    /// let mut burst = Vec::new();
    /// for (i, spi) in [0x4001u32, 0x4002].into_iter().enumerate() {
    ///     let keymat = [i as u8 + 1; 20];
    ///     table.add_inbound(Inbound::new(SaConfig::new(spi, &keymat))?, None, None)?;
    ///     let peer = Outbound::new(SaConfig::new(spi, &keymat))?;
    ///     let mut sealed = Vec::new();
    ///     peer.seal(&packet, &mut sealed)?;
    ///     burst.push(PacketBuf::from_packet(&sealed));
    /// }
    /// let mut results = vec![Ok(()); burst.len()];
    /// table.open_burst(&mut burst, &mut results);
    /// assert!(results.iter().all(|r| r.is_ok()));
    /// assert!(burst.iter().all(|p| p.data() == packet.as_slice()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_burst(&self, pkts: &mut [PacketBuf], results: &mut [Result<(), EspError>]) {
        self.open_burst_in(pkts, results);
    }

    /// [`open_burst`](Self::open_burst) on any [`PacketBuffer`].
    pub fn open_burst_in<B: PacketBuffer>(&self, pkts: &mut [B], results: &mut [Result<(), EspError>]) {
        self.tables.load().inbound.open_burst_in(&self.counters, pkts, results);
    }

    /// Received packets no SA was found for (or that could not be read far
    /// enough to look one up), by outcome: `unknown_spi` for no SA, and the
    /// header errors, keepalives and IKE packets.
    pub fn stats(&self) -> Counters {
        self.counters.snapshot()
    }

    /// What the SPD says about a packet to be sent: the first policy whose
    /// selectors cover it, or `None` when none does (RFC 4301 says to
    /// discard it then).
    ///
    /// # Errors
    /// The errors of reading the packet's headers.
    pub fn outbound_for(&self, ip_packet: &[u8]) -> Result<Option<Action>, EspError> {
        Ok(self.tables.load().outbound_for(ip_packet)?.cloned())
    }
}

/// Whether `policy` protects with `sa`.
fn protects_with(policy: &Policy, sa: &Arc<Outbound>) -> bool {
    matches!(&policy.action, Action::Protect(s) if Arc::ptr_eq(s, sa))
}

/// One load of an [`SaTable`]'s tables, for a burst of lookups that take no
/// lock and touch no reference count ([`SaTable::snapshot`]).
pub struct SaSnapshot {
    tables: arc_swap::Guard<Arc<Tables>>,
}

impl fmt::Debug for SaSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaSnapshot").finish_non_exhaustive()
    }
}

impl SaSnapshot {
    /// The inbound SA a received IP packet belongs to; see
    /// [`SaTable::inbound_for`].
    ///
    /// # Errors
    /// As [`SaTable::inbound_for`].
    #[inline]
    pub fn inbound_for(&self, ip_packet: &[u8]) -> Result<&Arc<Inbound>, EspError> {
        self.lookup(ip_packet).map(|(_, sa)| sa)
    }

    /// [`inbound_for`](Self::inbound_for), with the packet's SPI.
    #[inline]
    fn lookup(&self, ip_packet: &[u8]) -> Result<(u32, &Arc<Inbound>), EspError> {
        self.tables.inbound.lookup(ip_packet)
    }

    /// The inbound SA for an SPI and outer addresses the caller has already
    /// read (a data plane that receives ESP in UDP from a socket has the
    /// peer's address and the SPI without an IP header): the most specific
    /// entry, as for a packet.
    pub fn find(&self, spi: u32, src: IpAddr, dst: IpAddr) -> Option<&Arc<Inbound>> {
        self.tables.inbound.inbound_for(spi, src, dst)
    }

    /// What the SPD says about a packet to be sent; see
    /// [`SaTable::outbound_for`].
    ///
    /// # Errors
    /// The errors of reading the packet's headers.
    pub fn outbound_for(&self, ip_packet: &[u8]) -> Result<Option<&Action>, EspError> {
        self.tables.outbound_for(ip_packet)
    }
}

/// The SPI and outer addresses (as bytes) of a packet, read by
/// [`esp_header_v4`].
struct EspAddresses<'a> {
    spi: u32,
    src: &'a [u8],
    dst: &'a [u8],
}

/// The common case, read directly: IPv4 without options, not a fragment,
/// carrying ESP or ESP in UDP with a consistent length. `None` for anything
/// else (IPv6, options, keepalives, IKE, anything odd), which
/// [`esp_header`] then reads in full and reports on. Nothing here is
/// trusted beyond finding the SA: `open` checks every field again.
#[inline]
fn esp_header_v4(packet: &[u8]) -> Option<EspAddresses<'_>> {
    let [0x45, _, l0, l1, _, _, f0, f1, _, proto, _, _, rest @ ..] = packet else { return None };
    let total = usize::from(u16::from_be_bytes([*l0, *l1]));
    if total > packet.len() || u16::from_be_bytes([*f0, *f1]) & 0x3fff != 0 {
        return None;
    }
    let (addresses, payload) = rest.split_at_checked(8)?;
    let payload = payload.get(..total.checked_sub(20)?)?;
    let esp = match *proto {
        protocol::ESP => payload,
        protocol::UDP => {
            let (udp, data) = payload.split_at_checked(8)?;
            let udp_len = udp.get(4..6).and_then(|l| <[u8; 2]>::try_from(l).ok()).map(u16::from_be_bytes)?;
            if usize::from(udp_len) != payload.len() || data.get(..4) == Some(&[0; 4]) {
                return None;
            }
            data
        }
        _ => return None,
    };
    let spi = u32::from_be_bytes(*esp.first_chunk::<4>()?);
    if esp.len() < 8 || spi == 0 {
        return None;
    }
    let (src, dst) = addresses.split_at(4);
    Some(EspAddresses { spi, src, dst })
}

/// An address from its 4 or 16 bytes.
fn address(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
        _ => None,
    }
}

/// The SPI and the (source, destination) of a packet carrying ESP, directly
/// or in UDP (RFC 3948).
fn esp_header(ip_packet: &[u8]) -> Result<(u32, IpAddr, IpAddr), EspError> {
    let ip = IpHeader::parse(ip_packet)?;
    let (src, dst) = selector::addresses(&ip, ip_packet);
    let (proto, payload) = if ip.version == 4 {
        if ip.ipv4_fragment {
            return Err(EspError::Fragment);
        }
        (ip.protocol, ip.split_ipv4_header(ip_packet).1)
    } else {
        let chain = match find_esp_v6(ip.ipv6_chain(ip_packet), protocol::ESP) {
            Ok(chain) => chain,
            Err(_) => find_esp_v6(ip.ipv6_chain(ip_packet), protocol::UDP)?,
        };
        (chain.pos().next_header, chain.split().1)
    };
    let esp = match proto {
        protocol::ESP => payload,
        protocol::UDP => match natt::classify(UdpPacket::new_checked(payload)?.into_payload())? {
            UdpPayload::Esp(esp) => esp,
            UdpPayload::Keepalive => return Err(EspError::NatKeepalive),
            UdpPayload::NonEsp => return Err(EspError::NonEsp),
        },
        other => return Err(EspError::Malformed { field: Field::Protocol, value: other.into() }),
    };
    Ok((EspPacket::new_checked(esp)?.spi(), src, dst))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn shards_spread_sequential_and_random_spis() {
        let mut counts = [0usize; SHARDS];
        for spi in 0x1000..0x1000 + 6400u32 {
            counts[shard_of(spi)] += 1;
        }
        assert!(counts.iter().all(|&c| (50..=150).contains(&c)), "{counts:?}");
        // Within a shard too: 100 sequential SPIs over 256 places.
        let mut places = [0usize; 256];
        for spi in 0x1000..0x1000 + 100u32 {
            places[place_of(spi, 255)] += 1;
        }
        assert!(places.iter().all(|&c| c <= 3), "{places:?}");
    }

    #[test]
    fn a_shard_finds_what_it_holds_through_collisions_and_removals() {
        let entry = |spi| {
            let sa = Arc::new(Inbound::new(SaConfig::new(spi, &[7u8; 20])).unwrap());
            Slot::One(InboundEntry::new(sa, None, None))
        };
        let mut shard = Shard::default();
        let mut model = std::collections::BTreeSet::new();
        // SPIs that share a start place in every shard size up to 128
        // places (40 of them fill 64) collide and probe onward.
        let spis: Vec<u32> = (0x100..0x100 + 20_000u32).filter(|&s| place_of(s, 127) == 3).take(40).collect();
        assert_eq!(spis.len(), 40);
        for &spi in &spis {
            shard = shard.with(spi, Some(entry(spi)));
            model.insert(spi);
        }
        for &spi in spis.iter().step_by(3) {
            shard = shard.with(spi, None);
            model.remove(&spi);
        }
        // A power of two of places, under three quarters full.
        assert!(shard.places.len().is_power_of_two() && model.len() * 4 < shard.places.len() * 3);
        for spi in 0x100..0x100 + 20_000u32 {
            let found = shard.get(spi).map(|slot| slot.entries()[0].sa.config().spi);
            assert_eq!(found, model.contains(&spi).then_some(spi), "{spi:#x}");
        }
        assert_eq!(shard.slots().count(), model.len());
    }
}
