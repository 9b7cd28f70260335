//! AES-GCM keys: single calls and batches.

use crate::args::{Span, array_mut, bytes, bytes_mut, check_disjoint, object, object_mut, put};
use crate::backend::{backend_from, backend_id, espgcm_backend, espgcm_verify, verify_from};
use crate::result::{
    ESPGCM_ERR_INVALID_ARGUMENT, ESPGCM_ERR_IV_LENGTH, ESPGCM_ERR_NULL_PARAMETER, ESPGCM_ERR_TAG_LENGTH,
    ESPGCM_ERR_TOO_LONG, ESPGCM_OK, gcm_code, guard,
};
use core::ffi::c_int;
use core::ptr::null_mut;
use espgcm::{Gcm, Job, MAX_AAD_LEN, MAX_IV_LEN, MAX_MESSAGE_LEN, MIN_TAG_LEN};

/// An AES-GCM key (AES-128, -192 or -256 by key length) on one backend.
///
/// Made by `espgcm_gcm_new` or `espgcm_gcm_new_with_backend`, released by
/// `espgcm_gcm_free`. Encryption and decryption may run on many threads at
/// once with one key; `espgcm_gcm_set_verify` needs the key alone.
pub struct espgcm_gcm(Gcm);

/// Store a new key in `*out`.
fn hand_out(gcm: Result<Gcm, espgcm::Error>, out: *mut *mut espgcm_gcm) -> Result<(), c_int> {
    let gcm = gcm.map_err(gcm_code)?;
    // SAFETY: out was checked writable by the caller's put of NULL; a
    // pointer from Box::into_raw is what espgcm_gcm_free takes back.
    unsafe { put(out, Box::into_raw(Box::new(espgcm_gcm(gcm)))) }
}

/// Set up an AES-GCM key on the best backend (`espgcm_backend_best`).
///
/// `key_len` must be 16, 24 or 32 (`ESPGCM_ERR_KEY_LENGTH` otherwise).
/// `*out` receives the key, or NULL on error; release it with
/// `espgcm_gcm_free`. The key bytes are copied (and wiped when the key is
/// freed).
///
/// # Safety
/// `key` must point to `key_len` readable bytes; `out` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_gcm_new(key: *const u8, key_len: usize, out: *mut *mut espgcm_gcm) -> c_int {
    guard(|| {
        // SAFETY: out is writable (this function's contract).
        unsafe { put(out, null_mut()) }?;
        // SAFETY: key holds key_len readable bytes (this function's contract).
        let key = unsafe { bytes(key, key_len) }?;
        hand_out(Gcm::new(key), out)
    })
}

/// Set up an AES-GCM key on a given backend (one of `ESPGCM_BACKEND_*`):
/// `ESPGCM_ERR_UNSUPPORTED_BACKEND` if this CPU lacks it,
/// `ESPGCM_ERR_INVALID_ARGUMENT` for an unknown constant. Otherwise as
/// `espgcm_gcm_new`.
///
/// # Safety
/// As for `espgcm_gcm_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_gcm_new_with_backend(
    key: *const u8,
    key_len: usize,
    backend: espgcm_backend,
    out: *mut *mut espgcm_gcm,
) -> c_int {
    guard(|| {
        // SAFETY: out is writable (this function's contract).
        unsafe { put(out, null_mut()) }?;
        // SAFETY: key holds key_len readable bytes (this function's contract).
        let key = unsafe { bytes(key, key_len) }?;
        hand_out(Gcm::with_backend(key, backend_from(backend)?), out)
    })
}

/// Release a key made by `espgcm_gcm_new` (its key material is wiped).
/// NULL is fine.
///
/// # Safety
/// `g` must be NULL or a key from `espgcm_gcm_new*` not yet freed, and no
/// other thread may be using it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_gcm_free(g: *mut espgcm_gcm) {
    if g.is_null() {
        return;
    }
    let _ = guard(|| {
        // SAFETY: g came from Box::into_raw in hand_out and is freed once
        // (this function's contract).
        drop(unsafe { Box::from_raw(g) });
        Ok(())
    });
}

