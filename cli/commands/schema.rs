//! `mlops schema`: the language as JSON Schema (for editors and the Terraform provider), or as
//! the Markdown reference in docs/language.md — both generated from the one schema definition.

use clap::{Args, ValueEnum};
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SchemaFormat {
    /// JSON Schema (draft 2020-12) of the compiled-from-HCL document.
    Json,
    /// The Markdown block reference.
    Markdown,
}

/// Print the JSON Schema (or the Markdown reference) of the language.
#[derive(Debug, Args)]
pub struct SchemaCmd {
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    format: SchemaFormat,
}

impl SchemaCmd {
    pub fn run(self) -> Result<ExitCode, String> {
        match self.format {
            SchemaFormat::Json => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&mlops_compiler::json_schema::json_schema()).expect("serialisable")
                )
            }
            SchemaFormat::Markdown => print!("{}", mlops_compiler::json_schema::markdown_reference()),
        }
        Ok(ExitCode::SUCCESS)
    }
}
