//! Bursts and one SA on many threads: `seal_burst` / `open_burst` give the
//! bytes single calls give, judge each packet alone, and one `Outbound` or
//! `Inbound` shared by several threads hands out every sequence number
//! exactly once and delivers every packet exactly once.

use espgcm::esp::{
    ChecksumPolicy, Encap, EspError, Inbound, Mode, Outbound, PacketBuf, PacketBuffer, PacketSlice, SaConfig, Transform,
};
use espgcm_testkit::packets::*;
use std::collections::BTreeSet;
use std::sync::Arc;

fn configs() -> Vec<(String, SaConfig, u8)> {
    let mut out = Vec::new();
    for backend in espgcm_testkit::backends::supported() {
        for (mode, inner) in [
            (None, 4),
            (None, 6),
            (Some(endpoints(4)), 4),
            (Some(endpoints(6)), 4),
            (Some(endpoints(4)), 6),
            (Some(endpoints(6)), 6),
        ] {
            for (natt, esn, icv, transform) in [
                (false, false, 16, Transform::AesGcm),
                (true, false, 12, Transform::AesGcm),
                (false, true, 8, Transform::AesGcm),
                (true, true, 16, Transform::AesGmac),
            ] {
                let cfg = SaConfig {
                    mode: mode.map_or(Mode::Transport, |(src, dst)| Mode::Tunnel { src, dst }),
                    encap: if natt { Encap::NAT_T } else { Encap::None },
                    esn,
                    icv_len: icv,
                    transform,
                    backend: Some(backend),
                    ..SaConfig::new(0x5151, &keymat(16))
                };
                let name = format!("{backend} {mode:?} inner v{inner} natt {natt} esn {esn} icv {icv} {transform:?}");
                out.push((name, cfg, inner));
            }
        }
    }
    out
}

fn burst_packets(family: u8, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| packet(family, i % 2 == 0, &pattern((i * 37) % 1400, i as u8))).collect()
}

#[test]
fn bursts_equal_single_packets_byte_for_byte() {
    // Bursts of up to 4 packets take their own path (small working arrays),
    // 5 to 32 one chunk, 33 two.
    for (name, cfg, inner) in configs() {
        for n in [1, 3, 4, 5, 33] {
            burst_equals_singles(&name, &cfg, inner, n);
        }
    }
}

fn burst_equals_singles(name: &str, cfg: &SaConfig, inner: u8, n: usize) {
    {
        let inputs = burst_packets(inner, n);
        // Singles first, on one sender; then the same sequence numbers as a
        // burst on a fresh one (the first is gone: one sender per key).
        let singles: Vec<Vec<u8>> = {
            let tx = Outbound::new(cfg.clone()).unwrap();
            inputs
                .iter()
                .map(|p| {
                    let mut out = Vec::new();
                    tx.seal(p, &mut out).unwrap_or_else(|e| panic!("{name}, {n} packets: {e}"));
                    out
                })
                .collect()
        };
        let tx = Outbound::new(cfg.clone()).unwrap();
        let mut burst: Vec<PacketBuf> = inputs.iter().map(|p| PacketBuf::from_packet(p)).collect();
        let mut results = vec![Ok(()); burst.len()];
        tx.seal_burst(&mut burst, &mut results);
        for (i, (b, single)) in burst.iter().zip(&singles).enumerate() {
            assert_eq!(results[i], Ok(()), "{name}, {n} packets: packet {i}");
            assert_eq!(b.data(), single.as_slice(), "{name}, {n} packets: packet {i}");
        }
        assert_eq!(tx.stats().packets, n as u64, "{name}");
        let rx = Inbound::new(cfg.clone()).unwrap();
        rx.open_burst(&mut burst, &mut results);
        for (i, (b, input)) in burst.iter().zip(&inputs).enumerate() {
            assert_eq!(results[i], Ok(()), "{name}, {n} packets: packet {i}");
            assert_eq!(b.data(), input.as_slice(), "{name}, {n} packets: packet {i}");
        }
        assert_eq!((rx.stats().packets, rx.stats().rejected()), (n as u64, 0), "{name}");
    }
}

/// An IPv4 header whose fields were edited, with its checksum made right
/// again.
fn fix_header_checksum(mut packet: Vec<u8>) -> Vec<u8> {
    let header_len = usize::from(packet[0] & 0x0f) * 4;
    packet[10..12].copy_from_slice(&[0, 0]);
    let c = !reference_sum(&packet[..header_len]);
    packet[10..12].copy_from_slice(&c.to_be_bytes());
    packet
}

