//! # espgcm
//!
//! AES-GCM for userspace IPsec ESP data planes: the fastest implementation the
//! CPU can run, chosen at run time, and a constant-time portable one to check
//! it against.
//!
//! ```
//! use espgcm::{Backend, Gcm};
//!
//! let gcm = Gcm::new(&[0x11; 32])?; // AES-256, on Backend::best()
//! println!("running on {}", gcm.backend());
//!
//! let (iv, aad) = ([0u8; 12], [0u8; 8]);
//! let mut packet = b"payload".to_vec();
//! let tag = gcm.encrypt(&iv, &aad, &mut packet)?;
//! gcm.decrypt(&iv, &aad, &mut packet, &tag)?;
//! assert_eq!(packet, b"payload");
//!
//! // Any supported backend can be asked for by name.
//! let scalar = Gcm::with_backend(&[0x11; 32], "scalar".parse()?)?;
//! assert_eq!(scalar.backend(), Backend::Scalar);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Backends and dispatch
//!
//! [`Backend`] lists the implementations; [`Backend::best`] is what a new key
//! gets. The choice is made once, when the key is set up: the key holds the
//! material laid out for its backend and every call goes straight to it.
//! Operators can steer it without a rebuild: `ESPGCM_BACKEND=<name>` forces a
//! backend for new keys and `ESPGCM_DISABLE=<name,name>` removes backends (see
//! [`Overrides`]).
//!
//! ## Guarantees
//!
//! - The scalar backend is constant time (no secret-indexed memory access, no
//!   secret-dependent branch); the module docs of `backend::scalar` argue it.
//! - Tags are compared in constant time; truncated tags of 4 to 16 bytes are
//!   accepted on decryption.
//! - A failed decryption zeroes the buffer: unverified plaintext is never
//!   released.
//! - Key material is zeroized when a key is dropped.
//! - Every length rule of NIST SP 800-38D is enforced with an [`Error`].
//!
//! ## Verify mode
//!
//! A key on a SIMD backend can cross-check its output against the
//! constant-time scalar backend ([`Gcm::set_verify`] with a
//! [`VerifyPolicy`]): on a mismatch the call still returns the correct
//! result, the fault is recorded ([`health`], [`fault_events`]) and the
//! backend is quarantined for the whole process, so keys move off it. With
//! the cargo feature `fault-injection`, `fault::inject` corrupts a backend's
//! keystream the way the 2015 Xen/AES-NI bug did, to prove that it is caught.
//!
//! ## ESP
//!
//! [`esp`] builds IPsec ESP on top: [`esp::Outbound::seal`] and
//! [`esp::Inbound::open`] take and return whole IP packets (transport or
//! tunnel mode, IPv4 or IPv6, optionally UDP-encapsulated for NAT-T), with
//! AES-GCM (RFC 4106) or AES-GMAC (RFC 4543), an RFC 6479 replay window,
//! extended sequence numbers, and the inner TCP/UDP checksum verified before
//! encryption and after decryption in every mode. It is built on [`net`],
//! a protocol-neutral network layer: checked views of IPv4, IPv6, UDP, TCP
//! and ICMP headers, and the Internet checksum.

#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub use aead;

mod backend;
mod batch;
#[doc(hidden)]
pub mod ct_probe;
mod engine;
mod error;
pub mod esp;
#[cfg(feature = "fault-injection")]
pub mod fault;
mod gcm;
mod health;
pub mod kat;
pub mod net;
mod ones_complement;
mod policy;
mod rng;
mod verify;

pub use backend::{Backend, UnknownBackend, cpu};
pub use batch::Job;
pub use error::Error;
pub use gcm::{Aes128Gcm, Aes192Gcm, Aes256Gcm, Gcm, MAX_AAD_LEN, MAX_IV_LEN, MAX_MESSAGE_LEN, MIN_TAG_LEN};
pub use health::{FaultKind, FaultReport, Health, fault_events, health};
pub use policy::Overrides;
pub use verify::VerifyPolicy;

/// The README's Rust examples, compiled and run by `cargo test`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
