//! `mlops plan [DIR]` and `mlops show FILE`: the diff of the configuration against the state,
//! for people (text), pull requests (markdown) and tools (versioned JSON), optionally saved.

use super::{write_atomic, ConfigArgs};
use clap::{Args, ValueEnum};
use mlops_compiler::model::Target;
use mlops_compiler::plan::{plan, plan_destroy, render_markdown, render_text, Plan};
use mlops_runtime::state;
use mlops_runtime::targets::kubernetes as manifests;
use mlops_runtime::workspace::Workspace;
use mlops_runtime::{apply, targets};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// Terraform-like, grouped by layer.
    Text,
    /// A pull-request comment (under GitHub's 65,536-character limit).
    Markdown,
    /// The versioned plan format for tools.
    Json,
}

fn render(p: &Plan, format: PlanFormat) -> Result<String, String> {
    Ok(match format {
        PlanFormat::Text => render_text(p),
        PlanFormat::Markdown => render_markdown(p),
        PlanFormat::Json => {
            let mut s = p.to_json().map_err(|e| e.to_string())?;
            if !s.ends_with('\n') {
                s.push('\n');
            }
            s
        }
    })
}

/// Show what apply would change.
#[derive(Debug, Args)]
pub struct PlanCmd {
    #[command(flatten)]
    config: ConfigArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: PlanFormat,
    /// Same as `--format json`.
    #[arg(long)]
    json: bool,
    /// Save the plan; `mlops apply FILE` refuses it if the state or configuration moved.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Exit 0 when there are no changes, 2 when there are (1 on errors).
    #[arg(long)]
    detailed_exitcode: bool,
    /// Check the world for changes made outside mlops first (default: true).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    refresh: bool,
    /// Only show what changed outside mlops (what `mlops refresh` would record).
    #[arg(long, conflicts_with_all = ["destroy", "out"])]
    refresh_only: bool,
    /// Plan destroying everything the state records.
    #[arg(long)]
    destroy: bool,
}

impl PlanCmd {
    pub fn run(self) -> Result<ExitCode, String> {
        let Some((c, spec)) = self.config.compile_spec()? else { return Ok(ExitCode::from(1)) };
        let format = if self.json { PlanFormat::Json } else { self.format };
        if let Target::Kubernetes { .. } = &spec.system.target {
            if self.destroy || self.refresh_only {
                return Err("for the kubernetes target, plan shows the manifests that would change; --destroy and \
                            --refresh-only are not supported there (`mlops destroy` removes the generated files, \
                            and the manifest folder is the record: there is nothing to refresh)"
                    .into());
            }
            return super::kubernetes::plan(
                &self.config.dir,
                &spec,
                format,
                self.out.as_deref(),
                self.detailed_exitcode,
            );
        }
        let backend = state::open(&self.config.dir, &c.model.system.backend).map_err(|e| e.to_string())?;
        let mut current = backend.read().map_err(|e| e.to_string())?;
        // Refresh reads the world, never writes the state; a target that cannot run here (the
        // kubernetes one, for now) has nothing to compare.
        let target = targets::open(&self.config.dir, &spec, super::target_options()).ok();
        if let (Some(s), Some(target), true) = (current.as_mut(), &target, self.refresh || self.refresh_only) {
            let adopted = apply::adopt(s, target.as_ref()).map_err(|e| format!("refresh failed: {e}"))?;
            if !self.json && self.format == PlanFormat::Text {
                super::apply::print_adopted(&adopted);
            }
            let drift = apply::refresh(s, target.as_ref()).map_err(|e| format!("refresh failed: {e}"))?;
            if self.refresh_only {
                if drift.is_empty() {
                    println!("No changes outside mlops: the world matches the state.");
                } else {
                    super::apply::print_drift(&drift);
                    println!("`mlops refresh` would record these; the next apply re-applies them.");
                }
                return Ok(if self.detailed_exitcode && !drift.is_empty() {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                });
            }
            if !drift.is_empty() && !self.json && self.format == PlanFormat::Text {
                super::apply::print_drift(&drift);
            }
            apply::mark_drift(s, &drift);
        }
        if self.refresh_only {
            println!("No state yet: nothing to refresh.");
            return Ok(ExitCode::SUCCESS);
        }
        let p = if self.destroy { plan_destroy(&spec, current.as_ref()) } else { plan(&spec, current.as_ref()) };
        print!("{}", render(&p, format)?);
        if format != PlanFormat::Json {
            if let Target::Local { .. } = &spec.system.target {
                let data_dir = Workspace::new(&self.config.dir, &spec).data_dir;
                if let Some(text) = super::agent::observations(&data_dir, format == PlanFormat::Markdown) {
                    print!("{text}");
                }
            }
        }
        if let Some(out) = &self.out {
            write_atomic(out, &p.to_json().map_err(|e| e.to_string())?)?;
            saved(&self.config.dir, out);
        }
        Ok(if self.detailed_exitcode && p.has_changes() { ExitCode::from(2) } else { ExitCode::SUCCESS })
    }
}

/// Says where a plan was saved and how to apply it.
pub(super) fn saved(config_dir: &std::path::Path, out: &std::path::Path) {
    let dir = super::shown_dir(config_dir);
    eprintln!("Saved the plan to {}; apply it with `mlops apply {dir}{}`.", out.display(), out.display());
}

/// Print a saved plan.
#[derive(Debug, Args)]
pub struct Show {
    /// A plan saved with `mlops plan --out FILE`.
    file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: PlanFormat,
    /// Same as `--format json`.
    #[arg(long)]
    json: bool,
}

impl Show {
    pub fn run(self) -> Result<ExitCode, String> {
        let text =
            std::fs::read_to_string(&self.file).map_err(|e| format!("cannot read {}: {e}", self.file.display()))?;
        let format = if self.json { PlanFormat::Json } else { self.format };
        if manifests::is_kubernetes_plan(&text) {
            let doc = manifests::PlanDocument::from_json(&text)
                .map_err(|e| format!("{} is not a saved plan: {e}", self.file.display()))?;
            print!("{}", super::kubernetes::render(&doc, &doc.out, format)?);
            return Ok(ExitCode::SUCCESS);
        }
        let p = Plan::from_json(&text).map_err(|e| format!("{} is not a saved plan: {e}", self.file.display()))?;
        print!("{}", render(&p, format)?);
        Ok(ExitCode::SUCCESS)
    }
}
