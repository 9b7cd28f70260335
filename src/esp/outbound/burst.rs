//! Sealing a burst where its packets lie.
//!
//! Each packet is checked and laid out alone ([`SealPlan`]); its headers go
//! into the buffer's headroom (in transport mode the packet's own header
//! moves forward to make way for ESP's), its trailer into the tailroom, and
//! its payload stays where it is. Then the AES-GCM work of the whole burst
//! goes to [`Gcm::encrypt_batch`](crate::Gcm::encrypt_batch) in one call, so
//! that the multi-buffer kernels run underneath, each job encrypting one
//! packet's payload in place. Last, each packet gets its ICV (and over IPv6
//! its NAT-T UDP checksum) and its new start and length.
//!
//! The common case (the plan's fast path) runs inlined from the packet's
//! bytes to its written headers, so that nothing it works out goes through
//! memory on the way: a plan stored by small writes and read back at once
//! by wider loads stalls the processor for longer than the rest of the
//! work takes.

use super::super::packet::{self, rewrite_v4};
use super::super::packet_buf::PacketBuffer;
use super::super::wire::{self as esp, EspRepr, Trailer, borrow_for_esn, give_back};
use super::super::{ChecksumPolicy, Counters, EspError, Header, Mode};
use super::Outbound;
use super::build::{Kept, natt_udp_header, restore_kept, short};
use super::outer::Outer;
use super::plan::{Front, Inner, SealPlan};
use crate::Job;
use crate::net::checksum;
use crate::net::{ipv4, ipv6, protocol, udp};
use arrayvec::ArrayVec;

/// Packets whose work goes to one batch call: enough for the kernels to
/// find groups of like messages, few enough for the per-packet state to
/// stay on the stack.
pub(super) const CHUNK: usize = 32;

/// Bursts of at most this many packets are sealed with working arrays of
/// this size (and a burst of one with arrays for one): setting up the
/// arrays costs about 3 ns a slot here, so those for [`CHUNK`] packets cost
/// more than sealing one small packet (a burst that mixes many SAs gives
/// each a few).
pub(super) const SMALL: usize = 4;

/// A packet laid out in its buffer, waiting for its ciphertext.
#[derive(Clone, Copy, Debug)]
struct Placed {
    /// Where the sealed packet starts in the buffer.
    start: usize,
    /// Where the datagram was before its headers moved (the protected part
    /// is there still), and where it had been before the packet had to move
    /// within the buffer for room, if it did.
    datagram_at: usize,
    moved_from: Option<usize>,
    /// The plan's numbers the rest needs.
    datagram_len: usize,
    protected_at: usize,
    esp_at: usize,
    body_at: usize,
    body_len: usize,
    total: usize,
    /// Whether the header in front is IPv4, and where the UDP header is
    /// (for NAT-T's checksum over IPv6).
    v4: bool,
    udp_at: usize,
    seq: u64,
    /// GCM's AAD length (8 or 12); GMAC's AAD is the packet itself.
    aad_len: usize,
    /// GMAC with ESN: the 4 bytes in front of the ESP header, borrowed to
    /// hold SPI || high half for the AAD while the tag is computed.
    borrowed: Option<[u8; 4]>,
    /// The packet's length as handed in (what the byte counter counts),
    /// and whether it is a tunnelled fragment (unverifiable).
    input_len: usize,
    fragment: bool,
    /// What stays in front (the kept header's kind), and the next header
    /// the trailer carries: what the kept header named before sealing. A
    /// packet put back after a failed encryption gets them back.
    front: Front,
    next_header: u8,
}

/// Move `len` bytes at `from` to `to` within `memory`, or refuse (before
/// moving anything) when either range does not lie inside it.
fn move_bytes(memory: &mut [u8], from: usize, len: usize, to: usize) -> Result<(), EspError> {
    if from == to || len == 0 {
        return Ok(());
    }
    let low = from.min(to);
    let available = memory.len();
    let end = from.max(to) + len;
    let region = memory.get_mut(low..end).ok_or(short(Header::Esp, end, available))?;
    region.copy_within(from - low..from - low + len, to - low);
    Ok(())
}

