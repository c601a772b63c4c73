//! The local state backend: the shared contract (`state_contract`), then what only a directory
//! has — its layout, crashes in the middle of a write, a lock left by a killed process, a
//! corrupted or missing `state.json`, and threads racing for the lock.

#[macro_use]
mod state_contract;

use std::fs;
use std::path::{Path, PathBuf};

use mlops_runtime::state::{LocalState, LockInfo, StateBackend, StateError};
use state_contract::{sample, spawn_child, Fixture, SECRET};
use tempfile::TempDir;

const DIR_ENV: &str = "MLOPS_STATE_TEST_DIR";

struct LocalFixture {
    root: TempDir,
}

impl LocalFixture {
    fn new() -> LocalFixture {
        LocalFixture { root: tempfile::tempdir().unwrap() }
    }

    /// Not created yet: the first lock creates it, parents included.
    fn dir(&self) -> PathBuf {
        self.root.path().join(".mlops/state")
    }

    fn backend(&self) -> LocalState {
        LocalState::new(self.dir())
    }
}

impl Fixture for LocalFixture {
    fn open(&self) -> Box<dyn StateBackend> {
        Box::new(self.backend())
    }

    fn other(&self) -> Box<dyn StateBackend> {
        Box::new(LocalState::new(self.root.path().join("other")))
    }

    fn child_env(&self) -> Vec<(String, String)> {
        vec![(DIR_ENV.to_string(), self.dir().to_str().unwrap().to_string())]
    }
}

contract_tests!(LocalFixture::new());

/// The child side of the cross-process tests; does nothing in a normal run.
#[test]
fn child_process() {
    state_contract::child_main(|| Box::new(LocalState::new(std::env::var(DIR_ENV).unwrap())));
}

fn lineage() -> String {
    mlops_runtime::state::new_lineage().unwrap()
}

