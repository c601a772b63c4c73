//! Running from a compiled spec instead of a configuration directory — what a Kubernetes pod
//! does with the SystemSpec its ConfigMap mounts (`mlops compile DIR` output, at
//! `/etc/mlops/spec.json`). In: the spec file's path, an endpoint address, the environment.
//! Out: the spec (or an error naming the file and the fix), the endpoint (or the list of the
//! ones there are), and the pod's name for the files each replica keeps apart on the shared
//! volume (its prediction log).

use std::path::{Path, PathBuf};

use mlops_compiler::model::{Config, Endpoint};
use mlops_compiler::spec::{SpecError, SystemSpec, FORMAT_VERSION};

/// Why a spec file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpecFileError {
    /// The file cannot be read.
    #[error(
        "cannot read the SystemSpec {path}: {source}; write it with `mlops compile DIR --out {path}` \
         (in a pod: mount the ConfigMap holding that output there), or name another file with --spec \
         or MLOPS_SPEC"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a SystemSpec.
    #[error(
        "{path} is not a SystemSpec ({message}); it must hold exactly what `mlops compile DIR` prints: \
         compile the configuration again and replace the file (on Kubernetes, the ConfigMap)"
    )]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What the JSON reader said.
        message: String,
    },
    /// Written by an mlops with another format.
    #[error(
        "{path} is a SystemSpec of format version {found}, but this mlops reads version {expected}: \
         compile the configuration with this mlops (`mlops compile DIR`), or run the image of the \
         mlops that compiled it"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// Its format version.
        found: u64,
        /// The one this build reads.
        expected: u32,
    },
}

/// Reads the SystemSpec at `path`.
pub fn load_spec(path: &Path) -> Result<SystemSpec, SpecFileError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| SpecFileError::Read { path: path.to_path_buf(), source })?;
    SystemSpec::from_json(&text).map_err(|e| match e {
        SpecError::Version { found, .. } => {
            SpecFileError::Version { path: path.to_path_buf(), found, expected: FORMAT_VERSION }
        }
        SpecError::Json(e) => SpecFileError::Invalid { path: path.to_path_buf(), message: e.to_string() },
    })
}

/// The addresses of the spec's endpoints.
pub fn endpoints(spec: &SystemSpec) -> Vec<&str> {
    spec.resources.iter().filter(|r| matches!(r.config, Config::Endpoint(_))).map(|r| r.address.as_str()).collect()
}

/// The endpoint named `wanted` — its address (`module.fraud.endpoint.api`) or its name in URLs
/// (`module.fraud.api`) — as (address, block); else an error listing the endpoints there are.
pub fn endpoint<'a>(spec: &'a SystemSpec, wanted: &str, file: &Path) -> Result<(&'a str, &'a Endpoint), String> {
    let found = spec.resources.iter().find_map(|r| match &r.config {
        Config::Endpoint(e) if r.address == wanted || crate::serve::control::endpoint_name(&r.address) == wanted => {
            Some((r.address.as_str(), e))
        }
        _ => None,
    });
    found.ok_or_else(|| {
        let all = endpoints(spec);
        if all.is_empty() {
            format!("`{wanted}` is not an endpoint of {}: it has no endpoints", file.display())
        } else {
            format!("`{wanted}` is not an endpoint of {}; its endpoints: {}", file.display(), all.join(", "))
        }
    })
}

/// This pod's name, safe as one path segment: `POD_NAME` (the downward API), else `HOSTNAME`
/// (a pod's host name is its name), else `pid-<pid>`.
pub fn pod_name() -> String {
    let raw = ["POD_NAME", "HOSTNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| format!("pid-{}", std::process::id()));
    path_safe(raw.trim())
}

/// `name` with every character but letters, digits, `-`, `_` and `.` replaced by `_`, and a
/// leading dot too (never `.` or `..`).
fn path_safe(name: &str) -> String {
    let mut out: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    if out.starts_with('.') {
        out.replace_range(0..1, "_");
    }
    out
}

/// What a pod runs, for what it reads from the object store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `mlops agent --endpoint`: follows the registry and rollouts, looks up the online store.
    Serving,
    /// `mlops controller`: reads every pod's prediction logs, feedback and counters, and its
    /// own state, events and rollouts when it starts on a new pod.
    Controller,
    /// `mlops train` / `materialize`: reads the registry and feature store under their locks.
    Job,
}

