//! The SA table as a data plane uses it, on `Backend::best()`.
//!
//! ```text
//! cargo bench --bench sa_table
//! ```
//!
//! 1. **Lookup plus open with 10,000 SAs against open on one SA**: the same
//!    packet, opened by `SaTable::open` (find the SA, then open) and by the
//!    SA itself, alternating batches, best of each (`testkit::timing`);
//!    single calls and bursts of 32 (`SaTable::open_burst` against
//!    `Inbound::open_burst`), at 64 and 1420 bytes. A "spread" burst has 32
//!    packets for 32 different SAs of the 10,000, opened through the table
//!    against the same 32 SAs opened one by one (so both pay the same cache
//!    misses on 32 keys), with one SA's figure beside it.
//! 2. **What a change costs** with 10,000 SAs: an add and a delete, against
//!    a table that copies its whole map per change (the design this one
//!    replaced, kept here for the comparison).
//! 3. **Latency during churn**: two threads open packets through the table
//!    (each call timed) while a third adds and deletes SAs as fast as it
//!    can, and then once a millisecond; the worst and the 99.9th/99.99th
//!    percentile per-packet latency, against the same threads without
//!    churn, for this table and the copy-everything one; then one traffic
//!    thread, so that with the churn thread there are as many threads as
//!    cores on a two-core machine, and a control row where the third thread
//!    only sets up keys as new SAs do (its "changes" are pairs of key
//!    set-ups), to tell what the table's changes cost the traffic from what
//!    sharing the machine costs it. Where threads outnumber cores the worst
//!    case is the scheduler's (it is there without churn too); the
//!    percentiles show the table.
//! 4. **What lifetimes and rebinding cost on seal**: an SA with byte and
//!    time limits, and one whose endpoints were changed, against a plain
//!    one (single calls and bursts of 32).
//!
//! Same workload as `benches/esp_ratio.rs`: TCP/IPv4 transport-mode
//! packets, every check on, replay window off so one packet can be
//! reopened, verify off.

#[path = "esp_workload/mod.rs"]
#[allow(dead_code)] // shared with the other ESP benches
mod esp_workload;

use arc_swap::ArcSwap;
use esp_workload::{KEY, tcp_packet};
use espgcm::esp::{Encap, Inbound, Lifetime, Mode, Outbound, PacketBuf, SaConfig, SaKey, SaTable};
use espgcm::{Backend, VerifyPolicy};
use espgcm_testkit::timing::race;
use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const SAS: u32 = 10_000;
const ROUNDS: usize = 40;
const BURST: usize = 32;
/// The SPI of SA `i` (spread over the space, as `fresh_spi` would give).
fn spi(i: u32) -> u32 {
    0x1000 + i.wrapping_mul(0x9e37_79b1) % 0x7fff_0000
}

/// SA `i`'s configuration: its own key.
fn config(i: u32) -> SaConfig {
    let mut keymat = KEY.to_vec();
    keymat[..4].copy_from_slice(&i.to_be_bytes());
    keymat.extend_from_slice(&[1, 2, 3, 4]);
    SaConfig {
        replay_window: 0,
        verify: VerifyPolicy::Off,
        backend: Some(Backend::best()),
        ..SaConfig::new(spi(i), &keymat)
    }
}

fn batch(size: usize) -> usize {
    (2_000_000 / (size + 500)).max(100)
}

fn main() {
    let filter: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wants = |part: &str| filter.is_empty() || filter.iter().any(|f| part.contains(f.as_str()));
    println!("SA table bench on {} ({} SAs)", Backend::best().name(), SAS);
    let table = Arc::new(SaTable::new());
    let t = Instant::now();
    for i in 0..SAS {
        table.add_inbound(Inbound::new(config(i)).expect("valid SA"), None, None).expect("distinct SPIs");
    }
    println!("set-up: {SAS} inbound SAs in {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    if wants("lookup") {
        lookup_and_open(&table);
    }
    if wants("change") {
        changes(&table);
    }
    if wants("churn") {
        churn(&table);
    }
    if wants("seal") {
        seal_costs();
    }
}

