//! `mlops_system`: a whole directory of `*.mlops.hcl` files, with variables, managed as one
//! Terraform resource. In: the directory and variables (and the provider's settings). Out: the
//! resource's computed attributes, and the world changed through the same runtime functions
//! `mlops apply` / `destroy` / `refresh` call ([`mlops_runtime::apply`]).
//!
//! How Terraform's lifecycle maps onto mlops:
//! - **read** (refresh): compiles the directory, reads the mlops state, takes over what the
//!   runtime changed by design ([`apply::adopt`]: a retrained version a policy promoted), asks the
//!   target what changed outside mlops ([`apply::refresh`]) and records what an apply would do in `pending`;
//!   no mlops state at all means the system is gone, and Terraform plans to create it.
//! - **plan**: compiles (errors fail the plan, at `variables["x"]` when about a variable, else at
//!   `dir`), plans against the refreshed state with the pure planner, and shows the ML-aware
//!   change list as the planned `last_changes`; no change → the prior state, so a plan after an
//!   apply is empty. Resources of kinds the target cannot run are reported in `not_applied`,
//!   as `mlops apply` reports them (none on the local target, which runs every kind: monitors
//!   and retrain policies go to the serving agent's controller).
//! - **apply**: under the state lock: refresh, plan, [`apply::apply`]; failed resources are
//!   errors on the resource (what succeeded is recorded, in mlops state and Terraform's).
//! - **delete**: plans the destruction of everything the state records and applies it.
//! - **import**: the id is the directory, optionally with variables: `DIR?name=value&…`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mlops_compiler::codes;
use mlops_compiler::plan::{plan, plan_destroy, spec_hash, Action, Plan};
use mlops_compiler::spec::SystemSpec;
use mlops_compiler::state::State;
use mlops_compiler::value::Value;
use mlops_runtime::apply::{self, ApplyOptions, Event};
use mlops_runtime::state::{self as backends, StateBackend};
use mlops_runtime::targets::{self, Target, TargetOptions};

use crate::cty::{Ty, Val};
use crate::diag::{attr, Diag, Step};
use crate::settings::Settings;
use crate::tfschema::{TfAttr, TfBlock};

/// The resource type name.
pub const TYPE: &str = "mlops_system";

/// The schema of `mlops_system`.
pub fn schema() -> TfBlock {
    let strings = || Ty::list(Ty::String);
    TfBlock {
        attrs: vec![
            TfAttr::required(
                "dir",
                Ty::String,
                "Directory of the `*.mlops.hcl` files, relative to Terraform's working directory.",
            ),
            TfAttr::optional(
                "variables",
                Ty::map(Ty::String),
                "Values of the configuration's root variables, as `mlops --var name=VALUE` takes them: each value \
                 is read as an HCL literal (`\"20\"` is the number 20, `\"[1, 2]\"` a list), else as a string.",
            ),
            TfAttr::optional("parallelism", Ty::Number, "Resources applied at once, at most. Default: 4."),
            TfAttr::computed("id", Ty::String, "The system's name (`mlops { name }`)."),
            TfAttr::computed("name", Ty::String, "The system's name (`mlops { name }`)."),
            TfAttr::computed(
                "spec_hash",
                Ty::String,
                "SHA-256 of the compiled SystemSpec the world matches: changes when the configuration does.",
            ),
            TfAttr::computed(
                "last_changes",
                strings(),
                "The ML-aware plan of the last apply, one line per changed resource: `replace \
                 training_job.fraud: max_depth 6 → 8`.",
            ),
            TfAttr::computed(
                "pending",
                strings(),
                "What refresh found an apply would do (changes made outside Terraform); empty when converged.",
            ),
            TfAttr::computed(
                "resources",
                Ty::map(Ty::String),
                "Applied resources: address → hash of the configuration they were applied from.",
            ),
            TfAttr::computed(
                "not_applied",
                Ty::map(Ty::String),
                "Configured resources the target does not run yet, with why (as `mlops apply` reports them).",
            ),
            TfAttr::computed("models", Ty::map(Ty::Number), "Training job address → model version in production."),
            TfAttr::computed(
                "metrics",
                Ty::map(Ty::map(Ty::Number)),
                "Training job address → holdout metrics of the production version.",
            ),
            TfAttr::computed("endpoints", Ty::map(Ty::String), "Endpoint address → URL."),
            TfAttr::computed(
                "outputs",
                Ty::map(Ty::String),
                "Root outputs of the configuration (strings as they are, other values as JSON).",
            ),
        ],
        blocks: Vec::new(),
        description: "A whole mlops configuration (a directory of `*.mlops.hcl` files with variables), planned \
            and applied as one resource by the same runtime as `mlops apply`."
            .into(),
    }
}

