//! The checks behind espgcm's fuzz targets, one public function per target.
//!
//! Each function takes the fuzzer's bytes, runs them through espgcm and
//! panics (an `assert!`) when espgcm breaks a promise: a panic inside
//! espgcm, data delivered that was not sent, a correctly authenticated
//! packet refused, backends that disagree, a view that reads past its
//! bytes, an error that leaves output behind, a call nobody counted.
//!
//! The same file is compiled twice: as the library of the `fuzz/` package
//! (the targets in `fuzz/fuzz_targets/` call it) and as a module of the main
//! crate's `tests/fuzz_corpus.rs` (through `#[path]`), which replays every
//! committed corpus file with `cargo test`. So there is one copy of the
//! checks, and CI keeps the corpora without a fuzzer.
//!
//! Input layouts (the first bytes choose a configuration, the rest is data)
//! are described at each function; [`seeds`] builds valid inputs in those
//! layouts for the seed corpora.

use espgcm::esp::wire::{self as esp_wire, EspPacket, EspRepr};
use espgcm::esp::{
    ChecksumPolicy, Counters, Encap, EspError, Inbound, Mode, NextHeaders, Outbound, PacketBuf, SaConfig, Transform,
    natt,
};
use espgcm::net::checksum::{self, Sum, pseudo_header_v4, pseudo_header_v6};
use espgcm::net::{
    Field, IcmpPacket, IcmpRepr, Ipv4Packet, Ipv4Repr, Ipv6Chain, Ipv6ExtHeader, Ipv6Packet, Ipv6Repr, TcpPacket,
    TcpRepr, UdpPacket, UdpRepr, WireError, protocol,
};
use espgcm::{Backend, Error, Gcm, VerifyPolicy};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The SPI of every fuzzed SA.
pub const SPI: u32 = 0x0000_4242;

const TUNNEL_V4: (Ipv4Addr, Ipv4Addr) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 2));
const TUNNEL_V6: (Ipv6Addr, Ipv6Addr) =
    (Ipv6Addr::new(0x2001, 0xdb8, 0xa, 0, 0, 0, 0, 1), Ipv6Addr::new(0x2001, 0xdb8, 0xb, 0, 0, 0, 0, 2));
const HOST_V4: (Ipv4Addr, Ipv4Addr) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
const HOST_V6: (Ipv6Addr, Ipv6Addr) =
    (Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1), Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 2));
const NAT_ORIGINAL_V4: (Ipv4Addr, Ipv4Addr) = (Ipv4Addr::new(172, 16, 0, 1), Ipv4Addr::new(172, 16, 0, 2));
const NAT_ORIGINAL_V6: (Ipv6Addr, Ipv6Addr) =
    (Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1), Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2));

/// The most `seal` adds to a datagram: a 40-byte IPv6 outer header, 8 bytes
/// of UDP, ESP header and IV (16), 3 bytes of padding, the 2-byte trailer
/// and a 16-byte ICV.
pub const MAX_SEAL_OVERHEAD: usize = 40 + 8 + 16 + 3 + 2 + 16;

/// Keying material (AES key || 4-byte salt) for a key of `key_len` bytes.
fn keymat(key_len: usize) -> Vec<u8> {
    (0..key_len + 4).map(|i| (i as u8).wrapping_mul(29).wrapping_add(0x5b)).collect()
}

/// The SA configuration chosen by two selector bytes.
///
/// `b0`: bits 0-1 mode (0 and 3 transport, 1 tunnel over IPv4, 2 tunnel over
/// IPv6); bit 2 NAT-T; bit 3 ESN; bits 4-5 ICV length (16, 12, 8, 16); bit 6
/// AES-GMAC (ICV 16); bit 7 AES-256 instead of AES-128.
///
/// `b1`: bits 0-1 replay window (0, 1, 64, 1024); bit 2 skip upper-layer
/// checksums; bit 3 NAT-OA original addresses set, bit 4 of IPv6 family;
/// bit 5 force the scalar backend. Bits 6-7 belong to the target.
pub fn sa_config(b0: u8, b1: u8) -> SaConfig {
    let key_len = if b0 & 0x80 != 0 { 32 } else { 16 };
    let gmac = b0 & 0x40 != 0;
    let mode = match b0 & 3 {
        1 => Mode::Tunnel { src: TUNNEL_V4.0.into(), dst: TUNNEL_V4.1.into() },
        2 => Mode::Tunnel { src: TUNNEL_V6.0.into(), dst: TUNNEL_V6.1.into() },
        _ => Mode::Transport,
    };
    let nat_original: Option<(IpAddr, IpAddr)> = match (b1 & 0x08 != 0, b1 & 0x10 != 0) {
        (false, _) => None,
        (true, false) => Some((NAT_ORIGINAL_V4.0.into(), NAT_ORIGINAL_V4.1.into())),
        (true, true) => Some((NAT_ORIGINAL_V6.0.into(), NAT_ORIGINAL_V6.1.into())),
    };
    SaConfig {
        transform: if gmac { Transform::AesGmac } else { Transform::AesGcm },
        icv_len: if gmac { 16 } else { [16, 12, 8, 16][usize::from((b0 >> 4) & 3)] },
        mode,
        encap: if b0 & 0x04 != 0 { Encap::NAT_T } else { Encap::None },
        nat_original,
        esn: b0 & 0x08 != 0,
        replay_window: [0, 1, 64, 1024][usize::from(b1 & 3)],
        checksums: if b1 & 0x04 != 0 { ChecksumPolicy::Skip } else { ChecksumPolicy::Verify },
        backend: if b1 & 0x20 != 0 { Some(Backend::Scalar) } else { None },
        ..SaConfig::new(SPI, &keymat(key_len))
    }
}

