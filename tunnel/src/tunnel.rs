//! `espgcm-tunnel run`: set everything up, run the workers, watch them, and
//! take everything down again.

use crate::control::{self, Sources, Verdict};
use crate::ports::{RawEsp, SocketOptions, UdpPort};
use crate::reserve::Reserver;
use crate::sas::SaSet;
use crate::settings::Settings;
use crate::stats::{WorkerStats, now_ns};
use crate::worker::{self, Queues, Shared};
use crate::{device, privileges, sas, seqstate, settings};
use espgcm::esp::{Outbound, SaEvent};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Exit status: stopped by a signal, cleanly.
pub const EXIT_OK: i32 = 0;
/// Exit status: something failed while running or setting up.
pub const EXIT_FAILED: i32 = 1;
/// Exit status: the configuration (or the command line) is wrong.
pub const EXIT_CONFIG: i32 = 2;
/// Exit status: a worker died or stalled (and `restart_workers` is off).
pub const EXIT_UNHEALTHY: i32 = 3;
/// Exit status: missing privileges (CAP_NET_ADMIN, CAP_NET_RAW).
pub const EXIT_PRIVILEGES: i32 = 4;

/// How long an unhealthy tunnel keeps answering on its control socket (so
/// that a health check sees the verdict) before it exits.
const UNHEALTHY_LINGER: Duration = Duration::from_millis(1500);

/// What `run` was asked to do.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The configuration file.
    pub config: PathBuf,
    /// Every key without a sequence record is new (never sent a packet).
    pub new_keys: bool,
}

struct Failure {
    code: i32,
    message: String,
}

fn fail(code: i32) -> impl FnOnce(String) -> Failure {
    move |message| Failure { code, message }
}

/// Run the tunnel until a signal stops it (or a worker fails it). Returns
/// the exit status; errors are printed to stderr.
pub fn run(opts: &RunOptions) -> i32 {
    match run_checked(opts) {
        Ok(code) => code,
        Err(f) => {
            eprintln!("espgcm-tunnel: {}", f.message);
            f.code
        }
    }
}

fn run_checked(opts: &RunOptions) -> Result<i32, Failure> {
    let settings = settings::load(&opts.config).map_err(fail(EXIT_CONFIG))?;
    let set = sas::load(&opts.config, &settings).map_err(fail(EXIT_CONFIG))?;
    privileges::check(set.needs_raw()).map_err(fail(EXIT_PRIVILEGES))?;

    // Sequence numbers first: nothing is sealed before its number is on disk.
    let _state_lock = seqstate::lock(&settings.state_file).map_err(fail(EXIT_FAILED))?;
    let state = seqstate::StateFile::load(&settings.state_file, opts.new_keys).map_err(fail(EXIT_CONFIG))?;
    let reservable: Vec<(Arc<Outbound>, u32, String)> =
        set.outbound.iter().map(|o| (o.sa.clone(), o.sa.config().spi, o.key_id.clone())).collect();
    let reserver = Arc::new(
        Reserver::start(state, reservable, settings.sequence_block, opts.new_keys).map_err(fail(EXIT_CONFIG))?,
    );

    let listener = control::bind(&settings.control_socket).map_err(fail(EXIT_FAILED))?;
    let started = Instant::now();
    let result = serve(&settings, &set, reserver, listener, started);
    control::remove(&settings.control_socket);
    result
}

/// Open one worker's sockets.
fn open_sockets(settings: &Settings, set: &SaSet, id: usize) -> Result<(Vec<UdpPort>, Vec<RawEsp>), Failure> {
    let o = SocketOptions {
        device: settings.underlay_device.clone(),
        mark: settings.fwmark,
        buffer: settings.socket_buffer,
    };
    let mut udp = Vec::new();
    let mut raw = Vec::new();
    if set.needs_udp() {
        udp.push(
            UdpPort::open(true, settings.nat_t_port, &o)
                .map_err(|e| Failure { code: EXIT_FAILED, message: format!("worker {id}: IPv4 UDP socket: {e}") })?,
        );
        // IPv6 may be off on the host: then only IPv4 peers are reached,
        // unless an SA needs IPv6.
        match UdpPort::open(false, settings.nat_t_port, &o) {
            Ok(p) => udp.push(p),
            Err(e) if set.needs_v6_outer() => {
                return Err(Failure { code: EXIT_FAILED, message: format!("worker {id}: IPv6 UDP socket: {e}") });
            }
            Err(_) => {}
        }
    }
    if set.needs_raw() {
        let receive = id == 0;
        raw.push(
            RawEsp::open(true, receive, &o)
                .map_err(|e| Failure { code: EXIT_FAILED, message: format!("worker {id}: raw ESP socket: {e}") })?,
        );
        match RawEsp::open(false, receive, &o) {
            Ok(r) => raw.push(r),
            Err(e) if set.needs_v6_outer() => {
                return Err(Failure { code: EXIT_FAILED, message: format!("worker {id}: raw ESP socket (IPv6): {e}") });
            }
            Err(_) => {}
        }
    }
    Ok((udp, raw))
}