/// Where a system is and how it is run.
#[derive(Debug, Clone)]
pub struct Input {
    /// The configuration directory.
    pub dir: PathBuf,
    /// Root variables, raw.
    pub variables: BTreeMap<String, String>,
    /// Apply parallelism.
    pub parallelism: usize,
}

impl Input {
    /// From a resource value; `None` when the directory or a variable is not known yet.
    pub fn from_val(v: &Val) -> Option<Input> {
        if v.get("dir").is_unknown() || v.get("variables").is_unknown() {
            return None;
        }
        let dir = PathBuf::from(v.get("dir").as_str()?);
        let variables = v
            .get("variables")
            .entries()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect())
            .unwrap_or_default();
        let parallelism = v.get("parallelism").as_f64().map_or(4, |n| n.max(1.0) as usize);
        Some(Input { dir, variables, parallelism })
    }

    /// From an import id: `DIR` or `DIR?name=value&name=value`.
    pub fn from_import_id(id: &str) -> Input {
        let (dir, query) = id.split_once('?').unwrap_or((id, ""));
        let variables = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_string(), v.to_string())
            })
            .collect();
        Input { dir: PathBuf::from(dir), variables, parallelism: 4 }
    }

    fn variables_val(&self) -> Val {
        if self.variables.is_empty() {
            return Val::Null;
        }
        Val::Map(self.variables.iter().map(|(k, v)| (k.clone(), Val::str(v.clone()))).collect())
    }
}

/// A compiled system with its state backend and target.
pub struct System {
    /// The spec, with the provider's backend and target settings applied.
    pub spec: SystemSpec,
    /// Its state.
    pub backend: Box<dyn StateBackend>,
    /// Where it runs.
    pub target: Box<dyn Target>,
}

/// Compiles `input`'s directory: the spec, or the compiler's diagnostics for Terraform.
pub fn compile(input: &Input, settings: &Settings) -> Result<(SystemSpec, Vec<Diag>), Vec<Diag>> {
    let vars = input.variables.iter().map(|(k, v)| (k.clone(), Value::parse_literal(v))).collect();
    let options = mlops_compiler::Options { vars, display_base: Some(input.dir.clone()), kubernetes: None };
    if !input.dir.is_dir() {
        return Err(vec![Diag::error(format!("{} is not a directory", input.dir.display()))
            .detail("`dir` names the directory of the system's *.mlops.hcl files.")
            .at(attr("dir"))]);
    }
    let c = mlops_compiler::compile(&input.dir, &options);
    let diags: Vec<Diag> =
        c.diagnostics.iter().map(|d| Diag::from_compiler(d, &c.sources, diag_path(d, input), true)).collect();
    match c.spec {
        Some(mut spec) => {
            if let Some(b) = &settings.backend {
                spec.system.backend = b.clone();
            }
            if let Some(t) = &settings.target {
                spec.system.target = t.clone();
            }
            Ok((spec, diags))
        }
        None => Err(diags),
    }
}

/// Where a compiler diagnostic about a directory belongs: at the variable it is about when that
/// variable is set here, else at `dir`.
fn diag_path(d: &mlops_compiler::diagnostic::Diagnostic, input: &Input) -> Vec<Step> {
    let about_variable =
        [codes::VARIABLE_VALIDATION, codes::MISSING_VARIABLE].contains(&d.code) || d.message.contains("variable `");
    if about_variable {
        for name in input.variables.keys() {
            if d.message.contains(&format!("`{name}`")) {
                return vec![Step::Attr("variables".into()), Step::Key(name.clone())];
            }
        }
        if d.code == codes::MISSING_VARIABLE {
            return attr("variables");
        }
    }
    attr("dir")
}

impl System {
    /// Compiles and opens the backend and target.
    pub fn open(input: &Input, settings: &Settings) -> Result<(System, Vec<Diag>), Vec<Diag>> {
        let (spec, warnings) = compile(input, settings)?;
        let backend = backends::open(&input.dir, &spec.system.backend)
            .map_err(|e| vec![Diag::error(format!("state backend: {e}"))])?;
        let options = TargetOptions { mlops_exe: std::env::current_exe().ok() };
        let target = targets::open(&input.dir, &spec, options).map_err(|e| vec![Diag::error(e.to_string())])?;
        Ok((System { spec, backend, target }, warnings))
    }

