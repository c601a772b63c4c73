//! Durable file operations shared by the registry, the feature store and the local state
//! backend. In: paths and bytes. Out: files that are entirely old or entirely new after a crash
//! (write a hidden per-process temporary file, fsync it, rename it into place, fsync the
//! directory), and directories whose creation is durable. Errors carry the action and path;
//! each module turns them into its own error type.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A failed file operation: what was attempted, on which path, and why.
#[derive(Debug)]
pub(crate) struct FsError {
    pub action: &'static str,
    pub path: PathBuf,
    pub source: io::Error,
}

fn err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FsError + 'a {
    move |source| FsError { action, path: path.to_path_buf(), source }
}

/// Makes a directory's entries (a rename, a new or removed file) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), FsError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(err("sync directory", dir))
}

/// The temporary name `write_atomic` uses for `path`: hidden, and per process, so it is never
/// mistaken for a real file and never shared by two writers.
fn tmp_path(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir.join(format!(".{name}.tmp-{}", std::process::id()))
}

/// Replaces `path` with `bytes` atomically and durably: readers see the old or the new content,
/// never a mix, and after a crash the file is one or the other.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tmp_path(path);
    let result = (|| {
        let mut f = File::create(&tmp).map_err(err("create", &tmp))?;
        f.write_all(bytes).map_err(err("write", &tmp))?;
        f.sync_all().map_err(err("sync", &tmp))?;
        fs::rename(&tmp, path).map_err(err("replace", path))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` and any missing parents, making each new entry durable.
pub(crate) fn create_dirs(dir: &Path) -> Result<(), FsError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dirs(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(FsError { action: "create directory", path: dir.to_path_buf(), source: e }),
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}