/// Part 1.
fn lookup_and_open(table: &SaTable) {
    println!("\n1. lookup + open with {SAS} SAs against open on one SA (ns per packet, best of {ROUNDS})");
    println!("{:<22} {:>6} {:>10} {:>10} {:>7}", "", "bytes", "table", "one SA", "ratio");
    let target = SAS / 2;
    let rx = table.inbound(SaKey::inbound(spi(target))).expect("installed");
    let tx = Outbound::new(config(target)).expect("valid SA");
    for size in [64, 1420] {
        let packet = tcp_packet(size);
        let (mut sealed, mut opened, mut opened_b) = (Vec::new(), Vec::new(), Vec::new());
        tx.seal(&packet, &mut sealed).expect("seal");
        table.open(&sealed, &mut opened).expect("open");
        assert_eq!(opened, packet);
        let iters = batch(size);
        let (through_table, direct) = race(
            ROUNDS,
            iters,
            || open_through_table(table, black_box(&sealed), &mut opened),
            || open_with_sa(&rx, black_box(&sealed), &mut opened_b),
        );
        report("open", size, through_table, direct);

        let mut burst: Vec<PacketBuf> = (0..BURST).map(|_| PacketBuf::from_packet(&sealed)).collect();
        let mut burst_b = burst.clone();
        let (mut results, mut results_b) = (vec![Ok(()); BURST], vec![Ok(()); BURST]);
        let (through_table, direct) = race(
            ROUNDS,
            iters.div_ceil(BURST),
            || {
                burst.iter_mut().for_each(|b| b.set(&sealed));
                table.open_burst(black_box(&mut burst), &mut results);
            },
            || {
                burst_b.iter_mut().for_each(|b| b.set(&sealed));
                rx.open_burst(black_box(&mut burst_b), &mut results_b);
            },
        );
        assert!(results.iter().chain(&results_b).all(Result::is_ok));
        report("open32", size, through_table / BURST as f64, direct / BURST as f64);

        // 32 packets for 32 SAs spread over the table.
        let members: Vec<u32> = (0..BURST as u32).map(|k| k * (SAS / BURST as u32) + 7).collect();
        let sas: Vec<Arc<Inbound>> =
            members.iter().map(|&i| table.inbound(SaKey::inbound(spi(i))).expect("installed")).collect();
        let sealed_each: Vec<Vec<u8>> = members
            .iter()
            .map(|&i| {
                let tx = Outbound::new(config(i)).expect("valid SA");
                let mut s = Vec::new();
                tx.seal(&packet, &mut s).expect("seal");
                s
            })
            .collect();
        let (through_table, direct) = race(
            ROUNDS,
            iters.div_ceil(BURST),
            || {
                burst.iter_mut().zip(&sealed_each).for_each(|(b, s)| b.set(s));
                table.open_burst(black_box(&mut burst), &mut results);
            },
            || {
                burst_b.iter_mut().zip(&sealed_each).for_each(|(b, s)| b.set(s));
                for ((b, r), sa) in burst_b.chunks_mut(1).zip(results_b.chunks_mut(1)).zip(&sas) {
                    sa.open_burst(black_box(b), r);
                }
            },
        );
        assert!(results.iter().chain(&results_b).all(Result::is_ok));
        report("open32, 32 SAs", size, through_table / BURST as f64, direct / BURST as f64);
    }
}

// Each way of opening is one function of its own, called from the timing
// loops: inlined into the loops, the same open moved by up to 10% with where
// its code happened to land.

#[inline(never)]
fn open_with_sa(sa: &Inbound, packet: &[u8], out: &mut Vec<u8>) {
    black_box(sa.open(packet, out)).expect("open");
}

#[inline(never)]
fn open_through_table(table: &SaTable, packet: &[u8], out: &mut Vec<u8>) {
    black_box(table.open(packet, out)).expect("open");
}

