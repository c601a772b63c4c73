//! The typed model: one struct per block kind, built from schema-checked [`Node`]s. References
//! are resolved to address strings (`source.transactions`, `module.fraud.endpoint.api`), units
//! are parsed, defaults are filled in and derived facts (a job's task, a view's join keys) are
//! computed. These structs are the body of the SystemSpec the runtime reads.

use crate::lower::node::Node;
use crate::schema;
use crate::units::{Cron, Duration, Memory, Percentage};
use crate::value::Value;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Settings of the whole system (`mlops { }`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct System {
    /// Name of the system.
    pub name: String,
    /// Where state is kept.
    pub backend: Backend,
    /// Where apply runs.
    pub target: Target,
}

/// State backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Backend {
    /// A local directory.
    Local {
        /// State directory, relative to the configuration.
        path: String,
    },
    /// PostgreSQL.
    Postgres {
        /// Connection string (sensitive).
        #[serde(skip_serializing_if = "Option::is_none")]
        conn_str: Option<String>,
        /// Environment variable with the connection string.
        #[serde(skip_serializing_if = "Option::is_none")]
        conn_str_env: Option<String>,
        /// Database schema.
        schema: String,
    },
}

/// Apply target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Target {
    /// The bundled runtime on this machine.
    Local {
        /// Listen address of the runtime's HTTP server.
        address: String,
        /// Directory of stores and registry.
        data_dir: String,
    },
    /// Generated Kubernetes manifests.
    Kubernetes {
        /// Namespace.
        namespace: String,
        /// Runtime image.
        image: String,
        /// StorageClass of the shared volume.
        #[serde(skip_serializing_if = "Option::is_none")]
        storage_class: Option<String>,
        /// Size of the shared volume.
        storage_size: Memory,
        /// `s3://BUCKET[/PREFIX]` the pods mirror their data directory to, instead of a shared
        /// volume (see `emit::kubernetes::object_store`).
        #[serde(skip_serializing_if = "Option::is_none")]
        object_store: Option<String>,
        /// Cluster has GPU nodes.
        gpu_nodes: bool,
        /// Emit ServiceMonitors.
        service_monitor: bool,
        /// Folder `mlops apply` writes the manifests to, relative to the configuration.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        out: Option<String>,
    },
}

/// Storage format of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// Comma-separated values.
    Csv,
    /// Apache Parquet.
    Parquet,
    /// A PostgreSQL table or query.
    Postgres,
}

/// Type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnType {
    /// Text.
    String,
    /// Whole numbers.
    Int,
    /// Real numbers.
    Float,
    /// true / false.
    Bool,
    /// A categorical value (one of a small set of strings).
    Category,
    /// A point in time.
    Timestamp,
}

impl ColumnType {
    /// Parses a schema type name.
    pub fn parse(s: &str) -> Option<ColumnType> {
        Some(match s {
            "string" => ColumnType::String,
            "int" => ColumnType::Int,
            "float" => ColumnType::Float,
            "bool" => ColumnType::Bool,
            "category" => ColumnType::Category,
            "timestamp" => ColumnType::Timestamp,
            _ => return None,
        })
    }

    /// Is it a number?
    pub fn is_numeric(self) -> bool {
        matches!(self, ColumnType::Int | ColumnType::Float)
    }

    /// Is it a discrete label (bool or category)?
    pub fn is_discrete(self) -> bool {
        matches!(self, ColumnType::Bool | ColumnType::Category | ColumnType::String)
    }

    /// The schema type name.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Int => "int",
            ColumnType::Float => "float",
            ColumnType::Bool => "bool",
            ColumnType::Category => "category",
            ColumnType::Timestamp => "timestamp",
        }
    }
}

/// One declared column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    /// Name.
    pub name: String,
    /// Type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// May it be null?
    pub nullable: bool,
}

