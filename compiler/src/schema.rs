//! The single definition of the language: every block kind, its labels, attributes (with types,
//! choices and documentation), nested blocks and the attributes it exports to references.
//! Lowering checks configurations against it, `mlops schema` prints it as JSON Schema, the
//! language reference is checked against it, and the Terraform provider derives its resource
//! schemas from it. Nothing else in the project restates the shape of a block.

/// The type of an attribute value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// Any string.
    String,
    /// Any number.
    Number,
    /// A whole number.
    Integer,
    /// A whole number ≥ 1.
    PositiveInteger,
    /// A number ≥ 0.
    NonNegative,
    /// `true` or `false`.
    Bool,
    /// A duration string: `"30s"`, `"10m"`, `"24h"`, `"7d"`.
    Duration,
    /// A memory quantity: `"512Mi"`, `"8Gi"`.
    Memory,
    /// A cron schedule: `"0 3 * * *"`, `"@daily"`.
    Cron,
    /// A percentage: `10` or `"10%"` (0–100).
    Percentage,
    /// A number in [0, 1].
    Probability,
    /// A number in (0, 1), exclusive.
    OpenFraction,
    /// A reference to a resource of one of these kinds.
    Ref(&'static [&'static str]),
    /// A reference to a column of a source: `source.transactions.columns.is_fraud`.
    Column,
    /// A list of values of the inner type.
    List(&'static Ty),
    /// A map from strings to values of the inner type.
    Map(&'static Ty),
    /// Anything.
    Any,
}

impl Ty {
    /// How the type is named in messages and documentation.
    pub fn describe(&self) -> String {
        match self {
            Ty::String => "string".into(),
            Ty::Number => "number".into(),
            Ty::Integer => "integer".into(),
            Ty::PositiveInteger => "positive integer".into(),
            Ty::NonNegative => "non-negative number".into(),
            Ty::Bool => "bool".into(),
            Ty::Duration => "duration".into(),
            Ty::Memory => "memory quantity".into(),
            Ty::Cron => "cron schedule".into(),
            Ty::Percentage => "percentage".into(),
            Ty::Probability => "probability in [0, 1]".into(),
            Ty::OpenFraction => "fraction in (0, 1)".into(),
            Ty::Ref(kinds) => format!("reference to {}", kinds.join(" or ")),
            Ty::Column => "reference to a source column".into(),
            Ty::List(inner) => format!("list of {}", inner.describe()),
            Ty::Map(inner) => format!("map of {}", inner.describe()),
            Ty::Any => "any value".into(),
        }
    }
}

/// One attribute of a block.
#[derive(Debug, Clone, Copy)]
pub struct AttrSchema {
    /// Attribute name.
    pub name: &'static str,
    /// Value type.
    pub ty: Ty,
    /// Must it be set?
    pub required: bool,
    /// Allowed string values (empty: any).
    pub choices: &'static [&'static str],
    /// The default, as documentation (`None`: unset).
    pub default: Option<&'static str>,
    /// Does changing it mean a new model / a replaced resource (Terraform's RequiresReplace)?
    pub replace: bool,
    /// Is it a secret that must never be printed?
    pub sensitive: bool,
    /// What it means.
    pub doc: &'static str,
}

/// A nested block allowed inside another block.
#[derive(Debug, Clone, Copy)]
pub struct NestedSchema {
    /// The nested block's schema.
    pub block: &'static BlockSchema,
    /// Minimum number of occurrences.
    pub min: usize,
    /// Maximum number (`None`: unbounded).
    pub max: Option<usize>,
}

/// What a resource exports to references (`endpoint.api.url`), beyond its own attributes.
#[derive(Debug, Clone, Copy)]
pub struct ExportSchema {
    /// Attribute name; `columns.*` style names take one more path segment.
    pub name: &'static str,
    /// What it is.
    pub doc: &'static str,
    /// Known only after apply?
    pub computed: bool,
}

