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

// ---- the key manager's calls ----

use espgcm::esp::{Direction, Encap, Mode, PacketBuf, SaHandle, SaKey, SaUpdate};

#[test]
fn fresh_spis_are_random_unused_and_reserved_until_installed_or_released() {
    let table = SaTable::new();
    let taken = table.add_inbound(Inbound::new(SaConfig::new(0x1234, &keymat_for(1))).unwrap(), None, None).unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..2000 {
        let spi = table.fresh_spi().unwrap();
        assert!(spi >= 256 && spi != taken.config().spi);
        assert!(seen.insert(spi), "SPI {spi:#x} handed out twice");
    }
    // Spread over the space, not a counter.
    assert!(seen.iter().any(|&s| s > 0x8000_0000) && seen.iter().any(|&s| s < 0x8000_0000));
    let spi = *seen.iter().next().unwrap();
    table.add_inbound(Inbound::new(SaConfig::new(spi, &keymat_for(2))).unwrap(), None, None).unwrap();
    table.release_spi(*seen.iter().nth(1).unwrap());
    assert_eq!(table.inbound_len(), 2);
}

/// A model of the table's inbound side: key -> SA index; lookups pick the
/// most specific entry.
#[derive(Default)]
struct Model {
    inbound: HashMap<(u32, Option<IpAddr>, Option<IpAddr>), Arc<Inbound>>,
    outbound: HashMap<u32, u64>,
}

impl Model {
    /// RFC 4301 §4.4.2's order, with SPI and source between SPI and
    /// destination and SPI alone.
    fn lookup(&self, spi: u32, src: IpAddr, dst: IpAddr) -> Option<&Arc<Inbound>> {
        [(Some(dst), Some(src)), (Some(dst), None), (None, Some(src)), (None, None)]
            .into_iter()
            .find_map(|(d, s)| self.inbound.get(&(spi, d, s)))
    }
}

