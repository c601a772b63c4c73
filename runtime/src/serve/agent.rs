//! The serving agent: the long-running local process `mlops apply` deploys endpoints into. In:
//! the local target's address and data directory. Out: the data plane ([`super::Server`]) and,
//! on the same listener under `/_mlops/v1/…` (bearer token from `agent.json`), the control API:
//!
//! - `PUT /_mlops/v1/endpoints/{name}` ([`DeployRequest`]): loads the version from the
//!   registry and rolls it out over the version live now ([`Rollout`]; the first is immediate);
//! - `DELETE /_mlops/v1/endpoints/{name}`; `POST /_mlops/v1/endpoints/{name}/rollback`;
//! - `GET /_mlops/v1/status` ([`StatusReport`]).
//!
//! A driver task ticks every rollout in progress every 250 ms with the candidate's window
//! (requests, 5xx answers, latencies and scores since its step began — the scores compared with
//! the previous version's over the same time — and, for a `prometheus` / `scrape` rule, the
//! metric read at most once a second without holding the state lock) and applies the decision;
//! the same tick reloads an endpoint's online features when a materialisation rewrote them. The desired
//! endpoints and their rollouts are kept in `<data_dir>/agent/endpoints.json` and restored on
//! start.
//!
//! **In a pod** ([`AgentOptions::from_spec`]) the agent does not wait for `apply`: it publishes
//! the named endpoints of a compiled spec itself — the registry's production version of each
//! endpoint's job, through the same [`DeployRequest`] `apply` sends — and polls the registry for
//! a new production version (a training Job or the controller promoted one), switching to it
//! without dropping a request. It stays not ready (`/readyz` 503) until every endpoint serves,
//! logging why it waits. Several replicas share the data directory, so a pod keeps nothing of
//! its own there but its prediction log (`predictions/<endpoint>/pods/<pod>/`): no
//! `agent.json`, no `endpoints.json`, no control API, no controller (the controller runs in its
//! own process: [`crate::retrain::standalone`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use mlops_compiler::model::Rollback;
use mlops_compiler::spec::SystemSpec;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::Mutex;

use super::control::{
    self, agent_dir, agent_file, AgentFile, DeployRequest, EndpointStatus, StatusReport, VersionStatus, PREFIX,
};
use super::endpoints::{BearerToken, EndpointSettings, Endpoints};
use super::external::{self, QueryVars};
use super::model::ServingModel;
use super::online::OnlineStoreFeatures;
use super::predlog::PredictionLogOptions;
use super::rollout::{is_external, Decision, Phase, Rollout, Window};
use super::server::{Server, ServerOptions};
use crate::features::FeatureStore;
use crate::registry::Registry;
use crate::retrain::controller::{Controller, MonitorRequest, PolicyRequest, RolloutPhase, Rollouts};

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// Listen address.
    pub address: SocketAddr,
    /// The local target's data directory (in a pod: the shared volume).
    pub data_dir: PathBuf,
    /// In a pod: the endpoints to publish from a compiled spec; `None`: `apply` deploys them.
    pub from_spec: Option<FromSpec>,
}

/// What a pod's agent serves, from its compiled spec.
#[derive(Debug, Clone)]
pub struct FromSpec {
    /// The compiled system (the ConfigMap's `spec.json`).
    pub spec: SystemSpec,
    /// Where relative paths of the spec resolve (`MLOPS_ROOT`): token files.
    pub root: PathBuf,
    /// The endpoints' addresses.
    pub endpoints: Vec<String>,
    /// This replica's name (its prediction log directory).
    pub pod: String,
    /// How often the registry is read for a new production version.
    pub poll: Duration,
    /// On SIGTERM, how long it keeps serving, not ready, before it stops accepting: the time
    /// Kubernetes takes to take the pod out of its Service.
    pub shutdown_delay: Duration,
}

/// One endpoint as the agent keeps it (persisted).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Managed {
    request: DeployRequest,
    /// The version serving all traffic outside a rollout (the base of the current one).
    stable: Option<u32>,
    /// The last rollout (finished or not).
    rollout: Option<Rollout>,
    /// The candidate's counters when its step began.
    #[serde(skip)]
    base: Counters,
    /// The previous version's score counts when the step began.
    #[serde(skip)]
    base_previous_scores: Vec<u64>,
    /// The last read of an external rollback metric: (candidate, when, value or why not).
    #[serde(skip)]
    external: Option<(u32, u64, Result<f64, String>)>,
    /// When each online store the endpoint reads was written, as last loaded.
    #[serde(skip)]
    online_written: Vec<Option<SystemTime>>,
    #[serde(skip)]
    models: BTreeMap<u32, Arc<ServingModel>>,
}

impl Managed {
    /// A new endpoint, serving nothing yet.
    fn new(request: DeployRequest) -> Managed {
        Managed {
            request,
            stable: None,
            rollout: None,
            base: Counters::default(),
            base_previous_scores: Vec::new(),
            external: None,
            online_written: Vec::new(),
            models: BTreeMap::new(),
        }
    }
}

/// A version's counters at one moment.
#[derive(Debug, Clone, Default)]
struct Counters {
    requests: u64,
    errors: u64,
    /// Cumulative latency histogram.
    latency: Vec<(f64, u64)>,
    /// Score counts per bucket.
    scores: Vec<u64>,
}

/// How often an external rollback metric is read.
const EXTERNAL_READ_EVERY_MS: u64 = 1000;

