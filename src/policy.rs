//! Which backends this process may use, and which one a new key gets.
//!
//! Three things decide, in order:
//!
//! 1. the CPU (and this build): [`Backend::is_supported`];
//! 2. the operator: `ESPGCM_DISABLE=<name,name>` removes backends, and
//!    `ESPGCM_BACKEND=<name>` forces the one new keys get (both read once,
//!    at first use, so a restart applies a change; no rebuild needed):
//!    [`Overrides`];
//! 3. verify mode: a backend caught producing a wrong block is quarantined
//!    for the rest of the process, and keys set up on it move to the next
//!    usable backend at their next call.
//!
//! The backends know nothing of this: policy sits above them and below
//! the layers that choose (`Gcm`, verify mode, the health record).

use crate::backend::Backend;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

/// Bit `1 << (backend as u32)` set: quarantined.
static QUARANTINED: AtomicU32 = AtomicU32::new(0);

#[inline(always)]
fn bit(b: Backend) -> u32 {
    1 << (b as u32)
}

/// Whether any backend is quarantined: one relaxed load, the only cost
/// quarantine adds to a call when all is well.
#[inline(always)]
pub(crate) fn any_quarantined() -> bool {
    QUARANTINED.load(Ordering::Relaxed) != 0
}

/// Whether `backend` is quarantined.
pub(crate) fn is_quarantined(backend: Backend) -> bool {
    QUARANTINED.load(Ordering::Acquire) & bit(backend) != 0
}

/// Take `backend` out of use for the rest of the process. The scalar
/// backend is the reference and is never quarantined.
pub(crate) fn quarantine(backend: Backend) {
    if backend != Backend::Scalar {
        QUARANTINED.fetch_or(bit(backend), Ordering::AcqRel);
    }
}

/// The quarantined backends, most preferred first.
pub(crate) fn quarantined() -> Vec<Backend> {
    let mask = QUARANTINED.load(Ordering::Acquire);
    Backend::ALL.into_iter().filter(|b| mask & bit(*b) != 0).collect()
}

/// Lift every quarantine (tests and demonstrations, through
/// `fault::reset_health`).
#[cfg(feature = "fault-injection")]
pub(crate) fn lift_quarantines() {
    QUARANTINED.store(0, Ordering::Release);
}

/// The backend a key set up on `backend` runs on now: `backend` itself
/// unless it is quarantined, else the next backend after it in preference
/// order ([`Backend::ALL`]) that is supported, not disabled and not
/// quarantined; the scalar backend as the last resort.
pub(crate) fn current_backend(backend: Backend) -> Backend {
    if !is_quarantined(backend) {
        return backend;
    }
    let disabled = &Overrides::get().disabled;
    Backend::ALL
        .into_iter()
        .skip_while(|b| *b != backend)
        .skip(1)
        .find(|b| b.is_supported() && !disabled.contains(b) && !is_quarantined(*b))
        .unwrap_or(Backend::Scalar)
}

impl Backend {
    /// Backends this process may use: supported, not disabled by
    /// `ESPGCM_DISABLE` and not quarantined by verify mode after a fault
    /// (see [`health`](crate::health)), most preferred first.
    ///
    /// Never empty: if every backend is ruled out, the scalar backend is
    /// returned anyway (it needs nothing from the CPU, and is never
    /// quarantined), and [`Overrides::warnings`] says so.
    pub fn available() -> Vec<Backend> {
        let overrides = Overrides::get();
        let list: Vec<Backend> = Backend::ALL
            .into_iter()
            .filter(|b| b.is_supported() && !overrides.disabled.contains(b) && !is_quarantined(*b))
            .collect();
        if list.is_empty() { vec![Backend::Scalar] } else { list }
    }

    /// The backend a new key gets: `ESPGCM_BACKEND` if it names an available
    /// backend, else the first of [`available`](Self::available).
    pub fn best() -> Backend {
        let available = Backend::available();
        match Overrides::get().forced {
            Some(forced) if available.contains(&forced) => forced,
            _ => available.first().copied().unwrap_or(Backend::Scalar),
        }
    }

    /// Why [`best`](Self::best) returns what it returns, in one sentence.
    pub fn best_reason() -> String {
        let best = Backend::best();
        let overrides = Overrides::get();
        let quarantined: Vec<&str> = Backend::ALL
            .into_iter()
            .take_while(|b| *b != best)
            .filter(|b| is_quarantined(*b))
            .map(Backend::name)
            .collect();
        if !quarantined.is_empty() {
            return format!(
                "the fastest backend not quarantined: {} produced wrong output under verify mode (see espgcm::health())",
                quarantined.join(" and ")
            );
        }
        if overrides.disabled.contains(&best) {
            return "ESPGCM_DISABLE lists it too, but nothing else is usable, so the scalar backend is the last resort"
                .to_string();
        }
        match overrides.forced {
            Some(forced) if forced == best => format!("forced by ESPGCM_BACKEND={}", forced.name()),
            Some(forced) => {
                format!(
                    "ESPGCM_BACKEND={} is not available here, so the fastest available backend is used",
                    forced.name()
                )
            }
            None => {
                let disabled: Vec<&str> = Backend::ALL
                    .into_iter()
                    .take_while(|b| *b != best)
                    .filter(|b| b.is_supported() && overrides.disabled.contains(b))
                    .map(Backend::name)
                    .collect();
                if disabled.is_empty() {
                    Backend::why_fastest(best).to_string()
                } else {
                    format!("{} (ESPGCM_DISABLE removes {})", Backend::why_fastest(best), disabled.join(", "))
                }
            }
        }
    }

