//! The sending side of an SA: `seal`.

use super::cipher::{HeaderFields, SaCipher};
use super::counters::SharedCounters;
use super::endpoints::{EndpointCell, Endpoints};
use super::key_claims::KeyClaim;
use super::lifetime::{LifeState, Totals};
use super::packet::{self, Stage, UpperPlan, Verified};
use super::packet_buf::{PacketBuf, PacketBuffer};
use super::selector;
use super::sequence::{NO_LIMIT, Sequence, Stop};
use super::wire::{self as esp, EspRepr, Trailer};
use super::{
    Counters, Encap, EspError, Header, LifetimeKind, LifetimeStatus, Limitation, Mode, SEQUENCE_SOFT_MARGIN, SaConfig,
};
use crate::Backend;
use crate::net::checksum::{self, RegionSum};
use crate::net::ip::{Addresses, Datagram, IpHeader, Upper};
use crate::net::ipv6::ChainPos;
use crate::net::{Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, UdpRepr, ipv4, ipv6, protocol, udp};
use std::net::IpAddr;
use std::time::Instant;

/// Single-packet calls compare an SA's totals with its lifetime every this
/// many packets per thread (bursts do at their end): a run of this many
/// calls is the "burst" a hard limit may be overshot by.
pub(super) const LIFETIME_CHECK_EVERY: u64 = 64;

/// The sending half of an SA: turns IP packets into ESP packets.
///
/// **One SA is shared, never cloned.** Its sequence number is the IV, and
/// AES-GCM does not survive an IV used twice under one key, so an
/// `Outbound` is `Send + Sync` and every method takes `&self`: put it in an
/// `Arc` and let every worker thread seal with it (sequence numbers are
/// handed out atomically, a burst's at once). A second `Outbound` on the
/// same key and salt in one process is refused ([`EspError::KeyInUse`]).
/// After a restart, an SA with manually set keys must resume past every
/// number it may have used: save a reservation ahead of
/// [`next_sequence`](Self::next_sequence) and call
/// [`skip_to_sequence`](Self::skip_to_sequence) with it before sealing, or
/// re-key.
///
/// Each `seal` verifies the packet's checksums, takes the next sequence
/// number, and writes the finished IP packet into the caller's buffer;
/// [`seal_burst`](Self::seal_burst) does the same for many packets where they
/// lie, in buffers with room around them.
///
/// ```
/// use espgcm::esp::{Inbound, Outbound, SaConfig};
/// use espgcm::net::{Ipv4Repr, TcpRepr, protocol};
/// use espgcm::net::checksum::pseudo_header_v4;
/// use std::net::Ipv4Addr;
///
/// // A TCP segment over IPv4, checksums and all.
/// let (src, dst) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
/// let data = b"GET / HTTP/1.1\r\n\r\n";
/// let mut packet = vec![0u8; 20 + 20 + data.len()];
/// packet[40..].copy_from_slice(data);
/// let ip = Ipv4Repr { src_addr: src, dst_addr: dst, protocol: protocol::TCP, payload_len: 20 + data.len(),
///                     ttl: 64, dscp_ecn: 0, ident: 1, dont_frag: true };
/// ip.emit(&mut packet)?;
/// let tcp = TcpRepr { src_port: 40000, dst_port: 80, seq_number: 1, ack_number: 0, flags: 0x18, window: 512 };
/// tcp.emit(&mut packet[20..], pseudo_header_v4(src, dst, protocol::TCP, (20 + data.len()) as u16))?;
///
/// // Both ends of one SA: AES-128 key || salt, SPI 0x1234.
/// let keymat = [0x42u8; 20];
/// let tx = Outbound::new(SaConfig::new(0x1234, &keymat))?;
/// let rx = Inbound::new(SaConfig::new(0x1234, &keymat))?;
///
/// let mut wire_packet = Vec::new();
/// tx.seal(&packet, &mut wire_packet)?;
/// assert_eq!(wire_packet[9], 50); // protocol ESP
///
/// let mut delivered = Vec::new();
/// rx.open(&wire_packet, &mut delivered)?;
/// assert_eq!(delivered, packet);
///
/// // A damaged packet is refused before it is encrypted.
/// packet[45] ^= 1;
/// assert!(matches!(tx.seal(&packet, &mut wire_packet),
///                  Err(espgcm::esp::EspError::ChecksumBeforeEncrypt { .. })));
/// assert!(wire_packet.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Outbound {
    /// The configuration, with the key material wiped.
    cfg: SaConfig,
    cipher: SaCipher,
    /// This SA's hold on its key and salt: no other `Outbound` in the
    /// process may send under them while this one lives.
    _claim: KeyClaim,
    /// Soft and hard lifetime limits, and which were crossed.
    life: LifeState,
    /// The outer addresses and UDP ports, as changed since `cfg` (NAT
    /// rebinding).
    endpoints: EndpointCell,
    /// The sequence numbers (IVs) handed out.
    sequence: Sequence,
    counters: SharedCounters,
}

/// Where a packet's sequence number comes from.
#[derive(Clone, Copy)]
enum SequenceNumber {
    /// Reserve the next one when the packet is built (a packet refused
    /// before that leaves it for the next).
    Next,
    /// One reserved with a burst.
    Given(u64),
}