/// A block kind.
#[derive(Debug)]
pub struct BlockSchema {
    /// Keyword (`source`, `feature`, `rollout`).
    pub kind: &'static str,
    /// Label names (`["name"]`; `["type"]` for `backend "local"`).
    pub labels: &'static [&'static str],
    /// Is this a top-level resource (part of the dependency graph and the SystemSpec)?
    pub resource: bool,
    /// Attributes.
    pub attrs: &'static [AttrSchema],
    /// Arbitrary attribute names allowed, of this type (`schema { col = "float" }`, `locals`).
    pub open: Option<Ty>,
    /// Nested blocks.
    pub blocks: &'static [NestedSchema],
    /// For blocks whose first label selects a variant (`backend "postgres"`): the variants.
    pub variants: &'static [&'static BlockSchema],
    /// Exported attributes, for resources.
    pub exports: &'static [ExportSchema],
    /// What it is.
    pub doc: &'static str,
}

impl BlockSchema {
    /// The attribute with this name.
    pub fn attr(&self, name: &str) -> Option<&'static AttrSchema> {
        let attrs: &'static [AttrSchema] = self.attrs;
        attrs.iter().find(|a| a.name == name)
    }

    /// The nested block with this keyword.
    pub fn block(&self, kind: &str) -> Option<&'static NestedSchema> {
        let blocks: &'static [NestedSchema] = self.blocks;
        blocks.iter().find(|b| b.block.kind == kind)
    }

    /// The variant selected by a first label.
    pub fn variant(&self, label: &str) -> Option<&'static BlockSchema> {
        self.variants.iter().copied().find(|v| v.kind == label)
    }
}

impl PartialEq for BlockSchema {
    // Schemas are statics: identity is equality.
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self, other)
    }
}

/// Every block schema reachable from the top level, each once.
pub fn all_blocks() -> impl Iterator<Item = &'static BlockSchema> {
    let mut seen: Vec<&'static BlockSchema> = Vec::new();
    let mut stack: Vec<&'static BlockSchema> = TOP_LEVEL.iter().rev().copied().collect();
    while let Some(b) = stack.pop() {
        if seen.iter().any(|s| std::ptr::eq(*s, b)) {
            continue;
        }
        seen.push(b);
        for n in b.blocks.iter().rev() {
            stack.push(n.block);
        }
        for v in b.variants.iter().rev() {
            stack.push(v);
        }
    }
    seen.into_iter()
}

const fn attr(name: &'static str, ty: Ty, doc: &'static str) -> AttrSchema {
    AttrSchema { name, ty, required: false, choices: &[], default: None, replace: false, sensitive: false, doc }
}
const fn req(name: &'static str, ty: Ty, doc: &'static str) -> AttrSchema {
    AttrSchema { required: true, ..attr(name, ty, doc) }
}
const fn choice(
    name: &'static str,
    choices: &'static [&'static str],
    default: Option<&'static str>,
    doc: &'static str,
) -> AttrSchema {
    AttrSchema { choices, default, ..attr(name, Ty::String, doc) }
}
const fn block(kind: &'static str, doc: &'static str) -> BlockSchema {
    BlockSchema {
        kind,
        labels: &[],
        resource: false,
        attrs: &[],
        open: None,
        blocks: &[],
        variants: &[],
        exports: &[],
        doc,
    }
}
const fn one(block: &'static BlockSchema) -> NestedSchema {
    NestedSchema { block, min: 0, max: Some(1) }
}
const fn exactly_one(block: &'static BlockSchema) -> NestedSchema {
    NestedSchema { block, min: 1, max: Some(1) }
}
const fn many(block: &'static BlockSchema) -> NestedSchema {
    NestedSchema { block, min: 0, max: None }
}
const fn at_least_one(block: &'static BlockSchema) -> NestedSchema {
    NestedSchema { block, min: 1, max: None }
}
const fn with_default(mut a: AttrSchema, default: &'static str) -> AttrSchema {
    a.default = Some(default);
    a
}
const fn replaces(mut a: AttrSchema) -> AttrSchema {
    a.replace = true;
    a
}
const fn secret(mut a: AttrSchema) -> AttrSchema {
    a.sensitive = true;
    a
}

// ---- shared value types ----------------------------------------------------------------

const STRINGS: Ty = Ty::List(&Ty::String);
const PERCENTAGES: Ty = Ty::List(&Ty::Percentage);
const ANY_MAP: Ty = Ty::Map(&Ty::Any);

/// Column types a source schema may declare.
pub const COLUMN_TYPES: &[&str] = &["string", "int", "float", "bool", "category", "timestamp"];
/// Aggregates a feature may use.
pub const AGGREGATES: &[&str] = &["sum", "count", "mean", "min", "max", "stddev", "last"];
/// Drift statistics.
pub const DRIFT_METHODS: &[&str] = &["psi", "ks", "js", "chi2", "wasserstein"];
/// Model quality metrics.
pub const METRICS: &[&str] =
    &["auc", "logloss", "accuracy", "precision", "recall", "f1", "rmse", "mae", "r2", "mlogloss", "merror"];
