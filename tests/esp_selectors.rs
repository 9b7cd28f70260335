//! Traffic selectors (RFC 4301 §4.4.1, §5.2): a decrypted packet the SA's
//! selectors do not cover is dropped (spoofed inner addresses, other ports
//! or protocols), and a packet to be sealed that they do not cover is not
//! sent; an SA without selectors carries anything.

use espgcm::esp::{EspError, Inbound, Mode, Outbound, SaConfig, Selector};
use espgcm_testkit::packets::*;
use std::net::{IpAddr, Ipv4Addr};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A tunnel for 10.1/16 (here) to 10.2/16 (there), seen from both ends.
fn ends() -> (SaConfig, SaConfig) {
    let (a, b) = endpoints(4);
    let mine = Selector::between((ip("10.1.0.0"), 16), (ip("10.2.0.0"), 16));
    let theirs = Selector::between((ip("10.2.0.0"), 16), (ip("10.1.0.0"), 16));
    let base = SaConfig::new(0x6161, &keymat(16));
    let sender = SaConfig { mode: Mode::Tunnel { src: b, dst: a }, selectors: vec![theirs], ..base.clone() };
    let receiver = SaConfig { mode: Mode::Tunnel { src: b, dst: a }, selectors: vec![mine], ..base };
    (sender, receiver)
}

#[test]
fn a_spoofed_inner_source_is_dropped_after_decryption() {
    let (sender, receiver) = ends();
    // The peer's sender has no selectors of its own here: it would send anything.
    let tx = Outbound::new(SaConfig { selectors: Vec::new(), ..sender }).unwrap();
    let rx = Inbound::new(receiver).unwrap();
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    let good = udp_v4(Ipv4Addr::new(10, 2, 0, 5), Ipv4Addr::new(10, 1, 0, 9), b"hello");
    tx.seal(&good, &mut sealed).unwrap();
    rx.open(&sealed, &mut opened).unwrap();
    assert_eq!(opened, good);
    let spoofed = udp_v4(Ipv4Addr::new(192, 168, 66, 6), Ipv4Addr::new(10, 1, 0, 9), b"let me in");
    tx.seal(&spoofed, &mut sealed).unwrap();
    assert_eq!(rx.open(&sealed, &mut opened), Err(EspError::NotCovered { seq: Some(2) }));
    assert!(opened.is_empty());
    let wrong_dst = udp_v4(Ipv4Addr::new(10, 2, 0, 5), Ipv4Addr::new(10, 3, 0, 1), b"elsewhere");
    tx.seal(&wrong_dst, &mut sealed).unwrap();
    assert_eq!(rx.open(&sealed, &mut opened), Err(EspError::NotCovered { seq: Some(3) }));
    let stats = rx.stats();
    assert_eq!((stats.packets, stats.not_covered, stats.rejected()), (1, 2, 2));
}

#[test]
fn the_sender_refuses_what_its_selectors_do_not_cover() {
    let (sender, _) = ends();
    let tx = Outbound::new(sender).unwrap();
    let mut sealed = Vec::new();
    // The sender is the 10.2/16 end: from 10.9 is not its traffic.
    let outside = udp_v4(Ipv4Addr::new(10, 9, 0, 1), Ipv4Addr::new(10, 1, 0, 5), b"x");
    assert_eq!(tx.seal(&outside, &mut sealed), Err(EspError::NotCovered { seq: None }));
    assert!(sealed.is_empty());
    assert_eq!(tx.next_sequence(), Some(1), "no sequence number used");
    let inside = udp_v4(Ipv4Addr::new(10, 2, 0, 1), Ipv4Addr::new(10, 1, 0, 5), b"x");
    tx.seal(&inside, &mut sealed).unwrap();
    assert_eq!(tx.stats().not_covered, 1);
}

#[test]
fn ports_and_protocols_are_matched_in_transport_mode_too() {
    let here = (IpAddr::from(V4_DST), 32);
    let there = (IpAddr::from(V4_SRC), 32);
    // Only TCP from the peer's ports 40000..=40100 to port 2181 here.
    let zookeeper = Selector {
        protocol: Some(6),
        local_ports: 2181..=2181,
        remote_ports: 40000..=40100,
        ..Selector::between(here, there)
    };
    let cfg = SaConfig::new(0x6262, &keymat(16));
    let tx = Outbound::new(cfg.clone()).unwrap();
    let rx = Inbound::new(SaConfig { selectors: vec![zookeeper], ..cfg }).unwrap();
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    // The test builder's TCP runs 40000 -> 2181, its UDP 40001 -> 40002.
    let tcp = tcp_v4(V4_SRC, V4_DST, b"ruok");
    tx.seal(&tcp, &mut sealed).unwrap();
    rx.open(&sealed, &mut opened).unwrap();
    assert_eq!(opened, tcp);
    let udp = udp_v4(V4_SRC, V4_DST, b"ruok");
    tx.seal(&udp, &mut sealed).unwrap();
    assert_eq!(rx.open(&sealed, &mut opened), Err(EspError::NotCovered { seq: Some(2) }));
}

