//! NAT rebinding (RFC 3948): the peer's NAT mapping changes and the SA
//! follows without being re-created: the outbound SA sends to the new
//! address and port with its sequence numbers going on, threads sealing
//! meanwhile see the old or the new endpoints (never a mix), and the
//! inbound side accepts the new mapping (any ports; addresses only as far
//! as the table's lookup keys say, which can be moved too).

use espgcm::esp::{Encap, EspError, Inbound, Mode, Outbound, SaConfig, SaKey, SaTable, SaUpdate};
use espgcm_testkit::packets::*;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

fn outer_dst(sealed: &[u8]) -> Ipv4Addr {
    Ipv4Addr::from(<[u8; 4]>::try_from(&sealed[16..20]).unwrap())
}

fn udp_ports(sealed: &[u8]) -> (u16, u16) {
    (u16::from_be_bytes([sealed[20], sealed[21]]), u16::from_be_bytes([sealed[22], sealed[23]]))
}

/// Sequence number of ESP in UDP over IPv4 (no options).
fn seq(sealed: &[u8]) -> u32 {
    u32::from_be_bytes(sealed[32..36].try_into().unwrap())
}

/// What a NAT in front of the sender does: a new source address and UDP
/// source port, the IPv4 header checksum fixed (the UDP checksum is 0).
fn nat(sealed: &[u8], public: Ipv4Addr, port: u16) -> Vec<u8> {
    let mut p = sealed.to_vec();
    p[12..16].copy_from_slice(&public.octets());
    p[10..12].copy_from_slice(&[0, 0]);
    let sum = reference_sum(&p[..20]);
    p[10..12].copy_from_slice(&(!sum).to_be_bytes());
    p[20..22].copy_from_slice(&port.to_be_bytes());
    assert_eq!(&p[26..28], &[0, 0], "NAT-T over IPv4 sends UDP checksum 0");
    p
}

#[test]
fn a_rebound_tunnel_sends_to_the_new_mapping_and_its_sequence_numbers_go_on() {
    let (me, peer_nat) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 2));
    let cfg = SaConfig {
        mode: Mode::Tunnel { src: me.into(), dst: peer_nat.into() },
        encap: Encap::NAT_T,
        ..SaConfig::new(0x9001, &keymat(16))
    };
    let (tx, rx) = pair(&cfg);
    let inner = tcp_v4(V4_SRC, V4_DST, b"through a NAT");
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    let mut seqs = Vec::new();
    for _ in 0..3 {
        tx.seal(&inner, &mut sealed).unwrap();
        assert_eq!((outer_dst(&sealed), udp_ports(&sealed)), (peer_nat, (4500, 4500)));
        seqs.push(seq(&sealed));
        rx.open(&sealed, &mut opened).unwrap();
    }
    // The peer's NAT moved it to 198.51.100.77:61044.
    let moved = Ipv4Addr::new(198, 51, 100, 77);
    tx.set_endpoints(
        Mode::Tunnel { src: me.into(), dst: moved.into() },
        Encap::Udp { src_port: 4500, dst_port: 61044 },
    )
    .unwrap();
    for _ in 0..3 {
        tx.seal(&inner, &mut sealed).unwrap();
        assert_eq!((outer_dst(&sealed), udp_ports(&sealed)), (moved, (4500, 61044)));
        seqs.push(seq(&sealed));
        // The receiver accepts whatever ports the packet arrives with.
        rx.open(&nat(&sealed, me, 50_000), &mut opened).unwrap();
        assert_eq!(opened, inner);
    }
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6], "sequence numbers untouched by the rebinding");
    assert_eq!((tx.stats().packets, rx.stats().packets, rx.replay_window().top()), (6, 6, 6));
}

