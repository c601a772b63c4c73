//! The model registry: versioned, evaluated models in a directory (the embedded default).
//! In: [`TrainedModel`]s with the hashes of the spec slice and the data they came from. Out:
//! [`ModelVersion`]s (1, 2, 3… per job) with a status — candidate, production or archived — and
//! the model files themselves, in XGBoost's JSON format.
//!
//! ```text
//! <dir>/index.json                            every job's versions and their status (authoritative)
//! <dir>/registry.lock                         held by the one writer, names its pid
//! <dir>/models/<job>/<version>/model.json     XGBoost's own JSON model
//! <dir>/models/<job>/<version>/meta.json      metrics, params, hashes, signature, gates, status
//! ```
//!
//! Every file is replaced atomically (temporary file, fsync, rename, fsync of the directory), so
//! a crash leaves each file old or new. A registration writes the version's files before the
//! index that makes it visible; a status change rewrites `meta.json` files before the index, and
//! reads take the status from the index, so the two never disagree for a reader. Writers take
//! `registry.lock` (created with `create_new`); readers need no lock.

mod fsio;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mlops_compiler::model::Task;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::dataset::FeatureSpec;
use crate::train::{GateResult, TrainedModel, Trial};
use fsio::{create_dirs, io_err, write_atomic, Lock};

/// Why a registry operation failed; each names the file or version concerned.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The object store the data directory is mirrored to failed.
    #[error(transparent)]
    Mirror(#[from] crate::objstore::MirrorError),
    /// A filesystem operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "create directory", …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A registry file that does not parse or contradicts the index.
    #[error("{} is corrupted: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Another writer holds the lock.
    #[error("the model registry is busy: {} holds its lock ({}); try again when it has finished", holder(*.pid), path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid, when the file names one.
        pid: Option<u32>,
    },
    /// A job address that cannot name a directory.
    #[error("invalid job address {job:?}: {reason}")]
    InvalidJob {
        /// The address.
        job: String,
        /// Why.
        reason: &'static str,
    },
    /// A model that cannot be registered.
    #[error("cannot register a model of {job}: {reason}")]
    InvalidModel {
        /// The job address.
        job: String,
        /// Why.
        reason: String,
    },
    /// No versions of this job.
    #[error("the registry has no models of `{job}`")]
    UnknownJob {
        /// The job address.
        job: String,
    },
    /// No such version.
    #[error("`{job}` has no version {version}")]
    UnknownVersion {
        /// The job address.
        job: String,
        /// The version asked for.
        version: u32,
    },
    /// Promotion of a version that failed a gate, without `force`.
    #[error(
        "refusing to promote `{job}` version {version}: it failed its gate ({failed}); force the promotion to override"
    )]
    GateFailed {
        /// The job address.
        job: String,
        /// The version.
        version: u32,
        /// The failed gates, e.g. "auc 0.7100 below min 0.85".
        failed: String,
    },
    /// A model file whose content is not what was registered.
    #[error("{} does not match its registered checksum (sha256 {expected}, found {actual})", path.display())]
    Checksum {
        /// The model file.
        path: PathBuf,
        /// Recorded hash.
        expected: String,
        /// Hash of the file now.
        actual: String,
    },
}

fn holder(pid: Option<u32>) -> String {
    pid.map_or_else(|| "another process".to_string(), |p| format!("process {p}"))
}

type Result<T> = std::result::Result<T, RegistryError>;

/// Lifecycle of a version. At most one version of a job is in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Registered, not serving.
    Candidate,
    /// The version serving.
    Production,
    /// Retired (replaced in production, or archived by hand).
    Archived,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Candidate => "candidate",
            Status::Production => "production",
            Status::Archived => "archived",
        })
    }
}

/// What a model takes and gives: its input columns in order, and its classes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signature {
    /// Input features, in the order of a row.
    pub features: Vec<FeatureSpec>,
    /// Class names of a multi-class model (class i ↔ `classes[i]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
}

