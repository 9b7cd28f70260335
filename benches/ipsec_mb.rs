//! espgcm against Intel's intel-ipsec-mb (and ring and aws-lc-rs), side by
//! side in one run, as interleaved best-of-N timings.
//!
//! ```text
//! sudo apt-get install libipsec-mb-dev      # the C library and its header (and a C compiler)
//! taskset -c 1 cargo bench --features ipsec-mb,peers --bench ipsec_mb
//! taskset -c 1 cargo bench --features ipsec-mb --bench ipsec_mb   # without ring, aws-lc-rs
//! ```
//!
//! intel-ipsec-mb is called through its direct AES-GCM API, the way an IPsec
//! data plane calls it per packet: `IMB_AES128_GCM_PRE`/`IMB_AES256_GCM_PRE`
//! once per key, then `IMB_AES{128,256}_GCM_ENC`/`_DEC` per message on the
//! manager `init_mb_mgr_auto` picked (with VAES and AVX-512, its `vaes_avx512`
//! code; the first line of the output names the code path timed).
//! Those are function pointers inside `IMB_MGR`, whose layout changes between
//! library versions, so a small C shim (`benches/ipsec_mb/shim.c`, built by
//! `build.rs` only with the `ipsec-mb` feature) makes the calls and this file
//! sees plain functions ([`ffi`]); the shim adds one direct call per message.
//!
//! Workload, for every espgcm backend this CPU supports, intel-ipsec-mb, and
//! with `peers` ring and aws-lc-rs: AES-128 and AES-256, seal and open, in
//! place, 16, 64, 576, 1420 and 16384 bytes, 8-byte AAD (ESP's SPI and
//! sequence number), 12-byte IV, 16-byte tag.
//!
//! Before anything is timed, every implementation's ciphertext and tag are
//! compared with `espgcm::Gcm::new(key)` (itself compared with the scalar
//! backend) at every size and key size, and its open of that output must
//! verify and give the plaintext back; any difference stops the run.
//!
//! Timing: the machine is shared, so every implementation runs a batch of
//! about [`BATCH`] in turn, and the round is repeated [`ROUNDS_PER_PASS`]
//! times (starting with a different implementation each round); all the
//! measurements are made that way in turn, and the whole is repeated
//! [`PASSES`] times, so that each measurement's samples span the run.
//! Interference only ever adds time, so the table shows the fastest batch of
//! each implementation, per call; the `noise` line gives the worst
//! median/fastest ratio of the table.
//!
//! Open decrypts the same buffer over and over with two alternating tags: the
//! tag of the ciphertext C, and the tag of sealing C itself, which is the tag
//! of the plaintext P read as ciphertext (decrypting P gives C back, because
//! CTR mode is its own inverse). So every open verifies a valid tag, in
//! place, with nothing copied between calls.

use espgcm::{Backend, Gcm, Job, VerifyPolicy};
use std::hint::black_box;
use std::time::{Duration, Instant};

const SIZES: [usize; 5] = [16, 64, 576, 1420, 16384];
const KEY_LENS: [usize; 2] = [16, 32];
/// ESP's AAD: SPI and sequence number.
const AAD: [u8; 8] = [0x00, 0x00, 0x12, 0x34, 0x00, 0x00, 0x00, 0x01];
const IV: [u8; 12] = [0x5a, 0x17, 0x00, 0x42, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01];
/// Passes over every (key size, operation, message size) measurement.
const PASSES: usize = 5;
/// Interleaved rounds per measurement in each pass.
const ROUNDS_PER_PASS: usize = 20;
/// Target duration of one batch.
const BATCH: Duration = Duration::from_micros(250);

/// The bench's whole FFI layer: intel-ipsec-mb through `benches/ipsec_mb/shim.c`.
mod ffi {
    use std::ffi::{CStr, c_char, c_int};

