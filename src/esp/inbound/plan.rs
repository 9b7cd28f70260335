//! One received packet's open, in the receiver's order: everything that
//! can be checked before decryption ([`OpenPlan`]), then, once the ICV has
//! verified, the window, the trailer and the packet that is delivered.
//! `open` and the bursts share these steps; they differ only in where the
//! plaintext is (the caller's `Vec`, or the packet's own buffer).
//!
//! Most packets arrive in IPv4 without options or IPv6 without extension
//! headers: [`Inbound::locate_common`] finds ESP in those in a few loads;
//! anything else takes the general path ([`Inbound::locate_any`]), which
//! walks every header and says what is wrong.

use super::super::natt::{self, UdpPayload};
use super::super::packet::{self, Stage, Verified};
use super::super::wire::{self as esp, EspPacket};
use super::super::{ChecksumPolicy, Encap, EspError, Field, Header, Limitation};
use super::{Inbound, find_esp_v6};
use crate::net::checksum::{self, Sum};
use crate::net::ip::{Datagram, IpHeader, Upper};
use crate::net::{Header as WireHeader, Ipv4Packet, Ipv6Packet, UdpPacket, WireError, ipv4, ipv6, protocol};

/// A received packet checked up to its decryption. Offsets are from the
/// packet's first byte.
#[derive(Clone, Copy, Debug)]
pub(super) struct OpenPlan {
    /// The bytes before the UDP or ESP header: the IP header and the IPv6
    /// extension headers in front of ESP (transport mode keeps them).
    pub prefix_len: usize,
    /// 4 or 6.
    pub version: u8,
    /// The byte naming the ESP (or UDP) header.
    pub next_header_at: usize,
    /// Where the ESP header is.
    pub esp_at: usize,
    /// SPI through ICV.
    pub esp_len: usize,
    /// The full sequence number (with ESN, the high half estimated).
    pub seq: u64,
    /// The IV.
    pub iv: [u8; esp::IV_LEN],
}

/// A kept header restored in the common case, to be stored in one piece.
#[derive(Clone, Copy, Debug)]
pub(super) enum Restored {
    V4([u8; ipv4::HEADER_LEN]),
    V6([u8; ipv6::HEADER_LEN]),
}

impl OpenPlan {
    /// Where the ESP payload (ciphertext, or GMAC's clear body) starts.
    #[inline]
    pub(super) fn body_at(&self) -> usize {
        self.esp_at + esp::HEADER_LEN + esp::IV_LEN
    }

    /// The ESP payload's length, with an ICV of `icv_len` bytes.
    #[inline]
    pub(super) fn body_len(&self, icv_len: usize) -> usize {
        self.esp_len - esp::HEADER_LEN - esp::IV_LEN - icv_len
    }
}

/// Where ESP is in a received packet.
pub(super) struct Located {
    pub prefix_len: usize,
    pub version: u8,
    next_header_at: usize,
    /// The IP payload (ESP, or UDP carrying it), as a range of the packet.
    payload_at: usize,
    pub payload_end: usize,
}

impl Inbound {
    /// Steps 1 and 2: format and lengths, then the replay pre-check.
    #[inline(always)]
    pub(super) fn plan(&self, packet: &[u8]) -> Result<OpenPlan, EspError> {
        let located = match self.locate_common(packet) {
            Some(located) => located,
            None => self.locate_any(packet)?,
        };
        let Located { prefix_len, version, next_header_at, payload_at, payload_end } = located;
        let payload = packet.get(payload_at..payload_end).unwrap_or_default();
        let (esp_at, esp_len) = if matches!(self.cfg.encap, Encap::Udp { .. }) {
            // The UDP checksum is accepted either way (RFC 3948 §2.1): the
            // ICV protects what it covered.
            match natt::classify(UdpPacket::new_checked(payload)?.into_payload())? {
                UdpPayload::Esp(esp) => (payload_end - esp.len(), esp.len()),
                UdpPayload::Keepalive => return Err(EspError::NatKeepalive),
                UdpPayload::NonEsp => return Err(EspError::NonEsp),
            }
        } else {
            (payload_at, payload.len())
        };
        let esp_bytes = packet.get(esp_at..esp_at + esp_len).unwrap_or_default();
        let header = self.check_esp(esp_bytes)?;
        let seq = if self.cfg.esn { self.window.estimate_esn(header.sequence())? } else { header.sequence().into() };
        self.window.check(seq)?;
        Ok(OpenPlan { prefix_len, version, next_header_at, esp_at, esp_len, seq, iv: header.iv() })
    }