#[test]
fn ten_thousand_sas_under_random_adds_deletes_moves_and_lookups_match_a_model() {
    let table = SaTable::new();
    let mut model = Model::default();
    let mut rng = Rng(0x5ad0_0002);
    let addrs: Vec<IpAddr> = (1..=3).map(|i| IpAddr::from(Ipv4Addr::new(192, 0, 2, i))).collect();
    let pick = |rng: &mut Rng| if rng.below(3) == 0 { None } else { Some(addrs[rng.below(addrs.len())]) };
    let mut next = 0u64;
    let spi_of = |rng: &mut Rng| 256 + (rng.next() % 8000) as u32;
    // Fill to 10,000 inbound SAs, then churn.
    while model.inbound.len() < 10_000 {
        let (spi, dst, src) = (spi_of(&mut rng), pick(&mut rng), pick(&mut rng));
        next += 1;
        let added = table.add_inbound(Inbound::new(SaConfig::new(spi, &keymat_for(next))).unwrap(), dst, src);
        match model.inbound.entry((spi, dst, src)) {
            std::collections::hash_map::Entry::Occupied(_) => {
                assert!(matches!(added, Err(EspError::SaExists { .. })))
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                let sa = added.unwrap();
                assert_eq!(sa.config().spi, spi);
                v.insert(sa);
            }
        }
    }
    let mut keys: Vec<_> = model.inbound.keys().copied().collect();
    keys.sort_unstable();
    for round in 0..30_000u32 {
        match rng.below(10) {
            // Add (inbound or outbound).
            0 | 1 => {
                let (spi, dst, src) = (spi_of(&mut rng), pick(&mut rng), pick(&mut rng));
                next += 1;
                if rng.below(4) == 0 {
                    let tx = Outbound::new(SaConfig::new(spi, &keymat_for(next))).unwrap();
                    let added = table.add_outbound(tx, None);
                    assert_eq!(added.is_ok(), !model.outbound.contains_key(&spi));
                    model.outbound.entry(spi).or_insert(next);
                } else {
                    let added =
                        table.add_inbound(Inbound::new(SaConfig::new(spi, &keymat_for(next))).unwrap(), dst, src);
                    assert_eq!(added.is_ok(), !model.inbound.contains_key(&(spi, dst, src)));
                    if let Ok(sa) = added {
                        model.inbound.insert((spi, dst, src), sa);
                        keys.push((spi, dst, src));
                    }
                }
            }
            // Delete an existing one (or a missing one).
            2 | 3 => {
                if keys.is_empty() {
                    continue;
                }
                let i = rng.below(keys.len());
                let (spi, dst, src) = keys.swap_remove(i);
                let key = SaKey { direction: Direction::Inbound, spi, dst, src };
                match (table.delete(key), model.inbound.remove(&(spi, dst, src))) {
                    (Ok(SaHandle::Inbound(sa)), Some(want)) => assert!(Arc::ptr_eq(&sa, &want)),
                    (Err(EspError::NoSuchSa { key: k }), None) => assert_eq!(k, key),
                    (got, want) => panic!("round {round}: delete {key}: {got:?} vs model {want:?}"),
                }
            }
            // Move an SA to other lookup addresses.
            4 => {
                if keys.is_empty() {
                    continue;
                }
                let i = rng.below(keys.len());
                let (spi, dst, src) = keys[i];
                let (new_dst, new_src) = (pick(&mut rng), pick(&mut rng));
                let key = SaKey { direction: Direction::Inbound, spi, dst, src };
                let moved = table.update(key, SaUpdate { lookup: Some((new_dst, new_src)), ..SaUpdate::default() });
                let clash = (new_dst, new_src) != (dst, src) && model.inbound.contains_key(&(spi, new_dst, new_src));
                assert_eq!(moved.is_ok(), !clash, "{moved:?}");
                if !clash {
                    let id = model.inbound.remove(&(spi, dst, src)).unwrap();
                    model.inbound.insert((spi, new_dst, new_src), id);
                    keys[i] = (spi, new_dst, new_src);
                }
            }
            // Look a packet up.
            _ => {
                let spi = spi_of(&mut rng);
                let (src, dst) = (addrs[rng.below(3)], addrs[rng.below(3)]);
                let (IpAddr::V4(s4), IpAddr::V4(d4)) = (src, dst) else { unreachable!() };
                let packet = esp_to(spi, s4, d4);
                // `open` keeps the SAD between calls: it must see every
                // change made since its last call. (Found, the packet's
                // zero ICV fails; not found, the SPI is unknown.)
                let opened = table.open(&packet, &mut Vec::new());
                let want = model.lookup(spi, src, dst);
                assert_eq!(opened == Err(EspError::NoSa { spi }), want.is_none(), "round {round}: {opened:?}");
                let got = table.inbound_for(&packet);
                match (got, want) {
                    (Ok(sa), Some(want)) => {
                        assert!(Arc::ptr_eq(&sa, want), "round {round}: another SA of SPI {spi:#x}")
                    }
                    (Err(EspError::NoSa { spi: s }), None) => assert_eq!(s, spi),
                    (got, want) => panic!("round {round}: spi {spi:#x} {src}->{dst}: {got:?} vs model {want:?}"),
                }
            }
        }
    }
    assert_eq!(table.inbound_len(), model.inbound.len());
    assert_eq!(table.outbound_len(), model.outbound.len());
    let mut listed: Vec<SaKey> = table.keys().into_iter().filter(|k| k.direction == Direction::Inbound).collect();
    listed.sort_by_key(|k| (k.spi, format!("{k}")));
    assert_eq!(listed.len(), model.inbound.len());
    assert!(listed.iter().all(|k| model.inbound.contains_key(&(k.spi, k.dst, k.src))));
}