/// A source of raw data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// Storage format.
    pub format: SourceFormat,
    /// File path or glob (csv, parquet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Connection string (postgres; sensitive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// Environment variable with the connection string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection_env: Option<String>,
    /// Table (postgres).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// Query (postgres).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Event-time column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// CSV delimiter.
    pub delimiter: String,
    /// CSV header line.
    pub header: bool,
    /// Declared columns, in order.
    pub columns: Vec<Column>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl Source {
    /// The column with this name.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// An entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// Columns identifying one entity.
    pub join_keys: Vec<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Aggregates over event-time windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Aggregate {
    /// Sum.
    Sum,
    /// Number of rows.
    Count,
    /// Mean.
    Mean,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Sample standard deviation.
    Stddev,
    /// Latest value.
    Last,
}

impl Aggregate {
    /// Parses an aggregate name.
    pub fn parse(s: &str) -> Option<Aggregate> {
        Some(match s {
            "sum" => Aggregate::Sum,
            "count" => Aggregate::Count,
            "mean" => Aggregate::Mean,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            "stddev" => Aggregate::Stddev,
            "last" => Aggregate::Last,
            _ => return None,
        })
    }
}

/// How a feature is computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FeatureKind {
    /// A column as it is.
    Column {
        /// The column.
        column: String,
    },
    /// An aggregate of a column over a window of event time, per entity.
    Aggregate {
        /// The column.
        column: String,
        /// The aggregate.
        aggregate: Aggregate,
        /// The window.
        window: Duration,
    },
    /// A row-level expression over columns.
    Expression {
        /// The expression text.
        expression: String,
        /// Columns it reads.
        columns: Vec<String>,
    },
}

/// One feature of a view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    /// Name.
    pub name: String,
    /// How it is computed.
    #[serde(flatten)]
    pub kind: FeatureKind,
    /// Value type of the feature.
    pub dtype: ColumnType,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A feature view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureView {
    /// Address of the source.
    pub source: String,
    /// Addresses of the entities.
    pub entities: Vec<String>,
    /// Join keys of all entities, in order, without repeats.
    pub join_keys: Vec<String>,
    /// Time to live of values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ttl: Option<Duration>,
    /// Keep an online store.
    pub online: bool,
    /// Features.
    pub features: Vec<Feature>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Learning task, derived from the objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// Two classes.
    Binary,
    /// Several classes.
    Multiclass,
    /// A number.
    Regression,
}

impl Task {
    /// The task of an XGBoost objective.
    pub fn of_objective(objective: &str) -> Task {
        if objective.starts_with("binary:") {
            Task::Binary
        } else if objective.starts_with("multi:") {
            Task::Multiclass
        } else {
            Task::Regression
        }
    }

    /// Metrics that make sense for the task.
    pub fn metrics(self) -> &'static [&'static str] {
        match self {
            Task::Binary => &["auc", "logloss", "accuracy", "precision", "recall", "f1"],
            Task::Multiclass => &["mlogloss", "merror", "accuracy", "precision", "recall", "f1"],
            Task::Regression => &["rmse", "mae", "r2"],
        }
    }

    /// Name.
    pub fn name(self) -> &'static str {
        match self {
            Task::Binary => "binary classification",
            Task::Multiclass => "multi-class classification",
            Task::Regression => "regression",
        }
    }
}

/// A column of a source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnRef {
    /// Address of the source.
    pub source: String,
    /// Column name.
    pub column: String,
}

/// Holdout split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// "random" or "time".
    pub split: String,
    /// Fraction held out.
    pub holdout: f64,
    /// Seed of a random split.
    pub seed: u64,
}

/// Search space of one parameter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Search {
    /// Parameter name.
    pub param: String,
    /// Candidate values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<serde_json::Value>>,
    /// Range lower bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Range upper bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// "linear" or "log".
    pub scale: String,
    /// Whole numbers only.
    pub integer: bool,
}

/// Random search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tuning {
    /// Trials.
    pub trials: u32,
    /// Metric optimised.
    pub metric: String,
    /// Trials at once.
    pub parallelism: u32,
    /// Search space.
    pub search: Vec<Search>,
}

/// A promotion gate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    /// Metric.
    pub metric: String,
    /// Lowest acceptable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest acceptable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// Compute resources.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Resources {
    /// CPU cores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// GPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gpu: Option<u32>,
}

