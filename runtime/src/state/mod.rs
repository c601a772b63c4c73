//! State backends: where the applied [`State`] lives between runs. In: a `State` to store (under
//! a held lock), or a request for the current or an older version. Out: the stored `State`, the
//! list of versions kept, and a [`LockGuard`] that makes its holder the only writer.
//!
//! One trait, [`StateBackend`], with two implementations:
//! - [`local::LocalState`]: a directory on this machine (the embedded default);
//! - [`postgres::PostgresState`]: tables in a PostgreSQL schema, for teams.
//!
//! The contract both keep (one test suite runs against both):
//! - [`StateBackend::lock`] never waits. While another holder has the lock it fails at once with
//!   [`StateError::Locked`], which names the holder ([`LockInfo`]: operation, user@host, pid, since).
//! - Dropping the [`LockGuard`] releases the lock. A holder that crashes leaves its lock behind on
//!   the local backend (cleared by [`StateBackend::force_unlock`] with the lock's id); on PostgreSQL
//!   the server releases it when the crashed session's connection closes.
//! - [`StateBackend::write`] is accepted only while the store's current lock is the guard's, for
//!   the lineage already stored, and with a serial exactly one above the stored one (the first
//!   state has serial 1). The caller increments the serial; the backend only checks it.
//! - Every version written is kept and can be listed ([`StateBackend::history`]) and read back
//!   ([`StateBackend::read_version`]).
//! - A state may hold secrets, so no error message quotes a state body, and nothing is logged.

mod holder;
pub mod local;
pub mod postgres;

use std::fmt;
use std::path::PathBuf;

use mlops_compiler::state::{State, STATE_FORMAT_VERSION};
use serde::{Deserialize, Serialize};

pub use holder::{new_lineage, rfc3339};
pub use local::LocalState;
pub use postgres::PostgresState;

/// The backend a configuration declares (`mlops { backend "local" | "postgres" { … } }`), with
/// relative paths resolved against the configuration directory `root`.
pub fn open(
    root: &std::path::Path,
    backend: &mlops_compiler::model::Backend,
) -> Result<Box<dyn StateBackend>, StateError> {
    use mlops_compiler::model::Backend;
    match backend {
        Backend::Local { path } => Ok(Box::new(LocalState::new(root.join(path)))),
        Backend::Postgres { conn_str, conn_str_env, schema } => {
            let conn = match (conn_str, conn_str_env) {
                (Some(c), _) => c.clone(),
                (None, Some(var)) => std::env::var(var).map_err(|_| StateError::Config {
                    message: format!(
                        "environment variable {var} (conn_str_env) is not set; export the connection string in it"
                    ),
                })?,
                (None, None) => {
                    return Err(StateError::Config {
                        message: "backend \"postgres\" needs conn_str_env (or conn_str)".to_string(),
                    })
                }
            };
            Ok(Box::new(PostgresState::connect(&conn, schema)?))
        }
    }
}

/// Where state is kept. Every method takes `&self`; implementations serialise their own access.
pub trait StateBackend: Send {
    /// Names the store for messages, e.g. "local state at .mlops/state" or "postgres state
    /// (schema mlops)". Never includes credentials.
    fn describe(&self) -> String;

    /// Takes the lock for `operation` ("apply", "destroy" …). Fails at once with
    /// [`StateError::Locked`], naming the holder, when someone else holds it.
    fn lock(&self, operation: &str) -> Result<LockGuard, StateError>;

    /// Clears the current lock, whoever holds it, if its id is `lock_id`: for a holder that
    /// crashed, or one that must be stopped. Any other id is refused and nothing changes.
    fn force_unlock(&self, lock_id: &str) -> Result<(), StateError>;

    /// The current state, or `None` when nothing was ever written.
    fn read(&self) -> Result<Option<State>, StateError>;

    /// Stores `state` as the new current version, keeping the previous ones. Refused unless
    /// `lock` is the store's current lock, `state.lineage` is the stored lineage (any lineage for
    /// the first write) and `state.serial` is the stored serial plus one (1 for the first write).
    fn write(&self, lock: &LockGuard, state: &State) -> Result<(), StateError>;

