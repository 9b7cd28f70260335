//! What an SA is: SPI, keys, transform, mode, encapsulation and policies.

use super::EspError;
use super::lifetime::{self, Lifetime};
use super::selector::Selector;
use crate::{Backend, VerifyPolicy};
use core::fmt;
use std::net::IpAddr;

/// The largest replay window [`SaConfig::replay_window`] accepts, in packets
/// (the ring is then 512 KiB).
pub const MAX_REPLAY_WINDOW: u32 = 1 << 20;

/// The replay window [`SaConfig::new`] sets, in packets: room for the
/// reordering of several receive threads sharing one SA (two threads on two
/// cores opening bursts of 32 dealt round-robin lagged up to about 2,000
/// packets behind each other, `cargo bench --bench esp_reorder`), for 2 KiB
/// of window per SA.
pub const DEFAULT_REPLAY_WINDOW: u32 = 4096;

/// The verify policy [`SaConfig::new`] sets: one message in 4096
/// cross-checked against the scalar backend. A host that corrupts AES
/// output corrupts many messages, so this finds it within milliseconds of
/// busy traffic and quarantines the backend, for about 2% of the SIMD cost
/// at 1420 bytes (see the README's verify section for the measurements).
pub const DEFAULT_VERIFY: VerifyPolicy = VerifyPolicy::Sample { one_in: 4096 };

/// The NAT-T port (RFC 3948).
pub const NAT_T_PORT: u16 = 4500;

/// The ESP transform.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Transform {
    /// AES-GCM (RFC 4106): confidentiality and integrity.
    #[default]
    AesGcm,
    /// AES-GMAC (RFC 4543, `ENCR_NULL_AUTH_AES_GMAC`): integrity only; the
    /// payload travels in the clear and is authenticated with the header and
    /// IV. Its ICV is always 16 bytes.
    AesGmac,
}

/// Transport or tunnel mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The IP header stays; ESP protects the upper-layer payload.
    #[default]
    Transport,
    /// The whole packet is protected and carried inside a new outer header
    /// from `src` to `dst` (both of one family; the inner packets may be of
    /// either family).
    Tunnel {
        /// Outer source address.
        src: IpAddr,
        /// Outer destination address.
        dst: IpAddr,
    },
}

/// How ESP is carried.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Encap {
    /// IP protocol 50.
    #[default]
    None,
    /// Inside UDP (RFC 3948, NAT traversal), normally port 4500 both ways.
    /// Outbound sends from `src_port` to `dst_port`; inbound accepts any
    /// ports (a NAT may rewrite them), so the caller's socket decides.
    Udp {
        /// UDP source port of sent packets.
        src_port: u16,
        /// UDP destination port of sent packets.
        dst_port: u16,
    },
}

impl Encap {
    /// UDP encapsulation on port 4500 both ways.
    pub const NAT_T: Encap = Encap::Udp { src_port: NAT_T_PORT, dst_port: NAT_T_PORT };
}

/// Whether upper-layer checksums (TCP, UDP, ICMP, ICMPv6) are verified
/// before encryption and after decryption.
///
/// IPv4 header checksums are always verified.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ChecksumPolicy {
    /// Verify: a damaged packet is refused by `seal` and dropped by `open`.
    #[default]
    Verify,
    /// Do not verify (the NAT-T transport fix-up is still applied). Only for
    /// callers whose next stage verifies every checksum itself.
    Skip,
}

