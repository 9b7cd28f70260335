//! Opening a burst where its packets lie.
//!
//! Each packet is checked alone up to its decryption ([`OpenPlan`]); then
//! the AES-GCM work of the whole burst goes to
//! [`Gcm::decrypt_batch`](crate::Gcm::decrypt_batch) in one call, each job
//! decrypting one packet's payload in place (or, with GMAC, verifying it).
//! Last, each packet is judged in the receiver's order: window, padding,
//! next header, and the packet delivered where it lies: the inner packet of
//! tunnel mode is the decrypted payload itself; in transport mode the kept
//! IP header moves forward onto the payload, over the ESP header.
//!
//! A packet refused before its decryption is left as it arrived. One
//! refused at its ICV or after has had its payload decrypted in place, so
//! that payload is zeroed (nothing decrypted is released, and the
//! ciphertext is gone); its headers are left as they arrived.

use super::super::packet_buf::PacketBuffer;
use super::super::wire::{self as esp, borrow_for_esn, give_back};
use super::super::{Counters, Encap, EspError, Mode};
use super::Inbound;
use super::plan::{OpenPlan, Restored};
use crate::Job;
use crate::net::{ipv4, ipv6, udp};
use arrayvec::ArrayVec;

/// Packets whose work goes to one batch call (see the outbound side).
pub(super) const CHUNK: usize = 32;

/// Bursts of at most this many packets are opened with working arrays of
/// this size (and a burst of one with arrays for one): setting up the
/// arrays costs about 3 ns a slot here, so those for [`CHUNK`] packets cost
/// more than opening one small packet.
pub(super) const SMALL: usize = 4;

/// Most bytes between the kept header and the payload: UDP (8), SPI and
/// sequence number (8), IV (8).
const MAX_GAP: usize = 24;

/// A packet checked and waiting for its decryption.
#[derive(Clone, Copy, Debug)]
struct Waiting {
    /// Where the packet starts in its buffer.
    start: usize,
    plan: OpenPlan,
    /// GCM's AAD length (8 or 12).
    aad_len: usize,
    /// The ICV as received.
    icv: [u8; 16],
    /// GMAC with ESN: the 4 bytes in front of the ESP header, borrowed to
    /// hold SPI || high half for the AAD while the tag is checked.
    borrowed: Option<[u8; 4]>,
}

