//! The SA database and the security policy database (RFC 4301 §4.4): which
//! inbound SA a received packet belongs to, and what to do with a packet to
//! be sent.
//!
//! - **Inbound (SAD):** SAs are found by SPI, and where configured by SPI and
//!   destination, or SPI, destination and source (the three lookups RFC 4301
//!   §4.1 allows; the most specific entry that matches wins), so that two
//!   peers may pick the same SPI.
//! - **Outbound (SPD):** an ordered list of policies, each a set of
//!   selectors and an action: protect with an SA, bypass (send in the clear)
//!   or discard. The first policy whose selectors cover the packet decides.
//!
//! Lookups read a snapshot of the tables through `arc-swap` and take no
//! lock; a change (add, remove) copies the tables, changes the copy and
//! publishes it, so a writer never makes the packet path wait, and a packet
//! in flight keeps the SA it found (an `Arc`) even if that SA is removed
//! meanwhile.

use super::inbound::find_esp_v6;
use super::natt::{self, UdpPayload};
use super::selector::{self, Selector};
use super::wire::EspPacket;
use super::{EspError, Field, Inbound, Outbound};
use crate::net::ip::{Datagram, IpHeader};
use crate::net::{UdpPacket, protocol};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

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

/// An inbound SA and the addresses it is looked up by.
#[derive(Clone, Debug)]
struct InboundEntry {
    sa: Arc<Inbound>,
    dst: Option<IpAddr>,
    src: Option<IpAddr>,
}

impl InboundEntry {
    /// How specific the entry is, if it matches the packet's addresses:
    /// 0 for SPI alone, 1 with the destination, 2 with both.
    fn matches(&self, dst: IpAddr, src: IpAddr) -> Option<u8> {
        match (self.dst, self.src) {
            (None, None) => Some(0),
            (Some(d), None) => (d == dst).then_some(1),
            (Some(d), Some(s)) => (d == dst && s == src).then_some(2),
            (None, Some(s)) => (s == src).then_some(1),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Tables {
    inbound: HashMap<u32, Vec<InboundEntry>>,
    policies: Vec<Policy>,
}

/// The SAD and SPD of a data plane.
///
/// ```
/// use espgcm::esp::{Action, Policy, SaConfig, SaTable, Selector, Inbound, Outbound};
/// use std::sync::Arc;
///
/// let table = SaTable::new();
/// let keymat = [0x31u8; 20];
/// let rx = table.add_inbound(Inbound::new(SaConfig::new(0x7001, &keymat))?, None, None)?;
/// assert_eq!(rx.config().spi, 0x7001);
/// let tx = Arc::new(Outbound::new(SaConfig::new(0x7002, &[0x32u8; 20]))?);
/// let to_peer = Selector::between(("10.1.0.0".parse()?, 16), ("10.2.0.0".parse()?, 16));
/// table.push_policy(Policy { selectors: vec![to_peer], action: Action::Protect(tx) });
/// assert_eq!(table.inbound_len(), 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct SaTable {
    tables: ArcSwap<Tables>,
}

impl Default for SaTable {
    fn default() -> SaTable {
        SaTable::new()
    }
}

impl SaTable {
    /// An empty table: no SA, no policy.
    pub fn new() -> SaTable {
        SaTable { tables: ArcSwap::from_pointee(Tables::default()) }
    }

    /// Install an inbound SA, found by its SPI and, when given, the
    /// packet's destination (and source); returns the shared handle.
    ///
    /// # Errors
    /// [`EspError::Invalid`] if an SA with the same SPI and addresses is
    /// already installed.
    pub fn add_inbound(&self, sa: Inbound, dst: Option<IpAddr>, src: Option<IpAddr>) -> Result<Arc<Inbound>, EspError> {
        let spi = sa.config().spi;
        let entry = InboundEntry { sa: Arc::new(sa), dst, src };
        let handle = entry.sa.clone();
        let mut clash = false;
        self.tables.rcu(|t| {
            let mut t = Tables::clone(t);
            let list = t.inbound.entry(spi).or_default();
            clash = list.iter().any(|e| e.dst == dst && e.src == src);
            if !clash {
                list.push(entry.clone());
            }
            t
        });
        if clash {
            return Err(EspError::Invalid {
                parameter: "spi",
                reason: "an inbound SA with this SPI and these addresses is already installed; remove it first",
            });
        }
        Ok(handle)
    }

    /// Remove the inbound SA with this SPI and addresses; the SA itself
    /// lives on while packets hold it.
    pub fn remove_inbound(&self, spi: u32, dst: Option<IpAddr>, src: Option<IpAddr>) -> Option<Arc<Inbound>> {
        let mut removed = None;
        self.tables.rcu(|t| {
            let mut t = Tables::clone(t);
            removed = None;
            if let Some(list) = t.inbound.get_mut(&spi) {
                if let Some(i) = list.iter().position(|e| e.dst == dst && e.src == src) {
                    removed = Some(list.remove(i).sa);
                }
                if list.is_empty() {
                    t.inbound.remove(&spi);
                }
            }
            t
        });
        removed
    }

    /// How many inbound SAs are installed.
    pub fn inbound_len(&self) -> usize {
        self.tables.load().inbound.values().map(Vec::len).sum()
    }

    /// Append a policy to the SPD (it is consulted after those before it).
    pub fn push_policy(&self, policy: Policy) {
        self.tables.rcu(|t| {
            let mut t = Tables::clone(t);
            t.policies.push(policy.clone());
            t
        });
    }

    /// Remove every policy whose action is to protect with `sa`.
    pub fn remove_policies_for(&self, sa: &Arc<Outbound>) {
        self.tables.rcu(|t| {
            let mut t = Tables::clone(t);
            t.policies.retain(|p| !matches!(&p.action, Action::Protect(s) if Arc::ptr_eq(s, sa)));
            t
        });
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
        let (spi, src, dst) = esp_header(ip_packet)?;
        let tables = self.tables.load();
        tables
            .inbound
            .get(&spi)
            .and_then(|list| {
                list.iter().filter_map(|e| e.matches(dst, src).map(|rank| (rank, e))).max_by_key(|(rank, _)| *rank)
            })
            .map(|(_, e)| e.sa.clone())
            .ok_or(EspError::NoSa { spi })
    }

    /// Find the SA of a received packet and open it with it.
    ///
    /// # Errors
    /// Those of [`inbound_for`](Self::inbound_for) and of
    /// [`Inbound::open`].
    pub fn open(&self, ip_packet: &[u8], out: &mut Vec<u8>) -> Result<(), EspError> {
        out.clear();
        self.inbound_for(ip_packet)?.open(ip_packet, out)
    }

    /// What the SPD says about a packet to be sent: the first policy whose
    /// selectors cover it, or `None` when none does (RFC 4301 says to
    /// discard it then).
    ///
    /// # Errors
    /// The errors of reading the packet's headers.
    pub fn outbound_for(&self, ip_packet: &[u8]) -> Result<Option<Action>, EspError> {
        let d = Datagram::parse(ip_packet)?;
        let datagram = d.ip.datagram(ip_packet);
        let (addrs, proto, ports) = selector::flow(&d, datagram);
        let tables = self.tables.load();
        Ok(tables
            .policies
            .iter()
            .find(|p| selector::covered(&p.selectors, false, addrs, proto, ports))
            .map(|p| p.action.clone()))
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
