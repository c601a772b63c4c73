//! The local target (the embedded default): the runtime on this machine, its stores under the
//! configuration's data directory. What applying each kind means:
//!
//! | kind | apply | destroy | refresh finds |
//! |---|---|---|---|
//! | source | reads every row against the declared schema; records `rows`, `watermark` and a fingerprint | nothing (the data is the user's) | files or rows changed since |
//! | entity | nothing to run: recorded | nothing | — |
//! | feature_view | materialises (incrementally; from scratch when its definition changed) | removes its offline and online store | store missing, or source data newer than it |
//! | training_job | create/replace: builds the training set, trains (or reuses an identical registered version), promotes it if it passes its gates; update (gates, resources …): judges the current version by the new gates; records `version`, `metrics`, `model_uri` | archives its versions (the files stay for audit) | version or model file missing or altered |
//! | endpoint | starts the serving agent ([`crate::serve::agent`]) when none runs, then deploys the job's production version to it (a rollout over the version live); records `url` and `version` | removes it from the agent, and stops the agent when it serves nothing more | agent not running, endpoint missing or rolling out another version |
//!
//! An endpoint's name in URLs is its address without the `endpoint.` segment
//! (`module.fraud.endpoint.api` → `module.fraud.api`): `http://ADDRESS/v1/endpoints/NAME/predict`.
//!
//! Monitors and retrain policies need the monitoring loop, which this target does not run yet:
//! [`Target::supports`] says so, and apply leaves them planned.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow_array::{Array, TimestampMicrosecondArray};
use mlops_compiler::model::{Config, Endpoint, Source, Target as TargetConfig};
use mlops_compiler::plan::Action;
use mlops_compiler::spec::{ResourceSpec, SystemSpec};
use mlops_compiler::state::{Drifted, ResourceState};
use serde_json::{json, Value};

use super::{Produced, Target, TargetError, TargetOptions};
use crate::data;
use crate::features::FeatureStore;
use crate::pipeline::Runtime;
use crate::registry::{Registry, RegistryError, Status};
use crate::retrain::controller::{MonitorRequest, PolicyRequest};
use crate::serve::control::{self, Agent, DeployRequest};
use crate::train::TrainOptions;
use crate::workspace::Workspace;

/// The runtime on this machine.
pub struct LocalTarget {
    workspace: Workspace,
    train: TrainOptions,
    /// The serving agent's listen address.
    address: String,
    options: TargetOptions,
}

impl LocalTarget {
    /// The local target of `spec`, configured in `root`.
    pub fn new(root: &Path, spec: &SystemSpec, options: TargetOptions) -> LocalTarget {
        let address = match &spec.system.target {
            TargetConfig::Local { address, .. } => address.clone(),
            TargetConfig::Kubernetes { .. } => "127.0.0.1:8080".to_string(),
        };
        // No progress bars: apply prints one line per resource, and resources run in parallel.
        LocalTarget {
            workspace: Workspace::new(root, spec),
            train: TrainOptions { threads: None, progress: false },
            address,
            options,
        }
    }

    /// Does a running agent listen somewhere else than the configuration says?
    fn moved(&self, agent: &Agent) -> bool {
        let listens: Option<std::net::SocketAddr> = agent.file.address.parse().ok();
        let configured: Option<std::net::SocketAddr> = self.address.parse().ok();
        listens.is_some() && configured.is_some() && listens != configured
    }

    /// The running agent, started when none runs (and restarted when the configuration moved
    /// its address; it restores its endpoints).
    fn agent(&self) -> Result<Agent, TargetError> {
        let exe: PathBuf = self.options.mlops_exe.clone().ok_or_else(|| {
            TargetError("cannot start the serving agent: the path of the mlops executable is not known".into())
        })?;
        if let Some(running) = Agent::find(&self.workspace.data_dir).filter(|a| self.moved(a)) {
            running.stop(Duration::from_secs(30));
        }
        control::ensure_agent(&exe, self.root(), &self.workspace.data_dir, &self.address, Duration::from_secs(15))
            .map_err(TargetError::from_display)
    }

