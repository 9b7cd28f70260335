//! The outer headers, between the ESP engine and the kernel's sockets.
//!
//! The engine works on whole IP packets: `seal` returns the packet that
//! carries ESP (an IP header, a UDP header with NAT-T, then ESP), and `open`
//! takes one. The tunnel's sockets carry only what follows those headers:
//! the kernel writes the outer IP (and UDP) header itself, from the socket
//! and its routing. So on the way out [`wire_target`] reads where the
//! sealed packet goes and where its ESP begins, and on the way in
//! [`rebuild`] writes the outer headers back in front of the received ESP
//! from the addresses the socket reported, into the frame's headroom (no
//! copy of the payload).
//!
//! In transport mode those addresses matter: the inner TCP/UDP checksum
//! covers them (the pseudo-header), and the engine verifies it after
//! decryption. They are the peers' own addresses there, the same on both
//! sides unless a NAT rewrote them (then `nat_original` in the SA fixes the
//! checksum up, RFC 3948 §3.1.2).

use crate::frame::Frame;
use espgcm::net::{Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, UdpPacket, UdpRepr, protocol};
use std::net::{IpAddr, SocketAddr};

/// Where a sealed packet goes and which of its bytes the socket sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireTarget {
    /// How it is carried.
    pub carrier: Carrier,
    /// The outer source address the engine wrote (the SA's tunnel source,
    /// or the packet's own source in transport mode).
    pub src: IpAddr,
    /// Where it goes: the peer's address, and the UDP port with NAT-T (0
    /// for raw ESP).
    pub dst: SocketAddr,
    /// The outer header's ECN bits (tunnel mode copies them from the inner
    /// packet), handed to the socket.
    pub ecn: u8,
    /// Offset of the bytes the socket sends (the ESP header) in the packet.
    pub payload_offset: usize,
}

/// ESP in UDP (RFC 3948) or ESP as IP protocol 50.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Carrier {
    /// UDP-encapsulated ESP, sent from the tunnel's UDP socket.
    Udp,
    /// Plain ESP, sent from a raw IP socket for protocol 50.
    Raw,
}

/// Why a sealed packet cannot be handed to a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OuterError {
    /// Not an IPv4 or IPv6 header the engine would have written.
    Malformed,
    /// IPv6 extension headers in front of ESP (transport mode keeps the
    /// packet's hop-by-hop or routing headers there); a socket cannot send
    /// them, so such packets are not carried.
    Ipv6Extensions,
}

/// Read the outer header(s) of a sealed packet.
///
/// # Errors
/// [`OuterError`] for a packet this tunnel cannot send.
pub fn wire_target(sealed: &[u8]) -> Result<WireTarget, OuterError> {
    let (src, dst, proto, ecn, ip_len, end): (IpAddr, IpAddr, u8, u8, usize, usize) = match sealed.first() {
        Some(b) if b >> 4 == 4 => {
            let ip = Ipv4Packet::new_checked(sealed).map_err(|_| OuterError::Malformed)?;
            (
                ip.src_addr().into(),
                ip.dst_addr().into(),
                ip.protocol(),
                ip.dscp_ecn() & 3,
                ip.header_len(),
                ip.total_len(),
            )
        }
        Some(b) if b >> 4 == 6 => {
            let ip = Ipv6Packet::new_checked(sealed).map_err(|_| OuterError::Malformed)?;
            let header = espgcm::net::ipv6::HEADER_LEN;
            (
                ip.src_addr().into(),
                ip.dst_addr().into(),
                ip.next_header(),
                ip.traffic_class() & 3,
                header,
                header + ip.payload_len(),
            )
        }
        _ => return Err(OuterError::Malformed),
    };
    let payload = sealed.get(ip_len..end).ok_or(OuterError::Malformed)?;
    match proto {
        protocol::ESP => {
            Ok(WireTarget { carrier: Carrier::Raw, src, dst: SocketAddr::new(dst, 0), ecn, payload_offset: ip_len })
        }
        protocol::UDP => {
            let udp = UdpPacket::new_checked(payload).map_err(|_| OuterError::Malformed)?;
            Ok(WireTarget {
                carrier: Carrier::Udp,
                src,
                dst: SocketAddr::new(dst, udp.dst_port()),
                ecn,
                payload_offset: ip_len + espgcm::net::udp::HEADER_LEN,
            })
        }
        _ if dst.is_ipv6() => Err(OuterError::Ipv6Extensions),
        _ => Err(OuterError::Malformed),
    }
}

/// Bytes of outer header [`rebuild`] puts in front of a received payload.
pub fn rebuilt_len(family_v4: bool, udp: bool) -> usize {
    let ip = if family_v4 { espgcm::net::ipv4::HEADER_LEN } else { espgcm::net::ipv6::HEADER_LEN };
    ip + if udp { espgcm::net::udp::HEADER_LEN } else { 0 }
}

