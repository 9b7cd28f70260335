//! The tunnel's own settings: the `[tunnel]` table of the configuration
//! file. The SAs and policies in the same file are read by the library's SA
//! file loader; this module reads only `[tunnel]`, and reads it from the
//! file's text so that every error points at its line.

use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The `[tunnel]` table with every key, shown by `--help` and the README.
pub const EXAMPLE: &str = r#"[tunnel]
device = "esp0"                     # TUN device name (at most 15 bytes)
addresses = ["10.77.0.1/24", "fd77::1/64"]   # given to the TUN device
mtu = 1400                          # TUN MTU: leave room for ESP (up to 73 bytes in UDP over IPv6)
routes = ["10.78.0.0/16", { to = "192.168.77.2/32", src = "192.168.77.1" }]
                                    # sent into the TUN device (src: the source address to use)
workers = 0                         # 0: one per core
offload = true                      # TSO/GRO on the TUN device (large segments in, coalesced out)
nat_t_port = 4500                   # UDP port for ESP in UDP (RFC 3948), every worker's socket
# underlay_device = "eth0"          # bind the outer sockets to it (needed in transport mode
                                    # when the peer's address is also routed into the TUN device)
# fwmark = 0x77                     # mark the outer packets (for policy routing instead)
socket_buffer = 4194304             # receive and send buffer per socket, bytes
state_file = "/var/lib/espgcm-tunnel/esp0.seq"   # sequence-number reservations (never lose it)
sequence_block = 1048576            # sequence numbers reserved on disk at a time, per SA
control_socket = "/run/espgcm-tunnel/esp0.sock"
# wireshark_keys = "/run/espgcm-tunnel/esp_sa"   # write Wireshark's esp_sa key table here
stall_timeout_ms = 2000             # input waiting and no progress for this long: unhealthy
restart_workers = false             # restart a dead or stalled worker instead of exiting
"#;

/// A route the tunnel installs through its device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix.
    pub to: (IpAddr, u8),
    /// Preferred source address for packets on this route.
    pub src: Option<IpAddr>,
}

/// The tunnel's settings, checked, with every default filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// TUN device name.
    pub device: String,
    /// Addresses (with prefix length) of the TUN device.
    pub addresses: Vec<(IpAddr, u8)>,
    /// TUN MTU.
    pub mtu: u16,
    /// Routes into the TUN device.
    pub routes: Vec<Route>,
    /// Worker threads (each with its own TUN queue and sockets).
    pub workers: usize,
    /// TUN offloads (TSO in, GRO out).
    pub offload: bool,
    /// UDP port of the NAT-T sockets.
    pub nat_t_port: u16,
    /// Device the outer sockets are bound to.
    pub underlay_device: Option<String>,
    /// Mark on outer packets.
    pub fwmark: Option<u32>,
    /// Socket buffer size in bytes.
    pub socket_buffer: usize,
    /// Sequence reservation file.
    pub state_file: PathBuf,
    /// Sequence numbers reserved per write.
    pub sequence_block: u64,
    /// Control socket path.
    pub control_socket: PathBuf,
    /// Where to write Wireshark's key table.
    pub wireshark_keys: Option<PathBuf>,
    /// Stall timeout in milliseconds.
    pub stall_timeout_ms: u64,
    /// Restart dead or stalled workers instead of exiting.
    pub restart_workers: bool,
}

