//! Interop: Python's xgboost (pip `xgboost-cpu==3.2.0`, installed by scripts/install-xgboost.sh)
//! loads the Rust-trained model files and predicts what Rust predicts, to within 1e-6; and given
//! the same rows and params, Python's `xgb.train` writes a byte-identical model file, so a job's
//! params mean what they mean in Python. Missing Python xgboost fails the tests: the interop
//! promise would otherwise go unchecked.

mod train_support;

use std::path::Path;
use std::process::Command;

use mlops_compiler::model::{TrainingJob, Validation};
use mlops_runtime::dataset::TrainingSet;
use mlops_runtime::train::{self, predict, TrainOptions};
use serde_json::json;
use train_support::*;

const SCRIPT: &str = r#"
import sys
try:
    import numpy as np
    import xgboost as xgb
except ImportError as e:
    print(f"python xgboost is missing ({e}): run scripts/install-xgboost.sh", file=sys.stderr)
    sys.exit(3)
d = sys.argv[1]
rows, cols = int(sys.argv[2]), int(sys.argv[3])
bst = xgb.Booster(model_file=f"{d}/model.json")
x = np.fromfile(f"{d}/features.f32", dtype="<f4").reshape(rows, cols)
m = xgb.DMatrix(x, missing=np.nan, feature_names=bst.feature_names, feature_types=bst.feature_types,
                enable_categorical=True)
bst.predict(m).astype("<f4").ravel().tofile(f"{d}/python.f32")
print(xgb.__version__)
"#;

const TRAIN_SCRIPT: &str = r#"
import json, sys
try:
    import numpy as np
    import xgboost as xgb
except ImportError as e:
    print(f"python xgboost is missing ({e}): run scripts/install-xgboost.sh", file=sys.stderr)
    sys.exit(3)
d = sys.argv[1]
spec = json.load(open(f"{d}/spec.json"))
cols, n_train = spec["cols"], spec["train_rows"]
x = np.fromfile(f"{d}/x.f32", dtype="<f4").reshape(-1, cols)
y = np.fromfile(f"{d}/y.f32", dtype="<f4")
kw = dict(missing=np.nan, feature_names=spec["names"], feature_types=spec["types"], enable_categorical=True)
dtrain = xgb.DMatrix(x[:n_train], y[:n_train], **kw)
dhold = xgb.DMatrix(x[n_train:], y[n_train:], **kw)
params = spec["params"]
rounds = params.pop("rounds")
bst = xgb.train(params, dtrain, rounds, evals=[(dhold, "holdout")], verbose_eval=False)
bst.save_model(f"{d}/python.json")
"#;

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs a Python script, failing the test with a pointer to the installer if it cannot.
#[track_caller]
fn run_python(script: &str, args: &[&str]) -> String {
    let out = Command::new(python())
        .args(["-c", script])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; run scripts/install-xgboost.sh", python()));
    assert!(
        out.status.success(),
        "python xgboost failed (run scripts/install-xgboost.sh to install xgboost-cpu==3.2.0 and numpy):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn write_f32(path: &Path, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path).unwrap().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// Trains, predicts `rows` rows in Rust and in Python, and compares.
#[track_caller]
fn same_predictions(set: &TrainingSet, j: &TrainingJob, rows: usize) -> usize {
    let m = train::train(set, j, &TrainOptions { threads: Some(2), progress: false }).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("model.json"), &m.model_json).unwrap();
    let features = rows_of(set, set.rows() - rows, set.rows());
    write_f32(&dir.path().join("features.f32"), &features);
    let rust = predict(&m.model_json, &features, rows, set.cols()).unwrap();

    let version = run_python(SCRIPT, &[dir.path().to_str().unwrap(), &rows.to_string(), &set.cols().to_string()]);
    let py = read_f32(&dir.path().join("python.f32"));
    assert_eq!(py.len(), rust.len(), "python xgboost {version}");
    for (i, (a, b)) in rust.iter().zip(&py).enumerate() {
        assert!((a - b).abs() <= 1e-6, "prediction {i}: rust {a}, python xgboost {version} {b}");
    }
    rust.len()
}

#[test]
fn python_xgboost_predicts_like_rust_for_binary_models_with_categories_and_missing_values() {
    let set = binary_set(1500, 21);
    // Early stopping cuts the model to its best rounds: the cut model must load too.
    let n = same_predictions(
        &set,
        &job("binary:logistic", 80, json!({"max_depth": 4, "subsample": 0.8, "early_stopping_rounds": 5})),
        300,
    );
    assert_eq!(n, 300);
    assert!(set.x.iter().any(|v| v.is_nan()), "the rows include missing values");
}

#[test]
fn python_xgboost_predicts_like_rust_for_multiclass_models() {
    let n = same_predictions(&multiclass_set(1200, 22), &job("multi:softprob", 30, json!({"max_depth": 3})), 200);
    assert_eq!(n, 600);
}

#[test]
fn python_xgboost_predicts_like_rust_for_regression_models() {
    let n = same_predictions(&regression_set(1200, 23), &job("reg:squarederror", 40, json!({"eta": 0.2})), 200);
    assert_eq!(n, 200);
}

/// Trains in Rust with a time split on row-ordered event times (so the holdout is the last rows),
/// then in Python on the same rows with the model's recorded params; the files must be identical.
#[track_caller]
fn same_model_file(set: &TrainingSet, mut j: TrainingJob) {
    j.validation = Validation { split: "time".into(), holdout: 0.2, seed: 0 };
    let m = train::train(set, &j, &TrainOptions { threads: Some(2), progress: false }).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_f32(&dir.path().join("x.f32"), &set.x);
    write_f32(&dir.path().join("y.f32"), &set.y);
    // The feature types the model recorded (categorical codes as "c").
    let model: serde_json::Value = serde_json::from_slice(&m.model_json).unwrap();
    let types = model["learner"]["feature_types"].clone();
    let mut params = m.params.clone();
    params.insert("nthread".into(), json!(2));
    let spec = json!({
        "cols": set.cols(),
        "train_rows": m.train_rows,
        "names": m.features.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        "types": types,
        "params": params,
    });
    std::fs::write(dir.path().join("spec.json"), spec.to_string()).unwrap();
    run_python(TRAIN_SCRIPT, &[dir.path().to_str().unwrap()]);
    let py = std::fs::read(dir.path().join("python.json")).unwrap();
    assert!(py == m.model_json, "python's model differs from rust's for params {:?}", m.params);
}

#[test]
fn python_xgboost_trains_the_same_model_file_from_the_same_rows_and_params() {
    same_model_file(&binary_set(1000, 31), job("binary:logistic", 20, json!({"max_depth": 4, "eta": 0.2})));
    same_model_file(
        &multiclass_set(900, 32),
        job("multi:softprob", 15, json!({"max_depth": 3, "subsample": 0.8, "colsample_bytree": 0.7})),
    );
    // Poisson: XGBoost's own max_delta_step default (0.7) must survive the binding's defaults.
    let mut counts = regression_set(900, 33);
    counts.y.iter_mut().for_each(|y| *y = (0.3 * (*y - 10.0)).exp().round());
    same_model_file(&counts, job("count:poisson", 15, json!({"max_depth": 3})));
}
