//! The state snapshot: what was applied, as data. Written and read by the runtime's state
//! backends (local directory, PostgreSQL); diffed against a new [`SystemSpec`] by the pure
//! planner. Kept here, beside the spec, because the planner must not depend on the runtime.

use crate::spec::{ResourceSpec, SystemSpec};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the state format. Bumped on any incompatible change.
pub const STATE_FORMAT_VERSION: u32 = 1;

/// Everything mlops knows it applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// [`STATE_FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// Incremented by every write; a saved plan records the serial it was made against.
    pub serial: u64,
    /// Random id fixed when the state is first created: two states with different lineages
    /// are different systems, and one must never overwrite the other.
    pub lineage: String,
    /// The system's name (`mlops { name }`).
    pub system: String,
    /// Applied resources by address.
    pub resources: BTreeMap<String, ResourceState>,
    /// Root outputs after the last apply (sensitive ones included, flagged; never printed).
    #[serde(default)]
    pub outputs: BTreeMap<String, OutputState>,
}

/// One applied resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceState {
    /// The spec slice it was applied from (its `hash` says whether the configuration changed).
    pub spec: ResourceSpec,
    /// What the runtime produced: a model version, a materialised watermark, an endpoint URL …
    #[serde(default)]
    pub produced: BTreeMap<String, serde_json::Value>,
    /// When it was last applied, Unix seconds.
    pub applied_at: u64,
    /// Set by refresh when the world no longer matches what was applied (a model file deleted,
    /// source data changed since materialisation): the next plan re-applies the resource.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drifted: Option<Drifted>,
}

/// A difference between what was applied and what is there now, found by refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drifted {
    /// What changed, in words ("model file of version 3 is missing").
    pub reason: String,
    /// Must the resource be created again (a lost model: retrain), rather than updated?
    pub replace: bool,
}

/// One root output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputState {
    /// Its value.
    pub value: serde_json::Value,
    /// Never print it.
    pub sensitive: bool,
    /// Why the value is not known yet (a resource it refers to was not applied); `value` is null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
}

impl State {
    /// The state `spec` would leave if it had been applied with nothing produced yet: what
    /// `mlops diff` plans a revision of the configuration against, needing no real state.
    pub fn assumed(spec: &SystemSpec) -> State {
        let resources = spec
            .resources
            .iter()
            .map(|r| {
                let applied =
                    ResourceState { spec: r.clone(), produced: BTreeMap::new(), applied_at: 0, drifted: None };
                (r.address.clone(), applied)
            })
            .collect();
        State { resources, ..State::new(&spec.system.name, "assumed".to_string()) }
    }

    /// An empty state for a new system with a fresh lineage.
    pub fn new(system: &str, lineage: String) -> State {
        State {
            format_version: STATE_FORMAT_VERSION,
            serial: 0,
            lineage,
            system: system.to_string(),
            resources: BTreeMap::new(),
            outputs: BTreeMap::new(),
        }
    }
}