impl Inbound {
    /// Open `pkts` (at most `N`, which is at most [`CHUNK`]) in place,
    /// writing each one's outcome to `results` and counting it in `tally`.
    /// `N` sizes the working arrays: a run of a few packets (one SA's share
    /// of a burst that mixes many) does not set up room for 32.
    pub(super) fn open_chunk<B: PacketBuffer, const N: usize>(
        &self,
        pkts: &mut [B],
        results: &mut [Result<(), EspError>],
        tally: &mut Counters,
    ) {
        // The arrays below hold `N` packets, and the callers never pass
        // more; should one, the packets past `N` are refused, never left
        // with the result they came with.
        if let Some(past) = results.get_mut(N..pkts.len().min(results.len())) {
            tally.refuse(past, &EspError::Crypto(crate::Error::TooLong));
        }
        let mut waiting: [Option<Waiting>; N] = [None; N];
        let mut aads = [[0u8; 12]; N];
        for ((pkt, result), (slot, aad)) in
            pkts.iter_mut().zip(results.iter_mut()).zip(waiting.iter_mut().zip(&mut aads))
        {
            self.wait(pkt, aad, slot, result);
        }

        // The burst's AES-GCM work in one call.
        // Fail closed: a packet whose job could not be formed (its body
        // outside its buffer, which planning rules out) keeps this error and
        // is refused with its body zeroed, never delivered unverified.
        let mut opened: [Result<(), crate::Error>; N] = [Err(crate::Error::TooLong); N];
        {
            let icv_len = self.cipher.icv_len();
            // Filled as the packets come (an array built empty and then
            // overwritten cost a 2.3 KB copy a chunk).
            let mut jobs: ArrayVec<Job<'_>, N> = ArrayVec::new();
            let mut owner = [0usize; N];
            for (i, ((pkt, w), aad)) in pkts.iter_mut().zip(&waiting).zip(&aads).enumerate() {
                let Some(w) = w else { continue };
                let (memory, _, _) = pkt.room();
                let (body_at, body_len) = (w.start + w.plan.body_at(), w.plan.body_len(icv_len));
                let nonce = self.cipher.nonce(w.plan.iv);
                let job = if self.cipher.is_gmac() {
                    // GMAC: the packet from the ESP header (or the SPI moved
                    // in front of it, with ESN) through the trailer is the
                    // AAD; nothing is decrypted.
                    let aad_at = w.start + w.plan.esp_at - if w.borrowed.is_some() { 4 } else { 0 };
                    memory.get(aad_at..body_at + body_len).map(|aad| Job::new(nonce, aad, &mut []))
                } else {
                    let body = memory.get_mut(body_at..body_at + body_len);
                    body.map(|body| Job::new(nonce, aad.get(..w.aad_len).unwrap_or(aad), body))
                };
                if let (Some(mut job), Some(who)) = (job, owner.get_mut(jobs.len())) {
                    job.tag = w.icv;
                    job.tag_len = icv_len;
                    if jobs.try_push(job).is_ok() {
                        *who = i;
                    }
                }
            }
            self.cipher.gcm().decrypt_batch(&mut jobs);
            for (job, &i) in jobs.iter().zip(&owner) {
                if let Some(r) = opened.get_mut(i) {
                    *r = job.result;
                }
            }
        }

        for (i, ((pkt, result), w)) in pkts.iter_mut().zip(results.iter_mut()).zip(&waiting).enumerate() {
            if let Some(w) = w {
                let crypto = opened.get(i).copied().unwrap_or(Err(crate::Error::TooLong));
                // Each arm writes its own value: Ok as a one-byte store.
                match self.deliver(pkt, w, crypto) {
                    Ok(unverifiable) => {
                        *result = Ok(());
                        if unverifiable {
                            tally.unverifiable_fragments += 1;
                        }
                        tally.record_packet(pkt.data().len());
                    }
                    Err(e) => *result = Err(e),
                }
            }
            if let Err(e) = result {
                tally.record(e);
            }
        }
    }

    /// Steps 1 and 2 for `pkt`, and its AAD and ICV for the batch, in
    /// `slot`; the outcome in `result`. On error the packet is left as it
    /// arrived (and `slot` as it was).
    ///
    /// It writes `slot` and `result` itself rather than returning them:
    /// copied out of a returned value, each was read back with 16-byte loads
    /// straight after narrower stores had written it, and such a load waits
    /// for them (a failed store forward), about 6 ns of a 64-byte packet's
    /// 75.
    #[inline(never)]
    fn wait<B: PacketBuffer>(
        &self,
        pkt: &mut B,
        aad: &mut [u8; 12],
        slot: &mut Option<Waiting>,
        result: &mut Result<(), EspError>,
    ) {
        // Ok as a one-byte store, not a copy of the whole `Result` (48
        // bytes, error payload and all).
        match self.plan_waiting(pkt, aad, slot) {
            Ok(()) => *result = Ok(()),
            Err(e) => *result = Err(e),
        }
    }

    /// [`wait`](Self::wait)'s work.
    #[inline(always)]
    fn plan_waiting<B: PacketBuffer>(
        &self,
        pkt: &mut B,
        aad: &mut [u8; 12],
        slot: &mut Option<Waiting>,
    ) -> Result<(), EspError> {
        if self.wait_straight_any(pkt, aad, slot).is_some() {
            return Ok(());
        }
        let plan = self.plan(pkt.data())?;
        let (memory, start, _) = pkt.room();
        let start = *start;
        let icv_len = self.cipher.icv_len();
        let icv_at = start + plan.esp_at + plan.esp_len - icv_len;
        let mut icv = [0u8; 16];
        if let (Some(to), Some(from)) = (icv.get_mut(..icv_len), memory.get(icv_at..icv_at + icv_len)) {
            to.copy_from_slice(from);
        }
        let aad_len = self.cipher.write_aad(self.cfg.spi, plan.seq, aad);
        let borrowed = if self.cipher.is_gmac() && self.cipher.esn() {
            borrow_for_esn(memory, start + plan.esp_at, self.cfg.spi, plan.seq)
        } else {
            None
        };
        *slot = Some(Waiting { start, plan, aad_len, icv, borrowed });
        Ok(())
    }

