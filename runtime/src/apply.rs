//! Apply: executes a [`Plan`] through a [`Target`], recording each finished resource in the
//! state at once. In: the plan, the spec it was made from, the state it was made against (under
//! a held lock), a target. Out: the new state (already written) and what happened to each
//! resource, reported as it happens through an [`Event`] callback.
//!
//! - Creates, updates and replaces run in dependency order, independent ones in parallel (at
//!   most `parallelism` at once). A resource whose dependency failed, or that the target cannot
//!   apply, is not applied, and neither is anything downstream of it; independent branches go on.
//! - After each resource completes, the state is written (serial + 1), so an apply interrupted
//!   at any point — even by SIGKILL — leaves a state that is readable and true, and the next
//!   plan shows exactly what remains. Targets are idempotent, so that next apply converges.
//! - Deletions run last, dependents first, and only when everything before them succeeded: a
//!   replacement that failed must not also lose what it was replacing.
//! - Finally root outputs are resolved from what resources produced.
//!
//! [`refresh`] asks the target, resource by resource, whether the world still matches the
//! state, and [`mark_drift`] records what it found for the planner.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mlops_compiler::plan::{Action, Plan};
use mlops_compiler::spec::{ResourceSpec, SystemSpec};
use mlops_compiler::state::{Drifted, OutputState, ResourceState, State};
use serde_json::Value;

use crate::state::{new_lineage, LockGuard, StateBackend, StateError};
use crate::targets::{Produced, Target, TargetError};

/// How to apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// Resources applied at once, at most (at least 1).
    pub parallelism: usize,
    /// Set (by an interrupt handler) to stop starting resources: those in progress finish and
    /// are recorded, the rest are reported not applied.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions { parallelism: 4, cancel: None }
    }
}

impl ApplyOptions {
    fn cancelled(&self) -> bool {
        self.cancel.as_ref().is_some_and(|c| c.load(Ordering::SeqCst))
    }
}

const INTERRUPTED: &str = "not started: apply was interrupted";

/// Something that happened during apply, in the order it happened.
#[derive(Debug)]
pub enum Event<'a> {
    /// Work on a resource began.
    Started {
        /// Its address.
        address: &'a str,
        /// What is being done.
        action: Action,
    },
    /// A resource was applied (or destroyed) and the state written.
    Finished {
        /// Its address.
        address: &'a str,
        /// What was done.
        action: Action,
        /// How long it took.
        elapsed: Duration,
        /// What it produced (empty for a deletion).
        produced: &'a Produced,
    },
    /// A resource failed; the state keeps what it recorded before.
    Failed {
        /// Its address.
        address: &'a str,
        /// What was attempted.
        action: Action,
        /// Why it failed.
        error: &'a str,
    },
    /// A resource was not applied, and why.
    NotApplied {
        /// Its address.
        address: &'a str,
        /// What was planned.
        action: Action,
        /// Why not.
        reason: &'a str,
    },
}

/// What an apply did.
#[derive(Debug)]
pub struct ApplyReport {
    /// Resources applied, in completion order, with their action.
    pub applied: Vec<(String, Action)>,
    /// Resources that failed, with the error.
    pub failed: Vec<(String, String)>,
    /// Resources not applied, with the reason.
    pub not_applied: Vec<(String, String)>,
    /// The state as last written.
    pub state: State,
}

impl ApplyReport {
    /// Did every planned change happen?
    pub fn complete(&self) -> bool {
        self.failed.is_empty() && self.not_applied.is_empty()
    }

    /// How many resources were applied with this action.
    pub fn count(&self, action: Action) -> usize {
        self.applied.iter().filter(|(_, a)| *a == action).count()
    }
}

/// Why an apply stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The state could not be written; nothing more is applied, since what is applied but not
    /// recorded would be unknown to the next plan.
    #[error("{error}; apply stopped (resources applied before this are recorded: {applied})")]
    State {
        /// The write error.
        #[source]
        error: StateError,
        /// How many resources were recorded before.
        applied: usize,
    },
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The writer of the state under the lock: each write is one serial up.
struct Recorder<'a> {
    backend: &'a dyn StateBackend,
    lock: &'a LockGuard,
    state: State,
    written: usize,
}

impl Recorder<'_> {
    fn write(&mut self) -> Result<(), ApplyError> {
        self.state.serial += 1;
        self.backend
            .write(self.lock, &self.state)
            .map_err(|error| ApplyError::State { error, applied: self.written })?;
        self.written += 1;
        Ok(())
    }
}

