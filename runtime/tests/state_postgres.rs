//! The PostgreSQL state backend on a real server started for this test process
//! (`support::postgres`): the shared contract (`state_contract`), each test in a schema of its
//! own, then what only PostgreSQL has — the tables it creates, the advisory lock and its session,
//! force-unlocking a live holder from another connection, a killed holder freeing the lock, and
//! errors that keep state bodies and passwords out.

mod support;
#[macro_use]
mod state_contract;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mlops_runtime::state::{LockInfo, PostgresState, StateBackend, StateError};
use state_contract::{sample, spawn_child, Fixture, SECRET};
use support::postgres::TestPostgres;

const CONN_ENV: &str = "MLOPS_STATE_TEST_PG";
const SCHEMA_ENV: &str = "MLOPS_STATE_TEST_SCHEMA";

fn pg() -> &'static TestPostgres {
    TestPostgres::shared()
}

/// A schema name no other test of any process uses.
fn fresh_schema() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("state_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

struct PgFixture {
    schema: String,
}

impl PgFixture {
    fn new() -> PgFixture {
        PgFixture { schema: fresh_schema() }
    }

    fn backend(&self) -> PostgresState {
        PostgresState::connect(pg().connection_string(), &self.schema).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `(id, backend_pid)` of the lock row, if any.
    fn lock_row(&self) -> Option<(String, i32)> {
        let sql = format!("SELECT id, backend_pid FROM \"{}\".locks", self.schema);
        let rows = pg().client().query(&sql, &[]).unwrap();
        assert!(rows.len() <= 1, "{} lock rows", rows.len());
        rows.first().map(|r| (r.get(0), r.get(1)))
    }
}

impl Fixture for PgFixture {
    fn open(&self) -> Box<dyn StateBackend> {
        Box::new(self.backend())
    }

    fn other(&self) -> Box<dyn StateBackend> {
        Box::new(PgFixture::new().backend())
    }

    fn child_env(&self) -> Vec<(String, String)> {
        vec![
            (CONN_ENV.to_string(), pg().connection_string().to_string()),
            (SCHEMA_ENV.to_string(), self.schema.clone()),
        ]
    }
}

contract_tests!(PgFixture::new());

/// The child side of the cross-process tests; does nothing in a normal run (and then starts no
/// server: the child uses its parent's).
#[test]
fn child_process() {
    state_contract::child_main(|| {
        let conn = std::env::var(CONN_ENV).unwrap();
        let schema = std::env::var(SCHEMA_ENV).unwrap();
        Box::new(PostgresState::connect(&conn, &schema).unwrap_or_else(|e| panic!("{e}")))
    });
}

fn lineage() -> String {
    mlops_runtime::state::new_lineage().unwrap()
}

/// Whether server process `pid` holds any advisory lock.
fn holds_advisory_lock(pid: i32) -> bool {
    pg().client()
        .query_one("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = $1)", &[&pid])
        .unwrap()
        .get(0)
}

fn session_exists(pid: i32) -> bool {
    pg().client().query_one("SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)", &[&pid]).unwrap().get(0)
}

#[test]
fn the_tables_are_created_once_in_the_schema() {
    let f = PgFixture::new();
    // Several processes starting at once on a new schema.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| f.backend());
        }
    });
    let b = f.backend();
    assert_eq!(b.describe(), format!("postgres state (schema {})", f.schema));
    assert_eq!(b.schema(), f.schema);
    let columns: Vec<(String, String, String)> = pg()
        .client()
        .query(
            "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns \
             WHERE table_schema = $1 ORDER BY table_name, ordinal_position",
            &[&f.schema],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected = [
        ("locks", "id", "text"),
        ("locks", "info", "jsonb"),
        ("locks", "backend_pid", "integer"),
        ("states", "serial", "bigint"),
        ("states", "lineage", "text"),
        ("states", "body", "jsonb"),
        ("states", "written_at", "timestamp with time zone"),
    ];
    let expected: Vec<(String, String, String)> =
        expected.iter().map(|(t, c, d)| (t.to_string(), c.to_string(), d.to_string())).collect();
    assert_eq!(columns, expected);

    // One row per version, lineage beside the body; one lock row naming the holder.
    let l = lineage();
    let g = b.lock("apply").unwrap();
    b.write(&g, &sample(1, &l)).unwrap();
    b.write(&g, &sample(2, &l)).unwrap();
    let rows = pg()
        .client()
        .query(&format!("SELECT serial, lineage, body->>'system' FROM \"{}\".states ORDER BY serial", f.schema), &[])
        .unwrap();
    let rows: Vec<(i64, String, String)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    assert_eq!(rows, [(1, l.clone(), "fraud-detection".to_string()), (2, l, "fraud-detection".to_string())]);
    let info: String =
        pg().client().query_one(&format!("SELECT info::text FROM \"{}\".locks", f.schema), &[]).unwrap().get(0);
    assert_eq!(&serde_json::from_str::<LockInfo>(&info).unwrap(), g.info());
}

