//! The contract every state backend keeps, written once over `&dyn StateBackend` and run against
//! each backend by [`contract_tests!`] (`state_local.rs`, `state_postgres.rs`). A backend's test
//! file supplies a [`Fixture`]: fresh stores, a second instance on the same store, and the
//! environment a child process needs to open it.
//!
//! Cross-process checks run this very test binary again as the child ([`spawn_child`]): its
//! `child_process` test does nothing unless `MLOPS_STATE_TEST_CHILD` is set, and then takes or
//! tries the lock as told and reports on stdout, in lines starting with [`MARK`].
// Each test binary uses only some of these.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mlops_compiler::model::{Config, Entity};
use mlops_compiler::spec::ResourceSpec;
use mlops_compiler::state::{OutputState, ResourceState, State};
use mlops_runtime::state::{new_lineage, LockGuard, StateBackend, StateError};

/// A sensitive output value that must never appear in an error message.
pub const SECRET: &str = "hunter2-do-not-print";

/// Says what to do in the child process: `try-lock:<operation>` or `hold-lock:<operation>`.
pub const CHILD_ENV: &str = "MLOPS_STATE_TEST_CHILD";
/// Start of every line the child reports on.
pub const MARK: &str = "MLOPS-STATE-CHILD";

/// How long a child may take to report (it is this test binary, already built).
const CHILD_TIMEOUT: Duration = Duration::from_secs(60);

/// How a backend's tests make stores.
pub trait Fixture {
    /// A new backend instance on this fixture's store (a second "process" on the same state).
    fn open(&self) -> Box<dyn StateBackend>;
    /// A different, empty store of the same kind.
    fn other(&self) -> Box<dyn StateBackend>;
    /// Environment variables with which the child's opener reaches the same store.
    fn child_env(&self) -> Vec<(String, String)>;
}

/// Instantiates every contract case as a `#[test]` with `$fixture` (an expression making a
/// fresh [`Fixture`] for each test).
#[macro_export]
macro_rules! contract_tests {
    ($fixture:expr) => {
        $crate::contract_tests!(@cases $fixture;
            empty_store_has_no_state_and_no_history,
            first_write_reads_back_equal,
            serial_must_increase_by_exactly_one,
            lineage_mismatch_is_refused,
            a_guard_of_another_store_is_refused,
            a_force_unlocked_guard_is_refused,
            history_lists_every_version,
            a_second_lock_in_this_process_fails_naming_the_holder,
            a_second_lock_from_another_process_fails_naming_the_holder,
            a_lock_held_by_another_process_is_refused_and_can_be_forced,
            dropping_the_guard_releases_the_lock,
            force_unlock_needs_the_current_id,
            errors_never_quote_the_state,
            reads_need_no_lock,
        );
    };
    (@cases $fixture:expr; $($case:ident),* $(,)?) => {
        mod contract {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[test]
                fn $case() {
                    let fixture = $fixture;
                    $crate::state_contract::$case(&fixture);
                }
            )*
        }
    };
}

/// A state for `lineage` with one resource and a sensitive output.
pub fn sample(serial: u64, lineage: &str) -> State {
    let spec = ResourceSpec {
        address: "entity.account".to_string(),
        name: "account".to_string(),
        module: Vec::new(),
        key: None,
        depends_on: Vec::new(),
        hash: format!("{serial:064x}"),
        config: Config::Entity(Entity { join_keys: vec!["account_id".to_string()], description: None }),
    };
    let mut produced = BTreeMap::new();
    produced.insert("watermark".to_string(), serde_json::json!(1_706_702_400_000_000i64 + serial as i64));
    produced.insert("ratio".to_string(), serde_json::json!(0.1));
    let mut state = State::new("fraud-detection", lineage.to_string());
    state.serial = serial;
    state.resources.insert(
        "entity.account".to_string(),
        ResourceState { spec, produced, applied_at: 1_706_702_400, drifted: None },
    );
    state
        .outputs
        .insert("token".to_string(), OutputState { value: serde_json::json!(SECRET), sensitive: true, pending: None });
    state
}

