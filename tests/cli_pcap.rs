//! `espgcm seal` and `espgcm open` as an operator runs them: captures in
//! pcap and pcapng, Ethernet, raw IP and Linux cooked link types, SA files,
//! the summary, the Wireshark key table (checked by tshark when it is
//! installed) and the error messages.

use espgcm_testkit::packets::*;
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;
use pcap_file::pcapng::{Block, PcapNgReader, PcapNgWriter};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// A frame as captured: timestamp and bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Frame {
    ts: Duration,
    data: Vec<u8>,
}

fn espgcm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_espgcm"))
        .args(args)
        .env_remove("ESPGCM_BACKEND")
        .env_remove("ESPGCM_DISABLE")
        .output()
        .expect("the espgcm binary runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("espgcm-cli-pcap-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// The IP packets of a test capture: TCP and UDP over IPv4 and IPv6.
fn ip_packets(families: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (i, size) in [1usize, 2, 3, 4, 100, 333, 1300].into_iter().enumerate() {
        for &family in families {
            out.push(packet(family, i % 2 == 0, &pattern(size, i as u8)));
        }
    }
    out
}

fn ethertype(ip: &[u8]) -> [u8; 2] {
    if ip[0] >> 4 == 6 { [0x86, 0xdd] } else { [0x08, 0x00] }
}

fn ethernet(ip: &[u8], vlan: Option<u16>) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01];
    if let Some(id) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&id.to_be_bytes());
    }
    f.extend_from_slice(&ethertype(ip));
    f.extend_from_slice(ip);
    f
}

fn sll(ip: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    f.extend_from_slice(&ethertype(ip));
    f.extend_from_slice(ip);
    f
}

/// An ARP request: not IP, copied unchanged both ways.
fn arp_frame() -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
    f
}

fn frames(data: Vec<Vec<u8>>) -> Vec<Frame> {
    data.into_iter()
        .enumerate()
        .map(|(i, data)| Frame { ts: Duration::new(1_700_000_000 + i as u64, 1000 * i as u32), data })
        .collect()
}

fn write_pcap(path: &Path, link: DataLink, frames: &[Frame]) {
    let header = PcapHeader { datalink: link, ..PcapHeader::default() };
    let mut w = PcapWriter::with_header(std::fs::File::create(path).unwrap(), header).unwrap();
    for f in frames {
        w.write_packet(&PcapPacket::new(f.ts, f.data.len() as u32, &f.data)).unwrap();
    }
}

fn write_pcapng(path: &Path, link: DataLink, frames: &[Frame]) {
    let mut w = PcapNgWriter::new(std::fs::File::create(path).unwrap()).unwrap();
    w.write_block(&Block::InterfaceDescription(InterfaceDescriptionBlock::new(link, 0xffff))).unwrap();
    for f in frames {
        let epb = EnhancedPacketBlock {
            interface_id: 0,
            timestamp: f.ts,
            original_len: f.data.len() as u32,
            data: f.data.clone().into(),
            options: vec![],
        };
        w.write_block(&Block::EnhancedPacket(epb)).unwrap();
    }
}

