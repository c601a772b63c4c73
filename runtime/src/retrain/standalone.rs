//! The controller in a process of its own — on Kubernetes, its own Deployment (one replica).
//! In: a compiled spec (the ConfigMap's `spec.json`), the root its relative source paths resolve
//! against, the shared data directory, a listen address. Out: the spec's monitors and retrain
//! policies run by [`Controller`] every second — monitors read every pod's prediction log,
//! retrains run in this process on the shared volume, every decision is an event in
//! `<data dir>/events/` — and `/healthz`, `/readyz`, `/metrics` (the loop's events and the
//! monitors' values) on the address.
//!
//! An accepted candidate rolls out through its endpoint's `rollout` block across every serving
//! pod ([`ClusterRollouts`]): the controller steps it, the replicas split their traffic as it
//! publishes, the rollback rule is judged on every replica's counters, and the last step
//! promotes the candidate in the registry, which the replicas follow.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use mlops_compiler::model::{Config, Rollback, Rollout as RolloutConfig};
use mlops_compiler::spec::SystemSpec;

use super::controller::{Controller, MonitorRequest, PolicyRequest, RolloutPhase, Rollouts};
use crate::registry::Registry;
use crate::serve::cluster::{self, Baseline, SharedRollout};

/// A replica's counter file untouched this long is a pod that is gone (live ones rewrite theirs
/// every poll interval).
const STALE_STATS: std::time::Duration = std::time::Duration::from_secs(3600);
use crate::serve::control::endpoint_name;
use crate::serve::external::{self, QueryVars};
use crate::serve::rollout::{is_external, Decision, Phase, Rollout};
use crate::serve::server::{Server, ServerOptions};
use crate::serve::Endpoints;

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Listen address (health and metrics).
    pub address: SocketAddr,
    /// The shared data directory (registry, features, prediction logs, events).
    pub data_dir: PathBuf,
    /// Where the spec's relative source paths resolve.
    pub root: PathBuf,
    /// The compiled system.
    pub spec: SystemSpec,
}

/// Why the controller stopped with an error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ControllerError(pub String);

/// Rollouts across the serving pods ([`crate::serve::cluster`]): the controller steps each
/// endpoint's [`Rollout`] as its `rollout` block says, publishes it in `rollouts/<endpoint>.json`
/// for the replicas to split their traffic, judges the rollback rule on the counters every pod
/// publishes, and promotes the candidate in the registry when the last step passes.
#[derive(Debug)]
pub struct ClusterRollouts {
    data_dir: PathBuf,
    /// Endpoint name → (the job it serves, its rollout block).
    endpoints: HashMap<String, (String, RolloutConfig)>,
    /// Per endpoint: every pod's counters when the current step began.
    bases: Mutex<HashMap<String, Baseline>>,
    /// Per endpoint: the last read of an external rollback metric.
    external: Mutex<HashMap<String, ExternalRead>>,
}

/// An external rollback metric as last read: (candidate, when in Unix milliseconds, the value
/// or why it could not be read).
type ExternalRead = (u32, u64, Result<f64, String>);

impl ClusterRollouts {
    /// The rollouts of `spec`'s endpoints, through the files and registry under `data_dir`.
    pub fn new(spec: &SystemSpec, data_dir: &Path) -> ClusterRollouts {
        let endpoints = spec
            .resources
            .iter()
            .filter_map(|r| match &r.config {
                Config::Endpoint(e) => Some((endpoint_name(&r.address), (e.model.clone(), e.rollout.clone()))),
                _ => None,
            })
            .collect();
        ClusterRollouts {
            data_dir: data_dir.to_path_buf(),
            endpoints,
            bases: Mutex::default(),
            external: Mutex::default(),
        }
    }

    fn registry(&self) -> Result<Registry, String> {
        Registry::open(self.data_dir.join("registry")).map_err(|e| e.to_string())
    }

    fn endpoint(&self, name: &str) -> Result<&(String, RolloutConfig), String> {
        self.endpoints.get(name).ok_or_else(|| format!("no endpoint named `{name}`"))
    }

