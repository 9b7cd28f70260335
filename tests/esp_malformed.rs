//! Bad input on both sides: truncation at every length, damaged headers,
//! checksum failures before encryption and after decryption, NAT-T control
//! traffic, bad settings, and random bytes. Every case must come back as a
//! typed error (never a panic), with `out` empty and the right counter
//! moved.

use espgcm::Gcm;
use espgcm::esp::{
    ChecksumKind, ChecksumPolicy, Encap, EspError, Field, Header, Inbound, Limitation, Mode, NextHeaders, Outbound,
    SaConfig, Transform,
};
use espgcm::net::protocol;
use espgcm_testkit::packets::*;
use proptest::prelude::*;
use std::net::IpAddr;

const SPI: u32 = 0x0000_4000;

fn cfg() -> SaConfig {
    SaConfig::new(SPI, &keymat(16))
}

/// An ESP packet built straight from RFC 4106 with the crate's `Gcm`, for
/// plaintexts `seal` would never produce (bad padding, bad checksums).
fn peer_esp(key_len: usize, seq: u32, plaintext_with_trailer: &[u8]) -> Vec<u8> {
    let km = keymat(key_len);
    let (key, salt) = km.split_at(key_len);
    let gcm = Gcm::new(key).unwrap();
    let iv = u64::from(seq).to_be_bytes();
    let mut nonce = salt.to_vec();
    nonce.extend_from_slice(&iv);
    let mut aad = SPI.to_be_bytes().to_vec();
    aad.extend_from_slice(&seq.to_be_bytes());
    let mut body = plaintext_with_trailer.to_vec();
    let tag = gcm.encrypt(&nonce, &aad, &mut body).unwrap();
    let mut esp = aad.clone();
    esp.extend_from_slice(&iv);
    esp.extend_from_slice(&body);
    esp.extend_from_slice(&tag);
    esp
}

fn with_trailer(payload: &[u8], next_header: u8) -> Vec<u8> {
    let mut p = payload.to_vec();
    let pad = (4 - (payload.len() + 2) % 4) % 4;
    p.extend((1..=pad).map(|i| i as u8));
    p.extend_from_slice(&[pad as u8, next_header]);
    p
}

fn outer_v4(esp: &[u8]) -> Vec<u8> {
    ipv4(V4_SRC, V4_DST, protocol::ESP, esp)
}

fn sealed_tcp(config: &SaConfig) -> (Vec<u8>, Vec<u8>) {
    let input = match config.mode {
        Mode::Tunnel { .. } => tcp_v6(V6_SRC, V6_DST, &pattern(40, 3)),
        Mode::Transport => tcp_v4(V4_SRC, V4_DST, &pattern(40, 3)),
    };
    let tx = Outbound::new(config.clone()).unwrap();
    let mut sealed = Vec::new();
    tx.seal(&input, &mut sealed).unwrap();
    (input, sealed)
}

fn open_fresh(config: &SaConfig, packet: &[u8]) -> (Result<(), EspError>, Inbound) {
    let rx = Inbound::new(config.clone()).unwrap();
    let mut out = vec![0xAA; 3];
    let r = rx.open(packet, &mut out);
    if r.is_err() {
        assert!(out.is_empty(), "out must be empty on error ({r:?})");
    }
    (r, rx)
}

// ---------------------------------------------------------------- seal side

#[test]
fn seal_refuses_a_packet_whose_payload_changed_after_its_checksum_was_computed() {
    // The 2015 failure mode: bytes corrupted after TCP computed its checksum.
    for family in [4u8, 6] {
        for tcp in [true, false] {
            let mut input = packet(family, tcp, &pattern(100, 9));
            let last = input.len() - 1;
            input[last] ^= 0x01;
            let tx = Outbound::new(cfg()).unwrap();
            let mut out = vec![1, 2, 3];
            let err = tx.seal(&input, &mut out).unwrap_err();
            let kind = if tcp { ChecksumKind::Tcp } else { ChecksumKind::Udp };
            match err {
                EspError::ChecksumBeforeEncrypt { kind: k, found, expected } => {
                    assert_eq!(k, kind);
                    assert_ne!(found, expected);
                }
                other => panic!("v{family} tcp={tcp}: {other}"),
            }
            assert!(out.is_empty(), "nothing written");
            assert_eq!(tx.stats().checksum_before_encrypt, 1);
            assert_eq!(tx.stats().packets, 0);
            assert!(err.to_string().contains("damaged before encryption"), "{err}");
        }
    }
}

