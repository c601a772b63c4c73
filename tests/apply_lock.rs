//! Two `mlops apply` at once, on both state backends. A first apply that waits at its
//! confirmation prompt holds the state lock; a second apply (and state rm, refresh, destroy)
//! fails at once with a message naming the holder — operation, pid, user@host, lock id — while
//! `mlops plan`, which takes no lock, still reads the state. Answering "no" releases the lock.
//! A holder killed with SIGKILL leaves its lock on the local backend (cleared with `mlops
//! force-unlock` and the right id only); on PostgreSQL the server ends the dead holder's session,
//! which frees the advisory lock by itself.

mod common;
// The runtime's real-server support; this crate uses only part of it.
#[allow(dead_code)]
#[path = "../runtime/tests/support/postgres.rs"]
mod pg_server;

use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{fraud_dir, fraud_tree, lock_holder_name, lock_id_in, stderr, stdout, Running, TempDir};
use mlops_runtime::state::{LocalState, LockInfo, PostgresState, StateBackend};
use pg_server::TestPostgres;

/// The environment variable the postgres configuration names in `conn_str_env`.
const CONN_ENV: &str = "MLOPS_LOCK_TEST_PG";
/// The holder's change over the converged state: a looser drift threshold (the monitor).
const CHANGE: &str = "drift_threshold=0.3";
/// Its plan.
const REMAINING: &str = "Plan: 0 to create, 1 to update, 0 to replace, 0 to destroy.";
const PROMPT: &str = "Enter a value:";
const PATIENCE: Duration = Duration::from_secs(120);
/// A command that fails on the lock must do so well within this (it never waits on a holder).
const AT_ONCE: Duration = Duration::from_secs(10);

/// A copy of the fraud example, with its state on the local backend or in a PostgreSQL schema.
struct Fixture {
    _tree: TempDir,
    dir: PathBuf,
    /// The schema, when the state is in PostgreSQL.
    schema: Option<String>,
}

impl Fixture {
    fn local(tag: &str) -> Fixture {
        let tree = fraud_tree(tag);
        Fixture { dir: fraud_dir(&tree), _tree: tree, schema: None }
    }

    /// The example with its `backend "local"` block swapped for `backend "postgres"`, in a schema
    /// of its own on the test server.
    fn postgres(tag: &str) -> Fixture {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let schema = format!("lock_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let tree = fraud_tree(tag);
        let dir = fraud_dir(&tree);
        let main = dir.join("main.mlops.hcl");
        let text = std::fs::read_to_string(&main).unwrap();
        let local = "backend \"local\" {\n    path = \".mlops/state\"\n  }";
        assert!(text.contains(local), "the fraud example's backend block changed:\n{text}");
        let postgres =
            format!("backend \"postgres\" {{\n    conn_str_env = \"{CONN_ENV}\"\n    schema = \"{schema}\"\n  }}");
        std::fs::write(&main, text.replace(local, &postgres)).unwrap();
        Fixture { _tree: tree, dir, schema: Some(schema) }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        // XGBoost's OpenMP threads spin while they wait by default, which on a shared two-core
        // machine mostly burns the other processes' time; waiting passively trains the same model.
        let mut env = vec![("OMP_WAIT_POLICY", "PASSIVE".to_string())];
        if self.schema.is_some() {
            env.push((CONN_ENV, pg().connection_string().to_string()));
        }
        env
    }

    /// `mlops ARGS… DIR`, run to completion.
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = common::mlops();
        cmd.envs(self.env()).args(args).arg(&self.dir);
        cmd.output().unwrap()
    }

    /// `mlops apply DIR` (asking for confirmation), started and waiting at its prompt: it holds
    /// the lock until it is answered.
    fn holder(&self) -> Running {
        let mut cmd = common::mlops_process();
        cmd.envs(self.env()).arg("apply").arg(&self.dir).args(["--var", CHANGE]);
        let run = Running::spawn(&mut cmd);
        let prompted = run.wait_for(PATIENCE, |out| out.contains(PROMPT));
        assert!(prompted, "apply never asked for confirmation\n{}\n{}", run.stdout(), run.stderr());
        run
    }

    /// The state backend, as the configuration declares it.
    fn backend(&self) -> Box<dyn StateBackend> {
        match &self.schema {
            None => Box::new(LocalState::new(self.dir.join(".mlops/state"))),
            Some(schema) => Box::new(PostgresState::connect(pg().connection_string(), schema).unwrap()),
        }
    }