/// Common packets (IPv4 without options or IPv6 without extension headers,
/// carrying TCP or UDP) have a straight path of their own in bursts. The
/// packets it must leave to the general path, or refuse, come out of a
/// burst as single seals give them, with the same errors, and a refused one
/// is left as it came: trailing link-layer bytes, options, a fragment, a
/// length past the bytes there are, UDP without a checksum, ICMP, a bad
/// header or segment checksum, DF past the path MTU and the same without
/// DF, buffers with no room in front or behind, and one too small.
#[test]
fn unusual_packets_in_a_burst_come_out_as_single_seals() {
    // Without checksums to verify, the lengths are all that keeps a packet
    // that claims more bytes than it has from being sealed with bytes past
    // its end.
    // Every mode and encapsulation the straight path takes or declines:
    // transport, tunnels with IPv4 and IPv6 outside, each bare and in
    // NAT-T's UDP.
    for checksums in [ChecksumPolicy::Verify, ChecksumPolicy::Skip] {
        for tunnel in [None, Some(4), Some(6)] {
            for encap in [Encap::None, Encap::NAT_T] {
                let mode = tunnel.map_or(Mode::Transport, |family| {
                    let (src, dst) = endpoints(family);
                    Mode::Tunnel { src, dst }
                });
                let cfg =
                    SaConfig { path_mtu: Some(1000), checksums, mode, encap, ..SaConfig::new(0x5353, &keymat(16)) };
                unusual_packets_with(cfg.clone());
                unusual_v6_packets_with(cfg);
            }
        }
    }
}

fn unusual_packets_with(cfg: SaConfig) {
    let what_sa = format!("{:?} {:?} {:?}", cfg.mode, cfg.encap, cfg.checksums);
    let (checksums, transport) = (cfg.checksums, matches!(cfg.mode, Mode::Transport));
    let tcp = |n: usize| tcp_v4(V4_SRC, V4_DST, &pattern(n, 7));
    let mut with_options = tcp(40);
    with_options.splice(20..20, [1u8, 1, 1, 1]);
    with_options[0] = 0x46;
    let total = with_options.len() as u16;
    with_options[2..4].copy_from_slice(&total.to_be_bytes());
    let mut fragment = tcp(48);
    fragment[6] |= 0x20;
    let mut long_claim = tcp(48);
    long_claim[3] += 2;
    let mut bad_header = tcp(60);
    bad_header[8] ^= 1;
    let mut bad_segment = tcp(60);
    *bad_segment.last_mut().unwrap() ^= 4;
    let mut no_df = tcp(1000);
    no_df[6] &= !0x40;
    let mut trailing = tcp(30);
    trailing.extend_from_slice(&[0xee; 6]);
    // (what, packet, room in front, room behind)
    let cases: Vec<(&str, Vec<u8>, usize, usize)> = vec![
        ("TCP", tcp(100), 64, 32),
        ("trailing bytes", trailing, 64, 32),
        ("options", fix_header_checksum(with_options), 64, 32),
        ("fragment", fix_header_checksum(fragment), 64, 32),
        ("length past the bytes", fix_header_checksum(long_claim), 64, 32),
        ("UDP without a checksum", udp_v4_no_checksum(V4_SRC, V4_DST, &pattern(50, 1)), 64, 32),
        ("ICMP", icmp_v4(V4_SRC, V4_DST, &pattern(40, 2)), 64, 32),
        ("bad IPv4 header checksum", bad_header, 64, 32),
        ("bad TCP checksum", bad_segment, 64, 32),
        ("DF past the path MTU", tcp(1000), 64, 32),
        ("no DF past the path MTU", fix_header_checksum(no_df), 64, 32),
        ("no room in front", tcp(70), 0, 128),
        ("no room behind", tcp(70), 128, 0),
        ("no room at all", tcp(70), 8, 8),
        ("UDP", udp_v4(V4_SRC, V4_DST, &pattern(33, 3)), 64, 32),
    ];
    let (sealed, results) = seal_unusual(&cfg, &cases);
    // The cases are what they say: the checks above compared something.
    // A fragment is refused in transport mode; a tunnel carries it.
    let verified = checksums == ChecksumPolicy::Verify;
    let expected = 9 + usize::from(!verified) + usize::from(!transport);
    assert_eq!(sealed, expected, "{what_sa}: {results:?}");
    assert!(matches!(results[9], Err(EspError::PacketTooBig { .. })), "{:?}", results[9]);
    assert!(matches!(results[4], Err(EspError::Malformed { .. } | EspError::Truncated { .. })), "{:?}", results[4]);
    if verified {
        assert!(matches!(results[8], Err(EspError::ChecksumBeforeEncrypt { .. })), "{:?}", results[8]);
    }
}

