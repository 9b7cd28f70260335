//! The tunnel between two network namespaces, carrying the kernel's own
//! traffic: ping in every mode, family and encapsulation, 1 GiB of zeros
//! over TCP compared byte by byte, iperf3 both ways, tshark decrypting
//! what crosses the veth with the keys the tunnels export, and sequence
//! numbers that survive restarts. One `tunnel:` line per scenario.

mod support;

use std::time::Duration;
use support::{Pair, Setup, Side, Tunnel};

/// Both tunnels of a pair, started with `setup`.
fn tunnels(pair: &Pair, setup: &Setup) -> (Tunnel, Tunnel) {
    (Tunnel::start(pair, Side::A, setup, true), Tunnel::start(pair, Side::B, setup, true))
}

#[test]
fn ping_crosses_in_every_mode_family_and_encapsulation() {
    let _serial = support::serial();
    if !support::can_run("ping_crosses_in_every_mode_family_and_encapsulation") || !support::have("ping", "ping") {
        return;
    }
    for tunnel_mode in [true, false] {
        for v6 in [false, true] {
            for nat_t in [true, false] {
                let setup = Setup { tunnel_mode, v6, nat_t, ..Setup::default() };
                let pair = Pair::new("ping");
                let (a, b) = tunnels(&pair, &setup);
                let replies = support::ping(&pair.a, setup.target(Side::B), 3);
                let (sealed, opened) = (a.sa_counter("out", "packets"), b.sa_counter("in", "packets"));
                let what = format!(
                    "{} mode, IPv{}, {}",
                    if tunnel_mode { "tunnel" } else { "transport" },
                    if v6 { 6 } else { 4 },
                    if nat_t { "ESP in UDP" } else { "raw ESP" }
                );
                println!(
                    "tunnel: ping {what}: {replies}/3 replies, {sealed} packets sealed by A, {opened} opened by B, \
                     0 corrupted bytes delivered, 0 drops"
                );
                assert_eq!(replies, 3, "{what}: ping across\nA:\n{}\nB:\n{}", a.log_text(), b.log_text());
                // The echo requests went through the SAs, not around them.
                assert!(sealed >= 3 && opened >= 3, "{what}: sealed {sealed}, opened {opened}");
                assert_eq!(b.sa_counter("in", "auth_failed"), 0);
            }
        }
    }
}

#[test]
fn a_gibibyte_of_zeros_arrives_as_zeros() {
    let _serial = support::serial();
    if !support::can_run("a_gibibyte_of_zeros_arrives_as_zeros") {
        return;
    }
    let setup = Setup::default();
    let pair = Pair::new("zeros");
    let (a, b) = tunnels(&pair, &setup);
    let bytes = 1u64 << 30;
    let t = support::zeros(&pair, setup.target(Side::B), 5001, bytes, Duration::from_secs(300));
    let drops = b.status()["rejections"].as_object().map_or(0, |r| r.values().filter_map(|v| v.as_u64()).sum::<u64>());
    println!(
        "tunnel: 1 GiB of zeros over TCP, tunnel mode, ESP in UDP: {} bytes carried, {} corrupted bytes delivered, \
         {drops} drops, {:.2} Gbit/s",
        t.bytes,
        t.nonzero,
        t.gbit_s()
    );
    assert_eq!(t.bytes, bytes, "every byte arrived");
    assert_eq!(t.nonzero, 0, "every byte arrived as zero");
    assert!(a.sa_counter("out", "bytes") >= bytes, "the data went through A's SA");
    assert!(b.sa_counter("in", "bytes") >= bytes, "and through B's");
}