/// A training job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingJob {
    /// Addresses of the feature views.
    pub features: Vec<String>,
    /// The label column.
    pub label: ColumnRef,
    /// Features left out.
    pub exclude: Vec<String>,
    /// "xgboost".
    pub algorithm: String,
    /// XGBoost objective.
    pub objective: String,
    /// Task derived from the objective.
    pub task: Task,
    /// Boosting rounds.
    pub rounds: u32,
    /// Other XGBoost parameters, sorted by name.
    pub params: BTreeMap<String, serde_json::Value>,
    /// Holdout split.
    pub validation: Validation,
    /// Random search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuning: Option<Tuning>,
    /// Promotion gates.
    pub gates: Vec<Gate>,
    /// Compute.
    pub resources: Resources,
    /// Scheduled retraining.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Cron>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// Autoscaling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Autoscaling {
    /// Fewest replicas.
    pub min_replicas: u32,
    /// Most replicas.
    pub max_replicas: u32,
    /// CPU utilisation target, percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_cpu: Option<f64>,
    /// Requests per second per replica target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_rps: Option<f64>,
}

/// Rollback rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollback {
    /// Serving metric.
    pub metric: String,
    /// Threshold.
    pub above: f64,
    /// Requests before judging.
    pub min_requests: u32,
    /// PromQL expression or series selector (`prometheus`, `scrape`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Prometheus server or metrics page (`prometheus`, `scrape`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// "canary", "blue_green" or "immediate".
    pub strategy: String,
    /// Traffic percentages.
    pub steps: Vec<f64>,
    /// Time per step.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Rollback rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
}

/// Authentication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Auth {
    /// "none" or "bearer".
    #[serde(rename = "type")]
    pub kind: String,
    /// Env var with the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// File with the token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
}

/// A serving endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Address of the training job.
    pub model: String,
    /// Replicas.
    pub replicas: u32,
    /// Request timeout.
    pub timeout: Duration,
    /// Largest request body.
    pub max_body: Memory,
    /// Autoscaling.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// Rollout.
    pub rollout: Rollout,
    /// Authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// Compute.
    pub resources: Resources,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A drift check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    /// Features (or "prediction").
    pub features: Vec<String>,
    /// Statistic.
    pub method: String,
    /// Threshold.
    pub threshold: f64,
    /// Multiple-testing correction.
    pub correction: String,
}

/// A performance check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Performance {
    /// Address of the feedback source.
    pub feedback: String,
    /// Metric.
    pub metric: String,
    /// Lower bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Upper bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Prediction id column of the feedback.
    pub id_column: String,
    /// Label column of the feedback.
    pub label_column: String,
}

/// A Prometheus check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrometheusCheck {
    /// Name.
    pub name: String,
    /// Server URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Endpoint to scrape.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrape: Option<String>,
    /// Query or metric name.
    pub query: String,
    /// Upper bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// Lower bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
}

/// A monitor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Monitor {
    /// Address of the endpoint.
    pub endpoint: String,
    /// Window.
    pub window: Duration,
    /// Samples before judging.
    pub min_samples: u32,
    /// Drift checks.
    pub drift: Vec<Drift>,
    /// Performance check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub performance: Option<Performance>,
    /// Prometheus checks.
    pub prometheus: Vec<PrometheusCheck>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// New-data trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewData {
    /// Address of the source.
    pub source: String,
    /// Rows.
    pub rows: u64,
}

/// Retrain budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Runs per period.
    pub max_runs: u32,
    /// Period.
    pub per: Duration,
}

/// Promotion rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promote {
    /// Metric compared.
    pub compare: String,
    /// Required gain.
    pub min_gain: f64,
    /// Endpoint rolled out through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
}

/// A retraining policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RetrainPolicy {
    /// Address of the job.
    pub job: String,
    /// Addresses of triggering monitors.
    pub on: Vec<String>,
    /// Schedule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Cron>,
    /// New-data trigger.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_data: Option<NewData>,
    /// Cooldown (defaults to the longest window of its monitors).
    pub cooldown: Duration,
    /// Budget.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// Promotion rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promote: Option<Promote>,
}

