//! The planner: a [`SystemSpec`] and the [`State`] it would be applied over in, a [`Plan`] out —
//! for every resource one [`Action`] with its attribute-level changes, the reasons for it and
//! ML-aware [`Risk`] notes. Pure and deterministic: the same inputs give the same plan, byte for
//! byte; nothing here touches the world, and `apply` only executes what a plan says.
//!
//! # How actions are decided
//!
//! - **Create**: the address is not in state. **Delete**: it is in state and not in the spec;
//!   deletions come last in [`Plan::changes`], dependents before what they depend on.
//! - **Replace** or **update in place**: the resource's own configuration is diffed against the
//!   spec slice it was applied from (`diff`). A change to an attribute the schema marks
//!   [`replace`](crate::schema::AttrSchema::replace) (a job's features, label, params or algorithm,
//!   a view's source, an entity's join keys) replaces it — for a job that means training a new
//!   model version; any other change updates it in place.
//! - **Propagation** (`propagate`), in dependency order: a source change that alters rows or
//!   columns a view reads rematerialises the view (update); a view whose feature data changed
//!   rebuilds the training set of every job trained on it (replace: retrain); a job with a new
//!   model version rolls it out on the endpoints serving it (update); a monitor of such an endpoint
//!   resets its drift reference (update).
//! - **Drift** found by refresh ([`crate::state::Drifted`]: a model file deleted, source data
//!   changed since materialisation) re-applies the resource: update, or replace when what it
//!   produced is lost. It propagates like any replacement (a lost model is retrained and rolled
//!   out); new source rows only rematerialise views — retraining on new data is a retrain
//!   policy's decision, not apply's.
//! - Values that exist only after apply (model version, metrics, endpoint URL …) are
//!   [`AttrValue::Unknown`]: "known after apply". Schema-`sensitive` values are
//!   [`AttrValue::Sensitive`] and never stored in a plan.
//!
//! # JSON format (`format_version` 1)
//!
//! The serde serialisation of [`Plan`] is a stable contract for tools; incompatible changes bump
//! [`FORMAT_VERSION`].
//!
//! ```text
//! {
//!   "format_version": 1,
//!   "system": "fraud-detection",          // mlops { name }
//!   "state_serial": 7,                    // serial of the state planned against; null: no state
//!   "state_lineage": "…",                 // its lineage; null: no state
//!   "spec_hash": "9f2c…",                 // SHA-256 (hex) of the SystemSpec's canonical JSON
//!   "changes": [                          // spec resources in dependency order, then deletions
//!     {
//!       "address": "training_job.fraud",
//!       "kind": "training_job",           // source | entity | feature_view | training_job |
//!                                         // endpoint | monitor | retrain_policy
//!       "action": "replace",              // create | update | replace | delete | noop
//!       "reasons": ["max_depth 6 → 8"],   // human sentences, own changes first
//!       "caused_by": [],                  // upstream addresses whose change propagated here
//!       "attributes": [
//!         { "path": "config.params.max_depth",   // config.<field>…, produced.<export>
//!           "before": { "known": 6 },            // "absent" | { "known": <json> } |
//!           "after": { "known": 8 },             // "unknown" (known after apply) | "sensitive"
//!           "forces_replace": true },
//!         { "path": "produced.version", "before": "absent", "after": "unknown", "forces_replace": false }
//!       ],
//!       "risks": [ { "level": "warn", "text": "gate lowered auc 0.85 → 0.7" } ]   // info | warn | danger
//!     }
//!   ],
//!   "summary": { "create": 0, "update": 2, "replace": 1, "delete": 0, "noop": 5 }
//! }
//! ```
//!
//! Paths: `.field` for object fields, `[name]` for an element of a list of named objects (keyed by
//! `name`, else `metric`, else `param`: `config.features[amount_sum].window`, `config.gates[auc].min`),
//! `[0]` for other lists of objects; lists of plain values change as a whole.

mod diff;
mod propagate;
mod render_markdown;
mod render_text;
mod risk;
mod show;

pub use render_markdown::{render_markdown, MARKDOWN_LIMIT};
pub use render_text::render_text;

use crate::model::Config;
use crate::spec::SystemSpec;
use crate::state::{ResourceState, State};
use propagate::Effects;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Version of the plan JSON format. Bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// A reviewed, saveable diff of a configuration against a state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// Name of the system.
    pub system: String,
    /// Serial of the state planned against (`None`: no state yet).
    pub state_serial: Option<u64>,
    /// Lineage of the state planned against.
    pub state_lineage: Option<String>,
    /// SHA-256 (hex) of the spec's canonical JSON.
    pub spec_hash: String,
    /// Every resource's change: the spec's resources in dependency order, then deletions.
    pub changes: Vec<ResourceChange>,
    /// Counts per action.
    pub summary: Summary,
}