    /// Why `backend` ranks first among those available (the order of
    /// [`ALL`](Self::ALL)), from the benchmarks in the README.
    fn why_fastest(backend: Backend) -> &'static str {
        match backend {
            Backend::Vaes512 => {
                "the fastest available backend on this CPU: 16 blocks per 512-bit batch; messages of one block \
                 or less run on its AES-NI code, which is quicker to set up"
            }
            Backend::Vaes256 => {
                "the fastest available backend on this CPU (VAES without AVX-512): 8 blocks per 256-bit batch"
            }
            Backend::AesNi => "the fastest available backend on this CPU (no VAES): 8 blocks per 128-bit batch",
            Backend::Armv8 => {
                "the fastest available backend on this CPU (ARMv8 AES and PMULL): 8 blocks per 128-bit batch"
            }
            Backend::Scalar => {
                "the only available backend (this CPU has no AES-NI or ARMv8 AES instructions, or the others are \
                 disabled)"
            }
        }
    }
}

/// The operator's run-time choices, read once from the environment.
///
/// ```
/// let o = espgcm::Overrides::get();
/// for w in &o.warnings {
///     eprintln!("espgcm: {w}");
/// }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `ESPGCM_BACKEND`: the backend new keys should get.
    pub forced: Option<Backend>,
    /// `ESPGCM_DISABLE`: backends removed from [`Backend::available`].
    pub disabled: Vec<Backend>,
    /// Problems with the settings (unknown names, a forced backend that is
    /// not available), worded for an operator. Empty when all is well.
    pub warnings: Vec<String>,
}

impl Overrides {
    /// The process-wide settings, read from the environment on first use.
    pub fn get() -> &'static Overrides {
        static OVERRIDES: OnceLock<Overrides> = OnceLock::new();
        OVERRIDES.get_or_init(|| {
            let forced = std::env::var("ESPGCM_BACKEND").ok();
            let disabled = std::env::var("ESPGCM_DISABLE").ok();
            Overrides::parse(forced.as_deref(), disabled.as_deref())
        })
    }

    /// Interpret the two settings (`None` when a variable is unset).
    pub fn parse(forced: Option<&str>, disabled: Option<&str>) -> Overrides {
        let mut o = Overrides::default();
        for item in disabled.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.parse::<Backend>() {
                Ok(b) if !o.disabled.contains(&b) => o.disabled.push(b),
                Ok(_) => {}
                Err(e) => o.warnings.push(format!("ESPGCM_DISABLE: {e}; ignored")),
            }
        }
        if let Some(name) = forced.map(str::trim).filter(|s| !s.is_empty()) {
            match name.parse::<Backend>() {
                Ok(b) => {
                    o.forced = Some(b);
                    if let Some(why) = b.unsupported_reason() {
                        o.warnings.push(format!("ESPGCM_BACKEND={b} is not supported ({why}); ignored"));
                    } else if o.disabled.contains(&b) {
                        o.warnings.push(format!("ESPGCM_BACKEND={b} is also listed in ESPGCM_DISABLE; ignored"));
                    }
                }
                Err(e) => o.warnings.push(format!("ESPGCM_BACKEND: {e}; ignored")),
            }
        }
        let usable = Backend::ALL.iter().any(|b| b.is_supported() && !o.disabled.contains(b));
        if !usable {
            o.warnings.push("ESPGCM_DISABLE rules out every supported backend; the scalar backend is used".to_string());
        }
        o
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disable_list_is_parsed_and_unknown_names_are_reported() {
        let o = Overrides::parse(None, Some(" vaes512, aesni,,bogus ,aesni"));
        assert_eq!(o.disabled, vec![Backend::Vaes512, Backend::AesNi]);
        assert_eq!(o.forced, None);
        assert_eq!(o.warnings.len(), 1);
        assert!(o.warnings[0].contains("\"bogus\""), "{:?}", o.warnings);
    }

    #[test]
    fn forcing_an_unsupported_backend_is_reported() {
        let unsupported = Backend::ALL.into_iter().find(|b| !b.is_supported());
        if let Some(b) = unsupported {
            let o = Overrides::parse(Some(b.name()), None);
            assert_eq!(o.forced, Some(b));
            assert!(o.warnings.iter().any(|w| w.contains("is not supported")), "{:?}", o.warnings);
        }
        let o = Overrides::parse(Some("scalar"), Some("scalar"));
        assert!(o.warnings.iter().any(|w| w.contains("also listed in ESPGCM_DISABLE")), "{:?}", o.warnings);
    }

    #[test]
    fn empty_settings_mean_no_overrides() {
        assert_eq!(Overrides::parse(Some("  "), Some("")), Overrides::default());
        assert_eq!(Overrides::parse(None, None), Overrides::default());
    }

    #[test]
    fn scalar_is_always_supported_and_available_is_never_empty() {
        assert!(Backend::Scalar.is_supported());
        assert!(!Backend::available().is_empty());
        assert!(Backend::best().is_supported());
    }
}
