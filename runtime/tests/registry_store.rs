//! The model registry on a real directory: versions, status transitions, gates, atomicity,
//! corruption and lock contention.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use mlops_compiler::model::{ColumnType, Task};
use mlops_runtime::dataset::FeatureSpec;
use mlops_runtime::registry::{Registry, RegistryError, Status};
use mlops_runtime::train::{GateResult, TrainedModel};
use serde_json::json;

const JOB: &str = "training_job.fraud";

/// A model record as training produces it (the registry does not look inside the model file).
fn model(auc: f64, gate_min: f64) -> TrainedModel {
    TrainedModel {
        model_json: format!("{{\"learner\": {{\"auc\": {auc}}}}}").into_bytes(),
        objective: "binary:logistic".into(),
        task: Task::Binary,
        params: BTreeMap::from([("max_depth".to_string(), json!(6)), ("eta".to_string(), json!(0.1))]),
        metrics: BTreeMap::from([("auc".to_string(), auc), ("logloss".to_string(), 0.3)]),
        eval_metric: "logloss".into(),
        eval_score: Some(0.3),
        best_iteration: 41,
        rounds_trained: 47,
        gates: vec![GateResult {
            metric: "auc".into(),
            value: Some(auc),
            min: Some(gate_min),
            max: None,
            passed: auc >= gate_min,
        }],
        features: vec![
            FeatureSpec { name: "amount".into(), dtype: ColumnType::Float, categories: vec![] },
            FeatureSpec {
                name: "merchant".into(),
                dtype: ColumnType::Category,
                categories: vec!["a".into(), "b".into()],
            },
        ],
        classes: vec![],
        train_rows: 800,
        holdout_rows: 200,
        trials: vec![],
        best_trial: None,
    }
}

/// A registry that waits a little for its lock: a `flock` is briefly shared with a child process
/// forked by another test (until the child's exec closes it), so waiting for nothing is flaky.
fn open(dir: &Path) -> Registry {
    Registry::open(dir).unwrap().with_lock_wait(Duration::from_secs(2))
}

fn statuses(r: &Registry) -> Vec<(u32, Status)> {
    r.list(Some(JOB)).unwrap().iter().map(|v| (v.version, v.status)).collect()
}

/// Every file under `dir`, relative.
fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn versions_increment_per_job_and_keep_everything_registered() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    assert!(r.list(None).unwrap().is_empty());
    assert!(r.latest(JOB).unwrap().is_none());

    let v1 = r.register(JOB, &model(0.90, 0.85), "spec-1", "data-1").unwrap();
    let v2 = r.register(JOB, &model(0.92, 0.85), "spec-1", "data-2").unwrap();
    let other = r.register("training_job.churn", &model(0.80, 0.5), "spec-9", "data-9").unwrap();
    assert_eq!((v1.version, v2.version, other.version), (1, 2, 1));
    assert_eq!(v1.status, Status::Candidate);
    assert!(v1.created_at > 1_600_000_000);

    let got = r.get(JOB, 2).unwrap();
    assert_eq!(got, v2);
    assert_eq!(got.metrics["auc"], 0.92);
    assert_eq!(got.data_hash, "data-2");
    assert_eq!(got.spec_hash, "spec-1");
    assert_eq!(got.params["max_depth"], json!(6));
    assert_eq!(got.signature.features[1].categories, vec!["a", "b"]);
    assert_eq!(got.best_iteration, 41);
    assert!(got.passed);
    assert_eq!(r.model_json(&got).unwrap(), model(0.92, 0.85).model_json);
    assert_eq!(got.model_path, dir.path().join("models/training_job.fraud/2/model.json"));
    assert_eq!(r.latest(JOB).unwrap().unwrap().version, 2);

    let all = r.list(None).unwrap();
    assert_eq!(
        all.iter().map(|v| (v.job.as_str(), v.version)).collect::<Vec<_>>(),
        vec![("training_job.churn", 1), (JOB, 1), (JOB, 2)]
    );
    // Another handle (another process) sees the same registry.
    assert_eq!(open(dir.path()).list(None).unwrap(), all);

    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("models/training_job.fraud/1/meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["status"], "candidate");
    assert_eq!(meta["signature"]["features"][0]["name"], "amount");
    assert_eq!(meta["gates"][0]["min"], 0.85);

    assert!(matches!(r.get(JOB, 3), Err(RegistryError::UnknownVersion { version: 3, .. })));
    assert!(matches!(r.get("training_job.nope", 1), Err(RegistryError::UnknownJob { .. })));
}

