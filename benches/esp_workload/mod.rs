//! The ESP benchmarks' workload: TCP over IPv4 in transport mode, every
//! check on, and the SA both ends use.

use espgcm::esp::SaConfig;
use espgcm::{Backend, VerifyPolicy};

/// IP packet sizes: a small packet, the IPv4 minimum MTU, a full-size
/// packet inside a 1500-byte tunnel.
pub const SIZES: [usize; 3] = [64, 576, 1420];
/// The AES-128 key; the SA appends a salt.
pub const KEY: [u8; 16] = [0x42; 16];
const SALT: [u8; 4] = [1, 2, 3, 4];

/// A TCP/IPv4 packet of `size` bytes (at least 40) with correct checksums.
pub fn tcp_packet(size: usize) -> Vec<u8> {
    use espgcm_testkit::packets::{V4_DST, V4_SRC, pattern, tcp_v4};
    tcp_v4(V4_SRC, V4_DST, &pattern(size - 40, 0))
}

/// The SA (transport mode, ICV 16) on `backend`. The replay window is off
/// so that `open` can reopen one packet; with it on (a look before the ICV
/// is checked, then a compare-and-swap on its word and an atomic update
/// of the top, so that threads can share it), bursts of 32 64-byte packets
/// opened 1.7-2.5 ns a packet slower in a local driver (2026-12-07, 2048
/// distinct packets, a fresh receiver each round). Verify is off, as on the raw
/// `Gcm` it is compared with (what the default sampling costs is
/// `benches/verify.rs`'s subject).
pub fn config(backend: Backend) -> SaConfig {
    let mut keymat = KEY.to_vec();
    keymat.extend_from_slice(&SALT);
    SaConfig { backend: Some(backend), replay_window: 0, verify: VerifyPolicy::Off, ..SaConfig::new(0x1000, &keymat) }
}
