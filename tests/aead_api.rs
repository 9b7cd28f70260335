//! The `aead` trait surface of `Aes128Gcm`/`Aes192Gcm`/`Aes256Gcm`, their
//! interoperation with RustCrypto's `aes-gcm` types, and the error contract of
//! `Gcm`.

use aes_gcm::AesGcm;
use espgcm::aead::consts::{U12, U16};
use espgcm::aead::inout::InOutBuf;
use espgcm::aead::{Aead, AeadCore, AeadInOut, KeyInit, Nonce, Payload, Tag};
use espgcm::{Backend, Error, Gcm};
use espgcm_testkit::backends::supported as supported_backends;

type RefAes128Gcm = aes_gcm::Aes128Gcm;
type RefAes192Gcm = AesGcm<aes::Aes192, U12>;
type RefAes256Gcm = aes_gcm::Aes256Gcm;

/// A 12-byte-nonce, 16-byte-tag AEAD made from a key slice.
trait Cipher: KeyInit + AeadInOut + AeadCore<NonceSize = U12, TagSize = U16> {}
impl<T: KeyInit + AeadInOut + AeadCore<NonceSize = U12, TagSize = U16>> Cipher for T {}

/// Deterministic, non-repeating test bytes.
fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed).rotate_left(i as u32 % 7)).collect()
}

fn nonce(seed: u8) -> Nonce<espgcm::Aes128Gcm> {
    let n: [u8; 12] = bytes(seed, 12).try_into().unwrap();
    n.into()
}

const MSG_LENS: [usize; 9] = [0, 1, 15, 16, 17, 64, 129, 1000, 4097];

// ---------------------------------------------------------------------------
// KeyInit
// ---------------------------------------------------------------------------

#[test]
fn key_init_new_from_key_array_matches_aes_gcm_for_all_key_sizes() {
    let k16: [u8; 16] = bytes(1, 16).try_into().unwrap();
    let k24: [u8; 24] = bytes(2, 24).try_into().unwrap();
    let k32: [u8; 32] = bytes(3, 32).try_into().unwrap();
    let n = nonce(4);
    let payload = || Payload { msg: b"interoperable payload", aad: b"header" };

    let ours = espgcm::Aes128Gcm::new(&k16.into()).encrypt(&n, payload()).unwrap();
    let theirs = RefAes128Gcm::new(&k16.into()).encrypt(&n, payload()).unwrap();
    assert_eq!(ours, theirs, "AES-128");

    let ours = espgcm::Aes192Gcm::new(&k24.into()).encrypt(&n, payload()).unwrap();
    let theirs = RefAes192Gcm::new(&k24.into()).encrypt(&n, payload()).unwrap();
    assert_eq!(ours, theirs, "AES-192");

    let ours = espgcm::Aes256Gcm::new(&k32.into()).encrypt(&n, payload()).unwrap();
    let theirs = RefAes256Gcm::new(&k32.into()).encrypt(&n, payload()).unwrap();
    assert_eq!(ours, theirs, "AES-256");

    // KeyInit::new puts the key on the best backend.
    assert_eq!(espgcm::Aes128Gcm::new(&k16.into()).backend(), Backend::best());
    assert_eq!(espgcm::Aes256Gcm::new(&k32.into()).as_gcm().key_len(), 32);
}

fn check_new_from_slice<C: Cipher>(name: &str, good_len: usize) {
    for len in [0usize, 1, 12, 15, 16, 17, 23, 24, 25, 31, 32, 33, 48, 64] {
        let key = bytes(7, len);
        let result = C::new_from_slice(&key);
        if len == good_len {
            let cipher = result.unwrap_or_else(|_| panic!("{name}: a {len}-byte key was refused"));
            let sealed = cipher.encrypt(&nonce(9), &b"x"[..]).unwrap();
            assert_eq!(sealed.len(), 1 + 16);
        } else {
            assert!(result.is_err(), "{name}: new_from_slice accepted a {len}-byte key");
        }
    }
}

#[test]
fn new_from_slice_refuses_every_key_length_but_the_types_own() {
    check_new_from_slice::<espgcm::Aes128Gcm>("Aes128Gcm", 16);
    check_new_from_slice::<espgcm::Aes192Gcm>("Aes192Gcm", 24);
    check_new_from_slice::<espgcm::Aes256Gcm>("Aes256Gcm", 32);
}