    fn serial(&self) -> Option<u64> {
        self.backend().read().unwrap().map(|s| s.serial)
    }

    /// The lock holder's record as the backend stores it (the lock file; the `locks` row), if any.
    fn lock_record(&self) -> Option<LockInfo> {
        match &self.schema {
            None => {
                let text = std::fs::read_to_string(self.dir.join(".mlops/state/.lock")).ok()?;
                Some(serde_json::from_str(&text).unwrap())
            }
            Some(schema) => {
                let rows = pg().client().query(&format!("SELECT info::text FROM \"{schema}\".locks"), &[]).unwrap();
                assert!(rows.len() <= 1, "{} lock rows", rows.len());
                rows.first().map(|r| serde_json::from_str(r.get::<_, &str>(0)).unwrap())
            }
        }
    }

    /// The server process of the session holding the advisory lock, from the `locks` row.
    fn lock_session(&self) -> Option<i32> {
        let schema = self.schema.as_ref()?;
        let rows = pg().client().query(&format!("SELECT backend_pid FROM \"{schema}\".locks"), &[]).unwrap();
        rows.first().map(|r| r.get(0))
    }

    fn store(&self) -> String {
        match &self.schema {
            None => format!("local state at {}", self.dir.join(".mlops/state").display()),
            Some(schema) => format!("postgres state (schema {schema})"),
        }
    }
}

fn pg() -> &'static TestPostgres {
    TestPostgres::shared()
}

/// The holder of a lock just taken by `holder`: this process's child, running apply.
#[track_caller]
fn check_holder(f: &Fixture, holder: &Running) -> LockInfo {
    let info = f.lock_record().unwrap_or_else(|| panic!("{}: no lock recorded while apply waits", f.store()));
    assert_eq!(info.pid, holder.pid(), "{info}");
    assert_eq!(info.operation, "apply", "{info}");
    if let Some(me) = lock_holder_name() {
        assert_eq!(info.who, me, "{info}");
    }
    assert!(info.who.contains('@'), "{info}");
    info
}

/// `out` failed at once on the lock `info` holds, saying so and naming the holder.
#[track_caller]
fn assert_locked(what: &str, f: &Fixture, out: &Output, took: Duration, info: &LockInfo) {
    let message = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{what} while locked:\n{}{message}", stdout(out));
    assert!(took < AT_ONCE, "{what} took {took:?}: it waited on the lock");
    // LockInfo's Display: "user@host (pid N), running `apply` since …, lock id …".
    let expected = format!("{} is locked by {info}", f.store());
    assert!(message.contains(&expected), "{what}: expected `{expected}` in:\n{message}");
    assert_eq!(lock_id_in(&message).as_deref(), Some(info.id.as_str()), "{what}: {message}");
    assert!(!stdout(out).contains("Creating..."), "{what} applied something:\n{}", stdout(out));
    eprintln!("{}: {what} refused in {took:?}", f.store());
}

fn timed(f: &Fixture, args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = f.run(args);
    (out, started.elapsed())
}