    /// `struct gcm_key_data` from `intel-ipsec-mb.h`: 240 bytes of round keys
    /// and 768 of GHASH key powers, 64-byte aligned (the header aligns it
    /// when `LINUX` is defined, as the library is built): 1024 bytes. Only
    /// the library reads or writes it; [`Library::init`] checks size and
    /// alignment against the C compiler's.
    #[repr(C, align(64))]
    pub struct KeyData([u8; 1024]);

    const _: () = assert!(size_of::<KeyData>() == 1024 && align_of::<KeyData>() == 64);

    // The shim's functions (see shim.c for each one's contract); `size_t` is
    // `usize` on every target this library supports (x86-64).
    unsafe extern "C" {
        fn ipsecmb_init() -> c_int;
        fn ipsecmb_version() -> *const c_char;
        fn ipsecmb_arch() -> *const c_char;
        fn ipsecmb_gcm_impl() -> *const c_char;
        fn ipsecmb_key_size() -> usize;
        fn ipsecmb_key_align() -> usize;
        fn ipsecmb_gcm_key(keylen: usize, key: *const u8, out: *mut KeyData) -> c_int;
        fn ipsecmb_gcm_seal(
            key: *const KeyData,
            keylen: usize,
            iv: *const u8,
            aad: *const u8,
            aadlen: usize,
            buf: *mut u8,
            len: usize,
            tag: *mut u8,
        );
        fn ipsecmb_gcm_open(
            key: *const KeyData,
            keylen: usize,
            iv: *const u8,
            aad: *const u8,
            aadlen: usize,
            buf: *mut u8,
            len: usize,
            tag: *const u8,
        ) -> c_int;
    }

    /// Proof that the library's manager is initialised (it is never freed).
    pub struct Library(());

    /// A static C string from the shim as a Rust string.
    fn text(ptr: *const c_char) -> String {
        if ptr.is_null() {
            return "?".to_string();
        }
        // SAFETY: the shim returns pointers to NUL-terminated string literals
        // (or the library's static version string), valid for the whole run.
        unsafe { CStr::from_ptr(ptr) }.to_string_lossy().into_owned()
    }

    impl Library {
        /// Allocates and initialises the library's manager for this CPU.
        pub fn init() -> Result<Library, String> {
            // SAFETY: no arguments; called once, from the main thread, before
            // any other shim function that uses the manager.
            let err = unsafe { ipsecmb_init() };
            if err != 0 {
                return Err(format!("intel-ipsec-mb: manager initialisation failed (imb_get_errno {err})"));
            }
            // SAFETY: no arguments; these only return sizeof/_Alignof.
            let (size, align) = unsafe { (ipsecmb_key_size(), ipsecmb_key_align()) };
            if (size, align) != (size_of::<KeyData>(), align_of::<KeyData>()) {
                return Err(format!(
                    "intel-ipsec-mb: struct gcm_key_data is {size} bytes aligned to {align} in C, {} aligned to {} \
                     in this bench; update ffi::KeyData to match intel-ipsec-mb.h",
                    size_of::<KeyData>(),
                    align_of::<KeyData>()
                ));
            }
            Ok(Library(()))
        }

        /// E.g. "1.3.0, avx512 manager, vaes_avx512 GCM".
        pub fn describe(&self) -> String {
            // SAFETY: no arguments; each returns a static string (see `text`).
            let (version, arch, gcm) = unsafe { (ipsecmb_version(), ipsecmb_arch(), ipsecmb_gcm_impl()) };
            format!("{}, {} manager, {} GCM", text(version), text(arch), text(gcm))
        }
    }

    /// An expanded AES-128 or AES-256 GCM key.
    pub struct Key {
        data: Box<KeyData>,
        len: usize,
    }

    impl Key {
        /// Expands a 16- or 32-byte key.
        pub fn new(_library: &Library, key: &[u8]) -> Result<Key, String> {
            let mut data = Box::new(KeyData([0; 1024]));
            // SAFETY: `key` is readable for `key.len()` bytes (the shim reads
            // exactly 16 or 32, and refuses other lengths); `data` is a
            // writable, 64-byte aligned `struct gcm_key_data`; the manager is
            // initialised (`_library` exists).
            let err = unsafe { ipsecmb_gcm_key(key.len(), key.as_ptr(), &mut *data) };
            if err != 0 {
                return Err(format!("intel-ipsec-mb: cannot expand a {}-byte key (16 or 32 bytes)", key.len()));
            }
            Ok(Key { data, len: key.len() })
        }

