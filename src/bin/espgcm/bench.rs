//! `espgcm bench`: AES-GCM throughput of every supported backend (and, built
//! with the `peers` feature, ring, aws-lc-rs and RustCrypto aes-gcm) at each
//! message size, AES-128 and AES-256, seal and open.
//!
//! Measuring on a shared, noisy machine: every implementation of one
//! (operation, key size, message size) cell runs in short batches, the
//! implementations take turns batch by batch (interleaved rounds of at most
//! 200 µs batches, at least five rounds), and the fastest batch of each counts. Load that comes and goes then hits every
//! implementation alike, and the best batch is the one least disturbed.
//!
//! Every implementation's ciphertext and tag are compared with the scalar
//! backend's before it is timed, so the bench never times a wrong answer.

use clap::Args;
use espgcm::{Backend, Gcm};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The sizes timed by default: tiny, small, an IPv6 minimum-MTU packet, a
/// typical ESP packet on a 1500-byte link, and two large buffers.
const DEFAULT_SIZES: [usize; 6] = [16, 64, 576, 1420, 8192, 16384];
/// ESP's AAD: SPI and sequence number.
const AAD: [u8; 8] = [0x00, 0x00, 0x12, 0x34, 0x00, 0x00, 0x00, 0x01];
/// ESP's 12-byte nonce (salt and IV).
const IV: [u8; 12] = [0x5a; 12];
/// The fewest interleaved rounds per cell; the fastest batch counts.
const MIN_ROUNDS: u32 = 5;
/// The longest batch: short enough that many batches fit between two
/// preemptions on a busy machine (a scheduler slice is a few ms).
const MAX_BATCH: Duration = Duration::from_micros(200);
/// The largest message accepted by `--sizes`.
const MAX_SIZE: usize = 1 << 26;

/// Options of `espgcm bench`.
#[derive(Args, Debug)]
#[command(after_help = "\
Throughput is GB/s = 10^9 bytes per second. c/B is TSC ticks per byte: the
time-stamp counter runs at the CPU's nominal (base) frequency, so a tick is a
core cycle only when the core runs at that frequency (under turbo the core
does more cycles per tick). * marks the fastest implementation at each size.

Examples:
  espgcm bench                                 every supported backend, default sizes, ~3 s
  espgcm bench --backend aesni,scalar --sizes 64,1420,16K --seconds 1
  espgcm bench --json > bench.json             machine-readable results on stdout
  espgcm bench --plot bench.svg                also draw throughput against size
  cargo run --release --features peers -- bench    with ring, aws-lc-rs and RustCrypto")]
pub struct BenchArgs {
    /// Implementations to time, comma-separated: backend names (scalar,
    /// aesni, vaes256, vaes512, armv8) and, with the `peers` feature, ring,
    /// aws-lc-rs and rustcrypto. Default: every supported one.
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    backend: Vec<String>,
    /// Message sizes in bytes, comma-separated; a K suffix means KiB
    /// (16K = 16384). Default: 16,64,576,1420,8K,16K.
    #[arg(long, value_delimiter = ',', value_name = "SIZE,...", value_parser = parse_size)]
    sizes: Vec<usize>,
    /// Measuring time in seconds, in all (split evenly over the cells).
    #[arg(long, default_value_t = 3.0, value_name = "SECONDS", value_parser = parse_seconds)]
    seconds: f64,
    /// AES key sizes in bits, comma-separated: 128, 192, 256.
    #[arg(long, value_delimiter = ',', value_name = "BITS,...", default_values_t = [128u32, 256])]
    key_bits: Vec<u32>,
    /// Print the results as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Also draw throughput against message size into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
}

/// `16`, `1420`, `8K` or `8k` (8192).
fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let (digits, scale) = match t.strip_suffix(['K', 'k']) {
        Some(d) => (d, 1024),
        None => (t, 1),
    };
    let n: usize = digits.parse().map_err(|_| format!("`{s}` is not a size: write bytes (1420) or KiB (16K)"))?;
    let size = n.saturating_mul(scale);
    if size == 0 || size > MAX_SIZE {
        return Err(format!("size {s} is out of range: give 1 byte to 64M bytes"));
    }
    Ok(size)
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v <= 3600.0 => Ok(v),
        _ => Err(format!("`{s}` is not a time: give seconds, more than 0 and at most 3600 (e.g. 0.5)")),
    }
}