#[test]
fn iperf3_runs_both_ways() {
    let _serial = support::serial();
    if !support::can_run("iperf3_runs_both_ways") || !support::have("iperf3", "iperf3_runs_both_ways") {
        return;
    }
    let setup = Setup::default();
    let pair = Pair::new("iperf3");
    let (a, b) = tunnels(&pair, &setup);
    let dst = setup.target(Side::B);
    let forward = support::iperf3(&pair, dst, 5201, 3, &[]);
    let reverse = support::iperf3(&pair, dst, 5202, 3, &["-R"]);
    let drops = |t: &Tunnel| {
        t.status()["rejections"].as_object().map_or(0, |r| r.values().filter_map(|v| v.as_u64()).sum::<u64>())
    };
    for (what, bps) in [("A to B", forward), ("B to A", reverse)] {
        println!(
            "tunnel: iperf3 TCP {what}, tunnel mode, ESP in UDP: {:.0} bytes carried, 0 corrupted bytes delivered \
             (TCP checked), {} drops, {:.2} Gbit/s",
            bps * 3.0 / 8.0,
            drops(&a) + drops(&b),
            bps / 1e9
        );
        assert!(bps > 1e6, "{what}: {bps} bit/s");
    }
    assert_eq!(a.sa_counter("in", "auth_failed") + b.sa_counter("in", "auth_failed"), 0);
}

#[test]
fn tshark_decrypts_every_packet_with_the_exported_keys() {
    let _serial = support::serial();
    if !support::can_run("tshark_decrypts_every_packet_with_the_exported_keys")
        || !support::have("tshark", "tshark_decrypts_every_packet_with_the_exported_keys")
    {
        return;
    }
    for (nat_t, tunnel_mode) in [(true, true), (false, false)] {
        let setup = Setup { nat_t, tunnel_mode, ..Setup::default() };
        let pair = Pair::new("tshark");
        pair.segment_on_the_wire();
        let (_a, _b) = tunnels(&pair, &setup);
        let dst = setup.target(Side::B);
        let (file, t) = support::capture(&pair, Side::A, "esp", || {
            assert_eq!(support::ping(&pair.a, dst, 2), 2);
            support::zeros(&pair, dst, 5003, 4 << 20, Duration::from_secs(60))
        });
        let rows = support::decode(&pair, &file, &["esp.spi", "esp.icv_good", "tcp.checksum.status", "icmp.type"]);
        let esp: Vec<&Vec<String>> = rows.iter().filter(|r| !r[0].is_empty()).collect();
        let good = esp.iter().filter(|r| r[1] == "1").count();
        let tcp_good = esp.iter().filter(|r| r[2] == "1").count();
        let tcp_bad = esp.iter().filter(|r| r[2] == "0").count();
        println!(
            "tunnel: tshark on the veth, {} mode, {}: {} ESP packets, {good} with icv_good 1, {tcp_good} inner TCP \
             checksums good, {tcp_bad} bad; {} bytes carried, {} corrupted bytes delivered, 0 drops, {:.2} Gbit/s",
            if tunnel_mode { "tunnel" } else { "transport" },
            if nat_t { "ESP in UDP" } else { "raw ESP" },
            esp.len(),
            t.bytes,
            t.nonzero,
            t.gbit_s()
        );
        assert!(esp.len() > 100, "ESP packets were captured: {}", esp.len());
        assert_eq!(good, esp.len(), "every ESP packet's ICV verified in tshark");
        assert!(tcp_good > 50, "tshark checked the decrypted TCP segments");
        assert_eq!(tcp_bad, 0);
        assert_eq!((t.bytes, t.nonzero), (4 << 20, 0));
    }
}

