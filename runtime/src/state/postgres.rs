//! The PostgreSQL state backend, for teams sharing one state. In: a libpq-style connection
//! string and a schema name. Out: [`StateBackend`] over two tables, created when missing:
//!
//! ```text
//! <schema>.states (serial bigint primary key, lineage text, body jsonb, written_at timestamptz)
//!                 one row per version written; the current state is the highest serial
//! <schema>.locks  (id text primary key, info jsonb, backend_pid integer)
//!                 at most one row: the holder's LockInfo and its server session's pid
//! ```
//!
//! The lock is a session-level advisory lock (`pg_try_advisory_lock`, never waiting) on a key
//! derived from the schema name, held on a connection of its own that the [`LockGuard`] owns. The
//! server releases it when that session ends, so a holder that crashes frees the lock by itself;
//! the `locks` row only says who holds it, so that a second process can name the holder. A row
//! whose session no longer holds the advisory lock is stale and is ignored, then replaced.
//!
//! [`PostgresState::force_unlock`] is for a holder that must be stopped: given the current lock's
//! id, it terminates the holder's session if it is still connected (`pg_terminate_backend` on the
//! recorded `pg_backend_pid()`, which needs the same role, a superuser, or `pg_signal_backend`),
//! deletes the row, and waits (up to ten seconds) for the advisory lock to be freed. The stopped
//! process's later writes are refused: a write checks, in its transaction and with the `locks`
//! row locked, that the row is the guard's and that its session still holds the advisory lock.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use mlops_compiler::state::State;
use postgres::error::SqlState;
use postgres::{Client, NoTls};
use sha2::{Digest, Sha256};

use super::holder::lock_info;
use super::{check_successor, decode_state, encode_state, HeldLock, LockGuard, LockInfo, StateBackend};
use super::{StateError, StateVersion};

/// How long `force_unlock` waits for a terminated holder's session to end.
const TERMINATE_WAIT: Duration = Duration::from_secs(10);

/// State kept in a PostgreSQL schema.
pub struct PostgresState {
    conn_str: String,
    schema: String,
    /// The advisory lock key, from the schema name.
    key: i64,
    /// For reads, writes and `force_unlock`; reconnected when the server closed it.
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for PostgresState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the connection string: it may hold a password.
        f.debug_struct("PostgresState").field("schema", &self.schema).finish_non_exhaustive()
    }
}

impl PostgresState {
    /// Connects to the database of `conn_str` (libpq key=value or URL form) and creates `schema`
    /// and its tables if missing. `schema` must be a plain identifier (letters, digits, `_`).
    pub fn connect(conn_str: &str, schema: &str) -> Result<PostgresState, StateError> {
        check_schema(schema)?;
        let state = PostgresState {
            conn_str: conn_str.to_string(),
            schema: schema.to_string(),
            key: advisory_key("mlops state lock", schema),
            client: Mutex::new(None),
        };
        state.with_client("create the state tables", |client| state.create_tables(client))?;
        Ok(state)
    }

