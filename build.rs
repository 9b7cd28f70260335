//! Build script. It does nothing unless the `ipsec-mb` feature is on; then it
//! compiles `benches/ipsec_mb/shim.c`, the small C layer through which
//! `benches/ipsec_mb.rs` calls Intel's intel-ipsec-mb library (Debian package
//! `libipsec-mb-dev`), and links that library. The crate itself never calls it.

fn main() {
    // Without this line cargo would rerun the script, and rebuild the crate,
    // whenever any file of the package changes.
    println!("cargo::rerun-if-changed=build.rs");
    #[cfg(feature = "ipsec-mb")]
    ipsec_mb_shim();
}

#[cfg(feature = "ipsec-mb")]
fn ipsec_mb_shim() {
    const SHIM: &str = "benches/ipsec_mb/shim.c";
    println!("cargo::rerun-if-changed={SHIM}");
    if !std::path::Path::new("/usr/include/intel-ipsec-mb.h").exists() && std::env::var_os("CFLAGS").is_none() {
        println!(
            "cargo::warning=intel-ipsec-mb.h not found in /usr/include; the `ipsec-mb` feature needs the \
             intel-ipsec-mb library: `sudo apt-get install libipsec-mb-dev` (or set CFLAGS=-I<dir> and \
             RUSTFLAGS=-L<dir> for a build elsewhere)"
        );
    }
    // cc emits the static link of the shim; the shim needs the library after it.
    cc::Build::new().file(SHIM).opt_level(2).warnings(true).extra_warnings(true).compile("espgcm_ipsec_mb_shim");
    println!("cargo::rustc-link-lib=dylib=IPSec_MB");
}