/// One AES-GCM implementation with its key set up: seal in place returning
/// the 16-byte tag, open in place returning whether the tag verified.
trait Sealer {
    fn seal(&self, buf: &mut [u8]) -> [u8; 16];
    fn open(&self, buf: &mut [u8], tag: &[u8; 16]) -> bool;
}

impl Sealer for Gcm {
    fn seal(&self, buf: &mut [u8]) -> [u8; 16] {
        self.encrypt(&IV, &AAD, buf).unwrap_or([0; 16])
    }
    fn open(&self, buf: &mut [u8], tag: &[u8; 16]) -> bool {
        self.decrypt(&IV, &AAD, buf, tag).is_ok()
    }
}

/// Where an implementation comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Origin {
    /// An espgcm backend.
    Espgcm,
    /// Another crate, for comparison.
    #[cfg_attr(not(feature = "peers"), allow(dead_code))]
    Peer,
}

type KeyFn = Box<dyn Fn(&[u8]) -> Result<Box<dyn Sealer>, String>>;

/// An implementation that can be keyed.
struct Implementation {
    name: &'static str,
    origin: Origin,
    /// Set up a key; `Err` says why this implementation cannot take it.
    key: KeyFn,
}

/// An espgcm backend; any backend in `Backend::ALL` works, new ones included.
fn espgcm_implementation(b: Backend) -> Implementation {
    Implementation {
        name: b.name(),
        origin: Origin::Espgcm,
        key: Box::new(move |k| {
            Gcm::with_backend(k, b).map(|g| Box::new(g) as Box<dyn Sealer>).map_err(|e| e.to_string())
        }),
    }
}

/// ring, aws-lc-rs and RustCrypto aes-gcm when built with `--features peers`.
fn peer_implementations() -> Vec<Implementation> {
    #[cfg(feature = "peers")]
    {
        peers::all()
    }
    #[cfg(not(feature = "peers"))]
    {
        Vec::new()
    }
}

#[cfg(feature = "peers")]
mod peers {
    //! ring, aws-lc-rs and RustCrypto aes-gcm behind [`Sealer`].

    use super::{AAD, IV, Implementation, Origin, Sealer};
    use aes_gcm::aead::{AeadInOut, KeyInit};

    pub(super) fn all() -> Vec<Implementation> {
        vec![
            Implementation { name: "ring", origin: Origin::Peer, key: Box::new(ring_key) },
            Implementation { name: "aws-lc-rs", origin: Origin::Peer, key: Box::new(aws_lc_key) },
            Implementation { name: "rustcrypto", origin: Origin::Peer, key: Box::new(rustcrypto_key) },
        ]
    }

    struct Ring(ring::aead::LessSafeKey);

    fn ring_key(key: &[u8]) -> Result<Box<dyn Sealer>, String> {
        let alg = match key.len() {
            16 => &ring::aead::AES_128_GCM,
            32 => &ring::aead::AES_256_GCM,
            _ => return Err("ring has AES-128 and AES-256 only".to_string()),
        };
        let k = ring::aead::UnboundKey::new(alg, key).map_err(|_| "ring refused the key".to_string())?;
        Ok(Box::new(Ring(ring::aead::LessSafeKey::new(k))))
    }

    impl Sealer for Ring {
        fn seal(&self, buf: &mut [u8]) -> [u8; 16] {
            let nonce = ring::aead::Nonce::assume_unique_for_key(IV);
            match self.0.seal_in_place_separate_tag(nonce, ring::aead::Aad::from(&AAD), buf) {
                Ok(tag) => tag.as_ref().try_into().unwrap_or([0; 16]),
                Err(_) => [0; 16],
            }
        }
        fn open(&self, buf: &mut [u8], tag: &[u8; 16]) -> bool {
            let nonce = ring::aead::Nonce::assume_unique_for_key(IV);
            let Ok(tag) = ring::aead::Tag::try_from(&tag[..]) else { return false };
            self.0.open_in_place_separate_tag(nonce, ring::aead::Aad::from(&AAD), tag, buf, 0..).is_ok()
        }
    }

    struct AwsLc(aws_lc_rs::aead::LessSafeKey);