#[test]
fn several_selectors_match_if_any_does_and_bad_ones_are_refused() {
    let (_, receiver) = ends();
    let extra = Selector::between((ip("10.1.0.0"), 16), (ip("172.16.0.0"), 12));
    let rx =
        Inbound::new(SaConfig { selectors: vec![receiver.selectors[0].clone(), extra], ..receiver.clone() }).unwrap();
    let (a, b) = endpoints(4);
    let tx =
        Outbound::new(SaConfig { mode: Mode::Tunnel { src: b, dst: a }, selectors: Vec::new(), ..receiver.clone() })
            .unwrap();
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    let p = udp_v4(Ipv4Addr::new(172, 20, 1, 1), Ipv4Addr::new(10, 1, 0, 9), b"second range");
    tx.seal(&p, &mut sealed).unwrap();
    rx.open(&sealed, &mut opened).unwrap();
    for (bad, what) in [
        (Selector::between((ip("10.1.0.0"), 16), (ip("2001:db8::"), 32)), "one IP family"),
        (Selector::between((ip("10.1.0.0"), 33), (ip("10.2.0.0"), 16)), "prefix length"),
        (
            Selector {
                // An inverted range, as a config file could give it.
                local_ports: core::ops::RangeInclusive::new(10, 9),
                ..Selector::between((ip("10.1.0.0"), 16), (ip("10.2.0.0"), 16))
            },
            "empty",
        ),
    ] {
        match Inbound::new(SaConfig { selectors: vec![bad], ..receiver.clone() }) {
            Err(EspError::Invalid { parameter: "selectors", reason }) => assert!(reason.contains(what), "{reason}"),
            other => panic!("{what}: {other:?}"),
        }
    }
}

#[test]
fn in_transport_mode_a_source_outside_the_selectors_is_refused() {
    // Transport mode: the selectors see the packet's own addresses.
    let here = (IpAddr::from(V4_DST), 32);
    let cfg = SaConfig::new(0x6363, &keymat(16));
    let tx = Outbound::new(cfg.clone()).unwrap();
    let rx = Inbound::new(SaConfig { selectors: vec![Selector::between(here, (ip("10.0.0.0"), 30))], ..cfg }).unwrap();
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    tx.seal(&tcp_v4(Ipv4Addr::new(10, 0, 0, 3), V4_DST, b"in range"), &mut sealed).unwrap();
    rx.open(&sealed, &mut opened).unwrap();
    tx.seal(&tcp_v4(Ipv4Addr::new(10, 0, 0, 9), V4_DST, b"spoofed"), &mut sealed).unwrap();
    assert_eq!(rx.open(&sealed, &mut opened), Err(EspError::NotCovered { seq: Some(2) }));
    assert!(opened.is_empty());
}

#[test]
fn in_tunnel_mode_wrong_ports_and_protocols_are_refused_both_ways() {
    let (a, b) = endpoints(6);
    let (here, there) = ((ip("2001:db8:1::"), 48), (ip("2001:db8:2::"), 48));
    // Only TCP to port 2181 here, from any port there.
    let mine = Selector { protocol: Some(6), local_ports: 2181..=2181, ..Selector::between(here, there) };
    let theirs = Selector { protocol: Some(6), remote_ports: 2181..=2181, ..Selector::between(there, here) };
    let base = SaConfig { mode: Mode::Tunnel { src: b, dst: a }, ..SaConfig::new(0x6464, &keymat(16)) };
    let strict_tx = Outbound::new(SaConfig { selectors: vec![theirs], ..base.clone() }).unwrap();
    let rx = Inbound::new(SaConfig { selectors: vec![mine], ..base.clone() }).unwrap();
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    let (src6, dst6) = ("2001:db8:2::7".parse().unwrap(), "2001:db8:1::9".parse().unwrap());
    let good = tcp_v6(src6, dst6, b"ruok"); // TCP 40000 -> 2181
    strict_tx.seal(&good, &mut sealed).unwrap();
    rx.open(&sealed, &mut opened).unwrap();
    assert_eq!(opened, good);
    // The sender refuses UDP and other ports before encrypting.
    let udp = udp_v6(src6, dst6, b"not tcp");
    assert_eq!(strict_tx.seal(&udp, &mut sealed), Err(EspError::NotCovered { seq: None }));
    let mut other_port = good.clone();
    other_port[42..44].copy_from_slice(&2182u16.to_be_bytes()); // TCP destination port
    // (The checksum no longer matches, but the selectors are checked first.)
    assert_eq!(strict_tx.seal(&other_port, &mut sealed), Err(EspError::NotCovered { seq: None }));
    drop(strict_tx);
    // A sender without selectors gets them through; the receiver refuses them after decryption.
    let loose_tx = Outbound::new(base).unwrap();
    loose_tx.skip_to_sequence(10).unwrap();
    loose_tx.seal(&udp, &mut sealed).unwrap();
    assert_eq!(rx.open(&sealed, &mut opened), Err(EspError::NotCovered { seq: Some(10) }));
    let to_22 = {
        let seg_data = b"ssh?";
        let mut p = tcp_v6(src6, dst6, seg_data);
        // Rebuild with port 22 and a correct checksum: the test builder's TCP runs 40000 -> 2181.
        p[42..44].copy_from_slice(&22u16.to_be_bytes());
        let sum_at = 40 + 16;
        p[sum_at..sum_at + 2].copy_from_slice(&[0, 0]);
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p[8..40]);
        pseudo.extend_from_slice(&((p.len() - 40) as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, 6]);
        pseudo.extend_from_slice(&p[40..]);
        let c = !reference_sum(&pseudo);
        p[sum_at..sum_at + 2].copy_from_slice(&c.to_be_bytes());
        p
    };
    loose_tx.seal(&to_22, &mut sealed).unwrap();
    assert_eq!(rx.open(&sealed, &mut opened), Err(EspError::NotCovered { seq: Some(11) }));
    assert_eq!((rx.stats().packets, rx.stats().not_covered), (1, 2));
}