#[test]
fn seal_reports_the_checksum_the_packet_should_have() {
    let good = tcp_v4(V4_SRC, V4_DST, b"abc");
    let mut bad = good.clone();
    bad[36] ^= 0xff; // the checksum field itself
    let tx = Outbound::new(cfg()).unwrap();
    let err = tx.seal(&bad, &mut Vec::new()).unwrap_err();
    let right = u16::from_be_bytes([good[36], good[37]]);
    assert_eq!(
        err,
        EspError::ChecksumBeforeEncrypt { kind: ChecksumKind::Tcp, found: right ^ 0xff00, expected: right }
    );
}

#[test]
fn seal_refuses_a_bad_ipv4_header_checksum_in_both_modes() {
    let mut input = tcp_v4(V4_SRC, V4_DST, b"abc");
    input[8] = 63; // TTL changed without fixing the checksum
    let (src, dst) = endpoints(4);
    for mode in [Mode::Transport, Mode::Tunnel { src, dst }] {
        let tx = Outbound::new(SaConfig { mode, ..cfg() }).unwrap();
        let err = tx.seal(&input, &mut Vec::new()).unwrap_err();
        assert!(matches!(err, EspError::ChecksumBeforeEncrypt { kind: ChecksumKind::Ipv4Header, .. }), "{err}");
    }
}

#[test]
fn udp_checksum_zero_means_none_over_ipv4_but_is_refused_over_ipv6() {
    let (tx, rx) = pair(&cfg());
    let input = udp_v4_no_checksum(V4_SRC, V4_DST, b"no checksum");
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    tx.seal(&input, &mut sealed).unwrap();
    rx.open(&sealed, &mut opened).unwrap();
    assert_eq!(opened, input);

    let mut v6 = udp_v6(V6_SRC, V6_DST, b"needs one");
    let right = u16::from_be_bytes([v6[46], v6[47]]);
    v6[46..48].copy_from_slice(&[0, 0]);
    let err = tx.seal(&v6, &mut sealed).unwrap_err();
    assert_eq!(err, EspError::ChecksumBeforeEncrypt { kind: ChecksumKind::Udp, found: 0, expected: right });
}

#[test]
fn checksum_policy_skip_lets_a_bad_upper_layer_checksum_through() {
    let config = SaConfig { checksums: ChecksumPolicy::Skip, ..cfg() };
    let (tx, rx) = pair(&config);
    let mut input = tcp_v4(V4_SRC, V4_DST, b"skip me");
    input[44] ^= 1;
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    tx.seal(&input, &mut sealed).unwrap();
    rx.open(&sealed, &mut opened).unwrap();
    assert_eq!(opened, input);
}

#[test]
fn seal_refuses_packets_that_are_not_ip() {
    let tx = Outbound::new(cfg()).unwrap();
    let mut out = Vec::new();
    assert_eq!(tx.seal(&[], &mut out), Err(EspError::Truncated { header: Header::Ip, needed: 1, available: 0 }));
    let mut p = tcp_v4(V4_SRC, V4_DST, b"x");
    p[0] = 0x55;
    assert_eq!(tx.seal(&p, &mut out), Err(EspError::Malformed { field: Field::IpVersion, value: 5 }));
    p[0] = 0x44;
    assert_eq!(tx.seal(&p, &mut out), Err(EspError::Malformed { field: Field::Ipv4HeaderLength, value: 4 }));
    assert_eq!(tx.stats().truncated + tx.stats().malformed, 3);
}

#[test]
fn seal_refuses_what_would_not_fit_the_ip_length_field() {
    let (src, dst) = endpoints(4);
    let tx = Outbound::new(SaConfig { mode: Mode::Tunnel { src, dst }, ..cfg() }).unwrap();
    let big = udp_v4(V4_SRC, V4_DST, &vec![0u8; 65535 - 28]);
    assert_eq!(big.len(), 65535);
    let mut out = Vec::new();
    assert!(matches!(tx.seal(&big, &mut out), Err(EspError::TooLarge { max: 65535, .. })));
    assert!(out.is_empty());
    assert_eq!(tx.next_sequence(), Some(1));
}

