//! The 2015 incident, live, and the health check that must not lie.
//!
//! Built with the `fault-injection` feature: the sender corrupts AES-GCM
//! keystream blocks the way the Xen/AES-NI bug did (the ICV is computed over
//! the corrupted ciphertext, so the receiver's ICV check passes). With
//! verify Off, the receiver's inner checksum check drops the damaged
//! segments and TCP retransmits them: the zeros still arrive as zeros. With
//! verify Full, the sender catches every fault itself and nothing corrupted
//! leaves it (tshark on the wire checks). And a worker stalled or killed on
//! purpose makes the health check fail and the process exit non-zero,
//! unless it is told to restart its workers.

mod support;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::{Pair, Setup, Side, Tunnel};

/// Rejections an inbound SA counts when a decrypted packet is damaged.
const DAMAGE: [&str; 6] =
    ["checksum_after_decrypt", "bad_padding", "unexpected_next_header", "malformed", "truncated", "not_covered"];

fn damage_drops(t: &Tunnel) -> u64 {
    DAMAGE.iter().map(|c| t.sa_counter("in", c)).sum()
}

#[test]
fn with_verify_off_the_receiver_drops_corrupted_segments_and_the_zeros_arrive_intact() {
    let _serial = support::serial();
    if !support::can_run("with_verify_off_the_receiver_drops_corrupted_segments_and_the_zeros_arrive_intact") {
        return;
    }
    let setup = Setup { verify_a_out: Some("off"), ..Setup::default() };
    let pair = Pair::new("fault-off");
    let a = Tunnel::start(&pair, Side::A, &setup, true);
    let b = Tunnel::start(&pair, Side::B, &setup, true);
    // About one 1400-byte packet in 200 gets a corrupted keystream block.
    let reply = a.request("inject 20000");
    assert!(reply.get("ok").is_some(), "{reply}");
    let bytes = 256u64 << 20;
    let t = support::zeros(&pair, setup.target(Side::B), 5101, bytes, Duration::from_secs(240));
    a.request("clear");
    let injected = a.request("injected")["injected"].as_u64().unwrap_or(0);
    let drops = damage_drops(&b);
    let auth = b.sa_counter("in", "auth_failed");
    println!(
        "tunnel: 2015 test, verify Off: {} bytes carried, {} corrupted bytes delivered, {drops} drops by B's inner \
         checksum check ({injected} keystream blocks corrupted in A, {auth} ICV failures), {:.2} Gbit/s",
        t.bytes,
        t.nonzero,
        t.gbit_s()
    );
    assert!(injected > 0, "faults were injected");
    assert!(drops > 0, "the receiver dropped damaged segments");
    assert_eq!(auth, 0, "the ICV was computed over the corrupted data, so it verified");
    assert_eq!(t.bytes, bytes, "TCP retransmitted what was dropped");
    assert_eq!(t.nonzero, 0, "no corrupted byte was delivered");
}

#[test]
fn with_verify_full_no_corrupted_packet_leaves_the_sender() {
    let _serial = support::serial();
    if !support::can_run("with_verify_full_no_corrupted_packet_leaves_the_sender")
        || !support::have("tshark", "with_verify_full_no_corrupted_packet_leaves_the_sender")
    {
        return;
    }
    let setup = Setup { verify_a_out: Some("full"), ..Setup::default() };
    let pair = Pair::new("fault-full");
    pair.segment_on_the_wire();
    let a = Tunnel::start(&pair, Side::A, &setup, true);
    let b = Tunnel::start(&pair, Side::B, &setup, true);
    let reply = a.request("inject 2000");
    assert!(reply.get("ok").is_some(), "{reply}");
    let dst = setup.target(Side::B);
    let (file, t) = support::capture(&pair, Side::A, "full", || {
        support::zeros(&pair, dst, 5102, 8 << 20, Duration::from_secs(120))
    });
    a.request("clear");
    let injected = a.request("injected")["injected"].as_u64().unwrap_or(0);
    let status = a.status();
    let faults = status["crypto"]["faults"].as_u64().unwrap_or(0);
    let rows = support::decode(&pair, &file, &["esp.spi", "esp.icv_good", "tcp.checksum.status", "ip.src"]);
    let from_a: Vec<&Vec<String>> =
        rows.iter().filter(|r| !r[0].is_empty() && r[3].starts_with(support::UNDER_V4[0])).collect();
    let icv_good = from_a.iter().filter(|r| r[1] == "1").count();
    let tcp_good = from_a.iter().filter(|r| r[2] == "1").count();
    let tcp_bad = from_a.iter().filter(|r| r[2] == "0").count();
    let drops = damage_drops(&b);
    println!(
        "tunnel: 2015 test, verify Full: {} bytes carried, {} corrupted bytes delivered, {drops} drops; {injected} \
         keystream blocks corrupted in A, {faults} caught by verify (quarantined: {}); tshark: {} ESP packets from A, \
         {icv_good} icv_good, {tcp_good} inner TCP checksums good, {tcp_bad} bad; {:.2} Gbit/s",
        t.bytes,
        t.nonzero,
        status["crypto"]["quarantined"],
        from_a.len(),
        t.gbit_s()
    );
    assert!(injected > 0 && faults > 0, "faults were injected ({injected}) and caught ({faults})");
    assert!(from_a.len() > 1000, "the capture saw A's packets");
    assert_eq!(icv_good, from_a.len());
    assert_eq!(tcp_bad, 0, "no corrupted segment left A");
    assert!(tcp_good > 1000);
    assert_eq!(drops, 0, "B had nothing to drop");
    assert_eq!((t.bytes, t.nonzero), (8 << 20, 0));
    // A host that corrupts AES is reported, though traffic goes on.
    assert_eq!(status["healthy"], false);
    assert!(status["problems"].to_string().contains("AES-GCM"), "{}", status["problems"]);
}

