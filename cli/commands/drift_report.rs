//! `mlops drift report MONITOR [DIR] --out report.html`: a monitor's judgement of the window
//! ending now, as a self-contained HTML page with per-feature distribution plots. Reads the
//! files the runtime keeps (prediction log, registry, feedback); no running agent needed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use mlops_compiler::units::Duration;
use mlops_runtime::monitor::report;
use mlops_runtime::retrain::controller::{judge, MonitorRequest};
use mlops_runtime::workspace::Workspace;

use super::{split_dir_and_addresses, write_atomic, VarArgs};

/// `mlops drift report`.
#[derive(Debug, Args)]
pub struct Report {
    /// The monitor's address (`monitor.NAME`) and the configuration directory (default: the
    /// current one), in any order.
    #[arg(value_name = "MONITOR|DIR", required = true)]
    targets: Vec<String>,
    /// Where to write the page.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Judge this much time before now instead of the monitor's window (`24h`, `7d`).
    #[arg(long, value_name = "DURATION")]
    window: Option<String>,
    #[command(flatten)]
    vars: VarArgs,
}

impl Report {
    pub fn run(self) -> Result<ExitCode, String> {
        let (config, addresses) = split_dir_and_addresses(&self.targets, &self.vars)?;
        let [address] = addresses.as_slice() else {
            return Err("name one monitor: `mlops drift report monitor.NAME [DIR] --out report.html`".into());
        };
        let Some((_, spec)) = config.compile_spec()? else { return Ok(ExitCode::from(1)) };
        let mut request = MonitorRequest::from_spec(&spec, address, &config.dir)?;
        if let Some(w) = &self.window {
            request.monitor.window = Duration::parse(w).map_err(|e| format!("--window {w}: {e}"))?;
        }
        let data_dir = Workspace::new(&config.dir, &spec).data_dir;
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let (result, window, reference) = judge(&data_dir, &request, now);
        let generated = mlops_runtime::state::rfc3339(now / 1000);
        let page = report::render(&result, &request.endpoint, &window, reference.as_ref(), &generated)?;
        write_atomic(&self.out, &page)?;
        let breached = result.breaches().len();
        println!(
            "Wrote {} ({} predictions in the window, {} check(s), {breached} breached).",
            self.out.display(),
            result.predictions,
            result.checks.len()
        );
        Ok(ExitCode::SUCCESS)
    }
}