        /// Encrypts `buf` in place; returns the 16-byte tag.
        pub fn seal(&self, iv: &[u8; 12], aad: &[u8], buf: &mut [u8]) -> [u8; 16] {
            let mut tag = [0u8; 16];
            // SAFETY: the key was expanded by `new` for `self.len`; the IV is
            // 12 readable bytes, `aad` and `buf` are valid for their lengths
            // (in-place operation is supported: src == dst), `tag` is 16
            // writable bytes; the manager outlives every `Key`.
            unsafe {
                ipsecmb_gcm_seal(
                    &*self.data,
                    self.len,
                    iv.as_ptr(),
                    aad.as_ptr(),
                    aad.len(),
                    buf.as_mut_ptr(),
                    buf.len(),
                    tag.as_mut_ptr(),
                )
            };
            tag
        }

        /// Decrypts `buf` in place; true if `tag` verified.
        pub fn open(&self, iv: &[u8; 12], aad: &[u8], buf: &mut [u8], tag: &[u8; 16]) -> bool {
            // SAFETY: as in `seal`; `tag` is 16 readable bytes.
            let ok = unsafe {
                ipsecmb_gcm_open(
                    &*self.data,
                    self.len,
                    iv.as_ptr(),
                    aad.as_ptr(),
                    aad.len(),
                    buf.as_mut_ptr(),
                    buf.len(),
                    tag.as_ptr(),
                )
            };
            ok == 1
        }
    }
}

/// Seal or open.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Seal,
    Open,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Seal => "seal",
            Op::Open => "open",
        }
    }
}

/// One AES-GCM implementation with a key: in-place seal and open with [`IV`]
/// and [`AAD`].
trait Aead {
    fn seal(&self, buf: &mut [u8]) -> [u8; 16];
    fn open(&self, buf: &mut [u8], tag: &[u8; 16]) -> bool;
}

/// The IV and AAD pass through `black_box`: `Gcm::encrypt` and `decrypt`
/// are inlined into this crate, and with constants the compiler would fold
/// their per-call work (J0, length checks) out of the timed loop, which a
/// data plane, with a new IV per packet, never gets.
impl Aead for Gcm {
    fn seal(&self, buf: &mut [u8]) -> [u8; 16] {
        self.encrypt(black_box(&IV), black_box(&AAD), buf).unwrap_or([0; 16])
    }
    fn open(&self, buf: &mut [u8], tag: &[u8; 16]) -> bool {
        self.decrypt(black_box(&IV), black_box(&AAD), buf, tag).is_ok()
    }
}

impl Aead for ffi::Key {
    fn seal(&self, buf: &mut [u8]) -> [u8; 16] {
        ffi::Key::seal(self, &IV, &AAD, buf)
    }
    fn open(&self, buf: &mut [u8], tag: &[u8; 16]) -> bool {
        ffi::Key::open(self, &IV, &AAD, buf, tag)
    }
}

#[cfg(feature = "peers")]
struct Ring(ring::aead::LessSafeKey);

#[cfg(feature = "peers")]
impl Aead for Ring {
    fn seal(&self, buf: &mut [u8]) -> [u8; 16] {
        use ring::aead::{Aad, Nonce};
        match self.0.seal_in_place_separate_tag(Nonce::assume_unique_for_key(IV), Aad::from(&AAD), buf) {
            Ok(tag) => tag.as_ref().try_into().unwrap_or([0; 16]),
            Err(_) => [0; 16],
        }
    }
    fn open(&self, buf: &mut [u8], tag: &[u8; 16]) -> bool {
        use ring::aead::{Aad, Nonce, Tag};
        let Ok(tag) = Tag::try_from(&tag[..]) else { return false };
        self.0.open_in_place_separate_tag(Nonce::assume_unique_for_key(IV), Aad::from(&AAD), tag, buf, 0..).is_ok()
    }
}

