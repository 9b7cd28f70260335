//! espgcm's provider against rustls's own ring and aws-lc-rs providers, in
//! memory: for every suite, TLS 1.3 and TLS 1.2, with espgcm as client and as
//! server, a handshake, data both ways (records of every size up to the
//! 16 KiB limit, and writes that span many records), key updates, a clean
//! close; and a record damaged in transit refused with a decrypt error.

use espgcm_rustls::ALL_CIPHER_SUITES;
use rustls::crypto::{CryptoProvider, aws_lc_rs, ring};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{
    CipherSuite, ClientConfig, ClientConnection, Connection, ProtocolVersion, RootCertStore, ServerConfig,
    ServerConnection, SupportedCipherSuite,
};
use std::io::{ErrorKind, Read, Write};
use std::sync::{Arc, OnceLock};

/// A CA and a "localhost" certificate it signed, for one key type.
struct Pki {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key_pkcs8: Vec<u8>,
}

fn make_pki(alg: &'static rcgen::SignatureAlgorithm) -> Pki {
    let ca_key = rcgen::KeyPair::generate_for(alg).expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "espgcm test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA certificate");
    let leaf_key = rcgen::KeyPair::generate_for(alg).expect("leaf key");
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca)
        .expect("leaf certificate");
    Pki { ca: ca.der().clone(), chain: vec![leaf.der().clone()], key_pkcs8: leaf_key.serialize_der() }
}

/// ECDSA P-256 certificates, made once per test process.
fn ecdsa() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| make_pki(&rcgen::PKCS_ECDSA_P256_SHA256))
}

/// RSA 2048 certificates, made once per test process.
fn rsa() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| make_pki(&rcgen::PKCS_RSA_SHA256))
}

/// The certificates a suite needs (TLS 1.3 suites take any; ECDSA here).
fn pki_for(suite: CipherSuite) -> &'static Pki {
    if format!("{suite:?}").contains("_RSA_") { rsa() } else { ecdsa() }
}

/// The peers espgcm is tested against.
#[derive(Clone, Copy, Debug)]
enum Peer {
    Ring,
    AwsLcRs,
    /// espgcm on both ends.
    Espgcm,
}

impl Peer {
    #[allow(deprecated)] // ring's provider: deprecated only for its lack of post-quantum key exchange
    fn provider(self) -> CryptoProvider {
        match self {
            Peer::Ring => ring::default_provider(),
            Peer::AwsLcRs => aws_lc_rs::default_provider(),
            Peer::Espgcm => espgcm_rustls::provider(),
        }
    }
}

/// `provider` offering only `suite`.
fn only(provider: CryptoProvider, suite: CipherSuite) -> Arc<CryptoProvider> {
    let cipher_suites: Vec<SupportedCipherSuite> =
        provider.cipher_suites.iter().copied().filter(|s| s.suite() == suite).collect();
    assert_eq!(cipher_suites.len(), 1, "{suite:?} is offered");
    Arc::new(CryptoProvider { cipher_suites, ..provider })
}

fn version_of(suite: &SupportedCipherSuite) -> &'static rustls::SupportedProtocolVersion {
    match suite.version().version {
        ProtocolVersion::TLSv1_3 => &rustls::version::TLS13,
        _ => &rustls::version::TLS12,
    }
}

/// A client and a server for `suite`, each on its own provider.
fn pair(suite: &SupportedCipherSuite, client: CryptoProvider, server: CryptoProvider) -> (Connection, Connection) {
    let pki = pki_for(suite.suite());
    let versions = [version_of(suite)];
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.clone()).expect("the CA is a valid trust anchor");
    let client_config = ClientConfig::builder_with_provider(only(client, suite.suite()))
        .with_protocol_versions(&versions)
        .expect("the client supports the version")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key_pkcs8.clone()));
    let server_config = ServerConfig::builder_with_provider(only(server, suite.suite()))
        .with_protocol_versions(&versions)
        .expect("the server supports the version")
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), key)
        .expect("the server takes its certificate");
    let name = ServerName::try_from("localhost").expect("a valid name");
    let c = ClientConnection::new(Arc::new(client_config), name).expect("client");
    let s = ServerConnection::new(Arc::new(server_config)).expect("server");
    (Connection::Client(c), Connection::Server(s))
}

