//! One packet's seal, worked out before a byte is written: the packet is
//! parsed and checked where it lies, and the result is a [`SealPlan`], the
//! layout of the ESP packet it becomes. `seal` and the bursts build on the
//! same plan; they differ only in where the ciphertext goes (into the
//! caller's `Vec`, or over the payload where it lies).
//!
//! Most packets are IPv4 without options or IPv6 without extension
//! headers, carrying TCP or UDP: [`Outbound::plan_common`] reads those in a
//! few loads and branches. Anything else, or anything that fails one of its
//! checks, takes the general path ([`Outbound::plan_any`]), which parses
//! every header there is and says exactly what is wrong; the two agree on
//! every packet the first accepts (a test compares them).

use super::super::packet::{self, Stage, UpperPlan};
use super::super::selector;
use super::super::wire as esp;
use super::super::{ChecksumPolicy, EspError, Mode};
use super::Outbound;
use super::outer::{Outer, Template};
use crate::net::checksum::Sum;
use crate::net::ip::{Datagram, IpHeader, Upper};
use crate::net::ipv6::ChainPos;
use crate::net::upper::UpperCheck;
use crate::net::{ipv4, ipv6, protocol};

/// How the header in front of ESP is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Front {
    /// Transport mode, IPv4: the packet's own header (options included)
    /// stays in front, with its length, protocol and checksum fixed.
    KeptV4,
    /// Transport mode, IPv6: the fixed header and the extension headers
    /// before ESP stay; the byte at `next_header_at` will name ESP.
    KeptV6 { next_header_at: usize },
    /// A new outer header from the SA's template (tunnel mode), with the
    /// inner DS field (and for IPv4 in IPv4, DF) copied.
    New { ds_field: u8, dont_frag: bool },
}

/// The sealed packet to be, with every length checked. Offsets named
/// `*_at` are from the sealed packet's first byte.
#[derive(Clone, Debug)]
pub(super) struct SealPlan {
    pub front: Front,
    /// The datagram's length (bytes after it, such as link-layer padding,
    /// are not sealed).
    pub datagram_len: usize,
    /// Where the protected part starts in the datagram: after the kept
    /// header in transport mode, 0 in tunnel mode. It runs to the end.
    pub protected_at: usize,
    /// ESP's next header: the upper-layer protocol, or 4 / 41 in tunnel mode.
    pub next_header: u8,
    /// The header in front of ESP (kept or new).
    pub header_len: usize,
    /// Whether that header is IPv4.
    pub v4: bool,
    /// 8 with UDP encapsulation, else 0.
    pub udp_len: usize,
    /// Padding bytes (0 to 3).
    pub pad: usize,
    /// ICV bytes.
    pub icv_len: usize,
    /// The sealed packet's length.
    pub total: usize,
    /// The IP length field of the sealed packet: IPv4 total length or IPv6
    /// payload length.
    pub length16: u16,
    /// The upper-layer checksum to verify before the packet goes.
    pub check: Option<Check>,
    /// A tunnelled fragment: its upper-layer checksum covers the
    /// reassembled datagram and cannot be verified.
    pub fragment: bool,
}

impl SealPlan {
    /// Where the UDP header (NAT-T) goes.
    #[inline]
    pub(super) fn udp_at(&self) -> usize {
        self.header_len
    }

    /// Where the ESP header goes.
    #[inline]
    pub(super) fn esp_at(&self) -> usize {
        self.header_len + self.udp_len
    }

    /// Where the ESP payload (the protected bytes, then the trailer) starts.
    #[inline]
    pub(super) fn body_at(&self) -> usize {
        self.esp_at() + esp::HEADER_LEN + esp::IV_LEN
    }

    /// The protected bytes' length.
    #[inline]
    pub(super) fn payload_len(&self) -> usize {
        self.datagram_len - self.protected_at
    }

    /// The ESP payload's length: protected bytes, padding, pad length and
    /// next header (what GCM encrypts).
    #[inline]
    pub(super) fn body_len(&self) -> usize {
        self.payload_len() + self.pad + esp::TRAILER_LEN
    }

    /// How far in front of the protected bytes the sealed packet starts:
    /// in place, the packet grows by this much into its headroom.
    #[inline]
    pub(super) fn growth_in_front(&self) -> usize {
        self.body_at() - self.protected_at
    }

