//! espgcm.h must be what cbindgen makes of the code today: a header that
//! disagrees with the library it ships with is worse than none.

use std::path::Path;

#[test]
fn committed_header_matches_the_code() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("ffi/cbindgen.toml reads");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header from ffi/src");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let path = crate_dir.join("espgcm.h");
    if std::env::var_os("ESPGCM_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("espgcm.h is writable");
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    if committed != generated {
        let first_difference = String::from_utf8_lossy(&committed)
            .lines()
            .zip(String::from_utf8_lossy(&generated).lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "one is a prefix of the other".to_string(), |i| format!("first at line {}", i + 1));
        panic!(
            "ffi/espgcm.h does not match the code ({first_difference}); regenerate it with \
             `ESPGCM_BLESS=1 cargo test -p espgcm-ffi --test header` and commit it"
        );
    }
}