#[test]
fn seal_at_every_truncation_of_a_good_packet_never_panics() {
    for input in [tcp_v4(V4_SRC, V4_DST, &pattern(50, 1)), tcp_v6_with_extensions(V6_SRC, V6_DST, b"ext")] {
        let tx = Outbound::new(cfg()).unwrap();
        for len in 0..input.len() {
            let mut out = Vec::new();
            let err = tx.seal(&input[..len], &mut out).unwrap_err();
            assert!(out.is_empty());
            assert!(!matches!(err, EspError::Auth { .. }), "len {len}: {err}");
        }
    }
}

// ---------------------------------------------------------------- open side

#[test]
fn open_at_every_truncation_returns_a_typed_error() {
    let (src, dst) = endpoints(4);
    let configs = [
        cfg(),
        SaConfig { encap: Encap::NAT_T, ..cfg() },
        SaConfig { mode: Mode::Tunnel { src, dst }, icv_len: 8, ..cfg() },
        SaConfig { transform: Transform::AesGmac, esn: true, ..cfg() },
    ];
    for config in configs {
        let (_, sealed) = sealed_tcp(&config);
        for len in 0..sealed.len() {
            let (r, rx) = open_fresh(&config, &sealed[..len]);
            let err = r.unwrap_err();
            // The IPv4 total length no longer matches: caught before any crypto.
            assert!(matches!(err, EspError::Truncated { header: Header::Ip | Header::Ipv4, .. }), "len {len}: {err}");
            assert_eq!(rx.stats().truncated, 1);
        }
    }
}

#[test]
fn open_with_consistent_but_short_lengths_reports_the_esp_truncation() {
    // Cut the ESP packet but fix the IP length, so only ESP itself is short.
    let (_, sealed) = sealed_tcp(&cfg());
    let esp = &sealed[20..];
    for len in 0..esp.len() {
        let (r, _) = open_fresh(&cfg(), &outer_v4(&esp[..len]));
        let err = r.unwrap_err();
        match err {
            EspError::Truncated { header: Header::Esp, .. } => assert!(len < 16 + 4 + 16, "len {len}"),
            EspError::Malformed { field: Field::EspCiphertextLength, .. } => assert!(len >= 36),
            EspError::Auth { seq: 1 } => assert!(len >= 36),
            other => panic!("len {len}: {other}"),
        }
    }
}

#[test]
fn open_checks_the_outer_ipv4_header() {
    let (_, sealed) = sealed_tcp(&cfg());
    // Header checksum.
    let mut p = sealed.clone();
    p[8] ^= 1;
    assert!(matches!(open_fresh(&cfg(), &p).0, Err(EspError::Malformed { field: Field::Ipv4HeaderChecksum, .. })));
    // Fragments (more-fragments, and an offset).
    for flags in [[0x20, 0x00], [0x00, 0x10]] {
        let mut p = sealed.clone();
        p[6..8].copy_from_slice(&flags);
        p[10..12].copy_from_slice(&[0, 0]);
        let c = !reference_sum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let (r, rx) = open_fresh(&cfg(), &p);
        assert_eq!(r, Err(EspError::Fragment));
        assert_eq!(rx.stats().fragments, 1);
    }
    // Protocol: UDP on an SA without NAT-T.
    let mut p = sealed.clone();
    p[9] = protocol::UDP;
    p[10..12].copy_from_slice(&[0, 0]);
    let c = !reference_sum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(open_fresh(&cfg(), &p).0, Err(EspError::Malformed { field: Field::Protocol, value: 17 }));
    // Total length below the header.
    let mut p = sealed.clone();
    p[2..4].copy_from_slice(&19u16.to_be_bytes());
    assert_eq!(open_fresh(&cfg(), &p).0, Err(EspError::Malformed { field: Field::Ipv4TotalLength, value: 19 }));
    // IHL past the packet.
    let short = ipv4(V4_SRC, V4_DST, protocol::ESP, &[]);
    let mut p = short.clone();
    p[0] = 0x4f;
    assert!(matches!(open_fresh(&cfg(), &p).0, Err(EspError::Truncated { header: Header::Ipv4, needed: 60, .. })));
}

#[test]
fn open_rejects_another_spi() {
    let (_, sealed) = sealed_tcp(&cfg());
    let other = SaConfig { spi: SPI + 1, ..cfg() };
    let (r, rx) = open_fresh(&other, &sealed);
    assert_eq!(r, Err(EspError::UnknownSpi { spi: SPI, expected: SPI + 1 }));
    assert_eq!(rx.stats().unknown_spi, 1);
}

