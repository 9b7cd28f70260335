//! What espgcm's integration tests, benches and fuzz checks share: packet
//! builders, key material, the backends to run on, a reproducible random
//! generator, and RustCrypto's AES-GCM as an outside reference.
//!
//! Not published; a dev-dependency of the workspace's crates.

#![allow(missing_docs, clippy::missing_panics_doc)]

pub mod backends;
pub mod packets;
pub mod reference;
pub mod rng;
pub mod timing;