/// Run `f` with this thread's scratch buffer for bursts (kept, so that a
/// burst allocates nothing once the thread has seen its largest packet).
pub(super) fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    thread_local! {
        static SCRATCH: core::cell::Cell<Vec<u8>> = const { core::cell::Cell::new(Vec::new()) };
    }
    let mut buf = SCRATCH.try_with(core::cell::Cell::take).unwrap_or_default();
    let r = f(&mut buf);
    buf.fill(0);
    buf.clear();
    let _ = SCRATCH.try_with(|s| s.set(buf));
    r
}

/// Make `result` the packet in `pkt`: where it began when it shrank, ending
/// where it ended when it grew (into the headroom), or from the start of
/// the buffer when the headroom is too small; [`EspError::TooLarge`] if the
/// buffer cannot hold it at all.
pub(super) fn put_back<B: PacketBuffer>(pkt: &mut B, result: &[u8]) -> Result<(), EspError> {
    let (memory, start, len) = pkt.room();
    let room = memory.len();
    let new_start = match result.len().checked_sub(*len) {
        None | Some(0) => *start,
        Some(growth) => start.checked_sub(growth).unwrap_or(0),
    };
    match memory.get_mut(new_start..new_start + result.len()) {
        Some(place) => {
            place.copy_from_slice(result);
            *start = new_start;
            *len = result.len();
            Ok(())
        }
        None => Err(EspError::TooLarge { len: result.len(), max: room }),
    }
}

/// The header in front of ESP.
enum OuterHeader<'a> {
    /// Transport mode: the packet's own IPv4 header (options included).
    KeptV4 { prefix: &'a [u8] },
    /// Transport mode: the packet's IPv6 header and the extension headers
    /// that stay in front of ESP; `next_header_at` names the protected part.
    KeptV6 { prefix: &'a [u8], next_header_at: usize },
    /// A new header (tunnel mode, or a transport-mode dummy).
    New { src: IpAddr, dst: IpAddr, ds_field: u8, dont_frag: bool },
}

/// What goes inside ESP.
enum Protected<'a> {
    Bytes(&'a [u8]),
    /// A dummy packet's payload: this many zero bytes.
    Zeros(usize),
}

impl Protected<'_> {
    fn len(&self) -> usize {
        match self {
            Protected::Bytes(b) => b.len(),
            Protected::Zeros(n) => *n,
        }
    }
}

impl Outbound {
    /// Set up the sending side of an SA.
    ///
    /// # Errors
    /// [`EspError::Invalid`] for a bad setting (see [`SaConfig::validate`]),
    /// [`EspError::Unsupported`] if the requested backend cannot run here,
    /// [`EspError::KeyInUse`] if another live `Outbound` in this process
    /// already sends under this key and salt (two senders would repeat
    /// IVs: share the one SA instead).
    pub fn new(mut cfg: SaConfig) -> Result<Outbound, EspError> {
        let cipher = SaCipher::from_config(&mut cfg)?;
        let claim = cipher.claim().ok_or(EspError::KeyInUse { spi: cfg.spi })?;
        let end = if cfg.esn { u64::MAX } else { u64::from(u32::MAX) };
        let sequence = Sequence::new(end, cfg.lifetime.hard_packets);
        // Without ESN the end of the space comes within reach: warn ahead.
        let life = LifeState::new(cfg.lifetime, (!cfg.esn).then(|| end - SEQUENCE_SOFT_MARGIN));
        Ok(Outbound {
            cfg,
            cipher,
            _claim: claim,
            life,
            endpoints: EndpointCell::default(),
            sequence,
            counters: SharedCounters::default(),
        })
    }

    /// The configuration this SA was made with (its `keymat` is empty: the
    /// key material was wiped after key setup). Its `mode` and `encap` are
    /// those it was made with; [`endpoints`](Self::endpoints) gives the
    /// ones in use after [`set_endpoints`](Self::set_endpoints).
    pub fn config(&self) -> &SaConfig {
        &self.cfg
    }

    /// The outer addresses (tunnel mode) and UDP encapsulation the SA sends
    /// with now: [`SaConfig::mode`] and [`SaConfig::encap`] as configured,
    /// or as last changed by [`set_endpoints`](Self::set_endpoints).
    pub fn endpoints(&self) -> (Mode, Encap) {
        let e = self.current_endpoints();
        (e.mode, e.encap)
    }

    /// The packet path's read of the endpoints: one atomic load while they
    /// were never changed.
    #[inline]
    fn current_endpoints(&self) -> Endpoints {
        self.endpoints.load(Endpoints { mode: self.cfg.mode, encap: self.cfg.encap })
    }