/// Population stability index of `current`'s score buckets against `reference`'s (the drift
/// statistics' [`psi`](crate::monitor::drift::psi), empty buckets at its ε); `None` while
/// either has no observation.
pub(crate) fn score_psi(reference: &[u64], current: &[u64]) -> Option<f64> {
    let seen = |c: &[u64]| c.iter().any(|n| *n > 0);
    (seen(reference) && seen(current) && reference.len() == current.len())
        .then(|| crate::monitor::drift::psi(reference, current))
}

/// `now − then` per element (counters only grow; a restart resets both to 0).
fn since(now: &[u64], then: &[u64]) -> Vec<u64> {
    now.iter().enumerate().map(|(i, n)| n.saturating_sub(then.get(i).copied().unwrap_or(0))).collect()
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Persisted {
    endpoints: BTreeMap<String, Managed>,
}

struct Control {
    endpoints: Arc<Endpoints>,
    token: BearerToken,
    data_dir: PathBuf,
    state: Mutex<Persisted>,
    pid: u32,
    address: String,
    /// Reads external rollback metrics.
    http: reqwest::Client,
    /// Runs the monitors and retrain policies (none in a pod: the controller runs apart).
    controller: Option<Arc<Controller>>,
    /// In a pod: nothing persisted (replicas share the directory), rollouts are the
    /// controller's ([`super::cluster`]), counters are published for it.
    in_pod: bool,
    /// When this process started, Unix milliseconds (its counters count from then).
    started_ms: u64,
}

/// One line to the agent's standard error (`agent.log` when apply started it): what it did to
/// the endpoints, stamped with the time.
fn log(line: &str) {
    let secs = now_ms() / 1000;
    eprintln!("{} mlops agent: {line}", crate::state::rfc3339(secs));
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn reply(status: StatusCode, body: &impl Serialize) -> Response {
    let text = serde_json::to_string(body).unwrap_or_else(|_| "null".into());
    (status, [(axum::http::header::CONTENT_TYPE, "application/json")], text).into_response()
}

fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    reply(status, &json!({ "error": message.to_string() }))
}

/// A random token: 32 bytes of `/dev/urandom` in hex (with a time-seeded fallback).
fn random_token() -> String {
    use std::io::Read;
    let mut buf = [0u8; 32];
    let ok = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf)).is_ok();
    if !ok {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (super::util::random_u64() >> (i % 8)) as u8;
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `text` to `path` atomically (temporary file, fsync, rename) with `mode`.
fn write_atomic(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(mode).open(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

impl Control {
    fn load_model(&self, job: &str, version: u32) -> Result<Arc<ServingModel>, String> {
        let registry = Registry::open(self.data_dir.join("registry")).map_err(|e| e.to_string())?;
        let meta = registry.get(job, version).map_err(|e| e.to_string())?;
        let json = registry.model_json(&meta).map_err(|e| e.to_string())?;
        ServingModel::load(&meta, &json).map(Arc::new).map_err(|e| e.to_string())
    }

    fn settings(&self, r: &DeployRequest) -> Result<EndpointSettings, String> {
        let mut spec = r.spec.clone();
        let token = match &r.token_sha256 {
            Some(hex) => {
                spec.auth = None;
                Some(BearerToken::from_sha256_hex(hex).map_err(|e| e.to_string())?)
            }
            None => None,
        };
        let mut settings = EndpointSettings::from_spec(&spec, &r.base_dir).map_err(|e| e.to_string())?;
        if token.is_some() {
            settings.token = token;
        }
        settings.sticky_key = r.online.first().and_then(|v| v.join_keys.first()).cloned();
        if !r.online.is_empty() {
            let store = FeatureStore::open(&self.data_dir.join("features")).map_err(|e| e.to_string())?;
            let mut views = Vec::new();
            for v in &r.online {
                let online = store.online(&v.address).map_err(|e| format!("online features of {}: {e}", v.address))?;
                views.push((online, v.join_keys.clone()));
            }
            let source = OnlineStoreFeatures::new(views).map_err(|e| e.to_string())?;
            settings.features = Some(Arc::new(source));
        }
        Ok(settings)
    }

    /// When each of the endpoint's online stores was written.
    fn online_written(&self, r: &DeployRequest) -> Vec<Option<SystemTime>> {
        if r.online.is_empty() {
            return Vec::new();
        }
        let Ok(store) = FeatureStore::open(&self.data_dir.join("features")) else { return Vec::new() };
        r.online.iter().map(|v| store.online_written(&v.address)).collect()
    }

    /// Makes the endpoint's traffic table match `m`'s rollout (or its stable version), and
    /// starts a new measurement window.
    fn publish(&self, name: &str, m: &mut Managed) -> Result<(), String> {
        self.upsert(name, m)?;
        self.reset_base(name, m);
        Ok(())
    }

    /// Builds the endpoint's settings (online stores loaded now) and traffic table and swaps
    /// them in; requests in flight finish on the old ones.
    fn upsert(&self, name: &str, m: &mut Managed) -> Result<(), String> {
        // Stamped before loading: a store rewritten meanwhile is loaded again on the next tick.
        let written = self.online_written(&m.request);
        let settings = self.settings(&m.request)?;
        let mut table: Vec<(u32, u32)> = Vec::new();
        match &m.rollout {
            Some(r) if !r.finished() => {
                let pct = r.candidate_percent().round().clamp(1.0, 100.0) as u32;
                table.push((r.candidate, pct));
                if let Some(p) = r.previous {
                    table.push((p, 100 - pct));
                }
            }
            _ => {
                if let Some(s) = m.stable {
                    table.push((s, 100));
                }
            }
        }
        let mut versions = Vec::new();
        for (v, w) in &table {
            let model = match m.models.get(v) {
                Some(model) => model.clone(),
                None => {
                    let model = self.load_model(&m.request.job, *v)?;
                    m.models.insert(*v, model.clone());
                    model
                }
            };
            versions.push((model, *w));
        }
        m.models.retain(|v, _| table.iter().any(|(t, _)| t == v));
        // A weight of 0 cannot be published alone; it keeps the version loaded (reachable by version).
        if versions.iter().all(|(_, w)| *w == 0) {
            return Err("no version takes traffic".into());
        }
        self.endpoints.upsert(name, settings, versions).map_err(|e| e.to_string())?;
        m.online_written = written;
        Ok(())
    }

    /// Starts a new measurement window (a new step, a republished table).
    fn reset_base(&self, name: &str, m: &mut Managed) {
        if let Some(r) = &m.rollout {
            m.base = self.counters(name, r.candidate);
            m.base_previous_scores = r.previous.and_then(|p| self.endpoints.scores(name, p)).unwrap_or_default();
        }
    }

    fn counters(&self, name: &str, version: u32) -> Counters {
        let (requests, errors) = self
            .endpoints
            .snapshot()
            .into_iter()
            .find(|e| e.name == name)
            .and_then(|e| e.versions.into_iter().find(|v| v.version == version))
            .map_or((0, 0), |v| (v.requests, v.server_errors));
        Counters {
            requests,
            errors,
            latency: self.endpoints.latency(name, version).unwrap_or_default(),
            scores: self.endpoints.scores(name, version).unwrap_or_default(),
        }
    }

    /// What the candidate did since its step began.
    fn window(&self, name: &str, m: &Managed) -> Window {
        let Some(r) = &m.rollout else { return Window::default() };
        let now = self.counters(name, r.candidate);
        let latency = now
            .latency
            .iter()
            .enumerate()
            .map(|(i, (bound, n))| (*bound, n.saturating_sub(m.base.latency.get(i).map_or(0, |b| b.1))))
            .collect();
        let candidate_scores = since(&now.scores, &m.base.scores);
        let previous_scores =
            r.previous.and_then(|p| self.endpoints.scores(name, p)).map(|s| since(&s, &m.base_previous_scores));
        let started = r.step_started().unwrap_or(0);
        let external = m
            .external
            .as_ref()
            .filter(|(candidate, at, _)| *candidate == r.candidate && *at >= started)
            .map(|(_, _, value)| value.clone());
        Window {
            requests: now.requests.saturating_sub(m.base.requests),
            errors: now.errors.saturating_sub(m.base.errors),
            latency,
            score_drift: previous_scores.and_then(|p| score_psi(&p, &candidate_scores)),
            external,
        }
    }

    /// Applies a decision to `m` and the traffic table.
    fn apply(&self, name: &str, m: &mut Managed, decision: Decision) -> Result<(), String> {
        match decision {
            Decision::Hold => return Ok(()),
            Decision::Weights { candidate } => {
                let Some(r) = &m.rollout else { return Ok(()) };
                let pct = candidate.round().clamp(1.0, 100.0) as u32;
                let mut w = vec![(r.candidate, pct)];
                if let Some(p) = r.previous {
                    w.push((p, 100 - pct));
                }
                self.endpoints.set_weights(name, &w).map_err(|e| e.to_string())?;
                let candidate = r.candidate;
                self.reset_base(name, m);
                log(&format!("{name}: version {candidate} takes {pct}% of traffic"));
            }
            Decision::Promote => {
                if let Some(r) = &m.rollout {
                    m.stable = Some(r.candidate);
                    log(&format!("{name}: version {} promoted", r.candidate));
                }
                self.publish(name, m)?;
            }
            Decision::Rollback { reason } => {
                if let Some(r) = &m.rollout {
                    m.stable = r.previous.or(m.stable);
                    log(&format!("{name}: version {} rolled back: {reason}", r.candidate));
                }
                self.publish(name, m)?;
            }
        }
        Ok(())
    }

    async fn persist(&self, state: &Persisted) {
        self.persist_now(state);
    }

    fn persist_now(&self, state: &Persisted) {
        if self.in_pod {
            return;
        }
        let path = agent_dir(&self.data_dir).join("endpoints.json");
        match serde_json::to_string_pretty(state) {
            Ok(text) => {
                if let Err(e) = write_atomic(&path, &text, 0o600) {
                    log(&format!("error: cannot persist the endpoints to {}: {e}", path.display()));
                }
            }
            Err(e) => log(&format!("error: cannot serialise the endpoints: {e}")),
        }
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| self.token.verify(t.trim()))
    }

    fn status(&self, state: &Persisted) -> StatusReport {
        let snapshot = self.endpoints.snapshot();
        let now = now_ms();
        let endpoints = state
            .endpoints
            .iter()
            .map(|(name, m)| {
                let snap = snapshot.iter().find(|e| &e.name == name);
                let total: u64 = snap.map_or(0, |s| s.versions.iter().map(|v| u64::from(v.weight)).sum());
                let versions = snap.map_or_else(Vec::new, |s| {
                    s.versions
                        .iter()
                        .map(|v| VersionStatus {
                            version: v.version,
                            percent: if total == 0 { 0.0 } else { f64::from(v.weight) * 100.0 / total as f64 },
                            requests: v.requests,
                            client_errors: v.client_errors,
                            server_errors: v.server_errors,
                        })
                        .collect()
                });
                EndpointStatus {
                    name: name.clone(),
                    address: m.request.address.clone(),
                    job: m.request.job.clone(),
                    desired_version: m.request.version,
                    stable_version: m.stable,
                    versions,
                    requests: snap.map_or(0, |s| s.requests),
                    healthy: total > 0,
                    rollout: m.rollout.as_ref().map(|r| r.describe(now, &self.window(name, m))),
                    rolling_out: m.rollout.as_ref().is_some_and(|r| !r.finished()),
                }
            })
            .collect();
        let (monitors, policies) = self.controller.as_ref().map(|c| c.status()).unwrap_or_default();
        StatusReport { pid: self.pid, address: self.address.clone(), endpoints, monitors, policies }
    }
}

type Shared = Arc<Control>;

async fn put_endpoint(
    State(c): State<Shared>,
    headers: HeaderMap,
    UrlPath(name): UrlPath<String>,
    body: axum::body::Bytes,
) -> Response {
    if !c.authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "a valid control token is required");
    }
    let request: DeployRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad deploy request: {e}")),
    };
    let mut state = c.state.lock().await;
    let result = {
        let c = c.clone();
        let name = name.clone();
        let existing = state.endpoints.get(&name).cloned();
        // Loading a model and its online features reads files: off the async workers.
        tokio::task::spawn_blocking(move || deploy(&c, &name, existing, request)).await
    };
    match result {
        Ok(Ok(m)) => {
            log(&format!(
                "{name}: deployed; {}",
                m.rollout.as_ref().map_or_else(String::new, |r| r.describe(now_ms(), &Window::default()))
            ));
            state.endpoints.insert(name.clone(), m);
            c.persist(&state).await;
            let report = c.status(&state);
            let e = report.endpoints.into_iter().find(|e| e.name == name);
            reply(StatusCode::OK, &json!(e))
        }
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// The endpoint after deploying `request` over what `existing` serves.
fn deploy(c: &Control, name: &str, existing: Option<Managed>, request: DeployRequest) -> Result<Managed, String> {
    let version = request.version;
    let mut m = existing.unwrap_or_else(|| Managed::new(request.clone()));
    let target = m.rollout.as_ref().filter(|r| !matches!(r.phase, Phase::RolledBack { .. })).map(|r| r.candidate);
    let same = target == Some(version) || (m.rollout.is_none() && m.stable == Some(version));
    m.request = request;
    if !same {
        // A rollout in progress is abandoned: the new version rolls out over the stable one.
        let (r, decision) = Rollout::start(&m.request.spec.rollout, version, m.stable, now_ms());
        if matches!(decision, Decision::Promote) {
            m.stable = Some(version);
        }
        m.rollout = Some(r);
    }
    c.publish(name, &mut m)?;
    Ok(m)
}

async fn delete_endpoint(State(c): State<Shared>, headers: HeaderMap, UrlPath(name): UrlPath<String>) -> Response {
    if !c.authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "a valid control token is required");
    }
    let mut state = c.state.lock().await;
    let existed = state.endpoints.remove(&name).is_some();
    c.endpoints.remove(&name);
    c.persist(&state).await;
    reply(StatusCode::OK, &json!({ "deleted": existed, "remaining": state.endpoints.len() }))
}

