//! The controller: runs monitors and retrain policies — the closed loop. In: the monitors and
//! policies `apply` deployed ([`MonitorRequest`], [`PolicyRequest`]), the clock, and the serving
//! side's rollouts behind [`Rollouts`]. Out: events for every decision, and retrains whose
//! accepted candidates roll out through their endpoint's rollout rule.
//!
//! Each tick (the host calls [`Controller::tick`] about once a second, off the async threads):
//! - every monitor whose window has elapsed judges it (tumbling windows: `[t − window, t)`);
//!   ok / insufficient data / breach is an event;
//! - every policy gets its triggers (breaches of the monitors it is `on`, its schedule) and
//!   decides ([`super::policy::decide`]); a retrain runs on its own thread;
//! - a candidate that rolled out is promoted in the registry when its rollout finished, or
//!   archived when it was rolled back.
//!
//! Locally the serving agent hosts the controller; on Kubernetes the same code runs in its own
//! Deployment. Its state (`<data dir>/agent/controller.json`) survives restarts; a retrain that
//! was running when the process died is recorded as failed on restart.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use mlops_compiler::model::{Monitor, RetrainPolicy, Source};
use mlops_compiler::spec::SystemSpec;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::policy::{self, Decision, History, Trigger};
use super::run;
use crate::events::{Event, EventKind, EventLog};
use crate::monitor::evaluate::{self, MonitorReport};
use crate::monitor::feedback::FeedbackStore;
use crate::monitor::reference::Reference;
use crate::monitor::window::Window;
use crate::registry::Registry;
use crate::serve::external;
use crate::train::TrainOptions;

/// A monitor as `apply` deploys it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorRequest {
    /// Its address.
    pub address: String,
    /// Its configuration.
    pub monitor: Monitor,
    /// The watched endpoint's name (as in URLs and the prediction log).
    pub endpoint: String,
    /// The training job the endpoint serves.
    pub job: String,
    /// The declared feedback source, with its address.
    pub feedback: Option<(String, Source)>,
    /// The configuration directory (sources' relative paths).
    pub root: PathBuf,
}

impl MonitorRequest {
    /// The request for the monitor at `address` of `spec` (`root`: the configuration directory).
    pub fn from_spec(spec: &SystemSpec, address: &str, root: &Path) -> Result<MonitorRequest, String> {
        let find = |a: &str| spec.resources.iter().find(|r| r.address == a).map(|r| &r.config);
        let Some(mlops_compiler::model::Config::Monitor(monitor)) = find(address) else {
            return Err(format!("`{address}` is not a monitor of this configuration"));
        };
        let job = match find(&monitor.endpoint) {
            Some(mlops_compiler::model::Config::Endpoint(e)) => e.model.clone(),
            _ => return Err(format!("{} is not an endpoint of this configuration", monitor.endpoint)),
        };
        let feedback = monitor.performance.as_ref().and_then(|p| match find(&p.feedback) {
            Some(mlops_compiler::model::Config::Source(s)) => Some((p.feedback.clone(), s.clone())),
            _ => None,
        });
        Ok(MonitorRequest {
            address: address.to_string(),
            monitor: monitor.clone(),
            endpoint: crate::serve::control::endpoint_name(&monitor.endpoint),
            job,
            feedback,
            root: root.canonicalize().unwrap_or_else(|_| root.to_path_buf()),
        })
    }
}

/// A retrain policy as `apply` deploys it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRequest {
    /// Its address.
    pub address: String,
    /// Its configuration.
    pub policy: RetrainPolicy,
    /// The whole system (a retrain materialises the job's views and trains it).
    pub spec: SystemSpec,
    /// The configuration directory.
    pub root: PathBuf,
    /// The endpoint an accepted candidate rolls out through (`promote.via`), by name.
    pub endpoint: Option<String>,
}

impl PolicyRequest {
    /// The request for the retrain policy at `address` of `spec` (`root`: the configuration
    /// directory, or a pod's root).
    pub fn from_spec(spec: &SystemSpec, address: &str, root: &Path) -> Result<PolicyRequest, String> {
        let Some(mlops_compiler::model::Config::RetrainPolicy(policy)) = spec.resource(address).map(|r| &r.config)
        else {
            return Err(format!("`{address}` is not a retrain policy of this configuration"));
        };
        Ok(PolicyRequest {
            address: address.to_string(),
            policy: policy.clone(),
            spec: spec.clone(),
            root: root.canonicalize().unwrap_or_else(|_| root.to_path_buf()),
            endpoint: policy.promote.as_ref().and_then(|p| p.via.as_deref()).map(crate::serve::control::endpoint_name),
        })
    }
}