/// Executes `plan` (made from `spec` against `state`) through `target`, writing the state
/// through `backend` after every resource. `on_event` is called from this thread only.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    plan: &Plan,
    spec: &SystemSpec,
    state: Option<State>,
    backend: &dyn StateBackend,
    lock: &LockGuard,
    target: &dyn Target,
    opts: &ApplyOptions,
    on_event: &mut dyn FnMut(Event),
) -> Result<ApplyReport, ApplyError> {
    let state = match state {
        Some(s) => s,
        None => State::new(&spec.system.name, new_lineage().map_err(|error| ApplyError::State { error, applied: 0 })?),
    };
    let mut rec = Recorder { backend, lock, state, written: 0 };
    let mut report = ApplyReport {
        applied: Vec::new(),
        failed: Vec::new(),
        not_applied: Vec::new(),
        state: State::new("", String::new()),
    };
    forward(plan, spec, target, opts, &mut rec, &mut report, on_event)?;
    deletions(plan, target, opts, &mut rec, &mut report, on_event)?;
    finish(plan, spec, &mut rec)?;
    report.state = rec.state;
    Ok(report)
}

/// Creates, updates and replaces, in dependency order, in parallel.
fn forward(
    plan: &Plan,
    spec: &SystemSpec,
    target: &dyn Target,
    opts: &ApplyOptions,
    rec: &mut Recorder,
    report: &mut ApplyReport,
    on_event: &mut dyn FnMut(Event),
) -> Result<(), ApplyError> {
    let resources: HashMap<&str, &ResourceSpec> = spec.resources.iter().map(|r| (r.address.as_str(), r)).collect();
    let work: Vec<(&str, Action)> = plan
        .changes
        .iter()
        .filter(|c| matches!(c.action, Action::Create | Action::Update | Action::Replace))
        .filter(|c| resources.contains_key(c.address.as_str()))
        .map(|c| (c.address.as_str(), c.action))
        .collect();
    let planned: HashMap<&str, Action> = work.iter().copied().collect();
    // Unfinished planned dependencies of each resource, and who waits on each.
    let mut waiting: HashMap<&str, usize> = HashMap::new();
    let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
    for (address, _) in &work {
        let deps: Vec<&str> =
            resources[address].depends_on.iter().map(String::as_str).filter(|d| planned.contains_key(d)).collect();
        waiting.insert(address, deps.len());
        for d in deps {
            dependents.entry(d).or_default().push(address);
        }
    }
    let mut blocked: HashMap<&str, String> = HashMap::new();
    let mut ready: VecDeque<&str> = VecDeque::new();
    for (address, _) in &work {
        let kind = resources[address].config.kind();
        if let Err(why) = target.supports(kind) {
            blocked.insert(address, why);
        } else if waiting[address] == 0 {
            ready.push_back(address);
        }
    }

    let parallelism = opts.parallelism.max(1);
    let (tx, rx) = mpsc::channel::<(&str, Duration, Result<Produced, TargetError>)>();
    let mut running = 0usize;
    let mut stopped: Option<ApplyError> = None;
    std::thread::scope(|scope| loop {
        while stopped.is_none() && !opts.cancelled() && running < parallelism {
            let Some(address) = ready.pop_front() else { break };
            let action = planned[address];
            on_event(Event::Started { address, action });
            let resource = resources[address];
            let prior = rec.state.resources.get(address).cloned();
            let tx = tx.clone();
            scope.spawn(move || {
                let start = Instant::now();
                let result = target.apply(spec, resource, action, prior.as_ref());
                let _ = tx.send((address, start.elapsed(), result));
            });
            running += 1;
        }
        if running == 0 {
            break;
        }
        let Ok((address, elapsed, result)) = rx.recv() else { break };
        running -= 1;
        let action = planned[address];
        match result {
            Ok(produced) => {
                let applied = ResourceState {
                    spec: resources[address].clone(),
                    produced: produced.clone(),
                    applied_at: now(),
                    drifted: None,
                };
                rec.state.resources.insert(address.to_string(), applied);
                if let Err(e) = rec.write() {
                    stopped = Some(e);
                    continue;
                }
                report.applied.push((address.to_string(), action));
                on_event(Event::Finished { address, action, elapsed, produced: &produced });
                for d in dependents.get(address).into_iter().flatten() {
                    let n = waiting.get_mut(d).expect("every dependent is planned");
                    *n -= 1;
                    if *n == 0 && !blocked.contains_key(d) {
                        ready.push_back(d);
                    }
                }
            }
            Err(e) => {
                on_event(Event::Failed { address, action, error: &e.0 });
                report.failed.push((address.to_string(), e.0));
            }
        }
    });
    if let Some(e) = stopped {
        return Err(e);
    }
    // Whatever did not run: say why, naming the first upstream resource that stopped it.
    let failed: HashSet<&str> = report.failed.iter().map(|(a, _)| a.as_str()).collect();
    let done: HashSet<&str> = report.applied.iter().map(|(a, _)| a.as_str()).collect();
    let mut not_applied: HashMap<&str, String> = HashMap::new();
    for (address, action) in &work {
        if done.contains(address) || failed.contains(address) {
            continue;
        }
        let reason = blocked.get(address).cloned().unwrap_or_else(|| {
            let upstream = resources[address]
                .depends_on
                .iter()
                .map(String::as_str)
                .find(|d| failed.contains(d) || not_applied.contains_key(d));
            match upstream {
                Some(d) if failed.contains(d) => format!("depends on {d}, which failed"),
                Some(d) => format!("depends on {d}, which was not applied"),
                None if opts.cancelled() => INTERRUPTED.to_string(),
                None => "stopped before it could start".to_string(),
            }
        });
        on_event(Event::NotApplied { address, action: *action, reason: &reason });
        not_applied.insert(address, reason.clone());
        report.not_applied.push((address.to_string(), reason));
    }
    Ok(())
}