    /// Send from now on with these outer addresses and UDP ports: the
    /// peer's NAT mapping changed (RFC 3948: a NAT rebinding shows up as
    /// packets from a new public address or port), or the tunnel moved.
    /// The SA is not re-created: its key, sequence numbers, counters and
    /// lifetime go on, and threads sealing meanwhile use the old or the new
    /// endpoints, never a mix. The kind of mode and of encapsulation stay
    /// (a transport SA stays transport, a UDP-encapsulated one stays
    /// encapsulated): in transport mode only the UDP ports can change (the
    /// addresses are the packets' own).
    ///
    /// ```
    /// use espgcm::esp::{Encap, Mode, Outbound, SaConfig};
    ///
    /// let tunnel = Mode::Tunnel { src: "192.0.2.1".parse()?, dst: "198.51.100.2".parse()? };
    /// let tx = Outbound::new(SaConfig { mode: tunnel, encap: Encap::NAT_T, ..SaConfig::new(0x3400, &[0x34u8; 20]) })?;
    /// // The peer's NAT now maps it to 198.51.100.77:61044.
    /// let moved = Mode::Tunnel { src: "192.0.2.1".parse()?, dst: "198.51.100.77".parse()? };
    /// tx.set_endpoints(moved, Encap::Udp { src_port: 4500, dst_port: 61044 })?;
    /// assert_eq!(tx.endpoints(), (moved, Encap::Udp { src_port: 4500, dst_port: 61044 }));
    /// assert_eq!(tx.next_sequence(), Some(1), "sequence numbers untouched");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`EspError::Invalid`] for another kind of mode or encapsulation,
    /// tunnel addresses of two families, or a UDP port 0.
    pub fn set_endpoints(&self, mode: Mode, encap: Encap) -> Result<(), EspError> {
        let invalid = |parameter, reason| Err(EspError::Invalid { parameter, reason });
        match (self.cfg.mode, mode) {
            (Mode::Transport, Mode::Transport) => {}
            (Mode::Tunnel { .. }, Mode::Tunnel { src, dst }) => {
                if src.is_ipv4() != dst.is_ipv4() {
                    return invalid("mode", "the tunnel's outer source and destination must be of one IP family");
                }
            }
            _ => return invalid("mode", "a transport SA stays transport and a tunnel SA stays a tunnel"),
        }
        match (self.cfg.encap, encap) {
            (Encap::None, Encap::None) => {}
            (Encap::Udp { .. }, Encap::Udp { src_port, dst_port }) => {
                if src_port == 0 || dst_port == 0 {
                    return invalid("encap", "UDP encapsulation needs non-zero ports (normally 4500)");
                }
            }
            _ => {
                return invalid(
                    "encap",
                    "an SA keeps its kind of encapsulation (plain ESP or ESP in UDP); install a new SA to change it",
                );
            }
        }
        self.endpoints.store(Endpoints { mode, encap });
        Ok(())
    }

    /// The AES-GCM backend the key runs on.
    pub fn backend(&self) -> Backend {
        self.cipher.backend()
    }

    /// The counters of this SA.
    pub fn stats(&self) -> Counters {
        self.counters.snapshot()
    }

    /// The sequence number the next packet will carry, or `None` when the
    /// sequence space is used up (re-key).
    pub fn next_sequence(&self) -> Option<u64> {
        self.sequence.peek()
    }

    /// Continue from sequence number `next` (which must not be below the
    /// next one): for restoring an SA after a restart or fail-over from a
    /// saved counter. Moving forward never repeats an IV; moving back would,
    /// so it is refused.
    ///
    /// # Errors
    /// [`EspError::Invalid`] for a value below the next sequence number, 0,
    /// or past the sequence space.
    pub fn skip_to_sequence(&self, next: u64) -> Result<(), EspError> {
        self.sequence.skip_to(next).map_err(|reason| EspError::Invalid { parameter: "next", reason })
    }

    /// Refuse sequence numbers from `limit` on: a packet that would carry
    /// one is not sent, gets [`EspError::SequenceLimit`] (counted in
    /// [`Counters::sequence_limit`]), and uses no number, so the next packet
    /// gets it once the limit is raised. `u64::MAX` means no limit (the
    /// default); 0 or 1 refuses every packet.
    ///
    /// This is the write-ahead reservation that keeps manually keyed SAs
    /// from repeating an IV across restarts: before raising the limit to
    /// `N`, record on stable storage that numbers below `N` may be in use;
    /// after a restart, [`skip_to_sequence`](Self::skip_to_sequence) to the
    /// recorded `N` (nothing below it is ever used again), record the next
    /// reservation, and raise the limit to it. Raise it well ahead of
    /// [`next_sequence`](Self::next_sequence) (by a few seconds of
    /// traffic), so that sealing never waits for the disk.
    ///
    /// Safe to call while other threads seal: every number handed out is
    /// below a limit that was in force when it was reserved, so while the
    /// limit only rises no number at or past the recorded value is ever
    /// used. (Lowering it stops new reservations past the new value; a
    /// reservation racing the call may still complete under the old one.)
    ///
    /// ```
    /// use espgcm::esp::{EspError, Outbound, SaConfig};
    /// # use espgcm::net::{Ipv4Repr, UdpRepr, protocol, checksum::pseudo_header_v4};
    /// # let (src, dst) = ("10.0.0.1".parse()?, "10.0.0.2".parse()?);
    /// # let mut packet = vec![0u8; 28];
    /// # Ipv4Repr { src_addr: src, dst_addr: dst, protocol: protocol::UDP, payload_len: 8, ttl: 64,
    /// #             dscp_ecn: 0, ident: 1, dont_frag: true }.emit(&mut packet)?;
    /// # UdpRepr { src_port: 1, dst_port: 2 }.emit(&mut packet[20..], 0, Some(pseudo_header_v4(src, dst, 17, 8)))?;
    /// let tx = Outbound::new(SaConfig::new(0x3000, &[0x55u8; 20]))?;
    /// // Restored from disk: numbers below 1000 may have been used before
    /// // the restart; this run may use numbers below 2000.
    /// tx.skip_to_sequence(1000)?;
    /// // (write "2000" to stable storage, then:)
    /// tx.set_sequence_limit(2000);
    /// let mut sealed = Vec::new();
    /// tx.seal(&packet, &mut sealed)?; // sequence number 1000
    /// tx.skip_to_sequence(2000)?;
    /// assert_eq!(tx.seal(&packet, &mut sealed), Err(EspError::SequenceLimit { limit: 2000 }));
    /// assert_eq!(tx.next_sequence(), Some(2000), "the refused packet used no number");
    /// // (write "3000", then:)
    /// tx.set_sequence_limit(3000);
    /// tx.seal(&packet, &mut sealed)?; // sequence number 2000
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_sequence_limit(&self, limit: u64) {
        self.sequence.set_limit(limit);
    }

