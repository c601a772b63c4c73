//! The registry's file operations: the shared durable writes of [`crate::fsio`] with the
//! registry's error type, and an exclusive lock file naming its holder.

use std::fs::{self, OpenOptions};
use std::io::{self, Seek, Write};
use std::path::Path;
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

/// An exclusive lock: an advisory `flock` on a lock file that holds the owner's pid. The kernel
/// releases it when its holder exits, however it exits, so a registration killed half-way never
/// blocks the next one; the pid is only there to name the holder in messages. The file itself is
/// left in place (removing it would race with a waiter that has it open).
#[derive(Debug)]
pub(crate) struct Lock {
    // Holding the open file holds the lock.
    file: fs::File,
}

impl Lock {
    /// Takes the lock, retrying for up to `wait` while another process holds it.
    pub(crate) fn acquire(path: &Path, wait: Duration) -> Result<Lock, RegistryError> {
        let start = Instant::now();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io_err("open", path))?;
        loop {
            match file.try_lock() {
                Ok(()) => {
                    file.set_len(0)
                        .and_then(|()| file.seek(io::SeekFrom::Start(0)).map(drop))
                        .and_then(|()| file.write_all(std::process::id().to_string().as_bytes()))
                        .map_err(io_err("write", path))?;
                    return Ok(Lock { file });
                }
                Err(fs::TryLockError::WouldBlock) => {
                    if start.elapsed() >= wait {
                        let pid = fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok());
                        return Err(RegistryError::Locked { path: path.to_path_buf(), pid });
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(fs::TryLockError::Error(e)) => {
                    return Err(RegistryError::Io { action: "lock", path: path.to_path_buf(), source: e })
                }
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // An empty file names no holder; the kernel releases the lock when the file closes.
        let _ = self.file.set_len(0);
    }
}
