//! The per-kind resources (`mlops_source`, `mlops_entity`, `mlops_feature_view`,
//! `mlops_training_job`, `mlops_endpoint`, `mlops_monitor`, `mlops_retrain_policy`): one mlops
//! block each. In: a resource's Terraform value (shaped by the schema derived from the
//! language), the provider's settings and what this provider process has seen of the run. Out:
//! planned and new values, diagnostics at attribute paths, and the world changed through the
//! same planner and runtime as `mlops apply`.
//!
//! # One system, many resources
//!
//! All per-kind resources of one provider configuration form one mlops system, kept in the
//! provider's `dir` as an ordinary mlops configuration: `mlops.mlops.hcl` (the provider block's
//! settings) and one `KIND.NAME.mlops.hcl` per applied resource, written by the provider after
//! each successful apply; the mlops state (and the data: stores, models, the serving agent)
//! lives under it. References between resources are attributes holding the other resource's
//! mlops address (`source = mlops_source.transactions.address`), so Terraform orders them.
//!
//! A resource is compiled together with the blocks it references, transitively — its own block
//! rendered from its Terraform value ([`hclgen`]), the others from what this provider process
//! planned in this run (Terraform plans dependencies first, in the same process), else from the
//! files of `dir`. Diagnostics in its own block arrive at the attribute they are about (hclgen's
//! span map); anything wrong elsewhere is an error on the resource naming the file.
//!
//! # Plan and apply
//!
//! The pure planner plans that compiled closure against the mlops state restricted to it, and
//! the change at the resource's address is the resource's plan: its ML-aware line becomes
//! `last_change`, what apply recomputes becomes unknown. Upstream changes reach the resource as
//! they do in `mlops apply` (a source change rematerialises a view, a retrained job is rolled
//! out by its endpoints), although Terraform applies the upstream resource first: the planner is
//! shown each dependency as the resource last saw it — the dependency specs recorded (in
//! Terraform's private state) when it was last applied, and for dependencies applied earlier in
//! this run, the drift they were applied to repair. Apply takes the mlops state lock, plans the
//! same way and runs [`apply::apply`] with that one change.
//!
//! A change that means a new model replaces the `mlops_training_job` (Terraform's
//! `RequiresReplace`, from the language's replace flags, or forced through `version` when the
//! planner retrains for another reason). Terraform's delete half of a replacement is not an
//! mlops deletion — the create half's plan is mlops' Replace, which trains the next version over
//! the one in production — so the planned private state marks it and delete leaves mlops alone.
//!
//! # Refresh and import
//!
//! Read takes over what the runtime changed by design ([`Target::adopt`]), asks the target
//! whether the resource still matches the world (the reason goes to `pending`, and the next plan
//! re-applies it) and reports a resource the mlops state no longer has as gone. Import takes the
//! address (`training_job.fraud`) and reads the block back from the files of `dir`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mlops_compiler::codes;
use mlops_compiler::plan::{plan, plan_destroy, Action, Plan, ResourceChange};
use mlops_compiler::schema::{self as lang, BlockSchema};
use mlops_compiler::spec::{ResourceSpec, SystemSpec};
use mlops_compiler::state::{Drifted, ResourceState, State};
use mlops_runtime::apply::{self, ApplyOptions, Event};
use mlops_runtime::state::{self as backends, StateBackend};
use mlops_runtime::targets::{self, Target, TargetOptions};
use serde_json::json;

use crate::cty::Val;
use crate::diag::{Diag, Step};
use crate::hclgen::{self, Rendered};
use crate::hclparse;
use crate::settings::{scratch_dir, Settings};
use crate::system::change_line;
use crate::tfschema::{self, TfBlock};

/// The Terraform type name of a kind: `mlops_training_job`.
pub fn type_name(kind: &str) -> String {
    format!("mlops_{kind}")
}

/// The kind of a per-kind type name.
pub fn kind_of(type_name: &str) -> Option<&'static str> {
    let kind = type_name.strip_prefix("mlops_")?;
    tfschema::kinds().into_iter().find(|k| *k == kind)
}

/// Every per-kind resource type: type name → schema.
pub fn schemas() -> BTreeMap<String, TfBlock> {
    tfschema::kinds().into_iter().filter_map(|k| Some((type_name(k), tfschema::kind_resource(k)?))).collect()
}

/// What one provider process (one Terraform run, for one provider configuration) has seen.
#[derive(Debug, Default)]
pub struct Context {
    /// Blocks planned in this run, by address: what dependents compile against before the
    /// dependency is applied.
    planned: Mutex<HashMap<String, String>>,
    /// Resources applied in this run: what the state recorded before (`None`: not there).
    applied: Mutex<HashMap<String, Option<ResourceState>>>,
    /// Refresh findings of this run, by address (each resource is asked once).
    refreshed: Mutex<HashMap<String, Option<Drifted>>>,
    /// Applies run one at a time: they share one mlops state and its lock.
    applying: Mutex<()>,
}

/// What a plan answers.
pub struct Planned {
    /// The planned value.
    pub value: Val,
    /// Attribute paths whose change replaces the resource.
    pub requires_replace: Vec<Vec<Step>>,
    /// Private state for apply.
    pub private: Vec<u8>,
    /// Errors and warnings.
    pub diags: Vec<Diag>,
}

/// What the provider keeps in Terraform's private state of a resource.
#[derive(Debug, Default)]
struct Private {
    /// The specs of the resource's dependencies when it was last applied.
    seen: BTreeMap<String, ResourceSpec>,
    /// Set in a plan that replaces the resource: the address the create half applies.
    replacing: Option<String>,
}