/// Which next-header values (IP protocol numbers, from the ESP trailer)
/// `open` delivers. In transport mode over IPv6 the value judged is the
/// upper-layer protocol reached through the extension headers carried inside
/// ESP (destination options, routing).
///
/// The next-header byte is protected by the ICV alone: a sender whose AES
/// path corrupted it computed a valid ICV over the corrupted byte. A packet
/// whose TCP next header turned into a protocol without a checksum would be
/// delivered with nothing to catch the damage, so by default an SA delivers
/// only what `open` can verify itself. Next header 59 (a dummy packet) is
/// always recognised and dropped as [`EspError::Dummy`].
///
/// ```
/// use espgcm::esp::{Mode, NextHeaders, SaConfig};
///
/// let sctp_too = SaConfig { next_headers: NextHeaders::Only(vec![6, 17, 132]), ..SaConfig::new(0x1000, &[1; 20]) };
/// assert!(sctp_too.next_headers.allows(&sctp_too.mode, 132));
/// assert!(!NextHeaders::Verifiable.allows(&Mode::Transport, 132));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum NextHeaders {
    /// Those whose integrity `open` checks after decryption: in transport
    /// mode TCP (6), UDP (17), ICMP (1) and ICMPv6 (58); in tunnel mode
    /// IPv4 (4) and IPv6 (41), whose inner packets are then checked.
    #[default]
    Verifiable,
    /// Exactly these values (in tunnel mode a subset of 4 and 41). Widening
    /// the list to a protocol without a checksum means trusting the ICV
    /// alone for it.
    Only(Vec<u8>),
}

/// The next headers [`NextHeaders::Verifiable`] lets through in transport mode.
const VERIFIABLE_TRANSPORT: [u8; 4] = [6, 17, 1, 58];
/// The next headers tunnel mode can carry.
const TUNNEL_PAYLOADS: [u8; 2] = [4, 41];

impl NextHeaders {
    /// Whether an SA in `mode` with this setting delivers a packet whose
    /// trailer names `next_header`.
    pub fn allows(&self, mode: &Mode, next_header: u8) -> bool {
        match self {
            NextHeaders::Verifiable => match mode {
                Mode::Transport => VERIFIABLE_TRANSPORT.contains(&next_header),
                Mode::Tunnel { .. } => TUNNEL_PAYLOADS.contains(&next_header),
            },
            NextHeaders::Only(list) => list.contains(&next_header),
        }
    }

    /// A 256-bit set of the allowed values, for the packet path.
    pub(crate) fn bitmap(&self, mode: &Mode) -> [u64; 4] {
        let mut set = [0u64; 4];
        for value in 0..=u8::MAX {
            if self.allows(mode, value)
                && let Some(word) = set.get_mut(usize::from(value >> 6))
            {
                *word |= 1 << (value & 63);
            }
        }
        set
    }
}

