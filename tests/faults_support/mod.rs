//! Shared by the fault-injection tests (`tests/faults_*.rs`): the SIMD
//! backends to test, an independent reference (RustCrypto `aes-gcm`), a
//! deterministic generator, and a lock that keeps the tests of one binary from
//! sharing the process-wide quarantine and counters at the same time.

#![allow(dead_code)]

use aes::{Aes128, Aes192, Aes256};
use aes_gcm::AesGcm;
use aes_gcm::aead::array::{Array, ArraySize};
use aes_gcm::aead::consts::{U8, U12, U16, U60};
use aes_gcm::aead::{AeadInOut, KeyInit};
use espgcm::Backend;
use std::sync::{Mutex, MutexGuard};

/// The SIMD backends this CPU and build support. Every other SIMD backend
/// is reported on stderr as skipped, with the reason, never silently.
pub fn simd_backends() -> Vec<Backend> {
    let mut list = Vec::new();
    for b in Backend::ALL.into_iter().filter(|b| *b != Backend::Scalar) {
        match b.unsupported_reason() {
            None => list.push(b),
            Some(why) => eprintln!("skipped {}: {why}", b.name()),
        }
    }
    if list.is_empty() {
        eprintln!("skipped: no SIMD backend is supported here, so there is nothing to inject faults into");
    }
    list
}

/// One test at a time per binary: quarantine and the counters are global.
/// (A test that failed poisons the lock; the others still run.)
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    espgcm::fault::clear();
    espgcm::fault::reset_health();
    guard
}

/// SplitMix64: reproducible test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// IV lengths the reference is instantiated for.
pub const IV_LENS: [usize; 4] = [12, 12, 8, 60];

/// RustCrypto aes-gcm for a key of 16, 24 or 32 bytes and an IV of one of
/// [`IV_LENS`]: with `tag` `None`, encrypt `buf` in place and return the tag;
/// with `Some(tag)`, decrypt in place and return `Some(tag)` if it verified.
pub fn reference(key: &[u8], iv: &[u8], aad: &[u8], buf: &mut [u8], tag: Option<&[u8; 16]>) -> Option<[u8; 16]> {
    fn run<C: KeyInit + AeadInOut<TagSize = U16>>(
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: Option<&[u8; 16]>,
    ) -> Option<[u8; 16]> {
        let cipher = C::new_from_slice(key).expect("reference key length");
        let nonce = Array::try_from(iv).expect("reference nonce length");
        match tag {
            None => Some(cipher.encrypt_inout_detached(&nonce, aad, buf.into()).expect("reference encrypt").into()),
            Some(t) => cipher.decrypt_inout_detached(&nonce, aad, buf.into(), &Array::from(*t)).ok().map(|()| *t),
        }
    }
    fn by_key<N: ArraySize>(
        key: &[u8],
        iv: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: Option<&[u8; 16]>,
    ) -> Option<[u8; 16]> {
        match key.len() {
            16 => run::<AesGcm<Aes128, N>>(key, iv, aad, buf, tag),
            24 => run::<AesGcm<Aes192, N>>(key, iv, aad, buf, tag),
            32 => run::<AesGcm<Aes256, N>>(key, iv, aad, buf, tag),
            n => panic!("no AES variant for a {n}-byte key"),
        }
    }
    match iv.len() {
        8 => by_key::<U8>(key, iv, aad, buf, tag),
        12 => by_key::<U12>(key, iv, aad, buf, tag),
        60 => by_key::<U60>(key, iv, aad, buf, tag),
        n => panic!("the reference is not instantiated for {n}-byte IVs"),
    }
}
