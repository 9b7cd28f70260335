//! The engine the GCM and verify layers call.
//!
//! Normally the backend's own [`Engine`](crate::backend::Engine). Built with
//! the `fault-injection` feature it is the same engine wrapped by
//! [`crate::fault`], which corrupts its output the way the 2015 bug did; the
//! layers above are the same code either way.

#[cfg(not(feature = "fault-injection"))]
pub(crate) use crate::backend::Engine;
#[cfg(feature = "fault-injection")]
pub(crate) use crate::fault::Engine;

/// Four messages through the 512-bit kernel of `engine`'s key (with faults
/// applied as to the engine's own output when the feature is on).
#[cfg(target_arch = "x86_64")]
pub(crate) fn seal_group(
    engine: &Engine,
    key: &crate::backend::multi512::MultiKey,
    lanes: &mut [crate::backend::multi512::Lane<'_>; 4],
) -> [[u8; 16]; 4] {
    #[cfg(feature = "fault-injection")]
    return crate::fault::seal_group(engine, key, lanes);
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = engine;
        key.seal(lanes)
    }
}

/// The decrypting side of [`seal_group`]: the computed tags.
#[cfg(target_arch = "x86_64")]
pub(crate) fn open_group(
    engine: &Engine,
    key: &crate::backend::multi512::MultiKey,
    lanes: &mut [crate::backend::multi512::Lane<'_>; 4],
) -> [[u8; 16]; 4] {
    #[cfg(feature = "fault-injection")]
    return crate::fault::open_group(engine, key, lanes);
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = engine;
        key.open(lanes)
    }
}
