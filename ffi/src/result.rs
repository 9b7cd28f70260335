//! Result codes: what every function returns, the messages
//! [`espgcm_result_str`] gives for them, and how the library's errors map
//! onto them.

use core::ffi::{c_char, c_int};
use espgcm::Error;
use espgcm::esp::EspError;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Success.
pub const ESPGCM_OK: c_int = 0;
/// A pointer that must not be NULL was NULL (or a buffer was NULL with a
/// non-zero length).
pub const ESPGCM_ERR_NULL_PARAMETER: c_int = 1;
/// The library panicked; the panic was caught at the boundary. This is a bug
/// in espgcm: please report it.
pub const ESPGCM_ERR_PANIC: c_int = 2;
/// An argument is out of range: an unknown constant, a length past
/// `PTRDIFF_MAX`, a misaligned pointer, a packet outside its frame.
pub const ESPGCM_ERR_INVALID_ARGUMENT: c_int = 3;
/// A buffer the call writes overlaps a buffer it reads (or another buffer
/// it writes).
pub const ESPGCM_ERR_OVERLAP: c_int = 4;
/// An output buffer is too small; the length needed was written where the
/// function says.
pub const ESPGCM_ERR_BUFFER_TOO_SMALL: c_int = 5;

/// The AES key is not 16, 24 or 32 bytes long.
pub const ESPGCM_ERR_KEY_LENGTH: c_int = 10;
/// The IV is empty (GCM needs at least one byte).
pub const ESPGCM_ERR_IV_LENGTH: c_int = 11;
/// The message or AAD is longer than NIST SP 800-38D allows under one IV.
pub const ESPGCM_ERR_TOO_LONG: c_int = 12;
/// A tag given for decryption is shorter than 4 or longer than 16 bytes.
pub const ESPGCM_ERR_TAG_LENGTH: c_int = 13;
/// The tag (or the ESP ICV) does not verify: the data is damaged or forged,
/// or the key, IV or AAD is wrong. Nothing was released: the buffer was
/// zeroed (AES-GCM; in an ESP burst, the packet's ESP payload, decrypted in
/// place) or not written (a single ESP open).
pub const ESPGCM_ERR_AUTH: c_int = 14;
/// The requested backend cannot run on this CPU or in this build.
pub const ESPGCM_ERR_UNSUPPORTED_BACKEND: c_int = 15;
/// Not the name of a backend (scalar, aesni, vaes256, vaes512, armv8).
pub const ESPGCM_ERR_UNKNOWN_BACKEND: c_int = 16;
/// Another AES-GCM error this version of the bindings does not name.
pub const ESPGCM_ERR_CRYPTO: c_int = 17;