fn report(what: &str, size: usize, table_ns: f64, direct_ns: f64) {
    println!("{what:<22} {size:>6} {table_ns:>10.1} {direct_ns:>10.1} {:>6.3}x", table_ns / direct_ns);
}

/// The design this table replaced: one map behind one `ArcSwap`, copied
/// whole for every change.
struct CopyAll {
    map: ArcSwap<HashMap<u32, Vec<Arc<Inbound>>>>,
}

impl CopyAll {
    fn add(&self, sa: Arc<Inbound>) {
        self.map.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.entry(sa.config().spi).or_default().push(sa.clone());
            m
        });
    }
    fn remove(&self, spi: u32) {
        self.map.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.remove(&spi);
            m
        });
    }
    fn open(&self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), espgcm::esp::EspError> {
        // The SPI of a transport-mode ESP packet over IPv4 without options.
        let spi = u32::from_be_bytes(packet.get(20..24).and_then(|s| s.try_into().ok()).unwrap_or([0; 4]));
        let sa = self.map.load().get(&spi).and_then(|l| l.first().cloned());
        sa.ok_or(espgcm::esp::EspError::NoSa { spi })?.open(packet, out)
    }
}

fn copy_all_of(table: &SaTable) -> CopyAll {
    let mut map: HashMap<u32, Vec<Arc<Inbound>>> = HashMap::new();
    for i in 0..SAS {
        map.entry(spi(i)).or_default().push(table.inbound(SaKey::inbound(spi(i))).expect("installed"));
    }
    CopyAll { map: ArcSwap::from_pointee(map) }
}

/// Part 2.
fn changes(table: &SaTable) {
    println!("\n2. an add and a delete with {SAS} SAs installed (microseconds per pair, best of {ROUNDS})");
    let copy_all = copy_all_of(table);
    let spare = Arc::new(Inbound::new(config(SAS + 1)).expect("valid SA"));
    let mut k = 0u32;
    let (sharded, copying) = race(
        ROUNDS,
        50,
        || {
            k += 1;
            let cfg = SaConfig::new(0x8000_0000 + k, &[9; 20]);
            table.add_inbound(Inbound::new(cfg).expect("valid SA"), None, None).expect("new SPI");
            table.remove_inbound(0x8000_0000 + k, None, None).expect("installed");
        },
        || {
            // The same work outside the map (making an Inbound) on both sides.
            let cfg = SaConfig::new(0x8000_0000, &[9; 20]);
            black_box(Inbound::new(cfg).expect("valid SA"));
            copy_all.add(spare.clone());
            copy_all.remove(spare.config().spi);
        },
    );
    println!("{:<34} {:>9.1} us", "this table (64 shards)", sharded / 1e3);
    println!("{:<34} {:>9.1} us", "copying the whole map", copying / 1e3);
}

/// Opens one packet (through one of the tables).
type OpenFn = Arc<dyn Fn(&[u8], &mut Vec<u8>) + Send + Sync>;
/// Makes one change to a table.
type Change = Box<dyn FnMut() + Send>;

/// What the traffic threads saw.
struct Seen {
    packets: u64,
    latencies: Vec<u32>,
}

/// Two threads open packets (each call timed) for `run`, while `churn`
/// runs on a third thread (if given) until they stop.
fn traffic(open: OpenFn, packets: Vec<Vec<u8>>, run: Duration, churn: Option<Change>) -> (Vec<Seen>, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let changes = Arc::new(AtomicU64::new(0));
    let churner = churn.map(|mut change| {
        let (stop, changes) = (stop.clone(), changes.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                change();
                changes.fetch_add(1, Ordering::Relaxed);
            }
        })
    });
    let workers: Vec<_> = packets
        .into_iter()
        .map(|packet| {
            let (open, stop) = (open.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut out = Vec::new();
                let mut latencies = Vec::with_capacity(8 << 20);
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    open(&packet, &mut out);
                    latencies.push(t.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
                }
                Seen { packets: latencies.len() as u64, latencies }
            })
        })
        .collect();
    std::thread::sleep(run);
    stop.store(true, Ordering::Relaxed);
    let seen = workers.into_iter().map(|w| w.join().expect("traffic thread")).collect();
    if let Some(c) = churner {
        c.join().expect("churn thread");
    }
    (seen, changes.load(Ordering::Relaxed))
}

