//! Parameter mapping. In: a training job (objective, rounds, params), the values a tuning trial
//! overrides and the number of classes. Out: the boosting loop's settings (rounds, early stopping,
//! evaluation metrics), the `name=value` strings handed to XGBoost, and the record of the params
//! used (stored with the model; `nthread` is left out because it says how fast, not what, was
//! trained).
//!
//! Values are passed through as XGBoost spells them, so XGBoost itself rejects a bad value with
//! its own message; only what would otherwise be misread is checked here (integral numbers are
//! written without a fraction, since XGBoost's integer parser refuses `6.0`).

use std::collections::BTreeMap;

use mlops_compiler::model::{Task, TrainingJob};
use serde_json::Value;

use super::TrainError;

/// Everything one training run needs from the params.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunParams {
    pub(crate) rounds: u32,
    pub(crate) early_stopping_rounds: Option<u32>,
    /// Metrics named by `eval_metric`; empty means the objective's default metric.
    pub(crate) eval_metrics: Vec<String>,
    /// `(name, value)` for XGBoost, in the order they are set (`eval_metric` repeats).
    pub(crate) xgb: Vec<(String, String)>,
    /// The params used, as recorded with the model.
    pub(crate) recorded: BTreeMap<String, Value>,
}

fn param_err(name: &str, reason: impl Into<String>) -> TrainError {
    TrainError::Param { name: name.to_string(), reason: reason.into() }
}

/// A non-negative whole number that fits a `u32`.
fn whole(name: &str, v: &Value) -> Result<u32, TrainError> {
    match v.as_f64() {
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= u32::MAX as f64 => Ok(n as u32),
        _ => Err(param_err(name, format!("expected a whole number ≥ 0, got {v}"))),
    }
}

/// A JSON value as XGBoost's parameter parser reads it.
pub(crate) fn xgb_value(name: &str, v: &Value) -> Result<String, TrainError> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => u8::from(*b).to_string(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            // Exactly representable whole numbers lose the ".0" XGBoost's int parser rejects.
            (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => (f as i64).to_string(),
            (_, _, Some(f)) => f.to_string(),
            _ => n.to_string(),
        },
        // Lists (e.g. monotone_constraints) go as JSON text, which XGBoost parses.
        Value::Array(_) => v.to_string(),
        Value::Null | Value::Object(_) => {
            return Err(param_err(name, format!("expected a string, number, bool or list, got {v}")));
        }
    };
    // XGBoost takes C strings: an interior NUL would cut the value short.
    if name.contains('\0') || s.contains('\0') {
        return Err(param_err(name, "contains a NUL character"));
    }
    Ok(s)
}