impl Outbound {
    /// Seal `pkts` (at most `N`, which is at most [`CHUNK`]) in place,
    /// the `i`th with sequence number `seq(i)` (or the error that says why
    /// it has none), writing each one's outcome to `results` and counting
    /// it in `tally`. `N` sizes the working arrays (see [`SMALL`]).
    pub(super) fn seal_chunk<B: PacketBuffer, const N: usize>(
        &self,
        pkts: &mut [B],
        results: &mut [Result<(), EspError>],
        seq: impl Fn(usize) -> Result<u64, EspError>,
        outer: &Outer,
        tally: &mut Counters,
    ) {
        // The arrays below hold `N` packets, and the callers never pass
        // more; should one, the packets past `N` are refused, never left
        // with the result they came with.
        if let Some(past) = results.get_mut(N..pkts.len().min(results.len())) {
            tally.refuse(past, &EspError::Crypto(crate::Error::TooLong));
        }
        let mut placed: [Option<Placed>; N] = [None; N];
        let mut aads = [[0u8; 12]; N];
        let mut tags = [[0u8; 16]; N];
        // Fail closed: a placed packet whose job could not be formed (its
        // body outside its buffer, which planning rules out) keeps this
        // error and is put back, never sent with a plaintext payload.
        let mut sealed: [Result<(), crate::Error>; N] = [Err(crate::Error::TooLong); N];
        {
            // Each packet's job is formed as soon as the packet is placed,
            // from the values just worked out: a second pass over the
            // placed packets to form them measured about 0.5 ns a packet
            // slower at 64 bytes (its loop, and the values read back). The
            // jobs go into an `ArrayVec` as they come (an array built empty
            // and then overwritten cost a 2.3 KB copy a chunk).
            let mut jobs: ArrayVec<Job<'_>, N> = ArrayVec::new();
            let mut owner = [0usize; N];
            for (i, (((pkt, result), slot), aad)) in
                pkts.iter_mut().zip(results.iter_mut()).zip(placed.iter_mut()).zip(aads.iter_mut()).enumerate()
            {
                // Ok as a one-byte store: assigning the `Result` whole copied
                // all 48 bytes of it, error payload and all, for every packet.
                match seq(i).and_then(|seq| self.place(pkt, seq, outer, aad, slot)) {
                    Ok(()) => *result = Ok(()),
                    Err(e) => {
                        *result = Err(e);
                        continue;
                    }
                }
                let Some(p) = *slot else { continue };
                let aad: &[u8; 12] = aad;
                let (memory, _, _) = pkt.room();
                let nonce = self.cipher.nonce(p.seq.to_be_bytes());
                let body = p.start + p.body_at..p.start + p.body_at + p.body_len;
                let job = if self.cipher.is_gmac() {
                    // GMAC: the packet from the ESP header (or the SPI moved
                    // in front of it, with ESN) through the trailer is the
                    // AAD; nothing is encrypted.
                    let aad_at = p.start + p.esp_at - if p.borrowed.is_some() { 4 } else { 0 };
                    memory.get(aad_at..body.end).map(|aad| Job::new(nonce, aad, &mut []))
                } else {
                    let aad = aad.get(..p.aad_len).unwrap_or(aad);
                    memory.get_mut(body).map(|body| Job::new(nonce, aad, body))
                };
                if let (Some(job), Some(who)) = (job, owner.get_mut(jobs.len()))
                    && jobs.try_push(job).is_ok()
                {
                    *who = i;
                }
            }
            // The burst's AES-GCM work in one call.
            self.cipher.gcm().encrypt_batch(&mut jobs);
            for (job, &i) in jobs.iter().zip(&owner) {
                if let (Some(tag), Some(r)) = (tags.get_mut(i), sealed.get_mut(i)) {
                    *tag = job.tag;
                    *r = job.result;
                }
            }
        }

        for (((pkt, result), p), (tag, crypto)) in
            pkts.iter_mut().zip(results.iter_mut()).zip(&placed).zip(tags.iter().zip(&sealed))
        {
            if let Some(p) = p {
                // As in the first loop: Ok is written as Ok, not copied.
                match self.finish_placed(pkt, p, tag, *crypto, outer) {
                    Ok(()) => {
                        *result = Ok(());
                        if p.fragment {
                            tally.unverifiable_fragments += 1;
                        }
                        tally.record_packet(p.input_len);
                    }
                    Err(e) => *result = Err(e),
                }
            }
            if let Err(e) = result {
                tally.record(e);
            }
        }
    }

