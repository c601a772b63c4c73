//! `mlops plan`, `show`, `state` and `force-unlock` through the binary, against a real local
//! state written with the runtime's backend.

mod common;

use common::{mlops, stderr, stdout, TempDir};
use mlops_runtime::state::{LocalState, StateBackend};

const FRAUD: &str = "examples/fraud-detection";

/// Copies the fraud example (and the module it uses) into a temporary tree.
fn fraud_copy() -> TempDir {
    let dir = TempDir::new("plan");
    for (from, to) in [
        ("examples/fraud-detection", "examples/fraud-detection"),
        ("modules/tabular-classifier", "modules/tabular-classifier"),
    ] {
        for f in mlops_compiler::parse::config_files(&common::root().join(from)).unwrap() {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            dir.write(&format!("{to}/{name}"), &std::fs::read_to_string(&f).unwrap());
        }
    }
    dir
}

/// Writes a state that records `dir`'s current configuration as applied — by hand: nothing was
/// really materialised or trained, so these tests plan with `--refresh=false` (refresh would
/// rightly report the missing feature store and data).
fn apply_by_hand(dir: &std::path::Path) {
    let c = mlops_compiler::compile(dir, &mlops_compiler::Options::default());
    let spec = c.spec.expect("compiles");
    let backend = LocalState::new(dir.join(".mlops/state"));
    let lock = backend.lock("test").unwrap();
    let mut s = mlops_compiler::state::State::new(&spec.system.name, mlops_runtime::state::new_lineage().unwrap());
    s.serial = 1;
    for r in &spec.resources {
        s.resources.insert(
            r.address.clone(),
            mlops_compiler::state::ResourceState {
                spec: r.clone(),
                produced: Default::default(),
                applied_at: 0,
                drifted: None,
            },
        );
    }
    backend.write(&lock, &s).unwrap();
}

#[test]
fn plan_without_state_creates_everything() {
    let out = mlops().args(["plan", FRAUD, "--detailed-exitcode"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("+ module.fraud.training_job.model"), "{text}");
    assert!(text.contains("Plan: 8 to create, 0 to update, 0 to replace, 0 to destroy."), "{text}");
    let out = mlops().args(["plan", FRAUD, "--json"]).output().unwrap();
    let plan: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(plan["format_version"], 1);
    assert_eq!(plan["summary"]["create"], 8);
}

#[test]
fn no_changes_then_a_reviewed_change() {
    let tree = fraud_copy();
    let dir = tree.path().join("examples/fraud-detection");
    apply_by_hand(&dir);
    let out = mlops().args(["plan", "--refresh=false"]).arg(&dir).arg("--detailed-exitcode").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("No changes."), "{}", stdout(&out));

    // Deeper trees retrain the model, roll it out and reset the monitor's drift reference.
    let model = dir.join("model.mlops.hcl");
    let text = std::fs::read_to_string(&model).unwrap().replace("max_depth = 6", "max_depth = 8");
    std::fs::write(&model, text).unwrap();
    let out = mlops().args(["plan", "--refresh=false"]).arg(&dir).arg("--detailed-exitcode").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("-/+ module.fraud.training_job.model"), "{text}");
    assert!(text.contains("max_depth: 6 → 8"), "{text}");
    assert!(text.contains("~ module.fraud.endpoint.api"), "{text}");

    let md =
        stdout(&mlops().args(["plan", "--refresh=false"]).arg(&dir).args(["--format", "markdown"]).output().unwrap());
    assert!(md.contains("<details>"), "{md}");
    assert!(md.len() < 65_536);

    // Saved plan round trip.
    let saved = tree.path().join("fraud.plan");
    let out = mlops().args(["plan", "--refresh=false"]).arg(&dir).arg("--out").arg(&saved).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let shown = stdout(&mlops().arg("show").arg(&saved).output().unwrap());
    assert_eq!(shown, text, "show renders the saved plan as plan did");

    // State inspection.
    let list = stdout(&mlops().args(["state", "list"]).arg(&dir).output().unwrap());
    assert!(list.lines().any(|l| l == "monitor.fraud_health"), "{list}");
    let show = mlops().args(["state", "show", "source.transactions"]).arg(&dir).output().unwrap();
    assert_eq!(show.status.code(), Some(0), "{}", stderr(&show));
    assert!(stdout(&show).contains("\"path\": \"data/transactions.csv\""));
}

#[test]
fn a_lock_left_behind_is_named_and_cleared() {
    let tree = fraud_copy();
    let dir = tree.path().join("examples/fraud-detection");
    apply_by_hand(&dir);
    let backend = LocalState::new(dir.join(".mlops/state"));
    let guard = backend.lock("apply").unwrap();
    let id = guard.id().to_string();
    std::mem::forget(guard); // a crashed apply never releases its lock
    let out = mlops().arg("force-unlock").arg("not-the-id").arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("nothing was unlocked"), "{}", stderr(&out));
    let out = mlops().arg("force-unlock").arg(&id).arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(backend.lock("apply").is_ok(), "the lock is free again");
}

#[test]
fn show_refuses_what_is_not_a_plan() {
    let dir = TempDir::new("show-bad");
    let f = dir.write("x.plan", "{\"format_version\": 99}");
    let out = mlops().arg("show").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is not a saved plan"), "{}", stderr(&out));
}
