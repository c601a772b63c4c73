//! `mlops apply`, `mlops destroy` and `mlops refresh`: changing the world under the state lock.
//! Each takes the lock first, plans against the state it then reads, shows the plan, asks (unless
//! `--auto-approve` or a saved plan), and executes through the configured target, printing one
//! line per resource as it starts and ends.

use super::{split_dir_and_addresses, ConfigArgs, VarArgs};
use clap::Args;
use mlops_compiler::model::Target as TargetConfig;
use mlops_compiler::plan::{plan, plan_destroy, render_text, Action, Plan};
use mlops_compiler::spec::SystemSpec;
use mlops_compiler::state::State;
use mlops_runtime::apply::{self, ApplyOptions, ApplyReport, Event};
use mlops_runtime::state::{self, LockGuard, StateBackend};
use mlops_runtime::targets::kubernetes as manifests;
use mlops_runtime::targets::{self, Target};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Options shared by apply and destroy.
#[derive(Debug, Args)]
pub struct Execution {
    /// Do not ask for confirmation.
    #[arg(long)]
    auto_approve: bool,
    /// Resources applied at once, at most.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    parallelism: u16,
}

impl Execution {
    /// Options for the executor, with Ctrl-C wired to a graceful stop: the first interrupt lets
    /// the resources in progress finish and be recorded (and the lock be released); a second one
    /// exits at once, as a crash would (the state stays readable; a local lock is left for
    /// `force-unlock`).
    fn options(&self) -> ApplyOptions {
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let installed = ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                eprintln!("\nSecond interrupt: stopping now.");
                std::process::exit(130);
            }
            eprintln!("\nInterrupt received: finishing the resources in progress, then stopping (Ctrl-C again to stop at once).");
        });
        ApplyOptions { parallelism: usize::from(self.parallelism), cancel: installed.is_ok().then_some(cancel) }
    }
}

/// Make the system match the configuration (or apply a saved plan).
#[derive(Debug, Args)]
pub struct Apply {
    /// The configuration directory (default: the current one) and/or a plan saved with
    /// `mlops plan --out FILE`, in any order.
    #[arg(value_name = "DIR|PLAN")]
    targets: Vec<String>,
    #[command(flatten)]
    vars: VarArgs,
    #[command(flatten)]
    exec: Execution,
    /// Check the world for changes made outside mlops before planning (default: true).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    refresh: bool,
}

/// What a command works on once the lock is held.
struct Session {
    spec: SystemSpec,
    backend: Box<dyn StateBackend>,
    lock: LockGuard,
    current: Option<State>,
    target: Box<dyn Target>,
}

impl Session {
    /// Opens the backend and target of a compiled configuration, takes the lock, reads the state.
    fn from_compiled(
        config: &ConfigArgs,
        c: &mlops_compiler::Compilation,
        spec: SystemSpec,
        operation: &str,
    ) -> Result<Session, String> {
        let backend = state::open(&config.dir, &c.model.system.backend).map_err(|e| e.to_string())?;
        let target = targets::open(&config.dir, &spec, super::target_options()).map_err(|e| e.to_string())?;
        let lock = backend.lock(operation).map_err(|e| e.to_string())?;
        let current = backend.read().map_err(|e| e.to_string())?;
        Ok(Session { spec, backend, lock, current, target })
    }

    /// The state with refresh's findings marked, printing them.
    fn refreshed(&self) -> Result<Option<State>, String> {
        let Some(mut s) = self.current.clone() else { return Ok(None) };
        let adopted = apply::adopt(&mut s, self.target.as_ref()).map_err(|e| format!("refresh failed: {e}"))?;
        print_adopted(&adopted);
        let drift = apply::refresh(&s, self.target.as_ref()).map_err(|e| format!("refresh failed: {e}"))?;
        print_drift(&drift);
        apply::mark_drift(&mut s, &drift);
        Ok(Some(s))
    }