impl Role {
    /// The data directory's areas this role pulls (`""` is all of it).
    fn reads(self) -> &'static [&'static str] {
        match self {
            Role::Serving => &["registry", "rollouts", "features/online"],
            // Everything but the feature store, which its retrains pull under its lock: the
            // offline store grows a part per materialisation, not worth listing every poll.
            Role::Controller => &["agent", "events", "feedback", "predictions", "registry", "rollouts", "stats"],
            // Pulled when their locks are taken: what it reads is fresh exactly then.
            Role::Job => &[],
        }
    }
}

/// The object store the spec's kubernetes target names, if any.
pub fn object_store(spec: &SystemSpec) -> Option<&str> {
    match &spec.system.target {
        mlops_compiler::model::Target::Kubernetes { object_store: Some(url), .. } => Some(url),
        _ => None,
    }
}

/// When the spec names an object store: mirrors `data_dir` to it for this process — pulls
/// what `role` reads now and, for the long-running roles, keeps the two in step every `every`
/// on a background thread. `None` without an object store (the shared volume).
pub fn mirror(
    spec: &SystemSpec,
    data_dir: &Path,
    role: Role,
    every: std::time::Duration,
) -> Result<Option<&'static crate::objstore::Mirror>, crate::objstore::MirrorError> {
    use crate::objstore;
    let Some(url) = object_store(spec) else { return Ok(None) };
    if objstore::active().is_none() {
        objstore::install(objstore::Mirror::open(url, data_dir)?);
    }
    let mirror = objstore::active().expect("installed above");
    let report = mirror.pull(role.reads())?;
    tracing::info!(url, downloaded = report.downloaded, "data directory mirrored from the object store");
    if role != Role::Job {
        std::thread::Builder::new()
            .name("mlops-mirror-sync".into())
            .spawn(move || loop {
                std::thread::sleep(every);
                match mirror.sync(role.reads()) {
                    Ok(r) if !r.conflicts.is_empty() => {
                        tracing::warn!(files = ?r.conflicts, "another writer changed files this pod writes; this pod's copy was kept")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "object-store synchronisation failed; retrying"),
                }
            })
            .map_err(|source| objstore::MirrorError::Io {
                action: "start the synchronisation thread for",
                path: data_dir.to_path_buf(),
                source,
            })?;
    }
    Ok(Some(mirror))
}

/// Uploads what this process wrote outside the locked areas (its last prediction-log lines,
/// counters, events) before it exits; nothing to do without a mirror.
pub fn flush_mirror() -> Result<(), crate::objstore::MirrorError> {
    match crate::objstore::active() {
        Some(m) => m.sync(&[]).map(drop),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_are_one_safe_path_segment() {
        assert_eq!(path_safe("fraud-api-7d9f8c6b5-x2x4z"), "fraud-api-7d9f8c6b5-x2x4z");
        assert_eq!(path_safe("../etc"), "_._etc");
        assert_eq!(path_safe(".."), "_.");
        assert_eq!(path_safe("a b/c"), "a_b_c");
    }

    #[test]
    fn spec_file_errors_name_the_file_and_the_fix() {
        let dir = std::env::temp_dir().join(format!("mlops-pod-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = load_spec(&dir.join("nope.json")).unwrap_err().to_string();
        assert!(missing.contains("nope.json") && missing.contains("mlops compile"), "{missing}");
        std::fs::write(dir.join("bad.json"), "{not json").unwrap();
        let bad = load_spec(&dir.join("bad.json")).unwrap_err().to_string();
        assert!(bad.contains("bad.json is not a SystemSpec") && bad.contains("mlops compile"), "{bad}");
        std::fs::write(dir.join("v9.json"), r#"{"format_version": 9}"#).unwrap();
        let v9 = load_spec(&dir.join("v9.json")).unwrap_err().to_string();
        assert!(v9.contains("format version 9") && v9.contains("reads version 1"), "{v9}");
        std::fs::write(dir.join("shape.json"), r#"{"format_version": 1, "system": 3}"#).unwrap();
        let shape = load_spec(&dir.join("shape.json")).unwrap_err().to_string();
        assert!(shape.contains("shape.json is not a SystemSpec"), "{shape}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