/// Every call of `seal` or `open` moves exactly one counter.
fn assert_counted(stats: &Counters, calls: u64) {
    let total = stats.packets + stats.rejected() + stats.dummies + stats.keepalives + stats.non_esp;
    assert_eq!(total, calls, "every call must be counted exactly once: {stats:?}");
}

// ------------------------------------------------------------------ esp_open

/// Target `esp_open`: arbitrary bytes into [`Inbound::open`].
///
/// Layout: `b0 b1 rest`, with [`sa_config`]`(b0, b1)`. If bit 6 of `b1` is
/// clear, `rest` is the received IP packet as it is. If it is set, `rest` is
/// `seq (4 bytes, big-endian) || plaintext`, and the harness builds a
/// correctly authenticated ESP packet (sequence number `seq`, ICV computed
/// here with [`Gcm`]) whose decrypted payload is exactly `plaintext`
/// (trailer included, padding and next header as given), inside an outer
/// header of the SA's family (transport mode: IPv6 if bit 7 of `b1` is set)
/// and UDP with NAT-T. That reaches every check after the ICV.
///
/// Checks: no panic; on error the output is empty; a success delivers fewer
/// bytes than were received; every call is counted once; the same packet
/// again is a replay (or, with the window off, opens to the same bytes); an
/// authenticated packet never fails its ICV, and what it delivers is the
/// plaintext that was sealed (tunnel: a prefix of the payload; transport:
/// the outer IP header and the payload).
pub fn esp_open(data: &[u8]) {
    let [b0, b1, rest @ ..] = data else { return };
    let cfg = sa_config(*b0, *b1);
    let built = if b1 & 0x40 != 0 {
        match authentic_packet(&cfg, b1 & 0x80 != 0, rest) {
            Some(built) => Some(built),
            None => return,
        }
    } else {
        None
    };
    let packet = built.as_ref().map_or(rest, |b| b.packet.as_slice());

    let rx = Inbound::new(cfg.clone()).expect("every fuzzed SA configuration is valid");
    let mut out = vec![0xa5; 7];
    let first = rx.open(packet, &mut out);
    assert_counted(&rx.stats(), 1);

    // The same packet as a burst of one, on a receiver of its own: the
    // burst's straight and general paths judge it as `open` does.
    {
        let burst_rx = Inbound::new(cfg.clone()).expect("every fuzzed SA configuration is valid");
        let mut burst = [PacketBuf::from_packet(packet)];
        let mut results = [Ok(())];
        burst_rx.open_burst(&mut burst, &mut results);
        assert_eq!(results[0], first, "a burst of one and open disagree");
        if first.is_ok() {
            assert_eq!(burst[0].data(), out.as_slice(), "a burst of one delivered other bytes than open");
        }
    }
    match &first {
        Ok(()) => {
            assert!(!out.is_empty(), "an opened packet is never empty");
            assert!(out.len() < packet.len(), "opening never delivers more bytes than were received");
        }
        Err(e) => assert!(out.is_empty(), "out must be empty after {e:?}"),
    }

    if let Some(built) = &built {
        assert!(
            !matches!(first, Err(EspError::Auth { .. })),
            "a correctly authenticated packet failed its ICV (seq {}, {} bytes)",
            built.seq,
            packet.len()
        );
        if first.is_ok() {
            assert_delivers_plaintext(&cfg, built, &out);
        }
    }

    let mut again = Vec::new();
    let second = rx.open(packet, &mut again);
    assert_counted(&rx.stats(), 2);
    if first.is_ok() {
        if cfg.replay_window == 0 {
            assert_eq!(second, Ok(()), "with the replay window off the same packet opens again");
            assert_eq!(again, out, "the same packet opened twice gave different bytes");
        } else {
            assert!(matches!(second, Err(EspError::Replay { .. })), "a packet opened twice: {second:?}");
            assert!(again.is_empty());
        }
    }
}

/// An authenticated packet built by the harness.
struct Built {
    packet: Vec<u8>,
    plaintext: Vec<u8>,
    seq: u32,
    /// Length of the outer IP header in `packet` (transport mode keeps it).
    ip_header_len: usize,
}

fn authentic_packet(cfg: &SaConfig, transport_v6: bool, rest: &[u8]) -> Option<Built> {
    let ([s0, s1, s2, s3], plaintext) = rest.split_first_chunk::<4>().map(|(s, p)| (*s, p))?;
    let seq = u32::from_be_bytes([s0, s1, s2, s3]);
    let esp = esp_bytes(cfg, seq, plaintext);
    let v6 = match cfg.mode {
        Mode::Tunnel { src, .. } => src.is_ipv6(),
        Mode::Transport => transport_v6,
    };
    let packet = wrap(cfg, v6, &esp)?;
    Some(Built { packet, plaintext: plaintext.to_vec(), seq, ip_header_len: if v6 { 40 } else { 20 } })
}

