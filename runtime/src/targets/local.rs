//! The local target (the embedded default): the runtime on this machine, its stores under the
//! configuration's data directory. What applying each kind means:
//!
//! | kind | apply | destroy | refresh finds |
//! |---|---|---|---|
//! | source | reads every row against the declared schema; records `rows`, `watermark` and a fingerprint | nothing (the data is the user's) | files or rows changed since |
//! | entity | nothing to run: recorded | nothing | — |
//! | feature_view | materialises (incrementally; from scratch when its definition changed) | removes its offline and online store | store missing, or source data newer than it |
//! | training_job | create/replace: builds the training set, trains (or reuses an identical registered version), promotes it if it passes its gates; update (gates, resources …): judges the current version by the new gates; records `version`, `metrics`, `model_uri` | archives its versions (the files stay for audit) | version or model file missing or altered |
//!
//! Endpoints, monitors and retrain policies need the serving process, which this target does
//! not run yet: [`Target::supports`] says so, and apply leaves them planned.

use std::collections::BTreeMap;
use std::path::Path;

use arrow_array::{Array, TimestampMicrosecondArray};
use mlops_compiler::model::{Config, Source};
use mlops_compiler::plan::Action;
use mlops_compiler::spec::{ResourceSpec, SystemSpec};
use mlops_compiler::state::{Drifted, ResourceState};
use serde_json::{json, Value};

use super::{Produced, Target, TargetError};
use crate::data;
use crate::features::FeatureStore;
use crate::pipeline::Runtime;
use crate::registry::{Registry, RegistryError, Status};
use crate::train::TrainOptions;
use crate::workspace::Workspace;

/// The runtime on this machine.
pub struct LocalTarget {
    workspace: Workspace,
    train: TrainOptions,
}

impl LocalTarget {
    /// The local target of `spec`, configured in `root`.
    pub fn new(root: &Path, spec: &SystemSpec) -> LocalTarget {
        // No progress bars: apply prints one line per resource, and resources run in parallel.
        LocalTarget { workspace: Workspace::new(root, spec), train: TrainOptions { threads: None, progress: false } }
    }

    fn store(&self) -> Result<FeatureStore, TargetError> {
        FeatureStore::open(&self.workspace.features_dir()).map_err(TargetError::from_display)
    }

    fn registry(&self) -> Result<Registry, TargetError> {
        Registry::open(self.workspace.registry_dir()).map_err(TargetError::from_display)
    }