/// The typed configuration of one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "config", rename_all = "snake_case")]
pub enum Config {
    /// `source`
    Source(Source),
    /// `entity`
    Entity(Entity),
    /// `feature_view`
    FeatureView(FeatureView),
    /// `training_job`
    TrainingJob(TrainingJob),
    /// `endpoint`
    Endpoint(Endpoint),
    /// `monitor`
    Monitor(Monitor),
    /// `retrain_policy`
    RetrainPolicy(RetrainPolicy),
}

impl Config {
    /// The block kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Config::Source(_) => "source",
            Config::Entity(_) => "entity",
            Config::FeatureView(_) => "feature_view",
            Config::TrainingJob(_) => "training_job",
            Config::Endpoint(_) => "endpoint",
            Config::Monitor(_) => "monitor",
            Config::RetrainPolicy(_) => "retrain_policy",
        }
    }
}

// ---- building from nodes -------------------------------------------------------------------
// The schema check has run, so values have the right shapes; anything else falls back to a
// default (only reachable for nodes with reported errors, which never reach a spec).

fn s(node: &Node, name: &str) -> Option<String> {
    node.str(name).map(str::to_string)
}

fn s_or(node: &Node, name: &str, default: &str) -> String {
    s(node, name).unwrap_or_else(|| default.to_string())
}

fn addr(v: Option<&Value>) -> String {
    match v {
        Some(Value::Ref(r)) => r.address.to_string(),
        _ => String::new(),
    }
}

fn addrs(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::List(items)) => items.iter().map(|i| addr(Some(i))).collect(),
        _ => Vec::new(),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::List(items)) => items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect(),
        _ => Vec::new(),
    }
}

fn duration(node: &Node, name: &str) -> Option<Duration> {
    node.str(name).and_then(|t| Duration::parse(t).ok())
}

fn memory(node: &Node, name: &str) -> Option<Memory> {
    node.str(name).and_then(|t| Memory::parse(t).ok())
}

fn cron(node: &Node, name: &str) -> Option<Cron> {
    node.str(name).and_then(|t| Cron::parse(t).ok())
}

fn uint(node: &Node, name: &str, default: u32) -> u32 {
    node.num(name).map_or(default, |n| n.clamp(0.0, u32::MAX as f64) as u32)
}

/// Declared column of a source schema entry (`"float"` or `{ type = "float", nullable = true }`).
pub fn column_of(name: &str, v: &Value) -> Option<Column> {
    match v {
        Value::String(t) => {
            let (t, nullable) = match t.strip_suffix('?') {
                Some(t) => (t, true),
                None => (t.as_str(), false),
            };
            ColumnType::parse(t).map(|ty| Column { name: name.to_string(), ty, nullable })
        }
        Value::Object(m) => {
            let ty = m.get("type").and_then(Value::as_str).and_then(ColumnType::parse)?;
            let nullable = m.get("nullable").and_then(Value::as_bool).unwrap_or(false);
            Some(Column { name: name.to_string(), ty, nullable })
        }
        _ => None,
    }
}

/// Builds the settings from the `mlops` block (or defaults when there is none).
pub fn system(node: Option<&Node>, default_name: &str) -> System {
    let name = node.and_then(|n| s(n, "name")).unwrap_or_else(|| default_name.to_string());
    let backend = match node.and_then(|n| n.block("backend")) {
        Some(b) if b.name() == "postgres" => Backend::Postgres {
            conn_str: s(b, "conn_str"),
            conn_str_env: s(b, "conn_str_env"),
            schema: s_or(b, "schema", "mlops"),
        },
        Some(b) => Backend::Local { path: s_or(b, "path", ".mlops/state") },
        None => Backend::Local { path: ".mlops/state".into() },
    };
    let target = match node.and_then(|n| n.block("target")) {
        Some(t) if t.name() == "kubernetes" => Target::Kubernetes {
            namespace: s_or(t, "namespace", "mlops"),
            image: s_or(t, "image", ""),
            storage_class: s(t, "storage_class"),
            storage_size: memory(t, "storage_size").unwrap_or_else(|| Memory::parse("10Gi").expect("valid")),
            object_store: s(t, "object_store"),
            gpu_nodes: t.bool("gpu_nodes").unwrap_or(false),
            service_monitor: t.bool("service_monitor").unwrap_or(false),
            out: s(t, "out"),
        },
        Some(t) => Target::Local {
            address: s_or(t, "address", "127.0.0.1:8080"),
            data_dir: s_or(t, "data_dir", ".mlops/data"),
        },
        None => Target::Local { address: "127.0.0.1:8080".into(), data_dir: ".mlops/data".into() },
    };
    System { name, backend, target }
}