/// Where a rollout stands, as the controller needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutPhase {
    /// Still stepping.
    InProgress,
    /// The candidate took all traffic.
    Promoted,
    /// It was rolled back, and why.
    RolledBack(String),
}

/// The serving side: rolls a version out on an endpoint and reports how it went.
pub trait Rollouts: Send + Sync {
    /// Starts rolling `version` out on `endpoint` through its rollout rule.
    fn roll_out(&self, endpoint: &str, version: u32) -> Result<(), String>;
    /// The endpoint's last rollout: its candidate and phase.
    fn rollout(&self, endpoint: &str) -> Option<(u32, RolloutPhase)>;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManagedMonitor {
    request: MonitorRequest,
    /// When the next window ends, Unix milliseconds.
    next_ms: u64,
    last: Option<MonitorReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    job: String,
    candidate: u32,
    endpoint: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ManagedPolicy {
    request: PolicyRequest,
    created_s: u64,
    history: History,
    /// A candidate rolling out.
    pending: Option<Pending>,
    /// The last thing the policy did, in words.
    last: Option<String>,
    /// The `new_data` source's row count, with the fingerprint it was counted at (counted
    /// again only when the fingerprint moves).
    #[serde(default)]
    rows_seen: Option<(String, u64)>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    monitors: BTreeMap<String, ManagedMonitor>,
    policies: BTreeMap<String, ManagedPolicy>,
}

/// What `mlops status` shows of a monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorStatus {
    /// Address.
    pub address: String,
    /// The endpoint watched.
    pub endpoint: String,
    /// The latest judgement.
    pub last: Option<MonitorReport>,
    /// When the next window ends, Unix milliseconds.
    pub next_ms: u64,
}

/// What `mlops status` shows of a policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyStatus {
    /// Address.
    pub address: String,
    /// The job it retrains.
    pub job: String,
    /// Retrains started within the guardrails' memory.
    pub retrains: usize,
    /// Whether one is running.
    pub running: bool,
    /// A candidate rolling out.
    pub rolling_out: Option<u32>,
    /// The last thing it did.
    pub last: Option<String>,
    /// The monitors whose breaches trigger it.
    #[serde(default)]
    pub on: Vec<String>,
    /// What its guardrails would say to a trigger now: `None` retrains, else why not.
    #[serde(default)]
    pub would_skip: Option<String>,
}

