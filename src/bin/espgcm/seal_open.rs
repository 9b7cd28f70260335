//! `espgcm seal` and `espgcm open`: run the IP packets of a capture through
//! one SA's [`Outbound::seal`] or [`Inbound::open`] and write the result as a
//! capture of the same format and link type, with a summary of what
//! happened to every packet.

use crate::pcap::{self, Frame};
use crate::sa_file;
use clap::Args;
use espgcm::esp::{Direction, EspError, Inbound, Outbound};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options of `espgcm seal`.
#[derive(Args, Debug)]
#[command(after_help = seal_help())]
pub struct SealArgs {
    /// The SA, a TOML file (format below), or a file with many SAs.
    #[arg(long, value_name = "SA.toml")]
    sa: PathBuf,
    /// In a file with many SAs ([[sa]] entries), the name of the one to
    /// seal with (default: the only one with direction = "out").
    #[arg(long, value_name = "NAME")]
    sa_name: Option<String>,
    /// The capture to seal: pcap or pcapng; Ethernet, raw IP or Linux cooked.
    #[arg(long = "in", value_name = "plain.pcap")]
    input: PathBuf,
    /// Where to write the sealed capture (same format and link type).
    #[arg(long = "out", value_name = "esp.pcap")]
    output: PathBuf,
    /// Also write Wireshark's ESP SA table (the `esp_sa` file) for this SA,
    /// so that Wireshark or tshark decrypts and checks the output.
    #[arg(long, value_name = "FILE")]
    wireshark_keys: Option<PathBuf>,
}

/// Options of `espgcm open`.
#[derive(Args, Debug)]
#[command(after_help = OPEN_HELP)]
pub struct OpenArgs {
    /// The SA, a TOML file (format in `espgcm seal --help`), or a file with many SAs.
    #[arg(long, value_name = "SA.toml")]
    sa: PathBuf,
    /// In a file with many SAs ([[sa]] entries), the name of the one to
    /// open with (default: the only one with direction = "in").
    #[arg(long, value_name = "NAME")]
    sa_name: Option<String>,
    /// The capture of ESP packets: pcap or pcapng; Ethernet, raw IP or Linux cooked.
    #[arg(long = "in", value_name = "esp.pcap")]
    input: PathBuf,
    /// Where to write the opened (decrypted) packets (same format and link type).
    #[arg(long = "out", value_name = "plain.pcap")]
    output: PathBuf,
}

fn seal_help() -> String {
    format!("{SEAL_HELP}{}{MANY_HELP}", sa_file::EXAMPLE)
}

const MANY_HELP: &str = "
A file with many SAs and policies (manual keying, as for `espgcm tunnel`:
[[sa]] entries with `direction = \"out\"` or `\"in\"`, an optional `name`, and
the keys above; see the README) works too: --sa-name picks the SA, and
without it seal takes the only SA with direction = \"out\".";

const SEAL_HELP: &str = "\
Every IPv4/IPv6 packet is sealed with the SA (sequence numbers from 1, in
capture order) and written in place of the original; frames that are not IP
(ARP, ...) are copied unchanged; a packet the SA refuses (a wrong checksum, a
fragment, ...) is left out and counted. Ethernet padding after an IP packet
is dropped. Exit status: 0 if every IP packet was sealed, 1 if some were
refused, 2 if nothing could be done (a missing file, a bad SA file).

Example:
  $ espgcm seal --sa sa.toml --in plain.pcap --out esp.pcap --wireshark-keys esp_sa
  $ tshark -r esp.pcap -o esp.enable_encryption_decode:TRUE \\
        -o esp.enable_authentication_check:TRUE -o \"uat:esp_sa:$(grep -v '^#' esp_sa | head -1)\"
  (or copy esp_sa to ~/.config/wireshark/esp_sa and open esp.pcap in Wireshark)

SA file (TOML; the field names are those of espgcm::esp::SaConfig):
";

