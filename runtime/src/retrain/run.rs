//! What one retrain does. In: the system's spec and configuration directory, and the policy.
//! Out: a registered candidate and the verdict on it — its gates, then (with a `promote` rule)
//! the comparison with production on a shared holdout: both models predict the holdout rows of
//! the candidate's fresh training set (the latest rows, for a time split) and the candidate must
//! beat production's `compare` metric by `min_gain`. Nothing is promoted here: an accepted
//! candidate goes to the endpoint's rollout, which promotes it or rolls it back.

use std::path::Path;

use mlops_compiler::model::{Config, RetrainPolicy};
use mlops_compiler::spec::SystemSpec;
use serde::{Deserialize, Serialize};

use crate::dataset::TrainingSet;
use crate::pipeline::{PipelineError, Runtime};
use crate::registry::{describe_failures, ModelVersion, Registry};
use crate::serve::trees::Forest;
use crate::train::{self, metrics, TrainOptions};

/// The candidate against production.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The metric compared.
    pub metric: String,
    /// The candidate's value on the shared holdout.
    pub candidate: f64,
    /// Production's value on the same rows.
    pub production: f64,
    /// How much better the candidate is (positive: better, whichever way the metric points).
    pub gain: f64,
    /// The gain required.
    pub min_gain: f64,
    /// Holdout rows compared on.
    pub rows: usize,
}

/// What a retrain produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RetrainOutcome {
    /// The registered candidate.
    pub candidate: ModelVersion,
    /// The version serving when the retrain started.
    pub production: Option<u32>,
    /// The candidate's gates passed.
    pub gates_passed: bool,
    /// The comparison, when the policy has a `promote` rule and production exists.
    pub comparison: Option<Comparison>,
    /// Whether the candidate should roll out.
    pub accepted: bool,
    /// Why, in words: "auc 0.912 vs 0.874 on 1,204 holdout rows (+0.038 ≥ 0.01)".
    pub reason: String,
}

/// Retrains `policy`'s job on fresh data and judges the candidate. `root`: where relative source
/// paths resolve; `data_dir`: the feature store's and registry's directory (the controller's).
pub fn retrain(
    root: &Path,
    data_dir: &Path,
    spec: &SystemSpec,
    policy: &RetrainPolicy,
    opts: &TrainOptions,
) -> Result<RetrainOutcome, PipelineError> {
    let rt = Runtime::in_workspace(crate::workspace::Workspace::at(root, Some(data_dir), spec), spec);
    let registry = rt.registry()?;
    let production = registry.production(&policy.job)?;
    let (outcome, set) = rt.train_on_fresh_data(&policy.job, opts, false)?;
    let candidate = outcome.version;
    let gates_passed = candidate.passed;
    let mut result = RetrainOutcome {
        candidate: candidate.clone(),
        production: production.as_ref().map(|p| p.version),
        gates_passed,
        comparison: None,
        accepted: false,
        reason: String::new(),
    };
    if !gates_passed {
        result.reason = format!("failed its gate ({})", describe_failures(&candidate.gates));
        return Ok(result);
    }
    let Some(prod) = production else {
        result.accepted = true;
        result.reason = "no version was in production".into();
        return Ok(result);
    };
    if prod.data_hash == candidate.data_hash && prod.spec_hash == candidate.spec_hash {
        result.reason = format!("trained on the same data as version {} (no new rows since)", prod.version);
        return Ok(result);
    }
    let Some(rule) = &policy.promote else {
        result.accepted = true;
        result.reason = "passed its gates (the policy has no promote rule)".into();
        return Ok(result);
    };
    let Config::TrainingJob(job) = &spec
        .resources
        .iter()
        .find(|r| r.address == policy.job)
        .ok_or_else(|| PipelineError::NotFound { address: policy.job.clone(), hint: String::new() })?
        .config
    else {
        return Err(PipelineError::NotFound { address: policy.job.clone(), hint: String::new() });
    };
    match compare(&registry, &set, job, &prod, &candidate, &rule.compare, rule.min_gain) {
        Ok(c) => {
            result.accepted = c.gain >= c.min_gain;
            result.reason = format!(
                "{} {:.4} vs production (version {}) {:.4} on {} holdout rows: {:+.4} {} {}",
                c.metric,
                c.candidate,
                prod.version,
                c.production,
                c.rows,
                c.gain,
                if result.accepted { "≥" } else { "<" },
                c.min_gain
            );
            result.comparison = Some(c);
        }
        Err(e) => result.reason = format!("cannot be compared with production: {e}"),
    }
    Ok(result)
}

/// Both models' `metric` on the holdout rows of `set`.
fn compare(
    registry: &Registry,
    set: &TrainingSet,
    job: &mlops_compiler::model::TrainingJob,
    production: &ModelVersion,
    candidate: &ModelVersion,
    metric: &str,
    min_gain: f64,
) -> Result<Comparison, String> {
    let names = |v: &ModelVersion| v.signature.features.iter().map(|f| f.name.clone()).collect::<Vec<_>>();
    if names(production) != names(candidate) {
        return Err(format!("production (version {}) takes other features than the candidate", production.version));
    }
    let rows = train::holdout_rows(set, job).map_err(|e| e.to_string())?;
    let cols = set.cols();
    let mut x = Vec::with_capacity(rows.len() * cols);
    let mut labels = Vec::with_capacity(rows.len());
    for &i in &rows {
        x.extend_from_slice(set.row(i));
        labels.push(set.y[i]);
    }
    let score = |v: &ModelVersion| -> Result<f64, String> {
        let json = registry.model_json(v).map_err(|e| e.to_string())?;
        let forest = Forest::from_json(&json).map_err(|e| format!("version {}: {e}", v.version))?;
        let mut out = Vec::new();
        forest.predict(&x, rows.len(), &mut out).map_err(|e| e.to_string())?;
        let all = metrics::task_metrics(v.task, &labels, &out, set.classes.len());
        all.get(metric).copied().ok_or_else(|| format!("metric `{metric}` cannot be computed for this model"))
    };
    let (c, p) = (score(candidate)?, score(production)?);
    let gain = if metrics::higher_is_better(metric) { c - p } else { p - c };
    Ok(Comparison { metric: metric.to_string(), candidate: c, production: p, gain, min_gain, rows: rows.len() })
}