/// Bare ESP (SPI .. ICV) carrying exactly `plaintext` (RFC 4106 / RFC 4543),
/// with the high half of an extended sequence number 0.
fn esp_bytes(cfg: &SaConfig, seq: u32, plaintext: &[u8]) -> Vec<u8> {
    let (key, salt) = cfg.keymat.split_at(cfg.keymat.len() - 4);
    let gcm = Gcm::with_backend(key, Backend::Scalar).expect("a valid key");
    let iv = (u64::from(seq) ^ 0x0123_4567_0000_0000).to_be_bytes();
    let mut nonce = salt.to_vec();
    nonce.extend_from_slice(&iv);
    let mut aad = SPI.to_be_bytes().to_vec();
    if cfg.esn {
        aad.extend_from_slice(&[0; 4]);
    }
    aad.extend_from_slice(&seq.to_be_bytes());
    let mut body = plaintext.to_vec();
    let tag = if cfg.transform == Transform::AesGmac {
        aad.extend_from_slice(&iv);
        aad.extend_from_slice(plaintext);
        gcm.encrypt(&nonce, &aad, &mut []).expect("GMAC within limits")
    } else {
        gcm.encrypt(&nonce, &aad, &mut body).expect("GCM within limits")
    };
    let mut esp = SPI.to_be_bytes().to_vec();
    esp.extend_from_slice(&seq.to_be_bytes());
    esp.extend_from_slice(&iv);
    esp.extend_from_slice(&body);
    esp.extend_from_slice(&tag[..cfg.icv_len]);
    esp
}

/// An outer IP header (and UDP with NAT-T) around bare ESP, from the SA's
/// tunnel addresses or the transport hosts. `None` past 64 KiB.
fn wrap(cfg: &SaConfig, v6: bool, esp: &[u8]) -> Option<Vec<u8>> {
    let nat_t = matches!(cfg.encap, Encap::Udp { .. });
    let l4_len = esp.len() + if nat_t { 8 } else { 0 };
    let ip_len = if v6 { 40 } else { 20 };
    let mut packet = vec![0u8; ip_len + l4_len];
    packet[ip_len + l4_len - esp.len()..].copy_from_slice(esp);
    let proto = if nat_t { protocol::UDP } else { protocol::ESP };
    let (pseudo, emitted) = if v6 {
        let (src, dst) = match cfg.mode {
            Mode::Tunnel { .. } => TUNNEL_V6,
            Mode::Transport => HOST_V6,
        };
        let repr = Ipv6Repr {
            src_addr: src,
            dst_addr: dst,
            next_header: proto,
            payload_len: l4_len,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        };
        (Some(pseudo_header_v6(src, dst, protocol::UDP, l4_len as u32)), repr.emit(&mut packet))
    } else {
        let (src, dst) = match cfg.mode {
            Mode::Tunnel { .. } => TUNNEL_V4,
            Mode::Transport => HOST_V4,
        };
        let repr = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: proto,
            payload_len: l4_len,
            ttl: 64,
            dscp_ecn: 0,
            ident: 0x1234,
            dont_frag: true,
        };
        (None, repr.emit(&mut packet))
    };
    emitted.ok()?;
    if nat_t {
        UdpRepr { src_port: 4500, dst_port: 4500 }.emit(&mut packet[ip_len..], esp.len(), pseudo).ok()?;
    }
    Some(packet)
}

/// What `open` delivered from an authenticated packet is what was sealed.
fn assert_delivers_plaintext(cfg: &SaConfig, built: &Built, out: &[u8]) {
    let (payload_len, next_header) = match esp_wire::parse_trailer(&built.plaintext) {
        Ok(parsed) => parsed,
        Err(e) => panic!("open accepted a payload whose trailer does not parse: {e:?}"),
    };
    let payload = &built.plaintext[..payload_len];
    match cfg.mode {
        Mode::Tunnel { .. } => {
            assert!(out.len() <= payload.len(), "tunnel mode delivered more than the payload");
            assert_eq!(out, &payload[..out.len()], "tunnel mode delivered bytes that were not sent");
        }
        Mode::Transport => {
            assert_eq!(out.len(), built.ip_header_len + payload.len(), "transport mode: header + payload");
            let nh_at = if built.ip_header_len == 40 { 6 } else { 9 };
            assert_eq!(out[nh_at], next_header, "transport mode: the next header goes back into the IP header");
            // With NAT-OA set, the RFC 3948 fix-up may rewrite the upper
            // layer's checksum (one 16-bit word at an even offset, after
            // any IPv6 extension headers); every other byte must be as sent.
            let fixed_up = cfg.nat_original.is_some() && cfg.encap != Encap::None;
            let delivered = &out[built.ip_header_len..];
            if fixed_up {
                let changed: Vec<usize> = (0..payload.len()).filter(|&i| delivered[i] != payload[i]).collect();
                let one_word = match changed.as_slice() {
                    [] => true,
                    [i] | [i, _] => changed.iter().all(|&j| j / 2 == i / 2),
                    _ => false,
                };
                assert!(one_word, "the NAT-T fix-up changed more than one checksum word: bytes {changed:?}");
            } else {
                assert_eq!(delivered, payload, "transport mode delivered bytes that were not sent");
            }
        }
    }
}

// ------------------------------------------------------------------ esp_seal