/// The same for IPv6 inside: trailing bytes, extension headers, a payload
/// length past the bytes there are, UDP without a checksum (which IPv6
/// forbids), a protocol the straight path does not take, a bad TCP
/// checksum, past the path MTU (which always applies: IPv6 is not
/// fragmented on the way), and buffers without room.
fn unusual_v6_packets_with(cfg: SaConfig) {
    let what_sa = format!("{:?} {:?} {:?} inner IPv6", cfg.mode, cfg.encap, cfg.checksums);
    let tcp = |n: usize| tcp_v6(V6_SRC, V6_DST, &pattern(n, 9));
    let mut trailing = tcp(30);
    trailing.extend_from_slice(&[0xee; 6]);
    let mut long_claim = tcp(48);
    long_claim[5] += 2;
    let mut no_udp_checksum = udp_v6(V6_SRC, V6_DST, &pattern(50, 1));
    no_udp_checksum[46..48].copy_from_slice(&[0, 0]);
    let mut bad_segment = tcp(60);
    *bad_segment.last_mut().unwrap() ^= 4;
    // Traffic class 0xb9 (DSCP 46, ECN 01), another flow label: neither is
    // in any checksum.
    let mut classed = tcp(90);
    classed[0..4].copy_from_slice(&[0x6b, 0x9a, 0xbc, 0xde]);
    // (what, packet, room in front, room behind)
    let cases: Vec<(&str, Vec<u8>, usize, usize)> = vec![
        ("TCP", tcp(100), 64, 32),
        ("trailing bytes", trailing, 64, 32),
        ("extension headers", tcp_v6_with_extensions(V6_SRC, V6_DST, &pattern(40, 4)), 64, 32),
        ("length past the bytes", long_claim, 64, 32),
        ("UDP without a checksum", no_udp_checksum, 64, 32),
        ("GRE", ipv6(V6_SRC, V6_DST, 47, &pattern(40, 2)), 64, 32),
        ("bad TCP checksum", bad_segment, 64, 32),
        ("past the path MTU", tcp(1000), 64, 32),
        ("no room in front", tcp(70), 0, 128),
        ("no room behind", tcp(70), 128, 0),
        ("no room at all", tcp(70), 8, 8),
        ("UDP", udp_v6(V6_SRC, V6_DST, &pattern(33, 3)), 64, 32),
        ("traffic class", classed.clone(), 64, 32),
    ];
    let (sealed, results) = seal_unusual(&cfg, &cases);
    // Without checksums to verify, UDP without one and the bad TCP
    // checksum are sealed as they are.
    let verified = cfg.checksums == ChecksumPolicy::Verify;
    assert_eq!(sealed, 8 + 2 * usize::from(!verified), "{what_sa}: {results:?}");
    // The traffic class goes to a tunnel's outer header as its DS field
    // (RFC 4301 5.1.2.1), and a kept header keeps it.
    let mut out = Vec::new();
    Outbound::new(cfg.clone()).unwrap().seal(&classed, &mut out).unwrap();
    let ds = match cfg.mode {
        Mode::Tunnel { src: std::net::IpAddr::V4(_), .. } => out[1],
        _ => (out[0] << 4) | (out[1] >> 4),
    };
    assert_eq!(ds, 0xb9, "{what_sa}");
    assert!(matches!(results[7], Err(EspError::PacketTooBig { .. })), "{what_sa}: {:?}", results[7]);
    assert!(matches!(results[3], Err(EspError::Malformed { .. } | EspError::Truncated { .. })), "{:?}", results[3]);
    assert!(results[0].is_ok() && results[2].is_ok() && results[11].is_ok(), "{what_sa}: {results:?}");
    if verified {
        assert!(matches!(results[6], Err(EspError::ChecksumBeforeEncrypt { .. })), "{:?}", results[6]);
    }
}

/// Seal each of `cases` (what, packet, room in front, room behind) alone
/// and then all of them as one burst, and check that the burst gives what
/// the single seals gave: the same bytes, or the same error with the packet
/// left as it came. Returns how many were sealed, and the burst's results.
fn seal_unusual(cfg: &SaConfig, cases: &[(&str, Vec<u8>, usize, usize)]) -> (usize, Vec<Result<(), EspError>>) {
    let what_sa = format!("{:?} {:?} {:?}", cfg.mode, cfg.encap, cfg.checksums);
    // Each case alone on a sender of its own, at the sequence number the
    // burst gives it (one live sender per key: each is dropped in turn).
    let singles: Vec<Result<Vec<u8>, EspError>> = cases
        .iter()
        .enumerate()
        .map(|(i, (_, packet, _, _))| {
            let tx = Outbound::new(cfg.clone()).unwrap();
            if i > 0 {
                tx.skip_to_sequence(1 + i as u64).unwrap();
            }
            let mut out = Vec::new();
            tx.seal(packet, &mut out).map(|()| out)
        })
        .collect();
    let mut memories: Vec<Vec<u8>> = cases
        .iter()
        .map(|(_, packet, front, behind)| {
            let mut memory = vec![0x55u8; front + packet.len() + behind];
            memory[*front..front + packet.len()].copy_from_slice(packet);
            memory
        })
        .collect();
    let mut burst: Vec<PacketSlice> = memories
        .iter_mut()
        .zip(cases)
        .map(|(memory, (_, packet, front, _))| PacketSlice::new(memory, *front, packet.len()).unwrap())
        .collect();
    let mut results = vec![Ok(()); burst.len()];
    let tx = Outbound::new(cfg.clone()).unwrap();
    tx.seal_burst_in(&mut burst, &mut results);
    let mut sealed = 0;
    for (((what, packet, _, _), single), (got, result)) in cases.iter().zip(&singles).zip(burst.iter().zip(&results)) {
        match (single, result) {
            (Ok(bytes), Ok(())) => {
                assert_eq!(got.data(), bytes.as_slice(), "{what_sa}: {what}");
                sealed += 1;
            }
            (Err(e), Err(f)) => {
                assert_eq!(e, f, "{what}");
                assert_eq!(got.data(), packet.as_slice(), "{what}: a refused packet is left as it came");
            }
            // Too small a buffer is the burst's own refusal (a single seal
            // writes into a `Vec` of its own).
            (Ok(_), Err(EspError::TooLarge { .. })) if *what == "no room at all" => {
                assert_eq!(got.data(), packet.as_slice(), "{what}: a refused packet is left as it came");
            }
            _ => panic!("{what_sa}: {what}: alone {single:?}, in the burst {result:?}"),
        }
    }
    (sealed, results)
}

