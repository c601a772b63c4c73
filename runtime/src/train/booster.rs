//! One XGBoost training run through the `xgb` binding. In: the split data, resolved params, a
//! thread count and a progress bar. Out: XGBoost's JSON model (cut to the best round when early
//! stopping triggered), the round bookkeeping and the model's outputs on the holdout.
//!
//! The boosting loop is ours rather than `Booster::train`'s, for early stopping on the holdout
//! and progress; evaluation goes through XGBoost (`XGBoosterEvalOneIter`), which reuses its
//! prediction cache, so a round costs one tree's worth of prediction.

use indicatif::ProgressBar;
use mlops_compiler::model::Task;
use xgb::parameters::BoosterParameters;
use xgb::{Booster, DMatrix, XGBError};

use super::metrics::higher_is_better;
use super::params::RunParams;
use super::TrainError;

/// The training and holdout rows, ready for DMatrix construction (which each run does itself:
/// a DMatrix is not `Send`, and parallel trials each need their own).
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) cols: usize,
    pub(crate) x_train: Vec<f32>,
    pub(crate) y_train: Vec<f32>,
    pub(crate) x_hold: Vec<f32>,
    pub(crate) y_hold: Vec<f32>,
    pub(crate) names: Vec<String>,
    /// XGBoost feature types: "c" (categorical codes), "int" or "float".
    pub(crate) types: Vec<&'static str>,
    pub(crate) task: Task,
    pub(crate) objective: String,
    /// Classes of a multi-class task (0 otherwise).
    pub(crate) classes: usize,
}

/// What a run produced.
#[derive(Debug, Clone)]
pub(crate) struct RunOutcome {
    pub(crate) model_json: Vec<u8>,
    /// 0-based index of the last round kept.
    pub(crate) best_iteration: u32,
    /// Rounds boosted before stopping.
    pub(crate) rounds_trained: u32,
    pub(crate) eval_metric: String,
    /// Value of `eval_metric` on the holdout at `best_iteration`, as XGBoost computed it.
    pub(crate) best_score: Option<f64>,
    /// Holdout outputs for our metrics: positive-class probabilities (binary), an `n × classes`
    /// probability matrix (multi-class) or predicted values (regression).
    pub(crate) outputs: Vec<f32>,
}

/// XGBoost's message without the binding's prefix, the source location and the C++ stack trace.
pub(crate) fn xgb_message(e: &XGBError) -> String {
    let full = e.to_string();
    let s = full.strip_prefix("XGBoost error: ").unwrap_or(&full);
    let s = s.split("Stack trace:").next().unwrap_or(s).trim();
    // "[07:58:01] /path/to/learner.cc:123: message" → "message"
    let s = match s.strip_prefix('[').and_then(|r| r.split_once("] ")) {
        Some((_, rest)) => match rest.split_once(": ") {
            Some((loc, msg)) if loc.contains(':') && !loc.contains(' ') => msg,
            _ => rest,
        },
        None => s,
    };
    collapse_lists(s.trim())
}

/// Joins runs of lines that share a `label: ` prefix ("Objective candidate: a", "Objective
/// candidate: b", …) into one line, so a long list of alternatives stays readable.
fn collapse_lists(s: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Option<(String, Vec<String>)> = None;
    let flush = |run: &mut Option<(String, Vec<String>)>, out: &mut Vec<String>| {
        if let Some((label, items)) = run.take() {
            out.push(format!("{label}: {}", items.join(", ")));
        }
    };
    for line in s.lines() {
        match line.split_once(": ") {
            Some((label, item)) if !label.is_empty() && !item.is_empty() => {
                if let Some((l, items)) = run.as_mut().filter(|(l, _)| l == label) {
                    debug_assert_eq!(l, label);
                    items.push(item.to_string());
                } else {
                    flush(&mut run, &mut out);
                    run = Some((label.to_string(), vec![item.to_string()]));
                }
            }
            _ => {
                flush(&mut run, &mut out);
                out.push(line.to_string());
            }
        }
    }
    flush(&mut run, &mut out);
    out.join("\n")
}

fn xgb_err(during: impl Into<String>) -> impl FnOnce(XGBError) -> TrainError {
    let during = during.into();
    move |e| TrainError::Xgboost { during, message: xgb_message(&e) }
}

fn matrix(x: &[f32], y: &[f32], data: &Prepared, what: &str) -> Result<DMatrix, TrainError> {
    let during = format!("building the {what} matrix");
    // NaN is XGBoost's missing value, as in the training set.
    let mut m = DMatrix::from_dense(x, y.len()).map_err(xgb_err(during.clone()))?;
    m.set_labels(y).map_err(xgb_err(during.clone()))?;
    let names: Vec<&str> = data.names.iter().map(String::as_str).collect();
    m.set_feature_names(&names).map_err(xgb_err(during.clone()))?;
    m.set_feature_types(&data.types).map_err(xgb_err(during))?;
    Ok(m)
}

fn sigmoid(m: f32) -> f32 {
    1.0 / (1.0 + (-m).exp())
}

fn softmax_rows(margins: &mut [f32], k: usize) {
    for row in margins.chunks_mut(k.max(1)) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0.0;
        for v in row.iter_mut() {
            *v = (*v - max).exp();
            sum += *v;
        }
        for v in row.iter_mut() {
            *v /= sum;
        }
    }
}

