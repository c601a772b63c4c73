//! Mutation fuzzing support, shared by `tests/no_panic.rs` (proptest) and
//! `examples/fuzz_compile.rs` (a long-running command) through `#[path = ...] mod mutate;`.
//!
//! In: a corpus of valid configurations (every example with the modules, and a few inline ones) and a list of [`Mutation`]s. Out: a mutated file tree written to a directory, and
//! [`check`], which compiles it and returns the first broken promise of the compiler (a panic, a
//! span outside its file, an unknown code, a spec that does not round-trip, a non-deterministic
//! result) or `Ok` with the codes seen.
#![allow(dead_code)]

use mlops_compiler::spec::SystemSpec;
use mlops_compiler::{codes, compile, schema, Compilation, Options};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// One configuration: files relative to a tree root, and the directory (relative to the same
/// root) that is compiled. Module directories sit beside it, as in the repository.
#[derive(Debug, Clone)]
pub struct Config {
    /// A short name for messages.
    pub name: String,
    /// The directory compiled, relative to the tree root.
    pub root: PathBuf,
    /// Every file of the tree: path relative to the tree root, and text.
    pub files: Vec<(PathBuf, String)>,
}

impl Config {
    /// Writes every file under `base` (creating directories) and returns the directory to compile.
    pub fn write(&self, base: &Path) -> std::io::Result<PathBuf> {
        for (rel, text) in &self.files {
            let path = base.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, text)?;
        }
        Ok(base.join(&self.root))
    }

    /// Every non-empty file, as a readable dump.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for (rel, text) in &self.files {
            if !text.trim().is_empty() {
                out.push_str(&format!("----- {} -----\n{text}\n", rel.display()));
            }
        }
        out
    }

    /// The files that differ from `original`, as a readable dump (for failure reports).
    pub fn dump_changed(&self, original: &Config) -> String {
        let mut out = String::new();
        for ((rel, text), (_, before)) in self.files.iter().zip(&original.files) {
            if text != before {
                out.push_str(&format!("----- {} -----\n{text}\n", rel.display()));
            }
        }
        if out.is_empty() {
            out.push_str("(no file changed)\n");
        }
        out
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read_tree(name: &str, root: &str, dirs: &[&str]) -> Config {
    let mut files = Vec::new();
    for dir in dirs {
        let abs = repo_root().join(dir);
        for path in mlops_compiler::parse::config_files(&abs).unwrap_or_else(|e| panic!("{}: {e}", abs.display())) {
            let text = std::fs::read_to_string(&path).expect("corpus files are UTF-8");
            files.push((Path::new(dir).join(path.file_name().expect("a file name")), text));
        }
    }
    Config { name: name.into(), root: root.into(), files }
}

fn inline(name: &str, files: &[(&str, &str)]) -> Config {
    Config {
        name: name.into(),
        root: "main".into(),
        files: files.iter().map(|(p, t)| (Path::new("main").join(p), t.to_string())).collect(),
    }
}

/// The valid configurations mutants are made from: the examples, then the inline ones.
pub fn corpus() -> Vec<Config> {
    let mut all = examples();
    all.extend(inline_configs());
    all
}

/// Every example of the repository, with the modules it uses beside it (as in the repository, so
/// `source = "../../modules/…"` resolves). `fraud-detection` comes first.
pub fn examples() -> Vec<Config> {
    let list = |dir: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(repo_root().join(dir))
            .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .map(|e| format!("{dir}/{}", e.file_name().to_string_lossy()))
            .collect();
        names.sort();
        names
    };
    let modules = list("modules");
    let mut examples = list("examples");
    examples.sort_by_key(|e| !e.ends_with("/fraud-detection"));
    examples
        .iter()
        .filter(|e| mlops_compiler::parse::config_files(&repo_root().join(e)).is_ok_and(|f| !f.is_empty()))
        .map(|e| {
            // Only the modules the example instantiates: mutating the others would change nothing.
            let text: String = mlops_compiler::parse::config_files(&repo_root().join(e))
                .unwrap_or_default()
                .iter()
                .filter_map(|f| std::fs::read_to_string(f).ok())
                .collect();
            let used = modules.iter().filter(|m| text.contains(&format!("{m}\""))).map(String::as_str);
            let dirs: Vec<&str> = std::iter::once(e.as_str()).chain(used).collect();
            read_tree(e.trim_start_matches("examples/"), e, &dirs)
        })
        .collect()
}

