//! The SA file of `espgcm seal` and `espgcm open`: one security association
//! in TOML, with the field names of [`SaConfig`], and the Wireshark key
//! table made from it.

use espgcm::esp::{ChecksumPolicy, Encap, Mode, NextHeaders, SaConfig, Selector, Transform};
use espgcm::{Backend, VerifyPolicy};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::Path;
use zeroize::Zeroize;

/// A complete SA file with every field, shown by `--help` and the README.
pub const EXAMPLE: &str = r#"# One SA, one direction. Only spi and keymat are required; the other
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
# selectors = [{ local = "10.1.0.0/16", remote = "10.2.0.0/16", protocol = 6,
#                local_ports = [0, 65535], remote_ports = [22, 22] }]
                                  # what the SA carries (default: anything); protocol
                                  # and ports may be left out (any)
"#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SaFile {
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectorSpec {
    local: String,
    remote: String,
    protocol: Option<u8>,
    local_ports: Option<(u16, u16)>,
    remote_ports: Option<(u16, u16)>,
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
    let bytes = digits.chunks_exact(2).map(|p| (p[0] << 4) | p[1]).collect();
    digits.zeroize();
    Ok(bytes)
}

/// Read the SA file at `path` into an [`SaConfig`], checked.
///
/// Every error names the file and says what to change.
pub fn load(path: &Path) -> Result<SaConfig, String> {
    let mut text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the SA file {}: {e}; give the path of a TOML file that describes the SA \
             (`espgcm seal --help` shows one)",
            path.display()
        )
    })?;
    let parsed = parse(&text);
    text.zeroize();
    parsed.map_err(|e| format!("SA file {}: {e}", path.display()))
}