/// Deletions, in plan order (dependents first), only after everything else succeeded.
fn deletions(
    plan: &Plan,
    target: &dyn Target,
    opts: &ApplyOptions,
    rec: &mut Recorder,
    report: &mut ApplyReport,
    on_event: &mut dyn FnMut(Event),
) -> Result<(), ApplyError> {
    let mut halted: Option<String> = (!report.failed.is_empty())
        .then(|| "not destroyed: an earlier change failed, and what it replaces is kept".to_string());
    for c in plan.changes.iter().filter(|c| c.action == Action::Delete) {
        let address = c.address.as_str();
        let Some(prior) = rec.state.resources.get(address).cloned() else { continue };
        if opts.cancelled() {
            halted.get_or_insert_with(|| INTERRUPTED.to_string());
        }
        if let Some(reason) = &halted {
            on_event(Event::NotApplied { address, action: Action::Delete, reason });
            report.not_applied.push((address.to_string(), reason.clone()));
            continue;
        }
        on_event(Event::Started { address, action: Action::Delete });
        let start = Instant::now();
        match target.destroy(address, &prior) {
            Ok(()) => {
                rec.state.resources.remove(address);
                rec.write()?;
                report.applied.push((address.to_string(), Action::Delete));
                let none = Produced::new();
                on_event(Event::Finished {
                    address,
                    action: Action::Delete,
                    elapsed: start.elapsed(),
                    produced: &none,
                });
            }
            Err(e) => {
                on_event(Event::Failed { address, action: Action::Delete, error: &e.0 });
                report.failed.push((address.to_string(), e.0));
                halted = Some(format!("not destroyed: destroying {address} failed"));
            }
        }
    }
    Ok(())
}

/// Brings the recorded spec slices of resources the plan left alone up to date (a new dependency, a new
/// hash) and resolves the root outputs; one last write if anything differs.
fn finish(plan: &Plan, spec: &SystemSpec, rec: &mut Recorder) -> Result<(), ApplyError> {
    let mut changed = false;
    let unchanged: HashSet<&str> =
        plan.changes.iter().filter(|c| c.action == Action::NoOp).map(|c| c.address.as_str()).collect();
    for r in spec.resources.iter().filter(|r| unchanged.contains(r.address.as_str())) {
        if let Some(s) = rec.state.resources.get_mut(&r.address) {
            if s.spec != *r {
                s.spec = r.clone();
                changed = true;
            }
        }
    }
    let outputs = outputs(spec, &rec.state);
    if outputs != rec.state.outputs {
        rec.state.outputs = outputs;
        changed = true;
    }
    // A state that was never written stays unwritten when nothing was applied.
    if changed && rec.state.serial > 0 {
        rec.write()?;
    }
    Ok(())
}

