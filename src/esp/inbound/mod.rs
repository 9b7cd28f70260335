//! The receiving side of an SA: `open`, in the order RFC 4303 §3.4 and the
//! project's checklist give.

mod burst;
mod plan;

use super::cipher::SaCipher;
use super::counters::SharedCounters;
use super::lifetime::{LifeState, Totals};
use super::outbound::LIFETIME_CHECK_EVERY;
use super::packet;
use super::packet_buf::{PacketBuf, PacketBuffer};
use super::replay::ReplayWindow;
use super::selector;
use super::wire as esp;
use super::{Counters, EspError, Field, Header, LifetimeStatus, Limitation, Mode, SaConfig};
use crate::Backend;
use crate::net::ip::{Addresses, Datagram};
use crate::net::{Ipv6Chain, protocol};
use burst::{CHUNK, SMALL};
use std::time::Instant;
use zeroize::Zeroize;

/// The receiving half of an SA: checks and opens ESP packets.
///
/// `Send + Sync`, with every method on `&self`: several threads (one per
/// receive queue, say) can open one SA's packets at once; the replay window
/// is shared and decides races exactly (of two copies of a packet, one is
/// delivered). Size [`SaConfig::replay_window`] for the reordering the
/// queues cause.
///
/// `open` works in this order, and nothing later runs when something
/// earlier fails:
///
/// 1. format and lengths: every length field against the bytes present,
///    the outer IPv4 header checksum, fragments dropped, the protocol (ESP,
///    or UDP with NAT-T: keepalives and IKE packets are reported as such),
///    the SPI, the ciphertext's 4-byte alignment;
/// 2. replay pre-check (with ESN, the high half is estimated first);
/// 3. AEAD open: the ICV is verified before any plaintext is released;
/// 4. only then is the replay window updated;
/// 5. the padding must read 1, 2, 3, ...;
/// 6. next header 59: a dummy packet, dropped ([`EspError::Dummy`]); a next
///    header the SA does not deliver ([`SaConfig::next_headers`]) is
///    refused ([`EspError::UnexpectedNextHeader`]);
/// 7. the packet is rebuilt (transport) or unwrapped (tunnel, dropping any
///    TFC padding) and its checksums are verified: IPv4 header, and TCP,
///    UDP, ICMP, ICMPv6. With NAT-T in transport mode the RFC 3948 §3.1.2
///    option-1 fix-up with [`SaConfig::nat_original`] runs first.
///
/// On any error `out` is left empty (and what had been decrypted into it is
/// zeroed), the matching counter grows, and nothing else happens: no log
/// line, no reply.
///
/// ```
/// use espgcm::esp::{EspError, Inbound, Outbound, SaConfig};
/// use espgcm::net::{Ipv4Repr, TcpRepr, protocol};
/// use espgcm::net::checksum::pseudo_header_v4;
/// use std::net::Ipv4Addr;
///
/// // TCP over IPv4: a 20-byte header, a 20-byte TCP header, 4 bytes of data.
/// let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
/// let mut packet = vec![0u8; 44];
/// packet[40..].copy_from_slice(b"ruok");
/// Ipv4Repr { src_addr: src, dst_addr: dst, protocol: protocol::TCP, payload_len: 24,
///            ttl: 64, dscp_ecn: 0, ident: 1, dont_frag: true }.emit(&mut packet)?;
/// TcpRepr { src_port: 40000, dst_port: 2181, seq_number: 1, ack_number: 1, flags: 0x18, window: 512 }
///     .emit(&mut packet[20..], pseudo_header_v4(src, dst, protocol::TCP, 24))?;
///
/// let keymat = [0x42u8; 36]; // AES-256 key || salt
/// let tx = Outbound::new(SaConfig::new(0x2000, &keymat))?;
/// let rx = Inbound::new(SaConfig::new(0x2000, &keymat))?;
/// let (mut sealed, mut opened) = (Vec::new(), Vec::new());
/// tx.seal(&packet, &mut sealed)?;
///
/// rx.open(&sealed, &mut opened)?;
/// assert_eq!(opened, packet);
///
/// // The same packet again is a replay; a damaged one fails the ICV.
/// assert_eq!(rx.open(&sealed, &mut opened), Err(EspError::Replay { seq: 1 }));
/// tx.seal(&packet, &mut sealed)?;
/// let last = sealed.len() - 1;
/// sealed[last] ^= 1;
/// assert_eq!(rx.open(&sealed, &mut opened), Err(EspError::Auth { seq: 2 }));
/// assert!(opened.is_empty());
/// assert_eq!((rx.stats().packets, rx.stats().replayed, rx.stats().auth_failed), (1, 1, 1));
/// # Ok::<(), EspError>(())
/// ```
#[derive(Debug)]
pub struct Inbound {
    cfg: SaConfig,
    cipher: SaCipher,
    window: ReplayWindow,
    nat_original: Option<Addresses>,
    /// `cfg.next_headers` as a set of the 256 values.
    next_headers: [u64; 4],
    /// Soft and hard lifetime limits, and which were crossed.
    life: LifeState,
    counters: SharedCounters,
}

