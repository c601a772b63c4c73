//! `mlops materialize [DIR] [feature_view.NAME …]`: source rows into the offline and online
//! feature stores, incrementally (only rows newer than the last run).

use super::{SpecArgs, VarArgs};
use clap::Args;
use mlops_runtime::pipeline::Runtime;
use std::process::ExitCode;

/// Materialise feature views (all of them by default).
#[derive(Debug, Args)]
pub struct Materialize {
    /// The configuration directory and/or feature view addresses, in any order.
    #[arg(value_name = "DIR|feature_view.NAME")]
    targets: Vec<String>,
    #[command(flatten)]
    vars: VarArgs,
    #[command(flatten)]
    from: SpecArgs,
}

impl Materialize {
    pub fn run(self) -> Result<ExitCode, String> {
        let Some((spec, workspace, addresses)) = self.from.resolve(&self.targets, &self.vars)? else {
            return Ok(ExitCode::from(1));
        };
        let rt = Runtime::in_workspace(workspace, &spec);
        let views: Vec<String> =
            if addresses.is_empty() { rt.views().into_iter().map(str::to_string).collect() } else { addresses };
        if views.is_empty() {
            println!("No feature views to materialise.");
        }
        for v in views {
            let r = rt.materialize(&v).map_err(|e| e.to_string())?;
            println!(
                "{v}: {} rows read, {} new, {} skipped (before the watermark){}; {} entities online; {:.2}s",
                r.rows_read,
                r.rows_written,
                r.rows_skipped,
                if r.full_recompute { ", full recompute" } else { "" },
                r.online_entities,
                r.duration.as_secs_f64()
            );
        }
        super::flush_mirror()?;
        Ok(ExitCode::SUCCESS)
    }
}