    /// The limit set with [`set_sequence_limit`](Self::set_sequence_limit),
    /// or `None` when there is none.
    pub fn sequence_limit(&self) -> Option<u64> {
        self.sequence.limit()
    }

    /// The error for numbers the sequence could not hand out; the end of
    /// the space and the packet lifetime stop the SA.
    #[cold]
    fn stopped(&self, stop: Stop) -> EspError {
        match stop {
            Stop::Exhausted { last } => {
                self.life.cross(LifetimeKind::Sequence, true);
                EspError::SequenceExhausted { last }
            }
            Stop::Limit { limit } => EspError::SequenceLimit { limit },
            Stop::Packets => {
                self.life.cross(LifetimeKind::Packets, true);
                EspError::LifetimeExpired { spi: self.cfg.spi, which: LifetimeKind::Packets }
            }
        }
    }

    /// Refuse the call if the SA crossed a hard lifetime limit: the packet
    /// path's one read of lifetime state.
    #[inline]
    fn admit(&self) -> Result<(), EspError> {
        match self.life.stopped() {
            None => Ok(()),
            Some(kind) => Err(self.expired(kind)),
        }
    }

    #[cold]
    fn expired(&self, kind: LifetimeKind) -> EspError {
        match kind {
            LifetimeKind::Sequence => EspError::SequenceExhausted { last: self.sequence.used() },
            which => EspError::LifetimeExpired { spi: self.cfg.spi, which },
        }
    }

    /// Compare the totals with the lifetime limits (`now` is asked for only
    /// when a time limit is set).
    fn check_lifetime(&self, now: impl FnOnce() -> Instant) {
        let bytes = if self.life.counts_traffic() { self.counters.packets_and_bytes().1 } else { 0 };
        // Sequence numbers count the packets sent.
        self.life.check(Totals { bytes, packets: self.sequence.used() }, now);
    }

    /// Check the lifetime limits as of `now` and return the crossings not
    /// reported before (each soft and hard crossing is reported once). The
    /// key manager calls this every second or so for an SA outside an
    /// [`SaTable`](super::SaTable) (whose [`poll`](super::SaTable::poll)
    /// does it for its SAs): it re-keys on `soft`; `hard` means the SA is
    /// stopped. A `now` in the future counts as that time having come.
    ///
    /// ```
    /// use espgcm::esp::{EspError, Lifetime, LifetimeKind, Outbound, SaConfig};
    /// use std::time::{Duration, Instant};
    ///
    /// let lifetime = Lifetime { soft_time: Some(Duration::from_secs(50)), hard_time: Some(Duration::from_secs(60)),
    ///                           ..Lifetime::NONE };
    /// let tx = Outbound::new(SaConfig { lifetime, ..SaConfig::new(0x3300, &[0x33u8; 20]) })?;
    /// let now = Instant::now();
    /// assert_eq!(tx.poll_lifetime(now).soft, None);
    /// assert_eq!(tx.poll_lifetime(now + Duration::from_secs(55)).soft, Some(LifetimeKind::Time));
    /// assert_eq!(tx.poll_lifetime(now + Duration::from_secs(56)).soft, None, "reported once");
    /// assert_eq!(tx.poll_lifetime(now + Duration::from_secs(61)).hard, Some(LifetimeKind::Time));
    /// let mut out = Vec::new();
    /// assert!(matches!(tx.seal(&[0x45; 20], &mut out), Err(EspError::LifetimeExpired { which: LifetimeKind::Time, .. })));
    /// # Ok::<(), EspError>(())
    /// ```
    pub fn poll_lifetime(&self, now: Instant) -> LifetimeStatus {
        self.check_lifetime(|| now);
        self.life.take_new()
    }

    /// The lifetime limits crossed so far (as of the last check: see
    /// [`Lifetime`](super::Lifetime) for when checks run).
    pub fn lifetime(&self) -> LifetimeStatus {
        self.life.status()
    }

    /// How long ago the SA was made (what time lifetimes measure).
    pub fn age(&self) -> std::time::Duration {
        self.life.age(Instant::now())
    }

