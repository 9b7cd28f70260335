//! Helpers shared by the integration tests.

use espgcm::Backend;

/// The backends this CPU and build can run. Every other backend is reported
/// on stderr with the reason it cannot run, so a skipped backend is never
/// silent.
pub fn supported_backends() -> Vec<Backend> {
    let mut supported = Vec::new();
    for backend in Backend::ALL {
        if backend.is_supported() {
            supported.push(backend);
        } else {
            let why = backend.unsupported_reason().unwrap_or("no reason given");
            eprintln!("skipped {}: {why}", backend.name());
        }
    }
    assert!(supported.contains(&Backend::Scalar), "the scalar backend must always be supported");
    supported
}