const OPEN_HELP: &str = "\
Every IP packet is opened with the SA (ICV, replay window, padding and inner
checksums checked) and the decrypted packet is written in its place; frames
that are not IP are copied unchanged; packets the SA refuses are left out and
counted by kind of rejection. NAT-T keepalives, IKE packets on UDP 4500 and
dummy packets are counted as benign, not as rejections. Exit status: 0 if
every IP packet was opened or was benign, 1 if some were refused, 2 if
nothing could be done.

Example:
  $ espgcm open --sa sa.toml --in esp.pcap --out plain.pcap

The SA file is the one `espgcm seal` used (see `espgcm seal --help`); from a
file with many SAs, --sa-name picks the SA (default: the only one with
direction = \"in\").";

/// Short name of a kind of rejection, for the summary.
fn kind(e: &EspError) -> &'static str {
    match e {
        EspError::Truncated { .. } => "truncated",
        EspError::Malformed { .. } => "malformed",
        EspError::Fragment => "IP fragment",
        EspError::UnknownSpi { .. } | EspError::NoSa { .. } => "unknown SPI",
        EspError::Replay { .. } => "replayed",
        EspError::TooOld { .. } => "too old for the replay window",
        EspError::Auth { .. } => "ICV check failed",
        EspError::BadPadding { .. } => "bad padding",
        EspError::ChecksumBeforeEncrypt { .. } => "checksum wrong before encryption",
        EspError::ChecksumAfterDecrypt { .. } => "checksum wrong after decryption",
        EspError::UnexpectedNextHeader { .. } => "next header not delivered by this SA",
        EspError::SequenceExhausted { .. } => "sequence numbers exhausted",
        EspError::SequenceLimit { .. } => "sequence number limit reached",
        EspError::Dummy { .. } => "dummy packet",
        EspError::NatKeepalive => "NAT-T keepalive",
        EspError::NonEsp => "IKE (non-ESP marker)",
        EspError::TooLarge { .. } => "too large",
        EspError::PacketTooBig { .. } => "too big for the path MTU",
        EspError::NotCovered { .. } => "outside the SA's traffic selectors",
        EspError::Unsupported(_) => "unsupported",
        EspError::Invalid { .. } => "invalid",
        EspError::Crypto(_) => "AES-GCM error",
        EspError::KeyInUse { .. } => "key in use by another sender",
        EspError::LifetimeExpired { .. } => "SA lifetime expired",
        _ => "other",
    }
}

/// Counts of one run.
#[derive(Default)]
struct Tally {
    done: u64,
    not_ip: u64,
    /// kind -> (count, first packet number, first message)
    refused: BTreeMap<&'static str, (u64, u64, String)>,
    benign: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn record(&mut self, packet: u64, e: &EspError) {
        if e.is_benign() {
            *self.benign.entry(kind(e)).or_default() += 1;
        } else {
            self.refused.entry(kind(e)).or_insert((0, packet, e.to_string())).0 += 1;
        }
    }

    fn refused_total(&self) -> u64 {
        self.refused.values().map(|v| v.0).sum()
    }
}

fn fail(command: &str, message: &str) -> ExitCode {
    eprintln!("espgcm {command}: {message}");
    ExitCode::from(2)
}

