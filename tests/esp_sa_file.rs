//! SA files in the library (`espgcm::esp::sa_file`): single-SA files as the
//! command line has always read them, files with many SAs and policies
//! loaded into an `SaTable` through its own calls (and carrying traffic
//! between two "hosts" loaded from two files), the `[tunnel]` table left
//! alone, and bad files refused with errors that name the entry, the key
//! and the line.

use espgcm::VerifyPolicy;
use espgcm::esp::sa_file::{EXAMPLE, ManualKeys, PolicyAction, SINGLE_SA_EXAMPLE, SaFile, SaFileError, parse_sa};
use espgcm::esp::{
    Action, DEFAULT_VERIFY, Direction, Encap, EspError, Lifetime, Mode, NextHeaders, SaKey, SaTable, Selector,
};
use espgcm_testkit::packets::*;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Key material for SA `i` of a test: distinct per test and per SA (one
/// live sender per key and salt in a process).
fn key_hex(i: u32) -> String {
    let mut k = keymat(16);
    k[..4].copy_from_slice(&i.to_be_bytes());
    hex(&k)
}

fn err(text: &str) -> SaFileError {
    ManualKeys::parse(text).expect_err("a bad file must be refused")
}

// ---- single-SA files: the format `espgcm seal` and `open` read ----

#[test]
fn the_documented_single_sa_example_parses_to_the_defaults() {
    let cfg = parse_sa(SINGLE_SA_EXAMPLE).unwrap();
    assert_eq!(cfg.spi, 0x1000);
    assert_eq!(cfg.keymat, (0u8..20).collect::<Vec<u8>>());
    assert_eq!((cfg.icv_len, cfg.mode, cfg.encap, cfg.replay_window), (16, Mode::Transport, Encap::None, 4096));
    assert_eq!((cfg.verify, cfg.next_headers, cfg.lifetime), (DEFAULT_VERIFY, NextHeaders::Verifiable, Lifetime::NONE));
    assert!(matches!(SaFile::parse(SINGLE_SA_EXAMPLE).unwrap(), SaFile::Single(_)));
}

#[test]
fn single_sa_tunnel_nat_t_sampling_and_lifetime_are_tables() {
    let cfg = parse_sa(
        r#"spi = 4097
keymat = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff01020304"
mode = { tunnel = { src = "2001:db8::1", dst = "2001:db8::2" } }
encap = "nat-t"
verify = { sample = { one_in = 64 } }
esn = true
lifetime = { soft_packets = 1_000, hard_packets = 2_000, soft_seconds = 0.5, hard_seconds = 3600 }
"#,
    )
    .unwrap();
    assert_eq!(cfg.keymat.len(), 36);
    assert_eq!(cfg.mode, Mode::Tunnel { src: "2001:db8::1".parse().unwrap(), dst: "2001:db8::2".parse().unwrap() });
    assert_eq!(cfg.encap, Encap::NAT_T);
    assert_eq!(cfg.verify, VerifyPolicy::Sample { one_in: 64 });
    assert!(cfg.esn);
    assert_eq!(
        cfg.lifetime,
        Lifetime {
            soft_packets: Some(1000),
            hard_packets: Some(2000),
            soft_time: Some(Duration::from_millis(500)),
            hard_time: Some(Duration::from_secs(3600)),
            ..Lifetime::NONE
        }
    );
}

#[test]
fn single_sa_errors_say_what_was_wrong() {
    let msg = |t: &str| parse_sa(t).unwrap_err().to_string();
    let short = msg("spi = 0x1000\nkeymat = \"000102030405060708090a0b0c0d0e0f\"\n");
    assert!(short.contains("keymat is 16 bytes") && short.contains("append the SA's 4-byte salt"), "{short}");
    let unknown = msg("spi = 0x1000\nkeymat = \"00\"\nkeymatt = 1\n");
    assert!(unknown.contains("unknown field `keymatt`") && unknown.contains("line 3"), "{unknown}");
    let missing = msg("keymat = \"00\"\n");
    assert!(missing.contains("missing field `spi`"), "{missing}");
    let spi = msg("spi = 7\nkeymat = \"0001020304050607080910111213141516171819\"\n");
    assert!(spi.contains("invalid spi"), "{spi}");
    let hex = msg("spi = 0x1000\nkeymat = \"zz\"\n");
    assert!(hex.contains("`z` is not a hex digit"), "{hex}");
    let many_only = msg("spi = 0x1000\nkeymat = \"0001020304050607080910111213141516171819\"\ndirection = \"in\"\n");
    assert!(many_only.contains("`direction` belongs to an `[[sa]]` entry"), "{many_only}");
}

#[test]
fn next_headers_is_a_name_or_a_list_of_protocol_numbers() {
    let base = "spi = 0x1000\nkeymat = \"0001020304050607080910111213141516171819\"\n";
    assert_eq!(parse_sa(base).unwrap().next_headers, NextHeaders::Verifiable);
    let list = parse_sa(&format!("{base}next_headers = [6, 17, 132]\n")).unwrap();
    assert_eq!(list.next_headers, NextHeaders::Only(vec![6, 17, 132]));
    let empty = parse_sa(&format!("{base}next_headers = []\n")).unwrap_err().to_string();
    assert!(empty.contains("invalid next_headers") && empty.contains("empty list"), "{empty}");
    let tunnel = "mode = { tunnel = { src = \"192.0.2.1\", dst = \"192.0.2.2\" } }\n";
    let wrong = parse_sa(&format!("{base}{tunnel}next_headers = [6]\n")).unwrap_err().to_string();
    assert!(wrong.contains("tunnel mode carries IP packets only"), "{wrong}");
}

#[test]
fn selectors_take_prefixes_protocol_names_and_port_ranges() {
    let base = "spi = 0x1000\nkeymat = \"0001020304050607080910111213141516171819\"\n";
    let cfg = parse_sa(&format!(
        "{base}selectors = [{{ local = \"10.1.0.0/16\", remote = \"10.2.0.9\", protocol = 6, remote_ports = [22, 22] }},\n\
         {{ local = \"10.1.0.0/16\", remote = \"10.2.0.0/16\", protocol = \"udp\", local_ports = \"1024-65535\", remote_ports = 53 }}]\n"
    ))
    .unwrap();
    let between = Selector::between(("10.1.0.0".parse().unwrap(), 16), ("10.2.0.9".parse().unwrap(), 32));
    assert_eq!(
        cfg.selectors,
        [
            Selector { protocol: Some(6), remote_ports: 22..=22, ..between },
            Selector {
                protocol: Some(17),
                local_ports: 1024..=65535,
                remote_ports: 53..=53,
                ..Selector::between(("10.1.0.0".parse().unwrap(), 16), ("10.2.0.0".parse().unwrap(), 16))
            }
        ]
    );
    let bad = parse_sa(&format!("{base}selectors = [{{ local = \"10.1.0.0/40\", remote = \"10.2.0.0/16\" }}]\n"))
        .unwrap_err()
        .to_string();
    assert!(bad.contains("invalid selectors") && bad.contains("prefix length"), "{bad}");
    let typo = parse_sa(&format!("{base}selectors = [{{ local = \"ten\", remote = \"10.2.0.0/16\" }}]\n"))
        .unwrap_err()
        .to_string();
    assert!(typo.contains("local = \"ten\" is not an address"), "{typo}");
    let ports = parse_sa(&format!(
        "{base}selectors = [{{ local = \"10.1.0.0/16\", remote = \"10.2.0.0/16\", remote_ports = \"80-http\" }}]\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(ports.contains("remote_ports = \"80-http\" is not a port or a range"), "{ports}");
}

// ---- files with many SAs and policies ----

#[test]
fn the_documented_example_installs_and_its_spd_decides_in_order() {
    let keys = ManualKeys::parse(EXAMPLE).unwrap();
    assert_eq!(keys.sas.len(), 2);
    let (out, inb) = (&keys.sas[0], &keys.sas[1]);
    assert_eq!((out.name.as_deref(), out.direction, out.config.spi), (Some("a-to-b"), Direction::Outbound, 0x1001));
    assert_eq!(
        out.config.lifetime,
        Lifetime {
            soft_bytes: Some(1_000_000_000),
            hard_bytes: Some(1_100_000_000),
            soft_time: Some(Duration::from_secs(3000)),
            hard_time: Some(Duration::from_secs(3600)),
            ..Lifetime::NONE
        }
    );
    assert_eq!((inb.direction, inb.lookup), (Direction::Inbound, (Some("192.0.2.1".parse().unwrap()), None)));
    assert_eq!(inb.line, Some(EXAMPLE.lines().position(|l| l.contains("name = \"b-to-a\"")).unwrap()));
    assert_eq!(
        keys.policies.iter().map(|p| p.action.clone()).collect::<Vec<_>>(),
        [PolicyAction::Bypass, PolicyAction::Protect(0), PolicyAction::Discard]
    );
    // The example's keys are fixed, so another test holding them would
    // collide; this is the only test that installs it.
    let table = SaTable::new();
    let installed = keys.install(&table).unwrap();
    let tx = installed.outbound("a-to-b").unwrap().clone();
    assert!(installed.inbound("b-to-a").is_some());
    assert!(table.inbound(SaKey::inbound(0x2001).with_dst("192.0.2.1".parse().unwrap())).is_some());
    let (here, there) = (Ipv4Addr::new(10, 1, 0, 5), Ipv4Addr::new(10, 2, 7, 7));
    let dns = udp_v4(here, there, b"q"); // UDP 40001 -> 40002: not port 53
    assert!(matches!(table.outbound_for(&dns).unwrap(), Some(Action::Protect(sa)) if std::sync::Arc::ptr_eq(&sa, &tx)));
    let mut to_53 = dns.clone();
    to_53[22..24].copy_from_slice(&53u16.to_be_bytes());
    assert!(matches!(table.outbound_for(&to_53).unwrap(), Some(Action::Bypass)));
    let elsewhere = tcp_v4(Ipv4Addr::new(192, 168, 1, 1), there, b"x");
    assert!(matches!(table.outbound_for(&elsewhere).unwrap(), Some(Action::Discard)));
}

/// One side of a tunnel between 10.1/16 (here) and 10.2/16 (there) with `n`
/// SA pairs, for host `me` (0 or 1), as one manual-keying file; SA pair `i`
/// carries 10.1.i.0/24 <-> 10.2.i.0/24.
fn host_file(me: usize, n: u32) -> String {
    let (a, b) = (["192.0.2.1", "198.51.100.2"][me], ["198.51.100.2", "192.0.2.1"][me]);
    let (local, remote) = if me == 0 { ("10.1", "10.2") } else { ("10.2", "10.1") };
    let mut text = String::from("# generated\n[tunnel]\nworkers = 2\nlisten = \"0.0.0.0:4500\"\n\n");
    for i in 0..n {
        for (direction, name, spi, key) in [
            ("out", format!("out-{i}"), 0x10_0000 + i + 0x1000 * me as u32, key_hex(2 * i + me as u32)),
            ("in", format!("in-{i}"), 0x10_0000 + i + 0x1000 * (1 - me as u32), key_hex(2 * i + 1 - me as u32)),
        ] {
            let (src, dst) = if direction == "out" { (a, b) } else { (b, a) };
            text.push_str(&format!(
                "[[sa]]\nname = \"{name}\"\ndirection = \"{direction}\"\nspi = {spi}\nkeymat = \"{key}\"\n\
                 mode = {{ tunnel = {{ src = \"{src}\", dst = \"{dst}\" }} }}\nencap = \"nat-t\"\n\
                 selectors = [{{ local = \"{local}.{i}.0/24\", remote = \"{remote}.{i}.0/24\" }}]\n\n"
            ));
        }
        text.push_str(&format!(
            "[[policy]]\nselectors = [{{ local = \"{local}.{i}.0/24\", remote = \"{remote}.{i}.0/24\" }}]\n\
             action = \"protect\"\nsa = \"out-{i}\"\n\n"
        ));
    }
    text.push_str("[[policy]]\naction = \"discard\"\n");
    text
}

#[test]
fn two_hosts_loaded_from_their_files_carry_traffic_for_every_sa_pair() {
    let n = 200;
    let (file_a, file_b) = (host_file(0, n), host_file(1, n));
    let (table_a, table_b) = (SaTable::new(), SaTable::new());
    let mut keys_a = ManualKeys::parse(&file_a).unwrap();
    let tunnel = keys_a.tunnel.take().expect("the [tunnel] table is kept for the tunnel");
    assert_eq!(tunnel.get("workers").and_then(|w| w.as_integer()), Some(2));
    keys_a.install(&table_a).unwrap();
    ManualKeys::parse(&file_b).unwrap().install(&table_b).unwrap();
    assert_eq!(
        (table_a.outbound_len(), table_a.inbound_len(), table_a.policies().len()),
        (n as usize, n as usize, n as usize + 1)
    );
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    for i in 0..n as u8 {
        let packet = tcp_v4(Ipv4Addr::new(10, 1, i, 9), Ipv4Addr::new(10, 2, i, 7), &[i; 33]);
        let Some(Action::Protect(tx)) = table_a.outbound_for(&packet).unwrap() else { panic!("pair {i}: no SA") };
        tx.seal(&packet, &mut sealed).unwrap();
        table_b.open(&sealed, &mut opened).unwrap();
        assert_eq!(opened, packet);
        // Back the other way.
        let reply = udp_v4(Ipv4Addr::new(10, 2, i, 7), Ipv4Addr::new(10, 1, i, 9), &[i; 5]);
        let Some(Action::Protect(tx)) = table_b.outbound_for(&reply).unwrap() else { panic!("pair {i}: no SA back") };
        tx.seal(&reply, &mut sealed).unwrap();
        table_a.open(&sealed, &mut opened).unwrap();
        assert_eq!(opened, reply);
    }
    // A spoofed inner source is refused by the receiving SA's selectors.
    let spoofed = tcp_v4(Ipv4Addr::new(10, 2, 1, 7), Ipv4Addr::new(10, 1, 0, 9), b"not from 10.2.0/24");
    let Some(Action::Protect(tx)) =
        table_b.outbound_for(&tcp_v4(Ipv4Addr::new(10, 2, 0, 7), Ipv4Addr::new(10, 1, 0, 9), b"x")).unwrap()
    else {
        panic!("no SA")
    };
    let loose = espgcm::esp::Outbound::new(espgcm::esp::SaConfig {
        selectors: Vec::new(),
        ..espgcm::esp::sa_file::ManualKeys::parse(&host_file(1, 1)).unwrap().sas[0].config.clone()
    });
    // The same key is live in `tx` (one sender per key): the file's SA is the only way to send.
    assert!(matches!(loose, Err(EspError::KeyInUse { .. })));
    assert_eq!(tx.seal(&spoofed, &mut sealed), Err(EspError::NotCovered { seq: None }));
}

#[test]
fn a_file_read_from_an_already_parsed_table_gives_the_same_sas() {
    let text = host_file(0, 3);
    let table: toml::Table = toml::from_str(&text).unwrap();
    let keys = ManualKeys::from_table(table).unwrap();
    let again = ManualKeys::parse(&text).unwrap();
    assert_eq!(keys.sas.len(), 6);
    for (a, b) in keys.sas.iter().zip(&again.sas) {
        assert_eq!(
            (&a.name, a.direction, a.config.spi, &a.config.keymat),
            (&b.name, b.direction, b.config.spi, &b.config.keymat)
        );
        assert_eq!(a.line, None, "no text, no lines");
    }
    assert!(keys.tunnel.is_some());
    let mut bad: toml::Table = toml::from_str(&text).unwrap();
    bad.get_mut("sa").unwrap().as_array_mut().unwrap()[1].as_table_mut().unwrap().insert("keymatt".into(), 1.into());
    let e = ManualKeys::from_table(bad).unwrap_err();
    assert_eq!(e.entry.as_deref(), Some("SA 2 (\"in-0\")"));
    assert!(e.message.contains("unknown field `keymatt`"), "{e}");
}

#[test]
fn installing_a_file_whose_sa_clashes_leaves_nothing_behind() {
    let text = host_file(0, 4);
    let table = SaTable::new();
    let mut first = ManualKeys::parse(&text).unwrap();
    // Take one inbound SA out and install it alone first: the file then clashes on it.
    let lone = first.sas.remove(3);
    let lone_key = lone.key();
    table.add_inbound(espgcm::esp::Inbound::new(lone.config.clone()).unwrap(), lone_key.dst, lone_key.src).unwrap();
    let e = ManualKeys::parse(&text).unwrap().install(&table).unwrap_err();
    assert_eq!(e.entry.as_deref(), Some("SA 4 (\"in-1\")"));
    assert!(e.message.contains("is already installed"), "{e}");
    assert_eq!(e.line, Some(text.lines().position(|l| l.contains("name = \"in-1\"")).unwrap()));
    assert_eq!((table.inbound_len(), table.outbound_len(), table.policies().len()), (1, 0, 0), "rolled back");
    drop(first);
}

#[test]
fn bad_files_name_the_entry_the_key_and_the_line() {
    let k = format!("keymat = \"{}\"", key_hex(1));
    let sa =
        |name: &str, extra: &str| format!("[[sa]]\nname = \"{name}\"\ndirection = \"out\"\nspi = 0x1001\n{k}\n{extra}");
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{}\n{}keymatt = 3\n", sa("a", ""), sa("b", "")),
            "SA 2 (\"b\"), line 12, key `keymatt`: unknown field `keymatt`, expected one of",
        ),
        (
            "[[sa]]\ndirection = \"out\"\nspi = 0x1001\nkeymat = \"00\"\n".into(),
            "SA 1, line 4, key `keymat`: keymat is 1 bytes; it must be the AES key followed by the 4-byte salt",
        ),
        (
            format!("[[sa]]\nspi = 0x1001\n{k}\n"),
            "SA 1, line 1: missing field `direction`: say \"out\" (sending) or \"in\"",
        ),
        (
            format!("[[sa]]\ndirection = \"sideways\"\nspi = 0x1001\n{k}\n"),
            "SA 1, line 2, key `direction`: unknown variant `sideways`, expected `out` or `in`",
        ),
        (
            sa("x", "lifetime = { soft_bytes = 10, hard_bytes = 5 }\n"),
            "SA 1 (\"x\"), line 6, key `lifetime`: invalid lifetime: a soft limit must be below its hard limit",
        ),
        (
            sa("x", "[sa.lifetime]\nsoft_seconds = -1\n"),
            "SA 1 (\"x\"), line 6, key `lifetime`: lifetime: soft_seconds = -1 is not",
        ),
        (
            format!("[[sa]]\nname = \"x\"\ndirection = \"out\"\nspi = 7\n{k}\n"),
            "SA 1 (\"x\"), line 4, key `spi`: invalid spi: SPIs 1 to 255 are reserved",
        ),
        (
            format!("[[sa]]\nname = \"x\"\ndirection = \"out\"\nspi = \"abc\"\n{k}\n"),
            "SA 1 (\"x\"), line 4, key `spi`: invalid type: string \"abc\", expected u32",
        ),
        (
            sa("x", "mode = { tunnel = { src = \"192.0.2.1\", dst = \"2001:db8::1\" } }\n"),
            "SA 1 (\"x\"), line 6, key `mode`: invalid mode: the tunnel's outer source and destination must be of one IP family",
        ),
        (
            format!("{}{}", sa("x", ""), sa("x", "")).replace("spi = 0x1001\nkeymat", "spi = 0x1002\nkeymat"),
            "SA 2 (\"x\"), line 7, key `name`: the name \"x\" is taken by SA 1",
        ),
        (
            sa("x", "lookup = { dst = \"192.0.2.1\", src = \"192.0.2.2\" }\n"),
            "SA 1 (\"x\"), line 6, key `lookup`: an outbound SA is kept by SPI and, optionally, the peer's address",
        ),
        (
            sa("x", "[[policy]]\naction = \"protect\"\nsa = \"y\"\n"),
            "policy 1, line 8, key `sa`: no SA is named \"y\" in this file",
        ),
        (sa("x", "[[policy]]\naction = \"protect\"\n"), "policy 1, line 6, key `sa`: action \"protect\" needs `sa = "),
        (
            sa("x", "[[policy]]\naction = \"bypass\"\nsa = \"x\"\n"),
            "policy 1, line 8, key `sa`: action \"bypass\" uses no SA",
        ),
        (
            sa("x", "[[policy]]\naction = \"protect\"\nsa = \"x\"\n").replace("\"out\"", "\"in\""),
            "policy 1, line 8, key `sa`: SA \"x\" is inbound; a policy protects with an outbound SA",
        ),
        (
            sa(
                "x",
                "[[policy]]\nselectors = [{ local = \"10.0.0.0/8\", remote = \"10.0.0.0/8\", protocol = \"tcpp\" }]\naction = \"discard\"\n",
            ),
            "policy 1, line 7, key `selectors`: selectors: protocol = \"tcpp\" is not a protocol this file knows by name",
        ),
        (
            sa("x", "[[policy]]\naction = \"drop\"\n"),
            "policy 1, line 7, key `action`: unknown variant `drop`, expected one of `protect`, `bypass`, `discard`",
        ),
        (sa("x", "[tunel]\nx = 1\n"), "line 6: unknown field `tunel`, expected one of `sa`, `policy`, `tunnel`"),
    ];
    for (text, expected) in cases {
        let e = err(&text).to_string();
        assert!(e.starts_with(expected), "expected `{expected}...`, got `{e}` for:\n{text}");
    }
}

