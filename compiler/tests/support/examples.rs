//! Where the shipped configurations are, shared by `tests/examples.rs` and
//! `tests/kubernetes.rs` through `#[path = "support/examples.rs"] mod examples_dir;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository's root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every example directory that holds a configuration, in name order.
pub fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| mlops_compiler::parse::config_files(p).is_ok_and(|f| !f.is_empty()))
        .collect();
    v.sort();
    v
}
