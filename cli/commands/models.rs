//! `mlops models [DIR]` and `mlops models show training_job.NAME@VERSION [DIR]`: the model
//! registry.

use super::ConfigArgs;
use clap::{Args, Subcommand};
use mlops_runtime::pipeline::Runtime;
use std::process::ExitCode;

/// List registered model versions with their metrics.
#[derive(Debug, Args)]
pub struct Models {
    #[command(subcommand)]
    show: Option<ModelsCmd>,
    #[command(flatten)]
    config: ConfigArgs,
    /// Only this job's versions.
    #[arg(long)]
    job: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ModelsCmd {
    /// Everything recorded about one version: metrics, params, signature, hashes, gates.
    Show {
        /// `training_job.NAME@VERSION` (or `training_job.NAME` for its latest version).
        #[arg(value_name = "JOB@VERSION")]
        model: String,
        #[command(flatten)]
        config: ConfigArgs,
    },
}

impl Models {
    pub fn run(self) -> Result<ExitCode, String> {
        match self.show {
            Some(ModelsCmd::Show { model, config }) => show(&model, &config),
            None => list(&self.config, self.job.as_deref(), self.json),
        }
    }
}

fn list(config: &ConfigArgs, job: Option<&str>, json: bool) -> Result<ExitCode, String> {
    let Some((_, spec)) = config.compile_spec()? else { return Ok(ExitCode::from(1)) };
    let rt = Runtime::new(&config.dir, &spec);
    let versions = rt.registry().map_err(|e| e.to_string())?.list(job).map_err(|e| e.to_string())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&versions).map_err(|e| e.to_string())?);
        return Ok(ExitCode::SUCCESS);
    }
    if versions.is_empty() {
        println!("No models registered yet: run `mlops train {} training_job.<name>`.", config.dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<40} {:>7}  {:<10}  {:<5}  metrics", "job", "version", "status", "gates");
    for v in versions {
        let metrics: Vec<String> = v.metrics.iter().map(|(k, x)| format!("{k}={x:.4}")).collect();
        println!(
            "{:<40} {:>7}  {:<10}  {:<5}  {}",
            v.job,
            v.version,
            v.status.to_string(),
            if v.passed { "pass" } else { "FAIL" },
            metrics.join(" ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn show(version: &str, config: &ConfigArgs) -> Result<ExitCode, String> {
    let Some((_, spec)) = config.compile_spec()? else { return Ok(ExitCode::from(1)) };
    let rt = Runtime::new(&config.dir, &spec);
    let registry = rt.registry().map_err(|e| e.to_string())?;
    let (job, number) = match version.split_once('@') {
        Some((j, n)) => {
            (j, Some(n.parse::<u32>().map_err(|_| format!("`{n}` is not a version number; write {j}@<number>"))?))
        }
        None => (version, None),
    };
    let v = match number {
        Some(n) => registry.get(job, n).map_err(|e| e.to_string())?,
        None => registry
            .latest(job)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no versions of {job} yet: run `mlops train {} {job}`", config.dir.display()))?,
    };
    println!("{}", serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?);
    println!("model file: {}", v.model_path.display());
    Ok(ExitCode::SUCCESS)
}
