//! `espgcm burnin`: stream zeros and other patterns through every SIMD
//! backend for a while and compare each result with the scalar backend's,
//! like piping /dev/zero through an IPsec tunnel into `xxd -a` to find the
//! hosts whose AES hardware path corrupts blocks (the 2015 Xen/AES-NI bug).

use super::SplitMix64;
use clap::Args;
use espgcm::{Backend, Gcm};
use indicatif::{ProgressBar, ProgressStyle};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Options of `espgcm burnin`.
#[derive(Args)]
pub(crate) struct BurninArgs {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10, value_name = "N")]
    seconds: u64,
    /// Test only this backend (aesni, vaes256, vaes512, armv8); default:
    /// every SIMD backend this CPU supports.
    #[arg(long, value_name = "NAME")]
    backend: Option<Backend>,
    /// Message size in bytes; default: cycle through 16384, 1420, 577 and 64.
    #[arg(long, value_name = "BYTES")]
    size: Option<usize>,
    /// Most mismatching rows printed per message (the rest are counted).
    #[arg(long, default_value_t = 32, value_name = "ROWS")]
    max_rows: usize,
    /// Corrupt the tested backends' keystream on purpose (runs of 2 blocks
    /// XOR 0x5a, about one run per --inject-one-in blocks) to see a detection.
    #[cfg(feature = "fault-injection")]
    #[arg(long)]
    inject: bool,
    /// With --inject: about one corrupted run per this many blocks.
    #[cfg(feature = "fault-injection")]
    #[arg(long, default_value_t = 20_000, value_name = "BLOCKS")]
    inject_one_in: u64,
}

/// The inputs streamed through each backend.
const PATTERNS: [&str; 4] = ["zeros", "0xff", "counting", "random"];
const SIZES: [usize; 4] = [16384, 1420, 577, 64];

fn fill(pattern: &str, buf: &mut [u8], rng: &mut SplitMix64) {
    match pattern {
        "zeros" => buf.fill(0),
        "0xff" => buf.fill(0xff),
        "counting" => buf.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8),
        _ => buf.iter_mut().for_each(|b| *b = rng.next() as u8),
    }
}