/// ESP: a header ran out of bytes before its length said it would.
pub const ESPGCM_ERR_ESP_TRUNCATED: c_int = 100;
/// ESP: a header field holds an impossible or unexpected value.
pub const ESPGCM_ERR_ESP_MALFORMED: c_int = 101;
/// ESP: an IP fragment where a whole datagram is needed (reassemble first).
pub const ESPGCM_ERR_ESP_FRAGMENT: c_int = 102;
/// ESP: the packet carries another SPI than the SA's.
pub const ESPGCM_ERR_ESP_UNKNOWN_SPI: c_int = 103;
/// ESP: the sequence number was already received (a replay).
pub const ESPGCM_ERR_ESP_REPLAY: c_int = 104;
/// ESP: the sequence number is below the replay window.
pub const ESPGCM_ERR_ESP_TOO_OLD: c_int = 105;
/// ESP: the decrypted padding is not 1, 2, 3, ...
pub const ESPGCM_ERR_ESP_BAD_PADDING: c_int = 106;
/// ESP: the packet to seal has a wrong TCP/UDP/ICMP checksum; not sent.
pub const ESPGCM_ERR_ESP_CHECKSUM_BEFORE_ENCRYPT: c_int = 107;
/// ESP: the decrypted packet has a wrong checksum (damaged before the peer
/// encrypted it); dropped.
pub const ESPGCM_ERR_ESP_CHECKSUM_AFTER_DECRYPT: c_int = 108;
/// ESP: the decrypted packet carries a protocol the SA does not deliver.
pub const ESPGCM_ERR_ESP_UNEXPECTED_NEXT_HEADER: c_int = 109;
/// ESP: every sequence number of the SA is used: re-key. Nothing was sent.
pub const ESPGCM_ERR_ESP_SEQUENCE_EXHAUSTED: c_int = 110;
/// ESP: an authentic dummy packet (next header 59): drop it silently; not
/// an attack.
pub const ESPGCM_ERR_ESP_DUMMY: c_int = 111;
/// ESP: a NAT-T keepalive (one 0xFF byte on UDP 4500): nothing to deliver;
/// not an attack.
pub const ESPGCM_ERR_ESP_NAT_KEEPALIVE: c_int = 112;
/// ESP: a non-ESP (IKE) packet on the NAT-T port: hand it to IKE; not an
/// attack.
pub const ESPGCM_ERR_ESP_NON_ESP: c_int = 113;
/// ESP: the packet would not fit its IP length field, or the frame has no
/// room for the result.
pub const ESPGCM_ERR_ESP_TOO_LARGE: c_int = 114;
/// ESP: no inbound SA is installed in the SA table for this SPI (and these
/// addresses).
pub const ESPGCM_ERR_ESP_NO_SA: c_int = 115;
/// ESP: the packet is outside the SA's traffic selectors.
pub const ESPGCM_ERR_ESP_NOT_COVERED: c_int = 116;
/// ESP: sealed, the packet would exceed the SA's path MTU and may not be
/// fragmented; report the MTU to the sender (ICMP).
pub const ESPGCM_ERR_ESP_PACKET_TOO_BIG: c_int = 117;
/// ESP: something this engine does not do (an IPv6 extension header it does
/// not walk, a jumbogram, a backend this CPU lacks).
pub const ESPGCM_ERR_ESP_UNSUPPORTED: c_int = 118;
/// ESP: an SA setting or an argument is not acceptable (for a
/// configuration, `espgcm_sa_config_validate` says which and why).
pub const ESPGCM_ERR_ESP_INVALID: c_int = 119;
/// ESP: another live outbound SA in this process already sends under this
/// key and salt (two senders would repeat IVs): share the one SA instead.
pub const ESPGCM_ERR_ESP_KEY_IN_USE: c_int = 120;
/// ESP: no policy in the SA table covers the packet (RFC 4301: discard it).
pub const ESPGCM_ERR_ESP_NO_POLICY: c_int = 121;
/// ESP: the SA's configured sequence-number limit is reached
/// (`Outbound::set_sequence_limit` in Rust): nothing was sent; re-key.
pub const ESPGCM_ERR_ESP_SEQUENCE_LIMIT: c_int = 122;
/// ESP: the SA crossed a hard lifetime limit and is stopped: nothing was
/// sent or delivered; re-key.
pub const ESPGCM_ERR_ESP_LIFETIME_EXPIRED: c_int = 123;
/// ESP: the SA table already holds an SA with this SPI and these
/// addresses (delete it first, or use another SPI).
pub const ESPGCM_ERR_ESP_SA_EXISTS: c_int = 124;
/// ESP: the SA table holds no SA with this SPI and these addresses.
pub const ESPGCM_ERR_ESP_NO_SUCH_SA: c_int = 125;
/// ESP: the SA table holds no policy with this id.
pub const ESPGCM_ERR_ESP_NO_SUCH_POLICY: c_int = 126;
/// ESP: another error this version of the bindings does not name.
pub const ESPGCM_ERR_ESP_OTHER: c_int = 199;

/// What a result code means, as a NUL-terminated string that lives as long
/// as the program (never NULL; an unknown code gives a message saying so).
#[unsafe(no_mangle)]
pub extern "C" fn espgcm_result_str(result: c_int) -> *const c_char {
    message(result).as_ptr()
}