    /// Seal one IPv4 or IPv6 packet. `out` is cleared and receives the IP
    /// packet carrying ESP (in UDP with NAT-T).
    ///
    /// Before anything is encrypted, the packet's lengths and its IPv4
    /// header checksum are checked. Its TCP, UDP, ICMP or ICMPv6 checksum
    /// (unless the SA skips them) is verified over the bytes exactly as the
    /// cipher read them: the cipher sums them in the pass that encrypts
    /// them, and the ciphertext is released only if the sum verifies, so a
    /// packet damaged before ESP is never sent, and the data is read once.
    /// Transport mode needs whole datagrams; tunnel mode carries fragments
    /// too (their upper-layer checksum covers the reassembled datagram and is
    /// counted as unverifiable).
    ///
    /// On any error `out` is left empty and nothing should be sent. A packet
    /// refused for its upper-layer checksum has used its sequence number
    /// (its IV encrypted those bytes, and an IV is never used twice); every
    /// other refusal leaves the sequence number for the next packet.
    ///
    /// Transport mode keeps the IP header (IPv4 options, and for IPv6 the
    /// hop-by-hop, routing and preceding destination-options headers) and
    /// fixes its length, protocol / next header and IPv4 checksum. Tunnel
    /// mode adds an outer header from the SA's addresses, copying the DS
    /// field and ECN bits (and for IPv4 inside IPv4, DF) from the inner
    /// packet.
    ///
    /// # Errors
    /// [`EspError::ChecksumBeforeEncrypt`], [`EspError::Truncated`],
    /// [`EspError::Malformed`], [`EspError::Fragment`] (transport mode),
    /// [`EspError::TooLarge`], [`EspError::PacketTooBig`] (past
    /// [`SaConfig::path_mtu`] with DF set, or IPv6), [`EspError::SequenceExhausted`],
    /// [`EspError::SequenceLimit`], [`EspError::LifetimeExpired`] (a hard
    /// lifetime limit crossed), [`EspError::Unsupported`].
    pub fn seal(&self, ip_packet: &[u8], out: &mut Vec<u8>) -> Result<(), EspError> {
        out.clear();
        match self.admit().and_then(|()| self.seal_packet(ip_packet, SequenceNumber::Next, out)) {
            Ok(verified) => {
                let n = self.counters.record_packet(ip_packet.len(), verified == Verified::UnverifiableFragment);
                if n.is_multiple_of(LIFETIME_CHECK_EVERY) && self.life.is_checked() {
                    self.check_lifetime(Instant::now);
                }
                Ok(())
            }
            Err(e) => {
                out.clear();
                self.counters.record(&e);
                Err(e)
            }
        }
    }

    /// Seal a burst of packets where they lie, each into its own buffer:
    /// `results[i]` says what became of `pkts[i]` (a packet refused is left
    /// as it was). Each packet is judged alone, so one bad packet never
    /// fails its neighbours. The burst's sequence numbers are reserved at
    /// once and assigned in order; a packet refused after that leaves its
    /// number unused (a gap, which receivers take in their stride: a number
    /// is never given out twice). Packets past the end of the sequence
    /// space get [`EspError::SequenceExhausted`], and those at or past the
    /// [sequence limit](Self::set_sequence_limit) [`EspError::SequenceLimit`].
    ///
    /// Only the first `min(pkts.len(), results.len())` packets are sealed.
    ///
    /// ```
    /// use espgcm::net::checksum::pseudo_header_v4;
    /// use espgcm::net::{Ipv4Repr, UdpRepr, protocol};
    /// use espgcm::esp::{Inbound, Outbound, PacketBuf, SaConfig};
    /// use std::net::Ipv4Addr;
    ///
    /// // UDP datagrams over IPv4 with 0, 10, 20 and 30 bytes of data.
    /// let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    /// let datagram = |n: usize| -> Vec<u8> {
    ///     let mut p = vec![7u8; 28 + n];
    ///     Ipv4Repr { src_addr: src, dst_addr: dst, protocol: protocol::UDP, payload_len: 8 + n,
    ///                ttl: 64, dscp_ecn: 0, ident: 1, dont_frag: true }.emit(&mut p).unwrap();
    ///     let pseudo = pseudo_header_v4(src, dst, protocol::UDP, (8 + n) as u16);
    ///     UdpRepr { src_port: 5000, dst_port: 5001 }.emit(&mut p[20..], n, Some(pseudo)).unwrap();
    ///     p
    /// };
    /// let keymat = [0x24u8; 20];
    /// let tx = Outbound::new(SaConfig::new(0x2400, &keymat))?;
    /// let rx = Inbound::new(SaConfig::new(0x2400, &keymat))?;
    /// let originals: Vec<Vec<u8>> = (0..4).map(|i| datagram(i * 10)).collect();
    /// let mut burst: Vec<PacketBuf> = originals.iter().map(|p| PacketBuf::from_packet(p)).collect();
    /// let mut results = vec![Ok(()); burst.len()];
    /// tx.seal_burst(&mut burst, &mut results);
    /// assert!(results.iter().all(|r| r.is_ok()));
    /// rx.open_burst(&mut burst, &mut results);
    /// assert!(results.iter().all(|r| r.is_ok()));
    /// assert!(burst.iter().zip(&originals).all(|(b, p)| b.data() == p.as_slice()));
    /// # Ok::<(), espgcm::esp::EspError>(())
    /// ```
    pub fn seal_burst(&self, pkts: &mut [PacketBuf], results: &mut [Result<(), EspError>]) {
        self.seal_burst_in(pkts, results);
    }