#[cfg(feature = "peers")]
struct AwsLc(aws_lc_rs::aead::LessSafeKey);

#[cfg(feature = "peers")]
impl Aead for AwsLc {
    fn seal(&self, buf: &mut [u8]) -> [u8; 16] {
        use aws_lc_rs::aead::{Aad, Nonce};
        match self.0.seal_in_place_separate_tag(Nonce::assume_unique_for_key(IV), Aad::from(&AAD), buf) {
            Ok(tag) => tag.as_ref().try_into().unwrap_or([0; 16]),
            Err(_) => [0; 16],
        }
    }
    fn open(&self, buf: &mut [u8], tag: &[u8; 16]) -> bool {
        use aws_lc_rs::aead::{Aad, Nonce};
        self.0.open_in_place_separate_tag(Nonce::assume_unique_for_key(IV), Aad::from(&AAD), tag, buf).is_ok()
    }
}

/// The expected answers at one key and size, from `Gcm::new`.
struct Expected {
    plaintext: Vec<u8>,
    ciphertext: Vec<u8>,
    /// The tag of `ciphertext`.
    tag: [u8; 16],
    /// The tag of sealing `ciphertext`, i.e. of `plaintext` read as ciphertext.
    tag_of_plaintext: [u8; 16],
}

impl Expected {
    fn new(key: &[u8], size: usize) -> Result<Expected, String> {
        let plaintext: Vec<u8> = (0..size).map(|i| (i as u8).wrapping_mul(31).wrapping_add(7)).collect();
        let seal = |gcm: &Gcm, input: &[u8]| -> Result<(Vec<u8>, [u8; 16]), String> {
            let mut buf = input.to_vec();
            let tag = gcm.encrypt(&IV, &AAD, &mut buf).map_err(|e| format!("espgcm {}: {e}", gcm.backend()))?;
            Ok((buf, tag))
        };
        let best = Gcm::new(key).map_err(|e| format!("espgcm: {e}"))?;
        let scalar = Gcm::with_backend(key, Backend::Scalar).map_err(|e| format!("espgcm scalar: {e}"))?;
        let (ciphertext, tag) = seal(&best, &plaintext)?;
        let (again, tag_of_plaintext) = seal(&best, &ciphertext)?;
        if seal(&scalar, &plaintext)? != (ciphertext.clone(), tag) || again != plaintext {
            return Err(format!(
                "espgcm's best backend ({}) disagrees with its scalar backend at AES-{} {size} bytes: fix espgcm first",
                best.backend(),
                key.len() * 8
            ));
        }
        Ok(Expected { plaintext, ciphertext, tag, tag_of_plaintext })
    }
}

/// Checks that `aead` seals to the expected ciphertext and tag, and opens
/// both directions of the alternating open loop.
fn check(name: &str, aead: &impl Aead, key_len: usize, size: usize, e: &Expected) -> Result<(), String> {
    let at = format!("{name} at AES-{} {size} bytes", key_len * 8);
    let mut buf = e.plaintext.clone();
    let tag = aead.seal(&mut buf);
    if buf != e.ciphertext {
        return Err(format!("{at}: ciphertext differs from espgcm::Gcm::new's"));
    }
    if tag != e.tag {
        return Err(format!("{at}: tag {} differs from espgcm's {}", hex(&tag), hex(&e.tag)));
    }
    if !aead.open(&mut buf, &e.tag) || buf != e.plaintext {
        return Err(format!("{at}: opening espgcm's output did not give the plaintext back"));
    }
    if !aead.open(&mut buf, &e.tag_of_plaintext) || buf != e.ciphertext {
        return Err(format!("{at}: opening the plaintext as ciphertext did not verify (the open loop needs it)"));
    }
    let mut forged = e.tag;
    forged[15] ^= 1;
    if aead.open(&mut buf, &forged) {
        return Err(format!("{at}: a forged tag was accepted"));
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An implementation set up at one key and size, ready to time batches.
trait Timed {
    /// Runs `iters` (even) calls; returns the elapsed time.
    fn batch(&mut self, op: Op, iters: usize) -> Result<Duration, String>;
}

struct Entry<'a, A> {
    name: &'a str,
    aead: &'a A,
    seal_buf: Vec<u8>,
    open_buf: Vec<u8>,
    tags: [[u8; 16]; 2],
}

impl<'a, A: Aead> Entry<'a, A> {
    fn new(name: &'a str, aead: &'a A, e: &Expected) -> Entry<'a, A> {
        Entry {
            name,
            aead,
            seal_buf: e.plaintext.clone(),
            open_buf: e.ciphertext.clone(),
            tags: [e.tag, e.tag_of_plaintext],
        }
    }
}

