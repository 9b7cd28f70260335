//! What an outbound SA puts in front of ESP besides the packet's own
//! header: the outer IP header of tunnel mode and the UDP header of NAT
//! traversal, made once per SA (and again only when a NAT rebinding
//! changes the endpoints), so that a packet costs only the few fields that
//! change from one to the next.
//!
//! An outer IPv4 header differs between packets in four fields: DS/ECN
//! (copied from the inner packet), total length, identification (the low
//! bits of the sequence number) and DF (copied from the inner packet). The
//! template keeps the other fields and the one's complement sum of their
//! words, so the checksum is that sum plus four words, folded. An outer
//! IPv6 header differs in the traffic class and the payload length.

use super::super::endpoints::Endpoints;
use super::super::{Encap, EspError, Mode};
use crate::net::checksum::Sum;
use crate::net::{ipv4, ipv6, protocol, udp};
use std::net::IpAddr;

/// DF in the IPv4 flags word.
const DONT_FRAGMENT: u16 = 0x4000;

/// The headers an SA adds in front of ESP: a new outer IP header (tunnel
/// mode, and dummy packets of transport mode) and a UDP header (NAT-T).
#[derive(Clone, Debug)]
pub(super) struct Outer {
    /// Tunnel mode's outer header.
    pub tunnel: Option<Template>,
    /// NAT-T's UDP ports (source, destination).
    pub udp: Option<(u16, u16)>,
}

impl Outer {
    /// The headers for these endpoints, with outer TTL (hop limit) `ttl`.
    ///
    /// # Errors
    /// [`EspError::Invalid`] for tunnel addresses of two families (which
    /// [`SaConfig::validate`](super::super::SaConfig::validate) and
    /// `set_endpoints` refuse before they get here).
    pub(super) fn new(endpoints: Endpoints, ttl: u8) -> Result<Outer, EspError> {
        let udp = match endpoints.encap {
            Encap::Udp { src_port, dst_port } => Some((src_port, dst_port)),
            Encap::None => None,
        };
        let carried = if udp.is_some() { protocol::UDP } else { protocol::ESP };
        let tunnel = match endpoints.mode {
            Mode::Tunnel { src, dst } => Some(Template::new(src, dst, carried, ttl)?),
            Mode::Transport => None,
        };
        Ok(Outer { tunnel, udp })
    }

    /// The IP protocol (next header) that names what follows the IP
    /// header: UDP with NAT-T, ESP without.
    #[inline]
    pub(super) fn carried(&self) -> u8 {
        if self.udp.is_some() { protocol::UDP } else { protocol::ESP }
    }

    /// Length of the UDP header: 8 with NAT-T, else 0.
    #[inline]
    pub(super) fn udp_len(&self) -> usize {
        if self.udp.is_some() { udp::HEADER_LEN } else { 0 }
    }
}

/// A new outer IP header with every field that is the same for each packet
/// filled in.
#[derive(Clone, Debug)]
pub(super) enum Template {
    /// IPv4: the header (DS, total length, identification, flags and
    /// checksum zero) and the sum of its words.
    V4 { header: [u8; ipv4::HEADER_LEN], sum: Sum },
    /// IPv6: the header (traffic class and payload length zero; flow label
    /// 0).
    V6 { header: [u8; ipv6::HEADER_LEN] },
}