    /// [`seal_burst`](Self::seal_burst) on any [`PacketBuffer`]: a data
    /// plane's own packet memory ([`PacketSlice`](super::PacketSlice)).
    pub fn seal_burst_in<B: PacketBuffer>(&self, pkts: &mut [B], results: &mut [Result<(), EspError>]) {
        let n = pkts.len().min(results.len());
        let mut tally = Counters::default();
        if let Err(e) = self.admit() {
            for result in results.iter_mut().take(n) {
                tally.record(&e);
                *result = Err(e.clone());
            }
            self.counters.add(&tally);
            return;
        }
        let (first, count, short) = match self.sequence.reserve(n as u64) {
            Ok(r) => (r.first, r.count, r.short),
            Err(stop) => (0, 0, Some(stop)),
        };
        with_scratch(|scratch| {
            for (i, (pkt, result)) in pkts.iter_mut().zip(results.iter_mut()).enumerate() {
                *result = if (i as u64) < count {
                    let r = self.seal_counted(pkt.data(), SequenceNumber::Given(first + i as u64), scratch, &mut tally);
                    r.and_then(|()| put_back(pkt, scratch))
                } else {
                    let e = self.stopped(short.unwrap_or(Stop::Limit { limit: NO_LIMIT }));
                    tally.record(&e);
                    Err(e)
                };
            }
        });
        self.counters.add(&tally);
        if self.life.is_checked() {
            self.check_lifetime(Instant::now);
        }
    }

    /// [`seal`](Self::seal) with the outcome counted in `tally`.
    fn seal_counted(
        &self,
        ip_packet: &[u8],
        seq: SequenceNumber,
        out: &mut Vec<u8>,
        tally: &mut Counters,
    ) -> Result<(), EspError> {
        out.clear();
        let result = self.seal_packet(ip_packet, seq, out);
        match &result {
            Ok(verified) => {
                if *verified == Verified::UnverifiableFragment {
                    tally.unverifiable_fragments += 1;
                }
                tally.record_packet(ip_packet.len());
            }
            Err(e) => {
                out.clear();
                tally.record(e);
            }
        }
        result.map(|_| ())
    }

    fn seal_packet(&self, ip_packet: &[u8], seq: SequenceNumber, out: &mut Vec<u8>) -> Result<Verified, EspError> {
        let d = Datagram::parse(ip_packet)?;
        let datagram = d.ip.datagram(ip_packet);
        if matches!(self.cfg.mode, Mode::Transport) && d.upper == Upper::Fragment {
            return Err(EspError::Fragment);
        }
        // Before encryption: the IPv4 header checksum and the length of the
        // upper-layer header. The upper-layer checksum is verified over the
        // sum the cipher takes of the bytes it encrypts (below), so what is
        // checked is exactly what was encrypted, and the data is read once.
        packet::verify_ip_header(&d, datagram, Stage::BeforeEncrypt)?;
        if !self.cfg.selectors.is_empty() {
            let (addrs, protocol, ports) = selector::flow(&d, datagram);
            if !selector::covered(&self.cfg.selectors, false, addrs, protocol, ports) {
                return Err(EspError::NotCovered { seq: None });
            }
        }
        let plan = packet::upper_check(&d, datagram, self.cfg.checksums)?;
        let peer = self.current_endpoints();
        // The header in front of ESP, and where the protected part starts.
        let (header, protected, next_header) = match peer.mode {
            Mode::Transport if d.ip.version == 4 => {
                let (prefix, protected) = d.ip.split_ipv4_header(datagram);
                (OuterHeader::KeptV4 { prefix }, protected, d.ip.protocol)
            }
            Mode::Transport => {
                let (prefix, protected, pos) = esp_insertion_v6(&d.ip, datagram)?;
                (OuterHeader::KeptV6 { prefix, next_header_at: pos.next_header_at }, protected, pos.next_header)
            }
            Mode::Tunnel { src, dst } => {
                let header = OuterHeader::New { src, dst, ds_field: d.ip.ds_field, dont_frag: d.ip.dont_frag };
                (header, datagram, if d.ip.version == 4 { protocol::IPV4 } else { protocol::IPV6 })
            }
        };
        // IPv6 packets are never fragmented on the way; IPv4 ones when DF says so.
        let dont_fragment = d.ip.version == 6 || d.ip.dont_frag;
        let sealed =
            self.emit(header, peer.encap, Protected::Bytes(protected), next_header, dont_fragment, seq, out)?;
        match plan {
            UpperPlan::Fragment => Ok(Verified::UnverifiableFragment),
            UpperPlan::Nothing => Ok(Verified::Whole),
            UpperPlan::Check { check, segment } => {
                // The cipher summed the protected bytes; the segment ends
                // where they end (ESP goes in front of the upper-layer
                // header, never after it), so they are the segment and the
                // headers before it.
                let segment_sum = if check.has_pseudo_header() {
                    RegionSum::new(sealed).remove_prefix(protected, protected.len() - segment.len()).value()
                } else {
                    // ICMPv4: without a pseudo-header, an all-zero message
                    // sums to +0, which a sum with bytes taken away cannot
                    // tell from -0 (it would pass). It is short: sum it.
                    checksum::sum(segment)
                };
                if let Err(m) = check.verify(segment_sum) {
                    // Nothing is sent. The sequence number stays used: its IV
                    // encrypted these bytes, and an IV is never used twice.
                    out.fill(0);
                    return Err(Stage::BeforeEncrypt.error(m));
                }
                Ok(Verified::Whole)
            }
        }
    }