    fn reset_base(&self, endpoint: &str) {
        let base = cluster::baseline(&cluster::read_stats(&self.data_dir, endpoint));
        self.bases.lock().unwrap_or_else(PoisonError::into_inner).insert(endpoint.to_string(), base);
    }

    fn publish(&self, endpoint: &str, job: &str, rollout: &Rollout) -> Result<(), String> {
        let shared = SharedRollout { endpoint: endpoint.to_string(), job: job.to_string(), rollout: rollout.clone() };
        cluster::write_rollout(&self.data_dir, &shared)
            .map_err(|e| format!("cannot publish the rollout of {endpoint}: {e}"))
    }

    /// The external rollback metrics due for a read: (endpoint, rule, candidate, previous).
    pub fn due_external(&self, now: u64) -> Vec<(String, Rollback, u32, Option<u32>)> {
        let read = self.external.lock().unwrap_or_else(PoisonError::into_inner);
        self.endpoints
            .keys()
            .filter_map(|name| {
                let r = cluster::read_rollout(&self.data_dir, name)?.rollout;
                let rule = r.rule.clone().filter(|rule| !r.finished() && is_external(rule))?;
                let fresh =
                    read.get(name).is_some_and(|(c, at, _)| *c == r.candidate && now.saturating_sub(*at) < 1000);
                (!fresh).then(|| (name.clone(), rule, r.candidate, r.previous))
            })
            .collect()
    }

    /// Records an external metric read for `endpoint`'s candidate.
    pub fn record_external(&self, endpoint: &str, candidate: u32, value: Result<f64, String>) {
        let mut read = self.external.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = &value {
            if read.get(endpoint).is_none_or(|(_, _, before)| before.as_ref().err() != Some(e)) {
                log(&format!("{endpoint}: cannot read the rollback metric, the step waits: {e}"));
            }
        }
        read.insert(endpoint.to_string(), (candidate, now_ms(), value));
    }

    /// Starts the rollouts training Jobs proposed (`mlops train --spec … --propose`): the
    /// version goes out through the `rollout` block of every endpoint serving its job — or is
    /// promoted at once when none does. A proposal waits while one of those endpoints is still
    /// rolling another candidate out; one for a version that cannot be rolled out (gone,
    /// archived, failed its gates) is dropped with a log line.
    pub fn adopt_proposals(&self) {
        for (file, p) in cluster::proposals(&self.data_dir) {
            let serving: Vec<&String> =
                self.endpoints.iter().filter(|(_, (job, _))| *job == p.job).map(|(name, _)| name).collect();
            let stepping: Vec<u32> = serving
                .iter()
                .filter_map(|name| cluster::read_rollout(&self.data_dir, name))
                .filter(|r| !r.rollout.finished())
                .map(|r| r.rollout.candidate)
                .collect();
            if stepping.contains(&p.version) {
                // Already going out (a Job retried): starting again would reset its steps.
                let _ = std::fs::remove_file(&file);
                continue;
            }
            if !stepping.is_empty() {
                continue;
            }
            let result = self.registry().and_then(|reg| {
                let v = reg.get(&p.job, p.version).map_err(|e| e.to_string())?;
                if !v.passed || v.status != crate::registry::Status::Candidate {
                    return Err(format!(
                        "version {} of {} is {} and {}",
                        p.version,
                        p.job,
                        v.status,
                        if v.passed { "passed its gates" } else { "failed its gates" }
                    ));
                }
                if serving.is_empty() {
                    reg.promote(&p.job, p.version, false).map_err(|e| e.to_string())?;
                    log(&format!(
                        "{}: version {} promoted (proposed by a training Job; no endpoint serves it)",
                        p.job, p.version
                    ));
                }
                for name in &serving {
                    self.roll_out(name, p.version)?;
                }
                Ok(())
            });
            if let Err(e) = result {
                log(&format!("error: {}: the proposed version {} is not rolled out: {e}", p.job, p.version));
            }
            if let Err(e) = std::fs::remove_file(&file) {
                log(&format!("error: cannot remove {}: {e}", file.display()));
            }
        }
    }

