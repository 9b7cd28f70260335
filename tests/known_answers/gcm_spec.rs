//! The 18 AES test cases of the GCM specification.
//!
//! Source: David A. McGrew and John Viega, "The Galois/Counter Mode of
//! Operation (GCM)", revised version of May 31, 2005, submitted to NIST
//! (csrc.nist.gov, Block Cipher Modes, proposed modes), Appendix B "AES Test
//! Vectors", test cases 1 to 18: AES-128 in cases 1-6, AES-192 in 7-12 and
//! AES-256 in 13-18. Within each group the six cases are the same: empty
//! message, one zero block, 64-byte message, 60-byte message with 20 bytes of
//! AAD, and that message again with an 8-byte IV and with a 60-byte IV.
//!
//! Only the inputs (K, P, A, IV) and outputs (C, T) are given here; the
//! intermediate values the specification also lists (H, Y_i, E(K, Y_i), X_i)
//! are not. The values are the specification's published data; where they
//! were transcribed from and how they were checked is in `vectors/README.md`.

use hex_literal::hex;

/// One test case of the specification.
pub struct SpecCase {
    /// The test case number in the specification (1 to 18).
    pub number: u32,
    /// K.
    pub key: &'static [u8],
    /// P.
    pub pt: &'static [u8],
    /// A.
    pub aad: &'static [u8],
    /// IV.
    pub iv: &'static [u8],
    /// C.
    pub ct: &'static [u8],
    /// T.
    pub tag: [u8; 16],
}

// Inputs shared between test cases, as the specification shares them.

/// K of cases 3-6.
const K128: [u8; 16] = hex!("feffe9928665731c6d6a8f9467308308");
/// K of cases 9-12.
const K192: [u8; 24] = hex!(
    "feffe9928665731c6d6a8f9467308308"
    "feffe9928665731c"
);
/// K of cases 15-18.
const K256: [u8; 32] = hex!(
    "feffe9928665731c6d6a8f9467308308"
    "feffe9928665731c6d6a8f9467308308"
);
/// P of cases 3, 9 and 15.
const P64: [u8; 64] = hex!(
    "d9313225f88406e5a55909c5aff5269a"
    "86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525"
    "b16aedf5aa0de657ba637b391aafd255"
);
/// P of cases 4-6, 10-12 and 16-18 (the first 60 bytes of `P64`).
const P60: [u8; 60] = hex!(
    "d9313225f88406e5a55909c5aff5269a"
    "86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525"
    "b16aedf5aa0de657ba637b39"
);
/// A of cases 4-6, 10-12 and 16-18.
const A20: [u8; 20] = hex!(
    "feedfacedeadbeeffeedfacedeadbeef"
    "abaddad2"
);
/// The 96-bit IV of cases 3, 4, 9, 10, 15 and 16.
const IV96: [u8; 12] = hex!("cafebabefacedbaddecaf888");
/// The 64-bit IV of cases 5, 11 and 17.
const IV64: [u8; 8] = hex!("cafebabefacedbad");
/// The 480-bit IV of cases 6, 12 and 18.
const IV480: [u8; 60] = hex!(
    "9313225df88406e555909c5aff5269aa"
    "6a7a9538534f7da1e4c303d2a318a728"
    "c3c0c95156809539fcf0e2429a6b5254"
    "16aedbf5a0de6a57a637b39b"
);