fn serve(
    settings: &Settings,
    set: &SaSet,
    reserver: Arc<Reserver<Outbound>>,
    listener: std::os::unix::net::UnixListener,
    started: Instant,
) -> Result<i32, Failure> {
    let tun_queues = device::create(settings).map_err(|e| Failure { code: EXIT_FAILED, message: e.to_string() })?;
    device::add_routes(&settings.device, &settings.routes)
        .map_err(|e| Failure { code: EXIT_FAILED, message: e.to_string() })?;
    if let Some(path) = &settings.wireshark_keys {
        sas::write_private(path, &set.wireshark).map_err(fail(EXIT_FAILED))?;
    }

    if set.needs_udp() {
        for v4 in [true, false] {
            match crate::ports::check_udp_port_free(v4, settings.nat_t_port) {
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    return Err(Failure { code: EXIT_FAILED, message: e.to_string() });
                }
                // Another error (no IPv6 here, say) shows when the workers' sockets bind.
                _ => {}
            }
        }
    }
    let mut queues = Vec::new();
    for (id, tun) in tun_queues.into_iter().enumerate() {
        let (udp, raw) = open_sockets(settings, set, id)?;
        queues.push(Arc::new(Queues { tun, udp, raw, raw_receives: id == 0 }));
    }

    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, shutdown.clone())
            .map_err(|e| Failure { code: EXIT_FAILED, message: format!("installing signal handlers: {e}") })?;
    }
    let reserver_for_workers = reserver.clone();
    let shared = Arc::new(Shared {
        table: set.table.clone(),
        shutdown: shutdown.clone(),
        wake_reserver: worker::Bell(Box::new(move || reserver_for_workers.wake())),
        offload: settings.offload,
        mtu: usize::from(settings.mtu),
        nat_t_port: settings.nat_t_port,
    });
    let stats: Vec<Arc<WorkerStats>> = (0..queues.len()).map(|i| Arc::new(WorkerStats::new(i))).collect();
    let sources = Arc::new(Sources {
        device: settings.device.clone(),
        started,
        workers: stats.clone(),
        queues: queues.clone(),
        outbound: set.outbound.iter().map(|o| o.sa.clone()).collect(),
        inbound: set.inbound.clone(),
        verdict: Mutex::new(Verdict { healthy: true, ..Verdict::default() }),
        events: Mutex::new(Vec::new()),
    });

    // Threads that are not workers stop on their own flags, after the
    // workers (the reservation writer must outlive every sealing thread).
    let helpers_stop = Arc::new(AtomicBool::new(false));
    let reserver_stop = Arc::new(AtomicBool::new(false));
    let reserver_thread = {
        let r = reserver.clone();
        let stop = reserver_stop.clone();
        std::thread::Builder::new()
            .name("espgcm-seq".into())
            .spawn(move || r.run(&stop))
            .map_err(|e| Failure { code: EXIT_FAILED, message: format!("starting the reservation writer: {e}") })?
    };
    let control_thread = {
        let s = sources.clone();
        let stop = helpers_stop.clone();
        std::thread::Builder::new()
            .name("espgcm-ctl".into())
            .spawn(move || control::serve(listener, s, stop))
            .map_err(|e| Failure { code: EXIT_FAILED, message: format!("starting the control socket: {e}") })?
    };

    let mut handles: Vec<Option<JoinHandle<()>>> = Vec::new();
    for (i, q) in queues.iter().enumerate() {
        let s = stats.get(i).cloned().unwrap_or_else(|| Arc::new(WorkerStats::new(i)));
        let h = worker::spawn(i, q.clone(), shared.clone(), s)
            .map_err(|e| Failure { code: EXIT_FAILED, message: format!("starting worker {i}: {e}") })?;
        handles.push(Some(h));
    }
    eprintln!("espgcm-tunnel: {}", set.describe(settings, &queues));

    let code = supervise(settings, &sources, &queues, &shared, &stats, &mut handles, &reserver);

    shutdown.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut all_joined = true;
    for h in handles.iter_mut() {
        if let Some(handle) = h.take() {
            while !handle.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if handle.is_finished() {
                let _ = handle.join();
            } else {
                all_joined = false;
            }
        }
    }
    // The writer stops first, so that it cannot write a block ahead over
    // the exact numbers. Only when no worker can seal any more is the exact
    // next number safe to record; otherwise the block-ahead reservation
    // stays on disk.
    reserver_stop.store(true, Ordering::Relaxed);
    let _ = reserver_thread.join();
    let recorded = if all_joined { reserver.finish() } else { Ok(()) };
    helpers_stop.store(true, Ordering::Relaxed);
    let _ = control_thread.join();
    let summary = summarize(&stats);
    eprintln!("espgcm-tunnel: {} stopped: {summary}", settings.device);
    if let Err(e) = recorded {
        eprintln!("espgcm-tunnel: could not record the final sequence numbers ({e}); the reservations stand");
    }
    Ok(code)
}