async fn rollback_endpoint(State(c): State<Shared>, headers: HeaderMap, UrlPath(name): UrlPath<String>) -> Response {
    if !c.authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "a valid control token is required");
    }
    let mut state = c.state.lock().await;
    let Some(mut m) = state.endpoints.get(&name).cloned() else {
        return error(StatusCode::NOT_FOUND, format!("no endpoint named `{name}`"));
    };
    let Some(mut r) = m.rollout.clone() else {
        return error(StatusCode::CONFLICT, format!("endpoint `{name}` has no rollout to roll back"));
    };
    let Some(previous) = r.previous else {
        return error(StatusCode::CONFLICT, format!("version {} of `{name}` has no previous version", r.candidate));
    };
    if matches!(r.phase, Phase::RolledBack { .. }) {
        return error(StatusCode::CONFLICT, format!("version {} was already rolled back", r.candidate));
    }
    let decision = r.abort("rolled back by `mlops rollback`");
    m.rollout = Some(r);
    m.stable = Some(previous);
    let result = {
        let c = c.clone();
        let name = name.clone();
        tokio::task::spawn_blocking(move || c.apply(&name, &mut m, decision).map(|()| m)).await
    };
    match result {
        Ok(Ok(m)) => {
            state.endpoints.insert(name.clone(), m);
            c.persist(&state).await;
            let e = c.status(&state).endpoints.into_iter().find(|e| e.name == name);
            reply(StatusCode::OK, &json!(e))
        }
        Ok(Err(e)) => error(StatusCode::UNPROCESSABLE_ENTITY, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn status(State(c): State<Shared>, headers: HeaderMap) -> Response {
    if !c.authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "a valid control token is required");
    }
    let state = c.state.lock().await;
    reply(StatusCode::OK, &c.status(&state))
}

