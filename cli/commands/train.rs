//! `mlops train [DIR] training_job.NAME`: materialise the job's views, build its training set,
//! train with XGBoost, evaluate the gates and register the version.

use super::{SpecArgs, VarArgs};
use clap::Args;
use mlops_runtime::pipeline::Runtime;
use mlops_runtime::train::TrainOptions;
use std::process::ExitCode;

/// Train a job and register the model as a new version.
#[derive(Debug, Args)]
pub struct Train {
    /// The configuration directory and/or the job address, in any order.
    /// With --spec, the job address only.
    #[arg(value_name = "DIR|training_job.NAME", required = true)]
    targets: Vec<String>,
    #[command(flatten)]
    vars: VarArgs,
    /// XGBoost threads (default: the job's `nthread`, else every core).
    #[arg(long)]
    threads: Option<usize>,
    /// Promote the new version to production if it passes its gates (the first passing
    /// version of a job is promoted anyway).
    #[arg(long, conflicts_with = "propose")]
    promote: bool,
    /// With --spec (a training Job on Kubernetes): leave the new version, if it passes its
    /// gates, for the controller to roll out through the `rollout` blocks of the endpoints
    /// serving the job (the first passing version is promoted at once).
    #[arg(long)]
    propose: bool,
    #[command(flatten)]
    from: SpecArgs,
}

impl Train {
    pub fn run(self) -> Result<ExitCode, String> {
        let Some((spec, workspace, addresses)) = self.from.resolve(&self.targets, &self.vars)? else {
            return Ok(ExitCode::from(1));
        };
        let [job] = addresses.as_slice() else {
            return Err("name one training job, e.g. `mlops train examples/fraud-detection training_job.fraud`".into());
        };
        if self.propose && self.from.spec.is_none() {
            return Err("--propose goes with --spec FILE: it leaves the version to the controller of a cluster \
                        (run `mlops train DIR JOB --promote` here)"
                .into());
        }
        let data_dir = workspace.data_dir.clone();
        let rt = Runtime::in_workspace(workspace, &spec);
        let opts = TrainOptions { threads: self.threads, progress: true };
        let out = rt.train(job, &opts, self.promote).map_err(|e| e.to_string())?;
        let proposed = self.propose && !out.promoted && out.version.passed;
        if proposed {
            let p = mlops_runtime::serve::cluster::Proposal { job: job.clone(), version: out.version.version };
            mlops_runtime::serve::cluster::propose(&data_dir, &p)
                .map_err(|e| format!("cannot propose version {} for rollout: {e}", p.version))?;
        }
        for r in &out.materialized {
            println!("{}: {} new rows materialised", r.view, r.rows_written);
        }
        let v = &out.version;
        println!(
            "{job} version {}: trained on {} rows, {} held out, best iteration {}",
            v.version, v.train_rows, v.holdout_rows, v.best_iteration
        );
        let metrics: Vec<String> = v.metrics.iter().map(|(k, x)| format!("{k} {x:.4}")).collect();
        println!("  holdout: {}", metrics.join(", "));
        for g in &v.gates {
            let value = g.value.map_or("undefined".to_string(), |x| format!("{x:.4}"));
            let bound = match (g.min, g.max) {
                (Some(m), _) => format!("≥ {m}"),
                (_, Some(m)) => format!("≤ {m}"),
                _ => String::new(),
            };
            println!("  gate {} {bound}: {value} — {}", g.metric, if g.passed { "passed" } else { "FAILED" });
        }
        println!(
            "  status: {}{}",
            v.status,
            if out.promoted {
                " (promoted)"
            } else if proposed {
                " (proposed: the controller rolls it out)"
            } else if !v.passed {
                " (failed its gate: never promoted)"
            } else {
                ""
            }
        );
        super::flush_mirror()?;
        Ok(if v.passed { ExitCode::SUCCESS } else { ExitCode::from(3) })
    }
}