impl Private {
    fn decode(bytes: &[u8]) -> Private {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) else { return Private::default() };
        let seen = v["seen"]
            .as_object()
            .map(|m| m.iter().filter_map(|(k, s)| Some((k.clone(), serde_json::from_value(s.clone()).ok()?))).collect())
            .unwrap_or_default();
        Private { seen, replacing: v["replacing"].as_str().map(str::to_string) }
    }

    fn encode(&self) -> Vec<u8> {
        let mut v = json!({ "seen": self.seen });
        if let Some(r) = &self.replacing {
            v["replacing"] = json!(r);
        }
        serde_json::to_vec(&v).unwrap_or_default()
    }
}

fn schema_of(kind: &str) -> &'static BlockSchema {
    lang::top_level(kind).expect("per-kind resources exist for the language's resource kinds")
}

/// The resource's mlops address, when its name is known.
fn address_of(kind: &str, v: &Val) -> Option<String> {
    v.get("name").as_str().map(|n| format!("{kind}.{n}"))
}

/// The system the per-kind resources form: the provider's directory and settings.
struct Sys {
    dir: PathBuf,
    settings: Settings,
}

/// The system's state backend and target.
type Opened = (Box<dyn StateBackend>, Box<dyn Target>);

/// A block compiled with what it references.
struct Compiled {
    spec: SystemSpec,
    /// The addresses of its dependencies found (transitively), without its own.
    deps: Vec<String>,
    warnings: Vec<Diag>,
}

impl Sys {
    fn new(settings: &Settings) -> Result<Sys, Vec<Diag>> {
        let Some(dir) = settings.dir.clone() else {
            return Err(vec![Diag::error("the provider block does not set `dir`").detail(
                "The per-kind resources form one mlops system kept in the provider's `dir` (its generated \
                 files, state and data): set `dir = \"${path.module}/system\"` in `provider \"mlops\" { }`.",
            )]);
        };
        if settings.system.is_none() {
            return Err(vec![Diag::error("the provider is not configured yet")]);
        }
        Ok(Sys { dir, settings: settings.clone() })
    }

    /// The file the provider writes a block to.
    fn own_file(&self, address: &str) -> PathBuf {
        self.dir.join(format!("{address}{}", mlops_compiler::parse::EXTENSION))
    }

    /// Every resource block of the directory's files: address → (file, text); a block the
    /// provider wrote wins over a copy written by hand elsewhere.
    fn disk_blocks(&self) -> HashMap<String, (PathBuf, String)> {
        let mut out: HashMap<String, (PathBuf, String)> = HashMap::new();
        for (file, b) in self.all_disk_blocks() {
            let own = file == self.own_file(&b.address);
            match out.get(&b.address) {
                Some((f, _)) if *f == self.own_file(&b.address) || !own => {}
                _ => {
                    out.insert(b.address, (file, b.text));
                }
            }
        }
        out
    }

    /// Every resource block of the directory's files, with its file.
    fn all_disk_blocks(&self) -> Vec<(PathBuf, hclparse::FoundBlock)> {
        let Ok(files) = mlops_compiler::parse::config_files(&self.dir) else { return Vec::new() };
        files
            .into_iter()
            .filter_map(|f| Some((std::fs::read_to_string(&f).ok()?, f)))
            .flat_map(|(text, f)| hclparse::resource_blocks(&text).into_iter().map(move |b| (f.clone(), b)))
            .collect()
    }

    /// A spec with no resources, for opening the backend and the target.
    fn bare_spec(&self) -> SystemSpec {
        SystemSpec {
            format_version: mlops_compiler::spec::FORMAT_VERSION,
            system: self.settings.system.clone().expect("checked in Sys::new"),
            resources: Vec::new(),
            outputs: BTreeMap::new(),
        }
    }

    fn open(&self, spec: &SystemSpec) -> Result<Opened, Vec<Diag>> {
        let backend = backends::open(&self.dir, &spec.system.backend)
            .map_err(|e| vec![Diag::error(format!("state backend: {e}"))])?;
        let options = TargetOptions { mlops_exe: std::env::current_exe().ok() };
        let target = targets::open(&self.dir, spec, options).map_err(|e| vec![Diag::error(e.to_string())])?;
        Ok((backend, target))
    }