    /// Every version kept, oldest first.
    fn history(&self) -> Result<Vec<StateVersion>, StateError>;

    /// The version with this serial.
    fn read_version(&self, serial: u64) -> Result<State, StateError>;
}

/// Who holds a lock. Stored with the lock (the local lock file's content, the postgres `locks`
/// row) so that a second process can say who is in its way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Random id of this lock (UUID-v4 form); `force_unlock` must be given it.
    pub id: String,
    /// What the holder is doing ("apply", "destroy", "refresh" …).
    pub operation: String,
    /// `user@host` of the holder.
    pub who: String,
    /// The holder's process id on its host.
    pub pid: u32,
    /// When the lock was taken, RFC 3339 UTC (`2024-01-31T12:00:00Z`).
    pub created: String,
}

impl fmt::Display for LockInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (pid {}), running `{}` since {}, lock id {}",
            self.who, self.pid, self.operation, self.created, self.id
        )
    }
}

/// A held lock. Dropping it releases the lock (errors on that path are ignored; call
/// [`LockGuard::release`] to see them). It is not `Clone`: there is one holder.
pub struct LockGuard {
    info: LockInfo,
    // `None` once released.
    held: Option<Box<dyn HeldLock>>,
}

/// How a backend lets go of a lock it granted (remove the lock file; delete the row and release
/// the advisory lock).
pub(crate) trait HeldLock: Send {
    /// Releases the lock if it is still this holder's; a lock already cleared by `force_unlock`
    /// (and perhaps taken by someone else since) is left alone.
    fn release(self: Box<Self>) -> Result<(), StateError>;
}

impl LockGuard {
    pub(crate) fn new(info: LockInfo, held: Box<dyn HeldLock>) -> LockGuard {
        LockGuard { info, held: Some(held) }
    }

    /// Who holds the lock: this process.
    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    /// The lock's id, for `force_unlock`.
    pub fn id(&self) -> &str {
        &self.info.id
    }

    /// Releases the lock now, reporting any error.
    pub fn release(mut self) -> Result<(), StateError> {
        match self.held.take() {
            Some(held) => held.release(),
            None => Ok(()),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            // Nowhere to report from a destructor; a lock left behind is reported to the next
            // locker with its id, and `force_unlock` clears it.
            let _ = held.release();
        }
    }
}

impl fmt::Debug for LockGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").field("info", &self.info).field("held", &self.held.is_some()).finish()
    }
}

/// One kept version of the state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateVersion {
    /// Its serial.
    pub serial: u64,
    /// When it was written, Unix seconds.
    pub written_at: u64,
    /// Size of its JSON encoding in bytes.
    pub size: u64,
}