/// ESP behind IPv4 without options or IPv6's fixed header, bare or in
/// NAT-T's UDP, has a straight path of its own when bursts are opened.
/// Over IPv4 without NAT-T, the arrivals it must leave to the general path, or refuse, are judged as
/// single opens judge them, with the same errors: trailing bytes, options
/// in the IP header, a fragment, a bad header checksum, another SPI, a
/// ciphertext length that is not a multiple of 4, a length past the bytes
/// there are, UDP instead of ESP, too short to hold an ICV, and the same
/// under ESN with a shorter ICV.
#[test]
fn unusual_arrivals_in_a_burst_are_judged_as_single_opens() {
    for (esn, icv_len) in [(false, 16), (true, 8)] {
        unusual_arrivals_with(SaConfig { esn, icv_len, ..SaConfig::new(0x5454, &keymat(16)) });
    }
}

fn unusual_arrivals_with(cfg: SaConfig) {
    let sealed: Vec<Vec<u8>> = {
        let tx = Outbound::new(cfg.clone()).unwrap();
        (0..12)
            .map(|i| {
                let mut out = Vec::new();
                tx.seal(&tcp_v4(V4_SRC, V4_DST, &pattern(40 + 7 * i, i as u8)), &mut out).unwrap();
                out
            })
            .collect()
    };
    let edit = |i: usize, f: &dyn Fn(&mut Vec<u8>)| {
        let mut p = sealed[i].clone();
        f(&mut p);
        p
    };
    let set_total = |p: &mut Vec<u8>, total: usize| p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    let arrivals: Vec<(&str, Vec<u8>)> = vec![
        ("as sealed", sealed[0].clone()),
        ("trailing bytes", edit(1, &|p| p.extend_from_slice(&[0xee; 6]))),
        ("bad header checksum", edit(2, &|p| p[8] ^= 1)),
        ("fragment", fix_header_checksum(edit(3, &|p| p[6] |= 0x20))),
        (
            "options",
            fix_header_checksum(edit(4, &|p| {
                p.splice(20..20, [1u8, 1, 1, 1]);
                p[0] = 0x46;
                set_total(p, p.len());
            })),
        ),
        ("another SPI", edit(5, &|p| p[23] ^= 1)),
        (
            "ciphertext not a multiple of 4",
            fix_header_checksum(edit(6, &|p| {
                p.truncate(p.len() - 2);
                set_total(p, p.len());
            })),
        ),
        ("length past the bytes", fix_header_checksum(edit(7, &|p| set_total(p, p.len() + 4)))),
        ("UDP, not ESP", fix_header_checksum(edit(8, &|p| p[9] = 17))),
        (
            "too short for an ICV",
            fix_header_checksum(edit(9, &|p| {
                p.truncate(20 + 16 + 4);
                set_total(p, p.len());
            })),
        ),
        ("ICV changed", edit(10, &|p| *p.last_mut().unwrap() ^= 1)),
        ("as sealed, last", sealed[11].clone()),
    ];
    let (opened, results) = open_unusual(&cfg, &arrivals);
    // The cases are what they say: some open, and each refusal has its reason.
    assert!(opened >= 2, "{results:?}");
    assert!(matches!(results[5], Err(EspError::UnknownSpi { .. })), "{:?}", results[5]);
    assert!(matches!(results[6], Err(EspError::Malformed { .. })), "{:?}", results[6]);
    assert!(matches!(results[10], Err(EspError::Auth { .. })), "{:?}", results[10]);
    assert_eq!(results[11], Ok(()));
}