/// The controller of one data directory.
pub struct Controller {
    data_dir: PathBuf,
    events: Arc<EventLog>,
    state: Arc<Mutex<State>>,
    train: TrainOptions,
    metrics: Option<Arc<crate::serve::Metrics>>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").field("data_dir", &self.data_dir).finish_non_exhaustive()
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

fn state_file(data_dir: &Path) -> PathBuf {
    data_dir.join("agent").join("controller.json")
}

impl Controller {
    /// The controller of `data_dir`, restoring its persisted state (a retrain marked running
    /// died with the previous process: it is recorded as failed).
    pub fn open(data_dir: &Path, metrics: Option<Arc<crate::serve::Metrics>>) -> Controller {
        let events = Arc::new(EventLog::open(data_dir));
        let mut state: State =
            std::fs::read(state_file(data_dir)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        for (address, p) in &mut state.policies {
            if p.history.running {
                p.history.running = false;
                let e = event(
                    EventKind::RetrainFailed,
                    address,
                    "the process running the retrain stopped".into(),
                    json!({}),
                );
                let _ = events.append(&e);
            }
        }
        let train = TrainOptions { progress: false, ..TrainOptions::default() };
        // Absolute: a retrain joins it to the policy's (absolute) root, and a relative data
        // directory — an agent started by `mlops apply some/dir` — would then name another,
        // empty registry.
        let data_dir = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
        Controller { data_dir, events, state: Arc::new(Mutex::new(state)), train, metrics }
    }

    /// The event log.
    pub fn events(&self) -> &EventLog {
        &self.events
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn persist(data_dir: &Path, state: &State) {
        if let Ok(text) = serde_json::to_vec_pretty(state) {
            let path = state_file(data_dir);
            if let Err(e) = crate::fsio::write_atomic(&path, &text) {
                eprintln!("mlops controller: error: cannot {} {}: {}", e.action, e.path.display(), e.source);
            }
        }
    }

    /// Deploys (or updates) a monitor; its first window ends one window from now.
    pub fn put_monitor(&self, request: MonitorRequest) {
        let mut s = self.lock();
        let next_ms = now_ms() + request.monitor.window.as_millis();
        let m = s.monitors.entry(request.address.clone()).or_insert(ManagedMonitor {
            request: request.clone(),
            next_ms,
            last: None,
        });
        if m.request.monitor.window != request.monitor.window {
            m.next_ms = next_ms;
        }
        m.request = request;
        Self::persist(&self.data_dir, &s);
    }

    /// Deploys (or updates) a policy, keeping its history.
    pub fn put_policy(&self, request: PolicyRequest) {
        let mut s = self.lock();
        let created_s = now_ms() / 1000;
        let p = s.policies.entry(request.address.clone()).or_insert(ManagedPolicy {
            request: request.clone(),
            created_s,
            history: History::default(),
            pending: None,
            last: None,
            rows_seen: None,
        });
        p.request = request;
        Self::persist(&self.data_dir, &s);
    }

    /// Removes a monitor or policy; `false` if there was none.
    pub fn remove(&self, address: &str) -> bool {
        let mut s = self.lock();
        let removed = s.monitors.remove(address).is_some() | s.policies.remove(address).is_some();
        Self::persist(&self.data_dir, &s);
        removed
    }

    /// Whether `address` is deployed here.
    pub fn has(&self, address: &str) -> bool {
        let s = self.lock();
        s.monitors.contains_key(address) || s.policies.contains_key(address)
    }

    /// Monitors and policies for `mlops status`.
    pub fn status(&self) -> (Vec<MonitorStatus>, Vec<PolicyStatus>) {
        let s = self.lock();
        let monitors = s
            .monitors
            .values()
            .map(|m| MonitorStatus {
                address: m.request.address.clone(),
                endpoint: m.request.endpoint.clone(),
                last: m.last.clone(),
                next_ms: m.next_ms,
            })
            .collect();
        let policies = s
            .policies
            .values()
            .map(|p| PolicyStatus {
                address: p.request.address.clone(),
                job: p.request.policy.job.clone(),
                retrains: p.history.started_ms.len(),
                running: p.history.running,
                rolling_out: p.pending.as_ref().map(|x| x.candidate),
                last: p.last.clone(),
                on: p.request.policy.on.clone(),
                would_skip: match (&p.pending, policy::decide(&p.request.policy, &p.history, now_ms())) {
                    (Some(x), _) => Some(format!("version {} is still rolling out", x.candidate)),
                    (None, Decision::Skip(why)) => Some(why),
                    (None, Decision::Retrain) => None,
                },
            })
            .collect();
        (monitors, policies)
    }

    fn emit(&self, e: Event) {
        if let Some(m) = &self.metrics {
            m.record_event(e.kind.as_str(), &e.subject);
        }
        if let Err(err) = self.events.append(&e) {
            tracing::error!(error = %err, "cannot write an event");
        }
        eprintln!(
            "{} mlops controller: {} {}: {}",
            crate::state::rfc3339(e.time_ms / 1000),
            e.kind.as_str(),
            e.subject,
            e.message
        );
    }

    /// One pass of the loop at `now` (see the module's documentation).
    pub fn tick(&self, rollouts: &Arc<dyn Rollouts>, now: u64) {
        let due: Vec<MonitorRequest> =
            self.lock().monitors.values().filter(|m| now >= m.next_ms).map(|m| m.request.clone()).collect();
        let mut breaches: HashMap<String, String> = HashMap::new();
        for request in due {
            let report = self.judge(&request, now);
            let breached = report.breaches();
            let (kind, message) = if !breached.is_empty() {
                let text: Vec<String> = breached.iter().map(|c| c.message.clone()).collect();
                breaches.insert(request.address.clone(), text.join("; "));
                (EventKind::Breach, text.join("; "))
            } else if report.insufficient() {
                let why: Vec<String> = report.checks.iter().map(|c| c.message.clone()).collect();
                (
                    EventKind::InsufficientData,
                    format!("{} predictions in the window: {}", report.predictions, why.join("; ")),
                )
            } else {
                let shown: Vec<String> = report.checks.iter().map(|c| c.message.clone()).collect();
                (EventKind::MonitorOk, shown.join("; "))
            };
            if let Some(m) = &self.metrics {
                m.record_monitor(&report);
            }
            let details = serde_json::to_value(&report).unwrap_or_default();
            self.emit(event(kind, &request.address, message, details));
            let mut s = self.lock();
            if let Some(m) = s.monitors.get_mut(&request.address) {
                let window = m.request.monitor.window.as_millis().max(1);
                // The next window starts where this one ended (one window on, if ticks lagged).
                m.next_ms = (m.next_ms + window).max(now + 1).min(now + window);
                m.last = Some(report);
            }
            Self::persist(&self.data_dir, &s);
        }
        self.follow_rollouts(rollouts, now);
        self.run_policies(rollouts, &breaches, now);
    }

    fn judge(&self, r: &MonitorRequest, now: u64) -> MonitorReport {
        judge(&self.data_dir, r, now).0
    }

    fn follow_rollouts(&self, rollouts: &Arc<dyn Rollouts>, now: u64) {
        let pending: Vec<(String, Pending)> =
            self.lock().policies.iter().filter_map(|(a, p)| Some((a.clone(), p.pending.clone()?))).collect();
        for (address, p) in pending {
            let outcome = match rollouts.rollout(&p.endpoint) {
                Some((candidate, phase)) if candidate == p.candidate => phase,
                // Another version took over the endpoint (an apply): this candidate is done.
                _ => RolloutPhase::RolledBack("replaced on the endpoint by another version".into()),
            };
            let registry = Registry::open(self.data_dir.join("registry"));
            let (kind, message) = match &outcome {
                RolloutPhase::InProgress => continue,
                RolloutPhase::Promoted => match registry.and_then(|r| r.promote(&p.job, p.candidate, false)) {
                    Ok(_) => (
                        EventKind::Promoted,
                        format!("version {} of {} serves all traffic of {}", p.candidate, p.job, p.endpoint),
                    ),
                    Err(e) => (
                        EventKind::Promoted,
                        format!(
                            "version {} took all traffic of {}, but the registry could not record it: {e}",
                            p.candidate, p.endpoint
                        ),
                    ),
                },
                RolloutPhase::RolledBack(why) => {
                    let _ = registry.and_then(|r| r.archive(&p.job, p.candidate));
                    (
                        EventKind::RolledBack,
                        format!("version {} of {} rolled back on {}: {why}", p.candidate, p.job, p.endpoint),
                    )
                }
            };
            self.emit(Event {
                time_ms: now,
                ..event(kind, &address, message.clone(), json!({ "version": p.candidate, "endpoint": p.endpoint }))
            });
            let mut s = self.lock();
            if let Some(mp) = s.policies.get_mut(&address) {
                mp.pending = None;
                mp.last = Some(message);
            }
            Self::persist(&self.data_dir, &s);
        }
    }

    fn run_policies(&self, rollouts: &Arc<dyn Rollouts>, breaches: &HashMap<String, String>, now: u64) {
        let addresses: Vec<String> = self.lock().policies.keys().cloned().collect();
        for address in addresses {
            let mut s = self.lock();
            let Some(p) = s.policies.get_mut(&address) else { continue };
            let mut triggers: Vec<Trigger> = p
                .request
                .policy
                .on
                .iter()
                .filter_map(|m| Some(Trigger::Breach { monitor: m.clone(), reason: breaches.get(m)?.clone() }))
                .collect();
            if let Some((minute, t)) = policy::schedule_due(&p.request.policy, &p.history, p.created_s, now) {
                p.history.schedule_fired_s = Some(minute);
                triggers.push(t);
            }
            let rows_now = new_data_rows(p);
            if let (Some(nd), Some(rows)) = (&p.request.policy.new_data, rows_now) {
                // The count when the policy first looked is the baseline.
                let base = *p.history.rows_at_last.get_or_insert(rows);
                if rows >= base + nd.rows {
                    triggers.push(Trigger::NewData { rows: rows - base });
                }
            }
            let Some(trigger) = triggers.into_iter().next() else { continue };
            policy::prune(&p.request.policy, &mut p.history, now);
            let decision = if p.pending.is_some() {
                Decision::Skip("a candidate of this policy is still rolling out".into())
            } else {
                policy::decide(&p.request.policy, &p.history, now)
            };
            match decision {
                Decision::Skip(why) => {
                    p.last = Some(format!("skipped ({why})"));
                    let e = event(
                        EventKind::RetrainSkipped,
                        &address,
                        format!("{}; not retraining: {why}", trigger.describe()),
                        json!({ "trigger": trigger }),
                    );
                    Self::persist(&self.data_dir, &s);
                    drop(s);
                    self.emit(e);
                }
                Decision::Retrain => {
                    if let Some(rows) = rows_now {
                        p.history.rows_at_last = Some(rows);
                    }
                    p.history.started_ms.push(now);
                    p.history.running = true;
                    p.last = Some(format!("retraining: {}", trigger.describe()));
                    let request = p.request.clone();
                    Self::persist(&self.data_dir, &s);
                    drop(s);
                    self.emit(event(
                        EventKind::RetrainStarted,
                        &address,
                        format!("retraining {}: {}", request.policy.job, trigger.describe()),
                        json!({ "trigger": trigger }),
                    ));
                    self.spawn_retrain(request, rollouts.clone());
                }
            }
        }
    }

    fn spawn_retrain(&self, request: PolicyRequest, rollouts: Arc<dyn Rollouts>) {
        let (state, events, data_dir, train, metrics) =
            (self.state.clone(), self.events.clone(), self.data_dir.clone(), self.train.clone(), self.metrics.clone());
        let worker = Controller { data_dir, events, state, train, metrics };
        let spawned =
            std::thread::Builder::new().name("mlops-retrain".into()).spawn(move || worker.retrain(request, &rollouts));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a retrain thread");
        }
    }

    fn retrain(&self, r: PolicyRequest, rollouts: &Arc<dyn Rollouts>) {
        let address = r.address.clone();
        let result = run::retrain(&r.root, &self.data_dir, &r.spec, &r.policy, &self.train);
        let mut pending = None;
        let last = match result {
            Err(e) => {
                let message = format!("retraining {} failed; production is unchanged: {e}", r.policy.job);
                self.emit(event(EventKind::RetrainFailed, &address, message.clone(), json!({})));
                message
            }
            Ok(outcome) => {
                let v = outcome.candidate.version;
                let details = serde_json::to_value(&outcome).unwrap_or_default();
                self.emit(event(
                    EventKind::GateResult,
                    &address,
                    format!("candidate version {v}: {}", outcome.reason),
                    details,
                ));
                if !outcome.accepted {
                    let message = format!("version {v} not promoted ({}); production keeps serving", outcome.reason);
                    self.emit(event(EventKind::CandidateRejected, &address, message.clone(), json!({ "version": v })));
                    message
                } else if let Some(endpoint) = &r.endpoint {
                    match rollouts.roll_out(endpoint, v) {
                        Ok(()) => {
                            let message = format!("version {v} rolling out on {endpoint}");
                            self.emit(event(
                                EventKind::RolloutStarted,
                                &address,
                                message.clone(),
                                json!({ "version": v, "endpoint": endpoint }),
                            ));
                            pending =
                                Some(Pending { job: r.policy.job.clone(), candidate: v, endpoint: endpoint.clone() });
                            message
                        }
                        Err(e) => {
                            let message = format!("version {v} could not roll out on {endpoint}: {e}");
                            self.emit(event(
                                EventKind::RetrainFailed,
                                &address,
                                message.clone(),
                                json!({ "version": v }),
                            ));
                            message
                        }
                    }
                } else {
                    // No endpoint to roll out through: production is the registry's.
                    let promoted = Registry::open(self.data_dir.join("registry"))
                        .and_then(|reg| reg.promote(&r.policy.job, v, false));
                    let message = match promoted {
                        Ok(_) => format!("version {v} promoted (no endpoint to roll out through)"),
                        Err(e) => format!("version {v} could not be promoted: {e}"),
                    };
                    self.emit(event(EventKind::Promoted, &address, message.clone(), json!({ "version": v })));
                    message
                }
            }
        };
        let mut s = self.lock();
        if let Some(p) = s.policies.get_mut(&address) {
            p.history.running = false;
            p.pending = pending;
            p.last = Some(last);
        }
        Self::persist(&self.data_dir, &s);
    }
}

/// The row count of the policy's `new_data` source now (`None`: no such trigger, or the source
/// cannot be read — said in the log, never a trigger). Counted only when the source's cheap
/// fingerprint (paths, sizes, modification times) moved since the last count.
fn new_data_rows(p: &mut ManagedPolicy) -> Option<u64> {
    let nd = p.request.policy.new_data.as_ref()?;
    let source = p.request.spec.resources.iter().find(|r| r.address == nd.source).and_then(|r| match &r.config {
        mlops_compiler::model::Config::Source(s) => Some(s),
        _ => None,
    })?;
    let root = &p.request.root;
    let fingerprint = match crate::data::fingerprint(source, &nd.source, root) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(source = %nd.source, error = %e, "cannot read the new_data source");
            return None;
        }
    };
    if let Some((seen, rows)) = &p.rows_seen {
        if *seen == fingerprint {
            return Some(*rows);
        }
    }
    let mut rows = 0u64;
    let reader = crate::data::open(source, &nd.source, root).ok()?;
    for batch in reader {
        rows += batch.ok()?.num_rows() as u64;
    }
    p.rows_seen = Some((fingerprint, rows));
    Some(rows)
}