    /// What the trailer and ICV take after the protected bytes.
    #[inline]
    pub(super) fn growth_behind(&self) -> usize {
        self.pad + esp::TRAILER_LEN + self.icv_len
    }
}

/// What the common case ([`Outbound::plan_common`] and the bursts'
/// straight path) reads from a packet's own header: the header's checks
/// are done, the datagram's length against the bytes there are is the
/// caller's.
pub(super) struct Inner {
    /// The datagram's length, as its header says.
    pub datagram_len: usize,
    /// The protocol or next header (the common case goes on only for TCP
    /// or UDP).
    pub proto: u8,
    /// The DS field (IPv4's TOS byte, IPv6's traffic class).
    pub ds_field: u8,
    /// IPv4's DF (IPv6 has none).
    pub dont_frag: bool,
}

impl Inner {
    /// IPv4 without options: whole (not a fragment), a total length of at
    /// least the header, and the header checksum right.
    #[inline(always)]
    pub(super) fn v4(header: &[u8; ipv4::HEADER_LEN]) -> Option<Inner> {
        let [first, ds_field, len_hi, len_lo, _, _, flags_hi, frag_lo, _, proto, ..] = *header;
        let datagram_len = usize::from(u16::from_be_bytes([len_hi, len_lo]));
        let fragment = u16::from_be_bytes([flags_hi, frag_lo]) & 0x3fff != 0;
        if first != 0x45 || datagram_len < ipv4::HEADER_LEN || fragment || !Sum::ZERO.add_bytes(header).verifies() {
            return None;
        }
        Some(Inner { datagram_len, proto, ds_field, dont_frag: flags_hi & 0x40 != 0 })
    }

    /// IPv6: the fixed header, naming what follows it (an extension header
    /// sends the packet to the general path, through `common_upper`).
    #[inline(always)]
    pub(super) fn v6(header: &[u8; ipv6::HEADER_LEN]) -> Option<Inner> {
        let [v_tc, tc_fl, _, _, len_hi, len_lo, proto, ..] = *header;
        if v_tc >> 4 != 6 {
            return None;
        }
        let datagram_len = ipv6::HEADER_LEN + usize::from(u16::from_be_bytes([len_hi, len_lo]));
        Some(Inner { datagram_len, proto, ds_field: (v_tc << 4) | (tc_fl >> 4), dont_frag: false })
    }
}

/// Where a packet's checks found it to be, before the layout.
pub(super) struct Parsed {
    front: Front,
    datagram_len: usize,
    protected_at: usize,
    next_header: u8,
    /// Whether the sealed packet may not be fragmented on the way (DF set,
    /// or IPv6): what the path MTU check applies to.
    dont_fragment: bool,
    check: Option<Check>,
    fragment: bool,
}

/// The upper-layer checksum a packet must pass before it is sealed, given
/// the sum of its segment.
#[derive(Clone, Debug)]
pub(super) struct Check {
    /// Where the segment starts in the datagram (it runs to the end).
    pub segment_at: usize,
    how: How,
}

#[derive(Clone, Debug)]
enum How {
    /// TCP, or UDP with a checksum, read by the common case: the
    /// segment's sum and this pseudo-header sum must fold to all ones.
    PseudoHeader(Sum),
    /// What the general path found (the network layer's check).
    Upper(UpperCheck),
}

impl Check {
    /// Whether the checksum covers a pseudo-header (every kind but ICMPv4).
    #[inline]
    pub(super) fn has_pseudo_header(&self) -> bool {
        match &self.how {
            How::PseudoHeader(_) => true,
            How::Upper(check) => check.has_pseudo_header(),
        }
    }

    /// Verify, given the folded network-order sum of the segment's bytes
    /// (as [`checksum::sum`](crate::net::checksum::sum) computes it);
    /// `datagram` is the packet checked.
    ///
    /// # Errors
    /// [`EspError::ChecksumBeforeEncrypt`].
    #[inline]
    pub(super) fn verify(&self, datagram: &[u8], segment_sum: u16) -> Result<(), EspError> {
        match &self.how {
            How::PseudoHeader(pseudo) if pseudo.add_u16(segment_sum).verifies() => Ok(()),
            How::PseudoHeader(_) => Err(self.mismatch(datagram, segment_sum)),
            How::Upper(check) => check.verify(segment_sum).map_err(|m| Stage::BeforeEncrypt.error(m)),
        }
    }