fn lineage() -> String {
    new_lineage().unwrap()
}

#[track_caller]
fn lock(b: &dyn StateBackend, operation: &str) -> LockGuard {
    b.lock(operation).unwrap_or_else(|e| panic!("locking {}: {e}", b.describe()))
}

#[track_caller]
fn write(b: &dyn StateBackend, g: &LockGuard, s: &State) {
    b.write(g, s).unwrap_or_else(|e| panic!("writing serial {}: {e}", s.serial));
}

#[track_caller]
fn locked_error(b: &dyn StateBackend, operation: &str) -> StateError {
    match b.lock(operation) {
        Ok(g) => panic!("{} granted a second lock {:?}", b.describe(), g.info()),
        Err(e) => e,
    }
}

pub fn empty_store_has_no_state_and_no_history(f: &dyn Fixture) {
    let b = f.open();
    assert!(!b.describe().is_empty());
    assert_eq!(b.read().unwrap(), None);
    assert_eq!(b.history().unwrap(), vec![]);
    assert!(matches!(b.read_version(1), Err(StateError::NoSuchVersion { serial: 1, .. })));
}

pub fn first_write_reads_back_equal(f: &dyn Fixture) {
    let b = f.open();
    let s = sample(1, &lineage());
    let g = lock(&*b, "apply");
    write(&*b, &g, &s);
    assert_eq!(b.read().unwrap(), Some(s.clone()));
    drop(g);
    // Another instance (another process) sees the same.
    assert_eq!(f.open().read().unwrap(), Some(s));
}

pub fn serial_must_increase_by_exactly_one(f: &dyn Fixture) {
    let b = f.open();
    let l = lineage();
    let g = lock(&*b, "apply");
    let e = b.write(&g, &sample(2, &l)).unwrap_err();
    assert!(matches!(e, StateError::SerialNotNext { current: 0, given: 2, .. }), "{e}");
    assert!(matches!(b.write(&g, &sample(0, &l)), Err(StateError::SerialNotNext { .. })));
    write(&*b, &g, &sample(1, &l));
    let e = b.write(&g, &sample(1, &l)).unwrap_err();
    assert!(matches!(e, StateError::SerialNotNext { current: 1, given: 1, .. }), "{e}");
    assert!(e.to_string().contains("expected 2"), "{e}");
    assert!(matches!(b.write(&g, &sample(3, &l)), Err(StateError::SerialNotNext { current: 1, given: 3, .. })));
    write(&*b, &g, &sample(2, &l));
    assert_eq!(b.read().unwrap().map(|s| s.serial), Some(2));
    assert_eq!(b.history().unwrap().len(), 2);
}

pub fn lineage_mismatch_is_refused(f: &dyn Fixture) {
    let b = f.open();
    let (mine, theirs) = (lineage(), lineage());
    let g = lock(&*b, "apply");
    write(&*b, &g, &sample(1, &mine));
    let e = b.write(&g, &sample(2, &theirs)).unwrap_err();
    match &e {
        StateError::LineageMismatch { stored, given, .. } => {
            assert_eq!((stored, given), (&mine, &theirs));
        }
        other => panic!("expected a lineage mismatch, got {other}"),
    }
    assert!(e.to_string().contains(&mine) && e.to_string().contains(&theirs), "{e}");
    assert_eq!(b.read().unwrap(), Some(sample(1, &mine)));
    assert_eq!(b.history().unwrap().len(), 1);
}