/// One registered version of a job's model: the contents of its `meta.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// Address of the training job (e.g. `training_job.fraud`).
    pub job: String,
    /// Version number, from 1 per job.
    pub version: u32,
    /// Lifecycle status (as the index records it).
    pub status: Status,
    /// Registration time, Unix seconds.
    pub created_at: u64,
    /// Hash of the SystemSpec slice the model came from.
    pub spec_hash: String,
    /// Hash of the training data.
    pub data_hash: String,
    /// SHA-256 of `model.json`, checked when the model is read.
    pub model_sha256: String,
    /// The model's inputs and classes.
    pub signature: Signature,
    /// XGBoost objective.
    pub objective: String,
    /// Task of the objective.
    pub task: Task,
    /// Params trained with.
    pub params: BTreeMap<String, Value>,
    /// Holdout metrics.
    pub metrics: BTreeMap<String, f64>,
    /// Gate verdicts.
    pub gates: Vec<GateResult>,
    /// Whether every gate passed (a failed version is only promoted by force).
    pub passed: bool,
    /// 0-based index of the last boosting round kept.
    pub best_iteration: u32,
    /// Rows trained on.
    pub train_rows: usize,
    /// Rows held out.
    pub holdout_rows: usize,
    /// Tuning trials, if the job was tuned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trials: Vec<Trial>,
    /// Where the model file is (not stored; filled in when read).
    #[serde(skip)]
    pub model_path: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexEntry {
    version: u32,
    status: Status,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct JobIndex {
    /// Directory under `models/` (the address, with unsafe characters escaped).
    dir: String,
    versions: Vec<IndexEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Index {
    format: u32,
    jobs: BTreeMap<String, JobIndex>,
}

const FORMAT: u32 = 1;

impl Default for Index {
    fn default() -> Self {
        Index { format: FORMAT, jobs: BTreeMap::new() }
    }
}

/// Directory name for a job address: letters, digits, `_`, `-` and `.` as they are, anything
/// else as `%XX` bytes, so no address can climb out of `models/` or collide with another.
fn job_dir(job: &str) -> Result<String> {
    let invalid = |reason| Err(RegistryError::InvalidJob { job: job.to_string(), reason });
    if job.is_empty() {
        return invalid("it is empty");
    }
    if job.len() > 200 {
        return invalid("it is longer than 200 bytes");
    }
    let mut out = String::with_capacity(job.len());
    for (i, b) in job.bytes().enumerate() {
        // A leading dot would make `.` / `..` or a hidden name.
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Ok(out)
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    // Our records hold only strings, numbers and maps with string keys: serialising cannot fail.
    let mut v = serde_json::to_vec_pretty(value).unwrap_or_default();
    v.push(b'\n');
    v
}

pub(crate) fn describe_failures(gates: &[GateResult]) -> String {
    let failed: Vec<String> = gates
        .iter()
        .filter(|g| !g.passed)
        .map(|g| match g.value {
            None => format!("{} undefined on the holdout", g.metric),
            Some(v) => match (g.min, g.max) {
                (Some(min), _) if v < min => format!("{} {v:.4} below min {min}", g.metric),
                (_, Some(max)) if v > max => format!("{} {v:.4} above max {max}", g.metric),
                _ => format!("{} {v:.4}", g.metric),
            },
        })
        .collect();
    if failed.is_empty() {
        "a gate".to_string()
    } else {
        failed.join(", ")
    }
}

/// A registry in a directory.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
    lock_wait: Duration,
}

impl Registry {
    /// Opens (creating if needed) the registry in `dir`, checking that its index is readable.
    pub fn open(dir: impl AsRef<Path>) -> Result<Registry> {
        let dir = dir.as_ref().to_path_buf();
        create_dirs(&dir.join("models"))?;
        let r = Registry { dir, lock_wait: Duration::from_secs(10) };
        r.read_index()?;
        Ok(r)
    }

    /// How long a writer waits for another writer's lock before failing (default 10 s).
    pub fn with_lock_wait(mut self, wait: Duration) -> Registry {
        self.lock_wait = wait;
        self
    }

    /// The registry's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    /// The writers' lock: this machine's lock file, and, when the data directory is mirrored
    /// to an object store, the registry's lock there too (the registry is then pulled fresh).
    fn lock(&self) -> Result<WriteGuard> {
        let local = Lock::acquire(&self.dir.join("registry.lock"), self.lock_wait)?;
        let remote = match crate::objstore::covering(&self.dir) {
            Some((mirror, area)) => Some(mirror.lock_area(area, self.lock_wait, crate::objstore::lock_ttl(area))?),
            None => None,
        };
        Ok(WriteGuard { _local: local, remote })
    }

    fn read_index(&self) -> Result<Index> {
        let path = self.index_path();
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Index::default()),
            Err(e) => return Err(RegistryError::Io { action: "read", path, source: e }),
        };
        let index: Index = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::Corrupt { path: path.clone(), message: e.to_string() })?;
        if index.format != FORMAT {
            return Err(RegistryError::Corrupt {
                path,
                message: format!("index format {} is not the supported format {FORMAT}", index.format),
            });
        }
        Ok(index)
    }

    fn write_index(&self, index: &Index) -> Result<()> {
        write_atomic(&self.index_path(), &to_json(index))
    }

    fn version_dir(&self, dir: &str, version: u32) -> PathBuf {
        self.dir.join("models").join(dir).join(version.to_string())
    }

    /// Reads a version's `meta.json`, with the status the index records.
    fn read_meta(&self, job: &str, ji: &JobIndex, entry: &IndexEntry) -> Result<ModelVersion> {
        let vdir = self.version_dir(&ji.dir, entry.version);
        let path = vdir.join("meta.json");
        let bytes = std::fs::read(&path).map_err(io_err("read", &path))?;
        let mut meta: ModelVersion = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::Corrupt { path: path.clone(), message: e.to_string() })?;
        if meta.job != job || meta.version != entry.version {
            return Err(RegistryError::Corrupt {
                path,
                message: format!(
                    "it describes `{}` version {}, the index expects `{job}` version {}",
                    meta.job, meta.version, entry.version
                ),
            });
        }
        meta.status = entry.status;
        meta.model_path = vdir.join("model.json");
        Ok(meta)
    }

    fn write_meta(&self, ji: &JobIndex, meta: &ModelVersion) -> Result<()> {
        write_atomic(&self.version_dir(&ji.dir, meta.version).join("meta.json"), &to_json(meta))
    }

    /// Registers a trained model as the next version of `job`, with status candidate.
    pub fn register(&self, job: &str, model: &TrainedModel, spec_hash: &str, data_hash: &str) -> Result<ModelVersion> {
        let dir = job_dir(job)?;
        let invalid = |reason: String| RegistryError::InvalidModel { job: job.to_string(), reason };
        if model.model_json.is_empty() {
            return Err(invalid("the model file is empty".into()));
        }
        if let Some((name, v)) = model.metrics.iter().find(|(_, v)| !v.is_finite()) {
            return Err(invalid(format!("metric `{name}` is {v}")));
        }

        let guard = self.lock()?;
        let mut index = self.read_index()?;
        let ji = index.jobs.entry(job.to_string()).or_insert_with(|| JobIndex { dir, versions: Vec::new() });
        // Past the index's versions and any directory a crashed registration left behind, so
        // nothing on disk is ever overwritten.
        let job_root = self.dir.join("models").join(&ji.dir);
        let on_disk = std::fs::read_dir(&job_root)
            .map(|rd| rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).max().unwrap_or(0))
            .unwrap_or(0);
        let indexed = ji.versions.iter().map(|e| e.version).max().unwrap_or(0);
        let version = indexed.max(on_disk) + 1;

        let vdir = self.version_dir(&ji.dir, version);
        let meta = ModelVersion {
            job: job.to_string(),
            version,
            status: Status::Candidate,
            created_at: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            spec_hash: spec_hash.to_string(),
            data_hash: data_hash.to_string(),
            model_sha256: sha256_hex(&model.model_json),
            signature: Signature { features: model.features.clone(), classes: model.classes.clone() },
            objective: model.objective.clone(),
            task: model.task,
            params: model.params.clone(),
            metrics: model.metrics.clone(),
            gates: model.gates.clone(),
            passed: model.passed(),
            best_iteration: model.best_iteration,
            train_rows: model.train_rows,
            holdout_rows: model.holdout_rows,
            trials: model.trials.clone(),
            model_path: vdir.join("model.json"),
        };
        let written = (|| {
            create_dirs(&vdir)?;
            write_atomic(&meta.model_path, &model.model_json)?;
            self.write_meta(ji, &meta)
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_dir_all(&vdir);
            return Err(e);
        }
        ji.versions.push(IndexEntry { version, status: Status::Candidate });
        self.write_index(&index)?;
        guard.commit()?;
        Ok(meta)
    }

    /// Every version of `job` (or of every job), ordered by job then version.
    pub fn list(&self, job: Option<&str>) -> Result<Vec<ModelVersion>> {
        let index = self.read_index()?;
        let mut out = Vec::new();
        for (name, ji) in &index.jobs {
            if job.is_some_and(|j| j != name) {
                continue;
            }
            let mut entries: Vec<&IndexEntry> = ji.versions.iter().collect();
            entries.sort_by_key(|e| e.version);
            for e in entries {
                out.push(self.read_meta(name, ji, e)?);
            }
        }
        Ok(out)
    }

    fn find<'a>(index: &'a Index, job: &str, version: u32) -> Result<(&'a JobIndex, &'a IndexEntry)> {
        let ji = index.jobs.get(job).ok_or_else(|| RegistryError::UnknownJob { job: job.to_string() })?;
        let e = ji
            .versions
            .iter()
            .find(|e| e.version == version)
            .ok_or_else(|| RegistryError::UnknownVersion { job: job.to_string(), version })?;
        Ok((ji, e))
    }

    /// One version.
    pub fn get(&self, job: &str, version: u32) -> Result<ModelVersion> {
        let index = self.read_index()?;
        let (ji, e) = Self::find(&index, job, version)?;
        self.read_meta(job, ji, e)
    }

    /// The newest version of `job`, if any.
    pub fn latest(&self, job: &str) -> Result<Option<ModelVersion>> {
        let index = self.read_index()?;
        let Some(ji) = index.jobs.get(job) else { return Ok(None) };
        ji.versions.iter().max_by_key(|e| e.version).map(|e| self.read_meta(job, ji, e)).transpose()
    }

    /// The version of `job` in production, if any.
    pub fn production(&self, job: &str) -> Result<Option<ModelVersion>> {
        let index = self.read_index()?;
        let Some(ji) = index.jobs.get(job) else { return Ok(None) };
        ji.versions.iter().find(|e| e.status == Status::Production).map(|e| self.read_meta(job, ji, e)).transpose()
    }

    /// The model file of a version, checked against the hash recorded at registration.
    pub fn model_json(&self, v: &ModelVersion) -> Result<Vec<u8>> {
        let bytes = std::fs::read(&v.model_path).map_err(io_err("read", &v.model_path))?;
        let actual = sha256_hex(&bytes);
        if actual != v.model_sha256 {
            return Err(RegistryError::Checksum {
                path: v.model_path.clone(),
                expected: v.model_sha256.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Sets the status of `version` of `job`, archiving the previous production version when
    /// `status` is production.
    fn set_status(&self, job: &str, version: u32, status: Status, force: bool) -> Result<ModelVersion> {
        let guard = self.lock()?;
        let mut index = self.read_index()?;
        let (ji, entry) = Self::find(&index, job, version)?;
        let mut meta = self.read_meta(job, ji, entry)?;
        if entry.status == status {
            return Ok(meta);
        }
        if status == Status::Production && !meta.passed && !force {
            return Err(RegistryError::GateFailed {
                job: job.to_string(),
                version,
                failed: describe_failures(&meta.gates),
            });
        }
        let ji = ji.clone();
        let mut updated = ji.versions.clone();
        for e in &mut updated {
            if status == Status::Production && e.status == Status::Production && e.version != version {
                // The one leaving production goes to archived, in its meta.json first.
                let mut previous = self.read_meta(job, &ji, e)?;
                previous.status = Status::Archived;
                self.write_meta(&ji, &previous)?;
                e.status = Status::Archived;
            }
            if e.version == version {
                e.status = status;
            }
        }
        meta.status = status;
        self.write_meta(&ji, &meta)?;
        if let Some(j) = index.jobs.get_mut(job) {
            j.versions = updated;
        }
        self.write_index(&index)?;
        guard.commit()?;
        Ok(meta)
    }

    /// Puts `version` of `job` in production; the previous production version is archived.
    /// A version that failed its gate is refused unless `force`.
    pub fn promote(&self, job: &str, version: u32, force: bool) -> Result<ModelVersion> {
        self.set_status(job, version, Status::Production, force)
    }

    /// Archives `version` of `job` (leaving no version in production if it was the one).
    pub fn archive(&self, job: &str, version: u32) -> Result<ModelVersion> {
        self.set_status(job, version, Status::Archived, false)
    }
}

/// Held while writing: the local lock and, with a mirrored data directory, the object
/// store's. [`WriteGuard::commit`] uploads the registry's changes before releasing; dropped
/// without it (an error), the object store is left as it was.
struct WriteGuard {
    _local: Lock,
    remote: Option<crate::objstore::AreaLock<'static>>,
}

impl WriteGuard {
    fn commit(self) -> Result<()> {
        if let Some(remote) = self.remote {
            remote.commit()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_dirs_are_safe_and_distinct() {
        assert_eq!(job_dir("training_job.fraud").unwrap(), "training_job.fraud");
        assert_eq!(job_dir("module.a[\"k\"].training_job.x").unwrap(), "module.a%5B%22k%22%5D.training_job.x");
        assert_eq!(job_dir("../x").unwrap(), "%2E.%2Fx");
        assert_eq!(job_dir("a/b").unwrap(), "a%2Fb");
        assert_ne!(job_dir("a/b").unwrap(), job_dir("a%2Fb").unwrap());
        assert!(job_dir("").is_err());
        assert!(job_dir(&"x".repeat(201)).is_err());
    }

    #[test]
    fn gate_failures_read_well() {
        let g = |metric: &str, value, min, max| GateResult { metric: metric.into(), value, min, max, passed: false };
        assert_eq!(
            describe_failures(&[
                g("auc", Some(0.71), Some(0.85), None),
                g("rmse", Some(3.0), None, Some(2.0)),
                g("f1", None, Some(0.5), None)
            ]),
            "auc 0.7100 below min 0.85, rmse 3.0000 above max 2, f1 undefined on the holdout"
        );
    }
}