    /// The checks on a bare ESP packet (SPI through ICV) before anything is
    /// decrypted: room for the header, IV, the shortest ciphertext (4 bytes:
    /// the trailer padded to alignment) and the ICV; a ciphertext length that
    /// is a multiple of 4; this SA's SPI.
    pub(super) fn check_esp<'a>(&self, esp_bytes: &'a [u8]) -> Result<EspPacket<&'a [u8]>, EspError> {
        let header = EspPacket::new_checked(esp_bytes)?;
        let icv_len = self.cipher.icv_len();
        let minimum = esp::HEADER_LEN + esp::IV_LEN + 4 + icv_len;
        if esp_bytes.len() < minimum {
            return Err(EspError::Truncated { header: Header::Esp, needed: minimum, available: esp_bytes.len() });
        }
        let ciphertext_len = esp_bytes.len() - esp::HEADER_LEN - esp::IV_LEN - icv_len;
        if !ciphertext_len.is_multiple_of(4) {
            return Err(EspError::Malformed { field: Field::EspCiphertextLength, value: ciphertext_len as u64 });
        }
        if header.spi() != self.cfg.spi {
            return Err(EspError::UnknownSpi { spi: header.spi(), expected: self.cfg.spi });
        }
        Ok(header)
    }

    /// The common case: IPv4 without options (its header checksum right,
    /// not a fragment) or IPv6 whose fixed header names ESP (or UDP) at
    /// once. `None` sends the packet to the general path.
    #[inline(always)]
    pub(super) fn locate_common(&self, packet: &[u8]) -> Option<Located> {
        let want = if matches!(self.cfg.encap, Encap::Udp { .. }) { protocol::UDP } else { protocol::ESP };
        let (&first, _) = packet.split_first()?;
        if first == 0x45 {
            let header = packet.first_chunk::<{ ipv4::HEADER_LEN }>()?;
            let [_, _, len_hi, len_lo, _, _, flags_hi, frag_lo, _, proto, ..] = *header;
            let total = usize::from(u16::from_be_bytes([len_hi, len_lo]));
            let fragment = u16::from_be_bytes([flags_hi, frag_lo]) & 0x3fff != 0;
            if total < ipv4::HEADER_LEN || total > packet.len() || fragment || proto != want {
                return None;
            }
            if !Sum::ZERO.add_bytes(header).verifies() {
                return None;
            }
            let prefix_len = ipv4::HEADER_LEN;
            Some(Located {
                prefix_len,
                version: 4,
                next_header_at: ipv4::PROTOCOL_OFFSET,
                payload_at: prefix_len,
                payload_end: total,
            })
        } else if first >> 4 == 6 {
            let header = packet.first_chunk::<{ ipv6::HEADER_LEN }>()?;
            let [_, _, _, _, len_hi, len_lo, next_header, ..] = *header;
            let total = ipv6::HEADER_LEN + usize::from(u16::from_be_bytes([len_hi, len_lo]));
            if total > packet.len() || next_header != want {
                return None;
            }
            let prefix_len = ipv6::HEADER_LEN;
            Some(Located {
                prefix_len,
                version: 6,
                next_header_at: ipv6::NEXT_HEADER_OFFSET,
                payload_at: prefix_len,
                payload_end: total,
            })
        } else {
            None
        }
    }

    /// Find the ESP packet in any packet: IP header checks, fragments,
    /// protocol, the IPv6 header chain.
    #[inline(never)]
    fn locate_any(&self, ip_packet: &[u8]) -> Result<Located, EspError> {
        let encapsulated = matches!(self.cfg.encap, Encap::Udp { .. });
        let want = if encapsulated { protocol::UDP } else { protocol::ESP };
        let ip = IpHeader::parse(ip_packet)?;
        if ip.version == 4 {
            let header = Ipv4Packet::new_unchecked(ip_packet);
            if !header.verify_checksum() {
                return Err(EspError::Malformed { field: Field::Ipv4HeaderChecksum, value: header.checksum().into() });
            }
            if ip.ipv4_fragment {
                return Err(EspError::Fragment);
            }
            if ip.protocol != want {
                return Err(EspError::Malformed { field: Field::Protocol, value: ip.protocol.into() });
            }
            Ok(Located {
                prefix_len: ip.header_len,
                version: 4,
                next_header_at: ipv4::PROTOCOL_OFFSET,
                payload_at: ip.header_len,
                payload_end: ip.len,
            })
        } else {
            let chain = find_esp_v6(ip.ipv6_chain(ip_packet), want)?;
            let (prefix, _) = chain.split();
            Ok(Located {
                prefix_len: prefix.len(),
                version: 6,
                next_header_at: chain.pos().next_header_at,
                payload_at: prefix.len(),
                payload_end: ip.len,
            })
        }
    }

    /// Steps 4 to 6, once the ICV of sequence number `seq` verified and
    /// `plaintext` (payload, padding, pad length, next header) is out:
    /// the window takes `seq`, the padding must read 1, 2, 3, ..., and a
    /// dummy packet goes no further. Returns the payload's length and the
    /// next header.
    #[inline]
    pub(super) fn after_icv(&self, seq: u64, plaintext: &[u8]) -> Result<(usize, u8), EspError> {
        // 4. The packet is authentic: update the window.
        self.window.accept(seq)?;
        // 5. Padding.
        let (payload_len, next_header) = esp::parse_trailer(plaintext).map_err(|e| match e {
            esp::TrailerError::Truncated => {
                EspError::Truncated { header: Header::EspTrailer, needed: 2, available: plaintext.len() }
            }
            esp::TrailerError::BadPadding(pad_len) => EspError::BadPadding { seq, pad_len },
        })?;
        // 6. Dummy packets.
        if next_header == protocol::NO_NEXT_HEADER {
            return Err(EspError::Dummy { seq });
        }
        Ok((payload_len, next_header))
    }

    /// Step 7 in the common case, transport mode: the kept header is
    /// `prefix` (IPv4 without options, or IPv6 whose fixed header named ESP
    /// or UDP), the decrypted payload `payload` of protocol `next_header`
    /// is TCP or UDP and its checksum verifies, and no selectors, NAT-OA
    /// fix-up or IPv6 extension headers are involved. Returns the restored
    /// header to put in front of the payload; `None` hands the packet to
    /// [`restore_transport`](Self::restore_transport), which handles
    /// everything else and says what is wrong.
    #[inline(always)]
    pub(super) fn restore_common(&self, prefix: &[u8], next_header: u8, payload: &[u8]) -> Option<Restored> {
        if !self.cfg.selectors.is_empty()
            || (matches!(self.cfg.encap, Encap::Udp { .. }) && self.nat_original.is_some())
            || !self.delivers(next_header)
        {
            return None;
        }
        let restored = if let Some(header) =
            <&[u8; ipv4::HEADER_LEN]>::try_from(prefix).ok().filter(|h| h.first() == Some(&0x45))
        {
            let total = u16::try_from(ipv4::HEADER_LEN + payload.len()).ok()?;
            self.upper_verifies(header.get(12..20)?, true, next_header, payload)?;
            Restored::V4(packet::rewrite_v4(*header, total, next_header))
        } else if let Ok(header) = <&[u8; ipv6::HEADER_LEN]>::try_from(prefix) {
            let len = u16::try_from(payload.len()).ok()?;
            self.upper_verifies(header.get(8..40)?, false, next_header, payload)?;
            let mut header = *header;
            let [_, _, _, _, len_hi, len_lo, named, ..] = &mut header;
            [*len_hi, *len_lo] = len.to_be_bytes();
            *named = next_header;
            Restored::V6(header)
        } else {
            return None;
        };
        Some(restored)
    }

    /// Step 7 in the common case, tunnel mode: the payload is an IPv4
    /// packet without options (whole, its header checksum right) or an
    /// IPv6 packet without extension headers, carrying TCP or UDP whose
    /// checksum verifies, and there are no selectors. Returns the inner
    /// packet's length (TFC padding may follow it); `None` hands the packet
    /// to [`unwrap_tunnel`](Self::unwrap_tunnel).
    #[inline(always)]
    pub(super) fn unwrap_common(&self, next_header: u8, payload: &[u8]) -> Option<usize> {
        if !self.cfg.selectors.is_empty() || !self.delivers(next_header) {
            return None;
        }
        let first = *payload.first()?;
        if first == 0x45 && next_header == protocol::IPV4 {
            let header = payload.first_chunk::<{ ipv4::HEADER_LEN }>()?;
            let [_, _, len_hi, len_lo, _, _, flags_hi, frag_lo, _, proto, ..] = *header;
            let total = usize::from(u16::from_be_bytes([len_hi, len_lo]));
            let fragment = u16::from_be_bytes([flags_hi, frag_lo]) & 0x3fff != 0;
            if total < ipv4::HEADER_LEN || total > payload.len() || fragment || !Sum::ZERO.add_bytes(header).verifies()
            {
                return None;
            }
            self.upper_verifies(header.get(12..20)?, true, proto, payload.get(ipv4::HEADER_LEN..total)?)?;
            Some(total)
        } else if first >> 4 == 6 && next_header == protocol::IPV6 {
            let header = payload.first_chunk::<{ ipv6::HEADER_LEN }>()?;
            let [_, _, _, _, len_hi, len_lo, proto, ..] = *header;
            let total = ipv6::HEADER_LEN + usize::from(u16::from_be_bytes([len_hi, len_lo]));
            self.upper_verifies(header.get(8..40)?, false, proto, payload.get(ipv6::HEADER_LEN..total)?)?;
            Some(total)
        } else {
            None
        }
    }

    /// Whether a common-case TCP or UDP segment passes the SA's checksum
    /// policy: `Some(())` if it surely does, `None` to let the general
    /// path decide.
    #[inline(always)]
    fn upper_verifies(&self, addresses: &[u8], v4: bool, proto: u8, segment: &[u8]) -> Option<()> {
        let pseudo = packet::common_upper(addresses, v4, proto, segment)?;
        match pseudo {
            Some(pseudo) if self.cfg.checksums == ChecksumPolicy::Verify => {
                pseudo.add_u16(checksum::sum(segment)).verifies().then_some(())
            }
            _ => Some(()),
        }
    }

    /// Step 7, transport mode: `restored` is the kept header (of IP
    /// `version`, naming ESP at `next_header_at`) followed by the payload;
    /// give it the right protocol and lengths, apply the NAT-T fix-up,
    /// verify.
    pub(super) fn restore_transport(
        &self,
        version: u8,
        next_header_at: usize,
        next_header: u8,
        seq: u64,
        restored: &mut [u8],
    ) -> Result<(), EspError> {
        let len = restored.len();
        if version == 4 {
            Ipv4Packet::new_unchecked(&mut *restored).set_total_len_protocol_and_checksum(len as u16, next_header);
        } else {
            let mut ip = Ipv6Packet::new_unchecked(&mut *restored);
            ip.set_payload_len((len - ipv6::HEADER_LEN) as u16);
            ip.set_next_header_at(next_header_at, next_header);
        }
        // Read where the parse wrote it: moved out of the `Result` (what `?`
        // does), it was copied with 16-byte loads straight after the
        // narrower stores that wrote it, which wait for those stores (a
        // failed store forward: 57% of this function's time in a profile
        // of single 64-byte opens).
        let parsed = Datagram::parse(restored);
        let d = match &parsed {
            Ok(d) => d,
            Err(e) => return Err((*e).into()),
        };
        let protocol = match d.upper {
            Upper::Fragment => return Err(EspError::Fragment),
            Upper::At { protocol, .. } => protocol,
        };
        // What is delivered is judged by the upper layer it carries: in IPv6
        // the extension headers inside ESP (destination options, routing)
        // lead to it.
        if !self.delivers(protocol) {
            return Err(EspError::UnexpectedNextHeader { seq, next_header: protocol });
        }
        self.check_selectors(d, restored, seq)?;
        if let (Encap::Udp { .. }, Some(original), Upper::At { protocol, .. }) =
            (self.cfg.encap, &self.nat_original, d.upper)
        {
            if original.is_ipv4() != (d.ip.version == 4) {
                return Err(EspError::Unsupported(Limitation::NatOriginalFamily));
            }
            let received = d.ip.addresses(restored);
            if let Some(segment) = d.upper_segment_mut(restored) {
                natt::fix_up_checksum(segment, protocol, original, &received);
            }
        }
        packet::verify(d, restored, self.cfg.checksums, Stage::AfterDecrypt { seq })?;
        Ok(())
    }

    /// Step 7, tunnel mode: `payload` is an IP packet whose version matches
    /// the next header, maybe followed by TFC padding; verify it. Returns
    /// its length (without the padding) and whether it is a fragment whose
    /// upper-layer checksum could not be verified.
    pub(super) fn unwrap_tunnel(&self, next_header: u8, seq: u64, payload: &[u8]) -> Result<(usize, bool), EspError> {
        let expected_version = match next_header {
            protocol::IPV4 => 4,
            protocol::IPV6 => 6,
            other => return Err(EspError::Malformed { field: Field::NextHeader, value: other.into() }),
        };
        let version = payload.first().map_or(0, |b| b >> 4);
        if version != expected_version {
            return Err(EspError::Malformed { field: Field::NextHeader, value: next_header.into() });
        }
        if !self.delivers(next_header) {
            return Err(EspError::UnexpectedNextHeader { seq, next_header });
        }
        let d = Datagram::parse(payload).map_err(|e| match e {
            WireError::Truncated { needed, available, header: WireHeader::Ipv4 | WireHeader::Ipv6 }
                if needed > available =>
            {
                EspError::Malformed { field: Field::InnerLength, value: needed as u64 }
            }
            other => other.into(),
        })?;
        let inner = d.ip.datagram(payload);
        self.check_selectors(&d, inner, seq)?;
        let verified = packet::verify(&d, inner, self.cfg.checksums, Stage::AfterDecrypt { seq })?;
        Ok((inner.len(), verified == Verified::UnverifiableFragment))
    }
}