    fn aws_lc_key(key: &[u8]) -> Result<Box<dyn Sealer>, String> {
        let alg = match key.len() {
            16 => &aws_lc_rs::aead::AES_128_GCM,
            32 => &aws_lc_rs::aead::AES_256_GCM,
            _ => return Err("aws-lc-rs has AES-128 and AES-256 only".to_string()),
        };
        let k = aws_lc_rs::aead::UnboundKey::new(alg, key).map_err(|_| "aws-lc-rs refused the key".to_string())?;
        Ok(Box::new(AwsLc(aws_lc_rs::aead::LessSafeKey::new(k))))
    }

    impl Sealer for AwsLc {
        fn seal(&self, buf: &mut [u8]) -> [u8; 16] {
            let nonce = aws_lc_rs::aead::Nonce::assume_unique_for_key(IV);
            match self.0.seal_in_place_separate_tag(nonce, aws_lc_rs::aead::Aad::from(&AAD), buf) {
                Ok(tag) => tag.as_ref().try_into().unwrap_or([0; 16]),
                Err(_) => [0; 16],
            }
        }
        fn open(&self, buf: &mut [u8], tag: &[u8; 16]) -> bool {
            let nonce = aws_lc_rs::aead::Nonce::assume_unique_for_key(IV);
            self.0.open_in_place_separate_tag(nonce, aws_lc_rs::aead::Aad::from(&AAD), tag, buf).is_ok()
        }
    }

    enum RustCrypto {
        Aes128(Box<aes_gcm::Aes128Gcm>),
        Aes256(Box<aes_gcm::Aes256Gcm>),
    }

    fn rustcrypto_key(key: &[u8]) -> Result<Box<dyn Sealer>, String> {
        let refused = |_| "RustCrypto aes-gcm refused the key".to_string();
        match key.len() {
            16 => Ok(Box::new(RustCrypto::Aes128(Box::new(aes_gcm::Aes128Gcm::new_from_slice(key).map_err(refused)?)))),
            32 => Ok(Box::new(RustCrypto::Aes256(Box::new(aes_gcm::Aes256Gcm::new_from_slice(key).map_err(refused)?)))),
            _ => Err("RustCrypto's aes-gcm names AES-128 and AES-256 only".to_string()),
        }
    }

    fn seal_with<A: AeadInOut<NonceSize = aes_gcm::aead::consts::U12>>(a: &A, buf: &mut [u8]) -> [u8; 16] {
        match a.encrypt_inout_detached(&IV.into(), &AAD, buf.into()) {
            Ok(tag) => tag.as_slice().try_into().unwrap_or([0; 16]),
            Err(_) => [0; 16],
        }
    }

    fn open_with<A: AeadInOut<NonceSize = aes_gcm::aead::consts::U12>>(a: &A, buf: &mut [u8], tag: &[u8; 16]) -> bool {
        let Ok(tag) = aes_gcm::aead::Tag::<A>::try_from(&tag[..]) else { return false };
        a.decrypt_inout_detached(&IV.into(), &AAD, buf.into(), &tag).is_ok()
    }

    impl Sealer for RustCrypto {
        fn seal(&self, buf: &mut [u8]) -> [u8; 16] {
            match self {
                RustCrypto::Aes128(a) => seal_with(a.as_ref(), buf),
                RustCrypto::Aes256(a) => seal_with(a.as_ref(), buf),
            }
        }
        fn open(&self, buf: &mut [u8], tag: &[u8; 16]) -> bool {
            match self {
                RustCrypto::Aes128(a) => open_with(a.as_ref(), buf, tag),
                RustCrypto::Aes256(a) => open_with(a.as_ref(), buf, tag),
            }
        }
    }
}

/// Seal or open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Op {
    Seal,
    Open,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Seal => "seal",
            Op::Open => "open",
        }
    }
}

/// One measured cell.
#[derive(Clone, Debug, Serialize)]
struct Measurement {
    implementation: &'static str,
    op: Op,
    key_bits: u32,
    size: usize,
    /// Nanoseconds per call (fastest batch).
    ns_per_op: f64,
    /// 10^9 bytes per second.
    gbps: f64,
    /// TSC ticks per byte; `None` where there is no TSC.
    cycles_per_byte: Option<f64>,
    /// The fastest implementation of this (op, key_bits, size).
    fastest: bool,
}

#[derive(Serialize)]
struct Skipped {
    name: String,
    reason: String,
}

#[derive(Serialize)]
struct ImplementationInfo {
    name: &'static str,
    origin: Origin,
}

