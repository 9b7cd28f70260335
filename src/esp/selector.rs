//! Traffic selectors (RFC 4301 §4.4.1): which packets an SA may carry.
//!
//! A tunnel SA for 10.1.0.0/16 to 10.2.0.0/16 must not deliver an inner
//! packet from anywhere else: the ICV proves who encrypted a packet, not
//! that the peer may speak for the addresses inside it. RFC 4301 §5.2
//! requires the check after decryption; before encryption, a packet the SA
//! does not cover is refused rather than sent where the peer would drop it.

use crate::net::ip::{Datagram, IpHeader, Upper};
use core::ops::RangeInclusive;
use std::net::IpAddr;

/// One traffic selector: addresses with prefix lengths, a protocol, and
/// port ranges, from this end's point of view.
///
/// For an inbound SA, a decrypted packet's source must lie in `remote` and
/// its destination in `local` (and its source port in `remote_ports`, its
/// destination port in `local_ports`); for an outbound SA the reverse. An SA
/// with no selectors carries anything (`ANY`); with several, a packet needs
/// to match one.
///
/// ```
/// use espgcm::esp::Selector;
///
/// let s = Selector::between(("10.1.0.0".parse()?, 16), ("10.2.0.0".parse()?, 16));
/// assert!(s.matches_inbound("10.2.3.4".parse()?, "10.1.0.9".parse()?, 6, Some((40000, 22))));
/// assert!(!s.matches_inbound("192.168.66.6".parse()?, "10.1.0.9".parse()?, 6, Some((40000, 22))));
/// let ssh = Selector { protocol: Some(6), local_ports: 22..=22, ..s };
/// assert!(!ssh.matches_inbound("10.2.3.4".parse()?, "10.1.0.9".parse()?, 6, Some((40000, 80))));
/// # Ok::<(), std::net::AddrParseError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Selector {
    /// This end's addresses: an address and a prefix length.
    pub local: (IpAddr, u8),
    /// The peer's addresses: an address and a prefix length.
    pub remote: (IpAddr, u8),
    /// The IP protocol (next header after any IPv6 extension headers);
    /// `None` for any.
    pub protocol: Option<u8>,
    /// This end's ports (TCP, UDP, SCTP); the full range for any. A packet
    /// without ports (another protocol, a later fragment) matches only the
    /// full range.
    pub local_ports: RangeInclusive<u16>,
    /// The peer's ports, likewise.
    pub remote_ports: RangeInclusive<u16>,
}

impl Selector {
    /// Any protocol and port between two address ranges.
    pub fn between(local: (IpAddr, u8), remote: (IpAddr, u8)) -> Selector {
        Selector { local, remote, protocol: None, local_ports: 0..=u16::MAX, remote_ports: 0..=u16::MAX }
    }

    /// Whether a packet received from `src` to `dst` (protocol `protocol`,
    /// ports `(source, destination)` when it has them) is covered.
    pub fn matches_inbound(&self, src: IpAddr, dst: IpAddr, protocol: u8, ports: Option<(u16, u16)>) -> bool {
        self.matches(dst, src, protocol, ports.map(|(s, d)| (d, s)))
    }

    /// Whether a packet to be sent from `src` to `dst` is covered.
    pub fn matches_outbound(&self, src: IpAddr, dst: IpAddr, protocol: u8, ports: Option<(u16, u16)>) -> bool {
        self.matches(src, dst, protocol, ports)
    }

    /// `local_addr`/`remote_addr` and `(local port, remote port)`.
    fn matches(&self, local_addr: IpAddr, remote_addr: IpAddr, protocol: u8, ports: Option<(u16, u16)>) -> bool {
        let any_port = |r: &RangeInclusive<u16>| *r.start() == 0 && *r.end() == u16::MAX;
        let ports_ok = match ports {
            Some((local, remote)) => self.local_ports.contains(&local) && self.remote_ports.contains(&remote),
            None => any_port(&self.local_ports) && any_port(&self.remote_ports),
        };
        in_prefix(local_addr, self.local)
            && in_prefix(remote_addr, self.remote)
            && self.protocol.is_none_or(|p| p == protocol)
            && ports_ok
    }

    /// Why this selector cannot be used, if it cannot.
    pub(crate) fn problem(&self) -> Option<&'static str> {
        let (l, r) = (self.local, self.remote);
        let max = |a: IpAddr| if a.is_ipv4() { 32 } else { 128 };
        if l.0.is_ipv4() != r.0.is_ipv4() {
            return Some("a selector's local and remote addresses must be of one IP family");
        }
        if l.1 > max(l.0) || r.1 > max(r.0) {
            return Some("a selector's prefix length is longer than its address (32 for IPv4, 128 for IPv6)");
        }
        if self.local_ports.is_empty() || self.remote_ports.is_empty() {
            return Some("a selector's port range is empty (the first port is above the last)");
        }
        None
    }
}

