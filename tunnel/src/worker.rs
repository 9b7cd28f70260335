//! One worker: a TUN queue and its own sockets, both directions, in
//! batches.
//!
//! Out (TUN → wire): read a batch from the worker's TUN queue (with
//! offloads, one read brings a TCP segment of up to 64 KiB, split into
//! MTU-sized packets), look each packet up in the SPD, seal runs of packets
//! for one SA as a burst where they lie, and hand the ESP to the sockets:
//! runs of equal-sized datagrams to one peer go out as one UDP GSO send.
//!
//! In (wire → TUN): read a batch of datagrams (`recvmmsg`, GRO), put the
//! outer headers back in front of each ESP packet, find each one's SA, open
//! runs of packets for one SA as a burst, and write what opened to the TUN
//! queue (with offloads, consecutive segments of a TCP flow coalesced into
//! one write).
//!
//! The packet path takes no lock: the SA table is read through its
//! read-copy-update snapshot, SAs are shared `Arc`s whose sequence numbers
//! and replay windows are atomic, and each worker's counters are its own.

use crate::frame::Frame;
use crate::outer::{self, Carrier};
use crate::ports::{RawEsp, UdpPort};
use crate::stats::{Tally, WorkerStats};
use espgcm::esp::{Action, EspError, HEADROOM, Inbound, Outbound, SaTable, TAILROOM};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tun_rs::{GROTable, SyncDevice, VIRTIO_NET_HDR_LEN};

/// Packets read from the TUN device per batch without offloads (one read
/// each).
const TUN_BATCH: usize = 64;
/// Frames for the outgoing direction: a read with offloads may split one
/// 64 KiB segment into up to 128 packets, so reads continue only while
/// that many frames are free.
const TX_FRAMES: usize = 192;
const OFFLOAD_READ_ROOM: usize = 128;
/// Datagram buffers per `recvmmsg`.
const RX_BUFS: usize = 32;
/// Frames for the incoming direction (GRO may bring up to 64 datagrams per
/// buffer; when the frames run out, those gathered are opened and written,
/// and the rest follow).
const RX_FRAMES: usize = 128;
/// How long a worker waits in `poll` before it looks at its flags again.
const POLL_MS: u16 = 100;

/// The file descriptors a worker owns: its TUN queue and sockets. Shared
/// with the supervisor, which polls them to see whether input waits.
pub struct Queues {
    /// This worker's TUN queue.
    pub tun: SyncDevice,
    /// UDP sockets on the NAT-T port (IPv4, IPv6 or both).
    pub udp: Vec<UdpPort>,
    /// Raw ESP sockets (IPv4, IPv6 or both).
    pub raw: Vec<RawEsp>,
    /// Whether this worker receives on its raw sockets (one worker does).
    pub raw_receives: bool,
}

impl std::fmt::Debug for Queues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queues")
            .field("tun", &self.tun.as_fd())
            .field("udp", &self.udp)
            .field("raw", &self.raw)
            .field("raw_receives", &self.raw_receives)
            .finish()
    }
}

impl Queues {
    /// Whether input is waiting on any of this worker's descriptors (a
    /// zero-timeout poll): the supervisor's half of a stall judgment.
    pub fn input_waiting(&self) -> bool {
        let mut fds = self.poll_fds();
        poll(&mut fds, PollTimeout::ZERO).is_ok_and(|n| n > 0)
    }

    fn poll_fds(&self) -> Vec<PollFd<'_>> {
        let mut fds = vec![PollFd::new(self.tun.as_fd(), PollFlags::POLLIN)];
        fds.extend(self.udp.iter().map(|u| PollFd::new(u.as_fd(), PollFlags::POLLIN)));
        if self.raw_receives {
            fds.extend(self.raw.iter().map(|r| PollFd::new(r.as_fd(), PollFlags::POLLIN)));
        }
        fds
    }
}

/// What every worker shares.
#[derive(Debug)]
pub struct Shared {
    /// The SAD and SPD.
    pub table: Arc<SaTable>,
    /// Set on SIGINT/SIGTERM or a fatal condition: finish the batch and stop.
    pub shutdown: Arc<AtomicBool>,
    /// Called when an SA refused packets for want of reserved sequence
    /// numbers, so that the reservation writer runs at once.
    pub wake_reserver: Bell,
    /// TUN offloads are on (the TUN device's reads and writes carry a
    /// virtio header).
    pub offload: bool,
    /// TUN MTU.
    pub mtu: usize,
    /// The NAT-T port the sockets are bound to.
    pub nat_t_port: u16,
}