/// What `--json` prints.
#[derive(Serialize)]
struct Report {
    espgcm_version: &'static str,
    arch: &'static str,
    cpu_features: Vec<&'static str>,
    /// Estimated from the TSC and the wall clock over the whole run.
    tsc_ghz: Option<f64>,
    units: Units,
    iv_len: usize,
    aad_len: usize,
    /// The fewest interleaved batches any cell had.
    rounds: u32,
    /// The longest a batch was made to take, in microseconds.
    batch_us: u64,
    seconds: f64,
    sizes: Vec<usize>,
    key_bits: Vec<u32>,
    implementations: Vec<ImplementationInfo>,
    skipped: Vec<Skipped>,
    results: Vec<Measurement>,
}

#[derive(Serialize)]
struct Units {
    gbps: &'static str,
    ns_per_op: &'static str,
    cycles_per_byte: &'static str,
}

const UNITS: Units = Units {
    gbps: "10^9 bytes per second",
    ns_per_op: "nanoseconds per seal or open call, fastest interleaved batch",
    cycles_per_byte: "TSC ticks per byte (the time-stamp counter runs at the nominal frequency; \
                      a tick equals a core cycle only at that frequency)",
};

/// The best batch of one implementation in one cell.
#[derive(Clone, Copy)]
struct Best {
    ns_per_op: f64,
    ticks_per_op: Option<f64>,
}

impl Best {
    const NONE: Best = Best { ns_per_op: f64::INFINITY, ticks_per_op: None };
}

/// Run `f` `n` times; (nanoseconds, TSC ticks) per call.
fn batch(f: &mut dyn FnMut(), n: u64) -> Best {
    let c0 = espgcm::cpu::tsc();
    let t0 = Instant::now();
    for _ in 0..n {
        f();
    }
    let elapsed = t0.elapsed();
    let c1 = espgcm::cpu::tsc();
    let ticks = match (c0, c1) {
        (Some(a), Some(b)) => Some(b.wrapping_sub(a) as f64 / n as f64),
        _ => None,
    };
    Best { ns_per_op: elapsed.as_nanos() as f64 / n as f64, ticks_per_op: ticks }
}

/// How many calls of `f` fill `target`: time doubling batches until one
/// takes at least 100 µs (or the target), then scale.
fn calibrate(f: &mut dyn FnMut(), target: Duration) -> u64 {
    let floor = Duration::from_micros(100).min(target);
    let mut n = 1u64;
    loop {
        let t0 = Instant::now();
        for _ in 0..n {
            f();
        }
        let took = t0.elapsed();
        if took >= floor || n >= 1 << 40 {
            let per_call = took.as_secs_f64() / n as f64;
            return ((target.as_secs_f64() / per_call.max(1e-12)) as u64).max(1);
        }
        n *= 2;
    }
}

/// Messages are a fixed pattern (not zeros, so that no implementation can
/// gain from a shortcut on zero blocks).
fn message(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(7)).collect()
}

fn key(bits: u32) -> Vec<u8> {
    (0..bits as usize / 8).map(|i| 0x42u8.wrapping_add(i as u8)).collect()
}

/// Run `espgcm bench`.
pub fn run(args: BenchArgs) -> ExitCode {
    match bench(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("espgcm bench: {e}");
            ExitCode::from(2)
        }
    }
}

