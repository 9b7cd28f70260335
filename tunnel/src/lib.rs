//! `espgcm-tunnel`: a userspace IPsec ESP gateway built on the `espgcm`
//! engine. It takes IP packets from a TUN device, seals them with the SA
//! the policy table picks, and sends the ESP in UDP (RFC 3948) or as raw IP
//! protocol 50; and the other way round.
//!
//! It is a workspace member of its own so that its dependencies (TUN
//! devices, batched socket I/O, signal handling) never reach the library's
//! users. The pieces:
//!
//! - [`settings`]: the `[tunnel]` table of the configuration file;
//! - [`sas`]: the SAs and policies (read by the library's SA file loader);
//! - [`device`]: the multi-queue TUN device with offloads;
//! - [`ports`]: the UDP (NAT-T) and raw ESP sockets;
//! - [`worker`]: the batched packet loop, one per core;
//! - [`outer`]: the outer headers between the engine and the sockets;
//! - [`stats`], [`control`]: health from the work itself, and the control
//!   socket that reports it;
//! - [`seqstate`], [`reserve`]: write-ahead sequence reservations, so that
//!   manually keyed SAs never repeat an IV across restarts;
//! - [`tunnel`]: setting up, supervising, shutting down.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod control;
pub mod device;
pub mod frame;
pub mod outer;
pub mod ports;
pub mod privileges;
pub mod reserve;
pub mod sas;
pub mod seqstate;
pub mod settings;
pub mod stats;
pub mod tunnel;
pub mod worker;