pub fn a_guard_of_another_store_is_refused(f: &dyn Fixture) {
    let b = f.open();
    let other = f.other();
    let foreign = lock(&*other, "apply");
    let e = b.write(&foreign, &sample(1, &lineage())).unwrap_err();
    assert!(matches!(e, StateError::NotLockHolder { .. }), "{e}");
    assert!(e.to_string().contains(foreign.id()), "{e}");
    // Not even while this store is locked by someone else.
    let own = lock(&*b, "plan");
    let e = b.write(&foreign, &sample(1, &lineage())).unwrap_err();
    assert!(matches!(e, StateError::NotLockHolder { .. }), "{e}");
    assert!(e.to_string().contains("`plan`"), "names the real holder: {e}");
    assert_eq!(b.read().unwrap(), None);
    assert_eq!(other.read().unwrap(), None);
    drop(own);
}

pub fn a_force_unlocked_guard_is_refused(f: &dyn Fixture) {
    let (a, b) = (f.open(), f.open());
    let l = lineage();
    let g = lock(&*a, "apply");
    write(&*a, &g, &sample(1, &l));
    b.force_unlock(g.id()).unwrap();
    let e = a.write(&g, &sample(2, &l)).unwrap_err();
    assert!(matches!(e, StateError::NotLockHolder { .. }), "{e}");
    assert!(e.to_string().contains("force-unlocked"), "{e}");

    // Someone else locks; the old guard still cannot write, the new one can.
    let g2 = lock(&*b, "refresh");
    let e = a.write(&g, &sample(2, &l)).unwrap_err();
    assert!(matches!(e, StateError::NotLockHolder { .. }), "{e}");
    assert!(e.to_string().contains("`refresh`"), "{e}");
    write(&*b, &g2, &sample(2, &l));
    // Dropping the old guard leaves the new holder's lock alone.
    drop(g);
    let e = locked_error(&*a, "plan");
    assert!(e.to_string().contains("`refresh`"), "{e}");
    write(&*b, &g2, &sample(3, &l));
    assert_eq!(a.read().unwrap().map(|s| s.serial), Some(3));
}

pub fn history_lists_every_version(f: &dyn Fixture) {
    let b = f.open();
    let l = lineage();
    let before = unix_now();
    {
        let g = lock(&*b, "apply");
        write(&*b, &g, &sample(1, &l));
        write(&*b, &g, &sample(2, &l));
    }
    for serial in 3..=4 {
        // Each write under a lock of its own, as successive applies do.
        let g = lock(&*f.open(), "apply");
        write(&*b, &g, &sample(serial, &l));
    }
    let after = unix_now();
    let history = b.history().unwrap();
    assert_eq!(history.iter().map(|v| v.serial).collect::<Vec<_>>(), vec![1, 2, 3, 4]);
    for v in &history {
        assert!(v.size > 100, "size of {v:?}");
        assert!(v.written_at + 5 >= before && v.written_at <= after + 5, "{v:?} not in {before}..{after}");
        assert_eq!(b.read_version(v.serial).unwrap(), sample(v.serial, &l));
    }
    assert!(matches!(b.read_version(5), Err(StateError::NoSuchVersion { serial: 5, .. })));
    assert!(matches!(b.read_version(0), Err(StateError::NoSuchVersion { serial: 0, .. })));
    assert!(matches!(b.read_version(u64::MAX), Err(StateError::NoSuchVersion { .. })));
}

pub fn a_second_lock_in_this_process_fails_naming_the_holder(f: &dyn Fixture) {
    let (a, b) = (f.open(), f.open());
    let g = lock(&*a, "apply");
    for backend in [&a, &b] {
        let e = locked_error(&**backend, "plan");
        let StateError::Locked { holder: Some(holder), .. } = &e else { panic!("expected a named holder: {e}") };
        assert_eq!(**holder, *g.info());
        assert_eq!(holder.operation, "apply");
        assert_eq!(holder.pid, std::process::id());
        assert!(holder.who.contains('@'), "{}", holder.who);
        let message = e.to_string();
        for part in ["`apply`", &format!("pid {}", std::process::id()), g.id(), &holder.who, &holder.created] {
            assert!(message.contains(part), "{message:?} lacks {part:?}");
        }
    }
}

