//! The subcommands, one module each, and what they share: how a configuration is loaded (with
//! variables from `-var`, `-var-file` and `MLOPS_VAR_*`) and how diagnostics are printed.

mod agent;
mod apply;
mod compile;
mod controller;
mod diff;
mod drift;
mod drift_report;
mod events;
mod fmt;
mod graph;
mod kubernetes;
mod materialize;
mod models;
mod output;
mod plan;
mod schema;
mod state;
mod train;
mod validate;

use clap::{Args, Parser, Subcommand};
use mlops_compiler::diagnostic::Diagnostics;
use mlops_compiler::source::SourceMap;
use mlops_compiler::value::Value;
use mlops_compiler::{Compilation, Options};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Infrastructure-as-code for machine-learning systems.
#[derive(Debug, Parser)]
#[command(name = "mlops", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a configuration and report every problem.
    Validate(validate::Validate),
    /// Rewrite configuration files in the canonical style.
    Fmt(fmt::Fmt),
    /// Print the dependency graph.
    Graph(graph::GraphCmd),
    /// Compile a configuration to its SystemSpec (JSON).
    Compile(compile::CompileCmd),
    /// Generate Kubernetes manifests (and a kustomization.yaml) into a folder.
    Build(kubernetes::Build),
    /// Print the JSON Schema (or the Markdown reference) of the language.
    Schema(schema::SchemaCmd),
    /// Materialise feature views into the offline and online stores.
    Materialize(materialize::Materialize),
    /// Train a job with XGBoost and register the model.
    Train(train::Train),
    /// List registered model versions (or `models show JOB@VERSION`).
    Models(models::Models),
    /// Show what apply would change: text, markdown for pull requests, or JSON.
    Plan(plan::PlanCmd),
    /// Plan the working tree against a git revision, without state (for pull requests).
    Diff(diff::Diff),
    /// Make the system match the configuration, or apply a saved plan.
    Apply(apply::Apply),
    /// Destroy everything mlops applied (never your own data).
    Destroy(apply::Destroy),
    /// Find changes made outside mlops and record them in the state.
    Refresh(apply::Refresh),
    /// Print the root outputs of the last apply.
    Output(output::Output),
    /// Print a plan saved with `plan --out`.
    Show(plan::Show),
    /// Inspect the state (`state list`, `state show ADDRESS`).
    State(state::StateCmd),
    /// Remove a lock left by a crashed run.
    ForceUnlock(state::ForceUnlock),
    /// Run the serving agent in the foreground (apply starts one when needed).
    Agent(agent::AgentCmd),
    /// Show the endpoints the serving agent serves: versions, traffic, rollouts.
    Status(agent::Status),
    /// Roll an endpoint back to its previous version at once.
    Rollback(agent::Rollback),
    /// Show what monitors and retrain policies decided (breaches, retrains, promotions).
    Events(events::Events),
    /// Drift statistics outside a monitor (`drift compare REFERENCE CURRENT`).
    Drift(drift::DriftCmd),
    /// Run the monitors and retrain policies of a compiled spec in their own process (a pod).
    Controller(controller::ControllerCmd),
}

impl Cli {
    /// Runs the chosen subcommand.
    pub fn run(self) -> Result<ExitCode, String> {
        match self.command {
            Command::Validate(c) => c.run(),
            Command::Fmt(c) => c.run(),
            Command::Graph(c) => c.run(),
            Command::Compile(c) => c.run(),
            Command::Build(c) => c.run(),
            Command::Schema(c) => c.run(),
            Command::Materialize(c) => c.run(),
            Command::Train(c) => c.run(),
            Command::Models(c) => c.run(),
            Command::Plan(c) => c.run(),
            Command::Diff(c) => c.run(),
            Command::Apply(c) => c.run(),
            Command::Destroy(c) => c.run(),
            Command::Refresh(c) => c.run(),
            Command::Output(c) => c.run(),
            Command::Show(c) => c.run(),
            Command::State(c) => c.run(),
            Command::ForceUnlock(c) => c.run(),
            Command::Agent(c) => c.run(),
            Command::Status(c) => c.run(),
            Command::Rollback(c) => c.run(),
            Command::Events(c) => c.run(),
            Command::Drift(c) => c.run(),
            Command::Controller(c) => c.run(),
        }
    }
}