/// Test cases 1 to 18, in order.
pub const CASES: [SpecCase; 18] = [
    // AES-128.
    SpecCase {
        number: 1,
        key: &[0; 16],
        pt: &[],
        aad: &[],
        iv: &[0; 12],
        ct: &[],
        tag: hex!("58e2fccefa7e3061367f1d57a4e7455a"),
    },
    SpecCase {
        number: 2,
        key: &[0; 16],
        pt: &[0; 16],
        aad: &[],
        iv: &[0; 12],
        ct: &hex!("0388dace60b6a392f328c2b971b2fe78"),
        tag: hex!("ab6e47d42cec13bdf53a67b21257bddf"),
    },
    SpecCase {
        number: 3,
        key: &K128,
        pt: &P64,
        aad: &[],
        iv: &IV96,
        ct: &hex!(
            "42831ec2217774244b7221b784d0d49c"
            "e3aa212f2c02a4e035c17e2329aca12e"
            "21d514b25466931c7d8f6a5aac84aa05"
            "1ba30b396a0aac973d58e091473f5985"
        ),
        tag: hex!("4d5c2af327cd64a62cf35abd2ba6fab4"),
    },
    SpecCase {
        number: 4,
        key: &K128,
        pt: &P60,
        aad: &A20,
        iv: &IV96,
        ct: &hex!(
            "42831ec2217774244b7221b784d0d49c"
            "e3aa212f2c02a4e035c17e2329aca12e"
            "21d514b25466931c7d8f6a5aac84aa05"
            "1ba30b396a0aac973d58e091"
        ),
        tag: hex!("5bc94fbc3221a5db94fae95ae7121a47"),
    },
    SpecCase {
        number: 5,
        key: &K128,
        pt: &P60,
        aad: &A20,
        iv: &IV64,
        ct: &hex!(
            "61353b4c2806934a777ff51fa22a4755"
            "699b2a714fcdc6f83766e5f97b6c7423"
            "73806900e49f24b22b097544d4896b42"
            "4989b5e1ebac0f07c23f4598"
        ),
        tag: hex!("3612d2e79e3b0785561be14aaca2fccb"),
    },
    SpecCase {
        number: 6,
        key: &K128,
        pt: &P60,
        aad: &A20,
        iv: &IV480,
        ct: &hex!(
            "8ce24998625615b603a033aca13fb894"
            "be9112a5c3a211a8ba262a3cca7e2ca7"
            "01e4a9a4fba43c90ccdcb281d48c7c6f"
            "d62875d2aca417034c34aee5"
        ),
        tag: hex!("619cc5aefffe0bfa462af43c1699d050"),
    },
    // AES-192.
    SpecCase {
        number: 7,
        key: &[0; 24],
        pt: &[],
        aad: &[],
        iv: &[0; 12],
        ct: &[],
        tag: hex!("cd33b28ac773f74ba00ed1f312572435"),
    },
    SpecCase {
        number: 8,
        key: &[0; 24],
        pt: &[0; 16],
        aad: &[],
        iv: &[0; 12],
        ct: &hex!("98e7247c07f0fe411c267e4384b0f600"),
        tag: hex!("2ff58d80033927ab8ef4d4587514f0fb"),
    },
    SpecCase {
        number: 9,
        key: &K192,
        pt: &P64,
        aad: &[],
        iv: &IV96,
        ct: &hex!(
            "3980ca0b3c00e841eb06fac4872a2757"
            "859e1ceaa6efd984628593b40ca1e19c"
            "7d773d00c144c525ac619d18c84a3f47"
            "18e2448b2fe324d9ccda2710acade256"
        ),
        tag: hex!("9924a7c8587336bfb118024db8674a14"),
    },
    SpecCase {
        number: 10,
        key: &K192,
        pt: &P60,
        aad: &A20,
        iv: &IV96,
        ct: &hex!(
            "3980ca0b3c00e841eb06fac4872a2757"
            "859e1ceaa6efd984628593b40ca1e19c"
            "7d773d00c144c525ac619d18c84a3f47"
            "18e2448b2fe324d9ccda2710"
        ),
        tag: hex!("2519498e80f1478f37ba55bd6d27618c"),
    },
    SpecCase {
        number: 11,
        key: &K192,
        pt: &P60,
        aad: &A20,
        iv: &IV64,
        ct: &hex!(
            "0f10f599ae14a154ed24b36e25324db8"
            "c566632ef2bbb34f8347280fc4507057"
            "fddc29df9a471f75c66541d4d4dad1c9"
            "e93a19a58e8b473fa0f062f7"
        ),
        tag: hex!("65dcc57fcf623a24094fcca40d3533f8"),
    },
    SpecCase {
        number: 12,
        key: &K192,
        pt: &P60,
        aad: &A20,
        iv: &IV480,
        ct: &hex!(
            "d27e88681ce3243c4830165a8fdcf9ff"
            "1de9a1d8e6b447ef6ef7b79828666e45"
            "81e79012af34ddd9e2f037589b292db3"
            "e67c036745fa22e7e9b7373b"
        ),
        tag: hex!("dcf566ff291c25bbb8568fc3d376a6d9"),
    },
    // AES-256.
    SpecCase {
        number: 13,
        key: &[0; 32],
        pt: &[],
        aad: &[],
        iv: &[0; 12],
        ct: &[],
        tag: hex!("530f8afbc74536b9a963b4f1c4cb738b"),
    },
    SpecCase {
        number: 14,
        key: &[0; 32],
        pt: &[0; 16],
        aad: &[],
        iv: &[0; 12],
        ct: &hex!("cea7403d4d606b6e074ec5d3baf39d18"),
        tag: hex!("d0d1c8a799996bf0265b98b5d48ab919"),
    },
    SpecCase {
        number: 15,
        key: &K256,
        pt: &P64,
        aad: &[],
        iv: &IV96,
        ct: &hex!(
            "522dc1f099567d07f47f37a32a84427d"
            "643a8cdcbfe5c0c97598a2bd2555d1aa"
            "8cb08e48590dbb3da7b08b1056828838"
            "c5f61e6393ba7a0abcc9f662898015ad"
        ),
        tag: hex!("b094dac5d93471bdec1a502270e3cc6c"),
    },
    SpecCase {
        number: 16,
        key: &K256,
        pt: &P60,
        aad: &A20,
        iv: &IV96,
        ct: &hex!(
            "522dc1f099567d07f47f37a32a84427d"
            "643a8cdcbfe5c0c97598a2bd2555d1aa"
            "8cb08e48590dbb3da7b08b1056828838"
            "c5f61e6393ba7a0abcc9f662"
        ),
        tag: hex!("76fc6ece0f4e1768cddf8853bb2d551b"),
    },
    SpecCase {
        number: 17,
        key: &K256,
        pt: &P60,
        aad: &A20,
        iv: &IV64,
        ct: &hex!(
            "c3762df1ca787d32ae47c13bf19844cb"
            "af1ae14d0b976afac52ff7d79bba9de0"
            "feb582d33934a4f0954cc2363bc73f78"
            "62ac430e64abe499f47c9b1f"
        ),
        tag: hex!("3a337dbf46a792c45e454913fe2ea8f2"),
    },
    SpecCase {
        number: 18,
        key: &K256,
        pt: &P60,
        aad: &A20,
        iv: &IV480,
        ct: &hex!(
            "5a8def2f0c9e53f1f75d7853659e2a20"
            "eeb2b22aafde6419a058ab4f6f746bf4"
            "0fc0c3b780f244452da3ebf1c5d82cde"
            "a2418997200ef82e44ae7e3f"
        ),
        tag: hex!("a44a8266ee1c8eb0c8b5d4cf5ae9f19a"),
    },
];