/// What happens to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Not in state: created.
    Create,
    /// Changed in place.
    Update,
    /// Destroyed and created again (a training job: a new model version is trained).
    Replace,
    /// In state, no longer configured: destroyed.
    Delete,
    /// Nothing to do.
    NoOp,
}

/// The change to one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceChange {
    /// Full address.
    pub address: String,
    /// Block kind.
    pub kind: String,
    /// What happens.
    pub action: Action,
    /// Why, in words: own changes first, then what propagated from upstream.
    pub reasons: Vec<String>,
    /// Upstream resources whose change propagated to this one.
    pub caused_by: Vec<String>,
    /// Attribute-level changes, configuration first, then values produced by apply.
    pub attributes: Vec<AttrChange>,
    /// Risk notes for reviewers.
    pub risks: Vec<Risk>,
}

/// One changed attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttrChange {
    /// `config.params.max_depth`, `config.features[amount_sum].window`, `produced.version`.
    pub path: String,
    /// Before.
    pub before: AttrValue,
    /// After.
    pub after: AttrValue,
    /// Does this change replace the resource?
    pub forces_replace: bool,
}

/// A value in a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttrValue {
    /// Not set.
    Absent,
    /// A value.
    Known(serde_json::Value),
    /// Known only after apply.
    Unknown,
    /// A secret: set, never shown.
    Sensitive,
}

/// How serious a risk note is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskLevel {
    /// Worth knowing.
    Info,
    /// Weakens a safeguard; check it is intended.
    Warn,
    /// Removes a safeguard or exposes users to an untested model.
    Danger,
}

/// An ML-aware note on a change ("gate lowered auc 0.85 → 0.7").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Risk {
    /// Severity.
    pub level: RiskLevel,
    /// What and why, in words.
    pub text: String,
}

/// Counts of resources per action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Created.
    pub create: usize,
    /// Updated in place.
    pub update: usize,
    /// Replaced.
    pub replace: usize,
    /// Destroyed.
    pub delete: usize,
    /// Unchanged.
    pub noop: usize,
}

impl Summary {
    /// Resources that change.
    pub fn changed(&self) -> usize {
        self.create + self.update + self.replace + self.delete
    }

    fn count(&mut self, action: Action) {
        match action {
            Action::Create => self.create += 1,
            Action::Update => self.update += 1,
            Action::Replace => self.replace += 1,
            Action::Delete => self.delete += 1,
            Action::NoOp => self.noop += 1,
        }
    }
}

/// The stage of the ML system a resource belongs to; renderings group changes by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layer {
    /// Sources and entities.
    Data,
    /// Feature views.
    Features,
    /// Training jobs.
    Training,
    /// Endpoints.
    Serving,
    /// Monitors and retrain policies.
    Monitoring,
}

impl Layer {
    /// Every layer, in pipeline order.
    pub const ALL: [Layer; 5] = [Layer::Data, Layer::Features, Layer::Training, Layer::Serving, Layer::Monitoring];

    /// The layer of a block kind.
    pub fn of(kind: &str) -> Layer {
        match kind {
            "source" | "entity" => Layer::Data,
            "feature_view" => Layer::Features,
            "training_job" => Layer::Training,
            "endpoint" => Layer::Serving,
            _ => Layer::Monitoring,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Data => "data",
            Layer::Features => "features",
            Layer::Training => "training",
            Layer::Serving => "serving",
            Layer::Monitoring => "monitoring",
        }
    }
}

/// Why a saved plan may not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StalePlan {
    /// The state now belongs to another lineage (or appeared, or vanished).
    #[error(
        "the saved plan was made against state lineage {}, but the state is now lineage {}; \
         it describes another system's state — run `mlops plan` again",
        opt(planned),
        opt(current)
    )]
    LineageChanged {
        /// Lineage in the plan.
        planned: Option<String>,
        /// Lineage now.
        current: Option<String>,
    },
    /// Someone applied since the plan was made.
    #[error(
        "the state moved since the plan was made (serial {} then, {} now): someone applied in between; \
         run `mlops plan` again and review the new plan",
        opt(planned),
        opt(current)
    )]
    StateMoved {
        /// Serial in the plan.
        planned: Option<u64>,
        /// Serial now.
        current: Option<u64>,
    },
    /// The configuration changed since the plan was made.
    #[error(
        "the configuration changed since the plan was made (spec hash {} then, {} now); \
         run `mlops plan` again and review the new plan",
        short_hash(planned),
        short_hash(current)
    )]
    SpecChanged {
        /// Spec hash in the plan.
        planned: String,
        /// Spec hash now.
        current: String,
    },
}

fn opt<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "(none)".to_string(), ToString::to_string)
}

