//! The SA table: inbound SAs found by SPI (and destination, and source) among
//! thousands, against a model; the SPD's first match, bypass and discard;
//! lookups on two threads while a third adds and removes SAs.

use espgcm::esp::{Action, EspError, Inbound, Outbound, Policy, SaConfig, SaTable, Selector};
use espgcm_testkit::packets::*;
use espgcm_testkit::rng::Rng;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

/// A key per SA index (one live sender per key, and distinct SAs).
fn keymat_for(i: u64) -> Vec<u8> {
    let mut k = i.to_be_bytes().repeat(2);
    k.extend_from_slice(&[0xfa, 0xce, 0, 1]);
    k
}

/// An IPv4 packet carrying an ESP header with `spi` (the rest zeros): what
/// the table reads to find the SA.
fn esp_to(spi: u32, src: Ipv4Addr, dst: Ipv4Addr) -> Vec<u8> {
    let mut esp = spi.to_be_bytes().to_vec();
    esp.extend_from_slice(&[0; 40]);
    ipv4(src, dst, 50, &esp)
}

#[test]
fn ten_thousand_sas_are_found_by_spi_and_address_as_a_model_says() {
    let table = SaTable::new();
    let mut model: HashMap<(u32, Option<Ipv4Addr>), u64> = HashMap::new();
    let mut rng = Rng(0x5ad0_0001);
    let dsts = [Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)];
    let mut spis = Vec::new();
    for i in 0..10_000u64 {
        let spi = 256 + (rng.next() % 5000) as u32; // collisions on purpose
        let dst = if rng.below(3) == 0 { Some(dsts[rng.below(2)]) } else { None };
        let sa = Inbound::new(SaConfig::new(spi, &keymat_for(i))).unwrap();
        let added = table.add_inbound(sa, dst.map(IpAddr::from), None);
        match model.entry((spi, dst)) {
            std::collections::hash_map::Entry::Occupied(_) => assert!(added.is_err(), "duplicate accepted"),
            std::collections::hash_map::Entry::Vacant(v) => {
                added.unwrap();
                v.insert(i);
            }
        }
        spis.push(spi);
    }
    assert_eq!(table.inbound_len(), model.len());
    // Remove a few hundred and check every lookup against the model.
    let mut keys: Vec<(u32, Option<Ipv4Addr>)> = model.keys().copied().collect();
    keys.sort_unstable();
    for (spi, dst) in keys.into_iter().step_by(37) {
        assert!(table.remove_inbound(spi, dst.map(IpAddr::from), None).is_some());
        model.remove(&(spi, dst));
    }
    for _ in 0..20_000 {
        let spi = spis[rng.below(spis.len())];
        let dst = dsts[rng.below(2)];
        let packet = esp_to(spi, Ipv4Addr::new(198, 51, 100, 7), dst);
        let expected = model.get(&(spi, Some(dst))).or_else(|| model.get(&(spi, None)));
        match (table.inbound_for(&packet), expected) {
            (Ok(sa), Some(_)) => assert_eq!(sa.config().spi, spi),
            (Err(EspError::NoSa { spi: s }), None) => assert_eq!(s, spi),
            (got, want) => panic!("spi {spi:#x} dst {dst}: got {got:?}, model {want:?}"),
        }
    }
}