/// The message of a result code.
fn message(result: c_int) -> &'static core::ffi::CStr {
    match result {
        ESPGCM_OK => c"success",
        ESPGCM_ERR_NULL_PARAMETER => c"a required pointer was NULL (or a NULL buffer had a non-zero length)",
        ESPGCM_ERR_PANIC => c"espgcm panicked (caught at the C boundary); this is a bug, please report it",
        ESPGCM_ERR_INVALID_ARGUMENT => {
            c"invalid argument: an unknown constant, a length past PTRDIFF_MAX, a misaligned pointer or a packet outside its frame"
        }
        ESPGCM_ERR_OVERLAP => c"a buffer the call writes overlaps another buffer of the call",
        ESPGCM_ERR_BUFFER_TOO_SMALL => c"the output buffer is too small; the length needed was returned",
        ESPGCM_ERR_KEY_LENGTH => c"invalid AES key length: the key must be 16, 24 or 32 bytes",
        ESPGCM_ERR_IV_LENGTH => c"invalid IV length: GCM needs an IV of at least 1 byte (12 is the fast path)",
        ESPGCM_ERR_TOO_LONG => {
            c"input too long for one GCM invocation: at most 2^36 - 32 bytes of message and 2^61 - 1 bytes of AAD"
        }
        ESPGCM_ERR_TAG_LENGTH => c"invalid tag length: a GCM tag must be 4 to 16 bytes long",
        ESPGCM_ERR_AUTH => {
            c"authentication failed: the tag (ICV) does not match; nothing was released (AES-GCM: the buffer was zeroed)"
        }
        ESPGCM_ERR_UNSUPPORTED_BACKEND => c"the requested backend cannot run on this CPU or in this build",
        ESPGCM_ERR_UNKNOWN_BACKEND => c"unknown backend name: expected scalar, aesni, vaes256, vaes512 or armv8",
        ESPGCM_ERR_CRYPTO => c"AES-GCM error",
        ESPGCM_ERR_ESP_TRUNCATED => c"ESP: truncated packet: a header needs more bytes than are present",
        ESPGCM_ERR_ESP_MALFORMED => c"ESP: malformed packet: a header field holds an impossible value",
        ESPGCM_ERR_ESP_FRAGMENT => c"ESP: IP fragment: ESP needs whole datagrams; reassemble first",
        ESPGCM_ERR_ESP_UNKNOWN_SPI => c"ESP: the packet's SPI does not belong to this SA",
        ESPGCM_ERR_ESP_REPLAY => c"ESP: replayed packet: the sequence number was already received",
        ESPGCM_ERR_ESP_TOO_OLD => c"ESP: the sequence number is below the replay window",
        ESPGCM_ERR_ESP_BAD_PADDING => c"ESP: bad padding after decryption",
        ESPGCM_ERR_ESP_CHECKSUM_BEFORE_ENCRYPT => {
            c"ESP: the packet to seal has a wrong checksum: damaged before encryption, not sent"
        }
        ESPGCM_ERR_ESP_CHECKSUM_AFTER_DECRYPT => {
            c"ESP: the decrypted packet has a wrong checksum: damaged before the peer encrypted it, dropped"
        }
        ESPGCM_ERR_ESP_UNEXPECTED_NEXT_HEADER => c"ESP: the decrypted packet carries a protocol this SA does not deliver",
        ESPGCM_ERR_ESP_SEQUENCE_EXHAUSTED => c"ESP: sequence numbers exhausted: re-key the SA; nothing was sent",
        ESPGCM_ERR_ESP_DUMMY => c"ESP: dummy packet (next header 59): drop it silently",
        ESPGCM_ERR_ESP_NAT_KEEPALIVE => c"ESP: NAT-T keepalive: nothing to deliver",
        ESPGCM_ERR_ESP_NON_ESP => c"ESP: non-ESP marker on the NAT-T port: an IKE message, hand it to IKE",
        ESPGCM_ERR_ESP_TOO_LARGE => {
            c"ESP: packet too large for its IP length field, or no room in the frame for the result"
        }
        ESPGCM_ERR_ESP_NO_SA => c"ESP: no inbound SA for this SPI (and these addresses) in the SA table",
        ESPGCM_ERR_ESP_NOT_COVERED => c"ESP: the packet is outside the SA's traffic selectors",
        ESPGCM_ERR_ESP_PACKET_TOO_BIG => {
            c"ESP: sealed, the packet would exceed the path MTU and may not be fragmented; nothing was sent"
        }
        ESPGCM_ERR_ESP_UNSUPPORTED => c"ESP: unsupported by this engine",
        ESPGCM_ERR_ESP_INVALID => {
            c"ESP: invalid SA setting or argument (for a configuration, espgcm_sa_config_validate says which)"
        }
        ESPGCM_ERR_ESP_KEY_IN_USE => {
            c"ESP: another live outbound SA already sends under this key and salt; share it instead of making a second one"
        }
        ESPGCM_ERR_ESP_NO_POLICY => c"ESP: no policy covers the packet: discard it (RFC 4301)",
        ESPGCM_ERR_ESP_SEQUENCE_LIMIT => c"ESP: the SA's sequence-number limit is reached: re-key; nothing was sent",
        ESPGCM_ERR_ESP_LIFETIME_EXPIRED => {
            c"ESP: the SA crossed a hard lifetime limit and is stopped: re-key; nothing was sent or delivered"
        }
        ESPGCM_ERR_ESP_SA_EXISTS => c"ESP: the SA table already holds an SA with this SPI and these addresses",
        ESPGCM_ERR_ESP_NO_SUCH_SA => c"ESP: the SA table holds no SA with this SPI and these addresses",
        ESPGCM_ERR_ESP_NO_SUCH_POLICY => c"ESP: the SA table holds no policy with this id",
        ESPGCM_ERR_ESP_OTHER => c"ESP: error",
        _ => c"unknown espgcm result code",
    }
}