/// Small valid configurations written here, for features the examples do not use.
pub fn inline_configs() -> Vec<Config> {
    vec![
        inline("minimal", &[("main.mlops.hcl", MINIMAL)]),
        inline("repeated", &[("main.mlops.hcl", REPEATED)]),
        inline("kubernetes", &[("main.mlops.hcl", KUBERNETES)]),
        Config {
            name: "local-module".into(),
            root: "main".into(),
            files: vec![
                ("main/main.mlops.hcl".into(), LOCAL_MODULE_ROOT.to_string()),
                ("main/pair/pair.mlops.hcl".into(), LOCAL_MODULE.to_string()),
            ],
        },
    ]
}

const MINIMAL: &str = r#"source "events" {
  format    = "parquet"
  path      = "data/events/*.parquet"
  timestamp = "ts"

  schema {
    user_id = "string"
    clicks  = "int"
    spend   = { type = "float", nullable = true }
    churned = "bool"
    ts      = "timestamp"
  }
}

entity "user" {
  join_keys = ["user_id"]
}

feature_view "usage" {
  source   = source.events
  entities = [entity.user]
  ttl      = "30d"

  feature "clicks_7d" {
    column    = "clicks"
    aggregate = "sum"
    window    = "7d"
  }

  feature "spend_ratio" {
    expression = "spend / (clicks + 1)"
  }
}

training_job "churn" {
  features = [feature_view.usage]
  label    = source.events.columns.churned

  params = {
    objective = "binary:logistic"
    max_depth = 4
    eta       = 0.3
    rounds    = 50
  }

  gate {
    metric = "auc"
    min    = 0.7
  }
}

endpoint "churn" {
  model = training_job.churn
}

monitor "churn" {
  endpoint = endpoint.churn
  window   = "1d"

  drift {
    features  = ["clicks_7d"]
    method    = "wasserstein"
    threshold = 0.5
  }
}
"#;

const REPEATED: &str = r#"variable "regions" {
  type    = list(string)
  default = ["eu", "us"]
}

variable "depths" {
  type    = map(number)
  default = { eu = 4, us = 6 }
}

locals {
  prefix  = "shop-${var.regions[0]}"
  windows = { short = "1h", long = "24h" }
  steps   = [for s in [5, 25, 100] : s]
  paths   = { for r in var.regions : r => format("data/%s/orders.csv", r) }
  label   = length(var.regions) > 1 ? "multi" : "single"
}

source "orders" {
  for_each  = toset(var.regions)
  format    = "csv"
  path      = local.paths[each.key]
  timestamp = "created_at"

  schema {
    customer   = "string"
    total      = "float"
    items      = "int"
    returned   = "bool"
    created_at = "timestamp"
  }
}

entity "customer" {
  join_keys = ["customer"]
}

feature_view "orders" {
  for_each = toset(var.regions)
  source   = source.orders[each.key]
  entities = [entity.customer]
  ttl      = "7d"

  feature "total_sum_short" {
    column    = "total"
    aggregate = "sum"
    window    = local.windows.short
  }

  feature "items_mean_long" {
    column    = "items"
    aggregate = "mean"
    window    = local.windows["long"]
  }
}

training_job "returns" {
  for_each = var.depths
  features = [feature_view.orders[each.key]]
  label    = source.orders[each.key].columns.returned

  params = {
    objective = "binary:logistic"
    max_depth = each.value
    rounds    = 100
  }

  validation {
    split   = "time"
    holdout = 0.25
  }

  gate {
    metric = "auc"
    min    = 0.75
  }
}

endpoint "returns" {
  count    = 2
  model    = training_job.returns[var.regions[count.index]]
  replicas = count.index + 1

  rollout {
    strategy = "canary"
    steps    = local.steps
    interval = "5m"

    rollback {
      metric = "latency_p99"
      above  = 0.5
    }
  }
}

