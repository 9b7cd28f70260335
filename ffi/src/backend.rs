//! Backends (which AES-GCM implementation a key runs on), verify policies
//! and the process-wide health snapshot.

use crate::args::{bytes, put};
use crate::result::{
    ESPGCM_ERR_BUFFER_TOO_SMALL, ESPGCM_ERR_INVALID_ARGUMENT, ESPGCM_ERR_NULL_PARAMETER, ESPGCM_ERR_UNKNOWN_BACKEND,
    guard, guard_value,
};
use core::ffi::{CStr, c_char, c_int};
use espgcm::{Backend, FaultKind, VerifyPolicy};

/// An AES-GCM backend: one of the `ESPGCM_BACKEND_*` constants.
pub type espgcm_backend = u32;

/// Portable constant-time Rust; runs on every CPU; the reference for
/// cross-checks.
pub const ESPGCM_BACKEND_SCALAR: espgcm_backend = 0;
/// AES-NI and PCLMULQDQ on 128-bit registers.
pub const ESPGCM_BACKEND_AESNI: espgcm_backend = 1;
/// VAES and VPCLMULQDQ on 256-bit registers (AVX2).
pub const ESPGCM_BACKEND_VAES256: espgcm_backend = 2;
/// VAES and VPCLMULQDQ on 512-bit registers (AVX-512).
pub const ESPGCM_BACKEND_VAES512: espgcm_backend = 3;
/// ARMv8 AES and PMULL on 128-bit NEON registers (AArch64).
pub const ESPGCM_BACKEND_ARMV8: espgcm_backend = 4;

/// How much of a SIMD backend's output is cross-checked against the
/// scalar backend: one of the `ESPGCM_VERIFY_*` constants.
pub type espgcm_verify = u32;

/// No cross-check.
pub const ESPGCM_VERIFY_OFF: espgcm_verify = 0;
/// About one message in `one_in`, chosen at random, is checked in full.
pub const ESPGCM_VERIFY_SAMPLE: espgcm_verify = 1;
/// Every message is checked.
pub const ESPGCM_VERIFY_FULL: espgcm_verify = 2;

/// The library's backend for a constant.
pub(crate) fn backend_from(id: espgcm_backend) -> Result<Backend, c_int> {
    match id {
        ESPGCM_BACKEND_SCALAR => Ok(Backend::Scalar),
        ESPGCM_BACKEND_AESNI => Ok(Backend::AesNi),
        ESPGCM_BACKEND_VAES256 => Ok(Backend::Vaes256),
        ESPGCM_BACKEND_VAES512 => Ok(Backend::Vaes512),
        ESPGCM_BACKEND_ARMV8 => Ok(Backend::Armv8),
        _ => Err(ESPGCM_ERR_INVALID_ARGUMENT),
    }
}

/// The constant for a backend.
pub(crate) fn backend_id(b: Backend) -> espgcm_backend {
    match b {
        Backend::Scalar => ESPGCM_BACKEND_SCALAR,
        Backend::AesNi => ESPGCM_BACKEND_AESNI,
        Backend::Vaes256 => ESPGCM_BACKEND_VAES256,
        Backend::Armv8 => ESPGCM_BACKEND_ARMV8,
        // A backend added to the library later than these bindings is
        // reported as the most capable one they name.
        _ => ESPGCM_BACKEND_VAES512,
    }
}

/// The library's verify policy for a constant and its rate.
pub(crate) fn verify_from(policy: espgcm_verify, one_in: u32) -> Result<VerifyPolicy, c_int> {
    match policy {
        ESPGCM_VERIFY_OFF => Ok(VerifyPolicy::Off),
        ESPGCM_VERIFY_SAMPLE => Ok(VerifyPolicy::Sample { one_in }),
        ESPGCM_VERIFY_FULL => Ok(VerifyPolicy::Full),
        _ => Err(ESPGCM_ERR_INVALID_ARGUMENT),
    }
}

/// The backend new keys get: the fastest one this CPU runs that is neither
/// disabled (`ESPGCM_DISABLE`) nor quarantined, or the one `ESPGCM_BACKEND`
/// forces.
#[unsafe(no_mangle)]
pub extern "C" fn espgcm_backend_best() -> espgcm_backend {
    guard_value(ESPGCM_BACKEND_SCALAR, || backend_id(Backend::best()))
}

/// The backends new keys may use, preferred first (supported, not disabled,
/// not quarantined).
///
/// Writes up to `out_len` of them to `out` and their number to `*out_n`;
/// returns `ESPGCM_ERR_BUFFER_TOO_SMALL` if `out_len` is less than that
/// number (4 always suffices). `out` may be NULL when `out_len` is 0, to
/// ask for the number.
///
/// # Safety
/// `out` must point to `out_len` writable `espgcm_backend`s (or be NULL
/// with `out_len` 0); `out_n` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_backend_available(
    out: *mut espgcm_backend,
    out_len: usize,
    out_n: *mut usize,
) -> c_int {
    guard(|| {
        if out_n.is_null() || (out.is_null() && out_len > 0) {
            return Err(ESPGCM_ERR_NULL_PARAMETER);
        }
        let available = Backend::available();
        // SAFETY: out_n is writable (this function's contract).
        unsafe { put(out_n, available.len()) }?;
        for (i, b) in available.iter().take(out_len).enumerate() {
            // SAFETY: i < out_len, and out holds out_len writable elements.
            unsafe { put(out.add(i), backend_id(*b)) }?;
        }
        if out_len < available.len() { Err(ESPGCM_ERR_BUFFER_TOO_SMALL) } else { Ok(()) }
    })
}

