//! The local state backend (the embedded default): a directory on this machine. In: the
//! directory. Out: [`StateBackend`] over these files:
//!
//! ```text
//! <dir>/state.json                    the current state (pretty JSON)
//! <dir>/history/state-<serial>.json   every version written, the current one included
//! <dir>/.lock                         present while the lock is held: the holder's LockInfo (JSON)
//! <dir>/.state.json.tmp-<pid>         a write in progress; a crash may leave one (never read)
//! ```
//!
//! Every file is replaced atomically (write a temporary file in the same directory, fsync it,
//! rename it over the target, fsync the directory), so after a crash each is entirely old or
//! entirely new. A write stores `state.json` first and then its history copy; if a crash falls
//! in between, `history` and `read_version` take the missing version from `state.json`, and
//! the next write copies it into `history/` before replacing it. The lock file is created with
//! `create_new`, so exactly one process creates it; a holder that crashes leaves it behind,
//! reported to the next locker (with whether its pid still runs on this host) until
//! `force_unlock` removes it. A write checks that the lock file still holds its guard's id before
//! writing, so a holder that was force-unlocked writes nothing more; but a file cannot be locked
//! against a write already past that check, so `force_unlock` here is for holders that are gone.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use mlops_compiler::state::State;
use sha2::{Digest, Sha256};

use super::holder::{holder_is_dead, lock_info};
use super::{check_successor, decode_state, encode_state, HeldLock, LockGuard, LockInfo, StateBackend};
use super::{StateError, StateVersion};

const STATE_FILE: &str = "state.json";
const HISTORY_DIR: &str = "history";
const LOCK_FILE: &str = ".lock";

/// State kept in a directory (created on the first lock).
#[derive(Debug, Clone)]
pub struct LocalState {
    dir: PathBuf,
}

