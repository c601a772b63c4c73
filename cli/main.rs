//! `mlops`: compile, plan and apply ML systems described in HCL. This file only parses the
//! command line and hands over to one module per subcommand; exit codes are chosen there.

mod commands;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match commands::Cli::try_parse_from(commands::normalize_args(std::env::args_os())) {
        Ok(cli) => cli,
        // A usage error exits 1, like every other error: 2 is kept for "changes found"
        // (`plan --detailed-exitcode`) and "drift found" (`drift compare`), which CI scripts
        // must be able to tell from a mistyped flag. Help and version exit 0.
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    match cli.run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
