//! Random-search tuning with real XGBoost: it finds the params a crafted problem needs, runs
//! trials in parallel deterministically, and rejects malformed searches.

mod train_support;

use mlops_compiler::model::TrainingJob;
use mlops_runtime::dataset::TrainingSet;
use mlops_runtime::train::{self, TrainError, TrainOptions};
use serde_json::json;
use train_support::*;

/// A target that is an interaction of two features (an XOR of their signs): a sum of single-split
/// trees (max_depth 1) cannot represent it, deeper trees can.
fn interaction_set(rows: usize) -> TrainingSet {
    let mut set = regression_set(rows, 11);
    let mut r = Rng::new(12);
    for i in 0..rows {
        let (x0, x1) = (set.x[i * 5], set.x[i * 5 + 1]);
        set.y[i] = 5.0 * x0.signum() * x1.signum() + 0.1 * r.normal();
    }
    set
}

fn tuned_job() -> TrainingJob {
    let mut j = job("reg:squarederror", 30, json!({"eta": 0.3}));
    j.tuning = Some(tuning(
        6,
        "rmse",
        2,
        json!([
            {"param": "max_depth", "values": [1, 4], "scale": "linear", "integer": false},
            {"param": "min_child_weight", "min": 1.0, "max": 10.0, "scale": "log", "integer": false},
        ]),
    ));
    j
}

#[test]
fn tuning_picks_the_params_the_problem_needs() {
    let set = interaction_set(1500);
    let m = train::train(&set, &tuned_job(), &TrainOptions { threads: Some(2), progress: false }).unwrap();

    assert_eq!(m.trials.len(), 6);
    let depths: Vec<i64> = m.trials.iter().map(|t| t.params["max_depth"].as_i64().unwrap()).collect();
    assert!(depths.contains(&1) && depths.contains(&4), "both depths should be tried: {depths:?}");
    for t in &m.trials {
        let w = t.params["min_child_weight"].as_f64().unwrap();
        assert!((1.0..=10.0).contains(&w), "{w}");
        assert_eq!(t.score, Some(t.metrics["rmse"]));
    }
    // Stumps cannot fit an interaction; every depth-4 trial beats every depth-1 trial.
    let worst_deep =
        m.trials.iter().filter(|t| t.params["max_depth"] == 4).map(|t| t.metrics["rmse"]).fold(0.0, f64::max);
    let best_stump =
        m.trials.iter().filter(|t| t.params["max_depth"] == 1).map(|t| t.metrics["rmse"]).fold(f64::MAX, f64::min);
    assert!(worst_deep < best_stump, "depth 4 rmse {worst_deep} vs depth 1 rmse {best_stump}");

    // The chosen trial is the lowest rmse, and its values are the model's params.
    let best = m.best_trial.unwrap();
    let lowest = m.trials.iter().map(|t| t.metrics["rmse"]).fold(f64::MAX, f64::min);
    assert_eq!(m.trials[best].metrics["rmse"], lowest);
    assert_eq!(m.metrics, m.trials[best].metrics);
    assert_eq!(m.params["max_depth"], json!(4));
    assert_eq!(m.params["min_child_weight"], m.trials[best].params["min_child_weight"]);
    assert_eq!(m.params["eta"], json!(0.3));
    assert!(m.metrics["r2"] > 0.9, "r2 {}", m.metrics["r2"]);
}

#[test]
fn tuning_is_deterministic_whatever_the_thread_interleaving() {
    let set = interaction_set(800);
    let mut j = tuned_job();
    j.tuning.as_mut().unwrap().parallelism = 3;
    let opts = TrainOptions { threads: Some(3), progress: false };
    let a = train::train(&set, &j, &opts).unwrap();
    let b = train::train(&set, &j, &opts).unwrap();
    assert_eq!(a.model_json, b.model_json);
    assert_eq!(a.trials, b.trials);
    assert_eq!(a.best_trial, b.best_trial);
}

#[test]
fn higher_is_better_metrics_pick_the_maximum() {
    let set = binary_set(1000, 13);
    let mut j = job("binary:logistic", 20, json!({}));
    j.tuning = Some(tuning(
        4,
        "auc",
        2,
        json!([{"param": "max_depth", "min": 1, "max": 6, "scale": "linear", "integer": true}]),
    ));
    let m = train::train(&set, &j, &TrainOptions { threads: Some(2), progress: false }).unwrap();
    let top = m.trials.iter().map(|t| t.metrics["auc"]).fold(0.0, f64::max);
    assert_eq!(m.metrics["auc"], top);
    assert!(m.trials.iter().all(|t| t.params["max_depth"].is_i64()));
}

#[test]
fn malformed_tuning_is_an_error() {
    let set = binary_set(200, 14);
    let mut j = job("binary:logistic", 5, json!({}));
    j.tuning =
        Some(tuning(3, "rmse", 1, json!([{"param": "eta", "values": [0.1], "scale": "linear", "integer": false}])));
    let e = train::train(&set, &j, &TrainOptions::default()).unwrap_err();
    assert!(matches!(&e, TrainError::Tuning(m) if m.contains("rmse") && m.contains("auc")), "{e}");

    j.tuning =
        Some(tuning(3, "auc", 1, json!([{"param": "eta", "min": 0.0, "max": 0.3, "scale": "log", "integer": false}])));
    let e = train::train(&set, &j, &TrainOptions::default()).unwrap_err();
    assert!(matches!(&e, TrainError::Search { param, .. } if param == "eta"), "{e}");

    // A drawn value XGBoost rejects fails the tuning with XGBoost's message.
    j.tuning = Some(tuning(
        3,
        "auc",
        2,
        json!([{"param": "tree_method", "values": ["nope"], "scale": "linear", "integer": false}]),
    ));
    let e = train::train(&set, &j, &TrainOptions::default()).unwrap_err();
    assert!(matches!(&e, TrainError::Xgboost { message, .. } if message.contains("nope")), "{e}");
}