#[test]
fn the_most_specific_sa_wins_and_open_goes_through_the_table() {
    let table = SaTable::new();
    let cfg = SaConfig::new(0x4321, &keymat(16));
    let (peer_a, peer_b) = (V4_DST, Ipv4Addr::new(10, 0, 0, 3));
    let generic = table.add_inbound(Inbound::new(cfg.clone()).unwrap(), None, None).unwrap();
    let for_b = Inbound::new(SaConfig { spi: 0x4321, keymat: keymat(32), ..cfg.clone() }).unwrap();
    let for_b = table.add_inbound(for_b, Some(IpAddr::from(peer_b)), None).unwrap();
    assert!(Arc::ptr_eq(&table.inbound_for(&esp_to(0x4321, V4_SRC, peer_a)).unwrap(), &generic));
    assert!(Arc::ptr_eq(&table.inbound_for(&esp_to(0x4321, V4_SRC, peer_b)).unwrap(), &for_b));
    // A real packet, sealed by the peer for the generic SA.
    let tx = Outbound::new(cfg).unwrap();
    let input = tcp_v4(V4_SRC, peer_a, b"through the table");
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    tx.seal(&input, &mut sealed).unwrap();
    table.open(&sealed, &mut opened).unwrap();
    assert_eq!(opened, input);
    assert_eq!(generic.stats().packets, 1);
    assert_eq!(table.open(&esp_to(0x9999, V4_SRC, peer_a), &mut opened), Err(EspError::NoSa { spi: 0x9999 }));
}

#[test]
fn the_spd_takes_the_first_policy_that_covers_a_packet() {
    let table = SaTable::new();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let tx = Arc::new(Outbound::new(SaConfig::new(0x5000, &keymat(16))).unwrap());
    let ssh = Selector {
        protocol: Some(6),
        remote_ports: 22..=22,
        ..Selector::between((ip("10.0.0.0"), 24), (ip("10.0.0.0"), 24))
    };
    table.push_policy(Policy { selectors: vec![ssh], action: Action::Bypass });
    table.push_policy(Policy {
        selectors: vec![Selector::between((ip("10.0.0.0"), 24), (ip("10.0.0.0"), 24))],
        action: Action::Protect(tx.clone()),
    });
    table.push_policy(Policy {
        selectors: vec![Selector::between((ip("10.0.0.0"), 24), (ip("0.0.0.0"), 0))],
        action: Action::Discard,
    });
    let tcp_to = |port: u16| {
        let mut p = tcp_v4(V4_SRC, V4_DST, b"x");
        p[22..24].copy_from_slice(&port.to_be_bytes());
        p
    };
    assert!(matches!(table.outbound_for(&tcp_to(22)).unwrap(), Some(Action::Bypass)));
    assert!(matches!(table.outbound_for(&tcp_to(2181)).unwrap(), Some(Action::Protect(sa)) if Arc::ptr_eq(&sa, &tx)));
    let elsewhere = udp_v4(V4_SRC, Ipv4Addr::new(203, 0, 113, 9), b"x");
    assert!(matches!(table.outbound_for(&elsewhere).unwrap(), Some(Action::Discard)));
    let foreign = udp_v4(Ipv4Addr::new(172, 16, 0, 1), V4_DST, b"x");
    assert!(table.outbound_for(&foreign).unwrap().is_none(), "no policy covers it");
    table.remove_policies_for(&tx);
    assert!(matches!(table.outbound_for(&tcp_to(2181)).unwrap(), Some(Action::Discard)));
}

#[test]
fn lookups_go_on_while_sas_are_added_and_removed() {
    let table = Arc::new(SaTable::new());
    for i in 0..100u64 {
        table.add_inbound(Inbound::new(SaConfig::new(1000 + i as u32, &keymat_for(i))).unwrap(), None, None).unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let (table, stop) = (table.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) || n < 1000 {
                    let spi = 1000 + ((n * 7 + t) % 100) as u32;
                    let sa = table.inbound_for(&esp_to(spi, V4_SRC, V4_DST)).expect("a stable SA is always found");
                    assert_eq!(sa.config().spi, spi);
                    n += 1;
                }
                n
            })
        })
        .collect();
    for i in 0..500u64 {
        let spi = 5000 + (i % 50) as u32;
        let sa = Inbound::new(SaConfig::new(spi, &keymat_for(10_000 + i))).unwrap();
        if table.add_inbound(sa, None, None).is_err() {
            table.remove_inbound(spi, None, None).unwrap();
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let lookups: u64 = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(lookups >= 2000);
}
