//! What each worker has done, kept by the worker itself as it works, and
//! read by the supervisor and the control socket.
//!
//! The 2015 incident ended with a dead worker hidden behind a live
//! heartbeat. So nothing here is a heartbeat: a worker's health is judged
//! from the packets it handled (its progress counter and when it last
//! moved), whether it still runs, and whether input is waiting for it (the
//! supervisor polls the worker's own TUN queue and sockets). A worker whose
//! queue holds packets while its progress counter stands still is stalled,
//! however alive its thread looks.
//!
//! Every counter has one writer (its worker), so the worker updates them
//! with relaxed stores of values it tallied locally over a whole batch: no
//! lock and no shared cache line on the packet path.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::Instant;

/// Nanoseconds since the process's first call, on the monotonic clock.
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Packets the tunnel itself turned away (before or after the ESP engine
/// saw them), by reason. The engine's own rejections are counted per SA
/// (`espgcm::esp::Counters`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunnelDrops {
    /// An outbound packet no policy covers (RFC 4301: discard).
    pub no_policy: u64,
    /// An outbound packet a `discard` policy covers.
    pub policy_discard: u64,
    /// An outbound packet a `bypass` policy covers: it came from the TUN
    /// device, so there is no clear path to send it on; route such traffic
    /// around the tunnel.
    pub policy_bypass: u64,
    /// An outbound packet the SA refused because its sequence numbers are
    /// not yet reserved on disk (the reservation writer is behind).
    pub sequence_reservation: u64,
    /// An outbound packet whose outer headers a socket cannot carry (IPv6
    /// extension headers in front of ESP).
    pub unsendable: u64,
    /// Packets the kernel refused to send (see `last_errno`).
    pub send_failed: u64,
    /// A received ESP packet whose SPI (and addresses) no inbound SA has.
    pub no_sa: u64,
    /// A received datagram that is not ESP (bad outer header, a NAT-T
    /// keepalive or an IKE message: there is no IKE daemon here).
    pub not_esp: u64,
    /// Decrypted packets the TUN device refused.
    pub tun_write_failed: u64,
    /// Packets the TUN device handed over that were not IP.
    pub tun_malformed: u64,
}

impl TunnelDrops {
    /// Every counter with its name, for the status report.
    pub fn named(&self) -> [(&'static str, u64); 10] {
        [
            ("no_policy", self.no_policy),
            ("policy_discard", self.policy_discard),
            ("policy_bypass", self.policy_bypass),
            ("sequence_reservation", self.sequence_reservation),
            ("unsendable", self.unsendable),
            ("send_failed", self.send_failed),
            ("no_sa", self.no_sa),
            ("not_esp", self.not_esp),
            ("tun_write_failed", self.tun_write_failed),
            ("tun_malformed", self.tun_malformed),
        ]
    }

    fn fields(&self) -> [u64; 10] {
        self.named().map(|(_, v)| v)
    }
}

/// A worker's batch tally, added to its [`WorkerStats`] once per batch.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    /// Packets read from the TUN device.
    pub tun_in: u64,
    /// Packets sealed.
    pub sealed: u64,
    /// Bytes of inner packets sealed.
    pub sealed_bytes: u64,
    /// ESP packets handed to the kernel.
    pub wire_out: u64,
    /// Datagrams (or raw ESP packets) read from the sockets.
    pub wire_in: u64,
    /// Packets opened.
    pub opened: u64,
    /// Bytes of inner packets delivered.
    pub opened_bytes: u64,
    /// Packets written to the TUN device.
    pub tun_out: u64,
    /// Packets the engine refused (either way).
    pub rejected: u64,
    /// Time in `seal_burst` calls.
    pub seal_ns: u64,
    /// Time in `open_burst` calls.
    pub open_ns: u64,
    /// Send/receive system calls made.
    pub syscalls: u64,
    /// Time in TUN reads (with offloads, splitting the segment too).
    pub tun_read_ns: u64,
    /// Time in TUN writes (with offloads, coalescing too; the kernel's own
    /// receive processing of what is written runs in the same call).
    pub tun_write_ns: u64,
    /// Time in socket receives.
    pub sock_recv_ns: u64,
    /// Time in socket sends (the kernel's sending, and often the peer's
    /// receiving on a veth, runs in the same call).
    pub sock_send_ns: u64,
    /// The tunnel's own drops.
    pub drops: TunnelDrops,
}

impl Tally {
    /// Packets that moved: the progress a health check looks for.
    pub fn handled(&self) -> u64 {
        self.tun_in + self.wire_in
    }
}

