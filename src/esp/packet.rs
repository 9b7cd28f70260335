//! What "a correct packet" means to ESP, on both sides: the network layer
//! parses the datagram and checks its checksums ([`crate::net`]); this
//! module adds ESP's policy (which checksums the SA verifies) and turns a
//! failed checksum into the error of the side that found it.
//!
//! `seal` runs this on the packet it is given (before anything is
//! encrypted) and `open` on what it decrypted (tunnel mode: the inner
//! packet; transport mode: the restored packet), so one piece of code
//! decides what "a correct packet" means on both sides.

use super::{ChecksumPolicy, EspError};
use crate::net::checksum::{self, Mismatch, Sum, pseudo_header_of};
use crate::net::ip::{Datagram, Upper};
use crate::net::upper::UpperCheck;
use crate::net::{ipv4, protocol, tcp, udp};

/// Where a failed checksum was found, to build the right error.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stage {
    BeforeEncrypt,
    AfterDecrypt { seq: u64 },
}

impl Stage {
    #[cold]
    pub(crate) fn error(self, m: Mismatch) -> EspError {
        let Mismatch { kind, found, expected } = m;
        match self {
            Stage::BeforeEncrypt => EspError::ChecksumBeforeEncrypt { kind, found, expected },
            Stage::AfterDecrypt { seq } => EspError::ChecksumAfterDecrypt { seq, kind, found, expected },
        }
    }
}

/// What a datagram's checksum check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verified {
    /// Every checksum the policy asks for verified (or there was none).
    Whole,
    /// A fragment: its IP header verified, but the upper-layer checksum
    /// covers the reassembled datagram and could not be checked.
    UnverifiableFragment,
}

/// Verify the IPv4 header checksum (always) and the upper-layer checksum
/// (under [`ChecksumPolicy::Verify`]) of `d`, whose bytes are `bytes`,
/// reading the upper-layer bytes to sum them.
#[inline]
pub(crate) fn verify(d: &Datagram, bytes: &[u8], policy: ChecksumPolicy, stage: Stage) -> Result<Verified, EspError> {
    verify_ip_header(d, bytes, stage)?;
    if d.upper == Upper::Fragment {
        return Ok(Verified::UnverifiableFragment);
    }
    if let UpperPlan::Check { check, segment } = upper_check(d, bytes, policy)? {
        check.verify(checksum::sum(segment)).map_err(|m| stage.error(m))?;
    }
    Ok(Verified::Whole)
}

/// Verify the IPv4 header checksum of `d` (nothing for IPv6).
#[inline]
pub(crate) fn verify_ip_header(d: &Datagram, bytes: &[u8], stage: Stage) -> Result<(), EspError> {
    d.ip.verify_header_checksum(bytes).map_err(|m| stage.error(m))
}

/// What checking a datagram's upper-layer checksum takes.
#[derive(Clone, Debug)]
pub(crate) enum UpperPlan<'b> {
    /// A fragment: the checksum covers the reassembled datagram.
    Fragment,
    /// No checksum to verify (the policy skips it, the protocol has none,
    /// or UDP over IPv4 was sent without one).
    Nothing,
    /// Verify `check` against the sum of the upper-layer `segment` (which
    /// runs to the end of the datagram).
    Check { check: UpperCheck, segment: &'b [u8] },
}

/// Plan the upper-layer check of `d` (whose bytes are `bytes`): the header
/// of the upper layer is length-checked now; the checksum itself needs the
/// sum of the segment, which the caller may already have from the cipher.
#[inline]
pub(crate) fn upper_check<'b>(
    d: &Datagram,
    bytes: &'b [u8],
    policy: ChecksumPolicy,
) -> Result<UpperPlan<'b>, EspError> {
    match (d.upper, d.upper_segment(bytes)) {
        (Upper::At { .. }, _) if policy == ChecksumPolicy::Skip => Ok(UpperPlan::Nothing),
        (Upper::At { protocol, .. }, Some(segment)) => {
            match UpperCheck::new(d.ip.address_bytes(bytes), d.ip.version == 4, protocol, segment)? {
                Some(check) => Ok(UpperPlan::Check { check, segment }),
                None => Ok(UpperPlan::Nothing),
            }
        }
        _ => Ok(UpperPlan::Fragment),
    }
}

