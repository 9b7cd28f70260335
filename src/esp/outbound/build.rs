//! Writing a planned ESP packet's headers: whatever the seal is written
//! into (the caller's `Vec`, or the packet's own buffer), the header in
//! front of ESP, the UDP header and the ESP header go in the same way.

use super::super::packet::rewrite_v4;
use super::super::wire::{self as esp, EspRepr};
use super::super::{EspError, Header};
use super::Outbound;
use super::outer::Outer;
use super::plan::{Front, SealPlan};
use crate::net::ip::Addresses;
use crate::net::{Ipv4Packet, Ipv6Packet, UdpRepr, ipv4, ipv6, protocol, udp};

/// A buffer this module was given shorter than the plan says: a bug here,
/// reported rather than taken as no bytes.
#[cold]
pub(super) fn short(header: Header, needed: usize, available: usize) -> EspError {
    EspError::Truncated { header, needed, available }
}

/// NAT-T's UDP header in front of ESP: `len` bytes from the UDP header on,
/// checksum 0 (RFC 3948 §2.1; over IPv6 it is filled in after encryption).
#[inline(always)]
pub(super) fn natt_udp_header(src_port: u16, dst_port: u16, len: usize) -> [u8; udp::HEADER_LEN] {
    let [s0, s1] = src_port.to_be_bytes();
    let [d0, d1] = dst_port.to_be_bytes();
    let [l0, l1] = (len as u16).to_be_bytes();
    [s0, s1, d0, d1, l0, l1, 0, 0]
}

/// Where transport mode's kept header comes from.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kept {
    /// A header of the usual length (IPv4 without options, IPv6 without
    /// extension headers), read into registers from where it was: written
    /// to its new place with its fields fixed, in one piece.
    V4([u8; ipv4::HEADER_LEN]),
    V6([u8; ipv6::HEADER_LEN]),
    /// Already at the start of the front (copied or moved there), to be
    /// fixed where it is; and in tunnel mode, nothing to keep.
    InPlace,
}

/// Undo [`Outbound::write_front`]'s changes to a kept header (`header`, the
/// packet's own header and extension headers, back where they were): the
/// length and the protocol or next header it had, and for IPv4 the header
/// checksum. Sealing verified that checksum, so computing it again gives the
/// bytes the packet came with. Nothing to do in tunnel mode, where the
/// datagram was never touched.
pub(super) fn restore_kept(header: &mut [u8], front: Front, datagram_len: usize, next_header: u8) {
    // The length field: IPv4's counts the whole datagram, IPv6's what
    // follows its fixed header.
    let field = match front {
        Front::KeptV6 { .. } => datagram_len.saturating_sub(ipv6::HEADER_LEN),
        _ => datagram_len,
    };
    set_kept_fields(header, front, u16::try_from(field).unwrap_or(u16::MAX), next_header);
}

/// Set a kept header's length field and the byte that names what follows
/// it (IPv4: total length, protocol and the checksum for them; IPv6:
/// payload length and the next-header byte at its place in the chain),
/// where the header lies. Nothing for a new outer header.
fn set_kept_fields(header: &mut [u8], front: Front, length16: u16, next_header: u8) {
    match front {
        Front::KeptV4 => {
            Ipv4Packet::new_unchecked(header).set_total_len_protocol_and_checksum(length16, next_header);
        }
        Front::KeptV6 { next_header_at } if next_header_at < header.len() && header.len() >= ipv6::HEADER_LEN => {
            let mut ip = Ipv6Packet::new_unchecked(header);
            ip.set_payload_len(length16);
            ip.set_next_header_at(next_header_at, next_header);
        }
        Front::KeptV6 { .. } | Front::New { .. } => {}
    }
}

impl Kept {
    /// The header to copy for `plan`, read from `datagram` (where the
    /// packet is), when it has one of the usual lengths.
    #[inline]
    pub(super) fn read(plan: &SealPlan, datagram: &[u8]) -> Kept {
        match (plan.front, plan.protected_at) {
            (Front::KeptV4, ipv4::HEADER_LEN) => datagram.first_chunk().map_or(Kept::InPlace, |h| Kept::V4(*h)),
            (Front::KeptV6 { next_header_at: ipv6::NEXT_HEADER_OFFSET }, ipv6::HEADER_LEN) => {
                datagram.first_chunk().map_or(Kept::InPlace, |h| Kept::V6(*h))
            }
            _ => Kept::InPlace,
        }
    }
}

