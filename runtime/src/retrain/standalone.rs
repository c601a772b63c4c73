//! The controller in a process of its own — on Kubernetes, its own Deployment (one replica).
//! In: a compiled spec (the ConfigMap's `spec.json`), the root its relative source paths resolve
//! against, the shared data directory, a listen address. Out: the spec's monitors and retrain
//! policies run by [`Controller`] every second — monitors read every pod's prediction log,
//! retrains run in this process on the shared volume, every decision is an event in
//! `<data dir>/events/` — and `/healthz`, `/readyz`, `/metrics` (the loop's events and the
//! monitors' values) on the address.
//!
//! An accepted candidate is promoted in the registry ([`RegistryRollouts`]); every serving pod
//! follows the registry's production version and switches to it within its poll interval. That
//! switch is immediate: a canary across pods is not built yet.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mlops_compiler::model::Config;
use mlops_compiler::spec::SystemSpec;

use super::controller::{Controller, MonitorRequest, PolicyRequest, RolloutPhase, Rollouts};
use crate::registry::Registry;
use crate::serve::control::endpoint_name;
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

/// Rollouts through the registry: serving pods follow its production version, so rolling a
/// candidate out is promoting it there (immediately, on every replica).
#[derive(Debug)]
pub struct RegistryRollouts {
    data_dir: PathBuf,
    /// Endpoint name → the job it serves.
    jobs: HashMap<String, String>,
}

impl RegistryRollouts {
    /// The rollouts of `spec`'s endpoints, through the registry under `data_dir`.
    pub fn new(spec: &SystemSpec, data_dir: &Path) -> RegistryRollouts {
        let jobs = spec
            .resources
            .iter()
            .filter_map(|r| match &r.config {
                Config::Endpoint(e) => Some((endpoint_name(&r.address), e.model.clone())),
                _ => None,
            })
            .collect();
        RegistryRollouts { data_dir: data_dir.to_path_buf(), jobs }
    }

    fn registry(&self) -> Result<Registry, String> {
        Registry::open(self.data_dir.join("registry")).map_err(|e| e.to_string())
    }

    fn job(&self, endpoint: &str) -> Result<&str, String> {
        self.jobs.get(endpoint).map(String::as_str).ok_or_else(|| format!("no endpoint named `{endpoint}`"))
    }
}

impl Rollouts for RegistryRollouts {
    fn roll_out(&self, endpoint: &str, version: u32) -> Result<(), String> {
        let job = self.job(endpoint)?;
        self.registry()?.promote(job, version, false).map_err(|e| e.to_string())?;
        Ok(())
    }

    fn rollout(&self, endpoint: &str) -> Option<(u32, RolloutPhase)> {
        let job = self.job(endpoint).ok()?;
        let production = self.registry().ok()?.production(job).ok()??;
        Some((production.version, RolloutPhase::Promoted))
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
    let rollouts: Arc<dyn Rollouts> = Arc::new(RegistryRollouts::new(&options.spec, &options.data_dir));
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
            loop {
                tick.tick().await;
                let (c, rollouts) = (controller.clone(), rollouts.clone());
                let _ = tokio::task::spawn_blocking(move || c.tick(&rollouts, now_ms())).await;
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