/// Resolves the params of one run: the job's, with `overrides` (a tuning trial's) on top.
/// `classes` is the class count of a multi-class task (ignored otherwise). `default_seed` is used
/// when the params name no `seed`.
pub(crate) fn resolve(
    job: &TrainingJob,
    overrides: &BTreeMap<String, Value>,
    classes: usize,
    default_seed: u64,
) -> Result<RunParams, TrainError> {
    let mut params = job.params.clone();
    params.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
    if params.contains_key("objective") {
        return Err(param_err("objective", "the objective is the job's `objective`, not one of its params"));
    }
    if job.objective.is_empty() {
        return Err(param_err("objective", "no objective"));
    }
    let rounds = match params.remove("rounds") {
        Some(v) => whole("rounds", &v)?,
        None => job.rounds,
    };
    if rounds == 0 {
        return Err(param_err("rounds", "at least one boosting round is needed"));
    }
    let early_stopping_rounds = match params.remove("early_stopping_rounds") {
        Some(v) => Some(whole("early_stopping_rounds", &v)?).filter(|&n| n > 0),
        None => None,
    };
    let eval_metrics: Vec<String> = match params.remove("eval_metric") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s],
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str().map(str::to_string).ok_or_else(|| param_err("eval_metric", format!("{i} is not a name")))
            })
            .collect::<Result<_, _>>()?,
        Some(v) => return Err(param_err("eval_metric", format!("expected a metric name or a list of them, got {v}"))),
    };
    // Threads are the runtime's choice (TrainOptions), not part of what the model is.
    params.remove("nthread");
    if job.task == Task::Multiclass {
        let declared = params.remove("num_class").map(|v| whole("num_class", &v)).transpose()?;
        match declared {
            Some(n) if classes != 0 && n as usize != classes => {
                return Err(param_err("num_class", format!("is {n} but the training set has {classes} classes")));
            }
            _ => {}
        }
        let n = declared.map_or(classes, |n| n as usize);
        if n < 2 {
            return Err(param_err("num_class", "multi-class training needs num_class ≥ 2 (or the set's classes)"));
        }
        params.insert("num_class".into(), Value::from(n as u64));
    }
    params.entry("seed".into()).or_insert_with(|| Value::from(default_seed));

    let mut xgb = vec![("objective".to_string(), xgb_value("objective", &Value::from(job.objective.clone()))?)];
    for (k, v) in &params {
        xgb.push((k.clone(), xgb_value(k, v)?));
    }
    for m in &eval_metrics {
        xgb.push(("eval_metric".into(), xgb_value("eval_metric", &Value::from(m.clone()))?));
    }

    let mut recorded = params;
    recorded.insert("objective".into(), Value::from(job.objective.clone()));
    recorded.insert("rounds".into(), Value::from(rounds));
    if let Some(n) = early_stopping_rounds {
        recorded.insert("early_stopping_rounds".into(), Value::from(n));
    }
    match eval_metrics.as_slice() {
        [] => {}
        [one] => {
            recorded.insert("eval_metric".into(), Value::from(one.clone()));
        }
        many => {
            recorded.insert("eval_metric".into(), Value::from(many.to_vec()));
        }
    }
    Ok(RunParams { rounds, early_stopping_rounds, eval_metrics, xgb, recorded })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlops_compiler::model::{Resources, Validation};
    use serde_json::json;

    fn job(objective: &str, params: Value) -> TrainingJob {
        let params: BTreeMap<String, Value> = serde_json::from_value(params).unwrap();
        TrainingJob {
            features: vec![],
            label: mlops_compiler::model::ColumnRef { source: String::new(), column: String::new() },
            exclude: vec![],
            algorithm: "xgboost".into(),
            objective: objective.into(),
            task: Task::of_objective(objective),
            rounds: 50,
            params,
            validation: Validation { split: "random".into(), holdout: 0.2, seed: 42 },
            tuning: None,
            gates: vec![],
            resources: Resources::default(),
            schedule: None,
            description: None,
        }
    }

    fn get<'a>(p: &'a RunParams, name: &str) -> Vec<&'a str> {
        p.xgb.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect()
    }

    #[test]
    fn maps_values_the_way_xgboost_parses_them() {
        let j = job(
            "binary:logistic",
            json!({"max_depth": 6.0, "eta": 0.1, "early_stopping_rounds": 5, "nthread": 8,
                   "eval_metric": ["logloss", "auc"], "monotone_constraints": [1, -1], "tree_method": "hist"}),
        );
        let p = resolve(&j, &BTreeMap::new(), 0, 42).unwrap();
        assert_eq!(p.rounds, 50);
        assert_eq!(p.early_stopping_rounds, Some(5));
        assert_eq!(p.eval_metrics, vec!["logloss", "auc"]);
        assert_eq!(get(&p, "max_depth"), vec!["6"]);
        assert_eq!(get(&p, "eta"), vec!["0.1"]);
        assert_eq!(get(&p, "eval_metric"), vec!["logloss", "auc"]);
        assert_eq!(get(&p, "monotone_constraints"), vec!["[1,-1]"]);
        assert_eq!(get(&p, "seed"), vec!["42"]);
        assert_eq!(get(&p, "objective"), vec!["binary:logistic"]);
        assert!(get(&p, "nthread").is_empty());
        assert!(get(&p, "early_stopping_rounds").is_empty());
        assert!(!p.recorded.contains_key("nthread"));
        assert_eq!(p.recorded["rounds"], json!(50));
        assert_eq!(p.recorded["objective"], json!("binary:logistic"));
    }

    #[test]
    fn overrides_win_and_rounds_can_be_tuned() {
        let j = job("reg:squarederror", json!({"max_depth": 3, "seed": 7}));
        let o: BTreeMap<String, Value> = serde_json::from_value(json!({"max_depth": 8, "rounds": 12})).unwrap();
        let p = resolve(&j, &o, 0, 42).unwrap();
        assert_eq!(get(&p, "max_depth"), vec!["8"]);
        assert_eq!(get(&p, "seed"), vec!["7"]);
        assert_eq!(p.rounds, 12);
    }

    #[test]
    fn num_class_comes_from_the_set_and_must_agree() {
        let p = resolve(&job("multi:softprob", json!({})), &BTreeMap::new(), 3, 0).unwrap();
        assert_eq!(get(&p, "num_class"), vec!["3"]);
        let err = resolve(&job("multi:softprob", json!({"num_class": 4})), &BTreeMap::new(), 3, 0).unwrap_err();
        assert!(err.to_string().contains("num_class"), "{err}");
        assert!(resolve(&job("multi:softmax", json!({})), &BTreeMap::new(), 0, 0).is_err());
        let p = resolve(&job("multi:softmax", json!({"num_class": 5})), &BTreeMap::new(), 0, 0).unwrap();
        assert_eq!(get(&p, "num_class"), vec!["5"]);
    }

    #[test]
    fn malformed_params_are_errors() {
        for bad in [
            json!({"rounds": 2.5}),
            json!({"rounds": 0}),
            json!({"early_stopping_rounds": -1}),
            json!({"eval_metric": 3}),
            json!({"max_depth": null}),
            json!({"tree_method": {"a": 1}}),
            json!({"tree_method": "hi\u{0}st"}),
            json!({"objective": "reg:squarederror"}),
        ] {
            let j = job("binary:logistic", bad.clone());
            assert!(matches!(resolve(&j, &BTreeMap::new(), 0, 0), Err(TrainError::Param { .. })), "{bad}");
        }
    }
}