/// Target `esp_seal`: arbitrary bytes into [`Outbound::seal`].
///
/// Layout: `b0 b1 b2 packet`, with [`sa_config`]`(b0, b1)`. `b2` bit 0: fix
/// the packet's IPv4 header checksum and its TCP/UDP/ICMP/ICMPv6 checksum
/// first (so the fuzzer gets past the checks before encryption); bit 1:
/// start at the last sequence number of the SA's space.
///
/// Checks: no panic; on error the output is empty; every call is counted
/// once; a sealed packet is at most [`MAX_SEAL_OVERHEAD`] bytes longer than
/// the datagram and opens on a matching inbound SA to exactly the datagram
/// (the packet up to its IP length); at the end of the sequence space the
/// next `seal` is refused.
pub fn esp_seal(data: &[u8]) {
    let [b0, b1, b2, rest @ ..] = data else { return };
    let cfg = sa_config(*b0, *b1);
    let mut packet = rest.to_vec();
    if b2 & 1 != 0 {
        fix_checksums(&mut packet);
    }
    let at_end = b2 & 2 != 0;
    let last = if cfg.esn { u64::MAX } else { u64::from(u32::MAX) };
    // The same packet as a burst of one, on a sender of its own at the same
    // sequence number (dropped before the next one: one live sender per
    // key); compared with `seal` below.
    let (burst_result, burst_bytes) = {
        let burst_tx = Outbound::new(cfg.clone()).expect("every fuzzed SA configuration is valid");
        if at_end {
            burst_tx.skip_to_sequence(last).expect("the last sequence number can be skipped to");
        }
        let mut burst = [PacketBuf::from_packet(&packet)];
        let mut results = [Ok(())];
        burst_tx.seal_burst(&mut burst, &mut results);
        let [result] = results;
        (result, burst[0].data().to_vec())
    };
    let tx = Outbound::new(cfg.clone()).expect("every fuzzed SA configuration is valid");
    if at_end {
        tx.skip_to_sequence(last).expect("the last sequence number can be skipped to");
    }
    let seq = tx.next_sequence().expect("a fresh SA has sequence numbers left");
    let mut sealed = vec![0x5a; 3];
    let result = tx.seal(&packet, &mut sealed);
    assert_counted(&tx.stats(), 1);
    assert_eq!(burst_result, result, "a burst of one and seal disagree");
    match &result {
        Ok(()) => assert_eq!(burst_bytes, sealed, "a burst of one sealed other bytes than seal"),
        Err(_) => assert_eq!(burst_bytes, packet, "a packet a burst refuses is left as it came"),
    }
    match &result {
        Err(e) => {
            assert!(sealed.is_empty(), "out must be empty after {e:?}");
            assert!(!e.is_benign(), "seal reported a receive-side outcome: {e:?}");
            assert!(
                !matches!(e, EspError::Auth { .. } | EspError::Replay { .. } | EspError::TooOld { .. }),
                "seal reported a receive-side error: {e:?}"
            );
        }
        Ok(()) => {
            // The receiver: same SA, without NAT-OA (nothing rewrote the
            // addresses here), its window just below `seq`.
            let rx = Inbound::new(SaConfig { nat_original: None, ..cfg.clone() }).expect("valid SA");
            rx.advance_to(seq - 1);
            let mut opened = Vec::new();
            let mut r = rx.open(&sealed, &mut opened);
            if let Err(EspError::UnexpectedNextHeader { next_header, .. }) = r {
                // The SA delivers only protocols whose checksums `open`
                // verifies; a receiver told to take every protocol must
                // then give the datagram back.
                assert!(!cfg.next_headers.allows(&cfg.mode, next_header), "refused a deliverable {next_header}");
                assert!(opened.is_empty());
                let wide = SaConfig {
                    nat_original: None,
                    next_headers: NextHeaders::Only((0..=255).collect()),
                    ..cfg.clone()
                };
                let rx = Inbound::new(wide).expect("transport mode takes any next header list");
                rx.advance_to(seq - 1);
                r = rx.open(&sealed, &mut opened);
            }
            if r == Err(EspError::Dummy { seq }) {
                // Transport mode keeps next header 59 (IPv6 "no next
                // header") from the IP header, and the receiver must drop
                // next header 59 as a dummy packet (RFC 4303 section 2.6).
                assert!(matches!(cfg.mode, Mode::Transport), "tunnel mode sealed a dummy");
                assert_eq!(ip_next_header(&packet), protocol::NO_NEXT_HEADER);
                return;
            }
            assert_eq!(r, Ok(()), "a sealed packet failed to open ({} bytes sealed)", sealed.len());
            assert!(opened.len() <= packet.len(), "opened more than was sealed");
            assert_eq!(opened, packet[..opened.len()], "the round trip changed the datagram");
            assert_eq!(opened.len(), ip_length(&packet), "the datagram is the packet up to its IP length");
            assert!(sealed.len() <= opened.len() + MAX_SEAL_OVERHEAD, "seal added more than its overhead");
        }
    }
    if at_end && result.is_ok() {
        let mut more = Vec::new();
        let r = tx.seal(&packet, &mut more);
        assert!(matches!(r, Err(EspError::SequenceExhausted { .. })), "sealed past the sequence space: {r:?}");
        assert!(more.is_empty());
    }
}

/// The protocol / next header of the upper layer ESP was inserted before
/// (IPv6: after the extension headers that precede ESP).
fn ip_next_header(packet: &[u8]) -> u8 {
    if packet.first().map(|b| b >> 4) == Some(4) {
        return Ipv4Packet::new_unchecked(packet).protocol();
    }
    let mut chain = Ipv6Chain::new(Ipv6Packet::new_unchecked(packet));
    while let Ok(Some(_)) = chain.next() {}
    chain.pos().next_header
}

/// The IP length of a packet that `seal` accepted.
fn ip_length(packet: &[u8]) -> usize {
    if packet.first().map(|b| b >> 4) == Some(4) {
        Ipv4Packet::new_unchecked(packet).total_len()
    } else {
        40 + Ipv6Packet::new_unchecked(packet).payload_len()
    }
}

