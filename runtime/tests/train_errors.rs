//! Bad inputs to training and prediction end in clear errors, never panics.

mod train_support;

use mlops_compiler::model::Validation;
use mlops_runtime::dataset::TrainingSet;
use mlops_runtime::train::{self, predict, Predictor, TrainError, TrainOptions};
use serde_json::json;
use train_support::*;

fn opts() -> TrainOptions {
    TrainOptions { threads: Some(1), progress: false }
}

fn err(set: &TrainingSet, j: &mlops_compiler::model::TrainingJob) -> TrainError {
    match train::train(set, j, &opts()) {
        Ok(m) => panic!("expected an error, trained a model with metrics {:?}", m.metrics),
        Err(e) => e,
    }
}

#[test]
fn an_empty_set_is_an_error() {
    let e = err(&TrainingSet::default(), &job("binary:logistic", 10, json!({})));
    assert!(matches!(e, TrainError::EmptySet), "{e}");
    assert_eq!(e.to_string(), "the training set is empty");
}

#[test]
fn malformed_sets_are_errors() {
    let mut set = binary_set(50, 1);
    set.x.pop();
    let e = err(&set, &job("binary:logistic", 10, json!({})));
    assert!(matches!(e, TrainError::Shape(_)), "{e}");

    let mut set = binary_set(50, 1);
    set.features[1].name = "x0".into();
    let e = err(&set, &job("binary:logistic", 10, json!({})));
    assert!(e.to_string().contains("`x0` appears twice"), "{e}");

    let e = err(&binary_set(1, 1), &job("binary:logistic", 10, json!({})));
    assert!(matches!(e, TrainError::TooFewRows { rows: 1, .. }), "{e}");
}

#[test]
fn a_single_class_cannot_train_a_binary_model() {
    let mut set = binary_set(200, 2);
    set.y.iter_mut().for_each(|y| *y = 1.0);
    let e = err(&set, &job("binary:logistic", 10, json!({})));
    assert!(matches!(e, TrainError::OneClass { class, .. } if class == 1.0), "{e}");
    assert!(e.to_string().contains("both classes"), "{e}");
}

#[test]
fn labels_the_task_cannot_use_name_their_row() {
    let mut set = binary_set(100, 3);
    set.y[17] = 2.0;
    let e = err(&set, &job("binary:logistic", 10, json!({})));
    assert!(matches!(e, TrainError::Label { row: 17, .. }), "{e}");
    assert!(e.to_string().contains("row 17") && e.to_string().contains("0 or 1"), "{e}");

    let mut set = multiclass_set(100, 3);
    set.y[42] = 3.0;
    let e = err(&set, &job("multi:softprob", 10, json!({})));
    assert!(matches!(e, TrainError::Label { row: 42, value, .. } if value == 3.0), "{e}");
    assert!(e.to_string().contains("0..2"), "{e}");

    let mut set = regression_set(100, 3);
    set.y[5] = f32::NAN;
    let e = err(&set, &job("reg:squarederror", 10, json!({})));
    assert!(matches!(e, TrainError::Label { row: 5, .. }), "{e}");

    // Three declared classes, but the params say four.
    let e = err(&multiclass_set(100, 3), &job("multi:softprob", 10, json!({"num_class": 4})));
    assert!(matches!(&e, TrainError::Param { name, .. } if name == "num_class"), "{e}");
}

#[test]
fn a_parameter_value_xgboost_rejects_is_a_clear_error() {
    let e = err(&binary_set(100, 4), &job("binary:logistic", 10, json!({"tree_method": "fastest"})));
    let msg = e.to_string();
    assert!(matches!(e, TrainError::Xgboost { .. }), "{msg}");
    assert!(msg.contains("fastest"), "{msg}");
    assert!(!msg.contains("Stack trace"), "{msg}");

    let e = err(&binary_set(100, 4), &job("binary:logistic", 10, json!({"max_depth": "deep"})));
    assert!(e.to_string().contains("max_depth"), "{e}");

    let e = err(&binary_set(100, 4), &job("binary:nonsense", 10, json!({})));
    let msg = e.to_string();
    assert!(msg.contains("Unknown objective function: `binary:nonsense`"), "{msg}");
    // XGBoost's one-line-per-candidate list comes out as one line.
    assert!(msg.contains("Objective candidate: ") && msg.contains("binary:logistic, "), "{msg}");
    assert!(msg.lines().count() <= 2, "{msg}");

    let e = err(&binary_set(100, 4), &job("binary:logistic", 10, json!({"eta": -1})));
    assert!(e.to_string().contains("learning_rate") && e.to_string().contains("-1"), "{e}");
}

#[test]
fn a_bad_validation_block_is_an_error() {
    let mut j = job("binary:logistic", 10, json!({}));
    j.validation = Validation { split: "random".into(), holdout: 1.5, seed: 0 };
    assert!(matches!(err(&binary_set(100, 5), &j), TrainError::Holdout(h) if h == 1.5));
    j.validation = Validation { split: "stratified".into(), holdout: 0.2, seed: 0 };
    assert!(matches!(err(&binary_set(100, 5), &j), TrainError::Split(s) if s == "stratified"));
}

#[test]
fn prediction_rejects_bad_models_and_shapes() {
    let set = binary_set(200, 6);
    let m = train::train(&set, &job("binary:logistic", 5, json!({})), &opts()).unwrap();
    let e = predict(&m.model_json, &rows_of(&set, 0, 2), 2, 4).unwrap_err();
    assert!(matches!(e, TrainError::FeatureCount { expected: 5, got: 4 }), "{e}");
    let e = predict(&m.model_json, &rows_of(&set, 0, 2), 3, 5).unwrap_err();
    assert!(matches!(e, TrainError::Features { rows: 3, cols: 5, got: 10 }), "{e}");

    for bad in [&b"not json"[..], b"{}", b"{\"learner\": {\"learner_model_param\": {\"num_feature\": \"5\"}}}"] {
        let e = Predictor::load(bad).unwrap_err();
        assert!(matches!(e, TrainError::Model(_)), "{e}");
    }
    // A truncated model file.
    let e = Predictor::load(&m.model_json[..m.model_json.len() / 2]).unwrap_err();
    assert!(matches!(e, TrainError::Model(_)), "{e}");
}

#[test]
fn a_single_class_holdout_leaves_auc_undefined_and_fails_an_auc_gate() {
    // Time split: the latest fifth of rows is the holdout, and all of it is class 1.
    let mut set = binary_set(500, 7);
    set.y[400..].iter_mut().for_each(|y| *y = 1.0);
    let mut j = job("binary:logistic", 10, json!({"eval_metric": "auc"}));
    j.validation = Validation { split: "time".into(), holdout: 0.2, seed: 0 };
    j.gates = vec![gate("auc", Some(0.5), None), gate("accuracy", Some(0.5), None)];
    let m = train::train(&set, &j, &opts()).unwrap();
    assert!(!m.metrics.contains_key("auc"), "{:?}", m.metrics);
    assert!(m.metrics.contains_key("accuracy"));
    assert_eq!(m.gates[0].value, None);
    assert!(!m.gates[0].passed && m.gates[1].passed);
    assert!(!m.passed());
}
