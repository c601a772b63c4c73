//! The runtime's verbs on a compiled system, in the words of the CLI: materialise a feature
//! view (source → offline and online store) and train a job (views materialised, training set
//! built point-in-time, XGBoost trained, version registered). `plan`/`apply` will call the
//! same functions. In: a [`SystemSpec`] and the configuration directory. Out: reports and
//! registered model versions.

use crate::data::{self, DataError};
use crate::dataset::TrainingSet;
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
    /// The object store the data directory is mirrored to failed.
    #[error(transparent)]
    Mirror(#[from] crate::objstore::MirrorError),
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
    /// The training reference (for drift monitoring) could not be saved.
    #[error(transparent)]
    Reference(#[from] crate::monitor::reference::ReferenceError),
    /// The model trained for the configuration fails its gates.
    #[error(
        "`{job}` version {version} failed its gate ({failed}); it is registered as a candidate and \
         production is unchanged — improve the model or revise the gate"
    )]
    GateFailed {
        /// The job address.
        job: String,
        /// The registered version.
        version: u32,
        /// The failed gates, e.g. "auc 0.7100 below min 0.85".
        failed: String,
    },
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

/// What `apply_job` did.
#[derive(Debug)]
pub struct JobOutcome {
    /// The version now in production.
    pub version: ModelVersion,
    /// Was an identical registered version used instead of training again?
    pub reused: bool,
}

/// The runtime for one compiled configuration.
pub struct Runtime<'a> {
    /// Where things are kept.
    pub workspace: Workspace,
    spec: &'a SystemSpec,
}

/// How long a pod waits for another pod's lock on the mirrored registry or feature store (a
/// materialisation may take minutes).
const MIRROR_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