/// Fill in the IPv4 header checksum and the TCP/UDP/ICMP/ICMPv6 checksum
/// (IPv6: only directly after the fixed header) where the lengths allow.
pub fn fix_checksums(packet: &mut [u8]) {
    match packet.first().map(|b| b >> 4) {
        Some(4) => {
            let Ok(ip) = Ipv4Packet::new_checked(&*packet) else { return };
            let (hl, total, proto) = (ip.header_len(), ip.total_len(), ip.protocol());
            let (src, dst, fragment) = (ip.src_addr(), ip.dst_addr(), ip.is_fragment());
            Ipv4Packet::new_unchecked(&mut *packet).fill_checksum();
            if !fragment {
                let pseudo = pseudo_header_v4(src, dst, proto, (total - hl) as u16);
                fix_upper(&mut packet[hl..total], proto, pseudo);
            }
        }
        Some(6) => {
            let Ok(ip) = Ipv6Packet::new_checked(&*packet) else { return };
            let (len, nh, src, dst) = (ip.payload_len(), ip.next_header(), ip.src_addr(), ip.dst_addr());
            let pseudo = pseudo_header_v6(src, dst, nh, len as u32);
            fix_upper(&mut packet[40..40 + len], nh, pseudo);
        }
        _ => {}
    }
}

