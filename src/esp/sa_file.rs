//! SA files: security associations and policies in TOML, for manual
//! keying (cargo feature `sa-file`).
//!
//! Two shapes share the field names of [`SaConfig`]:
//!
//! - **One SA** ([`SINGLE_SA_EXAMPLE`]): `spi`, `keymat` and any other
//!   field at the top level; what `espgcm seal` and `espgcm open` read.
//!   [`parse_sa`] / [`load_sa`] give its [`SaConfig`].
//! - **Many SAs and policies** ([`EXAMPLE`]): `[[sa]]` entries, each with a
//!   `direction` ("out" or "in"), an optional `name`, the same fields, and
//!   optionally `lookup` (the addresses the SA is found by); `[[policy]]`
//!   entries with selectors, an action and the name of the SA to protect
//!   with. [`ManualKeys::parse`] reads it and [`ManualKeys::install`] puts
//!   it into an [`SaTable`] through the table's own calls
//!   ([`SaTable::add_outbound`], [`SaTable::add_inbound`],
//!   [`SaTable::add_policy`]).
//!
//! A top-level `[tunnel]` table is left alone for the program that runs
//! the SAs (`espgcm tunnel`): [`ManualKeys::tunnel`] holds it, unread.
//!
//! Every error names the SA or policy (by number and name), the key, and
//! the line where it can be found.

use super::{
    Action, ChecksumPolicy, Direction, Encap, EspError, Inbound, Lifetime, Mode, NextHeaders, Outbound, Policy,
    PolicyId, SaConfig, SaHandle, SaKey, SaTable, Selector, Transform,
};
use crate::{Backend, VerifyPolicy};
use core::fmt;
use serde::Deserialize;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;
use zeroize::Zeroize;

/// A complete single-SA file with every field (`espgcm seal --help` and
/// the README show it).
pub const SINGLE_SA_EXAMPLE: &str = r#"# One SA, one direction. Only spi and keymat are required; the other
# lines show the defaults or an alternative.
spi = 0x00001000                  # 256 or above; TOML takes hex (0x...) or decimal
keymat = "0x000102030405060708090a0b0c0d0e0f 10111213"
                                  # AES key || 4-byte salt, hex: 20, 28 or 36 bytes
                                  # (AES-128/192/256); spaces, ':' and '_' are ignored
transform = "aes-gcm"             # or "aes-gmac" (RFC 4543, integrity only)
icv_len = 16                      # 16, 12 or 8 (aes-gmac: 16)
mode = "transport"                # or mode = { tunnel = { src = "192.0.2.1", dst = "198.51.100.2" } }
encap = "none"                    # or "nat-t" (UDP 4500 both ways),
                                  # or encap = { udp = { src_port = 4500, dst_port = 4500 } }
# nat_original = ["10.0.0.1", "10.0.0.2"]   # NAT-OA (source, destination), NAT-T transport only
esn = false                       # 64-bit extended sequence numbers
replay_window = 4096              # packets; 0 turns the replay check off
checksums = "verify"              # or "skip"
# backend = "aesni"               # default: the best this CPU runs (see `espgcm check`)
verify = { sample = { one_in = 4096 } }   # cross-check 1 message in 4096 against scalar;
                                  # or "full", or "off"
tunnel_ttl = 64
next_headers = "verifiable"       # what open delivers: TCP, UDP, ICMP, ICMPv6 (tunnel: IPv4, IPv6),
                                  # whose checksums it checks; or a list such as [6, 17, 132]
# path_mtu = 1500                 # refuse (and count) what would not fit unfragmented
# selectors = [{ local = "10.1.0.0/16", remote = "10.2.0.0/16", protocol = "tcp",
#                local_ports = "0-65535", remote_ports = 22 }]
                                  # what the SA carries (default: anything); protocol
                                  # (a number or tcp, udp, icmp, icmpv6, sctp) and ports
                                  # (a number, "a-b" or [a, b]) may be left out (any)
# lifetime = { soft_bytes = 900_000_000, hard_bytes = 1_000_000_000, soft_packets = 9_000_000,
#              hard_packets = 10_000_000, soft_seconds = 3000, hard_seconds = 3600 }
                                  # RFC 4301 lifetimes (default: none); soft tells the key
                                  # manager to re-key, hard stops the SA
"#;

/// A manual-keying file with two SAs and three policies: one gateway's
/// side of a tunnel between 10.1.0.0/16 (here) and 10.2.0.0/16 (there).
pub const EXAMPLE: &str = r#"# Many SAs and policies. Each [[sa]] takes every key of a single-SA file
# (spi, keymat, mode, encap, selectors, lifetime, ...) plus:
#   direction = "out" or "in"   (required)
#   name = "..."                (optional; policies refer to SAs by name)
#   lookup = { dst = "...", src = "..." }
#                               (optional: inbound, the outer addresses the SA is
#                               found by, besides its SPI; outbound, the peer's
#                               address, to tell apart SAs whose SPIs two peers
#                               chose alike)
[[sa]]
name = "a-to-b"
direction = "out"
spi = 0x00001001
keymat = "0x000102030405060708090a0b0c0d0e0f 10111213"
mode = { tunnel = { src = "192.0.2.1", dst = "198.51.100.2" } }
encap = "nat-t"
selectors = [{ local = "10.1.0.0/16", remote = "10.2.0.0/16" }]
lifetime = { soft_bytes = 1_000_000_000, hard_bytes = 1_100_000_000, soft_seconds = 3000, hard_seconds = 3600 }