/// Open each of `arrivals` alone on a receiver of its own and then all of
/// them as one burst, and check that the burst judges each as the single
/// open did: the same bytes, or the same error. Returns how many opened,
/// and the burst's results.
fn open_unusual(cfg: &SaConfig, arrivals: &[(&str, Vec<u8>)]) -> (usize, Vec<Result<(), EspError>>) {
    let singles: Vec<Result<Vec<u8>, EspError>> = arrivals
        .iter()
        .map(|(_, p)| {
            let rx = Inbound::new(cfg.clone()).unwrap();
            let mut out = Vec::new();
            rx.open(p, &mut out).map(|()| out)
        })
        .collect();
    let rx = Inbound::new(cfg.clone()).unwrap();
    let mut burst: Vec<PacketBuf> = arrivals.iter().map(|(_, p)| PacketBuf::from_packet(p)).collect();
    let mut results = vec![Ok(()); burst.len()];
    rx.open_burst(&mut burst, &mut results);
    let mut opened = 0;
    for (((what, arrival), single), (got, result)) in arrivals.iter().zip(&singles).zip(burst.iter().zip(&results)) {
        match (single, result) {
            (Ok(bytes), Ok(())) => {
                assert_eq!(got.data(), bytes.as_slice(), "{what}");
                opened += 1;
            }
            (Err(e), Err(f)) => {
                assert_eq!(e, f, "{what}");
                // Refused before decryption: as it arrived. Refused at its
                // ICV: the same length, headers and ICV as it arrived, its
                // decrypted payload zeroed.
                let arrived = arrival.as_slice();
                if matches!(f, EspError::Auth { .. }) {
                    let got = got.data();
                    assert_eq!(got.len(), arrived.len(), "{what}");
                    assert!(got.iter().zip(arrived).all(|(g, a)| g == a || *g == 0), "{what}: only zeroed");
                    assert_eq!(got[..24], arrived[..24], "{what}: the headers as they arrived");
                    assert_eq!(got[got.len() - 8..], arrived[arrived.len() - 8..], "{what}: the ICV as it arrived");
                    assert_ne!(got, arrived, "{what}: the payload zeroed");
                } else {
                    assert_eq!(got.data(), arrived, "{what}: left as it arrived");
                }
            }
            _ => panic!("{what}: alone {single:?}, in the burst {result:?}"),
        }
    }
    (opened, results)
}

/// The same over IPv6 (ESP straight behind the fixed header, which the
/// straight path takes, or behind an extension header, which it leaves to
/// the general path) and in NAT-T's UDP over either family: as sealed,
/// trailing bytes, another SPI, a ciphertext that is not a multiple of 4,
/// a length past the bytes there are, too short for an ICV, the other
/// protocol, an ICV changed; and in UDP, a length field short or long, a
/// changed UDP checksum (accepted either way), IKE's non-ESP marker and a
/// NAT keepalive.
#[test]
fn unusual_arrivals_over_ipv6_and_in_nat_t_are_judged_as_single_opens() {
    for (family, natt) in [(6, false), (4, true), (6, true)] {
        for (esn, icv_len, tunnel) in [(false, 16, false), (true, 8, false), (false, 12, true)] {
            let encap = if natt { Encap::NAT_T } else { Encap::None };
            let mode = if tunnel {
                let (src, dst) = endpoints(family);
                Mode::Tunnel { src, dst }
            } else {
                Mode::Transport
            };
            let cfg = SaConfig { esn, icv_len, encap, mode, ..SaConfig::new(0x5454, &keymat(16)) };
            unusual_arrivals_in(cfg, family);
        }
    }
}

/// An ICMPv6 echo request from `V6_SRC` to `V6_DST`, its checksum right.
fn icmp_v6(data: &[u8]) -> Vec<u8> {
    let mut msg = vec![128, 0, 0, 0, 0x12, 0x34, 0, 1];
    msg.extend_from_slice(data);
    let pseudo = espgcm::net::checksum::pseudo_header_v6(V6_SRC, V6_DST, 58, msg.len() as u32);
    let c = pseudo.add_bytes(&msg).checksum();
    msg[2..4].copy_from_slice(&c.to_be_bytes());
    ipv6(V6_SRC, V6_DST, 58, &msg)
}