pub fn a_second_lock_from_another_process_fails_naming_the_holder(f: &dyn Fixture) {
    let a = f.open();
    let g = lock(&*a, "apply");
    let mut child = spawn_child(f, "try-lock:plan");
    let report = child.next_report();
    assert!(report.starts_with("refused "), "the child was not refused: {report}");
    for part in ["`apply`", &format!("pid {}", std::process::id()), g.id()] {
        assert!(report.contains(part), "{report:?} lacks {part:?}");
    }
    child.wait();
    drop(g);
    // Once released, the other process gets it.
    let mut child = spawn_child(f, "try-lock:plan");
    let report = child.next_report();
    assert!(report.starts_with("locked "), "{report}");
    child.wait();
}

pub fn a_lock_held_by_another_process_is_refused_and_can_be_forced(f: &dyn Fixture) {
    let a = f.open();
    let mut holder = spawn_child(f, "hold-lock:apply");
    let (id, pid) = holder.locked();
    assert_eq!(pid, holder.pid());
    let e = locked_error(&*a, "plan");
    let StateError::Locked { holder: Some(info), .. } = &e else { panic!("expected a named holder: {e}") };
    assert_eq!((info.id.as_str(), info.pid, info.operation.as_str()), (id.as_str(), pid, "apply"));
    assert!(e.to_string().contains(&format!("pid {pid}")), "{e}");

    // Forced while the holder still runs.
    a.force_unlock(&id).unwrap();
    let g = lock(&*a, "plan");
    write(&*a, &g, &sample(1, &lineage()));
    holder.kill();
    drop(g);
    assert!(a.lock("apply").is_ok());
}

pub fn dropping_the_guard_releases_the_lock(f: &dyn Fixture) {
    let (a, b) = (f.open(), f.open());
    let g = lock(&*a, "apply");
    drop(g);
    let g = lock(&*b, "apply");
    g.release().unwrap();
    let g = lock(&*a, "apply");
    // Dropping the backend does not release a guard's lock; the guard does.
    drop(a);
    assert!(matches!(b.lock("plan"), Err(StateError::Locked { .. })));
    drop(g);
    assert!(b.lock("plan").is_ok());
}

pub fn force_unlock_needs_the_current_id(f: &dyn Fixture) {
    let (a, b) = (f.open(), f.open());
    let e = b.force_unlock("00000000-0000-4000-8000-000000000000").unwrap_err();
    assert!(matches!(e, StateError::NotLocked { .. }), "{e}");
    let g = lock(&*a, "apply");
    let e = b.force_unlock("00000000-0000-4000-8000-000000000000").unwrap_err();
    let StateError::LockIdMismatch { current_id, holder: Some(holder), .. } = &e else {
        panic!("expected a mismatch naming the holder: {e}")
    };
    assert_eq!((current_id.as_str(), holder.operation.as_str()), (g.id(), "apply"));
    assert!(e.to_string().contains("nothing was unlocked"), "{e}");
    assert!(matches!(b.lock("plan"), Err(StateError::Locked { .. })), "still locked");
    b.force_unlock(g.id()).unwrap();
    let g2 = lock(&*b, "plan");
    assert!(matches!(a.force_unlock(g.id()), Err(StateError::LockIdMismatch { .. })), "an old id stays refused");
    drop(g2);
}

pub fn errors_never_quote_the_state(f: &dyn Fixture) {
    let b = f.open();
    let l = lineage();
    let g = lock(&*b, "apply");
    write(&*b, &g, &sample(1, &l));
    let foreign = lock(&*f.other(), "apply");
    let errors = [
        b.write(&g, &sample(2, &lineage())).unwrap_err(),
        b.write(&g, &sample(5, &l)).unwrap_err(),
        b.write(&foreign, &sample(2, &l)).unwrap_err(),
        locked_error(&*f.open(), "plan"),
        b.read_version(9).unwrap_err(),
    ];
    for e in errors {
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains(SECRET), "an error quotes the state: {text}");
        }
    }
}