/// Watch the workers every 100 ms until a signal (exit 0) or an unhealthy
/// worker that is not restarted (exit 3, after a short linger so that a
/// health check sees the verdict).
fn supervise(
    settings: &Settings,
    sources: &Sources,
    queues: &[Arc<Queues>],
    shared: &Arc<Shared>,
    stats: &[Arc<WorkerStats>],
    handles: &mut [Option<JoinHandle<()>>],
    reserver: &Reserver<Outbound>,
) -> i32 {
    let stall_ns = settings.stall_timeout_ms.saturating_mul(1_000_000);
    let mut unhealthy_since: Option<Instant> = None;
    // SAs stopped by a hard lifetime: they refuse every packet until re-keyed.
    let mut expired: Vec<String> = Vec::new();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if shared.shutdown.load(Ordering::Relaxed) {
            return EXIT_OK;
        }
        let now = now_ns();
        let mut problems = Vec::new();
        let mut fatal = false;
        let mut input_waiting = Vec::new();
        for (i, (w, q)) in stats.iter().zip(queues).enumerate() {
            let waiting = q.input_waiting();
            input_waiting.push(waiting);
            let dead = !w.is_alive();
            let (_, last) = w.progress();
            let stalled = !dead && waiting && now.saturating_sub(last) > stall_ns;
            if !dead && !stalled {
                continue;
            }
            let what = if dead {
                let why = w.snapshot().exit.unwrap_or_else(|| "ended".into());
                format!("worker {i} is not running ({why})")
            } else {
                format!(
                    "worker {i} stalled: input is waiting on its queue and it has made no progress for {} ms",
                    now.saturating_sub(last) / 1_000_000
                )
            };
            if settings.restart_workers {
                eprintln!("espgcm-tunnel: {what}; restarting it");
                w.generation.fetch_add(1, Ordering::Relaxed);
                w.restarts.fetch_add(1, Ordering::Relaxed);
                w.stall_requested.store(false, Ordering::Relaxed);
                if let Some(slot) = handles.get_mut(i) {
                    if let Some(old) = slot.take()
                        && old.is_finished()
                    {
                        let _ = old.join();
                    }
                    match worker::spawn(i, q.clone(), shared.clone(), w.clone()) {
                        Ok(h) => *slot = Some(h),
                        Err(e) => {
                            problems.push(format!("{what}; restarting it failed: {e}"));
                            fatal = true;
                        }
                    }
                }
            } else {
                problems.push(what);
                fatal = true;
            }
        }
        for event in shared.table.poll() {
            let line = match &event {
                SaEvent::SoftLifetime { key, which } => {
                    format!("SA {key}: soft lifetime ({which}) reached: re-key it soon")
                }
                SaEvent::HardLifetime { key, which } => {
                    let what = format!("SA {key}: hard lifetime ({which}) reached: it refuses every packet; re-key it");
                    expired.push(what.clone());
                    what
                }
                SaEvent::Retired { key } => format!("SA {key}: retired"),
            };
            eprintln!("espgcm-tunnel: {line}");
            if let Ok(mut events) = sources.events.lock() {
                events.push(line);
                let excess = events.len().saturating_sub(32);
                events.drain(..excess);
            }
        }
        problems.extend(expired.iter().cloned());
        if let Some(e) = reserver.failure() {
            problems.push(format!("sequence reservations cannot be recorded ({e}); SAs stop at their limits"));
        }
        let h = espgcm::health();
        if !h.is_healthy() {
            problems.push(format!("AES-GCM: {h}"));
        }
        let healthy = problems.is_empty();
        if let Ok(mut v) = sources.verdict.lock() {
            *v = Verdict { healthy, problems: problems.clone(), input_waiting };
        }
        if fatal {
            let since = *unhealthy_since.get_or_insert_with(|| {
                for p in &problems {
                    eprintln!("espgcm-tunnel: unhealthy: {p}");
                }
                Instant::now()
            });
            if since.elapsed() >= UNHEALTHY_LINGER {
                eprintln!("espgcm-tunnel: exiting (restart_workers = false)");
                return EXIT_UNHEALTHY;
            }
        }
    }
}

fn summarize(stats: &[Arc<WorkerStats>]) -> String {
    let mut sealed = 0;
    let mut opened = 0;
    let mut rejected = 0;
    for s in stats {
        let s = s.snapshot();
        sealed += s.sealed;
        opened += s.opened;
        rejected += s.rejected;
    }
    format!("{sealed} packets sealed, {opened} opened, {rejected} refused by ESP")
}
