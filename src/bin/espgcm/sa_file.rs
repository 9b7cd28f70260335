//! The SA file of `espgcm seal` and `espgcm open`: one security association
//! in TOML, with the field names of [`SaConfig`] (parsed by the library's
//! [`espgcm::esp::sa_file`]), or one SA picked from a file with many; and the
//! Wireshark key table made from it.

use espgcm::esp::sa_file::{SaFile, SaFileError};
use espgcm::esp::{Direction, Encap, Mode, SaConfig, Transform};
use std::path::Path;
use zeroize::Zeroize;

/// A complete single-SA file with every field, shown by `--help` and the README.
pub use espgcm::esp::sa_file::SINGLE_SA_EXAMPLE as EXAMPLE;

/// Read the SA file at `path` into an [`SaConfig`], checked: a single-SA
/// file, or from a file with many SAs (`[[sa]]` entries) the one named
/// `name`, or without a name the only SA of `direction` (outbound for
/// `seal`, inbound for `open`).
///
/// Every error names the file and says what to change.
pub fn load(path: &Path, name: Option<&str>, direction: Direction) -> Result<SaConfig, String> {
    let mut text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the SA file {}: {e}; give the path of a TOML file that describes the SA \
             (`espgcm seal --help` shows one)",
            path.display()
        )
    })?;
    let parsed = SaFile::parse(&text);
    text.zeroize();
    let in_file = |e: String| format!("SA file {}: {e}", path.display());
    match parsed.map_err(|e| in_file(explain(e)))? {
        SaFile::Single(cfg) => match name {
            None => Ok(cfg),
            Some(n) => Err(in_file(format!(
                "--sa-name {n} picks an SA from a file with many ([[sa]] entries); this file is one SA: \
                 leave --sa-name out"
            ))),
        },
        SaFile::Many(mut keys) => {
            let (word, flag) = match direction {
                Direction::Outbound => ("out", "seal"),
                Direction::Inbound => ("in", "open"),
            };
            let picked: Vec<usize> = keys
                .sas
                .iter()
                .enumerate()
                .filter(|(_, sa)| match name {
                    Some(n) => sa.name.as_deref() == Some(n),
                    None => sa.direction == direction,
                })
                .map(|(i, _)| i)
                .collect();
            let index = match (picked.as_slice(), name) {
                ([one], _) => *one,
                ([], Some(n)) => {
                    return Err(in_file(format!("no SA is named \"{n}\" (names are given with `name = ...`)")));
                }
                ([], None) => {
                    return Err(in_file(format!("no SA has direction = \"{word}\", which `espgcm {flag}` needs")));
                }
                (_, _) => {
                    return Err(in_file(format!(
                        "{} SAs have direction = \"{word}\": pick one with --sa-name",
                        picked.len()
                    )));
                }
            };
            let sa = keys.sas.swap_remove(index);
            if sa.direction != direction {
                return Err(in_file(format!(
                    "SA \"{}\" has direction = \"{}\", but `espgcm {flag}` needs an SA with direction = \"{word}\"",
                    sa.name.as_deref().unwrap_or(""),
                    if word == "out" { "in" } else { "out" }
                )));
            }
            Ok(sa.config.clone())
        }
    }
}

/// The library's error, with a pointer to the format where the file does
/// not parse.
fn explain(e: SaFileError) -> String {
    if e.message.contains("TOML parse error") || e.message.contains("unknown field") {
        format!("{e}\n(the SA file's format is shown by `espgcm seal --help`)")
    } else {
        e.to_string()
    }
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
    fn wireshark_table_has_one_record_per_outer_family_in_transport_mode() {
        let cfg = espgcm::esp::sa_file::parse_sa(
            "spi = 0x1000\nkeymat = \"0001020304050607080910111213141516171819\"\nicv_len = 12\n",
        )
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