/// Builds a source.
pub fn source(node: &Node) -> Source {
    let format = match node.str("format") {
        Some("parquet") => SourceFormat::Parquet,
        Some("postgres") => SourceFormat::Postgres,
        _ => SourceFormat::Csv,
    };
    let mut columns: Vec<Column> = node
        .block("schema")
        .map(|b| b.attrs.iter().filter_map(|(k, a)| column_of(k, &a.value)).collect())
        .unwrap_or_default();
    // The timestamp column is a timestamp even if the schema does not list it.
    if let Some(ts) = node.str("timestamp") {
        if !columns.iter().any(|c| c.name == ts) {
            columns.push(Column { name: ts.to_string(), ty: ColumnType::Timestamp, nullable: false });
        }
    }
    Source {
        format,
        path: s(node, "path"),
        connection: s(node, "connection"),
        connection_env: s(node, "connection_env"),
        table: s(node, "table"),
        query: s(node, "query"),
        timestamp: s(node, "timestamp"),
        delimiter: s_or(node, "delimiter", ","),
        header: node.bool("header").unwrap_or(true),
        columns,
        description: s(node, "description"),
    }
}

/// Builds an entity.
pub fn entity(node: &Node) -> Entity {
    Entity { join_keys: strings(node.get("join_keys")), description: s(node, "description") }
}

/// Builds a feature view; `source` is its source (for feature types), `entities` its entities.
pub fn feature_view(node: &Node, source: Option<&Source>, entities: &[&Entity]) -> FeatureView {
    let mut join_keys: Vec<String> = Vec::new();
    for e in entities {
        for k in &e.join_keys {
            if !join_keys.contains(k) {
                join_keys.push(k.clone());
            }
        }
    }
    let features = node.blocks_of("feature").map(|f| feature(f, source)).collect();
    FeatureView {
        source: addr(node.get("source")),
        entities: addrs(node.get("entities")),
        join_keys,
        ttl: duration(node, "ttl"),
        online: node.bool("online").unwrap_or(true),
        features,
        description: s(node, "description"),
    }
}

fn feature(f: &Node, source: Option<&Source>) -> Feature {
    let col_ty = |c: &str| source.and_then(|s| s.column(c)).map_or(ColumnType::Float, |c| c.ty);
    let kind = match (f.str("expression"), f.str("column"), f.str("aggregate").and_then(Aggregate::parse)) {
        (Some(e), _, _) => FeatureKind::Expression {
            expression: e.to_string(),
            columns: crate::featexpr::parse(e).map(|x| x.columns()).unwrap_or_default(),
        },
        (None, Some(c), Some(agg)) => FeatureKind::Aggregate {
            column: c.to_string(),
            aggregate: agg,
            window: duration(f, "window").unwrap_or_else(|| Duration::from_millis(0)),
        },
        (None, c, _) => FeatureKind::Column { column: c.unwrap_or(f.name()).to_string() },
    };
    let dtype = match &kind {
        FeatureKind::Column { column } => col_ty(column),
        FeatureKind::Aggregate { aggregate: Aggregate::Count, .. } => ColumnType::Int,
        FeatureKind::Aggregate { aggregate: Aggregate::Last | Aggregate::Min | Aggregate::Max, column, .. } => {
            col_ty(column)
        }
        FeatureKind::Aggregate { .. } | FeatureKind::Expression { .. } => ColumnType::Float,
    };
    Feature { name: f.name().to_string(), kind, dtype, description: s(f, "description") }
}