#[test]
fn query_reports_config_counters_sequence_numbers_and_no_key_material() {
    let table = SaTable::new();
    let cfg = SaConfig::new(0x6001, &keymat(16));
    let (tx, rx) = pair(&cfg);
    let tx = table.add_outbound(tx, Some(IpAddr::from(V4_DST))).unwrap();
    table.add_inbound(rx, Some(IpAddr::from(V4_DST)), None).unwrap();
    let input = tcp_v4(V4_SRC, V4_DST, b"queried");
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        tx.seal(&input, &mut sealed).unwrap();
        table.open(&sealed, &mut opened).unwrap();
    }
    tx.set_sequence_limit(1000);
    let out = table.query(SaKey::outbound(0x6001).with_dst(IpAddr::from(V4_DST))).unwrap();
    assert_eq!((out.next_sequence, out.sequence_limit, out.replay_top), (Some(4), Some(1000), None));
    assert_eq!((out.counters.packets, out.counters.bytes), (3, 3 * input.len() as u64));
    assert!(out.config.keymat.is_empty(), "no key material");
    let inb = table.query(SaKey::inbound(0x6001).with_dst(IpAddr::from(V4_DST))).unwrap();
    assert_eq!((inb.replay_top, inb.next_sequence, inb.counters.packets), (Some(3), None, 3));
    assert!(inb.config.keymat.is_empty());
    assert!(!format!("{inb:?}").contains(&format!("{:?}", &cfg.keymat[..4])));
    let missing = SaKey::outbound(0x6001);
    assert_eq!(table.query(missing).unwrap_err(), EspError::NoSuchSa { key: missing });
    assert_eq!(table.query(missing).unwrap_err().to_string(), "no outbound SA 0x00006001 is installed in the SA table");
}

#[test]
fn policies_are_added_inserted_updated_and_deleted_by_id() {
    let table = SaTable::new();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let net = Selector::between((ip("10.0.0.0"), 24), (ip("10.0.0.0"), 24));
    let tx = table.add_outbound(Outbound::new(SaConfig::new(0x6100, &keymat(16))).unwrap(), None).unwrap();
    let discard = table.add_policy(Policy { selectors: vec![], action: Action::Discard });
    let protect = table.insert_policy(0, Policy { selectors: vec![net.clone()], action: Action::Protect(tx.clone()) });
    assert_ne!(discard, protect);
    let order: Vec<_> = table.policies().into_iter().map(|(id, _)| id).collect();
    assert_eq!(order, [protect, discard]);
    let packet = tcp_v4(V4_SRC, V4_DST, b"x");
    assert!(matches!(table.outbound_for(&packet).unwrap(), Some(Action::Protect(_))));
    table.update_policy(protect, Action::Bypass).unwrap();
    assert!(matches!(table.outbound_for(&packet).unwrap(), Some(Action::Bypass)));
    table.update_policy(protect, Action::Protect(tx.clone())).unwrap();
    // Deleting the SA turns its policies to discard: never to the clear.
    table.add_policy(Policy { selectors: vec![], action: Action::Bypass });
    table.delete(SaKey::outbound(0x6100)).unwrap();
    assert!(matches!(table.outbound_for(&packet).unwrap(), Some(Action::Discard)));
    assert!(matches!(table.policies()[0].1.action, Action::Discard));
    let removed = table.delete_policy(protect).unwrap();
    assert_eq!(removed.selectors, [net]);
    assert_eq!(table.delete_policy(protect).unwrap_err(), EspError::NoSuchPolicy { id: protect });
    assert_eq!(table.policies().len(), 2);
    table.flush_policies();
    assert!(table.outbound_for(&packet).unwrap().is_none());
}

#[test]
fn flushing_removes_sas_and_policies_and_protecting_policies_discard() {
    let table = SaTable::new();
    let tx = table.add_outbound(Outbound::new(SaConfig::new(0x6200, &keymat(16))).unwrap(), None).unwrap();
    table.add_inbound(Inbound::new(SaConfig::new(0x6201, &keymat(16))).unwrap(), None, None).unwrap();
    table.add_policy(Policy { selectors: vec![], action: Action::Protect(tx) });
    table.flush_sas();
    assert_eq!((table.inbound_len(), table.outbound_len(), table.policies().len()), (0, 0, 1));
    assert!(matches!(table.outbound_for(&tcp_v4(V4_SRC, V4_DST, b"x")).unwrap(), Some(Action::Discard)));
    table.add_inbound(Inbound::new(SaConfig::new(0x6201, &keymat(16))).unwrap(), None, None).unwrap();
    table.flush();
    assert_eq!((table.inbound_len(), table.outbound_len(), table.policies().len()), (0, 0, 0));
}