fn summarize(label: &str, seen: Vec<Seen>, changes: u64, run: Duration) {
    let packets: u64 = seen.iter().map(|s| s.packets).sum();
    let mut all: Vec<u32> = seen.into_iter().flat_map(|s| s.latencies).collect();
    all.sort_unstable();
    let at = |q: f64| all.get(((all.len() as f64 - 1.0) * q) as usize).copied().unwrap_or(0);
    let secs = run.as_secs_f64();
    println!(
        "{label:<40} {:>7.2} {:>9.0} {:>8} {:>8} {:>8} {:>10}",
        packets as f64 / secs / 1e6,
        changes as f64 / secs,
        at(0.5),
        at(0.999),
        at(0.9999),
        all.last().copied().unwrap_or(0)
    );
}

/// Part 3.
fn churn(table: &Arc<SaTable>) {
    let run = Duration::from_millis(700);
    println!("\n3. two threads opening 64-byte packets through {SAS} SAs while a third adds and deletes SAs");
    println!("   ({} ms each; per-packet latency in ns, each call timed with Instant::now)", run.as_millis());
    println!(
        "{:<40} {:>7} {:>9} {:>8} {:>8} {:>8} {:>10}",
        "", "Mpkt/s", "changes/s", "p50", "p99.9", "p99.99", "worst"
    );
    let packet = tcp_packet(64);
    let sealed: Vec<Vec<u8>> = [11, 5011]
        .map(|i| {
            let tx = Outbound::new(config(i)).expect("valid SA");
            let mut s = Vec::new();
            tx.seal(&packet, &mut s).expect("seal");
            s
        })
        .to_vec();
    let through_table: OpenFn = {
        let table = table.clone();
        Arc::new(move |p, out| table.open(p, out).expect("open"))
    };
    let copy_all = Arc::new(copy_all_of(table));
    let through_copy_all: OpenFn = {
        let copy_all = copy_all.clone();
        Arc::new(move |p, out| copy_all.open(p, out).expect("open"))
    };
    let adder = |paced: bool| -> Change {
        let table = table.clone();
        let mut k = 0u32;
        Box::new(move || {
            k += 1;
            let cfg = SaConfig::new(0x8100_0000 + k, &[9; 20]);
            table.add_inbound(Inbound::new(cfg).expect("valid SA"), None, None).expect("new SPI");
            table.remove_inbound(0x8100_0000 + k, None, None).expect("installed");
            if paced {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let copy_adder = |paced: bool| -> Change {
        let copy_all = copy_all.clone();
        let spare = Arc::new(Inbound::new(config(SAS + 2)).expect("valid SA"));
        Box::new(move || {
            copy_all.add(spare.clone());
            copy_all.remove(spare.config().spi);
            if paced {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let (s, c) = traffic(through_table.clone(), sealed.clone(), run, None);
    summarize("this table, no churn", s, c, run);
    let (s, c) = traffic(through_table.clone(), sealed.clone(), run, Some(adder(false)));
    summarize("this table, churn flat out", s, c, run);
    let (s, c) = traffic(through_table.clone(), sealed.clone(), run, Some(adder(true)));
    summarize("this table, churn every ms", s, c, run);
    // One traffic thread: with the churn thread, as many threads as cores.
    let (s, c) = traffic(through_table.clone(), sealed[..1].to_vec(), run, None);
    summarize("this table, 1 thread, no churn", s, c, run);
    let (s, c) = traffic(through_table.clone(), sealed[..1].to_vec(), run, Some(adder(false)));
    summarize("this table, 1 thread, churn flat out", s, c, run);
    // The control: the churn thread's work without the table changes (it
    // sets up a key, as each new SA does), to tell what the changes cost the
    // traffic from what sharing the machine costs it.
    let key_setups: Change = Box::new(|| {
        black_box(Inbound::new(SaConfig::new(0x8200_0000, &[9; 20])).expect("valid SA"));
        black_box(Inbound::new(SaConfig::new(0x8200_0001, &[9; 20])).expect("valid SA"));
    });
    let (s, c) = traffic(through_table, sealed[..1].to_vec(), run, Some(key_setups));
    summarize("this table, 1 thread, key set-ups only", s, c, run);
    let (s, c) = traffic(through_copy_all.clone(), sealed.clone(), run, None);
    summarize("copy-the-whole-map, no churn", s, c, run);
    let (s, c) = traffic(through_copy_all.clone(), sealed.clone(), run, Some(copy_adder(false)));
    summarize("copy-the-whole-map, churn flat out", s, c, run);
    let (s, c) = traffic(through_copy_all, sealed, run, Some(copy_adder(true)));
    summarize("copy-the-whole-map, churn every ms", s, c, run);
}

/// Part 4.
fn seal_costs() {
    println!("\n4. seal with lifetime limits or rebound endpoints, against a plain SA (ns per packet)");
    println!("{:<22} {:>6} {:>10} {:>10} {:>7}", "", "bytes", "with", "plain", "ratio");
    let limits = Lifetime {
        soft_bytes: Some(1 << 60),
        hard_bytes: Some(1 << 61),
        soft_time: Some(Duration::from_secs(3000)),
        hard_time: Some(Duration::from_secs(3600)),
        ..Lifetime::NONE
    };
    let tunnel = Mode::Tunnel { src: "192.0.2.1".parse().expect("addr"), dst: "198.51.100.2".parse().expect("addr") };
    let plain = Outbound::new(SaConfig { mode: tunnel, encap: Encap::NAT_T, ..config(SAS + 10) }).expect("valid SA");
    let limited = Outbound::new(SaConfig { lifetime: limits, mode: tunnel, encap: Encap::NAT_T, ..config(SAS + 11) })
        .expect("valid SA");
    let rebound = Outbound::new(SaConfig { mode: tunnel, encap: Encap::NAT_T, ..config(SAS + 12) }).expect("valid SA");
    let moved = Mode::Tunnel { src: "192.0.2.1".parse().expect("addr"), dst: "198.51.100.77".parse().expect("addr") };
    rebound.set_endpoints(moved, Encap::Udp { src_port: 4500, dst_port: 61044 }).expect("same kinds");
    for size in [64, 1420] {
        let packet = tcp_packet(size);
        let (mut out, mut out_b) = (Vec::new(), Vec::new());
        let iters = batch(size);
        for (label, sa) in [("lifetimes", &limited), ("rebound", &rebound)] {
            let (with, without) = race(
                ROUNDS,
                iters,
                || black_box(sa.seal(black_box(&packet), &mut out)).expect("seal"),
                || black_box(plain.seal(black_box(&packet), &mut out_b)).expect("seal"),
            );
            report(&format!("seal, {label}"), size, with, without);
            let mut burst: Vec<PacketBuf> = (0..BURST).map(|_| PacketBuf::from_packet(&packet)).collect();
            let mut burst_b = burst.clone();
            let (mut results, mut results_b) = (vec![Ok(()); BURST], vec![Ok(()); BURST]);
            let (with, without) = race(
                ROUNDS,
                iters.div_ceil(BURST),
                || {
                    burst.iter_mut().for_each(|b| b.set(&packet));
                    sa.seal_burst(black_box(&mut burst), &mut results);
                },
                || {
                    burst_b.iter_mut().for_each(|b| b.set(&packet));
                    plain.seal_burst(black_box(&mut burst_b), &mut results_b);
                },
            );
            assert!(results.iter().chain(&results_b).all(Result::is_ok));
            report(&format!("seal32, {label}"), size, with / BURST as f64, without / BURST as f64);
        }
    }
}