#[test]
fn promotion_archives_the_previous_production_version() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    for auc in [0.9, 0.91, 0.92] {
        r.register(JOB, &model(auc, 0.85), "s", "d").unwrap();
    }
    assert!(r.production(JOB).unwrap().is_none());

    assert_eq!(r.promote(JOB, 1, false).unwrap().status, Status::Production);
    assert_eq!(statuses(&r), vec![(1, Status::Production), (2, Status::Candidate), (3, Status::Candidate)]);
    r.promote(JOB, 3, false).unwrap();
    assert_eq!(statuses(&r), vec![(1, Status::Archived), (2, Status::Candidate), (3, Status::Production)]);
    assert_eq!(r.production(JOB).unwrap().unwrap().version, 3);
    // meta.json agrees with the index.
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("models/training_job.fraud/1/meta.json")).unwrap())
            .unwrap();
    assert_eq!(meta["status"], "archived");

    // Promoting the production version again changes nothing; rolling back to an archived one works.
    r.promote(JOB, 3, false).unwrap();
    r.promote(JOB, 1, false).unwrap();
    assert_eq!(statuses(&r), vec![(1, Status::Production), (2, Status::Candidate), (3, Status::Archived)]);

    r.archive(JOB, 1).unwrap();
    assert!(r.production(JOB).unwrap().is_none());
    assert_eq!(statuses(&r), vec![(1, Status::Archived), (2, Status::Candidate), (3, Status::Archived)]);
    assert!(matches!(r.promote(JOB, 9, false), Err(RegistryError::UnknownVersion { version: 9, .. })));
}

#[test]
fn a_version_that_failed_its_gate_is_only_promoted_by_force() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    r.register(JOB, &model(0.90, 0.85), "s", "d").unwrap();
    r.promote(JOB, 1, false).unwrap();
    let failed = r.register(JOB, &model(0.71, 0.85), "s", "d").unwrap();
    assert!(!failed.passed);

    let e = r.promote(JOB, 2, false).unwrap_err();
    assert!(matches!(e, RegistryError::GateFailed { version: 2, .. }), "{e}");
    assert!(e.to_string().contains("auc 0.7100 below min 0.85"), "{e}");
    // Nothing changed.
    assert_eq!(statuses(&r), vec![(1, Status::Production), (2, Status::Candidate)]);

    r.promote(JOB, 2, true).unwrap();
    assert_eq!(statuses(&r), vec![(1, Status::Archived), (2, Status::Production)]);
}

#[test]
fn writes_leave_no_temporary_files() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    r.register(JOB, &model(0.9, 0.5), "s", "d").unwrap();
    r.register(JOB, &model(0.9, 0.5), "s", "d").unwrap();
    r.promote(JOB, 2, false).unwrap();
    r.archive(JOB, 1).unwrap();
    assert_eq!(
        files(dir.path()),
        vec![
            "index.json",
            "models/training_job.fraud/1/meta.json",
            "models/training_job.fraud/1/model.json",
            "models/training_job.fraud/2/meta.json",
            "models/training_job.fraud/2/model.json",
            "registry.lock",
        ]
    );
}

#[test]
fn a_crashed_registration_is_invisible_and_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    r.register(JOB, &model(0.9, 0.5), "s", "d").unwrap();
    // A registration that died before updating the index: its files exist, the index does not list it.
    let orphan = dir.path().join("models/training_job.fraud/2");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(orphan.join("model.json"), b"half").unwrap();
    assert_eq!(statuses(&r), vec![(1, Status::Candidate)]);

    let v = r.register(JOB, &model(0.95, 0.5), "s", "d").unwrap();
    assert_eq!(v.version, 3);
    assert_eq!(std::fs::read(orphan.join("model.json")).unwrap(), b"half");
}