impl<A: Aead> Timed for Entry<'_, A> {
    fn batch(&mut self, op: Op, iters: usize) -> Result<Duration, String> {
        let aead = self.aead;
        match op {
            Op::Seal => {
                let buf = &mut self.seal_buf;
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(aead.seal(black_box(&mut buf[..])));
                }
                Ok(start.elapsed())
            }
            Op::Open => {
                let (buf, [t0, t1]) = (&mut self.open_buf, &self.tags);
                let mut ok = true;
                let start = Instant::now();
                for _ in 0..iters / 2 {
                    ok &= aead.open(black_box(&mut buf[..]), t0);
                    ok &= aead.open(black_box(&mut buf[..]), t1);
                }
                let elapsed = start.elapsed();
                if ok { Ok(elapsed) } else { Err(format!("{}: open refused valid input while timed", self.name)) }
            }
        }
    }
}

/// `Gcm::encrypt_batch` / `decrypt_batch` of [`BATCH_JOBS`] messages of the
/// size on `Backend::best()`: one "call" is one batch, and the time is
/// reported per message, so its row reads like the single-call rows.
struct BatchEntry<'a> {
    gcm: &'a Gcm,
    seal_bufs: Vec<Vec<u8>>,
    /// Each holds the ciphertext and the plaintext alternately (the open
    /// loop decrypts one into the other and back).
    open_bufs: Vec<Vec<u8>>,
    tags: [[u8; 16]; 2],
    phase: usize,
}

/// Messages per batch in the batch row.
const BATCH_JOBS: usize = 32;
const BATCH_ROW: &str = "espgcm batch of 32";

impl<'a> BatchEntry<'a> {
    fn new(gcm: &'a Gcm, e: &Expected) -> BatchEntry<'a> {
        BatchEntry {
            gcm,
            seal_bufs: vec![e.plaintext.clone(); BATCH_JOBS],
            open_bufs: vec![e.ciphertext.clone(); BATCH_JOBS],
            tags: [e.tag, e.tag_of_plaintext],
            phase: 0,
        }
    }
}

impl Timed for BatchEntry<'_> {
    fn batch(&mut self, op: Op, iters: usize) -> Result<Duration, String> {
        let gcm = self.gcm;
        let mut ok = true;
        let start = Instant::now();
        for _ in 0..iters {
            let (bufs, tag) = match op {
                Op::Seal => (&mut self.seal_bufs, None),
                Op::Open => (&mut self.open_bufs, Some(self.tags[self.phase])),
            };
            // Each job written once, in place, on the stack (as the ESP
            // bursts build theirs), its tag with it: `core::array::from_fn`
            // built the array and then copied it, about 1 ns a message at
            // 64 bytes.
            let mut jobs = arrayvec::ArrayVec::<Job<'_>, BATCH_JOBS>::new();
            for buf in bufs.iter_mut().take(BATCH_JOBS) {
                jobs.push(Job { tag: tag.unwrap_or_default(), ..Job::new(IV, &AAD, &mut buf[..]) });
            }
            if tag.is_some() {
                gcm.decrypt_batch(black_box(&mut jobs));
                ok &= jobs.iter().all(|j| j.result.is_ok());
                self.phase ^= 1;
            } else {
                gcm.encrypt_batch(black_box(&mut jobs));
            }
        }
        let elapsed = start.elapsed() / BATCH_JOBS as u32;
        if ok { Ok(elapsed) } else { Err("espgcm batch: decrypt_batch refused valid input while timed".to_string()) }
    }
}