/// The external rollback metrics due for a read: (endpoint, rule, candidate, previous).
fn due_reads(state: &Persisted, now: u64) -> Vec<(String, Rollback, u32, Option<u32>)> {
    let mut due = Vec::new();
    for (name, m) in &state.endpoints {
        let Some(r) = m.rollout.as_ref().filter(|r| !r.finished()) else { continue };
        let Some(rule) = r.rule.as_ref().filter(|rule| is_external(rule)) else { continue };
        let fresh = m.external.as_ref().is_some_and(|(candidate, at, _)| {
            *candidate == r.candidate && now.saturating_sub(*at) < EXTERNAL_READ_EVERY_MS
        });
        if !fresh {
            due.push((name.clone(), rule.clone(), r.candidate, r.previous));
        }
    }
    due
}

/// Reads the due external metrics — concurrently, without holding the state lock (a slow
/// Prometheus must not stall the control API) — and records what came back.
async fn read_external(c: &Shared, now: u64) {
    let due = due_reads(&*c.state.lock().await, now);
    if due.is_empty() {
        return;
    }
    let reads = due.iter().map(|(name, rule, candidate, previous)| {
        let vars = QueryVars { endpoint: name, candidate: *candidate, previous: *previous };
        async move { external::read(&c.http, rule, &vars).await }
    });
    let results = futures_util::future::join_all(reads).await;
    let mut state = c.state.lock().await;
    for ((name, rule, candidate, _), result) in due.into_iter().zip(results) {
        let Some(m) = state.endpoints.get_mut(&name) else { continue };
        let failed_before = m.external.as_ref().and_then(|(_, _, r)| r.as_ref().err().cloned());
        if let Err(e) = &result {
            if failed_before.as_ref() != Some(e) {
                log(&format!("{name}: cannot read the rollback metric ({}), the step waits: {e}", rule.metric));
            }
        } else if failed_before.is_some() {
            log(&format!("{name}: the rollback metric ({}) can be read again", rule.metric));
        }
        m.external = Some((candidate, now_ms(), result));
    }
}