[[sa]]
name = "b-to-a"
direction = "in"
spi = 0x00002001
keymat = "0x202122232425262728292a2b2c2d2e2f 30313233"
mode = { tunnel = { src = "198.51.100.2", dst = "192.0.2.1" } }
encap = "nat-t"
selectors = [{ local = "10.1.0.0/16", remote = "10.2.0.0/16" }]
lookup = { dst = "192.0.2.1" }

# The SPD, in order: the first policy whose selectors cover a packet decides.
[[policy]]
selectors = [{ local = "10.1.0.0/16", remote = "10.2.0.0/16", protocol = "udp", remote_ports = 53 }]
action = "bypass"                 # or "discard", or "protect" with sa = "<name>"

[[policy]]
selectors = [{ local = "10.1.0.0/16", remote = "10.2.0.0/16" }]
action = "protect"
sa = "a-to-b"

[[policy]]
action = "discard"                # no selectors: every packet
"#;

/// Why an SA file was refused: where (which SA or policy, which key, which
/// line) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaFileError {
    /// The entry: `SA 2 ("b-to-a")` or `policy 1` (numbered from 1 in file
    /// order); `None` for the file as a whole or a single-SA file.
    pub entry: Option<String>,
    /// The key that is wrong, when one is.
    pub key: Option<String>,
    /// The line (from 1), when known.
    pub line: Option<usize>,
    /// What is wrong and what would be accepted.
    pub message: String,
}

impl SaFileError {
    fn new(message: impl Into<String>) -> SaFileError {
        SaFileError { entry: None, key: None, line: None, message: message.into() }
    }
}

impl fmt::Display for SaFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut place = Vec::new();
        if let Some(entry) = &self.entry {
            place.push(entry.clone());
        }
        if let Some(line) = self.line {
            place.push(format!("line {line}"));
        }
        if let Some(key) = &self.key {
            place.push(format!("key `{key}`"));
        }
        if place.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", place.join(", "), self.message) }
    }
}

impl std::error::Error for SaFileError {}

/// Every key of one SA, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SaFields {
    name: Option<String>,
    direction: Option<DirectionName>,
    lookup: Option<LookupSpec>,
    spi: u32,
    keymat: String,
    transform: Option<TransformName>,
    icv_len: Option<usize>,
    mode: Option<ModeSpec>,
    encap: Option<EncapSpec>,
    nat_original: Option<(IpAddr, IpAddr)>,
    esn: Option<bool>,
    replay_window: Option<u32>,
    checksums: Option<ChecksumName>,
    backend: Option<String>,
    verify: Option<VerifySpec>,
    tunnel_ttl: Option<u8>,
    next_headers: Option<NextHeadersSpec>,
    path_mtu: Option<u16>,
    selectors: Option<Vec<SelectorSpec>>,
    lifetime: Option<LifetimeSpec>,
}

impl Drop for SaFields {
    fn drop(&mut self) {
        self.keymat.zeroize();
    }
}