#[test]
fn new_from_slice_gives_the_same_cipher_as_new() {
    let key: [u8; 24] = bytes(11, 24).try_into().unwrap();
    let a = espgcm::Aes192Gcm::new(&key.into());
    let b = espgcm::Aes192Gcm::new_from_slice(&key).unwrap();
    let n = nonce(12);
    assert_eq!(a.encrypt(&n, &b"same key"[..]).unwrap(), b.encrypt(&n, &b"same key"[..]).unwrap());
}

// ---------------------------------------------------------------------------
// Aead with Payload, both directions against aes-gcm
// ---------------------------------------------------------------------------

/// `Seal` seals, `Open` opens, for every message length and a few AAD lengths.
fn seal_then_open<Seal: Cipher, Open: Cipher>(what: &str, key: &[u8]) {
    let sealer = Seal::new_from_slice(key).unwrap();
    let opener = Open::new_from_slice(key).unwrap();
    for (i, len) in MSG_LENS.into_iter().enumerate() {
        for aad_len in [0usize, 1, 13, 40] {
            let n = nonce(i as u8 ^ aad_len as u8);
            let msg = bytes(len as u8, len);
            let aad = bytes(0x80 | aad_len as u8, aad_len);
            let sealed = sealer.encrypt(&n, Payload { msg: &msg, aad: &aad }).unwrap();
            assert_eq!(sealed.len(), len + 16, "{what}: ciphertext || tag");
            let opened = opener
                .decrypt(&n, Payload { msg: &sealed, aad: &aad })
                .unwrap_or_else(|_| panic!("{what}: refused, msg {len} B, aad {aad_len} B"));
            assert_eq!(opened, msg, "{what}: msg {len} B, aad {aad_len} B");

            // And the opener refuses it with the wrong AAD.
            let mut wrong = aad.clone();
            wrong.push(0);
            assert!(opener.decrypt(&n, Payload { msg: &sealed, aad: &wrong }).is_err(), "{what}: wrong AAD accepted");
        }
    }
}

#[test]
fn espgcm_seals_and_aes_gcm_opens_for_all_key_sizes() {
    seal_then_open::<espgcm::Aes128Gcm, RefAes128Gcm>("AES-128 espgcm -> aes-gcm", &bytes(21, 16));
    seal_then_open::<espgcm::Aes192Gcm, RefAes192Gcm>("AES-192 espgcm -> aes-gcm", &bytes(22, 24));
    seal_then_open::<espgcm::Aes256Gcm, RefAes256Gcm>("AES-256 espgcm -> aes-gcm", &bytes(23, 32));
}

#[test]
fn aes_gcm_seals_and_espgcm_opens_for_all_key_sizes() {
    seal_then_open::<RefAes128Gcm, espgcm::Aes128Gcm>("AES-128 aes-gcm -> espgcm", &bytes(31, 16));
    seal_then_open::<RefAes192Gcm, espgcm::Aes192Gcm>("AES-192 aes-gcm -> espgcm", &bytes(32, 24));
    seal_then_open::<RefAes256Gcm, espgcm::Aes256Gcm>("AES-256 aes-gcm -> espgcm", &bytes(33, 32));
}

#[test]
fn aead_decrypt_refuses_tampered_or_too_short_ciphertext() {
    let cipher = espgcm::Aes256Gcm::new_from_slice(&bytes(41, 32)).unwrap();
    let n = nonce(42);
    let sealed = cipher.encrypt(&n, Payload { msg: b"0123456789", aad: b"a" }).unwrap();
    for i in [0, 9, 10, 25] {
        let mut bad = sealed.clone();
        bad[i] ^= 0x40;
        assert!(cipher.decrypt(&n, Payload { msg: &bad, aad: b"a" }).is_err(), "byte {i} flipped");
    }
    assert!(cipher.decrypt(&nonce(43), Payload { msg: &sealed, aad: b"a" }).is_err(), "wrong nonce");
    // Shorter than a tag: nothing to verify against.
    for len in [0usize, 1, 15] {
        assert!(cipher.decrypt(&n, &sealed[..len]).is_err(), "{len}-byte ciphertext accepted");
    }
    assert_eq!(cipher.decrypt(&n, Payload { msg: &sealed, aad: b"a" }).unwrap(), b"0123456789");
}

