//! Verify mode allocates nothing per message once the key has built its
//! scalar reference and the thread's scratch buffer has grown (a counting
//! global allocator counts this thread's allocations).

use espgcm::{Backend, Gcm, VerifyPolicy};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is a const-initialised thread-local that never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

#[test]
fn checked_calls_allocate_nothing_after_warm_up() {
    for backend in Backend::ALL.into_iter().filter(|b| b.is_supported()) {
        let mut gcm = Gcm::with_backend(&[3u8; 16], backend).unwrap();
        gcm.set_verify(VerifyPolicy::Full);
        let mut buf = vec![0u8; 1420];
        let tag = gcm.encrypt(&[1; 12], b"aad", &mut buf).unwrap();
        gcm.decrypt(&[1; 12], b"aad", &mut buf, &tag).unwrap();
        let before = ALLOCATIONS.with(Cell::get);
        for len in [0usize, 1, 64, 577, 1420] {
            let tag = gcm.encrypt(&[1; 12], b"aad", &mut buf[..len]).unwrap();
            gcm.decrypt(&[1; 12], b"aad", &mut buf[..len], &tag).unwrap();
        }
        assert_eq!(ALLOCATIONS.with(Cell::get) - before, 0, "{backend}: allocations in 10 checked calls");
    }
    assert!(espgcm::health().is_healthy());
}
