//! `mlops compile [DIR] --out spec.json`: the SystemSpec, byte-for-byte stable.

use super::{print_diagnostics, summary, write_atomic, ConfigArgs};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Compile a configuration to its SystemSpec (JSON).
#[derive(Debug, Args)]
pub struct CompileCmd {
    #[command(flatten)]
    config: ConfigArgs,
    /// Write the spec here instead of standard output.
    #[arg(long, short)]
    out: Option<PathBuf>,
}

impl CompileCmd {
    pub fn run(self) -> Result<ExitCode, String> {
        let c = self.config.compile()?;
        print_diagnostics(&c.diagnostics, &c.sources);
        let Some(spec) = c.spec else {
            eprintln!("compilation failed: {}", summary(&c.diagnostics));
            return Ok(ExitCode::from(1));
        };
        let json = spec.to_json();
        match &self.out {
            Some(path) => {
                write_atomic(path, &json)?;
                eprintln!("wrote {} ({} resources)", path.display(), spec.resources.len());
            }
            None => print!("{json}"),
        }
        Ok(ExitCode::SUCCESS)
    }
}