monitor "returns" {
  count    = 2
  endpoint = endpoint.returns[count.index]
  window   = "2h"

  drift {
    features  = ["total_sum_short", "items_mean_long"]
    method    = "ks"
    threshold = 0.1
  }
}

output "addresses" {
  value = [for r in var.regions : "${local.prefix}/${upper(r)}"]
}

output "label" {
  value = local.label
}
"#;

const KUBERNETES: &str = r#"mlops {
  name = "sensors"

  backend "postgres" {
    conn_str_env = "STATE_DB"
    schema       = "sensors"
  }

  target "kubernetes" {
    namespace       = "ml"
    image           = "ghcr.io/example/mlops-runtime:1.0"
    storage_size    = "20Gi"
    gpu_nodes       = true
    service_monitor = true
  }
}

source "readings" {
  format         = "postgres"
  connection_env = "READINGS_DB"
  query          = "SELECT * FROM readings"
  timestamp      = "at"

  schema {
    machine     = "string"
    temperature = "float"
    vibration   = "float"
    kind        = "category"
    failed      = "bool"
    at          = "timestamp"
  }
}

source "repairs" {
  format         = "postgres"
  connection_env = "READINGS_DB"
  table          = "repairs"

  schema {
    prediction_id = "string"
    label         = "bool"
  }
}

entity "machine" {
  join_keys = ["machine"]
}

feature_view "health" {
  source   = source.readings
  entities = [entity.machine]
  ttl      = "2d"
  online   = true

  feature "temp_max_1h" {
    column    = "temperature"
    aggregate = "max"
    window    = "1h"
  }

  feature "vibration_std_6h" {
    column    = "vibration"
    aggregate = "stddev"
    window    = "6h"
  }

  feature "kind" {
    column = "kind"
  }
}

training_job "failure" {
  features = [feature_view.health]
  label    = source.readings.columns.failed
  schedule = "0 */6 * * *"

  params = {
    objective        = "binary:logistic"
    tree_method      = "hist"
    scale_pos_weight = 10
    rounds           = 300
  }

  tuning {
    trials      = 20
    metric      = "auc"
    parallelism = 2

    search "max_depth" {
      values = [3, 5, 7]
    }

    search "eta" {
      min   = 0.01
      max   = 0.3
      scale = "log"
    }
  }

  gate {
    metric = "auc"
    min    = 0.8
  }

  gate {
    metric = "logloss"
    max    = 0.5
  }

  resources {
    cpu    = 8
    memory = "16Gi"
    gpu    = 1
  }
}

endpoint "failure" {
  model    = training_job.failure
  timeout  = "500ms"
  max_body = "4Mi"

  autoscaling {
    min_replicas = 2
    max_replicas = 10
    target_cpu   = "70%"
  }

  rollout {
    strategy = "blue_green"
  }

  auth {
    type      = "bearer"
    token_env = "API_TOKEN"
  }
}

monitor "failure" {
  endpoint    = endpoint.failure
  window      = "6h"
  min_samples = 2000

  drift {
    features   = ["kind"]
    method     = "chi2"
    threshold  = 0.01
    correction = "holm"
  }

  performance {
    feedback = source.repairs
    metric   = "recall"
    min      = 0.5
  }

  prometheus "latency" {
    url   = "http://prometheus:9090"
    query = "histogram_quantile(0.99, rate(http_request_duration_seconds_bucket[5m]))"
    above = 0.25
  }
}

retrain_policy "failure" {
  job      = training_job.failure
  on       = [monitor.failure]
  cooldown = "12h"

  new_data {
    source = source.readings
    rows   = 100000
  }

  budget {
    max_runs = 2
    per      = "1w"
  }

  promote {
    compare  = "auc"
    min_gain = 0.01
    via      = endpoint.failure
  }
}
"#;

const LOCAL_MODULE_ROOT: &str = r#"mlops {
  name = "pairs"
}

variable "shards" {
  type    = set(string)
  default = ["a", "b"]
}

source "loans" {
  format    = "csv"
  path      = "loans.csv"
  timestamp = "t"

  schema {
    borrower = "string"
    income   = "float"
    amount   = "float"
    grade    = "int"
    t        = "timestamp"
  }
}

