//! The error type of the AES-GCM API.

use crate::backend::Backend;
use core::fmt;

/// Why an AES-GCM call failed.
///
/// Every message says what was wrong and what would be accepted.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Error {
    /// The key is not 16, 24 or 32 bytes long.
    KeyLength,
    /// The IV is empty (GCM needs at least one byte) or longer than
    /// 2^61 - 1 bytes.
    IvLength,
    /// The message is longer than NIST SP 800-38D allows under one IV
    /// (2^36 - 32 bytes), or the AAD is longer than 2^61 - 1 bytes.
    TooLong,
    /// A tag given to `decrypt` is shorter than 4 or longer than 16 bytes.
    TagLength,
    /// The tag does not match: the message, AAD, IV, tag or key is wrong.
    /// The buffer has been zeroed.
    Auth,
    /// The requested backend cannot run on this CPU or in this build.
    Unsupported(Backend),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::KeyLength => {
                f.write_str("invalid AES key length: the key must be 16, 24 or 32 bytes (AES-128, AES-192 or AES-256)")
            }
            Error::IvLength => {
                f.write_str("invalid IV length: GCM needs an IV of at least 1 byte (12 bytes is the recommended size)")
            }
            Error::TooLong => f.write_str(
                "input too long for one GCM invocation: at most 2^36 - 32 bytes of message and 2^61 - 1 bytes of AAD; \
                 split the data across several IVs",
            ),
            Error::TagLength => f.write_str("invalid tag length: a GCM tag must be 4 to 16 bytes long"),
            Error::Auth => f.write_str(
                "authentication failed: the tag does not match the ciphertext, AAD, IV and key; \
                 nothing was decrypted (the buffer has been zeroed)",
            ),
            Error::Unsupported(b) => match b.unsupported_reason() {
                Some(why) => write!(f, "backend {b} is not supported: {why}; use Backend::best() or another backend"),
                None => write!(f, "backend {b} is not usable here"),
            },
        }
    }
}

impl std::error::Error for Error {}
