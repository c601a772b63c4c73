//! XGBoost training. In: a [`TrainingSet`] (from the feature store) and a [`TrainingJob`] (from the
//! spec). Out: a [`TrainedModel`] — XGBoost's own JSON model (loadable by Python's xgboost), the
//! holdout metrics, the gate verdicts and everything the registry records about how it was made.
//!
//! ```text
//! set ─split (random | time)─▶ train rows / holdout rows
//!     ─params (job + tuning trial)─▶ boosting rounds with early stopping on the holdout
//!     ─▶ best rounds kept ─▶ holdout metrics ─▶ gates
//! ```
//!
//! Training is deterministic: the same set, job and thread count give byte-identical model files
//! (the split, XGBoost's `seed` and the tuning draws all derive from `validation.seed` unless the
//! params name a `seed`). With a `tuning` block, trials run in parallel and the best by the tuning
//! metric on the holdout becomes the model.

mod booster;
pub mod metrics;
mod params;
mod predict;
pub(crate) mod rng;
mod split;
mod tune;

use std::collections::BTreeMap;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use mlops_compiler::model::{ColumnType, Gate, Task, TrainingJob};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::dataset::{FeatureSpec, TrainingSet};
use booster::Prepared;
pub use metrics::MetricError;
pub use predict::{predict, Predictor};

/// Why training or prediction failed. Every variant says what to fix; none is a panic.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// No rows.
    #[error("the training set is empty")]
    EmptySet,
    /// Inconsistent shapes (values per row, labels, event times).
    #[error("the training set is malformed: {0}")]
    Shape(String),
    /// Too few rows to hold some out.
    #[error("the training set has {rows} row(s): too few to hold out {holdout} of them and train on the rest")]
    TooFewRows {
        /// Rows in the set.
        rows: usize,
        /// The holdout fraction.
        holdout: f64,
    },
    /// The holdout fraction is not in (0, 1).
    #[error("validation holdout must be a fraction strictly between 0 and 1, got {0}")]
    Holdout(f64),
    /// An unknown split kind.
    #[error("unknown validation split `{0}` (expected `random` or `time`)")]
    Split(String),
    /// A label the task cannot use.
    #[error("the label of row {row} is {value}: {expected}")]
    Label {
        /// Row index in the training set.
        row: usize,
        /// The label.
        value: f32,
        /// What the task expects.
        expected: String,
    },
    /// Binary classification whose training rows hold one class.
    #[error("binary classification needs both classes in the training rows, but all {rows} are {class}")]
    OneClass {
        /// Training rows.
        rows: usize,
        /// The only class present (0 or 1).
        class: f32,
    },
    /// A parameter that cannot be passed to XGBoost.
    #[error("invalid parameter `{name}`: {reason}")]
    Param {
        /// Parameter name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A malformed tuning search space.
    #[error("invalid search space for `{param}`: {reason}")]
    Search {
        /// Parameter searched.
        param: String,
        /// What is wrong.
        reason: String,
    },
    /// Tuning could not pick a model.
    #[error("tuning failed: {0}")]
    Tuning(String),
    /// XGBoost refused (typically a parameter value it does not accept).
    #[error("XGBoost failed while {during}: {message}")]
    Xgboost {
        /// What was being done.
        during: String,
        /// XGBoost's message.
        message: String,
    },
    /// Model bytes that are not an XGBoost JSON model.
    #[error("not a loadable XGBoost JSON model: {0}")]
    Model(String),
    /// Feature values that do not fill `rows × cols`.
    #[error("expected {rows} rows × {cols} features = {} values, got {got}", rows * cols)]
    Features {
        /// Rows.
        rows: usize,
        /// Columns per row.
        cols: usize,
        /// Values given.
        got: usize,
    },
    /// Rows with a different number of features than the model was trained on.
    #[error("the model takes {expected} features per row, got {got}")]
    FeatureCount {
        /// The model's feature count.
        expected: usize,
        /// Columns given.
        got: usize,
    },
}

/// How to run training (what is trained comes from the job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrainOptions {
    /// Threads for XGBoost; `None` uses the job's `nthread` param, else every available core.
    /// Tuning divides them between the trials running at once.
    pub threads: Option<usize>,
    /// Show a progress bar (only ever drawn when stderr is a terminal).
    pub progress: bool,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { threads: None, progress: true }
    }
}

/// One gate's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    /// Metric judged.
    pub metric: String,
    /// Its holdout value; `None` when the metric is undefined on the holdout (e.g. AUC of a
    /// single-class holdout) or unknown for the task — such a gate fails.
    pub value: Option<f64>,
    /// Lowest acceptable value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest acceptable value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Whether the value is within the bounds.
    pub passed: bool,
}