#[derive(Deserialize, Clone, Copy)]
enum DirectionName {
    #[serde(rename = "out")]
    Out,
    #[serde(rename = "in")]
    In,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LookupSpec {
    dst: Option<IpAddr>,
    src: Option<IpAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LifetimeSpec {
    soft_bytes: Option<u64>,
    hard_bytes: Option<u64>,
    soft_packets: Option<u64>,
    hard_packets: Option<u64>,
    soft_seconds: Option<f64>,
    hard_seconds: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectorSpec {
    local: String,
    remote: String,
    protocol: Option<ProtocolSpec>,
    local_ports: Option<PortsSpec>,
    remote_ports: Option<PortsSpec>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ProtocolSpec {
    Number(u8),
    Name(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PortsSpec {
    One(u16),
    Pair((u16, u16)),
    Text(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NextHeadersSpec {
    Named(NextHeadersName),
    List(Vec<u8>),
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum NextHeadersName {
    Verifiable,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum TransformName {
    AesGcm,
    AesGmac,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum ModeSpec {
    Transport,
    Tunnel { src: IpAddr, dst: IpAddr },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
enum EncapSpec {
    #[serde(rename = "none")]
    None,
    #[serde(rename = "nat-t")]
    NatT,
    #[serde(rename = "udp")]
    Udp { src_port: u16, dst_port: u16 },
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum ChecksumName {
    Verify,
    Skip,
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum VerifySpec {
    Off,
    Full,
    Sample { one_in: u32 },
}

/// One `[[policy]]`, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFields {
    selectors: Option<Vec<SelectorSpec>>,
    action: ActionName,
    sa: Option<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum ActionName {
    Protect,
    Bypass,
    Discard,
}

/// A whole file with many SAs, as written (spans say where each entry
/// starts).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Outline {
    #[serde(default)]
    sa: Vec<Spanned<toml::Value>>,
    #[serde(default)]
    policy: Vec<Spanned<toml::Value>>,
    tunnel: Option<Spanned<toml::Value>>,
}

/// The entries of a file with many SAs, read with their keys' spans.
#[derive(Deserialize)]
struct Entries {
    #[serde(default)]
    sa: Vec<SaFields>,
    #[serde(default)]
    policy: Vec<PolicyFields>,
}

/// One SA of a manual-keying file.
#[derive(Clone)]
pub struct SaEntry {
    /// Its name, if it has one.
    pub name: Option<String>,
    /// Outbound or inbound.
    pub direction: Direction,
    /// Its configuration, checked ([`SaConfig::validate`]), key material
    /// included.
    pub config: SaConfig,
    /// The (destination, source) addresses it is kept under in the table
    /// (see [`SaKey`]).
    pub lookup: (Option<IpAddr>, Option<IpAddr>),
    /// The line of its `[[sa]]` header, when read from text.
    pub line: Option<usize>,
}

impl SaEntry {
    /// Its key in an [`SaTable`].
    pub fn key(&self) -> SaKey {
        SaKey { direction: self.direction, spi: self.config.spi, dst: self.lookup.0, src: self.lookup.1 }
    }
}

impl fmt::Debug for SaEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaEntry")
            .field("name", &self.name)
            .field("direction", &self.direction)
            .field("config", &self.config)
            .field("lookup", &self.lookup)
            .field("line", &self.line)
            .finish()
    }
}

/// What a policy of a manual-keying file does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PolicyAction {
    /// Protect with the SA at this index of [`ManualKeys::sas`] (an
    /// outbound one).
    Protect(usize),
    /// Send in the clear.
    Bypass,
    /// Drop.
    Discard,
}

/// One policy of a manual-keying file.
#[derive(Clone, Debug)]
pub struct PolicyEntry {
    /// The traffic it is for (none: every packet).
    pub selectors: Vec<Selector>,
    /// What to do with it.
    pub action: PolicyAction,
    /// The line of its `[[policy]]` header, when read from text.
    pub line: Option<usize>,
}

/// A manual-keying file: SAs, policies in SPD order, and the `[tunnel]`
/// table left for the program that runs them.
///
/// ```
/// use espgcm::esp::SaTable;
/// use espgcm::esp::sa_file::{EXAMPLE, ManualKeys};
///
/// let mut keys = ManualKeys::parse(EXAMPLE)?;
/// assert_eq!((keys.sas.len(), keys.policies.len()), (2, 3));
/// let tunnel = keys.tunnel.take(); // the `[tunnel]` table, for whoever runs the tunnel
/// assert!(tunnel.is_none());
/// let table = SaTable::new();
/// let installed = keys.install(&table)?;
/// let tx = installed.outbound("a-to-b").expect("an outbound SA of that name");
/// tx.set_sequence_limit(1 << 20); // after recording the reservation, say
/// assert_eq!((table.outbound_len(), table.inbound_len(), table.policies().len()), (1, 1, 3));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ManualKeys {
    /// The SAs, in file order.
    pub sas: Vec<SaEntry>,
    /// The policies, in file (SPD) order.
    pub policies: Vec<PolicyEntry>,
    /// The top-level `[tunnel]` table, not read here. To report its errors
    /// with line numbers, deserialize it from the same text with spans
    /// (`toml::from_str` into a struct with a `tunnel` field, which
    /// ignores `sa` and `policy` unless it denies unknown fields).
    pub tunnel: Option<toml::Value>,
}

impl fmt::Debug for ManualKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualKeys")
            .field("sas", &self.sas)
            .field("policies", &self.policies)
            .field("tunnel", &self.tunnel.is_some())
            .finish()
    }
}

impl Drop for ManualKeys {
    fn drop(&mut self) {
        for sa in &mut self.sas {
            sa.config.keymat.zeroize();
        }
    }
}

/// An SA put into a table by [`ManualKeys::install`].
#[derive(Clone, Debug)]
pub struct InstalledSa {
    /// Its name in the file.
    pub name: Option<String>,
    /// Its key in the table.
    pub key: SaKey,
    /// The SA.
    pub handle: SaHandle,
}

/// What [`ManualKeys::install`] put into the table.
#[derive(Clone, Debug, Default)]
pub struct Installed {
    /// The SAs, in file order.
    pub sas: Vec<InstalledSa>,
    /// The policies' ids, in file order.
    pub policies: Vec<PolicyId>,
}

impl Installed {
    /// The outbound SA named `name`.
    pub fn outbound(&self, name: &str) -> Option<&Arc<Outbound>> {
        self.sas.iter().find_map(|sa| match &sa.handle {
            SaHandle::Outbound(o) if sa.name.as_deref() == Some(name) => Some(o),
            _ => None,
        })
    }

    /// The inbound SA named `name`.
    pub fn inbound(&self, name: &str) -> Option<&Arc<Inbound>> {
        self.sas.iter().find_map(|sa| match &sa.handle {
            SaHandle::Inbound(i) if sa.name.as_deref() == Some(name) => Some(i),
            _ => None,
        })
    }
}

/// Where things are in the text of a file: the lines of the entries and of
/// keys inside them.
struct Places<'a> {
    text: Option<&'a str>,
    /// Byte ranges of each SA entry and each policy entry.
    sa: Vec<core::ops::Range<usize>>,
    policy: Vec<core::ops::Range<usize>>,
}

impl Places<'_> {
    fn none() -> Places<'static> {
        Places { text: None, sa: Vec::new(), policy: Vec::new() }
    }

    fn line_at(&self, offset: usize) -> Option<usize> {
        let text = self.text?;
        Some(text.get(..offset.min(text.len()))?.matches('\n').count() + 1)
    }

    /// The line of `key` in the entry spanning `range` (its first line if
    /// the key is not written there).
    fn key_line(&self, range: &core::ops::Range<usize>, key: &str) -> Option<usize> {
        let text = self.text?;
        let region = text.get(range.clone())?;
        let mut offset = range.start;
        for line in region.split_inclusive('\n') {
            let trimmed = line.trim_start();
            if let Some(rest) = trimmed.strip_prefix(key) {
                let rest = rest.trim_start();
                if rest.starts_with('=') || rest.starts_with('.') {
                    return self.line_at(offset);
                }
            }
            // A sub-table of the entry: `[sa.lifetime]`.
            if trimmed.starts_with('[')
                && (trimmed.contains(&format!(".{key}]")) || trimmed.contains(&format!(".{key}.")))
            {
                return self.line_at(offset);
            }
            offset += line.len();
        }
        self.line_at(range.start)
    }

    fn sa_line(&self, index: usize, key: Option<&str>) -> Option<usize> {
        let range = self.sa.get(index)?;
        match key {
            Some(key) => self.key_line(range, key),
            None => self.line_at(range.start),
        }
    }

    fn policy_line(&self, index: usize, key: Option<&str>) -> Option<usize> {
        let range = self.policy.get(index)?;
        match key {
            Some(key) => self.key_line(range, key),
            None => self.line_at(range.start),
        }
    }
}

/// `SA 3 ("name")`.
fn sa_label(index: usize, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("SA {} (\"{n}\")", index + 1),
        None => format!("SA {}", index + 1),
    }
}

impl ManualKeys {
    /// Read a file with many SAs from text (a single-SA file is refused;
    /// see [`SaFile::parse`] for either).
    ///
    /// # Errors
    /// A [`SaFileError`] naming the entry, key and line.
    pub fn parse(text: &str) -> Result<ManualKeys, SaFileError> {
        let outline: Outline = toml::from_str(text).map_err(|e| toml_error(text, &e, None))?;
        // Each entry runs from its header to the next top-level header.
        let mut starts: Vec<usize> =
            outline.sa.iter().chain(&outline.policy).chain(&outline.tunnel).map(|s| s.span().start).collect();
        starts.sort_unstable();
        let region = |s: &Spanned<toml::Value>| {
            let start = s.span().start;
            let end = starts.iter().copied().find(|&x| x > start).unwrap_or(text.len());
            start..end
        };
        let places = Places {
            text: Some(text),
            sa: outline.sa.iter().map(region).collect(),
            policy: outline.policy.iter().map(region).collect(),
        };
        let entries: Entries = toml::from_str(text).map_err(|e| {
            // Name the entry the error is in.
            let at = e.span().map_or(0, |s| s.start);
            let label = |ranges: &[core::ops::Range<usize>], sa: bool| {
                ranges.iter().position(|r| r.contains(&at)).map(|i| {
                    if sa {
                        let name = outline.sa.get(i).and_then(|v| v.get_ref().get("name")).and_then(|n| n.as_str());
                        sa_label(i, name)
                    } else {
                        format!("policy {}", i + 1)
                    }
                })
            };
            let entry = label(&places.sa, true).or_else(|| label(&places.policy, false));
            toml_error(text, &e, entry)
        })?;
        let tunnel = outline.tunnel.map(Spanned::into_inner);
        build(entries, tunnel, &places)
    }

    /// Read a file with many SAs from an already parsed TOML table (a
    /// program that reads the file for its own sections too). Errors name
    /// the entry and key but no line.
    ///
    /// # Errors
    /// A [`SaFileError`] naming the entry and key.
    pub fn from_table(mut table: toml::Table) -> Result<ManualKeys, SaFileError> {
        let tunnel = table.remove("tunnel");
        if let Some(key) = table.keys().find(|k| !matches!(k.as_str(), "sa" | "policy")) {
            return Err(SaFileError {
                key: Some(key.clone()),
                message: "unknown top-level key; expected `[[sa]]`, `[[policy]]` or `[tunnel]`".into(),
                ..SaFileError::new("")
            });
        }
        let list = |value: Option<toml::Value>, what: &str| -> Result<Vec<toml::Value>, SaFileError> {
            match value {
                None => Ok(Vec::new()),
                Some(toml::Value::Array(items)) => Ok(items),
                Some(_) => Err(SaFileError {
                    key: Some(what.into()),
                    message: format!("`{what}` must be an array of tables (`[[{what}]]`)"),
                    ..SaFileError::new("")
                }),
            }
        };
        let mut sa = Vec::new();
        for (i, value) in list(table.remove("sa"), "sa")?.into_iter().enumerate() {
            let name = value.get("name").and_then(|n| n.as_str()).map(str::to_string);
            sa.push(SaFields::deserialize(value).map_err(|e| SaFileError {
                entry: Some(sa_label(i, name.as_deref())),
                message: e.message().trim().to_string(),
                ..SaFileError::new("")
            })?);
        }
        let mut policy = Vec::new();
        for (i, value) in list(table.remove("policy"), "policy")?.into_iter().enumerate() {
            policy.push(PolicyFields::deserialize(value).map_err(|e| SaFileError {
                entry: Some(format!("policy {}", i + 1)),
                message: e.message().trim().to_string(),
                ..SaFileError::new("")
            })?);
        }
        build(Entries { sa, policy }, tunnel, &Places::none())
    }

    /// Read the file at `path` (see [`parse`](Self::parse)).
    ///
    /// # Errors
    /// A [`SaFileError`] for a file that cannot be read or is wrong.
    pub fn load(path: &Path) -> Result<ManualKeys, SaFileError> {
        let mut text = read(path)?;
        let parsed = ManualKeys::parse(&text);
        text.zeroize();
        parsed
    }

    /// Put the SAs and policies into `table`, through the table's own calls
    /// (in file order: every SA, then every policy), and return handles to
    /// them (to restore sequence numbers and set limits before traffic
    /// flows). The key material is wiped as each SA is set up. On an error
    /// nothing of this file stays in the table.
    ///
    /// # Errors
    /// A [`SaFileError`] naming the SA whose installation failed (an SA with
    /// that key already in the table, or one `Outbound` per key and salt in
    /// a process: [`EspError::KeyInUse`]).
    pub fn install(mut self, table: &SaTable) -> Result<Installed, SaFileError> {
        let mut installed = Installed::default();
        let sas = core::mem::take(&mut self.sas);
        let policies = core::mem::take(&mut self.policies);
        let result = install_into(table, sas, &policies, &mut installed);
        if result.is_err() {
            for id in &installed.policies {
                let _ = table.delete_policy(*id);
            }
            for sa in &installed.sas {
                let _ = table.delete(sa.key);
            }
        }
        result.map(|()| installed)
    }
}

fn install_into(
    table: &SaTable,
    sas: Vec<SaEntry>,
    policies: &[PolicyEntry],
    installed: &mut Installed,
) -> Result<(), SaFileError> {
    let mut outbound: Vec<Option<Arc<Outbound>>> = Vec::with_capacity(sas.len());
    for (i, mut entry) in sas.into_iter().enumerate() {
        let key = entry.key();
        let label = sa_label(i, entry.name.as_deref());
        let failed = |e: EspError| SaFileError {
            entry: Some(label.clone()),
            line: entry.line,
            ..SaFileError::new(e.to_string())
        };
        let config = core::mem::replace(&mut entry.config, SaConfig::new(0, &[]));
        let handle = match entry.direction {
            Direction::Outbound => {
                let sa = Outbound::new(config).and_then(|sa| table.add_outbound(sa, key.dst)).map_err(failed)?;
                outbound.push(Some(sa.clone()));
                SaHandle::Outbound(sa)
            }
            Direction::Inbound => {
                let sa = Inbound::new(config).and_then(|sa| table.add_inbound(sa, key.dst, key.src)).map_err(failed)?;
                outbound.push(None);
                SaHandle::Inbound(sa)
            }
        };
        installed.sas.push(InstalledSa { name: entry.name.clone(), key, handle });
    }
    for (i, policy) in policies.iter().enumerate() {
        let action = match policy.action {
            PolicyAction::Bypass => Action::Bypass,
            PolicyAction::Discard => Action::Discard,
            PolicyAction::Protect(index) => match outbound.get(index) {
                Some(Some(sa)) => Action::Protect(sa.clone()),
                _ => {
                    return Err(SaFileError {
                        entry: Some(format!("policy {}", i + 1)),
                        key: Some("sa".into()),
                        line: policy.line,
                        message: format!("SA index {index} is not an outbound SA of this file"),
                    });
                }
            },
        };
        installed.policies.push(table.add_policy(Policy { selectors: policy.selectors.clone(), action }));
    }
    Ok(())
}

/// A toml error as an [`SaFileError`]: the line of its span, and the key
/// written on that line.
fn toml_error(text: &str, e: &toml::de::Error, entry: Option<String>) -> SaFileError {
    let start = e.span().map(|s| s.start);
    let line = start.and_then(|at| text.get(..at)).map(|before| before.matches('\n').count() + 1);
    let key = start.and_then(|at| {
        let line_start = text.get(..at)?.rfind('\n').map_or(0, |i| i + 1);
        let (written, _) = text.get(line_start..)?.split_once('=')?;
        let written = written.trim();
        let plain = !written.is_empty()
            && written.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-');
        plain.then(|| written.to_string())
    });
    SaFileError { entry, key, line, message: e.message().trim().to_string() }
}

fn read(path: &Path) -> Result<String, SaFileError> {
    std::fs::read_to_string(path).map_err(|e| {
        SaFileError::new(format!(
            "cannot read the SA file {}: {e}; give the path of a TOML file that describes the SA \
             (`espgcm seal --help` shows one)",
            path.display()
        ))
    })
}

/// Turn the entries read into checked SAs and policies.
fn build(entries: Entries, tunnel: Option<toml::Value>, places: &Places<'_>) -> Result<ManualKeys, SaFileError> {
    let mut keys = ManualKeys { sas: Vec::with_capacity(entries.sa.len()), policies: Vec::new(), tunnel };
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, fields) in entries.sa.into_iter().enumerate() {
        let label = sa_label(i, fields.name.as_deref());
        let at = |key: Option<&str>, message: String| SaFileError {
            entry: Some(label.clone()),
            key: key.map(str::to_string),
            line: places.sa_line(i, key),
            message,
        };
        let Some(direction) = fields.direction else {
            return Err(at(None, "missing field `direction`: say \"out\" (sending) or \"in\" (receiving)".into()));
        };
        let direction = match direction {
            DirectionName::Out => Direction::Outbound,
            DirectionName::In => Direction::Inbound,
        };
        if let Some(name) = &fields.name
            && let Some(first) = names.insert(name.clone(), i)
        {
            return Err(at(
                Some("name"),
                format!("the name \"{name}\" is taken by SA {}; names must differ", first + 1),
            ));
        }
        let lookup = fields.lookup.as_ref().map_or((None, None), |l| (l.dst, l.src));
        if direction == Direction::Outbound && lookup.1.is_some() {
            return Err(at(
                Some("lookup"),
                "an outbound SA is kept by SPI and, optionally, the peer's address (`dst`); `src` is for inbound SAs"
                    .into(),
            ));
        }
        let name = fields.name.clone();
        let config = config_of(fields).map_err(|(key, message)| at(key, message))?;
        keys.sas.push(SaEntry { name, direction, config, lookup, line: places.sa_line(i, None) });
    }
    for (i, fields) in entries.policy.into_iter().enumerate() {
        let at = |key: Option<&str>, message: String| SaFileError {
            entry: Some(format!("policy {}", i + 1)),
            key: key.map(str::to_string),
            line: places.policy_line(i, key),
            message,
        };
        let selectors = selectors_of(fields.selectors.unwrap_or_default()).map_err(|m| at(Some("selectors"), m))?;
        if let Some(reason) = selectors.iter().find_map(Selector::problem) {
            return Err(at(Some("selectors"), reason.to_string()));
        }
        let action = match (fields.action, &fields.sa) {
            (ActionName::Protect, None) => {
                return Err(at(Some("sa"), "action \"protect\" needs `sa = \"<name of an outbound SA>\"`".into()));
            }
            (ActionName::Protect, Some(name)) => {
                let index = *names.get(name).ok_or_else(|| {
                    at(
                        Some("sa"),
                        format!("no SA is named \"{name}\" in this file (names are given with `name = ...`)"),
                    )
                })?;
                if keys.sas.get(index).is_some_and(|s| s.direction != Direction::Outbound) {
                    return Err(at(
                        Some("sa"),
                        format!(
                            "SA \"{name}\" is inbound; a policy protects with an outbound SA (direction = \"out\")"
                        ),
                    ));
                }
                PolicyAction::Protect(index)
            }
            (other, Some(_)) => {
                let action = if other == ActionName::Bypass { "bypass" } else { "discard" };
                return Err(at(Some("sa"), format!("action \"{action}\" uses no SA; remove `sa`, or use \"protect\"")));
            }
            (ActionName::Bypass, None) => PolicyAction::Bypass,
            (ActionName::Discard, None) => PolicyAction::Discard,
        };
        keys.policies.push(PolicyEntry { selectors, action, line: places.policy_line(i, None) });
    }
    Ok(keys)
}

/// A file with one SA or with many.
#[derive(Debug)]
pub enum SaFile {
    /// A single-SA file: one [`SaConfig`].
    Single(SaConfig),
    /// A file with `[[sa]]` and `[[policy]]` entries.
    Many(ManualKeys),
}

impl SaFile {
    /// Read either shape: a file with a top-level `sa`, `policy` or
    /// `tunnel` key has many SAs; otherwise it is one SA.
    ///
    /// # Errors
    /// A [`SaFileError`] saying what is wrong and where.
    pub fn parse(text: &str) -> Result<SaFile, SaFileError> {
        let has_entries = toml::from_str::<toml::Table>(text)
            .map(|t| ["sa", "policy", "tunnel"].iter().any(|k| t.contains_key(*k)))
            .unwrap_or(false);
        if has_entries { ManualKeys::parse(text).map(SaFile::Many) } else { parse_sa(text).map(SaFile::Single) }
    }

    /// Read the file at `path` (see [`parse`](Self::parse)).
    ///
    /// # Errors
    /// A [`SaFileError`] for a file that cannot be read or is wrong.
    pub fn load(path: &Path) -> Result<SaFile, SaFileError> {
        let mut text = read(path)?;
        let parsed = SaFile::parse(&text);
        text.zeroize();
        parsed
    }
}

/// Read a single-SA file from text into a checked [`SaConfig`].
///
/// ```
/// use espgcm::esp::sa_file::{SINGLE_SA_EXAMPLE, parse_sa};
///
/// let cfg = parse_sa(SINGLE_SA_EXAMPLE)?;
/// assert_eq!((cfg.spi, cfg.keymat.len()), (0x1000, 20));
/// let e = parse_sa("spi = 0x1000\nkeymat = \"000102030405060708090a0b0c0d0e0f\"\n").unwrap_err();
/// assert!(e.to_string().contains("keymat is 16 bytes"));
/// # Ok::<(), espgcm::esp::sa_file::SaFileError>(())
/// ```
///
/// # Errors
/// A [`SaFileError`] saying what is wrong (with the line, for TOML errors).
pub fn parse_sa(text: &str) -> Result<SaConfig, SaFileError> {
    let fields: SaFields = toml::from_str(text).map_err(|e| SaFileError::new(e.to_string().trim_end()))?;
    let only_many = [
        (fields.name.is_some(), "name"),
        (fields.direction.is_some(), "direction"),
        (fields.lookup.is_some(), "lookup"),
    ];
    if let Some((_, key)) = only_many.iter().find(|(present, _)| *present) {
        return Err(SaFileError {
            key: Some((*key).into()),
            ..SaFileError::new(format!(
                "`{key}` belongs to an `[[sa]]` entry of a file with many SAs; a single-SA file has none"
            ))
        });
    }
    config_of(fields)
        .map_err(|(key, message)| SaFileError { key: key.map(str::to_string), ..SaFileError::new(message) })
}

/// Read a single-SA file (see [`parse_sa`]).
///
/// # Errors
/// A [`SaFileError`] for a file that cannot be read or is wrong.
pub fn load_sa(path: &Path) -> Result<SaConfig, SaFileError> {
    let mut text = read(path)?;
    let parsed = parse_sa(&text);
    text.zeroize();
    parsed
}

/// Decode hex key material: an optional `0x`, then pairs of hex digits;
/// spaces, `:` and `_` between them are ignored.
fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let t = text.trim();
    let t = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")).unwrap_or(t);
    let mut digits: Vec<u8> = Vec::with_capacity(t.len());
    for c in t.chars() {
        match c {
            ' ' | '\t' | ':' | '_' => {}
            _ => match c.to_digit(16) {
                Some(d) => digits.push(d as u8),
                None => {
                    digits.zeroize();
                    return Err(format!("keymat: `{c}` is not a hex digit; write the key material as hex"));
                }
            },
        }
    }
    if !digits.len().is_multiple_of(2) {
        let n = digits.len();
        digits.zeroize();
        return Err(format!("keymat: {n} hex digits is an odd number; each byte takes two"));
    }
    let bytes = digits.chunks_exact(2).map(|pair| if let [high, low] = pair { (high << 4) | low } else { 0 }).collect();
    digits.zeroize();
    Ok(bytes)
}

/// `"address/prefix"`, or a bare address (a prefix of its full length).
fn prefix(field: &str, text: &str) -> Result<(IpAddr, u8), String> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| format!("selectors: {field} = \"{text}\" is not an address or address/prefix"))?;
    let full = if addr.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l
            .trim()
            .parse()
            .map_err(|_| format!("selectors: {field} = \"{text}\": the prefix length is not a number"))?,
        None => full,
    };
    Ok((addr, len))
}

