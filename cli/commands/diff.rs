//! `mlops diff --base GIT_REV [DIR]`: the plan between the configuration at a git revision and
//! the working tree, needing no state. (Being written.)

use super::ConfigArgs;
use clap::Args;
use std::process::ExitCode;

/// Plan the working tree against the configuration at a git revision (no state needed).
#[derive(Debug, Args)]
pub struct Diff {
    #[command(flatten)]
    config: ConfigArgs,
    /// The git revision to compare against (a branch, tag or commit).
    #[arg(long, value_name = "GIT_REV")]
    base: String,
}

impl Diff {
    pub fn run(self) -> Result<ExitCode, String> {
        let _ = (&self.config, &self.base);
        Err("mlops diff is not built yet".to_string())
    }
}