/// Builds a training job.
pub fn training_job(node: &Node) -> TrainingJob {
    let label = match node.get("label") {
        Some(Value::Ref(r)) => {
            ColumnRef { source: r.address.to_string(), column: r.path.get(1).cloned().unwrap_or_default() }
        }
        _ => ColumnRef { source: String::new(), column: String::new() },
    };
    let mut params: BTreeMap<String, serde_json::Value> = match node.get("params") {
        Some(Value::Object(m)) => m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect(),
        _ => BTreeMap::new(),
    };
    let objective = params
        .remove("objective")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "binary:logistic".to_string());
    let rounds = params.remove("rounds").and_then(|v| v.as_f64()).map_or(100, |n| n.clamp(1.0, 1e6) as u32);
    if let Some(lr) = params.remove("learning_rate") {
        params.entry("eta".into()).or_insert(lr);
    }
    let validation = match node.block("validation") {
        Some(v) => Validation {
            split: s_or(v, "split", "random"),
            holdout: v.num("holdout").unwrap_or(0.2),
            seed: v.num("seed").map_or(42, |n| n.max(0.0) as u64),
        },
        None => Validation { split: "random".into(), holdout: 0.2, seed: 42 },
    };
    let gates: Vec<Gate> = node
        .blocks_of("gate")
        .map(|g| Gate { metric: s_or(g, "metric", "auc"), min: g.num("min"), max: g.num("max") })
        .collect();
    let task = Task::of_objective(&objective);
    let tuning = node.block("tuning").map(|t| Tuning {
        trials: uint(t, "trials", 10),
        metric: s(t, "metric")
            .or_else(|| gates.first().map(|g| g.metric.clone()))
            .unwrap_or_else(|| task.metrics()[0].to_string()),
        parallelism: uint(t, "parallelism", 1),
        search: t
            .blocks_of("search")
            .map(|sb| Search {
                param: sb.name().to_string(),
                values: match sb.get("values") {
                    Some(Value::List(vs)) => Some(vs.iter().map(Value::to_json).collect()),
                    _ => None,
                },
                min: sb.num("min"),
                max: sb.num("max"),
                scale: s_or(sb, "scale", "linear"),
                integer: sb.bool("integer").unwrap_or(false),
            })
            .collect(),
    });
    TrainingJob {
        features: addrs(node.get("features")),
        label,
        exclude: strings(node.get("exclude")),
        algorithm: s_or(node, "algorithm", "xgboost"),
        objective,
        task,
        rounds,
        params,
        validation,
        tuning,
        gates,
        resources: node.block("resources").map(resources).unwrap_or_default(),
        schedule: cron(node, "schedule"),
        description: s(node, "description"),
    }
}

fn resources(r: &Node) -> Resources {
    Resources { cpu: r.num("cpu"), memory: memory(r, "memory"), gpu: r.num("gpu").map(|g| g.max(0.0) as u32) }
}

/// Builds an endpoint.
pub fn endpoint(node: &Node) -> Endpoint {
    let rollout = match node.block("rollout") {
        Some(r) => Rollout {
            strategy: s_or(r, "strategy", "immediate"),
            steps: match r.get("steps") {
                Some(Value::List(vs)) => vs.iter().filter_map(|v| Percentage::from_value(v).ok()).collect(),
                _ => Vec::new(),
            },
            interval: duration(r, "interval"),
            rollback: r.block("rollback").map(|b| Rollback {
                metric: s_or(b, "metric", "error_rate"),
                above: b.num("above").unwrap_or(0.0),
                min_requests: uint(b, "min_requests", 100),
                query: s(b, "query"),
                url: s(b, "url"),
            }),
        },
        None => Rollout { strategy: "immediate".into(), steps: vec![100.0], interval: None, rollback: None },
    };
    // With autoscaling and no explicit count, serving starts at the autoscaler's minimum.
    let min_replicas = node.block("autoscaling").map_or(1, |a| uint(a, "min_replicas", 1));
    Endpoint {
        model: addr(node.get("model")),
        replicas: uint(node, "replicas", min_replicas),
        timeout: duration(node, "timeout").unwrap_or_else(|| Duration::from_millis(5_000)),
        max_body: memory(node, "max_body").unwrap_or_else(|| Memory::parse("1Mi").expect("valid")),
        autoscaling: node.block("autoscaling").map(|a| Autoscaling {
            min_replicas: uint(a, "min_replicas", 1),
            max_replicas: uint(a, "max_replicas", 1),
            target_cpu: a.get("target_cpu").and_then(|v| Percentage::from_value(v).ok()),
            target_rps: a.num("target_rps"),
        }),
        rollout,
        auth: node.block("auth").map(|a| Auth {
            kind: s_or(a, "type", "bearer"),
            token_env: s(a, "token_env"),
            token_file: s(a, "token_file"),
        }),
        resources: node.block("resources").map(resources).unwrap_or_default(),
        description: s(node, "description"),
    }
}