    fn execute(self, p: &Plan, planned_from: Option<State>, opts: &ApplyOptions) -> Result<ExitCode, String> {
        let started = std::time::Instant::now();
        let mut print = |e: Event| print_event(&e);
        let report = apply::apply(
            p,
            &self.spec,
            planned_from,
            self.backend.as_ref(),
            &self.lock,
            self.target.as_ref(),
            opts,
            &mut print,
        )
        .map_err(|e| e.to_string())?;
        self.lock.release().map_err(|e| e.to_string())?;
        let interrupted = opts.cancel.as_ref().is_some_and(|c| c.load(Ordering::SeqCst));
        print_summary(&report, started.elapsed(), interrupted);
        Ok(if report.failed.is_empty() && !interrupted { ExitCode::SUCCESS } else { ExitCode::from(1) })
    }
}

/// Prints what refresh took over from the runtime.
pub(super) fn print_adopted(adopted: &[(String, String)]) {
    for (address, reason) in adopted {
        println!("{address}: {reason}; recorded in the state");
    }
    if !adopted.is_empty() {
        println!();
    }
}

pub(super) fn print_drift(drift: &[(String, mlops_compiler::state::Drifted)]) {
    for (address, d) in drift {
        println!("{address}: changed outside mlops: {}", d.reason);
    }
    if !drift.is_empty() {
        println!();
    }
}

fn verb(action: Action) -> (&'static str, &'static str) {
    match action {
        Action::Create => ("Creating", "Creation complete"),
        Action::Update => ("Modifying", "Modifications complete"),
        Action::Replace => ("Replacing", "Replacement complete"),
        Action::Delete => ("Destroying", "Destruction complete"),
        Action::NoOp => ("Checking", "Nothing to do"),
    }
}

fn print_event(e: &Event) {
    match e {
        Event::Started { address, action } => println!("{address}: {}...", verb(*action).0),
        Event::Finished { address, action, elapsed, produced } => {
            let shown: Vec<String> = produced
                .iter()
                .filter(|(k, _)| !k.starts_with('_') && k.as_str() != "metrics" && k.as_str() != "model_uri")
                .map(|(k, v)| format!("{k}={}", v.as_str().map_or_else(|| v.to_string(), str::to_string)))
                .collect();
            let detail = if shown.is_empty() { String::new() } else { format!(" [{}]", shown.join(", ")) };
            println!("{address}: {} after {:.1}s{detail}", verb(*action).1, elapsed.as_secs_f64());
        }
        Event::Failed { address, action, error } => {
            println!("{address}: {} failed", verb(*action).0.to_lowercase());
            if error.contains(address) {
                eprintln!("error: {error}");
            } else {
                eprintln!("error: {address}: {error}");
            }
        }
        Event::NotApplied { address, reason, .. } => println!("{address}: not applied: {reason}"),
    }
}

