//! The SAs and policies the tunnel runs with, as the library's SA file
//! loader reads them from the configuration file, and what the tunnel
//! derives from them: which sockets to open, the sequence-state key
//! fingerprints, and Wireshark's key table.

use crate::seqstate;
use crate::settings::Settings;
use crate::worker::Queues;
use espgcm::esp::sa_file::ManualKeys;
use espgcm::esp::{Direction, Encap, Inbound, Mode, Outbound, SaConfig, SaHandle, SaTable, Transform};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

/// An outbound SA and the fingerprint of its key (for the sequence state).
#[derive(Debug)]
pub struct OutboundSa {
    /// The SA, shared by every worker.
    pub sa: Arc<Outbound>,
    /// [`seqstate::key_id`] of its key material.
    pub key_id: String,
}

/// Everything the tunnel runs with from the SA part of the configuration.
#[derive(Debug)]
pub struct SaSet {
    /// The SAD and SPD the workers look packets up in.
    pub table: Arc<SaTable>,
    /// Every outbound SA.
    pub outbound: Vec<OutboundSa>,
    /// Every inbound SA.
    pub inbound: Vec<Arc<Inbound>>,
    /// Wireshark's `esp_sa` table for all of them.
    pub wireshark: String,
    encaps: Vec<(Encap, bool)>,
    /// How many policies the SPD has.
    pub policies: usize,
}

impl SaSet {
    /// Whether an SA carries ESP without UDP (raw sockets needed).
    pub fn needs_raw(&self) -> bool {
        self.encaps.iter().any(|(e, _)| matches!(e, Encap::None))
    }

    /// Whether an SA carries ESP in UDP.
    pub fn needs_udp(&self) -> bool {
        self.encaps.iter().any(|(e, _)| matches!(e, Encap::Udp { .. }))
    }

    /// Whether an SA's outer header is IPv6 (a tunnel-mode SA with IPv6
    /// outer addresses): then IPv6 sockets are required, not optional.
    pub fn needs_v6_outer(&self) -> bool {
        self.encaps.iter().any(|(_, v6)| *v6)
    }

    /// One line for the log: what runs where.
    pub fn describe(&self, settings: &Settings, queues: &[Arc<Queues>]) -> String {
        let udp: Vec<&str> = queues
            .first()
            .map(|q| q.udp.iter().map(|u| if u.is_v4() { "IPv4" } else { "IPv6" }).collect())
            .unwrap_or_default();
        let raw: Vec<&str> = queues
            .first()
            .map(|q| q.raw.iter().map(|r| if r.is_v4() { "IPv4" } else { "IPv6" }).collect())
            .unwrap_or_default();
        let mut parts = vec![format!(
            "{} up: {} worker(s), offload {}, {} outbound and {} inbound SA(s)",
            settings.device,
            queues.len(),
            if settings.offload { "on" } else { "off" },
            self.outbound.len(),
            self.inbound.len()
        )];
        if !udp.is_empty() {
            parts.push(format!("ESP in UDP on port {} ({})", settings.nat_t_port, udp.join(", ")));
        }
        if !raw.is_empty() {
            parts.push(format!("raw ESP ({}, received by worker 0)", raw.join(", ")));
        }
        parts.push(format!("control socket {}", settings.control_socket.display()));
        if self.policies == 0 {
            parts.push(
                "NO POLICY: every packet from the TUN device is dropped (add a [[policy]] with action \"protect\")"
                    .into(),
            );
        }
        parts.join("; ")
    }
}

/// Whether the SA's outer header is IPv6 (tunnel mode with IPv6 outer
/// addresses; transport mode follows the packets).
fn outer_v6(cfg: &SaConfig) -> bool {
    matches!(cfg.mode, Mode::Tunnel { src, .. } if src.is_ipv6())
}

/// The comment lines at the top of the Wireshark key table.
const WIRESHARK_HEADER: &str = "# Wireshark ESP SA table (esp_sa), written by espgcm-tunnel.\n\
     # Columns: protocol, source, destination, SPI, encryption, key (key || salt), authentication, key.\n\
     # Give each record to tshark as -o 'uat:esp_sa:RECORD', or copy this file to ~/.config/wireshark/esp_sa.\n";

/// Wireshark's `esp_sa` records for one SA (one per outer IP family: the
/// addresses are wildcards, the SPI tells the SAs apart).
pub fn wireshark_records(cfg: &SaConfig) -> Option<String> {
    if cfg.transform == Transform::AesGmac {
        return None;
    }
    let key: String = cfg.keymat.iter().map(|b| format!("{b:02x}")).collect();
    let algorithm = format!("AES-GCM with {} octet ICV [RFC4106]", cfg.icv_len);
    let families: &[&str] = match cfg.mode {
        Mode::Tunnel { src, .. } if src.is_ipv4() => &["IPv4"],
        Mode::Tunnel { .. } => &["IPv6"],
        _ => &["IPv4", "IPv6"],
    };
    Some(
        families
            .iter()
            .map(|f| format!("\"{f}\",\"*\",\"*\",\"{:#010x}\",\"{algorithm}\",\"0x{key}\",\"NULL\",\"\"\n", cfg.spi))
            .collect(),
    )
}

/// Write a file only its owner can read (it holds keys).
///
/// # Errors
/// The path and the error.
pub fn write_private(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot write the Wireshark key table {}: {e}", path.display()))?;
    f.write_all(text.as_bytes()).map_err(|e| format!("cannot write the Wireshark key table {}: {e}", path.display()))
}

/// Load the SAs and policies of the configuration file with the library's
/// SA file loader, and install them into a fresh table.
///
/// # Errors
/// The loader's message (entry, line, key and what to change), or why an
/// SA cannot run in this tunnel.
pub fn load(path: &Path, settings: &Settings) -> Result<SaSet, String> {
    let keys = ManualKeys::load(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut wireshark = String::from(WIRESHARK_HEADER);
    let mut encaps = Vec::new();
    let mut key_ids = Vec::new();
    for (i, entry) in keys.sas.iter().enumerate() {
        let cfg = &entry.config;
        let label = match &entry.name {
            Some(n) => format!("SA {} (\"{n}\", SPI {:#010x})", i + 1, cfg.spi),
            None => format!("SA {} (SPI {:#010x})", i + 1, cfg.spi),
        };
        if entry.direction == Direction::Outbound
            && let Encap::Udp { src_port, .. } = cfg.encap
            && src_port != settings.nat_t_port
        {
            return Err(format!(
                "{}: {label}{}: sends ESP in UDP from port {src_port}, but the tunnel's sockets are on port {} \
                 ([tunnel] nat_t_port): make them agree",
                path.display(),
                entry.line.map(|l| format!(", line {l}")).unwrap_or_default(),
                settings.nat_t_port
            ));
        }
        wireshark.push_str(&wireshark_records(cfg).unwrap_or_default());
        encaps.push((cfg.encap, outer_v6(cfg)));
        key_ids.push((entry.direction == Direction::Outbound).then(|| seqstate::key_id(&cfg.keymat)));
    }
    let policies = keys.policies.len();
    let table = Arc::new(SaTable::new());
    let installed = keys.install(&table).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut outbound = Vec::new();
    let mut inbound = Vec::new();
    for (sa, key_id) in installed.sas.iter().zip(key_ids) {
        match &sa.handle {
            SaHandle::Outbound(o) => outbound.push(OutboundSa { sa: o.clone(), key_id: key_id.unwrap_or_default() }),
            SaHandle::Inbound(i) => inbound.push(i.clone()),
        }
    }
    Ok(SaSet { table, outbound, inbound, wireshark, encaps, policies })
}