#[test]
fn a_burst_of_packets_for_many_sas_opens_each_with_its_own_from_one_snapshot() {
    let table = SaTable::new();
    let input = udp_v4(V4_SRC, V4_DST, b"mixed burst");
    let mut senders = Vec::new();
    for i in 0..4u32 {
        let cfg = SaConfig::new(0x6300 + i, &keymat_for(100 + u64::from(i)));
        table.add_inbound(Inbound::new(cfg.clone()).unwrap(), None, None).unwrap();
        senders.push(Outbound::new(cfg).unwrap());
    }
    // Runs of one SA, SAs alternating, an unknown SPI and a keepalive among them.
    let order = [0usize, 0, 0, 1, 2, 1, 9, 3, 3, 8, 0];
    let mut burst = Vec::new();
    let mut sealed = Vec::new();
    for &i in &order {
        match i {
            9 => burst.push(PacketBuf::from_packet(&esp_to(0x9999, V4_SRC, V4_DST))),
            8 => {
                let keepalive = ipv4(V4_SRC, V4_DST, 17, &[0x11, 0x94, 0x11, 0x94, 0, 9, 0, 0, 0xff]);
                burst.push(PacketBuf::from_packet(&keepalive));
            }
            _ => {
                senders[i].seal(&input, &mut sealed).unwrap();
                burst.push(PacketBuf::from_packet(&sealed));
            }
        }
    }
    let mut results = vec![Ok(()); burst.len()];
    table.open_burst(&mut burst, &mut results);
    for (k, (&i, (pkt, r))) in order.iter().zip(burst.iter().zip(&results)).enumerate() {
        match i {
            9 => assert_eq!(*r, Err(EspError::NoSa { spi: 0x9999 }), "{k}"),
            8 => assert_eq!(*r, Err(EspError::NatKeepalive), "{k}"),
            _ => {
                assert_eq!(*r, Ok(()), "{k}");
                assert_eq!(pkt.data(), input.as_slice());
            }
        }
    }
    let per_sa: Vec<u64> = (0..4).map(|i| table.query(SaKey::inbound(0x6300 + i)).unwrap().counters.packets).collect();
    assert_eq!(per_sa, [4, 2, 1, 2]);
    let misses = table.stats();
    assert_eq!((misses.unknown_spi, misses.keepalives), (1, 1));
    // The snapshot API gives references valid for the burst.
    let snapshot = table.snapshot();
    senders[2].seal(&input, &mut sealed).unwrap();
    assert_eq!(snapshot.inbound_for(&sealed).unwrap().config().spi, 0x6302);
    // And by SPI and addresses read elsewhere (ESP in UDP from a socket).
    let (src, dst) = (IpAddr::from(V4_SRC), IpAddr::from(V4_DST));
    assert_eq!(snapshot.find(0x6302, src, dst).map(|sa| sa.config().spi), Some(0x6302));
    assert!(snapshot.find(0x9999, src, dst).is_none());
}

