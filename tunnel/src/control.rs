//! The control socket: a Unix stream socket on which the running tunnel
//! answers one request per connection with one JSON document.
//!
//! Requests are one line: `status` (everything the tunnel knows about its
//! workers, SAs and rejections, and its health verdict). Builds with the
//! `fault-injection` feature also take the test commands `stall WORKER`,
//! `panic WORKER`, `inject ONE_IN_BLOCKS` and `clear`, with which the tests
//! stop a worker or corrupt AES-GCM keystream on purpose.

use crate::stats::{WorkerStats, now_ns};
use crate::worker::Queues;
use espgcm::esp::{Counters, Inbound, Mode, Outbound, SaConfig};
use serde_json::{Map, Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The supervisor's verdict, published for the control socket.
#[derive(Clone, Debug, Default)]
pub struct Verdict {
    /// Every worker runs and progresses when it has input, and AES-GCM has
    /// shown no fault.
    pub healthy: bool,
    /// What is wrong, one sentence each.
    pub problems: Vec<String>,
    /// Per worker: whether input was waiting at the last look.
    pub input_waiting: Vec<bool>,
}

/// Everything the status report is made from.
pub struct Sources {
    /// TUN device name.
    pub device: String,
    /// When the tunnel started.
    pub started: Instant,
    /// Per-worker counters.
    pub workers: Vec<Arc<WorkerStats>>,
    /// Per-worker queues (for the test commands' reach, and polled by the
    /// supervisor).
    pub queues: Vec<Arc<Queues>>,
    /// Outbound SAs.
    pub outbound: Vec<Arc<Outbound>>,
    /// Inbound SAs.
    pub inbound: Vec<Arc<Inbound>>,
    /// The supervisor's verdict.
    pub verdict: Mutex<Verdict>,
    /// The latest SA events (lifetimes crossed), newest last.
    pub events: Mutex<Vec<String>>,
}

/// The counters of an SA direction, by name.
pub fn counters_json(c: &Counters) -> Map<String, Value> {
    let fields: [(&str, u64); 25] = [
        ("packets", c.packets),
        ("bytes", c.bytes),
        ("truncated", c.truncated),
        ("malformed", c.malformed),
        ("fragments", c.fragments),
        ("unknown_spi", c.unknown_spi),
        ("replayed", c.replayed),
        ("too_old", c.too_old),
        ("auth_failed", c.auth_failed),
        ("bad_padding", c.bad_padding),
        ("checksum_before_encrypt", c.checksum_before_encrypt),
        ("checksum_after_decrypt", c.checksum_after_decrypt),
        ("unexpected_next_header", c.unexpected_next_header),
        ("sequence_exhausted", c.sequence_exhausted),
        ("dummies", c.dummies),
        ("keepalives", c.keepalives),
        ("non_esp", c.non_esp),
        ("unsupported", c.unsupported),
        ("too_large", c.too_large),
        ("too_big_for_path", c.too_big_for_path),
        ("not_covered", c.not_covered),
        ("unverifiable_fragments", c.unverifiable_fragments),
        ("other", c.other),
        ("sequence_limit", c.sequence_limit),
        ("lifetime_expired", c.lifetime_expired),
    ];
    fields.iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect()
}

/// Counters that are outcomes, not rejections.
const NOT_REJECTIONS: [&str; 6] = ["packets", "bytes", "dummies", "keepalives", "non_esp", "unverifiable_fragments"];

fn describe_sa(cfg: &SaConfig) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("spi".into(), json!(format!("{:#010x}", cfg.spi)));
    match cfg.mode {
        Mode::Tunnel { src, dst } => {
            m.insert("mode".into(), json!("tunnel"));
            m.insert("outer".into(), json!([src.to_string(), dst.to_string()]));
        }
        _ => {
            m.insert("mode".into(), json!("transport"));
        }
    }
    let encap = match cfg.encap {
        espgcm::esp::Encap::Udp { src_port, dst_port } => json!({ "udp": [src_port, dst_port] }),
        _ => json!("none"),
    };
    m.insert("encap".into(), encap);
    m
}