/// Accepts Terraform's single-dash spelling of the long flags (`-var`, `-var-file`, `-out`) that
/// people type from habit, by rewriting them to `--var` …; everything else is left alone.
pub fn normalize_args(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    const TERRAFORM_STYLE: &[&str] = &[
        "-var",
        "-var-file",
        "-out",
        "-auto-approve",
        "-refresh",
        "-refresh-only",
        "-destroy",
        "-parallelism",
        "-detailed-exitcode",
        "-json",
        "-raw",
    ];
    args.map(|a| {
        let Some(s) = a.to_str() else { return a };
        let name = s.split('=').next().unwrap_or(s);
        if TERRAFORM_STYLE.contains(&name) {
            format!("-{s}").into()
        } else {
            a
        }
    })
    .collect()
}

/// What targets get from the CLI: the path of this executable (the local target runs it as
/// `mlops agent`).
pub fn target_options() -> mlops_runtime::targets::TargetOptions {
    mlops_runtime::targets::TargetOptions { mlops_exe: std::env::current_exe().ok() }
}

/// A compiled spec instead of a configuration directory: what a pod runs from (its ConfigMap
/// mounts `mlops compile DIR`'s output). Flags win over the environment.
#[derive(Debug, Clone, Default, Args)]
pub struct SpecArgs {
    /// Read the compiled SystemSpec (what `mlops compile DIR` prints) from FILE instead of
    /// compiling a configuration directory.
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
    /// With --spec: where the spec's relative paths (sources) resolve [env: MLOPS_ROOT; default:
    /// the current directory].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// With --spec: the data directory (feature store, registry, logs) [env: MLOPS_DATA_DIR;
    /// default: the target's data directory under the root].
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// A spec loaded from a file, with where it runs.
pub struct FromSpec {
    /// The file it came from.
    pub file: PathBuf,
    /// The compiled system.
    pub spec: mlops_compiler::spec::SystemSpec,
    /// Its root and data directory.
    pub workspace: mlops_runtime::workspace::Workspace,
}

impl FromSpec {
    /// Mirrors the data directory to the spec's object store, when it names one (a pod
    /// without a shared volume); see [`mlops_runtime::pod::mirror`].
    pub fn mirror(&self, role: mlops_runtime::pod::Role, every: std::time::Duration) -> Result<(), String> {
        mlops_runtime::pod::mirror(&self.spec, &self.workspace.data_dir, role, every)
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

/// Uploads what this pod wrote before it exits (with a mirrored data directory).
pub fn flush_mirror() -> Result<(), String> {
    mlops_runtime::pod::flush_mirror().map_err(|e| e.to_string())
}

/// The configuration directory as a suggested command line shows it before the next word
/// ("" for ".").
pub fn shown_dir(dir: &Path) -> String {
    if dir == Path::new(".") {
        String::new()
    } else {
        format!("{} ", dir.display())
    }
}

/// A path from the environment, when set and not empty.
pub fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

impl SpecArgs {
    /// Loads the spec named by `--spec` (else `MLOPS_SPEC` when `env_spec`) and resolves its root
    /// (`--root`, `MLOPS_ROOT`, the current directory) and data directory (`--data-dir`,
    /// `MLOPS_DATA_DIR`, the target's default under the root); `None` when no spec is named.
    pub fn load(&self, env_spec: bool) -> Result<Option<FromSpec>, String> {
        let Some(file) = self.spec.clone().or_else(|| env_spec.then(|| env_path("MLOPS_SPEC")).flatten()) else {
            if self.root.is_some() || self.data_dir.is_some() {
                return Err("--root and --data-dir go with --spec FILE (a compiled spec)".into());
            }
            return Ok(None);
        };
        let spec = mlops_runtime::pod::load_spec(&file).map_err(|e| e.to_string())?;
        let root = match self.root.clone().or_else(|| env_path("MLOPS_ROOT")) {
            Some(r) => r,
            None => std::env::current_dir().map_err(|e| format!("cannot tell the current directory: {e}"))?,
        };
        if !root.is_dir() {
            return Err(format!(
                "the root {} (--root or MLOPS_ROOT: where the spec's relative paths resolve) is not a directory",
                root.display()
            ));
        }
        let data_dir = self.data_dir.clone().or_else(|| env_path("MLOPS_DATA_DIR"));
        let workspace = mlops_runtime::workspace::Workspace::at(&root, data_dir.as_deref(), &spec);
        Ok(Some(FromSpec { file, spec, workspace }))
    }

    /// For a command given a configuration directory or `--spec`, and resource addresses: the
    /// spec, its workspace and the addresses; `None` when the configuration has errors (printed).
    pub fn resolve(&self, targets: &[String], vars: &VarArgs) -> Result<Option<Resolved>, String> {
        if let Some(f) = self.load(false)? {
            let addresses = addresses_only(targets, vars)?;
            f.mirror(mlops_runtime::pod::Role::Job, std::time::Duration::from_secs(2))?;
            return Ok(Some((f.spec, f.workspace, addresses)));
        }
        let (config, addresses) = split_dir_and_addresses(targets, vars)?;
        let Some((_, spec)) = config.compile_spec()? else { return Ok(None) };
        let workspace = mlops_runtime::workspace::Workspace::new(&config.dir, &spec);
        Ok(Some((spec, workspace, addresses)))
    }
}

/// What [`SpecArgs::resolve`] gives: the spec, its workspace, the addresses named.
pub type Resolved = (mlops_compiler::spec::SystemSpec, mlops_runtime::workspace::Workspace, Vec<String>);

/// With `--spec`, the positionals must all be resource addresses: the spec replaces the
/// configuration directory.
pub fn addresses_only(targets: &[String], vars: &VarArgs) -> Result<Vec<String>, String> {
    let (config, addresses) = split_dir_and_addresses(targets, vars)?;
    if targets.len() != addresses.len() {
        return Err(format!(
            "`{}` is not a resource address: with --spec the spec replaces the configuration directory, \
             so give addresses only (e.g. training_job.NAME)",
            config.dir.display()
        ));
    }
    if !vars.vars.is_empty() || !vars.var_files.is_empty() {
        return Err("--var and --var-file do not apply to a compiled spec: its variables were set when it was \
                    compiled (`mlops compile DIR --var …`)"
            .into());
    }
    Ok(addresses)
}

/// Seconds as a duration (`2`, `0.5`, `2s`, `500ms`), for clap.
pub fn parse_seconds(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let (number, scale) = match (t.strip_suffix("ms"), t.strip_suffix('s')) {
        (Some(ms), _) => (ms, 0.001),
        (None, Some(s)) => (s, 1.0),
        (None, None) => (t, 1.0),
    };
    let value: f64 = number.trim().parse().map_err(|_| format!("`{text}` is not a duration (e.g. 2s, 500ms)"))?;
    if !(0.0..=86_400.0).contains(&(value * scale)) {
        return Err(format!("`{text}` is out of range (0 to 24h)"));
    }
    Ok(std::time::Duration::from_secs_f64(value * scale))
}

/// Where the configuration is and which variables it gets.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Directory holding the *.mlops.hcl files.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub vars: VarArgs,
}

/// Values for the configuration's root variables.
#[derive(Debug, Clone, Default, Args)]
pub struct VarArgs {
    /// Set a root variable: `--var name=value` (value parsed as HCL, else taken as a string).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// Read root variables from a file of `name = value` lines (HCL) or a JSON object.
    #[arg(long = "var-file", value_name = "FILE")]
    pub var_files: Vec<PathBuf>,
}

/// Commands that take addresses as well as a directory (`mlops train [DIR] training_job.x`)
/// accept both as positionals in any order: a word that starts with a resource kind and a dot is
/// an address, anything else the directory.
pub fn split_dir_and_addresses(targets: &[String], vars: &VarArgs) -> Result<(ConfigArgs, Vec<String>), String> {
    let mut addresses = Vec::new();
    let mut dir: Option<&String> = None;
    for t in targets {
        let is_address = mlops_compiler::schema::resource_kinds().any(|k| t.starts_with(&format!("{k}.")))
            || t.starts_with("module.");
        if is_address && !Path::new(t).is_dir() {
            addresses.push(t.clone());
        } else if let Some(first) = dir {
            return Err(format!("two directories given ({first} and {t}); give one configuration directory"));
        } else {
            dir = Some(t);
        }
    }
    let dir = dir.map_or_else(|| PathBuf::from("."), PathBuf::from);
    Ok((ConfigArgs { dir, vars: vars.clone() }, addresses))
}

impl ConfigArgs {
    /// Compiles and prints diagnostics; `None` when there are errors (already printed).
    pub fn compile_spec(&self) -> Result<Option<(Compilation, mlops_compiler::spec::SystemSpec)>, String> {
        let mut c = self.compile()?;
        print_diagnostics(&c.diagnostics, &c.sources);
        match c.spec.take() {
            Some(spec) => Ok(Some((c, spec))),
            None => {
                eprintln!("the configuration has errors: {}", summary(&c.diagnostics));
                Ok(None)
            }
        }
    }