impl Inbound {
    /// Set up the receiving side of an SA.
    ///
    /// # Errors
    /// [`EspError::Invalid`] for a bad setting (see [`SaConfig::validate`]),
    /// [`EspError::Unsupported`] if the requested backend cannot run here.
    pub fn new(mut cfg: SaConfig) -> Result<Inbound, EspError> {
        let cipher = SaCipher::from_config(&mut cfg)?;
        let window = ReplayWindow::new(cfg.replay_window);
        let nat_original = cfg.nat_original.map(|(src, dst)| Addresses::new(src, dst));
        let next_headers = cfg.next_headers.bitmap(&cfg.mode);
        let life = LifeState::new(cfg.lifetime, None);
        Ok(Inbound { cfg, cipher, window, nat_original, next_headers, life, counters: SharedCounters::default() })
    }

    /// The configuration this SA was made with (its `keymat` is empty).
    pub fn config(&self) -> &SaConfig {
        &self.cfg
    }

    /// The AES-GCM backend the key runs on.
    pub fn backend(&self) -> Backend {
        self.cipher.backend()
    }

    /// The counters of this SA.
    pub fn stats(&self) -> Counters {
        self.counters.snapshot()
    }

    /// The anti-replay window (its top is the highest sequence number
    /// received).
    pub fn replay_window(&self) -> &ReplayWindow {
        &self.window
    }

    /// Refuse the call if the SA crossed a hard lifetime limit.
    #[inline]
    fn admit(&self) -> Result<(), EspError> {
        match self.life.stopped() {
            None => Ok(()),
            Some(which) => Err(EspError::LifetimeExpired { spi: self.cfg.spi, which }),
        }
    }

    /// Compare the totals with the lifetime limits.
    fn check_lifetime(&self, now: impl FnOnce() -> Instant) {
        let (packets, bytes) = if self.life.counts_traffic() { self.counters.packets_and_bytes() } else { (0, 0) };
        self.life.check(Totals { bytes, packets }, now);
    }

    /// Check the lifetime limits as of `now` and return the crossings not
    /// reported before; see [`Outbound::poll_lifetime`](super::Outbound::poll_lifetime).
    pub fn poll_lifetime(&self, now: Instant) -> LifetimeStatus {
        self.check_lifetime(|| now);
        self.life.take_new()
    }

    /// The lifetime limits crossed so far.
    pub fn lifetime(&self) -> LifetimeStatus {
        self.life.status()
    }

    /// How long ago the SA was made (what time lifetimes measure).
    pub fn age(&self) -> std::time::Duration {
        self.life.age(Instant::now())
    }

    /// Treat every sequence number up to `seq` as received (restoring state
    /// after a restart or fail-over). Never moves back.
    pub fn advance_to(&self, seq: u64) {
        self.window.advance_to(seq);
    }