/// Reloads the online features of every endpoint whose stores were rewritten (by a
/// materialisation) since they were loaded, so entity lookups see the new values.
async fn reload_online(c: &Shared) {
    let mut state = c.state.lock().await;
    let stale: Vec<String> = state
        .endpoints
        .iter()
        .filter(|(_, m)| !m.request.online.is_empty() && c.online_written(&m.request) != m.online_written)
        .map(|(name, _)| name.clone())
        .collect();
    for name in stale {
        let Some(mut m) = state.endpoints.get(&name).cloned() else { continue };
        let result = {
            let (c, name) = (c.clone(), name.clone());
            tokio::task::spawn_blocking(move || c.upsert(&name, &mut m).map(|()| m)).await
        };
        match result {
            Ok(Ok(m)) => {
                log(&format!("{name}: online features reloaded"));
                state.endpoints.insert(name, m);
            }
            Ok(Err(e)) => {
                log(&format!("error: {name}: cannot reload the online features (the old ones serve): {e}"));
                // Not retried every tick: the next rewrite of a store tries again.
                if let Some(m) = state.endpoints.get_mut(&name) {
                    m.online_written = c.online_written(&m.request);
                }
            }
            Err(e) => log(&format!("error: {name}: reloading the online features failed: {e}")),
        }
    }
}

/// One tick of every rollout in progress.
async fn drive(c: &Shared) {
    reload_online(c).await;
    read_external(c, now_ms()).await;
    let mut state = c.state.lock().await;
    let now = now_ms();
    let mut changed = false;
    let names: Vec<String> = state.endpoints.keys().cloned().collect();
    for name in names {
        let Some(m) = state.endpoints.get_mut(&name) else { continue };
        // In a pod the controller steps the rollout for every replica (see `follow_production`).
        if c.in_pod || m.rollout.as_ref().is_none_or(Rollout::finished) {
            continue;
        }
        let window = c.window(&name, m);
        let Some(r) = m.rollout.as_mut() else { continue };
        let decision = r.evaluate(now, &window);
        if decision == Decision::Hold {
            continue;
        }
        changed = true;
        if let Err(e) = c.apply(&name, m, decision) {
            log(&format!("error: {name}: cannot apply the rollout decision: {e}"));
        }
    }
    if changed {
        c.persist(&state).await;
    }
}

/// The agent's endpoints as the controller rolls candidates out on them (called off the async
/// threads: the retrain thread and the controller's blocking tick).
struct AgentRollouts(Shared);

impl Rollouts for AgentRollouts {
    fn roll_out(&self, endpoint: &str, version: u32) -> Result<(), String> {
        let c = &self.0;
        let mut state = c.state.blocking_lock();
        let existing =
            state.endpoints.get(endpoint).cloned().ok_or_else(|| format!("no endpoint named `{endpoint}`"))?;
        let request = DeployRequest { version, ..existing.request.clone() };
        let m = deploy(c, endpoint, Some(existing), request)?;
        log(&format!(
            "{endpoint}: version {version} deployed by a retrain policy; {}",
            m.rollout.as_ref().map_or_else(String::new, |r| r.describe(now_ms(), &Window::default()))
        ));
        state.endpoints.insert(endpoint.to_string(), m);
        c.persist_now(&state);
        Ok(())
    }

    fn rollout(&self, endpoint: &str) -> Option<(u32, RolloutPhase)> {
        let state = self.0.state.blocking_lock();
        let r = state.endpoints.get(endpoint)?.rollout.as_ref()?;
        let phase = match &r.phase {
            Phase::Stepping { .. } => RolloutPhase::InProgress,
            Phase::Promoted => RolloutPhase::Promoted,
            Phase::RolledBack { reason } => RolloutPhase::RolledBack(reason.clone()),
        };
        Some((r.candidate, phase))
    }
}