/// Best and median time per call, in nanoseconds.
#[derive(Clone, Copy)]
struct Stats {
    best: f64,
    median: f64,
}

/// Calls per batch so that a batch takes about [`BATCH`] (even, at least 2);
/// the doubling doubles as warm-up.
fn calibrate(t: &mut dyn Timed, op: Op) -> Result<usize, String> {
    let mut iters = 2;
    loop {
        let elapsed = t.batch(op, iters)?;
        if elapsed >= BATCH / 4 || iters >= 1 << 26 {
            let per_call = elapsed.as_secs_f64() / iters as f64;
            let n = (BATCH.as_secs_f64() / per_call.max(1e-12)) as usize;
            return Ok((n.max(2) + 1) & !1);
        }
        iters *= 2;
    }
}

/// Best and median of each entry's samples (ns per call).
fn stats(samples: &[Vec<f64>]) -> Vec<Stats> {
    samples
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.sort_by(f64::total_cmp);
            Stats {
                best: s.first().copied().unwrap_or(f64::NAN),
                median: s.get(s.len() / 2).copied().unwrap_or(f64::NAN),
            }
        })
        .collect()
}

/// Every implementation's key at one key size.
struct Keys {
    ours: Vec<(Backend, Gcm)>,
    ipsec_mb: ffi::Key,
    #[cfg(feature = "peers")]
    ring: Ring,
    #[cfg(feature = "peers")]
    aws_lc: AwsLc,
}

const IPSEC_MB: &str = "intel-ipsec-mb";

impl Keys {
    fn new(library: &ffi::Library, key: &[u8]) -> Result<Keys, String> {
        let mut ours = Vec::new();
        for backend in Backend::ALL.into_iter().filter(|b| b.is_supported()) {
            let mut gcm = Gcm::with_backend(key, backend).map_err(|e| format!("espgcm {backend}: {e}"))?;
            gcm.set_verify(VerifyPolicy::Off);
            ours.push((backend, gcm));
        }
        #[cfg(feature = "peers")]
        let (ring, aws_lc) = {
            let ring_alg = if key.len() == 16 { &ring::aead::AES_128_GCM } else { &ring::aead::AES_256_GCM };
            let aws_alg = if key.len() == 16 { &aws_lc_rs::aead::AES_128_GCM } else { &aws_lc_rs::aead::AES_256_GCM };
            let ring = ring::aead::UnboundKey::new(ring_alg, key).map_err(|_| "ring: key rejected".to_string())?;
            let aws =
                aws_lc_rs::aead::UnboundKey::new(aws_alg, key).map_err(|_| "aws-lc-rs: key rejected".to_string())?;
            (Ring(ring::aead::LessSafeKey::new(ring)), AwsLc(aws_lc_rs::aead::LessSafeKey::new(aws)))
        };
        Ok(Keys {
            ours,
            ipsec_mb: ffi::Key::new(library, key)?,
            #[cfg(feature = "peers")]
            ring,
            #[cfg(feature = "peers")]
            aws_lc,
        })
    }

