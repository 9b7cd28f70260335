//! Two network namespaces joined by a veth pair, a tunnel in each, and the
//! tools the scenarios drive through them.
//!
//! Every namespace gets a name unique to this process and test, and is
//! deleted when its guard drops (also when a test panics), after the
//! tunnels and tools running in it were stopped. Addresses are from the
//! documentation ranges (192.0.2.0/24, 198.51.100.0/24, 2001:db8::/32) and
//! exist only inside these namespaces. Every wait has a deadline.
//!
//! Without root these tests cannot run: they say "skipped: needs root" and
//! pass, unless `ESPGCM_REQUIRE_NETNS=1` (set by `.ci/run`) makes that a
//! failure.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The tunnel binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_espgcm-tunnel");

/// One scenario at a time: they measure throughput and share two cores.
static SERIAL: Mutex<()> = Mutex::new(());
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Hold while a scenario runs.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether namespaces can be made here; prints the skip, or panics when the
/// environment requires them.
pub fn can_run(test: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:")).map(|u| u.split_whitespace().next() == Some("0")))
        .unwrap_or(false);
    let ip = Command::new("ip").arg("-V").output().is_ok_and(|o| o.status.success());
    if root && ip {
        return true;
    }
    let why = if root { "needs iproute2 (`ip`)" } else { "needs root" };
    if std::env::var("ESPGCM_REQUIRE_NETNS").as_deref() == Ok("1") {
        panic!("{test}: {why}, and ESPGCM_REQUIRE_NETNS=1 requires these tests to run");
    }
    println!("{test}: skipped: {why}");
    false
}

/// Whether a tool is installed; without it a test that needs it fails in
/// CI (ESPGCM_REQUIRE_NETNS=1) and is skipped elsewhere.
pub fn have(tool: &str, test: &str) -> bool {
    let found =
        Command::new("sh").args(["-c", &format!("command -v {tool}")]).output().is_ok_and(|o| o.status.success());
    if !found {
        if std::env::var("ESPGCM_REQUIRE_NETNS").as_deref() == Ok("1") {
            panic!("{test}: needs {tool}, and ESPGCM_REQUIRE_NETNS=1 requires these tests to run");
        }
        println!("{test}: skipped: needs {tool}");
    }
    found
}

/// Run a command, bounded in time, and return its output.
pub fn run(args: &[&str], limit: Duration) -> Output {
    let secs = limit.as_secs().max(1).to_string();
    let mut full = vec!["timeout", "-s", "KILL", &secs];
    full.extend_from_slice(args);
    Command::new(full[0]).args(&full[1..]).output().unwrap_or_else(|e| panic!("running {args:?}: {e}"))
}

/// Run a command that must succeed.
pub fn must(args: &[&str]) {
    let out = run(args, Duration::from_secs(20));
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A network namespace, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    fn new(name: String) -> Netns {
        let _ = run(&["ip", "netns", "del", &name], Duration::from_secs(10));
        must(&["ip", "netns", "add", &name]);
        must(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        Netns { name }
    }

    /// `ip netns exec NAME` followed by `args`, bounded in time.
    pub fn exec(&self, args: &[&str], limit: Duration) -> Output {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full, limit)
    }

    /// Start `args` in the namespace, in the background.
    pub fn spawn(&self, args: &[&str], out: &Path) -> Child {
        let log = std::fs::File::create(out).expect("log file");
        let err = log.try_clone().expect("log file");
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .expect("spawn in namespace")
    }

    /// Run `f` on a thread that has entered this namespace (sockets it makes
    /// live there).
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let fd = std::fs::File::open(&path).expect("namespace file");
            nix::sched::setns(&fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Processes still in it would keep its devices alive: end them.
        if let Ok(out) = Command::new("ip").args(["netns", "pids", &self.name]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
            }
        }
        let _ = run(&["ip", "netns", "del", &self.name], Duration::from_secs(10));
    }
}