#[test]
fn encrypt_in_place_and_decrypt_in_place_on_a_vec_interoperate_with_aes_gcm() {
    let key = bytes(51, 16);
    let ours = espgcm::Aes128Gcm::new_from_slice(&key).unwrap();
    let theirs = RefAes128Gcm::new_from_slice(&key).unwrap();
    let n = nonce(52);
    let msg = bytes(53, 77);

    let mut buf = msg.clone();
    ours.encrypt_in_place(&n, b"aad", &mut buf).unwrap();
    assert_eq!(buf.len(), 77 + 16);
    let mut expected = msg.clone();
    theirs.encrypt_in_place(&n, b"aad", &mut expected).unwrap();
    assert_eq!(buf, expected);

    theirs.decrypt_in_place(&n, b"aad", &mut buf).unwrap();
    assert_eq!(buf, msg);
    ours.decrypt_in_place(&n, b"aad", &mut expected).unwrap();
    assert_eq!(expected, msg);
}

// ---------------------------------------------------------------------------
// AeadInOut, in place and out of place
// ---------------------------------------------------------------------------

/// Detached in-place and out-of-place encryption agree with each other and
/// with aes-gcm; both kinds of decryption restore the message.
fn check_inout<Ours: Cipher, Theirs: Cipher>(what: &str, ours: &Ours, theirs: &Theirs) {
    for (i, len) in MSG_LENS.into_iter().enumerate() {
        let n = nonce(0x60 ^ i as u8);
        let aad = bytes(i as u8, i * 3);
        let msg = bytes(0x70 ^ len as u8, len);
        let ctx = format!("{what}, msg {len} B");

        let mut expected = msg.clone();
        let expected_tag: Tag<Theirs> =
            theirs.encrypt_inout_detached(&n, &aad, InOutBuf::from(&mut expected[..])).unwrap();

        // In place.
        let mut buf = msg.clone();
        let tag = ours.encrypt_inout_detached(&n, &aad, InOutBuf::from(&mut buf[..])).unwrap();
        assert_eq!(buf, expected, "in-place ciphertext, {ctx}");
        assert_eq!(tag.as_slice(), expected_tag.as_slice(), "in-place tag, {ctx}");

        // Out of place: the input is left alone, the output gets the ciphertext.
        let mut out = vec![0xEEu8; len];
        let tag = ours.encrypt_inout_detached(&n, &aad, InOutBuf::new(&msg, &mut out).unwrap()).unwrap();
        assert_eq!(out, expected, "out-of-place ciphertext, {ctx}");
        assert_eq!(tag.as_slice(), expected_tag.as_slice(), "out-of-place tag, {ctx}");

        // Decrypt in place.
        let tag: Tag<Ours> = expected_tag.as_slice().try_into().unwrap();
        let mut buf = expected.clone();
        ours.decrypt_inout_detached(&n, &aad, InOutBuf::from(&mut buf[..]), &tag).unwrap();
        assert_eq!(buf, msg, "in-place decrypt, {ctx}");

        // Decrypt out of place.
        let mut out = vec![0xEEu8; len];
        ours.decrypt_inout_detached(&n, &aad, InOutBuf::new(&expected, &mut out).unwrap(), &tag).unwrap();
        assert_eq!(out, msg, "out-of-place decrypt, {ctx}");
    }
}

#[test]
fn inout_detached_in_place_and_out_of_place_match_aes_gcm_on_every_backend() {
    for backend in supported_backends() {
        let k16 = bytes(61, 16);
        let k24 = bytes(62, 24);
        let k32 = bytes(63, 32);
        let what = format!("AES-128 on {backend}");
        let ours = espgcm::Aes128Gcm::with_backend(&k16, backend).unwrap();
        assert_eq!(ours.backend(), backend);
        check_inout(&what, &ours, &RefAes128Gcm::new_from_slice(&k16).unwrap());
        let what = format!("AES-192 on {backend}");
        let ours = espgcm::Aes192Gcm::with_backend(&k24, backend).unwrap();
        check_inout(&what, &ours, &RefAes192Gcm::new_from_slice(&k24).unwrap());
        let what = format!("AES-256 on {backend}");
        let ours = espgcm::Aes256Gcm::with_backend(&k32, backend).unwrap();
        check_inout(&what, &ours, &RefAes256Gcm::new_from_slice(&k32).unwrap());
    }
}