    /// Compiles `rendered` (the block at `address`) with the blocks it references, found in
    /// this run's plans, else in the directory.
    fn compile(&self, address: &str, rendered: &Rendered, ctx: &Context) -> Result<Compiled, Vec<Diag>> {
        let disk = self.disk_blocks();
        let planned = ctx.planned.lock().map(|p| p.clone()).unwrap_or_default();
        let find = |a: &str| planned.get(a).cloned().or_else(|| disk.get(a).map(|(_, t)| t.clone()));
        let close = |queue: &mut Vec<String>, blocks: &mut BTreeMap<String, String>, missing: &mut BTreeSet<String>| {
            while let Some(dep) = queue.pop() {
                if blocks.contains_key(&dep) {
                    continue;
                }
                let Some(text) = find(&dep) else {
                    missing.insert(dep);
                    continue;
                };
                queue.extend(hclparse::references(&text));
                blocks.insert(dep, text);
            }
        };
        let mut blocks: BTreeMap<String, String> = BTreeMap::from([(address.to_string(), rendered.text.clone())]);
        let mut missing = BTreeSet::new();
        let mut queue: Vec<String> = hclparse::references(&rendered.text).into_iter().collect();
        close(&mut queue, &mut blocks, &mut missing);
        let deps: Vec<String> = blocks.keys().filter(|a| *a != address).cloned().collect();
        // A reference to a block nobody planned or applied fails; the compiler's "did you mean"
        // needs the blocks of that kind there are, so they are compiled too (their own errors
        // are not this resource's).
        let candidates = !missing.is_empty();
        if candidates {
            let kinds: BTreeSet<&str> = missing.iter().filter_map(|m| m.split('.').next()).collect();
            queue.extend(
                planned
                    .keys()
                    .chain(disk.keys())
                    .filter(|a| a.split('.').next().is_some_and(|k| kinds.contains(k)))
                    .cloned(),
            );
            close(&mut queue, &mut blocks, &mut BTreeSet::new());
        }
        let scratch = scratch_dir("plan")?;
        let own = format!("{address}{}", mlops_compiler::parse::EXTENSION);
        let result = (|| {
            let write = |name: &str, text: &str| {
                std::fs::write(scratch.join(name), text)
                    .map_err(|e| vec![Diag::error(format!("cannot write a scratch file: {e}"))])
            };
            write("mlops.mlops.hcl", &self.settings.mlops_block)?;
            for (a, text) in &blocks {
                write(&format!("{a}{}", mlops_compiler::parse::EXTENSION), text)?;
            }
            let options = mlops_compiler::Options {
                vars: Default::default(),
                display_base: Some(scratch.clone()),
                kubernetes: None,
            };
            let c = mlops_compiler::compile(&scratch, &options);
            let mut errors = Vec::new();
            let mut warnings = Vec::new();
            for d in c.diagnostics.iter() {
                let file = c.sources.get(d.primary.span.file);
                let mine = file.path.file_name().and_then(|n| n.to_str()) == Some(own.as_str());
                let diag = if mine {
                    let mut diag = Diag::from_compiler(d, &c.sources, rendered.path_at(d.primary.span.start), false);
                    diag.detail = if diag.detail.is_empty() {
                        d.code.to_string()
                    } else {
                        format!("{}\n\n{}", diag.detail, d.code)
                    };
                    diag
                } else {
                    let about = file.name.trim_end_matches(mlops_compiler::parse::EXTENSION).to_string();
                    let mut diag = Diag::from_compiler(d, &c.sources, Vec::new(), true);
                    diag.summary = format!("{about}: {}", diag.summary);
                    diag
                };
                if d.is_error() && (mine || !candidates) {
                    errors.push(diag);
                } else if mine && !d.is_error() && d.code != codes::UNMONITORED_ENDPOINT {
                    // (Whether a monitor watches an endpoint is a question about the whole
                    // system; monitors are planned after the endpoint they watch.)
                    warnings.push(diag);
                }
            }
            match c.spec {
                Some(spec) if errors.is_empty() => Ok(Compiled { spec, deps, warnings }),
                _ if errors.is_empty() => Err(vec![Diag::error("the configuration does not compile")]),
                _ => Err(errors),
            }
        })();
        let _ = std::fs::remove_dir_all(&scratch);
        result
    }

    /// Where the plan of the resource at `address` is kept for the apply of the same run.
    fn record_path(&self, address: &str) -> PathBuf {
        self.dir.join(".mlops-terraform").join("plans").join(format!("{address}.json"))
    }

    /// Keeps a plan's answer: Terraform plans each resource again just before applying it,
    /// when what this plan was based on may have moved (a dependency applied, the drift it
    /// repaired gone), and the known values it planned must not change.
    fn save_record(&self, address: &str, prior: &Val, proposed: &Val, planned: &Planned, block: &TfBlock) {
        let steps = |p: &Vec<Step>| {
            p.iter()
                .filter_map(|s| match s {
                    Step::Attr(a) => Some(a.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let record = json!({
            "prior": object_hash(prior),
            "proposed": object_hash(proposed),
            "replacing": Private::decode(&planned.private).replacing.is_some(),
            "requires_replace": planned.requires_replace.iter().map(steps).collect::<Vec<_>>(),
            "private": String::from_utf8_lossy(&planned.private),
            "planned": hex(&crate::cty::encode(&block.ty(), &planned.value)),
        });
        let path = self.record_path(address);
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let _ = std::fs::write(path, record.to_string());
    }

    fn read_record(&self, address: &str) -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(self.record_path(address)).ok()?).ok()
    }

    /// The plan kept for this prior object and proposed value — also for the create half of a
    /// replacement, planned again without its prior.
    fn load_record(&self, address: &str, prior: &Val, proposed: &Val, block: &TfBlock) -> Option<Planned> {
        let r = self.read_record(address)?;
        let same_prior = r["prior"].as_str() == Some(object_hash(prior).as_str())
            || (prior.is_null() && r["replacing"].as_bool() == Some(true));
        if !same_prior || r["proposed"].as_str() != Some(object_hash(proposed).as_str()) {
            return None;
        }
        let value = crate::cty::decode(&block.ty(), &unhex(r["planned"].as_str()?)?).ok()?;
        let requires_replace = r["requires_replace"]
            .as_array()?
            .iter()
            .map(|p| {
                p.as_array()
                    .map(|s| s.iter().filter_map(|a| Some(Step::Attr(a.as_str()?.to_string()))).collect())
                    .unwrap_or_default()
            })
            .collect();
        let private = r["private"].as_str().unwrap_or_default().as_bytes().to_vec();
        Some(Planned { value, requires_replace, private, diags: Vec::new() })
    }

    fn clear_record(&self, address: &str) {
        let _ = std::fs::remove_file(self.record_path(address));
    }

    /// Did the plan of this run replace `object` (so its delete is the delete half)?
    fn replaces(&self, address: &str, object: &Val) -> bool {
        self.read_record(address).is_some_and(|r| {
            r["replacing"].as_bool() == Some(true) && r["prior"].as_str() == Some(object_hash(object).as_str())
        })
    }

    /// Writes a file of the directory atomically.
    fn write(&self, path: &Path, text: &str) -> Result<(), Diag> {
        let tmp = path.with_extension("tmp");
        std::fs::create_dir_all(&self.dir)
            .and_then(|_| std::fs::write(&tmp, text))
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| Diag::error(format!("cannot write {}: {e}", path.display())))
    }
}

impl Context {
    /// Refresh's finding for a resource, asked once per run.
    fn drift(&self, address: &str, state: &State, target: &dyn Target) -> Result<Option<Drifted>, Vec<Diag>> {
        if let Some(d) = self.refreshed.lock().ok().and_then(|m| m.get(address).cloned()) {
            return Ok(d);
        }
        let Some(r) = state.resources.get(address) else { return Ok(None) };
        if target.supports(r.spec.config.kind()).is_err() {
            return Ok(None);
        }
        let d = target
            .refresh(address, r, &state.resources)
            .map_err(|e| vec![Diag::error(format!("refresh of {address} failed: {e}"))])?;
        if let Ok(mut m) = self.refreshed.lock() {
            m.insert(address.to_string(), d.clone());
        }
        Ok(d)
    }

