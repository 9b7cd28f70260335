//! TLS record protection, espgcm's provider against rustls's aws-lc-rs
//! provider: nanoseconds per record and GB/s of payload for encryption and
//! decryption of 1 KiB and 16 KiB application-data records, TLS 1.3 and
//! TLS 1.2, AES-128 and AES-256. One run; the two providers alternate batch
//! by batch and each keeps its best batch (testkit's `race`), so the ratio
//! is taken under the same conditions.
//!
//! `cargo bench -p espgcm-rustls --bench records`
//!
//! Decryption works in place, so each decrypted record is first copied into
//! the receive buffer (as rustls copies it from the socket); the copy alone
//! is timed on its own line, to be read beside the decrypt figures.

use espgcm_testkit::timing::race;
use rustls::crypto::aws_lc_rs;
use rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, Iv, MessageDecrypter, MessageEncrypter, OutboundChunks, OutboundPlainMessage,
};
use rustls::{CipherSuite, ContentType, ProtocolVersion, SupportedCipherSuite, Tls13CipherSuite};
use std::hint::black_box;

/// A suite of each provider by name.
fn find(list: &[SupportedCipherSuite], name: CipherSuite) -> SupportedCipherSuite {
    *list.iter().find(|s| s.suite() == name).expect("both providers have the suite")
}

/// A traffic key and IV of the right length for `aead`, derived from a
/// fixed secret through rustls's TLS 1.3 key schedule (the same bytes for
/// both providers).
fn traffic_key(tls13: &Tls13CipherSuite) -> (AeadKey, Iv) {
    let expander = tls13.hkdf_provider.extract_from_secret(None, &[0x5c; 48]);
    (
        rustls::internal::derive_traffic_key(expander.as_ref(), tls13.aead_alg),
        rustls::internal::derive_traffic_iv(expander.as_ref()),
    )
}

/// An encrypter and decrypter for one suite of one provider, with the key
/// (and for TLS 1.2 the IV and explicit-nonce bytes) of `key_suite` length.
fn cipher(
    suite: SupportedCipherSuite,
    key_suite: &Tls13CipherSuite,
) -> (Box<dyn MessageEncrypter>, Box<dyn MessageDecrypter>) {
    let (key, iv) = traffic_key(key_suite);
    let (key2, _) = traffic_key(key_suite);
    match suite {
        SupportedCipherSuite::Tls13(s) => {
            let (_, iv2) = traffic_key(key_suite);
            (s.aead_alg.encrypter(key, iv), s.aead_alg.decrypter(key2, iv2))
        }
        SupportedCipherSuite::Tls12(s) => {
            let iv = iv.as_ref();
            (s.aead_alg.encrypter(key, &iv[..4], &iv[4..]), s.aead_alg.decrypter(key2, &iv[..4]))
        }
    }
}

fn record(enc: &mut dyn MessageEncrypter, data: &[u8], seq: u64) -> Vec<u8> {
    let msg = OutboundPlainMessage {
        typ: ContentType::ApplicationData,
        version: ProtocolVersion::TLSv1_2,
        payload: OutboundChunks::Single(data),
    };
    enc.encrypt(msg, seq).expect("encrypts").encode()
}