#[test]
fn failed_decrypt_zeroes_the_output_buffer_in_place_and_out_of_place() {
    let cipher = espgcm::Aes128Gcm::new_from_slice(&bytes(71, 16)).unwrap();
    let n = nonce(72);
    let msg = bytes(73, 100);
    let mut ct = msg.clone();
    let tag = cipher.encrypt_inout_detached(&n, b"hdr", InOutBuf::from(&mut ct[..])).unwrap();
    let mut bad_tag = tag;
    bad_tag[15] ^= 0x01;

    // Out of place: the output is zeroed, the input (ciphertext) untouched.
    let mut out = vec![0xEEu8; ct.len()];
    let result = cipher.decrypt_inout_detached(&n, b"hdr", InOutBuf::new(&ct, &mut out).unwrap(), &bad_tag);
    assert!(result.is_err());
    assert!(out.iter().all(|&b| b == 0), "output not zeroed after a failed out-of-place decrypt");
    let mut check = ct.clone();
    cipher.decrypt_inout_detached(&n, b"hdr", InOutBuf::from(&mut check[..]), &tag).unwrap();
    assert_eq!(check, msg, "the input ciphertext was modified");

    // Wrong AAD, out of place.
    let mut out = vec![0xEEu8; ct.len()];
    let result = cipher.decrypt_inout_detached(&n, b"hdR", InOutBuf::new(&ct, &mut out).unwrap(), &tag);
    assert!(result.is_err());
    assert!(out.iter().all(|&b| b == 0), "output not zeroed after a wrong-AAD out-of-place decrypt");

    // In place.
    let mut buf = ct.clone();
    assert!(cipher.decrypt_inout_detached(&n, b"hdr", InOutBuf::from(&mut buf[..]), &bad_tag).is_err());
    assert!(buf.iter().all(|&b| b == 0), "buffer not zeroed after a failed in-place decrypt");

    // decrypt_in_place on a Vec: the Vec keeps nothing readable.
    let mut sealed = ct.clone();
    sealed.extend_from_slice(&bad_tag);
    assert!(cipher.decrypt_in_place(&n, b"hdr", &mut sealed).is_err());
    assert!(sealed.iter().take(ct.len()).all(|&b| b == 0), "plaintext left in the Vec after a failed decrypt");
}

// ---------------------------------------------------------------------------
// Gcm's error contract
// ---------------------------------------------------------------------------

#[test]
fn with_backend_on_an_unsupported_backend_returns_unsupported() {
    let unsupported: Vec<Backend> = Backend::ALL.into_iter().filter(|b| !b.is_supported()).collect();
    if unsupported.is_empty() {
        eprintln!("skipped: every backend is supported on this CPU and build");
    }
    for b in unsupported {
        assert_eq!(Gcm::with_backend(&[0u8; 16], b).unwrap_err(), Error::Unsupported(b));
        assert_eq!(Gcm::with_backend(&[0u8; 24], b).unwrap_err(), Error::Unsupported(b));
        assert_eq!(espgcm::Aes128Gcm::with_backend(&[0u8; 16], b).unwrap_err(), Error::Unsupported(b));
        assert_eq!(espgcm::Aes192Gcm::with_backend(&[0u8; 24], b).unwrap_err(), Error::Unsupported(b));
        assert_eq!(espgcm::Aes256Gcm::with_backend(&[0u8; 32], b).unwrap_err(), Error::Unsupported(b));
        // A bad key length is reported first: it is wrong on every backend.
        assert_eq!(Gcm::with_backend(&[0u8; 5], b).unwrap_err(), Error::KeyLength);
    }
    // Supported backends are granted as asked.
    for b in supported_backends() {
        assert_eq!(Gcm::with_backend(&[0u8; 32], b).unwrap().backend(), b);
    }
}