    fn forget_drift(&self, address: &str) {
        if let Ok(mut m) = self.refreshed.lock() {
            m.remove(address);
        }
    }
}

/// The state the resource at `address` is planned against: the mlops state restricted to it and
/// its dependencies (nothing else is planned, so nothing else is deleted), its own drift marked,
/// and each dependency as the resource last saw it (see the module documentation).
fn planning_state(
    state: Option<&State>,
    address: &str,
    compiled: &Compiled,
    seen: &BTreeMap<String, ResourceSpec>,
    ctx: &Context,
    target: &dyn Target,
) -> Result<Option<State>, Vec<Diag>> {
    let Some(state) = state else { return Ok(None) };
    let mut planning = State { resources: BTreeMap::new(), ..state.clone() };
    if let Some(r) = state.resources.get(address) {
        let mut r = r.clone();
        r.drifted = ctx.drift(address, state, target)?;
        planning.resources.insert(address.to_string(), r);
    }
    let applied = ctx.applied.lock().map(|m| m.clone()).unwrap_or_default();
    for dep in &compiled.deps {
        let base = match applied.get(dep) {
            Some(before) => before.clone(),
            None => match state.resources.get(dep) {
                Some(r) => {
                    let mut r = r.clone();
                    r.drifted = ctx.drift(dep, state, target)?;
                    Some(r)
                }
                None => None,
            },
        };
        if let Some(mut r) = base {
            if let Some(s) = seen.get(dep) {
                r.spec = s.clone();
            }
            planning.resources.insert(dep.clone(), r);
        }
    }
    Ok(Some(planning))
}

/// The dependencies' specs as `state` records them: what a resource applied now has seen.
fn seen_in(state: &State, deps: &[String]) -> BTreeMap<String, ResourceSpec> {
    deps.iter().filter_map(|d| Some((d.clone(), state.resources.get(d)?.spec.clone()))).collect()
}

/// The transitive dependencies of `address` as `state` records them.
fn recorded_deps(state: &State, address: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    let mut queue = vec![address.to_string()];
    while let Some(a) = queue.pop() {
        for d in state.resources.get(&a).map(|r| r.spec.depends_on.clone()).unwrap_or_default() {
            if out.insert(d.clone()) {
                queue.push(d);
            }
        }
    }
    out.into_iter().collect()
}

/// Sets the computed exports from what the state recorded for the resource.
fn fill_produced(v: &mut Val, kind: &str, produced: Option<&BTreeMap<String, serde_json::Value>>) {
    for e in schema_of(kind).exports.iter().filter(|e| e.computed) {
        let value = produced
            .and_then(|p| p.get(e.name))
            .and_then(|j| Val::from_json(&tfschema::export_ty(e.name), j).ok())
            .unwrap_or(Val::Null);
        v.set(e.name, value);
    }
}

/// Sets what is known from the configuration alone: the address and a source's columns.
fn fill_known(v: &mut Val, kind: &str) {
    let Some(address) = address_of(kind, v) else { return };
    v.set("address", Val::str(address.clone()));
    v.set("id", Val::str(address.clone()));
    if schema_of(kind).exports.iter().any(|e| e.name == "columns") {
        let columns = v
            .get("schema")
            .entries()
            .map(|m| m.keys().map(|c| (c.clone(), Val::str(format!("{address}.columns.{c}")))).collect())
            .unwrap_or_default();
        v.set("columns", Val::Map(columns));
    }
}

/// SHA-256 of a Terraform object's value: which object a replacement mark is about.
fn object_hash(v: &Val) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(v.to_json().to_string().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The change at `address` of a plan.
fn change_at<'a>(p: &'a Plan, address: &str) -> Option<&'a ResourceChange> {
    p.changes.iter().find(|c| c.address == address)
}

/// Is a produced value known after this change?
fn unknown_after(c: &ResourceChange, export: &str) -> bool {
    let path = format!("produced.{export}");
    c.attributes.iter().any(|a| a.path == path && a.after == mlops_compiler::plan::AttrValue::Unknown)
}

