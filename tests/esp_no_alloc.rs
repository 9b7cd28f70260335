//! `seal` and `open` allocate nothing per packet once the caller's buffers
//! have grown to the packet size: every mode, family, NAT-T, ESN, GMAC, and
//! the rejection paths too.
//!
//! A counting global allocator counts the allocations made by the test's
//! own thread (other tests of this binary run on other threads).

use espgcm::VerifyPolicy;
use espgcm::esp::{Encap, EspError, Mode, SaConfig, Transform};
use espgcm_testkit::packets::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: the thread's slot may already be gone while it exits.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is a const-initialised thread-local that never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn configs() -> Vec<(&'static str, SaConfig, u8)> {
    let base = SaConfig { replay_window: 64, ..SaConfig::new(0x3000, &keymat(16)) };
    let (t4s, t4d) = endpoints(4);
    let (t6s, t6d) = endpoints(6);
    vec![
        ("transport v4", base.clone(), 4),
        ("transport v6", base.clone(), 6),
        ("transport v4 NAT-T", SaConfig { encap: Encap::NAT_T, ..base.clone() }, 4),
        ("transport v6 NAT-T", SaConfig { encap: Encap::NAT_T, ..base.clone() }, 6),
        ("tunnel v4 in v4", SaConfig { mode: Mode::Tunnel { src: t4s, dst: t4d }, ..base.clone() }, 4),
        ("tunnel v4 in v6", SaConfig { mode: Mode::Tunnel { src: t6s, dst: t6d }, ..base.clone() }, 4),
        ("ESN, 8-byte ICV", SaConfig { esn: true, icv_len: 8, ..base.clone() }, 4),
        ("GMAC", SaConfig { transform: Transform::AesGmac, ..base.clone() }, 4),
        ("GMAC with ESN", SaConfig { transform: Transform::AesGmac, esn: true, ..base.clone() }, 6),
    ]
}

#[test]
fn the_counter_sees_allocations() {
    let before = allocations();
    let v: Vec<u8> = std::hint::black_box(Vec::with_capacity(10));
    assert!(allocations() > before);
    drop(v);
}

#[test]
fn seal_and_open_allocate_nothing_per_packet() {
    // Off and Full rather than the default sampling: a sampled call is the
    // first checked call of its thread at an unknown moment, and that one
    // may grow the thread's scratch buffer once.
    let policies = [VerifyPolicy::Off, VerifyPolicy::Full];
    for (name, cfg, family) in
        configs().into_iter().flat_map(|(n, c, f)| policies.map(|verify| (n, SaConfig { verify, ..c.clone() }, f)))
    {
        let (tx, rx) = pair(&cfg);
        for size in [0, 1, 3, 100, 1380] {
            let packet = packet(family, size % 2 == 0, &pattern(size, 7));
            let (mut sealed, mut opened) = (Vec::new(), Vec::new());
            // The first round grows the buffers to the packet's size.
            tx.seal(&packet, &mut sealed).unwrap();
            rx.open(&sealed, &mut opened).unwrap();
            let before = allocations();
            for _ in 0..20 {
                tx.seal(&packet, &mut sealed).unwrap();
                rx.open(&sealed, &mut opened).unwrap();
                assert_eq!(opened, packet, "{name}, {size} bytes");
            }
            assert_eq!(
                allocations() - before,
                0,
                "{name}, verify {:?}, {size} bytes: allocations in 20 round trips",
                cfg.verify
            );
        }
    }
}

#[test]
fn rejections_allocate_nothing() {
    let cfg = SaConfig { replay_window: 64, verify: VerifyPolicy::Off, ..SaConfig::new(0x3000, &keymat(16)) };
    let (tx, rx) = pair(&cfg);
    let packet = packet(4, true, &pattern(200, 9));
    let mut damaged = packet.clone();
    *damaged.last_mut().unwrap() ^= 1;
    let (mut sealed, mut opened) = (Vec::new(), Vec::new());
    tx.seal(&packet, &mut sealed).unwrap();
    rx.open(&sealed, &mut opened).unwrap();
    let before = allocations();
    for _ in 0..20 {
        assert!(matches!(tx.seal(&damaged, &mut sealed), Err(EspError::ChecksumBeforeEncrypt { .. })));
        tx.seal(&packet, &mut sealed).unwrap();
        rx.open(&sealed, &mut opened).unwrap();
        assert!(matches!(rx.open(&sealed, &mut opened), Err(EspError::Replay { .. })));
        tx.seal(&packet, &mut sealed).unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert!(matches!(rx.open(&sealed, &mut opened), Err(EspError::Auth { .. })));
    }
    assert_eq!(allocations() - before, 0, "allocations on rejection paths");
}

#[test]
fn bursts_allocate_nothing_once_the_buffers_exist() {
    use espgcm::esp::PacketBuf;
    for (name, cfg, family) in configs() {
        let cfg = SaConfig { verify: VerifyPolicy::Off, ..cfg };
        let (tx, rx) = pair(&cfg);
        let inputs: Vec<Vec<u8>> = (0..32).map(|i| packet(family, i % 2 == 0, &pattern(i * 40, 3))).collect();
        let mut burst: Vec<PacketBuf> = inputs.iter().map(|p| PacketBuf::from_packet(p)).collect();
        let mut results = vec![Ok(()); 32];
        // The first round grows this thread's scratch buffer.
        tx.seal_burst(&mut burst, &mut results);
        rx.open_burst(&mut burst, &mut results);
        let before = allocations();
        for _ in 0..5 {
            for (b, p) in burst.iter_mut().zip(&inputs) {
                b.set(p);
            }
            tx.seal_burst(&mut burst, &mut results);
            assert!(results.iter().all(|r| r.is_ok()), "{name}");
            rx.open_burst(&mut burst, &mut results);
            assert!(results.iter().all(|r| r.is_ok()), "{name}");
        }
        assert_eq!(allocations() - before, 0, "{name}: allocations in 5 bursts of 32 each way");
    }
}
