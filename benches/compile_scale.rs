//! How compile time grows with the size of a system, against a named peer.
//!
//! In: generated, valid systems of 100, 1,000 and 10,000 top-level blocks (sources with schemas,
//! entities, feature views, training jobs with params and gates, endpoints with canary rollouts,
//! monitors with drift, retrain policies and outputs, in pipeline proportions, over 10 files).
//! Out: a table of the median time of `mlops_compiler::compile` (parse, lower, check, graph,
//! spec) plus `SystemSpec::to_json`, per size and per block, its growth per block against the
//! 100-block system, and the ratio to the peer: hcl-rs's `hcl::parse` of the same files in the
//! same run — a bare HCL parse that evaluates and checks nothing. Both sides read the files.
//!
//! `cargo bench --bench compile_scale` (release; about a minute on a shared machine).

use mlops_compiler::{compile, Options};
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const SIZES: [usize; 3] = [100, 1_000, 10_000];
/// Blocks of one pipeline unit (two sources, entity, two views, job, endpoint, monitor,
/// retrain policy, output).
const UNIT: usize = 10;
/// Time spent measuring each size (both sides together); at least `MIN_RUNS` runs each.
const BUDGET: Duration = Duration::from_secs(8);
const MIN_RUNS: usize = 5;
const MAX_RUNS: usize = 41;
/// The target: a 10,000-block system compiles in under a second.
const TARGET: Duration = Duration::from_secs(1);

/// The files of one generated system, by name.
struct System {
    files: Vec<(String, String)>,
    blocks: usize,
}

