//! Which backends the tests run on: every one this CPU supports, each
//! other one reported on stderr as skipped, with the reason, never silently.

use espgcm::Backend;

/// The backends this CPU and build can run. Every other backend is reported
/// on stderr with the reason it cannot run, so a skipped backend is never
/// silent.
pub fn supported() -> Vec<Backend> {
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

/// The SIMD backends this CPU and build support. Every other SIMD backend
/// is reported on stderr as skipped, with the reason, never silently.
pub fn simd() -> Vec<Backend> {
    let mut list = Vec::new();
    for b in Backend::ALL.into_iter().filter(|b| *b != Backend::Scalar) {
        match b.unsupported_reason() {
            None => list.push(b),
            Some(why) => eprintln!("skipped {}: {why}", b.name()),
        }
    }
    if list.is_empty() {
        eprintln!("skipped: no SIMD backend is supported here, so there is nothing to inject faults into");
    }
    list
}
