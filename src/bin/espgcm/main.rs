//! The `espgcm` command-line tool.
//!
//! `espgcm` (or `espgcm check`) reports what this machine can run and proves
//! that each supported backend gives the right answers before anyone trusts it
//! with traffic.

mod bench;
mod burnin;
mod pcap;
mod sa_file;
mod seal_open;

use clap::{Parser, Subcommand};
use espgcm::{Backend, Gcm, Overrides, kat};
use flate2::read::GzDecoder;
use std::io::Read;
use std::process::ExitCode;
use std::time::Instant;

/// AES-GCM for userspace IPsec ESP: backend report and self-check.
#[derive(Parser)]
#[command(version, about, long_about = None, after_help = "\
Examples:
  espgcm                       same as `espgcm check`
  espgcm check                 report backends, run known answers and cross-checks
  ESPGCM_BACKEND=scalar espgcm check    force the scalar backend for new keys
  ESPGCM_DISABLE=aesni espgcm check     remove a backend without a rebuild")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Report CPU features and backends, run the NIST known-answer tests on
    /// every supported backend and cross-check SIMD backends against the
    /// scalar one. Exits 0 only if everything passed.
    #[command(after_help = "\
Example:
  $ espgcm check
  ...
  verdict: PASS: scalar ran 47250 known answers (...); new keys get scalar")]
    Check,
    /// Stream zeros and other patterns through every SIMD backend for N
    /// seconds and compare with scalar; print each mismatch as xxd rows.
    /// Exits 1 on any mismatch.
    Burnin(burnin::BurninArgs),
    /// Time AES-GCM seal and open on every supported backend (and peers
    /// with the `peers` feature) from 16 B to 16 KiB: table, JSON or chart.
    Bench(bench::BenchArgs),
    /// Seal the IP packets of a pcap/pcapng capture with an SA (TOML file).
    Seal(seal_open::SealArgs),
    /// Open the ESP packets of a pcap/pcapng capture with an SA (TOML file).
    Open(seal_open::OpenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Check) {
        Command::Check => check(),
        Command::Burnin(args) => burnin::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Seal(args) => seal_open::seal(args),
        Command::Open(args) => seal_open::open(args),
    }
}

/// The NIST CAVP files, compressed, built into the binary (see vectors/README.md).
const VECTOR_FILES: [(&str, &[u8]); 6] = [
    ("gcmEncryptExtIV128.rsp", include_bytes!("../../../vectors/nist-cavp/gcmEncryptExtIV128.rsp.gz")),
    ("gcmEncryptExtIV192.rsp", include_bytes!("../../../vectors/nist-cavp/gcmEncryptExtIV192.rsp.gz")),
    ("gcmEncryptExtIV256.rsp", include_bytes!("../../../vectors/nist-cavp/gcmEncryptExtIV256.rsp.gz")),
    ("gcmDecrypt128.rsp", include_bytes!("../../../vectors/nist-cavp/gcmDecrypt128.rsp.gz")),
    ("gcmDecrypt192.rsp", include_bytes!("../../../vectors/nist-cavp/gcmDecrypt192.rsp.gz")),
    ("gcmDecrypt256.rsp", include_bytes!("../../../vectors/nist-cavp/gcmDecrypt256.rsp.gz")),
];

/// Decompress and parse the built-in vector files.
fn load_vectors() -> Result<Vec<(&'static str, Vec<kat::Case>)>, String> {
    VECTOR_FILES
        .iter()
        .map(|&(name, gz)| {
            let mut text = String::new();
            GzDecoder::new(gz).read_to_string(&mut text).map_err(|e| format!("{name}: cannot decompress: {e}"))?;
            let cases = kat::parse_rsp(&text).map_err(|e| format!("{name}: {e}"))?;
            Ok((name, cases))
        })
        .collect()
}