    /// The schema holding the tables.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    fn table(&self, name: &str) -> String {
        format!("\"{}\".{name}", self.schema)
    }

    fn db_error(&self, action: &'static str) -> impl Fn(postgres::Error) -> StateError + '_ {
        move |e| StateError::Database { store: self.describe(), action, message: db_message(&e) }
    }

    fn open_connection(&self, action: &'static str) -> Result<Client, StateError> {
        Client::connect(&self.conn_str, NoTls).map_err(self.db_error(action))
    }

    /// Runs `f` on the shared connection, connecting first when there is none or it closed.
    fn with_client<T>(
        &self,
        action: &'static str,
        f: impl FnOnce(&mut Client) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        // A panic elsewhere while holding the mutex leaves at worst an aborted transaction,
        // which postgres rolls back; the connection is still usable.
        let mut slot: MutexGuard<'_, Option<Client>> = self.client.lock().unwrap_or_else(|p| p.into_inner());
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = Some(self.open_connection(action)?);
        }
        match slot.as_mut() {
            Some(client) => f(client),
            None => Err(StateError::Database { store: self.describe(), action, message: "no connection".to_string() }),
        }
    }

    fn create_tables(&self, client: &mut Client) -> Result<(), StateError> {
        let err = self.db_error("create the state tables");
        let mut tx = client.transaction().map_err(&err)?;
        // Two processes creating the same table at once can collide in the catalog; a lock of its
        // own (not the state lock, which a holder keeps for a long time) serialises them.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&advisory_key("mlops state tables", &self.schema)])
            .map_err(&err)?;
        // Only create what is missing, so a role without CREATE can use tables made for it.
        let schema_exists = tx
            .query_one("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", &[&self.schema])
            .map_err(&err)?
            .get::<_, bool>(0);
        if !schema_exists {
            tx.batch_execute(&format!("CREATE SCHEMA \"{}\"", self.schema)).map_err(&err)?;
        }
        let ddl = [
            (
                "states",
                "(serial bigint PRIMARY KEY CHECK (serial > 0), lineage text NOT NULL, body jsonb NOT NULL, \
                 written_at timestamptz NOT NULL DEFAULT now())",
            ),
            ("locks", "(id text PRIMARY KEY, info jsonb NOT NULL, backend_pid integer NOT NULL)"),
        ];
        for (name, columns) in ddl {
            let table = self.table(name);
            let exists = tx.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table]).map_err(&err)?.get::<_, bool>(0);
            if !exists {
                tx.batch_execute(&format!("CREATE TABLE {table} {columns}")).map_err(&err)?;
            }
        }
        tx.commit().map_err(&err)
    }

    /// The `locks` row, if any: its LockInfo (`Err(id)` when the info does not decode), its
    /// session's pid, and whether that session still holds the advisory lock.
    fn lock_row(
        &self,
        client: &mut impl postgres::GenericClient,
        for_update: bool,
    ) -> Result<Option<LockRow>, StateError> {
        let err = self.db_error("read the lock");
        let sql = format!(
            "SELECT id, info::text, backend_pid FROM {} ORDER BY id LIMIT 1{}",
            self.table("locks"),
            if for_update { " FOR UPDATE" } else { "" }
        );
        let Some(row) = client.query_opt(&sql, &[]).map_err(&err)? else { return Ok(None) };
        let id: String = row.get(0);
        let info: String = row.get(1);
        let backend_pid: i32 = row.get(2);
        let live = self.session_holds_lock(client, backend_pid)?;
        let info = serde_json::from_str::<LockInfo>(&info).map_err(|_| id);
        Ok(Some(LockRow { info, backend_pid, live }))
    }

    /// Whether the server session `pid` holds this schema's advisory lock.
    fn session_holds_lock(&self, client: &mut impl postgres::GenericClient, pid: i32) -> Result<bool, StateError> {
        // pg_locks shows a bigint advisory key as its high half in classid and its low half in
        // objid, with objsubid 1.
        let bits = self.key as u64;
        let (high, low) = (i64::from((bits >> 32) as u32), i64::from(bits as u32));
        client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1 \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                 AND classid::bigint = $2 AND objid::bigint = $3 AND objsubid = 1)",
                &[&pid, &high, &low],
            )
            .map(|row| row.get::<_, bool>(0))
            .map_err(self.db_error("inspect the advisory lock"))
    }

    fn decode(&self, serial: i64, body: &str) -> Result<State, StateError> {
        let location = || format!("{} version {serial}", self.describe());
        let help = || {
            format!(
                "every version written is kept in {} (list them with `history`); read an older one with \
                 `read_version`",
                self.table("states")
            )
        };
        decode_state(body.as_bytes(), &location, &help)
    }
}

/// What the `locks` row says.
struct LockRow {
    info: Result<LockInfo, String>,
    backend_pid: i32,
    /// Its session holds the advisory lock (otherwise the row is a crashed holder's).
    live: bool,
}

impl LockRow {
    fn id(&self) -> &str {
        match &self.info {
            Ok(info) => &info.id,
            Err(id) => id,
        }
    }

    fn holder(&self) -> Option<Box<LockInfo>> {
        self.info.as_ref().ok().map(|i| Box::new(i.clone()))
    }
}

impl StateBackend for PostgresState {
    fn describe(&self) -> String {
        format!("postgres state (schema {})", self.schema)
    }

    fn lock(&self, operation: &str) -> Result<LockGuard, StateError> {
        let err = self.db_error("take the lock");
        let mut conn = self.open_connection("connect to take the lock")?;
        let got: bool = conn.query_one("SELECT pg_try_advisory_lock($1)", &[&self.key]).map_err(&err)?.get(0);
        if !got {
            let row = self.lock_row(&mut conn, false)?.filter(|r| r.live);
            let note = match &row {
                Some(_) => None,
                // Between its pg_try_advisory_lock and its insert.
                None => Some("its holder is still recording itself; try again in a moment".to_string()),
            };
            return Err(StateError::Locked { store: self.describe(), holder: row.and_then(|r| r.holder()), note });
        }
        // From here the session holds the advisory lock: any error drops `conn`, which releases it.
        let info = lock_info(operation)?;
        let info_json = serde_json::to_string(&info)
            .map_err(|e| StateError::Invalid { message: format!("cannot encode the lock record: {e}") })?;
        let backend_pid: i32 = conn.query_one("SELECT pg_backend_pid()", &[]).map_err(&err)?.get(0);
        let mut tx = conn.transaction().map_err(&err)?;
        // A row left by a crashed holder, whose session (and advisory lock) is gone.
        tx.execute(&format!("DELETE FROM {}", self.table("locks")), &[]).map_err(&err)?;
        tx.execute(
            &format!("INSERT INTO {} (id, info, backend_pid) VALUES ($1, $2::text::jsonb, $3)", self.table("locks")),
            &[&info.id, &info_json, &backend_pid],
        )
        .map_err(&err)?;
        tx.commit().map_err(&err)?;
        let held = PostgresLock {
            client: conn,
            key: self.key,
            locks_table: self.table("locks"),
            id: info.id.clone(),
            store: self.describe(),
        };
        Ok(LockGuard::new(info, Box::new(held)))
    }