    /// Send a dummy packet (next header 59, RFC 4303 §2.6) of `len` zero
    /// bytes (encrypted, they look like any other payload). Tunnel mode uses
    /// the tunnel's addresses and ignores `endpoints`; transport mode needs
    /// `endpoints` = (source, destination). The receiver drops it silently.
    ///
    /// # Errors
    /// [`EspError::Unsupported`] in transport mode without endpoints,
    /// [`EspError::Invalid`] for endpoints of mixed families,
    /// [`EspError::TooLarge`], [`EspError::SequenceExhausted`].
    pub fn seal_dummy(
        &self,
        endpoints: Option<(IpAddr, IpAddr)>,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), EspError> {
        out.clear();
        if let Err(e) = self.admit() {
            self.counters.record(&e);
            return Err(e);
        }
        let peer = self.current_endpoints();
        let (src, dst) = match (peer.mode, endpoints) {
            (Mode::Tunnel { src, dst }, _) => (src, dst),
            (Mode::Transport, Some(pair)) => pair,
            (Mode::Transport, None) => {
                let e = EspError::Unsupported(Limitation::DummyNeedsAddresses);
                self.counters.record(&e);
                return Err(e);
            }
        };
        let result = if src.is_ipv4() != dst.is_ipv4() {
            Err(EspError::Invalid { parameter: "endpoints", reason: "source and destination must be of one family" })
        } else {
            let header = OuterHeader::New { src, dst, ds_field: 0, dont_frag: false };
            let (zeros, seq) = (Protected::Zeros(len), SequenceNumber::Next);
            self.emit(header, peer.encap, zeros, protocol::NO_NEXT_HEADER, false, seq, out).map(|_| ())
        };
        let mut tally = Counters::default();
        match &result {
            Ok(()) => tally.dummies += 1,
            Err(e) => {
                out.clear();
                tally.record(e);
            }
        }
        self.counters.add(&tally);
        result
    }

