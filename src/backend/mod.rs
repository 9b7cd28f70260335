//! Backends, CPU detection, run-time overrides and per-key dispatch.
//!
//! A [`Backend`] names an implementation. Which ones this process may use is
//! decided by three things, in order:
//!
//! 1. the CPU (and this build): [`Backend::is_supported`];
//! 2. the operator: `ESPGCM_DISABLE=<name,name>` removes backends, and
//!    `ESPGCM_BACKEND=<name>` forces the one new keys get (both read once,
//!    at first use, so a restart applies a change; no rebuild needed);
//! 3. verify mode: a backend caught producing a wrong block is quarantined
//!    for the rest of the process (`crate::verify`).
//!
//! Dispatch is decided once per key: [`Engine`] is an enum with one variant
//! per backend, each holding that backend's own key layout, and every call
//! matches on it once and hands the whole message over.

#[cfg(target_arch = "x86_64")]
pub(crate) mod aesni;
#[cfg(target_arch = "x86_64")]
mod bulk;
pub(crate) mod scalar;
mod sink;
mod tsc;
#[cfg(target_arch = "x86_64")]
pub(crate) mod vaes256;
#[cfg(target_arch = "x86_64")]
pub(crate) mod vaes512;

use crate::ones_complement::PlaintextSum;
use core::fmt;
use core::mem::MaybeUninit;
use core::str::FromStr;
pub(crate) use sink::{Discard, PlaintextSink};
use std::sync::OnceLock;

/// An AES-GCM implementation.
///
/// ```
/// use espgcm::Backend;
///
/// // The scalar backend runs everywhere.
/// assert!(Backend::Scalar.is_supported());
/// // New keys get the best available backend.
/// assert!(Backend::available().contains(&Backend::best()));
/// // Names round-trip.
/// assert_eq!("aesni".parse::<Backend>(), Ok(Backend::AesNi));
/// assert_eq!(Backend::Vaes512.to_string(), "vaes512");
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Portable, constant-time Rust: fixsliced AES and integer-multiply GHASH.
    /// Runs on every CPU; the reference for cross-checks.
    Scalar,
    /// AES-NI and PCLMULQDQ on 128-bit registers.
    AesNi,
    /// VAES and VPCLMULQDQ on 256-bit registers (AVX2).
    Vaes256,
    /// VAES and VPCLMULQDQ on 512-bit registers (AVX-512 F/BW/VL).
    Vaes512,
}

impl Backend {
    /// Every backend, from most to least preferred when several are available.
    pub const ALL: [Backend; 4] = [Backend::Vaes512, Backend::Vaes256, Backend::AesNi, Backend::Scalar];

    /// The name used on the command line, in `ESPGCM_BACKEND`/`ESPGCM_DISABLE`
    /// and by [`FromStr`]: `"scalar"`, `"aesni"`, `"vaes256"` or `"vaes512"`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::AesNi => "aesni",
            Backend::Vaes256 => "vaes256",
            Backend::Vaes512 => "vaes512",
        }
    }

    /// Whether this CPU, with this build, can run the backend.
    pub fn is_supported(self) -> bool {
        self.unsupported_reason().is_none()
    }

    /// Why [`is_supported`](Self::is_supported) is false, in words fit for an
    /// operator; `None` when the backend is supported.
    pub fn unsupported_reason(self) -> Option<&'static str> {
        match self {
            Backend::Scalar => None,
            Backend::AesNi => match cpu::has_aesni() {
                Some(true) => None,
                Some(false) => Some("this CPU lacks AES-NI, PCLMULQDQ, SSSE3 or SSE4.1"),
                None => Some("not an x86-64 CPU"),
            },
            Backend::Vaes256 => match cpu::has_vaes256() {
                Some(true) => None,
                Some(false) => Some("this CPU lacks VAES, VPCLMULQDQ, AVX2 or AES-NI"),
                None => Some("not an x86-64 CPU"),
            },
            Backend::Vaes512 => match cpu::has_vaes512() {
                Some(true) => None,
                Some(false) => Some("this CPU lacks VAES, VPCLMULQDQ, AVX-512 F/BW/VL or AES-NI"),
                None => Some("not an x86-64 CPU"),
            },
        }
    }

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
            .filter(|b| b.is_supported() && !overrides.disabled.contains(b) && !crate::verify::is_quarantined(*b))
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
            .filter(|b| crate::verify::is_quarantined(*b))
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
            Backend::Scalar => "the only available backend (this CPU has no AES-NI, or the others are disabled)",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A string that is not one of the backend names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownBackend(pub String);