/// Metrics where larger is better.
pub const METRICS_HIGHER_IS_BETTER: &[&str] = &["auc", "accuracy", "precision", "recall", "f1", "r2"];
/// Serving metrics a rollback rule may watch.
pub const ROLLBACK_METRICS: &[&str] =
    &["error_rate", "latency_p50", "latency_p95", "latency_p99", "score_drift", "prometheus", "scrape"];

/// Rollback metrics read from outside the serving process, through `query` and `url`.
pub const EXTERNAL_ROLLBACK_METRICS: &[&str] = &["prometheus", "scrape"];

// ---- mlops { } ----------------------------------------------------------------------------

static BACKEND_LOCAL: BlockSchema = BlockSchema {
    attrs: &[with_default(attr("path", Ty::String, "State directory, relative to the configuration."), ".mlops/state")],
    ..block("local", "State in a local directory: atomic writes, a lock file and a history of versions.")
};
static BACKEND_POSTGRES: BlockSchema = BlockSchema {
    attrs: &[
        secret(attr("conn_str", Ty::String, "PostgreSQL connection string. Prefer `conn_str_env`.")),
        attr("conn_str_env", Ty::String, "Name of an environment variable holding the connection string."),
        with_default(attr("schema", Ty::String, "Database schema for the state tables."), "mlops"),
    ],
    ..block("postgres", "State in PostgreSQL (advisory lock plus a table), for teams.")
};
static BACKEND: BlockSchema = BlockSchema {
    labels: &["type"],
    variants: &[&BACKEND_LOCAL, &BACKEND_POSTGRES],
    ..block("backend", "Where state is kept.")
};
static TARGET_LOCAL: BlockSchema = BlockSchema {
    attrs: &[
        with_default(attr("address", Ty::String, "Address the runtime's HTTP server listens on."), "127.0.0.1:8080"),
        with_default(attr("data_dir", Ty::String, "Directory for stores and the registry."), ".mlops/data"),
    ],
    ..block("local", "Run everything on this machine with the bundled runtime.")
};
static TARGET_KUBERNETES: BlockSchema = BlockSchema {
    attrs: &[
        with_default(attr("namespace", Ty::String, "Namespace for every object."), "mlops"),
        req("image", Ty::String, "The runtime image (the `mlops` binary with libxgboost)."),
        attr("storage_class", Ty::String, "StorageClass of the shared volume (not with `object_store`)."),
        with_default(attr("storage_size", Ty::Memory, "Size of the shared volume (not with `object_store`)."), "10Gi"),
        attr(
            "object_store",
            Ty::String,
            "`s3://BUCKET[/PREFIX]` every pod mirrors its data directory to, instead of a shared volume.",
        ),
        with_default(attr("gpu_nodes", Ty::Bool, "Does the cluster have GPU nodes (`nvidia.com/gpu`)?"), "false"),
        with_default(attr("service_monitor", Ty::Bool, "Emit Prometheus-operator ServiceMonitors."), "false"),
        with_default(
            attr("out", Ty::String, "Folder `mlops apply` writes the manifests to, relative to the configuration."),
            ".mlops/kubernetes",
        ),
    ],
    ..block("kubernetes", "Generate Kubernetes manifests that run the same runtime image.")
};
static TARGET: BlockSchema = BlockSchema {
    labels: &["type"],
    variants: &[&TARGET_LOCAL, &TARGET_KUBERNETES],
    ..block("target", "Where apply runs the system.")
};
static MLOPS: BlockSchema = BlockSchema {
    attrs: &[req("name", Ty::String, "Name of the system; used in state, labels and manifests.")],
    blocks: &[one(&BACKEND), one(&TARGET)],
    ..block("mlops", "Settings of the whole system. At most one per configuration.")
};

// ---- variables, locals, outputs, modules -------------------------------------------------