/// The backend the key runs on now (the one it was set up on, or the one it
/// moved to after verify mode quarantined that one).
///
/// # Safety
/// `g` must be a live key; `out` must be writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_gcm_backend(g: *const espgcm_gcm, out: *mut espgcm_backend) -> c_int {
    guard(|| {
        // SAFETY: g is a live key (this function's contract).
        let g = unsafe { object(g) }?;
        // SAFETY: out is writable (this function's contract).
        unsafe { put(out, backend_id(g.0.backend())) }
    })
}

/// Choose how much of this key's SIMD output is cross-checked against the
/// constant-time scalar backend: `ESPGCM_VERIFY_OFF`, `ESPGCM_VERIFY_FULL`,
/// or `ESPGCM_VERIFY_SAMPLE` with about one message in `one_in` checked
/// (`one_in` is ignored otherwise). On a mismatch the call still returns the
/// correct result, the fault shows in `espgcm_health_get`, and the backend
/// is quarantined for the whole process.
///
/// # Safety
/// `g` must be a live key that no other thread is using during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_gcm_set_verify(g: *mut espgcm_gcm, policy: espgcm_verify, one_in: u32) -> c_int {
    guard(|| {
        // SAFETY: g is a live key used by nobody else (this function's contract).
        let g = unsafe { object_mut(g) }?;
        g.0.set_verify(verify_from(policy, one_in)?);
        Ok(())
    })
}

/// The checks of a call that need no memory: NULL buffers, and lengths past
/// what SP 800-38D allows (refused before a slice of that length is made,
/// since a caller who passes one cannot have that much memory behind it).
fn check_call(
    iv: *const u8,
    iv_len: usize,
    aad: *const u8,
    aad_len: usize,
    buf: *mut u8,
    len: usize,
) -> Result<(), c_int> {
    if iv.is_null() || (aad.is_null() && aad_len > 0) || (buf.is_null() && len > 0) {
        return Err(ESPGCM_ERR_NULL_PARAMETER);
    }
    if iv_len == 0 || iv_len as u64 > MAX_IV_LEN {
        return Err(ESPGCM_ERR_IV_LENGTH);
    }
    if len as u64 > MAX_MESSAGE_LEN || aad_len as u64 > MAX_AAD_LEN {
        return Err(ESPGCM_ERR_TOO_LONG);
    }
    Ok(())
}

/// Encrypt `buf` (`len` bytes) in place and write the 16-byte tag to `tag`.
///
/// Any IV of at least one byte is accepted (12 bytes is the fast path);
/// never reuse an IV under one key. `aad` may be NULL when `aad_len` is 0,
/// `buf` when `len` is 0. `buf` may not overlap `iv`, `aad` or `tag`
/// (`ESPGCM_ERR_OVERLAP`). On error `buf` is unchanged.
///
/// # Safety
/// `g` must be a live key; each pointer must be valid for its length
/// (`tag` for 16 writable bytes) during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_gcm_encrypt(
    g: *const espgcm_gcm,
    iv: *const u8,
    iv_len: usize,
    aad: *const u8,
    aad_len: usize,
    buf: *mut u8,
    len: usize,
    tag: *mut u8,
) -> c_int {
    guard(|| {
        // SAFETY: g is a live key (this function's contract).
        let g = unsafe { object(g) }?;
        if tag.is_null() {
            return Err(ESPGCM_ERR_NULL_PARAMETER);
        }
        check_call(iv, iv_len, aad, aad_len, buf, len)?;
        // SAFETY: each pointer is valid for its length (this function's
        // contract); overlaps are refused below before anything is written.
        let (iv, aad, buf, tag) =
            unsafe { (bytes(iv, iv_len)?, bytes(aad, aad_len)?, bytes_mut(buf, len)?, bytes_mut(tag, 16)?) };
        check_disjoint(&mut [Span::read(iv), Span::read(aad), Span::written(buf), Span::written(tag)])?;
        tag.copy_from_slice(&g.0.encrypt(iv, aad, buf).map_err(gcm_code)?);
        Ok(())
    })
}