/// The parameters of one security association, one direction.
///
/// Make one with [`SaConfig::new`] (every default filled) and change the
/// fields you need:
///
/// ```
/// use espgcm::esp::{Encap, Mode, SaConfig};
///
/// let keymat = [0x11u8; 20]; // AES-128 key || 4-byte salt
/// let cfg = SaConfig {
///     mode: Mode::Tunnel { src: "192.0.2.1".parse()?, dst: "198.51.100.2".parse()? },
///     encap: Encap::NAT_T,
///     icv_len: 12,
///     ..SaConfig::new(0x1000, &keymat)
/// };
/// assert_eq!(cfg.replay_window, 4096);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// `Debug` shows the key material's length, never its bytes. `Outbound::new`
/// and `Inbound::new` take the configuration by value and wipe their copy of
/// the key material once the key is set up.
#[derive(Clone)]
pub struct SaConfig {
    /// Security Parameter Index. 0 is refused (it marks non-ESP packets on
    /// UDP 4500) and so are 1..=255 (reserved by IANA, RFC 4303 §2.1).
    pub spi: u32,
    /// AES key || 4-byte salt (RFC 4106 §8.1): 20, 28 or 36 bytes for
    /// AES-128, AES-192 or AES-256.
    pub keymat: Vec<u8>,
    /// AES-GCM (default) or AES-GMAC.
    pub transform: Transform,
    /// ICV length in bytes: 16 (default), 12 or 8. AES-GMAC allows only 16.
    pub icv_len: usize,
    /// Transport (default) or tunnel.
    pub mode: Mode,
    /// Plain ESP (default) or UDP-encapsulated (NAT-T).
    pub encap: Encap,
    /// NAT-OA: the original (source, destination) addresses of packets
    /// received on this SA, as the sender saw them (RFC 3947). Used in
    /// transport mode with UDP encapsulation to fix the TCP/UDP checksum up
    /// for the addresses a NAT rewrote (RFC 3948 §3.1.2, option 1) before
    /// the checksum is verified. `None`: no fix-up (and so a NAT's rewrite
    /// shows up as a checksum failure, never as silently accepted data).
    pub nat_original: Option<(IpAddr, IpAddr)>,
    /// Extended (64-bit) sequence numbers (RFC 4303 §2.2.1). Default false.
    pub esn: bool,
    /// Anti-replay window in packets: 0 disables the check; at most
    /// [`MAX_REPLAY_WINDOW`]; default [`DEFAULT_REPLAY_WINDOW`].
    pub replay_window: u32,
    /// Verify upper-layer checksums (default) or skip them.
    pub checksums: ChecksumPolicy,
    /// The AES-GCM backend; `None` (default) takes [`Backend::best()`].
    pub backend: Option<Backend>,
    /// How much SIMD output is cross-checked against the scalar backend.
    /// Default [`DEFAULT_VERIFY`] (one message in 4096).
    pub verify: VerifyPolicy,
    /// Tunnel mode: TTL / hop limit of the outer header. Default 64.
    pub tunnel_ttl: u8,
    /// Which next headers `open` delivers; others are refused with
    /// [`EspError::UnexpectedNextHeader`]. Default
    /// [`NextHeaders::Verifiable`].
    pub next_headers: NextHeaders,
    /// The path MTU outbound packets must fit: a packet that would exceed
    /// it once sealed, and may not be fragmented (IPv4 with DF, or IPv6),
    /// is refused with [`EspError::PacketTooBig`] carrying the MTU to report
    /// to its sender. `None` (default): no limit beyond the IP length field.
    pub path_mtu: Option<u16>,
    /// Traffic selectors (RFC 4301 §4.4.1) the SA's packets must match:
    /// checked after decryption (the inner packet in tunnel mode) and before
    /// encryption; a packet outside them is refused with
    /// [`EspError::NotCovered`]. Empty (default): anything.
    pub selectors: Vec<Selector>,
    /// Soft and hard limits on bytes, packets and time (RFC 4301
    /// §4.4.2.1); default [`Lifetime::NONE`]. See [`Lifetime`].
    pub lifetime: Lifetime,
}

impl SaConfig {
    /// An SA with every default: AES-GCM, 16-byte ICV, transport mode, no
    /// UDP encapsulation, no ESN, replay window [`DEFAULT_REPLAY_WINDOW`],
    /// checksums verified, best backend, one message in 4096 cross-checked
    /// ([`DEFAULT_VERIFY`]), only verifiable next headers delivered, no
    /// selectors (anything), no path MTU, no lifetime limits.
    ///
    /// Nothing is checked here; [`Outbound::new`](super::Outbound::new) and
    /// [`Inbound::new`](super::Inbound::new) check everything.
    pub fn new(spi: u32, keymat: &[u8]) -> SaConfig {
        SaConfig {
            spi,
            keymat: keymat.to_vec(),
            transform: Transform::AesGcm,
            icv_len: 16,
            mode: Mode::Transport,
            encap: Encap::None,
            nat_original: None,
            esn: false,
            replay_window: DEFAULT_REPLAY_WINDOW,
            checksums: ChecksumPolicy::Verify,
            backend: None,
            verify: DEFAULT_VERIFY,
            tunnel_ttl: 64,
            next_headers: NextHeaders::Verifiable,
            path_mtu: None,
            selectors: Vec::new(),
            lifetime: Lifetime::NONE,
        }
    }