entity "borrower" {
  join_keys = ["borrower"]
}

feature_view "credit" {
  source   = source.loans
  entities = [entity.borrower]

  feature "income" {
    column = "income"
  }

  feature "ratio" {
    expression = "amount / (income + 1)"
  }
}

module "pair" {
  for_each = var.shards
  source   = "./pair"
  views    = [feature_view.credit]
  label    = source.loans.columns.grade
  shard    = each.key
}

output "urls" {
  value = { for k, m in module.pair : k => m.url }
}
"#;

const LOCAL_MODULE: &str = r#"variable "views" {
  type = list(any)
}

variable "label" {
}

variable "shard" {
  type = string
}

training_job "grade" {
  features = var.views
  label    = var.label

  params = {
    objective = "reg:squarederror"
    rounds    = 80
    seed      = 1
  }

  gate {
    metric = "rmse"
    max    = 2.5
  }
}

endpoint "grade" {
  model       = training_job.grade
  description = "grades for shard ${var.shard}"
}

output "url" {
  value = endpoint.grade.url
}
"#;

// ---- mutations ------------------------------------------------------------------------------

/// One change to one file. Indices are taken modulo what the file has, so any values are valid.
#[derive(Debug, Clone)]
pub enum Mutation {
    /// Delete line `line`.
    DeleteLine { file: u32, line: u32 },
    /// Duplicate line `line`.
    DuplicateLine { file: u32, line: u32 },
    /// Swap lines `a` and `b`.
    SwapLines { file: u32, a: u32, b: u32 },
    /// Copy line `from` before line `to`.
    CopyLine { file: u32, from: u32, to: u32 },
    /// Insert a token at a char offset.
    Insert { file: u32, at: u32, token: String },
    /// Insert a snippet of whole lines before line `line`.
    InsertLines { file: u32, line: u32, snippet: String },
    /// Delete `len` chars at a char offset.
    DeleteChars { file: u32, at: u32, len: u32 },
    /// Cut the file at a char offset.
    Truncate { file: u32, at: u32 },
    /// Replace the `nth` number literal.
    ChangeNumber { file: u32, nth: u32, to: String },
    /// Replace the contents of the `nth` string literal.
    ChangeString { file: u32, nth: u32, to: String },
    /// Replace the `nth` identifier.
    ChangeWord { file: u32, nth: u32, to: String },
}

#[rustfmt::skip]
const TOKENS: &[&str] = &[
    "{", "}", "\"", "=", "[", "]", "(", ")", "${", "%{", "}", ",", ".", "..", "...", ":", "?", "=>", "*", "[*]",
    "!", "-", "+", "/", "%", "&&", "||", "==", "<", ">=", "\n", " ", "\t", "\r\n", "#", "//", "/*", "*/", "\\",
    "<<EOT\n", "<<-EOT\n", "\nEOT\n", "0", "1", "-1", "1e999", "-1e999", "1e-999", "0.5", "3.", "1e",
    "99999999999999999999999999999", "18446744073709551616", "4294967296", "10001", "-0", "1_000", "0x1F",
    "null", "true", "false", "var.", "local.", "module.x.", "module.fraud.", "each.key", "each.value",
    "count.index", "path.module", "path.root", "source.", "endpoint.", "training_job.", "feature_view.",
    "entity.", "monitor.", "retrain_policy.", "self.", "var.drift_threshold", "local.replicas", ".columns.",
    "[0]", "[\"k\"]", "[-1]", "[99]", "for", "in", "if", "else", "endif", "endfor", "é", "🦀", "\u{301}",
    "\u{202e}", "\u{feff}", "\u{0}", "\u{7f}", "ß", "中", "length(", "toset(", "format(", "join(", "lookup(",
    "element(", "jsondecode(", "file(", "max(", "concat(", "flatten(", "keys(", "tonumber(", "upper(",
    "format(\"%.99999f\", 1)", "\"%{ for x in [1,2] }${x}%{ endfor }\"", "\"${\"", "\"a\" = 1",
];

