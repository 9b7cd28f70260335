//! Published ESP known answers: the AES-GCM and AES-GMAC ESP test cases of
//! draft-mcgrew-gcm-test-01 ("Test Cases for the use of Galois/Counter Mode
//! (GCM) and Galois Message Authentication Code (GMAC) in IPsec ESP",
//! D. McGrew, 2009, section 4). Each gives key, salt, SPI, sequence number
//! (64-bit where the AAD is 12 bytes: ESN), IV, plaintext (payload, padding,
//! pad length, next header), ciphertext and ICV, so the whole ESP packet is
//! pinned: `seal_payload_at` must produce it byte for byte and
//! `open_payload_at` must recover payload and next header from it, on every
//! supported backend.

use espgcm::esp::{EspError, Inbound, Outbound, SaConfig, Transform};
use hex_literal::hex;

struct Vector {
    name: &'static str,
    key: &'static [u8],
    salt: [u8; 4],
    spi: u32,
    /// The full sequence number; `esn` says whether the AAD carries 64 bits.
    seq: u64,
    esn: bool,
    iv: [u8; 8],
    transform: Transform,
    /// Payload, padding, pad length and next header.
    plaintext: &'static [u8],
    /// Ciphertext (GCM), or empty (GMAC: the plaintext travels in clear).
    ciphertext: &'static [u8],
    icv: [u8; 16],
}

const VECTORS: &[Vector] = &[
    Vector {
        name: "case 1: AES-128, ESN",
        key: &hex!("4c80cdefbb5d10da906ac73c3613a634"),
        salt: hex!("2e443b68"),
        spi: 0x0000_4321,
        seq: 0x8765_4321_0000_0000,
        esn: true,
        iv: hex!("4956ed7e3b244cfe"),
        transform: Transform::AesGcm,
        plaintext: &hex!(
            "45000048699a000080114db7c0a80102c0a801010a9bf15638d3010000010000"
            "00000000045f736970045f756470037369700963796265726369747902646b00"
            "0021000101020201"
        ),
        ciphertext: &hex!(
            "fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34"
            "cfa2436f14a3f3cf65925bf1f4a13c5d15b21e1884f5ff6247aeabb786b93bce"
            "61bc17d768fd9732"
        ),
        icv: hex!("459018148f6cbe722fd04796562dfdb4"),
    },
    Vector {
        name: "case 2: AES-128",
        key: &hex!("feffe9928665731c6d6a8f9467308308"),
        salt: hex!("cafebabe"),
        spi: 0x0000_a5f8,
        seq: 0x0000_000a,
        esn: false,
        iv: hex!("facedbaddecaf888"),
        transform: Transform::AesGcm,
        plaintext: &hex!(
            "4500003e698f000080114dccc0a80102c0a801010a980035002a2343b2d00100"
            "0001000000000000037369700963796265726369747902646b00000100010001"
        ),
        ciphertext: &hex!(
            "deb22cd9b07c72c16e3a65beeb8df304a5a5897d33ae530f1ba76d5d114d2a5c"
            "3de81827c10e9a4f51330d0eec416642cfbb85a5b47e48a4ec3b9ba95d918bd1"
        ),
        icv: hex!("83b70d3aa8bc6ee4c309e9d85a41ad4a"),
    },
    Vector {
        name: "case 3: AES-256",
        key: &hex!("abbccddef00112233445566778899aababbccddef00112233445566778899aab"),
        salt: hex!("11223344"),
        spi: 0x4a2c_bfe3,
        seq: 2,
        esn: false,
        iv: hex!("0102030405060708"),
        transform: Transform::AesGcm,
        plaintext: &hex!(
            "4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee000000000"
            "7002400020bf0000020405b40101040201020201"
        ),
        ciphertext: &hex!(
            "ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763"
            "748a637985771d347f0545659f14e99def842d8e"
        ),
        icv: hex!("b335f4eecfdbf831824b4c4915956c96"),
    },
    Vector {
        name: "case 5: AES-128, ESN",
        key: &hex!("3de09874b388e6491988d0c3607eae1f"),
        salt: hex!("57690e43"),
        spi: 0x42f6_7e3f,
        seq: 0x1010_1010_1010_1010,
        esn: true,
        iv: hex!("4e280000a2fca1a3"),
        transform: Transform::AesGcm,
        plaintext: &hex!(
            "4500003c99c300008001cb7c40679318010101010800085c0200430061626364"
            "65666768696a6b6c6d6e6f707172737475767761626364656667686901020201"
        ),
        ciphertext: &hex!(
            "fba2caa4853cf9f0f22cb10d86dd83b0fec75691cf1a04b00d1138ec9c357917"
            "65acbd8701ad79845bf9fe3fba487bc91755e6662b4c8d0d1f5e22739530320a"
        ),
        icv: hex!("e0d731cc978ecafaeae88f00e80d6e48"),
    },
    Vector {
        name: "case 7: AES-192",
        key: &hex!("feffe9928665731c6d6a8f9467308308feffe9928665731c"),
        salt: hex!("cafebabe"),
        spi: 0x0000_a5f8,
        seq: 0x0000_000a,
        esn: false,
        iv: hex!("facedbaddecaf888"),
        transform: Transform::AesGcm,
        plaintext: &hex!("45000028a4ad4000400678800a01038f0a010612802306b8cb712602dd6bb03e501016d075680001"),
        ciphertext: &hex!("a5b1f8066029aea40e598b8122de02420938b3ab33f828e687b8858b5bfbdbd0315b27452144cc77"),
        icv: hex!("95457b9652037f5318027b5b4cd7a636"),
    },
    Vector {
        name: "case 12: AES-128, empty payload, sequence 2^32 - 1",
        key: &hex!("7d773d00c144c525ac619d18c84a3f47"),
        salt: hex!("d9664267"),
        spi: 0x3354_67ae,
        seq: 0xffff_ffff,
        esn: false,
        iv: hex!("43457e9182443bc6"),
        transform: Transform::AesGcm,
        plaintext: &hex!("01020201"),
        ciphertext: &hex!("437f866b"),
        icv: hex!("cb3f699fe9b0822bac961c4504bef270"),
    },
    Vector {
        name: "GMAC: AES-128, integrity only",
        key: &hex!("4c80cdefbb5d10da906ac73c3613a634"),
        salt: hex!("22433c64"),
        spi: 0x0000_4321,
        seq: 7,
        esn: false,
        iv: hex!("0000000000000000"),
        transform: Transform::AesGmac,
        plaintext: &hex!(
            "45000030da3a00008001df3bc0a80005c0a800010800c6cd0200070061626364"
            "65666768696a6b6c6d6e6f707172737401020201"
        ),
        ciphertext: &[],
        icv: hex!("f2a9a836e155106aa8dcd618e4099aaa"),
    },
];

