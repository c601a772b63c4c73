//! Targets: where `apply` makes the configuration real. In: one resource's spec (with the whole
//! spec for its references), or a resource as the state recorded it. Out: what the resource
//! produced (model version, watermark …), or the drift refresh found.
//!
//! One trait, [`Target`]; the `local` target ([`local::LocalTarget`], the embedded default)
//! runs the runtime on this machine. The `kubernetes` target is not applied resource by
//! resource: [`kubernetes`] plans and writes the whole system as a folder of manifests.

pub mod kubernetes;
pub mod local;

use std::collections::BTreeMap;
use std::path::Path;

use mlops_compiler::model::Target as TargetConfig;
use mlops_compiler::plan::Action;
use mlops_compiler::spec::{ResourceSpec, SystemSpec};
use mlops_compiler::state::{Drifted, ResourceState};

/// Values a resource produced, by export name (`version`, `metrics`, `watermark` …); names that
/// start with `_` are the target's own bookkeeping (a fingerprint, a data hash).
pub type Produced = BTreeMap<String, serde_json::Value>;

/// Why a target could not do something, in words that name the resource's problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(pub String);

impl TargetError {
    /// An error from any displayable cause.
    pub fn from_display(e: impl std::fmt::Display) -> TargetError {
        TargetError(e.to_string())
    }
}

/// Where resources are made real.
pub trait Target: Sync {
    /// Names the target for messages ("local target (data in .mlops/data)").
    fn describe(&self) -> String;

    /// `Err(why)` when this target cannot apply resources of `kind` (yet); apply reports such
    /// resources as not applied, and everything that depends on them, instead of failing.
    fn supports(&self, kind: &str) -> Result<(), String>;

    /// Makes `resource` real as the plan's `action` says (create, update or replace), reading
    /// what it references from `spec`; `prior` is what the state recorded for it. Idempotent:
    /// doing it again after an interruption gives the same result.
    fn apply(
        &self,
        spec: &SystemSpec,
        resource: &ResourceSpec,
        action: Action,
        prior: Option<&ResourceState>,
    ) -> Result<Produced, TargetError>;

    /// Removes what applying `prior` made (never the user's own data).
    fn destroy(&self, address: &str, prior: &ResourceState) -> Result<(), TargetError>;

    /// Compares what the state recorded for `address` with the world; `state` gives the
    /// resources it references as they were applied. `Ok(None)`: nothing changed.
    fn refresh(
        &self,
        address: &str,
        prior: &ResourceState,
        state: &BTreeMap<String, ResourceState>,
    ) -> Result<Option<Drifted>, TargetError>;

    /// What the runtime changed by design since `address` was applied — a retrain policy
    /// promoted a model trained from the same configuration on newer data, and rolled it out —
    /// as the values the state should record instead, with the reason in words. `Ok(None)`:
    /// nothing to take over (the default).
    fn adopt(
        &self,
        _address: &str,
        _prior: &ResourceState,
        _state: &BTreeMap<String, ResourceState>,
    ) -> Result<Option<(String, Produced)>, TargetError> {
        Ok(None)
    }
}

/// How targets run what they need beyond the runtime library.
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    /// The `mlops` executable, which the local target runs as `mlops agent` to serve endpoints
    /// (`None`: endpoints cannot be applied).
    pub mlops_exe: Option<std::path::PathBuf>,
}

/// The target the configuration declares (`mlops { target … }`), for the configuration in `root`.
pub fn open(root: &Path, spec: &SystemSpec, options: TargetOptions) -> Result<Box<dyn Target>, TargetError> {
    match &spec.system.target {
        TargetConfig::Local { .. } => Ok(Box::new(local::LocalTarget::new(root, spec, options))),
        TargetConfig::Kubernetes { .. } => Err(TargetError(
            "the kubernetes target is applied as a whole, as manifests (`mlops plan` / `mlops apply` write them; `kubectl apply -k` runs them), not resource by resource".into(),
        )),
    }
}