fn unusual_arrivals_in(cfg: SaConfig, family: u8) {
    let what_sa = format!("IPv{family} {:?} {:?} esn {}", cfg.mode, cfg.encap, cfg.esn);
    let natt = matches!(cfg.encap, Encap::Udp { .. });
    let (h, u) = (if family == 4 { 20 } else { 40 }, if natt { 8 } else { 0 });
    let esp_at = h + u;
    let sealed: Vec<Vec<u8>> = {
        let tx = Outbound::new(cfg.clone()).unwrap();
        (0..16)
            .map(|i| {
                // The 15th carries ICMP, which the receiver's common case
                // leaves to its general one.
                let inner = match (i, family) {
                    (14, 4) => icmp_v4(V4_SRC, V4_DST, &pattern(40, 14)),
                    (14, _) => icmp_v6(&pattern(40, 14)),
                    _ => packet(family, i % 2 == 0, &pattern(40 + 7 * i, i as u8)),
                };
                let mut out = Vec::new();
                tx.seal(&inner, &mut out).unwrap();
                out
            })
            .collect()
    };
    // The IP length field set to `total` (for IPv4 with its checksum
    // made right), and with `udp_too` NAT-T's UDP length set to match.
    let set_len = move |p: &mut Vec<u8>, total: usize, udp_too: bool| {
        if family == 4 {
            p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            let fixed = fix_header_checksum(p.clone());
            *p = fixed;
        } else {
            p[4..6].copy_from_slice(&((total - 40) as u16).to_be_bytes());
        }
        if natt && udp_too {
            p[h + 4..h + 6].copy_from_slice(&((total - h) as u16).to_be_bytes());
        }
    };
    let edit = |i: usize, f: &dyn Fn(&mut Vec<u8>)| {
        let mut p = sealed[i].clone();
        f(&mut p);
        p
    };
    let other_protocol = if natt { 50 } else { 17 };
    let mut arrivals: Vec<(&str, Vec<u8>)> = vec![
        ("as sealed", sealed[0].clone()),
        ("trailing bytes", edit(1, &|p| p.extend_from_slice(&[0xee; 6]))),
        ("another SPI", edit(2, &|p| p[esp_at + 3] ^= 1)),
        (
            "ciphertext not a multiple of 4",
            edit(3, &|p| {
                p.truncate(p.len() - 2);
                set_len(p, p.len(), true);
            }),
        ),
        ("length past the bytes", edit(4, &|p| set_len(p, p.len() + 4, true))),
        (
            "too short for an ICV",
            edit(5, &|p| {
                p.truncate(esp_at + 16 + 4);
                set_len(p, p.len(), true);
            }),
        ),
        (
            "the other protocol",
            edit(6, &|p| {
                if family == 4 {
                    p[9] = other_protocol;
                    let fixed = fix_header_checksum(p.clone());
                    *p = fixed;
                } else {
                    p[6] = other_protocol;
                }
            }),
        ),
        ("ICV changed", edit(7, &|p| *p.last_mut().unwrap() ^= 1)),
    ];
    if family == 6 {
        // A destination-options header in front of ESP: the general path.
        arrivals.push((
            "behind an extension header",
            edit(8, &|p| {
                let next = p[6];
                p.splice(40..40, [next, 0, 1, 4, 0, 0, 0, 0]);
                p[6] = 60;
                set_len(p, p.len(), false);
            }),
        ));
    }
    if natt {
        let udp_len = |p: &mut Vec<u8>, delta: isize| {
            let len = u16::from_be_bytes([p[h + 4], p[h + 5]]) as isize + delta;
            p[h + 4..h + 6].copy_from_slice(&(len as u16).to_be_bytes());
        };
        arrivals.extend([
            ("UDP length short", edit(9, &|p| udp_len(p, -4))),
            ("UDP length long", edit(10, &|p| udp_len(p, 4))),
            ("UDP checksum changed", edit(11, &|p| p[h + 6] ^= 0x55)),
            ("non-ESP marker", edit(12, &|p| p[esp_at..esp_at + 4].fill(0))),
            (
                "keepalive",
                edit(13, &|p| {
                    p.truncate(esp_at + 1);
                    p[esp_at] = 0xff;
                    set_len(p, p.len(), true);
                }),
            ),
        ]);
    }
    arrivals.push(("ICMP inside", sealed[14].clone()));
    arrivals.push(("as sealed, last", sealed[15].clone()));
    let (opened, results) = open_unusual(&cfg, &arrivals);
    // The cases are what they say: these open, and each refusal has its
    // reason.
    let expected = 4 + usize::from(family == 6) + usize::from(natt);
    assert_eq!(opened, expected, "{what_sa}: {results:?}");
    let result = |what: &str| &results[arrivals.iter().position(|(w, _)| *w == what).unwrap()];
    assert!(matches!(result("another SPI"), Err(EspError::UnknownSpi { .. })), "{what_sa}: {results:?}");
    assert!(matches!(result("ciphertext not a multiple of 4"), Err(EspError::Malformed { .. })), "{what_sa}");
    assert!(matches!(result("ICV changed"), Err(EspError::Auth { .. })), "{what_sa}: {results:?}");
    assert_eq!(result("as sealed, last"), &Ok(()), "{what_sa}");
    assert_eq!(result("ICMP inside"), &Ok(()), "{what_sa}");
    if natt {
        assert_eq!(result("non-ESP marker"), &Err(EspError::NonEsp), "{what_sa}");
        assert_eq!(result("keepalive"), &Err(EspError::NatKeepalive), "{what_sa}");
        assert_eq!(result("UDP checksum changed"), &Ok(()), "{what_sa}");
    }
}