/// Judges holdout metrics against gates.
pub fn evaluate_gates(gates: &[Gate], metrics: &BTreeMap<String, f64>) -> Vec<GateResult> {
    gates
        .iter()
        .map(|g| {
            let value = metrics.get(&g.metric).copied();
            let passed = value.is_some_and(|v| g.min.is_none_or(|min| v >= min) && g.max.is_none_or(|max| v <= max));
            GateResult { metric: g.metric.clone(), value, min: g.min, max: g.max, passed }
        })
        .collect()
}

/// One tuning trial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Trial number, from 0 in draw order.
    pub index: usize,
    /// The values drawn for the searched params.
    pub params: BTreeMap<String, Value>,
    /// The tuning metric on the holdout (`None` when undefined there).
    pub score: Option<f64>,
    /// All holdout metrics.
    pub metrics: BTreeMap<String, f64>,
    /// 0-based index of the last boosting round kept.
    pub best_iteration: u32,
}

/// A trained, evaluated model and how it was made. Serialises (without the model bytes) as the
/// registry's record of a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedModel {
    /// The model in XGBoost's JSON format.
    #[serde(skip)]
    pub model_json: Vec<u8>,
    /// XGBoost objective.
    pub objective: String,
    /// Task of the objective.
    pub task: Task,
    /// The params the model was trained with (the job's, tuned values, `objective`, `rounds`,
    /// `num_class`, `seed`; not `nthread`).
    pub params: BTreeMap<String, Value>,
    /// Holdout metrics (the task's; undefined ones left out).
    pub metrics: BTreeMap<String, f64>,
    /// Metric early stopping watched (XGBoost's name).
    pub eval_metric: String,
    /// Its holdout value at `best_iteration`, as XGBoost computed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_score: Option<f64>,
    /// 0-based index of the last boosting round kept.
    pub best_iteration: u32,
    /// Rounds boosted before stopping (more than `best_iteration + 1` when early stopping cut).
    pub rounds_trained: u32,
    /// Verdict of each gate.
    pub gates: Vec<GateResult>,
    /// The model's input columns, in order: its signature.
    pub features: Vec<FeatureSpec>,
    /// Class names of a multi-class model (class i ↔ `classes[i]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// Rows trained on.
    pub train_rows: usize,
    /// Rows held out.
    pub holdout_rows: usize,
    /// Tuning trials, when the job has a tuning block.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<Trial>,
    /// Index of the trial that became this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_trial: Option<usize>,
}

impl TrainedModel {
    /// Whether every gate passed (a model without gates passes).
    pub fn passed(&self) -> bool {
        self.gates.iter().all(|g| g.passed)
    }
}

/// A SHA-256 of a training set's contents (features, labels, event times, classes), in hex: the
/// "data hash" the registry records.
pub fn data_hash(set: &TrainingSet) -> String {
    let mut h = Sha256::new();
    for f in &set.features {
        // Length-prefixed, so different splits of the same text cannot collide.
        for part in [f.name.as_str(), &format!("{:?}", f.dtype)] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.update((f.categories.len() as u64).to_le_bytes());
        for c in &f.categories {
            h.update((c.len() as u64).to_le_bytes());
            h.update(c.as_bytes());
        }
    }
    for c in &set.classes {
        h.update((c.len() as u64).to_le_bytes());
        h.update(c.as_bytes());
    }
    h.update((set.x.len() as u64).to_le_bytes());
    set.x.iter().for_each(|v| h.update(v.to_bits().to_le_bytes()));
    h.update((set.y.len() as u64).to_le_bytes());
    set.y.iter().for_each(|v| h.update(v.to_bits().to_le_bytes()));
    h.update((set.event_time.len() as u64).to_le_bytes());
    set.event_time.iter().for_each(|v| h.update(v.to_le_bytes()));
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn progress_bar(opts: &TrainOptions, len: u64, unit: &str) -> ProgressBar {
    if !opts.progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let template = format!("{{spinner}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{msg}} ({{elapsed}})");
    let style = ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(len).with_style(style.progress_chars("=> "))
}

fn xgb_type(dtype: &ColumnType) -> &'static str {
    match dtype {
        // Codes of a category are labels, not magnitudes: XGBoost splits them as categories.
        ColumnType::Category | ColumnType::String => "c",
        ColumnType::Int | ColumnType::Bool => "int",
        ColumnType::Float | ColumnType::Timestamp => "float",
    }
}

