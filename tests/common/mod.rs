//! Helpers for tests that drive the real `mlops` binary as a user would.
#![allow(dead_code)]

use assert_cmd::Command;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `mlops` with colour off and no inherited MLOPS_VAR_* variables, run from the repository root.
#[track_caller]
pub fn mlops() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mlops"));
    cmd.current_dir(root()).env("NO_COLOR", "1");
    for (k, _) in std::env::vars() {
        if k.starts_with("MLOPS_VAR_") {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// A fresh temporary directory under target/, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    #[track_caller]
    pub fn new(tag: &str) -> TempDir {
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let p = root().join("target/test-tmp").join(format!("{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes a file (creating parent directories).
    #[track_caller]
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Standard output of a finished command as text.
pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error of a finished command as text.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A temporary tree holding the fraud example (configuration and data) and the module it uses,
/// laid out as in the repository; the configuration directory is `examples/fraud-detection`.
pub fn fraud_tree(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    for from in ["examples/fraud-detection", "examples/fraud-detection/data", "modules/tabular-classifier"] {
        for entry in std::fs::read_dir(root().join(from)).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                let target = dir.path().join(from).join(name);
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }
    dir
}

/// The configuration directory inside a [`fraud_tree`].
pub fn fraud_dir(tree: &TempDir) -> PathBuf {
    tree.path().join("examples/fraud-detection")
}