impl Vector {
    fn config(&self, backend: espgcm::Backend) -> SaConfig {
        let mut keymat = self.key.to_vec();
        keymat.extend_from_slice(&self.salt);
        SaConfig {
            transform: self.transform,
            esn: self.esn,
            backend: Some(backend),
            ..SaConfig::new(self.spi, &keymat)
        }
    }

    /// The whole ESP packet: SPI, low sequence number, IV, body, ICV.
    fn esp_packet(&self) -> Vec<u8> {
        let mut p = self.spi.to_be_bytes().to_vec();
        p.extend_from_slice(&(self.seq as u32).to_be_bytes());
        p.extend_from_slice(&self.iv);
        p.extend_from_slice(if self.transform == Transform::AesGmac { self.plaintext } else { self.ciphertext });
        p.extend_from_slice(&self.icv);
        p
    }

    /// Payload and next header, from the plaintext's trailer.
    fn payload(&self) -> (&[u8], u8) {
        let n = self.plaintext.len();
        let (pad_len, next_header) = (self.plaintext[n - 2], self.plaintext[n - 1]);
        (&self.plaintext[..n - 2 - usize::from(pad_len)], next_header)
    }
}

#[test]
fn seal_payload_at_reproduces_the_published_esp_packets() {
    let _turn = espgcm_testkit::packets::sender_turn(); // the published keys
    let mut checked = 0;
    for backend in espgcm_testkit::backends::supported() {
        for v in VECTORS {
            let tx = Outbound::new(v.config(backend)).unwrap();
            let (payload, next_header) = v.payload();
            let sealed = tx.seal_payload_at(v.seq, v.iv, payload, next_header).unwrap();
            assert_eq!(sealed, v.esp_packet(), "{} on {backend}", v.name);
            checked += 1;
        }
    }
    eprintln!("{checked} published ESP packets reproduced");
}

#[test]
fn open_payload_at_recovers_payload_and_next_header_from_the_published_packets() {
    for backend in espgcm_testkit::backends::supported() {
        for v in VECTORS {
            let rx = Inbound::new(v.config(backend)).unwrap();
            let (payload, next_header) = v.payload();
            let opened = rx.open_payload_at((v.seq >> 32) as u32, &v.esp_packet()).unwrap();
            assert_eq!((opened.0.as_slice(), opened.1), (payload, next_header), "{} on {backend}", v.name);

            // Any change to the packet or a wrong ESN high half fails.
            let mut bad = v.esp_packet();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(matches!(rx.open_payload_at((v.seq >> 32) as u32, &bad), Err(EspError::Auth { .. })));
            if v.esn {
                let wrong_high = ((v.seq >> 32) as u32) ^ 1;
                assert!(matches!(rx.open_payload_at(wrong_high, &v.esp_packet()), Err(EspError::Auth { .. })));
            }
        }
    }
}

#[test]
fn the_published_sequence_numbers_fit_the_sa_state_machine() {
    // Case 12 uses the last 32-bit sequence number: a stateful SA can send it
    // once, and then must stop.
    let v = &VECTORS[5];
    let _turn = espgcm_testkit::packets::sender_turn(); // the published keys
    let tx = Outbound::new(v.config(espgcm::Backend::Scalar)).unwrap();
    tx.skip_to_sequence(v.seq).unwrap();
    let input = espgcm_testkit::packets::udp_v4(
        espgcm_testkit::packets::V4_SRC,
        espgcm_testkit::packets::V4_DST,
        b"last packet",
    );
    let mut out = Vec::new();
    tx.seal(&input, &mut out).unwrap();
    assert_eq!(tx.seal(&input, &mut out), Err(EspError::SequenceExhausted { last: 0xffff_ffff }));
}