    /// Check `pkt`, verify its checksum, and lay it out in its buffer for
    /// sequence number `seq`: everything but the encryption and the ICV,
    /// described in `slot`. On error the packet is left as it was.
    #[inline(always)]
    fn place<B: PacketBuffer>(
        &self,
        pkt: &mut B,
        seq: u64,
        outer: &Outer,
        aad: &mut [u8; 12],
        slot: &mut Option<Placed>,
    ) -> Result<(), EspError> {
        if self.place_straight_any(pkt, seq, outer, aad, slot).is_some() {
            return Ok(());
        }
        match self.plan_common(pkt.data()) {
            Some(parsed) => {
                let plan = self.layout(parsed, outer)?;
                self.place_planned(pkt, &plan, seq, outer, aad, slot)
            }
            None => self.place_any(pkt, seq, outer, aad, slot),
        }
    }

    /// The straight path ([`place_straight`](Self::place_straight)) for
    /// this SA and `pkt`'s family, if the SA is one it serves (GCM, no
    /// selectors): `None` leaves the packet, untouched, to the general path.
    #[inline(always)]
    fn place_straight_any<B: PacketBuffer>(
        &self,
        pkt: &mut B,
        seq: u64,
        outer: &Outer,
        aad: &mut [u8; 12],
        slot: &mut Option<Placed>,
    ) -> Option<()> {
        if self.cipher.is_gmac() || !self.cfg.selectors.is_empty() {
            return None;
        }
        // One copy of the straight path per mode and family, so that none
        // carries another's branches.
        const V4: usize = ipv4::HEADER_LEN;
        const V6: usize = ipv6::HEADER_LEN;
        // The first byte, read without forming the packet's slice.
        let v6 = {
            let (memory, start, _) = pkt.room();
            memory.get(*start).is_some_and(|&b| b >> 4 == 6)
        };
        match (self.cfg.mode, v6) {
            (Mode::Transport, false) => self.place_straight::<B, false, V4>(pkt, seq, outer, aad, slot),
            (Mode::Transport, true) => self.place_straight::<B, false, V6>(pkt, seq, outer, aad, slot),
            (Mode::Tunnel { .. }, false) => self.place_straight::<B, true, V4>(pkt, seq, outer, aad, slot),
            (Mode::Tunnel { .. }, true) => self.place_straight::<B, true, V6>(pkt, seq, outer, aad, slot),
        }
    }