impl Sources {
    /// The status report.
    pub fn status(&self) -> Value {
        let verdict = self.verdict.lock().map(|v| v.clone()).unwrap_or_default();
        let now = now_ns();
        let workers: Vec<Value> = self
            .workers
            .iter()
            .map(|w| {
                let s = w.snapshot();
                let waiting = verdict.input_waiting.get(s.id).copied().unwrap_or(false);
                json!({
                    "id": s.id,
                    "alive": s.alive,
                    "progress": s.progress,
                    "ms_since_progress": now.saturating_sub(s.last_progress_ns) / 1_000_000,
                    "input_waiting": waiting,
                    "tun_in": s.tun_in,
                    "sealed": s.sealed,
                    "wire_out": s.wire_out,
                    "wire_in": s.wire_in,
                    "opened": s.opened,
                    "tun_out": s.tun_out,
                    "rejected": s.rejected,
                    "sealed_bytes": s.sealed_bytes,
                    "opened_bytes": s.opened_bytes,
                    "seal_ns": s.seal_ns,
                    "open_ns": s.open_ns,
                    "tun_read_ns": s.io_ns[0],
                    "tun_write_ns": s.io_ns[1],
                    "sock_recv_ns": s.io_ns[2],
                    "sock_send_ns": s.io_ns[3],
                    "busy_ns": s.busy_ns,
                    "syscalls": s.syscalls,
                    "io_errors": s.io_errors,
                    "last_errno": s.last_errno,
                    "restarts": s.restarts,
                    "exit": s.exit,
                    "drops": s.drops.named().iter().map(|(k, v)| ((*k).to_string(), json!(v))).collect::<Map<_, _>>(),
                })
            })
            .collect();

        let mut rejections: Map<String, Value> = Map::new();
        let mut add = |k: &str, v: u64| {
            let total = rejections.get(k).and_then(Value::as_u64).unwrap_or(0) + v;
            rejections.insert(k.to_string(), json!(total));
        };
        for w in &self.workers {
            for (k, v) in w.snapshot().drops.named() {
                add(k, v);
            }
        }
        let mut sas = Vec::new();
        for sa in &self.outbound {
            let mut m = describe_sa(sa.config());
            m.insert("direction".into(), json!("out"));
            m.insert("backend".into(), json!(sa.backend().name()));
            m.insert("next_sequence".into(), json!(sa.next_sequence()));
            m.insert("sequence_limit".into(), json!(sa.sequence_limit()));
            let c = counters_json(&sa.stats());
            for (k, v) in &c {
                if !NOT_REJECTIONS.contains(&k.as_str()) {
                    add(k, v.as_u64().unwrap_or(0));
                }
            }
            m.insert("counters".into(), Value::Object(c));
            sas.push(Value::Object(m));
        }
        for sa in &self.inbound {
            let mut m = describe_sa(sa.config());
            m.insert("direction".into(), json!("in"));
            m.insert("backend".into(), json!(sa.backend().name()));
            m.insert("highest_sequence".into(), json!(sa.replay_window().top()));
            let c = counters_json(&sa.stats());
            for (k, v) in &c {
                if !NOT_REJECTIONS.contains(&k.as_str()) {
                    add(k, v.as_u64().unwrap_or(0));
                }
            }
            m.insert("counters".into(), Value::Object(c));
            sas.push(Value::Object(m));
        }
        let h = espgcm::health();
        json!({
            "device": self.device,
            "pid": std::process::id(),
            "uptime_ms": u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "healthy": verdict.healthy,
            "problems": verdict.problems,
            "workers": workers,
            "sas": sas,
            "rejections": rejections,
            "events": self.events.lock().map(|e| e.clone()).unwrap_or_default(),
            "crypto": {
                "verified_blocks": h.verified_blocks,
                "verified_messages": h.verified_messages,
                "faults": h.faults,
                "quarantined": h.quarantined.iter().map(|b| b.name()).collect::<Vec<_>>(),
                "last_fault": h.last_fault.map(|f| f.to_string()),
            },
        })
    }
}

/// Bind the control socket at `path` (only root may connect: mode 0600).
/// A socket file left by a process that is gone is replaced; one that
/// answers belongs to a running tunnel, and binding is refused.
///
/// # Errors
/// A message saying what is in the way.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the control socket's folder {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "another espgcm-tunnel answers on {}; stop it first, or give this one another control_socket",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove the stale control socket {}: {e}", path.display()))?;
    }
    let listener =
        UnixListener::bind(path).map_err(|e| format!("cannot bind the control socket {}: {e}", path.display()))?;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    listener.set_nonblocking(true).map_err(|e| format!("control socket: {e}"))?;
    Ok(listener)
}