/// Which side of the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

/// Two namespaces joined by a veth (`va` in A, `vb` in B) with IPv4 and
/// IPv6 addresses, and a scratch folder.
pub struct Pair {
    pub a: Netns,
    pub b: Netns,
    pub dir: PathBuf,
}

/// Underlay addresses of A and B.
pub const UNDER_V4: [&str; 2] = ["192.0.2.1", "192.0.2.2"];
pub const UNDER_V6: [&str; 2] = ["2001:db8:77::1", "2001:db8:77::2"];
/// Addresses inside the tunnel (tunnel mode).
pub const INNER_V4: [&str; 2] = ["198.51.100.1", "198.51.100.2"];
pub const INNER_V6: [&str; 2] = ["2001:db8:78::1", "2001:db8:78::2"];

impl Pair {
    /// Make the namespaces and the veth between them.
    pub fn new(tag: &str) -> Pair {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let base = format!("egt{}-{n}", std::process::id());
        let a = Netns::new(format!("{base}a"));
        let b = Netns::new(format!("{base}b"));
        must(&["ip", "link", "add", "va", "netns", &a.name, "type", "veth", "peer", "name", "vb", "netns", &b.name]);
        for (ns, dev, i) in [(&a, "va", 0), (&b, "vb", 1)] {
            must(&["ip", "-n", &ns.name, "addr", "add", &format!("{}/24", UNDER_V4[i]), "dev", dev]);
            must(&["ip", "-n", &ns.name, "addr", "add", &format!("{}/64", UNDER_V6[i]), "dev", dev, "nodad"]);
            must(&["ip", "-n", &ns.name, "link", "set", dev, "up"]);
        }
        let dir = std::env::temp_dir().join(format!("espgcm-tunnel-{base}-{tag}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch folder");
        Pair { a, b, dir }
    }

    /// Make the veths segment UDP GSO sends before they leave: a capture
    /// then sees each ESP packet on its own, as on a wire, instead of the
    /// 64 KiB runs the tunnel hands the kernel.
    pub fn segment_on_the_wire(&self) {
        must(&["ip", "-n", &self.a.name, "link", "set", "dev", "va", "gso_max_segs", "1"]);
        must(&["ip", "-n", &self.b.name, "link", "set", "dev", "vb", "gso_max_segs", "1"]);
    }

    pub fn ns(&self, side: Side) -> &Netns {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// How a scenario's tunnels are set up.
#[derive(Clone, Debug)]
pub struct Setup {
    /// Tunnel mode (inner addresses on the TUN devices) or transport mode
    /// (the underlay addresses themselves, routed into the TUN device).
    pub tunnel_mode: bool,
    /// IPv6 (outer and inner) instead of IPv4.
    pub v6: bool,
    /// ESP in UDP instead of raw ESP.
    pub nat_t: bool,
    pub workers: usize,
    pub offload: bool,
    /// Verify policy of A's outbound SA ("off", "full", or None: default).
    pub verify_a_out: Option<&'static str>,
    pub restart_workers: bool,
    pub stall_timeout_ms: u64,
    pub sequence_block: u64,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            tunnel_mode: true,
            v6: false,
            nat_t: true,
            workers: 2,
            offload: true,
            verify_a_out: None,
            restart_workers: false,
            stall_timeout_ms: 2000,
            sequence_block: 1 << 20,
        }
    }
}

const KEY_A: &str = "000102030405060708090a0b0c0d0e0f10111213";
const KEY_B: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3";

impl Setup {
    /// The address B is reached at through the tunnel.
    pub fn target(&self, side: Side) -> IpAddr {
        let i = if side == Side::A { 0 } else { 1 };
        let s = match (self.tunnel_mode, self.v6) {
            (true, false) => INNER_V4[i],
            (true, true) => INNER_V6[i],
            (false, false) => UNDER_V4[i],
            (false, true) => UNDER_V6[i],
        };
        s.parse().expect("address")
    }