    /// Compiles the configuration with its variables.
    pub fn compile(&self) -> Result<Compilation, String> {
        self.compile_with(None)
    }

    /// Compiles the configuration with its variables, for the kubernetes target if `kubernetes`
    /// is given.
    pub fn compile_with(
        &self,
        kubernetes: Option<mlops_compiler::compile::KubernetesOverride>,
    ) -> Result<Compilation, String> {
        let options = Options { vars: self.variables()?, display_base: std::env::current_dir().ok(), kubernetes };
        Ok(mlops_compiler::compile(&self.dir, &options))
    }

    /// Variables in increasing precedence: environment, files, then `-var`.
    fn variables(&self) -> Result<indexmap::IndexMap<String, Value>, String> {
        let mut vars = indexmap::IndexMap::new();
        let mut env: Vec<(String, String)> =
            std::env::vars().filter_map(|(k, v)| k.strip_prefix("MLOPS_VAR_").map(|n| (n.to_string(), v))).collect();
        env.sort();
        for (name, raw) in env {
            vars.insert(name, Value::parse_literal(&raw));
        }
        for file in &self.vars.var_files {
            let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            for (k, v) in parse_var_file(&text).map_err(|e| format!("{}: {e}", file.display()))? {
                vars.insert(k, v);
            }
        }
        for v in &self.vars.vars {
            let (name, raw) = v
                .split_once('=')
                .ok_or_else(|| format!("-var {v:?}: expected NAME=VALUE, e.g. -var drift_threshold=0.3"))?;
            vars.insert(name.trim().to_string(), Value::parse_literal(raw));
        }
        Ok(vars)
    }
}

fn parse_var_file(text: &str) -> Result<Vec<(String, Value)>, String> {
    if text.trim_start().starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        let obj = json.as_object().ok_or("expected a JSON object of variable values")?;
        return Ok(obj.iter().map(|(k, v)| (k.clone(), Value::from_json(v))).collect());
    }
    let body = hcl_edit::parser::parse_body(text).map_err(|e| format!("invalid HCL: {}", e.message()))?;
    body.attributes()
        .map(|a| {
            Value::from_literal_expr(&a.value)
                .map(|v| (a.key.as_str().to_string(), v))
                .map_err(|_| format!("`{}` must be a literal value (no references or functions)", a.key.as_str()))
        })
        .collect()
}

/// Output format of diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DiagFormat {
    /// Rendered for people.
    Human,
    /// A JSON document for editors and CI.
    Json,
}

