//! Generates the gRPC server code for the Terraform plugin protocol (version 6) and go-plugin's
//! controller from `proto/`, with the protoc that `protoc-bin-vendored` ships (no system
//! package needed); and bakes the rpath to XGBoost's native library into the binary, as the root
//! package's build.rs does for `mlops` (an rpath does not propagate from a dependency).

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-env-changed=XGBOOST_LIB_DIR");
    let lib = match std::env::var_os("XGBOOST_LIB_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").ok_or("no CARGO_MANIFEST_DIR")?)
            .join("../.deps/xgboost/lib"),
    };
    let lib = lib.canonicalize().unwrap_or(lib);
    println!("cargo:rustc-link-arg=-Wl,--disable-new-dtags,-rpath,{}", lib.display());
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure().build_client(false).compile_with_config(
        config,
        &["proto/tfplugin6.proto", "proto/plugin.proto"],
        &["proto"],
    )?;
    Ok(())
}