impl LocalState {
    /// The state directory `dir` (conventionally `.mlops/state`). Nothing is touched until used.
    pub fn new(dir: impl Into<PathBuf>) -> LocalState {
        LocalState { dir: dir.into() }
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    fn history_dir(&self) -> PathBuf {
        self.dir.join(HISTORY_DIR)
    }

    fn history_path(&self, serial: u64) -> PathBuf {
        self.history_dir().join(format!("state-{serial}.json"))
    }

    fn lock_path(&self) -> PathBuf {
        self.dir.join(LOCK_FILE)
    }

    /// The serials in `history/`, ascending (none when it does not exist).
    fn history_serials(&self) -> Result<Vec<u64>, StateError> {
        let dir = self.history_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("list", &dir, e)),
        };
        let mut serials = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_error("list", &dir, e))?;
            let name = entry.file_name();
            let digits = name.to_str().and_then(|n| n.strip_prefix("state-")?.strip_suffix(".json"));
            // Only names this backend writes (no sign, no leading zeros), so each maps back to its file.
            let serial = digits.and_then(|d| d.parse::<u64>().ok().filter(|s| s.to_string() == d));
            serials.extend(serial);
        }
        serials.sort_unstable();
        Ok(serials)
    }

    /// How to recover from a bad `state.json`, naming the newest version kept.
    fn recovery_help(&self) -> String {
        let state = self.state_path();
        match self.history_serials().ok().and_then(|s| s.last().copied()) {
            Some(newest) => format!(
                "every version written is kept in {} (list them with `history`); restore the newest good one by \
                 copying it over {}, e.g. {}",
                self.history_dir().display(),
                state.display(),
                self.history_path(newest).display()
            ),
            None => format!(
                "no earlier versions are kept in {}; repair or remove {} by hand",
                self.history_dir().display(),
                state.display()
            ),
        }
    }

    /// The current state and its bytes, `None` when there is none.
    fn read_current(&self) -> Result<Option<(State, Vec<u8>)>, StateError> {
        let path = self.state_path();
        match fs::read(&path) {
            Ok(bytes) => {
                let state = decode_state(&bytes, &|| path.display().to_string(), &|| self.recovery_help())?;
                Ok(Some((state, bytes)))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Versions kept but no current state: it was deleted. Starting again at serial 1
                // would overwrite the history, so say so instead of reading "no state".
                match self.history_serials()?.last() {
                    Some(&newest) => Err(StateError::Corrupt {
                        location: path.display().to_string(),
                        problem: format!("it is missing, although versions up to serial {newest} are kept"),
                        help: format!(
                            "restore the newest by copying {} to {}",
                            self.history_path(newest).display(),
                            path.display()
                        ),
                    }),
                    None => Ok(None),
                }
            }
            Err(e) => Err(io_error("read", &path, e)),
        }
    }

    /// The lock file's holder: `Ok(None)` when unlocked, `Err(bytes)` when the file holds no
    /// readable record (its creator crashed between creating and writing it).
    fn read_lock(&self) -> Result<Option<Result<LockInfo, Vec<u8>>>, StateError> {
        let path = self.lock_path();
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|_| bytes))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error("read", &path, e)),
        }
    }

    /// Like [`Self::read_lock`], but gives a holder that has just created the file (empty until
    /// its single write) a moment to write its record before calling the record unreadable.
    fn read_lock_settled(&self) -> Result<Option<Result<LockInfo, Vec<u8>>>, StateError> {
        let mut record = self.read_lock()?;
        for _ in 0..20 {
            if !matches!(record, Some(Err(_))) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            record = self.read_lock()?;
        }
        Ok(record)
    }

    fn locked_error(&self, record: Result<LockInfo, Vec<u8>>) -> StateError {
        match record {
            Ok(info) => {
                let note = holder_is_dead(&info)
                    .then(|| format!("process {} is no longer running on this host, so the lock is stale", info.pid));
                StateError::Locked { store: self.describe(), holder: Some(Box::new(info)), note }
            }
            Err(bytes) => StateError::Locked {
                store: self.describe(),
                holder: None,
                note: Some(format!(
                    "{} holds no readable lock record (its holder may have crashed while taking the lock); if no \
                     mlops process is using this state, `mlops force-unlock {}` clears it",
                    self.lock_path().display(),
                    unreadable_lock_id(&bytes)
                )),
            },
        }
    }

    /// Removes temporary files of writes that never finished. Only called by the lock holder:
    /// no one else may be writing.
    fn remove_leftovers(&self) {
        for dir in [self.dir.clone(), self.history_dir()] {
            let Ok(entries) = fs::read_dir(&dir) else { continue };
            for entry in entries.flatten() {
                if entry.file_name().to_str().is_some_and(|n| n.starts_with('.') && n.contains(".tmp-")) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }
}

impl StateBackend for LocalState {
    fn describe(&self) -> String {
        format!("local state at {}", self.dir.display())
    }

    fn lock(&self, operation: &str) -> Result<LockGuard, StateError> {
        create_dirs(&self.dir)?;
        let path = self.lock_path();
        let info = lock_info(operation)?;
        let mut record = serde_json::to_vec_pretty(&info)
            .map_err(|e| StateError::Invalid { message: format!("cannot encode the lock record: {e}") })?;
        record.push(b'\n');
        // A lock released between our failed create and our read of it: try again, a few times,
        // never waiting on a holder.
        for _ in 0..3 {
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut file) => {
                    let written = file.write_all(&record).and_then(|()| file.sync_all());
                    if let Err(e) = written {
                        let _ = fs::remove_file(&path);
                        return Err(io_error("write", &path, e));
                    }
                    // From here the lock is ours; the guard removes it if syncing the directory fails.
                    let id = info.id.clone();
                    let guard = LockGuard::new(info, Box::new(LocalLock { path: path.clone(), id }));
                    sync_dir(&self.dir)?;
                    self.remove_leftovers();
                    return Ok(guard);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match self.read_lock_settled()? {
                    Some(record) => return Err(self.locked_error(record)),
                    None => continue,
                },
                Err(e) => return Err(io_error("create", &path, e)),
            }
        }
        Err(StateError::Locked {
            store: self.describe(),
            holder: None,
            note: Some("other processes are taking and releasing the lock continually; try again".to_string()),
        })
    }

    fn force_unlock(&self, lock_id: &str) -> Result<(), StateError> {
        let current = match self.read_lock()? {
            None => return Err(StateError::NotLocked { store: self.describe() }),
            Some(Ok(info)) => (info.id.clone(), Some(Box::new(info))),
            Some(Err(bytes)) => (unreadable_lock_id(&bytes), None),
        };
        if current.0 != lock_id {
            return Err(StateError::LockIdMismatch {
                store: self.describe(),
                given: lock_id.to_string(),
                current_id: current.0,
                holder: current.1,
            });
        }
        let path = self.lock_path();
        match fs::remove_file(&path) {
            Ok(()) => {}
            // Released by its holder meanwhile: the same outcome.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove", &path, e)),
        }
        sync_dir(&self.dir)
    }

    fn read(&self) -> Result<Option<State>, StateError> {
        Ok(self.read_current()?.map(|(state, _)| state))
    }

    fn write(&self, lock: &LockGuard, state: &State) -> Result<(), StateError> {
        let not_held = |reason: String| StateError::NotLockHolder {
            store: self.describe(),
            lock_id: lock.id().to_string(),
            reason,
        };
        match self.read_lock()? {
            Some(Ok(info)) if info.id == lock.id() => {}
            Some(Ok(info)) => return Err(not_held(format!("the lock is held by {info}"))),
            Some(Err(_)) => return Err(not_held(format!("{} holds another, unreadable lock", LOCK_FILE))),
            None => return Err(not_held("no lock is held; was it force-unlocked?".to_string())),
        }
        let current = self.read_current()?;
        check_successor(&self.describe(), current.as_ref().map(|(s, _)| (s.serial, s.lineage.as_str())), state)?;
        let mut bytes = encode_state(state, true)?;
        bytes.push(b'\n');

        create_dirs(&self.history_dir())?;
        // The current version reaches history/ after state.json; a crash in between leaves it
        // only in state.json, so copy it before replacing it.
        if let Some((previous, previous_bytes)) = &current {
            let kept = self.history_path(previous.serial);
            if !kept.exists() {
                write_atomic(&kept, previous_bytes)?;
            }
        }
        write_atomic(&self.state_path(), &bytes)?;
        write_atomic(&self.history_path(state.serial), &bytes)
    }

    fn history(&self) -> Result<Vec<StateVersion>, StateError> {
        let mut versions = Vec::new();
        for serial in self.history_serials()? {
            let path = self.history_path(serial);
            let meta = fs::metadata(&path).map_err(|e| io_error("inspect", &path, e))?;
            versions.push(StateVersion { serial, written_at: modified_secs(&meta), size: meta.len() });
        }
        // The current version may be missing from history/ after a crash. A corrupt state.json
        // is left out rather than failing: this is the listing to recover it from.
        let path = self.state_path();
        if let Ok(Some((current, bytes))) = self.read_current() {
            if !versions.iter().any(|v| v.serial == current.serial) {
                let written_at = fs::metadata(&path).map(|m| modified_secs(&m)).unwrap_or(0);
                versions.push(StateVersion { serial: current.serial, written_at, size: bytes.len() as u64 });
            }
        }
        Ok(versions)
    }

    fn read_version(&self, serial: u64) -> Result<State, StateError> {
        let path = self.history_path(serial);
        match fs::read(&path) {
            Ok(bytes) => {
                let state = decode_state(&bytes, &|| path.display().to_string(), &|| self.recovery_help())?;
                if state.serial != serial {
                    return Err(StateError::Corrupt {
                        location: path.display().to_string(),
                        problem: format!("it holds serial {}, not {serial}", state.serial),
                        help: self.recovery_help(),
                    });
                }
                Ok(state)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => match self.read_current()? {
                Some((current, _)) if current.serial == serial => Ok(current),
                _ => Err(StateError::NoSuchVersion { store: self.describe(), serial }),
            },
            Err(e) => Err(io_error("read", &path, e)),
        }
    }
}

/// The local lock held: removed on release if it is still ours.
struct LocalLock {
    path: PathBuf,
    id: String,
}

impl HeldLock for LocalLock {
    fn release(self: Box<Self>) -> Result<(), StateError> {
        // After a force-unlock the file may be someone else's lock: leave it. (Another process
        // could force-unlock and relock between this read and the removal; both would need a
        // force-unlock racing a release, which the id check on writes still makes harmless.)
        let ours = match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice::<LockInfo>(&bytes).is_ok_and(|info| info.id == self.id),
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_error("read", &self.path, e)),
        };
        if !ours {
            return Ok(());
        }
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error("remove", &self.path, e)),
        }
        match self.path.parent() {
            Some(dir) => sync_dir(dir),
            None => Ok(()),
        }
    }
}

/// The id `force_unlock` accepts for a lock file holding no readable record: derived from the
/// content, so a record written meanwhile (a live holder finishing its lock) no longer matches.
fn unreadable_lock_id(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("unreadable-{hex}")
}

fn io_error(action: &'static str, path: &Path, source: io::Error) -> StateError {
    StateError::Io { action, path: path.to_path_buf(), source }
}

fn modified_secs(meta: &fs::Metadata) -> u64 {
    meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs())
}

impl From<crate::fsio::FsError> for StateError {
    fn from(e: crate::fsio::FsError) -> Self {
        io_error(e.action, &e.path, e.source)
    }
}

fn sync_dir(dir: &Path) -> Result<(), StateError> {
    Ok(crate::fsio::sync_dir(dir)?)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    Ok(crate::fsio::write_atomic(path, bytes)?)
}

fn create_dirs(dir: &Path) -> Result<(), StateError> {
    Ok(crate::fsio::create_dirs(dir)?)
}