fn generate(blocks: usize) -> System {
    assert!(blocks.is_multiple_of(UNIT) && blocks >= 2 * UNIT);
    #[rustfmt::skip]
    let names = [
        "00-main", "01-sources", "02-feedback", "03-entities", "04-activity", "05-spend", "06-training",
        "07-serving", "08-monitoring", "09-retraining",
    ];
    let mut files: Vec<String> = vec![String::new(); names.len()];
    // Two settings blocks; the first two units have no output, so the total is exactly `blocks`.
    files[0].push_str(
        r#"mlops {
  name = "scale"

  backend "local" {
    path = ".mlops/state"
  }
}

variable "drift_threshold" {
  type    = number
  default = 0.2

  validation {
    condition     = var.drift_threshold > 0 && var.drift_threshold < 1
    error_message = "drift_threshold must be in (0, 1)."
  }
}
"#,
    );
    let mut count = 2;
    for u in 0..blocks / UNIT {
        let w = |f: &mut String, s: String| f.push_str(&s);
        w(
            &mut files[1],
            format!(
                r#"
source "txn_{u}" {{
  format      = "csv"
  path        = "data/txn_{u}.csv"
  timestamp   = "event_time"
  description = "Transactions of shard {u}."

  schema {{
    transaction_id = "string"
    account_id     = "string"
    amount         = "float"
    merchant       = "category"
    hour_of_day    = "int"
    is_fraud       = "bool"
    event_time     = "timestamp"
  }}
}}
"#
            ),
        );
        w(
            &mut files[2],
            format!(
                r#"
source "feedback_{u}" {{
  format    = "csv"
  path      = "data/feedback_{u}.csv"
  timestamp = "reported_at"

  schema {{
    prediction_id = "string"
    label         = "bool"
    reported_at   = "timestamp"
  }}
}}
"#
            ),
        );
        w(
            &mut files[3],
            format!(
                r#"
entity "account_{u}" {{
  join_keys   = ["account_id"]
  description = "A card account of shard {u}."
}}
"#
            ),
        );
        w(
            &mut files[4],
            format!(
                r#"
feature_view "activity_{u}" {{
  source   = source.txn_{u}
  entities = [entity.account_{u}]
  ttl      = "7d"

  feature "amount" {{
    column = "amount"
  }}

  feature "log_amount" {{
    expression = "log1p(amount)"
  }}

  feature "hour_of_day" {{
    column = "hour_of_day"
  }}
}}
"#
            ),
        );
        w(
            &mut files[5],
            format!(
                r#"
feature_view "spend_{u}" {{
  source   = source.txn_{u}
  entities = [entity.account_{u}]
  ttl      = "7d"

  feature "amount_sum_24h" {{
    column    = "amount"
    aggregate = "sum"
    window    = "24h"
  }}

  feature "amount_mean_7d" {{
    column    = "amount"
    aggregate = "mean"
    window    = "7d"
  }}

  feature "txn_count_1h" {{
    column    = "amount"
    aggregate = "count"
    window    = "1h"
  }}
}}
"#
            ),
        );
        w(
            &mut files[6],
            format!(
                r#"
training_job "fraud_{u}" {{
  features  = [feature_view.activity_{u}, feature_view.spend_{u}]
  label     = source.txn_{u}.columns.is_fraud
  algorithm = "xgboost"

  params = {{
    objective             = "binary:logistic"
    max_depth             = {depth}
    eta                   = 0.1
    rounds                = 200
    early_stopping_rounds = 20
    subsample             = 0.8
    seed                  = {u}
  }}

  validation {{
    split   = "time"
    holdout = 0.2
  }}

  gate {{
    metric = "auc"
    min    = 0.85
  }}

  resources {{
    cpu    = 4
    memory = "8Gi"
  }}
}}
"#,
                depth = 4 + u % 5
            ),
        );
        w(
            &mut files[7],
            format!(
                r#"
endpoint "fraud_{u}" {{
  model    = training_job.fraud_{u}
  replicas = {replicas}
  timeout  = "2s"

  rollout {{
    strategy = "canary"
    steps    = [10, 50, 100]
    interval = "10m"

    rollback {{
      metric = "error_rate"
      above  = 0.02
    }}
  }}

  resources {{
    cpu    = 1
    memory = "1Gi"
  }}
}}
"#,
                replicas = 1 + u % 3
            ),
        );
        w(
            &mut files[8],
            format!(
                r#"
monitor "fraud_{u}" {{
  endpoint    = endpoint.fraud_{u}
  window      = "1h"
  min_samples = 1000

  drift {{
    features  = ["amount_sum_24h", "txn_count_1h", "amount"]
    method    = "psi"
    threshold = var.drift_threshold
  }}

  drift {{
    features  = ["prediction"]
    method    = "ks"
    threshold = 0.2
  }}

  performance {{
    feedback = source.feedback_{u}
    metric   = "f1"
    min      = 0.6
  }}
}}
"#
            ),
        );
        w(
            &mut files[9],
            format!(
                r#"
retrain_policy "fraud_{u}" {{
  job      = training_job.fraud_{u}
  on       = [monitor.fraud_{u}]
  schedule = "0 3 * * *"
  cooldown = "6h"

  budget {{
    max_runs = 3
    per      = "24h"
  }}

  promote {{
    compare  = "auc"
    min_gain = 0.0
    via      = endpoint.fraud_{u}
  }}
}}
"#
            ),
        );
        count += 9;
        if u >= 2 {
            w(
                &mut files[9],
                format!(
                    r#"
output "fraud_{u}_url" {{
  value = endpoint.fraud_{u}.url
}}
"#
                ),
            );
            count += 1;
        }
    }
    assert_eq!(count, blocks);
    System { files: names.iter().map(|n| format!("{n}.mlops.hcl")).zip(files).collect(), blocks: count }
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("mlops-compile-scale-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Ours: the whole compiler, including the spec's JSON.
fn ours(dir: &Path) -> Duration {
    let t = Instant::now();
    let c = compile(dir, &Options::default());
    let json = c.spec.as_ref().map(|s| s.to_json());
    black_box((&c, json));
    let took = t.elapsed();
    drop(c);
    took
}

/// The peer: hcl-rs parsing the same files (read from disk, as the compiler does).
fn peer(paths: &[PathBuf]) -> Duration {
    let t = Instant::now();
    for p in paths {
        let text = std::fs::read_to_string(p).expect("read a generated file");
        black_box(hcl::parse(&text).expect("hcl-rs parses the generated file"));
    }
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

struct Row {
    blocks: usize,
    files: usize,
    bytes: usize,
    runs: usize,
    ours: Duration,
    peer: Duration,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument would be meaningless here.
    let mut rows = Vec::new();
    println!("compile_scale: mlops_compiler::compile + SystemSpec::to_json  vs  hcl-rs 0.20 hcl::parse (peer: a bare");
    println!("HCL parse, no evaluation or checking) of the same files, interleaved in the same run; medians.");
    for &size in &SIZES {
        let system = generate(size);
        let tmp = TempDir::new(&size.to_string());
        let mut paths = Vec::new();
        let mut bytes = 0;
        for (name, text) in &system.files {
            let path = tmp.0.join(name);
            std::fs::write(&path, text).expect("write a generated file");
            bytes += text.len();
            paths.push(path);
        }
        // The input must be valid, or we would be timing the error path.
        let c = compile(&tmp.0, &Options::default());
        assert!(
            !c.diagnostics.has_errors(),
            "the generated {size}-block system does not compile:\n{}",
            c.diagnostics.render(&c.sources, false)
        );
        let spec = c.spec.as_ref().expect("no errors, so a spec");
        let warnings = c.diagnostics.warning_count();
        let resources = spec.resources.len();
        drop(c);
        // Warm up both sides, then size the number of runs to the budget.
        let first = ours(&tmp.0) + peer(&paths);
        let runs = ((BUDGET.as_secs_f64() / first.as_secs_f64().max(1e-6)) as usize).clamp(MIN_RUNS, MAX_RUNS);
        let (mut a, mut b) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
        for _ in 0..runs {
            a.push(ours(&tmp.0));
            b.push(peer(&paths));
        }
        eprintln!("  {size} blocks: {resources} resources in the spec, {warnings} warnings, {runs} runs each");
        rows.push(Row { blocks: system.blocks, files: paths.len(), bytes, runs, ours: median(a), peer: median(b) });
    }

    let base_per_block = rows[0].ours.as_secs_f64() / rows[0].blocks as f64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:>7} {:>5} {:>10} {:>5} {:>10} {:>9} {:>13} {:>11} {:>12}",
        "blocks", "files", "bytes", "runs", "median ms", "µs/block", "per-block/100", "hcl-rs ms", "ours/hcl-rs"
    );
    for r in &rows {
        let per_block = r.ours.as_secs_f64() / r.blocks as f64;
        let _ = writeln!(
            out,
            "{:>7} {:>5} {:>10} {:>5} {:>10.2} {:>9.1} {:>12.2}x {:>11.2} {:>11.1}x",
            r.blocks,
            r.files,
            r.bytes,
            r.runs,
            ms(r.ours),
            per_block * 1e6,
            per_block / base_per_block,
            ms(r.peer),
            r.ours.as_secs_f64() / r.peer.as_secs_f64(),
        );
    }
    print!("{out}");
    let largest = rows.last().expect("at least one size");
    println!(
        "\ntarget: {} blocks compile in under {} s: {} ({:.0} ms)",
        largest.blocks,
        TARGET.as_secs(),
        if largest.ours < TARGET { "yes" } else { "NO" },
        ms(largest.ours)
    );
}