/// Whether `addr` lies in `prefix` (an address of the other family never
/// does).
fn in_prefix(addr: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    let bits = |a: IpAddr| match a {
        IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, 32u32),
        IpAddr::V6(v) => (u128::from(v), 128),
    };
    let ((a, a_len), (n, n_len)) = (bits(addr), bits(net));
    if a_len != n_len {
        return false;
    }
    let len = u32::from(len).min(n_len);
    let mask = if len == 0 { 0 } else { u128::MAX << (128 - len) };
    (a ^ n) & mask == 0
}

/// What selectors look at in a parsed datagram `d` (whose bytes are
/// `bytes`): (source, destination), the protocol, and the ports of TCP,
/// UDP and SCTP (none for a fragment, whose upper-layer header may be
/// elsewhere, or a protocol without ports).
pub(crate) fn flow(d: &Datagram, bytes: &[u8]) -> ((IpAddr, IpAddr), u8, Option<(u16, u16)>) {
    let (protocol, ports) = match d.upper {
        Upper::At { protocol, offset } => {
            let ports = matches!(protocol, 6 | 17 | 132)
                .then(|| bytes.get(offset..offset + 4).and_then(|p| <[u8; 4]>::try_from(p).ok()))
                .flatten()
                .map(|[a, b, c, d]| (u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])));
            (protocol, ports)
        }
        // A fragment's protocol as the IPv4 header gives it; for IPv6, the
        // fragment header's number (what follows is not known without
        // reassembly).
        Upper::Fragment => (if d.ip.version == 4 { d.ip.protocol } else { 44 }, None),
    };
    (addresses(&d.ip, bytes), protocol, ports)
}

/// The (source, destination) of the IP header `ip` parsed from `bytes`.
pub(crate) fn addresses(ip: &IpHeader, bytes: &[u8]) -> (IpAddr, IpAddr) {
    let both = ip.address_bytes(bytes);
    let (src, dst) = both.split_at(both.len() / 2);
    let addr = |b: &[u8]| -> IpAddr {
        match (<[u8; 4]>::try_from(b), <[u8; 16]>::try_from(b)) {
            (Ok(v4), _) => IpAddr::from(v4),
            (_, Ok(v6)) => IpAddr::from(v6),
            _ => IpAddr::from([0u8; 4]),
        }
    };
    (addr(src), addr(dst))
}

/// Whether `selectors` (an SA's list; empty: anything) cover a packet.
pub(crate) fn covered(
    selectors: &[Selector],
    inbound: bool,
    (src, dst): (IpAddr, IpAddr),
    protocol: u8,
    ports: Option<(u16, u16)>,
) -> bool {
    selectors.is_empty()
        || selectors.iter().any(|s| {
            if inbound {
                s.matches_inbound(src, dst, protocol, ports)
            } else {
                s.matches_outbound(src, dst, protocol, ports)
            }
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_by_their_leading_bits() {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_prefix(a("10.1.255.3"), (a("10.1.0.0"), 16)));
        assert!(!in_prefix(a("10.2.0.1"), (a("10.1.0.0"), 16)));
        assert!(in_prefix(a("1.2.3.4"), (a("0.0.0.0"), 0)));
        assert!(in_prefix(a("10.0.0.7"), (a("10.0.0.7"), 32)));
        assert!(!in_prefix(a("10.0.0.8"), (a("10.0.0.7"), 32)));
        assert!(in_prefix(a("2001:db8:1::9"), (a("2001:db8::"), 32)));
        assert!(!in_prefix(a("2001:db9::1"), (a("2001:db8::"), 32)));
        assert!(!in_prefix(a("10.0.0.1"), (a("::"), 0)), "another family never matches");
    }

    #[test]
    fn a_packet_without_ports_matches_only_any_port() {
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        let any = Selector::between((a("10.1.0.0"), 16), (a("10.2.0.0"), 16));
        assert!(any.matches_inbound(a("10.2.0.1"), a("10.1.0.1"), 1, None));
        let web = Selector { remote_ports: 80..=80, ..any.clone() };
        assert!(!web.matches_inbound(a("10.2.0.1"), a("10.1.0.1"), 1, None));
        assert!(web.matches_inbound(a("10.2.0.1"), a("10.1.0.1"), 6, Some((80, 50000))));
        assert!(web.matches_outbound(a("10.1.0.1"), a("10.2.0.1"), 6, Some((50000, 80))));
        assert!(!web.matches_outbound(a("10.2.0.1"), a("10.1.0.1"), 6, Some((50000, 80))), "directions differ");
    }
}
