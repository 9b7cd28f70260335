//! IP packets for the tests: IPv4 and IPv6 carrying TCP, UDP and ICMP, with
//! correct checksums; key material; both halves of an SA; the tshark peer.
//!
//! Packets are built with espgcm's own emitters; the checksums they produce
//! are checked independently by the tests against a plain RFC 1071 sum
//! ([`reference_sum`]), and against tshark.

use espgcm::esp::{Inbound, Outbound, SaConfig};
use espgcm::net::checksum::{pseudo_header_v4, pseudo_header_v6};
use espgcm::net::{Ipv4Repr, Ipv6Repr, TcpRepr, UdpRepr, protocol};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const V4_SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const V4_DST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub const V6_SRC: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
pub const V6_DST: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 2);

/// A deterministic byte pattern.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Plain RFC 1071, big-endian words: an independent check of espgcm's sum.
pub fn reference_sum(data: &[u8]) -> u16 {
    let mut acc = 0u32;
    for pair in data.chunks(2) {
        acc += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20 + l4.len()];
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: proto,
        payload_len: l4.len(),
        ttl: 64,
        dscp_ecn: 0x28,
        ident: 0x1234,
        dont_frag: true,
    }
    .emit(&mut p)
    .unwrap();
    p[20..].copy_from_slice(l4);
    p
}

pub fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next_header: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 40 + payload.len()];
    Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header,
        payload_len: payload.len(),
        hop_limit: 64,
        traffic_class: 0x28,
        flow_label: 0x12345,
    }
    .emit(&mut p)
    .unwrap();
    p[40..].copy_from_slice(payload);
    p
}

fn tcp_segment(data: &[u8], pseudo: espgcm::net::checksum::Sum) -> Vec<u8> {
    let mut seg = vec![0u8; 20 + data.len()];
    seg[20..].copy_from_slice(data);
    TcpRepr {
        src_port: 40000,
        dst_port: 2181,
        seq_number: 0x0102_0304,
        ack_number: 0x0a0b_0c0d,
        flags: 0x18,
        window: 1024,
    }
    .emit(&mut seg, pseudo)
    .unwrap();
    seg
}

fn udp_datagram(data: &[u8], pseudo: Option<espgcm::net::checksum::Sum>) -> Vec<u8> {
    let mut dgram = vec![0u8; 8 + data.len()];
    dgram[8..].copy_from_slice(data);
    UdpRepr { src_port: 40001, dst_port: 40002 }.emit(&mut dgram, data.len(), pseudo).unwrap();
    dgram
}

pub fn tcp_v4(src: Ipv4Addr, dst: Ipv4Addr, data: &[u8]) -> Vec<u8> {
    let seg = tcp_segment(data, pseudo_header_v4(src, dst, protocol::TCP, (20 + data.len()) as u16));
    ipv4(src, dst, protocol::TCP, &seg)
}

pub fn udp_v4(src: Ipv4Addr, dst: Ipv4Addr, data: &[u8]) -> Vec<u8> {
    let dgram = udp_datagram(data, Some(pseudo_header_v4(src, dst, protocol::UDP, (8 + data.len()) as u16)));
    ipv4(src, dst, protocol::UDP, &dgram)
}

/// UDP over IPv4 with checksum 0 ("none", RFC 768).
pub fn udp_v4_no_checksum(src: Ipv4Addr, dst: Ipv4Addr, data: &[u8]) -> Vec<u8> {
    ipv4(src, dst, protocol::UDP, &udp_datagram(data, None))
}

pub fn tcp_v6(src: Ipv6Addr, dst: Ipv6Addr, data: &[u8]) -> Vec<u8> {
    let seg = tcp_segment(data, pseudo_header_v6(src, dst, protocol::TCP, (20 + data.len()) as u32));
    ipv6(src, dst, protocol::TCP, &seg)
}

pub fn udp_v6(src: Ipv6Addr, dst: Ipv6Addr, data: &[u8]) -> Vec<u8> {
    let dgram = udp_datagram(data, Some(pseudo_header_v6(src, dst, protocol::UDP, (8 + data.len()) as u32)));
    ipv6(src, dst, protocol::UDP, &dgram)
}

