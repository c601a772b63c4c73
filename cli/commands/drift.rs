//! `mlops drift compare REFERENCE CURRENT`: the drift statistics on any two CSV or Parquet
//! files, per column. The work is `mlops_runtime::monitor::compare`; this parses the flags,
//! prints the table or the JSON report, and picks the exit code: 0 when no column drifted, 2
//! when one did (so CI can gate on it, like `plan --detailed-exitcode`), 1 on an error.

use clap::{Args, Subcommand};
use mlops_runtime::monitor::compare::{compare, render_table, CompareOptions};
use mlops_runtime::monitor::drift::{Correction, Method, DEFAULT_BINS};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Exit code when at least one column drifted.
const EXIT_DRIFTED: u8 = 2;

/// Drift statistics outside a monitor.
#[derive(Debug, Args)]
pub struct DriftCmd {
    #[command(subcommand)]
    command: DriftSub,
}

#[derive(Debug, Subcommand)]
enum DriftSub {
    /// Compare two CSV or Parquet files column by column (exit 0: no drift, 2: drift, 1: error).
    Compare(Compare),
    /// Write a monitor's judgement of its latest window as an HTML page with distribution plots.
    Report(super::drift_report::Report),
}

/// `mlops drift compare`.
#[derive(Debug, Args)]
struct Compare {
    /// The reference data (e.g. the training set): a CSV file with a header, or Parquet.
    reference: PathBuf,
    /// The data to check against it.
    current: PathBuf,
    /// Columns to compare, comma-separated (default: every column both files have).
    #[arg(long, value_delimiter = ',', value_name = "A,B")]
    columns: Option<Vec<String>>,
    /// One statistic for every column (default: psi for numbers, chi2 for categories).
    #[arg(long, value_parser = parse_method, value_name = "psi|ks|js|chi2|wasserstein")]
    method: Option<Method>,
    /// Drifted above this statistic (chi2: below this p-value). Defaults: psi 0.2, ks 0.1,
    /// js 0.1, wasserstein 0.1 (reference standard deviations), chi2 0.05.
    #[arg(long, value_name = "X")]
    threshold: Option<f64>,
    /// Judge ks and chi2 on their corrected p-value at this significance level instead.
    #[arg(long, value_name = "A")]
    alpha: Option<f64>,
    /// Multiple-testing correction over the columns judged by p-value.
    #[arg(long, value_parser = parse_correction, default_value = "bonferroni", value_name = "none|bonferroni|holm")]
    correction: Correction,
    /// Values a column needs in CURRENT to be judged (fewer: "insufficient data").
    #[arg(long, default_value_t = 1, value_name = "N")]
    min_samples: u64,
    /// Quantile bins of the reference for psi and js on numbers.
    #[arg(long, default_value_t = DEFAULT_BINS, value_name = "N")]
    bins: usize,
    /// Print the report as JSON (format_version 1).
    #[arg(long)]
    json: bool,
}

fn parse_method(s: &str) -> Result<Method, String> {
    Method::parse(s).ok_or_else(|| {
        let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
        let hint = mlops_compiler::suggest::did_you_mean(s, names.iter().copied())
            .map_or(String::new(), |n| format!(" (did you mean `{n}`?)"));
        format!("unknown drift method `{s}`{hint}; use one of {}", names.join(", "))
    })
}

fn parse_correction(s: &str) -> Result<Correction, String> {
    Correction::parse(s).ok_or_else(|| format!("unknown correction `{s}`; use none, bonferroni or holm"))
}

impl DriftCmd {
    pub fn run(self) -> Result<ExitCode, String> {
        match self.command {
            DriftSub::Compare(c) => c.run(),
            DriftSub::Report(r) => r.run(),
        }
    }
}

impl Compare {
    fn run(self) -> Result<ExitCode, String> {
        let options = CompareOptions {
            columns: self.columns.map(|c| c.into_iter().map(|s| s.trim().to_string()).collect()),
            method: self.method,
            threshold: self.threshold,
            alpha: self.alpha,
            correction: self.correction,
            min_samples: self.min_samples,
            bins: self.bins,
        };
        let report = compare(&self.reference, &self.current, &options).map_err(|e| e.to_string())?;
        let text = if self.json {
            serde_json::to_string_pretty(&report).map_err(|e| e.to_string())? + "\n"
        } else {
            render_table(&report)
        };
        // A reader that stops early (`| head`) is not an error.
        match std::io::stdout().lock().write_all(text.as_bytes()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(format!("cannot write the report: {e}"))
            }
            _ => {}
        }
        Ok(if report.any_drifted() { ExitCode::from(EXIT_DRIFTED) } else { ExitCode::SUCCESS })
    }
}