#[test]
fn dropping_the_guard_releases_the_advisory_lock_and_its_session() {
    let f = PgFixture::new();
    let (a, b) = (f.backend(), f.backend());
    let g = a.lock("apply").unwrap();
    let (id, backend_pid) = f.lock_row().unwrap();
    assert_eq!(id, g.id());
    assert!(holds_advisory_lock(backend_pid));
    drop(g);
    // Released at once, not when the server gets round to noticing a closed connection.
    assert!(!holds_advisory_lock(backend_pid));
    assert_eq!(f.lock_row(), None);
    let g = b.lock("plan").unwrap();
    assert_eq!(f.lock_row().map(|(id, _)| id).as_deref(), Some(g.id()));
}

#[test]
fn force_unlock_from_another_connection_stops_a_live_holder() {
    let f = PgFixture::new();
    let (a, b) = (f.backend(), f.backend());
    let l = lineage();
    let g = a.lock("apply").unwrap();
    a.write(&g, &sample(1, &l)).unwrap();
    let (_, holder_pid) = f.lock_row().unwrap();
    assert!(session_exists(holder_pid));

    b.force_unlock(g.id()).unwrap();
    // The holder's session is gone and the lock free by the time force_unlock returns.
    assert!(!session_exists(holder_pid));
    assert_eq!(f.lock_row(), None);
    let g2 = b.lock("plan").unwrap();

    // The stopped holder can no longer write, and letting go of its guard harms no one.
    let e = a.write(&g, &sample(2, &l)).unwrap_err();
    assert!(matches!(e, StateError::NotLockHolder { .. }), "{e}");
    assert!(e.to_string().contains("`plan`"), "{e}");
    g.release().unwrap();
    let e = a.lock("apply").unwrap_err();
    assert!(e.to_string().contains("`plan`"), "{e}");
    b.write(&g2, &sample(2, &l)).unwrap();
}

#[test]
fn a_killed_holder_frees_the_lock_by_itself() {
    let f = PgFixture::new();
    let b = f.backend();
    let mut holder = spawn_child(&f, "hold-lock:apply");
    let (id, pid) = holder.locked();
    let e = b.lock("plan").unwrap_err();
    assert!(e.to_string().contains(&format!("pid {pid}")), "{e}");
    holder.kill();

    // The server ends the session when its connection closes, a moment after the kill; the stale
    // row is then ignored and replaced.
    let deadline = Instant::now() + Duration::from_secs(20);
    let g = loop {
        match b.lock("plan") {
            Ok(g) => break g,
            Err(StateError::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => panic!("{e}"),
        }
    };
    let (row_id, _) = f.lock_row().unwrap();
    assert_eq!(row_id, g.id());
    assert_ne!(row_id, id);
    b.write(&g, &sample(1, &lineage())).unwrap();
}

#[test]
fn a_guard_whose_session_died_cannot_write() {
    let f = PgFixture::new();
    let b = f.backend();
    let g = b.lock("apply").unwrap();
    let (_, holder_pid) = f.lock_row().unwrap();
    // The connection is lost (not a force-unlock): the row stays, the lock does not.
    pg().client().query_one("SELECT pg_terminate_backend($1, 10000)", &[&holder_pid]).unwrap();
    let e = b.write(&g, &sample(1, &lineage())).unwrap_err();
    assert!(e.to_string().contains("the lock was lost"), "{e}");
    drop(g);
    assert!(b.lock("apply").is_ok());
}

#[test]
fn a_corrupted_version_is_a_clear_error_without_its_content() {
    let f = PgFixture::new();
    let b = f.backend();
    let l = lineage();
    let g = b.lock("apply").unwrap();
    b.write(&g, &sample(1, &l)).unwrap();
    b.write(&g, &sample(2, &l)).unwrap();
    pg().execute(&format!(
        "UPDATE \"{}\".states SET body = jsonb_build_object('format_version', 1, 'serial', '{SECRET}') WHERE serial = 2",
        f.schema
    ));
    let e = b.read().unwrap_err();
    let message = e.to_string();
    assert!(matches!(e, StateError::Corrupt { .. }), "{message}");
    assert!(message.contains(&format!("postgres state (schema {}) version 2", f.schema)), "{message}");
    assert!(message.contains("history"), "{message}");
    assert!(!message.contains(SECRET), "{message}");
    assert_eq!(b.read_version(1).unwrap(), sample(1, &l));
    assert_eq!(b.history().unwrap().len(), 2);
}

#[test]
fn bad_settings_are_refused_without_echoing_secrets() {
    let e = PostgresState::connect(pg().connection_string(), "team-state").unwrap_err();
    assert!(matches!(e, StateError::InvalidSchema { .. }), "{e}");
    let e = PostgresState::connect(pg().connection_string(), "x\"; DROP SCHEMA public; --").unwrap_err();
    assert!(matches!(e, StateError::InvalidSchema { .. }), "{e}");

    // Nothing listens on port 1.
    let e = PostgresState::connect("host=127.0.0.1 port=1 user=u password=s3cr3t-pw dbname=d", "mlops").unwrap_err();
    assert!(matches!(e, StateError::Database { .. }), "{e}");
    assert!(!e.to_string().contains("s3cr3t-pw") && !format!("{e:?}").contains("s3cr3t-pw"), "{e}");
}