fn print_summary(r: &ApplyReport, elapsed: std::time::Duration, interrupted: bool) {
    let head = match (r.failed.is_empty(), interrupted) {
        (true, false) => "Apply complete!",
        (true, true) => "Apply interrupted.",
        (false, _) => "Apply failed.",
    };
    println!(
        "\n{head} Resources: {} created, {} updated, {} replaced, {} destroyed ({:.1}s).",
        r.count(Action::Create),
        r.count(Action::Update),
        r.count(Action::Replace),
        r.count(Action::Delete),
        elapsed.as_secs_f64()
    );
    if !r.failed.is_empty() {
        println!("{} failed: {}.", r.failed.len(), join(r.failed.iter().map(|(a, _)| a.as_str())));
    }
    if !r.not_applied.is_empty() {
        println!(
            "{} not applied (still planned): {}.",
            r.not_applied.len(),
            join(r.not_applied.iter().map(|(a, _)| a.as_str()))
        );
    }
    let outputs: Vec<_> = r.state.outputs.iter().collect();
    if !outputs.is_empty() {
        println!("\nOutputs:");
        for (name, o) in outputs {
            println!("  {name} = {}", super::output::shown(o));
        }
    }
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

/// Asks on the terminal (or reads standard input, as Terraform does); only "yes" approves.
pub(super) fn confirm(question: &str) -> Result<bool, String> {
    println!("{question}\n  Only 'yes' will be accepted to approve.\n");
    print!("  Enter a value: ");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    let mut line = String::new();
    let n = std::io::stdin().lock().read_line(&mut line).map_err(|e| format!("cannot read the answer: {e}"))?;
    if n == 0 && !std::io::stdin().is_terminal() {
        println!();
        return Err("no answer on standard input; run with --auto-approve to apply without asking".into());
    }
    println!();
    Ok(line.trim() == "yes")
}

impl Apply {
    pub fn run(self) -> Result<ExitCode, String> {
        let mut plan_file: Option<PathBuf> = None;
        let mut rest = Vec::new();
        for t in &self.targets {
            if Path::new(t).is_file() {
                if let Some(first) = &plan_file {
                    return Err(format!("two saved plans given ({} and {t}); give one", first.display()));
                }
                plan_file = Some(PathBuf::from(t));
            } else {
                rest.push(t.clone());
            }
        }
        let (config, addresses) = split_dir_and_addresses(&rest, &self.vars)?;
        if let Some(a) = addresses.first() {
            return Err(format!(
                "apply takes a directory or a saved plan, not an address ({a}); apply the whole configuration"
            ));
        }
        let saved = match &plan_file {
            Some(f) => Some((f.as_path(), read_saved(f)?)),
            None => None,
        };
        let Some((c, spec)) = config.compile_spec()? else { return Ok(ExitCode::from(1)) };
        let backend = &c.model.system.backend;
        let saved = match (&spec.system.target, saved) {
            (TargetConfig::Kubernetes { .. }, None) => {
                return super::kubernetes::apply(&config.dir, backend, &spec, self.exec.auto_approve)
            }
            (TargetConfig::Kubernetes { .. }, Some((f, Saved::Kubernetes(doc)))) => {
                return super::kubernetes::apply_saved(&config.dir, backend, &spec, f, &doc)
            }
            (TargetConfig::Kubernetes { .. }, Some((f, Saved::Local(_)))) => {
                return Err(format!(
                    "{} is a plan for the local target, but this configuration's target is kubernetes: \
                     make one for it with `mlops plan {}--out FILE`",
                    f.display(),
                    super::shown_dir(&config.dir)
                ))
            }
            (_, Some((f, Saved::Kubernetes(_)))) => {
                return Err(format!(
                    "{} is a plan for the kubernetes target, but this configuration's target is local: \
                     make one for it with `mlops plan {}--out FILE`",
                    f.display(),
                    super::shown_dir(&config.dir)
                ))
            }
            (_, Some((_, Saved::Local(p)))) => Some(p),
            (_, None) => None,
        };
        let session = Session::from_compiled(&config, &c, spec, "apply")?;
        let opts = self.exec.options();
        let (p, planned_from) = match saved {
            Some(p) => {
                p.check_current(&session.spec, session.current.as_ref()).map_err(|e| e.to_string())?;
                // The saved plan was reviewed; it is what runs. Its drift findings are re-read.
                let from = if self.refresh { session.refreshed()? } else { session.current.clone() };
                (p, from)
            }
            None => {
                let from = if self.refresh { session.refreshed()? } else { session.current.clone() };
                let p = plan(&session.spec, from.as_ref());
                print!("{}", render_text(&p));
                if !p.has_changes() {
                    return session.execute(&p, from, &opts).map(|_| ExitCode::SUCCESS);
                }
                if !self.exec.auto_approve && !confirm("\nDo you want to perform these actions?")? {
                    println!("Apply cancelled.");
                    return Ok(ExitCode::from(1));
                }
                (p, from)
            }
        };
        session.execute(&p, planned_from, &opts)
    }
}

/// A plan saved with `mlops plan --out FILE`, for either target.
enum Saved {
    Local(Plan),
    Kubernetes(manifests::PlanDocument),
}

fn read_saved(f: &Path) -> Result<Saved, String> {
    let text = std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
    let not_a_plan = |e: &dyn std::fmt::Display| format!("{} is not a saved plan: {e}", f.display());
    if manifests::is_kubernetes_plan(&text) {
        return manifests::PlanDocument::from_json(&text).map(Saved::Kubernetes).map_err(|e| not_a_plan(&e));
    }
    Plan::from_json(&text).map(Saved::Local).map_err(|e| not_a_plan(&e))
}

/// Destroy everything the state records (never the user's own data).
#[derive(Debug, Args)]
pub struct Destroy {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(flatten)]
    exec: Execution,
}