    fn apply_endpoint(&self, spec: &SystemSpec, address: &str, endpoint: &Endpoint) -> Result<Produced, TargetError> {
        let registry = self.registry()?;
        let version = registry
            .production(&endpoint.model)
            .map_err(TargetError::from_display)?
            .ok_or_else(|| TargetError(format!("{} has no version in production to serve", endpoint.model)))?;
        // The token is read here, in apply's environment, and only its digest is sent.
        let request = DeployRequest::for_endpoint(spec, address, self.root(), version.version).map_err(TargetError)?;
        let body = serde_json::to_string(&request).map_err(TargetError::from_display)?;
        let name = control::endpoint_name(address);
        let agent = self.agent()?;
        let _: Value =
            agent.call("PUT", &format!("/endpoints/{name}"), Some(&body)).and_then(|a| a.json("deploy")).map_err(
                |e| TargetError(format!("{e} (agent log: {})", control::agent_log(&self.workspace.data_dir).display())),
            )?;
        let mut produced = Produced::new();
        produced.insert("url".into(), json!(format!("http://{}/v1/endpoints/{name}", agent.file.address)));
        produced.insert("version".into(), json!(version.version));
        Ok(produced)
    }

    /// Deploys a monitor or policy (`kind`: `monitors`, `policies`) to the agent's controller.
    fn put_controlled(&self, kind: &str, address: &str, body: &impl serde::Serialize) -> Result<(), TargetError> {
        let body = serde_json::to_string(body).map_err(TargetError::from_display)?;
        let agent = self.agent()?;
        let _: Value = agent
            .call("PUT", &format!("/{kind}/{}", control::path_segment(address)), Some(&body))
            .and_then(|a| a.json("deploy"))
            .map_err(|e| {
                TargetError(format!("{e} (agent log: {})", control::agent_log(&self.workspace.data_dir).display()))
            })?;
        Ok(())
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
            "source" | "entity" | "feature_view" | "training_job" | "endpoint" | "monitor" | "retrain_policy" => Ok(()),
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
            Config::Endpoint(endpoint) => return self.apply_endpoint(spec, address, endpoint),
            Config::Monitor(_) => {
                let request = MonitorRequest::from_spec(spec, address, self.root()).map_err(TargetError)?;
                produced.insert("endpoint".into(), json!(request.endpoint));
                self.put_controlled("monitors", address, &request)?;
            }
            Config::RetrainPolicy(_) => {
                let request = PolicyRequest::from_spec(spec, address, self.root()).map_err(TargetError)?;
                if let Some(e) = &request.endpoint {
                    produced.insert("endpoint".into(), json!(e));
                }
                self.put_controlled("policies", address, &request)?;
            }
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
            Config::Monitor(_) | Config::RetrainPolicy(_) => {
                let Some(agent) = Agent::find(&self.workspace.data_dir) else { return Ok(()) };
                let kind = if matches!(prior.spec.config, Config::Monitor(_)) { "monitors" } else { "policies" };
                let _: Value = agent
                    .call("DELETE", &format!("/{kind}/{}", control::path_segment(address)), None)
                    .and_then(|a| a.json("delete"))
                    .map_err(TargetError::from_display)?;
                Ok(())
            }
            Config::Endpoint(_) => {
                let Some(agent) = Agent::find(&self.workspace.data_dir) else { return Ok(()) };
                let name = control::endpoint_name(address);
                let answer: Value = agent
                    .call("DELETE", &format!("/endpoints/{name}"), None)
                    .and_then(|a| a.json("delete"))
                    .map_err(TargetError::from_display)?;
                if answer["remaining"].as_u64() == Some(0) {
                    agent.stop(Duration::from_secs(30));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn adopt(
        &self,
        address: &str,
        prior: &ResourceState,
        state: &BTreeMap<String, ResourceState>,
    ) -> Result<Option<(String, Produced)>, TargetError> {
        let recorded = prior.produced.get("version").and_then(Value::as_u64);
        match &prior.spec.config {
            // Production moved to a version trained from this very configuration (a retrain
            // policy's, on newer data): that is what the configuration asks for.
            Config::TrainingJob(_) => {
                let registry = self.registry()?;
                let Ok(Some(p)) = registry.production(address) else { return Ok(None) };
                if Some(u64::from(p.version)) == recorded || p.spec_hash != prior.spec.hash {
                    return Ok(None);
                }
                let mut produced = Produced::new();
                produced.insert("version".into(), json!(p.version));
                produced.insert("metrics".into(), json!(p.metrics));
                let path = std::fs::canonicalize(&p.model_path).unwrap_or_else(|_| p.model_path.clone());
                produced.insert("model_uri".into(), json!(path.display().to_string()));
                produced.insert("_data_hash".into(), json!(p.data_hash));
                let from = recorded.map_or_else(|| "none".into(), |v| v.to_string());
                Ok(Some((format!("version {} promoted by the runtime (was {from})", p.version), produced)))
            }
            // The endpoint serves (or rolls out) a version of its job that a retrain trained
            // from the job's recorded configuration.
            Config::Endpoint(endpoint) => {
                let Some(agent) = Agent::find(&self.workspace.data_dir) else { return Ok(None) };
                let Ok(status) = agent.status() else { return Ok(None) };
                let name = control::endpoint_name(address);
                let Some(e) = status.endpoints.iter().find(|e| e.name == name) else { return Ok(None) };
                if Some(u64::from(e.desired_version)) == recorded {
                    return Ok(None);
                }
                let Some(job) = state.get(&endpoint.model) else { return Ok(None) };
                let Ok(meta) = self.registry()?.get(&endpoint.model, e.desired_version) else { return Ok(None) };
                let rolled_back = !e.rolling_out && e.stable_version != Some(e.desired_version);
                if meta.spec_hash != job.spec.hash || meta.status == Status::Archived || rolled_back {
                    return Ok(None);
                }
                let mut produced = Produced::new();
                produced.insert("version".into(), json!(e.desired_version));
                let how = if e.rolling_out { "rolling out" } else { "serving" };
                Ok(Some((format!("{how} version {} deployed by a retrain policy", e.desired_version), produced)))
            }
            _ => Ok(None),
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
            Config::Endpoint(_) => {
                let Some(agent) = Agent::find(&self.workspace.data_dir) else {
                    return update("the serving agent is not running".into());
                };
                if self.moved(&agent) {
                    return update(format!(
                        "the serving agent listens on {}, not {}",
                        agent.file.address, self.address
                    ));
                }
                let name = control::endpoint_name(address);
                let status = match agent.status() {
                    Ok(s) => s,
                    Err(e) => return update(format!("the serving agent does not answer: {e}")),
                };
                let recorded = prior.produced.get("version").and_then(Value::as_u64);
                match status.endpoints.iter().find(|e| e.name == name) {
                    None => update(format!("the serving agent does not serve endpoint `{name}`")),
                    Some(e) if Some(u64::from(e.desired_version)) != recorded => {
                        update(format!("the serving agent serves version {} of it", e.desired_version))
                    }
                    Some(e) if !e.rolling_out && e.stable_version != Some(e.desired_version) => update(format!(
                        "it serves version {} (rolled back)",
                        e.stable_version.map_or_else(|| "none".to_string(), |v| v.to_string())
                    )),
                    Some(_) => Ok(None),
                }
            }
            Config::Monitor(_) | Config::RetrainPolicy(_) => {
                let Some(agent) = Agent::find(&self.workspace.data_dir) else {
                    return update("the serving agent, which runs it, is not running".into());
                };
                let status = match agent.status() {
                    Ok(s) => s,
                    Err(e) => return update(format!("the serving agent does not answer: {e}")),
                };
                let known = status.monitors.iter().any(|m| m.address == address)
                    || status.policies.iter().any(|p| p.address == address);
                if known {
                    Ok(None)
                } else {
                    update("the serving agent does not run it".into())
                }
            }
            _ => Ok(None),
        }
    }
}