/// Whether this CPU, with this build, can run the backend (false for an
/// unknown constant).
#[unsafe(no_mangle)]
pub extern "C" fn espgcm_backend_is_supported(backend: espgcm_backend) -> bool {
    guard_value(false, || backend_from(backend).is_ok_and(Backend::is_supported))
}

/// The backend's name ("scalar", "aesni", "vaes256", "vaes512" or "armv8") as a
/// NUL-terminated string that lives as long as the program; NULL for an
/// unknown constant.
#[unsafe(no_mangle)]
pub extern "C" fn espgcm_backend_name(backend: espgcm_backend) -> *const c_char {
    let name: &'static CStr = match backend {
        ESPGCM_BACKEND_SCALAR => c"scalar",
        ESPGCM_BACKEND_AESNI => c"aesni",
        ESPGCM_BACKEND_VAES256 => c"vaes256",
        ESPGCM_BACKEND_VAES512 => c"vaes512",
        ESPGCM_BACKEND_ARMV8 => c"armv8",
        _ => return core::ptr::null(),
    };
    name.as_ptr()
}

/// The backend of a name (as `espgcm_backend_name` gives, any ASCII case,
/// `name_len` bytes, no NUL needed): `ESPGCM_ERR_UNKNOWN_BACKEND` for
/// anything else.
///
/// # Safety
/// `name` must point to `name_len` readable bytes; `out` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_backend_from_name(name: *const u8, name_len: usize, out: *mut espgcm_backend) -> c_int {
    guard(|| {
        if out.is_null() {
            return Err(ESPGCM_ERR_NULL_PARAMETER);
        }
        // SAFETY: name holds name_len readable bytes (this function's contract).
        let name = unsafe { bytes(name, name_len) }?;
        let backend: Backend =
            core::str::from_utf8(name).ok().and_then(|s| s.parse().ok()).ok_or(ESPGCM_ERR_UNKNOWN_BACKEND)?;
        // SAFETY: out is writable (this function's contract).
        unsafe { put(out, backend_id(backend)) }
    })
}

/// What verify mode found about one wrong 16-byte block.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct espgcm_fault_report {
    /// The backend that produced it (now quarantined).
    pub backend: espgcm_backend,
    /// 0: a keystream block; 1: a tag; 2: the checksum sum ESP computes
    /// while encrypting.
    pub kind: u32,
    /// Index of the block in the message (for a tag: the number of blocks).
    pub block_index: u64,
    /// What the scalar backend computed.
    pub expected: [u8; 16],
    /// What the SIMD backend computed.
    pub actual: [u8; 16],
}

/// A process-wide snapshot of what verify mode has done.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct espgcm_health {
    /// 16-byte blocks cross-checked against the scalar backend.
    pub verified_blocks: u64,
    /// Messages cross-checked.
    pub verified_messages: u64,
    /// Wrong blocks found.
    pub faults: u64,
    /// Quarantined backends: bit `1 << backend` is set for each.
    pub quarantined: u32,
    /// Whether `last_fault` holds a report.
    pub has_last_fault: bool,
    /// The most recent fault, if `has_last_fault`.
    pub last_fault: espgcm_fault_report,
}

/// Fill `*out` with the process-wide health snapshot: blocks and messages
/// verified, faults found, backends quarantined. A process that never turned
/// verify on has checked nothing (`verified_blocks` is 0).
///
/// # Safety
/// `out` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_health_get(out: *mut espgcm_health) -> c_int {
    guard(|| {
        let h = espgcm::health();
        let last = h.last_fault.map(|r| espgcm_fault_report {
            backend: backend_id(r.backend),
            kind: match r.kind {
                FaultKind::Keystream => 0,
                FaultKind::Tag => 1,
                _ => 2,
            },
            block_index: r.block_index,
            expected: r.expected,
            actual: r.actual,
        });
        let snapshot = espgcm_health {
            verified_blocks: h.verified_blocks,
            verified_messages: h.verified_messages,
            faults: h.faults,
            quarantined: h.quarantined.iter().fold(0, |mask, b| mask | 1 << backend_id(*b)),
            has_last_fault: last.is_some(),
            last_fault: last.unwrap_or_default(),
        };
        // SAFETY: out is writable (this function's contract).
        unsafe { put(out, snapshot) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_round_trip() {
        for b in Backend::ALL {
            assert_eq!(backend_from(backend_id(b)), Ok(b));
            // SAFETY: the name is a NUL-terminated static string.
            let name = unsafe { CStr::from_ptr(espgcm_backend_name(backend_id(b))) };
            assert_eq!(name.to_str(), Ok(b.name()));
        }
        assert_eq!(backend_from(5), Err(ESPGCM_ERR_INVALID_ARGUMENT));
        assert!(espgcm_backend_name(5).is_null());
        assert!(!espgcm_backend_is_supported(99));
        assert!(espgcm_backend_is_supported(ESPGCM_BACKEND_SCALAR));
    }
}