    /// The straight path ([`wait_straight`](Self::wait_straight)) for this
    /// SA's encapsulation, if it is GCM: `None` leaves the packet to the
    /// general path.
    #[inline(always)]
    fn wait_straight_any<B: PacketBuffer>(
        &self,
        pkt: &mut B,
        aad: &mut [u8; 12],
        slot: &mut Option<Waiting>,
    ) -> Option<()> {
        if self.cipher.is_gmac() {
            return None;
        }
        match self.cfg.encap {
            Encap::None => self.wait_straight::<B, false>(pkt, aad, slot),
            Encap::Udp { .. } => self.wait_straight::<B, true>(pkt, aad, slot),
        }
    }

    /// [`plan_waiting`](Self::plan_waiting) for the most common arrivals,
    /// in one straight pass: ESP (or NAT-T's UDP carrying it) straight
    /// behind IPv4 without options or IPv6 without extension headers, for
    /// GCM, passing every check before decryption. It writes only `slot`
    /// and `aad`, and only when it takes the packet; anything else, or
    /// anything that fails a check, is declined (`None`) for the general
    /// path to take or to refuse with the reason. Its checks are the
    /// general path's: the IP header (for IPv4 its checksum, not a
    /// fragment), lengths that fit, a UDP length that is the datagram's,
    /// room for SPI, sequence number, IV, at least 4 bytes of ciphertext
    /// (a multiple of 4) and the ICV, this SA's SPI (which is never 0, so
    /// IKE's non-ESP marker and NAT keepalives are declined too), and the
    /// replay window's pre-check.
    ///
    /// Why a path of its own: the general one's plan carries every
    /// encapsulation and IPv6's header chain, and that plumbing cost more
    /// than the checks themselves. `NATT` is the SA's encapsulation, and
    /// the rest has a copy per IP header length, so that each has its
    /// offsets as constants and no branch of the others': for IPv4 without
    /// NAT-T one copy for both cost 20 instructions a packet.
    #[inline(always)]
    fn wait_straight<B: PacketBuffer, const NATT: bool>(
        &self,
        pkt: &mut B,
        aad: &mut [u8; 12],
        slot: &mut Option<Waiting>,
    ) -> Option<()> {
        const V4: usize = ipv4::HEADER_LEN;
        const V6: usize = ipv6::HEADER_LEN;
        let (memory, start, len) = pkt.room();
        let at = *start;
        let packet = memory.get(at..at + *len)?;
        // The IP header's checks are the general path's own first step.
        let located = self.locate_common(packet)?;
        let total = located.payload_end;
        match (located.version, located.prefix_len) {
            (4, V4) => self.wait_located::<NATT, V4>(packet, at, total, aad, slot),
            (6, V6) => self.wait_located::<NATT, V6>(packet, at, total, aad, slot),
            _ => None,
        }
    }