/// A state directory holding serials 1..=n.
fn with_versions(n: u64) -> (LocalFixture, String) {
    let f = LocalFixture::new();
    let b = f.backend();
    let l = lineage();
    let g = b.lock("apply").unwrap();
    for serial in 1..=n {
        b.write(&g, &sample(serial, &l)).unwrap();
    }
    (f, l)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn the_directory_holds_state_history_and_a_lock_file() {
    let f = LocalFixture::new();
    let b = f.backend();
    let l = lineage();
    let g = b.lock("apply").unwrap();
    assert_eq!(b.describe(), format!("local state at {}", f.dir().display()));
    let record: LockInfo = serde_json::from_slice(&fs::read(f.dir().join(".lock")).unwrap()).unwrap();
    assert_eq!(&record, g.info());
    b.write(&g, &sample(1, &l)).unwrap();
    b.write(&g, &sample(2, &l)).unwrap();
    assert_eq!(names(&f.dir()), [".lock", "history", "state.json"]);
    assert_eq!(names(&f.dir().join("history")), ["state-1.json", "state-2.json"]);
    let current = fs::read_to_string(f.dir().join("state.json")).unwrap();
    assert!(current.contains("\n  \"serial\": 2"), "pretty JSON, for people: {current}");
    assert_eq!(serde_json::from_str::<mlops_compiler::state::State>(&current).unwrap(), sample(2, &l));
    assert_eq!(fs::read_to_string(f.dir().join("history/state-2.json")).unwrap(), current);
    drop(g);
    assert_eq!(names(&f.dir()), ["history", "state.json"]);
}

#[test]
fn a_crash_mid_write_leaves_the_last_good_state() {
    let (f, l) = with_versions(2);
    let b = f.backend();
    // A writer killed before its rename: partial temporary files, in both directories.
    let partial = serde_json::to_vec_pretty(&sample(3, &l)).unwrap();
    let partial = &partial[..partial.len() / 2];
    fs::write(f.dir().join(".state.json.tmp-999999"), partial).unwrap();
    fs::write(f.dir().join("history/.state-3.json.tmp-999999"), partial).unwrap();

    assert_eq!(b.read().unwrap(), Some(sample(2, &l)));
    assert_eq!(b.history().unwrap().iter().map(|v| v.serial).collect::<Vec<_>>(), [1, 2]);
    assert!(matches!(b.read_version(3), Err(StateError::NoSuchVersion { .. })));

    // The next holder clears the leftovers and carries on from serial 2.
    let g = b.lock("apply").unwrap();
    assert_eq!(names(&f.dir()), [".lock", "history", "state.json"]);
    assert_eq!(names(&f.dir().join("history")), ["state-1.json", "state-2.json"]);
    b.write(&g, &sample(3, &l)).unwrap();
    assert_eq!(b.read().unwrap(), Some(sample(3, &l)));
}

#[test]
fn a_crash_between_state_and_history_loses_no_version() {
    let (f, l) = with_versions(2);
    let b = f.backend();
    // state.json was replaced, its history copy not yet written.
    fs::remove_file(f.dir().join("history/state-2.json")).unwrap();
    assert_eq!(b.history().unwrap().iter().map(|v| v.serial).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(b.read_version(2).unwrap(), sample(2, &l));
    let g = b.lock("apply").unwrap();
    b.write(&g, &sample(3, &l)).unwrap();
    assert_eq!(names(&f.dir().join("history")), ["state-1.json", "state-2.json", "state-3.json"]);
    for serial in 1..=3 {
        assert_eq!(b.read_version(serial).unwrap(), sample(serial, &l));
    }
}

#[test]
fn a_lock_left_by_a_killed_process_is_reported_and_cleared_by_its_id() {
    let f = LocalFixture::new();
    let b = f.backend();
    let mut holder = spawn_child(&f, "hold-lock:apply");
    let (id, pid) = holder.locked();
    holder.kill();

    let e = b.lock("plan").unwrap_err();
    let StateError::Locked { holder: Some(info), note, .. } = &e else { panic!("expected a named holder: {e}") };
    assert_eq!((info.id.as_str(), info.pid, info.operation.as_str()), (id.as_str(), pid, "apply"));
    assert_eq!(
        note.as_deref(),
        Some(format!("process {pid} is no longer running on this host, so the lock is stale").as_str())
    );
    let message = e.to_string();
    assert!(message.contains(&format!("mlops force-unlock {id}")), "{message}");

    let e = b.force_unlock("not-the-id").unwrap_err();
    assert!(matches!(e, StateError::LockIdMismatch { .. }), "{e}");
    assert!(e.to_string().contains(&id), "{e}");
    assert!(f.dir().join(".lock").exists(), "a wrong id removes nothing");
    b.force_unlock(&id).unwrap();
    assert!(!f.dir().join(".lock").exists());
    let g = b.lock("plan").unwrap();
    b.write(&g, &sample(1, &lineage())).unwrap();
}

#[test]
fn a_lock_file_without_a_record_can_be_cleared_by_the_id_it_reports() {
    let f = LocalFixture::new();
    let b = f.backend();
    fs::create_dir_all(f.dir()).unwrap();
    // Its creator died between creating and writing it.
    fs::write(f.dir().join(".lock"), b"").unwrap();
    let e = b.lock("apply").unwrap_err();
    let message = e.to_string();
    assert!(matches!(e, StateError::Locked { holder: None, .. }), "{message}");
    assert!(message.contains("no readable lock record"), "{message}");
    let id = message
        .split(|c: char| c.is_whitespace() || c == '`')
        .find(|w| w.starts_with("unreadable-"))
        .unwrap_or_else(|| panic!("no id in {message}"));
    assert!(matches!(b.force_unlock("unreadable-0000000000000000"), Err(StateError::LockIdMismatch { .. })));
    b.force_unlock(id).unwrap();
    assert!(b.lock("apply").is_ok());
}

#[test]
fn a_corrupted_state_file_is_a_clear_error_pointing_at_history() {
    let (f, l) = with_versions(2);
    let b = f.backend();
    let state_file = f.dir().join("state.json");
    let cases: [(&str, Vec<u8>); 3] = [
        ("JSON but not a state", format!(r#"{{"format_version": 1, "serial": "{SECRET}"}}"#).into_bytes()),
        ("ends early", fs::read(&state_file).unwrap()[..300].to_vec()),
        ("not valid JSON", format!("{{ {SECRET} }}").into_bytes()),
    ];
    for (problem, bytes) in cases {
        fs::write(&state_file, bytes).unwrap();
        let e = b.read().unwrap_err();
        let message = e.to_string();
        assert!(matches!(e, StateError::Corrupt { .. }), "{message}");
        for part in [state_file.display().to_string(), problem.to_string(), "history".to_string()] {
            assert!(message.contains(&part), "{message:?} lacks {part:?}");
        }
        assert!(message.contains(&f.dir().join("history/state-2.json").display().to_string()), "{message}");
        assert!(!message.contains(SECRET), "{message}");
        // Nothing is written over it, and the versions kept stay readable.
        let g = b.lock("apply").unwrap();
        assert!(matches!(b.write(&g, &sample(3, &l)), Err(StateError::Corrupt { .. })));
        drop(g);
        assert_eq!(b.history().unwrap().iter().map(|v| v.serial).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(b.read_version(2).unwrap(), sample(2, &l));
    }
    // Recovery as the message says.
    fs::copy(f.dir().join("history/state-2.json"), &state_file).unwrap();
    assert_eq!(b.read().unwrap(), Some(sample(2, &l)));
}

#[test]
fn a_deleted_state_file_with_history_is_not_an_empty_state() {
    let (f, l) = with_versions(2);
    let b = f.backend();
    fs::remove_file(f.dir().join("state.json")).unwrap();
    let e = b.read().unwrap_err();
    assert!(e.to_string().contains("missing, although versions up to serial 2 are kept"), "{e}");
    // Starting over at serial 1 would overwrite the history.
    let g = b.lock("apply").unwrap();
    assert!(b.write(&g, &sample(1, &l)).is_err());
    assert_eq!(b.read_version(1).unwrap(), sample(1, &l));
}

#[test]
fn a_state_of_a_newer_format_is_refused() {
    let (f, _) = with_versions(1);
    fs::write(f.dir().join("state.json"), br#"{"format_version": 7, "shape": "new"}"#).unwrap();
    let e = f.backend().read().unwrap_err();
    assert!(matches!(e, StateError::UnsupportedFormat { found: 7, .. }), "{e}");
    assert!(e.to_string().contains("upgrade mlops"), "{e}");
}

#[test]
fn threads_racing_for_the_lock_get_exactly_one() {
    let f = LocalFixture::new();
    let barrier = std::sync::Barrier::new(8);
    let won = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let b = f.backend();
                    barrier.wait();
                    match b.lock("apply") {
                        // Keep it until every thread has tried.
                        Ok(g) => Some(g),
                        Err(StateError::Locked { holder: Some(_), .. }) => None,
                        Err(e) => panic!("{e}"),
                    }
                })
            })
            .collect();
        // Every thread joined before any guard is dropped.
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        results.iter().filter(|r| r.is_some()).count()
    });
    assert_eq!(won, 1);
}
