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