fn short_hash(h: &str) -> &str {
    h.get(..12).unwrap_or(h)
}

/// Why a plan file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PlanFormatError {
    /// Not valid JSON or not a plan.
    #[error("invalid plan file: {0}")]
    Json(#[from] serde_json::Error),
    /// Written by an incompatible version.
    #[error("plan format version {found} is not supported (this mlops reads version {expected})")]
    Version {
        /// Found.
        found: u64,
        /// Supported.
        expected: u32,
    },
}

impl Plan {
    /// Does applying it change anything?
    pub fn has_changes(&self) -> bool {
        self.summary.changed() > 0
    }

    /// The canonical JSON text (pretty, trailing newline).
    pub fn to_json(&self) -> Result<String, PlanFormatError> {
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        Ok(s)
    }

    /// Parses a saved plan, refusing other format versions.
    pub fn from_json(text: &str) -> Result<Plan, PlanFormatError> {
        let v: serde_json::Value = serde_json::from_str(text)?;
        let found = v.get("format_version").and_then(serde_json::Value::as_u64).unwrap_or(0);
        if found != u64::from(FORMAT_VERSION) {
            return Err(PlanFormatError::Version { found, expected: FORMAT_VERSION });
        }
        Ok(serde_json::from_value(v)?)
    }

    /// Is the plan still a true description of what applying it would do? It is not when the
    /// state was written since (another lineage or a new serial) or the configuration changed.
    pub fn check_current(&self, spec: &SystemSpec, state: Option<&State>) -> Result<(), StalePlan> {
        let lineage = state.map(|s| s.lineage.clone());
        if lineage != self.state_lineage {
            return Err(StalePlan::LineageChanged { planned: self.state_lineage.clone(), current: lineage });
        }
        let serial = state.map(|s| s.serial);
        if serial != self.state_serial {
            return Err(StalePlan::StateMoved { planned: self.state_serial, current: serial });
        }
        let current = spec_hash(spec);
        if current != self.spec_hash {
            return Err(StalePlan::SpecChanged { planned: self.spec_hash.clone(), current });
        }
        Ok(())
    }

    /// Every risk note with the address it is about, most serious first (stable otherwise).
    pub fn risks(&self) -> Vec<(&str, &Risk)> {
        let mut all: Vec<(&str, &Risk)> =
            self.changes.iter().flat_map(|c| c.risks.iter().map(move |r| (c.address.as_str(), r))).collect();
        all.sort_by_key(|(_, r)| std::cmp::Reverse(r.level));
        all
    }
}