/// Read a capture of either format: (link types, frames).
fn read_capture(path: &Path) -> (Vec<DataLink>, Vec<Frame>) {
    let bytes = std::fs::read(path).unwrap();
    if bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        let mut r = PcapNgReader::new(&bytes[..]).unwrap();
        let (mut links, mut out) = (Vec::new(), Vec::new());
        while let Some(block) = r.next_block() {
            match block.unwrap() {
                Block::InterfaceDescription(idb) => links.push(idb.linktype),
                Block::EnhancedPacket(epb) => out.push(Frame { ts: epb.timestamp, data: epb.data.to_vec() }),
                _ => {}
            }
        }
        (links, out)
    } else {
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        let link = r.header().datalink;
        let mut out = Vec::new();
        while let Some(p) = r.next_packet() {
            let p = p.unwrap();
            out.push(Frame { ts: p.timestamp, data: p.data.to_vec() });
        }
        (vec![link], out)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One capture setup to round-trip.
struct Case {
    name: &'static str,
    pcapng: bool,
    link: DataLink,
    /// Link-layer header length of the frames (for finding the IP packet),
    /// VLAN tags not included.
    header: usize,
    frames: Vec<Frame>,
    sa: String,
    /// IP protocol of the sealed outer packets (50 ESP, 17 NAT-T).
    outer_protocol: u8,
    /// Frames that are not IP (copied unchanged).
    not_ip: usize,
}

fn cases() -> Vec<Case> {
    let key16 = hex(&keymat(16));
    let key32 = hex(&keymat(32));
    let mut eth: Vec<Vec<u8>> =
        ip_packets(&[4, 6]).iter().enumerate().map(|(i, p)| ethernet(p, (i % 5 == 0).then_some(7))).collect();
    eth.insert(3, arp_frame());
    vec![
        Case {
            name: "pcap-ethernet-transport",
            pcapng: false,
            link: DataLink::ETHERNET,
            header: 14,
            frames: frames(eth),
            sa: format!("spi = 0x00001001\nkeymat = \"0x{key16}\"\n"),
            outer_protocol: 50,
            not_ip: 1,
        },
        Case {
            name: "pcapng-raw-tunnel-natt",
            pcapng: true,
            link: DataLink::RAW,
            header: 0,
            frames: frames(ip_packets(&[4, 6])),
            sa: format!(
                "spi = 0x00001002\nkeymat = \"{key32}\"\nicv_len = 12\nencap = \"nat-t\"\n\
                 mode = {{ tunnel = {{ src = \"192.0.2.1\", dst = \"198.51.100.2\" }} }}\n"
            ),
            outer_protocol: 17,
            not_ip: 0,
        },
        Case {
            name: "pcap-sll-tunnel-v6-outer",
            pcapng: false,
            link: DataLink::LINUX_SLL,
            header: 16,
            frames: frames(ip_packets(&[4]).iter().map(|p| sll(p)).collect()),
            sa: format!(
                "spi = 0x00001003\nkeymat = \"{key16}\"\nicv_len = 8\n\n[mode.tunnel]\n\
                 src = \"2001:db8::1\"\ndst = \"2001:db8::2\"\n"
            ),
            outer_protocol: 50,
            not_ip: 0,
        },
    ]
}

/// The outer IP protocol of a sealed IP packet.
fn outer_protocol(ip: &[u8]) -> u8 {
    if ip[0] >> 4 == 4 { ip[9] } else { ip[6] }
}

struct Sealed {
    dir: PathBuf,
    esp: PathBuf,
    keys: PathBuf,
}

fn seal_case(case: &Case) -> Sealed {
    let dir = scratch(case.name);
    let ext = if case.pcapng { "pcapng" } else { "pcap" };
    let (sa, plain, esp, keys) =
        (dir.join("sa.toml"), dir.join(format!("plain.{ext}")), dir.join(format!("esp.{ext}")), dir.join("esp_sa"));
    std::fs::write(&sa, &case.sa).unwrap();
    if case.pcapng {
        write_pcapng(&plain, case.link, &case.frames);
    } else {
        write_pcap(&plain, case.link, &case.frames);
    }
    let out = espgcm(&["seal", "--sa", s(&sa), "--in", s(&plain), "--out", s(&esp), "--wireshark-keys", s(&keys)]);
    let t = text(&out);
    assert!(out.status.success(), "{}: seal failed:\n{t}", case.name);
    let ip = case.frames.len() - case.not_ip;
    assert!(t.contains(&format!("packets read:        {}", case.frames.len())), "{}:\n{t}", case.name);
    assert!(t.contains(&format!("{:<21}{ip}\n", "sealed:")), "{}:\n{t}", case.name);
    assert!(t.contains("refused:             0"), "{}:\n{t}", case.name);
    Sealed { dir, esp, keys }
}

#[test]
fn seal_then_open_returns_the_original_frames_byte_for_byte() {
    for case in cases() {
        let sealed = seal_case(&case);
        // The sealed capture: same format, link type, count and timestamps;
        // every IP packet is now ESP (or ESP in UDP).
        let (links, esp_frames) = read_capture(&sealed.esp);
        assert_eq!(links, vec![case.link], "{}", case.name);
        assert_eq!(esp_frames.len(), case.frames.len(), "{}", case.name);
        let mut esp_count = 0;
        for (plain, esp) in case.frames.iter().zip(&esp_frames) {
            assert_eq!(plain.ts, esp.ts, "{}", case.name);
            if plain.data == arp_frame() {
                assert_eq!(esp.data, plain.data, "{}: a non-IP frame is copied unchanged", case.name);
                continue;
            }
            let vlan = case.link == DataLink::ETHERNET && esp.data[12..14] == [0x81, 0x00];
            let ip = &esp.data[case.header + if vlan { 4 } else { 0 }..];
            assert_eq!(outer_protocol(ip), case.outer_protocol, "{}", case.name);
            assert!(esp.data.len() > plain.data.len(), "{}", case.name);
            esp_count += 1;
        }
        assert_eq!(esp_count, case.frames.len() - case.not_ip);

        let opened = sealed.dir.join("opened.cap");
        let sa = sealed.dir.join("sa.toml");
        let out = espgcm(&["open", "--sa", s(&sa), "--in", s(&sealed.esp), "--out", s(&opened)]);
        let t = text(&out);
        assert!(out.status.success(), "{}: open failed:\n{t}", case.name);
        assert!(t.contains(&format!("{:<21}{esp_count}\n", "opened:")), "{}:\n{t}", case.name);
        let (links, back) = read_capture(&opened);
        assert_eq!(links, vec![case.link], "{}", case.name);
        assert_eq!(back, case.frames, "{}: the opened capture differs from the original", case.name);
        let _ = std::fs::remove_dir_all(&sealed.dir);
    }
}

#[test]
fn refused_packets_are_left_out_and_counted_by_kind() {
    let dir = scratch("refused");
    let (sa, plain, esp, opened) =
        (dir.join("sa.toml"), dir.join("plain.pcap"), dir.join("esp.pcap"), dir.join("opened.pcap"));
    std::fs::write(&sa, format!("spi = 0x2000\nkeymat = \"{}\"\n", hex(&keymat(16)))).unwrap();
    let mut packets = ip_packets(&[4]);
    // Damaged before encryption: its TCP checksum no longer matches.
    let last = packets[0].len() - 1;
    packets[0][last] ^= 0x40;
    write_pcap(&plain, DataLink::RAW, &frames(packets.clone()));
    let out = espgcm(&["seal", "--sa", s(&sa), "--in", s(&plain), "--out", s(&esp)]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("refused:             1"), "{t}");
    assert!(t.contains("  checksum wrong before encryption: 1 (first: packet 1: TCP checksum"), "{t}");
    assert_eq!(read_capture(&esp).1.len(), packets.len() - 1);

    // Damaged on the wire, and replayed. (The refused packet used sequence
    // number 1: its IV had encrypted those bytes, so it is never reused.)
    let (_, mut sealed) = read_capture(&esp);
    let n = sealed[1].data.len();
    sealed[1].data[n - 1] ^= 1;
    sealed.push(sealed[2].clone());
    write_pcap(&esp, DataLink::RAW, &sealed);
    let out = espgcm(&["open", "--sa", s(&sa), "--in", s(&esp), "--out", s(&opened)]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("refused:             2"), "{t}");
    assert!(t.contains("  ICV check failed: 1 (first: packet 2: ICV check failed for sequence number 3"), "{t}");
    assert!(t.contains("  replayed: 1 (first: packet 7: replayed packet: sequence number 4"), "{t}");
    assert_eq!(read_capture(&opened).1.len(), sealed.len() - 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_inputs_say_what_was_wrong_and_what_to_do() {
    let dir = scratch("errors");
    let (sa, plain, esp) = (dir.join("sa.toml"), dir.join("plain.pcap"), dir.join("esp.pcap"));
    write_pcap(&plain, DataLink::RAW, &frames(ip_packets(&[4])));
    let run = |sa_text: Option<&str>, input: &Path| {
        if let Some(t) = sa_text {
            std::fs::write(&sa, t).unwrap();
        } else {
            let _ = std::fs::remove_file(&sa);
        }
        let out = espgcm(&["seal", "--sa", s(&sa), "--in", s(input), "--out", s(&esp)]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let good = format!("spi = 0x1000\nkeymat = \"{}\"\n", hex(&keymat(16)));

    let e = run(None, &plain);
    assert!(e.contains("cannot read the SA file") && e.contains("`espgcm seal --help` shows one"), "{e}");
    let e = run(Some("spi = 0x1000\nkeymat = \"000102030405060708090a0b0c0d0e0f\"\n"), &plain);
    assert!(e.contains("keymat is 16 bytes") && e.contains("20 bytes for AES-128"), "{e}");
    let e = run(Some("spi = 0x1000\nkeymat = \"00\n"), &plain);
    assert!(e.contains("TOML parse error at line 2"), "{e}");
    let e = run(Some(&format!("{good}modee = \"tunnel\"\n")), &plain);
    assert!(e.contains("unknown field `modee`") && e.contains("line 3"), "{e}");
    let e = run(Some(&format!("{good}mode = \"tunnel\"\n")), &plain);
    assert!(e.contains("mode"), "{e}");
    let e = run(Some(&good), &dir.join("missing.pcap"));
    assert!(e.contains("cannot open the input capture") && e.contains("--in"), "{e}");
    std::fs::write(dir.join("not.pcap"), b"hello, not a capture").unwrap();
    let e = run(Some(&good), &dir.join("not.pcap"));
    assert!(e.contains("neither a pcap nor a pcapng capture"), "{e}");
    let (null_link, _) = (dir.join("null.pcap"), ());
    write_pcap(&null_link, DataLink::NULL, &frames(vec![vec![2, 0, 0, 0]]));
    let e = run(Some(&good), &null_link);
    assert!(e.contains("is not supported") && e.contains("Ethernet (1), raw IP (101)"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_output_that_is_the_input_file_is_refused_and_the_input_survives() {
    let dir = scratch("same-file");
    let (sa, capture, link) = (dir.join("sa.toml"), dir.join("in.pcap"), dir.join("link.pcap"));
    std::fs::write(&sa, format!("spi = 0x1000\nkeymat = \"{}\"\n", hex(&keymat(16)))).unwrap();
    write_pcap(&capture, DataLink::RAW, &frames(ip_packets(&[4, 6])));
    let original = std::fs::read(&capture).unwrap();
    std::fs::hard_link(&capture, &link).unwrap();
    let dotted = dir.join(".").join("in.pcap");
    for command in ["seal", "open"] {
        for output in [&capture, &link, &dotted] {
            let out = espgcm(&[command, "--sa", s(&sa), "--in", s(&capture), "--out", s(output)]);
            assert_eq!(out.status.code(), Some(2), "{}", text(&out));
            let e = String::from_utf8_lossy(&out.stderr);
            assert!(e.contains("is the same file as --in") && e.contains("give another path"), "{e}");
            assert_eq!(std::fs::read(&capture).unwrap(), original, "{command} --out {}", output.display());
        }
    }
    // The key table may not overwrite the capture being read either.
    let esp = dir.join("esp.pcap");
    let out = espgcm(&["seal", "--sa", s(&sa), "--in", s(&capture), "--out", s(&esp), "--wireshark-keys", s(&link)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("--wireshark-keys"), "{}", text(&out));
    assert_eq!(std::fs::read(&capture).unwrap(), original);
    assert!(!esp.exists(), "nothing was written");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_failed_run_leaves_an_earlier_output_as_it_was_and_no_temporary_file() {
    let dir = scratch("failed-run");
    let (sa, good, cut, out_path) =
        (dir.join("sa.toml"), dir.join("good.pcap"), dir.join("cut.pcap"), dir.join("esp.pcap"));
    std::fs::write(&sa, format!("spi = 0x1000\nkeymat = \"{}\"\n", hex(&keymat(16)))).unwrap();
    write_pcap(&good, DataLink::RAW, &frames(ip_packets(&[4, 6])));
    let out = espgcm(&["seal", "--sa", s(&sa), "--in", s(&good), "--out", s(&out_path)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let earlier = std::fs::read(&out_path).unwrap();
    // A capture cut in the middle of a packet fails part-way through.
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let out = espgcm(&["seal", "--sa", s(&sa), "--in", s(&cut), "--out", s(&out_path)]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("damaged or cut short"), "{}", text(&out));
    assert_eq!(std::fs::read(&out_path).unwrap(), earlier, "the earlier output is untouched");
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_shows_an_example_and_the_sa_file_format() {
    let t = text(&espgcm(&["seal", "--help"]));
    assert!(t.contains("espgcm seal --sa sa.toml --in plain.pcap --out esp.pcap --wireshark-keys esp_sa"), "{t}");
    for field in ["spi =", "keymat =", "icv_len =", "mode =", "encap =", "replay_window =", "tunnel_ttl ="] {
        assert!(t.contains(field), "{field} missing from:\n{t}");
    }
    let t = text(&espgcm(&["open", "--help"]));
    assert!(t.contains("espgcm open --sa sa.toml --in esp.pcap --out plain.pcap"), "{t}");
}

/// tshark, given only the key table `seal --wireshark-keys` wrote (as its
/// `esp_sa` file), reports a good ICV for every ESP packet of the output.
#[test]
fn tshark_checks_every_icv_with_the_written_key_table() {
    if tshark_peer().is_none() {
        return;
    }
    let tshark_fields = |config: &Path, capture: &Path| {
        let out = Command::new("tshark")
            .env("WIRESHARK_CONFIG_DIR", config)
            .arg("-r")
            .arg(capture)
            .args(["-o", "esp.enable_encryption_decode:TRUE", "-o", "esp.enable_authentication_check:TRUE"])
            .args(["-T", "fields", "-E", "separator=|", "-e", "frame.number", "-e", "esp.spi", "-e", "esp.icv_good"])
            .output()
            .expect("tshark runs");
        assert!(out.status.success(), "tshark failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for (i, case) in cases().into_iter().enumerate() {
        let sealed = seal_case(&case);
        // A Wireshark configuration folder holding only the written table.
        let config = sealed.dir.join("wireshark");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::copy(&sealed.keys, config.join("esp_sa")).unwrap();
        if i == 0 {
            // Control: without the table, tshark checks no ICV.
            let empty = sealed.dir.join("wireshark-empty");
            std::fs::create_dir_all(&empty).unwrap();
            let without = tshark_fields(&empty, &sealed.esp);
            assert!(without.lines().all(|l| l.split('|').nth(2) != Some("1")), "{without}");
        }
        let stdout = tshark_fields(&config, &sealed.esp);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), case.frames.len(), "{}: one line per frame:\n{stdout}", case.name);
        let esp_lines: Vec<&&str> =
            lines.iter().filter(|l| l.split('|').nth(1).is_some_and(|spi| !spi.is_empty())).collect();
        assert_eq!(esp_lines.len(), case.frames.len() - case.not_ip, "{}:\n{stdout}", case.name);
        for line in esp_lines {
            assert_eq!(line.split('|').nth(2), Some("1"), "{}: esp.icv_good is not 1: {line}\n{stdout}", case.name);
        }
        eprintln!("tshark: {}: {} ESP packets, every ICV good", case.name, case.frames.len() - case.not_ip);
        let _ = std::fs::remove_dir_all(&sealed.dir);
    }
}
