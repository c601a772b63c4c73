//! Training with the real XGBoost library: the three tasks reach sensible metrics on generated
//! data, early stopping, time splits, determinism, gates and prediction.

mod train_support;

use mlops_compiler::model::{Task, Validation};
use mlops_runtime::train::{self, metrics, predict, Predictor, TrainOptions, TrainedModel};
use serde_json::json;
use train_support::*;

fn opts() -> TrainOptions {
    TrainOptions { threads: Some(2), progress: false }
}

fn metric_names(m: &TrainedModel) -> Vec<String> {
    m.metrics.keys().cloned().collect()
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn binary_classification_separates_the_classes() {
    let set = binary_set(2000, 1);
    let mut j = job("binary:logistic", 60, json!({"max_depth": 4, "eta": 0.2}));
    j.gates = vec![gate("auc", Some(0.9), None)];
    let m = train::train(&set, &j, &opts()).unwrap();

    assert_eq!(metric_names(&m), sorted(Task::Binary.metrics()));
    assert!(m.metrics["auc"] > 0.9, "auc {}", m.metrics["auc"]);
    assert!(m.metrics["accuracy"] > 0.8, "accuracy {}", m.metrics["accuracy"]);
    assert!(m.metrics["logloss"] < 0.4, "logloss {}", m.metrics["logloss"]);
    assert_eq!((m.train_rows, m.holdout_rows), (1600, 400));
    assert_eq!(m.eval_metric, "logloss");
    assert!(m.eval_score.is_some());
    assert_eq!(m.features, set.features);
    assert_eq!(m.rounds_trained, 60);
    assert_eq!(num_trees(&m.model_json), 60);
    assert!(m.passed());
    assert_eq!(m.params["objective"], json!("binary:logistic"));
    assert_eq!(m.params["max_depth"], json!(4));
    assert_eq!(m.params["seed"], json!(42));

    // XGBoost's own JSON, with the feature names and types of the signature.
    let v: serde_json::Value = serde_json::from_slice(&m.model_json).unwrap();
    assert_eq!(v["learner"]["feature_names"], json!(["x0", "x1", "x2", "channel", "n_items"]));
    assert_eq!(v["learner"]["feature_types"], json!(["float", "float", "float", "c", "int"]));
    // XGBoost estimated the intercept from the labels rather than keeping the binding's 0.5.
    let base_score = v["learner"]["learner_model_param"]["base_score"].as_str().unwrap();
    let base_score: f64 = base_score.trim_matches(['[', ']']).parse().unwrap();
    assert!(base_score > 0.0 && base_score < 1.0 && base_score != 0.5, "base_score {base_score}");
}

#[test]
fn multiclass_classification_learns_three_classes() {
    let set = multiclass_set(2000, 2);
    let j = job("multi:softprob", 60, json!({"max_depth": 4, "eta": 0.3}));
    let m = train::train(&set, &j, &opts()).unwrap();
    assert_eq!(metric_names(&m), sorted(Task::Multiclass.metrics()));
    assert!(m.metrics["accuracy"] > 0.8, "accuracy {}", m.metrics["accuracy"]);
    assert!((m.metrics["merror"] - (1.0 - m.metrics["accuracy"])).abs() < 1e-12);
    assert!(m.metrics["f1"] > 0.75, "macro f1 {}", m.metrics["f1"]);
    assert_eq!(m.params["num_class"], json!(3));
    assert_eq!(m.classes, set.classes);
    assert_eq!(m.eval_metric, "mlogloss");

    // softprob: one probability per class, summing to 1.
    let p = predict(&m.model_json, &rows_of(&set, 0, 10), 10, set.cols()).unwrap();
    assert_eq!(p.len(), 30);
    for row in p.chunks(3) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
    }
}