static VALIDATION: BlockSchema = BlockSchema {
    attrs: &[
        req("condition", Ty::Bool, "Expression over `var.<name>` that must be true."),
        req("error_message", Ty::String, "Shown when the condition is false."),
    ],
    ..block("validation", "A rule the variable's value must satisfy.")
};
static VARIABLE: BlockSchema = BlockSchema {
    labels: &["name"],
    attrs: &[
        attr("type", Ty::Any, "Type constraint: string, number, bool, any, list(T), map(T), set(T)."),
        attr("default", Ty::Any, "Value when none is given; without it the variable is required."),
        attr("description", Ty::String, "What it is for."),
        with_default(attr("sensitive", Ty::Bool, "Never print the value."), "false"),
        with_default(attr("nullable", Ty::Bool, "May the value be null?"), "true"),
    ],
    blocks: &[many(&VALIDATION)],
    ..block("variable", "An input of the configuration (or of a module).")
};
static LOCALS: BlockSchema =
    BlockSchema { open: Some(Ty::Any), ..block("locals", "Named expressions, referenced as `local.<name>`.") };
static OUTPUT: BlockSchema = BlockSchema {
    labels: &["name"],
    attrs: &[
        req("value", Ty::Any, "The value."),
        attr("description", Ty::String, "What it is."),
        with_default(attr("sensitive", Ty::Bool, "Never print the value."), "false"),
    ],
    ..block("output", "A value the configuration (or module) exposes.")
};
static MODULE: BlockSchema = BlockSchema {
    labels: &["name"],
    attrs: &[
        req("source", Ty::String, "Directory of the module, relative to this file's directory."),
        attr("count", Ty::Integer, "Number of instances."),
        attr("for_each", Ty::Any, "Map or set of strings: one instance per key."),
        attr("depends_on", Ty::List(&Ty::Any), "Extra dependencies."),
    ],
    open: Some(Ty::Any),
    ..block("module", "An instance of a reusable module; other attributes are its input variables.")
};

// ---- source -------------------------------------------------------------------------------

static SCHEMA: BlockSchema = BlockSchema {
    open: Some(Ty::Any),
    ..block(
        "schema",
        "Columns and their types: `col = \"float\"` or `col = { type = \"float\", nullable = true }`. \
         Types: string, int, float, bool, category, timestamp.",
    )
};
static SOURCE: BlockSchema = BlockSchema {
    labels: &["name"],
    resource: true,
    attrs: &[
        AttrSchema {
            required: true,
            ..choice("format", &["csv", "parquet", "postgres"], None, "How the data is stored.")
        },
        attr("path", Ty::String, "File or glob (csv, parquet), relative to the configuration."),
        secret(attr("connection", Ty::String, "PostgreSQL connection string (postgres). Prefer `connection_env`.")),
        attr("connection_env", Ty::String, "Environment variable holding the connection string (postgres)."),
        attr("table", Ty::String, "Table to read (postgres)."),
        attr("query", Ty::String, "SQL query to read (postgres)."),
        attr("timestamp", Ty::String, "Event-time column; needed for windows, ttl and time splits."),
        with_default(attr("delimiter", Ty::String, "Field delimiter (csv)."), ","),
        with_default(attr("header", Ty::Bool, "First line holds column names (csv)."), "true"),
        attr("description", Ty::String, "What the data is."),
    ],
    blocks: &[exactly_one(&SCHEMA)],
    exports: &[
        ExportSchema {
            name: "columns",
            doc: "`columns.<name>`: a column, e.g. for a training label.",
            computed: false,
        },
        ExportSchema { name: "rows", doc: "Rows read by the last ingestion.", computed: true },
        ExportSchema { name: "watermark", doc: "Latest event time ingested.", computed: true },
    ],
    ..block("source", "A table of raw data: a CSV or Parquet file, or a PostgreSQL table or query.")
};

// ---- entity, feature_view ------------------------------------------------------------------

