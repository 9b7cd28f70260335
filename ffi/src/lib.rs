//! # espgcm-ffi: the C ABI of espgcm
//!
//! This crate builds `libespgcm_ffi.a` and `libespgcm_ffi.so` (installed by
//! `cargo cinstall` as `libespgcm` with `espgcm.h` and `espgcm.pc`) for C
//! data planes: AES-GCM with its batch call, backend selection and health,
//! and IPsec ESP (SAs, seal/open, bursts over the caller's own packet
//! memory, the SA table). The header, `espgcm.h` in this folder, is
//! generated from this crate by cbindgen and checked against it by
//! `cargo test -p espgcm-ffi --test header`.
//!
//! ## Conventions (those of rustls-ffi)
//!
//! - Objects are opaque handles made by a `_new` function and released by
//!   its `_free` function; every `_free` accepts NULL.
//! - Functions return an `int` result code: [`ESPGCM_OK`] (0) on success,
//!   one of the `ESPGCM_ERR_*` codes otherwise; [`espgcm_result_str`] says
//!   what a code means. Output parameters come last; on failure an output
//!   handle is set to NULL.
//! - Every pointer is checked: NULL where something is needed is
//!   [`ESPGCM_ERR_NULL_PARAMETER`]. A NULL pointer with a length of 0 is an
//!   empty buffer. Buffers the call writes may not overlap buffers it reads
//!   ([`ESPGCM_ERR_OVERLAP`]).
//! - A panic never crosses the boundary: it is caught and returned as
//!   [`ESPGCM_ERR_PANIC`].
//! - Handles of keys and SAs may be used from many threads at once, except
//!   where a function says it needs the handle alone (the setters).
//!
//! Every `unsafe` operation of the bindings is in this crate, each with the
//! reason it is sound written above it.

#![allow(non_camel_case_types)]
#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

// Declared in the order the header presents them (cbindgen follows it).
mod args;
mod backend;
mod esp;
mod gcm;
mod result;
mod table;

pub use backend::*;
pub use esp::*;
pub use gcm::*;
pub use result::*;
pub use table::*;

// The handles are shared between threads as the documentation says: the
// library types behind them must allow it.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<espgcm::Gcm>();
    shareable::<espgcm::esp::Outbound>();
    shareable::<espgcm::esp::Inbound>();
    shareable::<espgcm::esp::SaTable>();
};

/// The version of this library, as a NUL-terminated string ("0.1.0").
#[unsafe(no_mangle)]
pub extern "C" fn espgcm_version() -> *const core::ffi::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