/// Append `bytes` to `out`. Headers of the usual lengths (a 20-byte IPv4
/// header, a 40-byte IPv6 header) are copied with fixed-size moves instead
/// of a `memcpy` call, which costs more than the copy at these sizes.
#[inline(always)]
pub(crate) fn extend_header(out: &mut Vec<u8>, bytes: &[u8]) {
    if let Ok(header) = <&[u8; 20]>::try_from(bytes) {
        out.extend_from_slice(header);
    } else if let Ok(header) = <&[u8; 40]>::try_from(bytes) {
        out.extend_from_slice(header);
    } else {
        out.extend_from_slice(bytes);
    }
}

/// What the common case (TCP or UDP, read without the views) must check of
/// an upper-layer `segment` of protocol `proto` carried by an IP header
/// with `addresses` (IPv4 if `v4`): `None` if the segment is not of that
/// shape (another protocol, a length that does not add up, UDP over IPv6
/// without a checksum), so that the general path, which says exactly what
/// is wrong, takes it; `Some(None)` if there is no checksum to verify (UDP
/// over IPv4 sent without one); `Some(Some(pseudo))` if the segment's sum
/// and `pseudo` must fold to all ones.
#[inline(always)]
pub(crate) fn common_upper(addresses: &[u8], v4: bool, proto: u8, segment: &[u8]) -> Option<Option<Sum>> {
    let checked = match proto {
        protocol::TCP => {
            // The TCP view's checks: a data offset of at least 5 words
            // that fits the segment (which then holds the whole header).
            let data_offset = usize::from(segment.get(12)? >> 4) * 4;
            if data_offset < tcp::HEADER_LEN || data_offset > segment.len() {
                return None;
            }
            true
        }
        protocol::UDP => {
            // The UDP view's checks: a length field equal to the segment's.
            let [_, _, _, _, len_hi, len_lo, ck_hi, ck_lo] = *segment.first_chunk::<{ udp::HEADER_LEN }>()?;
            if usize::from(u16::from_be_bytes([len_hi, len_lo])) != segment.len() {
                return None;
            }
            match (ck_hi | ck_lo, v4) {
                (0, true) => false,
                (0, false) => return None,
                _ => true,
            }
        }
        _ => return None,
    };
    Some(checked.then(|| pseudo_header_of(addresses, proto, segment.len() as u32)))
}

/// An IPv4 header without options with a new total length and protocol,
/// its checksum updated for the two changed words (RFC 1624 eqn. 3: the
/// old checksum, which the caller has verified, minus the old words plus
/// the new ones), built in registers to be stored in one piece.
#[inline(always)]
pub(crate) fn rewrite_v4(mut header: [u8; ipv4::HEADER_LEN], total: u16, protocol: u8) -> [u8; ipv4::HEADER_LEN] {
    let [_, _, len_hi, len_lo, _, _, _, _, ttl, proto, ck_hi, ck_lo, ..] = &mut header;
    let old_len = u16::from_be_bytes([*len_hi, *len_lo]);
    let old_ttl_proto = u16::from_be_bytes([*ttl, *proto]);
    let new_ttl_proto = u16::from_be_bytes([*ttl, protocol]);
    let old_checksum = u16::from_be_bytes([*ck_hi, *ck_lo]);
    let checksum = Sum::ZERO
        .add_u16(!old_checksum)
        .add_u16(!old_len)
        .add_u16(total)
        .add_u16(!old_ttl_proto)
        .add_u16(new_ttl_proto)
        .checksum();
    [*len_hi, *len_lo] = total.to_be_bytes();
    *proto = protocol;
    [*ck_hi, *ck_lo] = checksum.to_be_bytes();
    header
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::net::Ipv4Packet;

    #[test]
    fn a_rewritten_header_has_the_checksum_a_full_sum_gives() {
        let mut x = 0x1234_5678_9abc_def0u64;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut header = [0u8; 20];
            for (i, b) in header.iter_mut().enumerate() {
                *b = (x >> ((i * 3) % 56)) as u8 ^ i as u8;
            }
            header[0] = 0x45;
            Ipv4Packet::new_unchecked(&mut header[..]).fill_checksum();
            let (total, proto) = ((x >> 20) as u16, (x >> 40) as u8);
            let fast = rewrite_v4(header, total, proto);
            let mut full = header;
            Ipv4Packet::new_unchecked(&mut full[..]).set_total_len_protocol_and_checksum(total, proto);
            assert_eq!(fast, full, "{header:02x?}");
        }
    }
}
