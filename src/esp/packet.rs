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
use crate::net::checksum::{self, Mismatch, UpperCheck};
use crate::net::ip::{Datagram, Upper};

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