    fn force_unlock(&self, lock_id: &str) -> Result<(), StateError> {
        let err = self.db_error("force-unlock");
        let terminated = self.with_client("force-unlock", |client| {
            let mut tx = client.transaction().map_err(&err)?;
            // Locking the row waits for a write in progress under this lock to finish.
            let Some(row) = self.lock_row(&mut tx, true)? else {
                return Err(StateError::NotLocked { store: self.describe() });
            };
            if row.id() != lock_id {
                return Err(StateError::LockIdMismatch {
                    store: self.describe(),
                    given: lock_id.to_string(),
                    current_id: row.id().to_string(),
                    holder: row.holder(),
                });
            }
            if row.live {
                // Refused (an error) without the privilege to signal it: then nothing changes.
                tx.query_one("SELECT pg_terminate_backend($1)", &[&row.backend_pid]).map_err(&err)?;
            }
            tx.execute(&format!("DELETE FROM {} WHERE id = $1", self.table("locks")), &[&lock_id]).map_err(&err)?;
            tx.commit().map_err(&err)?;
            Ok(row.live.then_some(row.backend_pid))
        })?;
        let Some(pid) = terminated else { return Ok(()) };
        // The session ends asynchronously; return once the advisory lock is free.
        let deadline = Instant::now() + TERMINATE_WAIT;
        loop {
            let held = self.with_client("force-unlock", |client| self.session_holds_lock(client, pid))?;
            if !held {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(StateError::Database {
                    store: self.describe(),
                    action: "force-unlock",
                    message: format!(
                        "the lock record was removed, but server process {pid} still holds the advisory lock \
                         {}s after being terminated",
                        TERMINATE_WAIT.as_secs()
                    ),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn read(&self) -> Result<Option<State>, StateError> {
        let sql = format!("SELECT serial, body::text FROM {} ORDER BY serial DESC LIMIT 1", self.table("states"));
        let row =
            self.with_client("read the state", |c| c.query_opt(&sql, &[]).map_err(self.db_error("read the state")))?;
        row.map(|r| self.decode(r.get(0), r.get(1))).transpose()
    }

    fn write(&self, lock: &LockGuard, state: &State) -> Result<(), StateError> {
        let err = self.db_error("write the state");
        let serial = i64::try_from(state.serial)
            .map_err(|_| StateError::Invalid { message: format!("serial {} is too large", state.serial) })?;
        let body = String::from_utf8(encode_state(state, false)?)
            .map_err(|_| StateError::Invalid { message: "its JSON encoding is not UTF-8".to_string() })?;
        self.with_client("write the state", |client| {
            let mut tx = client.transaction().map_err(&err)?;
            let not_held = |reason: String| StateError::NotLockHolder {
                store: self.describe(),
                lock_id: lock.id().to_string(),
                reason,
            };
            // FOR UPDATE: a force-unlock waits for this write rather than slipping in mid-way.
            match self.lock_row(&mut tx, true)? {
                Some(row) if row.id() == lock.id() && row.live => {}
                Some(row) if row.id() == lock.id() => {
                    return Err(not_held("its session has ended, so the lock was lost".to_string()))
                }
                Some(row) => {
                    return Err(not_held(match row.info {
                        Ok(info) => format!("the lock is held by {info}"),
                        Err(id) => format!("the lock is held by lock id {id}"),
                    }))
                }
                None => return Err(not_held("no lock is held; was it force-unlocked?".to_string())),
            }
            let previous = tx
                .query_opt(
                    &format!("SELECT serial, lineage FROM {} ORDER BY serial DESC LIMIT 1", self.table("states")),
                    &[],
                )
                .map_err(&err)?
                .map(|r| (r.get::<_, i64>(0), r.get::<_, String>(1)));
            let previous = previous.map(|(s, l)| (u64::try_from(s).unwrap_or(0), l));
            check_successor(&self.describe(), previous.as_ref().map(|(s, l)| (*s, l.as_str())), state)?;
            tx.execute(
                &format!(
                    "INSERT INTO {} (serial, lineage, body, written_at) VALUES ($1, $2, $3::text::jsonb, now())",
                    self.table("states")
                ),
                &[&serial, &state.lineage, &body],
            )
            .map_err(&err)?;
            tx.commit().map_err(&err)
        })
    }

    fn history(&self) -> Result<Vec<StateVersion>, StateError> {
        let sql = format!(
            "SELECT serial, extract(epoch FROM written_at)::bigint, octet_length(body::text)::bigint FROM {} \
             ORDER BY serial",
            self.table("states")
        );
        let rows =
            self.with_client("list the versions", |c| c.query(&sql, &[]).map_err(self.db_error("list the versions")))?;
        Ok(rows
            .iter()
            .map(|r| StateVersion {
                serial: u64::try_from(r.get::<_, i64>(0)).unwrap_or(0),
                written_at: u64::try_from(r.get::<_, i64>(1)).unwrap_or(0),
                size: u64::try_from(r.get::<_, i64>(2)).unwrap_or(0),
            })
            .collect())
    }

    fn read_version(&self, serial: u64) -> Result<State, StateError> {
        let Ok(key) = i64::try_from(serial) else {
            return Err(StateError::NoSuchVersion { store: self.describe(), serial });
        };
        let sql = format!("SELECT body::text FROM {} WHERE serial = $1", self.table("states"));
        let row = self
            .with_client("read a version", |c| c.query_opt(&sql, &[&key]).map_err(self.db_error("read a version")))?;
        match row {
            Some(r) => self.decode(key, r.get(0)),
            None => Err(StateError::NoSuchVersion { store: self.describe(), serial }),
        }
    }
}

/// The advisory lock held: its session, released on drop of the guard.
struct PostgresLock {
    client: Client,
    key: i64,
    locks_table: String,
    id: String,
    store: String,
}

impl HeldLock for PostgresLock {
    fn release(mut self: Box<Self>) -> Result<(), StateError> {
        // Only our own row: after a force-unlock the row may be a new holder's. The unlock is
        // explicit rather than left to closing the connection, because the server notices a
        // closed connection asynchronously and the next locker must find the lock free.
        let delete = format!("DELETE FROM {} WHERE id = $1", self.locks_table);
        let released = self
            .client
            .execute(&delete, &[&self.id])
            .and_then(|_| self.client.query_one("SELECT pg_advisory_unlock($1)", &[&self.key]));
        let error = match released {
            Ok(_) => match self.client.close() {
                Ok(()) => return Ok(()),
                Err(e) => e,
            },
            // Terminated by a force-unlock, or the connection broke: the server released the
            // lock when the session ended.
            Err(e) if e.is_closed() || e.code() == Some(&SqlState::ADMIN_SHUTDOWN) || self.client.is_closed() => {
                return Ok(())
            }
            // Dropping the client ends the session, which releases the lock anyway.
            Err(e) => e,
        };
        Err(StateError::Database { store: self.store.clone(), action: "release the lock", message: db_message(&error) })
    }
}

/// A 64-bit advisory lock key for `purpose` on `schema` (advisory locks are per database).
fn advisory_key(purpose: &str, schema: &str) -> i64 {
    let digest = Sha256::digest(format!("{purpose}\0{schema}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// The schema name is put into SQL as a quoted identifier; allow only plain ones.
fn check_schema(schema: &str) -> Result<(), StateError> {
    let invalid = |reason| Err(StateError::InvalidSchema { schema: schema.to_string(), reason });
    let mut chars = schema.chars();
    match chars.next() {
        None => return invalid("it is empty"),
        Some(c) if !(c.is_ascii_alphabetic() || c == '_') => return invalid("it must start with a letter or `_`"),
        Some(_) => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return invalid("only ASCII letters, digits and `_` are allowed");
    }
    if schema.len() > 63 {
        return invalid("PostgreSQL identifiers are at most 63 bytes");
    }
    Ok(())
}

/// A postgres error as text: the server's message and SQLSTATE, not its DETAIL (which can quote
/// a value, and values here are state bodies).
fn db_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => {
            let mut message = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                message.push_str(&format!(": {c}"));
                cause = c.source();
            }
            message
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_plain_identifiers() {
        for ok in ["mlops", "_x", "team_1", "A"] {
            assert!(check_schema(ok).is_ok(), "{ok}");
        }
        for bad in ["", "1x", "a-b", "a\"b", "a.b", "ä", &"x".repeat(64)] {
            assert!(matches!(check_schema(bad), Err(StateError::InvalidSchema { .. })), "{bad}");
        }
    }

    #[test]
    fn keys_differ_by_schema_and_purpose() {
        assert_eq!(advisory_key("a", "s"), advisory_key("a", "s"));
        assert_ne!(advisory_key("a", "s"), advisory_key("a", "t"));
        assert_ne!(advisory_key("a", "s"), advisory_key("b", "s"));
    }
}