#[test]
fn either_shape_is_told_apart_and_the_tunnel_table_alone_makes_a_many_sa_file() {
    assert!(matches!(SaFile::parse(&host_file(0, 1)).unwrap(), SaFile::Many(_)));
    match SaFile::parse("[tunnel]\nworkers = 1\n").unwrap() {
        SaFile::Many(keys) => assert!(keys.sas.is_empty() && keys.tunnel.is_some()),
        other => panic!("{other:?}"),
    }
    let mut file = host_file(0, 1);
    file.push_str("spi = 5\n");
    // A top-level `spi` after [[policy]] belongs to the last policy table.
    assert!(ManualKeys::parse(&file).unwrap_err().to_string().contains("unknown field `spi`"));
}

#[test]
fn inbound_lookup_addresses_from_the_file_key_the_table() {
    let text = format!(
        "[[sa]]\ndirection = \"in\"\nspi = 0x5001\nkeymat = \"{}\"\nlookup = {{ dst = \"192.0.2.1\", src = \"198.51.100.2\" }}\n\
         [[sa]]\ndirection = \"in\"\nspi = 0x5001\nkeymat = \"{}\"\n",
        key_hex(1),
        key_hex(2)
    );
    let table = SaTable::new();
    let installed = ManualKeys::parse(&text).unwrap().install(&table).unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert_eq!(installed.sas[0].key, SaKey::inbound(0x5001).with_dst(ip("192.0.2.1")).with_src(ip("198.51.100.2")));
    assert_eq!(installed.sas[1].key, SaKey::inbound(0x5001));
    assert_eq!(table.inbound_len(), 2);
}