    /// Steps every rollout in progress at `now` (blocking: reads the pods' counters and the
    /// registry, writes the rollout file).
    pub fn drive(&self, now: u64) {
        for (name, (job, _)) in &self.endpoints {
            let gone = cluster::prune_stats(&self.data_dir, name, STALE_STATS);
            if !gone.is_empty() {
                log(&format!("{name}: removed the counters of replicas gone for over an hour: {}", gone.join(", ")));
            }
            let Some(shared) = cluster::read_rollout(&self.data_dir, name) else { continue };
            let mut r = shared.rollout;
            if r.finished() {
                continue;
            }
            let production = self.registry().and_then(|reg| reg.production(job).map_err(|e| e.to_string()));
            let decision = match production {
                Err(e) => {
                    log(&format!("error: {name}: cannot read the registry, the rollout waits: {e}"));
                    continue;
                }
                // Someone else moved production (a training Job with --promote): the replicas
                // follow it, and this rollout is over.
                Ok(p)
                    if p.as_ref().map(|p| p.version) != r.previous
                        && p.as_ref().map(|p| p.version) != Some(r.candidate) =>
                {
                    let now_serving = p.map_or_else(|| "none".to_string(), |p| p.version.to_string());
                    r.abort(&format!("production moved to version {now_serving} outside the rollout"))
                }
                Ok(_) => {
                    let base = self.bases.lock().unwrap_or_else(PoisonError::into_inner).get(name).cloned();
                    let base = match base {
                        Some(b) => b,
                        None => {
                            // A controller that restarted mid-step measures from now.
                            self.reset_base(name);
                            continue;
                        }
                    };
                    let mut window = cluster::window(&cluster::read_stats(&self.data_dir, name), &base, &r);
                    let started = r.step_started().unwrap_or(0);
                    window.external = self
                        .external
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get(name)
                        .filter(|(c, at, _)| *c == r.candidate && *at >= started)
                        .map(|(_, _, v)| v.clone());
                    r.evaluate(now, &window)
                }
            };
            let result = match &decision {
                Decision::Hold => continue,
                Decision::Weights { candidate } => {
                    self.reset_base(name);
                    log(&format!("{name}: version {} takes {candidate}% of traffic on every pod", r.candidate));
                    self.publish(name, job, &r)
                }
                // Production moves first: replicas then serve the candidate whatever the file says.
                Decision::Promote => self.registry().and_then(|reg| {
                    reg.promote(job, r.candidate, false).map_err(|e| e.to_string())?;
                    log(&format!("{name}: version {} promoted on every pod", r.candidate));
                    self.publish(name, job, &r)
                }),
                Decision::Rollback { reason } => {
                    log(&format!("{name}: version {} rolled back on every pod: {reason}", r.candidate));
                    self.publish(name, job, &r)
                }
            };
            if let Err(e) = result {
                log(&format!("error: {name}: {e}"));
            }
        }
    }
}

impl Rollouts for ClusterRollouts {
    fn roll_out(&self, endpoint: &str, version: u32) -> Result<(), String> {
        let (job, config) = self.endpoint(endpoint)?;
        let registry = self.registry()?;
        let production = registry.production(job).map_err(|e| e.to_string())?.map(|p| p.version);
        let (rollout, decision) = Rollout::start(config, version, production, now_ms());
        if decision == Decision::Promote {
            registry.promote(job, version, false).map_err(|e| e.to_string())?;
        }
        self.reset_base(endpoint);
        self.publish(endpoint, job, &rollout)?;
        log(&format!("{endpoint}: {}", rollout.describe(now_ms(), &Default::default())));
        Ok(())
    }