    /// The configuration file of one side.
    pub fn config(&self, pair: &Pair, side: Side) -> String {
        let (me, peer) = if side == Side::A { (0, 1) } else { (1, 0) };
        let (key_out, key_in, spi_out, spi_in) =
            if side == Side::A { (KEY_A, KEY_B, 0x1001, 0x2001) } else { (KEY_B, KEY_A, 0x2001, 0x1001) };
        let under = if self.v6 { UNDER_V6 } else { UNDER_V4 };
        let inner = if self.v6 { INNER_V6 } else { INNER_V4 };
        let (plen, host) = if self.v6 { (64, 128) } else { (24, 32) };
        let name = if side == Side::A { "a" } else { "b" };
        let dir = pair.dir.display();
        let mut t = format!(
            "[tunnel]\ndevice = \"esp{name}\"\nworkers = {}\noffload = {}\nstate_file = \"{dir}/{name}.seq\"\n\
             control_socket = \"{dir}/{name}.sock\"\nwireshark_keys = \"{dir}/{name}.keys\"\n\
             stall_timeout_ms = {}\nrestart_workers = {}\nsequence_block = {}\n",
            self.workers, self.offload, self.stall_timeout_ms, self.restart_workers, self.sequence_block
        );
        if self.tunnel_mode {
            t.push_str(&format!("addresses = [\"{}/{plen}\"]\n", inner[me]));
        } else {
            t.push_str(&format!(
                "routes = [{{ to = \"{}/{host}\", src = \"{}\" }}]\nunderlay_device = \"v{name}\"\n",
                under[peer], under[me]
            ));
        }
        let verify = |dir_out: bool| -> String {
            match (side, dir_out, self.verify_a_out) {
                (Side::A, true, Some(v)) => format!("verify = \"{v}\"\n"),
                _ => String::new(),
            }
        };
        let mode = |src: usize, dst: usize| -> String {
            if self.tunnel_mode {
                format!("mode = {{ tunnel = {{ src = \"{}\", dst = \"{}\" }} }}\n", under[src], under[dst])
            } else {
                "mode = \"transport\"\n".to_string()
            }
        };
        let encap = if self.nat_t { "nat-t" } else { "none" };
        t.push_str(&format!(
            "\n[[sa]]\nname = \"out\"\ndirection = \"out\"\nspi = {spi_out}\nkeymat = \"{key_out}\"\nencap = \"{encap}\"\n{}{}",
            mode(me, peer),
            verify(true)
        ));
        t.push_str(&format!(
            "\n[[sa]]\nname = \"in\"\ndirection = \"in\"\nspi = {spi_in}\nkeymat = \"{key_in}\"\nencap = \"{encap}\"\n{}",
            mode(peer, me)
        ));
        t.push_str("\n[[policy]]\naction = \"protect\"\nsa = \"out\"\n");
        t
    }
}

/// A running tunnel, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Tunnel {
    child: Option<Child>,
    pub socket: PathBuf,
    pub log: PathBuf,
    pub config: PathBuf,
}

impl Tunnel {
    /// Write the side's configuration and start its tunnel; returns once it
    /// answers on its control socket.
    pub fn start(pair: &Pair, side: Side, setup: &Setup, new_keys: bool) -> Tunnel {
        let name = if side == Side::A { "a" } else { "b" };
        let config = pair.dir.join(format!("{name}.toml"));
        std::fs::write(&config, setup.config(pair, side)).expect("config");
        Tunnel::start_with(pair, side, &config, new_keys)
    }