/// A monitor or policy deployed by `apply`, checked: the caller's token, the body's shape,
/// and that the body is for the address in the path.
fn controlled<R: serde::de::DeserializeOwned>(
    c: &Control,
    headers: &HeaderMap,
    address: &str,
    body: &[u8],
    what: &str,
    address_of: impl Fn(&R) -> &str,
) -> Result<R, (StatusCode, String)> {
    if !c.authorized(headers) {
        return Err((StatusCode::UNAUTHORIZED, "a valid control token is required".into()));
    }
    let r: R =
        serde_json::from_slice(body).map_err(|e| (StatusCode::BAD_REQUEST, format!("bad {what} request: {e}")))?;
    if address_of(&r) != address {
        return Err((
            StatusCode::BAD_REQUEST,
            format!("the body is for `{}`, the path for `{address}`", address_of(&r)),
        ));
    }
    Ok(r)
}

async fn put_monitor(
    State(c): State<Shared>,
    headers: HeaderMap,
    UrlPath(address): UrlPath<String>,
    body: axum::body::Bytes,
) -> Response {
    match controlled(&c, &headers, &address, &body, "monitor", |r: &MonitorRequest| &r.address) {
        Err((status, message)) => error(status, message),
        Ok(r) => {
            log(&format!("{address}: watching {} every {}", r.endpoint, r.monitor.window));
            if let Some(controller) = &c.controller {
                controller.put_monitor(r);
            }
            reply(StatusCode::OK, &json!({ "deployed": address }))
        }
    }
}

async fn put_policy(
    State(c): State<Shared>,
    headers: HeaderMap,
    UrlPath(address): UrlPath<String>,
    body: axum::body::Bytes,
) -> Response {
    match controlled(&c, &headers, &address, &body, "policy", |r: &PolicyRequest| &r.address) {
        Err((status, message)) => error(status, message),
        Ok(r) => {
            log(&format!("{address}: retrains {}", r.policy.job));
            if let Some(controller) = &c.controller {
                controller.put_policy(r);
            }
            reply(StatusCode::OK, &json!({ "deployed": address }))
        }
    }
}

async fn delete_controlled(State(c): State<Shared>, headers: HeaderMap, UrlPath(address): UrlPath<String>) -> Response {
    if !c.authorized(&headers) {
        return error(StatusCode::UNAUTHORIZED, "a valid control token is required");
    }
    let deleted = c.controller.as_ref().is_some_and(|controller| controller.remove(&address));
    reply(StatusCode::OK, &json!({ "deleted": deleted }))
}

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct AgentError(pub String);