impl<'a> Runtime<'a> {
    /// The runtime of `spec`, compiled from the configuration in `root`.
    pub fn new(root: &Path, spec: &'a SystemSpec) -> Runtime<'a> {
        Runtime { workspace: Workspace::new(root, spec), spec }
    }

    /// The runtime of `spec` on an explicit workspace (a pod's root and mounted data directory).
    pub fn in_workspace(workspace: Workspace, spec: &'a SystemSpec) -> Runtime<'a> {
        Runtime { workspace, spec }
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
        // With a mirrored data directory, one pod at a time materialises, on the store's latest.
        let lock = match crate::objstore::covering(&self.workspace.features_dir()) {
            Some((mirror, area)) => Some(mirror.lock_area(area, MIRROR_LOCK_WAIT, crate::objstore::lock_ttl(area))?),
            None => None,
        };
        let report = features::materialize(&store, view_address, view, source, batches, &fingerprint)?;
        if let Some(lock) = lock {
            lock.commit()?;
        }
        Ok(report)
    }

    /// Uploads the registry's files written outside its writers' lock (a version's drift
    /// reference) when the data directory is mirrored to an object store.
    fn publish_registry(&self) -> Result<(), PipelineError> {
        if let Some((mirror, area)) = crate::objstore::covering(&self.workspace.registry_dir()) {
            mirror.lock_area(area, MIRROR_LOCK_WAIT, crate::objstore::lock_ttl(area))?.commit()?;
        }
        Ok(())
    }

    /// Makes a job's production model the one its configuration and current data give, as
    /// `apply` needs it: builds the training set from the views as materialised; if the registry
    /// already holds a version trained from this very configuration and data (an apply that was
    /// interrupted after registering), that version is used instead of training again —
    /// training is deterministic, so it is the model training would give. The version is
    /// promoted when it passes its gates; when it does not, that is an error naming the failed
    /// gates, and production stays as it was.
    pub fn apply_job(&self, job_address: &str, opts: &TrainOptions) -> Result<JobOutcome, PipelineError> {
        let resource = self.resource(job_address)?;
        let job = self.job(job_address)?;
        let mut views = Vec::new();
        for v in &job.features {
            views.push((v.as_str(), self.view(v)?));
        }
        let label_source = self.source(&job.label.source)?;
        let labels = data::open(label_source, &job.label.source, &self.workspace.root)?;
        let store = self.feature_store()?;
        let set = features::training_set(&store, job, &views, label_source, labels)?;
        let data_hash = train::data_hash(&set);
        let registry = self.registry()?;
        let known = registry.list(Some(job_address)).or_else(|e| match e {
            RegistryError::UnknownJob { .. } => Ok(Vec::new()),
            e => Err(e),
        })?;
        let intact = |v: &ModelVersion| registry.model_json(v).is_ok();
        let (version, reused) = match known
            .into_iter()
            .rev()
            .find(|v| v.spec_hash == resource.hash && v.data_hash == data_hash && intact(v))
        {
            Some(v) => {
                // A registration interrupted before its reference was written: write it now.
                let dir = v.model_path.parent().map(|d| d.join(crate::monitor::reference::REFERENCE_FILE));
                if dir.is_some_and(|p| !p.exists()) {
                    crate::monitor::capture::save(&set, job, &registry.model_json(&v)?, &v.model_path)?;
                }
                (v, true)
            }
            None => {
                let model = train::train(&set, job, opts)?;
                let version = registry.register(job_address, &model, &resource.hash, &data_hash)?;
                crate::monitor::capture::save(&set, job, &model.model_json, &version.model_path)?;
                self.publish_registry()?;
                (version, false)
            }
        };
        if !version.passed {
            return Err(PipelineError::GateFailed {
                job: job_address.to_string(),
                version: version.version,
                failed: crate::registry::describe_failures(&version.gates),
            });
        }
        let version = match version.status {
            crate::registry::Status::Production => version,
            _ => registry.promote(job_address, version.version, false)?,
        };
        Ok(JobOutcome { version, reused })
    }

    /// Keeps `version` of a job whose configuration changed only where the model does not (its
    /// gates, resources, schedule …): judges it against the job's gates as configured now and
    /// makes sure it is the production version. Falls back to [`Runtime::apply_job`] when the
    /// version or its model file is gone.
    pub fn keep_job(&self, job_address: &str, version: u32, opts: &TrainOptions) -> Result<JobOutcome, PipelineError> {
        let job = self.job(job_address)?;
        let registry = self.registry()?;
        let Some(meta) = registry.get(job_address, version).ok().filter(|m| registry.model_json(m).is_ok()) else {
            return self.apply_job(job_address, opts);
        };
        let gates = train::evaluate_gates(&job.gates, &meta.metrics);
        if gates.iter().any(|g| !g.passed) {
            return Err(PipelineError::GateFailed {
                job: job_address.to_string(),
                version,
                failed: crate::registry::describe_failures(&gates),
            });
        }
        let version = match meta.status {
            crate::registry::Status::Production => meta,
            // Promotion checks the gates recorded at training; these are the ones that count now.
            _ => registry.promote(job_address, version, true)?,
        };
        Ok(JobOutcome { version, reused: true })
    }

    /// Trains a job: materialises its views, builds its training set point-in-time from the
    /// label source, trains, and registers the model. The first version that passes its gates
    /// becomes production; later ones stay candidates unless `promote` is set (and they pass).
    pub fn train(&self, job_address: &str, opts: &TrainOptions, promote: bool) -> Result<TrainOutcome, PipelineError> {
        let (outcome, _) = self.train_on_fresh_data(job_address, opts, promote)?;
        Ok(outcome)
    }

    /// [`Runtime::train`], also returning the training set it built (a retrain compares the
    /// candidate with production on the set's holdout).
    pub fn train_on_fresh_data(
        &self,
        job_address: &str,
        opts: &TrainOptions,
        promote: bool,
    ) -> Result<(TrainOutcome, TrainingSet), PipelineError> {
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
        crate::monitor::capture::save(&set, job, &model.model_json, &version.model_path)?;
        self.publish_registry()?;
        let first = registry.production(job_address)?.is_none();
        let promoted = model.passed() && (first || promote);
        if promoted {
            version = registry.promote(job_address, version.version, false)?;
        }
        Ok((TrainOutcome { materialized, model, version, promoted }, set))
    }

    /// The compiled training job at `address`.
    pub fn training_job(&self, address: &str) -> Result<&'a TrainingJob, PipelineError> {
        self.job(address)
    }
}