fn check() -> ExitCode {
    let mut problems: Vec<String> = Vec::new();
    println!("espgcm {} check", env!("CARGO_PKG_VERSION"));

    // What the CPU offers.
    let features = espgcm::cpu::features();
    if features.is_empty() {
        println!("cpu: {} (no x86 SIMD features apply)", std::env::consts::ARCH);
    } else {
        let have: Vec<&str> = features.iter().filter(|f| f.1).map(|f| f.0).collect();
        let lack: Vec<&str> = features.iter().filter(|f| !f.1).map(|f| f.0).collect();
        println!("cpu: {}: {}", std::env::consts::ARCH, if have.is_empty() { "-".into() } else { have.join(" ") });
        if !lack.is_empty() {
            println!("     missing: {}", lack.join(" "));
        }
    }

    // What the operator asked for.
    let env = |name: &str| std::env::var(name).unwrap_or_else(|_| "(unset)".to_string());
    println!("settings: ESPGCM_BACKEND={} ESPGCM_DISABLE={}", env("ESPGCM_BACKEND"), env("ESPGCM_DISABLE"));
    for w in &Overrides::get().warnings {
        println!("  warning: {w}");
    }

    // The backends.
    let best = Backend::best();
    let available = Backend::available();
    println!("backends:");
    for b in Backend::ALL {
        let status = if let Some(why) = b.unsupported_reason() {
            format!("not supported: {why}")
        } else if !available.contains(&b) {
            "supported, disabled by ESPGCM_DISABLE".to_string()
        } else if b == best {
            format!("supported, chosen for new keys ({})", Backend::best_reason())
        } else {
            "supported, available".to_string()
        };
        println!("  {:<8} {status}", b.name());
    }

    // Known answers on every supported backend.
    println!("known answers (NIST CAVP GCM, built in):");
    let vectors = match load_vectors() {
        Ok(v) => v,
        Err(e) => {
            println!("  cannot load the built-in vectors: {e}");
            println!("verdict: FAIL: the known-answer vectors are unreadable");
            return ExitCode::FAILURE;
        }
    };
    let mut summary: Vec<String> = Vec::new();
    for b in Backend::ALL {
        if let Some(why) = b.unsupported_reason() {
            println!("  {:<8} skipped: {why}", b.name());
            continue;
        }
        let start = Instant::now();
        let (mut passed, mut rejected, mut failed) = (0usize, 0usize, Vec::new());
        for (name, cases) in &vectors {
            match kat::run(cases, b) {
                Ok(t) => {
                    passed += t.passed;
                    rejected += t.rejected_as_expected;
                    failed.extend(t.failures.into_iter().map(|f| format!("{name} {f}")));
                }
                Err(e) => failed.push(format!("{name}: {e}")),
            }
        }
        let ms = start.elapsed().as_millis();
        if failed.is_empty() {
            println!(
                "  {:<8} {passed} cases passed ({rejected} forged tags rejected as expected) in {ms} ms",
                b.name()
            );
            summary.push(format!("{} ran {passed} known answers", b.name()));
        } else {
            println!("  {:<8} FAILED {} of {} cases; first failures:", b.name(), failed.len(), passed + failed.len());
            for f in failed.iter().take(10) {
                println!("           {f}");
            }
            problems.push(format!("{} failed {} known answers", b.name(), failed.len()));
        }
    }

    // The same vectors through the batch path (every case with a 96-bit IV,
    // among other jobs, so that a backend that runs several messages at once
    // does so with the case among them).
    println!("known answers through encrypt_batch / decrypt_batch:");
    for b in Backend::ALL {
        if let Some(why) = b.unsupported_reason() {
            println!("  {:<8} skipped: {why}", b.name());
            continue;
        }
        let start = Instant::now();
        let (mut passed, mut failed) = (0usize, Vec::new());
        for (name, cases) in &vectors {
            match kat::run_batched(cases, b) {
                Ok((t, _)) => {
                    passed += t.passed;
                    failed.extend(t.failures.into_iter().map(|f| format!("{name} {f}")));
                }
                Err(e) => failed.push(format!("{name}: {e}")),
            }
        }
        let ms = start.elapsed().as_millis();
        if failed.is_empty() {
            println!("  {:<8} {passed} cases passed in batches in {ms} ms", b.name());
            summary.push(format!("{} ran {passed} batched known answers", b.name()));
        } else {
            println!("  {:<8} FAILED {} batched cases; first failures:", b.name(), failed.len());
            for f in failed.iter().take(10) {
                println!("           {f}");
            }
            problems.push(format!("{} failed {} batched known answers", b.name(), failed.len()));
        }
    }

    // SIMD backends against the scalar reference.
    println!("cross-check against scalar:");
    let simd: Vec<Backend> = Backend::ALL.into_iter().filter(|b| *b != Backend::Scalar && b.is_supported()).collect();
    if simd.is_empty() {
        println!("  nothing to cross-check: no SIMD backend is supported in this build on this CPU");
    }
    for b in simd {
        match cross_check(b, 3000) {
            Ok(n) => {
                println!("  {:<8} {n} messages identical to scalar", b.name());
                summary.push(format!("{} matched scalar on {n} messages", b.name()));
            }
            Err(e) => {
                println!("  {:<8} MISMATCH: {e}", b.name());
                problems.push(format!("{} disagrees with scalar", b.name()));
            }
        }
    }

    // ESP on top of each backend.
    println!("ESP round trip:");
    for b in Backend::ALL.into_iter().filter(|b| b.is_supported()) {
        match esp_round_trip(b) {
            Ok(n) => {
                println!("  {:<8} {n} packets sealed and opened intact; damaged ones refused", b.name());
                summary.push(format!("ESP round trip on {}", b.name()));
            }
            Err(e) => {
                println!("  {:<8} FAILED: {e}", b.name());
                problems.push(format!("ESP round trip failed on {}", b.name()));
            }
        }
    }

    if problems.is_empty() {
        println!("verdict: PASS: {}; new keys get {best}", summary.join("; "));
        ExitCode::SUCCESS
    } else {
        println!("verdict: FAIL: {}", problems.join("; "));
        ExitCode::FAILURE
    }
}

