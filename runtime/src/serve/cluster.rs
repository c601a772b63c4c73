//! Rollouts across the replicas of an endpoint that share a volume (pods). In: the controller's
//! rollout of a candidate and each replica's counters. Out: small JSON files under the data
//! directory, each replaced atomically (temporary file, rename), so no reader sees half of one:
//!
//! - `rollouts/<endpoint>.json` ([`SharedRollout`]), written by the controller alone: the
//!   endpoint's [`Rollout`] — candidate, the version it replaces, steps, where it stands. While
//!   it is stepping and the version it replaces is still the registry's production version,
//!   every replica splits its traffic as it says (the candidate's share, production the rest);
//!   otherwise replicas serve production. Promotion is the registry's production moving.
//! - `stats/<endpoint>/<pod>.json` ([`PodStats`]), written by each replica at every poll: per
//!   version, the requests, 5xx answers, latency histogram and score buckets counted since the
//!   process started. The controller sums them over the pods, since the step began
//!   ([`Baseline`]), into the [`Window`] its rollback rule judges.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::rollout::{Rollout, Window};

/// An endpoint's rollout as the controller publishes it to the replicas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SharedRollout {
    /// The endpoint's name (as in URLs).
    pub endpoint: String,
    /// The training job it serves.
    pub job: String,
    /// The rollout.
    pub rollout: Rollout,
}

/// One version's counters since a replica started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionCounters {
    /// Requests answered.
    pub requests: u64,
    /// 5xx answers.
    pub errors: u64,
    /// Cumulative latency histogram: (upper bound in seconds, `None` for +Inf; count).
    pub latency: Vec<(Option<f64>, u64)>,
    /// Score counts per bucket.
    pub scores: Vec<u64>,
}

impl VersionCounters {
    /// From a latency histogram with an infinite last bound (JSON has no infinity).
    pub fn new(requests: u64, errors: u64, latency: &[(f64, u64)], scores: Vec<u64>) -> VersionCounters {
        let latency = latency.iter().map(|(b, n)| (b.is_finite().then_some(*b), *n)).collect();
        VersionCounters { requests, errors, latency, scores }
    }

    /// `self − base`, element by element (a counter that went down counts 0).
    fn since(&self, base: &VersionCounters) -> VersionCounters {
        let sub = |a: &[u64], b: &[u64]| -> Vec<u64> {
            a.iter().enumerate().map(|(i, n)| n.saturating_sub(b.get(i).copied().unwrap_or(0))).collect()
        };
        let counts: Vec<u64> = self.latency.iter().map(|(_, n)| *n).collect();
        let base_counts: Vec<u64> = base.latency.iter().map(|(_, n)| *n).collect();
        VersionCounters {
            requests: self.requests.saturating_sub(base.requests),
            errors: self.errors.saturating_sub(base.errors),
            latency: self.latency.iter().zip(sub(&counts, &base_counts)).map(|((b, _), n)| (*b, n)).collect(),
            scores: sub(&self.scores, &base.scores),
        }
    }

    /// Adds `other` (the same buckets) to `self`.
    fn add(&mut self, other: &VersionCounters) {
        self.requests += other.requests;
        self.errors += other.errors;
        if self.latency.is_empty() {
            self.latency = other.latency.iter().map(|(b, _)| (*b, 0)).collect();
        }
        for (mine, (_, n)) in self.latency.iter_mut().zip(&other.latency) {
            mine.1 += n;
        }
        if self.scores.len() < other.scores.len() {
            self.scores.resize(other.scores.len(), 0);
        }
        for (mine, n) in self.scores.iter_mut().zip(&other.scores) {
            *mine += n;
        }
    }

    fn latency_seconds(&self) -> Vec<(f64, u64)> {
        self.latency.iter().map(|(b, n)| (b.unwrap_or(f64::INFINITY), *n)).collect()
    }
}

/// What one replica counted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PodStats {
    /// The pod's name.
    pub pod: String,
    /// When its process started, Unix milliseconds (a restart starts its counters again).
    pub started_ms: u64,
    /// Per version.
    pub versions: BTreeMap<u32, VersionCounters>,
}

/// Each pod's counters when the current step began: pod → (its `started_ms`, per version).
pub type Baseline = HashMap<String, (u64, BTreeMap<u32, VersionCounters>)>;

fn segment(name: &str) -> String {
    match name.strip_prefix('.') {
        Some(rest) => format!("%2E{rest}"),
        None => name.replace('/', "%2F"),
    }
}