/// The root outputs, with references to what resources produced filled in. An output whose
/// value is not known yet (its resource was not applied) is recorded as pending, with why.
pub fn outputs(spec: &SystemSpec, state: &State) -> BTreeMap<String, OutputState> {
    spec.outputs
        .iter()
        .map(|(name, o)| {
            let mut pending = None;
            let value = resolve(&o.value, spec, state, &mut pending);
            let (value, pending) = match pending {
                Some(p) => (Value::Null, Some(p)),
                None => (value, None),
            };
            (name.clone(), OutputState { value, sensitive: o.sensitive, pending })
        })
        .collect()
}

/// `module.x.endpoint.api.url` → the produced value; `"${a.b}…"` templates filled as text.
fn resolve(v: &Value, spec: &SystemSpec, state: &State, pending: &mut Option<String>) -> Value {
    match v {
        Value::String(s) => {
            if let Some(found) = lookup(s, spec, state, pending) {
                return found;
            }
            if !s.contains("${") {
                return v.clone();
            }
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                let Some(len) = rest[start..].find('}') else { break };
                out.push_str(&rest[..start]);
                let reference = &rest[start + 2..start + len];
                match lookup(reference, spec, state, pending) {
                    Some(Value::String(t)) => out.push_str(&t),
                    Some(other) => out.push_str(&other.to_string()),
                    None => out.push_str(&rest[start..start + len + 1]),
                }
                rest = &rest[start + len + 1..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| resolve(i, spec, state, pending)).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, i)| (k.clone(), resolve(i, spec, state, pending))).collect())
        }
        other => other.clone(),
    }
}

/// A reference `ADDRESS.EXPORT[.PATH…]` to a configured resource: its value, or `None` when the
/// text names no such resource. A resource not applied yet sets `pending`.
fn lookup(reference: &str, spec: &SystemSpec, state: &State, pending: &mut Option<String>) -> Option<Value> {
    // The longest prefix that is a configured address wins (addresses contain dots).
    let parts: Vec<&str> = reference.split('.').collect();
    for split in (2..parts.len()).rev() {
        let address = parts[..split].join(".");
        if spec.resource(&address).is_none() {
            continue;
        }
        let Some(r) = state.resources.get(&address) else {
            pending.get_or_insert_with(|| format!("{address} has not been applied"));
            return Some(Value::Null);
        };
        let mut value = r.produced.get(parts[split]).cloned();
        for key in &parts[split + 1..] {
            value = value.and_then(|v| v.get(*key).cloned());
        }
        if value.is_none() {
            pending.get_or_insert_with(|| format!("{address} has not produced `{}` yet", parts[split..].join(".")));
        }
        return Some(value.unwrap_or(Value::Null));
    }
    None
}

/// Asks `target` whether each resource of `state` still matches the world. Resources of kinds
/// the target does not run are skipped.
pub fn refresh(state: &State, target: &dyn Target) -> Result<Vec<(String, Drifted)>, TargetError> {
    let mut found = Vec::new();
    for (address, r) in &state.resources {
        if target.supports(r.spec.config.kind()).is_err() {
            continue;
        }
        if let Some(d) = target.refresh(address, r, &state.resources)? {
            found.push((address.clone(), d));
        }
    }
    Ok(found)
}

/// Takes over in `state` what the runtime changed by design ([`Target::adopt`]: a version a
/// retrain policy promoted), before [`refresh`] compares the rest; returns (address, reason).
pub fn adopt(state: &mut State, target: &dyn Target) -> Result<Vec<(String, String)>, TargetError> {
    let mut adopted = Vec::new();
    let addresses: Vec<String> = state.resources.keys().cloned().collect();
    for address in addresses {
        let Some(r) = state.resources.get(&address) else { continue };
        if target.supports(r.spec.config.kind()).is_err() {
            continue;
        }
        if let Some((reason, produced)) = target.adopt(&address, r, &state.resources)? {
            if let Some(r) = state.resources.get_mut(&address) {
                r.produced.extend(produced);
            }
            adopted.push((address, reason));
        }
    }
    Ok(adopted)
}

/// Records refresh findings in `state` (the planner re-applies drifted resources).
pub fn mark_drift(state: &mut State, drift: &[(String, Drifted)]) {
    for (address, d) in drift {
        if let Some(r) = state.resources.get_mut(address) {
            r.drifted = Some(d.clone());
        }
    }
}