#[test]
fn open_rejects_any_flipped_bit_in_the_esp_packet() {
    for transform in [Transform::AesGcm, Transform::AesGmac] {
        let config = SaConfig { transform, ..cfg() };
        let (_, sealed) = sealed_tcp(&config);
        for byte in 20..sealed.len() {
            for bit in [0x01, 0x80] {
                let mut p = sealed.clone();
                p[byte] ^= bit;
                let (r, rx) = open_fresh(&config, &p);
                let err = r.unwrap_err();
                match byte - 20 {
                    0..4 => assert!(matches!(err, EspError::UnknownSpi { .. }), "byte {byte}: {err}"),
                    // Sequence number 1 with its low bit flipped is 0: never valid.
                    7 if bit == 1 => assert!(matches!(err, EspError::TooOld { seq: 0, .. }), "{err}"),
                    _ => assert!(matches!(err, EspError::Auth { .. }), "byte {byte}: {err}"),
                }
                assert_eq!(rx.replay_window().top(), 0, "a failed packet never moves the window");
            }
        }
    }
}

#[test]
fn open_rejects_bad_padding_after_authentication() {
    let payload = tcp_v4(V4_SRC, V4_DST, b"abcd");
    // pad length 2 but bytes 1, 3
    let mut plain = payload[20..].to_vec();
    plain.extend_from_slice(&[1, 3, 2, protocol::TCP]);
    let mut header = payload[..20].to_vec();
    header[9] = protocol::ESP;
    let esp = peer_esp(16, 1, &plain);
    let (r, rx) = open_fresh(&cfg(), &outer_v4(&esp));
    assert_eq!(r, Err(EspError::BadPadding { seq: 1, pad_len: 2 }));
    assert_eq!(rx.stats().bad_padding, 1);
    assert_eq!(rx.replay_window().top(), 1, "the packet was authentic: the window moved");
    // Pad length longer than the payload.
    let esp = peer_esp(16, 2, &[1, 2, 200, 6]);
    assert_eq!(open_fresh(&cfg(), &outer_v4(&esp)).0, Err(EspError::BadPadding { seq: 2, pad_len: 200 }));
}