/// Builds a monitor.
pub fn monitor(node: &Node) -> Monitor {
    Monitor {
        endpoint: addr(node.get("endpoint")),
        window: duration(node, "window").unwrap_or_else(|| Duration::from_millis(3_600_000)),
        min_samples: uint(node, "min_samples", 100),
        drift: node
            .blocks_of("drift")
            .map(|d| Drift {
                features: strings(d.get("features")),
                method: s_or(d, "method", "psi"),
                threshold: d.num("threshold").unwrap_or(0.0),
                correction: s_or(d, "correction", "bonferroni"),
            })
            .collect(),
        performance: node.block("performance").map(|p| Performance {
            feedback: addr(p.get("feedback")),
            metric: s_or(p, "metric", "auc"),
            min: p.num("min"),
            max: p.num("max"),
            id_column: s_or(p, "id_column", "prediction_id"),
            label_column: s_or(p, "label_column", "label"),
        }),
        prometheus: node
            .blocks_of("prometheus")
            .map(|p| PrometheusCheck {
                name: p.name().to_string(),
                url: s(p, "url"),
                scrape: s(p, "scrape"),
                query: s_or(p, "query", ""),
                above: p.num("above"),
                below: p.num("below"),
            })
            .collect(),
        description: s(node, "description"),
    }
}

/// Builds a retrain policy; `default_cooldown` is the longest window of its monitors.
pub fn retrain_policy(node: &Node, default_cooldown: Duration) -> RetrainPolicy {
    RetrainPolicy {
        job: addr(node.get("job")),
        on: addrs(node.get("on")),
        schedule: cron(node, "schedule"),
        new_data: node
            .block("new_data")
            .map(|n| NewData { source: addr(n.get("source")), rows: n.num("rows").map_or(1, |r| r.max(1.0) as u64) }),
        cooldown: duration(node, "cooldown").unwrap_or(default_cooldown),
        budget: node.block("budget").map(|b| Budget {
            max_runs: uint(b, "max_runs", 1),
            per: duration(b, "per").unwrap_or_else(|| Duration::from_millis(86_400_000)),
        }),
        promote: node.block("promote").map(|p| Promote {
            compare: s_or(p, "compare", "auc"),
            min_gain: p.num("min_gain").unwrap_or(0.0),
            via: p.get("via").map(|v| addr(Some(v))),
        }),
    }
}

/// Is `kind` a resource kind of the language?
pub fn is_resource_kind(kind: &str) -> bool {
    schema::resource_kinds().any(|k| k == kind)
}

// ---- the whole model -----------------------------------------------------------------------

/// One resource instance with its checked block and typed configuration.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Address.
    pub address: crate::value::Address,
    /// The block as written (for spans).
    pub node: Node,
    /// The typed configuration.
    pub config: Config,
    /// Explicit dependencies.
    pub depends_on: Vec<crate::value::Reference>,
}

/// The typed model of a configuration.
#[derive(Debug, Clone)]
pub struct Model {
    /// Settings.
    pub system: System,
    /// The `mlops` block, if written.
    pub settings: Option<Node>,
    /// Resources in declaration order.
    pub resources: Vec<Resource>,
    /// Root outputs.
    pub outputs: Vec<crate::lower::OutputValue>,
    /// Root variables.
    pub variables: Vec<crate::lower::VariableValue>,
    index: std::collections::HashMap<String, usize>,
}

impl Model {
    /// The resource at an address.
    pub fn get(&self, address: &str) -> Option<&Resource> {
        self.index.get(address).map(|i| &self.resources[*i])
    }

    /// The source at an address.
    pub fn source(&self, address: &str) -> Option<&Source> {
        match self.get(address).map(|r| &r.config) {
            Some(Config::Source(s)) => Some(s),
            _ => None,
        }
    }