#[test]
fn each_packet_of_a_burst_is_judged_alone() {
    let cfg = SaConfig::new(0x5252, &keymat(32));
    let tx = Outbound::new(cfg.clone()).unwrap();
    let rx = Inbound::new(cfg).unwrap();
    let inputs = burst_packets(4, 8);
    // Seal: a damaged packet (bad TCP checksum) among good ones.
    let mut burst: Vec<PacketBuf> = inputs.iter().map(|p| PacketBuf::from_packet(p)).collect();
    let mut damaged = inputs[3].clone();
    *damaged.last_mut().unwrap() ^= 1;
    burst[3].set(&damaged);
    let mut results = vec![Ok(()); 8];
    tx.seal_burst(&mut burst, &mut results);
    assert!(matches!(results[3], Err(EspError::ChecksumBeforeEncrypt { .. })));
    assert_eq!(burst[3].data(), damaged.as_slice(), "a refused packet is left as it was");
    assert!(results.iter().enumerate().all(|(i, r)| i == 3 || r.is_ok()), "{results:?}");
    let sealed: Vec<Vec<u8>> = burst.iter().map(|b| b.data().to_vec()).collect();

    // Open: one forged, one replayed from before, one twice in the burst.
    rx.open(&sealed[0], &mut Vec::new()).unwrap();
    let mut forged = sealed[5].clone();
    *forged.last_mut().unwrap() ^= 0x80;
    let arriving = [&sealed[0], &sealed[1], &sealed[2], &sealed[4], &forged, &sealed[6], &sealed[6], &sealed[7]];
    let mut burst: Vec<PacketBuf> = arriving.iter().map(|p| PacketBuf::from_packet(p)).collect();
    let mut results = vec![Ok(()); burst.len()];
    rx.open_burst(&mut burst, &mut results);
    let seq = |i: usize| u64::from(u32::from_be_bytes(arriving[i][24..28].try_into().unwrap()));
    assert_eq!(results[0], Err(EspError::Replay { seq: seq(0) }));
    assert_eq!(results[4], Err(EspError::Auth { seq: seq(4) }));
    assert_eq!(results[5], Ok(()));
    assert_eq!(results[6], Err(EspError::Replay { seq: seq(6) }), "the second copy in one burst");
    for i in [1, 2, 3, 5, 7] {
        assert_eq!(results[i], Ok(()), "packet {i}");
    }
    // Refused before decryption (the replay from before): as it arrived.
    // Refused at the ICV or after (the forgery, the second copy, which was
    // decrypted before the window refused it): the ESP payload is zeroed,
    // the headers in front of it and the ICV are as they arrived.
    assert_eq!(burst[0].data(), arriving[0].as_slice(), "refused before decryption: left as it arrived");
    for i in [4, 6] {
        let (got, arrived) = (burst[i].data(), arriving[i]);
        assert_eq!(got.len(), arrived.len(), "packet {i}");
        let (body, icv) = (20 + 16..arrived.len() - 16, arrived.len() - 16..);
        assert_eq!(got[..body.start], arrived[..body.start], "packet {i}: headers as they arrived");
        assert!(got[body.clone()].iter().all(|&b| b == 0), "packet {i}: nothing decrypted is left");
        assert_eq!(got[icv.clone()], arrived[icv], "packet {i}: the ICV as it arrived");
    }
    assert_eq!(burst[1].data(), inputs[1].as_slice());
    assert_eq!(burst[7].data(), inputs[7].as_slice());
    let stats = rx.stats();
    assert_eq!((stats.packets, stats.replayed, stats.auth_failed), (6, 2, 1));
}

#[test]
fn each_packet_of_a_small_burst_is_judged_alone() {
    let cfg = SaConfig::new(0x5253, &keymat(16));
    let tx = Outbound::new(cfg.clone()).unwrap();
    let rx = Inbound::new(cfg).unwrap();
    let inputs = burst_packets(6, 3);
    let mut burst: Vec<PacketBuf> = inputs.iter().map(|p| PacketBuf::from_packet(p)).collect();
    let mut results = vec![Ok(()); 3];
    tx.seal_burst(&mut burst, &mut results);
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let sealed: Vec<Vec<u8>> = burst.iter().map(|b| b.data().to_vec()).collect();
    let mut forged = sealed[1].clone();
    *forged.last_mut().unwrap() ^= 1;
    // Four packets: good, forged, the first again, good.
    let arriving = [&sealed[0], &forged, &sealed[0], &sealed[2]];
    let mut burst: Vec<PacketBuf> = arriving.iter().map(|p| PacketBuf::from_packet(p)).collect();
    let mut results = vec![Ok(()); 4];
    rx.open_burst(&mut burst, &mut results);
    assert_eq!(results[0], Ok(()));
    assert_eq!(results[1], Err(EspError::Auth { seq: 2 }));
    assert_eq!(results[2], Err(EspError::Replay { seq: 1 }));
    assert_eq!(results[3], Ok(()));
    assert_eq!(burst[0].data(), inputs[0].as_slice());
    assert_eq!(burst[3].data(), inputs[2].as_slice());
    let body = 40 + 16..forged.len() - 16;
    assert!(burst[1].data()[body].iter().all(|&b| b == 0), "nothing decrypted is left");
    assert_eq!((rx.stats().packets, rx.stats().auth_failed, rx.stats().replayed), (2, 1, 1));
}