static ENTITY: BlockSchema = BlockSchema {
    labels: &["name"],
    resource: true,
    attrs: &[
        replaces(req("join_keys", STRINGS, "Columns that identify one entity.")),
        attr("description", Ty::String, "What the entity is."),
    ],
    ..block("entity", "A thing features describe (an account, a machine), identified by join keys.")
};
static FEATURE: BlockSchema = BlockSchema {
    labels: &["name"],
    attrs: &[
        attr("column", Ty::String, "Source column to aggregate or pass through."),
        AttrSchema { ..choice("aggregate", AGGREGATES, None, "Aggregate over `window` of event time.") },
        attr("window", Ty::Duration, "Aggregation window; needs `aggregate`."),
        attr(
            "expression",
            Ty::String,
            "Row-level expression over columns: + - * / ( ), numbers, and log, log1p, exp, sqrt, abs, \
             hour, day_of_week, is_null, min, max.",
        ),
        attr("description", Ty::String, "What the feature means."),
    ],
    ..block("feature", "One feature: a column, an aggregate of a column over a window, or a row-level expression.")
};
static FEATURE_VIEW: BlockSchema = BlockSchema {
    labels: &["name"],
    resource: true,
    attrs: &[
        replaces(req("source", Ty::Ref(&["source"]), "Where the rows come from.")),
        req("entities", Ty::List(&Ty::Ref(&["entity"])), "Entities the features are keyed by."),
        attr("ttl", Ty::Duration, "How long a value stays valid; older values read as missing."),
        with_default(attr("online", Ty::Bool, "Keep the latest value per entity in the online store."), "true"),
        attr("description", Ty::String, "What the view is."),
    ],
    blocks: &[at_least_one(&FEATURE)],
    exports: &[ExportSchema { name: "watermark", doc: "Event time materialised up to.", computed: true }],
    ..block("feature_view", "Features derived from one source, keyed by entities.")
};

// ---- training_job -------------------------------------------------------------------------

static SPLIT: BlockSchema = BlockSchema {
    attrs: &[
        with_default(choice("split", &["random", "time"], None, "How the holdout is chosen."), "random"),
        with_default(attr("holdout", Ty::OpenFraction, "Fraction of rows held out."), "0.2"),
        attr("seed", Ty::Integer, "Seed of a random split."),
    ],
    ..block("validation", "The holdout split used for early stopping, metrics and the gate.")
};
static SEARCH: BlockSchema = BlockSchema {
    labels: &["param"],
    attrs: &[
        attr("values", Ty::List(&Ty::Any), "Candidate values (grid)."),
        attr("min", Ty::Number, "Lower bound of a range."),
        attr("max", Ty::Number, "Upper bound of a range."),
        with_default(choice("scale", &["linear", "log"], None, "How a range is sampled."), "linear"),
        with_default(attr("integer", Ty::Bool, "Sample whole numbers."), "false"),
    ],
    ..block("search", "The search space of one parameter: `values`, or `min`/`max`.")
};
static TUNING: BlockSchema = BlockSchema {
    attrs: &[
        req("trials", Ty::PositiveInteger, "Number of random-search trials."),
        attr("metric", Ty::String, "Metric to optimise; defaults to the first gate metric."),
        with_default(attr("parallelism", Ty::PositiveInteger, "Trials run at once."), "1"),
    ],
    blocks: &[at_least_one(&SEARCH)],
    ..block("tuning", "Random hyperparameter search over the declared space.")
};
static GATE: BlockSchema = BlockSchema {
    attrs: &[
        AttrSchema { required: true, ..choice("metric", METRICS, None, "Holdout metric.") },
        attr("min", Ty::Number, "Lowest acceptable value."),
        attr("max", Ty::Number, "Highest acceptable value."),
    ],
    ..block("gate", "A model whose holdout metric fails the gate is never promoted.")
};
static RESOURCES: BlockSchema = BlockSchema {
    attrs: &[
        attr("cpu", Ty::NonNegative, "CPU cores."),
        attr("memory", Ty::Memory, "Memory, e.g. \"8Gi\"."),
        attr("gpu", Ty::Integer, "GPUs (`nvidia.com/gpu`)."),
    ],
    ..block("resources", "Compute requested for the work.")
};
static TRAINING_JOB: BlockSchema = BlockSchema {
    labels: &["name"],
    resource: true,
    attrs: &[
        replaces(req("features", Ty::List(&Ty::Ref(&["feature_view"])), "Feature views the model is trained on.")),
        replaces(req("label", Ty::Column, "The target column: `source.<name>.columns.<column>`.")),
        replaces(attr("exclude", STRINGS, "Features of the views left out of the model.")),
        replaces(with_default(choice("algorithm", &["xgboost"], None, "Learning algorithm."), "xgboost")),
        replaces(attr(
            "params",
            ANY_MAP,
            "XGBoost parameters: objective, num_class, max_depth, eta, rounds, early_stopping_rounds, \
             min_child_weight, subsample, colsample_bytree, lambda, alpha, gamma, tree_method, max_bin, \
             scale_pos_weight, seed, nthread, eval_metric.",
        )),
        attr("schedule", Ty::Cron, "Retrain on this schedule regardless of monitors."),
        attr("description", Ty::String, "What the model predicts."),
    ],
    blocks: &[one(&SPLIT), one(&TUNING), many(&GATE), one(&RESOURCES)],
    exports: &[
        ExportSchema { name: "version", doc: "Model version in production.", computed: true },
        ExportSchema { name: "metrics", doc: "Holdout metrics of the production version.", computed: true },
        ExportSchema { name: "model_uri", doc: "Where the model file is.", computed: true },
    ],
    ..block("training_job", "How a model is trained: features, label, XGBoost parameters, split, tuning and gates.")
};