    /// The source at an address, if its schema is trustworthy: declared without errors, every
    /// column type known. Checks that read columns skip sources that fail this, so one typo
    /// in a schema is not reported again as every column that uses it.
    pub fn reliable_source(&self, address: &str) -> Option<&Source> {
        let r = self.get(address)?;
        let schema = r.node.block("schema")?;
        let ok = !schema.errors && schema.attrs.iter().all(|(k, a)| column_of(k, &a.value).is_some());
        if ok {
            self.source(address)
        } else {
            None
        }
    }

    /// The feature view at an address.
    pub fn feature_view(&self, address: &str) -> Option<&FeatureView> {
        match self.get(address).map(|r| &r.config) {
            Some(Config::FeatureView(s)) => Some(s),
            _ => None,
        }
    }

    /// The training job at an address.
    pub fn training_job(&self, address: &str) -> Option<&TrainingJob> {
        match self.get(address).map(|r| &r.config) {
            Some(Config::TrainingJob(s)) => Some(s),
            _ => None,
        }
    }

    /// The endpoint at an address.
    pub fn endpoint(&self, address: &str) -> Option<&Endpoint> {
        match self.get(address).map(|r| &r.config) {
            Some(Config::Endpoint(s)) => Some(s),
            _ => None,
        }
    }

    /// The monitor at an address.
    pub fn monitor(&self, address: &str) -> Option<&Monitor> {
        match self.get(address).map(|r| &r.config) {
            Some(Config::Monitor(s)) => Some(s),
            _ => None,
        }
    }

    /// Features a job trains on: every feature of its views, minus `exclude`, with the view.
    pub fn job_features<'a>(&'a self, job: &'a TrainingJob) -> Vec<(&'a str, &'a Feature)> {
        let mut out = Vec::new();
        for v in &job.features {
            if let Some(view) = self.feature_view(v) {
                for f in &view.features {
                    if !job.exclude.contains(&f.name) {
                        out.push((v.as_str(), f));
                    }
                }
            }
        }
        out
    }
}

/// Builds the typed model from lowered resources, in dependency-friendly kind order.
pub fn build(lowered: crate::lower::Lowered) -> Model {
    let default_name = lowered
        .root
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "mlops".to_string());
    let system = system(lowered.settings.as_ref(), &default_name);
    let mut model = Model {
        system,
        settings: lowered.settings,
        resources: Vec::with_capacity(lowered.resources.len()),
        outputs: lowered.outputs,
        variables: lowered.variables,
        index: std::collections::HashMap::new(),
    };
    let mut by_kind: Vec<crate::lower::ResourceInstance> = lowered.resources;
    let order = |k: &str| schema::resource_kinds().position(|x| x == k).unwrap_or(usize::MAX);
    by_kind.sort_by_key(|r| order(&r.address.kind));
    for inst in by_kind {
        let node = &inst.node;
        let config = match inst.address.kind.as_str() {
            "source" => Config::Source(source(node)),
            "entity" => Config::Entity(entity(node)),
            "feature_view" => {
                let src = model.source(&addr(node.get("source"))).cloned();
                let ents: Vec<Entity> = addrs(node.get("entities"))
                    .iter()
                    .filter_map(|a| match model.get(a).map(|r| &r.config) {
                        Some(Config::Entity(e)) => Some(e.clone()),
                        _ => None,
                    })
                    .collect();
                let refs: Vec<&Entity> = ents.iter().collect();
                Config::FeatureView(feature_view(node, src.as_ref(), &refs))
            }
            "training_job" => Config::TrainingJob(training_job(node)),
            "endpoint" => Config::Endpoint(endpoint(node)),
            "monitor" => Config::Monitor(monitor(node)),
            _ => {
                let longest = addrs(node.get("on"))
                    .iter()
                    .filter_map(|m| model.monitor(m).map(|m| m.window))
                    .max_by_key(|d| d.as_millis())
                    .unwrap_or_else(|| Duration::from_millis(0));
                Config::RetrainPolicy(retrain_policy(node, longest))
            }
        };
        model.index.insert(inst.address.to_string(), model.resources.len());
        model.resources.push(Resource { address: inst.address, node: inst.node, config, depends_on: inst.depends_on });
    }
    model
}