/// A callback that wakes another thread.
pub struct Bell(pub Box<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for Bell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Bell")
    }
}

/// Whether an SA refused a packet because its sequence numbers are not yet
/// reserved on disk (and the packet should be counted as waiting for the
/// reservation writer, not as an engine rejection).
fn waits_for_reservation(e: &EspError) -> bool {
    crate::reserve::is_limit_error(e)
}

/// Where a received packet came from: the addresses and ports to rebuild
/// its outer headers with.
#[derive(Clone, Copy)]
struct Origin {
    src: IpAddr,
    dst: IpAddr,
    ports: Option<(u16, u16)>,
}

/// One worker's buffers and state.
pub struct Worker {
    id: usize,
    queues: Arc<Queues>,
    shared: Arc<Shared>,
    stats: Arc<WorkerStats>,
    generation: u64,
    frame_len: usize,
    tx: Vec<Frame>,
    tx_sizes: Vec<usize>,
    tun_read_buf: Vec<u8>,
    sealed_ok: Vec<bool>,
    results: Vec<Result<(), EspError>>,
    gso: Vec<u8>,
    rx_bufs: Vec<Vec<u8>>,
    meta: Vec<quinn_udp::RecvMeta>,
    rx: Vec<Frame>,
    opened_ok: Vec<bool>,
    gro: GROTable,
}

impl Worker {
    /// A worker on `queues`, started as thread generation `generation`.
    pub fn new(
        id: usize,
        queues: Arc<Queues>,
        shared: Arc<Shared>,
        stats: Arc<WorkerStats>,
        generation: u64,
    ) -> Worker {
        // Outer headers, ESP header, IV, padding and ICV fit in the
        // engine's headroom and tailroom; received datagrams are ESP plus
        // at most the 73 bytes of overhead.
        let frame_len = HEADROOM + shared.mtu + 128 + TAILROOM;
        let gro = queues.udp.iter().map(UdpPort::gro_segments).max().unwrap_or(1);
        let rx_buf_len = if gro > 1 { 65_535 } else { shared.mtu + 256 };
        Worker {
            id,
            frame_len,
            tx: (0..TX_FRAMES).map(|_| Frame::new(frame_len)).collect(),
            tx_sizes: vec![0; TX_FRAMES],
            tun_read_buf: vec![0; VIRTIO_NET_HDR_LEN + 65_535],
            sealed_ok: vec![false; TX_FRAMES],
            results: vec![Ok(()); RX_FRAMES.max(TX_FRAMES)],
            gso: Vec::with_capacity(65_536),
            rx_bufs: (0..RX_BUFS).map(|_| vec![0; rx_buf_len]).collect(),
            meta: vec![quinn_udp::RecvMeta::default(); RX_BUFS],
            // With offloads, a received frame may become the head of a
            // coalesced 64 KiB TCP segment (see `Frame::with_reserve`).
            rx: (0..RX_FRAMES)
                .map(|_| {
                    if shared.offload {
                        Frame::with_reserve(frame_len, HEADROOM + 65_535 + 64)
                    } else {
                        Frame::new(frame_len)
                    }
                })
                .collect(),
            opened_ok: vec![false; RX_FRAMES],
            gro: GROTable::default(),
            queues,
            shared,
            stats,
            generation,
        }
    }

