//! Links XGBoost's native library (installed by `scripts/install-xgboost.sh`) and bakes an rpath
//! to it into this package's test binaries. In: `XGBOOST_LIB_DIR` (set by `.cargo/config.toml`),
//! else `<workspace>/.deps/xgboost/lib`. Out: `-L` for the link, which cargo passes on to every
//! crate that links this one, and `-Wl,-rpath` for this package's own binaries (an rpath does not
//! propagate: the root package's build.rs adds its own).

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=XGBOOST_LIB_DIR");
    println!("cargo:rerun-if-changed=build.rs");
    let dir = match std::env::var_os("XGBOOST_LIB_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("../.deps/xgboost/lib"),
    };
    let lib = dir.join("libxgboost.so");
    if !lib.is_file() {
        panic!("{} is missing: run scripts/install-xgboost.sh (XGBoost's native library)", lib.display());
    }
    let dir = dir.canonicalize().unwrap_or(dir);
    println!("cargo:rerun-if-changed={}", lib.display());
    println!("cargo:rustc-link-search=native={}", dir.display());
    // DT_RPATH rather than DT_RUNPATH (`--disable-new-dtags`): it is searched before
    // LD_LIBRARY_PATH and also for libxgboost's own dependencies (its bundled libgomp), so a
    // different libxgboost on the system can never be picked up silently.
    println!("cargo:rustc-link-arg=-Wl,--disable-new-dtags,-rpath,{}", dir.display());
}
