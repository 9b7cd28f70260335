//! The one thing the fault-injection tests (`tests/faults_*.rs`) share that
//! needs the `fault-injection` feature: a lock that keeps the tests of one
//! binary from sharing the process-wide quarantine and counters at the same
//! time. Everything else they use is in `espgcm-testkit`.

use std::sync::{Mutex, MutexGuard};

/// One test at a time per binary: quarantine and the counters are global.
/// (A test that failed poisons the lock; the others still run.)
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    espgcm::fault::clear();
    espgcm::fault::reset_health();
    guard
}