/// One worker's counters and state, shared with the supervisor.
#[derive(Debug)]
pub struct WorkerStats {
    /// The worker's number (its TUN queue and socket).
    pub id: usize,
    tun_in: AtomicU64,
    sealed: AtomicU64,
    sealed_bytes: AtomicU64,
    wire_out: AtomicU64,
    wire_in: AtomicU64,
    opened: AtomicU64,
    opened_bytes: AtomicU64,
    tun_out: AtomicU64,
    rejected: AtomicU64,
    seal_ns: AtomicU64,
    open_ns: AtomicU64,
    busy_ns: AtomicU64,
    syscalls: AtomicU64,
    io_ns: [AtomicU64; 4],
    drops: [AtomicU64; 10],
    io_errors: AtomicU64,
    last_errno: AtomicI32,
    /// Packets handled in total: what "progress" means.
    progress: AtomicU64,
    /// When `progress` last moved ([`now_ns`]).
    last_progress_ns: AtomicU64,
    /// The worker's thread runs (false once it returned or panicked).
    alive: AtomicBool,
    /// Times the supervisor started this worker again.
    pub restarts: AtomicU64,
    /// The generation of the thread that owns this worker's queues now: a
    /// thread that finds a newer one (it was restarted while stalled) stops.
    pub generation: AtomicU64,
    /// Test hook: stop making progress (the stall a health check must see).
    pub stall_requested: AtomicBool,
    /// Test hook: panic at the next batch.
    pub panic_requested: AtomicBool,
    exit: std::sync::Mutex<Option<String>>,
}

/// A plain copy of a worker's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkerSnapshot {
    /// The worker's number.
    pub id: usize,
    /// Whether its thread runs.
    pub alive: bool,
    /// Packets read from the TUN device.
    pub tun_in: u64,
    /// Packets sealed.
    pub sealed: u64,
    /// Bytes of inner packets sealed.
    pub sealed_bytes: u64,
    /// ESP packets handed to the kernel.
    pub wire_out: u64,
    /// Packets read from the sockets.
    pub wire_in: u64,
    /// Packets opened.
    pub opened: u64,
    /// Bytes of inner packets delivered.
    pub opened_bytes: u64,
    /// Packets written to the TUN device.
    pub tun_out: u64,
    /// Packets the engine refused.
    pub rejected: u64,
    /// Nanoseconds in seal calls.
    pub seal_ns: u64,
    /// Nanoseconds in open calls.
    pub open_ns: u64,
    /// Nanoseconds spent working (not waiting in `poll`).
    pub busy_ns: u64,
    /// Send and receive system calls.
    pub syscalls: u64,
    /// Nanoseconds in TUN reads, TUN writes, socket receives and socket
    /// sends.
    pub io_ns: [u64; 4],
    /// The tunnel's own drops.
    pub drops: TunnelDrops,
    /// I/O errors seen.
    pub io_errors: u64,
    /// The last I/O error's errno (0: none).
    pub last_errno: i32,
    /// Packets handled in total.
    pub progress: u64,
    /// When progress last moved ([`now_ns`]).
    pub last_progress_ns: u64,
    /// Restarts so far.
    pub restarts: u64,
    /// Why the thread ended, if it did.
    pub exit: Option<String>,
}

impl WorkerStats {
    /// Counters for worker `id`, all zero.
    pub fn new(id: usize) -> WorkerStats {
        WorkerStats {
            id,
            tun_in: AtomicU64::new(0),
            sealed: AtomicU64::new(0),
            sealed_bytes: AtomicU64::new(0),
            wire_out: AtomicU64::new(0),
            wire_in: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            opened_bytes: AtomicU64::new(0),
            tun_out: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            seal_ns: AtomicU64::new(0),
            open_ns: AtomicU64::new(0),
            busy_ns: AtomicU64::new(0),
            syscalls: AtomicU64::new(0),
            io_ns: Default::default(),
            drops: Default::default(),
            io_errors: AtomicU64::new(0),
            last_errno: AtomicI32::new(0),
            progress: AtomicU64::new(0),
            last_progress_ns: AtomicU64::new(now_ns()),
            alive: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            stall_requested: AtomicBool::new(false),
            panic_requested: AtomicBool::new(false),
            exit: std::sync::Mutex::new(None),
        }
    }