/// Why a state operation failed. Messages name the store or file, never quote a state body.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A filesystem operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "rename into place" …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A stored state that cannot be decoded.
    #[error("{location} is corrupted: {problem}; {help}")]
    Corrupt {
        /// The file, or the store and serial.
        location: String,
        /// What is wrong (a position, never the content).
        problem: String,
        /// How to recover from the versions kept.
        help: String,
    },
    /// A state written by a newer mlops.
    #[error("{location} has state format {found}, but this mlops reads up to format {supported}; upgrade mlops")]
    UnsupportedFormat {
        /// The file, or the store and serial.
        location: String,
        /// Its `format_version`.
        found: u32,
        /// [`STATE_FORMAT_VERSION`].
        supported: u32,
    },
    /// Someone else holds the lock.
    #[error("{store} is locked{}", locked_detail(holder.as_deref(), note.as_deref()))]
    Locked {
        /// The store ([`StateBackend::describe`]).
        store: String,
        /// The holder, when it is recorded.
        holder: Option<Box<LockInfo>>,
        /// More about the holder (it seems to have crashed; its record is unreadable …).
        note: Option<String>,
    },
    /// `force_unlock` with nothing locked.
    #[error("{store} is not locked; nothing to unlock")]
    NotLocked {
        /// The store.
        store: String,
    },
    /// `force_unlock` with an id that is not the current lock's.
    #[error("lock id {given} is not the current lock of {store} ({}); nothing was unlocked", current_lock(current_id, holder.as_deref()))]
    LockIdMismatch {
        /// The store.
        store: String,
        /// The id given.
        given: String,
        /// The current lock's id.
        current_id: String,
        /// The current holder, when recorded.
        holder: Option<Box<LockInfo>>,
    },
    /// A write whose guard is not the store's current lock.
    #[error("refusing to write {store}: lock {lock_id} is not held ({reason})")]
    NotLockHolder {
        /// The store.
        store: String,
        /// The guard's lock id.
        lock_id: String,
        /// What holds the store instead.
        reason: String,
    },
    /// A write of another system's state.
    #[error(
        "refusing to write {store}: it holds lineage {stored}, the new state has lineage {given}; \
         these are different systems' states"
    )]
    LineageMismatch {
        /// The store.
        store: String,
        /// Lineage of the stored state.
        stored: String,
        /// Lineage of the refused state.
        given: String,
    },
    /// A write whose serial does not follow the stored one.
    #[error(
        "refusing to write {store}: serial {given} does not follow the stored serial {current} (expected {}); \
         the state changed since it was read, or the serial was not incremented", current + 1
    )]
    SerialNotNext {
        /// The store.
        store: String,
        /// The stored serial (0 when empty).
        current: u64,
        /// The refused state's serial.
        given: u64,
    },
    /// No such version kept.
    #[error("{store} has no version with serial {serial}")]
    NoSuchVersion {
        /// The store.
        store: String,
        /// The serial asked for.
        serial: u64,
    },
    /// A database operation failed.
    #[error("{store}: cannot {action}: {message}")]
    Database {
        /// The store.
        store: String,
        /// What was being done.
        action: &'static str,
        /// The server's or client's message (never a state body).
        message: String,
    },
    /// A PostgreSQL schema name that is not a plain identifier.
    #[error("invalid state schema name {schema:?}: {reason}")]
    InvalidSchema {
        /// The name given.
        schema: String,
        /// Why.
        reason: &'static str,
    },
    /// The `backend` block cannot be used as written.
    #[error("state backend: {message}")]
    Config {
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A state that cannot be stored.
    #[error("cannot store the state: {message}")]
    Invalid {
        /// Why (never the content).
        message: String,
    },
}

fn locked_detail(holder: Option<&LockInfo>, note: Option<&str>) -> String {
    let mut s = String::new();
    if let Some(h) = holder {
        s.push_str(&format!(" by {h}"));
    }
    if let Some(n) = note {
        s.push_str(&format!("; {n}"));
    }
    if let Some(h) = holder {
        s.push_str(&format!(
            "; `mlops force-unlock {}` clears the lock if that process has ended or must be stopped",
            h.id
        ));
    }
    s
}

fn current_lock(id: &str, holder: Option<&LockInfo>) -> String {
    match holder {
        Some(h) => format!("held by {h}"),
        None => format!("lock id {id}"),
    }
}

/// Checks that `next` may follow the stored state (`previous`: its serial and lineage).
pub(crate) fn check_successor(store: &str, previous: Option<(u64, &str)>, next: &State) -> Result<(), StateError> {
    let current = match previous {
        Some((serial, lineage)) => {
            if lineage != next.lineage {
                return Err(StateError::LineageMismatch {
                    store: store.to_string(),
                    stored: lineage.to_string(),
                    given: next.lineage.clone(),
                });
            }
            serial
        }
        None => 0,
    };
    if current.checked_add(1) != Some(next.serial) {
        return Err(StateError::SerialNotNext { store: store.to_string(), current, given: next.serial });
    }
    if next.lineage.is_empty() {
        return Err(StateError::Invalid { message: "the state has an empty lineage".to_string() });
    }
    Ok(())
}