    /// The error for a common-case packet that failed: the network layer
    /// says which checksum and what it should be.
    #[cold]
    fn mismatch(&self, datagram: &[u8], segment_sum: u16) -> EspError {
        let v4 = datagram.first().is_some_and(|b| b >> 4 == 4);
        let (addresses, proto) = if v4 {
            (datagram.get(12..20), datagram.get(ipv4::PROTOCOL_OFFSET))
        } else {
            (datagram.get(8..40), datagram.get(ipv6::NEXT_HEADER_OFFSET))
        };
        let segment = datagram.get(self.segment_at..).unwrap_or_default();
        let checked = match (addresses, proto) {
            (Some(addresses), Some(&proto)) => UpperCheck::new(addresses, v4, proto, segment),
            _ => Ok(None),
        };
        match checked {
            Ok(Some(check)) => match check.verify(segment_sum) {
                Err(m) => Stage::BeforeEncrypt.error(m),
                // Not reachable: the common case's test is the same one.
                Ok(()) => EspError::Malformed { field: super::super::Field::Protocol, value: 0 },
            },
            Ok(None) => EspError::Malformed { field: super::super::Field::Protocol, value: 0 },
            Err(e) => e.into(),
        }
    }
}

impl Outbound {
    /// Check `packet` and lay out its seal under the headers of `outer`.
    ///
    /// # Errors
    /// Everything `seal` refuses before it encrypts, except the upper-layer
    /// checksum, whose check needs the sum of the bytes as they are
    /// encrypted (the plan says what to verify).
    #[inline(always)]
    pub(super) fn plan(&self, packet: &[u8], outer: &Outer) -> Result<SealPlan, EspError> {
        match self.plan_common(packet) {
            // Inlined into the caller, so that the plan is built where it
            // is used (a large result returned through memory costs a
            // stall when it is read back).
            Some(parsed) => self.layout(parsed, outer),
            None => self.plan_slow(packet, outer),
        }
    }

    /// [`plan`](Self::plan) for packets the common case declines.
    #[inline(never)]
    fn plan_slow(&self, packet: &[u8], outer: &Outer) -> Result<SealPlan, EspError> {
        let parsed = self.plan_any(packet)?;
        self.layout(parsed, outer)
    }

    /// The common case: IPv4 without options or IPv6 without extension
    /// headers, TCP or UDP, whole, with every length consistent and the
    /// IPv4 header checksum right, and no selectors to match. `None` sends
    /// the packet to the general path, which either handles it or says
    /// what is wrong with it.
    #[inline(always)]
    pub(super) fn plan_common(&self, packet: &[u8]) -> Option<Parsed> {
        if !self.cfg.selectors.is_empty() {
            return None;
        }
        let (&first, _) = packet.split_first()?;
        let (header_len, inner, addresses) = if first == 0x45 {
            let header = packet.first_chunk::<{ ipv4::HEADER_LEN }>()?;
            (ipv4::HEADER_LEN, Inner::v4(header)?, header.get(12..20)?)
        } else if first >> 4 == 6 {
            let header = packet.first_chunk::<{ ipv6::HEADER_LEN }>()?;
            (ipv6::HEADER_LEN, Inner::v6(header)?, header.get(8..40)?)
        } else {
            return None;
        };
        let Inner { datagram_len, proto, ds_field, dont_frag } = inner;
        if datagram_len > packet.len() {
            return None;
        }
        let segment = packet.get(header_len..datagram_len)?;
        let v4 = header_len == ipv4::HEADER_LEN;
        let pseudo = packet::common_upper(addresses, v4, proto, segment)?;
        let check = pseudo
            .filter(|_| self.cfg.checksums == ChecksumPolicy::Verify)
            .map(|pseudo| Check { segment_at: header_len, how: How::PseudoHeader(pseudo) });
        let (front, protected_at, next_header) = match self.cfg.mode {
            Mode::Transport if v4 => (Front::KeptV4, header_len, proto),
            Mode::Transport => (Front::KeptV6 { next_header_at: ipv6::NEXT_HEADER_OFFSET }, header_len, proto),
            Mode::Tunnel { .. } => {
                (Front::New { ds_field, dont_frag }, 0, if v4 { protocol::IPV4 } else { protocol::IPV6 })
            }
        };
        Some(Parsed {
            front,
            datagram_len,
            protected_at,
            next_header,
            dont_fragment: !v4 || dont_frag,
            check,
            fragment: false,
        })
    }

