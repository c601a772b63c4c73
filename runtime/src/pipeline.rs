//! The runtime's verbs on a compiled system, in the words of the CLI: materialise a feature
//! view (source → offline and online store) and train a job (views materialised, training set
//! built point-in-time, XGBoost trained, version registered). `plan`/`apply` will call the
//! same functions. In: a [`SystemSpec`] and the configuration directory. Out: reports and
//! registered model versions.

use crate::data::{self, DataError};
use crate::features::{self, FeatureError, FeatureStore, MaterializeReport};
use crate::registry::{ModelVersion, Registry, RegistryError};
use crate::train::{self, TrainError, TrainOptions, TrainedModel};
use crate::workspace::Workspace;
use mlops_compiler::model::{Config, FeatureView, Source, TrainingJob};
use mlops_compiler::spec::{ResourceSpec, SystemSpec};
use std::path::Path;

/// Why a runtime verb failed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The address names nothing in the spec.
    #[error("no resource `{address}` in this configuration{hint}")]
    NotFound {
        /// The address asked for.
        address: String,
        /// " (did you mean …?)" or empty.
        hint: String,
    },
    /// The address names a resource of another kind.
    #[error("`{address}` is a {found}, not a {expected}")]
    WrongKind {
        /// The address.
        address: String,
        /// Kind wanted.
        expected: &'static str,
        /// Kind found.
        found: &'static str,
    },
    /// Reading a source failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The feature store failed.
    #[error(transparent)]
    Features(#[from] FeatureError),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The registry failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// What `train` did.
#[derive(Debug)]
pub struct TrainOutcome {
    /// The views materialised on the way.
    pub materialized: Vec<MaterializeReport>,
    /// The trained model.
    pub model: TrainedModel,
    /// Its registered version.
    pub version: ModelVersion,
    /// Was it promoted to production?
    pub promoted: bool,
}

/// The runtime for one compiled configuration.
pub struct Runtime<'a> {
    /// Where things are kept.
    pub workspace: Workspace,
    spec: &'a SystemSpec,
}

impl<'a> Runtime<'a> {
    /// The runtime of `spec`, compiled from the configuration in `root`.
    pub fn new(root: &Path, spec: &'a SystemSpec) -> Runtime<'a> {
        Runtime { workspace: Workspace::new(root, spec), spec }
    }

    fn resource(&self, address: &str) -> Result<&'a ResourceSpec, PipelineError> {
        self.spec.resource(address).ok_or_else(|| {
            let names: Vec<&str> = self.spec.resources.iter().map(|r| r.address.as_str()).collect();
            let hint = mlops_compiler::suggest::did_you_mean(address, names.iter().copied())
                .map_or(String::new(), |s| format!(" (did you mean `{s}`?)"));
            PipelineError::NotFound { address: address.to_string(), hint }
        })
    }

    fn source(&self, address: &str) -> Result<&'a Source, PipelineError> {
        match &self.resource(address)?.config {
            Config::Source(s) => Ok(s),
            other => Err(PipelineError::WrongKind { address: address.into(), expected: "source", found: other.kind() }),
        }
    }

    fn view(&self, address: &str) -> Result<&'a FeatureView, PipelineError> {
        match &self.resource(address)?.config {
            Config::FeatureView(v) => Ok(v),
            other => {
                Err(PipelineError::WrongKind { address: address.into(), expected: "feature_view", found: other.kind() })
            }
        }
    }

    fn job(&self, address: &str) -> Result<&'a TrainingJob, PipelineError> {
        match &self.resource(address)?.config {
            Config::TrainingJob(j) => Ok(j),
            other => {
                Err(PipelineError::WrongKind { address: address.into(), expected: "training_job", found: other.kind() })
            }
        }
    }

    /// The feature store.
    pub fn feature_store(&self) -> Result<FeatureStore, PipelineError> {
        Ok(FeatureStore::open(&self.workspace.features_dir())?)
    }

    /// The model registry.
    pub fn registry(&self) -> Result<Registry, PipelineError> {
        Ok(Registry::open(self.workspace.registry_dir())?)
    }

    /// Every feature view of the system, in dependency order.
    pub fn views(&self) -> Vec<&'a str> {
        self.spec
            .resources
            .iter()
            .filter(|r| matches!(r.config, Config::FeatureView(_)))
            .map(|r| r.address.as_str())
            .collect()
    }

    /// Materialises one feature view: only source rows newer than the last run are processed.
    pub fn materialize(&self, view_address: &str) -> Result<MaterializeReport, PipelineError> {
        let view = self.view(view_address)?;
        let source = self.source(&view.source)?;
        let store = self.feature_store()?;
        let fingerprint = data::fingerprint(source, &view.source, &self.workspace.root)?;
        let batches = data::open(source, &view.source, &self.workspace.root)?;
        Ok(features::materialize(&store, view_address, view, source, batches, &fingerprint)?)
    }

    /// Trains a job: materialises its views, builds its training set point-in-time from the
    /// label source, trains, and registers the model. The first version that passes its gates
    /// becomes production; later ones stay candidates unless `promote` is set (and they pass).
    pub fn train(&self, job_address: &str, opts: &TrainOptions, promote: bool) -> Result<TrainOutcome, PipelineError> {
        let resource = self.resource(job_address)?;
        let job = self.job(job_address)?;
        let mut materialized = Vec::new();
        let mut views = Vec::new();
        for v in &job.features {
            materialized.push(self.materialize(v)?);
            views.push((v.as_str(), self.view(v)?));
        }
        let label_source = self.source(&job.label.source)?;
        let labels = data::open(label_source, &job.label.source, &self.workspace.root)?;
        let store = self.feature_store()?;
        let set = features::training_set(&store, job, &views, label_source, labels)?;
        let model = train::train(&set, job, opts)?;
        let registry = self.registry()?;
        let mut version = registry.register(job_address, &model, &resource.hash, &train::data_hash(&set))?;
        let first = registry.production(job_address)?.is_none();
        let promoted = model.passed() && (first || promote);
        if promoted {
            version = registry.promote(job_address, version.version, false)?;
        }
        Ok(TrainOutcome { materialized, model, version, promoted })
    }
}