/// ICMP echo request over IPv4.
pub fn icmp_v4(src: Ipv4Addr, dst: Ipv4Addr, data: &[u8]) -> Vec<u8> {
    let mut msg = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    msg.extend_from_slice(data);
    let c = !reference_sum(&msg);
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    ipv4(src, dst, protocol::ICMP, &msg)
}

/// TCP over IPv6 behind a hop-by-hop header and a destination-options header
/// (the latter goes after ESP in transport mode, so it is encrypted).
pub fn tcp_v6_with_extensions(src: Ipv6Addr, dst: Ipv6Addr, data: &[u8]) -> Vec<u8> {
    let seg = tcp_segment(data, pseudo_header_v6(src, dst, protocol::TCP, (20 + data.len()) as u32));
    let mut chain = Vec::new();
    // Hop-by-hop: next = destination options, length 0 (8 bytes), PadN.
    chain.extend_from_slice(&[protocol::DESTINATION_OPTIONS, 0, 1, 4, 0, 0, 0, 0]);
    // Destination options: next = TCP, length 0, PadN.
    chain.extend_from_slice(&[protocol::TCP, 0, 1, 4, 0, 0, 0, 0]);
    chain.extend_from_slice(&seg);
    ipv6(src, dst, protocol::HOP_BY_HOP, &chain)
}

/// A TCP or UDP packet of `family` (4 or 6) from the default addresses.
pub fn packet(family: u8, tcp: bool, data: &[u8]) -> Vec<u8> {
    match (family, tcp) {
        (4, true) => tcp_v4(V4_SRC, V4_DST, data),
        (4, false) => udp_v4(V4_SRC, V4_DST, data),
        (_, true) => tcp_v6(V6_SRC, V6_DST, data),
        (_, false) => udp_v6(V6_SRC, V6_DST, data),
    }
}

/// Tunnel endpoints of `family`.
pub fn endpoints(family: u8) -> (IpAddr, IpAddr) {
    if family == 4 {
        (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)))
    } else {
        (IpAddr::V6("2001:db8:ffff::1".parse().unwrap()), IpAddr::V6("2001:db8:eeee::2".parse().unwrap()))
    }
}

/// Key material of `key_len` key bytes plus a 4-byte salt: the same for
/// every call in one test, different between tests.
///
/// Tests run on parallel threads of one process, and a process refuses a
/// second live `Outbound` on a key and salt (two senders would repeat
/// IVs), so each test gets its own key. The salt is derived from the test's
/// name (libtest names each test's thread after it), so it is reproducible.
pub fn keymat(key_len: usize) -> Vec<u8> {
    let mut k = pattern(key_len, 0x5a);
    let name = std::thread::current().name().unwrap_or("").to_string();
    // FNV-1a: a stable 32-bit hash of the name.
    let salt = name.bytes().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    k.extend_from_slice(&salt.to_be_bytes());
    k
}

/// A turn at sending with a fixed key, shared by every test of the binary
/// that calls it: hold it while an `Outbound` made from a key other tests
/// use too (published test vectors, the fuzz checks' keys) is alive. A
/// process refuses a second live `Outbound` on one key and salt (two
/// senders would repeat IVs), and the harness runs tests on parallel
/// threads, so without turns such tests fail with `KeyInUse` now and then.
pub fn sender_turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Both halves of one SA.
pub fn pair(cfg: &SaConfig) -> (Outbound, Inbound) {
    (Outbound::new(cfg.clone()).unwrap(), Inbound::new(cfg.clone()).unwrap())
}

/// tshark's version line if it is installed; `None` (after saying so on
/// stderr) if it is not. Fails the test instead when
/// `ESPGCM_REQUIRE_TSHARK=1` (CI installs it and must not skip).
pub fn tshark_peer() -> Option<String> {
    let version = std::process::Command::new("tshark")
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").to_string());
    match &version {
        Some(v) => eprintln!("peer: {v}"),
        None => {
            let required = std::env::var("ESPGCM_REQUIRE_TSHARK").is_ok_and(|v| v == "1");
            assert!(!required, "ESPGCM_REQUIRE_TSHARK=1 but tshark is not installed (Debian package `tshark`)");
            eprintln!("skipped: tshark not installed");
        }
    }
    version
}