/// Runs the agent until `shutdown` completes: restores the persisted endpoints, serves, writes
/// `agent.json`, drives rollouts; on shutdown drains requests, flushes the prediction log and
/// removes `agent.json`.
pub async fn run(options: AgentOptions, shutdown: impl std::future::Future<Output = ()>) -> Result<(), AgentError> {
    let in_pod = options.from_spec.is_some();
    let dir = agent_dir(&options.data_dir);
    let create = if in_pod { &options.data_dir } else { &dir };
    std::fs::create_dir_all(create).map_err(|e| AgentError(format!("cannot create {}: {e}", create.display())))?;
    let token = random_token();
    let endpoints = Arc::new(Endpoints::new());
    let persisted: Persisted = match std::fs::read_to_string(dir.join("endpoints.json")) {
        _ if in_pod => Persisted::default(),
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| AgentError(format!("{}: {e}", dir.join("endpoints.json").display())))?,
        Err(_) => Persisted::default(),
    };
    let control = Arc::new(Control {
        endpoints: endpoints.clone(),
        token: BearerToken::new(&token).map_err(|e| AgentError(e.to_string()))?,
        data_dir: options.data_dir.clone(),
        state: Mutex::new(Persisted::default()),
        pid: std::process::id(),
        address: options.address.to_string(),
        http: reqwest::Client::new(),
        controller: (!in_pod).then(|| Arc::new(Controller::open(&options.data_dir, Some(endpoints.metrics().clone())))),
        in_pod,
        started_ms: now_ms(),
    });
    {
        let c = control.clone();
        let restored = tokio::task::spawn_blocking(move || {
            let mut out = BTreeMap::new();
            for (name, mut m) in persisted.endpoints {
                match c.publish(&name, &mut m) {
                    Ok(()) => {
                        out.insert(name, m);
                    }
                    Err(e) => log(&format!("error: {name}: cannot restore the endpoint: {e}")),
                }
            }
            out
        })
        .await
        .map_err(|e| AgentError(e.to_string()))?;
        control.state.lock().await.endpoints = restored;
    }
    // A pod is ready once its endpoints serve (see `follow_registry`).
    endpoints.set_ready(!in_pod);
    let routes = Router::new()
        .route("/endpoints/{name}", put(put_endpoint).delete(delete_endpoint))
        .route("/endpoints/{name}/rollback", post(rollback_endpoint))
        .route("/status", get(status))
        .route("/monitors/{address}", put(put_monitor).delete(delete_controlled))
        .route("/policies/{address}", put(put_policy).delete(delete_controlled))
        .with_state(control.clone());
    let server_options = ServerOptions {
        prediction_log: Some(PredictionLogOptions {
            pod: options.from_spec.as_ref().map(|f| f.pod.clone()),
            ..PredictionLogOptions::new(options.data_dir.join("predictions"))
        }),
        control: (!in_pod).then(|| Router::new().nest(PREFIX, routes)),
        // In a pod the shutdown delay comes first; both fit Kubernetes' default grace of 30 s.
        drain_timeout: Duration::from_secs(if in_pod { 20 } else { 30 }),
        feedback_dir: Some(options.data_dir.clone()),
        feedback_pod: options.from_spec.as_ref().map(|f| f.pod.clone()),
    };
    let server = Server::start(options.address, endpoints.clone(), server_options)
        .await
        .map_err(|e| AgentError(e.to_string()))?;
    if !in_pod {
        let file = AgentFile { pid: std::process::id(), address: server.local_addr().to_string(), token };
        let text = serde_json::to_string_pretty(&file).map_err(|e| AgentError(e.to_string()))?;
        write_atomic(&agent_file(&options.data_dir), &text, 0o600).map_err(|e| AgentError(e.to_string()))?;
    }
    log(&format!("listening on {} (pid {})", server.local_addr(), std::process::id()));
    let publisher = options.from_spec.clone().map(|from| {
        log(&format!(
            "pod {}: serving {} from the spec, data in {}",
            from.pod,
            from.endpoints.join(", "),
            options.data_dir.display()
        ));
        tokio::spawn(follow_registry(control.clone(), Arc::new(from)))
    });

    let driver = {
        let c = control.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tick.tick().await;
                drive(&c).await;
            }
        })
    };
    let controller = control.controller.clone().map(|controller| {
        let rollouts: Arc<dyn Rollouts> = Arc::new(AgentRollouts(control.clone()));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let (c, rollouts) = (controller.clone(), rollouts.clone());
                let _ = tokio::task::spawn_blocking(move || c.tick(&rollouts, now_ms())).await;
            }
        })
    });
    shutdown.await;
    if let Some(delay) = options.from_spec.as_ref().map(|f| f.shutdown_delay).filter(|d| !d.is_zero()) {
        server.unready();
        log(&format!(
            "terminating: not ready, still serving for {:.1}s while the Service stops sending traffic",
            delay.as_secs_f64()
        ));
        tokio::time::sleep(delay).await;
    }
    log("shutting down: draining requests");
    driver.abort();
    for task in controller.iter().chain(publisher.iter()) {
        task.abort();
    }
    if !in_pod {
        let _ = std::fs::remove_file(agent_file(&options.data_dir));
    }
    let report = server.shutdown().await;
    control.persist(&*control.state.lock().await).await;
    log(&format!("stopped (every request drained: {})", report.drained));
    Ok(())
}