/// Seal and open `messages` generated messages on `backend` and on the scalar
/// backend and compare every byte. Returns the number compared.
fn cross_check(backend: Backend, messages: usize) -> Result<usize, String> {
    let mut rng = SplitMix64(0x5eed_e59c_0000_0001);
    for i in 0..messages {
        let key_len = [16, 24, 32][i % 3];
        let key = rng.bytes(key_len);
        let iv_len = if i % 7 == 0 { 1 + (rng.next() % 64) as usize } else { 12 };
        let iv = rng.bytes(iv_len);
        let aad_len = (rng.next() % 40) as usize;
        let aad = rng.bytes(aad_len);
        let len = (rng.next() % 2048) as usize;
        // Zeros, as in `nc | xxd`, and random data.
        let msg = if i % 2 == 0 { vec![0u8; len] } else { rng.bytes(len) };
        let fast = Gcm::with_backend(&key, backend).map_err(|e| e.to_string())?;
        let reference = Gcm::with_backend(&key, Backend::Scalar).map_err(|e| e.to_string())?;
        let (mut a, mut b) = (msg.clone(), msg.clone());
        let ta = fast.encrypt(&iv, &aad, &mut a).map_err(|e| e.to_string())?;
        let tb = reference.encrypt(&iv, &aad, &mut b).map_err(|e| e.to_string())?;
        if a != b || ta != tb {
            let at = a.iter().zip(&b).position(|(x, y)| x != y).map_or("the tag".to_string(), |p| format!("byte {p}"));
            return Err(format!("message {i} ({len} bytes, {}-bit key) differs at {at}", key_len * 8));
        }
        fast.decrypt(&iv, &aad, &mut a, &ta).map_err(|e| format!("message {i}: open failed: {e}"))?;
        if a != msg {
            return Err(format!("message {i}: open did not restore the plaintext"));
        }
    }
    Ok(messages)
}