    fn rollout(&self, endpoint: &str) -> Option<(u32, RolloutPhase)> {
        let r = cluster::read_rollout(&self.data_dir, endpoint)?.rollout;
        let phase = match r.phase {
            Phase::Stepping { .. } => RolloutPhase::InProgress,
            Phase::Promoted => RolloutPhase::Promoted,
            Phase::RolledBack { reason } => RolloutPhase::RolledBack(reason),
        };
        Some((r.candidate, phase))
    }
}

/// Deploys the spec's monitors and policies to `controller` and removes the ones it ran for an
/// earlier spec; returns how many of each it runs.
pub fn sync(controller: &Controller, spec: &SystemSpec, root: &Path) -> Result<(usize, usize), String> {
    let (mut monitors, mut policies) = (Vec::new(), Vec::new());
    for r in &spec.resources {
        match &r.config {
            Config::Monitor(_) => monitors.push(MonitorRequest::from_spec(spec, &r.address, root)?),
            Config::RetrainPolicy(_) => policies.push(PolicyRequest::from_spec(spec, &r.address, root)?),
            _ => {}
        }
    }
    let (running_monitors, running_policies) = controller.status();
    let wanted = |a: &str| monitors.iter().any(|m| m.address == a) || policies.iter().any(|p| p.address == a);
    for address in running_monitors.iter().map(|m| &m.address).chain(running_policies.iter().map(|p| &p.address)) {
        if !wanted(address) {
            controller.remove(address);
        }
    }
    let counts = (monitors.len(), policies.len());
    for m in monitors {
        controller.put_monitor(m);
    }
    for p in policies {
        controller.put_policy(p);
    }
    Ok(counts)
}

fn log(line: &str) {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    eprintln!("{} mlops controller: {line}", crate::state::rfc3339(secs));
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Runs the controller until `shutdown` completes (a retrain still running then is recorded as
/// failed by the next start, as with the local agent's controller).
pub async fn run(
    options: ControllerOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ControllerError> {
    // The controller keeps its state in `<data dir>/agent/controller.json`, as in the local agent.
    let state_dir = crate::serve::control::agent_dir(&options.data_dir);
    std::fs::create_dir_all(&state_dir)
        .map_err(|e| ControllerError(format!("cannot create {}: {e}", state_dir.display())))?;
    let endpoints = Arc::new(Endpoints::new());
    let controller = {
        let (data_dir, metrics) = (options.data_dir.clone(), endpoints.metrics().clone());
        tokio::task::spawn_blocking(move || Controller::open(&data_dir, Some(metrics)))
            .await
            .map_err(|e| ControllerError(e.to_string()))?
    };
    let controller = Arc::new(controller);
    let (monitors, policies) = sync(&controller, &options.spec, &options.root).map_err(ControllerError)?;
    let cluster = Arc::new(ClusterRollouts::new(&options.spec, &options.data_dir));
    let rollouts: Arc<dyn Rollouts> = cluster.clone();
    endpoints.set_ready(true);
    let server = Server::start(options.address, endpoints, ServerOptions::default())
        .await
        .map_err(|e| ControllerError(e.to_string()))?;
    log(&format!(
        "listening on {} (pid {}): {monitors} monitor(s), {policies} retrain polic{}, data in {}",
        server.local_addr(),
        std::process::id(),
        if policies == 1 { "y" } else { "ies" },
        options.data_dir.display()
    ));
    let ticks = {
        let controller = controller.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let http = reqwest::Client::new();
            loop {
                tick.tick().await;
                // External rollback metrics first, without blocking a thread on them.
                for (name, rule, candidate, previous) in cluster.due_external(now_ms()) {
                    let vars = QueryVars { endpoint: &name, candidate, previous };
                    let value = external::read(&http, &rule, &vars).await;
                    cluster.record_external(&name, candidate, value);
                }
                let (c, rollouts, cluster) = (controller.clone(), rollouts.clone(), cluster.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    cluster.adopt_proposals();
                    cluster.drive(now_ms());
                    c.tick(&rollouts, now_ms());
                })
                .await;
            }
        })
    };
    shutdown.await;
    log("shutting down");
    ticks.abort();
    server.shutdown().await;
    log("stopped");
    Ok(())
}