pub fn reads_need_no_lock(f: &dyn Fixture) {
    let (a, b) = (f.open(), f.open());
    let s = sample(1, &lineage());
    let g = lock(&*a, "apply");
    write(&*a, &g, &s);
    assert_eq!(b.read().unwrap(), Some(s.clone()));
    assert_eq!(b.history().unwrap().len(), 1);
    assert_eq!(b.read_version(1).unwrap(), s);
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// This test binary, started again as a child that runs only `child_process` with `mode`.
pub struct ChildProcess {
    child: Child,
    /// Its reports, read by a thread so that a child that never reports fails the test rather
    /// than hanging it.
    reports: Receiver<String>,
    /// Everything else it printed, for failure messages.
    output: Arc<Mutex<String>>,
}

/// Starts the child. It reads the store from [`Fixture::child_env`].
pub fn spawn_child(f: &dyn Fixture, mode: &str) -> ChildProcess {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", "child_process", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in f.child_env() {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (send, reports) = channel();
    let output = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&output);
    std::thread::spawn(move || {
        for line in stdout.lines() {
            let Ok(line) = line else { break };
            // libtest writes "test child_process ... " before the child's own output, on the same line.
            match line.find(MARK) {
                Some(at) => {
                    if send.send(line[at + MARK.len()..].trim().to_string()).is_err() {
                        break;
                    }
                }
                None => sink.lock().unwrap().push_str(&format!("{line}\n")),
            }
        }
    });
    ChildProcess { child, reports, output }
}

impl ChildProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line the child reports, without the mark.
    #[track_caller]
    pub fn next_report(&mut self) -> String {
        match self.reports.recv_timeout(CHILD_TIMEOUT) {
            Ok(report) => report,
            Err(e) => panic!("no report from the child ({e}); it printed:\n{}", self.output.lock().unwrap()),
        }
    }

    /// For `hold-lock`: the lock id and pid the child reports once it holds the lock.
    #[track_caller]
    pub fn locked(&mut self) -> (String, u32) {
        let report = self.next_report();
        let mut words = report.split_whitespace();
        match (words.next(), words.next(), words.next().and_then(|p| p.parse().ok())) {
            (Some("locked"), Some(id), Some(pid)) => (id.to_string(), pid),
            _ => panic!("the child did not take the lock: {report}"),
        }
    }

    /// Kills the child with SIGKILL (a crash: nothing is cleaned up) and reaps it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for a child that finishes by itself.
    #[track_caller]
    pub fn wait(mut self) {
        drop(self.child.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child failed: {status}\n{}", self.output.lock().unwrap());
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        // A failed assertion must not leave a child holding a lock.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child's side: does what [`CHILD_ENV`] says on the store `open` reaches, reporting on
/// stdout. Does nothing in an ordinary test run.
pub fn child_main(open: impl FnOnce() -> Box<dyn StateBackend>) {
    let Ok(mode) = std::env::var(CHILD_ENV) else { return };
    let backend = open();
    let report = |s: String| println!("{MARK} {}", s.replace('\n', " "));
    match mode.split_once(':') {
        Some(("try-lock", operation)) => match backend.lock(operation) {
            Ok(g) => report(format!("locked {} {}", g.id(), g.info().pid)),
            Err(e) => report(format!("refused {e}")),
        },
        Some(("hold-lock", operation)) => match backend.lock(operation) {
            Ok(g) => {
                report(format!("locked {} {}", g.id(), g.info().pid));
                // Hold until killed, or until the parent goes away (stdin closes). Exit without
                // releasing the lock either way, as a crash would.
                let _ = std::io::stdin().read_to_end(&mut Vec::new());
                std::mem::forget(g);
                std::process::exit(0);
            }
            Err(e) => report(format!("refused {e}")),
        },
        _ => panic!("unknown {CHILD_ENV}={mode}"),
    }
}
