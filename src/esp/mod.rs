//! IPsec ESP with AES-GCM (RFC 4303, RFC 4106) and AES-GMAC (RFC 4543):
//! transport and tunnel mode, IPv4 and IPv6, UDP encapsulation for NAT
//! traversal (RFC 3948), extended sequence numbers and an RFC 6479
//! anti-replay window.
//!
//! An SA is described by a [`SaConfig`]; its sending half is an
//! [`Outbound`] ([`seal`](Outbound::seal)) and its receiving half an
//! [`Inbound`] ([`open`](Inbound::open)). Both take whole IP packets and
//! write whole IP packets into a caller-owned `Vec` that is cleared first
//! and reserved once to the exact size, so a data plane that reuses its
//! buffers allocates nothing per packet.
//!
//! ```
//! use espgcm::net::checksum::pseudo_header_v4;
//! use espgcm::net::{Ipv4Repr, UdpRepr, protocol};
//! use espgcm::esp::{Encap, Inbound, Mode, Outbound, SaConfig};
//! use std::net::Ipv4Addr;
//!
//! // A UDP datagram over IPv4, checksums and all.
//! let (src, dst) = (Ipv4Addr::new(10, 1, 0, 1), Ipv4Addr::new(10, 2, 0, 1));
//! let data = b"example payload";
//! let mut packet = vec![0u8; 20 + 8 + data.len()];
//! packet[28..].copy_from_slice(data);
//! let ip = Ipv4Repr { src_addr: src, dst_addr: dst, protocol: protocol::UDP, payload_len: 8 + data.len(),
//!                     ttl: 64, dscp_ecn: 0, ident: 7, dont_frag: false };
//! ip.emit(&mut packet)?;
//! let pseudo = pseudo_header_v4(src, dst, protocol::UDP, (8 + data.len()) as u16);
//! UdpRepr { src_port: 40001, dst_port: 40002 }.emit(&mut packet[20..], data.len(), Some(pseudo))?;
//!
//! let keymat = [7u8; 36]; // AES-256 key || salt
//! let tunnel = Mode::Tunnel { src: "203.0.113.1".parse()?, dst: "198.51.100.9".parse()? };
//! let cfg = SaConfig { mode: tunnel, encap: Encap::NAT_T, ..SaConfig::new(0x5000, &keymat) };
//! let (tx, rx) = (Outbound::new(cfg.clone())?, Inbound::new(cfg)?);
//!
//! let (mut sealed, mut opened) = (Vec::new(), Vec::new());
//! tx.seal(&packet, &mut sealed)?;
//! rx.open(&sealed, &mut opened)?;
//! assert_eq!(opened, packet);
//! assert_eq!(rx.stats().packets, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//!
//! - **Checked views.** Every header is read through a view of
//!   [`crate::net`] (IP, UDP, TCP, ICMP) or of [`wire`] (ESP) whose
//!   constructor compares each length field with the bytes present; nothing
//!   is allocated from a length read off the wire; malformed input is an
//!   [`EspError`] naming the field (the network layer's
//!   [`WireError`](crate::net::WireError)s convert into it). This module tree denies `unwrap`, `expect`, indexing
//!   and explicit panics (clippy), and `unsafe`: it takes sub-slices of a
//!   packet from the views that checked them.
//! - **Checksums on both sides.** The crate exists because a silently
//!   corrupting AES path and a receiver that skipped the inner checksum
//!   (NAT-T transport mode) let damaged data through. So `seal` verifies the
//!   packet's checksums before encrypting ([`EspError::ChecksumBeforeEncrypt`]),
//!   and `open` verifies them after decrypting, in every mode
//!   ([`EspError::ChecksumAfterDecrypt`]); behind a NAT in transport mode
//!   the RFC 3948 §3.1.2 option-1 fix-up runs first ([`natt`]). One
//!   checksum routine serves the whole crate ([`crate::net::checksum`]).
//! - **Only what can be vouched for.** The trailer's next header is
//!   protected by the ICV alone, so a sender-side fault that hit it would
//!   turn TCP into a protocol with no checksum to catch the damage. `open`
//!   delivers only the next headers the SA expects ([`NextHeaders`]: by
//!   default those whose checksums it verifies) and refuses the rest
//!   ([`EspError::UnexpectedNextHeader`]).
//! - **Receiver order.** Format, replay pre-check, ICV, window update,
//!   padding, dummy, next header, checksums: see [`Inbound`]. Plaintext is never
//!   released before the ICV verifies, and a forged packet never moves the
//!   replay window.
//! - **Sequence numbers and IVs.** Sequence numbers start at 1 and never
//!   wrap ([`EspError::SequenceExhausted`]); the 8-byte IV is the 64-bit
//!   sequence number, so it never repeats under a key.
//! - **Audit.** Each SA counts every outcome ([`Counters`]); nothing is
//!   logged per packet and nothing is ever sent back.
//! - **Many SAs.** [`SaTable`] is the SAD and SPD of a data plane, driven by
//!   a key manager the way an IKE daemon drives a kernel (add, update,
//!   delete, query, policies by id, re-keying without loss, NAT rebinding),
//!   with lookups that take no lock; `sa_file` (cargo feature `sa-file`)
//!   loads it from a manual-keying file.
//! - **Lifetimes.** Soft and hard limits on bytes, packets and time per SA
//!   ([`Lifetime`]): soft ones are reported to the key manager once, hard
//!   ones stop the SA ([`EspError::LifetimeExpired`]); the end of the 32-bit
//!   sequence space is one of them, with a warning ahead. A daemon keeping
//!   manual keys across restarts reserves sequence numbers ahead on disk
//!   ([`Outbound::set_sequence_limit`]).
//!
//! # Choices where the RFCs leave room
//!
//! - SPI 0 is refused (it is the NAT-T non-ESP marker) and so are the
//!   IANA-reserved SPIs 1 to 255.
//! - NAT-T: the UDP checksum is sent as 0 over IPv4 (RFC 3948) and computed
//!   over IPv6 (RFC 8200 forbids 0); it is accepted either way on receipt.
//!   Inbound accepts any UDP ports and any outer addresses (NATs rewrite
//!   them, and NAT mappings change); which SA a packet belongs to by its
//!   addresses is the [`SaTable`]'s lookup keys' business. An outbound SA's
//!   tunnel addresses and UDP ports can be changed while it runs
//!   ([`Outbound::set_endpoints`], NAT rebinding).
//! - Tunnel mode copies the inner DS field and ECN bits to the outer header
//!   (and DF for IPv4 in IPv4); the outer TTL is [`SaConfig::tunnel_ttl`].
//!   Outer ECN congestion marks are not propagated inward on decapsulation.
//! - Tunnel mode carries inner fragments; their upper-layer checksum covers
//!   the reassembled datagram, so it is not verifiable here and such packets
//!   are counted in [`Counters::unverifiable_fragments`].
//! - Upper-layer checksums checked: TCP, UDP, ICMP, ICMPv6. Other protocols
//!   are delivered only when [`SaConfig::next_headers`] lists them, with
//!   their IP header checked.