    /// Add a batch's tally (called by the worker only, so a load and a
    /// store per counter suffice) and the time the batch took.
    pub fn add(&self, t: &Tally, busy_ns: u64) {
        let bump = |c: &AtomicU64, v: u64| {
            if v != 0 {
                c.store(c.load(Ordering::Relaxed).wrapping_add(v), Ordering::Relaxed);
            }
        };
        bump(&self.tun_in, t.tun_in);
        bump(&self.sealed, t.sealed);
        bump(&self.sealed_bytes, t.sealed_bytes);
        bump(&self.wire_out, t.wire_out);
        bump(&self.wire_in, t.wire_in);
        bump(&self.opened, t.opened);
        bump(&self.opened_bytes, t.opened_bytes);
        bump(&self.tun_out, t.tun_out);
        bump(&self.rejected, t.rejected);
        bump(&self.seal_ns, t.seal_ns);
        bump(&self.open_ns, t.open_ns);
        bump(&self.busy_ns, busy_ns);
        bump(&self.syscalls, t.syscalls);
        for (c, v) in self.io_ns.iter().zip([t.tun_read_ns, t.tun_write_ns, t.sock_recv_ns, t.sock_send_ns]) {
            bump(c, v);
        }
        for (c, v) in self.drops.iter().zip(t.drops.fields()) {
            bump(c, v);
        }
        let handled = t.handled();
        if handled != 0 {
            bump(&self.progress, handled);
            self.last_progress_ns.store(now_ns(), Ordering::Relaxed);
        }
    }

    /// Record an I/O error (its errno, or -1 without one).
    pub fn io_error(&self, e: &std::io::Error) {
        self.io_errors.fetch_add(1, Ordering::Relaxed);
        self.last_errno.store(e.raw_os_error().unwrap_or(-1), Ordering::Relaxed);
    }

    /// The worker's thread started.
    pub fn started(&self) {
        self.alive.store(true, Ordering::Release);
        self.last_progress_ns.store(now_ns(), Ordering::Relaxed);
    }

    /// The worker's thread ended, and why.
    pub fn ended(&self, why: String) {
        if let Ok(mut exit) = self.exit.lock() {
            *exit = Some(why);
        }
        self.alive.store(false, Ordering::Release);
    }

    /// Whether the thread runs.
    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    /// Packets handled so far and when that count last moved.
    pub fn progress(&self) -> (u64, u64) {
        (self.progress.load(Ordering::Relaxed), self.last_progress_ns.load(Ordering::Relaxed))
    }

    /// A copy of everything.
    pub fn snapshot(&self) -> WorkerSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let d: [u64; 10] = core::array::from_fn(|i| self.drops.get(i).map_or(0, get));
        WorkerSnapshot {
            id: self.id,
            alive: self.is_alive(),
            tun_in: get(&self.tun_in),
            sealed: get(&self.sealed),
            sealed_bytes: get(&self.sealed_bytes),
            wire_out: get(&self.wire_out),
            wire_in: get(&self.wire_in),
            opened: get(&self.opened),
            opened_bytes: get(&self.opened_bytes),
            tun_out: get(&self.tun_out),
            rejected: get(&self.rejected),
            seal_ns: get(&self.seal_ns),
            open_ns: get(&self.open_ns),
            busy_ns: get(&self.busy_ns),
            syscalls: get(&self.syscalls),
            io_ns: core::array::from_fn(|i| self.io_ns.get(i).map_or(0, get)),
            drops: TunnelDrops {
                no_policy: d[0],
                policy_discard: d[1],
                policy_bypass: d[2],
                sequence_reservation: d[3],
                unsendable: d[4],
                send_failed: d[5],
                no_sa: d[6],
                not_esp: d[7],
                tun_write_failed: d[8],
                tun_malformed: d[9],
            },
            io_errors: get(&self.io_errors),
            last_errno: self.last_errno.load(Ordering::Relaxed),
            progress: get(&self.progress),
            last_progress_ns: get(&self.last_progress_ns),
            restarts: get(&self.restarts),
            exit: self.exit.lock().ok().and_then(|e| e.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_moves_progress_and_its_time() {
        let w = WorkerStats::new(3);
        let before = w.progress();
        let mut t = Tally { tun_in: 5, wire_in: 2, sealed: 5, ..Tally::default() };
        t.drops.no_sa = 1;
        w.add(&t, 1000);
        let (progress, at) = w.progress();
        assert_eq!(progress, 7);
        assert!(at >= before.1);
        let s = w.snapshot();
        assert_eq!((s.id, s.sealed, s.busy_ns, s.drops.no_sa), (3, 5, 1000, 1));
        // A batch that moved nothing leaves the progress time alone.
        w.add(&Tally::default(), 10);
        assert_eq!(w.progress(), (7, at));
    }

    #[test]
    fn the_end_of_a_thread_is_recorded_with_its_reason() {
        let w = WorkerStats::new(0);
        w.started();
        assert!(w.is_alive());
        w.ended("panicked: test".into());
        assert!(!w.is_alive());
        assert_eq!(w.snapshot().exit.as_deref(), Some("panicked: test"));
    }
}