    /// [`place`](Self::place) for the most common packets, in one straight
    /// pass: IPv4 without options or IPv6 without extension headers
    /// (`H`, the header's length, says which), carrying TCP or UDP, GCM, no
    /// selectors, with room around it in its buffer, in transport mode or
    /// in a tunnel (IPv4 or IPv6 outside), bare or in NAT-T's UDP (over
    /// IPv6 its checksum, which covers the ciphertext, is filled in after
    /// the batch, as for the general path). It decides from the packet
    /// alone, writes nothing unless it takes the packet, and declines
    /// (`None`) anything else or anything that fails a check, for the
    /// general path to seal or to refuse with the reason. Its checks and
    /// bytes are the general path's (the burst tests compare bursts with
    /// single seals, byte for byte). `TUNNEL` is the SA's mode (a tunnel,
    /// or transport).
    ///
    /// Why a path of its own: the general one carries every mode, family
    /// and encapsulation through a plan and a layout, and for these packets
    /// that plumbing cost more than the checks and writes themselves. Why
    /// one copy per mode and family: a runtime match on the mode cost
    /// transport 50 instructions a packet.
    #[inline(always)]
    fn place_straight<B: PacketBuffer, const TUNNEL: bool, const H: usize>(
        &self,
        pkt: &mut B,
        seq: u64,
        outer: &Outer,
        aad: &mut [u8; 12],
        slot: &mut Option<Placed>,
    ) -> Option<()> {
        const ESP_FIXED: usize = esp::HEADER_LEN + esp::IV_LEN;
        let inner_v4 = match H {
            ipv4::HEADER_LEN => true,
            ipv6::HEADER_LEN => false,
            _ => return None,
        };
        let (memory, start, len) = pkt.room();
        let (at, input_len) = (*start, *len);
        let header = *memory.get(at..)?.first_chunk::<H>()?;
        let inner = if inner_v4 { Inner::v4(header.first_chunk()?)? } else { Inner::v6(header.first_chunk()?)? };
        // The input may hold bytes past the datagram (link-layer padding),
        // never fewer.
        let datagram_len = inner.datagram_len;
        if datagram_len > input_len {
            return None;
        }
        // What goes in front of ESP, and what ESP protects: in transport
        // mode the packet's own header stays in front and the rest is
        // protected; in a tunnel a new header goes in front of the whole
        // packet. IPv4's DF is copied to an IPv4 outer header (`Inner`
        // gives IPv6 none); IPv6 is never fragmented on the way, so the
        // path MTU always applies.
        let (template, front, front_len, outer_v4, protected_at, next_header) = match (TUNNEL, &outer.tunnel) {
            (false, _) if inner_v4 => (None, Front::KeptV4, H, true, H, inner.proto),
            (false, _) => (None, Front::KeptV6 { next_header_at: ipv6::NEXT_HEADER_OFFSET }, H, false, H, inner.proto),
            (true, Some(t)) => {
                let front = Front::New { ds_field: inner.ds_field, dont_frag: inner.dont_frag };
                let carried = if inner_v4 { protocol::IPV4 } else { protocol::IPV6 };
                (Some(t), front, t.len(), t.is_v4(), 0, carried)
            }
            (true, None) => return None,
        };
        let udp_len = outer.udp_len();
        let esp_at = front_len + udp_len;
        let body_at = esp_at + ESP_FIXED;
        let payload_len = datagram_len - protected_at;
        let pad = esp::pad_len(payload_len);
        let body_len = payload_len + pad + esp::TRAILER_LEN;
        let icv_len = self.cipher.icv_len();
        let total = body_at + body_len + icv_len;
        let length16 = u16::try_from(if outer_v4 { total } else { total - ipv6::HEADER_LEN }).ok()?;
        let mtu_applies = !inner_v4 || inner.dont_frag;
        if self.cfg.path_mtu.is_some_and(|mtu| mtu_applies && total > usize::from(mtu)) {
            return None;
        }
        // Where everything goes, found before anything is written.
        let new_start = (at + protected_at).checked_sub(body_at)?;
        let packet = memory.get_mut(new_start..new_start + total)?;
        let (headers, body) = packet.split_at_mut_checked(body_at)?;
        let (ip_and_udp, esp_header) = headers.split_at_mut_checked(esp_at)?;
        let (ip, udp) = ip_and_udp.split_at_mut_checked(front_len)?;
        let esp_header = esp_header.first_chunk_mut::<ESP_FIXED>()?;
        let (payload, behind) = body.split_at_mut_checked(payload_len)?;
        // Padding and trailer (2 to 5 bytes), then ICV space (at least 8):
        // one 8-byte store.
        let trailer = behind.first_chunk_mut::<8>()?;
        // The segment: behind the header, which in transport mode is no
        // longer where the payload is.
        let segment = payload.get(H - protected_at..)?;
        let addresses = if inner_v4 { header.get(12..20)? } else { header.get(8..40)? };
        let pseudo = packet::common_upper(addresses, inner_v4, inner.proto, segment)?;
        if let Some(pseudo) = pseudo.filter(|_| self.cfg.checksums == ChecksumPolicy::Verify)
            && !pseudo.add_u16(checksum::sum(segment)).verifies()
        {
            return None;
        }
        // Every check passed: the packet is written.
        match template {
            None if inner_v4 => {
                *ip.first_chunk_mut::<{ ipv4::HEADER_LEN }>()? =
                    rewrite_v4(*header.first_chunk()?, length16, outer.carried());
            }
            None => {
                let mut kept = *header.first_chunk::<{ ipv6::HEADER_LEN }>()?;
                let [_, _, _, _, len_hi, len_lo, carried, ..] = &mut kept;
                [*len_hi, *len_lo] = length16.to_be_bytes();
                *carried = outer.carried();
                *ip.first_chunk_mut()? = kept;
            }
            Some(t) => {
                if !t.write(ip, length16, inner.ds_field, seq as u16, inner.dont_frag) {
                    return None;
                }
            }
        }
        if let (Some((src_port, dst_port)), Some(place)) = (outer.udp, udp.first_chunk_mut::<{ udp::HEADER_LEN }>()) {
            *place = natt_udp_header(src_port, dst_port, total - front_len);
        }
        *esp_header = EspRepr { spi: self.cfg.spi, sequence: seq as u32 }.with_iv(seq.to_be_bytes());
        *trailer = Trailer::padded8(pad, next_header);
        let aad_len = self.cipher.write_aad(self.cfg.spi, seq, aad);
        *slot = Some(Placed {
            start: new_start,
            datagram_at: at,
            moved_from: None,
            datagram_len,
            protected_at,
            esp_at,
            body_at,
            body_len,
            total,
            v4: outer_v4,
            udp_at: front_len,
            seq,
            aad_len,
            borrowed: None,
            input_len,
            fragment: false,
            front,
            next_header,
        });
        Some(())
    }