// ---- endpoint -----------------------------------------------------------------------------

static AUTOSCALING: BlockSchema = BlockSchema {
    attrs: &[
        req("min_replicas", Ty::PositiveInteger, "Fewest replicas."),
        req("max_replicas", Ty::PositiveInteger, "Most replicas."),
        attr("target_cpu", Ty::Percentage, "Average CPU utilisation to scale at."),
        attr("target_rps", Ty::NonNegative, "Requests per second per replica to scale at."),
    ],
    ..block("autoscaling", "Scale replicas with load.")
};
static ROLLBACK: BlockSchema = BlockSchema {
    attrs: &[
        AttrSchema { required: true, ..choice("metric", ROLLBACK_METRICS, None, "Serving metric of the new version.") },
        req("above", Ty::NonNegative, "Roll back when the metric exceeds this."),
        attr("min_requests", Ty::PositiveInteger, "Requests to the new version before judging."),
        attr(
            "query",
            Ty::String,
            "With `metric = \"prometheus\"`: a PromQL expression giving one number; with \"scrape\": a series selector (`name{label=\"value\"}`, matching series summed). `$endpoint`, `$candidate` and `$previous` are replaced by the endpoint's name and the versions' numbers.",
        ),
        attr(
            "url",
            Ty::String,
            "With `metric = \"prometheus\"`: the Prometheus server (`http://host:9090`); with \"scrape\": the metrics page to read (`http://host:port/metrics`).",
        ),
    ],
    ..block("rollback", "When a rollout step goes back to the previous version.")
};
static ROLLOUT: BlockSchema = BlockSchema {
    attrs: &[
        with_default(
            choice("strategy", &["canary", "blue_green", "immediate"], None, "How a new version takes traffic."),
            "immediate",
        ),
        attr("steps", PERCENTAGES, "Traffic percentages of a canary, increasing, ending at 100."),
        attr("interval", Ty::Duration, "Time at each step."),
    ],
    blocks: &[one(&ROLLBACK)],
    ..block("rollout", "How a new model version replaces the serving one.")
};
static AUTH: BlockSchema = BlockSchema {
    attrs: &[
        with_default(choice("type", &["none", "bearer"], None, "Authentication scheme."), "bearer"),
        attr("token_env", Ty::String, "Environment variable holding the bearer token."),
        attr("token_file", Ty::String, "File holding the bearer token."),
    ],
    ..block("auth", "Request authentication.")
};
static ENDPOINT: BlockSchema = BlockSchema {
    labels: &["name"],
    resource: true,
    attrs: &[
        req("model", Ty::Ref(&["training_job"]), "The training job whose production model is served."),
        with_default(attr("replicas", Ty::PositiveInteger, "Serving replicas."), "1"),
        with_default(attr("timeout", Ty::Duration, "Per-request timeout."), "5s"),
        with_default(attr("max_body", Ty::Memory, "Largest accepted request body."), "1Mi"),
        attr("description", Ty::String, "What the endpoint is for."),
    ],
    blocks: &[one(&AUTOSCALING), one(&ROLLOUT), one(&AUTH), one(&RESOURCES)],
    exports: &[
        ExportSchema { name: "url", doc: "Base URL of the endpoint.", computed: true },
        ExportSchema { name: "version", doc: "Model version taking most traffic.", computed: true },
    ],
    ..block("endpoint", "An HTTP endpoint serving a training job's production model.")
};

// ---- monitor ------------------------------------------------------------------------------