#[test]
fn replace_outbound_switches_every_policy_in_one_step_and_keeps_the_key_addresses() {
    let table = SaTable::new();
    let dst = IpAddr::from(V4_DST);
    let old = table.add_outbound(Outbound::new(SaConfig::new(0x6400, &keymat_for(400))).unwrap(), Some(dst)).unwrap();
    let a = table.add_policy(Policy { selectors: vec![], action: Action::Protect(old.clone()) });
    let new = table
        .replace_outbound(
            SaKey::outbound(0x6400).with_dst(dst),
            Outbound::new(SaConfig::new(0x6401, &keymat_for(401))).unwrap(),
        )
        .unwrap();
    assert!(table.outbound(SaKey::outbound(0x6400).with_dst(dst)).is_none());
    assert!(Arc::ptr_eq(&table.outbound(SaKey::outbound(0x6401).with_dst(dst)).unwrap(), &new));
    assert!(
        matches!(&table.policies()[0], (id, Policy { action: Action::Protect(sa), .. }) if *id == a && Arc::ptr_eq(sa, &new))
    );
    let e = table
        .replace_outbound(SaKey::outbound(0x6400), Outbound::new(SaConfig::new(0x6402, &keymat_for(402))).unwrap());
    assert!(matches!(e, Err(EspError::NoSuchSa { .. })));
    // The old SA lives on while someone holds it.
    let mut sealed = Vec::new();
    old.seal(&tcp_v4(V4_SRC, V4_DST, b"late"), &mut sealed).unwrap();
}

#[test]
fn an_outbound_sa_is_rebound_through_the_table_and_inbound_updates_refuse_endpoints() {
    let table = SaTable::new();
    let tunnel = Mode::Tunnel { src: "192.0.2.1".parse().unwrap(), dst: "198.51.100.2".parse().unwrap() };
    let cfg = SaConfig { mode: tunnel, encap: Encap::NAT_T, ..SaConfig::new(0x6500, &keymat(16)) };
    table.add_outbound(Outbound::new(cfg.clone()).unwrap(), None).unwrap();
    table.add_inbound(Inbound::new(cfg).unwrap(), None, None).unwrap();
    let moved = Mode::Tunnel { src: "192.0.2.1".parse().unwrap(), dst: "198.51.100.99".parse().unwrap() };
    let endpoints = (moved, Encap::Udp { src_port: 4500, dst_port: 33_000 });
    table.update(SaKey::outbound(0x6500), SaUpdate { endpoints: Some(endpoints), ..SaUpdate::default() }).unwrap();
    let info = table.query(SaKey::outbound(0x6500)).unwrap();
    assert_eq!((info.config.mode, info.config.encap), endpoints);
    let wrong = table.update(SaKey::inbound(0x6500), SaUpdate { endpoints: Some(endpoints), ..SaUpdate::default() });
    assert!(matches!(wrong, Err(EspError::Invalid { parameter: "endpoints", .. })));
    let transport = table.update(
        SaKey::outbound(0x6500),
        SaUpdate { endpoints: Some((Mode::Transport, Encap::NAT_T)), ..SaUpdate::default() },
    );
    assert!(matches!(transport, Err(EspError::Invalid { parameter: "mode", .. })));
}

#[test]
fn ipv6_and_nat_t_packets_find_their_sa_by_spi_and_destination() {
    let table = SaTable::new();
    let (a, b) = espgcm_testkit::packets::endpoints(6);
    for (i, encap) in [Encap::None, Encap::NAT_T].into_iter().enumerate() {
        let spi = 0x6600 + i as u32;
        let cfg = SaConfig {
            mode: Mode::Tunnel { src: a, dst: b },
            encap,
            ..SaConfig::new(spi, &keymat_for(600 + i as u64))
        };
        let tx = Outbound::new(cfg.clone()).unwrap();
        let rx = table.add_inbound(Inbound::new(cfg).unwrap(), Some(b), None).unwrap();
        let inner = udp_v4(V4_SRC, V4_DST, b"v6 outside");
        let (mut sealed, mut opened) = (Vec::new(), Vec::new());
        tx.seal(&inner, &mut sealed).unwrap();
        assert!(Arc::ptr_eq(&table.inbound_for(&sealed).unwrap(), &rx));
        table.open(&sealed, &mut opened).unwrap();
        assert_eq!(opened, inner);
        // The same SPI to another destination is not this SA.
        let elsewhere = Outbound::new(SaConfig {
            mode: Mode::Tunnel { src: b, dst: a },
            encap,
            ..SaConfig::new(spi, &keymat_for(700 + i as u64))
        })
        .unwrap();
        elsewhere.seal(&inner, &mut sealed).unwrap();
        assert_eq!(table.inbound_for(&sealed).unwrap_err(), EspError::NoSa { spi });
    }
}

