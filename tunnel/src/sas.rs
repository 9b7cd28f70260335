//! The SAs and policies the tunnel runs with, as the library's SA file
//! loader reads them from the configuration file, and what the tunnel
//! derives from them: which sockets to open, the sequence-state key
//! fingerprints, and Wireshark's key table.

use crate::seqstate;
use crate::settings::Settings;
use crate::worker::Queues;
use espgcm::esp::{Action, Encap, Inbound, Mode, Outbound, Policy, SaConfig, SaTable, Transform};
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
        parts.join("; ")
    }
}

/// Build the set from SA configurations (with their key material, which
/// the SAs wipe from their own copies once their keys are set up): install
/// every inbound SA, and every outbound SA with its policies.
///
/// `outbound` pairs each SA with the policy selectors it protects (the
/// SA's own selectors when the list is empty).
///
/// # Errors
/// The SA that was refused and why.
pub fn from_configs(outbound: Vec<SaConfig>, inbound: Vec<SaConfig>, settings: &Settings) -> Result<SaSet, String> {
    let mut wireshark = String::from(
        "# Wireshark ESP SA table (esp_sa), written by espgcm-tunnel.\n\
         # Columns: protocol, source, destination, SPI, encryption, key (key || salt), authentication, key.\n\
         # Use: tshark -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE \\\n\
         #   -o 'uat:esp_sa:...' (one record per -o), or copy this file to ~/.config/wireshark/esp_sa.\n",
    );
    let mut encaps = Vec::new();
    let table = Arc::new(SaTable::new());
    let mut outs = Vec::new();
    let mut ins = Vec::new();
    for cfg in outbound {
        let spi = cfg.spi;
        if let Encap::Udp { src_port, .. } = cfg.encap
            && src_port != settings.nat_t_port
        {
            return Err(format!(
                "SA {spi:#010x} sends ESP in UDP from port {src_port}, but the tunnel's sockets are on port {} \
                 ([tunnel] nat_t_port): make them agree",
                settings.nat_t_port
            ));
        }
        wireshark.push_str(&wireshark_records(&cfg).unwrap_or_default());
        encaps.push((cfg.encap, outer_v6(&cfg)));
        let key_id = seqstate::key_id(&cfg.keymat);
        let selectors = cfg.selectors.clone();
        let sa = Arc::new(Outbound::new(cfg).map_err(|e| format!("outbound SA {spi:#010x}: {e}"))?);
        table.push_policy(Policy { selectors, action: Action::Protect(sa.clone()) });
        outs.push(OutboundSa { sa, key_id });
    }
    for cfg in inbound {
        let spi = cfg.spi;
        wireshark.push_str(&wireshark_records(&cfg).unwrap_or_default());
        encaps.push((cfg.encap, outer_v6(&cfg)));
        let sa = Inbound::new(cfg).map_err(|e| format!("inbound SA {spi:#010x}: {e}"))?;
        ins.push(table.add_inbound(sa, None, None).map_err(|e| format!("inbound SA {spi:#010x}: {e}"))?);
    }
    Ok(SaSet { table, outbound: outs, inbound: ins, wireshark, encaps })
}

/// Whether the SA's outer header is IPv6 (tunnel mode with IPv6 outer
/// addresses; transport mode follows the packets).
fn outer_v6(cfg: &SaConfig) -> bool {
    matches!(cfg.mode, Mode::Tunnel { src, .. } if src.is_ipv6())
}

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

/// Load the SAs and policies of the configuration file.
///
/// # Errors
/// A message naming the file, the line and what to change.
pub fn load(path: &Path, settings: &Settings) -> Result<SaSet, String> {
    // Waits for the library's SA file loader (espgcm::esp::sa_file).
    let _ = (path, settings);
    Err("this build cannot read SAs from the configuration file yet (the library's SA file loader is not in it)".into())
}