static DRIFT: BlockSchema = BlockSchema {
    attrs: &[
        req("features", STRINGS, "Features compared against the training reference; \"prediction\" for scores."),
        AttrSchema { required: true, ..choice("method", DRIFT_METHODS, None, "Drift statistic.") },
        req(
            "threshold",
            Ty::NonNegative,
            "Alert when the statistic exceeds this (p-value methods: when p < threshold).",
        ),
        with_default(
            choice("correction", &["none", "bonferroni", "holm"], None, "Multiple-testing correction for p-values."),
            "bonferroni",
        ),
    ],
    ..block("drift", "Distribution drift of features in production against the training reference.")
};
static PERFORMANCE: BlockSchema = BlockSchema {
    attrs: &[
        req("feedback", Ty::Ref(&["source"]), "Source of delayed ground-truth labels."),
        AttrSchema { required: true, ..choice("metric", METRICS, None, "Metric on joined feedback.") },
        attr("min", Ty::Number, "Alert below this."),
        attr("max", Ty::Number, "Alert above this."),
        with_default(attr("id_column", Ty::String, "Feedback column with the prediction id."), "prediction_id"),
        with_default(attr("label_column", Ty::String, "Feedback column with the true label."), "label"),
    ],
    ..block("performance", "Model quality on delayed feedback joined to logged predictions.")
};
static PROMETHEUS: BlockSchema = BlockSchema {
    labels: &["name"],
    attrs: &[
        attr("url", Ty::String, "Prometheus server base URL (query API)."),
        attr("scrape", Ty::String, "A /metrics URL to scrape instead of a server."),
        req("query", Ty::String, "PromQL query (server) or metric name (scrape)."),
        attr("above", Ty::Number, "Alert above this."),
        attr("below", Ty::Number, "Alert below this."),
    ],
    ..block("prometheus", "A metric read from Prometheus, compared with a bound.")
};
static MONITOR: BlockSchema = BlockSchema {
    labels: &["name"],
    resource: true,
    attrs: &[
        req("endpoint", Ty::Ref(&["endpoint"]), "The endpoint whose traffic is watched."),
        req("window", Ty::Duration, "Time window each judgement covers."),
        with_default(attr("min_samples", Ty::PositiveInteger, "Predictions needed before judging."), "100"),
        attr("description", Ty::String, "What is watched."),
    ],
    blocks: &[many(&DRIFT), one(&PERFORMANCE), many(&PROMETHEUS)],
    exports: &[ExportSchema { name: "status", doc: "Latest judgement.", computed: true }],
    ..block("monitor", "Watches an endpoint: feature drift, model quality on feedback, Prometheus metrics.")
};

// ---- retrain_policy -----------------------------------------------------------------------

static NEW_DATA: BlockSchema = BlockSchema {
    attrs: &[
        req("source", Ty::Ref(&["source"]), "Source whose new rows are counted."),
        req("rows", Ty::PositiveInteger, "Retrain once this many new rows arrived."),
    ],
    ..block("new_data", "Retrain when enough new data arrived.")
};
static BUDGET: BlockSchema = BlockSchema {
    attrs: &[
        req("max_runs", Ty::PositiveInteger, "Most retrains in a period."),
        with_default(attr("per", Ty::Duration, "The period."), "24h"),
    ],
    ..block("budget", "Caps how often retraining may run.")
};
static PROMOTE: BlockSchema = BlockSchema {
    attrs: &[
        AttrSchema { required: true, ..choice("compare", METRICS, None, "Metric compared on a shared holdout.") },
        with_default(attr("min_gain", Ty::Number, "How much the candidate must beat production by."), "0"),
        attr("via", Ty::Ref(&["endpoint"]), "Endpoint the candidate is rolled out through (its rollout rule)."),
    ],
    ..block("promote", "When a retrained candidate replaces production.")
};
static RETRAIN_POLICY: BlockSchema = BlockSchema {
    labels: &["name"],
    resource: true,
    attrs: &[
        req("job", Ty::Ref(&["training_job"]), "The training job to rerun."),
        attr("on", Ty::List(&Ty::Ref(&["monitor"])), "Monitors whose breach triggers a retrain."),
        attr("schedule", Ty::Cron, "Retrain on a schedule."),
        attr("cooldown", Ty::Duration, "Least time between two retrains."),
    ],
    blocks: &[one(&NEW_DATA), one(&BUDGET), one(&PROMOTE)],
    exports: &[ExportSchema { name: "last_run", doc: "Time of the last retrain.", computed: true }],
    ..block("retrain_policy", "When and how a model is retrained and promoted.")
};