/// The shape the specification gives the table, so that a value lost or
/// moved while editing cannot go unnoticed: numbers 1 to 18 in order, key
/// sizes by group, the IV, AAD and message lengths of each position in a
/// group, and C as long as P.
pub fn check_table() -> Result<(), String> {
    for (i, case) in CASES.iter().enumerate() {
        let n = case.number;
        if n as usize != i + 1 {
            return Err(format!("entry {} is numbered {n}", i + 1));
        }
        let key_len = [16, 24, 32][i / 6];
        // Within a group: (IV, A, P) lengths of cases 1..6.
        let (iv_len, aad_len, pt_len) =
            [(12, 0, 0), (12, 0, 16), (12, 0, 64), (12, 20, 60), (8, 20, 60), (60, 20, 60)][i % 6];
        let got = (case.key.len(), case.iv.len(), case.aad.len(), case.pt.len());
        if got != (key_len, iv_len, aad_len, pt_len) {
            return Err(format!(
                "test case {n}: (key, IV, A, P) lengths are {got:?}, expected {:?}",
                (key_len, iv_len, aad_len, pt_len)
            ));
        }
        if case.ct.len() != case.pt.len() {
            return Err(format!("test case {n}: C is {} bytes but P is {}", case.ct.len(), case.pt.len()));
        }
    }
    if P60[..] != P64[..60] {
        return Err("P60 is not the first 60 bytes of P64".to_string());
    }
    Ok(())
}
