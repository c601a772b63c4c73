//! The state snapshot: what was applied, as data. Written and read by the runtime's state
//! backends (local directory, PostgreSQL); diffed against a new [`SystemSpec`] by the pure
//! planner. Kept here, beside the spec, because the planner must not depend on the runtime.

use crate::spec::ResourceSpec;
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
}

/// One root output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputState {
    /// Its value.
    pub value: serde_json::Value,
    /// Never print it.
    pub sensitive: bool,
}

impl State {
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