    /// [`wait_straight`](Self::wait_straight) once the IP header is
    /// checked: `P` bytes long, the datagram `total` bytes, and the packet
    /// at `at` in its buffer.
    #[inline(always)]
    fn wait_located<const NATT: bool, const P: usize>(
        &self,
        packet: &[u8],
        at: usize,
        total: usize,
        aad: &mut [u8; 12],
        slot: &mut Option<Waiting>,
    ) -> Option<()> {
        const FIXED: usize = esp::HEADER_LEN + esp::IV_LEN;
        let (version, next_header_at) = match P {
            ipv4::HEADER_LEN => (4, ipv4::PROTOCOL_OFFSET),
            ipv6::HEADER_LEN => (6, ipv6::NEXT_HEADER_OFFSET),
            _ => return None,
        };
        // The IP payload starts behind the header: ESP, or NAT-T's UDP.
        let esp_at = if NATT {
            // RFC 3948: UDP whose length field is the datagram's, then
            // ESP (its checksum is accepted either way: the ICV protects
            // what it covered).
            let udp = packet.get(P..total)?.first_chunk::<{ udp::HEADER_LEN }>()?;
            let [_, _, _, _, len_hi, len_lo, _, _] = *udp;
            if usize::from(u16::from_be_bytes([len_hi, len_lo])) != total - P {
                return None;
            }
            P + udp::HEADER_LEN
        } else {
            P
        };
        let esp_len = total.checked_sub(esp_at)?;
        let icv_len = self.cipher.icv_len();
        let ciphertext_len = esp_len.checked_sub(FIXED + icv_len)?;
        if ciphertext_len < 4 || !ciphertext_len.is_multiple_of(4) {
            return None;
        }
        let esp_bytes = packet.get(esp_at..total)?;
        let (fixed, rest) = esp_bytes.split_first_chunk::<FIXED>()?;
        let (spi, low, iv) = {
            let (spi, rest) = fixed.split_first_chunk::<4>()?;
            let (low, iv) = rest.split_first_chunk::<4>()?;
            (u32::from_be_bytes(*spi), u32::from_be_bytes(*low), *iv.first_chunk::<{ esp::IV_LEN }>()?)
        };
        if spi != self.cfg.spi {
            return None;
        }
        let seq = if self.cfg.esn { self.window.estimate_esn(low).ok()? } else { u64::from(low) };
        self.window.check(seq).ok()?;
        let mut icv = [0u8; 16];
        // Both `icv_len` long: the copy cannot panic.
        icv.get_mut(..icv_len)?.copy_from_slice(rest.get(ciphertext_len..ciphertext_len + icv_len)?);
        let aad_len = self.cipher.write_aad(self.cfg.spi, seq, aad);
        *slot = Some(Waiting {
            start: at,
            plan: OpenPlan { prefix_len: P, version, next_header_at, esp_at, esp_len, seq, iv },
            aad_len,
            icv,
            borrowed: None,
        });
        Some(())
    }

    /// Steps 3 (its verdict) to 7 for a packet the batch has decrypted:
    /// deliver it where it lies, or zero its payload. Returns whether it
    /// is a tunnelled fragment whose checksum could not be verified.
    fn deliver<B: PacketBuffer>(
        &self,
        pkt: &mut B,
        w: &Waiting,
        opened: Result<(), crate::Error>,
    ) -> Result<bool, EspError> {
        let (memory, start, len) = pkt.room();
        let seq = w.plan.seq;
        if let Some(saved) = w.borrowed {
            give_back(memory, w.start + w.plan.esp_at, self.cfg.spi, saved);
        }
        let body_at = w.start + w.plan.body_at();
        let body_end = body_at + w.plan.body_len(self.cipher.icv_len());
        let zero_body = |memory: &mut [u8]| {
            if let Some(body) = memory.get_mut(body_at..body_end) {
                body.fill(0);
            }
        };
        let result = match opened {
            Ok(()) => self.deliver_opened(memory, w, body_at, body_end),
            Err(crate::Error::Auth) => Err(EspError::Auth { seq }),
            Err(other) => Err(EspError::Crypto(other)),
        };
        match result {
            Ok((new_start, new_len, unverifiable)) => {
                *start = new_start;
                *len = new_len;
                Ok(unverifiable)
            }
            Err(e) => {
                zero_body(memory);
                Err(e)
            }
        }
    }