    /// Any packet: every header parsed and checked, with the error that
    /// says what is wrong.
    pub(super) fn plan_any(&self, packet: &[u8]) -> Result<Parsed, EspError> {
        let d = Datagram::parse(packet)?;
        let datagram = d.ip.datagram(packet);
        let transport = matches!(self.cfg.mode, Mode::Transport);
        if transport && d.upper == Upper::Fragment {
            return Err(EspError::Fragment);
        }
        // The IPv4 header checksum and the length of the upper-layer
        // header; the upper-layer checksum is verified over the bytes as
        // they are encrypted (see `SealPlan::check`).
        packet::verify_ip_header(&d, datagram, Stage::BeforeEncrypt)?;
        if !self.cfg.selectors.is_empty() {
            let (addrs, protocol, ports) = selector::flow(&d, datagram);
            if !selector::covered(&self.cfg.selectors, false, addrs, protocol, ports) {
                return Err(EspError::NotCovered { seq: None });
            }
        }
        let (check, fragment) = match packet::upper_check(&d, datagram, self.cfg.checksums)? {
            UpperPlan::Fragment => (None, true),
            UpperPlan::Nothing => (None, false),
            UpperPlan::Check { check, segment } => {
                (Some(Check { segment_at: datagram.len() - segment.len(), how: How::Upper(check) }), false)
            }
        };
        let (front, protected_at, next_header) = match self.cfg.mode {
            Mode::Transport if d.ip.version == 4 => (Front::KeptV4, d.ip.header_len, d.ip.protocol),
            Mode::Transport => {
                let pos = esp_insertion_v6(&d.ip, datagram)?;
                (Front::KeptV6 { next_header_at: pos.next_header_at }, pos.offset, pos.next_header)
            }
            Mode::Tunnel { .. } => (
                Front::New { ds_field: d.ip.ds_field, dont_frag: d.ip.dont_frag },
                0,
                if d.ip.version == 4 { protocol::IPV4 } else { protocol::IPV6 },
            ),
        };
        Ok(Parsed {
            front,
            datagram_len: datagram.len(),
            protected_at,
            next_header,
            // IPv6 packets are never fragmented on the way; IPv4 ones when
            // DF says so.
            dont_fragment: d.ip.version == 6 || d.ip.dont_frag,
            check,
            fragment,
        })
    }

    /// The layout of the sealed packet, with its lengths checked against
    /// the IP length field and the path MTU.
    #[inline(always)]
    pub(super) fn layout(&self, p: Parsed, outer: &Outer) -> Result<SealPlan, EspError> {
        let (header_len, outer_v4) = match (&p.front, &outer.tunnel) {
            (Front::KeptV4, _) => (p.protected_at, true),
            (Front::KeptV6 { .. }, _) => (p.protected_at, false),
            (Front::New { .. }, Some(template)) => (template.len(), template.is_v4()),
            (Front::New { .. }, None) => {
                return Err(EspError::Unsupported(super::super::Limitation::DummyNeedsAddresses));
            }
        };
        Self::layout_with(p, header_len, outer_v4, outer.udp_len(), self.cipher.icv_len(), self.cfg.path_mtu)
    }

    /// [`layout`](Self::layout) given the header in front of ESP.
    #[inline(always)]
    fn layout_with(
        p: Parsed,
        header_len: usize,
        outer_v4: bool,
        udp_len: usize,
        icv_len: usize,
        path_mtu: Option<u16>,
    ) -> Result<SealPlan, EspError> {
        let payload_len = p.datagram_len - p.protected_at;
        let pad = esp::pad_len(payload_len);
        let esp_len = esp::HEADER_LEN + esp::IV_LEN + payload_len + pad + esp::TRAILER_LEN + icv_len;
        let total = header_len + udp_len + esp_len;
        if let Some(mtu) = path_mtu.map(usize::from)
            && p.dont_fragment
            && total > mtu
        {
            // What the framing adds, with the most padding any length needs
            // (3), taken off the path MTU: the size the sender should be
            // told (ICMP "fragmentation needed", ICMPv6 "packet too big"),
            // which is the caller's to send. Every packet up to it fits.
            let inner = payload_len + if matches!(p.front, Front::New { .. }) { 0 } else { header_len };
            let overhead = total - inner - pad + 3;
            return Err(EspError::PacketTooBig { len: total, mtu: mtu.saturating_sub(overhead) });
        }
        // IPv4 total length or IPv6 payload length must fit 16 bits.
        let length_field = if outer_v4 { total } else { total - ipv6::HEADER_LEN };
        let length16 = u16::try_from(length_field)
            .map_err(|_| EspError::TooLarge { len: length_field, max: usize::from(u16::MAX) })?;
        Ok(SealPlan {
            front: p.front,
            datagram_len: p.datagram_len,
            protected_at: p.protected_at,
            next_header: p.next_header,
            header_len,
            v4: outer_v4,
            udp_len,
            pad,
            icv_len,
            total,
            length16,
            check: p.check,
            fragment: p.fragment,
        })
    }