    /// The state as `mlops apply` refreshes it: what the runtime changed by design taken over
    /// ([`apply::adopt`]: a version a retrain policy promoted), then refresh's findings marked.
    fn refreshed(&self, state: Option<State>) -> Result<Option<State>, Vec<Diag>> {
        let Some(mut s) = state else { return Ok(None) };
        apply::adopt(&mut s, self.target.as_ref()).map_err(|e| vec![Diag::error(format!("refresh failed: {e}"))])?;
        let drift =
            apply::refresh(&s, self.target.as_ref()).map_err(|e| vec![Diag::error(format!("refresh failed: {e}"))])?;
        apply::mark_drift(&mut s, &drift);
        Ok(Some(s))
    }

    /// What an apply would change, as lines, and what the target leaves alone.
    fn changes(&self, p: &Plan, state: Option<&State>) -> (Vec<String>, BTreeMap<String, String>) {
        let mut lines = Vec::new();
        let mut not_applied = BTreeMap::new();
        for c in p.changes.iter().filter(|c| c.action != Action::NoOp) {
            if let Err(why) = self.target.supports(&c.kind) {
                not_applied.insert(c.address.clone(), why);
                continue;
            }
            lines.push(change_line(c));
        }
        if let Some(s) = state {
            let outputs = apply::outputs(&self.spec, s);
            let changed: Vec<&String> = outputs
                .iter()
                .filter(|(k, o)| s.outputs.get(*k) != Some(o))
                .map(|(k, _)| k)
                .chain(s.outputs.keys().filter(|k| !outputs.contains_key(*k)))
                .collect();
            if !changed.is_empty() && lines.is_empty() {
                let names: Vec<&str> = changed.iter().map(|s| s.as_str()).collect();
                lines.push(format!("update outputs: {}", names.join(", ")));
            }
        }
        (lines, not_applied)
    }
}

/// One line of the ML-aware plan: `replace training_job.fraud: max_depth 6 → 8`.
pub fn change_line(c: &mlops_compiler::plan::ResourceChange) -> String {
    let verb = match c.action {
        Action::Create => "create",
        Action::Update => "update",
        Action::Replace => "replace",
        Action::Delete => "destroy",
        Action::NoOp => "keep",
    };
    if c.reasons.is_empty() {
        format!("{verb} {}", c.address)
    } else {
        format!("{verb} {}: {}", c.address, c.reasons.join("; "))
    }
}

fn strings(items: &[String]) -> Val {
    Val::List(items.iter().map(|s| Val::str(s.clone())).collect())
}

fn string_map(m: &BTreeMap<String, String>) -> Val {
    Val::Map(m.iter().map(|(k, v)| (k.clone(), Val::str(v.clone()))).collect())
}

/// Sets the attributes that come from the mlops state (models, endpoints, outputs …).
fn fill_from_state(v: &mut Val, state: Option<&State>) {
    let mut resources = BTreeMap::new();
    let mut models = BTreeMap::new();
    let mut metrics = BTreeMap::new();
    let mut endpoints = BTreeMap::new();
    let mut outputs = BTreeMap::new();
    if let Some(s) = state {
        for (address, r) in &s.resources {
            resources.insert(address.clone(), Val::str(r.spec.hash.clone()));
            if let Some(n) = r.produced.get("version").and_then(|v| v.as_f64()) {
                if r.spec.config.kind() == "training_job" {
                    models.insert(address.clone(), Val::num(n));
                    if let Some(m) = r.produced.get("metrics").and_then(|m| m.as_object()) {
                        let m = m.iter().filter_map(|(k, v)| Some((k.clone(), Val::num(v.as_f64()?)))).collect();
                        metrics.insert(address.clone(), Val::Map(m));
                    }
                }
            }
            if let Some(u) = r.produced.get("url").and_then(|v| v.as_str()) {
                endpoints.insert(address.clone(), Val::str(u));
            }
        }
        for (name, o) in &s.outputs {
            let text = match &o.value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            outputs.insert(name.clone(), Val::str(text));
        }
    }
    v.set("resources", Val::Map(resources));
    v.set("models", Val::Map(models));
    v.set("metrics", Val::Map(metrics));
    v.set("endpoints", Val::Map(endpoints));
    v.set("outputs", Val::Map(outputs));
}