    /// Names in table order: espgcm's backends, then the peers.
    fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.ours.iter().map(|(b, _)| b.name()).collect();
        if self.ours.iter().any(|(b, _)| *b == Backend::best()) {
            names.push(BATCH_ROW);
        }
        names.push(IPSEC_MB);
        #[cfg(feature = "peers")]
        names.extend(["ring", "aws-lc-rs"]);
        names
    }

    /// Checks every implementation against `e`.
    fn check(&self, key_len: usize, size: usize, e: &Expected) -> Result<(), String> {
        for (backend, gcm) in &self.ours {
            check(&format!("espgcm {backend}"), gcm, key_len, size, e)?;
        }
        check(IPSEC_MB, &self.ipsec_mb, key_len, size, e)?;
        #[cfg(feature = "peers")]
        {
            check("ring", &self.ring, key_len, size, e)?;
            check("aws-lc-rs", &self.aws_lc, key_len, size, e)?;
        }
        Ok(())
    }

    /// Timing entries in the order of [`names`](Self::names).
    fn entries<'a>(&'a self, e: &Expected) -> Vec<Box<dyn Timed + 'a>> {
        let mut v: Vec<Box<dyn Timed + 'a>> = Vec::new();
        for (backend, gcm) in &self.ours {
            v.push(Box::new(Entry::new(backend.name(), gcm, e)));
        }
        if let Some((_, gcm)) = self.ours.iter().find(|(b, _)| *b == Backend::best()) {
            v.push(Box::new(BatchEntry::new(gcm, e)));
        }
        v.push(Box::new(Entry::new(IPSEC_MB, &self.ipsec_mb, e)));
        #[cfg(feature = "peers")]
        {
            v.push(Box::new(Entry::new("ring", &self.ring, e)));
            v.push(Box::new(Entry::new("aws-lc-rs", &self.aws_lc, e)));
        }
        v
    }
}

fn key_bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(0x1d) ^ 0x42).collect()
}