/// Run the burn-in; exit 0 if every result matched, 1 on any mismatch, 2
/// if the request cannot be run.
pub(crate) fn run(args: BurninArgs) -> ExitCode {
    let backends: Vec<Backend> = match args.backend {
        Some(Backend::Scalar) => {
            eprintln!("espgcm burnin: scalar is the reference the others are compared with; name a SIMD backend");
            return ExitCode::from(2);
        }
        Some(b) => match b.unsupported_reason() {
            Some(why) => {
                eprintln!("espgcm burnin: backend {b} is not supported: {why}");
                return ExitCode::from(2);
            }
            None => vec![b],
        },
        None => Backend::ALL.into_iter().filter(|b| *b != Backend::Scalar && b.is_supported()).collect(),
    };
    if args.size == Some(0) {
        eprintln!("espgcm burnin: --size must be at least 1 byte");
        return ExitCode::from(2);
    }
    for b in Backend::ALL.into_iter().filter(|b| *b != Backend::Scalar && args.backend.is_none()) {
        if let Some(why) = b.unsupported_reason() {
            println!("{:<8} skipped: {why}", b.name());
        }
    }
    if backends.is_empty() {
        println!(
            "verdict: PASS (nothing checked): no SIMD backend is supported here; the scalar backend needs no burn-in"
        );
        return ExitCode::SUCCESS;
    }
    let names: Vec<&str> = backends.iter().map(|b| b.name()).collect();
    println!(
        "burn-in: {} against scalar for {} s; patterns {}; seal and open",
        names.join(", "),
        args.seconds,
        PATTERNS.join(", ")
    );

    #[cfg(feature = "fault-injection")]
    if args.inject {
        let one_in_blocks = args.inject_one_in;
        for &b in &backends {
            espgcm::fault::inject(b, espgcm::fault::FaultPlan { one_in_blocks, run_blocks: 2, xor: [0x5a; 16] });
        }
        println!(
            "fault injection on: runs of 2 blocks, about one per {one_in_blocks} blocks of each tested backend's \
             keystream, XOR 0x5a"
        );
    }

    let bar = ProgressBar::new(args.seconds.max(1) * 1000);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut state = Burnin { rng: SplitMix64(0xb0_1213), max_rows: args.max_rows, checked: Vec::new() };
    state.checked = backends.iter().map(|&b| (b, 0u64, 0u64)).collect();
    let deadline = Duration::from_secs(args.seconds);
    let start = Instant::now();
    let mut round = 0usize;
    let mut mismatches = 0u64;
    while start.elapsed() < deadline || round == 0 {
        let size = args.size.unwrap_or(SIZES[round % SIZES.len()]);
        let pattern = PATTERNS[(round / SIZES.len()) % PATTERNS.len()];
        for i in 0..backends.len() {
            match state.one_message(i, round, pattern, size) {
                Ok(found) => mismatches += found,
                Err(e) => {
                    bar.finish_and_clear();
                    eprintln!("espgcm burnin: {e}");
                    return ExitCode::from(2);
                }
            }
        }
        round += 1;
        if round.is_multiple_of(8) {
            bar.set_position(start.elapsed().as_millis().min(u128::from(u64::MAX)) as u64);
            let bytes: u64 = state.checked.iter().map(|c| c.1).sum();
            bar.set_message(format!("{} MB checked, {mismatches} mismatches", bytes / 1_000_000));
        }
    }
    bar.finish_and_clear();

    #[cfg(feature = "fault-injection")]
    if args.inject {
        espgcm::fault::clear();
        println!(
            "fault injection: {} blocks corrupted on purpose (the mismatches below include them: \
             this run shows the detection works)",
            espgcm::fault::injected()
        );
    }
    let secs = start.elapsed().as_secs_f64();
    for (b, bytes, wrong) in &state.checked {
        println!(
            "  {:<8} {:.1} MB sealed and opened in {secs:.1} s, compared with scalar: {}",
            b.name(),
            *bytes as f64 / 1e6,
            if *wrong == 0 { "all identical".to_string() } else { format!("{wrong} wrong blocks or tags") }
        );
    }
    if mismatches == 0 {
        println!("verdict: PASS: {} identical to scalar on every byte for {secs:.1} s", names.join(", "));
        ExitCode::SUCCESS
    } else {
        let bad: Vec<&str> = state.checked.iter().filter(|c| c.2 > 0).map(|c| c.0.name()).collect();
        println!(
            "verdict: FAIL: {mismatches} mismatches ({}): do not trust these backends on this host; \
             run with ESPGCM_DISABLE={} and report the hardware",
            bad.join(", "),
            bad.join(",")
        );
        ExitCode::FAILURE
    }
}

struct Burnin {
    rng: SplitMix64,
    max_rows: usize,
    /// Per backend: bytes checked, wrong blocks or tags.
    checked: Vec<(Backend, u64, u64)>,
}

impl Burnin {
    /// Seal and open one message on backend `index` and on scalar, compare,
    /// print any mismatch; returns the number of mismatching messages (0 to
    /// 2: seal and open).
    fn one_message(&mut self, index: usize, round: usize, pattern: &str, size: usize) -> Result<u64, String> {
        let Some(&(backend, _, _)) = self.checked.get(index) else {
            return Ok(0);
        };
        let key_len = [16, 24, 32][round % 3];
        let key: Vec<u8> = (0..key_len).map(|_| self.rng.next() as u8).collect();
        let mut iv = [0u8; 12];
        iv[4..].copy_from_slice(&(round as u64).to_be_bytes());
        let aad = (round as u64).to_be_bytes();
        let mut plain = vec![0u8; size];
        fill(pattern, &mut plain, &mut self.rng);

        let simd = Gcm::with_backend(&key, backend).map_err(|e| e.to_string())?;
        let scalar = Gcm::with_backend(&key, Backend::Scalar).map_err(|e| e.to_string())?;
        let (mut ct, mut ct_ref) = (plain.clone(), plain.clone());
        let tag = simd.encrypt(&iv, &aad, &mut ct).map_err(|e| e.to_string())?;
        let tag_ref = scalar.encrypt(&iv, &aad, &mut ct_ref).map_err(|e| e.to_string())?;
        // Open the reference ciphertext on the SIMD backend. The tag is that
        // of the correct ciphertext, so a keystream fault here shows as wrong
        // plaintext under a valid tag, never as a refusal.
        let mut opened = ct_ref.clone();
        let open_result = simd.decrypt(&iv, &aad, &mut opened, &tag_ref);

        let what = |op: &str| format!("{backend} {op}, {pattern}, message {round} ({size} bytes, AES-{})", key_len * 8);
        let mut found = 0;
        // What a receiver gets from the SIMD ciphertext: plain ^ (ct ^ ct_ref).
        let received: Vec<u8> = plain.iter().zip(ct.iter().zip(&ct_ref)).map(|(p, (a, b))| p ^ a ^ b).collect();
        if received != plain || tag != tag_ref {
            found += 1;
            self.report(index, &what("seal"), &plain, &received, (tag_ref, tag));
        }
        if open_result.is_err() || opened != plain {
            found += 1;
            if open_result.is_err() {
                println!("MISMATCH {}: the correct tag was refused", what("open"));
                if let Some(c) = self.checked.get_mut(index) {
                    c.2 += 1;
                }
            } else {
                self.report(index, &what("open"), &plain, &opened, (tag_ref, tag_ref));
            }
        }
        if let Some(c) = self.checked.get_mut(index) {
            c.1 += 2 * size as u64;
        }
        Ok(found)
    }