/// Read (refresh): the resource as the mlops state and the world have it; `None` when gone.
pub fn read(kind: &str, prior: &Val, settings: &Settings, ctx: &Context) -> (Option<Val>, Vec<Diag>) {
    let Some(address) = address_of(kind, prior) else { return (Some(prior.clone()), Vec::new()) };
    let sys = match Sys::new(settings) {
        Ok(s) => s,
        Err(d) => return (Some(prior.clone()), d),
    };
    // A new run: what an earlier run planned is not this run's plan.
    sys.clear_record(&address);
    let (backend, target) = match sys.open(&sys.bare_spec()) {
        Ok(x) => x,
        Err(d) => return (Some(prior.clone()), d),
    };
    let state = match backend.read() {
        Ok(s) => s,
        Err(e) => return (Some(prior.clone()), vec![Diag::error(format!("cannot read the mlops state: {e}"))]),
    };
    let Some(state) = state else { return (None, Vec::new()) };
    let Some(r) = state.resources.get(&address) else { return (None, Vec::new()) };
    let mut produced = r.produced.clone();
    if target.supports(kind).is_ok() {
        if let Ok(Some((_, adopted))) = target.adopt(&address, r, &state.resources) {
            produced.extend(adopted);
        }
    }
    ctx.forget_drift(&address);
    let drift = match ctx.drift(&address, &state, target.as_ref()) {
        Ok(d) => d,
        Err(d) => return (Some(prior.clone()), d),
    };
    let mut v = prior.clone();
    fill_known(&mut v, kind);
    fill_produced(&mut v, kind, Some(&produced));
    v.set("pending", drift.map_or(Val::Null, |d| Val::str(format!("changed outside mlops: {}", d.reason))));
    (Some(v), Vec::new())
}