/// Answer requests until `shutdown` is set.
pub fn serve(listener: UnixListener, sources: Arc<Sources>, shutdown: Arc<AtomicBool>) {
    while !shutdown.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nonblocking(false);
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                answer(stream, &sources);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn answer(stream: UnixStream, sources: &Sources) {
    let mut line = String::new();
    let mut reader = BufReader::new(&stream);
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    let reply = match words.as_slice() {
        ["status"] => sources.status(),
        other => test_command(other, sources),
    };
    let mut out = &stream;
    let _ = writeln!(out, "{reply}");
}

#[cfg(feature = "fault-injection")]
fn test_command(words: &[&str], sources: &Sources) -> Value {
    let worker = |w: &str| w.parse::<usize>().ok().and_then(|i| sources.workers.get(i));
    match words {
        ["stall", w] => match worker(w) {
            Some(s) => {
                s.stall_requested.store(true, Ordering::Relaxed);
                json!({ "ok": format!("worker {w} stalls") })
            }
            None => json!({ "error": format!("no worker {w}") }),
        },
        ["panic", w] => match worker(w) {
            Some(s) => {
                s.panic_requested.store(true, Ordering::Relaxed);
                json!({ "ok": format!("worker {w} panics at its next batch") })
            }
            None => json!({ "error": format!("no worker {w}") }),
        },
        ["inject", one_in] => match one_in.parse::<u64>() {
            Ok(n) => {
                // Every SIMD backend: verify mode quarantines a faulty one and
                // moves the key to the next, which must be faulty too for the
                // test to go on testing.
                for b in espgcm::Backend::available() {
                    if b != espgcm::Backend::Scalar {
                        espgcm::fault::inject(
                            b,
                            espgcm::fault::FaultPlan { one_in_blocks: n, run_blocks: 1, xor: [0x5a; 16] },
                        );
                    }
                }
                json!({ "ok": format!("corrupting one keystream block in {n}") })
            }
            Err(_) => json!({ "error": "inject takes a number: one block in that many is corrupted" }),
        },
        ["clear"] => {
            espgcm::fault::clear();
            json!({ "ok": "no more faults", "injected": espgcm::fault::injected() })
        }
        ["injected"] => json!({ "injected": espgcm::fault::injected() }),
        _ => json!({ "error": "unknown request; try `status`" }),
    }
}

#[cfg(not(feature = "fault-injection"))]
fn test_command(_words: &[&str], _sources: &Sources) -> Value {
    json!({ "error": "unknown request; try `status` (test commands need a build with the fault-injection feature)" })
}

/// Send one request to the tunnel whose control socket is at `path` and
/// return its JSON answer.
///
/// # Errors
/// A message saying whether nothing listens there or the answer was bad.
pub fn request(path: &Path, line: &str) -> Result<Value, String> {
    let stream = UnixStream::connect(path).map_err(|e| {
        format!("cannot reach the tunnel's control socket {}: {e} (is espgcm-tunnel running?)", path.display())
    })?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut w = &stream;
    writeln!(w, "{line}").map_err(|e| format!("control socket {}: {e}", path.display()))?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .map_err(|e| format!("control socket {}: no answer: {e}", path.display()))?;
    serde_json::from_str(&reply).map_err(|e| format!("control socket {}: bad answer: {e}", path.display()))
}

/// Remove the control socket file (at shutdown).
pub fn remove(path: &PathBuf) {
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::Tally;
    use espgcm::esp::SaConfig;

    #[test]
    fn the_status_report_carries_workers_sas_and_rejections_by_kind() {
        let w = Arc::new(WorkerStats::new(0));
        let mut t = Tally { tun_in: 3, sealed: 3, ..Tally::default() };
        t.drops.no_sa = 2;
        w.add(&t, 100);
        let out = Arc::new(Outbound::new(SaConfig::new(0x7101, &[0x71; 20])).expect("sa"));
        let inb = Arc::new(Inbound::new(SaConfig::new(0x7102, &[0x72; 20])).expect("sa"));
        // A packet the inbound SA refuses, to show up by kind.
        let mut sink = Vec::new();
        assert!(inb.open(&[0x45, 0, 0, 20], &mut sink).is_err());
        let sources = Sources {
            device: "t0".into(),
            started: Instant::now(),
            workers: vec![w],
            queues: Vec::new(),
            outbound: vec![out],
            inbound: vec![inb],
            verdict: Mutex::new(Verdict { healthy: true, problems: Vec::new(), input_waiting: vec![false] }),
            events: Mutex::new(Vec::new()),
        };
        let s = sources.status();
        assert_eq!(s["device"], "t0");
        assert_eq!(s["healthy"], true);
        assert_eq!(s["workers"][0]["sealed"], 3);
        assert_eq!(s["workers"][0]["drops"]["no_sa"], 2);
        assert_eq!(s["sas"][0]["direction"], "out");
        assert_eq!(s["sas"][0]["spi"], "0x00007101");
        assert_eq!(s["sas"][0]["next_sequence"], 1);
        assert_eq!(s["sas"][1]["direction"], "in");
        assert_eq!(s["rejections"]["no_sa"], 2);
        let refused: u64 = s["rejections"].as_object().expect("object").values().filter_map(Value::as_u64).sum();
        assert_eq!(refused, 3, "the two lookups and the one refused packet: {}", s["rejections"]);
        assert!(s["crypto"]["faults"].is_u64());
    }
}