    /// The layout of a dummy packet (next header 59) of `len` zero bytes
    /// behind a new header from `template`.
    pub(super) fn dummy_plan(&self, template: &Template, outer: &Outer, len: usize) -> Result<SealPlan, EspError> {
        let parsed = Parsed {
            front: Front::New { ds_field: 0, dont_frag: false },
            datagram_len: len,
            protected_at: 0,
            next_header: protocol::NO_NEXT_HEADER,
            dont_fragment: false,
            check: None,
            fragment: false,
        };
        Self::layout_with(parsed, template.len(), template.is_v4(), outer.udp_len(), self.cipher.icv_len(), None)
    }
}

/// Where ESP goes in an IPv6 packet in transport mode (RFC 4303 §3.1.1):
/// after hop-by-hop, routing, and destination options that precede a
/// routing header; before everything else (later destination options are
/// protected). A fragment header means the packet is a fragment.
///
/// Returns the position ESP takes: where the protected part starts, the
/// header it names as its next header, and the byte that will name ESP.
fn esp_insertion_v6(ip: &IpHeader, datagram: &[u8]) -> Result<ChainPos, EspError> {
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
    Ok(chain.pos())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use crate::esp::{Encap, SaConfig, Selector};

    /// The fast path's plan is the general path's, on every packet the fast
    /// path takes; and the packets it declines get the general path's
    /// verdict (tested by the ESP tests through `seal`).
    #[test]
    fn the_common_case_plans_what_the_general_path_plans() {
        use crate::net::checksum::pseudo_header_v4;
        use crate::net::{Ipv4Repr, Ipv6Repr, TcpRepr, UdpRepr};
        let v4 = |proto: u8, data: &[u8], df: bool, ds: u8| -> Vec<u8> {
            let l4 = if proto == protocol::TCP { 20 } else { 8 };
            let (src, dst) = ("10.1.2.3".parse().unwrap(), "10.9.8.7".parse().unwrap());
            let mut p = vec![0u8; 20 + l4 + data.len()];
            Ipv4Repr {
                src_addr: src,
                dst_addr: dst,
                protocol: proto,
                payload_len: l4 + data.len(),
                ttl: 9,
                dscp_ecn: ds,
                ident: 3,
                dont_frag: df,
            }
            .emit(&mut p)
            .unwrap();
            p[20 + l4..].copy_from_slice(data);
            let pseudo = pseudo_header_v4(src, dst, proto, (l4 + data.len()) as u16);
            if proto == protocol::TCP {
                let tcp = TcpRepr { src_port: 1, dst_port: 2, seq_number: 3, ack_number: 4, flags: 0x10, window: 5 };
                tcp.emit(&mut p[20..], pseudo).unwrap();
            } else {
                UdpRepr { src_port: 1, dst_port: 2 }.emit(&mut p[20..], data.len(), Some(pseudo)).unwrap();
            }
            p
        };
        let v6 = |proto: u8, data: &[u8], ds: u8| -> Vec<u8> {
            let l4 = if proto == protocol::TCP { 20 } else { 8 };
            let (src, dst) = ("2001:db8::1".parse().unwrap(), "2001:db8::2".parse().unwrap());
            let mut p = vec![0u8; 40 + l4 + data.len()];
            let len = l4 + data.len();
            Ipv6Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: proto,
                payload_len: len,
                hop_limit: 9,
                traffic_class: ds,
                flow_label: 0,
            }
            .emit(&mut p)
            .unwrap();
            p[40 + l4..].copy_from_slice(data);
            let pseudo = crate::net::checksum::pseudo_header_v6(src, dst, proto, len as u32);
            if proto == protocol::TCP {
                let tcp = TcpRepr { src_port: 1, dst_port: 2, seq_number: 3, ack_number: 4, flags: 0x10, window: 5 };
                tcp.emit(&mut p[40..], pseudo).unwrap();
            } else {
                UdpRepr { src_port: 1, dst_port: 2 }.emit(&mut p[40..], data.len(), Some(pseudo)).unwrap();
            }
            p
        };
        let mut packets = Vec::new();
        for n in [0usize, 1, 2, 3, 4, 5, 100, 1379, 1380] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
            for proto in [protocol::TCP, protocol::UDP] {
                packets.push(v4(proto, &data, n % 2 == 0, (n % 256) as u8));
                packets.push(v6(proto, &data, (n * 3 % 256) as u8));
            }
            // Damaged ones: a bad upper-layer checksum (still planned; the
            // check is made later), a bad IPv4 header checksum, a short
            // total length, link padding after the datagram.
            let mut bad = v4(protocol::TCP, &data, true, 0);
            *bad.last_mut().unwrap() ^= 0x40;
            packets.push(bad);
            let mut bad = v4(protocol::UDP, &data, true, 0);
            bad[8] ^= 1;
            packets.push(bad);
            let mut padded = v6(protocol::UDP, &data, 0);
            padded.extend_from_slice(&[0xee; 5]);
            packets.push(padded);
            let mut short = v4(protocol::TCP, &data, false, 0);
            short[3] = short[3].wrapping_sub(1);
            packets.push(short);
        }
        let tunnel4 = Mode::Tunnel { src: "192.0.2.1".parse().unwrap(), dst: "192.0.2.2".parse().unwrap() };
        let tunnel6 = Mode::Tunnel { src: "2001:db8::a".parse().unwrap(), dst: "2001:db8::b".parse().unwrap() };
        let mut spi = 0x7000;
        for mode in [Mode::Transport, tunnel4, tunnel6] {
            for encap in [Encap::None, Encap::NAT_T] {
                for (checksums, path_mtu) in [(ChecksumPolicy::Verify, None), (ChecksumPolicy::Skip, Some(600))] {
                    spi += 1;
                    let cfg = SaConfig {
                        mode,
                        encap,
                        checksums,
                        path_mtu,
                        icv_len: 12,
                        ..SaConfig::new(spi, &[spi as u8; 20])
                    };
                    let tx = Outbound::new(cfg).unwrap();
                    let outer = tx.outer();
                    let mut common = 0;
                    for p in &packets {
                        let Some(fast) = tx.plan_common(p) else { continue };
                        common += 1;
                        let fast = tx.layout(fast, &outer);
                        let general = tx.plan_any(p).and_then(|parsed| tx.layout(parsed, &outer));
                        let what = format!("{mode:?} {encap:?} {p:02x?}");
                        let (mut fast, mut general) = match (fast, general) {
                            (Ok(f), Ok(g)) => (f, g),
                            (f, g) => {
                                assert_eq!(format!("{f:?}"), format!("{g:?}"), "{what}");
                                continue;
                            }
                        };
                        // The checks are built differently; they must agree
                        // on the packet's own sum and on every wrong one
                        // tried, with the same error.
                        match (fast.check.take(), general.check.take()) {
                            (None, None) => {}
                            (Some(f), Some(g)) => {
                                assert_eq!(f.segment_at, g.segment_at, "{what}");
                                assert_eq!(f.has_pseudo_header(), g.has_pseudo_header(), "{what}");
                                let datagram = &p[..fast.datagram_len];
                                let right = crate::net::checksum::sum(&datagram[f.segment_at..]);
                                for sum in [right, right ^ 1, right.wrapping_add(0x100), 0, 0xffff] {
                                    let (a, b) = (f.verify(datagram, sum), g.verify(datagram, sum));
                                    assert_eq!(a, b, "{what}: sum {sum:#06x}");
                                }
                            }
                            (f, g) => panic!("{what}: checks {f:?} and {g:?}"),
                        }
                        assert_eq!(format!("{fast:?}"), format!("{general:?}"), "{what}");
                    }
                    assert!(common >= 50, "the fast path took only {common} packets");
                }
            }
        }
        // Selectors always take the general path.
        let any = Selector::between(("0.0.0.0".parse().unwrap(), 0), ("0.0.0.0".parse().unwrap(), 0));
        let cfg = SaConfig { selectors: vec![any], ..SaConfig::new(0x7f00, &[0x7f; 20]) };
        let tx = Outbound::new(cfg).unwrap();
        assert!(tx.plan_common(&packets[0]).is_none());
    }
}