    /// Start a tunnel on an existing configuration file.
    pub fn start_with(pair: &Pair, side: Side, config: &Path, new_keys: bool) -> Tunnel {
        let name = if side == Side::A { "a" } else { "b" };
        let log = pair.dir.join(format!("{name}.log"));
        let socket = pair.dir.join(format!("{name}.sock"));
        let cfg = config.to_string_lossy().into_owned();
        let mut args = vec![BIN, "run", "--config", &cfg];
        if new_keys {
            args.push("--new-keys");
        }
        let child = pair.ns(side).spawn(&args, &log);
        let mut t = Tunnel { child: Some(child), socket, log, config: config.to_path_buf() };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if t.try_status().is_ok() {
                return t;
            }
            if let Some(status) = t.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("tunnel {name} exited at start ({status}):\n{}", t.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("tunnel {name} did not answer on {} within 10 s:\n{}", t.socket.display(), t.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn try_status(&self) -> Result<Value, String> {
        espgcm_tunnel::control::request(&self.socket, "status")
    }

    pub fn status(&self) -> Value {
        self.try_status().unwrap_or_else(|e| panic!("status: {e}\n{}", self.log_text()))
    }

    /// A control request (test commands need the fault-injection build).
    pub fn request(&self, line: &str) -> Value {
        espgcm_tunnel::control::request(&self.socket, line).unwrap_or_else(|e| panic!("{line}: {e}"))
    }

    /// The process's exit status if it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Wait up to `limit` for the process to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// SIGTERM, and the exit status (SIGKILL after 5 s).
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let s = self.wait_exit(Duration::from_secs(5));
        if s.is_none()
            && let Some(c) = self.child.as_mut()
        {
            let _ = c.kill();
            return c.wait().ok();
        }
        s
    }

    /// A counter of the SA with this direction, summed.
    pub fn sa_counter(&self, direction: &str, counter: &str) -> u64 {
        let s = self.status();
        s["sas"]
            .as_array()
            .map(|sas| {
                sas.iter()
                    .filter(|sa| sa["direction"] == direction)
                    .map(|sa| sa["counters"][counter].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What a zeros transfer saw.
#[derive(Clone, Copy, Debug)]
pub struct Transfer {
    pub bytes: u64,
    pub nonzero: u64,
    pub seconds: f64,
}

impl Transfer {
    pub fn gbit_s(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.seconds / 1e9
    }
}

/// Send `bytes` zeros over the kernel's TCP from A to `dst` (in B), through
/// whatever routes the namespaces have; the receiver checks every byte.
pub fn zeros(pair: &Pair, dst: IpAddr, port: u16, bytes: u64, limit: Duration) -> Transfer {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = pair.b.enter(move || {
        let listener = TcpListener::bind(SocketAddr::new(dst, port)).expect("listen in B");
        listener.set_nonblocking(true).expect("nonblocking");
        let _ = ready_tx.send(());
        let deadline = Instant::now() + limit;
        let mut stream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => panic!("no connection: {e}"),
            }
        };
        stream.set_nonblocking(false).expect("blocking");
        stream.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let start = Instant::now();
        let mut buf = vec![0u8; 1 << 20];
        let (mut total, mut nonzero) = (0u64, 0u64);
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    total += n as u64;
                    nonzero += buf[..n].iter().filter(|&&b| b != 0).count() as u64;
                }
                Err(e) => panic!("receiving after {total} bytes: {e}"),
            }
            assert!(Instant::now() < deadline, "transfer too slow: {total} bytes in {limit:?}");
        }
        Transfer { bytes: total, nonzero, seconds: start.elapsed().as_secs_f64() }
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).expect("receiver ready");
    let sender = pair.a.enter(move || {
        let mut stream =
            TcpStream::connect_timeout(&SocketAddr::new(dst, port), Duration::from_secs(10)).expect("connect");
        stream.set_write_timeout(Some(Duration::from_secs(10))).expect("timeout");
        let chunk = vec![0u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            stream.write_all(&chunk[..n]).expect("send");
            left -= n as u64;
        }
        stream.shutdown(std::net::Shutdown::Write).expect("shutdown");
        // Wait for the receiver to close, so the data is all across.
        let _ = stream.read(&mut [0u8; 1]);
    });
    sender.join().expect("sender");
    receiver.join().expect("receiver")
}

/// Ping `dst` from a side `count` times; returns the replies received.
pub fn ping(ns: &Netns, dst: IpAddr, count: u32) -> u32 {
    let c = count.to_string();
    let d = dst.to_string();
    let out = ns.exec(&["ping", "-c", &c, "-i", "0.2", "-W", "2", &d], Duration::from_secs(20));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(',')
        .find_map(|part| part.trim().strip_suffix(" received").and_then(|n| n.trim().parse().ok()))
        .unwrap_or(0)
}

/// Capture on a side's veth with tshark while `f` runs; returns the
/// capture file.
pub fn capture<T>(pair: &Pair, side: Side, name: &str, f: impl FnOnce() -> T) -> (PathBuf, T) {
    let file = pair.dir.join(format!("{name}.pcap"));
    let dev = if side == Side::A { "va" } else { "vb" };
    let log = pair.dir.join(format!("{name}.tshark.log"));
    let f_str = file.to_string_lossy().into_owned();
    let mut child =
        pair.ns(side).spawn(&["timeout", "-s", "INT", "120", "tshark", "-i", dev, "-w", &f_str, "-q"], &log);
    // tshark says "Capturing on" once it listens.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("Capturing on") {
        assert!(
            Instant::now() < deadline,
            "tshark did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let result = f();
    std::thread::sleep(Duration::from_millis(300));
    // SIGINT makes tshark finish the file. `ip netns exec` replaced itself
    // with `timeout`, which passes the signal on.
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
    let _ = child.wait();
    (file, result)
}

/// Decode a capture with the keys both tunnels exported; one row per
/// packet: the requested fields, tab-separated.
pub fn decode(pair: &Pair, file: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut args: Vec<String> = vec![
        "tshark".into(),
        "-r".into(),
        file.to_string_lossy().into_owned(),
        "-o".into(),
        "esp.enable_encryption_decode:TRUE".into(),
        "-o".into(),
        "esp.enable_authentication_check:TRUE".into(),
        "-o".into(),
        "tcp.check_checksum:TRUE".into(),
        "-o".into(),
        "udp.check_checksum:TRUE".into(),
        "-o".into(),
        "ip.check_checksum:TRUE".into(),
    ];
    for keys in ["a.keys", "b.keys"] {
        let text = std::fs::read_to_string(pair.dir.join(keys)).expect("exported keys");
        for record in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            args.push("-o".into());
            args.push(format!("uat:esp_sa:{record}"));
        }
    }
    args.extend(["-T".into(), "fields".into()]);
    for f in fields {
        args.push("-e".into());
        args.push((*f).into());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&refs, Duration::from_secs(120));
    assert!(out.status.success(), "tshark: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.split('\t').map(str::to_string).collect()).collect()
}

/// Run iperf3 through the tunnel: a server in B, a client in A; `reverse`
/// sends from B to A. Returns the receiver's bits per second.
pub fn iperf3(pair: &Pair, dst: IpAddr, port: u16, seconds: u32, extra: &[&str]) -> f64 {
    let p = port.to_string();
    let log = pair.dir.join(format!("iperf3-server-{port}.log"));
    let mut server = pair.b.spawn(&["timeout", "-s", "KILL", "60", "iperf3", "-s", "-1", "-p", &p], &log);
    std::thread::sleep(Duration::from_millis(500));
    let d = dst.to_string();
    let t = seconds.to_string();
    let mut args = vec!["iperf3", "-c", &d, "-p", &p, "-t", &t, "--json"];
    args.extend_from_slice(extra);
    let out = pair.a.exec(&args, Duration::from_secs(u64::from(seconds) + 30));
    let _ = server.wait();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("iperf3 output ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    assert!(v.get("error").is_none(), "iperf3: {}", v["error"]);
    v["end"]["sum_received"]["bits_per_second"].as_f64().unwrap_or(0.0)
}