#[test]
fn open_rejects_a_packet_the_peer_damaged_before_encrypting_it() {
    // Transport mode: a TCP segment with a wrong checksum, correctly sealed.
    let mut inner = tcp_v4(V4_SRC, V4_DST, &pattern(64, 2));
    inner[50] ^= 0x10;
    let esp = peer_esp(16, 7, &with_trailer(&inner[20..], protocol::TCP));
    let (r, rx) = open_fresh(&cfg(), &outer_v4(&esp));
    match r {
        Err(EspError::ChecksumAfterDecrypt { seq: 7, kind: ChecksumKind::Tcp, found, expected }) => {
            assert_ne!(found, expected)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rx.stats().checksum_after_decrypt, 1);
    assert_eq!(rx.stats().packets, 0);

    // Tunnel mode: inner UDP/IPv6 damaged, and an inner IPv4 header damaged.
    let (src, dst) = endpoints(4);
    let tunnel = SaConfig { mode: Mode::Tunnel { src, dst }, ..cfg() };
    let mut inner6 = udp_v6(V6_SRC, V6_DST, b"payload");
    *inner6.last_mut().unwrap() ^= 1;
    let esp = peer_esp(16, 1, &with_trailer(&inner6, protocol::IPV6));
    assert!(matches!(
        open_fresh(&tunnel, &outer_v4(&esp)).0,
        Err(EspError::ChecksumAfterDecrypt { seq: 1, kind: ChecksumKind::Udp, .. })
    ));
    let mut inner4 = udp_v4(V4_SRC, V4_DST, b"payload");
    inner4[8] = 1; // TTL changed, header checksum stale
    let esp = peer_esp(16, 1, &with_trailer(&inner4, protocol::IPV4));
    assert!(matches!(
        open_fresh(&tunnel, &outer_v4(&esp)).0,
        Err(EspError::ChecksumAfterDecrypt { seq: 1, kind: ChecksumKind::Ipv4Header, .. })
    ));
}

#[test]
fn open_checks_the_next_header_against_the_mode_and_inner_packet() {
    let (src, dst) = endpoints(4);
    let tunnel = SaConfig { mode: Mode::Tunnel { src, dst }, ..cfg() };
    let inner = udp_v4(V4_SRC, V4_DST, b"x");
    // Tunnel mode with next header TCP.
    let esp = peer_esp(16, 1, &with_trailer(&inner, protocol::TCP));
    assert_eq!(open_fresh(&tunnel, &outer_v4(&esp)).0, Err(EspError::Malformed { field: Field::NextHeader, value: 6 }));
    // Next header says IPv6 but the packet is IPv4.
    let esp = peer_esp(16, 1, &with_trailer(&inner, protocol::IPV6));
    assert_eq!(
        open_fresh(&tunnel, &outer_v4(&esp)).0,
        Err(EspError::Malformed { field: Field::NextHeader, value: 41 })
    );
    // Inner packet claims more bytes than were decrypted.
    let mut long = inner.clone();
    long[2..4].copy_from_slice(&200u16.to_be_bytes());
    let esp = peer_esp(16, 1, &with_trailer(&long, protocol::IPV4));
    assert_eq!(
        open_fresh(&tunnel, &outer_v4(&esp)).0,
        Err(EspError::Malformed { field: Field::InnerLength, value: 200 })
    );
}

#[test]
fn transport_mode_delivers_only_the_next_headers_it_can_verify_unless_told_otherwise() {
    // A transport payload whose trailer names protocol 70 (TCP's 6 with one
    // bit flipped): it has no checksum, so nothing after the ICV could tell
    // a corrupted trailer from a real one.
    let tcp = tcp_v4(V4_SRC, V4_DST, b"ruok");
    let segment = &tcp[20..];
    let esp = peer_esp(16, 1, &with_trailer(segment, 70));
    let (result, rx) = open_fresh(&cfg(), &outer_v4(&esp));
    assert_eq!(result, Err(EspError::UnexpectedNextHeader { seq: 1, next_header: 70 }));
    assert_eq!((rx.stats().unexpected_next_header, rx.stats().rejected(), rx.stats().packets), (1, 1, 0));
    assert_eq!(rx.replay_window().top(), 1, "the packet was authentic: the window moved");

    // Each protocol open can verify is delivered by default.
    for (packet, proto) in [
        (tcp.clone(), protocol::TCP),
        (udp_v4(V4_SRC, V4_DST, b"ruok"), protocol::UDP),
        (icmp_v4(V4_SRC, V4_DST, b"ruok"), protocol::ICMP),
    ] {
        let esp = peer_esp(16, 1, &with_trailer(&packet[20..], proto));
        let (result, _) = open_fresh(&cfg(), &outer_v4(&esp));
        assert_eq!(result, Ok(()), "protocol {proto}");
    }

    // Widened: protocol 70 is delivered; narrowed: UDP is refused.
    let widened = SaConfig { next_headers: NextHeaders::Only(vec![protocol::TCP, 70]), ..cfg() };
    let rx = Inbound::new(widened).unwrap();
    let mut out = Vec::new();
    rx.open(&outer_v4(&esp), &mut out).unwrap();
    assert_eq!(out.len(), tcp.len());
    assert_eq!(out[9], 70, "the restored IPv4 header names the protocol the trailer gave");
    let narrowed = SaConfig { next_headers: NextHeaders::Only(vec![protocol::TCP]), ..cfg() };
    let udp = udp_v4(V4_SRC, V4_DST, b"ruok");
    let esp = peer_esp(16, 1, &with_trailer(&udp[20..], protocol::UDP));
    let (result, _) = open_fresh(&narrowed, &outer_v4(&esp));
    assert_eq!(result, Err(EspError::UnexpectedNextHeader { seq: 1, next_header: protocol::UDP }));
}

#[test]
fn tunnel_mode_can_be_narrowed_to_one_inner_family() {
    let (src, dst) = endpoints(4);
    let v4_only = SaConfig { mode: Mode::Tunnel { src, dst }, next_headers: NextHeaders::Only(vec![4]), ..cfg() };
    let inner6 = udp_v6(V6_SRC, V6_DST, b"x");
    let esp = peer_esp(16, 1, &with_trailer(&inner6, protocol::IPV6));
    assert_eq!(
        open_fresh(&v4_only, &outer_v4(&esp)).0,
        Err(EspError::UnexpectedNextHeader { seq: 1, next_header: 41 })
    );
    let inner4 = udp_v4(V4_SRC, V4_DST, b"x");
    let esp = peer_esp(16, 1, &with_trailer(&inner4, protocol::IPV4));
    assert_eq!(open_fresh(&v4_only, &outer_v4(&esp)).0, Ok(()));
}

#[test]
fn open_refuses_a_transport_payload_with_a_bad_tcp_header() {
    // TCP data offset 15 words in a 24-byte segment.
    let mut seg = tcp_v4(V4_SRC, V4_DST, b"four")[20..].to_vec();
    seg[12] = 0xf0;
    let esp = peer_esp(16, 1, &with_trailer(&seg, protocol::TCP));
    assert_eq!(
        open_fresh(&cfg(), &outer_v4(&esp)).0,
        Err(EspError::Malformed { field: Field::TcpDataOffset, value: 15 })
    );
}

#[test]
fn nat_t_keepalives_and_ike_packets_are_reported_as_such_not_as_attacks() {
    let natt = SaConfig { encap: Encap::NAT_T, ..cfg() };
    let udp4500 = |payload: &[u8]| {
        let mut d = vec![0x11, 0x94, 0x11, 0x94, 0, 0, 0, 0];
        d[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        d.extend_from_slice(payload);
        ipv4(V4_SRC, V4_DST, protocol::UDP, &d)
    };
    let rx = Inbound::new(natt.clone()).unwrap();
    let mut out = Vec::new();
    let keepalive = rx.open(&udp4500(&[0xff]), &mut out).unwrap_err();
    assert_eq!(keepalive, EspError::NatKeepalive);
    assert!(keepalive.is_benign());
    let ike = rx.open(&udp4500(&[0, 0, 0, 0, 0x21, 0x20, 0x22, 0x08]), &mut out).unwrap_err();
    assert_eq!(ike, EspError::NonEsp);
    assert!(ike.is_benign());
    assert_eq!(
        rx.open(&udp4500(&[1, 2]), &mut out),
        Err(EspError::Malformed { field: Field::UdpEncapsulation, value: 2 })
    );
    let s = rx.stats();
    assert_eq!((s.keepalives, s.non_esp, s.malformed, s.rejected()), (1, 1, 1, 1));
    // A UDP length that lies.
    let mut p = udp4500(&[1, 2, 3, 4, 5, 6, 7, 8]);
    p[24..26].copy_from_slice(&100u16.to_be_bytes());
    assert!(matches!(rx.open(&p, &mut out), Err(EspError::Truncated { header: Header::Udp, needed: 100, .. })));
}

#[test]
fn ipv6_headers_are_walked_with_every_length_checked() {
    let config = cfg();
    let tx = Outbound::new(config.clone()).unwrap();
    let mut sealed = Vec::new();
    tx.seal(&tcp_v6_with_extensions(V6_SRC, V6_DST, b"x"), &mut sealed).unwrap();
    // Hop-by-hop header length pointing past the packet.
    let mut p = sealed.clone();
    p[41] = 200;
    assert!(matches!(open_fresh(&config, &p).0, Err(EspError::Truncated { header: Header::Ipv6Extension, .. })));
    // A fragment header in the chain.
    let mut p = sealed.clone();
    p[40] = protocol::FRAGMENT;
    assert_eq!(open_fresh(&config, &p).0, Err(EspError::Fragment));
    // AH is not supported.
    let mut p = sealed.clone();
    p[40] = protocol::AH;
    assert_eq!(open_fresh(&config, &p).0, Err(EspError::Unsupported(Limitation::Ipv6ExtensionHeader(51))));
    // Payload length past the buffer.
    let mut p = sealed.clone();
    p[4..6].copy_from_slice(&9000u16.to_be_bytes());
    assert!(matches!(open_fresh(&config, &p).0, Err(EspError::Truncated { header: Header::Ipv6, .. })));
    // Sealing a packet with a hop-by-hop header that is not first.
    let mut bad = tcp_v6_with_extensions(V6_SRC, V6_DST, b"x");
    bad[48] = protocol::HOP_BY_HOP; // dest-opts' next header -> hop-by-hop
    assert!(matches!(tx.seal(&bad, &mut sealed), Err(EspError::Malformed { field: Field::Ipv6HopByHopPosition, .. })));
}

#[test]
fn bad_settings_are_refused_with_the_field_named() {
    let cases: Vec<(SaConfig, &str)> = vec![
        (SaConfig::new(0, &keymat(16)), "spi"),
        (SaConfig::new(255, &keymat(16)), "spi"),
        (SaConfig::new(SPI, &[0u8; 16]), "keymat"),
        (SaConfig::new(SPI, &[0u8; 32]), "keymat"),
        (SaConfig { icv_len: 4, ..cfg() }, "icv_len"),
        (SaConfig { icv_len: 12, transform: Transform::AesGmac, ..cfg() }, "icv_len"),
        (SaConfig { mode: Mode::Tunnel { src: endpoints(4).0, dst: endpoints(6).1 }, ..cfg() }, "mode"),
        (SaConfig { encap: Encap::Udp { src_port: 0, dst_port: 4500 }, ..cfg() }, "encap"),
        (SaConfig { replay_window: (1 << 20) + 1, ..cfg() }, "replay_window"),
        (SaConfig { nat_original: Some((IpAddr::from(V4_SRC), IpAddr::from(V6_DST))), ..cfg() }, "nat_original"),
        (SaConfig { tunnel_ttl: 0, ..cfg() }, "tunnel_ttl"),
        (SaConfig { next_headers: NextHeaders::Only(vec![]), ..cfg() }, "next_headers"),
        (SaConfig { path_mtu: Some(575), ..cfg() }, "path_mtu"),
        (
            SaConfig {
                mode: Mode::Tunnel { src: endpoints(4).0, dst: endpoints(4).1 },
                next_headers: NextHeaders::Only(vec![4, 6]),
                ..cfg()
            },
            "next_headers",
        ),
    ];
    for (config, field) in cases {
        for err in [Outbound::new(config.clone()).unwrap_err(), Inbound::new(config.clone()).unwrap_err()] {
            match &err {
                EspError::Invalid { parameter, reason } => {
                    assert_eq!(*parameter, field);
                    assert!(!reason.is_empty());
                }
                other => panic!("{field}: {other}"),
            }
        }
    }
    // Each good one is dropped at once: one key and salt, one live sender.
    assert!(Outbound::new(SaConfig::new(256, &keymat(16))).is_ok());
    for key in [16, 24, 32] {
        assert!(Outbound::new(SaConfig::new(SPI, &keymat(key))).is_ok());
    }
}

#[test]
fn unsupported_backends_are_refused_not_faked() {
    for b in espgcm::Backend::ALL.into_iter().filter(|b| !b.is_supported()) {
        let err = Outbound::new(SaConfig { backend: Some(b), ..cfg() }).unwrap_err();
        assert_eq!(err, EspError::Unsupported(Limitation::Backend(b)));
        assert!(err.to_string().contains(b.name()));
    }
}

#[test]
fn error_messages_say_what_to_do() {
    let samples = [
        (EspError::Truncated { header: Header::Esp, needed: 36, available: 20 }, "needs 36 bytes"),
        (EspError::Replay { seq: 9 }, "sequence number 9"),
        (EspError::Auth { seq: 4 }, "nothing was released"),
        (EspError::SequenceExhausted { last: 1 }, "re-keyed"),
        (EspError::Fragment, "reassemble"),
        (EspError::UnknownSpi { spi: 0x100, expected: 0x200 }, "0x00000100"),
    ];
    for (err, needle) in samples {
        let text = err.to_string();
        assert!(text.contains(needle), "{text}");
        let _: &dyn std::error::Error = &err;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn open_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200), natt in any::<bool>()) {
        let config = SaConfig { encap: if natt { Encap::NAT_T } else { Encap::None }, ..cfg() };
        let rx = Inbound::new(config).unwrap();
        let mut out = Vec::new();
        prop_assert!(rx.open(&bytes, &mut out).is_err());
        prop_assert!(out.is_empty());
    }

    #[test]
    fn open_never_panics_on_damaged_sealed_packets(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
        tunnel in any::<bool>(),
    ) {
        let (src, dst) = endpoints(4);
        let config = SaConfig { mode: if tunnel { Mode::Tunnel { src, dst } } else { Mode::Transport }, ..cfg() };
        let (_, mut sealed) = sealed_tcp(&config);
        for (at, value) in edits {
            let i = at % sealed.len();
            sealed[i] ^= value | 1;
        }
        sealed.truncate(sealed.len() - cut % 8);
        let rx = Inbound::new(config).unwrap();
        let mut out = Vec::new();
        if rx.open(&sealed, &mut out).is_err() {
            prop_assert!(out.is_empty());
        }
    }

    #[test]
    fn seal_never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..120), v6 in any::<bool>()) {
        let mut input = bytes;
        if let Some(first) = input.first_mut() {
            *first = if v6 { 0x60 | (*first & 0x0f) } else { 0x45 };
        }
        let tx = Outbound::new(cfg()).unwrap();
        let mut out = Vec::new();
        if tx.seal(&input, &mut out).is_err() {
            prop_assert!(out.is_empty());
        }
    }
}