/// The code of an AES-GCM error.
pub(crate) fn gcm_code(e: Error) -> c_int {
    match e {
        Error::KeyLength => ESPGCM_ERR_KEY_LENGTH,
        Error::IvLength => ESPGCM_ERR_IV_LENGTH,
        Error::TooLong => ESPGCM_ERR_TOO_LONG,
        Error::TagLength => ESPGCM_ERR_TAG_LENGTH,
        Error::Auth => ESPGCM_ERR_AUTH,
        Error::Unsupported(_) => ESPGCM_ERR_UNSUPPORTED_BACKEND,
        _ => ESPGCM_ERR_CRYPTO,
    }
}

/// The code of an ESP error.
pub(crate) fn esp_code(e: &EspError) -> c_int {
    match e {
        EspError::Truncated { .. } => ESPGCM_ERR_ESP_TRUNCATED,
        EspError::Malformed { .. } => ESPGCM_ERR_ESP_MALFORMED,
        EspError::Fragment => ESPGCM_ERR_ESP_FRAGMENT,
        EspError::UnknownSpi { .. } => ESPGCM_ERR_ESP_UNKNOWN_SPI,
        EspError::Replay { .. } => ESPGCM_ERR_ESP_REPLAY,
        EspError::TooOld { .. } => ESPGCM_ERR_ESP_TOO_OLD,
        EspError::Auth { .. } => ESPGCM_ERR_AUTH,
        EspError::BadPadding { .. } => ESPGCM_ERR_ESP_BAD_PADDING,
        EspError::ChecksumBeforeEncrypt { .. } => ESPGCM_ERR_ESP_CHECKSUM_BEFORE_ENCRYPT,
        EspError::ChecksumAfterDecrypt { .. } => ESPGCM_ERR_ESP_CHECKSUM_AFTER_DECRYPT,
        EspError::UnexpectedNextHeader { .. } => ESPGCM_ERR_ESP_UNEXPECTED_NEXT_HEADER,
        EspError::SequenceExhausted { .. } => ESPGCM_ERR_ESP_SEQUENCE_EXHAUSTED,
        EspError::Dummy { .. } => ESPGCM_ERR_ESP_DUMMY,
        EspError::NatKeepalive => ESPGCM_ERR_ESP_NAT_KEEPALIVE,
        EspError::NonEsp => ESPGCM_ERR_ESP_NON_ESP,
        EspError::TooLarge { .. } => ESPGCM_ERR_ESP_TOO_LARGE,
        EspError::NoSa { .. } => ESPGCM_ERR_ESP_NO_SA,
        EspError::NotCovered { .. } => ESPGCM_ERR_ESP_NOT_COVERED,
        EspError::PacketTooBig { .. } => ESPGCM_ERR_ESP_PACKET_TOO_BIG,
        EspError::Unsupported(_) => ESPGCM_ERR_ESP_UNSUPPORTED,
        EspError::Invalid { .. } => ESPGCM_ERR_ESP_INVALID,
        EspError::Crypto(e) => gcm_code(*e),
        EspError::KeyInUse { .. } => ESPGCM_ERR_ESP_KEY_IN_USE,
        EspError::SequenceLimit { .. } => ESPGCM_ERR_ESP_SEQUENCE_LIMIT,
        EspError::LifetimeExpired { .. } => ESPGCM_ERR_ESP_LIFETIME_EXPIRED,
        EspError::SaExists { .. } => ESPGCM_ERR_ESP_SA_EXISTS,
        EspError::NoSuchSa { .. } => ESPGCM_ERR_ESP_NO_SUCH_SA,
        EspError::NoSuchPolicy { .. } => ESPGCM_ERR_ESP_NO_SUCH_POLICY,
        _ => ESPGCM_ERR_ESP_OTHER,
    }
}