    /// Open one IP packet carrying ESP (or UDP-encapsulated ESP). `out` is
    /// cleared and receives the inner packet (tunnel) or the restored packet
    /// (transport).
    ///
    /// # Errors
    /// Every rejection has its variant: [`EspError::Truncated`],
    /// [`EspError::Malformed`], [`EspError::Fragment`],
    /// [`EspError::UnknownSpi`], [`EspError::Replay`], [`EspError::TooOld`],
    /// [`EspError::Auth`], [`EspError::BadPadding`],
    /// [`EspError::UnexpectedNextHeader`],
    /// [`EspError::ChecksumAfterDecrypt`], [`EspError::NotCovered`],
    /// [`EspError::LifetimeExpired`] (a hard lifetime limit crossed: nothing
    /// is decrypted), [`EspError::Unsupported`]; and
    /// the benign outcomes [`EspError::Dummy`], [`EspError::NatKeepalive`]
    /// and [`EspError::NonEsp`] (see [`EspError::is_benign`]).
    pub fn open(&self, ip_packet: &[u8], out: &mut Vec<u8>) -> Result<(), EspError> {
        out.clear();
        match self.admit().and_then(|()| self.open_packet(ip_packet, out)) {
            Ok(unverifiable) => {
                let n = self.counters.record_packet(out.len(), unverifiable);
                if n.is_multiple_of(LIFETIME_CHECK_EVERY) && self.life.is_checked() {
                    self.check_lifetime(Instant::now);
                }
                Ok(())
            }
            Err(e) => {
                out.fill(0);
                out.clear();
                self.counters.record(&e);
                Err(e)
            }
        }
    }

    /// Open a burst of packets where they lie, each in its own buffer:
    /// `results[i]` says what became of `pkts[i]`. The AES-GCM work of the
    /// burst goes to [`Gcm::decrypt_batch`](crate::Gcm::decrypt_batch) in
    /// one call, each packet's payload decrypted in place; the inner packet
    /// (tunnel mode) or the restored packet (transport mode, its IP header
    /// moved forward onto the payload) is left where it lies, and each
    /// buffer's start and length say where.
    ///
    /// Each packet is judged alone (a damaged, replayed or duplicated one
    /// never fails its neighbours; of two copies of one packet in a burst
    /// the first is delivered and the second refused as a replay). A packet
    /// refused before decryption (format, SPI, replay window; NAT-T
    /// keepalives and IKE packets) is left as it arrived. One refused at its
    /// ICV or after it was decrypted in place: its ESP payload is zeroed, so
    /// nothing decrypted is left in it (its headers are left as they
    /// arrived).
    ///
    /// Only the first `min(pkts.len(), results.len())` packets are opened.
    /// See [`Outbound::seal_burst`](super::Outbound::seal_burst) for an
    /// example.
    pub fn open_burst(&self, pkts: &mut [PacketBuf], results: &mut [Result<(), EspError>]) {
        self.open_burst_in(pkts, results);
    }

    /// [`open_burst`](Self::open_burst) on any [`PacketBuffer`]: a data
    /// plane's own packet memory ([`PacketSlice`](super::PacketSlice)).
    pub fn open_burst_in<B: PacketBuffer>(&self, pkts: &mut [B], results: &mut [Result<(), EspError>]) {
        let n = pkts.len().min(results.len());
        let (Some(pkts), Some(results)) = (pkts.get_mut(..n), results.get_mut(..n)) else {
            return;
        };
        if let Err(e) = self.admit() {
            self.counters.refuse_burst(results, &e);
            return;
        }
        let mut tally = Counters::default();
        if n == 1 {
            self.open_chunk::<B, 1>(pkts, results, &mut tally);
        } else if n <= SMALL {
            self.open_chunk::<B, SMALL>(pkts, results, &mut tally);
        } else {
            for (pkts, results) in pkts.chunks_mut(CHUNK).zip(results.chunks_mut(CHUNK)) {
                self.open_chunk::<B, CHUNK>(pkts, results, &mut tally);
            }
        }
        self.counters.add(&tally);
        if self.life.is_checked() {
            self.check_lifetime(Instant::now);
        }
    }