    /// [`place`](Self::place) for packets off the fast path.
    #[inline(never)]
    fn place_any<B: PacketBuffer>(
        &self,
        pkt: &mut B,
        seq: u64,
        outer: &Outer,
        aad: &mut [u8; 12],
        slot: &mut Option<Placed>,
    ) -> Result<(), EspError> {
        let parsed = self.plan_any(pkt.data())?;
        let plan = self.layout(parsed, outer)?;
        self.place_planned(pkt, &plan, seq, outer, aad, slot)
    }

    /// [`place`](Self::place) once the packet is planned.
    #[inline(always)]
    fn place_planned<B: PacketBuffer>(
        &self,
        pkt: &mut B,
        plan: &SealPlan,
        seq: u64,
        outer: &Outer,
        aad: &mut [u8; 12],
        slot: &mut Option<Placed>,
    ) -> Result<(), EspError> {
        let input_len = pkt.data().len();
        let (memory, start, _) = pkt.room();
        let in_front = plan.growth_in_front();
        let fits = |at: usize| at >= in_front && at + plan.datagram_len + plan.growth_behind() <= memory.len();
        // Room: headers in front, trailer and ICV behind. A buffer with too
        // little on one side but enough in all has the packet moved within
        // it first (and back, should it then be refused).
        let (datagram_at, moved_from) = if fits(*start) {
            (*start, None)
        } else if fits(in_front) {
            move_bytes(memory, *start, plan.datagram_len, in_front)?;
            (in_front, Some(*start))
        } else {
            return Err(EspError::TooLarge { len: plan.total, max: memory.len() });
        };
        let available = memory.len();
        let Some(datagram) = memory.get(datagram_at..datagram_at + plan.datagram_len) else {
            return Err(short(Header::Esp, datagram_at + plan.datagram_len, available));
        };

        // The upper-layer checksum, summed where the bytes lie, just before
        // they are encrypted there. Nothing writes to them in between: this
        // call holds the buffer (`&mut`) until the batch has encrypted
        // them, and every write before that (the moved header, the new
        // headers, the trailer) lands outside the protected bytes, which
        // the segment lies within. So the bytes summed are the bytes
        // encrypted; a packet whose checksum fails is never encrypted, and
        // its sequence number is left unused.
        if let Some(check) = &plan.check
            && let Err(e) = check.verify(datagram, checksum::sum(datagram.get(check.segment_at..).unwrap_or_default()))
        {
            if let Some(from) = moved_from {
                let _ = move_bytes(memory, datagram_at, plan.datagram_len, from);
            }
            return Err(e);
        }

        // The layout: the kept header moves forward by what goes between
        // it and the protected bytes (read into registers and written at
        // its new place when it has one of the usual lengths), and the rest
        // is written around it.
        let kept = Kept::read(plan, datagram);
        let new_start = datagram_at - in_front;
        if matches!(kept, Kept::InPlace) {
            move_bytes(memory, datagram_at, plan.protected_at, new_start)?;
        }
        let Some(packet) = memory.get_mut(new_start..new_start + plan.total) else {
            return Err(short(Header::Esp, new_start + plan.total, available));
        };
        let (front, rest) = packet.split_at_mut(plan.body_at());
        self.write_front(plan, kept, outer, seq, front)?;
        // The trailer, as one 8-byte store: what follows it up to the 8th
        // byte is ICV space (at least 8 bytes), written after encryption.
        if let Some(place) = rest.get_mut(plan.payload_len()..).and_then(<[u8]>::first_chunk_mut::<8>) {
            *place = Trailer::padded8(plan.pad, plan.next_header);
        }
        let aad_len = self.cipher.write_aad(self.cfg.spi, seq, aad);
        let borrowed = if self.cipher.is_gmac() && self.cipher.esn() {
            borrow_for_esn(front, plan.esp_at(), self.cfg.spi, seq)
        } else {
            None
        };
        *slot = Some(Placed {
            start: new_start,
            datagram_at,
            moved_from,
            datagram_len: plan.datagram_len,
            protected_at: plan.protected_at,
            esp_at: plan.esp_at(),
            body_at: plan.body_at(),
            body_len: plan.body_len(),
            total: plan.total,
            v4: plan.v4,
            udp_at: plan.udp_at(),
            seq,
            aad_len,
            borrowed,
            input_len,
            fragment: plan.fragment,
            front: plan.front,
            next_header: plan.next_header,
        });
        Ok(())
    }

