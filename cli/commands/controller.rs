//! `mlops controller --spec FILE`: the monitors and retrain policies of a compiled spec, run in
//! a process of their own (on Kubernetes, the controller's Deployment), serving `/healthz`,
//! `/readyz` and `/metrics`.

use super::SpecArgs;
use clap::Args;
use mlops_runtime::retrain::standalone::{self, ControllerOptions};
use std::process::ExitCode;

/// Run the monitors and retrain policies of a compiled spec.
#[derive(Debug, Args)]
pub struct ControllerCmd {
    /// Health and metrics listen here.
    #[arg(long, default_value = "0.0.0.0:8080")]
    address: String,
    #[command(flatten)]
    from: SpecArgs,
}

impl ControllerCmd {
    pub fn run(self) -> Result<ExitCode, String> {
        let Some(from) = self.from.load(true)? else {
            return Err(
                "the controller runs from a compiled spec: --spec FILE, or MLOPS_SPEC in the environment".into()
            );
        };
        let address = self.address.parse().map_err(|e| {
            format!("the controller listens on an IP address and port (`0.0.0.0:8080`), not `{}`: {e}", self.address)
        })?;
        from.mirror(mlops_runtime::pod::Role::Controller, std::time::Duration::from_secs(2))?;
        let options = ControllerOptions {
            address,
            data_dir: from.workspace.data_dir,
            root: from.workspace.root,
            spec: from.spec,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the async runtime: {e}"))?;
        runtime
            .block_on(standalone::run(options, mlops_runtime::serve::agent::termination()))
            .map_err(|e| e.to_string())?;
        super::flush_mirror()?;
        Ok(ExitCode::SUCCESS)
    }
}
