//! The time-stamp counter, for the cycles-per-byte figures of `espgcm bench`.
//!
//! The TSC of every x86-64 CPU made in the last fifteen years is invariant:
//! it ticks at the processor's nominal (base) frequency whatever the core's
//! current clock, power state or turbo. A TSC tick is therefore a core cycle
//! only while the core runs at its nominal frequency; under turbo a core does
//! more cycles per tick. It is the usual unit of "cycles per byte" figures
//! for that reason: it does not depend on what the clock did during the run.

/// The current value of the CPU's time-stamp counter, or `None` where there
/// is none to read (architectures other than x86-64).
///
/// Only differences between two readings on one machine mean anything; the
/// read is not serialized, so it is for intervals of microseconds or more.
///
/// ```
/// let a = espgcm::cpu::tsc();
/// let b = espgcm::cpu::tsc();
/// if let (Some(a), Some(b)) = (a, b) {
///     assert!(b >= a);
/// }
/// ```
pub fn tsc() -> Option<u64> {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC exists on every x86-64 CPU, needs no target feature,
        // and only reads a counter into registers: it touches no memory.
        Some(unsafe { core::arch::x86_64::_rdtsc() })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}