/// Parse SA file text into a checked [`SaConfig`].
pub fn parse(text: &str) -> Result<SaConfig, String> {
    let mut file: SaFile = toml::from_str(text).map_err(|e| {
        format!("{}\n(the SA file's format is shown by `espgcm seal --help`)", e.to_string().trim_end())
    })?;
    let keymat = decode_hex(&file.keymat);
    file.keymat.zeroize();
    let keymat = keymat?;
    if !matches!(keymat.len(), 20 | 28 | 36) {
        let n = keymat.len();
        let hint = if matches!(n, 16 | 24 | 32) {
            format!(" ({n} bytes is an AES key alone: append the SA's 4-byte salt)")
        } else {
            String::new()
        };
        return Err(format!(
            "keymat is {n} bytes; it must be the AES key followed by the 4-byte salt (RFC 4106): \
             20 bytes for AES-128, 28 for AES-192, 36 for AES-256{hint}"
        ));
    }
    let mut cfg = SaConfig::new(file.spi, &keymat);
    let mut keymat = keymat;
    keymat.zeroize();
    if let Some(t) = file.transform {
        cfg.transform = match t {
            TransformName::AesGcm => Transform::AesGcm,
            TransformName::AesGmac => Transform::AesGmac,
        };
    }
    if let Some(n) = file.icv_len {
        cfg.icv_len = n;
    }
    if let Some(m) = file.mode {
        cfg.mode = match m {
            ModeSpec::Transport => Mode::Transport,
            ModeSpec::Tunnel { src, dst } => Mode::Tunnel { src, dst },
        };
    }
    if let Some(e) = file.encap {
        cfg.encap = match e {
            EncapSpec::None => Encap::None,
            EncapSpec::NatT => Encap::NAT_T,
            EncapSpec::Udp { src_port, dst_port } => Encap::Udp { src_port, dst_port },
        };
    }
    cfg.nat_original = file.nat_original;
    if let Some(esn) = file.esn {
        cfg.esn = esn;
    }
    if let Some(w) = file.replay_window {
        cfg.replay_window = w;
    }
    if let Some(c) = file.checksums {
        cfg.checksums = match c {
            ChecksumName::Verify => ChecksumPolicy::Verify,
            ChecksumName::Skip => ChecksumPolicy::Skip,
        };
    }
    if let Some(name) = &file.backend {
        let b: Backend = name.parse().map_err(|e| format!("backend: {e}"))?;
        if let Some(why) = b.unsupported_reason() {
            return Err(format!("backend = \"{name}\" cannot run here ({why}); remove the line to get the best one"));
        }
        cfg.backend = Some(b);
    }
    if let Some(v) = file.verify {
        cfg.verify = match v {
            VerifySpec::Off => VerifyPolicy::Off,
            VerifySpec::Full => VerifyPolicy::Full,
            VerifySpec::Sample { one_in } => VerifyPolicy::Sample { one_in },
        };
    }
    if let Some(ttl) = file.tunnel_ttl {
        cfg.tunnel_ttl = ttl;
    }
    cfg.path_mtu = file.path_mtu;
    for s in file.selectors.unwrap_or_default() {
        let (lp, rp) = (s.local_ports.unwrap_or((0, u16::MAX)), s.remote_ports.unwrap_or((0, u16::MAX)));
        cfg.selectors.push(Selector {
            local: prefix("local", &s.local)?,
            remote: prefix("remote", &s.remote)?,
            protocol: s.protocol,
            local_ports: lp.0..=lp.1,
            remote_ports: rp.0..=rp.1,
        });
    }
    if let Some(n) = file.next_headers {
        cfg.next_headers = match n {
            NextHeadersSpec::Named(NextHeadersName::Verifiable) => NextHeaders::Verifiable,
            NextHeadersSpec::List(list) => NextHeaders::Only(list),
        };
    }
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

/// One line for the terminal: SPI, cipher, ICV, mode, encapsulation.
pub fn describe(cfg: &SaConfig) -> String {
    let bits = (cfg.keymat.len().saturating_sub(4)) * 8;
    let transform = match cfg.transform {
        Transform::AesGmac => format!("AES-{bits}-GMAC"),
        _ => format!("AES-{bits}-GCM"),
    };
    let mode = match cfg.mode {
        Mode::Tunnel { src, dst } => format!("tunnel {src} -> {dst}"),
        _ => "transport".to_string(),
    };
    let encap = match cfg.encap {
        Encap::Udp { src_port, dst_port } => format!(", ESP in UDP {src_port} -> {dst_port}"),
        _ => String::new(),
    };
    let esn = if cfg.esn { ", ESN" } else { "" };
    format!("spi {:#010x}, {transform}, ICV {} bytes, {mode}{encap}{esn}", cfg.spi, cfg.icv_len)
}

/// Wireshark's `esp_sa` table (its user access table file of that name)
/// for this SA: one record per IP family the outer header can have.
///
/// Refused for what Wireshark's ESP dissector cannot decode (AES-GMAC).
pub fn wireshark_esp_sa(cfg: &SaConfig) -> Result<String, String> {
    if cfg.transform == Transform::AesGmac {
        return Err("Wireshark's ESP dissector has no AES-GMAC (RFC 4543) algorithm, so no key table can \
                    make it check these packets; drop --wireshark-keys or use transform = \"aes-gcm\""
            .to_string());
    }
    let key: String = cfg.keymat.iter().map(|b| format!("{b:02x}")).collect();
    let algorithm = format!("AES-GCM with {} octet ICV [RFC4106]", cfg.icv_len);
    // (protocol, source, destination) of the outer header.
    let outer: Vec<(&str, String, String)> = match cfg.mode {
        Mode::Tunnel { src, dst } => {
            vec![(if src.is_ipv4() { "IPv4" } else { "IPv6" }, src.to_string(), dst.to_string())]
        }
        _ => vec![("IPv4", "*".into(), "*".into()), ("IPv6", "*".into(), "*".into())],
    };
    let mut text = String::from(
        "# Wireshark ESP SA table (esp_sa), written by espgcm seal.\n\
         # Columns: protocol, source, destination, SPI, encryption, key (key || salt), authentication, key.\n\
         # Put this file in Wireshark's configuration folder (Linux: ~/.config/wireshark/esp_sa) and turn on\n\
         # Preferences > Protocols > ESP > \"Attempt to detect/decode encrypted ESP payloads\".\n",
    );
    if cfg.esn {
        text.push_str(
            "# This SA uses extended sequence numbers, which Wireshark 4.0's ESP dissector does not\n\
             # take into account: it will report the ICVs as bad.\n",
        );
    }
    for (protocol, src, dst) in outer {
        text.push_str(&format!(
            "\"{protocol}\",\"{src}\",\"{dst}\",\"{:#010x}\",\"{algorithm}\",\"0x{key}\",\"NULL\",\"\"\n",
            cfg.spi
        ));
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses_to_the_defaults() {
        let cfg = parse(EXAMPLE).expect("the example parses");
        assert_eq!(cfg.spi, 0x1000);
        assert_eq!(cfg.keymat, (0u8..20).collect::<Vec<u8>>());
        assert_eq!((cfg.icv_len, cfg.mode, cfg.encap, cfg.replay_window), (16, Mode::Transport, Encap::None, 4096));
        assert_eq!((cfg.verify, cfg.next_headers), (espgcm::esp::DEFAULT_VERIFY, NextHeaders::Verifiable));
    }

    #[test]
    fn tunnel_nat_t_and_sampling_are_tables() {
        let cfg = parse(
            r#"spi = 4097
keymat = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff01020304"
mode = { tunnel = { src = "2001:db8::1", dst = "2001:db8::2" } }
encap = "nat-t"
verify = { sample = { one_in = 64 } }
esn = true
"#,
        )
        .expect("parses");
        assert_eq!(cfg.keymat.len(), 36);
        assert_eq!(
            cfg.mode,
            Mode::Tunnel { src: "2001:db8::1".parse().expect("addr"), dst: "2001:db8::2".parse().expect("addr") }
        );
        assert_eq!(cfg.encap, Encap::NAT_T);
        assert_eq!(cfg.verify, VerifyPolicy::Sample { one_in: 64 });
        assert!(cfg.esn);
    }

    #[test]
    fn errors_say_what_was_wrong() {
        let short = parse("spi = 0x1000\nkeymat = \"000102030405060708090a0b0c0d0e0f\"\n").err().unwrap_or_default();
        assert!(short.contains("keymat is 16 bytes") && short.contains("append the SA's 4-byte salt"), "{short}");
        let unknown = parse("spi = 0x1000\nkeymat = \"00\"\nkeymatt = 1\n").err().unwrap_or_default();
        assert!(unknown.contains("unknown field `keymatt`"), "{unknown}");
        let missing = parse("keymat = \"00\"\n").err().unwrap_or_default();
        assert!(missing.contains("missing field `spi`"), "{missing}");
        let spi = parse("spi = 7\nkeymat = \"0001020304050607080910111213141516171819\"\n").err().unwrap_or_default();
        assert!(spi.contains("invalid spi"), "{spi}");
        let hex = parse("spi = 0x1000\nkeymat = \"zz\"\n").err().unwrap_or_default();
        assert!(hex.contains("`z` is not a hex digit"), "{hex}");
    }

    #[test]
    fn next_headers_is_a_name_or_a_list_of_protocol_numbers() {
        let base = "spi = 0x1000\nkeymat = \"0001020304050607080910111213141516171819\"\n";
        assert_eq!(parse(base).expect("parses").next_headers, NextHeaders::Verifiable);
        let named = parse(&format!("{base}next_headers = \"verifiable\"\n")).expect("parses");
        assert_eq!(named.next_headers, NextHeaders::Verifiable);
        let list = parse(&format!("{base}next_headers = [6, 17, 132]\n")).expect("parses");
        assert_eq!(list.next_headers, NextHeaders::Only(vec![6, 17, 132]));
        let empty = parse(&format!("{base}next_headers = []\n")).err().unwrap_or_default();
        assert!(empty.contains("invalid next_headers") && empty.contains("empty list"), "{empty}");
        let tunnel = "mode = { tunnel = { src = \"192.0.2.1\", dst = \"192.0.2.2\" } }\n";
        let wrong = parse(&format!("{base}{tunnel}next_headers = [6]\n")).err().unwrap_or_default();
        assert!(wrong.contains("tunnel mode carries IP packets only"), "{wrong}");
        let bad = parse(&format!("{base}next_headers = [300]\n")).err().unwrap_or_default();
        assert!(bad.contains("next_headers"), "{bad}");
    }

    #[test]
    fn selectors_are_prefixes_protocols_and_port_ranges() {
        let base = "spi = 0x1000\nkeymat = \"0001020304050607080910111213141516171819\"\n";
        let cfg = parse(&format!(
            "{base}selectors = [{{ local = \"10.1.0.0/16\", remote = \"10.2.0.9\", protocol = 6, remote_ports = [22, 22] }}]\n"
        ))
        .expect("parses");
        assert_eq!(
            cfg.selectors,
            [Selector {
                protocol: Some(6),
                remote_ports: 22..=22,
                ..Selector::between(("10.1.0.0".parse().expect("addr"), 16), ("10.2.0.9".parse().expect("addr"), 32))
            }]
        );
        let bad = parse(&format!("{base}selectors = [{{ local = \"10.1.0.0/40\", remote = \"10.2.0.0/16\" }}]\n"))
            .err()
            .unwrap_or_default();
        assert!(bad.contains("invalid selectors") && bad.contains("prefix length"), "{bad}");
        let typo = parse(&format!("{base}selectors = [{{ local = \"ten\", remote = \"10.2.0.0/16\" }}]\n"))
            .err()
            .unwrap_or_default();
        assert!(typo.contains("local = \"ten\" is not an address"), "{typo}");
    }

    #[test]
    fn wireshark_table_has_one_record_per_outer_family_in_transport_mode() {
        let cfg = parse("spi = 0x1000\nkeymat = \"0001020304050607080910111213141516171819\"\nicv_len = 12\n")
            .expect("parses");
        let table = wireshark_esp_sa(&cfg).expect("table");
        let records: Vec<&str> = table.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            records,
            [
                "\"IPv4\",\"*\",\"*\",\"0x00001000\",\"AES-GCM with 12 octet ICV [RFC4106]\",\
                 \"0x0001020304050607080910111213141516171819\",\"NULL\",\"\"",
                "\"IPv6\",\"*\",\"*\",\"0x00001000\",\"AES-GCM with 12 octet ICV [RFC4106]\",\
                 \"0x0001020304050607080910111213141516171819\",\"NULL\",\"\"",
            ]
        );
    }
}