#[test]
fn a_burst_with_one_spi_for_two_destinations_opens_each_packet_with_its_own_sa() {
    // Two SAs share an SPI: one kept under destination B, one under no
    // address. Packets alternate between them, so consecutive packets have
    // the same SPI but belong to different SAs.
    let table = SaTable::new();
    let peer_b = Ipv4Addr::new(10, 0, 0, 3);
    let generic_cfg = SaConfig::new(0x7400, &keymat_for(7400));
    let for_b_cfg = SaConfig::new(0x7400, &keymat_for(7401));
    let generic = table.add_inbound(Inbound::new(generic_cfg.clone()).unwrap(), None, None).unwrap();
    let for_b = table.add_inbound(Inbound::new(for_b_cfg.clone()).unwrap(), Some(IpAddr::from(peer_b)), None).unwrap();
    let (to_a, to_b) = (Outbound::new(generic_cfg).unwrap(), Outbound::new(for_b_cfg).unwrap());
    let inputs = [tcp_v4(V4_SRC, V4_DST, b"to a"), tcp_v4(V4_SRC, peer_b, b"to b")];
    let mut sealed = Vec::new();
    let mut burst = Vec::new();
    for k in 0..6 {
        let (tx, input) = if k % 2 == 0 { (&to_a, &inputs[0]) } else { (&to_b, &inputs[1]) };
        tx.seal(input, &mut sealed).unwrap();
        burst.push(PacketBuf::from_packet(&sealed));
    }
    let mut results = vec![Ok(()); burst.len()];
    table.open_burst(&mut burst, &mut results);
    for (k, (pkt, r)) in burst.iter().zip(&results).enumerate() {
        assert_eq!(*r, Ok(()), "packet {k}");
        assert_eq!(pkt.data(), inputs[k % 2].as_slice(), "packet {k}");
    }
    assert_eq!((generic.stats().packets, for_b.stats().packets), (3, 3));
}

#[test]
fn open_sees_every_change_at_once_and_lets_go_of_deleted_sas_at_the_next_call() {
    let spi = 0x5150;
    let cfg = SaConfig::new(spi, &keymat(16));
    let tx = Outbound::new(cfg.clone()).unwrap();
    let input = tcp_v4(V4_SRC, V4_DST, b"kept between calls");
    let sealed: Vec<Vec<u8>> = (0..4)
        .map(|_| {
            let mut sealed = Vec::new();
            tx.seal(&input, &mut sealed).unwrap();
            sealed
        })
        .collect();
    let mut opened = Vec::new();
    // Two tables used in turn on one thread: each call finds its own.
    let (a, b) = (SaTable::new(), SaTable::new());
    let rx = a.add_inbound(Inbound::new(cfg.clone()).unwrap(), None, None).unwrap();
    a.open(&sealed[0], &mut opened).unwrap();
    assert_eq!(opened, input);
    assert_eq!(b.open(&sealed[1], &mut opened), Err(EspError::NoSa { spi }));
    a.open(&sealed[1], &mut opened).unwrap();
    // Held by the table's SAD (which this thread keeps too) and this handle.
    assert_eq!(Arc::strong_count(&rx), 2);
    // Deleted: the table's new SAD does not hold it; the replaced one does,
    // kept by this thread until its next call (which refuses the packet)
    // and by the table until a poll finds nobody else keeping it.
    drop(a.delete(SaKey::inbound(spi)).unwrap());
    a.poll();
    assert_eq!(Arc::strong_count(&rx), 2);
    assert_eq!(a.open(&sealed[2], &mut opened), Err(EspError::NoSa { spi }));
    assert_eq!(Arc::strong_count(&rx), 2);
    a.poll();
    assert_eq!(Arc::strong_count(&rx), 1);
    // Installed again with another key: used at the next call.
    let other = SaConfig { keymat: keymat(32), ..cfg.clone() };
    let rx2 = a.add_inbound(Inbound::new(other).unwrap(), None, None).unwrap();
    assert!(matches!(a.open(&sealed[2], &mut opened), Err(EspError::Auth { .. })));
    assert_eq!(rx2.stats().auth_failed, 1);
    // Let go of on request.
    drop(a.delete(SaKey::inbound(spi)).unwrap());
    a.poll();
    assert_eq!(Arc::strong_count(&rx2), 2);
    SaTable::release_kept();
    a.poll();
    assert_eq!(Arc::strong_count(&rx2), 1);
    // A table made where a dropped one was is not taken for it.
    a.add_inbound(Inbound::new(cfg.clone()).unwrap(), None, None).unwrap();
    a.open(&sealed[2], &mut opened).unwrap();
    drop(a);
    let c = SaTable::new();
    assert_eq!(c.open(&sealed[3], &mut opened), Err(EspError::NoSa { spi }));
    // Other threads see the same table the same way.
    c.add_inbound(Inbound::new(cfg).unwrap(), None, None).unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut opened = Vec::new();
            c.open(&sealed[3], &mut opened).unwrap();
            assert_eq!(opened, input);
        });
    });
}

