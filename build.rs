//! Bakes an rpath to XGBoost's native library (installed by `scripts/install-xgboost.sh`) into the
//! `mlops` binary and this package's tests. In: `XGBOOST_LIB_DIR` (set by `.cargo/config.toml`),
//! else `.deps/xgboost/lib`. Out: `-Wl,-rpath`. The link search path comes from
//! `runtime/build.rs`; an rpath does not propagate from a dependency, hence this file.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=XGBOOST_LIB_DIR");
    println!("cargo:rerun-if-changed=build.rs");
    let dir = match std::env::var_os("XGBOOST_LIB_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap()).join(".deps/xgboost/lib"),
    };
    let dir = dir.canonicalize().unwrap_or(dir);
    // DT_RPATH rather than DT_RUNPATH: searched before LD_LIBRARY_PATH and for libxgboost's own
    // dependencies too (see runtime/build.rs).
    println!("cargo:rustc-link-arg=-Wl,--disable-new-dtags,-rpath,{}", dir.display());
}
