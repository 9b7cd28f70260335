//! Backends, CPU detection and per-key dispatch.
//!
//! A [`Backend`] names an implementation; [`Backend::is_supported`] says
//! whether this CPU and build can run it. Which supported backends the
//! process may use (operator overrides, quarantine) is decided in
//! [`crate::policy`], which this layer does not consult.
//!
//! Dispatch is decided once per key: [`Engine`] is an enum with one variant
//! per backend, each holding that backend's own key layout, and every call
//! matches on it once and hands the whole message over.

#[cfg(target_arch = "x86_64")]
pub(crate) mod aesni;
#[cfg(target_arch = "aarch64")]
pub(crate) mod armv8;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod bulk;
#[cfg(target_arch = "x86_64")]
pub(crate) mod checksum;
pub(crate) mod group;
pub(crate) mod scalar;
mod sink;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod stitched;
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

/// Whether `x` is zero, without a branch or early exit on how `x` was made:
/// `x` first passes through an empty `asm!` barrier ([`scalar::aes::gpr`]),
/// so the compiler cannot split the comparison back into comparisons of
/// the parts `x` was ORed from. Tag comparison; cheaper than `subtle`'s
/// `Choice`, whose barrier is a volatile store and load of a byte (about a
/// sixth of a 64-byte `decrypt` on this backend's x86-64 code). Targets
/// without the barrier use `subtle`.
#[inline(always)]
pub(crate) fn is_zero_ct(x: u64) -> bool {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64", target_arch = "loongarch64"))]
    {
        scalar::aes::gpr(x) == 0
    }
    #[cfg(not(any(
        target_arch = "x86_64",
        target_arch = "aarch64",
        target_arch = "riscv64",
        target_arch = "loongarch64"
    )))]
    {
        subtle::ConstantTimeEq::ct_eq(&x, &0).into()
    }
}

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
    /// The ARMv8 Cryptography Extension's AES and PMULL instructions on
    /// 128-bit NEON registers (AArch64).
    Armv8,
}

impl Backend {
    /// Every backend, from most to least preferred when several are available.
    /// (No CPU runs both the x86-64 and the AArch64 ones.)
    pub const ALL: [Backend; 5] = [Backend::Vaes512, Backend::Vaes256, Backend::AesNi, Backend::Armv8, Backend::Scalar];

    /// The name used on the command line, in `ESPGCM_BACKEND`/`ESPGCM_DISABLE`
    /// and by [`FromStr`]: `"scalar"`, `"aesni"`, `"vaes256"`, `"vaes512"` or
    /// `"armv8"`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::AesNi => "aesni",
            Backend::Vaes256 => "vaes256",
            Backend::Vaes512 => "vaes512",
            Backend::Armv8 => "armv8",
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
            Backend::Armv8 => match cpu::has_armv8() {
                Some(true) => None,
                Some(false) if cfg!(target_endian = "big") => {
                    Some("a big-endian build (the backend assumes little-endian)")
                }
                Some(false) => Some("this CPU lacks the ARMv8 AES or PMULL instructions"),
                None => Some("not an AArch64 CPU"),
            },
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
        write!(f, "unknown backend {:?}: expected one of scalar, aesni, vaes256, vaes512, armv8", self.0)
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

    /// `(feature, present)` for the CPU features the backends care about
    /// (x86 or AArch64); empty on other architectures.
    pub fn features() -> Vec<(&'static str, bool)> {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        {
            detect::features()
        }
        #[cfg(target_arch = "aarch64")]
        {
            vec![
                ("aes", std::arch::is_aarch64_feature_detected!("aes")),
                ("pmull", std::arch::is_aarch64_feature_detected!("pmull")),
            ]
        }
        #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
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