/// An IP protocol by number or name.
fn protocol(spec: &ProtocolSpec) -> Result<u8, String> {
    match spec {
        ProtocolSpec::Number(n) => Ok(*n),
        ProtocolSpec::Name(name) => match name.to_ascii_lowercase().as_str() {
            "icmp" => Ok(1),
            "tcp" => Ok(6),
            "udp" => Ok(17),
            "icmpv6" | "ipv6-icmp" => Ok(58),
            "sctp" => Ok(132),
            other => Err(format!(
                "selectors: protocol = \"{other}\" is not a protocol this file knows by name; \
                 use tcp, udp, icmp, icmpv6, sctp or the protocol number"
            )),
        },
    }
}

/// A port range: a number, `[first, last]`, or `"first-last"`.
fn ports(field: &str, spec: Option<&PortsSpec>) -> Result<core::ops::RangeInclusive<u16>, String> {
    let (first, last) = match spec {
        None => (0, u16::MAX),
        Some(PortsSpec::One(p)) => (*p, *p),
        Some(PortsSpec::Pair(pair)) => *pair,
        Some(PortsSpec::Text(text)) => {
            let number = |s: &str| {
                s.trim().parse::<u16>().map_err(|_| {
                    format!("selectors: {field} = \"{text}\" is not a port or a range such as \"1024-65535\"")
                })
            };
            match text.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None => {
                    let p = number(text)?;
                    (p, p)
                }
            }
        }
    };
    Ok(first..=last)
}