/// Run the body of an exported function: its error code, or
/// [`ESPGCM_ERR_PANIC`] if it panicked (a panic must not unwind into C).
pub(crate) fn guard(body: impl FnOnce() -> Result<(), c_int>) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => ESPGCM_OK,
        Ok(Err(code)) => code,
        Err(_) => ESPGCM_ERR_PANIC,
    }
}

/// [`guard`] for functions that return a value rather than a code:
/// `fallback` if the body panicked.
pub(crate) fn guard_value<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::ffi::CStr;

    #[test]
    fn a_panic_becomes_a_code() {
        // The default hook would print the panic; the point here is the code.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let code = guard(|| panic!("inside the body"));
        let value = guard_value(7u32, || panic!("inside the body"));
        std::panic::set_hook(hook);
        assert_eq!(code, ESPGCM_ERR_PANIC);
        assert_eq!(value, 7);
        assert_eq!(guard(|| Err(ESPGCM_ERR_OVERLAP)), ESPGCM_ERR_OVERLAP);
        assert_eq!(guard(|| Ok(())), ESPGCM_OK);
    }

    #[test]
    fn every_code_has_its_own_message() {
        let codes: Vec<c_int> = (0..=300).filter(|&c| message(c) != c"unknown espgcm result code").collect();
        let mut messages: Vec<&CStr> = codes.iter().map(|&c| message(c)).collect();
        messages.sort();
        messages.dedup();
        assert_eq!(messages.len(), codes.len(), "two codes share a message");
        assert_eq!(codes.len(), 42);
        assert_eq!(message(-1), c"unknown espgcm result code");
    }

    #[test]
    fn errors_map_to_their_codes() {
        assert_eq!(gcm_code(Error::Auth), ESPGCM_ERR_AUTH);
        assert_eq!(esp_code(&EspError::Auth { seq: 3 }), ESPGCM_ERR_AUTH);
        assert_eq!(esp_code(&EspError::Replay { seq: 3 }), ESPGCM_ERR_ESP_REPLAY);
        assert_eq!(esp_code(&EspError::Crypto(Error::TooLong)), ESPGCM_ERR_TOO_LONG);
        assert_eq!(esp_code(&EspError::NoSa { spi: 0x1000 }), ESPGCM_ERR_ESP_NO_SA);
        assert_eq!(esp_code(&EspError::SequenceLimit { limit: 5 }), ESPGCM_ERR_ESP_SEQUENCE_LIMIT);
    }
}
