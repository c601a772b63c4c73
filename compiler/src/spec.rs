//! The SystemSpec: the versioned JSON IR that is the one contract between the compiler and
//! everything downstream (plan, the runtime, Kubernetes manifests, the Terraform provider).
//! Every reference is resolved to an address, modules are expanded, units are parsed, and the
//! serialisation is deterministic: the same input gives the same bytes.

use crate::graph::Graph;
use crate::model::{Config, Model, System};
use crate::value::InstanceKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Version of the SystemSpec format. Bumped on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// The compiled system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemSpec {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// Settings.
    pub system: System,
    /// Resources, in dependency order (ties by address).
    pub resources: Vec<ResourceSpec>,
    /// Root outputs by name.
    pub outputs: BTreeMap<String, OutputSpec>,
}

/// One resource instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceSpec {
    /// Full address, e.g. `module.fraud.endpoint.api`.
    pub address: String,
    /// Block name.
    pub name: String,
    /// Module instance path from the root.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub module: Vec<String>,
    /// `count` index or `for_each` key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<serde_json::Value>,
    /// Addresses this resource depends on (references and `depends_on`), sorted.
    pub depends_on: Vec<String>,
    /// SHA-256 of the configuration (kind + config), hex: equal hashes mean equal configuration.
    pub hash: String,
    /// Kind and typed configuration.
    #[serde(flatten)]
    pub config: Config,
}

/// A root output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSpec {
    /// The value; references are address strings (`endpoint.api.url`), resolved at apply.
    pub value: serde_json::Value,
    /// Never print the value.
    pub sensitive: bool,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl SystemSpec {
    /// Builds the spec from a checked model and its acyclic graph.
    pub fn build(model: &Model, graph: &Graph) -> SystemSpec {
        let order = graph.topological().unwrap_or_default();
        let mut resources = Vec::with_capacity(order.len());
        for address in order {
            let Some(r) = model.get(&address) else { continue };
            resources.push(ResourceSpec {
                address: address.clone(),
                name: r.address.name.clone(),
                module: r.address.module.clone(),
                key: r.address.key.as_ref().map(|k| match k {
                    InstanceKey::Index(i) => serde_json::Value::from(*i),
                    InstanceKey::Key(s) => serde_json::Value::from(s.clone()),
                }),
                depends_on: graph.dependencies(&address),
                hash: config_hash(&r.config),
                config: r.config.clone(),
            });
        }
        let outputs = model
            .outputs
            .iter()
            .map(|o| {
                (
                    o.name.clone(),
                    OutputSpec { value: o.value.to_json(), sensitive: o.sensitive, description: o.description.clone() },
                )
            })
            .collect();
        SystemSpec { format_version: FORMAT_VERSION, system: model.system.clone(), resources, outputs }
    }

    /// The canonical JSON text (pretty, trailing newline).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("a spec always serialises");
        s.push('\n');
        s
    }

    /// Parses a spec, refusing other format versions.
    pub fn from_json(text: &str) -> Result<SystemSpec, SpecError> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(SpecError::Json)?;
        let version = v.get("format_version").and_then(serde_json::Value::as_u64).unwrap_or(0);
        if version != u64::from(FORMAT_VERSION) {
            return Err(SpecError::Version { found: version, expected: FORMAT_VERSION });
        }
        serde_json::from_value(v).map_err(SpecError::Json)
    }

    /// The resource at an address.
    pub fn resource(&self, address: &str) -> Option<&ResourceSpec> {
        self.resources.iter().find(|r| r.address == address)
    }
}

/// Why a spec could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// Not valid JSON or not a spec.
    #[error("invalid SystemSpec: {0}")]
    Json(serde_json::Error),
    /// Written by an incompatible version.
    #[error("SystemSpec format version {found} is not supported (this mlops reads version {expected})")]
    Version {
        /// Found.
        found: u64,
        /// Supported.
        expected: u32,
    },
}

/// SHA-256 (hex) of a resource's kind and configuration.
pub fn config_hash(config: &Config) -> String {
    let json = serde_json::to_vec(config).expect("a config always serialises");
    let digest = Sha256::digest(&json);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}