#[test]
fn sequence_numbers_resume_after_a_restart_and_need_their_state() {
    let _serial = support::serial();
    if !support::can_run("sequence_numbers_resume_after_a_restart_and_need_their_state") {
        return;
    }
    let setup = Setup { sequence_block: 4096, ..Setup::default() };
    let pair = Pair::new("seq");
    let next_after = {
        let (a, _b) = tunnels(&pair, &setup);
        // 8 MiB is about 6,000 packets: past the first block of 4,096, so the
        // writer has raised the limit on the way.
        let t = support::zeros(&pair, setup.target(Side::B), 5004, 8 << 20, Duration::from_secs(60));
        assert_eq!((t.bytes, t.nonzero), (8 << 20, 0));
        let sa = &a.status()["sas"][0];
        let next = sa["next_sequence"].as_u64().expect("next sequence");
        let limit = sa["sequence_limit"].as_u64().expect("a limit is set");
        let recorded = recorded_next(&pair);
        assert!(next > 4096, "{next}");
        // Write-ahead: the disk is ahead of the limit, the limit ahead of use.
        assert!(next <= limit && limit <= recorded, "next {next}, limit {limit}, recorded {recorded}");
        next
    };
    // A clean stop recorded the exact next number: a restart continues there.
    let recorded = recorded_next(&pair);
    assert!(recorded >= next_after && recorded < next_after + 1000, "recorded {recorded} after {next_after}");
    let a_config = pair.dir.join("a.toml");
    let mut a = Tunnel::start_with(&pair, Side::A, &a_config, false);
    let resumed = a.status()["sas"][0]["next_sequence"].as_u64().expect("next");
    // (The kernel may already have sent a packet or two into the new TUN device.)
    assert!(resumed >= recorded && resumed < recorded + 20, "the restart resumed at {resumed}, recorded {recorded}");
    // A crash (SIGKILL) leaves the block-ahead reservation: the next start
    // skips past every number that may have been used.
    let _b = Tunnel::start_with(&pair, Side::B, &pair.dir.join("b.toml"), false);
    assert_eq!(support::ping(&pair.a, setup.target(Side::B), 2), 2);
    drop_hard(&mut a);
    let a2 = Tunnel::start_with(&pair, Side::A, &a_config, false);
    let after_crash = a2.status()["sas"][0]["next_sequence"].as_u64().expect("next");
    assert!(after_crash >= resumed + 4096, "after a crash: {after_crash}, reserved up to {}", resumed + 4096);
    drop(a2);
    println!(
        "tunnel: sequence state: stopped at {next_after}, resumed at {resumed}, after SIGKILL resumed at \
         {after_crash}; 0 bytes carried, 0 corrupted bytes delivered, 0 drops, 0 Gbit/s"
    );
    // Without its state file the tunnel refuses to start.
    std::fs::remove_file(pair.dir.join("a.seq")).expect("state file");
    let out = pair.a.exec(&[support::BIN, "run", "--config", &a_config.to_string_lossy()], Duration::from_secs(20));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no sequence state") && err.contains("--new-keys"), "{err}");
}

/// The next sequence number A's state file records for its outbound SA.
fn recorded_next(pair: &Pair) -> u64 {
    let text = std::fs::read_to_string(pair.dir.join("a.seq")).expect("state file");
    text.lines()
        .find(|l| l.starts_with("0x00001001 "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|n| n.parse().ok())
        .expect("an entry for SPI 0x1001")
}

/// Kill a tunnel without letting it record anything.
fn drop_hard(t: &mut Tunnel) {
    let pid = t.status()["pid"].as_u64().expect("pid");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid")),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(t.wait_exit(Duration::from_secs(5)).is_some());
}

#[test]
fn a_bad_configuration_line_is_named() {
    let dir = std::env::temp_dir().join(format!("espgcm-tunnel-badcfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[tunnel]\ndevice = \"esp9\"\nmut = 1400\n").expect("write");
    let out = std::process::Command::new(support::BIN)
        .args(["run", "--config", &path.to_string_lossy()])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("line 3") && err.contains("unknown field `mut`"), "{err}");
    // A bad line among the SAs is named by the library's loader, with the file.
    std::fs::write(
        &path,
        "[tunnel]\ndevice = \"esp9\"\n\n[[sa]]\nname = \"out\"\ndirection = \"out\"\nspi = 0x1001\n\
         keymat = \"000102030405060708090a0b0c0d0e0f\"\n",
    )
    .expect("write");
    let out = std::process::Command::new(support::BIN)
        .args(["run", "--config", &path.to_string_lossy()])
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.toml") && err.contains("line 8") && err.contains("salt"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn without_cap_net_admin_it_says_so() {
    if !support::can_run("without_cap_net_admin_it_says_so")
        || !support::have("setpriv", "without_cap_net_admin_it_says_so")
    {
        return;
    }
    let _serial = support::serial();
    let pair = Pair::new("caps");
    let config = pair.dir.join("a.toml");
    std::fs::write(&config, Setup::default().config(&pair, Side::A)).expect("config");
    let readable: std::fs::Permissions = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(&pair.dir, readable).expect("permissions");
    // An unprivileged user (nobody), in namespace A.
    let out = pair.a.exec(
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            support::BIN,
            "run",
            "--config",
            &config.to_string_lossy(),
            "--new-keys",
        ],
        Duration::from_secs(20),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("CAP_NET_ADMIN") && err.contains("run it as root"), "{err}");
}
