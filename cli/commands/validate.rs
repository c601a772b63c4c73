//! `mlops validate [DIR]`: every diagnostic, exit 0 when there are no errors.

use super::{print_diagnostics, summary, ConfigArgs, DiagFormat};
use clap::Args;
use std::process::ExitCode;

/// Check a configuration and report every problem.
#[derive(Debug, Args)]
pub struct Validate {
    #[command(flatten)]
    config: ConfigArgs,
    /// `human` (default) or `json` (for editors and CI; printed on stdout).
    #[arg(long, value_enum, default_value = "human")]
    format: DiagFormat,
}

impl Validate {
    pub fn run(self) -> Result<ExitCode, String> {
        let c = self.config.compile()?;
        let ok = !c.diagnostics.has_errors();
        match self.format {
            DiagFormat::Json => {
                let doc = serde_json::json!({
                    "format_version": 1,
                    "valid": ok,
                    "error_count": c.diagnostics.error_count(),
                    "warning_count": c.diagnostics.warning_count(),
                    "diagnostics": c.diagnostics.to_json(&c.sources),
                });
                println!("{}", serde_json::to_string_pretty(&doc).expect("serialisable"));
            }
            DiagFormat::Human => {
                print_diagnostics(&c.diagnostics, &c.sources);
                if ok {
                    println!(
                        "The configuration is valid: {} resources ({}).",
                        c.model.resources.len(),
                        summary(&c.diagnostics)
                    );
                } else {
                    eprintln!("validation failed: {}", summary(&c.diagnostics));
                }
            }
        }
        Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
    }
}