#[rustfmt::skip]
const NUMBERS: &[&str] = &[
    "0", "-1", "1", "2", "-0", "0.0", "0.5", "1.0000001", "1e999", "-1e999", "1e-999", "1e308", "4.9e-324",
    "99999999999999999999999999999", "18446744073709551616", "9007199254740993", "4294967296", "10000", "10001",
    "65", "64", "101", "100", "1.5", "-0.000001", "1e3", "1E+2", "007", "0.", "12345678901234567890.5",
];

#[rustfmt::skip]
const STRINGS: &[&str] = &[
    "", " ", "0", "-1", "1e999", "x", "é🦀中", "\u{202e}rtl", "\\n", "\\t", "\\\"", "\\\\", "\\u00e9", "\\U0001F980",
    "\\uD800", "$${literal}", "%%{", "${var.x}", "${1 + }", "${local.missing}", "%{ if true }yes%{ endif }",
    "%{ for c in [1, 2] }${c}%{ endfor }", "0s", "-1s", "1.5h", "1h30m", "30m1h", "99999999999999999999d",
    "9223372036854775807ms", "1e999h", "7dd", "1w", "500ms", "0Mi", "-1Gi", "1.5Gi", "8Ei", "99999999999999Ei",
    "1e999Gi", "8gi", "0 3 * * *", "@daily", "@never", "* * * * * *", "61 25 32 13 8", "*/0 * * * *",
    "0-59/99999999999 * * * *", "MON-SUN * * * *", "0 0 * * MON-FRI", "100%", "101%", "-5%", "%", "1e999%",
    "nan%", "binary:logistic", "multi:softmax", "reg:squarederror", "count:poisson", "auc", "rmse", "f1",
    "psi", "chi2", "canary", "immediate", "time", "random", "bearer", "csv", "parquet", "postgres", "string",
    "int", "float", "bool", "category", "timestamp", "account_id", "amount", "is_fraud", "prediction",
    "log1p(amount)", "log(", "amount / 0", "amount ** 2", "is_null()", "hour(event_time)", "((((amount))))",
    "1 +", "sqrt(-1)", "abs(amount, amount)", "unknown(amount)", "../../modules/tabular-classifier", "../..", ".",
    "./", "/", "modules", "../../modules/missing", "../../examples/fraud-detection", "./pair", "postgres://u:p@h/db",
];

const SNIPPETS: &[&str] = &[
    "module \"x\" {\n  source = \".\"\n}\n",
    "module \"y\" {\n  source = \"../../modules/tabular-classifier\"\n  count  = 2\n}\n",
    "locals {\n  a = local.b\n  b = local.a\n}\n",
    "locals {\n  z = [for i in range(3) : i]\n}\n",
    "variable \"v\" {\n  type    = list(number)\n  default = [1, \"x\"]\n}\n",
    "variable \"w\" {\n  type = object({ a = number })\n  default = { a = \"b\" }\n}\n",
    "  count = 3\n",
    "  count = -1\n",
    "  count = 1e999\n",
    "  count = 10001\n",
    "  for_each = toset([\"a\", \"b\"])\n",
    "  for_each = { a = 1, b = 2 }\n",
    "  for_each = [1, 2]\n",
    "  depends_on = [source.transactions]\n",
    "  depends_on = [endpoint.api, monitor.fraud_health]\n",
    "  features = [feature_view.account_activity, feature_view.account_activity]\n",
    "  feature \"amount\" {\n    column = \"amount\"\n  }\n",
    "  drift {\n    features  = [\"nope\"]\n    method    = \"chi2\"\n    threshold = 2\n  }\n",
    "  rollout {\n    strategy = \"canary\"\n    steps    = [100, 50, 0]\n  }\n",
    "  schema {\n    x = { type = \"float\", nullable = \"maybe\" }\n  }\n",
    "  params = {\n    max_depth = 65\n    eta = 0\n    num_class = 1\n    unknown = true\n  }\n",
    "  gate {\n    metric = \"rmse\"\n  }\n",
    "  promote {\n    compare = \"r2\"\n    via = endpoint.api\n  }\n",
    "  validation {\n    condition = var.nope > 0\n    error_message = 1\n  }\n",
    "output \"o\" {\n  value = module.fraud\n}\n",
    "output \"p\" {\n  value = [for k, v in { a = 1 } : \"${k}=${v}\" if v > 0]\n}\n",
    "retrain_policy \"r\" {\n  job = training_job.model\n  on = [monitor.fraud_health]\n}\n",
    "training_job \"t\" {\n  features = [feature_view.account_activity]\n  label = source.chargebacks.columns.label\n}\n",
    "endpoint \"e\" {\n  model = endpoint.e\n}\n",
    "source \"s\" {\n  format = \"csv\"\n  schema {\n  }\n}\n",
    "x = <<EOT\nheredoc ${var.environment}\nEOT\n",
    "y = [\n  1,\n  2,\n]\n",
    "z = { \"quoted key\" = 1, 2 = 3 }\n",
];