fn main() {
    if let Err(message) = run() {
        eprintln!("ipsec_mb bench: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let library = ffi::Library::init()?;
    let keys: Vec<Keys> = KEY_LENS.iter().map(|&n| Keys::new(&library, &key_bytes(n))).collect::<Result<_, _>>()?;

    // Correctness first, at every key and size that will be timed.
    let mut expected = Vec::new();
    for (k, &key_len) in keys.iter().zip(&KEY_LENS) {
        let mut per_size = Vec::new();
        for size in SIZES {
            let e = Expected::new(&key_bytes(key_len), size)?;
            k.check(key_len, size, &e)?;
            per_size.push(e);
        }
        expected.push(per_size);
    }

    print_header(&library);
    // One measurement per (key size, operation, size); its implementations
    // alternate batch by batch, and the measurements themselves are visited
    // in PASSES passes, so that each one's samples span the whole run and a
    // burst of load lasting seconds cannot spoil one of them alone.
    let mut entries: Vec<Vec<Vec<Box<dyn Timed + '_>>>> =
        keys.iter().zip(&expected).map(|(k, per_size)| per_size.iter().map(|e| k.entries(e)).collect()).collect();
    let mut plan = Vec::new();
    for (key, per_size) in entries.iter_mut().enumerate() {
        for op in [Op::Seal, Op::Open] {
            for (size, row) in per_size.iter_mut().enumerate() {
                let iters = row.iter_mut().map(|t| calibrate(t.as_mut(), op)).collect::<Result<Vec<_>, _>>()?;
                let samples = vec![Vec::with_capacity(PASSES * ROUNDS_PER_PASS); iters.len()];
                plan.push(Measurement { key, op, size, iters, samples });
            }
        }
    }
    for _ in 0..PASSES {
        for m in &mut plan {
            let row = &mut entries[m.key][m.size];
            let n = row.len();
            for round in 0..ROUNDS_PER_PASS {
                for k in 0..n {
                    let i = (round + k) % n;
                    let elapsed = row[i].batch(m.op, m.iters[i])?;
                    m.samples[i].push(elapsed.as_secs_f64() * 1e9 / m.iters[i] as f64);
                }
            }
        }
    }

    let best = Backend::best().name();
    for (key, k) in keys.iter().enumerate() {
        for op in [Op::Seal, Op::Open] {
            let columns: Vec<Vec<Stats>> =
                plan.iter().filter(|m| m.key == key && m.op == op).map(|m| stats(&m.samples)).collect();
            print_table(&format!("{}, AES-{}", op.name(), KEY_LENS[key] * 8), &k.names(), best, &columns);
        }
    }
    Ok(())
}

/// One timed cell set: a key size, an operation and a message size (indices
/// into `KEY_LENS` and `SIZES`), with each implementation's calls per batch
/// and its samples in ns per call.
struct Measurement {
    key: usize,
    op: Op,
    size: usize,
    iters: Vec<usize>,
    samples: Vec<Vec<f64>>,
}

fn print_header(library: &ffi::Library) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".to_string());
    let cpus = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Cpus_allowed_list:")).map(|l| l[18..].trim().to_string()))
        .unwrap_or_else(|| "unknown".to_string());
    println!("AES-GCM, espgcm {} against intel-ipsec-mb {}", env!("CARGO_PKG_VERSION"), library.describe());
    if cfg!(feature = "peers") {
        println!("and ring, aws-lc-rs (versions: Cargo.lock)");
    }
    println!("cpu: {cpu}; this process may run on cpus {cpus}");
    println!("espgcm Backend::best() = {} ({})", Backend::best(), Backend::best_reason());
    println!(
        "in place, 8-byte AAD, 12-byte IV, 16-byte tag; outputs checked against espgcm before timing; \
         best of {} interleaved ~{} us batches ({PASSES} passes)",
        PASSES * ROUNDS_PER_PASS,
        BATCH.as_micros()
    );
    println!(
        "cells: GB/s (10^9 bytes/s) and ns per call; ratio rows: throughput of best() over the other (>1: espgcm faster)"
    );
}

fn cell_ns(ns: f64) -> String {
    if ns >= 1000.0 { format!("{ns:.0}") } else { format!("{ns:.1}") }
}

fn print_table(title: &str, names: &[&str], best: &str, columns: &[Vec<Stats>]) {
    println!();
    print!("{title:<26}");
    for size in SIZES {
        print!("  {:>15}", format!("{size} B"));
    }
    println!();
    print!("{:<26}", "");
    for _ in SIZES {
        print!("  {:>6} {:>8}", "GB/s", "ns");
    }
    println!();
    for (i, name) in names.iter().enumerate() {
        print!("{name:<26}");
        for (size, col) in SIZES.iter().zip(columns) {
            let ns = col[i].best;
            print!("  {:>6.2} {:>8}", *size as f64 / ns, cell_ns(ns));
        }
        println!();
    }
    let index = |n: &str| names.iter().position(|x| *x == n);
    let (Some(b), Some(ipsec)) = (index(best), index(IPSEC_MB)) else { return };
    print!("{:<26}", format!("{best} / {IPSEC_MB}"));
    for col in columns {
        print!("  {:>15}", format!("{:.2}x", col[ipsec].best / col[b].best));
    }
    println!();
    if let Some(batch) = index(BATCH_ROW) {
        print!("{:<26}", format!("batch / {IPSEC_MB}"));
        for col in columns {
            print!("  {:>15}", format!("{:.2}x", col[ipsec].best / col[batch].best));
        }
        println!();
    }
    let peers: Vec<usize> = (0..names.len())
        .filter(|&i| names[i] != BATCH_ROW && !Backend::ALL.iter().any(|b| b.name() == names[i]))
        .collect();
    if peers.len() > 1 {
        print!("{:<26}", format!("{best} / best peer"));
        for col in columns {
            let p = peers.iter().copied().min_by(|&x, &y| col[x].best.total_cmp(&col[y].best)).unwrap_or(ipsec);
            let short = if names[p] == IPSEC_MB { "ipsec-mb" } else { names[p] };
            print!("  {:>15}", format!("{:.2}x {short}", col[p].best / col[b].best));
        }
        println!();
    }
    // How noisy the run was: the largest median/best over all cells.
    let mut worst = (1.0, "", 0);
    for (size, col) in SIZES.iter().zip(columns) {
        for (i, s) in col.iter().enumerate() {
            if s.median / s.best > worst.0 {
                worst = (s.median / s.best, names[i], *size);
            }
        }
    }
    println!("{:<26}worst median/best {:.2} ({} at {} B)", "noise", worst.0, worst.1, worst.2);
}
