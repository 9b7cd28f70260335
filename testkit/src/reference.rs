//! RustCrypto's `aes-gcm` as an outside oracle.

use aes::{Aes128, Aes192, Aes256};
use aes_gcm::AesGcm;
use aes_gcm::aead::array::{Array, ArraySize};
use aes_gcm::aead::consts::{U8, U12, U16, U60};
use aes_gcm::aead::{AeadInOut, KeyInit};

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