fn vocabulary() -> &'static [String] {
    static WORDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    WORDS.get_or_init(build_vocabulary)
}

fn build_vocabulary() -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for b in schema::all_blocks() {
        words.push(b.kind.to_string());
        words.extend(b.attrs.iter().map(|a| a.name.to_string()));
    }
    words.extend(schema::META_ATTRS.iter().map(|a| a.name.to_string()));
    for w in [
        "var",
        "local",
        "module",
        "each",
        "count",
        "path",
        "self",
        "null",
        "true",
        "false",
        "for",
        "in",
        "if",
        "fraud",
        "transactions",
        "chargebacks",
        "account",
        "account_activity",
        "fraud_api",
        "fraud_health",
        "model",
        "api",
        "columns",
        "is_fraud",
        "url",
        "version",
        "key",
        "value",
        "index",
        "_",
        "a-b",
        "x1",
        "length",
        "toset",
        "format",
        "upper",
        "range",
        "lookup",
        "file",
    ] {
        words.push(w.to_string());
    }
    words.sort();
    words.dedup();
    words
}

fn pick<T: Clone>(items: &[T], i: u32) -> T {
    items[i as usize % items.len()].clone()
}

impl Mutation {
    /// Builds a mutation from raw numbers (from proptest or a random generator).
    pub fn from_raw(kind: u32, file: u32, a: u32, b: u32) -> Mutation {
        match kind % 16 {
            0 | 1 => Mutation::DeleteLine { file, line: a },
            2 => Mutation::DuplicateLine { file, line: a },
            3 => Mutation::SwapLines { file, a, b },
            4 => Mutation::CopyLine { file, from: a, to: b },
            5 | 6 => Mutation::Insert { file, at: a, token: pick(TOKENS, b).to_string() },
            7 => Mutation::Insert { file, at: a, token: format!(" {} ", pick(vocabulary(), b)) },
            8 => Mutation::InsertLines { file, line: a, snippet: pick(SNIPPETS, b).to_string() },
            9 => Mutation::DeleteChars { file, at: a, len: b % 24 + 1 },
            10 => Mutation::Truncate { file, at: a },
            11 | 12 => Mutation::ChangeNumber { file, nth: a, to: pick(NUMBERS, b).to_string() },
            13 | 14 => Mutation::ChangeString { file, nth: a, to: pick(STRINGS, b).to_string() },
            _ => Mutation::ChangeWord { file, nth: a, to: pick(vocabulary(), b) },
        }
    }

    /// Applies the mutation to a configuration.
    pub fn apply(&self, config: &mut Config) {
        let n = config.files.len() as u32;
        let file = match self {
            Mutation::DeleteLine { file, .. }
            | Mutation::DuplicateLine { file, .. }
            | Mutation::SwapLines { file, .. }
            | Mutation::CopyLine { file, .. }
            | Mutation::Insert { file, .. }
            | Mutation::InsertLines { file, .. }
            | Mutation::DeleteChars { file, .. }
            | Mutation::Truncate { file, .. }
            | Mutation::ChangeNumber { file, .. }
            | Mutation::ChangeString { file, .. }
            | Mutation::ChangeWord { file, .. } => *file % n,
        };
        let text = &mut config.files[file as usize].1;
        *text = self.apply_to(text);
    }