#[test]
fn open_of_consecutive_packets_for_one_sa_finds_each_packets_own_sa() {
    // Runs of packets for one SA, interleaved with another SA's, an SA kept
    // under an address, and changes between them: every packet is opened by
    // its own SA (the other SA's key would fail it) and counted there.
    let table = SaTable::new();
    let (x, y) = (0x7001, 0x7002);
    let cfg_x = SaConfig::new(x, &keymat(16));
    let cfg_y = SaConfig::new(y, &keymat(32));
    let (tx_x, tx_y) = (Outbound::new(cfg_x.clone()).unwrap(), Outbound::new(cfg_y.clone()).unwrap());
    let rx_x = table.add_inbound(Inbound::new(cfg_x.clone()).unwrap(), None, None).unwrap();
    let rx_y = table.add_inbound(Inbound::new(cfg_y.clone()).unwrap(), None, None).unwrap();
    let input = tcp_v4(V4_SRC, V4_DST, b"runs");
    let seal = |tx: &Outbound| {
        let mut sealed = Vec::new();
        tx.seal(&input, &mut sealed).unwrap();
        sealed
    };
    let (mut opened, mut last_x) = (Vec::new(), Vec::new());
    let order = [x, x, x, y, x, y, y, x, y, x, x];
    for (i, &spi) in order.iter().enumerate() {
        let sealed = if spi == x { seal(&tx_x) } else { seal(&tx_y) };
        table.open(&sealed, &mut opened).unwrap_or_else(|e| panic!("packet {i} for {spi:#x}: {e:?}"));
        assert_eq!(opened, input);
        if spi == x {
            last_x = sealed;
        }
    }
    assert_eq!(rx_x.stats().packets, 7);
    assert_eq!(rx_y.stats().packets, 4);
    // The last one again, right after a run: X's own window refuses it.
    assert!(matches!(table.open(&last_x, &mut opened), Err(EspError::Replay { .. })));
    assert_eq!(rx_x.stats().replayed, 1);
    // X replaced by an SA kept under another destination: X's packets to
    // V4_DST now find none, right after a run of them.
    drop(table.delete(SaKey::inbound(x)).unwrap());
    let elsewhere = IpAddr::from(Ipv4Addr::new(192, 0, 2, 99));
    table.add_inbound(Inbound::new(cfg_x).unwrap(), Some(elsewhere), None).unwrap();
    assert_eq!(table.open(&seal(&tx_x), &mut opened), Err(EspError::NoSa { spi: x }));
    assert_eq!(table.open(&seal(&tx_x), &mut opened), Err(EspError::NoSa { spi: x }));
    // Y goes on.
    table.open(&seal(&tx_y), &mut opened).unwrap();
    table.open(&seal(&tx_y), &mut opened).unwrap();
    assert_eq!(rx_y.stats().packets, 6);
}