const FROM_STATE: [&str; 5] = ["resources", "models", "metrics", "endpoints", "outputs"];

/// Refresh: the resource as the world has it now; `None` when the system is gone.
pub fn read(prior: &Val, settings: &Settings) -> (Option<Val>, Vec<Diag>) {
    let Some(input) = Input::from_val(prior) else { return (Some(prior.clone()), Vec::new()) };
    let (sys, _) = match System::open(&input, settings) {
        Ok(s) => s,
        Err(diags) => {
            // A configuration that no longer compiles is the plan's to report, with its paths.
            let why = diags.first().map(|d| d.summary.clone()).unwrap_or_default();
            return (Some(prior.clone()), vec![Diag::warning("mlops_system could not be refreshed").detail(why)]);
        }
    };
    let state = match sys.backend.read() {
        Ok(s) => s,
        Err(e) => return (Some(prior.clone()), vec![Diag::error(format!("cannot read the mlops state: {e}"))]),
    };
    let Some(state) = state.filter(|s| !s.resources.is_empty()) else { return (None, Vec::new()) };
    let refreshed = match sys.refreshed(Some(state.clone())) {
        Ok(s) => s,
        Err(d) => return (Some(prior.clone()), d),
    };
    let p = plan(&sys.spec, refreshed.as_ref());
    let (pending, not_applied) = sys.changes(&p, refreshed.as_ref());
    let mut v = prior.clone();
    let name = Val::str(sys.spec.system.name.clone());
    v.set("id", name.clone());
    v.set("name", name);
    if v.get("variables").is_null() || v.get("variables").entries().is_some_and(|m| m.is_empty()) {
        v.set("variables", input.variables_val());
    }
    if pending.is_empty() {
        // The world matches this configuration (also right after an import).
        v.set("spec_hash", Val::str(spec_hash(&sys.spec)));
    }
    v.set("pending", strings(&pending));
    v.set("not_applied", string_map(&not_applied));
    if v.get("last_changes").is_null() {
        v.set("last_changes", Val::List(Vec::new()));
    }
    fill_from_state(&mut v, Some(&state));
    (Some(v), Vec::new())
}

/// Plan: the planned new value (with the ML-aware change list), or the compiler's diagnostics.
pub fn plan_change(prior: &Val, proposed: &Val, settings: &Settings) -> (Val, Vec<Diag>) {
    let mut planned = proposed.clone();
    let Some(input) = Input::from_val(proposed) else {
        for name in ["id", "name", "spec_hash", "last_changes", "pending", "not_applied"].into_iter().chain(FROM_STATE)
        {
            planned.set(name, Val::Unknown);
        }
        return (planned, Vec::new());
    };
    let (sys, warnings) = match System::open(&input, settings) {
        Ok(s) => s,
        Err(diags) => return (planned, diags),
    };
    let state = match sys.backend.read().map_err(|e| vec![Diag::error(format!("cannot read the mlops state: {e}"))]) {
        Ok(s) => s,
        Err(d) => return (planned, d),
    };
    let refreshed = match sys.refreshed(state) {
        Ok(s) => s,
        Err(d) => return (planned, d),
    };
    let p = plan(&sys.spec, refreshed.as_ref());
    let (lines, not_applied) = sys.changes(&p, refreshed.as_ref());
    let hash = spec_hash(&sys.spec);
    let name = Val::str(sys.spec.system.name.clone());
    planned.set("id", name.clone());
    planned.set("name", name);
    planned.set("spec_hash", Val::str(hash.clone()));
    planned.set("not_applied", string_map(&not_applied));
    planned.set("pending", Val::List(Vec::new()));
    let creating = prior.is_null();
    let unchanged = !creating && lines.is_empty() && prior.get("spec_hash").as_str() == Some(hash.as_str());
    if unchanged {
        for name in std::iter::once("last_changes").chain(FROM_STATE) {
            planned.set(name, prior.get(name).clone());
        }
    } else {
        planned.set("last_changes", strings(&lines));
        for name in FROM_STATE {
            planned.set(name, if lines.is_empty() && !creating { prior.get(name).clone() } else { Val::Unknown });
        }
        if lines.is_empty() && !creating {
            // Only the configuration's hash moved (say, an output was added): outputs may change.
            planned.set("outputs", Val::Unknown);
        }
    }
    (planned, warnings)
}