    /// Check every field; the first problem found is returned.
    ///
    /// # Errors
    /// [`EspError::Invalid`] naming the field and what would be accepted.
    pub fn validate(&self) -> Result<(), EspError> {
        let invalid = |parameter, reason| Err(EspError::Invalid { parameter, reason });
        if self.spi == 0 {
            return invalid("spi", "SPI 0 is reserved: on UDP 4500 it marks non-ESP (IKE) packets");
        }
        if self.spi <= 255 {
            return invalid("spi", "SPIs 1 to 255 are reserved by IANA (RFC 4303 section 2.1); use 256 or above");
        }
        if !matches!(self.keymat.len(), 20 | 28 | 36) {
            return invalid(
                "keymat",
                "keying material must be an AES key followed by a 4-byte salt: 20, 28 or 36 bytes",
            );
        }
        if !matches!(self.icv_len, 8 | 12 | 16) {
            return invalid("icv_len", "the ICV must be 16, 12 or 8 bytes (RFC 4106)");
        }
        if self.transform == Transform::AesGmac && self.icv_len != 16 {
            return invalid("icv_len", "AES-GMAC (RFC 4543) has a 16-byte ICV only");
        }
        if let Mode::Tunnel { src, dst } = self.mode
            && src.is_ipv4() != dst.is_ipv4()
        {
            return invalid("mode", "the tunnel's outer source and destination must be of one IP family");
        }
        if let Encap::Udp { src_port, dst_port } = self.encap
            && (src_port == 0 || dst_port == 0)
        {
            return invalid("encap", "UDP encapsulation needs non-zero ports (normally 4500)");
        }
        if let Some((src, dst)) = self.nat_original
            && src.is_ipv4() != dst.is_ipv4()
        {
            return invalid("nat_original", "the original source and destination must be of one IP family");
        }
        if self.replay_window > MAX_REPLAY_WINDOW {
            return invalid("replay_window", "the replay window can be at most 1048576 packets (0 disables it)");
        }
        if self.tunnel_ttl == 0 {
            return invalid("tunnel_ttl", "an outer TTL of 0 would be dropped by the first router");
        }
        if let Some(reason) = self.selectors.iter().find_map(Selector::problem) {
            return invalid("selectors", reason);
        }
        lifetime::validate(&self.lifetime)?;
        if self.path_mtu.is_some_and(|m| m < 576) {
            return invalid("path_mtu", "a path MTU below 576 bytes (what every IPv4 host must accept) is not usable");
        }
        if let NextHeaders::Only(list) = &self.next_headers {
            if list.is_empty() {
                return invalid(
                    "next_headers",
                    "an empty list would refuse every packet; list the protocols to deliver",
                );
            }
            if matches!(self.mode, Mode::Tunnel { .. }) && !list.iter().all(|nh| TUNNEL_PAYLOADS.contains(nh)) {
                return invalid(
                    "next_headers",
                    "tunnel mode carries IP packets only: list 4 (IPv4), 41 (IPv6) or both",
                );
            }
        }
        Ok(())
    }

    /// The 4-byte salt (last 4 bytes of the keying material).
    pub(crate) fn salt(&self) -> [u8; 4] {
        self.keymat.last_chunk::<4>().copied().unwrap_or([0; 4])
    }

    /// The AES key (the keying material without its salt).
    pub(crate) fn key(&self) -> &[u8] {
        self.keymat.get(..self.keymat.len().saturating_sub(4)).unwrap_or(&[])
    }
}

impl fmt::Debug for SaConfig {
    /// Everything but the key material, of which only the length is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaConfig")
            .field("spi", &format_args!("{:#010x}", self.spi))
            .field("keymat", &format_args!("<{} bytes, not shown>", self.keymat.len()))
            .field("transform", &self.transform)
            .field("icv_len", &self.icv_len)
            .field("mode", &self.mode)
            .field("encap", &self.encap)
            .field("nat_original", &self.nat_original)
            .field("esn", &self.esn)
            .field("replay_window", &self.replay_window)
            .field("checksums", &self.checksums)
            .field("backend", &self.backend)
            .field("verify", &self.verify)
            .field("tunnel_ttl", &self.tunnel_ttl)
            .field("next_headers", &self.next_headers)
            .field("path_mtu", &self.path_mtu)
            .field("selectors", &self.selectors)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}
