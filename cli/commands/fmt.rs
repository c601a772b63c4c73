//! `mlops fmt [--check] [DIR]`: canonical formatting of every *.mlops.hcl file.

use super::write_atomic;
use clap::Args;
use mlops_compiler::format::format_source;
use mlops_compiler::parse::config_files;
use std::path::PathBuf;
use std::process::ExitCode;

/// Rewrite configuration files in the canonical style.
#[derive(Debug, Args)]
pub struct Fmt {
    /// A directory (its *.mlops.hcl files) or a single file.
    #[arg(default_value = ".")]
    path: PathBuf,
    /// Change nothing; list files that are not formatted and exit 3 if any.
    #[arg(long)]
    check: bool,
    /// Also format modules and examples in subdirectories.
    #[arg(long, short)]
    recursive: bool,
}

impl Fmt {
    pub fn run(self) -> Result<ExitCode, String> {
        let files = if self.path.is_file() {
            vec![self.path.clone()]
        } else {
            let mut files = Vec::new();
            collect(&self.path, self.recursive, &mut files)?;
            files
        };
        let mut unformatted = 0;
        let mut failed = 0;
        for file in files {
            let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            match format_source(&text) {
                Ok(formatted) if formatted == text => {}
                Ok(formatted) => {
                    unformatted += 1;
                    println!("{}", file.display());
                    if !self.check {
                        write_atomic(&file, &formatted)?;
                    }
                }
                Err(e) => {
                    failed += 1;
                    eprintln!("{}: not formatted, syntax error at byte {}: {}", file.display(), e.offset, e.message);
                }
            }
        }
        Ok(if failed > 0 {
            ExitCode::from(1)
        } else if self.check && unformatted > 0 {
            ExitCode::from(3)
        } else {
            ExitCode::SUCCESS
        })
    }
}

fn collect(dir: &std::path::Path, recursive: bool, out: &mut Vec<PathBuf>) -> Result<(), String> {
    out.extend(config_files(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?);
    if recursive {
        let mut subdirs: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read {}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
            .collect();
        subdirs.sort();
        for d in subdirs {
            collect(&d, true, out)?;
        }
    }
    Ok(())
}