/// Write the outer IP header (and UDP header, given `ports`) in front of the
/// ESP bytes that `frame` holds, as they arrived from `src` to `dst`.
/// Returns false if the addresses are of two families or the headroom is
/// too small (neither happens with the tunnel's own frames and sockets).
pub fn rebuild(frame: &mut Frame, src: IpAddr, dst: IpAddr, ports: Option<(u16, u16)>) -> bool {
    let esp_len = frame.len();
    let udp_len = if ports.is_some() { espgcm::net::udp::HEADER_LEN } else { 0 };
    let v4 = matches!((src, dst), (IpAddr::V4(_), IpAddr::V4(_)));
    let header_len = rebuilt_len(v4, ports.is_some());
    let Some(room_start) = frame.start().checked_sub(header_len) else {
        return false;
    };
    let room = frame.headroom_mut();
    let Some(header) = room.get_mut(room_start..) else {
        return false;
    };
    let carried = if ports.is_some() { protocol::UDP } else { protocol::ESP };
    let ip_len = header_len - udp_len;
    let written = match (src, dst) {
        (IpAddr::V4(src_addr), IpAddr::V4(dst_addr)) => Ipv4Repr {
            src_addr,
            dst_addr,
            protocol: carried,
            payload_len: udp_len + esp_len,
            ttl: 64,
            dscp_ecn: 0,
            ident: 0,
            dont_frag: true,
        }
        .emit(header)
        .is_ok(),
        (IpAddr::V6(src_addr), IpAddr::V6(dst_addr)) => Ipv6Repr {
            src_addr,
            dst_addr,
            next_header: carried,
            payload_len: udp_len + esp_len,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }
        .emit(header)
        .is_ok(),
        _ => false,
    };
    if !written {
        return false;
    }
    if let Some((src_port, dst_port)) = ports {
        // Checksum 0: RFC 3948 lets the receiver ignore it, and the engine
        // does (the ICV protects what it covered). The kernel already
        // verified the real one before the socket delivered the datagram.
        let Some(udp) = header.get_mut(ip_len..) else {
            return false;
        };
        if (UdpRepr { src_port, dst_port }).emit(udp, esp_len, None).is_err() {
            return false;
        }
    }
    frame.push_front(header_len)
}

/// An address as the kernel reports it on a dual-stack path: IPv4-mapped
/// IPv6 addresses become IPv4.
pub fn unmap(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use espgcm::esp::{Encap, Inbound, Mode, Outbound, SaConfig};
    use espgcm::net::checksum::pseudo_header_v4;
    use std::net::Ipv4Addr;

    fn udp_datagram(src: Ipv4Addr, dst: Ipv4Addr, data: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 28 + data.len()];
        p[28..].copy_from_slice(data);
        let ip = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: protocol::UDP,
            payload_len: 8 + data.len(),
            ttl: 64,
            dscp_ecn: 0,
            ident: 9,
            dont_frag: true,
        };
        ip.emit(&mut p).expect("header fits");
        let pseudo = pseudo_header_v4(src, dst, protocol::UDP, (8 + data.len()) as u16);
        UdpRepr { src_port: 1000, dst_port: 2000 }.emit(&mut p[20..], data.len(), Some(pseudo)).expect("fits");
        p
    }

    /// A sealed packet cut to what a socket sends, rebuilt the way the
    /// receiving side does, opens to the original: in transport mode with
    /// NAT-T (where the rebuilt addresses are under the inner checksum) and
    /// in tunnel mode with raw ESP.
    #[test]
    fn cut_and_rebuilt_packets_open() {
        let (a, b) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
        let inner = udp_datagram(a, b, b"through the socket");
        let cases = [
            (SaConfig { encap: Encap::NAT_T, ..SaConfig::new(0x4001, &[0x61; 20]) }, Carrier::Udp),
            (
                SaConfig {
                    mode: Mode::Tunnel {
                        src: "198.51.100.1".parse().expect("addr"),
                        dst: "198.51.100.2".parse().expect("addr"),
                    },
                    ..SaConfig::new(0x4002, &[0x62; 20])
                },
                Carrier::Raw,
            ),
        ];
        for (cfg, carrier) in cases {
            let tx = Outbound::new(cfg.clone()).expect("sa");
            let rx = Inbound::new(cfg).expect("sa");
            let mut sealed = Vec::new();
            tx.seal(&inner, &mut sealed).expect("seal");
            let target = wire_target(&sealed).expect("target");
            assert_eq!(target.carrier, carrier);
            let port = if carrier == Carrier::Udp { 4500 } else { 0 };
            assert_eq!(target.dst.port(), port);
            let mut frame = Frame::new(2048);
            assert!(frame.fill(128, &sealed[target.payload_offset..]));
            let ports = (carrier == Carrier::Udp).then_some((4500, 4500));
            assert!(rebuild(&mut frame, target.src, target.dst.ip(), ports));
            let mut opened = Vec::new();
            rx.open(frame.packet(), &mut opened).expect("open");
            if carrier == Carrier::Raw {
                assert_eq!(opened, inner, "tunnel mode carries the whole inner packet");
            } else {
                // Transport mode keeps the rebuilt header: the same addresses
                // and protocol, the kernel's own identification field.
                assert_eq!(opened.len(), inner.len());
                assert_eq!(opened[12..], inner[12..]);
                assert!(Ipv4Packet::new_checked(&opened[..]).expect("ip").verify_checksum());
            }
        }
    }

    #[test]
    fn rebuild_refuses_mixed_families() {
        let mut frame = Frame::new(256);
        assert!(frame.fill(128, &[0u8; 40]));
        assert!(!rebuild(&mut frame, "192.0.2.1".parse().expect("a"), "2001:db8::1".parse().expect("a"), None));
        assert_eq!(frame.len(), 40);
    }

    #[test]
    fn mapped_addresses_are_unmapped() {
        assert_eq!(unmap("::ffff:192.0.2.7".parse().expect("a")), "192.0.2.7".parse::<IpAddr>().expect("a"));
        assert_eq!(unmap("2001:db8::7".parse().expect("a")), "2001:db8::7".parse::<IpAddr>().expect("a"));
    }
}
