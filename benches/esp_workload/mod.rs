//! The ESP benchmarks' workload: TCP over IPv4 in transport mode, every
//! check on, and the SA both ends use.

use espgcm::Backend;
use espgcm::esp::SaConfig;
use espgcm::net::checksum::pseudo_header_v4;
use espgcm::net::{Ipv4Repr, TcpRepr, protocol};
use std::net::Ipv4Addr;

/// IP packet sizes: a small packet, the IPv4 minimum MTU, a full-size
/// packet inside a 1500-byte tunnel.
pub const SIZES: [usize; 3] = [64, 576, 1420];
/// The AES-128 key; the SA appends a salt.
pub const KEY: [u8; 16] = [0x42; 16];
const SALT: [u8; 4] = [1, 2, 3, 4];

/// A TCP/IPv4 packet of `size` bytes with correct checksums.
pub fn tcp_packet(size: usize) -> Vec<u8> {
    let (src, dst) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let mut p: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let l4 = size - 20;
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: protocol::TCP,
        payload_len: l4,
        ttl: 64,
        dscp_ecn: 0,
        ident: 1,
        dont_frag: true,
    }
    .emit(&mut p)
    .expect("20-byte header fits");
    TcpRepr { src_port: 40000, dst_port: 2181, seq_number: 1, ack_number: 1, flags: 0x18, window: 1024 }
        .emit(&mut p[20..], pseudo_header_v4(src, dst, protocol::TCP, l4 as u16))
        .expect("20-byte header fits");
    p
}

/// The SA (transport mode, ICV 16) on `backend`. The replay window is off
/// so that `open` can reopen one packet; with it on, the check is one
/// comparison and one bit test per packet.
pub fn config(backend: Backend) -> SaConfig {
    let mut keymat = KEY.to_vec();
    keymat.extend_from_slice(&SALT);
    SaConfig { backend: Some(backend), replay_window: 0, ..SaConfig::new(0x1000, &keymat) }
}