/// Run `espgcm seal`.
pub fn seal(args: SealArgs) -> ExitCode {
    let cfg = match sa_file::load(&args.sa, args.sa_name.as_deref(), Direction::Outbound) {
        Ok(c) => c,
        Err(e) => return fail("seal", &e),
    };
    // Check the key table can be made before doing any work.
    let keys = match &args.wireshark_keys {
        Some(_) => match sa_file::wireshark_esp_sa(&cfg) {
            Ok(t) => Some(t),
            Err(e) => return fail("seal", &format!("--wireshark-keys: {e}")),
        },
        None => None,
    };
    if let Some(keys_path) = &args.wireshark_keys {
        for (other, flag) in [(&args.input, "--in"), (&args.output, "--out")] {
            if let Err(e) = pcap::refuse_same_file(other, flag, keys_path, "--wireshark-keys") {
                return fail("seal", &e);
            }
        }
        if args.output == *keys_path {
            return fail("seal", "--wireshark-keys and --out name the same path; give each its own file");
        }
    }
    let describe = sa_file::describe(&cfg);
    let tx = match Outbound::new(cfg) {
        Ok(t) => t,
        Err(e) => return fail("seal", &format!("SA file {}: {e}", args.sa.display())),
    };
    let mut tally = Tally::default();
    let result = process(&args.input, &args.output, &mut tally, |ip, out| tx.seal(ip, out));
    let info = match result {
        Ok(i) => i,
        Err(e) => return fail("seal", &e),
    };
    if let (Some(path), Some(table)) = (&args.wireshark_keys, &keys)
        && let Err(e) = std::fs::write(path, table)
    {
        return fail("seal", &format!("cannot write the Wireshark key table {}: {e}", path.display()));
    }
    summary("seal", "sealed", &args.input, &args.output, &describe, &info, &tally);
    if let Some(path) = &args.wireshark_keys {
        println!(
            "wireshark keys: {} (Wireshark's esp_sa table; see `espgcm seal --help` for how to use it)",
            path.display()
        );
    }
    if tally.refused_total() > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// Run every frame of `input` into `output`: IP packets through `apply`
/// (seal or open, into its reusable output buffer), other frames copied;
/// refusals are counted in `tally` and their frames left out.
fn process(
    input: &Path,
    output: &Path,
    tally: &mut Tally,
    mut apply: impl FnMut(&[u8], &mut Vec<u8>) -> Result<(), EspError>,
) -> Result<pcap::CaptureInfo, String> {
    let mut done = Vec::new();
    pcap::transform(input, output, &mut |link, number, frame| match pcap::locate(link, frame) {
        Frame::NotIp => {
            tally.not_ip += 1;
            Some(frame.to_vec())
        }
        Frame::Ip { start, len, protocol_at } => {
            let ip = frame.get(start..start + len)?;
            match apply(ip, &mut done) {
                Ok(()) => {
                    tally.done += 1;
                    Some(pcap::rebuild(frame, start, protocol_at, &done))
                }
                Err(e) => {
                    tally.record(number, &e);
                    None
                }
            }
        }
    })
}

/// Run `espgcm open`.
pub fn open(args: OpenArgs) -> ExitCode {
    let cfg = match sa_file::load(&args.sa, args.sa_name.as_deref(), Direction::Inbound) {
        Ok(c) => c,
        Err(e) => return fail("open", &e),
    };
    let describe = sa_file::describe(&cfg);
    let rx = match Inbound::new(cfg) {
        Ok(r) => r,
        Err(e) => return fail("open", &format!("SA file {}: {e}", args.sa.display())),
    };
    let mut tally = Tally::default();
    let result = process(&args.input, &args.output, &mut tally, |ip, out| rx.open(ip, out));
    let info = match result {
        Ok(i) => i,
        Err(e) => return fail("open", &e),
    };
    summary("open", "opened", &args.input, &args.output, &describe, &info, &tally);
    if tally.refused_total() > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

fn summary(command: &str, done: &str, input: &Path, output: &Path, sa: &str, info: &pcap::CaptureInfo, tally: &Tally) {
    let format = info.format.map_or("?", |f| f.name());
    let links: Vec<String> = info.links.iter().map(|&l| pcap::link_name(l)).collect();
    println!("espgcm {command}: {} ({format}, {}) -> {}", input.display(), links.join(", "), output.display());
    println!("SA: {sa}");
    println!("packets read:        {}", info.packets);
    println!("{:<21}{}", format!("{done}:"), tally.done);
    if tally.not_ip > 0 {
        println!("not IP, copied:      {}", tally.not_ip);
    }
    for (k, n) in &tally.benign {
        println!("benign, left out:    {n} {k}");
    }
    if info.obsolete_blocks > 0 {
        println!("left out:            {} obsolete pcapng Packet Blocks (not processed)", info.obsolete_blocks);
    }
    println!("refused:             {}", tally.refused_total());
    for (k, (n, first, message)) in &tally.refused {
        println!("  {k}: {n} (first: packet {first}: {message})");
    }
    println!("packets written:     {}", info.written);
}