impl Outbound {
    /// Write everything in front of the ESP payload into `front` (the
    /// sealed packet's first `plan.body_at()` bytes): the kept header with
    /// its fields fixed (transport mode; from `kept`, or already at the
    /// start of `front`) or a new one from `outer`'s template (tunnel mode),
    /// then the UDP header (NAT-T; over IPv6 its checksum follows in
    /// [`fill_udp_checksum`](Self::fill_udp_checksum)), then SPI, sequence
    /// number and IV. The IV is the 64-bit sequence number: unique per
    /// packet under the key.
    #[inline(always)]
    pub(super) fn write_front(
        &self,
        plan: &SealPlan,
        kept: Kept,
        outer: &Outer,
        seq: u64,
        front: &mut [u8],
    ) -> Result<(), EspError> {
        let available = front.len();
        if available < plan.body_at() {
            return Err(short(Header::Esp, plan.body_at(), available));
        }
        let carried = outer.carried();
        match (plan.front, kept) {
            (Front::KeptV4, Kept::V4(header)) => {
                if let Some(place) = front.first_chunk_mut() {
                    *place = rewrite_v4(header, plan.length16, carried);
                }
            }
            (Front::KeptV6 { .. }, Kept::V6(mut header)) => {
                let [_, _, _, _, len_hi, len_lo, next_header, ..] = &mut header;
                [*len_hi, *len_lo] = plan.length16.to_be_bytes();
                *next_header = carried;
                if let Some(place) = front.first_chunk_mut() {
                    *place = header;
                }
            }
            (Front::KeptV4 | Front::KeptV6 { .. }, _) => {
                set_kept_fields(front, plan.front, plan.length16, carried);
            }
            (Front::New { ds_field, dont_frag }, _) => {
                let written = outer
                    .tunnel
                    .as_ref()
                    .is_some_and(|template| template.write(front, plan.length16, ds_field, seq as u16, dont_frag));
                if !written {
                    return Err(short(Header::Ip, plan.header_len, available));
                }
            }
        }
        if let Some((src_port, dst_port)) = outer.udp {
            // The UDP length covers ESP; the checksum is 0 over IPv4 (RFC
            // 3948 §2.1) and filled in after encryption over IPv6.
            let place = front.get_mut(plan.udp_at()..).and_then(<[u8]>::first_chunk_mut::<{ udp::HEADER_LEN }>);
            if let Some(place) = place {
                *place = natt_udp_header(src_port, dst_port, plan.total - plan.udp_at());
            }
        }
        let header = EspRepr { spi: self.cfg.spi, sequence: seq as u32 }.with_iv(seq.to_be_bytes());
        let place =
            front.get_mut(plan.esp_at()..).and_then(<[u8]>::first_chunk_mut::<{ esp::HEADER_LEN + esp::IV_LEN }>);
        match place {
            Some(place) => *place = header,
            None => return Err(short(Header::Esp, plan.body_at(), available)),
        }
        Ok(())
    }

    /// NAT-T over IPv6: the UDP checksum (RFC 8200 forbids 0) of the
    /// sealed `packet`, whose UDP header is at `udp_at` and whose front
    /// header is IPv4 if `v4` (then the checksum stays 0); over the
    /// ciphertext, so after encryption.
    #[inline]
    pub(super) fn fill_udp_checksum(
        &self,
        outer: &Outer,
        v4: bool,
        udp_at: usize,
        packet: &mut [u8],
    ) -> Result<(), EspError> {
        let Some((src_port, dst_port)) = outer.udp else {
            return Ok(());
        };
        if v4 {
            return Ok(());
        }
        let available = packet.len();
        let (front, datagram) = packet.split_at_mut_checked(udp_at).ok_or(short(Header::Udp, udp_at, available))?;
        if front.len() < ipv6::HEADER_LEN {
            return Err(short(Header::Ipv6, ipv6::HEADER_LEN, available));
        }
        let ip = Ipv6Packet::new_unchecked(&*front);
        let addresses = Addresses::v6(ip.src_addr().octets(), ip.dst_addr().octets());
        let pseudo = addresses.pseudo_header(protocol::UDP, datagram.len());
        let payload_len = datagram.len().saturating_sub(udp::HEADER_LEN);
        UdpRepr { src_port, dst_port }.emit(datagram, payload_len, Some(pseudo))?;
        Ok(())
    }
}