#[test]
fn a_callers_own_frames_are_sealed_and_opened_in_place() {
    let cfg = SaConfig::new(0x5353, &keymat(16));
    let (tx, rx) = pair(&cfg);
    let input = packet(6, true, &pattern(300, 9));
    // Four frames of 2 KiB, the packet 192 bytes in, as a NIC ring would have them.
    let mut ring = vec![0u8; 4 * 2048];
    let mut frames: Vec<PacketSlice<'_>> = ring
        .chunks_mut(2048)
        .map(|frame| {
            frame[192..192 + input.len()].copy_from_slice(&input);
            PacketSlice::new(frame, 192, input.len()).unwrap()
        })
        .collect();
    let mut results = vec![Ok(()); 4];
    tx.seal_burst_in(&mut frames, &mut results);
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    for f in &frames {
        assert!(f.start() < 192 && f.len() > input.len(), "headers went into the headroom");
    }
    rx.open_burst_in(&mut frames, &mut results);
    assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
    for f in &frames {
        assert_eq!(espgcm::esp::PacketBuffer::data(f), input.as_slice());
    }
    // A frame with no room at all for the headers is refused, not overrun.
    let mut tight = input.clone();
    let mut frames = [PacketSlice::new(&mut tight, 0, input.len()).unwrap()];
    let mut results = [Ok(())];
    tx.seal_burst_in(&mut frames, &mut results);
    assert!(matches!(results[0], Err(EspError::TooLarge { .. })), "{results:?}");
}

#[test]
fn outbound_and_inbound_are_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<Outbound>();
    shared::<Inbound>();
}

/// The sequence number in an ESP-over-IPv4 packet (transport mode).
fn seq_of(sealed: &[u8]) -> u32 {
    u32::from_be_bytes(sealed[24..28].try_into().unwrap())
}

#[test]
fn threads_on_one_sa_use_every_sequence_number_once_and_deliver_every_packet_once() {
    for threads in [2usize, 4] {
        // A window larger than the whole run: the threads are not paced, so
        // one may finish its share before another starts (real receive
        // queues reorder far less; see the README on window sizes).
        let cfg = SaConfig { replay_window: 1 << 16, ..SaConfig::new(0x5454, &keymat(16)) };
        let (tx, rx) = pair(&cfg);
        let (tx, rx) = (Arc::new(tx), Arc::new(rx));
        const PER_THREAD: usize = 2000;
        // Seal: each thread mixes single calls and bursts of 1 to 32.
        let sealed: Vec<Vec<u8>> = (0..threads)
            .map(|t| {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let inputs = burst_packets(4, 32);
                    let mut mine = Vec::new();
                    let mut i = 0;
                    while mine.len() < PER_THREAD {
                        let n = 1 + (i * 7 + t) % 32;
                        if n % 3 == 0 {
                            let mut out = Vec::new();
                            tx.seal(&inputs[i % 32], &mut out).unwrap();
                            mine.push(out);
                        } else {
                            let mut burst: Vec<PacketBuf> =
                                inputs[..n].iter().map(|p| PacketBuf::from_packet(p)).collect();
                            let mut results = vec![Ok(()); n];
                            tx.seal_burst(&mut burst, &mut results);
                            assert!(results.iter().all(|r| r.is_ok()));
                            mine.extend(burst.iter().map(|b| b.data().to_vec()));
                        }
                        i += 1;
                    }
                    mine
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let seqs: BTreeSet<u32> = sealed.iter().map(|p| seq_of(p)).collect();
        assert_eq!(seqs.len(), sealed.len(), "{threads} threads: a sequence number was used twice");
        assert_eq!(seqs.iter().copied().last(), Some(sealed.len() as u32), "no number skipped");
        assert_eq!(tx.stats().packets, sealed.len() as u64);

        // Open: the threads take interleaved shares, so each sees its share
        // out of order relative to the others'; then everything again.
        let sealed = Arc::new(sealed);
        let open_all = |round: usize| -> Vec<(u32, Result<(), EspError>)> {
            (0..threads)
                .map(|t| {
                    let (rx, sealed) = (rx.clone(), sealed.clone());
                    std::thread::spawn(move || {
                        let mine: Vec<&Vec<u8>> = sealed.iter().skip(t).step_by(threads).collect();
                        let mut verdicts = Vec::new();
                        for chunk in mine.chunks(1 + (t + round) % 16) {
                            let mut burst: Vec<PacketBuf> = chunk.iter().map(|p| PacketBuf::from_packet(p)).collect();
                            let mut results = vec![Ok(()); burst.len()];
                            rx.open_burst(&mut burst, &mut results);
                            verdicts.extend(chunk.iter().map(|p| seq_of(p)).zip(results));
                        }
                        verdicts
                    })
                })
                .collect::<Vec<_>>()
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        };
        let first = open_all(0);
        let delivered: Vec<u32> = first.iter().filter(|(_, r)| r.is_ok()).map(|(s, _)| *s).collect();
        assert_eq!(delivered.len(), sealed.len(), "{threads} threads: {:?}", first.iter().find(|(_, r)| r.is_err()));
        let again = open_all(1);
        assert!(again.iter().all(|(_, r)| matches!(r, Err(EspError::Replay { .. } | EspError::TooOld { .. }))));
        let stats = rx.stats();
        assert_eq!(stats.packets, sealed.len() as u64);
        assert_eq!(stats.replayed + stats.too_old, sealed.len() as u64);
    }
}