fn main() {
    let ours = espgcm_rustls::ALL_CIPHER_SUITES;
    let theirs = aws_lc_rs::default_provider().cipher_suites;
    let key_suite = |name| match find(&theirs, name) {
        SupportedCipherSuite::Tls13(s) => s,
        SupportedCipherSuite::Tls12(_) => unreachable!("a TLS 1.3 suite"),
    };
    let cases = [
        ("TLS 1.3 AES-128-GCM", CipherSuite::TLS13_AES_128_GCM_SHA256, CipherSuite::TLS13_AES_128_GCM_SHA256),
        ("TLS 1.3 AES-256-GCM", CipherSuite::TLS13_AES_256_GCM_SHA384, CipherSuite::TLS13_AES_256_GCM_SHA384),
        (
            "TLS 1.2 AES-128-GCM",
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            CipherSuite::TLS13_AES_128_GCM_SHA256,
        ),
        (
            "TLS 1.2 AES-256-GCM",
            CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            CipherSuite::TLS13_AES_256_GCM_SHA384,
        ),
    ];
    println!("espgcm backend: {}", espgcm::Backend::best());
    println!(
        "{:<22} {:>6} {:>8}  {:>10} {:>8}  {:>10} {:>8}  {:>6}",
        "suite", "record", "op", "espgcm ns", "GB/s", "aws-lc ns", "GB/s", "ratio"
    );
    for (label, suite, key_from) in cases {
        let key_suite = key_suite(key_from);
        let (mut our_enc, mut our_dec) = cipher(find(ours, suite), key_suite);
        let (mut their_enc, mut their_dec) = cipher(find(&theirs, suite), key_suite);
        // aws-lc's TLS 1.3 record keys take the first record's nonce as
        // sequence number 0 and insist that sequence numbers only grow (a
        // nonce-reuse guard), so both sides count from 0 across both sizes.
        let (mut our_seq, mut their_seq) = (0u64, 0u64);
        record(our_enc.as_mut(), b"first", 0);
        record(their_enc.as_mut(), b"first", 0);
        for size in [1024usize, 16384] {
            let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
            // Both providers must produce the same record, and open each other's.
            our_seq += 1;
            their_seq += 1;
            let seq0 = our_seq;
            let ours_wire = record(our_enc.as_mut(), &data, seq0);
            assert_eq!(ours_wire, record(their_enc.as_mut(), &data, seq0), "{label}: records differ");
            let (typ, version) = (ContentType::ApplicationData, ProtocolVersion::TLSv1_2);
            let body = ours_wire[5..].to_vec();
            let mut buf = body.clone();
            let opened = their_dec.decrypt(InboundOpaqueMessage::new(typ, version, &mut buf), seq0).expect("opens");
            assert_eq!(opened.payload, &data[..], "{label}");

            let (rounds, iters) = if size > 4096 { (25, 200) } else { (25, 2000) };
            let (a, b) = race(
                rounds,
                iters,
                || {
                    our_seq += 1;
                    black_box(record(our_enc.as_mut(), black_box(&data), our_seq));
                },
                || {
                    their_seq += 1;
                    black_box(record(their_enc.as_mut(), black_box(&data), their_seq));
                },
            );
            report(label, size, "encrypt", a, b);
            let (mut our_buf, mut their_buf) = (body.clone(), body.clone());
            let (a, b) = race(
                rounds,
                iters,
                || {
                    our_buf.copy_from_slice(&body);
                    let m = InboundOpaqueMessage::new(typ, version, &mut our_buf);
                    black_box(our_dec.decrypt(m, seq0).expect("opens").payload.len());
                },
                || {
                    their_buf.copy_from_slice(&body);
                    let m = InboundOpaqueMessage::new(typ, version, &mut their_buf);
                    black_box(their_dec.decrypt(m, seq0).expect("opens").payload.len());
                },
            );
            report(label, size, "decrypt", a, b);
        }
    }
    for size in [1024usize, 16384] {
        let src = vec![1u8; size + 24];
        let mut dst = vec![0u8; size + 24];
        let (copy, _) = race(25, 2000, || dst.copy_from_slice(black_box(&src)), || {});
        println!(
            "{:<22} {:>6} {:>8}  {:>10.1}  (the copy inside each decrypt above)",
            "record copy", size, "memcpy", copy
        );
    }
}

fn report(label: &str, size: usize, op: &str, ours_ns: f64, theirs_ns: f64) {
    let gbps = |ns: f64| size as f64 / ns;
    println!(
        "{label:<22} {size:>6} {op:>8}  {ours_ns:>10.1} {:>8.2}  {theirs_ns:>10.1} {:>8.2}  {:>5.2}x",
        gbps(ours_ns),
        gbps(theirs_ns),
        theirs_ns / ours_ns
    );
}
