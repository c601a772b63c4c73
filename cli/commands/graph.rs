//! `mlops graph [DIR] [--format dot|text]`: the dependency graph.

use super::{print_diagnostics, summary, ConfigArgs};
use clap::{Args, ValueEnum};
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GraphFormat {
    /// Graphviz DOT (`mlops graph | dot -Tsvg > graph.svg`).
    Dot,
    /// Resources in apply order with their dependencies.
    Text,
}

/// Print the dependency graph.
#[derive(Debug, Args)]
pub struct GraphCmd {
    #[command(flatten)]
    config: ConfigArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "dot")]
    format: GraphFormat,
}

impl GraphCmd {
    pub fn run(self) -> Result<ExitCode, String> {
        let c = self.config.compile()?;
        if c.diagnostics.has_errors() {
            print_diagnostics(&c.diagnostics, &c.sources);
            eprintln!("cannot draw the graph: {}", summary(&c.diagnostics));
            return Ok(ExitCode::from(1));
        }
        match self.format {
            GraphFormat::Dot => print!("{}", c.graph.to_dot(&c.model)),
            GraphFormat::Text => print!("{}", c.graph.to_text()),
        }
        Ok(ExitCode::SUCCESS)
    }
}
