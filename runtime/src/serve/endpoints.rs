//! The endpoints a server serves, changed live by the control plane. In: per endpoint name, its
//! settings and a traffic table of loaded model versions with weights. Out: for each request,
//! the deployment it runs against (an `Arc` it keeps until it answers, so a swap never disturbs
//! a request in flight) and the version it is routed to.
//!
//! Routing: a version is drawn with probability weight / total weight. A request carrying the
//! endpoint's sticky key (an entity id) is placed by a fixed hash of it instead, at the same point
//! of the cumulative weight line on every replica, so the entity stays on one version while the
//! weights stay the same — and when the first version's weight grows (a canary listed first),
//! entities only ever move onto it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::metrics::{EndpointLabels, Metrics, VersionMetrics};
use super::model::ServingModel;
use super::online::FeatureSource;
use super::util::{below, random_u64, stable_hash};

/// Why a change to the endpoints was refused; nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// No such endpoint.
    #[error("no endpoint named `{0}`")]
    UnknownEndpoint(String),
    /// A weight names a version the endpoint has not loaded.
    #[error("endpoint `{endpoint}` has no version {version} loaded (loaded: {loaded})")]
    UnknownVersion {
        /// Endpoint name.
        endpoint: String,
        /// The version asked for.
        version: u32,
        /// The versions it has.
        loaded: String,
    },
    /// An invalid traffic table or name.
    #[error("endpoint `{endpoint}`: {message}")]
    Invalid {
        /// Endpoint name.
        endpoint: String,
        /// What is wrong.
        message: String,
    },
    /// The bearer token cannot be read.
    #[error("cannot read the bearer token: {0}")]
    Token(String),
}

