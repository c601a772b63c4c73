//! `mlops`: compile, plan and apply ML systems described in HCL. This file only parses the
//! command line and hands over to one module per subcommand; exit codes are chosen there.

mod commands;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = commands::Cli::parse_from(commands::normalize_args(std::env::args_os()));
    match cli.run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