    /// [`deliver`](Self::deliver) once the ICV verified: the packet's new
    /// (start, length), and whether it is an unverifiable fragment.
    #[inline(always)]
    fn deliver_opened(
        &self,
        memory: &mut [u8],
        w: &Waiting,
        body_at: usize,
        body_end: usize,
    ) -> Result<(usize, usize, bool), EspError> {
        let seq = w.plan.seq;
        let available = memory.len();
        let truncated = || EspError::Truncated { header: super::super::Header::Esp, needed: body_end, available };
        let (payload_len, next_header) = self.after_icv(seq, memory.get(body_at..body_end).ok_or_else(truncated)?)?;
        let payload = body_at..body_at + payload_len;
        match self.cfg.mode {
            Mode::Tunnel { .. } => {
                let inner = memory.get(payload).ok_or_else(truncated)?;
                match self.unwrap_common(next_header, inner) {
                    Some(inner_len) => Ok((body_at, inner_len, false)),
                    None => {
                        let (inner_len, unverifiable) = self.unwrap_tunnel(next_header, seq, inner)?;
                        Ok((body_at, inner_len, unverifiable))
                    }
                }
            }
            Mode::Transport => {
                let prefix = w.start..w.start + w.plan.prefix_len;
                let restored = match (memory.get(prefix), memory.get(payload.clone())) {
                    (Some(prefix), Some(payload)) => self.restore_common(prefix, next_header, payload),
                    _ => None,
                };
                // The common case: every check passed on the bytes where
                // they are; the restored header goes in front of the
                // payload, over the ESP header, in one piece.
                let new_len = w.plan.prefix_len + payload_len;
                let written = match restored {
                    Some(Restored::V4(header)) => body_at
                        .checked_sub(header.len())
                        .and_then(|at| memory.get_mut(at..))
                        .and_then(<[u8]>::first_chunk_mut)
                        .map(|place| *place = header),
                    Some(Restored::V6(header)) => body_at
                        .checked_sub(header.len())
                        .and_then(|at| memory.get_mut(at..))
                        .and_then(<[u8]>::first_chunk_mut)
                        .map(|place| *place = header),
                    None => None,
                };
                match written {
                    Some(()) => Ok((body_at - w.plan.prefix_len, new_len, false)),
                    None => self.restore_any(memory, w, next_header, payload.end).map(|start| (start, new_len, false)),
                }
            }
        }
    }

    /// Transport mode off the common path: the kept header moves forward
    /// onto the payload (which ends at `payload_end`), over the UDP and ESP
    /// headers and the IV, which are saved (with the header's fields that
    /// restoring changes) to put the headers back as they arrived should
    /// the packet be refused. Returns where the restored packet starts.
    #[inline(never)]
    fn restore_any(
        &self,
        memory: &mut [u8],
        w: &Waiting,
        next_header: u8,
        payload_end: usize,
    ) -> Result<usize, EspError> {
        let available = memory.len();
        let body_at = w.start + w.plan.body_at();
        let truncated = || EspError::Truncated { header: super::super::Header::Esp, needed: payload_end, available };
        let prefix_at = w.start;
        let prefix_len = w.plan.prefix_len;
        let gap = body_at - (prefix_at + prefix_len);
        let mut saved_gap = [0u8; MAX_GAP];
        let gap_bytes = memory.get(prefix_at + prefix_len..body_at).ok_or_else(truncated)?;
        saved_gap.get_mut(..gap).ok_or_else(truncated)?.copy_from_slice(gap_bytes);
        let saved_fields = KeptFields::save(memory, prefix_at, w.plan.next_header_at);
        let whole = memory.get_mut(prefix_at..payload_end).ok_or_else(truncated)?;
        whole.copy_within(..prefix_len, gap);
        let restored = whole.get_mut(gap..).unwrap_or_default();
        match self.restore_transport(w.plan.version, w.plan.next_header_at, next_header, w.plan.seq, restored) {
            Ok(()) => Ok(prefix_at + gap),
            Err(e) => {
                whole.copy_within(gap..gap + prefix_len, 0);
                if let (Some(to), Some(from)) = (whole.get_mut(prefix_len..prefix_len + gap), saved_gap.get(..gap)) {
                    to.copy_from_slice(from);
                }
                saved_fields.restore(memory, prefix_at, w.plan.next_header_at);
                Err(e)
            }
        }
    }
}

/// The fields of a kept IP header that restoring it changes: for IPv4 the
/// total length, protocol and checksum (bytes 2 to 11), for IPv6 the
/// payload length (bytes 4 and 5), and the byte that named ESP.
#[derive(Clone, Copy)]
struct KeptFields {
    first: [u8; 12],
    named: u8,
}

impl KeptFields {
    fn save(memory: &[u8], at: usize, next_header_at: usize) -> KeptFields {
        let first = memory.get(at..).and_then(<[u8]>::first_chunk::<12>).copied().unwrap_or_default();
        let named = memory.get(at + next_header_at).copied().unwrap_or_default();
        KeptFields { first, named }
    }

