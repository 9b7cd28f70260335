//! The sending side of an SA: `seal`, and bursts sealed where they lie.

mod build;
mod burst;
mod outer;
mod plan;

use super::cipher::{HeaderFields, SaCipher};
use super::counters::SharedCounters;
use super::endpoints::{EndpointCell, Endpoints};
use super::key_claims::KeyClaim;
use super::lifetime::{LifeState, Totals};
use super::packet;
use super::packet_buf::{PacketBuf, PacketBuffer};
use super::sequence::{NO_LIMIT, Sequence, Stop};
use super::wire::{self as esp, EspRepr, Trailer};
use super::{
    Counters, Encap, EspError, Header, LifetimeKind, LifetimeStatus, Limitation, Mode, SEQUENCE_SOFT_MARGIN, SaConfig,
};
use crate::Backend;
use crate::net::checksum::{self, RegionSum};
use build::Kept;
use burst::{CHUNK, SMALL};
use outer::{Outer, Template};
use std::borrow::Cow;
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
/// re-key; [`set_sequence_limit`](Self::set_sequence_limit) keeps a run
/// within what it has saved.
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
    /// The headers in front of ESP for the configured endpoints, made once.
    outer: Outer,
    /// The sequence numbers (IVs) handed out.
    sequence: Sequence,
    counters: SharedCounters,
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
        let outer = Outer::new(Endpoints { mode: cfg.mode, encap: cfg.encap }, cfg.tunnel_ttl)?;
        Ok(Outbound {
            cfg,
            cipher,
            _claim: claim,
            life,
            endpoints: EndpointCell::default(),
            outer,
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

    /// The headers this SA puts in front of ESP now: made when the SA was,
    /// and again per call only after a NAT rebinding changed the endpoints.
    #[inline]
    fn outer(&self) -> Cow<'_, Outer> {
        match self.endpoints.changed() {
            None => Cow::Borrowed(&self.outer),
            // Endpoints stored by `set_endpoints` passed its checks, so this
            // cannot fail; should it, the configured headers stand.
            Some(e) => Outer::new(e, self.cfg.tunnel_ttl).map_or(Cow::Borrowed(&self.outer), Cow::Owned),
        }
    }

    /// Seal one IPv4 or IPv6 packet. `out` is cleared and receives the IP
    /// packet carrying ESP (in UDP with NAT-T).
    ///
    /// Before anything is encrypted, the packet's lengths and its IPv4
    /// header checksum are checked. Its TCP, UDP, ICMP or ICMPv6 checksum
    /// (unless the SA skips them) is verified over the bytes exactly as the
    /// cipher read them: the cipher reads the payload from `ip_packet`,
    /// writes the ciphertext into `out` and sums the plaintext in that one
    /// pass, and the ciphertext is released only if the sum verifies, so a
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
        match self.admit().and_then(|()| self.seal_into(ip_packet, out)) {
            Ok(fragment) => {
                let n = self.counters.record_packet(ip_packet.len(), fragment);
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

    /// [`seal`](Self::seal)'s work: plan, sequence number, headers, then
    /// the payload encrypted from where it is into `out` with its sum
    /// taken in the same pass. Returns whether the packet is a tunnelled
    /// fragment (its upper-layer checksum unverifiable).
    fn seal_into(&self, ip_packet: &[u8], out: &mut Vec<u8>) -> Result<bool, EspError> {
        let outer = self.outer();
        // Used where it was built: moved out of the `Result` (what `?`
        // does), the plan was copied with loads that straddled the stores
        // that had just written it, and each waited for them to reach the
        // cache (a failed store forward).
        let planned = self.plan(ip_packet, &outer);
        let plan = match &planned {
            Ok(plan) => plan,
            Err(e) => return Err(e.clone()),
        };
        let seq = self.sequence.reserve(1).map_err(|stop| self.stopped(stop))?.first;
        let datagram =
            ip_packet.get(..plan.datagram_len).ok_or(build::short(Header::Ip, plan.datagram_len, ip_packet.len()))?;
        let (kept, protected) = datagram.split_at_checked(plan.protected_at).ok_or(build::short(
            Header::Ip,
            plan.protected_at,
            datagram.len(),
        ))?;
        out.reserve(plan.total + self.cipher.scratch_len());
        let header = Kept::read(plan, datagram);
        if matches!(header, Kept::InPlace) {
            packet::extend_header(out, kept);
        }
        out.resize(plan.body_at(), 0);
        self.write_front(plan, header, &outer, seq, out)?;
        let trailer = Trailer::new(plan.pad, plan.next_header);
        let fields = HeaderFields { spi: self.cfg.spi, seq, iv: seq.to_be_bytes() };
        let sum = self.cipher.seal(out, plan.esp_at(), fields, protected, trailer.as_bytes())?;
        if let Some(check) = &plan.check {
            // The cipher summed the protected bytes; the segment ends where
            // they end (ESP goes in front of the upper-layer header, never
            // after it), so they are the segment and the headers before it.
            let in_protected = check.segment_at - plan.protected_at;
            let segment_sum = if check.has_pseudo_header() {
                RegionSum::new(sum).remove_prefix(protected, in_protected).value()
            } else {
                // ICMPv4: without a pseudo-header, an all-zero message sums
                // to +0, which a sum with bytes taken away cannot tell from
                // -0 (it would pass). It is short: sum it.
                checksum::sum(protected.get(in_protected..).unwrap_or_default())
            };
            if let Err(e) = check.verify(datagram, segment_sum) {
                // Nothing is sent. The sequence number stays used: its IV
                // encrypted these bytes, and an IV is never used twice.
                out.fill(0);
                return Err(e);
            }
        }
        self.fill_udp_checksum(&outer, plan.v4, plan.udp_at(), out)?;
        Ok(plan.fragment)
    }

    /// Seal a burst of packets where they lie, each in its own buffer:
    /// `results[i]` says what became of `pkts[i]`. The headers go into the
    /// headroom (in transport mode the packet's own IP header moves forward
    /// to make way for ESP's), the trailer and ICV into the tailroom, and
    /// the payload is encrypted where it is; the AES-GCM work of the burst
    /// goes to [`Gcm::encrypt_batch`](crate::Gcm::encrypt_batch) in one
    /// call. [`PacketBuf`] always has the room ([`HEADROOM`](super::HEADROOM),
    /// [`TAILROOM`](super::TAILROOM)); a buffer with too little on one side
    /// but enough in all has its packet moved within it first, and one too
    /// small for the sealed packet gets [`EspError::TooLarge`].
    ///
    /// Each packet is judged alone, so one bad packet never fails its
    /// neighbours, and a packet refused is left as it was. Its upper-layer
    /// checksum is verified over the bytes where they lie, just before they
    /// are encrypted there (nothing writes to them in between); a packet
    /// that fails it is not encrypted. The burst's sequence numbers are
    /// reserved at once and assigned in order; a packet refused after that
    /// leaves its number unused (a gap, which receivers take in their
    /// stride: a number is never given out twice). Packets past the end of
    /// the sequence space get [`EspError::SequenceExhausted`], and those at
    /// or past the [sequence limit](Self::set_sequence_limit)
    /// [`EspError::SequenceLimit`].
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
        let (Some(pkts), Some(results)) = (pkts.get_mut(..n), results.get_mut(..n)) else {
            return;
        };
        if let Err(e) = self.admit() {
            self.counters.refuse_burst(results, &e);
            return;
        }
        let mut tally = Counters::default();
        let (first, count, short) = match self.sequence.reserve(n as u64) {
            Ok(r) => (r.first, r.count, r.short),
            Err(stop) => (0, 0, Some(stop)),
        };
        let outer = self.outer();
        for (c, (pkts, results)) in pkts.chunks_mut(CHUNK).zip(results.chunks_mut(CHUNK)).enumerate() {
            let base = (c * CHUNK) as u64;
            let seq = |i: usize| {
                let k = base + i as u64;
                if k < count {
                    Ok(first + k)
                } else {
                    Err(self.stopped(short.unwrap_or(Stop::Limit { limit: NO_LIMIT })))
                }
            };
            if n == 1 {
                self.seal_chunk::<B, 1>(pkts, results, seq, &outer, &mut tally);
            } else if n <= SMALL {
                self.seal_chunk::<B, SMALL>(pkts, results, seq, &outer, &mut tally);
            } else {
                self.seal_chunk::<B, CHUNK>(pkts, results, seq, &outer, &mut tally);
            }
        }
        self.counters.add(&tally);
        if self.life.is_checked() {
            self.check_lifetime(Instant::now);
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
        let result = self.admit().and_then(|()| self.seal_dummy_into(endpoints, len, out));
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

    fn seal_dummy_into(
        &self,
        endpoints: Option<(IpAddr, IpAddr)>,
        len: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), EspError> {
        let outer = self.outer();
        let dummy_outer = match (&outer.tunnel, endpoints) {
            (Some(_), _) => outer.into_owned(),
            (None, Some((src, dst))) => {
                if src.is_ipv4() != dst.is_ipv4() {
                    return Err(EspError::Invalid {
                        parameter: "endpoints",
                        reason: "source and destination must be of one family",
                    });
                }
                let tunnel = Template::new(src, dst, outer.carried(), self.cfg.tunnel_ttl)?;
                Outer { tunnel: Some(tunnel), udp: outer.udp }
            }
            (None, None) => return Err(EspError::Unsupported(Limitation::DummyNeedsAddresses)),
        };
        let Some(template) = &dummy_outer.tunnel else {
            return Err(EspError::Unsupported(Limitation::DummyNeedsAddresses));
        };
        let plan = self.dummy_plan(template, &dummy_outer, len)?;
        let seq = self.sequence.reserve(1).map_err(|stop| self.stopped(stop))?.first;
        out.reserve(plan.total + self.cipher.scratch_len());
        out.resize(plan.body_at(), 0);
        self.write_front(&plan, Kept::InPlace, &dummy_outer, seq, out)?;
        out.resize(out.len() + len, 0);
        esp::push_padding_and_trailer(out, plan.pad, plan.next_header);
        let fields = HeaderFields { spi: self.cfg.spi, seq, iv: seq.to_be_bytes() };
        self.cipher.seal_in_place(out, plan.esp_at(), fields)?;
        self.fill_udp_checksum(&dummy_outer, plan.v4, plan.udp_at(), out)
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