    fn apply_to(&self, text: &str) -> String {
        let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
        let nl = lines.len().max(1) as u32;
        let chars = text.chars().count() as u32 + 1;
        let byte_at = |c: u32| text.char_indices().nth((c % chars) as usize).map_or(text.len(), |(i, _)| i);
        match self {
            Mutation::DeleteLine { line, .. } => {
                if !lines.is_empty() {
                    lines.remove((line % nl) as usize);
                }
                lines.concat()
            }
            Mutation::DuplicateLine { line, .. } => {
                if !lines.is_empty() {
                    let l = lines[(line % nl) as usize].clone();
                    lines.insert((line % nl) as usize, with_newline(l));
                }
                lines.concat()
            }
            Mutation::SwapLines { a, b, .. } => {
                if !lines.is_empty() {
                    let last = lines.len() - 1;
                    lines[last] = with_newline(lines[last].clone());
                    lines.swap((a % nl) as usize, (b % nl) as usize);
                }
                lines.concat()
            }
            Mutation::CopyLine { from, to, .. } => {
                if !lines.is_empty() {
                    let l = with_newline(lines[(from % nl) as usize].clone());
                    lines.insert((to % (nl + 1)) as usize, l);
                }
                lines.concat()
            }
            Mutation::Insert { at, token, .. } => {
                let at = byte_at(*at);
                format!("{}{token}{}", &text[..at], &text[at..])
            }
            Mutation::InsertLines { line, snippet, .. } => {
                if let Some(last) = lines.last_mut() {
                    *last = with_newline(last.clone());
                }
                lines.insert((line % (nl + 1)).min(lines.len() as u32) as usize, snippet.clone());
                lines.concat()
            }
            Mutation::DeleteChars { at, len, .. } => {
                let start = byte_at(*at);
                let end = text[start..].char_indices().nth(*len as usize).map_or(text.len(), |(i, _)| start + i);
                format!("{}{}", &text[..start], &text[end..])
            }
            Mutation::Truncate { at, .. } => text[..byte_at(*at)].to_string(),
            Mutation::ChangeNumber { nth, to, .. } => replace_nth(text, &numbers(text), *nth, to),
            Mutation::ChangeString { nth, to, .. } => replace_nth(text, &strings(text), *nth, to),
            Mutation::ChangeWord { nth, to, .. } => replace_nth(text, &words(text), *nth, to),
        }
    }
}

fn with_newline(mut l: String) -> String {
    if !l.ends_with('\n') {
        l.push('\n');
    }
    l
}

fn replace_nth(text: &str, ranges: &[(usize, usize)], nth: u32, to: &str) -> String {
    if ranges.is_empty() {
        return text.to_string();
    }
    let (s, e) = ranges[nth as usize % ranges.len()];
    format!("{}{to}{}", &text[..s], &text[e..])
}

/// Byte ranges of number literals (digits with an optional fraction and exponent), not inside words.
fn numbers(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let word_before = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b'.');
        if b[i].is_ascii_digit() && !word_before {
            let s = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                i += 1;
                if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                    i += 1;
                }
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            out.push((s, i));
        } else {
            i += 1;
        }
    }
    out
}

/// Byte ranges of the contents of `"…"` literals on one line (escapes skipped).
fn strings(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            let s = i + 1;
            let mut j = s;
            while j < b.len() && b[j] != b'"' && b[j] != b'\n' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let j = j.min(b.len());
            if j < b.len() && b[j] == b'"' {
                out.push((s, j));
            }
            i = j + 1;
        } else {
            i += 1;
        }
    }
    out
}

/// Byte ranges of identifiers.
fn words(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphabetic() || b[i] == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'-') {
                i += 1;
            }
            out.push((s, i));
        } else {
            i += 1;
        }
    }
    out
}

/// A small deterministic random generator (SplitMix64) for the fuzz command.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// A random mutation.
    pub fn mutation(&mut self) -> Mutation {
        Mutation::from_raw(self.next_u32(), self.next_u32(), self.next_u32(), self.next_u32())
    }
}

// ---- the property -------------------------------------------------------------------------

/// What compiling one mutant showed.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Every diagnostic code seen.
    pub codes: Vec<&'static str>,
    /// Did it compile without errors?
    pub ok: bool,
}