impl Template {
    /// An outer header from `src` to `dst` carrying `carried`, TTL `ttl`.
    ///
    /// # Errors
    /// [`EspError::Invalid`] for addresses of two families.
    pub(super) fn new(src: IpAddr, dst: IpAddr, carried: u8, ttl: u8) -> Result<Template, EspError> {
        match (src, dst) {
            (IpAddr::V4(src), IpAddr::V4(dst)) => {
                let mut header = [0u8; ipv4::HEADER_LEN];
                let (fixed, addresses) = header.split_at_mut(12);
                fixed.copy_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, ttl, carried, 0, 0]);
                let (s, d) = addresses.split_at_mut(4);
                s.copy_from_slice(&src.octets());
                d.copy_from_slice(&dst.octets());
                let sum = Sum::ZERO.add_bytes(&header);
                Ok(Template::V4 { header, sum })
            }
            (IpAddr::V6(src), IpAddr::V6(dst)) => {
                let mut header = [0u8; ipv6::HEADER_LEN];
                let (fixed, addresses) = header.split_at_mut(8);
                fixed.copy_from_slice(&[0x60, 0, 0, 0, 0, 0, carried, ttl]);
                let (s, d) = addresses.split_at_mut(16);
                s.copy_from_slice(&src.octets());
                d.copy_from_slice(&dst.octets());
                Ok(Template::V6 { header })
            }
            _ => Err(EspError::Invalid {
                parameter: "mode",
                reason: "the tunnel's outer addresses must be of one family",
            }),
        }
    }

    /// The header's length: 20 or 40.
    #[inline]
    pub(super) fn len(&self) -> usize {
        match self {
            Template::V4 { .. } => ipv4::HEADER_LEN,
            Template::V6 { .. } => ipv6::HEADER_LEN,
        }
    }

    /// Whether it is an IPv4 header.
    #[inline]
    pub(super) fn is_v4(&self) -> bool {
        matches!(self, Template::V4 { .. })
    }

    /// Write the header to the start of `dst`: `length16` is its length
    /// field (IPv4 total length, IPv6 payload length, checked by the
    /// caller), `ds_field` the DS field, and for IPv4 `ident` the
    /// identification and `dont_frag` DF. The header is assembled whole and
    /// stored in one piece (a later read of it, for the UDP checksum over
    /// IPv6, must not wait on many small stores). Returns false, writing
    /// nothing, if `dst` is shorter than the header.
    #[inline]
    pub(super) fn write(&self, dst: &mut [u8], length16: u16, ds_field: u8, ident: u16, dont_frag: bool) -> bool {
        match self {
            Template::V4 { header, sum } => {
                let Some(place) = dst.first_chunk_mut::<{ ipv4::HEADER_LEN }>() else {
                    return false;
                };
                let flags = if dont_frag { DONT_FRAGMENT } else { 0 };
                let checksum =
                    sum.add_u16(u16::from(ds_field)).add_u16(length16).add_u16(ident).add_u16(flags).checksum();
                let mut h = *header;
                let [_, ds, len_hi, len_lo, id_hi, id_lo, flags_hi, _, _, _, ck_hi, ck_lo, ..] = &mut h;
                *ds = ds_field;
                [*len_hi, *len_lo] = length16.to_be_bytes();
                [*id_hi, *id_lo] = ident.to_be_bytes();
                [*flags_hi, _] = flags.to_be_bytes();
                [*ck_hi, *ck_lo] = checksum.to_be_bytes();
                *place = h;
            }
            Template::V6 { header } => {
                let Some(place) = dst.first_chunk_mut::<{ ipv6::HEADER_LEN }>() else {
                    return false;
                };
                let mut h = *header;
                let [version_class, class_flow, _, _, len_hi, len_lo, ..] = &mut h;
                *version_class = 0x60 | (ds_field >> 4);
                *class_flow = ds_field << 4;
                [*len_hi, *len_lo] = length16.to_be_bytes();
                *place = h;
            }
        }
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::net::{Ipv4Repr, Ipv6Repr};

    #[test]
    fn the_v4_template_writes_what_ipv4_repr_emits() {
        let (src, dst) = ("192.0.2.1".parse().unwrap(), "198.51.100.200".parse().unwrap());
        let t = Template::new(IpAddr::V4(src), IpAddr::V4(dst), protocol::UDP, 61).unwrap();
        for (total, ds, ident, df) in [(20, 0, 0, false), (1500, 0xb8, 0xffff, true), (65535, 3, 7, false)] {
            let mut got = [0u8; 20];
            assert!(t.write(&mut got, total as u16, ds, ident, df));
            let mut want = [0u8; 20];
            Ipv4Repr {
                src_addr: src,
                dst_addr: dst,
                protocol: protocol::UDP,
                payload_len: total - 20,
                ttl: 61,
                dscp_ecn: ds,
                ident,
                dont_frag: df,
            }
            .emit(&mut want)
            .unwrap();
            assert_eq!(got, want, "total {total} ds {ds} ident {ident} df {df}");
        }
        assert!(!t.write(&mut [0u8; 19], 100, 0, 0, false), "no room, nothing written");
    }

    #[test]
    fn the_v6_template_writes_what_ipv6_repr_emits() {
        let (src, dst) = ("2001:db8::1".parse().unwrap(), "2001:db8:ffff::2".parse().unwrap());
        let t = Template::new(IpAddr::V6(src), IpAddr::V6(dst), protocol::ESP, 64).unwrap();
        for (total, ds) in [(40, 0), (1500, 0xb9), (65535 + 40, 0xff)] {
            let mut got = [0u8; 40];
            assert!(t.write(&mut got, (total - 40) as u16, ds, 0x1234, true));
            let mut want = [0u8; 40];
            Ipv6Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: protocol::ESP,
                payload_len: total - 40,
                hop_limit: 64,
                traffic_class: ds,
                flow_label: 0,
            }
            .emit(&mut want)
            .unwrap();
            assert_eq!(got, want, "total {total} ds {ds}");
        }
        let mixed = Template::new("192.0.2.1".parse().unwrap(), IpAddr::V6(dst), protocol::ESP, 64);
        assert!(matches!(mixed, Err(EspError::Invalid { .. })));
    }
}