/// Apply (create or update): the new value, with errors for what failed.
pub fn apply_change(planned: &Val, settings: &Settings) -> (Val, Vec<Diag>) {
    let mut v = planned.clone();
    let Some(input) = Input::from_val(planned) else {
        return (v, vec![Diag::error("mlops_system: `dir` or `variables` is still unknown at apply")]);
    };
    let (sys, mut diags) = match System::open(&input, settings) {
        Ok(s) => s,
        Err(d) => return (v, d),
    };
    diags.retain(|d| d.error);
    let lock = match sys.backend.lock("terraform apply") {
        Ok(l) => l,
        Err(e) => return (v, vec![Diag::error(format!("cannot take the state lock: {e}"))]),
    };
    let result = (|| {
        let state = sys.backend.read().map_err(|e| vec![Diag::error(format!("cannot read the mlops state: {e}"))])?;
        let refreshed = sys.refreshed(state)?;
        let p = plan(&sys.spec, refreshed.as_ref());
        let mut failures = Vec::new();
        let mut not_applied = Vec::new();
        let mut on_event = |e: Event| match e {
            Event::Failed { address, error, .. } => failures.push((address.to_string(), error.to_string())),
            Event::NotApplied { address, reason, .. } => not_applied.push((address.to_string(), reason.to_string())),
            _ => {}
        };
        let opts = ApplyOptions { parallelism: input.parallelism, cancel: None };
        let report = apply::apply(
            &p,
            &sys.spec,
            refreshed,
            sys.backend.as_ref(),
            &lock,
            sys.target.as_ref(),
            &opts,
            &mut on_event,
        )
        .map_err(|e| vec![Diag::error(format!("apply stopped: {e}"))])?;
        Ok::<_, Vec<Diag>>((report.state, failures, not_applied))
    })();
    let _ = lock.release();
    let (state, failures, not_applied) = match result {
        Ok(r) => r,
        Err(d) => return (v, d),
    };
    for (address, error) in &failures {
        diags.push(
            Diag::error(format!("{address}: {error}"))
                .detail("The resources applied before it are recorded; fix the cause and apply again."),
        );
    }
    let supported_not_applied: Vec<&(String, String)> = not_applied
        .iter()
        .filter(|(a, _)| sys.spec.resource(a).is_some_and(|r| sys.target.supports(r.config.kind()).is_ok()))
        .collect();
    for (address, reason) in supported_not_applied {
        diags.push(Diag::error(format!("{address} was not applied: {reason}")));
    }
    fill_from_state(&mut v, Some(&state));
    if diags.iter().any(|d| d.error) {
        let p = plan(&sys.spec, Some(&state));
        let (pending, _) = sys.changes(&p, Some(&state));
        v.set("pending", strings(&pending));
    }
    (v, diags)
}

/// Delete: destroys everything the mlops state records (never the user's data).
pub fn destroy(prior: &Val, settings: &Settings) -> Vec<Diag> {
    let Some(input) = Input::from_val(prior) else { return Vec::new() };
    let (sys, _) = match System::open(&input, settings) {
        Ok(s) => s,
        Err(d) => return d,
    };
    let lock = match sys.backend.lock("terraform destroy") {
        Ok(l) => l,
        Err(e) => return vec![Diag::error(format!("cannot take the state lock: {e}"))],
    };
    let result = (|| {
        let state = sys.backend.read().map_err(|e| vec![Diag::error(format!("cannot read the mlops state: {e}"))])?;
        let p = plan_destroy(&sys.spec, state.as_ref());
        let mut failures = Vec::new();
        let mut on_event = |e: Event| {
            if let Event::Failed { address, error, .. } = e {
                failures.push(Diag::error(format!("{address}: {error}")));
            }
        };
        apply::apply(
            &p,
            &sys.spec,
            state,
            sys.backend.as_ref(),
            &lock,
            sys.target.as_ref(),
            &ApplyOptions { parallelism: input.parallelism, cancel: None },
            &mut on_event,
        )
        .map_err(|e| vec![Diag::error(format!("destroy stopped: {e}"))])?;
        Ok::<_, Vec<Diag>>(failures)
    })();
    let _ = lock.release();
    result.unwrap_or_else(|d| d)
}

/// Import: the value Terraform reads afterwards.
pub fn import(id: &str) -> Val {
    let input = Input::from_import_id(id);
    let mut v = Val::Map(schema().attrs.iter().map(|a| (a.name.clone(), Val::Null)).collect());
    v.set("dir", Val::str(input.dir.display().to_string()));
    v.set("variables", input.variables_val());
    v.set("id", Val::str(id));
    v
}
