//! `espgcm-tunnel`: a userspace IPsec ESP gateway on espgcm.

use clap::{Args, Parser, Subcommand};
use espgcm_tunnel::{control, settings, tunnel};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

const EXAMPLES: &str = "\
Examples:
  # Run the tunnel described by a configuration file (as root, or with CAP_NET_ADMIN):
  espgcm-tunnel run --config /etc/espgcm-tunnel/esp0.toml
  # The first start with freshly made keys (there is no sequence state yet):
  espgcm-tunnel run --config /etc/espgcm-tunnel/esp0.toml --new-keys
  # What the running tunnel is doing (JSON: workers, SAs, rejections, health):
  espgcm-tunnel status --config /etc/espgcm-tunnel/esp0.toml
  # Exit status 0 if healthy, 1 if not, 2 if the tunnel cannot be reached:
  espgcm-tunnel health --socket /run/espgcm-tunnel/esp0.sock

Exit status of `run`: 0 stopped by SIGINT/SIGTERM; 1 failed; 2 bad configuration;
3 a worker died or stalled (and restart_workers is off); 4 missing privileges.

The configuration file holds a [tunnel] table for the tunnel itself, and the SAs
and policies (the library's SA file format, espgcm::esp::sa_file). Every key of
[tunnel], with its default:
";

/// A userspace IPsec ESP gateway: TUN device in, ESP (in UDP, or raw) out.
#[derive(Parser)]
#[command(name = "espgcm-tunnel", version, args_conflicts_with_subcommands = true, after_help = after_help())]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the tunnel (the default command).
    Run(RunArgs),
    /// Print the running tunnel's status as JSON.
    Status(Target),
    /// Check the running tunnel's health: exit 0 healthy, 1 unhealthy, 2 unreachable.
    Health(Target),
    /// Send a test request to the control socket (builds with the
    /// fault-injection feature: `stall N`, `panic N`, `inject ONE_IN`, `clear`).
    #[command(hide = true)]
    Debug {
        #[command(flatten)]
        target: Target,
        /// The request words.
        request: Vec<String>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// The configuration file (SAs, policies and the [tunnel] table).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Every SA without a record in the sequence state has a key that never
    /// sent a packet, so its sequence numbers may start at 1.
    #[arg(long)]
    new_keys: bool,
}

#[derive(Args)]
struct Target {
    /// The configuration file (to find the control socket).
    #[arg(long, short = 'c', value_name = "FILE", conflicts_with = "socket")]
    config: Option<PathBuf>,
    /// The control socket [default: /run/espgcm-tunnel/esp0.sock].
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
}

fn after_help() -> String {
    format!(
        "{EXAMPLES}\n{}\nSAs and policies (the tunnel looks outbound packets up in the policies, in order):\n\n{}",
        settings::EXAMPLE,
        espgcm::esp::sa_file::EXAMPLE
    )
}

impl Target {
    fn socket(&self) -> Result<PathBuf, String> {
        match (&self.socket, &self.config) {
            (Some(s), _) => Ok(s.clone()),
            (None, Some(c)) => settings::load(c).map(|s| s.control_socket),
            (None, None) => Ok(settings::default_control_socket("esp0")),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        None => run(&cli.run),
        Some(Command::Run(args)) => run(&args),
        Some(Command::Status(t)) => match t.socket().and_then(|s| control::request(&s, "status")) {
            Ok(v) => {
                // A closed pipe (`| head`) is not an error worth a panic.
                let _ = writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(&v).unwrap_or_default());
                0
            }
            Err(e) => {
                eprintln!("espgcm-tunnel: {e}");
                2
            }
        },
        Some(Command::Health(t)) => health(&t),
        Some(Command::Debug { target, request }) => {
            match target.socket().and_then(|s| control::request(&s, &request.join(" "))) {
                Ok(v) => {
                    println!("{v}");
                    i32::from(v.get("error").is_some())
                }
                Err(e) => {
                    eprintln!("espgcm-tunnel: {e}");
                    2
                }
            }
        }
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn run(args: &RunArgs) -> i32 {
    let Some(config) = &args.config else {
        eprintln!("espgcm-tunnel: give the configuration file with --config FILE (see --help)");
        return tunnel::EXIT_CONFIG;
    };
    tunnel::run(&tunnel::RunOptions { config: config.clone(), new_keys: args.new_keys })
}

fn health(t: &Target) -> i32 {
    match t.socket().and_then(|s| control::request(&s, "status")) {
        Ok(v) => {
            if v.get("healthy").and_then(serde_json::Value::as_bool) == Some(true) {
                println!("healthy");
                0
            } else {
                let problems: Vec<String> = v
                    .get("problems")
                    .and_then(serde_json::Value::as_array)
                    .map(|a| a.iter().filter_map(|p| p.as_str().map(str::to_string)).collect())
                    .unwrap_or_default();
                println!("unhealthy: {}", problems.join("; "));
                1
            }
        }
        Err(e) => {
            eprintln!("espgcm-tunnel: unhealthy: {e}");
            2
        }
    }
}