/// Prints diagnostics to stderr for people (colour on terminals, unless NO_COLOR is set).
pub fn print_diagnostics(diags: &Diagnostics, sources: &SourceMap) {
    if diags.is_empty() {
        return;
    }
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    eprint!("{}", diags.render(sources, color));
}

/// A one-line summary: "2 errors, 1 warning".
pub fn summary(diags: &Diagnostics) -> String {
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    format!("{}, {}", plural(diags.error_count(), "error"), plural(diags.warning_count(), "warning"))
}

/// Writes `text` to `path` atomically (temporary file, then rename), so a reader never sees
/// half a file.
pub fn write_atomic(path: &Path, text: &str) -> Result<(), String> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp =
        dir.join(format!(".{}.tmp-{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("out"), std::process::id()));
    std::fs::write(&tmp, text).map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!("cannot write {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse_in_seconds_or_milliseconds() {
        assert_eq!(parse_seconds("2").unwrap(), std::time::Duration::from_secs(2));
        assert_eq!(parse_seconds("2s").unwrap(), std::time::Duration::from_secs(2));
        assert_eq!(parse_seconds("250ms").unwrap(), std::time::Duration::from_millis(250));
        assert!(parse_seconds("soon").is_err());
        assert!(parse_seconds("-1").is_err());
    }

    #[test]
    fn terraform_style_flags_are_accepted() {
        let args = ["mlops", "-var", "a=1", "-var-file=x", "-out", "p", "-v"].map(std::ffi::OsString::from);
        let got: Vec<String> = normalize_args(args.into_iter()).into_iter().map(|a| a.into_string().unwrap()).collect();
        assert_eq!(got, ["mlops", "--var", "a=1", "--var-file=x", "--out", "p", "-v"]);
    }
}