/// What a flight carried: its bytes on the wire and the plaintext the
/// receiver released.
struct Landed {
    wire_len: usize,
    plaintext: Vec<u8>,
}

/// Move everything `from` has to send into `to`, first letting `damage`
/// change the bytes in transit; the receiver's verdict.
fn flight(
    from: &mut Connection,
    to: &mut Connection,
    damage: impl FnOnce(&mut Vec<u8>),
) -> Result<Landed, rustls::Error> {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).expect("writing to a Vec");
    }
    damage(&mut wire);
    let mut rest = &wire[..];
    let mut plaintext = Vec::new();
    while !rest.is_empty() {
        to.read_tls(&mut rest).expect("reading from a slice");
        to.process_new_packets()?;
        // Drain as we go: rustls holds only so much unread plaintext.
        plaintext.extend(read_available(to));
    }
    Ok(Landed { wire_len: wire.len(), plaintext })
}

fn exchange(a: &mut Connection, b: &mut Connection) {
    flight(a, b, |_| {}).expect("a flight is accepted");
    flight(b, a, |_| {}).expect("a flight is accepted");
}

fn handshake(c: &mut Connection, s: &mut Connection) {
    for _ in 0..10 {
        let n = flight(c, s, |_| {}).expect("client flight").wire_len
            + flight(s, c, |_| {}).expect("server flight").wire_len;
        if n == 0 && !c.is_handshaking() && !s.is_handshaking() {
            return;
        }
    }
    panic!("handshake did not finish");
}

/// Everything the connection has decrypted so far.
fn read_available(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.reader().read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return out,
            Err(e) => panic!("reading plaintext: {e}"),
        }
    }
}

/// Send `data` from `a` to `b` (in pieces as rustls's send buffer takes
/// them) and check it arrives whole.
fn send(a: &mut Connection, b: &mut Connection, data: &[u8]) {
    let (mut sent, mut received) = (0, Vec::new());
    while sent < data.len() {
        sent += a.writer().write(&data[sent..]).expect("buffered");
        received.extend(flight(a, b, |_| {}).expect("records accepted").plaintext);
    }
    assert!(received == data, "{} bytes sent, {} received, or different", data.len(), received.len());
}

/// Data of every record shape: empty-ish, odd sizes, one byte under and at
/// the 16 KiB record limit, and a write that spans several records.
fn payloads() -> Vec<Vec<u8>> {
    [1usize, 15, 16, 17, 1000, 1024, 16383, 16384, 16385, 70_000]
        .iter()
        .map(|&n| (0..n).map(|i| (i * 7 + n) as u8).collect())
        .collect()
}

/// One suite, one pair of providers: the whole conversation.
fn conversation(suite: &SupportedCipherSuite, client: Peer, server: Peer) {
    let label = format!("{:?} client {client:?} server {server:?}", suite.suite());
    let (mut c, mut s) = pair(suite, client.provider(), server.provider());
    handshake(&mut c, &mut s);
    assert_eq!(c.negotiated_cipher_suite().map(|x| x.suite()), Some(suite.suite()), "{label}");
    assert_eq!(s.negotiated_cipher_suite().map(|x| x.suite()), Some(suite.suite()), "{label}");
    for data in payloads() {
        send(&mut c, &mut s, &data);
        send(&mut s, &mut c, &data);
    }
    if suite.version().version == ProtocolVersion::TLSv1_3 {
        // Key updates from each side (each answered by the peer's own), then
        // more data under the new keys.
        for _ in 0..3 {
            c.refresh_traffic_keys().expect("TLS 1.3 key update");
            send(&mut c, &mut s, b"after the client's key update");
            send(&mut s, &mut c, b"the server answers under its new keys");
            s.refresh_traffic_keys().expect("TLS 1.3 key update");
            send(&mut s, &mut c, b"after the server's key update");
            send(&mut c, &mut s, b"and the client answers");
        }
    } else {
        assert!(c.refresh_traffic_keys().is_err(), "{label}: TLS 1.2 has no key update");
    }
    c.send_close_notify();
    exchange(&mut c, &mut s);
    assert!(s.reader().read(&mut [0u8; 1]).is_ok_and(|n| n == 0), "{label}: the server sees a clean close");
}