impl fmt::Display for UnknownBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown backend {:?}: expected one of scalar, aesni, vaes256, vaes512", self.0)
    }
}

impl std::error::Error for UnknownBackend {}

impl FromStr for Backend {
    type Err = UnknownBackend;

    /// Accepts the names of [`Backend::name`], ignoring ASCII case and
    /// surrounding whitespace.
    fn from_str(s: &str) -> Result<Backend, UnknownBackend> {
        let t = s.trim();
        Backend::ALL.into_iter().find(|b| b.name().eq_ignore_ascii_case(t)).ok_or_else(|| UnknownBackend(s.to_string()))
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

/// CPU features relevant to the backends, as this process sees them.
pub mod cpu {
    pub use super::tsc::tsc;
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    mod detect {
        cpufeatures::new!(aesni, "aes", "pclmulqdq", "ssse3", "sse4.1");
        cpufeatures::new!(vaes512, "vaes", "vpclmulqdq", "avx512f", "avx512bw", "avx512vl");
        cpufeatures::new!(f_aes, "aes");
        cpufeatures::new!(f_pclmulqdq, "pclmulqdq");
        cpufeatures::new!(f_avx, "avx");
        cpufeatures::new!(f_avx2, "avx2");
        cpufeatures::new!(f_vaes, "vaes");
        cpufeatures::new!(f_vpclmulqdq, "vpclmulqdq");
        cpufeatures::new!(f_avx512f, "avx512f");
        cpufeatures::new!(f_avx512bw, "avx512bw");
        cpufeatures::new!(f_avx512vl, "avx512vl");
        cpufeatures::new!(f_bmi2, "bmi2");

        pub(super) fn features() -> Vec<(&'static str, bool)> {
            vec![
                ("aes", f_aes::get()),
                ("pclmulqdq", f_pclmulqdq::get()),
                ("avx", f_avx::get()),
                ("avx2", f_avx2::get()),
                ("vaes", f_vaes::get()),
                ("vpclmulqdq", f_vpclmulqdq::get()),
                ("avx512f", f_avx512f::get()),
                ("avx512bw", f_avx512bw::get()),
                ("avx512vl", f_avx512vl::get()),
                ("bmi2", f_bmi2::get()),
            ]
        }

        pub(super) fn has_aesni() -> bool {
            aesni::get()
        }
        /// cpufeatures ties VAES and VPCLMULQDQ to the OS saving zmm state,
        /// which would hide them on CPUs with VAES but no AVX-512 (Alder
        /// Lake); the 256-bit forms need only ymm state, which std checks.
        pub(super) fn has_vaes256() -> bool {
            std::is_x86_feature_detected!("vaes")
                && std::is_x86_feature_detected!("vpclmulqdq")
                && std::is_x86_feature_detected!("avx2")
                && aesni::get()
        }
        pub(super) fn has_vaes512() -> bool {
            vaes512::get() && aesni::get()
        }
    }

    /// `(feature, present)` for the x86 features the backends care about;
    /// empty on other architectures.
    pub fn features() -> Vec<(&'static str, bool)> {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        {
            detect::features()
        }
        #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
        {
            Vec::new()
        }
    }

    /// `Some(has)` on x86-64, `None` elsewhere.
    pub(crate) fn has_aesni() -> Option<bool> {
        #[cfg(target_arch = "x86_64")]
        {
            Some(detect::has_aesni())
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    pub(crate) fn has_vaes256() -> Option<bool> {
        #[cfg(target_arch = "x86_64")]
        {
            Some(detect::has_vaes256())
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }

    pub(crate) fn has_vaes512() -> Option<bool> {
        #[cfg(target_arch = "x86_64")]
        {
            Some(detect::has_vaes512())
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }
}

/// An AES key whose length is known to be valid.
#[derive(Clone, Copy)]
pub(crate) enum KeyBytes<'a> {
    Aes128(&'a [u8; 16]),
    Aes192(&'a [u8; 24]),
    Aes256(&'a [u8; 32]),
}

impl<'a> KeyBytes<'a> {
    /// `None` unless `key` is 16, 24 or 32 bytes long.
    pub(crate) fn new(key: &'a [u8]) -> Option<KeyBytes<'a>> {
        match key.len() {
            16 => key.try_into().ok().map(KeyBytes::Aes128),
            24 => key.try_into().ok().map(KeyBytes::Aes192),
            32 => key.try_into().ok().map(KeyBytes::Aes256),
            _ => None,
        }
    }

    pub(crate) fn as_slice(self) -> &'a [u8] {
        match self {
            KeyBytes::Aes128(k) => k,
            KeyBytes::Aes192(k) => k,
            KeyBytes::Aes256(k) => k,
        }
    }
}

/// Expanded key material for one backend: dispatch is this `match`.
#[derive(Clone)]
pub(crate) enum Engine {
    Scalar(Box<scalar::ScalarKey>),
    #[cfg(target_arch = "x86_64")]
    AesNi(Box<aesni::AesNiKey>),
    #[cfg(target_arch = "x86_64")]
    Vaes256(Box<vaes256::Vaes256Key>),
    #[cfg(target_arch = "x86_64")]
    Vaes512(Box<vaes512::Vaes512Key>),
}

impl Engine {
    /// Key setup on `backend`; `None` if this build has no such backend.
    pub(crate) fn new(backend: Backend, key: KeyBytes<'_>) -> Option<Engine> {
        match backend {
            Backend::Scalar => Some(Engine::scalar(key)),
            #[cfg(target_arch = "x86_64")]
            Backend::AesNi => aesni::AesNiKey::new(key).map(|k| Engine::AesNi(Box::new(k))),
            #[cfg(target_arch = "x86_64")]
            Backend::Vaes256 => vaes256::Vaes256Key::new(key).map(|k| Engine::Vaes256(Box::new(k))),
            #[cfg(target_arch = "x86_64")]
            Backend::Vaes512 => vaes512::Vaes512Key::new(key).map(|k| Engine::Vaes512(Box::new(k))),
            #[cfg(not(target_arch = "x86_64"))]
            Backend::AesNi | Backend::Vaes256 | Backend::Vaes512 => None,
        }
    }

    /// Key setup on the scalar backend, which every build and CPU has.
    pub(crate) fn scalar(key: KeyBytes<'_>) -> Engine {
        Engine::Scalar(Box::new(scalar::ScalarKey::new(key)))
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Engine::Scalar(_) => Backend::Scalar,
            #[cfg(target_arch = "x86_64")]
            Engine::AesNi(_) => Backend::AesNi,
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes256(_) => Backend::Vaes256,
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes512(_) => Backend::Vaes512,
        }
    }

    pub(crate) fn ghash(&self, acc: &mut u128, data: &[u8]) {
        match self {
            Engine::Scalar(k) => k.ghash(acc, data),
            #[cfg(target_arch = "x86_64")]
            Engine::AesNi(k) => k.ghash(acc, data),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes256(k) => k.ghash(acc, data),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes512(k) => k.ghash(acc, data),
        }
    }

    pub(crate) fn ghash_block(&self, acc: &mut u128, block: u128) {
        match self {
            Engine::Scalar(k) => k.ghash_block(acc, block),
            #[cfg(target_arch = "x86_64")]
            Engine::AesNi(k) => k.ghash_block(acc, block),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes256(k) => k.ghash_block(acc, block),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes512(k) => k.ghash_block(acc, block),
        }
    }

    /// `j0` is the pre-counter block as a big-endian integer (passed in
    /// registers: a block assembled from small stores and read back whole
    /// would stall store forwarding on every call).
    #[inline]
    pub(crate) fn seal(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        match self {
            Engine::Scalar(k) => k.seal(j0, aad, buf),
            #[cfg(target_arch = "x86_64")]
            Engine::AesNi(k) => k.seal(j0, aad, buf),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes256(k) => k.seal(j0, aad, buf),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes512(k) => k.seal(j0, aad, buf),
        }
    }

    /// Encrypt `parts[0] || parts[1]` and append the ciphertext to `out`;
    /// returns the tag and the one's complement sum of `parts[0]`
    /// (`crate::ones_complement`), which the backend takes as it reads the
    /// plaintext (a [`PlaintextSum`] fed by [`seal_append_to`](Self::seal_append_to)).
    #[inline]
    pub(crate) fn seal_append(&self, j0: u128, aad: &[u8], parts: [&[u8]; 2], out: &mut Vec<u8>) -> ([u8; 16], u64) {
        let mut sum = PlaintextSum::default();
        let tag = self.seal_append_to(j0, aad, parts, out, &mut sum);
        (tag, sum.total())
    }

    /// Encrypt `parts[0] || parts[1]` and append the ciphertext to `out`,
    /// handing the plaintext of `parts[0]` to `sink` as it is read; returns
    /// the tag.
    #[inline]
    pub(crate) fn seal_append_to<S: PlaintextSink>(
        &self,
        j0: u128,
        aad: &[u8],
        parts: [&[u8]; 2],
        out: &mut Vec<u8>,
        sink: &mut S,
    ) -> [u8; 16] {
        match self {
            Engine::Scalar(k) => append_by_copy(out, parts, sink, |buf| k.seal(j0, aad, buf)),
            #[cfg(target_arch = "x86_64")]
            Engine::AesNi(k) => seal_append(&**k, j0, aad, parts, out, sink),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes256(k) => seal_append(&**k, j0, aad, parts, out, sink),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes512(k) => seal_append(&**k, j0, aad, parts, out, sink),
        }
    }

    #[inline]
    pub(crate) fn open(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        match self {
            Engine::Scalar(k) => k.open(j0, aad, buf),
            #[cfg(target_arch = "x86_64")]
            Engine::AesNi(k) => k.open(j0, aad, buf),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes256(k) => k.open(j0, aad, buf),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes512(k) => k.open(j0, aad, buf),
        }
    }
}

/// Appending by copying: `parts` are appended to `out`, `parts[0]` is
/// handed to `sink`, and `seal` encrypts the copy in place.
#[inline]
fn append_by_copy<S: PlaintextSink>(
    out: &mut Vec<u8>,
    parts: [&[u8]; 2],
    sink: &mut S,
    seal: impl FnOnce(&mut [u8]) -> [u8; 16],
) -> [u8; 16] {
    let start = out.len();
    out.extend_from_slice(parts[0]);
    out.extend_from_slice(parts[1]);
    sink.rest(parts[0]);
    seal(out.get_mut(start..).unwrap_or_default())
}

/// A backend that can encrypt from the caller's buffer straight into
/// another, for [`seal_append`].
///
/// # Safety
/// [`seal_into`](Self::seal_into) must initialise every byte of `dst`:
/// [`seal_append`] then takes them as part of the `Vec`.
pub(crate) unsafe trait SealInto {
    /// Bytes per bulk batch. A shorter `parts[0]` is copied first: with no
    /// whole batch to read from it, that costs no more, and it is simpler.
    const BATCH: usize;

    /// Encrypt `buf` in place; the tag.
    fn seal(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16];

    /// Encrypt `src || extra` into `dst`, which is exactly that long,
    /// handing `src` to `sink` as it is read; the tag.
    fn seal_into<S: PlaintextSink>(
        &self,
        j0: u128,
        aad: &[u8],
        src: &[u8],
        extra: &[u8],
        dst: &mut [MaybeUninit<u8>],
        sink: &mut S,
    ) -> [u8; 16];
}

/// `parts[0] || parts[1]` encrypted onto the end of `out` by `key`, reading
/// `parts[0]` where it is when it holds a whole batch; the tag.
#[inline]
fn seal_append<K: SealInto, S: PlaintextSink>(
    key: &K,
    j0: u128,
    aad: &[u8],
    parts: [&[u8]; 2],
    out: &mut Vec<u8>,
    sink: &mut S,
) -> [u8; 16] {
    let [src, extra] = parts;
    let total = src.len() + extra.len();
    out.reserve(total);
    let start = out.len();
    match out.spare_capacity_mut().get_mut(..total) {
        // (`reserve` guarantees the capacity.)
        Some(dst) if src.len() >= K::BATCH => {
            let tag = key.seal_into(j0, aad, src, extra, dst, sink);
            // SAFETY: `seal_into` initialised all `total` bytes of `dst`
            // (`SealInto`'s contract), the spare capacity right after the
            // first `start` bytes.
            unsafe { out.set_len(start + total) };
            tag
        }
        _ => append_by_copy(out, parts, sink, |buf| key.seal(j0, aad, buf)),
    }
}

/// [`seal_append`] on one backend's key with ESP's sink: the tag and the
/// sum of `parts[0]`.
#[cfg(test)]
pub(crate) fn seal_append_summed<K: SealInto>(
    key: &K,
    j0: u128,
    aad: &[u8],
    parts: [&[u8]; 2],
    out: &mut Vec<u8>,
) -> ([u8; 16], u64) {
    let mut sum = PlaintextSum::default();
    let tag = seal_append(key, j0, aad, parts, out, &mut sum);
    (tag, sum.total())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_unknown() {
        for b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>(), Ok(b));
            assert_eq!(b.to_string(), b.name());
        }
        assert_eq!(" AESNI ".parse::<Backend>(), Ok(Backend::AesNi));
        let err = "aes-ni".parse::<Backend>().unwrap_err();
        assert!(err.to_string().contains("expected one of scalar, aesni, vaes256, vaes512"), "{err}");
    }

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