#[test]
fn multiclass_softmax_predicts_classes_and_still_gets_probability_metrics() {
    let set = multiclass_set(1000, 3);
    let j = job("multi:softmax", 30, json!({"max_depth": 3}));
    let m = train::train(&set, &j, &opts()).unwrap();
    assert!(m.metrics.contains_key("mlogloss"));
    assert!(m.metrics["accuracy"] > 0.75, "accuracy {}", m.metrics["accuracy"]);
    let p = predict(&m.model_json, &rows_of(&set, 0, 20), 20, set.cols()).unwrap();
    assert_eq!(p.len(), 20);
    assert!(p.iter().all(|&c| c == 0.0 || c == 1.0 || c == 2.0), "{p:?}");
}

#[test]
fn regression_fits_the_target() {
    let set = regression_set(2000, 4);
    let j = job("reg:squarederror", 100, json!({"max_depth": 4, "eta": 0.2}));
    let m = train::train(&set, &j, &opts()).unwrap();
    assert_eq!(metric_names(&m), sorted(Task::Regression.metrics()));
    assert!(m.metrics["r2"] > 0.9, "r2 {}", m.metrics["r2"]);
    assert!(m.metrics["rmse"] < 1.0, "rmse {}", m.metrics["rmse"]);
    assert!(m.metrics["mae"] <= m.metrics["rmse"]);
    assert_eq!(m.eval_metric, "rmse");
}

#[test]
fn early_stopping_stops_early_on_noise_and_keeps_the_best_rounds() {
    let set = noise_set(1500, 5);
    let j = job("binary:logistic", 300, json!({"max_depth": 6, "eta": 0.3, "early_stopping_rounds": 5}));
    let m = train::train(&set, &j, &opts()).unwrap();
    assert!(m.rounds_trained < 100, "trained {} rounds on noise", m.rounds_trained);
    // It stops 5 rounds after the best one, and the model holds the best rounds only.
    assert_eq!(m.rounds_trained, m.best_iteration + 6);
    assert_eq!(num_trees(&m.model_json), m.best_iteration as usize + 1);
    assert!(m.metrics["auc"] < 0.65, "auc {} on noise", m.metrics["auc"]);
    assert_eq!(m.params["early_stopping_rounds"], json!(5));

    // On learnable data with the same patience it keeps going much longer.
    let m = train::train(
        &binary_set(1500, 5),
        &job("binary:logistic", 60, json!({"eta": 0.05, "early_stopping_rounds": 5})),
        &opts(),
    )
    .unwrap();
    assert!(m.rounds_trained > 40, "stopped after {} rounds", m.rounds_trained);
}

#[test]
fn an_explicit_eval_metric_drives_early_stopping() {
    let set = binary_set(1000, 6);
    let j = job("binary:logistic", 40, json!({"eval_metric": ["logloss", "auc"], "early_stopping_rounds": 10}));
    let m = train::train(&set, &j, &opts()).unwrap();
    // The last metric listed is the one watched, as in Python's xgboost.
    assert_eq!(m.eval_metric, "auc");
    assert!(m.eval_score.unwrap() > 0.9);
}

#[test]
fn the_time_split_holds_out_the_latest_rows() {
    // Event times are shuffled against row order, and the latest fifth has inverted labels
    // (a concept drift): only a holdout made of exactly those rows scores an AUC near 0.
    let mut set = binary_set(2000, 7);
    let mut r = Rng::new(99);
    let mut times: Vec<i64> = (0..2000).collect();
    for i in (1..times.len()).rev() {
        times.swap(i, (r.u64() % (i as u64 + 1)) as usize);
    }
    for (i, &t) in times.iter().enumerate() {
        set.event_time[i] = t * 1_000_000;
        if t >= 1600 {
            set.y[i] = 1.0 - set.y[i];
        }
    }
    let mut j = job("binary:logistic", 40, json!({"max_depth": 3}));
    j.validation = Validation { split: "time".into(), holdout: 0.2, seed: 0 };
    let by_time = train::train(&set, &j, &opts()).unwrap();
    assert_eq!(by_time.holdout_rows, 400);
    assert!(by_time.metrics["auc"] < 0.2, "time split auc {}", by_time.metrics["auc"]);

    j.validation.split = "random".into();
    let random = train::train(&set, &j, &opts()).unwrap();
    assert!(random.metrics["auc"] > 0.6, "random split auc {}", random.metrics["auc"]);
}