    /// Print the rows of `actual` that differ from `expected`, 16-byte
    /// aligned with offsets, as `xxd -a` would show them (a `*` for skipped
    /// rows), and the expected row under each.
    fn report(&mut self, index: usize, what: &str, expected: &[u8], actual: &[u8], tags: ([u8; 16], [u8; 16])) {
        let wrong: Vec<usize> = expected
            .chunks(16)
            .zip(actual.chunks(16))
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .map(|(i, _)| i)
            .collect();
        let tag_wrong = tags.0 != tags.1;
        if let Some(c) = self.checked.get_mut(index) {
            c.2 += wrong.len() as u64 + u64::from(tag_wrong);
        }
        println!(
            "MISMATCH {what}: {} of {} blocks wrong{}; what the receiver gets (xxd -a), expected below each row:",
            wrong.len(),
            expected.len().div_ceil(16),
            if tag_wrong { ", tag wrong" } else { "" }
        );
        let mut last: Option<usize> = None;
        for &row in wrong.iter().take(self.max_rows) {
            if last.is_some_and(|l| row > l + 1) || (last.is_none() && row > 0) {
                println!("*");
            }
            let (lo, hi) = (row * 16, (row * 16 + 16).min(expected.len()));
            println!("{}", xxd_row(row * 16, actual.get(lo..hi).unwrap_or(&[])));
            println!("{}  (expected)", xxd_row(row * 16, expected.get(lo..hi).unwrap_or(&[])));
            last = Some(row);
        }
        if wrong.len() > self.max_rows {
            println!("... and {} more wrong rows", wrong.len() - self.max_rows);
        }
        if tag_wrong {
            println!("tag:      {}  (expected {})", hex(&tags.1), hex(&tags.0));
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One `xxd` row: offset, 16 bytes in groups of two, and the printable
/// characters.
fn xxd_row(offset: usize, bytes: &[u8]) -> String {
    let mut hex = String::new();
    for i in 0..16 {
        match bytes.get(i) {
            Some(b) => hex.push_str(&format!("{b:02x}")),
            None => hex.push_str("  "),
        }
        if i % 2 == 1 && i < 15 {
            hex.push(' ');
        }
    }
    let text: String = bytes.iter().map(|&b| if (0x20..0x7f).contains(&b) { b as char } else { '.' }).collect();
    format!("{offset:08x}: {hex}  {text}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xxd_rows_look_like_xxd() {
        let row: Vec<u8> = (0x41..0x51).collect();
        assert_eq!(xxd_row(0x120, &row), "00000120: 4142 4344 4546 4748 494a 4b4c 4d4e 4f50  ABCDEFGHIJKLMNOP");
        // A short row keeps the text column where a full row has it.
        let short = xxd_row(0, &[0, 0xff, 0x20]);
        assert_eq!(short, "00000000: 00ff 20                                  .. ");
        assert_eq!(short.find(".. "), xxd_row(0, &row).find("ABC"));
    }
}
