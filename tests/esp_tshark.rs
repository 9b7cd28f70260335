//! A real peer: Wireshark's tshark decrypts packets sealed by espgcm and
//! checks their ICVs and inner checksums.
//!
//! The test seals TCP and UDP packets over several SAs (transport and tunnel
//! mode, with and without NAT-T, AES-128 and AES-256, ICV 16, 12 and 8, IPv4
//! and IPv6 outer headers), writes them to one pcap (raw IP link type),
//! gives tshark every SA's key through its `esp_sa` table, and requires for
//! every packet: `esp.icv_good` = 1 and the inner TCP or UDP checksum status
//! = 1 (good), with the sequence number and SPI tshark reads matching.
//! Wireshark 4.0 has no ESN setting, so 32-bit sequence numbers are used.
//!
//! The inner UDP packets use unassigned ports: a payload that tshark hands
//! to an application dissector (DNS on port 53, say) and that dissector
//! finds malformed aborts the ESP dissection before the ICV is reported.
//!
//! Without tshark the test prints "skipped: tshark not installed" and
//! passes, unless `ESPGCM_REQUIRE_TSHARK=1` is set: then a missing tshark is
//! a failure. `.ci/run` installs tshark and sets that variable, so CI always
//! runs the interop check for real.

use espgcm::esp::{Encap, Mode, Outbound, SaConfig};
use espgcm_testkit::packets::*;
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

struct Sa {
    spi: u32,
    outer_v6: bool,
    keymat: Vec<u8>,
    icv: usize,
    tunnel: bool,
    natt: bool,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn tshark_decrypts_espgcm_packets_with_good_icv_and_inner_checksums() {
    if tshark_peer().is_none() {
        return;
    }

    // The SAs.
    let mut sas = Vec::new();
    let mut spi = 0x1000u32;
    for outer_v6 in [false, true] {
        for tunnel in [false, true] {
            for natt in [false, true] {
                for key_len in [16, 32] {
                    for icv in [16, 12, 8] {
                        // IPv6 outer: a subset is enough (one SA per mode x NAT-T).
                        if outer_v6 && (key_len != 32 || icv != 16) {
                            continue;
                        }
                        spi += 1;
                        sas.push(Sa { spi, outer_v6, keymat: keymat(key_len), icv, tunnel, natt });
                    }
                }
            }
        }
    }

    // Seal packets and write the pcap.
    let dir = std::env::temp_dir().join(format!("espgcm-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap_path = dir.join("esp.pcap");
    let file = std::fs::File::create(&pcap_path).unwrap();
    let header = PcapHeader { datalink: DataLink::RAW, ..PcapHeader::default() };
    let mut writer = PcapWriter::with_header(file, header).unwrap();
    // frame number -> (spi, seq, inner protocol is TCP)
    let mut expected: HashMap<u32, (u32, u32, bool)> = HashMap::new();
    let mut frame = 0u32;
    for sa in &sas {
        let family = if sa.outer_v6 { 6 } else { 4 };
        let mode = if sa.tunnel {
            let (src, dst) = endpoints(family);
            Mode::Tunnel { src, dst }
        } else {
            Mode::Transport
        };
        let cfg = SaConfig {
            icv_len: sa.icv,
            mode,
            encap: if sa.natt { Encap::NAT_T } else { Encap::None },
            ..SaConfig::new(sa.spi, &sa.keymat)
        };
        let tx = Outbound::new(cfg).unwrap();
        let mut seq = 0u32;
        for (i, size) in [1usize, 2, 3, 4, 333, 1300].into_iter().enumerate() {
            for tcp in [true, false] {
                // Tunnel mode carries the other family inside every second packet.
                let inner_family = if sa.tunnel && i % 2 == 1 { 10 - family } else { family };
                let input = packet(inner_family, tcp, &pattern(size, i as u8));
                let mut sealed = Vec::new();
                tx.seal(&input, &mut sealed).unwrap();
                seq += 1;
                frame += 1;
                expected.insert(frame, (sa.spi, seq, tcp));
                let ts = Duration::from_millis(u64::from(frame));
                writer.write_packet(&PcapPacket::new(ts, sealed.len() as u32, &sealed)).unwrap();
            }
        }
    }
    // A negative control: the first SA's next packet with one ICV bit
    // flipped must be reported bad, or the oracle proves nothing.
    let control_frame = frame + 1;
    {
        let sa = &sas[0];
        let tx = Outbound::new(SaConfig { icv_len: sa.icv, ..SaConfig::new(sa.spi, &sa.keymat) }).unwrap();
        tx.skip_to_sequence(1000).unwrap();
        let mut sealed = Vec::new();
        tx.seal(&packet(4, true, b"control"), &mut sealed).unwrap();
        *sealed.last_mut().unwrap() ^= 1;
        let ts = Duration::from_millis(u64::from(control_frame));
        writer.write_packet(&PcapPacket::new(ts, sealed.len() as u32, &sealed)).unwrap();
    }
    drop(writer);

    // tshark with every SA.
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(&pcap_path).args([
        "-o",
        "esp.enable_encryption_decode:TRUE",
        "-o",
        "esp.enable_authentication_check:TRUE",
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
    ]);
    for sa in &sas {
        let proto = if sa.outer_v6 { "IPv6" } else { "IPv4" };
        let alg = format!("AES-GCM with {} octet ICV [RFC4106]", sa.icv);
        cmd.arg("-o").arg(format!(
            "uat:esp_sa:\"{proto}\",\"*\",\"*\",\"0x{:08x}\",\"{alg}\",\"0x{}\",\"NULL\",\"\"",
            sa.spi,
            hex(&sa.keymat)
        ));
    }
    cmd.args([
        "-T",
        "fields",
        "-E",
        "occurrence=l",
        "-E",
        "separator=|",
        "-e",
        "frame.number",
        "-e",
        "esp.spi",
        "-e",
        "esp.sequence",
        "-e",
        "esp.icv_good",
        "-e",
        "esp.icv_bad",
        "-e",
        "tcp.checksum.status",
        "-e",
        "udp.checksum.status",
        "-e",
        "ip.checksum.status",
    ]);
    let out = cmd.output().expect("tshark runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tshark failed: {stderr}");

    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), expected.len() + 1, "one line per packet:\n{stdout}\n{stderr}");
    for line in &lines {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f.len(), 8, "{line}");
        let frame: u32 = f[0].parse().unwrap();
        if frame == control_frame {
            assert_eq!((f[3], f[4]), ("0", "1"), "the damaged ICV must be reported bad: {line}");
            eprintln!("tshark (damaged ICV control): {line}");
            continue;
        }
        let (spi, seq, tcp) = expected[&frame];
        let spi_seen = u32::from_str_radix(f[1].trim_start_matches("0x"), 16).unwrap_or(0);
        assert_eq!(spi_seen, spi, "frame {frame}: {line}");
        assert_eq!(f[2], seq.to_string(), "frame {frame}: {line}");
        assert_eq!(f[3], "1", "frame {frame}: esp.icv_good: {line}");
        assert_ne!(f[4], "1", "frame {frame}: esp.icv_bad: {line}");
        let status = if tcp { f[5] } else { f[6] };
        assert_eq!(status, "1", "frame {frame}: inner {} checksum status: {line}", if tcp { "TCP" } else { "UDP" });
    }
    for line in lines.iter().take(4).chain(lines.iter().rev().take(2)) {
        eprintln!("tshark: {line}");
    }
    eprintln!("tshark verified {} packets over {} SAs (and rejected the damaged control)", lines.len() - 1, sas.len());
    let _ = std::fs::remove_dir_all(&dir);
}