/// Keep packets flowing from A into its TUN device (UDP to B's discard port).
fn trickle(pair: &Pair, dst: IpAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    pair.a.enter(move || {
        let sock =
            UdpSocket::bind(SocketAddr::new(if dst.is_ipv4() { [0, 0, 0, 0].into() } else { [0u16; 8].into() }, 0))
                .expect("udp");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let _ = sock.send_to(&[0u8; 200], SocketAddr::new(dst, 9));
            std::thread::sleep(Duration::from_micros(500));
        }
    })
}

/// Run the health command; returns its exit code and output.
fn health(t: &Tunnel) -> (Option<i32>, String) {
    let out = support::run(&[support::BIN, "health", "--socket", &t.socket.to_string_lossy()], Duration::from_secs(10));
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn a_stalled_or_dead_worker_fails_the_health_check() {
    let _serial = support::serial();
    if !support::can_run("a_stalled_or_dead_worker_fails_the_health_check") {
        return;
    }
    for request in ["stall 0", "panic 0"] {
        let setup = Setup { workers: 1, stall_timeout_ms: 400, ..Setup::default() };
        let pair = Pair::new("health");
        let mut a = Tunnel::start(&pair, Side::A, &setup, true);
        let _b = Tunnel::start(&pair, Side::B, &setup, true);
        let stop = Arc::new(AtomicBool::new(false));
        let traffic = trickle(&pair, setup.target(Side::B), stop.clone());
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(health(&a).0, Some(0), "healthy while working: {}", health(&a).1);
        let before = a.status()["workers"][0]["progress"].as_u64().unwrap_or(0);
        assert!(before > 0, "the worker handled the traffic");
        a.request(request);
        let started = Instant::now();
        let (code, text) = loop {
            let (code, text) = health(&a);
            if code != Some(0) || started.elapsed() > Duration::from_secs(5) {
                break (code, text);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let noticed = started.elapsed();
        let exit = a.wait_exit(Duration::from_secs(5)).and_then(|s| s.code());
        stop.store(true, Ordering::Relaxed);
        let _ = traffic.join();
        println!(
            "tunnel: health, worker {}: health check failed after {} ms ({}), process exit status {exit:?}; \
             0 bytes carried, 0 corrupted bytes delivered, 0 drops, 0 Gbit/s",
            if request.starts_with("stall") { "stalled" } else { "killed" },
            noticed.as_millis(),
            text.trim()
        );
        assert_ne!(code, Some(0), "the health check must fail: {text}");
        let expected = if request.starts_with("stall") { "stalled" } else { "not running" };
        assert!(text.contains(expected) || code == Some(2), "{text}");
        assert_eq!(exit, Some(3), "the process exits non-zero:\n{}", a.log_text());
    }
}

#[test]
fn a_stalled_worker_is_restarted_when_configured() {
    let _serial = support::serial();
    if !support::can_run("a_stalled_worker_is_restarted_when_configured") {
        return;
    }
    let setup = Setup { workers: 1, stall_timeout_ms: 400, restart_workers: true, ..Setup::default() };
    let pair = Pair::new("restart");
    let a = Tunnel::start(&pair, Side::A, &setup, true);
    let _b = Tunnel::start(&pair, Side::B, &setup, true);
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = trickle(&pair, setup.target(Side::B), stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    a.request("stall 0");
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.status()["workers"][0]["restarts"].as_u64().unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "no restart:\n{}", a.log_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let _ = traffic.join();
    std::thread::sleep(Duration::from_millis(300));
    let replies = support::ping(&pair.a, setup.target(Side::B), 3);
    let (code, text) = health(&a);
    println!(
        "tunnel: health, stalled worker restarted: {replies}/3 pings after the restart, health exit status {code:?}; \
         0 bytes carried, 0 corrupted bytes delivered, 0 drops, 0 Gbit/s"
    );
    assert_eq!(replies, 3);
    assert_eq!(code, Some(0), "{text}");
}