/// Decrypt `buf` (`len` bytes) in place if `tag` (`tag_len` bytes, 4 to 16,
/// a prefix of the full tag) matches; the comparison takes the same time
/// wherever they differ.
///
/// `ESPGCM_ERR_AUTH` if it does not match: `buf` is then all zeros, so
/// unverified plaintext is never released. `ESPGCM_ERR_TAG_LENGTH`,
/// `ESPGCM_ERR_IV_LENGTH`, `ESPGCM_ERR_TOO_LONG`, `ESPGCM_ERR_OVERLAP` or a
/// pointer error leave `buf` unchanged.
///
/// # Safety
/// `g` must be a live key; each pointer must be valid for its length during
/// the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_gcm_decrypt(
    g: *const espgcm_gcm,
    iv: *const u8,
    iv_len: usize,
    aad: *const u8,
    aad_len: usize,
    buf: *mut u8,
    len: usize,
    tag: *const u8,
    tag_len: usize,
) -> c_int {
    guard(|| {
        // SAFETY: g is a live key (this function's contract).
        let g = unsafe { object(g) }?;
        if tag.is_null() {
            return Err(ESPGCM_ERR_NULL_PARAMETER);
        }
        if !(MIN_TAG_LEN..=16).contains(&tag_len) {
            return Err(ESPGCM_ERR_TAG_LENGTH);
        }
        check_call(iv, iv_len, aad, aad_len, buf, len)?;
        // SAFETY: each pointer is valid for its length (this function's
        // contract); overlaps are refused below before anything is written.
        let (iv, aad, buf, tag) =
            unsafe { (bytes(iv, iv_len)?, bytes(aad, aad_len)?, bytes_mut(buf, len)?, bytes(tag, tag_len)?) };
        check_disjoint(&mut [Span::read(iv), Span::read(aad), Span::written(buf), Span::read(tag)])?;
        g.0.decrypt(iv, aad, buf, tag).map_err(gcm_code)
    })
}

/// One message of a batch: in place, with its own IV, AAD, tag and result.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct espgcm_job {
    /// The 96-bit IV. Never reuse one under a key.
    pub iv: [u8; 12],
    /// Additional authenticated data (may be NULL when `aad_len` is 0).
    pub aad: *const u8,
    /// Length of `aad` in bytes.
    pub aad_len: usize,
    /// The message, en- or decrypted in place (may be NULL when `data_len`
    /// is 0); zeroed when its decryption fails authentication.
    pub data: *mut u8,
    /// Length of `data` in bytes.
    pub data_len: usize,
    /// Written by `espgcm_gcm_encrypt_batch` (16 bytes); read by
    /// `espgcm_gcm_decrypt_batch` (its first `tag_len` bytes).
    pub tag: [u8; 16],
    /// How many bytes of `tag` decryption compares: 4 to 16.
    pub tag_len: usize,
    /// This job's result code, set by the batch call.
    pub result: c_int,
}