impl Destroy {
    pub fn run(self) -> Result<ExitCode, String> {
        let Some((c, spec)) = self.config.compile_spec()? else { return Ok(ExitCode::from(1)) };
        if let TargetConfig::Kubernetes { .. } = &spec.system.target {
            return super::kubernetes::destroy(
                &self.config.dir,
                &c.model.system.backend,
                &spec,
                self.exec.auto_approve,
            );
        }
        let session = Session::from_compiled(&self.config, &c, spec, "destroy")?;
        let p = plan_destroy(&session.spec, session.current.as_ref());
        print!("{}", render_text(&p));
        if !p.has_changes() {
            return Ok(ExitCode::SUCCESS);
        }
        if !self.exec.auto_approve && !confirm("\nDo you really want to destroy all resources? There is no undo.")? {
            println!("Destroy cancelled.");
            return Ok(ExitCode::from(1));
        }
        let current = session.current.clone();
        let opts = self.exec.options();
        session.execute(&p, current, &opts)
    }
}

/// Check the world for changes made outside mlops and record them in the state.
#[derive(Debug, Args)]
pub struct Refresh {
    #[command(flatten)]
    config: ConfigArgs,
}

impl Refresh {
    pub fn run(self) -> Result<ExitCode, String> {
        let Some((c, spec)) = self.config.compile_spec()? else { return Ok(ExitCode::from(1)) };
        if let TargetConfig::Kubernetes { .. } = &spec.system.target {
            println!("Nothing to refresh: for the kubernetes target, the manifest folder is the record (`mlops plan` compares it).");
            return Ok(ExitCode::SUCCESS);
        }
        let session = Session::from_compiled(&self.config, &c, spec, "refresh")?;
        let Some(mut s) = session.current.clone() else {
            println!("No state yet in {}: nothing to refresh.", session.backend.describe());
            return Ok(ExitCode::SUCCESS);
        };
        let adopted = apply::adopt(&mut s, session.target.as_ref()).map_err(|e| format!("refresh failed: {e}"))?;
        print_adopted(&adopted);
        let drift = apply::refresh(&s, session.target.as_ref()).map_err(|e| format!("refresh failed: {e}"))?;
        if drift.is_empty() && !adopted.is_empty() {
            s.serial += 1;
            session.backend.write(&session.lock, &s).map_err(|e| e.to_string())?;
            println!("Recorded {} change(s) the runtime made in the state; nothing else changed.", adopted.len());
            return Ok(ExitCode::SUCCESS);
        }
        if drift.is_empty() {
            println!(
                "No changes outside mlops: the world matches the state ({} resources checked).",
                s.resources.len()
            );
            return Ok(ExitCode::SUCCESS);
        }
        print_drift(&drift);
        apply::mark_drift(&mut s, &drift);
        s.serial += 1;
        session.backend.write(&session.lock, &s).map_err(|e| e.to_string())?;
        println!("Recorded {} change(s) in the state; `mlops plan` shows what apply will do about them.", drift.len());
        Ok(ExitCode::SUCCESS)
    }
}