#[test]
fn training_is_deterministic_for_a_seed() {
    let set = binary_set(1500, 8);
    let j = job(
        "binary:logistic",
        30,
        json!({"max_depth": 5, "subsample": 0.7, "colsample_bytree": 0.8, "early_stopping_rounds": 10}),
    );
    let a = train::train(&set, &j, &opts()).unwrap();
    let b = train::train(&set, &j, &opts()).unwrap();
    assert_eq!(a.model_json, b.model_json, "same seed, same data: identical model bytes");
    assert_eq!(a, b);

    // Another seed changes the split and the subsampling, hence the model.
    let mut k = j.clone();
    k.validation.seed = 43;
    let c = train::train(&set, &k, &opts()).unwrap();
    assert_ne!(a.model_json, c.model_json);
    // So does an explicit XGBoost seed alone.
    let mut k = j.clone();
    k.params.insert("seed".into(), json!(7));
    let d = train::train(&set, &k, &opts()).unwrap();
    assert_ne!(a.model_json, d.model_json);
    assert_eq!(a.holdout_rows, d.holdout_rows);
}

#[test]
fn gates_pass_and_fail_on_holdout_metrics() {
    let set = binary_set(1000, 9);
    let mut j = job("binary:logistic", 20, json!({}));
    j.gates = vec![gate("auc", Some(0.85), None), gate("logloss", None, Some(0.6))];
    let m = train::train(&set, &j, &opts()).unwrap();
    assert!(m.passed(), "{:?}", m.gates);
    assert_eq!(m.gates[0].value, Some(m.metrics["auc"]));

    j.gates = vec![gate("auc", Some(0.85), None), gate("auc", Some(0.9999), None)];
    let m = train::train(&set, &j, &opts()).unwrap();
    assert!(!m.passed());
    assert_eq!(m.gates.iter().map(|g| g.passed).collect::<Vec<_>>(), vec![true, false]);

    // Noise cannot pass an AUC gate.
    let m = train::train(&noise_set(1000, 9), &job_with_gate(), &opts()).unwrap();
    assert!(!m.passed(), "{:?}", m.gates);
}

fn job_with_gate() -> mlops_compiler::model::TrainingJob {
    let mut j = job("binary:logistic", 20, json!({}));
    j.gates = vec![gate("auc", Some(0.8), None)];
    j
}

#[test]
fn predictions_reproduce_the_holdout_metrics() {
    // With a time split on row-ordered event times the holdout is the last 20% of rows, so
    // predicting them again must give exactly the recorded metrics.
    let set = binary_set(1000, 10);
    let mut j = job("binary:logistic", 25, json!({"max_depth": 3}));
    j.validation = Validation { split: "time".into(), holdout: 0.2, seed: 0 };
    let m = train::train(&set, &j, &opts()).unwrap();
    let p = Predictor::load(&m.model_json).unwrap();
    assert_eq!(p.num_features(), 5);
    let preds = p.predict(&rows_of(&set, 800, 1000), 200).unwrap();
    assert_eq!(metrics::auc(&set.y[800..], &preds).unwrap(), m.metrics["auc"]);
    assert_eq!(metrics::logloss(&set.y[800..], &preds).unwrap(), m.metrics["logloss"]);
    // One row at a time gives the same values as a batch.
    let one = p.predict(&rows_of(&set, 800, 801), 1).unwrap();
    assert_eq!(one, vec![preds[0]]);
    assert_eq!(p.predict(&[], 0).unwrap(), Vec::<f32>::new());
}