    fn root(&self) -> &Path {
        &self.workspace.root
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` (fraction dropped) of Unix microseconds.
fn rfc3339_micros(us: i64) -> String {
    crate::state::rfc3339(u64::try_from(us.div_euclid(1_000_000)).unwrap_or(0))
}

/// Reads every row of a source (checking each against the declared schema, as the readers do):
/// its row count and latest event time.
fn scan(source: &Source, address: &str, root: &Path) -> Result<(u64, Option<i64>), TargetError> {
    let reader = data::open(source, address, root).map_err(TargetError::from_display)?;
    let (mut rows, mut latest) = (0u64, None::<i64>);
    for batch in reader {
        let batch = batch.map_err(TargetError::from_display)?;
        rows += batch.num_rows() as u64;
        let times = source
            .timestamp
            .as_deref()
            .and_then(|c| batch.column_by_name(c))
            .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>().cloned());
        if let Some(times) = times {
            if let Some(max) = times.iter().flatten().max() {
                latest = Some(latest.map_or(max, |l: i64| l.max(max)));
            }
        }
    }
    Ok((rows, latest))
}

fn source_of<'a>(state: &'a BTreeMap<String, ResourceState>, address: &str) -> Option<&'a Source> {
    match state.get(address).map(|r| &r.spec.config) {
        Some(Config::Source(s)) => Some(s),
        _ => None,
    }
}

impl Target for LocalTarget {
    fn describe(&self) -> String {
        format!("local target (data in {})", self.workspace.data_dir.display())
    }

    fn supports(&self, kind: &str) -> Result<(), String> {
        match kind {
            "source" | "entity" | "feature_view" | "training_job" => Ok(()),
            "endpoint" | "monitor" | "retrain_policy" => Err(format!(
                "the local target does not run {} resources yet (serving and monitoring are not built); it stays planned",
                kind.replace('_', " ")
            )),
            other => Err(format!("the local target does not know resources of kind {other}")),
        }
    }

    fn apply(
        &self,
        spec: &SystemSpec,
        resource: &ResourceSpec,
        action: Action,
        prior: Option<&ResourceState>,
    ) -> Result<Produced, TargetError> {
        let address = resource.address.as_str();
        let runtime = Runtime::new(self.root(), spec);
        let mut produced = Produced::new();
        match &resource.config {
            Config::Source(source) => {
                let fingerprint = data::fingerprint(source, address, self.root()).map_err(TargetError::from_display)?;
                let (rows, latest) = scan(source, address, self.root())?;
                produced.insert("rows".into(), json!(rows));
                if let Some(t) = latest {
                    produced.insert("watermark".into(), json!(rfc3339_micros(t)));
                }
                produced.insert("_fingerprint".into(), json!(fingerprint));
            }
            Config::Entity(_) => {}
            Config::FeatureView(_) => {
                let report = runtime.materialize(address).map_err(TargetError::from_display)?;
                if let Some(w) = report.watermark {
                    produced.insert("watermark".into(), json!(rfc3339_micros(w)));
                }
            }
            Config::TrainingJob(_) => {
                // An update in place changes nothing the model is made from: keep the version.
                let kept = prior.and_then(|p| p.produced.get("version")).and_then(Value::as_u64);
                let outcome = match (action, kept.and_then(|v| u32::try_from(v).ok())) {
                    (Action::Update, Some(v)) => runtime.keep_job(address, v, &self.train),
                    _ => runtime.apply_job(address, &self.train),
                }
                .map_err(TargetError::from_display)?;
                let v = &outcome.version;
                produced.insert("version".into(), json!(v.version));
                produced.insert("metrics".into(), json!(v.metrics));
                // Absolute, so the value does not depend on how the directory was named on the
                // command line (`.`, `./x`, a full path).
                let path = std::fs::canonicalize(&v.model_path).unwrap_or_else(|_| v.model_path.clone());
                produced.insert("model_uri".into(), json!(path.display().to_string()));
                produced.insert("_data_hash".into(), json!(v.data_hash));
                produced.insert("_reused".into(), json!(outcome.reused));
            }
            other => return Err(TargetError(self.supports(other.kind()).err().unwrap_or_default())),
        }
        Ok(produced)
    }

    fn destroy(&self, address: &str, prior: &ResourceState) -> Result<(), TargetError> {
        match &prior.spec.config {
            Config::FeatureView(_) => self.store()?.reset(address).map_err(TargetError::from_display),
            Config::TrainingJob(_) => {
                let registry = self.registry()?;
                let versions = match registry.list(Some(address)) {
                    Ok(v) => v,
                    Err(RegistryError::UnknownJob { .. }) => return Ok(()),
                    Err(e) => return Err(TargetError::from_display(e)),
                };
                for v in versions.iter().filter(|v| v.status != Status::Archived) {
                    registry.archive(address, v.version).map_err(TargetError::from_display)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn refresh(
        &self,
        address: &str,
        prior: &ResourceState,
        state: &BTreeMap<String, ResourceState>,
    ) -> Result<Option<Drifted>, TargetError> {
        let update = |reason: String| Ok(Some(Drifted { reason, replace: false }));
        let replace = |reason: String| Ok(Some(Drifted { reason, replace: true }));
        match &prior.spec.config {
            Config::Source(source) => {
                let recorded = prior.produced.get("_fingerprint").and_then(Value::as_str);
                match data::fingerprint(source, address, self.root()) {
                    Err(e) => update(format!("cannot be read now: {e}")),
                    Ok(now) if recorded != Some(now.as_str()) => update("its data changed since it was read".into()),
                    Ok(_) => Ok(None),
                }
            }
            Config::FeatureView(view) => {
                let store = self.store()?;
                let materialised = store.source_fingerprint(address).map_err(TargetError::from_display)?;
                let Some(materialised) = materialised else {
                    return update("its feature store is missing".into());
                };
                let Some(source) = source_of(state, &view.source) else { return Ok(None) };
                match data::fingerprint(source, &view.source, self.root()) {
                    Ok(now) if now != materialised => {
                        update(format!("{} has data newer than its features", view.source))
                    }
                    _ => Ok(None),
                }
            }
            Config::TrainingJob(_) => {
                let Some(version) = prior.produced.get("version").and_then(Value::as_u64) else {
                    return Ok(None);
                };
                let registry = self.registry()?;
                let v = u32::try_from(version).unwrap_or(u32::MAX);
                match registry.get(address, v) {
                    Err(RegistryError::UnknownJob { .. } | RegistryError::UnknownVersion { .. }) => {
                        replace(format!("version {v} is missing from the model registry"))
                    }
                    Err(e) => replace(format!("version {v} cannot be read from the registry: {e}")),
                    Ok(meta) => match registry.model_json(&meta) {
                        Err(RegistryError::Checksum { .. }) => {
                            replace(format!("the model file of version {v} was modified"))
                        }
                        Err(_) => replace(format!("the model file of version {v} is missing")),
                        Ok(_) if meta.status != Status::Production => {
                            update(format!("version {v} is no longer in production (it is {})", meta.status))
                        }
                        Ok(_) => Ok(None),
                    },
                }
            }
            _ => Ok(None),
        }
    }
}