#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

mod cipher;
mod config;
mod counters;
mod endpoints;
mod error;
mod inbound;
mod key_claims;
mod lifetime;
pub mod natt;
mod outbound;
mod packet;
mod packet_buf;
pub mod replay;
#[cfg(feature = "sa-file")]
pub mod sa_file;
mod sa_table;
mod selector;
mod sequence;
pub mod wire;

pub use config::{
    ChecksumPolicy, DEFAULT_REPLAY_WINDOW, DEFAULT_VERIFY, Encap, MAX_REPLAY_WINDOW, Mode, NAT_T_PORT, NextHeaders,
    SaConfig, Transform,
};
pub use counters::Counters;
pub use error::{ChecksumKind, EspError, Field, Header, Limitation};
pub use inbound::Inbound;
pub use lifetime::{Lifetime, LifetimeKind, LifetimeStatus, SEQUENCE_SOFT_MARGIN};
pub use outbound::Outbound;
pub use packet_buf::{HEADROOM, PacketBuf, PacketBuffer, PacketSlice, TAILROOM};
pub use replay::ReplayWindow;
pub use sa_table::{
    Action, Direction, Policy, PolicyId, SHARDS, SaEvent, SaHandle, SaInfo, SaKey, SaSnapshot, SaTable, SaUpdate,
};
pub use selector::Selector;

/// A UDP datagram over IPv4 with 4 bytes of data and good checksums: input
/// for the unit tests of the burst paths.
#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
pub(crate) fn small_udp_v4() -> Vec<u8> {
    use crate::net::checksum::pseudo_header_v4;
    use crate::net::{Ipv4Repr, UdpRepr, protocol};
    let (src, dst) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
    let mut packet = vec![0u8; 32];
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: protocol::UDP,
        payload_len: 12,
        ttl: 64,
        dscp_ecn: 0,
        ident: 1,
        dont_frag: true,
    }
    .emit(&mut packet)
    .unwrap();
    packet[28..].copy_from_slice(b"data");
    UdpRepr { src_port: 1, dst_port: 2 }.emit(&mut packet[20..], 4, Some(pseudo_header_v4(src, dst, 17, 12))).unwrap();
    packet
}