fn selectors_of(specs: Vec<SelectorSpec>) -> Result<Vec<Selector>, String> {
    specs
        .into_iter()
        .map(|s| {
            Ok(Selector {
                local: prefix("local", &s.local)?,
                remote: prefix("remote", &s.remote)?,
                protocol: s.protocol.as_ref().map(protocol).transpose()?,
                local_ports: ports("local_ports", s.local_ports.as_ref())?,
                remote_ports: ports("remote_ports", s.remote_ports.as_ref())?,
            })
        })
        .collect()
}

fn seconds(key: &'static str, value: Option<f64>) -> Result<Option<Duration>, (Option<&'static str>, String)> {
    value
        .map(|s| {
            Duration::try_from_secs_f64(s).map_err(|_| {
                (Some("lifetime"), format!("lifetime: {key} = {s} is not a number of seconds (0 or more)"))
            })
        })
        .transpose()
}

/// The [`SaConfig`] `fields` describe, checked; errors as (key, message).
fn config_of(mut fields: SaFields) -> Result<SaConfig, (Option<&'static str>, String)> {
    let keymat = decode_hex(&fields.keymat);
    fields.keymat.zeroize();
    let mut keymat = keymat.map_err(|m| (Some("keymat"), m))?;
    if !matches!(keymat.len(), 20 | 28 | 36) {
        let n = keymat.len();
        keymat.zeroize();
        let hint = if matches!(n, 16 | 24 | 32) {
            format!(" ({n} bytes is an AES key alone: append the SA's 4-byte salt)")
        } else {
            String::new()
        };
        return Err((
            Some("keymat"),
            format!(
                "keymat is {n} bytes; it must be the AES key followed by the 4-byte salt (RFC 4106): \
                 20 bytes for AES-128, 28 for AES-192, 36 for AES-256{hint}"
            ),
        ));
    }
    let mut cfg = SaConfig::new(fields.spi, &keymat);
    keymat.zeroize();
    if let Some(t) = &fields.transform {
        cfg.transform = match t {
            TransformName::AesGcm => Transform::AesGcm,
            TransformName::AesGmac => Transform::AesGmac,
        };
    }
    if let Some(n) = fields.icv_len {
        cfg.icv_len = n;
    }
    if let Some(m) = &fields.mode {
        cfg.mode = match *m {
            ModeSpec::Transport => Mode::Transport,
            ModeSpec::Tunnel { src, dst } => Mode::Tunnel { src, dst },
        };
    }
    if let Some(e) = &fields.encap {
        cfg.encap = match *e {
            EncapSpec::None => Encap::None,
            EncapSpec::NatT => Encap::NAT_T,
            EncapSpec::Udp { src_port, dst_port } => Encap::Udp { src_port, dst_port },
        };
    }
    cfg.nat_original = fields.nat_original;
    if let Some(esn) = fields.esn {
        cfg.esn = esn;
    }
    if let Some(w) = fields.replay_window {
        cfg.replay_window = w;
    }
    if let Some(c) = &fields.checksums {
        cfg.checksums = match c {
            ChecksumName::Verify => ChecksumPolicy::Verify,
            ChecksumName::Skip => ChecksumPolicy::Skip,
        };
    }
    if let Some(name) = &fields.backend {
        let b: Backend = name.parse().map_err(|e| (Some("backend"), format!("backend: {e}")))?;
        if let Some(why) = b.unsupported_reason() {
            return Err((
                Some("backend"),
                format!("backend = \"{name}\" cannot run here ({why}); remove the line to get the best one"),
            ));
        }
        cfg.backend = Some(b);
    }
    if let Some(v) = &fields.verify {
        cfg.verify = match *v {
            VerifySpec::Off => VerifyPolicy::Off,
            VerifySpec::Full => VerifyPolicy::Full,
            VerifySpec::Sample { one_in } => VerifyPolicy::Sample { one_in },
        };
    }
    if let Some(ttl) = fields.tunnel_ttl {
        cfg.tunnel_ttl = ttl;
    }
    cfg.path_mtu = fields.path_mtu;
    cfg.selectors = selectors_of(fields.selectors.take().unwrap_or_default()).map_err(|m| (Some("selectors"), m))?;
    if let Some(n) = fields.next_headers.take() {
        cfg.next_headers = match n {
            NextHeadersSpec::Named(NextHeadersName::Verifiable) => NextHeaders::Verifiable,
            NextHeadersSpec::List(list) => NextHeaders::Only(list),
        };
    }
    if let Some(l) = &fields.lifetime {
        cfg.lifetime = Lifetime {
            soft_bytes: l.soft_bytes,
            hard_bytes: l.hard_bytes,
            soft_packets: l.soft_packets,
            hard_packets: l.hard_packets,
            soft_time: seconds("soft_seconds", l.soft_seconds)?,
            hard_time: seconds("hard_seconds", l.hard_seconds)?,
        };
    }
    cfg.validate().map_err(|e| {
        let key = match &e {
            EspError::Invalid { parameter, .. } => Some(*parameter),
            _ => None,
        };
        (key, e.to_string())
    })?;
    Ok(cfg)
}
