//! `espgcm seal` and `espgcm open` with files of many SAs: `--sa-name`
//! picks the SA (or the only one of the direction the command needs), and
//! a capture sealed with one host's file opens with the other's.

use espgcm_testkit::packets::*;
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

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

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn write_raw_pcap(path: &Path, packets: &[Vec<u8>]) {
    let header = PcapHeader { datalink: DataLink::RAW, ..Default::default() };
    let mut w = PcapWriter::with_header(std::fs::File::create(path).unwrap(), header).unwrap();
    for (i, p) in packets.iter().enumerate() {
        w.write_packet(&PcapPacket::new(Duration::from_millis(i as u64), p.len() as u32, p)).unwrap();
    }
}

fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let mut r = PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    while let Some(p) = r.next_packet() {
        out.push(p.unwrap().data.into_owned());
    }
    out
}

/// One host's side: SAs `out` and `in` (and `spare`, another outbound
/// one, when `spare` is set).
fn host(me: usize, spare: bool) -> String {
    let key = |i: u8| (0..20u8).map(|b| format!("{:02x}", b ^ (i * 17))).collect::<String>();
    let (out_spi, in_spi) = if me == 0 { (0x1101, 0x1102) } else { (0x1102, 0x1101) };
    let (out_key, in_key) = if me == 0 { (key(1), key(2)) } else { (key(2), key(1)) };
    let mut t = format!(
        "[tunnel]\nname = \"left alone\"\n\n[[sa]]\nname = \"out\"\ndirection = \"out\"\nspi = {out_spi}\nkeymat = \"{out_key}\"\nencap = \"nat-t\"\n\n\
         [[sa]]\nname = \"in\"\ndirection = \"in\"\nspi = {in_spi}\nkeymat = \"{in_key}\"\nencap = \"nat-t\"\n"
    );
    if spare {
        t.push_str(&format!(
            "\n[[sa]]\nname = \"spare\"\ndirection = \"out\"\nspi = 0x1201\nkeymat = \"{}\"\n",
            key(3)
        ));
    }
    t
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("espgcm-cli-sa-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_capture_sealed_with_one_hosts_file_opens_with_the_others() {
    let dir = scratch();
    let (a, b, plain, esp, opened) =
        (dir.join("a.toml"), dir.join("b.toml"), dir.join("plain.pcap"), dir.join("esp.pcap"), dir.join("opened.pcap"));
    std::fs::write(&a, host(0, false)).unwrap();
    std::fs::write(&b, host(1, false)).unwrap();
    let packets: Vec<Vec<u8>> = (0..5).map(|i| packet(4, i % 2 == 0, &pattern(10 + i * 50, i as u8))).collect();
    write_raw_pcap(&plain, &packets);

    // Without --sa-name: the only outbound SA of a.toml, the only inbound one of b.toml.
    let out = espgcm(&["seal", "--sa", s(&a), "--in", s(&plain), "--out", s(&esp)]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("SA: spi 0x00001101"), "{}", text(&out));
    let out = espgcm(&["open", "--sa", s(&b), "--sa-name", "in", "--in", s(&esp), "--out", s(&opened)]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(read_pcap(&opened), packets);

    // Errors that say what to do.
    std::fs::write(&a, host(0, true)).unwrap();
    let e = text(&espgcm(&["seal", "--sa", s(&a), "--in", s(&plain), "--out", s(&esp)]));
    assert!(e.contains("2 SAs have direction = \"out\": pick one with --sa-name"), "{e}");
    let e = text(&espgcm(&["seal", "--sa", s(&a), "--sa-name", "nope", "--in", s(&plain), "--out", s(&esp)]));
    assert!(e.contains("no SA is named \"nope\""), "{e}");
    let e = text(&espgcm(&["seal", "--sa", s(&a), "--sa-name", "in", "--in", s(&plain), "--out", s(&esp)]));
    assert!(
        e.contains("SA \"in\" has direction = \"in\", but `espgcm seal` needs an SA with direction = \"out\""),
        "{e}"
    );
    let single = dir.join("single.toml");
    std::fs::write(&single, "spi = 0x1000\nkeymat = \"000102030405060708090a0b0c0d0e0f10111213\"\n").unwrap();
    let e = text(&espgcm(&["seal", "--sa", s(&single), "--sa-name", "out", "--in", s(&plain), "--out", s(&esp)]));
    assert!(e.contains("this file is one SA: leave --sa-name out"), "{e}");
    std::fs::write(&a, host(0, false).replace("direction = \"out\"", "direction = \"out\"\nkeymatt = 1")).unwrap();
    let out = espgcm(&["seal", "--sa", s(&a), "--in", s(&plain), "--out", s(&esp)]);
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out);
    assert!(e.contains("SA 1 (\"out\"), line 7, key `keymatt`: unknown field `keymatt`"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}