fn bench(args: &BenchArgs) -> Result<ExitCode, String> {
    let sizes: Vec<usize> = if args.sizes.is_empty() { DEFAULT_SIZES.to_vec() } else { args.sizes.clone() };
    let mut key_bits = args.key_bits.clone();
    key_bits.dedup();
    if let Some(bad) = key_bits.iter().find(|b| !matches!(b, 128 | 192 | 256)) {
        return Err(format!("--key-bits {bad}: AES keys are 128, 192 or 256 bits"));
    }

    // What there is to time.
    let candidates: Vec<Implementation> =
        Backend::ALL.into_iter().map(espgcm_implementation).chain(peer_implementations()).collect();
    let mut skipped: Vec<Skipped> = Vec::new();
    let wanted: Vec<String> = args.backend.iter().map(|s| s.trim().to_ascii_lowercase()).collect();
    for w in &wanted {
        if !candidates.iter().any(|c| c.name == w) {
            let names: Vec<&str> = candidates.iter().map(|c| c.name).collect();
            let hint = if matches!(w.as_str(), "ring" | "aws-lc-rs" | "rustcrypto") {
                "; the peers need a build with `--features peers`"
            } else {
                ""
            };
            return Err(format!("--backend {w}: no such implementation; this build has {}{hint}", names.join(", ")));
        }
    }
    let mut chosen: Vec<Implementation> = Vec::new();
    for c in candidates {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == c.name) {
            continue;
        }
        let unsupported = Backend::ALL.into_iter().find(|b| b.name() == c.name).and_then(|b| b.unsupported_reason());
        match unsupported {
            Some(why) => skipped.push(Skipped { name: c.name.to_string(), reason: why.to_string() }),
            None => chosen.push(c),
        }
    }
    if chosen.is_empty() {
        return Err("nothing to time: every implementation asked for is unsupported here (see `espgcm check`)".into());
    }

    let ops = [Op::Seal, Op::Open];
    let cells = key_bits.len() * sizes.len() * ops.len();
    // Per cell: each implementation (and, for open, the copy baseline) gets
    // an equal share, split into ROUNDS batches.
    let per_cell = Duration::from_secs_f64(args.seconds / cells as f64);

    let progress =
        ProgressBar::with_draw_target(Some((cells * chosen.len()) as u64), ProgressDrawTarget::stderr_with_hz(10));
    progress.set_style(
        ProgressStyle::with_template("{spinner} bench [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );

    let mut results: Vec<Measurement> = Vec::new();
    let mut min_rounds = u32::MAX;
    let (mut total_ticks, mut total_ns) = (0f64, 0f64);
    for &bits in &key_bits {
        let k = key(bits);
        let reference = Gcm::with_backend(&k, Backend::Scalar).map_err(|e| e.to_string())?;
        let mut keyed: Vec<(&Implementation, Box<dyn Sealer>)> = Vec::new();
        for imp in &chosen {
            match (imp.key)(&k) {
                Ok(s) => keyed.push((imp, s)),
                Err(why) => {
                    let name = format!("{} (AES-{bits})", imp.name);
                    skipped.push(Skipped { name, reason: why });
                    progress.inc((sizes.len() * ops.len()) as u64);
                }
            }
        }
        for &size in &sizes {
            let plain = message(size);
            let mut ct = plain.clone();
            let tag = reference.encrypt(&IV, &AAD, &mut ct).map_err(|e| e.to_string())?;
            // Never time a wrong answer.
            for (imp, s) in &keyed {
                let mut buf = plain.clone();
                if s.seal(&mut buf) != tag || buf != ct {
                    return Err(format!(
                        "{} disagrees with espgcm's scalar backend on a {size}-byte AES-{bits} seal: \
                         not timed; run `espgcm check`",
                        imp.name
                    ));
                }
                if !s.open(&mut buf, &tag) || buf != plain {
                    return Err(format!("{} does not open a {size}-byte AES-{bits} message", imp.name));
                }
            }
            for op in ops {
                progress.set_message(format!("{} AES-{bits} {size} B", op.name()));
                let shares = keyed.len() + usize::from(op == Op::Open);
                let per_share = per_cell / shares as u32;
                let per_batch = (per_share / MIN_ROUNDS).min(MAX_BATCH);
                let rounds = ((per_share.as_secs_f64() / per_batch.as_secs_f64().max(1e-9)) as u32).max(MIN_ROUNDS);
                min_rounds = min_rounds.min(rounds);
                let mut bufs: Vec<Vec<u8>> = keyed.iter().map(|_| plain.clone()).collect();
                let mut copy_buf = ct.clone();
                let mut copy_only = || {
                    copy_buf.copy_from_slice(&ct);
                    black_box(&mut copy_buf);
                };
                let copy_n = if op == Op::Open { calibrate(&mut copy_only, per_batch) } else { 0 };
                let mut counts = Vec::with_capacity(keyed.len());
                for ((_, s), buf) in keyed.iter().zip(bufs.iter_mut()) {
                    let mut f = call(op, s.as_ref(), buf, &ct, &tag);
                    counts.push(calibrate(&mut f, per_batch));
                }
                let mut best = vec![Best::NONE; keyed.len()];
                let mut copy_best = Best::NONE;
                for _ in 0..rounds {
                    for (i, ((_, s), buf)) in keyed.iter().zip(bufs.iter_mut()).enumerate() {
                        let mut f = call(op, s.as_ref(), buf, &ct, &tag);
                        let b = batch(&mut f, counts[i]);
                        account(&b, counts[i], &mut total_ticks, &mut total_ns);
                        if b.ns_per_op < best[i].ns_per_op {
                            best[i] = b;
                        }
                    }
                    if op == Op::Open {
                        let b = batch(&mut copy_only, copy_n);
                        if b.ns_per_op < copy_best.ns_per_op {
                            copy_best = b;
                        }
                    }
                }
                let first = results.len();
                for ((imp, _), b) in keyed.iter().zip(&best) {
                    // Open restores the ciphertext before each call; the
                    // copy, timed alone, is taken back out.
                    let (ns, ticks) = if op == Op::Open {
                        let ns = (b.ns_per_op - copy_best.ns_per_op).max(b.ns_per_op * 0.01);
                        let ticks = match (b.ticks_per_op, copy_best.ticks_per_op) {
                            (Some(t), Some(c)) => Some((t - c).max(t * 0.01)),
                            _ => None,
                        };
                        (ns, ticks)
                    } else {
                        (b.ns_per_op, b.ticks_per_op)
                    };
                    results.push(Measurement {
                        implementation: imp.name,
                        op,
                        key_bits: bits,
                        size,
                        ns_per_op: ns,
                        gbps: size as f64 / ns,
                        cycles_per_byte: ticks.map(|t| t / size as f64),
                        fastest: false,
                    });
                }
                if let Some(top) = results[first..]
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.gbps.total_cmp(&b.1.gbps))
                    .map(|(i, _)| first + i)
                {
                    results[top].fastest = true;
                }
                progress.inc(keyed.len() as u64);
            }
        }
    }
    progress.finish_and_clear();

    let tsc_ghz = (total_ns > 0.0 && total_ticks > 0.0).then(|| total_ticks / total_ns);
    let features = espgcm::cpu::features();
    let mut implementations: Vec<ImplementationInfo> = Vec::new();
    for r in &results {
        if !implementations.iter().any(|i| i.name == r.implementation) {
            let origin = chosen.iter().find(|c| c.name == r.implementation).map_or(Origin::Espgcm, |c| c.origin);
            implementations.push(ImplementationInfo { name: r.implementation, origin });
        }
    }
    let report = Report {
        espgcm_version: env!("CARGO_PKG_VERSION"),
        arch: std::env::consts::ARCH,
        cpu_features: features.iter().filter(|f| f.1).map(|f| f.0).collect(),
        tsc_ghz,
        units: UNITS,
        iv_len: IV.len(),
        aad_len: AAD.len(),
        rounds: min_rounds,
        batch_us: MAX_BATCH.as_micros() as u64,
        seconds: args.seconds,
        sizes: sizes.clone(),
        key_bits: key_bits.clone(),
        implementations,
        skipped,
        results,
    };

    if let Some(path) = &args.plot {
        draw_chart(path, &report.results, &sizes)
            .map_err(|e| format!("cannot write the chart {}: {e}", path.display()))?;
    }
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(|e| format!("cannot encode JSON: {e}"))?;
        println!("{text}");
    } else {
        print_table(&report);
        if let Some(path) = &args.plot {
            println!("chart: {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn account(b: &Best, n: u64, ticks: &mut f64, ns: &mut f64) {
    if let Some(t) = b.ticks_per_op {
        *ticks += t * n as f64;
        *ns += b.ns_per_op * n as f64;
    }
}

/// One timed call: seal in place, or restore the ciphertext and open it.
fn call<'a>(op: Op, s: &'a dyn Sealer, buf: &'a mut [u8], ct: &'a [u8], tag: &'a [u8; 16]) -> Box<dyn FnMut() + 'a> {
    match op {
        Op::Seal => Box::new(move || {
            black_box(s.seal(black_box(&mut *buf)));
        }),
        Op::Open => Box::new(move || {
            buf.copy_from_slice(ct);
            black_box(s.open(black_box(&mut *buf), tag));
        }),
    }
}

/// `16 B`, `1420 B`, `8 KiB`.
pub fn size_label(size: usize) -> String {
    if size >= 1024 && size.is_multiple_of(1024) { format!("{} KiB", size / 1024) } else { format!("{size} B") }
}

fn print_table(r: &Report) {
    println!(
        "espgcm {} bench: AES-GCM in place, {}-byte IV, {}-byte AAD; {} s in all, the fastest of {} or more \
         interleaved batches of at most {} us per cell",
        r.espgcm_version, r.iv_len, r.aad_len, r.seconds, r.rounds, r.batch_us
    );
    let cpu = if r.cpu_features.is_empty() { "-".to_string() } else { r.cpu_features.join(" ") };
    let tsc = r.tsc_ghz.map_or("no TSC".to_string(), |g| format!("TSC {g:.2} GHz"));
    println!("cpu: {}: {cpu}; {tsc}", r.arch);
    for s in &r.skipped {
        println!("skipped: {}: {}", s.name, s.reason);
    }
    println!("GB/s = 10^9 bytes/s; c/B = TSC ticks per byte (see --help); * = fastest at that size");
    let names: Vec<&str> = r.implementations.iter().map(|i| i.name).collect();
    let name_width = names.iter().map(|n| n.len()).max().unwrap_or(6).max(10);
    for &bits in &r.key_bits {
        for op in [Op::Seal, Op::Open] {
            let rows: Vec<&Measurement> = r.results.iter().filter(|m| m.key_bits == bits && m.op == op).collect();
            if rows.is_empty() {
                continue;
            }
            println!();
            let mut head = format!("{:<name_width$}", format!("{} AES-{bits}", op.name()));
            let mut units = " ".repeat(name_width);
            for &size in &r.sizes {
                head.push_str(&format!(" {:>13}", size_label(size)));
                units.push_str(&format!(" {:>13}", "GB/s   c/B"));
            }
            head.push_str("   ticks per call");
            units.push_str("   (least-squares fit)");
            println!("{head}");
            println!("{units}");
            for name in &names {
                let mut line = format!("{name:<name_width$}");
                let mut any = false;
                for &size in &r.sizes {
                    match rows.iter().find(|m| m.implementation == *name && m.size == size) {
                        Some(m) => {
                            any = true;
                            let mark = if m.fastest { '*' } else { ' ' };
                            let cpb = m.cycles_per_byte.map_or("-".to_string(), |c| format!("{c:.2}"));
                            line.push_str(&format!(" {mark}{:>6} {:>6}", gbps_text(m.gbps), cpb));
                        }
                        None => line.push_str(&format!(" {:>13}", "-")),
                    }
                }
                if any {
                    if let Some((intercept, slope)) = r.tsc_ghz.and_then(|ghz| cost_fit(&rows, name, ghz)) {
                        line.push_str(&format!("   {intercept:>5.0} + {slope:.3}/B"));
                    }
                    println!("{line}");
                }
            }
        }
    }
}

/// The cost model `ticks per call = intercept + slope x bytes`, fitted by
/// least squares over the sizes measured for `name` (at least two):
/// the intercept is the fixed cost of a call, the slope the cost per byte.
fn cost_fit(rows: &[&Measurement], name: &str, tsc_ghz: f64) -> Option<(f64, f64)> {
    let points: Vec<(f64, f64)> =
        rows.iter().filter(|m| m.implementation == name).map(|m| (m.size as f64, m.ns_per_op * tsc_ghz)).collect();
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx == 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    Some((my - slope * mx, slope))
}

/// Three significant digits, so that 0.035 and 11.4 both read well.
fn gbps_text(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else if v >= 0.1 {
        format!("{v:.3}")
    } else {
        format!("{v:.4}")
    }
}

/// Colours that stay apart from each other on white (one per implementation,
/// the same in every panel).
const SERIES_COLOURS: [(u8, u8, u8); 8] = [
    (31, 119, 180),
    (214, 39, 40),
    (44, 160, 44),
    (255, 127, 14),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (23, 190, 207),
];

/// `16`, `1420`, `8K`: short tick labels for the size axis.
fn size_tick(v: f64) -> String {
    let n = v.round() as usize;
    if n >= 1024 && n.is_multiple_of(1024) { format!("{}K", n / 1024) } else { n.to_string() }
}

/// `0.05`, `0.5`, `2`, `10`: tick labels for the throughput axis.
fn gbps_tick(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// Draw throughput against message size: one panel per (operation, key
/// size), one line per implementation, both axes logarithmic (sizes span
/// three orders of magnitude, and so do the throughputs of the scalar
/// backend and the vector ones).
fn draw_chart(path: &std::path::Path, results: &[Measurement], sizes: &[usize]) -> Result<(), String> {
    chart(path, results, sizes).map_err(|e| e.to_string())
}

fn chart(path: &std::path::Path, results: &[Measurement], sizes: &[usize]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;

    let mut key_bits: Vec<u32> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for m in results {
        if !key_bits.contains(&m.key_bits) {
            key_bits.push(m.key_bits);
        }
        if !names.contains(&m.implementation) {
            names.push(m.implementation);
        }
    }
    let ops: Vec<Op> = [Op::Seal, Op::Open].into_iter().filter(|op| results.iter().any(|m| m.op == *op)).collect();
    if results.is_empty() {
        return Err("no results to draw".into());
    }
    let (rows, cols) = (ops.len().max(1), key_bits.len().max(1));

    let (min_size, max_size) = sizes.iter().fold((usize::MAX, 0), |(lo, hi), &s| (lo.min(s), hi.max(s)));
    let (x0, x1) = (min_size as f64 / 1.4, max_size as f64 * 1.4);
    let (lo, hi) = results.iter().fold((f64::INFINITY, 0f64), |(lo, hi), m| (lo.min(m.gbps), hi.max(m.gbps)));
    let (y0, y1) = (lo / 1.6, hi * 1.6);
    let mut ticks: Vec<f64> = sizes.iter().map(|&s| s as f64).collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    // 1-2-5 steps on the throughput axis.
    let y_ticks: Vec<f64> =
        (-3..=3).flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e))).filter(|v| (y0..=y1).contains(v)).collect();

    let (w, h) = (620 * cols as u32, 440 * rows as u32 + 40);
    let root = SVGBackend::new(path, (w, h)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!("espgcm {}: AES-GCM throughput against message size", env!("CARGO_PKG_VERSION")),
        ("sans-serif", 22),
    )?;
    let panels = root.split_evenly((rows, cols));
    for (r, &op) in ops.iter().enumerate() {
        for (c, &bits) in key_bits.iter().enumerate() {
            let Some(area) = panels.get(r * cols + c) else { continue };
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{} AES-{bits}", op.name()), ("sans-serif", 18))
                .margin(14)
                .x_label_area_size(44)
                .y_label_area_size(60)
                .build_cartesian_2d(
                    (x0..x1).log_scale().with_key_points(ticks.clone()),
                    (y0..y1).log_scale().with_key_points(y_ticks.clone()),
                )?;
            chart
                .configure_mesh()
                .x_desc("message size, bytes (log scale)")
                .y_desc("GB/s (log scale)")
                .x_label_formatter(&|v| size_tick(*v))
                .y_label_formatter(&|v| gbps_tick(*v))
                .light_line_style(RGBColor(235, 235, 235))
                .label_style(("sans-serif", 13))
                .axis_desc_style(("sans-serif", 14))
                .draw()?;
            for (i, name) in names.iter().enumerate() {
                let (cr, cg, cb) = SERIES_COLOURS[i % SERIES_COLOURS.len()];
                let colour = RGBColor(cr, cg, cb);
                let mut points: Vec<(f64, f64)> = results
                    .iter()
                    .filter(|m| m.implementation == *name && m.op == op && m.key_bits == bits)
                    .map(|m| (m.size as f64, m.gbps))
                    .collect();
                if points.is_empty() {
                    continue;
                }
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                chart
                    .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
                    .label(*name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
                chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.9))
                .border_style(RGBColor(160, 160, 160))
                .label_font(("sans-serif", 13))
                .draw()?;
        }
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(implementation: &'static str, size: usize, ns_per_op: f64) -> Measurement {
        Measurement {
            implementation,
            op: Op::Seal,
            key_bits: 128,
            size,
            ns_per_op,
            gbps: size as f64 / ns_per_op,
            cycles_per_byte: None,
            fastest: false,
        }
    }

    #[test]
    fn the_cost_fit_recovers_a_line_and_ignores_other_implementations() {
        // 2 GHz: ticks = 2 * ns = 80 + 0.5 * bytes.
        let cells: Vec<Measurement> = [16usize, 64, 1420, 16384]
            .iter()
            .map(|&size| cell("a", size, (80.0 + 0.5 * size as f64) / 2.0))
            .chain([cell("b", 64, 1.0e6)])
            .collect();
        let rows: Vec<&Measurement> = cells.iter().collect();
        let (intercept, slope) = cost_fit(&rows, "a", 2.0).unwrap();
        assert!((intercept - 80.0).abs() < 1e-6, "{intercept}");
        assert!((slope - 0.5).abs() < 1e-9, "{slope}");
        assert_eq!(cost_fit(&rows, "b", 2.0), None, "one size is no fit");
    }
}