#[test]
fn corrupted_files_are_clear_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    r.register(JOB, &model(0.9, 0.5), "s", "d").unwrap();

    let meta = dir.path().join("models/training_job.fraud/1/meta.json");
    std::fs::write(&meta, b"{\"job\": \"training_job.fraud\", \"vers").unwrap();
    let e = r.get(JOB, 1).unwrap_err();
    assert!(matches!(&e, RegistryError::Corrupt { path, .. } if *path == meta), "{e}");
    assert!(e.to_string().contains("meta.json is corrupted"), "{e}");

    // A model file changed after registration.
    r.register(JOB, &model(0.9, 0.5), "s", "d").unwrap();
    let v2 = r.get(JOB, 2).unwrap();
    std::fs::write(&v2.model_path, b"{}").unwrap();
    let e = r.model_json(&v2).unwrap_err();
    assert!(matches!(&e, RegistryError::Checksum { path, .. } if *path == v2.model_path), "{e}");
    std::fs::remove_file(&v2.model_path).unwrap();
    let e = r.model_json(&v2).unwrap_err();
    assert!(matches!(&e, RegistryError::Io { action: "read", .. }) && e.to_string().contains("2/model.json"), "{e}");

    let index = dir.path().join("index.json");
    std::fs::write(&index, b"{ not json").unwrap();
    for e in [
        r.list(None).unwrap_err(),
        r.register(JOB, &model(0.9, 0.5), "s", "d").unwrap_err(),
        Registry::open(dir.path()).unwrap_err(),
    ] {
        assert!(matches!(&e, RegistryError::Corrupt { path, .. } if *path == index), "{e}");
        assert!(e.to_string().contains("index.json is corrupted"), "{e}");
    }
    std::fs::write(&index, b"{\"format\": 7, \"jobs\": {}}").unwrap();
    let e = r.list(None).unwrap_err();
    assert!(e.to_string().contains("format 7"), "{e}");
}

#[test]
fn a_held_lock_is_a_clear_error_naming_the_holder_and_a_dead_holder_blocks_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path()).with_lock_wait(Duration::ZERO);
    r.register(JOB, &model(0.9, 0.5), "s", "d").unwrap();
    let lock = dir.path().join("registry.lock");

    // A live holder: another process holding the flock (flock(1) from util-linux).
    use std::os::unix::process::CommandExt;
    let mut holder = std::process::Command::new("flock")
        .process_group(0)
        .arg(&lock)
        .args(["sh", "-c", "echo $PPID > \"$0\"; sleep 30"])
        .arg(&lock)
        .spawn()
        .expect("flock(1) runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_to_string(&lock).map_or(true, |s| s.trim().is_empty()) {
        assert!(std::time::Instant::now() < deadline, "the holder never wrote its pid");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let e = r.register(JOB, &model(0.9, 0.5), "s", "d").unwrap_err();
    assert!(matches!(&e, RegistryError::Locked { pid: Some(p), .. } if *p == holder.id()), "{e}");
    assert!(e.to_string().contains(&format!("busy: process {} holds its lock", holder.id())), "{e}");
    assert!(e.to_string().contains("registry.lock"), "{e}");
    assert!(matches!(r.promote(JOB, 1, false), Err(RegistryError::Locked { .. })));
    // Readers are not blocked.
    assert_eq!(r.list(None).unwrap().len(), 1);

    // The holder (and the child it passed the lock to) is killed: the kernel releases the lock;
    // the file left behind blocks nobody.
    let group = format!("-{}", holder.id());
    assert!(std::process::Command::new("kill").args(["-KILL", "--", &group]).status().unwrap().success());
    holder.wait().unwrap();
    assert!(lock.exists());
    // (Waiting a little: the group's last process may still be exiting.)
    let r = r.with_lock_wait(Duration::from_secs(5));
    assert_eq!(r.register(JOB, &model(0.9, 0.5), "s", "d").unwrap().version, 2);
}