    /// Run until shutdown (or until a newer generation of this worker took
    /// over its queues). An error return is fatal for this worker.
    ///
    /// # Errors
    /// The TUN device went away (`EBADFD`) or polling failed.
    pub fn run(&mut self) -> io::Result<()> {
        self.stats.started();
        let queues = self.queues.clone();
        loop {
            if self.shared.shutdown.load(Ordering::Relaxed)
                || self.stats.generation.load(Ordering::Relaxed) != self.generation
            {
                return Ok(());
            }
            self.test_hooks();
            let started = Instant::now();
            let mut tally = Tally::default();
            let mut work = self.tun_to_wire(&mut tally)?;
            for port in &queues.udp {
                work += self.udp_to_tun(port, &mut tally);
            }
            if queues.raw_receives {
                for raw in &queues.raw {
                    work += self.raw_to_tun(raw, &mut tally);
                }
            }
            let busy = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.stats.add(&tally, busy);
            if work == 0 {
                let mut fds = queues.poll_fds();
                match poll(&mut fds, PollTimeout::from(POLL_MS)) {
                    Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }

    /// The stall and panic a test asks for (through the control socket, in
    /// builds with the `fault-injection` feature) to prove that the health
    /// check sees a worker stop.
    fn test_hooks(&self) {
        if self.stats.panic_requested.swap(false, Ordering::Relaxed) {
            #[allow(clippy::panic)]
            {
                panic!("worker {} stopped on request (test hook)", self.id);
            }
        }
        while self.stats.stall_requested.load(Ordering::Relaxed)
            && !self.shared.shutdown.load(Ordering::Relaxed)
            && self.stats.generation.load(Ordering::Relaxed) == self.generation
        {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Read a batch from the TUN queue, seal it and send it. Returns the
    /// packets read.
    fn tun_to_wire(&mut self, tally: &mut Tally) -> io::Result<usize> {
        let offload = self.shared.offload;
        let mut n = 0;
        loop {
            let free = TX_FRAMES - n;
            if (offload && free < OFFLOAD_READ_ROOM) || (!offload && n >= TUN_BATCH) {
                break;
            }
            let (Some(frames), Some(sizes)) = (self.tx.get_mut(n..), self.tx_sizes.get_mut(n..)) else {
                break;
            };
            let t = Instant::now();
            let read = self.queues.tun.recv_multiple(&mut self.tun_read_buf, frames, sizes, HEADROOM);
            tally.tun_read_ns += elapsed_ns(t);
            tally.syscalls += 1;
            match read {
                Ok(k) => {
                    for (frame, size) in frames.iter_mut().zip(sizes.iter()).take(k) {
                        frame.set_packet(HEADROOM, *size);
                    }
                    n += k;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(nix::libc::EBADFD) => return Err(e),
                Err(e) => {
                    // A superpacket the offload splitter refused: count it
                    // and go on with the next read.
                    self.stats.io_error(&e);
                    tally.drops.tun_malformed += 1;
                }
            }
        }
        if n == 0 {
            return Ok(0);
        }
        tally.tun_in += n as u64;

        // The SPD decides each packet's fate: one snapshot of the tables for
        // the batch, so the lookups touch no lock and no reference count.
        let table = self.shared.table.clone();
        let snapshot = table.snapshot();
        let mut sas: Vec<Option<&Arc<Outbound>>> = Vec::with_capacity(n);
        for frame in self.tx.iter().take(n) {
            sas.push(match snapshot.outbound_for(frame.packet()) {
                Ok(Some(Action::Protect(sa))) => Some(sa),
                Ok(Some(Action::Discard)) => {
                    tally.drops.policy_discard += 1;
                    None
                }
                Ok(Some(Action::Bypass)) => {
                    tally.drops.policy_bypass += 1;
                    None
                }
                Ok(None) => {
                    tally.drops.no_policy += 1;
                    None
                }
                Err(_) => {
                    tally.drops.tun_malformed += 1;
                    None
                }
            });
        }

        // Seal each run of packets for one SA as a burst.
        let t = Instant::now();
        let mut i = 0;
        let mut wake = false;
        while i < n {
            let Some(sa) = sas.get(i).copied().flatten() else {
                if let Some(ok) = self.sealed_ok.get_mut(i) {
                    *ok = false;
                }
                i += 1;
                continue;
            };
            let mut j = i + 1;
            while j < n && sas.get(j).copied().flatten().is_some_and(|s| Arc::ptr_eq(s, sa)) {
                j += 1;
            }
            if let (Some(frames), Some(results), Some(oks)) =
                (self.tx.get_mut(i..j), self.results.get_mut(i..j), self.sealed_ok.get_mut(i..j))
            {
                sa.seal_burst_in(frames, results);
                for ((result, ok), frame) in results.iter().zip(oks.iter_mut()).zip(frames.iter()) {
                    *ok = result.is_ok();
                    match result {
                        Ok(()) => {
                            tally.sealed += 1;
                            tally.sealed_bytes += frame.len() as u64;
                        }
                        Err(e) if waits_for_reservation(e) => {
                            tally.drops.sequence_reservation += 1;
                            wake = true;
                        }
                        Err(_) => tally.rejected += 1,
                    }
                }
            }
            i = j;
        }
        tally.seal_ns += elapsed_ns(t);
        if wake {
            (self.shared.wake_reserver.0)();
        }
        self.send_sealed(n, tally);
        Ok(n)
    }

    /// Hand the sealed packets among the first `n` frames to the sockets.
    fn send_sealed(&mut self, n: usize, tally: &mut Tally) {
        let queues = &*self.queues;
        let stats = &*self.stats;
        let gso = &mut self.gso;
        let mut run = GsoRun::default();
        for (frame, ok) in self.tx.iter().zip(&self.sealed_ok).take(n) {
            if !ok {
                continue;
            }
            let packet = frame.packet();
            let Ok(target) = outer::wire_target(packet) else {
                tally.drops.unsendable += 1;
                continue;
            };
            let payload = packet.get(target.payload_offset..).unwrap_or_default();
            match target.carrier {
                Carrier::Raw => {
                    let Some(sock) = queues.raw.iter().find(|r| r.is_v4() == target.dst.is_ipv4()) else {
                        tally.drops.unsendable += 1;
                        continue;
                    };
                    let t = Instant::now();
                    let sent = sock.send(payload, target.dst.ip());
                    tally.sock_send_ns += elapsed_ns(t);
                    tally.syscalls += 1;
                    match sent {
                        Ok(_) => tally.wire_out += 1,
                        Err(e) => {
                            stats.io_error(&e);
                            tally.drops.send_failed += 1;
                        }
                    }
                }
                Carrier::Udp => {
                    let key = (target.dst, target.src, target.ecn);
                    let max_segments = queues
                        .udp
                        .iter()
                        .find(|u| u.is_v4() == target.dst.is_ipv4())
                        .map_or(1, UdpPort::max_gso_segments);
                    if !run.takes(key, payload.len(), gso.len(), max_segments) {
                        flush(queues, stats, gso, &mut run, tally);
                        run.start(key, payload.len());
                    }
                    gso.extend_from_slice(payload);
                    run.count += 1;
                    if run.closed {
                        flush(queues, stats, gso, &mut run, tally);
                    }
                }
            }
        }
        flush(queues, stats, gso, &mut run, tally);
    }

    /// Read a batch of datagrams from a UDP socket, open them and deliver
    /// them. Returns the datagrams read.
    fn udp_to_tun(&mut self, port: &UdpPort, tally: &mut Tally) -> usize {
        let got = {
            // On the stack: this runs every loop iteration, idle ones too.
            let mut bufs = self.rx_bufs.iter_mut();
            let mut iovs: [IoSliceMut<'_>; RX_BUFS] =
                std::array::from_fn(|_| IoSliceMut::new(bufs.next().map(Vec::as_mut_slice).unwrap_or_default()));
            let t = Instant::now();
            let r = port.recv(&mut iovs, &mut self.meta);
            tally.sock_recv_ns += elapsed_ns(t);
            tally.syscalls += 1;
            match r {
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return 0,
                Err(e) => {
                    self.stats.io_error(&e);
                    return 0;
                }
            }
        };
        let local_port = self.shared.nat_t_port;
        let mut m = 0;
        let mut segments = 0u64;
        for k in 0..got {
            let Some(meta) = self.meta.get(k).copied() else { break };
            let stride = meta.stride.max(1);
            let mut offset = 0;
            while offset < meta.len {
                if m == RX_FRAMES {
                    // GRO brought more datagrams than there are frames:
                    // open what is gathered, then go on.
                    self.open_and_deliver(m, tally);
                    m = 0;
                }
                let end = (offset + stride).min(meta.len);
                let segment = self.rx_bufs.get(k).and_then(|b| b.get(offset..end)).unwrap_or_default();
                offset = end;
                segments += 1;
                let Some(frame) = self.rx.get_mut(m) else { break };
                frame.reset(self.frame_len);
                let src = outer::unmap(meta.addr.ip());
                let Some(dst) = meta.dst_ip.map(outer::unmap) else {
                    tally.drops.not_esp += 1;
                    continue;
                };
                let origin = Origin { src, dst, ports: Some((meta.addr.port(), local_port)) };
                if frame.fill(HEADROOM, segment) && rebuild(frame, origin) {
                    m += 1;
                } else {
                    tally.drops.not_esp += 1;
                }
            }
        }
        tally.wire_in += segments;
        self.open_and_deliver(m, tally);
        got
    }

    /// Read raw ESP packets (this worker is the one that receives them).
    fn raw_to_tun(&mut self, raw: &RawEsp, tally: &mut Tally) -> usize {
        let mut m = 0;
        while m < RX_BUFS {
            let Some(frame) = self.rx.get_mut(m) else { break };
            frame.reset(self.frame_len);
            let t = Instant::now();
            let r = raw.recv(frame.tail_mut(HEADROOM));
            tally.sock_recv_ns += elapsed_ns(t);
            tally.syscalls += 1;
            match r {
                Ok((len, None)) => {
                    // IPv4: the kernel handed over the whole packet.
                    if frame.set_packet(HEADROOM, len) {
                        m += 1;
                    }
                }
                Ok((len, Some((src, dst)))) => {
                    if frame.set_packet(HEADROOM, len) && rebuild(frame, Origin { src, dst, ports: None }) {
                        m += 1;
                    } else {
                        tally.drops.not_esp += 1;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.stats.io_error(&e);
                    break;
                }
            }
        }
        tally.wire_in += m as u64;
        self.open_and_deliver(m, tally);
        m
    }

    /// Open the first `m` received frames and write what opened to the TUN
    /// queue.
    fn open_and_deliver(&mut self, m: usize, tally: &mut Tally) {
        if m == 0 {
            return;
        }
        let table = self.shared.table.clone();
        let snapshot = table.snapshot();
        let mut sas: Vec<Option<&Arc<Inbound>>> = Vec::with_capacity(m);
        for frame in self.rx.iter().take(m) {
            sas.push(match snapshot.inbound_for(frame.packet()) {
                Ok(sa) => Some(sa),
                Err(EspError::NoSa { .. }) => {
                    tally.drops.no_sa += 1;
                    None
                }
                Err(_) => {
                    tally.drops.not_esp += 1;
                    None
                }
            });
        }
        let t = Instant::now();
        let mut i = 0;
        while i < m {
            let Some(sa) = sas.get(i).copied().flatten() else {
                if let Some(ok) = self.opened_ok.get_mut(i) {
                    *ok = false;
                }
                i += 1;
                continue;
            };
            let mut j = i + 1;
            while j < m && sas.get(j).copied().flatten().is_some_and(|s| Arc::ptr_eq(s, sa)) {
                j += 1;
            }
            if let (Some(frames), Some(results), Some(oks)) =
                (self.rx.get_mut(i..j), self.results.get_mut(i..j), self.opened_ok.get_mut(i..j))
            {
                sa.open_burst_in(frames, results);
                for ((result, ok), frame) in results.iter().zip(oks.iter_mut()).zip(frames.iter()) {
                    *ok = result.is_ok();
                    match result {
                        Ok(()) => {
                            tally.opened += 1;
                            tally.opened_bytes += frame.len() as u64;
                        }
                        Err(_) => tally.rejected += 1,
                    }
                }
            }
            i = j;
        }
        tally.open_ns += elapsed_ns(t);
        drop(sas);
        drop(snapshot);

        // Bring the opened packets to the front (swapping frames swaps
        // pointers, not bytes) and write them.
        let mut k = 0;
        for i in 0..m {
            if self.opened_ok.get(i).copied().unwrap_or(false) {
                self.rx.swap(i, k);
                k += 1;
            }
        }
        let offset = if self.shared.offload { VIRTIO_NET_HDR_LEN } else { 0 };
        let mut ready = 0;
        for i in 0..k {
            let fits = self.rx.get_mut(i).is_some_and(|f| f.place_for_tun(offset));
            if fits {
                self.rx.swap(i, ready);
                ready += 1;
            } else {
                tally.drops.tun_write_failed += 1;
            }
        }
        if let Some(frames) = self.rx.get_mut(..ready) {
            let t = Instant::now();
            let written = self.queues.tun.send_multiple(&mut self.gro, frames, offset);
            tally.tun_write_ns += elapsed_ns(t);
            tally.syscalls += 1;
            match written {
                Ok(_) => tally.tun_out += ready as u64,
                Err(e) => {
                    self.stats.io_error(&e);
                    tally.drops.tun_write_failed += 1;
                }
            }
        }
        for frame in self.rx.iter_mut().take(m) {
            frame.reset(self.frame_len);
        }
    }
}

/// Send the datagrams gathered in the GSO buffer as one run.
fn flush(queues: &Queues, stats: &WorkerStats, gso: &mut Vec<u8>, run: &mut GsoRun, tally: &mut Tally) {
    let (key, count, segment) = (run.key, run.count, run.segment);
    *run = GsoRun::default();
    let (Some((dst, src, ecn)), true) = (key, count > 0) else {
        gso.clear();
        return;
    };
    let Some(port) = queues.udp.iter().find(|u| u.is_v4() == dst.is_ipv4()) else {
        tally.drops.unsendable += count;
        gso.clear();
        return;
    };
    let transmit = quinn_udp::Transmit {
        destination: dst,
        ecn: quinn_udp::EcnCodepoint::from_bits(ecn),
        contents: gso,
        segment_size: (count > 1).then_some(segment),
        src_ip: Some(src),
    };
    let t = Instant::now();
    let mut result = port.send(&transmit);
    tally.syscalls += 1;
    // A full socket buffer: wait for room briefly rather than drop a whole
    // run (TCP inside would take it as congestion).
    for _ in 0..50 {
        match &result {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut fds = [PollFd::new(port.as_fd(), PollFlags::POLLOUT)];
                let _ = poll(&mut fds, PollTimeout::from(10u16));
                result = port.send(&transmit);
                tally.syscalls += 1;
            }
            _ => break,
        }
    }
    tally.sock_send_ns += elapsed_ns(t);
    match result {
        Ok(()) => tally.wire_out += count,
        Err(e) => {
            stats.io_error(&e);
            tally.drops.send_failed += count;
        }
    }
    gso.clear();
}

/// Put the outer headers back in front of a received ESP packet.
fn rebuild(frame: &mut Frame, origin: Origin) -> bool {
    outer::rebuild(frame, origin.src, origin.dst, origin.ports)
}

fn elapsed_ns(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Datagrams gathered for one GSO send: one destination, one source, one
/// ECN value, equal sizes (the last one may be shorter, and ends the run).
#[derive(Default)]
struct GsoRun {
    key: Option<(SocketAddr, IpAddr, u8)>,
    segment: usize,
    count: u64,
    /// A shorter datagram ended the run.
    closed: bool,
}

impl GsoRun {
    /// Most bytes one GSO send carries (the kernel's limit is 64 KiB of UDP
    /// payload).
    const MAX_BYTES: usize = 65_000;

    /// Whether a datagram of `len` bytes to `key` can join (and marks the
    /// run closed if it is a shorter last one).
    fn takes(&mut self, key: (SocketAddr, IpAddr, u8), len: usize, gathered: usize, max_segments: usize) -> bool {
        if self.key != Some(key)
            || self.closed
            || len > self.segment
            || self.count as usize >= max_segments
            || gathered + len > Self::MAX_BYTES
        {
            return false;
        }
        if len < self.segment {
            self.closed = true;
        }
        true
    }

    fn start(&mut self, key: (SocketAddr, IpAddr, u8), len: usize) {
        *self = GsoRun { key: Some(key), segment: len, count: 0, closed: false };
    }
}

/// Run a worker on its own thread until shutdown; the thread's end (a
/// return or a panic) is recorded in its stats for the supervisor.
pub fn spawn(
    id: usize,
    queues: Arc<Queues>,
    shared: Arc<Shared>,
    stats: Arc<WorkerStats>,
) -> io::Result<std::thread::JoinHandle<()>> {
    let generation = stats.generation.load(Ordering::Relaxed);
    std::thread::Builder::new().name(format!("espgcm-w{id}")).spawn(move || {
        struct Ended(Arc<WorkerStats>, Option<String>);
        impl Drop for Ended {
            fn drop(&mut self) {
                let why = if std::thread::panicking() {
                    "panicked (see the log)".to_string()
                } else {
                    self.1.take().unwrap_or_else(|| "returned".to_string())
                };
                self.0.ended(why);
            }
        }
        let mut guard = Ended(stats.clone(), None);
        let mut worker = Worker::new(id, queues, shared, stats, generation);
        guard.1 = Some(match worker.run() {
            Ok(()) => "stopped".to_string(),
            Err(e) => format!("failed: {e}"),
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gso_run_takes_equal_sizes_and_a_shorter_last_one() {
        let key = ("192.0.2.1:4500".parse().expect("a"), "192.0.2.2".parse().expect("a"), 0);
        let mut run = GsoRun::default();
        assert!(!run.takes(key, 100, 0, 64), "no run yet");
        run.start(key, 100);
        run.count = 1;
        assert!(run.takes(key, 100, 100, 64));
        run.count = 2;
        assert!(!run.takes(key, 101, 200, 64), "longer than the segment");
        let other = ("192.0.2.9:4500".parse().expect("a"), key.1, 0);
        assert!(!run.takes(other, 100, 200, 64), "another destination");
        assert!(!run.takes(key, 100, 200, 2), "segment limit");
        assert!(run.takes(key, 60, 200, 64));
        assert!(run.closed);
        run.count = 3;
        assert!(!run.takes(key, 60, 260, 64), "nothing after a shorter one");
    }
}