/// The shared scenario: a held lock stops every other writer at once, plan still reads, and
/// answering "no" releases it.
fn second_apply_fails_at_once(f: &Fixture) {
    let out = f.run(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "first apply:\n{}{}", stdout(&out), stderr(&out));
    let serial = f.serial().expect("the first apply wrote the state");

    let mut holder = f.holder();
    assert!(holder.stdout().contains(REMAINING), "{}", holder.stdout());
    let info = check_holder(f, &holder);

    let (out, took) = timed(f, &["apply", "--auto-approve"]);
    assert_locked("a second apply", f, &out, took, &info);
    for args in [&["state", "rm", "source.chargebacks"][..], &["refresh"], &["destroy", "--auto-approve"]] {
        let (out, took) = timed(f, args);
        assert_locked(&format!("mlops {}", args.join(" ")), f, &out, took, &info);
    }

    // Plan takes no lock: it reads the state the holder has not changed.
    let out = f.run(&["plan", "--detailed-exitcode", "--var", CHANGE]);
    assert_eq!(out.status.code(), Some(2), "plan while locked:\n{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(REMAINING), "{}", stdout(&out));
    let out = f.run(&["state", "list"]);
    assert_eq!(out.status.code(), Some(0), "state list while locked:\n{}", stderr(&out));
    assert_eq!(stdout(&out).lines().count(), 8, "{}", stdout(&out));
    assert_eq!(f.serial(), Some(serial), "the state changed under the lock");
    assert_eq!(f.lock_record().as_ref(), Some(&info), "the lock changed hands");

    holder.send("no\n");
    let done = holder.finish(PATIENCE);
    assert_eq!(done.status.code(), Some(1), "{}{}", done.stdout, done.stderr);
    assert!(done.stdout.contains("Apply cancelled."), "{}", done.stdout);
    assert_eq!(f.lock_record(), None, "answering no left the lock");
    assert_eq!(f.serial(), Some(serial), "a cancelled apply changed the state");

    let out = f.run(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "apply after release:\n{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("Apply complete!"), "{}", stdout(&out));
    assert_eq!(f.lock_record(), None);
}

#[test]
fn local_second_apply_fails_at_once_naming_the_holder() {
    second_apply_fails_at_once(&Fixture::local("lock-local"));
}

#[test]
fn postgres_second_apply_fails_at_once_naming_the_holder() {
    second_apply_fails_at_once(&Fixture::postgres("lock-pg"));
}

/// Terraform's semantics on a file: the dead holder's lock stays, is reported as stale, and only
/// `force-unlock` with its id clears it.
#[test]
fn local_killed_holder_leaves_a_lock_cleared_by_force_unlock() {
    let f = Fixture::local("lock-local-kill");
    let mut holder = f.holder();
    let info = check_holder(&f, &holder);
    holder.kill();
    let killed = holder.finish(PATIENCE);
    assert!(!killed.status.success());
    assert_eq!(f.lock_record().as_ref(), Some(&info), "SIGKILL took the lock file with it");

    let (out, took) = timed(&f, &["apply", "--auto-approve"]);
    assert_locked("apply after the holder was killed", &f, &out, took, &info);
    let stale = format!("process {} is no longer running on this host, so the lock is stale", info.pid);
    assert!(stderr(&out).contains(&stale), "{}", stderr(&out));

    let wrong = "00000000-0000-4000-8000-000000000000";
    let out = f.run(&["force-unlock", wrong]);
    assert_eq!(out.status.code(), Some(1), "force-unlock with a wrong id:\n{}", stdout(&out));
    let refused =
        format!("lock id {wrong} is not the current lock of {} (held by {info}); nothing was unlocked", f.store());
    assert!(stderr(&out).contains(&refused), "{}", stderr(&out));
    assert_eq!(f.lock_record().as_ref(), Some(&info), "a wrong id cleared the lock");

    let out = f.run(&["force-unlock", &info.id]);
    assert_eq!(out.status.code(), Some(0), "force-unlock {}:\n{}", info.id, stderr(&out));
    assert!(stdout(&out).contains(&format!("Unlocked {} (lock {})", f.store(), info.id)), "{}", stdout(&out));
    assert_eq!(f.lock_record(), None);

    let out = f.run(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "apply after force-unlock:\n{}{}", stdout(&out), stderr(&out));
    assert_eq!(f.lock_record(), None);
}

/// On PostgreSQL the lock is a session's advisory lock: when the holder dies the server ends its
/// session, which frees the lock; the dead holder's row is then stale, and the next apply
/// replaces it without any force-unlock.
#[test]
fn postgres_killed_holder_frees_the_lock_by_itself() {
    let f = Fixture::postgres("lock-pg-kill");
    let mut holder = f.holder();
    let info = check_holder(&f, &holder);
    let session = f.lock_session().expect("the locks row names the holder's session");
    holder.kill();
    let killed = holder.finish(PATIENCE);
    assert!(!killed.status.success());

    // The server notices the closed connection a moment later and ends the session.
    let started = Instant::now();
    let mut client = pg().client();
    let live = |client: &mut postgres::Client| -> bool {
        let row = client.query_one("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", &[&session]).unwrap();
        row.get::<_, i64>(0) > 0
    };
    while live(&mut client) {
        assert!(started.elapsed() < Duration::from_secs(20), "the server kept the dead holder's session {session}");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!("the server ended the killed holder's session within {:?}", started.elapsed());
    // Only its record is left, naming a holder whose session is gone.
    assert_eq!(f.lock_record().as_ref(), Some(&info), "the stale row went away by itself");

    let out = f.run(&["apply", "--auto-approve"]);
    assert_eq!(out.status.code(), Some(0), "apply after the holder died:\n{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("Apply complete!"), "{}", stdout(&out));
    assert_eq!(f.lock_record(), None, "the released lock left its row");
    assert!(f.serial().is_some());
}