#[test]
fn transport_mode_behind_a_nat_that_changes_its_mapping_still_verifies_checksums() {
    // The peer (10.0.0.1, private) sends to us (10.0.0.2) through a NAT
    // whose public address and port change midway. NAT-OA gives the
    // original addresses; the fix-up uses whatever addresses arrive.
    let cfg = SaConfig {
        encap: Encap::NAT_T,
        nat_original: Some((V4_SRC.into(), V4_DST.into())),
        ..SaConfig::new(0x9002, &keymat(16))
    };
    let (tx, rx) = pair(&cfg);
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    for (i, (public, port)) in
        [(Ipv4Addr::new(203, 0, 113, 5), 61000), (Ipv4Addr::new(203, 0, 113, 77), 62000)].into_iter().enumerate()
    {
        let segment = tcp_v4(V4_SRC, V4_DST, &[i as u8; 100]);
        tx.seal(&segment, &mut sealed).unwrap();
        rx.open(&nat(&sealed, public, port), &mut opened).unwrap();
        assert_eq!(&opened[12..16], &public.octets(), "delivered with the address it arrived from");
        assert_eq!(&opened[40..], &segment[40..], "payload intact");
        assert_ne!(opened[36..38], segment[36..38], "the TCP checksum was fixed up for the NAT's address");
    }
    assert_eq!((rx.stats().packets, rx.stats().checksum_after_decrypt), (2, 0));
}

#[test]
fn an_inbound_sa_found_by_source_address_is_moved_with_its_window() {
    let table = SaTable::new();
    let (me, old_peer, new_peer) =
        (IpAddr::from(V4_DST), Ipv4Addr::new(203, 0, 113, 5), Ipv4Addr::new(203, 0, 113, 77));
    let cfg = SaConfig {
        encap: Encap::NAT_T,
        nat_original: Some((V4_SRC.into(), V4_DST.into())),
        ..SaConfig::new(0x9003, &keymat(16))
    };
    let tx = Outbound::new(cfg.clone()).unwrap();
    let rx = table.add_inbound(Inbound::new(cfg).unwrap(), Some(me), Some(old_peer.into())).unwrap();
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    tx.seal(&udp_v4(V4_SRC, V4_DST, b"one"), &mut sealed).unwrap();
    let first = nat(&sealed, old_peer, 61000);
    table.open(&first, &mut opened).unwrap();
    tx.seal(&udp_v4(V4_SRC, V4_DST, b"two"), &mut sealed).unwrap();
    let second = nat(&sealed, new_peer, 62000);
    assert_eq!(table.open(&second, &mut opened), Err(EspError::NoSa { spi: 0x9003 }), "not found by the old key");
    let key = SaKey::inbound(0x9003).with_dst(me).with_src(old_peer.into());
    table.update(key, SaUpdate { lookup: Some((Some(me), Some(new_peer.into()))), ..SaUpdate::default() }).unwrap();
    table.open(&second, &mut opened).unwrap();
    // The same SA, window and all: the first packet replayed from the new
    // address is refused as a replay.
    assert_eq!(table.open(&nat(&first, new_peer, 62000), &mut opened), Err(EspError::Replay { seq: 1 }));
    assert_eq!((rx.stats().packets, rx.replay_window().top()), (2, 2));
}

#[test]
fn threads_sealing_while_the_mapping_changes_never_see_half_of_a_change() {
    let me = Ipv4Addr::new(192, 0, 2, 1);
    let cfg = SaConfig {
        mode: Mode::Tunnel { src: me.into(), dst: Ipv4Addr::new(10, 200, 0, 1).into() },
        encap: Encap::Udp { src_port: 4500, dst_port: 1 },
        replay_window: 0,
        ..SaConfig::new(0x9004, &keymat(16))
    };
    let tx = Arc::new(Outbound::new(cfg).unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (tx, stop) = (tx.clone(), stop.clone());
            std::thread::spawn(move || {
                let inner = udp_v4(V4_SRC, V4_DST, b"while rebinding");
                let mut sealed = Vec::new();
                let mut seqs = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    tx.seal(&inner, &mut sealed).unwrap();
                    // Port p goes with address 10.200.(p >> 8).(p & 255).
                    let port = udp_ports(&sealed).1;
                    let [_, _, c, d] = outer_dst(&sealed).octets();
                    assert_eq!((u16::from(c) << 8) | u16::from(d), port, "a torn endpoint");
                    seqs.push(seq(&sealed));
                }
                seqs
            })
        })
        .collect();
    for port in 2..3000u16 {
        let dst = Ipv4Addr::new(10, 200, (port >> 8) as u8, port as u8);
        tx.set_endpoints(
            Mode::Tunnel { src: me.into(), dst: dst.into() },
            Encap::Udp { src_port: 4500, dst_port: port },
        )
        .unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut all: Vec<u32> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    all.sort_unstable();
    let n = all.len() as u32;
    assert!(all.iter().copied().eq(1..=n), "every sequence number once");
}