fn every_suite(client: Peer, server: Peer) {
    assert_eq!(ALL_CIPHER_SUITES.len(), 6);
    for suite in ALL_CIPHER_SUITES {
        conversation(suite, client, server);
    }
}

#[test]
fn espgcm_client_with_ring_server() {
    every_suite(Peer::Espgcm, Peer::Ring);
}

#[test]
fn ring_client_with_espgcm_server() {
    every_suite(Peer::Ring, Peer::Espgcm);
}

#[test]
fn espgcm_client_with_aws_lc_rs_server() {
    every_suite(Peer::Espgcm, Peer::AwsLcRs);
}

#[test]
fn aws_lc_rs_client_with_espgcm_server() {
    every_suite(Peer::AwsLcRs, Peer::Espgcm);
}

#[test]
fn espgcm_on_both_ends() {
    every_suite(Peer::Espgcm, Peer::Espgcm);
}

/// Flip one bit in the last record of a flight (in its ciphertext or tag:
/// past the 5-byte header).
fn flip_in_last_record(wire: &mut [u8], offset_from_end: usize) {
    let at = wire.len() - 1 - offset_from_end;
    wire[at] ^= 0x10;
}

#[test]
fn a_record_damaged_in_transit_is_refused() {
    for suite in ALL_CIPHER_SUITES {
        for (client, server, espgcm_receives_from_client) in
            [(Peer::Espgcm, Peer::AwsLcRs, false), (Peer::AwsLcRs, Peer::Espgcm, true)]
        {
            for offset in [0, 16, 100] {
                let label = format!("{:?} client {client:?} server {server:?} offset {offset}", suite.suite());
                let (mut c, mut s) = pair(suite, client.provider(), server.provider());
                handshake(&mut c, &mut s);
                // A clean record first, so the damaged one is not the first.
                send(&mut c, &mut s, b"first");
                send(&mut s, &mut c, b"first");
                let (sender, receiver) = if espgcm_receives_from_client { (&mut c, &mut s) } else { (&mut s, &mut c) };
                sender.writer().write_all(&[0x5a; 300]).expect("buffered");
                let verdict = flight(sender, receiver, |wire| flip_in_last_record(wire, offset));
                assert_eq!(verdict.map(|l| l.plaintext), Err(rustls::Error::DecryptError), "{label}");
                assert!(read_available(receiver).is_empty(), "{label}: nothing of the damaged record is released");
            }
        }
    }
}

#[test]
fn espgcm_provider_serves_the_default_configuration() {
    // With no suite forced, two espgcm ends agree on TLS 1.3 AES-256.
    let provider = Arc::new(espgcm_rustls::provider());
    let pki = ecdsa();
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.clone()).expect("trust anchor");
    let client = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.key_pkcs8.clone())))
        .expect("certificate");
    let mut c = Connection::Client(
        ClientConnection::new(Arc::new(client), ServerName::try_from("localhost").expect("name")).expect("client"),
    );
    let mut s = Connection::Server(ServerConnection::new(Arc::new(server)).expect("server"));
    handshake(&mut c, &mut s);
    assert_eq!(c.negotiated_cipher_suite().map(|x| x.suite()), Some(CipherSuite::TLS13_AES_256_GCM_SHA384));
    send(&mut c, &mut s, b"hello");
}