#[test]
fn concurrent_writers_wait_for_each_other() {
    let dir = tempfile::tempdir().unwrap();
    Registry::open(dir.path()).unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                let r = Registry::open(dir.path()).unwrap().with_lock_wait(Duration::from_secs(30));
                for _ in 0..3 {
                    r.register(JOB, &model(0.9, 0.5), "s", "d").unwrap();
                }
            });
        }
    });
    let versions: Vec<u32> =
        Registry::open(dir.path()).unwrap().list(Some(JOB)).unwrap().iter().map(|v| v.version).collect();
    assert_eq!(versions, (1..=12).collect::<Vec<_>>());
}

#[test]
fn invalid_registrations_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    assert!(matches!(r.register("", &model(0.9, 0.5), "s", "d"), Err(RegistryError::InvalidJob { .. })));
    let mut m = model(0.9, 0.5);
    m.model_json.clear();
    assert!(matches!(r.register(JOB, &m, "s", "d"), Err(RegistryError::InvalidModel { .. })));
    let mut m = model(0.9, 0.5);
    m.metrics.insert("auc".into(), f64::NAN);
    assert!(matches!(r.register(JOB, &m, "s", "d"), Err(RegistryError::InvalidModel { .. })));
    // An address with path characters stays inside models/.
    let v = r.register("../../escape", &model(0.9, 0.5), "s", "d").unwrap();
    assert!(v.model_path.starts_with(dir.path().join("models")));
    assert_eq!(r.get("../../escape", 1).unwrap().job, "../../escape");
}

#[test]
fn a_registered_xgboost_model_predicts_the_same_when_read_back() {
    use mlops_compiler::model::{ColumnRef, Resources, TrainingJob, Validation};
    use mlops_runtime::dataset::TrainingSet;
    use mlops_runtime::train::{self, TrainOptions};

    // y = 1 when x0 + x1 > 1 on a small grid.
    let mut set = TrainingSet {
        features: vec![
            FeatureSpec { name: "x0".into(), dtype: ColumnType::Float, categories: vec![] },
            FeatureSpec { name: "x1".into(), dtype: ColumnType::Float, categories: vec![] },
        ],
        ..Default::default()
    };
    for i in 0..400 {
        let (a, b) = ((i % 20) as f32 / 20.0, (i / 20) as f32 / 20.0);
        set.x.extend([a, b]);
        set.y.push(f32::from(a + b > 1.0));
        set.event_time.push(i);
    }
    let job = TrainingJob {
        features: vec![],
        label: ColumnRef { source: "source.s".into(), column: "y".into() },
        exclude: vec![],
        algorithm: "xgboost".into(),
        objective: "binary:logistic".into(),
        task: Task::Binary,
        rounds: 10,
        params: BTreeMap::new(),
        validation: Validation { split: "random".into(), holdout: 0.25, seed: 1 },
        tuning: None,
        gates: vec![],
        resources: Resources::default(),
        schedule: None,
        description: None,
    };
    let m = train::train(&set, &job, &TrainOptions { threads: Some(1), progress: false }).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    let v = r.register(JOB, &m, "spec", &train::data_hash(&set)).unwrap();
    let back = r.get(JOB, v.version).unwrap();
    // serde_json without its `float_roundtrip` feature may read a float back 1 ulp off.
    assert_eq!(back.metrics.keys().collect::<Vec<_>>(), m.metrics.keys().collect::<Vec<_>>());
    for (k, v) in &m.metrics {
        assert!((back.metrics[k] - v).abs() <= 1e-12 * v.abs().max(1.0), "{k}: {} vs {v}", back.metrics[k]);
    }
    assert_eq!(back.signature.features, set.features);
    assert_eq!(back.data_hash, train::data_hash(&set));
    let bytes = r.model_json(&back).unwrap();
    assert_eq!(bytes, m.model_json);
    let rows = [0.9, 0.8, 0.1, 0.2];
    assert_eq!(train::predict(&bytes, &rows, 2, 2).unwrap(), train::predict(&m.model_json, &rows, 2, 2).unwrap());
}