/// Every top-level block kind, in the order the language reference lists them.
pub static TOP_LEVEL: &[&BlockSchema] = &[
    &MLOPS,
    &VARIABLE,
    &LOCALS,
    &OUTPUT,
    &MODULE,
    &SOURCE,
    &ENTITY,
    &FEATURE_VIEW,
    &TRAINING_JOB,
    &ENDPOINT,
    &MONITOR,
    &RETRAIN_POLICY,
];

/// Meta-arguments every resource block accepts besides its own attributes.
pub static META_ATTRS: &[AttrSchema] = &[
    attr("count", Ty::Integer, "Number of instances: addresses `kind.name[0]` …"),
    attr("for_each", Ty::Any, "Map or set of strings: one instance per key, addresses `kind.name[\"key\"]`."),
    attr("depends_on", Ty::List(&Ty::Any), "Extra dependencies on other resources."),
];

/// The top-level block kind with this keyword.
pub fn top_level(kind: &str) -> Option<&'static BlockSchema> {
    TOP_LEVEL.iter().copied().find(|b| b.kind == kind)
}

/// The resource kinds, in pipeline order (data → features → training → serving → monitoring).
pub fn resource_kinds() -> impl Iterator<Item = &'static str> {
    TOP_LEVEL.iter().filter(|b| b.resource).map(|b| b.kind)
}

/// Known XGBoost parameters: name, expected type, and an accepted range as documentation.
pub static XGBOOST_PARAMS: &[(&str, Ty, &str)] = &[
    ("objective", Ty::String, "binary:logistic, binary:logitraw, binary:hinge, multi:softmax, multi:softprob, reg:squarederror, reg:squaredlogerror, reg:logistic, reg:pseudohubererror, reg:absoluteerror, count:poisson, reg:gamma, reg:tweedie"),
    ("num_class", Ty::Integer, "≥ 2, multi-class objectives only"),
    ("max_depth", Ty::Integer, "0 (no limit with hist) … 64"),
    ("eta", Ty::Number, "(0, 1]"),
    ("learning_rate", Ty::Number, "(0, 1], alias of eta"),
    ("rounds", Ty::Integer, "≥ 1, boosting rounds"),
    ("early_stopping_rounds", Ty::Integer, "≥ 1"),
    ("min_child_weight", Ty::Number, "≥ 0"),
    ("subsample", Ty::Number, "(0, 1]"),
    ("colsample_bytree", Ty::Number, "(0, 1]"),
    ("colsample_bylevel", Ty::Number, "(0, 1]"),
    ("lambda", Ty::Number, "≥ 0"),
    ("alpha", Ty::Number, "≥ 0"),
    ("gamma", Ty::Number, "≥ 0"),
    ("max_delta_step", Ty::Number, "≥ 0"),
    ("tree_method", Ty::String, "auto, exact, approx, hist"),
    ("grow_policy", Ty::String, "depthwise, lossguide"),
    ("max_leaves", Ty::Integer, "≥ 0 (0: no limit)"),
    ("colsample_bynode", Ty::Number, "(0, 1]"),
    ("reg_lambda", Ty::Number, "≥ 0, alias of lambda"),
    ("reg_alpha", Ty::Number, "≥ 0, alias of alpha"),
    ("min_split_loss", Ty::Number, "≥ 0, alias of gamma"),
    ("num_parallel_tree", Ty::Integer, "≥ 1"),
    ("max_bin", Ty::Integer, "≥ 2"),
    ("scale_pos_weight", Ty::Number, "> 0"),
    ("base_score", Ty::Number, "any"),
    ("seed", Ty::Integer, "any"),
    ("nthread", Ty::Integer, "≥ 1"),
    ("eval_metric", Ty::String, "an XGBoost metric name"),
];

/// XGBoost objectives accepted in `params.objective`.
pub const OBJECTIVES: &[&str] = &[
    "binary:logistic",
    "binary:logitraw",
    "binary:hinge",
    "multi:softmax",
    "multi:softprob",
    "reg:squarederror",
    "reg:squaredlogerror",
    "reg:logistic",
    "reg:pseudohubererror",
    "reg:absoluteerror",
    "count:poisson",
    "reg:gamma",
    "reg:tweedie",
];
