//! An outbound SA's outer endpoints (tunnel addresses, UDP ports), which a
//! key manager can change while threads seal: the peer's NAT mapping moved
//! (RFC 3948), or MOBIKE moved the tunnel, and the SA, its sequence numbers
//! and its key stay as they are.
//!
//! The packet path reads them with plain loads and no lock: while they were
//! never changed, one load of the generation (0) says "as configured";
//! after a change, the current values are read from one of two slots,
//! each guarded by its own sequence count. A change writes the slot not in
//! use and then switches to it, so a reader is never made to wait for a
//! writer; it retries only if two changes land while it reads.

use super::{Encap, Mode};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::sync::{Mutex, PoisonError};

/// Where an outbound SA sends from and to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Endpoints {
    pub mode: Mode,
    pub encap: Encap,
}

/// Five words: flags and ports, then the source and destination address.
type Words = [u64; 5];

const TUNNEL: u64 = 1;
const UDP: u64 = 2;
const SRC_V6: u64 = 4;
const DST_V6: u64 = 8;

fn address_words(addr: IpAddr) -> (u64, u64, u64) {
    match addr {
        IpAddr::V4(v4) => (u64::from(u32::from(v4)), 0, 0),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            ((bits >> 64) as u64, bits as u64, 1)
        }
    }
}

fn address(high: u64, low: u64, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::from(std::net::Ipv6Addr::from((u128::from(high) << 64) | u128::from(low)))
    } else {
        IpAddr::from(std::net::Ipv4Addr::from(high as u32))
    }
}

fn encode(e: Endpoints) -> Words {
    let mut flags = 0;
    let (mut src, mut dst) = ((0, 0), (0, 0));
    if let Mode::Tunnel { src: s, dst: d } = e.mode {
        let (sh, sl, s6) = address_words(s);
        let (dh, dl, d6) = address_words(d);
        flags |= TUNNEL | if s6 == 1 { SRC_V6 } else { 0 } | if d6 == 1 { DST_V6 } else { 0 };
        (src, dst) = ((sh, sl), (dh, dl));
    }
    if let Encap::Udp { src_port, dst_port } = e.encap {
        flags |= UDP | (u64::from(src_port) << 16) | (u64::from(dst_port) << 32);
    }
    [flags, src.0, src.1, dst.0, dst.1]
}

fn decode([flags, sh, sl, dh, dl]: Words) -> Endpoints {
    let mode = if flags & TUNNEL != 0 {
        Mode::Tunnel { src: address(sh, sl, flags & SRC_V6 != 0), dst: address(dh, dl, flags & DST_V6 != 0) }
    } else {
        Mode::Transport
    };
    let encap = if flags & UDP != 0 {
        Encap::Udp { src_port: (flags >> 16) as u16, dst_port: (flags >> 32) as u16 }
    } else {
        Encap::None
    };
    Endpoints { mode, encap }
}

/// One slot: a sequence count (odd while being written) and the values.
#[derive(Debug, Default)]
struct Slot {
    seq: AtomicU64,
    words: [AtomicU64; 5],
}

/// The swappable endpoints of one outbound SA.
#[derive(Debug, Default)]
pub(crate) struct EndpointCell {
    /// How many changes were made; slot `generation % 2` holds the current
    /// values when it is not 0.
    generation: AtomicU64,
    slots: [Slot; 2],
    /// Changes one at a time.
    writer: Mutex<()>,
}

impl EndpointCell {
    /// The endpoints now: `configured` until the first change.
    #[inline]
    pub(crate) fn load(&self, configured: Endpoints) -> Endpoints {
        let generation = self.generation.load(Ordering::Acquire);
        if generation == 0 { configured } else { self.load_changed(generation) }
    }

    /// The endpoints now if they were ever changed, `None` while they are
    /// as configured (one load).
    #[inline]
    pub(crate) fn changed(&self) -> Option<Endpoints> {
        let generation = self.generation.load(Ordering::Acquire);
        if generation == 0 { None } else { Some(self.load_changed(generation)) }
    }

    #[cold]
    fn load_changed(&self, mut generation: u64) -> Endpoints {
        loop {
            let Some(slot) = self.slots.get((generation % 2) as usize) else { return decode([0; 5]) };
            let before = slot.seq.load(Ordering::Acquire);
            if before.is_multiple_of(2) {
                let words = slot.words.each_ref().map(|w| w.load(Ordering::Relaxed));
                fence(Ordering::Acquire);
                if slot.seq.load(Ordering::Relaxed) == before {
                    return decode(words);
                }
            }
            // Two changes landed while this read: take the newest.
            core::hint::spin_loop();
            generation = self.generation.load(Ordering::Acquire);
        }
    }

    /// Make `endpoints` the current ones.
    pub(crate) fn store(&self, endpoints: Endpoints) {
        let _one_writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let next = self.generation.load(Ordering::Relaxed) + 1;
        let Some(slot) = self.slots.get((next % 2) as usize) else { return };
        let seq = slot.seq.load(Ordering::Relaxed);
        slot.seq.store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        for (word, value) in slot.words.iter().zip(encode(endpoints)) {
            word.store(value, Ordering::Relaxed);
        }
        slot.seq.store(seq + 2, Ordering::Release);
        self.generation.store(next, Ordering::Release);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn tunnel(src: &str, dst: &str, port: u16) -> Endpoints {
        Endpoints {
            mode: Mode::Tunnel { src: src.parse().unwrap(), dst: dst.parse().unwrap() },
            encap: Encap::Udp { src_port: 4500, dst_port: port },
        }
    }

    #[test]
    fn endpoints_survive_encoding() {
        for e in [
            tunnel("192.0.2.1", "198.51.100.2", 4500),
            tunnel("2001:db8::1", "2001:db8:ffff::2", 61_000),
            Endpoints { mode: Mode::Transport, encap: Encap::None },
            Endpoints { mode: Mode::Transport, encap: Encap::Udp { src_port: 1, dst_port: 65535 } },
        ] {
            assert_eq!(decode(encode(e)), e);
        }
    }

    #[test]
    fn readers_see_the_configured_then_each_whole_change() {
        let configured = tunnel("192.0.2.1", "198.51.100.2", 4500);
        let cell = Arc::new(EndpointCell::default());
        assert_eq!(cell.load(configured), configured);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (cell, stop) = (cell.clone(), stop.clone());
                std::thread::spawn(move || {
                    let mut seen = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let e = cell.load(configured);
                        // Every value written pairs port p with address 10.0.(p >> 8).(p & 255).
                        if let (Mode::Tunnel { dst, .. }, Encap::Udp { dst_port, .. }) = (e.mode, e.encap)
                            && dst_port != 4500
                        {
                            let expected: IpAddr =
                                format!("10.0.{}.{}", dst_port >> 8, dst_port & 255).parse().unwrap();
                            assert_eq!(dst, expected, "a torn read");
                            seen += 1;
                        }
                    }
                    seen
                })
            })
            .collect();
        for port in 5000u16..25_000 {
            let dst = format!("10.0.{}.{}", port >> 8, port & 255);
            cell.store(tunnel("192.0.2.1", &dst, port));
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(cell.load(configured), tunnel("192.0.2.1", "10.0.97.167", 24_999));
    }
}