#[derive(Deserialize)]
struct File {
    tunnel: Option<Section>,
    // Everything else (SAs, policies) belongs to the SA file loader.
    #[serde(flatten)]
    _rest: toml::Table,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    device: Option<String>,
    addresses: Option<Vec<String>>,
    mtu: Option<u16>,
    routes: Option<Vec<RouteSpec>>,
    workers: Option<usize>,
    offload: Option<bool>,
    nat_t_port: Option<u16>,
    underlay_device: Option<String>,
    fwmark: Option<u32>,
    socket_buffer: Option<usize>,
    state_file: Option<PathBuf>,
    sequence_block: Option<u64>,
    control_socket: Option<PathBuf>,
    wireshark_keys: Option<PathBuf>,
    stall_timeout_ms: Option<u64>,
    restart_workers: Option<bool>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RouteSpec {
    Prefix(String),
    Table(RouteTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteTable {
    to: String,
    src: Option<IpAddr>,
}

/// The default control socket of a device.
pub fn default_control_socket(device: &str) -> PathBuf {
    PathBuf::from(format!("/run/espgcm-tunnel/{device}.sock"))
}

/// `"address/prefix"` (a bare address is a full-length prefix).
pub fn parse_prefix(what: &str, text: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: IpAddr =
        addr.trim().parse().map_err(|_| format!("{what}: \"{text}\" is not an address or address/prefix"))?;
    let full = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => {
            l.trim().parse::<u8>().map_err(|_| format!("{what}: \"{text}\": the prefix length is not a number"))?
        }
        None => full,
    };
    if len > full {
        return Err(format!("{what}: \"{text}\": the prefix length is at most {full} for this family"));
    }
    Ok((addr, len))
}

/// Read the `[tunnel]` table from the configuration file's text.
///
/// # Errors
/// A message naming the line and the key, and saying what is accepted.
pub fn parse(text: &str) -> Result<Settings, String> {
    let file: File = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
    let s = file.tunnel.ok_or_else(|| {
        "there is no [tunnel] table: add one with at least `device = \"esp0\"` (`espgcm-tunnel --help` shows every key)"
            .to_string()
    })?;
    let device = s.device.unwrap_or_else(|| "esp0".to_string());
    if device.is_empty() || device.len() > 15 || device.contains(['/', ' ', '\0']) {
        return Err(format!(
            "[tunnel] device = \"{device}\": a Linux interface name is 1 to 15 bytes without '/' or spaces"
        ));
    }
    let mut addresses = Vec::new();
    for a in s.addresses.unwrap_or_default() {
        addresses.push(parse_prefix("[tunnel] addresses", &a)?);
    }
    let mtu = s.mtu.unwrap_or(1400);
    if !(576..=9000).contains(&mtu) {
        return Err(format!("[tunnel] mtu = {mtu}: choose 576 to 9000 (and leave room for ESP under the path's MTU)"));
    }
    if addresses.iter().any(|(a, _)| a.is_ipv6()) && mtu < 1280 {
        return Err(format!("[tunnel] mtu = {mtu}: IPv6 addresses need an MTU of at least 1280"));
    }
    let mut routes = Vec::new();
    for r in s.routes.unwrap_or_default() {
        let route = match r {
            RouteSpec::Prefix(p) => Route { to: parse_prefix("[tunnel] routes", &p)?, src: None },
            RouteSpec::Table(t) => Route { to: parse_prefix("[tunnel] routes", &t.to)?, src: t.src },
        };
        if let Some(src) = route.src
            && src.is_ipv4() != route.to.0.is_ipv4()
        {
            return Err(format!("[tunnel] routes: the route to {} has a source of the other family", route.to.0));
        }
        routes.push(route);
    }
    let workers = match s.workers.unwrap_or(0) {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n if n > 256 => return Err(format!("[tunnel] workers = {n}: at most 256 (0 means one per core)")),
        n => n,
    };
    let nat_t_port = s.nat_t_port.unwrap_or(4500);
    if nat_t_port == 0 {
        return Err("[tunnel] nat_t_port = 0: give the UDP port ESP in UDP arrives on (normally 4500)".into());
    }
    let socket_buffer = s.socket_buffer.unwrap_or(4 << 20);
    if !(65536..=(1 << 30)).contains(&socket_buffer) {
        return Err(format!("[tunnel] socket_buffer = {socket_buffer}: choose 65536 to 1073741824 bytes"));
    }
    let sequence_block = s.sequence_block.unwrap_or(1 << 20);
    if !(1024..=(1 << 32)).contains(&sequence_block) {
        return Err(format!(
            "[tunnel] sequence_block = {sequence_block}: choose 1024 to 4294967296 (each restart skips up to \
             one block of sequence numbers; each block costs one write and fsync)"
        ));
    }
    let stall_timeout_ms = s.stall_timeout_ms.unwrap_or(2000);
    if !(100..=600_000).contains(&stall_timeout_ms) {
        return Err(format!("[tunnel] stall_timeout_ms = {stall_timeout_ms}: choose 100 to 600000"));
    }
    if let Some(u) = &s.underlay_device
        && (u.is_empty() || u.len() > 15)
    {
        return Err(format!("[tunnel] underlay_device = \"{u}\": a Linux interface name is 1 to 15 bytes"));
    }
    let state_file = s.state_file.unwrap_or_else(|| PathBuf::from(format!("/var/lib/espgcm-tunnel/{device}.seq")));
    let control_socket = s.control_socket.unwrap_or_else(|| default_control_socket(&device));
    Ok(Settings {
        device,
        addresses,
        mtu,
        routes,
        workers,
        offload: s.offload.unwrap_or(true),
        nat_t_port,
        underlay_device: s.underlay_device,
        fwmark: s.fwmark,
        socket_buffer,
        state_file,
        sequence_block,
        control_socket,
        wireshark_keys: s.wireshark_keys,
        stall_timeout_ms,
        restart_workers: s.restart_workers.unwrap_or(false),
    })
}

/// Read the `[tunnel]` table of the file at `path`.
///
/// # Errors
/// A message naming the file, the line and what to change.
pub fn load(path: &Path) -> Result<Settings, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the configuration file {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let s = parse(EXAMPLE).expect("the example parses");
        assert_eq!(s.device, "esp0");
        assert_eq!(s.addresses, [("10.77.0.1".parse().expect("a"), 24), ("fd77::1".parse().expect("a"), 64)]);
        assert_eq!(s.routes.len(), 2);
        assert_eq!(s.routes[1].src, Some("192.168.77.1".parse().expect("a")));
        assert_eq!((s.mtu, s.nat_t_port, s.sequence_block, s.stall_timeout_ms), (1400, 4500, 1 << 20, 2000));
        assert!(s.workers >= 1 && s.offload && !s.restart_workers);
    }

    #[test]
    fn the_rest_of_the_file_is_left_to_the_sa_loader() {
        let s = parse("[tunnel]\ndevice = \"t1\"\n[[sa]]\nspi = 0x1000\n").expect("parses");
        assert_eq!(s.device, "t1");
        assert_eq!(s.control_socket, PathBuf::from("/run/espgcm-tunnel/t1.sock"));
    }

    #[test]
    fn every_bad_line_is_named() {
        let unknown = parse("[tunnel]\ndevice = \"t\"\nmut = 1400\n").unwrap_err();
        assert!(unknown.contains("line 3") && unknown.contains("unknown field `mut`"), "{unknown}");
        let mtu = parse("[tunnel]\nmtu = 100\n").unwrap_err();
        assert!(mtu.contains("mtu = 100"), "{mtu}");
        let addr = parse("[tunnel]\naddresses = [\"10.0.0.1/33\"]\n").unwrap_err();
        assert!(addr.contains("at most 32"), "{addr}");
        let name = parse("[tunnel]\ndevice = \"a-very-long-device-name\"\n").unwrap_err();
        assert!(name.contains("1 to 15 bytes"), "{name}");
        let missing = parse("[[sa]]\nspi = 1\n").unwrap_err();
        assert!(missing.contains("no [tunnel] table"), "{missing}");
        let kind = parse("[tunnel]\nworkers = \"two\"\n").unwrap_err();
        assert!(kind.contains("line 2") && kind.contains("workers"), "{kind}");
        let route = parse("[tunnel]\nroutes = [{ to = \"10.0.0.0/8\", src = \"fd00::1\" }]\n").unwrap_err();
        assert!(route.contains("other family"), "{route}");
    }
}