/// The holdout outputs our metrics expect, whatever form the objective predicts in.
fn holdout_outputs(bst: &Booster, dhold: &DMatrix, data: &Prepared) -> Result<Vec<f32>, TrainError> {
    let during = "predicting the holdout";
    Ok(match data.task {
        Task::Binary if data.objective == "binary:logistic" => bst.predict(dhold).map_err(xgb_err(during))?,
        // logitraw and hinge predict margins or classes: probabilities come from the margin.
        Task::Binary => bst.predict_margin(dhold).map_err(xgb_err(during))?.into_iter().map(sigmoid).collect(),
        Task::Multiclass => {
            // softprob predicts probabilities, softmax the class: the margins serve both.
            let mut m = bst.predict_margin(dhold).map_err(xgb_err(during))?;
            softmax_rows(&mut m, data.classes);
            m
        }
        Task::Regression => bst.predict(dhold).map_err(xgb_err(during))?,
    })
}

pub(crate) fn run(data: &Prepared, p: &RunParams, nthread: usize, bar: &ProgressBar) -> Result<RunOutcome, TrainError> {
    let dtrain = matrix(&data.x_train, &data.y_train, data, "training")?;
    let dhold = matrix(&data.x_hold, &data.y_hold, data, "holdout")?;

    let setup = "setting up the booster";
    // The binding applies its own defaults first (among them base_score = 0.5); ours follow, and
    // boost_from_average = 1 restores XGBoost's default of estimating base_score from the labels
    // unless the job gives one.
    let mut bst =
        Booster::new_with_cached_dmats(&BoosterParameters::default(), &[&dtrain, &dhold]).map_err(xgb_err(setup))?;
    bst.set_param("nthread", &nthread.max(1).to_string()).map_err(xgb_err(setup))?;
    if !p.recorded.contains_key("base_score") {
        bst.set_param("boost_from_average", "1").map_err(xgb_err(setup))?;
    }
    // Likewise its max_delta_step = 0 would hide XGBoost's Poisson default of 0.7.
    if data.objective == "count:poisson" && !p.recorded.contains_key("max_delta_step") {
        bst.set_param("max_delta_step", "0.7").map_err(xgb_err(setup))?;
    }
    for (k, v) in &p.xgb {
        bst.set_param(k, v).map_err(xgb_err(format!("setting `{k}` = `{v}`")))?;
    }
    let names: Vec<&str> = data.names.iter().map(String::as_str).collect();
    bst.set_feature_info("feature_name", &names).map_err(xgb_err(setup))?;
    bst.set_feature_info("feature_type", &data.types.to_vec()).map_err(xgb_err(setup))?;

    bar.set_length(u64::from(p.rounds));
    let mut eval_metric: Option<String> = p.eval_metrics.last().cloned();
    let mut best: Option<(u32, f64)> = None;
    let mut rounds_trained = 0;
    for i in 0..p.rounds {
        // Parameters are checked when XGBoost configures itself, i.e. in the first round.
        let during =
            if i == 0 { "configuring and training the first round".to_string() } else { format!("round {}", i + 1) };
        bst.update(&dtrain, i as i32).map_err(xgb_err(during))?;
        rounds_trained = i + 1;
        let scores = bst.evaluate(&dhold).map_err(xgb_err("evaluating the holdout"))?;
        let metric = eval_metric.get_or_insert_with(|| {
            // The objective's default metric: the only one XGBoost reports.
            let mut names: Vec<&String> = scores.keys().collect();
            names.sort();
            names.first().map(|s| s.to_string()).unwrap_or_default()
        });
        let score = match scores.get(metric.as_str()) {
            Some(&s) => f64::from(s),
            None => {
                return Err(TrainError::Xgboost {
                    during: "evaluating the holdout".into(),
                    message: format!("XGBoost reported no `{metric}` (it reported {:?})", scores.keys()),
                });
            }
        };
        let improved = match best {
            None => true,
            Some((_, b)) if b.is_nan() => !score.is_nan(),
            Some((_, b)) => {
                if higher_is_better(metric) {
                    score > b
                } else {
                    score < b
                }
            }
        };
        if improved {
            best = Some((i, score));
        }
        bar.set_message(format!("{metric} {score:.5}"));
        bar.inc(1);
        if let (Some(patience), Some((best_i, _))) = (p.early_stopping_rounds, best) {
            if i - best_i >= patience {
                break;
            }
        }
    }
    let (best_iteration, best_score) = match (p.early_stopping_rounds, best) {
        (Some(_), Some(b)) => b,
        // Without early stopping every round is kept.
        (None, Some((_, s))) => (rounds_trained - 1, s),
        (_, None) => (rounds_trained.saturating_sub(1), f64::NAN),
    };
    let bst = if best_iteration + 1 < rounds_trained {
        bst.slice(0, best_iteration as i32 + 1).map_err(xgb_err("keeping the best rounds"))?
    } else {
        bst
    };
    let model_json = bst.save_buffer(false).map_err(xgb_err("saving the model"))?;
    let outputs = holdout_outputs(&bst, &dhold, data)?;
    Ok(RunOutcome {
        model_json,
        best_iteration,
        rounds_trained,
        eval_metric: eval_metric.unwrap_or_default(),
        best_score: Some(best_score).filter(|s| s.is_finite()),
        outputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_collapse_to_one_line() {
        let s = "Unknown objective function: `x`\nObjective candidate: a\nObjective candidate: b\nlast line";
        assert_eq!(collapse_lists(s), "Unknown objective function: `x`\nObjective candidate: a, b\nlast line");
    }

    #[test]
    fn softmax_rows_normalise() {
        let mut m = [0.0, 0.0, 1.0, 3.0];
        softmax_rows(&mut m, 2);
        assert!((m[0] - 0.5).abs() < 1e-7 && (m[1] - 0.5).abs() < 1e-7);
        assert!((m[2] + m[3] - 1.0).abs() < 1e-6 && m[3] > m[2]);
    }
}