/// Decodes a stored state. `location` names it and `help` says how to recover, for errors.
/// serde_json's messages can quote the offending value, so only its position is reported.
pub(crate) fn decode_state(
    bytes: &[u8],
    location: &dyn Fn() -> String,
    help: &dyn Fn() -> String,
) -> Result<State, StateError> {
    // Read the format first: a newer format is not corruption, and may not decode as this one.
    #[derive(Deserialize)]
    struct Head {
        format_version: u32,
    }
    if let Ok(head) = serde_json::from_slice::<Head>(bytes) {
        if head.format_version > STATE_FORMAT_VERSION {
            return Err(StateError::UnsupportedFormat {
                location: location(),
                found: head.format_version,
                supported: STATE_FORMAT_VERSION,
            });
        }
    }
    serde_json::from_slice(bytes).map_err(|e| StateError::Corrupt {
        location: location(),
        problem: json_problem(&e),
        help: help(),
    })
}

/// What is wrong with a JSON document, without quoting it.
fn json_problem(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = format!("line {}, column {}", e.line(), e.column());
    match e.classify() {
        Category::Eof if e.line() <= 1 && e.column() == 0 => "it is empty".to_string(),
        Category::Eof => format!("it ends early, as if cut off ({at})"),
        Category::Syntax => format!("it is not valid JSON ({at})"),
        Category::Data => {
            // "missing field `x`" quotes only a field name of the format; other messages (an
            // invalid type or value) may quote the content.
            let message = e.to_string();
            match message.strip_prefix("missing field `").and_then(|rest| rest.split('`').next()) {
                Some(field) => format!("it lacks the field `{field}` ({at})"),
                None => format!("it is JSON but not a state of this format ({at})"),
            }
        }
        Category::Io => "it could not be read".to_string(),
    }
}

/// Encodes a state for storing; `pretty` for files people may read.
pub(crate) fn encode_state(state: &State, pretty: bool) -> Result<Vec<u8>, StateError> {
    let encoded = if pretty { serde_json::to_vec_pretty(state) } else { serde_json::to_vec(state) };
    // Serialising these types fails only on a map with non-string keys; the error names no value.
    encoded.map_err(|e| StateError::Invalid { message: format!("it cannot be encoded as JSON: {e}") })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(serial: u64, lineage: &str) -> State {
        State { serial, ..State::new("sys", lineage.to_string()) }
    }

    #[test]
    fn successor_rules() {
        assert!(check_successor("s", None, &state(1, "a")).is_ok());
        assert!(matches!(check_successor("s", None, &state(2, "a")), Err(StateError::SerialNotNext { .. })));
        assert!(matches!(check_successor("s", None, &state(0, "a")), Err(StateError::SerialNotNext { .. })));
        assert!(check_successor("s", Some((4, "a")), &state(5, "a")).is_ok());
        assert!(matches!(check_successor("s", Some((4, "a")), &state(4, "a")), Err(StateError::SerialNotNext { .. })));
        assert!(matches!(
            check_successor("s", Some((4, "a")), &state(5, "b")),
            Err(StateError::LineageMismatch { .. })
        ));
        assert!(matches!(
            check_successor("s", Some((u64::MAX, "a")), &state(0, "a")),
            Err(StateError::SerialNotNext { .. })
        ));
        assert!(matches!(check_successor("s", None, &state(1, "")), Err(StateError::Invalid { .. })));
    }

    #[test]
    fn decoding_errors_never_quote_the_content() {
        let loc = || "f".to_string();
        let help = || "h".to_string();
        for bad in [
            &br#"{"format_version": 1, "serial": "hunter2"}"#[..],
            br#"{"format_version": 1, "serial": 1, "lineage": "x", "system": "s", "resources": {"a": "hunter2"}}"#,
            br#"{"format_version": 1, "hunter2"#,
            br#"hunter2"#,
        ] {
            let e = decode_state(bad, &loc, &help).unwrap_err();
            assert!(matches!(e, StateError::Corrupt { .. }), "{e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        let e = decode_state(br#"{"format_version": 1}"#, &loc, &help).unwrap_err();
        assert!(e.to_string().contains("lacks the field `serial`"), "{e}");
        let e = decode_state(b"", &loc, &help).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let e = decode_state(br#"{"format_version": 99, "future": true}"#, &loc, &help).unwrap_err();
        assert!(matches!(e, StateError::UnsupportedFormat { found: 99, .. }), "{e}");
    }
}