/// A bearer token, kept only as its SHA-256 digest and compared in constant time (comparing
/// digests also hides the token's length).
#[derive(Clone)]
pub struct BearerToken {
    digest: [u8; 32],
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl BearerToken {
    /// A token given directly (surrounding whitespace is not part of it).
    pub fn new(token: &str) -> Result<BearerToken, EndpointError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(EndpointError::Token("the token is empty".into()));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(EndpointError::Token("the token has characters a header cannot carry".into()));
        }
        Ok(BearerToken { digest: Sha256::digest(token.as_bytes()).into() })
    }

    /// The token in environment variable `var`.
    pub fn from_env(var: &str) -> Result<BearerToken, EndpointError> {
        let value =
            std::env::var(var).map_err(|e| EndpointError::Token(format!("environment variable `{var}`: {e}")))?;
        BearerToken::new(&value).map_err(|e| EndpointError::Token(format!("environment variable `{var}`: {e}")))
    }

    /// The token in a file (a trailing newline is ignored).
    pub fn from_file(path: &Path) -> Result<BearerToken, EndpointError> {
        let value =
            std::fs::read_to_string(path).map_err(|e| EndpointError::Token(format!("{}: {e}", path.display())))?;
        BearerToken::new(&value).map_err(|e| EndpointError::Token(format!("{}: {e}", path.display())))
    }

    /// A token known by its SHA-256 digest in hex ([`BearerToken::sha256_hex`]): a process
    /// can check a token it was never given.
    pub fn from_sha256_hex(hex: &str) -> Result<BearerToken, EndpointError> {
        let bad = || EndpointError::Token("a token digest is 64 hex digits".into());
        if hex.len() != 64 {
            return Err(bad());
        }
        let mut digest = [0u8; 32];
        for (i, d) in digest.iter_mut().enumerate() {
            *d = hex.get(2 * i..2 * i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or_else(bad)?;
        }
        Ok(BearerToken { digest })
    }

    /// The token's SHA-256 digest in hex.
    pub fn sha256_hex(&self) -> String {
        self.digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Is `presented` the token? Takes the same time whatever `presented` is.
    pub fn verify(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        d.iter().zip(self.digest.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

/// How an endpoint takes requests.
#[derive(Clone)]
pub struct EndpointSettings {
    /// Required bearer token (`None`: no authentication).
    pub token: Option<BearerToken>,
    /// Largest request body, in bytes.
    pub max_body: usize,
    /// Time to answer a request, from the moment it is routed (reading its body included).
    pub timeout: Duration,
    /// Name of the entity key (e.g. `account_id`) that pins a request to one version.
    pub sticky_key: Option<String>,
    /// Where `entities` requests get their features.
    pub features: Option<Arc<dyn FeatureSource>>,
}

impl std::fmt::Debug for EndpointSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointSettings")
            .field("token", &self.token)
            .field("max_body", &self.max_body)
            .field("timeout", &self.timeout)
            .field("sticky_key", &self.sticky_key)
            .field("features", &self.features.as_ref().map(|_| "<source>"))
            .finish()
    }
}

impl Default for EndpointSettings {
    /// The language's defaults: no token, 1 MiB bodies, 5 s.
    fn default() -> Self {
        EndpointSettings {
            token: None,
            max_body: 1 << 20,
            timeout: Duration::from_secs(5),
            sticky_key: None,
            features: None,
        }
    }
}

impl EndpointSettings {
    /// The settings of a compiled `endpoint` block: timeout, body limit and authentication
    /// (a token file is relative to `base_dir`). Reads the token now.
    pub fn from_spec(
        spec: &mlops_compiler::model::Endpoint,
        base_dir: &Path,
    ) -> Result<EndpointSettings, EndpointError> {
        let token = match &spec.auth {
            None => None,
            Some(a) if a.kind == "none" => None,
            Some(a) => match (&a.token_env, &a.token_file) {
                (Some(var), _) => Some(BearerToken::from_env(var)?),
                (None, Some(file)) => {
                    let path = PathBuf::from(file);
                    let path = if path.is_absolute() { path } else { base_dir.join(path) };
                    Some(BearerToken::from_file(&path)?)
                }
                (None, None) => {
                    return Err(EndpointError::Token(
                        "bearer authentication names neither token_env nor token_file".into(),
                    ))
                }
            },
        };
        Ok(EndpointSettings {
            token,
            max_body: usize::try_from(spec.max_body.bytes()).unwrap_or(usize::MAX),
            timeout: Duration::from_millis(spec.timeout.as_millis()),
            ..EndpointSettings::default()
        })
    }
}

/// Counts kept per version across redeployments (by endpoint name and version number).
#[derive(Debug, Default)]
pub(crate) struct VersionStats {
    pub requests: AtomicU64,
    pub client_errors: AtomicU64,
    pub server_errors: AtomicU64,
    /// Answer times: counts per [`LATENCY_BOUNDS`] bucket (not cumulative), the last one open.
    pub latency: [AtomicU64; LATENCY_BUCKETS],
    /// Predicted scores: counts per bucket of the exported score histogram (probabilities in
    /// 0.05 steps; regression values on the signed log scale), not cumulative.
    pub scores: [AtomicU64; SCORE_BUCKETS],
}

/// Enough buckets for either score scale (20 probability buckets, 22 signed-log ones).
const SCORE_BUCKETS: usize = 22;

const LATENCY_BUCKETS: usize = 18;

/// Upper bounds of the latency buckets kept per version (seconds): 0.25 ms … ~16 s, doubling,
/// as the exported histogram.
fn latency_bound(i: usize) -> f64 {
    if i + 1 >= LATENCY_BUCKETS {
        f64::INFINITY
    } else {
        0.000_25 * f64::from(1u32 << i)
    }
}

impl VersionStats {
    /// Records one answer's time.
    pub fn observe_latency(&self, seconds: f64) {
        let i = (0..LATENCY_BUCKETS).find(|i| seconds <= latency_bound(*i)).unwrap_or(LATENCY_BUCKETS - 1);
        self.latency[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Records one predicted score (a probability, or a regression value when `regression`).
    pub fn observe_score(&self, score: f64, regression: bool) {
        let i = if regression {
            let bounds = &super::metrics::SIGNED_LOG_BUCKETS;
            bounds.iter().position(|b| score <= *b).unwrap_or(bounds.len())
        } else {
            // (0.05·i, 0.05·(i+1)] as the exported histogram, the last bucket closed at 1.
            ((score * 20.0).ceil() as usize).saturating_sub(1).min(19)
        };
        self.scores[i.min(SCORE_BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
    }

    /// The score counts per bucket (not cumulative).
    pub fn score_counts(&self) -> Vec<u64> {
        self.scores.iter().map(|c| c.load(Ordering::Relaxed)).collect()
    }

    /// The cumulative latency histogram: (upper bound in seconds, answers at most that slow).
    pub fn latency_histogram(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        (0..LATENCY_BUCKETS)
            .map(|i| {
                total += self.latency[i].load(Ordering::Relaxed);
                (latency_bound(i), total)
            })
            .collect()
    }
}

/// An endpoint's request count and its versions' counts.
type EndpointStats = (Arc<AtomicU64>, HashMap<u32, Arc<VersionStats>>);

/// One version in a traffic table.
pub(crate) struct Route {
    pub model: Arc<ServingModel>,
    pub weight: u32,
    pub stats: Arc<VersionStats>,
    pub metrics: VersionMetrics,
    /// The version as a label value.
    pub label: String,
}

/// An endpoint as deployed at one moment: immutable; a change builds a new one.
pub(crate) struct Deployment {
    pub name: Arc<str>,
    pub settings: EndpointSettings,
    pub routes: Vec<Route>,
    total_weight: u64,
    pub requests: Arc<AtomicU64>,
    pub in_flight: prometheus_client::metrics::gauge::Gauge,
}

impl Deployment {
    /// The route of a request: by the sticky key's hash when given, else at random.
    pub fn route(&self, key: Option<&str>) -> &Route {
        let point = below(key.map_or_else(random_u64, stable_hash), self.total_weight);
        let mut acc = 0u64;
        for r in &self.routes {
            acc += u64::from(r.weight);
            if point < acc {
                return r;
            }
        }
        // Unreachable while total_weight > 0 (checked when built).
        &self.routes[self.routes.len() - 1]
    }

    /// The route of a given version.
    pub fn version(&self, version: u32) -> Option<&Route> {
        self.routes.iter().find(|r| r.model.version() == version)
    }

    /// The version answering most traffic (metadata describes it).
    pub fn primary(&self) -> &Route {
        self.routes.iter().rev().max_by_key(|r| r.weight).unwrap_or(&self.routes[0])
    }

    /// Does any version take traffic?
    pub fn is_ready(&self) -> bool {
        self.total_weight > 0
    }
}

/// What [`Endpoints::snapshot`] reports of one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionSnapshot {
    /// Training job address.
    pub job: String,
    /// Registry version.
    pub version: u32,
    /// Traffic weight.
    pub weight: u32,
    /// Requests routed to it since it was first deployed on this endpoint.
    pub requests: u64,
    /// Of those, answered 4xx (bad input).
    pub client_errors: u64,
    /// Of those, answered 5xx (timeouts, model failures).
    pub server_errors: u64,
}

/// What [`Endpoints::snapshot`] reports of one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSnapshot {
    /// Endpoint name.
    pub name: String,
    /// Versions in traffic-table order.
    pub versions: Vec<VersionSnapshot>,
    /// Requests to the endpoint (routed or not) since it was first deployed.
    pub requests: u64,
}

/// Every endpoint of a server, by name. Shared as `Arc<Endpoints>` between the HTTP layer and
/// the control plane.
pub struct Endpoints {
    table: RwLock<HashMap<String, Arc<Deployment>>>,
    /// Survive redeployment: by endpoint, then by version.
    stats: RwLock<HashMap<String, EndpointStats>>,
    metrics: Arc<Metrics>,
    ready: AtomicBool,
}

impl std::fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoints").field("names", &self.names()).finish_non_exhaustive()
    }
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints::new()
    }
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // The tables are replaced whole, never left half-changed: a poisoned lock holds a valid one.
    l.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Endpoints {
    /// No endpoints, not ready, with fresh metrics.
    pub fn new() -> Endpoints {
        Endpoints {
            table: RwLock::new(HashMap::new()),
            stats: RwLock::new(HashMap::new()),
            metrics: Arc::new(Metrics::new()),
            ready: AtomicBool::new(false),
        }
    }

    /// The metrics every request through these endpoints records.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Marks the server ready (`/readyz`, `/v2/health/ready`): call once the endpoints it should
    /// serve are loaded.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Has [`Endpoints::set_ready`] marked it ready?
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Endpoint names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = read(&self.table).keys().cloned().collect();
        v.sort();
        v
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<Deployment>> {
        read(&self.table).get(name).cloned()
    }

    /// Creates or replaces endpoint `name` with these settings and versions (each with its
    /// weight; at least one positive weight, each version once). Requests in flight finish on
    /// the deployment they started with.
    pub fn upsert(
        &self,
        name: &str,
        settings: EndpointSettings,
        versions: Vec<(Arc<ServingModel>, u32)>,
    ) -> Result<(), EndpointError> {
        let invalid = |message: String| EndpointError::Invalid { endpoint: name.to_string(), message };
        if name.is_empty() || name.len() > 200 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            return Err(invalid("a name is 1 to 200 letters, digits, `_`, `-` or `.`".into()));
        }
        if versions.is_empty() {
            return Err(invalid("no model versions given".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (m, _) in &versions {
            if !seen.insert(m.version()) {
                return Err(invalid(format!("version {} is given twice", m.version())));
            }
        }
        if let Some(key) = &settings.sticky_key {
            if key.is_empty() {
                return Err(invalid("the sticky key is empty".into()));
            }
        }
        let previous = self.get(name);
        self.deploy(name, settings, versions, previous.as_deref())
    }

    /// Sets the traffic weights of endpoint `name`: each listed version (which must be loaded)
    /// gets its weight, every other loaded version weight 0 (it stays loaded and reachable by
    /// version until the next [`Endpoints::upsert`]).
    pub fn set_weights(&self, name: &str, weights: &[(u32, u32)]) -> Result<(), EndpointError> {
        let current = self.get(name).ok_or_else(|| EndpointError::UnknownEndpoint(name.to_string()))?;
        for (v, _) in weights {
            if current.version(*v).is_none() {
                return Err(EndpointError::UnknownVersion {
                    endpoint: name.to_string(),
                    version: *v,
                    loaded: current.routes.iter().map(|r| r.model.version().to_string()).collect::<Vec<_>>().join(", "),
                });
            }
        }
        let versions = current
            .routes
            .iter()
            .map(|r| {
                let w = weights.iter().rev().find(|(v, _)| *v == r.model.version()).map_or(0, |(_, w)| *w);
                (r.model.clone(), w)
            })
            .collect();
        self.deploy(name, current.settings.clone(), versions, Some(&current))
    }

    fn deploy(
        &self,
        name: &str,
        settings: EndpointSettings,
        versions: Vec<(Arc<ServingModel>, u32)>,
        previous: Option<&Deployment>,
    ) -> Result<(), EndpointError> {
        let total_weight: u64 = versions.iter().map(|(_, w)| u64::from(*w)).sum();
        if total_weight == 0 {
            return Err(EndpointError::Invalid {
                endpoint: name.to_string(),
                message: "every weight is 0: no version would take traffic".into(),
            });
        }
        let (requests, version_stats) = {
            let mut stats = write(&self.stats);
            let (requests, per_version) = stats.entry(name.to_string()).or_default();
            let vs: Vec<Arc<VersionStats>> =
                versions.iter().map(|(m, _)| per_version.entry(m.version()).or_default().clone()).collect();
            (requests.clone(), vs)
        };
        let routes: Vec<Route> = versions
            .into_iter()
            .zip(version_stats)
            .map(|((model, weight), stats)| {
                // Reuse the metric handles of an unchanged model (same Arc).
                let metrics = previous
                    .and_then(|p| p.routes.iter().find(|r| Arc::ptr_eq(&r.model, &model)))
                    .map_or_else(|| VersionMetrics::new(&self.metrics, name, &model), |r| r.metrics.clone());
                metrics.weight.set(i64::from(weight));
                Route { label: model.version().to_string(), model, weight, stats, metrics }
            })
            .collect();
        if let Some(p) = previous {
            for old in &p.routes {
                if !routes.iter().any(|r| r.model.version() == old.model.version()) {
                    self.metrics.weight.remove(&super::metrics::EndpointVersionLabels {
                        endpoint: name.to_string(),
                        version: old.label.clone(),
                    });
                }
            }
        }
        let deployment = Deployment {
            name: Arc::from(name),
            in_flight: self
                .metrics
                .endpoint_in_flight
                .get_or_create_owned(&EndpointLabels { endpoint: name.to_string() }),
            settings,
            routes,
            total_weight,
            requests,
        };
        write(&self.table).insert(name.to_string(), Arc::new(deployment));
        Ok(())
    }

    /// Removes endpoint `name` (requests in flight finish); `false` if there was none.
    pub fn remove(&self, name: &str) -> bool {
        let removed = write(&self.table).remove(name);
        if let Some(d) = &removed {
            for r in &d.routes {
                self.metrics.weight.remove(&super::metrics::EndpointVersionLabels {
                    endpoint: name.to_string(),
                    version: r.label.clone(),
                });
            }
        }
        removed.is_some()
    }

    /// The cumulative latency histogram of `version` on endpoint `name` since it was first
    /// deployed there: (upper bound in seconds, answers), the last bound infinite.
    pub fn latency(&self, name: &str, version: u32) -> Option<Vec<(f64, u64)>> {
        read(&self.stats).get(name).and_then(|(_, v)| v.get(&version)).map(|s| s.latency_histogram())
    }

    /// The score counts of `version` on endpoint `name` since it was first deployed there, per
    /// bucket (see [`VersionStats::observe_score`]).
    pub fn scores(&self, name: &str, version: u32) -> Option<Vec<u64>> {
        read(&self.stats).get(name).and_then(|(_, v)| v.get(&version)).map(|s| s.score_counts())
    }

    /// Every endpoint: versions, weights and request counts, sorted by name.
    pub fn snapshot(&self) -> Vec<EndpointSnapshot> {
        let table: BTreeMap<String, Arc<Deployment>> =
            read(&self.table).iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        table
            .into_values()
            .map(|d| EndpointSnapshot {
                name: d.name.to_string(),
                requests: d.requests.load(Ordering::Relaxed),
                versions: d
                    .routes
                    .iter()
                    .map(|r| VersionSnapshot {
                        job: r.model.job().to_string(),
                        version: r.model.version(),
                        weight: r.weight,
                        requests: r.stats.requests.load(Ordering::Relaxed),
                        client_errors: r.stats.client_errors.load(Ordering::Relaxed),
                        server_errors: r.stats.server_errors.load(Ordering::Relaxed),
                    })
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_histograms_are_cumulative_with_an_open_last_bucket() {
        let s = VersionStats::default();
        for seconds in [0.0001, 0.001, 0.001, 100.0] {
            s.observe_latency(seconds);
        }
        let h = s.latency_histogram();
        assert_eq!(h.len(), LATENCY_BUCKETS);
        assert_eq!(h[0], (0.000_25, 1));
        assert_eq!(h[2], (0.001, 3));
        assert_eq!(h[LATENCY_BUCKETS - 2].1, 3);
        assert_eq!(h[LATENCY_BUCKETS - 1], (f64::INFINITY, 4));
        assert!((crate::serve::rollout::quantile(0.5, &h).unwrap() - 0.000_75).abs() < 1e-4);
    }

    #[test]
    fn a_token_digest_round_trips() {
        let t = BearerToken::new("s3cret").unwrap();
        let again = BearerToken::from_sha256_hex(&t.sha256_hex()).unwrap();
        assert!(again.verify("s3cret") && !again.verify("s3cret "));
        assert!(BearerToken::from_sha256_hex("zz").is_err());
    }
}