    /// `Some(has)` on AArch64 (the AES and PMULL instructions, on a
    /// little-endian build), `None` elsewhere.
    pub(crate) fn has_armv8() -> Option<bool> {
        #[cfg(target_arch = "aarch64")]
        {
            Some(
                cfg!(target_endian = "little")
                    && std::arch::is_aarch64_feature_detected!("aes")
                    && std::arch::is_aarch64_feature_detected!("pmull"),
            )
        }
        #[cfg(not(target_arch = "aarch64"))]
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
    #[cfg(target_arch = "aarch64")]
    Armv8(Box<armv8::Armv8Key>),
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
            #[cfg(target_arch = "aarch64")]
            Backend::Armv8 => armv8::Armv8Key::new(key).map(|k| Engine::Armv8(Box::new(k))),
            #[cfg(not(target_arch = "aarch64"))]
            Backend::Armv8 => None,
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
            #[cfg(target_arch = "aarch64")]
            Engine::Armv8(_) => Backend::Armv8,
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
            #[cfg(target_arch = "aarch64")]
            Engine::Armv8(k) => k.ghash(acc, data),
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
            #[cfg(target_arch = "aarch64")]
            Engine::Armv8(k) => k.ghash_block(acc, block),
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
            #[cfg(target_arch = "aarch64")]
            Engine::Armv8(k) => k.seal(j0, aad, buf),
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
            #[cfg(target_arch = "aarch64")]
            Engine::Armv8(k) => seal_append(&**k, j0, aad, parts, out, sink),
        }
    }

    /// The longest message (in blocks) worth handing to
    /// [`crypt_group`](Self::crypt_group) when sealing or opening (0: none,
    /// run them one by one).
    pub(crate) fn group_blocks<const DECRYPT: bool>(&self) -> usize {
        match self {
            Engine::Scalar(_) => 0,
            #[cfg(target_arch = "x86_64")]
            Engine::AesNi(k) => k.group_blocks::<DECRYPT>(),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes256(k) => k.group_blocks::<DECRYPT>(),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes512(k) => k.group_blocks::<DECRYPT>(),
            #[cfg(target_arch = "aarch64")]
            Engine::Armv8(k) => k.group_blocks::<DECRYPT>(),
        }
    }

    /// Up to [`group::GROUP`] messages that [`group::fits`] allows, at
    /// once: `tags[i]` gets message `i`'s tag (computed over the ciphertext
    /// when opening). `false` (nothing done) on a backend without such a
    /// kernel: the caller runs the messages one by one.
    #[inline]
    pub(crate) fn crypt_group<const DECRYPT: bool>(
        &self,
        msgs: &mut [group::Message<'_>],
        tags: &mut [[u8; 16]],
        lengths: &mut group::LengthHash,
    ) -> bool {
        match self {
            Engine::Scalar(_) => {
                let _ = (msgs, tags, lengths);
                false
            }
            #[cfg(target_arch = "x86_64")]
            Engine::AesNi(k) => {
                k.crypt_group::<DECRYPT>(msgs, tags, lengths);
                true
            }
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes256(k) => {
                k.crypt_group::<DECRYPT>(msgs, tags, lengths);
                true
            }
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes512(k) => {
                k.crypt_group::<DECRYPT>(msgs, tags, lengths);
                true
            }
            #[cfg(target_arch = "aarch64")]
            Engine::Armv8(k) => {
                k.crypt_group::<DECRYPT>(msgs, tags, lengths);
                true
            }
        }
    }

    /// Always inlined into its callers (`Gcm::decrypt`, the batch), which
    /// then call the backend's entry point directly: one call and frame
    /// fewer, about 1.4 ns of a 64-byte decryption's 28. The same for
    /// [`seal`](Self::seal) measured slower at 64 bytes, so it stays a call.
    #[inline(always)]
    pub(crate) fn open(&self, j0: u128, aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
        match self {
            Engine::Scalar(k) => k.open(j0, aad, buf),
            #[cfg(target_arch = "x86_64")]
            Engine::AesNi(k) => k.open(j0, aad, buf),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes256(k) => k.open(j0, aad, buf),
            #[cfg(target_arch = "x86_64")]
            Engine::Vaes512(k) => k.open(j0, aad, buf),
            #[cfg(target_arch = "aarch64")]
            Engine::Armv8(k) => k.open(j0, aad, buf),
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
        assert!(err.to_string().contains("expected one of scalar, aesni, vaes256, vaes512, armv8"), "{err}");
        assert_eq!("ARMv8".parse::<Backend>(), Ok(Backend::Armv8));
    }
}