fn check_set(set: &TrainingSet) -> Result<(), TrainError> {
    if set.rows() == 0 {
        return Err(TrainError::EmptySet);
    }
    if set.cols() == 0 {
        return Err(TrainError::Shape("no feature columns".into()));
    }
    set.check_shape().map_err(TrainError::Shape)?;
    let mut seen = std::collections::BTreeSet::new();
    for f in &set.features {
        if f.name.is_empty() || f.name.contains('\0') {
            return Err(TrainError::Shape(format!("invalid feature name {:?}", f.name)));
        }
        if !seen.insert(f.name.as_str()) {
            return Err(TrainError::Shape(format!("feature `{}` appears twice", f.name)));
        }
    }
    Ok(())
}

fn check_labels(set: &TrainingSet, task: Task, classes: usize) -> Result<(), TrainError> {
    for (row, &value) in set.y.iter().enumerate() {
        let expected = match task {
            _ if !value.is_finite() => Some("labels must be finite numbers".to_string()),
            Task::Binary if value != 0.0 && value != 1.0 => Some("binary labels must be 0 or 1".to_string()),
            Task::Multiclass if value < 0.0 || value.fract() != 0.0 || value as usize >= classes => {
                Some(format!("multi-class labels must be class indices 0..{}", classes.saturating_sub(1)))
            }
            _ => None,
        };
        if let Some(expected) = expected {
            return Err(TrainError::Label { row, value, expected });
        }
    }
    Ok(())
}

fn gather(set: &TrainingSet, rows: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let mut x = Vec::with_capacity(rows.len() * set.cols());
    let mut y = Vec::with_capacity(rows.len());
    for &r in rows {
        x.extend_from_slice(set.row(r));
        y.push(set.y[r]);
    }
    (x, y)
}