fn fix_upper(segment: &mut [u8], proto: u8, pseudo: Sum) {
    let (at, pseudo) = match proto {
        protocol::TCP => (16, pseudo),
        protocol::UDP => (6, pseudo),
        protocol::ICMP => (2, Sum::ZERO),
        protocol::ICMPV6 => (2, pseudo),
        _ => return,
    };
    if segment.len() < at + 2 {
        return;
    }
    segment[at..at + 2].fill(0);
    let mut value = pseudo.add_bytes(segment).checksum();
    if proto == protocol::UDP && value == 0 {
        value = 0xffff;
    }
    segment[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

// ---------------------------------------------------------- gcm_differential

/// Target `gcm_differential`: arbitrary key, IV, AAD and message through
/// every supported backend.
///
/// Layout: `k i t a key iv aad message`: key length `[16, 24, 32][k % 3]`,
/// IV length 12 if `i` is 0 else `i % 64` (0 becomes 1), tag length
/// `4 + t % 13`, AAD length `a`; missing key or IV bytes are zeros, the
/// message is whatever is left.
///
/// Checks, for each backend of [`Backend::ALL`] that
/// [`is_supported`](Backend::is_supported) (so backends added later are
/// covered with no change here): the ciphertext and tag equal the scalar
/// backend's, with verify mode off and full; decrypt(encrypt(x)) is x with
/// the truncated tag; a tag or ciphertext with one bit flipped is refused
/// with [`Error::Auth`] and the buffer zeroed.
pub fn gcm_differential(data: &[u8]) {
    let [k, i, t, a, rest @ ..] = data else { return };
    let key_len = [16, 24, 32][usize::from(*k % 3)];
    let iv_len = if *i == 0 { 12 } else { usize::from((*i % 64).max(1)) };
    let tag_len = 4 + usize::from(*t % 13);
    let mut rest = rest;
    let mut take = |n: usize| {
        let (head, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        head
    };
    let mut key = take(key_len).to_vec();
    key.resize(key_len, 0);
    let mut iv = take(iv_len).to_vec();
    iv.resize(iv_len, 0);
    let aad = take(usize::from(*a)).to_vec();
    let message = rest;

    let scalar = Gcm::with_backend(&key, Backend::Scalar).expect("valid key length");
    let mut reference = message.to_vec();
    let reference_tag = scalar.encrypt(&iv, &aad, &mut reference).expect("within limits");
    if message.len() >= 16 {
        // A keystream block of zeros has probability 2^-128.
        assert_ne!(reference, message, "encryption left the message as it was");
    }

    let flip = message.len().wrapping_add(aad.len()).wrapping_mul(7);
    for backend in Backend::ALL.into_iter().filter(|b| b.is_supported()) {
        for verify in [VerifyPolicy::Off, VerifyPolicy::Full] {
            let mut gcm = Gcm::with_backend(&key, backend).expect("a supported backend");
            gcm.set_verify(verify);
            let mut buf = message.to_vec();
            let tag = gcm.encrypt(&iv, &aad, &mut buf).expect("within limits");
            assert_eq!(buf, reference, "{backend} ({verify:?}) ciphertext differs from scalar");
            assert_eq!(tag, reference_tag, "{backend} ({verify:?}) tag differs from scalar");

            let mut opened = buf.clone();
            gcm.decrypt(&iv, &aad, &mut opened, &tag[..tag_len]).expect("its own ciphertext decrypts");
            assert_eq!(opened, message, "{backend}: decrypt(encrypt(x)) != x");

            let mut bad_tag = tag;
            bad_tag[flip % tag_len] ^= 1 << (flip % 8);
            let mut refused = buf.clone();
            assert_eq!(gcm.decrypt(&iv, &aad, &mut refused, &bad_tag[..tag_len]), Err(Error::Auth));
            assert!(refused.iter().all(|&b| b == 0), "{backend}: a refused buffer was not zeroed");

            if !buf.is_empty() {
                let mut damaged = buf.clone();
                damaged[flip % buf.len()] ^= 0x80;
                assert_eq!(gcm.decrypt(&iv, &aad, &mut damaged, &tag[..tag_len]), Err(Error::Auth));
                assert!(damaged.iter().all(|&b| b == 0), "{backend}: a refused buffer was not zeroed");
            }
        }
    }
}

// ---------------------------------------------------------------------- wire

/// Target `wire`: the same bytes through every header view of
/// `espgcm::net` and `espgcm::esp::wire`, the trailer parser and the NAT-T
/// classifier.
///
/// Checks, for each view whose `new_checked` accepts the bytes: its lengths
/// are consistent with the bytes present (no accessor can reach past
/// them), and its `Repr` emits a header that parses back to the same
/// `Repr` (with a valid checksum where the header has one); the IPv6
/// extension chain walks forward to its end; the trailer parser and the
/// classifier agree with straightforward models of RFC 4303 and RFC 3948.
pub fn wire(data: &[u8]) {
    wire_ipv4(data);
    wire_ipv6(data);
    wire_tcp(data);
    wire_icmp(data);
    wire_udp(data);
    wire_esp(data);
    wire_trailer(data);
    wire_natt(data);
}

fn wire_ipv4(data: &[u8]) {
    let Ok(ip) = Ipv4Packet::new_checked(data) else { return };
    let (hl, total) = (ip.header_len(), ip.total_len());
    assert!(20 <= hl && hl <= total && total <= data.len(), "IPv4 lengths: header {hl}, total {total}");
    assert_eq!(ip.header(), &data[..hl]);
    assert_eq!(ip.payload(), &data[hl..total]);
    assert_eq!(ip.packet(), &data[..total]);
    assert_eq!(ip.verify_checksum(), reference_sum(ip.header()) == 0xffff, "IPv4 header checksum verdict");
    let _ = (ip.ident(), ip.ttl(), ip.dscp_ecn(), ip.more_frags(), ip.frag_offset(), ip.is_fragment());
    let repr = Ipv4Repr::parse(&ip);
    assert_eq!(repr.payload_len, total - hl);
    let mut emitted = vec![0u8; 20 + repr.payload_len];
    repr.emit(&mut emitted).expect("a parsed IPv4 header emits");
    let back = Ipv4Packet::new_checked(&emitted[..]).expect("an emitted IPv4 header parses");
    assert!(back.verify_checksum(), "an emitted IPv4 header has a valid checksum");
    assert_eq!(Ipv4Repr::parse(&back), repr, "IPv4 Repr round trip");
}

fn wire_ipv6(data: &[u8]) {
    let Ok(ip) = Ipv6Packet::new_checked(data) else { return };
    let len = ip.payload_len();
    assert!(40 + len <= data.len(), "IPv6 payload length {len} past the bytes present");
    assert_eq!(ip.payload(), &data[40..40 + len]);
    assert_eq!(ip.packet(), &data[..40 + len]);
    let repr = Ipv6Repr::parse(&ip);
    let mut emitted = vec![0u8; 40 + len];
    repr.emit(&mut emitted).expect("a parsed IPv6 header emits");
    let back = Ipv6Packet::new_checked(&emitted[..]).expect("an emitted IPv6 header parses");
    assert_eq!(Ipv6Repr::parse(&back), repr, "IPv6 Repr round trip");

    let packet = ip.packet();
    let mut chain = Ipv6Chain::new(ip);
    let start = chain.pos();
    assert_eq!((start.offset, start.next_header, start.next_header_at), (40, ip.next_header(), 6));
    loop {
        let pos = chain.pos();
        match chain.next() {
            Ok(Some(ext)) => {
                assert!(ext.len() >= 8 && !ext.is_empty());
                assert_eq!(ext.kind(), pos.next_header);
                assert_ne!(ext.kind(), protocol::FRAGMENT, "the walk stops at a fragment header");
                let next = chain.pos();
                assert_eq!(next.offset, pos.offset + ext.len(), "the chain moves forward by the header's length");
                assert!(next.offset <= packet.len(), "an extension header ends past the packet");
                assert_eq!(next.next_header_at, pos.offset);
                assert_eq!(next.next_header, ext.next_header());
                let _ = ext.segments_left();
            }
            Ok(None) => {
                let walkable = [protocol::HOP_BY_HOP, protocol::ROUTING, protocol::DESTINATION_OPTIONS];
                assert!(!walkable.contains(&pos.next_header), "the walk stopped at header {}", pos.next_header);
                let (walked, rest) = chain.split();
                assert_eq!((walked, rest), packet.split_at(pos.offset), "the split is at the walk's position");
                if pos.next_header == protocol::FRAGMENT {
                    match Ipv6ExtHeader::new_checked(rest, protocol::FRAGMENT) {
                        Ok(fragment) => assert_eq!(fragment.len(), 8),
                        Err(e) => assert!(matches!(e, WireError::Truncated { .. }), "fragment header: {e:?}"),
                    }
                }
                break;
            }
            Err(e) => {
                let misplaced = WireError::Malformed { field: Field::Ipv6HopByHopPosition, value: pos.offset as u64 };
                assert!(
                    matches!(e, WireError::Truncated { .. })
                        || (e == misplaced && pos.next_header == protocol::HOP_BY_HOP && pos.offset != 40),
                    "walkable header refused: {e:?}"
                );
                break;
            }
        }
    }
}

fn wire_tcp(data: &[u8]) {
    let Ok(tcp) = TcpPacket::new_checked(data) else { return };
    let hl = tcp.header_len();
    assert!(20 <= hl && hl <= data.len(), "TCP data offset {hl}");
    assert_eq!(tcp.payload(), &data[hl..]);
    let _ = (tcp.checksum(), tcp.urgent());
    let repr = TcpRepr::parse(&tcp);
    let mut emitted = vec![0u8; 20];
    emitted.extend_from_slice(tcp.payload());
    repr.emit(&mut emitted, Sum::ZERO).expect("a parsed TCP header emits");
    assert!(Sum::ZERO.add_bytes(&emitted).verifies(), "an emitted TCP segment has a valid checksum");
    let back = TcpPacket::new_checked(&emitted[..]).expect("an emitted TCP header parses");
    assert_eq!(TcpRepr::parse(&back), repr, "TCP Repr round trip");
    assert_eq!(back.payload(), tcp.payload());
}

fn wire_icmp(data: &[u8]) {
    let Ok(icmp) = IcmpPacket::new_checked(data) else {
        assert!(data.len() < 4, "ICMP header refused with {} bytes", data.len());
        return;
    };
    assert_eq!(icmp.payload(), &data[4..]);
    assert_eq!(icmp.checksum(), u16::from_be_bytes([data[2], data[3]]));
    let repr = IcmpRepr::parse(&icmp);
    let mut emitted = data.to_vec();
    repr.emit(&mut emitted, Sum::ZERO).expect("a parsed ICMP header emits");
    assert!(Sum::ZERO.add_bytes(&emitted).verifies(), "an emitted ICMP message has a valid checksum");
    assert_eq!(IcmpRepr::parse(&IcmpPacket::new_checked(&emitted[..]).expect("parses")), repr, "ICMP Repr round trip");
}

fn wire_udp(data: &[u8]) {
    let Ok(udp) = UdpPacket::new_checked(data) else { return };
    assert_eq!(udp.len(), data.len(), "UDP length must equal the bytes present");
    assert_eq!(udp.is_empty(), data.len() == 8, "UDP is_empty means no payload");
    assert_eq!(udp.payload(), &data[8..]);
    let _ = udp.checksum();
    let repr = UdpRepr::parse(&udp);
    let mut emitted = data.to_vec();
    repr.emit(&mut emitted, data.len() - 8, Some(Sum::ZERO)).expect("a parsed UDP header emits");
    assert!(Sum::ZERO.add_bytes(&emitted).verifies(), "an emitted UDP datagram has a valid checksum");
    let back = UdpPacket::new_checked(&emitted[..]).expect("an emitted UDP header parses");
    assert_eq!(UdpRepr::parse(&back), repr, "UDP Repr round trip");
}

fn wire_esp(data: &[u8]) {
    let Ok(esp) = EspPacket::new_checked(data) else {
        assert!(data.len() < 16, "ESP header and IV refused with {} bytes", data.len());
        return;
    };
    assert_eq!(esp.header_and_iv(), &data[..16]);
    assert_eq!(esp.body(), &data[16..]);
    assert_eq!(esp.iv(), data[8..16]);
    let repr = EspRepr::parse(&esp);
    assert_eq!((repr.spi, repr.sequence), (esp.spi(), esp.sequence()));
    let mut emitted = [0u8; 16];
    repr.emit(&mut emitted).expect("an ESP header emits");
    assert_eq!(emitted[..8], data[..8], "ESP Repr round trip");
}

/// RFC 4303 §2.4, as plainly as it can be said.
fn model_trailer(plaintext: &[u8]) -> Option<(usize, u8)> {
    if plaintext.len() < 2 {
        return None;
    }
    let pad = usize::from(plaintext[plaintext.len() - 2]);
    let next_header = plaintext[plaintext.len() - 1];
    let payload_len = (plaintext.len() - 2).checked_sub(pad)?;
    for i in 0..pad {
        if usize::from(plaintext[payload_len + i]) != i + 1 {
            return None;
        }
    }
    Some((payload_len, next_header))
}

fn wire_trailer(data: &[u8]) {
    let parsed = esp_wire::parse_trailer(data).ok();
    assert_eq!(parsed, model_trailer(data), "trailer parse disagrees with RFC 4303 section 2.4");
}

fn wire_natt(data: &[u8]) {
    let expected = match data {
        [0xff] => Some(natt::UdpPayload::Keepalive),
        [0, 0, 0, 0, ..] => Some(natt::UdpPayload::NonEsp),
        _ if data.len() >= 4 => Some(natt::UdpPayload::Esp(data)),
        _ => None,
    };
    assert_eq!(natt::classify(data).ok(), expected, "NAT-T classification (RFC 3948 section 2.2)");
    assert_eq!(checksum::sum(data), reference_sum(data), "checksum::sum of {} bytes", data.len());
}

/// RFC 1071 word by word: big-endian 16-bit words (an odd last byte padded
/// with zero), added with end-around carry.
fn reference_sum(data: &[u8]) -> u16 {
    let mut sum = 0u64;
    for pair in data.chunks(2) {
        sum += u64::from(pair[0]) << 8 | u64::from(pair.get(1).copied().unwrap_or(0));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

// --------------------------------------------------------------------- seeds

/// Valid inputs for each target, in its layout: packets sealed by espgcm
/// for every mode and option (`esp_open`, raw and authentic), valid
/// datagrams (`esp_seal`, `wire`), and key/IV/AAD/message sets
/// (`gcm_differential`). Returns (target, input) pairs.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let mut seeds = Vec::new();
    let data = b"GET /ruok HTTP/1.1\r\n";
    let datagrams =
        [tcp_v4(data), udp_v4(data), icmp_v4(data), tcp_v6(data), udp_v6(data), tcp_v4(&[]), udp_v6(&[0x42; 200])];
    let b0s = [0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x08, 0x10, 0x20, 0x40, 0x4c, 0x80, 0x8e];
    let b1s = [0x02, 0x00, 0x03, 0x2e, 0x0d, 0x1d];
    for (n, &b0) in b0s.iter().enumerate() {
        let b1 = b1s[n % b1s.len()];
        let datagram = &datagrams[n % datagrams.len()];
        // esp_open, raw: the sealed packet as received (no NAT-OA: nothing
        // rewrote the addresses).
        let cfg = sa_config(b0, b1);
        let tx = Outbound::new(SaConfig { nat_original: None, ..cfg.clone() }).expect("valid SA");
        let mut sealed = Vec::new();
        if tx.seal(datagram, &mut sealed).is_ok() {
            seeds.push(("esp_open", [&[b0, b1 & 0x27][..], &sealed].concat()));
        }
        // esp_open, authentic: seq || payload || padding || trailer.
        let mut plaintext = datagram.clone();
        let next_header = match cfg.mode {
            Mode::Tunnel { .. } if datagram[0] >> 4 == 6 => protocol::IPV6,
            Mode::Tunnel { .. } => protocol::IPV4,
            Mode::Transport => datagram[if datagram[0] >> 4 == 6 { 6 } else { 9 }],
        };
        let transport_v6 = matches!(cfg.mode, Mode::Transport) && datagram[0] >> 4 == 6;
        let ip_len = if datagram[0] >> 4 == 6 { 40 } else { 20 };
        if matches!(cfg.mode, Mode::Transport) {
            plaintext.drain(..ip_len);
        }
        let pad = (4 - (plaintext.len() + 2) % 4) % 4;
        plaintext.extend((1..=pad as u8).chain([pad as u8, next_header]));
        let b1_authentic = (b1 & 0x37) | 0x40 | if transport_v6 { 0x80 } else { 0 };
        seeds.push(("esp_open", [&[b0, b1_authentic][..], &(n as u32 + 1).to_be_bytes(), &plaintext].concat()));
        // esp_seal: the datagram, and the same with checksums to be fixed.
        seeds.push(("esp_seal", [&[b0, b1 & 0x3f, 0][..], datagram].concat()));
        seeds.push(("esp_seal", [&[b0, b1 & 0x3f, 3][..], datagram].concat()));
    }
    for datagram in &datagrams {
        seeds.push(("wire", datagram.clone()));
        let ip_len = if datagram[0] >> 4 == 6 { 40 } else { 20 };
        seeds.push(("wire", datagram[ip_len..].to_vec()));
    }
    seeds.push(("wire", vec![1, 2, 3, 3, 4]));
    seeds.push(("wire", vec![0xff]));
    seeds.push(("wire", vec![0, 0, 0, 0, 1, 2, 3]));
    for (k, i, t, a, len) in [(0u8, 0u8, 12u8, 8u8, 0usize), (1, 0, 0, 0, 1), (2, 0, 12, 20, 17), (0, 1, 8, 0, 64)] {
        let mut input = vec![k, i, t, a];
        input.extend((0..32 + 64 + usize::from(a) + len + 129).map(|x| (x as u8).wrapping_mul(31)));
        seeds.push(("gcm_differential", input));
    }
    seeds
}

fn ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 20];
    p.extend_from_slice(l4);
    let repr = Ipv4Repr {
        src_addr: HOST_V4.0,
        dst_addr: HOST_V4.1,
        protocol: proto,
        payload_len: l4.len(),
        ttl: 64,
        dscp_ecn: 0,
        ident: 7,
        dont_frag: true,
    };
    repr.emit(&mut p).expect("small packet");
    fix_checksums(&mut p);
    p
}

fn ipv6(next_header: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 40];
    p.extend_from_slice(l4);
    let repr = Ipv6Repr {
        src_addr: HOST_V6.0,
        dst_addr: HOST_V6.1,
        next_header,
        payload_len: l4.len(),
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    };
    repr.emit(&mut p).expect("small packet");
    fix_checksums(&mut p);
    p
}

fn tcp_segment(data: &[u8]) -> Vec<u8> {
    let mut s = vec![0u8; 20];
    s[..4].copy_from_slice(&[0x9c, 0x40, 0x08, 0x85]);
    s[12] = 5 << 4;
    s[13] = 0x18;
    s[14..16].copy_from_slice(&512u16.to_be_bytes());
    s.extend_from_slice(data);
    s
}

fn udp_datagram(data: &[u8]) -> Vec<u8> {
    let mut s = vec![0x9c, 0x41, 0x00, 0x35];
    s.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(data);
    s
}

fn tcp_v4(data: &[u8]) -> Vec<u8> {
    ipv4(protocol::TCP, &tcp_segment(data))
}

fn udp_v4(data: &[u8]) -> Vec<u8> {
    ipv4(protocol::UDP, &udp_datagram(data))
}

fn icmp_v4(data: &[u8]) -> Vec<u8> {
    ipv4(protocol::ICMP, &[&[8, 0, 0, 0, 0, 1, 0, 1][..], data].concat())
}

fn tcp_v6(data: &[u8]) -> Vec<u8> {
    ipv6(protocol::TCP, &tcp_segment(data))
}

fn udp_v6(data: &[u8]) -> Vec<u8> {
    ipv6(protocol::UDP, &udp_datagram(data))
}
