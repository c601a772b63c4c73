//! Durable file operations for the registry. In: paths and bytes. Out: files that are either
//! entirely old or entirely new after a crash (write to a temporary file, fsync, rename, fsync
//! the directory), and an exclusive lock file naming its holder.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::RegistryError;

pub(crate) fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RegistryError + 'a {
    move |source| RegistryError::Io { action, path: path.to_path_buf(), source }
}

/// Makes a directory's entries (a rename, a new file or subdirectory) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), RegistryError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err("sync directory", dir))
}

/// Replaces `path` with `bytes` atomically: readers see the old or the new content, never a mix.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // Hidden, per process: concurrent writers (which the lock prevents anyway) never share one.
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(bytes).map_err(io_err("write", &tmp))?;
        f.sync_all().map_err(io_err("sync", &tmp))?;
        fs::rename(&tmp, path).map_err(io_err("replace", path))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `dir` and any missing parents, making each new entry durable.
pub(crate) fn create_dirs(dir: &Path) -> Result<(), RegistryError> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dirs(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => return Err(RegistryError::Io { action: "create directory", path: dir.to_path_buf(), source: e }),
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// An exclusive lock: a file created with `create_new` holding the owner's pid, removed on drop.
#[derive(Debug)]
pub(crate) struct Lock {
    path: PathBuf,
}

impl Lock {
    /// Takes the lock, retrying for up to `wait` while another process holds it.
    pub(crate) fn acquire(path: &Path, wait: Duration) -> Result<Lock, RegistryError> {
        let start = Instant::now();
        loop {
            match OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut f) => {
                    let lock = Lock { path: path.to_path_buf() };
                    f.write_all(std::process::id().to_string().as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(io_err("write", path))?;
                    return Ok(lock);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if start.elapsed() >= wait {
                        // Empty while its creator is between create and write.
                        let pid = fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok());
                        return Err(RegistryError::Locked {
                            path: path.to_path_buf(),
                            pid,
                            running: pid.and_then(running),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(RegistryError::Io { action: "create", path: path.to_path_buf(), source: e }),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Whether a process with this pid exists (`None` where that cannot be told).
fn running(pid: u32) -> Option<bool> {
    let proc = Path::new("/proc");
    proc.join("self").exists().then(|| proc.join(pid.to_string()).exists())
}