    /// After the batch: the ICV (the tag cut to the SA's length) behind the
    /// ciphertext, the borrowed bytes back (GMAC with ESN), the UDP
    /// checksum over IPv6, and the packet's new place in its buffer. Should
    /// the encryption have failed (it cannot for packets of IP sizes), the
    /// packet is put back as it was.
    #[inline(always)]
    fn finish_placed<B: PacketBuffer>(
        &self,
        pkt: &mut B,
        p: &Placed,
        tag: &[u8; 16],
        sealed: Result<(), crate::Error>,
        outer: &Outer,
    ) -> Result<(), EspError> {
        let (memory, start, len) = pkt.room();
        let available = memory.len();
        let Some(packet) = memory.get_mut(p.start..p.start + p.total) else {
            return Err(short(Header::Esp, p.start + p.total, available));
        };
        if let Some(saved) = p.borrowed {
            give_back(packet, p.esp_at, self.cfg.spi, saved);
        }
        if let Err(e) = sealed {
            // The payload is as it was (a failed call leaves it); the kept
            // header goes back over what was written in front of it, with
            // its own length, protocol and checksum.
            if move_bytes(memory, p.start, p.protected_at, p.datagram_at).is_ok()
                && let Some(header) = memory.get_mut(p.datagram_at..p.datagram_at + p.protected_at)
            {
                restore_kept(header, p.front, p.datagram_len, p.next_header);
            }
            if let Some(from) = p.moved_from {
                let _ = move_bytes(memory, p.datagram_at, p.datagram_len, from);
            }
            return Err(EspError::Crypto(e));
        }
        let icv = packet.get_mut(p.body_at + p.body_len..).unwrap_or_default();
        // Fixed-size copies for the lengths there are (no memcpy call).
        match icv.len() {
            16 => icv.first_chunk_mut::<16>().map(|place| *place = *tag),
            12 => icv.first_chunk_mut::<12>().zip(tag.first_chunk()).map(|(place, t)| *place = *t),
            _ => icv.first_chunk_mut::<8>().zip(tag.first_chunk()).map(|(place, t)| *place = *t),
        };
        self.fill_udp_checksum(outer, p.v4, p.udp_at, packet)?;
        *start = p.start;
        *len = p.total;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::esp::{PacketBuf, SaConfig, small_udp_v4};

    #[test]
    fn a_chunk_refuses_the_packets_past_its_arrays() {
        let input = small_udp_v4();
        let tx = Outbound::new(SaConfig::new(0x6262, &[7u8; 20])).unwrap();
        let mut pkts: Vec<PacketBuf> = (0..6).map(|_| PacketBuf::from_packet(&input)).collect();
        let mut results = vec![Ok(()); 6];
        let mut tally = Counters::default();
        let outer = tx.outer();
        tx.seal_chunk::<PacketBuf, SMALL>(&mut pkts, &mut results, |i| Ok(i as u64 + 1), &outer, &mut tally);
        assert!(results[..SMALL].iter().all(Result::is_ok), "{results:?}");
        assert!(pkts[..SMALL].iter().all(|p| p.data().len() > input.len()), "sealed");
        let refused = Err(EspError::Crypto(crate::Error::TooLong));
        assert_eq!(results[SMALL..], [refused.clone(), refused]);
        assert!(pkts[SMALL..].iter().all(|p| p.data() == input.as_slice()), "never sent as it was");
        assert_eq!(tally.packets, SMALL as u64);
    }

    /// The straight path takes what it is for (the burst tests compare
    /// its bytes with single seals, which a path that declined everything
    /// would pass too): TCP and UDP over IPv4 and IPv6, in transport mode
    /// and tunnels of either family, bare and in NAT-T, checksums verified.
    /// It declines a packet with an extension header, and one past the
    /// path MTU, writing nothing.
    #[test]
    fn the_straight_path_takes_the_common_packets() {
        use crate::esp::{Encap, Mode};
        use espgcm_testkit::packets::{endpoints, packet, pattern, tcp_v6_with_extensions};
        let modes = [None, Some(4), Some(6)].map(|family| {
            family.map_or(Mode::Transport, |f| Mode::Tunnel { src: endpoints(f).0, dst: endpoints(f).1 })
        });
        for (m, mode) in modes.into_iter().enumerate() {
            for encap in [Encap::None, Encap::NAT_T] {
                let cfg =
                    SaConfig { mode, encap, path_mtu: Some(1300), ..SaConfig::new(0x6464, &[0x40 + m as u8; 20]) };
                let tx = Outbound::new(cfg).unwrap();
                let outer = tx.outer();
                let what = format!("{mode:?} {encap:?}");
                for (family, tcp) in [(4, true), (4, false), (6, true), (6, false)] {
                    let input = packet(family, tcp, &pattern(100, 3));
                    let mut pkt = PacketBuf::from_packet(&input);
                    let (mut aad, mut slot) = ([0u8; 12], None);
                    let taken = tx.place_straight_any(&mut pkt, 1, &outer, &mut aad, &mut slot);
                    assert!(taken.is_some() && slot.is_some(), "{what}: IPv{family} tcp {tcp}");
                }
                let v6 = |s: &str| s.parse().unwrap();
                let declined = [
                    tcp_v6_with_extensions(v6("2001:db8::1"), v6("2001:db8::2"), &pattern(40, 1)),
                    packet(6, true, &pattern(1300, 2)),
                ];
                for input in declined {
                    let mut pkt = PacketBuf::from_packet(&input);
                    let mut before = pkt.clone();
                    let (mut aad, mut slot) = ([0u8; 12], None);
                    let taken = tx.place_straight_any(&mut pkt, 1, &outer, &mut aad, &mut slot);
                    assert!(taken.is_none() && slot.is_none(), "{what}");
                    let everything = |p: &mut PacketBuf| {
                        let (memory, start, len) = p.room();
                        (memory.to_vec(), *start, *len)
                    };
                    assert!(everything(&mut pkt) == everything(&mut before), "{what}: declined, nothing written");
                }
            }
        }
    }

    /// A placed packet whose encryption fails (no IP packet is long enough
    /// for GCM to refuse it, so the failure is handed in) comes back byte
    /// for byte as it was given: the kept header with its own length,
    /// protocol or next header and checksum, in the buffer where it was.
    #[test]
    fn a_packet_whose_encryption_fails_is_put_back_as_it_came() {
        use crate::esp::{Encap, Mode, PacketSlice};
        use espgcm_testkit::packets::{endpoints, tcp_v6_with_extensions, udp_v6};
        let v6 = |s: &str| s.parse().unwrap();
        let cases: [(&str, Mode, Encap, Vec<u8>); 5] = [
            ("transport, IPv4", Mode::Transport, Encap::None, small_udp_v4()),
            ("transport, IPv4, NAT-T", Mode::Transport, Encap::NAT_T, small_udp_v4()),
            ("transport, IPv6", Mode::Transport, Encap::None, udp_v6(v6("2001:db8::1"), v6("2001:db8::2"), b"data")),
            (
                "transport, IPv6 with extension headers",
                Mode::Transport,
                Encap::None,
                tcp_v6_with_extensions(v6("2001:db8::1"), v6("2001:db8::2"), b"some data"),
            ),
            ("tunnel", Mode::Tunnel { src: endpoints(4).0, dst: endpoints(4).1 }, Encap::None, small_udp_v4()),
        ];
        for (i, (name, mode, encap, input)) in cases.into_iter().enumerate() {
            let cfg = SaConfig { mode, encap, ..SaConfig::new(0x6363, &[0x90 + i as u8; 20]) };
            let tx = Outbound::new(cfg).unwrap();
            // With room in front, and without (the packet moves for it).
            // Tunnel mode with room writes nothing over the packet.
            let transport = matches!(mode, Mode::Transport);
            let roomy = &mut PacketBuf::from_packet(&input);
            put_back_after_failure(&tx, roomy, &input, transport, &format!("{name}, room in front"));
            let mut memory = input.clone();
            memory.resize(input.len() + 200, 0);
            let mut tight = PacketSlice::new(&mut memory, 0, input.len()).unwrap();
            put_back_after_failure(&tx, &mut tight, &input, true, &format!("{name}, no room in front"));
        }
    }

    fn put_back_after_failure<B: PacketBuffer>(tx: &Outbound, pkt: &mut B, input: &[u8], touched: bool, what: &str) {
        let outer = tx.outer();
        let (mut aad, mut slot) = ([0u8; 12], None);
        tx.place(pkt, 1, &outer, &mut aad, &mut slot).unwrap();
        let placed = slot.unwrap();
        if touched {
            assert_ne!(pkt.data(), input, "{what}: the headers were written");
        }
        let refused = tx.finish_placed(pkt, &placed, &[0; 16], Err(crate::Error::TooLong), &outer);
        assert_eq!(refused, Err(EspError::Crypto(crate::Error::TooLong)), "{what}");
        assert_eq!(pkt.data(), input, "{what}: the packet as it came");
    }
}