/// Plan: the planned value, what forces a replacement, the compiler's diagnostics.
pub fn plan_change(
    kind: &str,
    block: &TfBlock,
    prior: &Val,
    proposed: &Val,
    prior_private: &[u8],
    settings: &Settings,
    ctx: &Context,
) -> Planned {
    let mut planned = proposed.clone();
    let replace_paths: Vec<Vec<Step>> =
        block.attrs.iter().filter(|a| a.replace).map(|a| vec![Step::Attr(a.name.clone())]).collect();
    let mut out = Planned {
        value: Val::Null,
        requires_replace: replace_paths.clone(),
        private: prior_private.to_vec(),
        diags: Vec::new(),
    };
    let computed: Vec<&str> =
        block.attrs.iter().filter(|a| a.computed && !a.optional).map(|a| a.name.as_str()).collect();
    if proposed.is_unknown() {
        // Validated when the values are known (at the latest, when apply plans again).
        for name in &computed {
            planned.set(name, Val::Unknown);
        }
        fill_known(&mut planned, kind);
        if proposed.get("schema").is_unknown() {
            planned.set("columns", Val::Unknown);
        }
        out.value = planned;
        return out;
    }
    let address = address_of(kind, proposed).expect("a known value has its name");
    let rendered = hclgen::render_top(schema_of(kind), proposed);
    let sys = match Sys::new(settings) {
        Ok(s) => s,
        Err(d) => {
            out.value = planned;
            out.diags = d;
            return out;
        }
    };
    if let Some(kept) = sys.load_record(&address, prior, proposed, block) {
        ctx.planned.lock().map(|mut m| m.insert(address.clone(), rendered.text.clone())).ok();
        return kept;
    }
    let compiled = match sys.compile(&address, &rendered, ctx) {
        Ok(c) => c,
        Err(d) => {
            out.value = planned;
            out.diags = d;
            return out;
        }
    };
    let result = (|| {
        let (backend, target) = sys.open(&compiled.spec)?;
        let state = backend.read().map_err(|e| vec![Diag::error(format!("cannot read the mlops state: {e}"))])?;
        let private = Private::decode(prior_private);
        let planning = planning_state(state.as_ref(), &address, &compiled, &private.seen, ctx, target.as_ref())?;
        let p = plan(&compiled.spec, planning.as_ref());
        let change = change_at(&p, &address).cloned().ok_or_else(|| vec![Diag::error("the planner left it out")])?;
        let recorded = state.as_ref().and_then(|s| s.resources.get(&address)).map(|r| r.produced.clone());
        Ok::<_, Vec<Diag>>((change, recorded, private))
    })();
    let (change, recorded, mut private) = match result {
        Ok(r) => r,
        Err(d) => {
            out.value = planned;
            out.diags = d;
            return out;
        }
    };
    ctx.planned.lock().map(|mut m| m.insert(address.clone(), rendered.text.clone())).ok();
    fill_known(&mut planned, kind);
    planned.set("pending", Val::Null);
    let creating = prior.is_null();
    if change.action == Action::NoOp && !creating {
        for e in schema_of(kind).exports.iter().filter(|e| e.computed) {
            planned.set(e.name, prior.get(e.name).clone());
        }
        planned.set("last_change", prior.get("last_change").clone());
    } else {
        planned.set("last_change", Val::str(change_line(&change)));
        let base = if creating { None } else { Some(prior) };
        for e in schema_of(kind).exports.iter().filter(|e| e.computed) {
            let v = if unknown_after(&change, e.name) {
                Val::Unknown
            } else if let Some(p) = base {
                p.get(e.name).clone()
            } else {
                // Terraform creates what mlops already has: what it recorded.
                recorded
                    .as_ref()
                    .and_then(|r| r.get(e.name))
                    .and_then(|j| Val::from_json(&tfschema::export_ty(e.name), j).ok())
                    .unwrap_or(Val::Null)
            };
            planned.set(e.name, v);
        }
    }
    // A retrain Terraform would otherwise see as an update: the new model replaces the job.
    let flagged_change = !creating && replace_paths.iter().any(|p| differs(prior, &planned, p));
    let forced = !creating && kind == "training_job" && change.action == Action::Replace && !flagged_change;
    if forced {
        planned.set("version", Val::Unknown);
        out.requires_replace.push(vec![Step::Attr("version".into())]);
    }
    private.replacing = (flagged_change || forced).then(|| address.clone());
    out.private = private.encode();
    out.value = planned;
    if change.action == Action::NoOp && !creating {
        sys.clear_record(&address);
    } else {
        sys.save_record(&address, prior, proposed, &out, block);
    }
    out.diags = compiled.warnings;
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

fn differs(a: &Val, b: &Val, path: &[Step]) -> bool {
    let get = |v: &Val| {
        let mut v = v.clone();
        for s in path {
            if let Step::Attr(n) = s {
                v = v.get(n).clone();
            }
        }
        v
    };
    let (x, y) = (get(a), get(b));
    y.is_unknown() || x.to_json() != y.to_json()
}

/// Apply (create or update): the new value and private state.
pub fn apply_change(
    kind: &str,
    prior: &Val,
    planned: &Val,
    planned_private: &[u8],
    settings: &Settings,
    ctx: &Context,
) -> (Val, Vec<u8>, Vec<Diag>) {
    let failed = |d: Vec<Diag>| (prior.clone(), planned_private.to_vec(), d);
    let Some(address) = address_of(kind, planned) else {
        return failed(vec![Diag::error("the resource's name is unknown at apply")]);
    };
    let rendered = hclgen::render_top(schema_of(kind), planned);
    let sys = match Sys::new(settings) {
        Ok(s) => s,
        Err(d) => return failed(d),
    };
    let _one_at_a_time = ctx.applying.lock();
    let elsewhere =
        sys.all_disk_blocks().into_iter().find(|(f, b)| b.address == address && *f != sys.own_file(&address));
    if let Some((file, _)) = elsewhere {
        return failed(vec![Diag::error(format!("{address} is also written in {}", file.display())).detail(
            "The provider keeps each block in its own generated file of `dir`; remove the block from that file.",
        )]);
    }
    let compiled = match sys.compile(&address, &rendered, ctx) {
        Ok(c) => c,
        Err(d) => return failed(d),
    };
    let (backend, target) = match sys.open(&compiled.spec) {
        Ok(x) => x,
        Err(d) => return failed(d),
    };
    let lock = match backend.lock("terraform apply") {
        Ok(l) => l,
        Err(e) => return failed(vec![Diag::error(format!("cannot take the state lock: {e}"))]),
    };
    let private = Private::decode(planned_private);
    let result = (|| {
        let state = backend.read().map_err(|e| vec![Diag::error(format!("cannot read the mlops state: {e}"))])?;
        let planning = planning_state(state.as_ref(), &address, &compiled, &private.seen, ctx, target.as_ref())?;
        let p = plan(&compiled.spec, planning.as_ref());
        let change = change_at(&p, &address).cloned().ok_or_else(|| vec![Diag::error("the planner left it out")])?;
        // What apply writes back: the whole state, with this resource's adoption and drift.
        let mut current = state.clone();
        let before = current.as_ref().and_then(|s| s.resources.get(&address).cloned());
        if let (Some(s), Some(r)) = (current.as_mut(), before.as_ref()) {
            if let Ok(Some((_, adopted))) = target.adopt(&address, r, &s.resources) {
                if let Some(r) = s.resources.get_mut(&address) {
                    r.produced.extend(adopted);
                }
            }
            if let Some(r) = s.resources.get_mut(&address) {
                r.drifted = planning.as_ref().and_then(|p| p.resources.get(&address)).and_then(|r| r.drifted.clone());
            }
        }
        let before = current.as_ref().and_then(|s| s.resources.get(&address).cloned());
        let one = Plan { changes: vec![change.clone()], ..p.clone() };
        let mut failures = Vec::new();
        let mut on_event = |e: Event| match e {
            Event::Failed { error, .. } => failures.push(error.to_string()),
            Event::NotApplied { reason, .. } => failures.push(format!("not applied: {reason}")),
            _ => {}
        };
        let report = apply::apply(
            &one,
            &compiled.spec,
            current,
            backend.as_ref(),
            &lock,
            target.as_ref(),
            &ApplyOptions { parallelism: 1, cancel: None },
            &mut on_event,
        )
        .map_err(|e| vec![Diag::error(format!("apply stopped: {e}"))])?;
        if change.action != Action::NoOp {
            ctx.applied.lock().map(|mut m| m.insert(address.clone(), before)).ok();
        }
        Ok::<_, Vec<Diag>>((change, report.state, failures))
    })();
    let _ = lock.release();
    ctx.forget_drift(&address);
    let (change, state, failures) = match result {
        Ok(r) => r,
        Err(d) => return failed(d),
    };
    if !failures.is_empty() {
        let diags = failures
            .into_iter()
            .map(|e| {
                Diag::error(format!("{address}: {e}"))
                    .detail("What was applied before is recorded; fix the cause and apply again.")
            })
            .collect();
        return failed(diags);
    }
    if sys.read_record(&address).is_some_and(|r| r["replacing"].as_bool() != Some(true)) {
        // (A replacement's record stays for its delete half, which may come after this create:
        // `create_before_destroy`; the next refresh clears it.)
        sys.clear_record(&address);
    }
    let mut errors = Vec::new();
    if let Err(d) = sys.write(&sys.dir.join("mlops.mlops.hcl"), &sys.settings.mlops_block) {
        errors.push(d);
    }
    // Formatted as `mlops fmt` would (the span map is only needed for compiling).
    let text = mlops_compiler::format::format_source(&rendered.text).unwrap_or_else(|_| rendered.text.clone());
    if let Err(d) = sys.write(&sys.own_file(&address), &text) {
        errors.push(d);
    }
    let mut v = planned.clone();
    fill_known(&mut v, kind);
    fill_produced(&mut v, kind, state.resources.get(&address).map(|r| &r.produced));
    v.set("pending", Val::Null);
    if v.get("last_change").is_unknown() || v.get("last_change").is_null() {
        v.set("last_change", Val::str(change_line(&change)));
    }
    let private = Private { seen: seen_in(&state, &compiled.deps), replacing: None };
    (v, private.encode(), errors)
}

/// Delete: removes the resource from the system (never the user's data).
///
/// The delete half of a replacement leaves mlops alone: the create half's plan is mlops'
/// Replace (the next model version over the one in production). Terraform does not say which
/// deletes are halves of a replacement — it does not pass the plan's private state to them — so
/// the plan that decides a replacement is recorded with the hash of the object it replaces
/// (`dir/.mlops-terraform/plans/ADDRESS.json`, cleared by the next refresh), and a delete of
/// that very object is the delete half.
pub fn destroy(kind: &str, prior: &Val, planned_private: &[u8], settings: &Settings, ctx: &Context) -> Vec<Diag> {
    let Some(address) = address_of(kind, prior) else { return Vec::new() };
    let sys = match Sys::new(settings) {
        Ok(s) => s,
        Err(d) => return d,
    };
    if Private::decode(planned_private).replacing.as_deref() == Some(address.as_str()) || sys.replaces(&address, prior)
    {
        return Vec::new();
    }
    let _one_at_a_time = ctx.applying.lock();
    let spec = sys.bare_spec();
    let (backend, target) = match sys.open(&spec) {
        Ok(x) => x,
        Err(d) => return d,
    };
    let lock = match backend.lock("terraform destroy") {
        Ok(l) => l,
        Err(e) => return vec![Diag::error(format!("cannot take the state lock: {e}"))],
    };
    let result = (|| {
        let state = backend.read().map_err(|e| vec![Diag::error(format!("cannot read the mlops state: {e}"))])?;
        let before = state.as_ref().and_then(|s| s.resources.get(&address).cloned());
        if before.is_none() {
            return Ok(Vec::new());
        }
        let p = plan_destroy(&spec, state.as_ref());
        let one = Plan { changes: p.changes.iter().filter(|c| c.address == address).cloned().collect(), ..p.clone() };
        let mut failures = Vec::new();
        let mut on_event = |e: Event| {
            if let Event::Failed { error, .. } = e {
                failures.push(Diag::error(format!("{address}: {error}")));
            }
        };
        apply::apply(
            &one,
            &spec,
            state,
            backend.as_ref(),
            &lock,
            target.as_ref(),
            &ApplyOptions { parallelism: 1, cancel: None },
            &mut on_event,
        )
        .map_err(|e| vec![Diag::error(format!("destroy stopped: {e}"))])?;
        ctx.applied.lock().map(|mut m| m.insert(address.clone(), before)).ok();
        Ok::<_, Vec<Diag>>(failures)
    })();
    let _ = lock.release();
    let failures = result.unwrap_or_else(|d| d);
    if failures.is_empty() {
        ctx.planned.lock().map(|mut m| m.remove(&address)).ok();
        let _ = std::fs::remove_file(sys.own_file(&address));
    }
    failures
}

/// Import: the id is the mlops address (`training_job.fraud`, or just `fraud`); the block is
/// read back from the files of `dir`.
pub fn import(kind: &str, id: &str, settings: &Settings) -> (Option<(Val, Vec<u8>)>, Vec<Diag>) {
    let address = if id.contains('.') { id.to_string() } else { format!("{kind}.{id}") };
    if !address.starts_with(&format!("{kind}.")) {
        return (
            None,
            vec![Diag::error(format!("{address} is not a {kind}"))
                .detail(format!("Import {} by its mlops address: `{kind}.NAME`.", type_name(kind)))],
        );
    }
    let sys = match Sys::new(settings) {
        Ok(s) => s,
        Err(d) => return (None, d),
    };
    let Some((file, text)) = sys.disk_blocks().remove(&address) else {
        return (
            None,
            vec![Diag::error(format!("no block {address} in {}", sys.dir.display()))
                .detail("Import reads the block from the files of the provider's `dir`.")],
        );
    };
    let mut v = match hclparse::block_value(schema_of(kind), &text) {
        Ok(v) => v,
        Err(e) => return (None, vec![Diag::error(format!("cannot import {address} from {}: {e}", file.display()))]),
    };
    for a in tfschema::kind_resource(kind).map(|b| b.attrs).unwrap_or_default() {
        if a.computed && !a.optional {
            v.set(&a.name, Val::Null);
        }
    }
    fill_known(&mut v, kind);
    let seen = match sys
        .open(&sys.bare_spec())
        .and_then(|(b, _)| b.read().map_err(|e| vec![Diag::error(format!("cannot read the mlops state: {e}"))]))
    {
        Ok(Some(state)) => seen_in(&state, &recorded_deps(&state, &address)),
        Ok(None) => BTreeMap::new(),
        Err(d) => return (None, d),
    };
    (Some((v, Private { seen, replacing: None }.encode())), Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_type() {
        let names: Vec<String> = schemas().into_keys().collect();
        assert_eq!(names.len(), 7, "{names:?}");
        assert_eq!(kind_of("mlops_feature_view"), Some("feature_view"));
        assert_eq!(kind_of("mlops_system"), None);
    }

    /// A Terraform value of `kind` with these attributes set (the rest null, no nested blocks).
    fn value(kind: &str, set: &[(&str, Val)]) -> Val {
        let block = tfschema::kind_resource(kind).unwrap();
        let mut v = Val::Map(block.attrs.iter().map(|a| (a.name.clone(), Val::Null)).collect());
        for b in &block.blocks {
            v.set(&b.name, Val::List(Vec::new()));
        }
        for (k, x) in set {
            v.set(k, x.clone());
        }
        v
    }

    fn dynamic(pairs: &[(&str, Val)]) -> Val {
        let m = Val::object(pairs.iter().cloned());
        Val::Typed(crate::cty::Ty::infer(&m), Box::new(m))
    }

    fn settings(dir: &Path) -> Settings {
        let config = Val::object([("name", Val::str("unit")), ("dir", Val::str(dir.display().to_string()))]);
        Settings::from_config(&config).unwrap()
    }

    fn transactions() -> Val {
        value(
            "source",
            &[
                ("name", Val::str("transactions")),
                ("format", Val::str("csv")),
                ("path", Val::str("t.csv")),
                ("timestamp", Val::str("event_time")),
                ("schema", dynamic(&[("amount", Val::str("float")), ("event_time", Val::str("timestamp"))])),
            ],
        )
    }

    fn plan_of(kind: &str, v: &Val, settings: &Settings, ctx: &Context) -> Planned {
        let block = tfschema::kind_resource(kind).unwrap();
        plan_change(kind, &block, &Val::Null, v, &[], settings, ctx)
    }

    #[test]
    fn a_block_compiles_against_what_this_run_planned_and_errors_arrive_at_their_attribute() {
        let dir = scratch_dir("unit-kinds").unwrap();
        let settings = settings(&dir);
        let ctx = Context::default();
        let source = plan_of("source", &transactions(), &settings, &ctx);
        assert!(source.diags.iter().all(|d| !d.error), "{:?}", source.diags);
        assert_eq!(source.value.get("address").as_str(), Some("source.transactions"));
        assert_eq!(
            source.value.get("columns").get("amount").as_str(),
            Some("source.transactions.columns.amount"),
            "columns are known at plan"
        );
        assert!(source.value.get("rows").is_unknown());
        assert_eq!(source.value.get("last_change").as_str(), Some("create source.transactions: not in state"));

        // The view finds the source planned in this run (nothing is applied yet).
        let feature = |name: &str, window: &str| {
            Val::object([
                ("name", Val::str(name)),
                ("column", Val::str("amount")),
                ("aggregate", Val::str("sum")),
                ("window", Val::str(window)),
                ("expression", Val::Null),
                ("description", Val::Null),
            ])
        };
        let view = |window: &str| {
            value(
                "feature_view",
                &[
                    ("name", Val::str("activity")),
                    ("source", Val::str("source.transactions")),
                    ("entities", Val::List(Vec::new())),
                    ("feature", Val::List(vec![feature("sum_1h", "1h"), feature("sum_24x", window)])),
                ],
            )
        };
        let ok = plan_of("feature_view", &view("24h"), &settings, &ctx);
        assert!(ok.diags.iter().all(|d| !d.error), "{:?}", ok.diags);
        let bad = plan_of("feature_view", &view("24x"), &settings, &ctx);
        let error = bad.diags.iter().find(|d| d.error).expect("an invalid window fails the plan");
        assert_eq!(
            error.path,
            vec![Step::Attr("feature".into()), Step::Index(1), Step::Attr("window".into())],
            "{error:?}"
        );

        // A reference to a block nobody planned or applied: the compiler's error, at its attribute.
        let orphan = value(
            "feature_view",
            &[
                ("name", Val::str("orphan")),
                ("source", Val::str("source.transaction")),
                ("entities", Val::List(Vec::new())),
                ("feature", Val::List(vec![feature("sum_1h", "1h")])),
            ],
        );
        let unknown = plan_of("feature_view", &orphan, &settings, &ctx);
        let error = unknown.diags.iter().find(|d| d.error).expect("an unknown reference fails the plan");
        assert_eq!(error.path, vec![Step::Attr("source".into())], "{error:?}");
        assert!(error.summary.contains("undeclared source `transaction`"), "{error:?}");
        assert!(error.detail.contains("did you mean `source.transactions`?"), "candidates are compiled too: {error:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_bad_parameter_is_reported_at_its_key() {
        let dir = scratch_dir("unit-kinds").unwrap();
        let settings = settings(&dir);
        let ctx = Context::default();
        plan_of("source", &transactions(), &settings, &ctx);
        let job = value(
            "training_job",
            &[
                ("name", Val::str("fraud")),
                ("features", Val::List(Vec::new())),
                ("label", Val::str("source.transactions.columns.amount")),
                ("params", dynamic(&[("max_depth", Val::str("deep")), ("eta", Val::num(0.1))])),
            ],
        );
        let planned = plan_of("training_job", &job, &settings, &ctx);
        let error = planned
            .diags
            .iter()
            .find(|d| d.error && d.summary.contains("max_depth"))
            .unwrap_or_else(|| panic!("{:?}", planned.diags));
        assert_eq!(error.path, vec![Step::Attr("params".into()), Step::Key("max_depth".into())], "{error:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn private_state_round_trips() {
        let p = Private { seen: BTreeMap::new(), replacing: Some("training_job.fraud".into()) };
        let back = Private::decode(&p.encode());
        assert_eq!(back.replacing.as_deref(), Some("training_job.fraud"));
        assert!(Private::decode(b"").replacing.is_none());
    }
}