/// Run a batch: check every job, then hand the good ones to the library.
fn run_batch(g: *const espgcm_gcm, jobs: *mut espgcm_job, n: usize, decrypt: bool) -> Result<(), c_int> {
    // SAFETY: g is a live key (the exported functions' contract).
    let g = unsafe { object(g) }?;
    // SAFETY: jobs points to n jobs the caller lends us for the call (the
    // exported functions' contract).
    let jobs = unsafe { array_mut(jobs, n) }?;
    // Each job's own pointers first: a job with a NULL buffer gets its code
    // and stays out of the batch.
    let mut spans = Vec::with_capacity(2 * jobs.len() + 1);
    for job in jobs.iter_mut() {
        job.result = ESPGCM_OK;
        if job.data_len as u64 > MAX_MESSAGE_LEN || job.aad_len as u64 > MAX_AAD_LEN {
            job.result = ESPGCM_ERR_TOO_LONG;
            continue;
        }
        // SAFETY: each job's aad and data are valid for their lengths (the
        // exported functions' contract); the slices live only in this loop.
        match unsafe { (bytes(job.aad, job.aad_len), bytes_mut(job.data, job.data_len)) } {
            (Ok(aad), Ok(data)) => spans.extend([Span::read(aad), Span::written(data)]),
            (Err(e), _) | (_, Err(e)) => job.result = e,
        }
    }
    // Then the whole batch: no job's data may overlap anything else, or two
    // jobs would write the same bytes.
    // The job array itself is written (tags and results).
    spans.push(Span::raw(jobs.as_ptr().cast(), size_of_val(jobs), true));
    check_disjoint(&mut spans).inspect_err(|&code| {
        // Nothing is done: every job says so.
        for job in jobs.iter_mut() {
            job.result = code;
        }
    })?;
    let mut lent: Vec<Job<'_>> = Vec::with_capacity(jobs.len());
    for job in jobs.iter().filter(|j| j.result == ESPGCM_OK) {
        // SAFETY: checked above (valid for their lengths, data disjoint from
        // every other buffer of the batch); Job borrows them for this call.
        let (aad, data) = unsafe { (bytes(job.aad, job.aad_len)?, bytes_mut(job.data, job.data_len)?) };
        let mut j = Job::new(job.iv, aad, data);
        j.tag = job.tag;
        j.tag_len = job.tag_len;
        lent.push(j);
    }
    if decrypt {
        g.0.decrypt_batch(&mut lent);
    } else {
        g.0.encrypt_batch(&mut lent);
    }
    let mut first_error = None;
    let mut done = lent.into_iter();
    for job in jobs.iter_mut() {
        if job.result == ESPGCM_OK {
            let Some(j) = done.next() else { return Err(ESPGCM_ERR_INVALID_ARGUMENT) };
            job.tag = j.tag;
            job.result = j.result.map_or_else(gcm_code, |()| ESPGCM_OK);
        }
        if job.result != ESPGCM_OK {
            first_error.get_or_insert(job.result);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Encrypt `n` jobs in place, writing each one's tag and result. Each job is
/// judged alone (one with a bad length or a NULL buffer gets its code, the
/// others are encrypted); the results are those `espgcm_gcm_encrypt` would
/// give job by job, faster for many short messages.
///
/// Returns `ESPGCM_OK` if every job succeeded, else the first failing job's
/// code. `ESPGCM_ERR_OVERLAP` if a job's data overlaps another job's data
/// or AAD (or the job array): nothing is done and every job's `result` says
/// so.
///
/// # Safety
/// `g` must be a live key; `jobs` must point to `n` initialised jobs (or be
/// NULL with `n` 0), each job's pointers valid for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_gcm_encrypt_batch(g: *const espgcm_gcm, jobs: *mut espgcm_job, n: usize) -> c_int {
    guard(|| run_batch(g, jobs, n, false))
}

/// Decrypt `n` jobs in place where their tags (`tag[..tag_len]`) match,
/// setting each one's result: a job whose tag does not match gets
/// `ESPGCM_ERR_AUTH` and its data is zeroed; the other jobs are unaffected.
///
/// Returns `ESPGCM_OK` if every job succeeded, else the first failing job's
/// code (as `espgcm_gcm_encrypt_batch`).
///
/// # Safety
/// As for `espgcm_gcm_encrypt_batch`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn espgcm_gcm_decrypt_batch(g: *const espgcm_gcm, jobs: *mut espgcm_job, n: usize) -> c_int {
    guard(|| run_batch(g, jobs, n, true))
}