/// A broken promise.
#[derive(Debug)]
pub enum Failure {
    /// The compiler (or rendering its diagnostics) panicked.
    Panic(String),
    /// An invariant did not hold.
    Invariant(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Panic(m) => write!(f, "panic: {m}"),
            Failure::Invariant(m) => write!(f, "invariant violated: {m}"),
        }
    }
}

/// The message of a caught panic.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".into()
    }
}

struct Run {
    compilation: Compilation,
    rendered: String,
    diagnostics_json: String,
    spec_json: Option<String>,
}

fn run_once(dir: &Path) -> Result<Run, Failure> {
    catch_unwind(AssertUnwindSafe(|| {
        let compilation = compile(dir, &Options::default());
        let rendered = compilation.diagnostics.render(&compilation.sources, false);
        let diagnostics_json = serde_json::to_string(&compilation.diagnostics.to_json(&compilation.sources))
            .expect("diagnostics serialise");
        let spec_json = compilation.spec.as_ref().map(SystemSpec::to_json);
        Run { compilation, rendered, diagnostics_json, spec_json }
    }))
    .map_err(|p| Failure::Panic(panic_message(&*p)))
}

/// Compiles `dir` twice and checks every promise: no panic, every span inside its file on char
/// boundaries, every code a known one, a spec exactly when there is no error that round-trips
/// through JSON, and the same bytes from both runs.
pub fn check(dir: &Path) -> Result<Outcome, Failure> {
    let first = run_once(dir)?;
    let c = &first.compilation;
    let texts: Vec<&str> = c.sources.files().map(|(_, f)| &*f.text).collect();
    let mut codes_seen = Vec::new();
    for d in c.diagnostics.iter() {
        if !codes::ALL.iter().any(|(code, _)| *code == d.code) {
            return Err(Failure::Invariant(format!("unknown diagnostic code {:?}", d.code)));
        }
        codes_seen.push(d.code);
        for label in std::iter::once(&d.primary).chain(&d.secondary) {
            let s = label.span;
            let Some(text) = texts.get(s.file.0 as usize) else {
                return Err(Failure::Invariant(format!(
                    "{}: span {s:?} names file {} but only {} files were read",
                    d.code,
                    s.file.0,
                    texts.len()
                )));
            };
            if !(s.start <= s.end && s.end <= text.len()) {
                return Err(Failure::Invariant(format!(
                    "{} ({}): span {}..{} is outside its file of {} bytes",
                    d.code,
                    d.message,
                    s.start,
                    s.end,
                    text.len()
                )));
            }
            if !(text.is_char_boundary(s.start) && text.is_char_boundary(s.end)) {
                return Err(Failure::Invariant(format!(
                    "{} ({}): span {}..{} is not on char boundaries",
                    d.code, d.message, s.start, s.end
                )));
            }
        }
    }
    match (&c.spec, c.diagnostics.has_errors()) {
        (Some(_), true) => return Err(Failure::Invariant("a spec was produced despite errors".into())),
        (None, false) => return Err(Failure::Invariant("no errors, but no spec".into())),
        _ => {}
    }
    if let Some(json) = &first.spec_json {
        let back = catch_unwind(|| SystemSpec::from_json(json)).map_err(|p| Failure::Panic(panic_message(&*p)))?;
        match back {
            Ok(spec) => {
                if Some(&spec) != c.spec.as_ref() {
                    return Err(Failure::Invariant("spec differs after a JSON round trip".into()));
                }
                if &spec.to_json() != json {
                    return Err(Failure::Invariant("spec JSON differs after a JSON round trip".into()));
                }
            }
            Err(e) => return Err(Failure::Invariant(format!("spec JSON does not parse back: {e}"))),
        }
    }
    let second = run_once(dir)?;
    if second.spec_json != first.spec_json {
        return Err(Failure::Invariant("two compilations gave different spec JSON".into()));
    }
    if second.rendered != first.rendered || second.diagnostics_json != first.diagnostics_json {
        return Err(Failure::Invariant("two compilations gave different diagnostics".into()));
    }
    codes_seen.sort_unstable();
    codes_seen.dedup();
    Ok(Outcome { codes: codes_seen, ok: first.spec_json.is_some() })
}