    /// [`open`](Self::open)'s work: the checks before decryption, the
    /// ciphertext decrypted into `out` (behind the kept header in
    /// transport mode), then the checks after. Returns whether the packet
    /// is a tunnelled fragment whose upper-layer checksum could not be
    /// verified.
    fn open_packet(&self, ip_packet: &[u8], out: &mut Vec<u8>) -> Result<bool, EspError> {
        // 1, 2. Format and lengths, replay pre-check.
        let plan = self.plan(ip_packet)?;
        let available = ip_packet.len();
        let truncated = || EspError::Truncated { header: Header::Esp, needed: plan.esp_at + plan.esp_len, available };
        let esp_bytes = ip_packet.get(plan.esp_at..plan.esp_at + plan.esp_len).ok_or_else(truncated)?;

        // 3. AEAD open into `out`, behind the kept header in transport mode.
        let transport = matches!(self.cfg.mode, Mode::Transport);
        let prefix_len = if transport { plan.prefix_len } else { 0 };
        out.reserve(prefix_len + plan.esp_len + self.cipher.open_room());
        if transport {
            packet::extend_header(out, ip_packet.get(..prefix_len).ok_or_else(truncated)?);
        }
        self.cipher.open(esp_bytes, plan.seq, out)?;

        // 4 to 6. Window, padding, dummy.
        let (payload_len, next_header) = self.after_icv(plan.seq, out.get(prefix_len..).unwrap_or_default())?;
        out.truncate(prefix_len + payload_len);

        // 7. Rebuild or unwrap, then the checksums.
        if transport {
            self.restore_transport(plan.version, plan.next_header_at, next_header, plan.seq, out).map(|()| false)
        } else {
            let (inner_len, unverifiable) = self.unwrap_tunnel(next_header, plan.seq, out)?;
            out.truncate(inner_len);
            Ok(unverifiable)
        }
    }

    /// RFC 4301 §5.2: the decrypted packet must be one the SA's selectors
    /// cover.
    fn check_selectors(&self, d: &Datagram, bytes: &[u8], seq: u64) -> Result<(), EspError> {
        if self.cfg.selectors.is_empty() {
            return Ok(());
        }
        let (addrs, protocol, ports) = selector::flow(d, bytes);
        if selector::covered(&self.cfg.selectors, true, addrs, protocol, ports) {
            Ok(())
        } else {
            Err(EspError::NotCovered { seq: Some(seq) })
        }
    }

    /// Whether `cfg.next_headers` lets `next_header` through.
    fn delivers(&self, next_header: u8) -> bool {
        let word = self.next_headers.get(usize::from(next_header >> 6)).copied().unwrap_or(0);
        word & (1 << (next_header & 63)) != 0
    }

    /// Open bare ESP (SPI || low sequence number || IV || ciphertext || ICV)
    /// and return (payload, next header), padding checked. `seq_high` is the
    /// high half of the sequence number with ESN (ignored without). No
    /// replay state is read or changed and no counter moves: this is for
    /// published test vectors and custom framing.
    ///
    /// # Errors
    /// [`EspError::Truncated`], [`EspError::Malformed`] (ciphertext length),
    /// [`EspError::UnknownSpi`], [`EspError::Auth`], [`EspError::BadPadding`].
    pub fn open_payload_at(&self, seq_high: u32, esp_bytes: &[u8]) -> Result<(Vec<u8>, u8), EspError> {
        let header = self.check_esp(esp_bytes)?;
        let ciphertext_len = esp_bytes.len() - esp::HEADER_LEN - esp::IV_LEN - self.cipher.icv_len();
        let low = u64::from(header.sequence());
        let seq = if self.cfg.esn { (u64::from(seq_high) << 32) | low } else { low };
        let mut out = Vec::with_capacity(ciphertext_len + self.cipher.open_room());
        self.cipher.open(esp_bytes, seq, &mut out)?;
        match esp::parse_trailer(&out) {
            Ok((payload_len, next_header)) => {
                out.truncate(payload_len);
                Ok((out, next_header))
            }
            Err(e) => {
                out.zeroize();
                Err(match e {
                    esp::TrailerError::Truncated => {
                        EspError::Truncated { header: Header::EspTrailer, needed: 2, available: ciphertext_len }
                    }
                    esp::TrailerError::BadPadding(pad_len) => EspError::BadPadding { seq, pad_len },
                })
            }
        }
    }
}

/// Walk an IPv6 header chain to the ESP (or UDP, with NAT-T) header.
pub(super) fn find_esp_v6(mut chain: Ipv6Chain<'_>, want: u8) -> Result<Ipv6Chain<'_>, EspError> {
    while chain.next()?.is_some() {}
    match chain.pos().next_header {
        nh if nh == want => Ok(chain),
        protocol::FRAGMENT => Err(EspError::Fragment),
        protocol::AH => Err(EspError::Unsupported(Limitation::Ipv6ExtensionHeader(protocol::AH))),
        other => Err(EspError::Malformed { field: Field::Protocol, value: other.into() }),
    }
}