/// SHA-256 (hex) of a spec's canonical JSON.
pub fn spec_hash(spec: &SystemSpec) -> String {
    Sha256::digest(spec.to_json().as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The plan that destroys everything `state` records (`mlops destroy`, `plan --destroy`).
pub fn plan_destroy(spec: &SystemSpec, state: Option<&State>) -> Plan {
    let nothing = SystemSpec { resources: Vec::new(), outputs: BTreeMap::new(), ..spec.clone() };
    plan(&nothing, state)
}

/// Plans `spec` against `state` (`None`: nothing applied yet, everything is created).
pub fn plan(spec: &SystemSpec, state: Option<&State>) -> Plan {
    let empty = BTreeMap::new();
    let applied = state.map_or(&empty, |s| &s.resources);
    let mut effects = Effects::default();
    let mut changes = Vec::with_capacity(spec.resources.len());
    for r in &spec.resources {
        let prior = applied.get(&r.address);
        let change = plan_resource(&r.address, &r.config, prior, &mut effects);
        changes.push(change);
    }
    let configured: BTreeSet<&str> = spec.resources.iter().map(|r| r.address.as_str()).collect();
    // Who in state points at each resource being deleted (for an endpoint: the monitors and
    // policies that watched it), in address order.
    let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
    for (address, s) in applied {
        for d in s.spec.depends_on.iter().filter(|d| !configured.contains(d.as_str())) {
            dependents.entry(d.as_str()).or_default().push(address.as_str());
        }
    }
    for address in deletion_order(applied, &configured) {
        if let Some(prior) = applied.get(address) {
            let referenced_by: Vec<(&str, bool)> = dependents
                .get(address)
                .map(|ds| ds.iter().map(|d| (*d, configured.contains(d))).collect())
                .unwrap_or_default();
            changes.push(delete(address, prior, &referenced_by));
        }
    }
    let mut summary = Summary::default();
    for c in &changes {
        summary.count(c.action);
    }
    Plan {
        format_version: FORMAT_VERSION,
        system: spec.system.name.clone(),
        state_serial: state.map(|s| s.serial),
        state_lineage: state.map(|s| s.lineage.clone()),
        spec_hash: spec_hash(spec),
        changes,
        summary,
    }
}

fn plan_resource<'a>(
    address: &'a str,
    config: &'a Config,
    prior: Option<&'a ResourceState>,
    effects: &mut Effects<'a>,
) -> ResourceChange {
    let kind = config.kind();
    let Some(prior) = prior else {
        effects.record_create(address, config);
        let mut attributes = diff::listing(config);
        attributes.extend(diff::produced(None, diff::computed(kind)));
        return change(address, kind, Action::Create, vec!["not in state".into()], Vec::new(), attributes, Vec::new());
    };
    let before = &prior.spec.config;
    // Equal typed configurations are equal, whatever the stored hash says.
    let mut attributes = if before == config { Vec::new() } else { diff::diff(before, config) };
    let kind_changed = before.kind() != kind;
    let forced = kind_changed || attributes.iter().any(|a| a.forces_replace);
    let causes = propagate::causes(before, config, effects);
    let drifted = prior.drifted.as_ref();
    let action = if forced || causes.iter().any(|c| c.replaces) || drifted.is_some_and(|d| d.replace) {
        Action::Replace
    } else if !attributes.is_empty() || !causes.is_empty() || drifted.is_some() {
        Action::Update
    } else {
        Action::NoOp
    };
    let effect = effects.record(address, before, config, action, &causes);
    let mut reasons = diff::summarise(&attributes);
    if kind_changed {
        reasons.insert(0, format!("kind changed {} → {kind}", before.kind()));
    }
    reasons.extend(causes.iter().map(|c| c.reason.clone()));
    if let Some(d) = drifted {
        reasons.push(format!("changed outside mlops: {}", d.reason));
    }
    let unknown = match action {
        Action::Replace => diff::computed(kind),
        // Re-applied to repair drift: whatever it produces is recomputed.
        Action::Update if drifted.is_some() => diff::computed(kind),
        Action::Update => propagate::recomputed(config, &effect, !causes.is_empty()),
        _ => Vec::new(),
    };
    attributes.extend(diff::produced(Some(&prior.produced), unknown));
    let risks = risk::changed(action, before, config, effect.new_model);
    let caused_by = causes.into_iter().map(|c| c.address).collect();
    change(address, kind, action, reasons, caused_by, attributes, risks)
}

fn delete(address: &str, prior: &ResourceState, referenced_by: &[(&str, bool)]) -> ResourceChange {
    let risks = risk::deleted(&prior.spec.config, referenced_by);
    let kind = prior.spec.config.kind();
    change(address, kind, Action::Delete, vec!["removed from configuration".into()], Vec::new(), Vec::new(), risks)
}

fn change(
    address: &str,
    kind: &str,
    action: Action,
    reasons: Vec<String>,
    caused_by: Vec<String>,
    attributes: Vec<AttrChange>,
    risks: Vec<Risk>,
) -> ResourceChange {
    ResourceChange {
        address: address.to_string(),
        kind: kind.to_string(),
        action,
        reasons,
        caused_by,
        attributes,
        risks,
    }
}

/// Addresses in state but not configured, dependents before their dependencies (ties by
/// address). Dependencies on resources that are gone, or kept, are ignored; a cycle (only in a
/// corrupt state) is broken in address order rather than refused.
fn deletion_order<'a>(applied: &'a BTreeMap<String, ResourceState>, configured: &BTreeSet<&str>) -> Vec<&'a str> {
    let gone: BTreeSet<&str> = applied.keys().map(String::as_str).filter(|a| !configured.contains(a)).collect();
    let deps = |a: &str| -> Vec<&'a str> {
        applied
            .get(a)
            .map_or_else(Vec::new, |s| s.spec.depends_on.iter().filter_map(|d| gone.get(d.as_str()).copied()).collect())
    };
    let mut dependents: HashMap<&str, usize> = gone.iter().map(|a| (*a, 0)).collect();
    for a in &gone {
        for d in deps(a) {
            *dependents.entry(d).or_default() += 1;
        }
    }
    let mut ready: BTreeSet<&str> = gone.iter().copied().filter(|a| dependents.get(a) == Some(&0)).collect();
    let mut order = Vec::with_capacity(gone.len());
    let mut done: BTreeSet<&str> = BTreeSet::new();
    while order.len() < gone.len() {
        let next = match ready.pop_first() {
            Some(a) => a,
            None => match gone.iter().find(|a| !done.contains(*a)) {
                Some(a) => a,
                None => break,
            },
        };
        if !done.insert(next) {
            continue;
        }
        order.push(next);
        for d in deps(next) {
            if let Some(n) = dependents.get_mut(d) {
                *n = n.saturating_sub(1);
                if *n == 0 && !done.contains(d) {
                    ready.insert(d);
                }
            }
        }
    }
    order
}

#[cfg(test)]
mod tests;