/// Seal and open TCP packets through ESP on `backend` in transport and
/// tunnel mode, IPv4 and IPv6, with NAT-T, ESN and GMAC, and check that a
/// packet damaged before encryption and one damaged on the wire are both
/// refused. Returns the number of packets round-tripped.
fn esp_round_trip(backend: Backend) -> Result<usize, String> {
    use espgcm::esp::{Encap, EspError, Inbound, Mode, Outbound, SaConfig, Transform};
    use espgcm::net::checksum::{pseudo_header_v4, pseudo_header_v6};
    use espgcm::net::{Ipv4Repr, Ipv6Repr, TcpRepr, WireError, protocol};
    use std::net::{Ipv4Addr, Ipv6Addr};

    let tcp = TcpRepr { src_port: 40000, dst_port: 2181, seq_number: 1, ack_number: 1, flags: 0x18, window: 512 };
    let data: Vec<u8> = (0..300u16).map(|i| i as u8).collect();
    let l4 = 20 + data.len();
    let (s4, d4) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let (s6, d6) = (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
    let err = |e: EspError| e.to_string();
    let wire_err = |e: WireError| e.to_string();
    let mut v4 = vec![0u8; 20 + l4];
    Ipv4Repr {
        src_addr: s4,
        dst_addr: d4,
        protocol: protocol::TCP,
        payload_len: l4,
        ttl: 64,
        dscp_ecn: 0,
        ident: 1,
        dont_frag: true,
    }
    .emit(&mut v4)
    .map_err(wire_err)?;
    v4[40..].copy_from_slice(&data);
    tcp.emit(&mut v4[20..], pseudo_header_v4(s4, d4, protocol::TCP, l4 as u16)).map_err(wire_err)?;
    let mut v6 = vec![0u8; 40 + l4];
    Ipv6Repr {
        src_addr: s6,
        dst_addr: d6,
        next_header: protocol::TCP,
        payload_len: l4,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    }
    .emit(&mut v6)
    .map_err(wire_err)?;
    v6[60..].copy_from_slice(&data);
    tcp.emit(&mut v6[40..], pseudo_header_v6(s6, d6, protocol::TCP, l4 as u32)).map_err(wire_err)?;

    let tunnel = Mode::Tunnel {
        src: "192.0.2.1".parse().map_err(|_| "address")?,
        dst: "192.0.2.2".parse().map_err(|_| "address")?,
    };
    let keymat: Vec<u8> = (0..36u8).collect();
    let base = SaConfig { backend: Some(backend), ..SaConfig::new(0x1000, &keymat[..20]) };
    let configs = [
        base.clone(),
        SaConfig { mode: tunnel, encap: Encap::NAT_T, keymat: keymat.clone(), ..base.clone() },
        SaConfig { transform: Transform::AesGmac, esn: true, keymat: keymat[..28].to_vec(), ..base.clone() },
    ];
    let mut packets = 0;
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    for cfg in configs {
        let tx = Outbound::new(cfg.clone()).map_err(err)?;
        let rx = Inbound::new(cfg.clone()).map_err(err)?;
        for packet in [&v4, &v6] {
            tx.seal(packet, &mut sealed).map_err(err)?;
            // Damaged on the wire: the ICV must catch it (and the window
            // must not move, so the intact packet is still accepted).
            let mut damaged = sealed.clone();
            let last = damaged.len() - 1;
            damaged[last] ^= 1;
            if !matches!(rx.open(&damaged, &mut opened), Err(EspError::Auth { .. })) {
                return Err("a packet damaged on the wire was not refused".to_string());
            }
            rx.open(&sealed, &mut opened).map_err(err)?;
            if &opened != packet {
                return Err(format!(
                    "{:?} {:?}: the opened packet differs from the sealed one",
                    cfg.mode, cfg.transform
                ));
            }
            packets += 1;
        }
        // Damaged before encryption: seal must refuse it.
        let mut bad = v4.clone();
        bad[100] ^= 0x20;
        if !matches!(tx.seal(&bad, &mut sealed), Err(EspError::ChecksumBeforeEncrypt { .. })) || !sealed.is_empty() {
            return Err("a packet damaged before encryption was sealed".to_string());
        }
    }
    Ok(packets)
}

/// A small deterministic generator for test messages (not for keys in use).
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}