#[test]
fn gcm_new_refuses_key_lengths_other_than_16_24_32_with_key_length() {
    for len in 0..=80usize {
        let key = bytes(81, len);
        let result = Gcm::new(&key);
        let scalar = Gcm::with_backend(&key, Backend::Scalar);
        if [16, 24, 32].contains(&len) {
            assert_eq!(result.unwrap().key_len(), len);
            assert_eq!(scalar.unwrap().key_len(), len);
        } else {
            assert_eq!(result.unwrap_err(), Error::KeyLength, "{len}-byte key");
            assert_eq!(scalar.unwrap_err(), Error::KeyLength, "{len}-byte key");
        }
    }
    // The fixed-size types refuse the other two sizes.
    assert_eq!(espgcm::Aes128Gcm::with_backend(&[0u8; 24], Backend::Scalar).unwrap_err(), Error::KeyLength);
    assert_eq!(espgcm::Aes192Gcm::with_backend(&[0u8; 32], Backend::Scalar).unwrap_err(), Error::KeyLength);
    assert_eq!(espgcm::Aes256Gcm::with_backend(&[0u8; 16], Backend::Scalar).unwrap_err(), Error::KeyLength);
}

#[test]
fn decrypt_with_a_3_or_17_byte_tag_returns_tag_length_and_leaves_the_buffer_untouched() {
    let gcm = Gcm::with_backend(&bytes(91, 16), Backend::Scalar).unwrap();
    let iv = bytes(92, 12);
    let mut ct = bytes(93, 40);
    let tag = gcm.encrypt(&iv, b"aad", &mut ct).unwrap();
    let mut long_tag = tag.to_vec();
    long_tag.push(0);

    for bad in [&tag[..3], &long_tag[..], &tag[..0], &tag[..1], &tag[..2], &[0u8; 32][..]] {
        let mut buf = ct.clone();
        assert_eq!(gcm.decrypt(&iv, b"aad", &mut buf, bad), Err(Error::TagLength), "{}-byte tag", bad.len());
        assert_eq!(buf, ct, "buffer changed for a {}-byte tag", bad.len());
    }
    // The boundaries themselves are accepted.
    let mut buf = ct.clone();
    assert_eq!(gcm.decrypt(&iv, b"aad", &mut buf, &tag[..4]), Ok(()));
    let mut buf = ct.clone();
    assert_eq!(gcm.decrypt(&iv, b"aad", &mut buf, &tag), Ok(()));
}

#[test]
fn empty_iv_returns_iv_length_on_encrypt_and_decrypt_and_leaves_the_buffer_untouched() {
    let gcm = Gcm::with_backend(&bytes(101, 32), Backend::Scalar).unwrap();
    let msg = bytes(102, 33);
    let mut buf = msg.clone();
    assert_eq!(gcm.encrypt(&[], b"aad", &mut buf), Err(Error::IvLength));
    assert_eq!(buf, msg);
    assert_eq!(gcm.decrypt(&[], b"aad", &mut buf, &[0u8; 16]), Err(Error::IvLength));
    assert_eq!(buf, msg);
    // A one-byte IV is the shortest accepted.
    let tag = gcm.encrypt(&[0], b"aad", &mut buf).unwrap();
    assert_eq!(gcm.decrypt(&[0], b"aad", &mut buf, &tag), Ok(()));
    assert_eq!(buf, msg);
}

#[test]
fn every_error_variant_displays_what_went_wrong_and_what_is_accepted() {
    // (variant, phrases its message must contain)
    let mut cases: Vec<(Error, Vec<String>)> = vec![
        (Error::KeyLength, vec!["key".into(), "16, 24 or 32 bytes".into()]),
        (Error::IvLength, vec!["IV".into(), "at least 1 byte".into()]),
        (Error::TooLong, vec!["2^36 - 32 bytes".into(), "2^61 - 1 bytes".into()]),
        (Error::TagLength, vec!["tag".into(), "4 to 16 bytes".into()]),
        (Error::Auth, vec!["authentication failed".into(), "zeroed".into()]),
    ];
    for b in Backend::ALL {
        let mut phrases = vec![b.name().to_string()];
        if let Some(why) = b.unsupported_reason() {
            // What would be accepted instead.
            phrases.extend([why.to_string(), "Backend::best()".to_string()]);
        }
        cases.push((Error::Unsupported(b), phrases));
    }
    for (err, phrases) in cases {
        let text = err.to_string();
        assert!(!text.trim().is_empty(), "{err:?} has an empty message");
        for phrase in phrases {
            assert!(text.contains(&phrase), "{err:?}: {text:?} does not mention {phrase:?}");
        }
        // Usable as a boxed std error.
        let boxed: Box<dyn std::error::Error> = Box::new(err);
        assert_eq!(boxed.to_string(), text);
    }
}