    /// Build the packet into `out`: header, UDP (NAT-T), ESP header and IV,
    /// the protected bytes, padding, trailer, then encrypt and append the ICV.
    /// Returns the one's complement sum of the protected bytes, taken while
    /// they were encrypted (0 for a dummy).
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        header: OuterHeader<'_>,
        encap: Encap,
        protected: Protected<'_>,
        next_header: u8,
        dont_fragment: bool,
        seq: SequenceNumber,
        out: &mut Vec<u8>,
    ) -> Result<u64, EspError> {
        let icv_len = self.cipher.icv_len();
        let pad = esp::pad_len(protected.len());
        let esp_len = esp::HEADER_LEN + esp::IV_LEN + protected.len() + pad + esp::TRAILER_LEN + icv_len;
        let udp_len = if matches!(encap, Encap::Udp { .. }) { udp::HEADER_LEN } else { 0 };
        let (header_len, is_v4) = match &header {
            OuterHeader::KeptV4 { prefix } => (prefix.len(), true),
            OuterHeader::KeptV6 { prefix, .. } => (prefix.len(), false),
            OuterHeader::New { src, .. } => {
                if src.is_ipv4() {
                    (ipv4::HEADER_LEN, true)
                } else {
                    (ipv6::HEADER_LEN, false)
                }
            }
        };
        let total = header_len + udp_len + esp_len;
        if let Some(mtu) = self.cfg.path_mtu.map(usize::from)
            && dont_fragment
            && total > mtu
        {
            // What the framing adds, with the most padding any length needs
            // (3), taken off the path MTU: the size the sender should be
            // told (ICMP "fragmentation needed", ICMPv6 "packet too big"),
            // which is the caller's to send. Every packet up to it fits.
            let inner = protected.len() + if matches!(header, OuterHeader::New { .. }) { 0 } else { header_len };
            let overhead = total - inner - pad + 3;
            return Err(EspError::PacketTooBig { len: total, mtu: mtu.saturating_sub(overhead) });
        }
        // IPv4 total length or IPv6 payload length must fit 16 bits.
        let length_field = if is_v4 { total } else { total - ipv6::HEADER_LEN };
        let length16 = u16::try_from(length_field)
            .map_err(|_| EspError::TooLarge { len: length_field, max: usize::from(u16::MAX) })?;
        let carried = if udp_len > 0 { protocol::UDP } else { protocol::ESP };

        let seq = match seq {
            SequenceNumber::Next => self.sequence.reserve(1).map_err(|stop| self.stopped(stop))?.first,
            SequenceNumber::Given(seq) => seq,
        };

        out.reserve(total + self.cipher.scratch_len());
        match header {
            OuterHeader::KeptV4 { prefix } => {
                packet::extend_header(out, prefix);
                Ipv4Packet::new_unchecked(out.as_mut_slice()).set_total_len_protocol_and_checksum(length16, carried);
            }
            OuterHeader::KeptV6 { prefix, next_header_at } => {
                packet::extend_header(out, prefix);
                let mut ip = Ipv6Packet::new_unchecked(out.as_mut_slice());
                ip.set_payload_len(length16);
                ip.set_next_header_at(next_header_at, carried);
            }
            OuterHeader::New { src, dst, ds_field, dont_frag } => {
                out.resize(header_len, 0);
                match (src, dst) {
                    (IpAddr::V4(src_addr), IpAddr::V4(dst_addr)) => Ipv4Repr {
                        src_addr,
                        dst_addr,
                        protocol: carried,
                        payload_len: total - header_len,
                        ttl: self.cfg.tunnel_ttl,
                        dscp_ecn: ds_field,
                        ident: seq as u16,
                        dont_frag,
                    }
                    .emit(out)?,
                    (IpAddr::V6(src_addr), IpAddr::V6(dst_addr)) => Ipv6Repr {
                        src_addr,
                        dst_addr,
                        next_header: carried,
                        payload_len: total - header_len,
                        hop_limit: self.cfg.tunnel_ttl,
                        traffic_class: ds_field,
                        flow_label: 0,
                    }
                    .emit(out)?,
                    _ => {
                        return Err(EspError::Invalid {
                            parameter: "mode",
                            reason: "the tunnel's outer addresses must be of one family",
                        });
                    }
                }
            }
        }
        let udp_start = out.len();
        if udp_len > 0 {
            // Filled in after encryption (its checksum covers the ciphertext).
            out.extend_from_slice(&[0; udp::HEADER_LEN]);
        }
        let esp_start = out.len();
        // The IV is the 64-bit sequence number: unique per packet under the key.
        let iv = seq.to_be_bytes();
        let spi = self.cfg.spi;
        out.extend_from_slice(&EspRepr { spi, sequence: seq as u32 }.with_iv(iv));
        let fields = HeaderFields { spi, seq, iv };
        let sum = match protected {
            Protected::Bytes(bytes) => {
                let trailer = Trailer::new(pad, next_header);
                self.cipher.seal(out, esp_start, fields, bytes, trailer.as_bytes())?
            }
            Protected::Zeros(n) => {
                out.resize(out.len() + n, 0);
                esp::push_padding_and_trailer(out, pad, next_header);
                self.cipher.seal_in_place(out, esp_start, fields)?;
                0
            }
        };

        if let Encap::Udp { src_port, dst_port } = encap {
            // IPv4: checksum 0 (RFC 3948 §2.1). IPv6 requires a real one.
            let pseudo = if is_v4 {
                None
            } else {
                let ip = Ipv6Packet::new_unchecked(out.as_slice());
                let addrs = Addresses::v6(ip.src_addr().octets(), ip.dst_addr().octets());
                Some(addrs.pseudo_header(protocol::UDP, udp_len + esp_len))
            };
            // `out` holds the header in front of the UDP header and more;
            // were it shorter, that would be a bug here, to be reported.
            let Some(datagram) = out.get_mut(udp_start..) else {
                return Err(EspError::Truncated { header: Header::Udp, needed: udp_start, available: out.len() });
            };
            UdpRepr { src_port, dst_port }.emit(datagram, esp_len, pseudo)?;
        }
        Ok(sum)
    }

    /// Bare ESP (SPI || low sequence number || IV || ciphertext || ICV) of
    /// `payload` with the given sequence number and IV and the default
    /// padding 1, 2, 3, ... The SA's state does not change: this is for
    /// published test vectors and custom framing, and the caller is then
    /// responsible for never repeating an IV under the key.
    ///
    /// # Errors
    /// [`EspError::Invalid`] for a sequence number past 2^32 - 1 without ESN;
    /// [`EspError::Crypto`] for a payload past GCM's limits.
    pub fn seal_payload_at(&self, seq: u64, iv: [u8; 8], payload: &[u8], next_header: u8) -> Result<Vec<u8>, EspError> {
        if !self.cfg.esn && seq > u64::from(u32::MAX) {
            return Err(EspError::Invalid {
                parameter: "seq",
                reason: "without ESN a sequence number has 32 bits (at most 4294967295)",
            });
        }
        let pad = esp::pad_len(payload.len());
        let len = esp::HEADER_LEN + esp::IV_LEN + payload.len() + pad + esp::TRAILER_LEN + self.cipher.icv_len();
        let mut out = Vec::with_capacity(len + self.cipher.scratch_len());
        let spi = self.cfg.spi;
        out.extend_from_slice(&EspRepr { spi, sequence: seq as u32 }.with_iv(iv));
        let trailer = Trailer::new(pad, next_header);
        self.cipher.seal(&mut out, 0, HeaderFields { spi, seq, iv }, payload, trailer.as_bytes())?;
        Ok(out)
    }
}

/// Where ESP goes in an IPv6 packet in transport mode (RFC 4303 §3.1.1):
/// after hop-by-hop, routing, and destination options that precede a
/// routing header; before everything else (later destination options are
/// protected). A fragment header means the packet is a fragment.
///
/// Returns the headers that stay in front of ESP, the protected rest, and
/// the position ESP takes (the header it names as its next header, and the
/// byte that will name ESP).
fn esp_insertion_v6<'a>(ip: &IpHeader, datagram: &'a [u8]) -> Result<(&'a [u8], &'a [u8], ChainPos), EspError> {
    let mut chain = ip.ipv6_chain(datagram);
    loop {
        let before = chain;
        match chain.next()? {
            Some(ext) if ext.kind() == protocol::DESTINATION_OPTIONS && ext.next_header() != protocol::ROUTING => {
                chain = before;
                break;
            }
            Some(_) => {}
            None if chain.pos().next_header == protocol::FRAGMENT => return Err(EspError::Fragment),
            None => break,
        }
    }
    let (prefix, protected) = chain.split();
    Ok((prefix, protected, chain.pos()))
}
