//! The registry's file operations: the shared durable writes of [`crate::fsio`] with the
//! registry's error type, and an exclusive lock file naming its holder.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::RegistryError;

pub(crate) fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RegistryError + 'a {
    move |source| RegistryError::Io { action, path: path.to_path_buf(), source }
}

impl From<crate::fsio::FsError> for RegistryError {
    fn from(e: crate::fsio::FsError) -> Self {
        RegistryError::Io { action: e.action, path: e.path, source: e.source }
    }
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    Ok(crate::fsio::write_atomic(path, bytes)?)
}

pub(crate) fn create_dirs(dir: &Path) -> Result<(), RegistryError> {
    Ok(crate::fsio::create_dirs(dir)?)
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