/// `<data_dir>/rollouts/<endpoint>.json`.
pub fn rollout_file(data_dir: &Path, endpoint: &str) -> PathBuf {
    data_dir.join("rollouts").join(format!("{}.json", segment(endpoint)))
}

fn stats_dir(data_dir: &Path, endpoint: &str) -> PathBuf {
    data_dir.join("stats").join(segment(endpoint))
}

fn write_json(path: &Path, value: &impl Serialize) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::fsio::write_atomic(path, &text).map_err(|e| {
        std::io::Error::new(e.source.kind(), format!("cannot {} {}: {}", e.action, e.path.display(), e.source))
    })
}

/// A version a training Job registered for the controller to roll out through the `rollout`
/// blocks of the endpoints serving its job (`mlops train --spec … --propose`), in
/// `rollouts/proposals/<job>.json`: one per job, the newest wins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    /// The training job's address.
    pub job: String,
    /// The registered version.
    pub version: u32,
}

fn proposals_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("rollouts").join("proposals")
}

/// Proposes `version` of `job` for rollout.
pub fn propose(data_dir: &Path, p: &Proposal) -> std::io::Result<()> {
    write_json(&proposals_dir(data_dir).join(format!("{}.json", segment(&p.job))), p)
}

/// Every pending proposal with its file (unreadable files skipped).
pub fn proposals(data_dir: &Path) -> Vec<(PathBuf, Proposal)> {
    let Ok(entries) = std::fs::read_dir(proposals_dir(data_dir)) else { return Vec::new() };
    let mut out: Vec<(PathBuf, Proposal)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .filter_map(|p| Some((p.clone(), serde_json::from_slice(&std::fs::read(&p).ok()?).ok()?)))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The endpoint's published rollout, if any (an unreadable file counts as none).
pub fn read_rollout(data_dir: &Path, endpoint: &str) -> Option<SharedRollout> {
    let bytes = std::fs::read(rollout_file(data_dir, endpoint)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Publishes the endpoint's rollout.
pub fn write_rollout(data_dir: &Path, r: &SharedRollout) -> std::io::Result<()> {
    write_json(&rollout_file(data_dir, &r.endpoint), r)
}

/// Publishes one replica's counters.
pub fn write_stats(data_dir: &Path, endpoint: &str, stats: &PodStats) -> std::io::Result<()> {
    write_json(&stats_dir(data_dir, endpoint).join(format!("{}.json", segment(&stats.pod))), stats)
}

/// Every replica's counters for the endpoint (unreadable files skipped).
pub fn read_stats(data_dir: &Path, endpoint: &str) -> Vec<PodStats> {
    let Ok(entries) = std::fs::read_dir(stats_dir(data_dir, endpoint)) else { return Vec::new() };
    let mut out: Vec<PodStats> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok())
        .collect();
    out.sort_by(|a, b| a.pod.cmp(&b.pod));
    out
}

/// Removes the counter files of replicas gone for longer than `max_age` (a live replica
/// rewrites its file at every poll, so an old file is a pod that no longer exists: a
/// Deployment's every rollout leaves some). Their counters had stopped moving, so they weighed
/// nothing in a step. Returns the pods removed.
pub fn prune_stats(data_dir: &Path, endpoint: &str, max_age: std::time::Duration) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(stats_dir(data_dir, endpoint)) else { return Vec::new() };
    let now = std::time::SystemTime::now();
    let mut removed = Vec::new();
    for e in entries.filter_map(|e| e.ok()) {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let age = e.metadata().and_then(|m| m.modified()).ok().and_then(|t| now.duration_since(t).ok());
        if age.is_some_and(|a| a > max_age) && std::fs::remove_file(&path).is_ok() {
            removed.push(path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
        }
    }
    removed.sort();
    removed
}

/// The counters now, as the base of a new step.
pub fn baseline(stats: &[PodStats]) -> Baseline {
    stats.iter().map(|s| (s.pod.clone(), (s.started_ms, s.versions.clone()))).collect()
}

/// `version`'s counters summed over the pods since `base` (a pod new since, or restarted,
/// counts from zero).
pub fn since(stats: &[PodStats], base: &Baseline, version: u32) -> VersionCounters {
    let mut total = VersionCounters::default();
    for s in stats {
        let Some(now) = s.versions.get(&version) else { continue };
        let delta = match base.get(&s.pod) {
            Some((started, versions)) if *started == s.started_ms => {
                versions.get(&version).map_or_else(|| now.clone(), |b| now.since(b))
            }
            _ => now.clone(),
        };
        total.add(&delta);
    }
    total
}

/// What the candidate of `r` did on every pod since `base`: the [`Window`] its rule judges (the
/// score shift against the version it replaces over the same time; an external metric is the
/// caller's to add).
pub fn window(stats: &[PodStats], base: &Baseline, r: &Rollout) -> Window {
    let candidate = since(stats, base, r.candidate);
    let score_drift =
        r.previous.and_then(|p| super::agent::score_psi(&since(stats, base, p).scores, &candidate.scores));
    Window {
        requests: candidate.requests,
        errors: candidate.errors,
        latency: candidate.latency_seconds(),
        score_drift,
        external: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(requests: u64, errors: u64, fast: u64, scores: [u64; 2]) -> VersionCounters {
        VersionCounters::new(requests, errors, &[(0.01, fast), (f64::INFINITY, requests)], scores.to_vec())
    }

    fn pod(name: &str, started_ms: u64, v2: VersionCounters) -> PodStats {
        PodStats { pod: name.into(), started_ms, versions: BTreeMap::from([(2, v2)]) }
    }

    #[test]
    fn counters_are_summed_over_pods_since_the_step_began() {
        let before = [pod("a", 1, counters(10, 1, 8, [5, 5])), pod("b", 1, counters(4, 0, 4, [2, 2]))];
        let base = baseline(&before);
        // a counted 30 more; b restarted (started_ms moved) and counted 6; c is new with 3.
        let now = [
            pod("a", 1, counters(40, 3, 30, [20, 20])),
            pod("b", 9, counters(6, 1, 5, [3, 3])),
            pod("c", 5, counters(3, 0, 3, [3, 0])),
        ];
        let total = since(&now, &base, 2);
        assert_eq!((total.requests, total.errors), (30 + 6 + 3, 2 + 1));
        assert_eq!(total.latency, vec![(Some(0.01), 22 + 5 + 3), (None, 39)]);
        assert_eq!(total.scores, vec![15 + 3 + 3, 15 + 3]);
        assert_eq!(since(&now, &base, 7), VersionCounters::default(), "no pod served version 7");
    }

    #[test]
    fn files_round_trip_and_infinity_survives_json() {
        let dir = tempfile::tempdir().unwrap();
        let stats = pod("api-0", 42, counters(5, 0, 5, [1, 4]));
        write_stats(dir.path(), "module.fraud.api", &stats).unwrap();
        assert_eq!(read_stats(dir.path(), "module.fraud.api"), vec![stats.clone()]);
        let w = window(&[stats], &Baseline::new(), &sample_rollout());
        assert_eq!(w.requests, 5);
        assert_eq!(w.latency.last(), Some(&(f64::INFINITY, 5)));
        let r = SharedRollout { endpoint: "module.fraud.api".into(), job: "j".into(), rollout: sample_rollout() };
        write_rollout(dir.path(), &r).unwrap();
        assert_eq!(read_rollout(dir.path(), "module.fraud.api"), Some(r));
        assert_eq!(read_rollout(dir.path(), "other"), None);
    }

    fn sample_rollout() -> Rollout {
        Rollout {
            candidate: 2,
            previous: Some(1),
            steps: vec![10.0, 100.0],
            interval_ms: 1000,
            rule: None,
            phase: super::super::rollout::Phase::Stepping { step: 0, since_ms: 5 },
        }
    }

    #[test]
    fn counters_of_gone_pods_are_pruned_and_live_ones_kept() {
        let dir = std::env::temp_dir().join(format!("mlops-cluster-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        write_stats(&dir, "api", &pod("api-old", 1, counters(5, 0, 5, [5, 0]))).unwrap();
        write_stats(&dir, "api", &pod("api-new", 2, counters(5, 0, 5, [5, 0]))).unwrap();
        let old = stats_dir(&dir, "api").join("api-old.json");
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options().write(true).open(&old).unwrap().set_modified(hour_ago).unwrap();
        assert_eq!(prune_stats(&dir, "api", std::time::Duration::from_secs(600)), ["api-old"]);
        let left: Vec<String> = read_stats(&dir, "api").into_iter().map(|p| p.pod).collect();
        assert_eq!(left, ["api-new"]);
        assert!(prune_stats(&dir, "api", std::time::Duration::from_secs(600)).is_empty());
        assert!(prune_stats(&dir, "none", std::time::Duration::from_secs(600)).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