/// In a pod: publishes every endpoint of `from` and follows the registry (see the module's
/// documentation), polling every `from.poll`; ready once all serve.
async fn follow_registry(c: Shared, from: Arc<FromSpec>) {
    let mut tick = tokio::time::interval(from.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Why each endpoint is not serving the registry's production version, as last logged.
    let mut said: BTreeMap<String, String> = BTreeMap::new();
    loop {
        tick.tick().await;
        let mut all_serve = true;
        for address in &from.endpoints {
            let result = {
                let (c, from, address) = (c.clone(), from.clone(), address.clone());
                tokio::task::spawn_blocking(move || follow_production(&c, &from, &address)).await
            };
            let name = control::endpoint_name(address);
            match result.unwrap_or_else(|e| Err(e.to_string())) {
                Ok(Followed::Same) => {
                    said.remove(address);
                }
                Ok(Followed::Split { candidate, percent, base }) => {
                    said.remove(address);
                    log(&format!(
                        "{name}: version {candidate} takes {percent}% of traffic, version {base} the rest (the \
                         controller's rollout)"
                    ));
                }
                Ok(Followed::Switched { job, from: before, to }) => {
                    said.remove(address);
                    match before {
                        None => log(&format!("{name}: serving version {to} of {job} (production in the registry)")),
                        Some(v) if v == to => {
                            log(&format!("{name}: all traffic on version {to} (production); the rollout ended"))
                        }
                        Some(v) => log(&format!(
                            "{name}: production of {job} moved to version {to}: switched from version {v} \
                             (requests in flight finish on it)"
                        )),
                    }
                }
                Err(why) => {
                    let serving = c.state.lock().await.endpoints.get(&name).is_some_and(|m| m.stable.is_some());
                    all_serve &= serving;
                    if said.get(address) != Some(&why) {
                        if serving {
                            log(&format!("{name}: keeps serving its version: {why}"));
                        } else {
                            log(&format!(
                                "{name}: not ready: {why}; checking again every {:.1}s",
                                from.poll.as_secs_f64()
                            ));
                        }
                        said.insert(address.clone(), why);
                    }
                }
            }
        }
        // The counters the controller judges a rollout by.
        let written = {
            let (c, from) = (c.clone(), from.clone());
            tokio::task::spawn_blocking(move || {
                for address in &from.endpoints {
                    let name = control::endpoint_name(address);
                    super::cluster::write_stats(&c.data_dir, &name, &pod_stats(&c, &name, &from.pod))?;
                }
                Ok::<(), std::io::Error>(())
            })
            .await
        };
        match written {
            Ok(Ok(())) => said.remove("_stats"),
            Ok(Err(e)) if !said.contains_key("_stats") => {
                log(&format!("error: cannot write this pod's counters for the controller: {e}"));
                said.insert("_stats".into(), e.to_string())
            }
            _ => None,
        };
        if all_serve && !c.endpoints.is_ready() {
            log("ready: every endpoint serves");
            c.endpoints.set_ready(true);
        }
    }
}

/// What [`follow_production`] did.
enum Followed {
    /// Nothing changed.
    Same,
    /// All traffic now goes to production version `to` (`from`: what served before; the same
    /// version when a rollout over it ended).
    Switched { job: String, from: Option<u32>, to: u32 },
    /// The controller's rollout: `candidate` takes `percent` of traffic, production `base` the
    /// rest.
    Split { candidate: u32, percent: f64, base: u32 },
}

/// Makes the endpoint serve what the volume says (blocking: reads the registry and the
/// controller's rollout file, loads models): the registry's production version of its job,
/// split with a candidate while the controller rolls one out over that version
/// ([`super::cluster`]). Replicas never step a rollout themselves.
fn follow_production(c: &Control, from: &FromSpec, address: &str) -> Result<Followed, String> {
    let job = match from.spec.resource(address).map(|r| &r.config) {
        Some(mlops_compiler::model::Config::Endpoint(e)) => e.model.clone(),
        _ => return Err(format!("`{address}` is not an endpoint of the spec")),
    };
    let registry_dir = c.data_dir.join("registry");
    let production = Registry::open(&registry_dir)
        .and_then(|r| r.production(&job))
        .map_err(|e| format!("cannot read the model registry in {}: {e}", registry_dir.display()))?;
    let Some(production) = production else {
        return Err(format!(
            "no version of {job} is in production in the registry ({}) yet: its training job has not \
             promoted one (`mlops train --spec FILE {job} --promote`)",
            registry_dir.display()
        ));
    };
    let name = control::endpoint_name(address);
    let shared = super::cluster::read_rollout(&c.data_dir, &name)
        .map(|s| s.rollout)
        .filter(|r| !r.finished() && r.previous == Some(production.version) && r.candidate != production.version);
    let split = shared.as_ref().map(|r| (r.candidate, r.candidate_percent()));
    let mut state = c.state.blocking_lock();
    let existing = state.endpoints.get(&name).cloned();
    let before = existing.as_ref().and_then(|m| m.stable);
    let before_split = existing
        .as_ref()
        .and_then(|m| m.rollout.as_ref())
        .filter(|r| !r.finished())
        .map(|r| (r.candidate, r.candidate_percent()));
    if before == Some(production.version) && before_split == split {
        return Ok(Followed::Same);
    }
    let mut m = match existing {
        Some(m) => m,
        None => Managed::new(DeployRequest::for_endpoint(&from.spec, address, &from.root, production.version)?),
    };
    m.request.version = production.version;
    m.stable = Some(production.version);
    m.rollout = shared;
    let loading = split.map_or(production.version, |(candidate, _)| candidate);
    c.publish(&name, &mut m).map_err(|e| format!("cannot load version {loading} of {job}: {e}"))?;
    state.endpoints.insert(name, m);
    Ok(match split {
        Some((candidate, percent)) => Followed::Split { candidate, percent, base: production.version },
        None => Followed::Switched { job, from: before, to: production.version },
    })
}

/// This replica's counters per version of the endpoint, for the controller.
fn pod_stats(c: &Control, name: &str, pod: &str) -> super::cluster::PodStats {
    let versions = c
        .endpoints
        .snapshot()
        .into_iter()
        .find(|e| e.name == name)
        .map(|e| e.versions.into_iter().map(|v| v.version).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|v| {
            let n = c.counters(name, v);
            (v, super::cluster::VersionCounters::new(n.requests, n.errors, &n.latency, n.scores))
        })
        .collect();
    super::cluster::PodStats { pod: pod.to_string(), started_ms: c.started_ms, versions }
}

/// Completes on SIGTERM or SIGINT.
pub async fn termination() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_psi_is_zero_for_the_same_shape_and_grows_with_the_shift() {
        assert_eq!(score_psi(&[10, 30, 60], &[1, 3, 6]), Some(0.0));
        assert_eq!(score_psi(&[0, 0, 0], &[1, 3, 6]), None);
        assert_eq!(score_psi(&[1, 3, 6], &[0, 0, 0]), None);
        // Shares (0.5, 0.5) against (0.25, 0.75), by hand.
        let psi = score_psi(&[50, 50], &[25, 75]).unwrap();
        let by_hand = (0.25 - 0.5) * (0.25f64 / 0.5).ln() + (0.75 - 0.5) * (0.75f64 / 0.5).ln();
        assert!((psi - by_hand).abs() < 1e-12, "{psi} vs {by_hand}");
        // An empty reference bucket is floored at the epsilon: large, not infinite.
        let psi = score_psi(&[100, 0], &[50, 50]).unwrap();
        let by_hand = (0.5 - 1.0) * (0.5f64).ln() + (0.5 - 1e-4) * (0.5 / 1e-4f64).ln();
        assert!((psi - by_hand).abs() < 1e-12, "{psi} vs {by_hand}");
    }

    #[test]
    fn since_subtracts_counters_and_survives_a_reset() {
        assert_eq!(since(&[5, 7, 9], &[1, 7, 3]), vec![4, 0, 6]);
        assert_eq!(since(&[5, 7], &[]), vec![5, 7]);
        assert_eq!(since(&[0, 1], &[4, 4]), vec![0, 0]);
    }
}