#[test]
fn a_second_live_sender_on_one_key_and_salt_is_refused() {
    let cfg = cfg();
    let first = Outbound::new(cfg.clone()).unwrap();
    // The obvious way to scale, one Outbound per worker from a cloned
    // config, would send IVs 1, 2, 3, ... twice under one key.
    let second = Outbound::new(cfg.clone());
    assert_eq!(second.err(), Some(EspError::KeyInUse { spi: SPI }));
    let message = EspError::KeyInUse { spi: SPI }.to_string();
    assert!(message.contains("share that SA between threads"), "{message}");
    // Another SPI does not make it another key.
    assert!(matches!(Outbound::new(SaConfig { spi: SPI + 1, ..cfg.clone() }), Err(EspError::KeyInUse { .. })));
    // The receiving side and another salt are fine.
    let _rx = Inbound::new(cfg.clone()).unwrap();
    let mut other_salt = cfg.keymat.clone();
    *other_salt.last_mut().unwrap() ^= 1;
    let _other = Outbound::new(SaConfig::new(SPI, &other_salt)).unwrap();
    // Once the first sender is gone, the key is free again.
    drop(first);
    assert!(Outbound::new(cfg).is_ok());
}

#[test]
fn a_packet_past_the_path_mtu_that_may_not_be_fragmented_is_refused_with_the_mtu_to_report() {
    let (src, dst) = endpoints(4);
    let cfg = SaConfig { mode: Mode::Tunnel { src, dst }, encap: Encap::NAT_T, path_mtu: Some(1500), ..cfg() };
    let (tx, rx) = pair(&cfg);
    let mut sealed = Vec::new();
    // 1480 bytes of IPv4 with DF (the builder sets it): too big once sealed.
    let big = udp_v4(V4_SRC, V4_DST, &pattern(1480 - 28, 1));
    let Err(EspError::PacketTooBig { len, mtu }) = tx.seal(&big, &mut sealed) else {
        panic!("a 1480-byte DF packet fit a 1500-byte path in a NAT-T tunnel");
    };
    assert!(len > 1500 && sealed.is_empty());
    assert_eq!(tx.stats().too_big_for_path, 1);
    assert_eq!(tx.next_sequence(), Some(1), "nothing was sent, no sequence number used");
    // Every packet up to the reported MTU fits, whatever its padding.
    for size in mtu - 3..=mtu {
        let p = udp_v4(V4_SRC, V4_DST, &pattern(size - 28, 2));
        tx.seal(&p, &mut sealed).unwrap_or_else(|e| panic!("{size} bytes: {e}"));
        assert!(sealed.len() <= 1500, "{size} bytes sealed to {}", sealed.len());
        let mut opened = Vec::new();
        rx.open(&sealed, &mut opened).unwrap();
        assert_eq!(opened, p);
    }
    // The report allows for the most padding: a few bytes more may still
    // fit, four more never do.
    let p = udp_v4(V4_SRC, V4_DST, &pattern(mtu + 4 - 28, 2));
    assert!(matches!(tx.seal(&p, &mut sealed), Err(EspError::PacketTooBig { .. })));
    // Without DF the caller may fragment the sealed packet: it is sent.
    let mut no_df = big.clone();
    no_df[6] &= !0x40;
    no_df[10..12].copy_from_slice(&[0, 0]);
    let c = !reference_sum(&no_df[..20]);
    no_df[10..12].copy_from_slice(&c.to_be_bytes());
    tx.seal(&no_df, &mut sealed).unwrap();
    assert!(sealed.len() > 1500);
    // IPv6 is never fragmented on the way.
    let v6 = udp_v6(V6_SRC, V6_DST, &pattern(1480 - 48, 3));
    assert!(matches!(tx.seal(&v6, &mut sealed), Err(EspError::PacketTooBig { .. })));
    let e = tx.seal(&v6, &mut sealed).unwrap_err().to_string();
    assert!(e.contains("report an MTU of"), "{e}");
}