fn thread_count(opts: &TrainOptions, job: &TrainingJob) -> usize {
    opts.threads
        .filter(|&n| n > 0)
        .or_else(|| job.params.get("nthread").and_then(Value::as_u64).filter(|&n| n > 0).map(|n| n as usize))
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// One run's result with its metrics.
struct Evaluated {
    params: params::RunParams,
    outcome: booster::RunOutcome,
    metrics: BTreeMap<String, f64>,
}

fn run_one(
    data: &Prepared,
    job: &TrainingJob,
    overrides: &BTreeMap<String, Value>,
    threads: usize,
    bar: &ProgressBar,
) -> Result<Evaluated, TrainError> {
    let p = params::resolve(job, overrides, data.classes, job.validation.seed)?;
    let outcome = booster::run(data, &p, threads, bar)?;
    let metrics = metrics::task_metrics(data.task, &data.y_hold, &outcome.outputs, data.classes);
    Ok(Evaluated { params: p, outcome, metrics })
}

/// The rows of `set` that [`train`] holds out for evaluation under `job`'s validation rule
/// (the latest rows for a time split): the holdout a retrain compares candidate and production on.
pub fn holdout_rows(set: &TrainingSet, job: &TrainingJob) -> Result<Vec<usize>, TrainError> {
    Ok(split::split(&set.event_time, set.rows(), &job.validation)?.holdout)
}

/// Trains, evaluates and gates a model for `job` on `set`.
pub fn train(set: &TrainingSet, job: &TrainingJob, opts: &TrainOptions) -> Result<TrainedModel, TrainError> {
    check_set(set)?;
    let task = Task::of_objective(&job.objective);
    // Resolving the job's own params first reports param mistakes before any work, and fixes the
    // class count the labels are checked against.
    let declared_classes = if task == Task::Multiclass { set.classes.len() } else { 0 };
    let base = params::resolve(job, &BTreeMap::new(), declared_classes, job.validation.seed)?;
    let classes = base.recorded.get("num_class").and_then(Value::as_u64).map_or(0, |n| n as usize);
    check_labels(set, task, classes)?;

    let parts = split::split(&set.event_time, set.rows(), &job.validation)?;
    let (x_train, y_train) = gather(set, &parts.train);
    let (x_hold, y_hold) = gather(set, &parts.holdout);
    if task == Task::Binary {
        let first = y_train[0];
        if y_train.iter().all(|&y| y == first) {
            return Err(TrainError::OneClass { rows: y_train.len(), class: first });
        }
    }
    let data = Prepared {
        cols: set.cols(),
        x_train,
        y_train,
        x_hold,
        y_hold,
        names: set.features.iter().map(|f| f.name.clone()).collect(),
        types: set.features.iter().map(|f| xgb_type(&f.dtype)).collect(),
        task,
        objective: job.objective.clone(),
        classes,
    };
    debug_assert_eq!(data.x_train.len(), data.y_train.len() * data.cols);
    let threads = thread_count(opts, job);

    let (chosen, trials, best_trial) = match &job.tuning {
        None => {
            let bar = progress_bar(opts, u64::from(base.rounds), "rounds");
            let r = run_one(&data, job, &BTreeMap::new(), threads, &bar);
            bar.finish_and_clear();
            (r?, Vec::new(), None)
        }
        Some(t) => {
            if t.trials == 0 {
                return Err(TrainError::Tuning("`trials` must be at least 1".into()));
            }
            if !task.metrics().contains(&t.metric.as_str()) {
                return Err(TrainError::Tuning(format!(
                    "metric `{}` is not one of the {} metrics: {}",
                    t.metric,
                    task.name(),
                    task.metrics().join(", ")
                )));
            }
            let draws = tune::draw_trials(&t.search, t.trials, job.validation.seed)?;
            let parallel = (t.parallelism.max(1) as usize).min(draws.len());
            let per_trial = (threads / parallel).max(1);
            let bar = progress_bar(opts, draws.len() as u64, "trials");
            let hidden = ProgressBar::hidden();
            let runs = tune::run_parallel(draws.len(), parallel, |i| {
                let r = run_one(&data, job, &draws[i], per_trial, &hidden);
                bar.inc(1);
                r
            });
            bar.finish_and_clear();
            let runs = runs?;
            let higher = metrics::higher_is_better(&t.metric);
            // Best score wins; ties go to the earlier trial, so the choice is deterministic.
            let mut best: Option<(usize, f64)> = None;
            for (i, r) in runs.iter().enumerate() {
                if let Some(&s) = r.metrics.get(&t.metric) {
                    let better = best.is_none_or(|(_, b)| if higher { s > b } else { s < b });
                    if better {
                        best = Some((i, s));
                    }
                }
            }
            let Some((best_i, _)) = best else {
                return Err(TrainError::Tuning(format!("`{}` is undefined on the holdout for every trial", t.metric)));
            };
            let trials = runs
                .iter()
                .enumerate()
                .map(|(i, r)| Trial {
                    index: i,
                    params: draws[i].clone(),
                    score: r.metrics.get(&t.metric).copied(),
                    metrics: r.metrics.clone(),
                    best_iteration: r.outcome.best_iteration,
                })
                .collect();
            let chosen =
                runs.into_iter().nth(best_i).ok_or_else(|| TrainError::Tuning("lost the best trial".into()))?;
            (chosen, trials, Some(best_i))
        }
    };

    let gates = evaluate_gates(&job.gates, &chosen.metrics);
    Ok(TrainedModel {
        model_json: chosen.outcome.model_json,
        objective: job.objective.clone(),
        task,
        params: chosen.params.recorded,
        metrics: chosen.metrics,
        eval_metric: chosen.outcome.eval_metric,
        eval_score: chosen.outcome.best_score,
        best_iteration: chosen.outcome.best_iteration,
        rounds_trained: chosen.outcome.rounds_trained,
        gates,
        features: set.features.clone(),
        classes: set.classes.clone(),
        train_rows: parts.train.len(),
        holdout_rows: parts.holdout.len(),
        trials,
        best_trial,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(metric: &str, min: Option<f64>, max: Option<f64>) -> Gate {
        Gate { metric: metric.into(), min, max }
    }

    #[test]
    fn gates_check_both_bounds_and_fail_on_missing_metrics() {
        let metrics: BTreeMap<String, f64> = [("auc".to_string(), 0.9), ("rmse".to_string(), 2.0)].into();
        let r = evaluate_gates(
            &[
                gate("auc", Some(0.85), None),
                gate("auc", Some(0.95), None),
                gate("rmse", None, Some(1.5)),
                gate("rmse", Some(1.0), Some(3.0)),
                gate("f1", Some(0.1), None),
            ],
            &metrics,
        );
        assert_eq!(r.iter().map(|g| g.passed).collect::<Vec<_>>(), vec![true, false, false, true, false]);
        assert_eq!(r[4].value, None);
        // The bound itself passes.
        assert!(evaluate_gates(&[gate("auc", Some(0.9), Some(0.9))], &metrics)[0].passed);
    }

    #[test]
    fn data_hash_sees_every_part() {
        let set = TrainingSet {
            features: vec![FeatureSpec { name: "a".into(), dtype: ColumnType::Float, categories: vec![] }],
            x: vec![1.0, f32::NAN],
            y: vec![0.0, 1.0],
            event_time: vec![1, 2],
            classes: vec![],
        };
        let h = data_hash(&set);
        assert_eq!(h.len(), 64);
        assert_eq!(h, data_hash(&set.clone()));
        let mut t = set.clone();
        t.x[1] = 0.0;
        assert_ne!(h, data_hash(&t));
        let mut t = set.clone();
        t.event_time[0] = 0;
        assert_ne!(h, data_hash(&t));
        let mut t = set.clone();
        t.features[0].name = "b".into();
        assert_ne!(h, data_hash(&t));
    }
}