/// Judges the window of `r` ending at `now` from the files under `data_dir` (prediction log,
/// registry, feedback) and the monitor's Prometheus checks; also returns the window and the
/// reference it was judged against (for reports).
pub fn judge(data_dir: &Path, r: &MonitorRequest, now: u64) -> (MonitorReport, Window, Option<Reference>) {
    let to_us = now as i64 * 1000;
    let from_us = to_us - r.monitor.window.as_millis() as i64 * 1000;
    let window = Window::read(&data_dir.join("predictions"), &r.endpoint, from_us, to_us).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot read the prediction log");
        Window { from_us, to_us, ..Window::default() }
    });
    let version = window.versions().into_iter().max_by_key(|(v, n)| (*n, *v)).map(|(v, _)| v);
    let reference = version.and_then(|v| {
        let registry = Registry::open(data_dir.join("registry")).ok()?;
        let meta = registry.get(&r.job, v).ok()?;
        Reference::load(meta.model_path.parent()?).ok()
    });
    let mut labels = FeedbackStore::open(data_dir).read(&r.endpoint).unwrap_or_default();
    if let (Some((address, source)), Some(p)) = (&r.feedback, &r.monitor.performance) {
        match evaluate::source_labels(source, address, &r.root, &p.id_column, &p.label_column) {
            Ok(from_source) => labels.extend(from_source),
            Err(e) => tracing::warn!(error = %e, "cannot read the feedback source"),
        }
    }
    let mut report = evaluate::evaluate(&r.address, &r.monitor, &window, version, reference.as_ref(), &labels);
    for check in &r.monitor.prometheus {
        let value = block_on(async {
            let client = reqwest::Client::new();
            match (&check.url, &check.scrape) {
                (_, Some(page)) => external::scrape(&client, page, &check.query).await,
                (Some(url), None) => external::prometheus(&client, url, &check.query).await,
                (None, None) => Err("neither `url` nor `scrape` is set".into()),
            }
        })
        .and_then(|r| r);
        report.checks.push(evaluate::prometheus_check(check, value));
    }
    (report, window, reference)
}

/// Runs `f` to completion from a blocking thread: on the host's tokio runtime when there is
/// one (the agent runs ticks on its blocking pool), else on a small one of its own.
fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, String> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => Ok(handle.block_on(f)),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map(|rt| rt.block_on(f))
            .map_err(|e| format!("cannot start a tokio runtime: {e}")),
    }
}

fn event(kind: EventKind, subject: &str, message: String, details: serde_json::Value) -> Event {
    Event { time_ms: now_ms(), kind, subject: subject.to_string(), message, details }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_data_directory_is_made_absolute_against_the_working_directory() {
        // An agent started by `mlops apply some/dir` gets `some/dir/.mlops/data`; a retrain joins
        // the controller's directory to the policy's absolute root, which must not move it.
        let c = Controller::open(Path::new("some/dir/.mlops/data"), None);
        assert!(c.data_dir.is_absolute(), "{}", c.data_dir.display());
        assert_eq!(c.data_dir, std::env::current_dir().unwrap().join("some/dir/.mlops/data"));
        assert_eq!(Path::new("/cfg").join(&c.data_dir), c.data_dir);
    }
}