    fn restore(&self, memory: &mut [u8], at: usize, next_header_at: usize) {
        if let Some(first) = memory.get_mut(at..).and_then(<[u8]>::first_chunk_mut::<12>) {
            *first = self.first;
        }
        if let Some(named) = memory.get_mut(at + next_header_at) {
            *named = self.named;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::esp::{Outbound, PacketBuf, SaConfig, small_udp_v4};

    /// The straight path takes what it is for (the burst tests compare its
    /// verdicts with single opens, which a path that declined everything
    /// would pass too): ESP behind IPv4 and IPv6, bare and in NAT-T, in
    /// transport mode and tunnels, with and without ESN, and records where
    /// ESP is. It declines ESP behind an IPv6 extension header.
    #[test]
    fn the_straight_path_takes_the_common_arrivals() {
        use crate::esp::{Encap, Mode};
        use espgcm_testkit::packets::{endpoints, packet, pattern};
        for family in [4u8, 6] {
            let tunnel = Mode::Tunnel { src: endpoints(family).0, dst: endpoints(family).1 };
            for mode in [Mode::Transport, tunnel] {
                for (encap, esn) in [(Encap::None, false), (Encap::NAT_T, false), (Encap::NAT_T, true)] {
                    let cfg = SaConfig { mode, encap, esn, ..SaConfig::new(0x6565, &[0x21 + family; 20]) };
                    let what = format!("IPv{family} {mode:?} {encap:?} esn {esn}");
                    let tx = Outbound::new(cfg.clone()).unwrap();
                    let rx = Inbound::new(cfg).unwrap();
                    let mut sealed = Vec::new();
                    tx.seal(&packet(family, true, &pattern(80, 5)), &mut sealed).unwrap();
                    let mut pkt = PacketBuf::from_packet(&sealed);
                    let (mut aad, mut slot) = ([0u8; 12], None);
                    assert!(rx.wait_straight_any(&mut pkt, &mut aad, &mut slot).is_some(), "{what}");
                    let w = slot.unwrap();
                    let prefix = if family == 4 { 20 } else { 40 };
                    let esp_at = prefix + if matches!(encap, Encap::Udp { .. }) { 8 } else { 0 };
                    assert_eq!((w.plan.prefix_len, w.plan.version, w.plan.esp_at), (prefix, family, esp_at), "{what}");
                    assert_eq!(w.plan.esp_len, sealed.len() - esp_at, "{what}");
                    assert_eq!((w.plan.seq, w.start), (1, pkt.room().1.to_owned()), "{what}");
                    if family == 6 {
                        // A destination-options header in front of ESP.
                        let mut behind = sealed.clone();
                        let next = behind[6];
                        behind.splice(40..40, [next, 0, 1, 4, 0, 0, 0, 0]);
                        behind[6] = 60;
                        let len = (behind.len() - 40) as u16;
                        behind[4..6].copy_from_slice(&len.to_be_bytes());
                        let mut pkt = PacketBuf::from_packet(&behind);
                        let mut slot = None;
                        assert!(rx.wait_straight_any(&mut pkt, &mut aad, &mut slot).is_none(), "{what}");
                        assert!(slot.is_none(), "{what}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_chunk_refuses_the_packets_past_its_arrays() {
        let cfg = SaConfig::new(0x6161, &[6u8; 20]);
        let tx = Outbound::new(cfg.clone()).unwrap();
        let rx = Inbound::new(cfg).unwrap();
        let input = small_udp_v4();
        let mut pkts: Vec<PacketBuf> = (0..6)
            .map(|_| {
                let mut sealed = Vec::new();
                tx.seal(&input, &mut sealed).unwrap();
                PacketBuf::from_packet(&sealed)
            })
            .collect();
        let arrived: Vec<Vec<u8>> = pkts.iter().map(|p| p.data().to_vec()).collect();
        let mut results = vec![Ok(()); 6];
        let mut tally = Counters::default();
        rx.open_chunk::<PacketBuf, SMALL>(&mut pkts, &mut results, &mut tally);
        assert!(results[..SMALL].iter().all(Result::is_ok), "{results:?}");
        assert!(pkts[..SMALL].iter().all(|p| p.data() == input.as_slice()));
        let refused = Err(EspError::Crypto(crate::Error::TooLong));
        assert_eq!(results[SMALL..], [refused.clone(), refused]);
        assert_eq!(pkts[SMALL].data(), arrived[SMALL].as_slice(), "left as it arrived");
        assert_eq!(tally.packets, SMALL as u64);
    }
}
