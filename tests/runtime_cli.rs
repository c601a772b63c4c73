//! `mlops materialize`, `mlops train` and `mlops models` on a small generated system, driven
//! through the binary: real CSV, real feature store, real XGBoost, real registry.

mod common;

use common::{mlops, stderr, stdout, TempDir};

const CONFIG: &str = r#"
mlops {
  name = "tiny"
}

source "events" {
  format    = "csv"
  path      = "data/events.csv"
  timestamp = "ts"

  schema {
    user    = "string"
    amount  = "float"
    label   = "bool"
    ts      = "timestamp"
  }
}

entity "user" {
  join_keys = ["user"]
}

feature_view "activity" {
  source   = source.events
  entities = [entity.user]
  ttl      = "30d"

  feature "amount" {
    column = "amount"
  }

  feature "amount_sum_7d" {
    column    = "amount"
    aggregate = "sum"
    window    = "7d"
  }
}

training_job "model" {
  features = [feature_view.activity]
  label    = source.events.columns.label

  params = {
    objective = "binary:logistic"
    max_depth = 3
    rounds    = 30
    seed      = 1
  }

  validation {
    split   = "time"
    holdout = 0.25
  }

  gate {
    metric = "auc"
    min    = var.min_auc
  }
}

variable "min_auc" {
  type    = number
  default = 0.7
}
"#;

/// 2,000 rows: the label is mostly "amount > 50", with a little noise, one row a day per user.
fn events_csv() -> String {
    let mut s = String::from("user,amount,label,ts\n");
    let mut state: u64 = 42;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    for i in 0..2000 {
        let user = i % 50;
        let day = i / 50;
        let amount = next() * 100.0;
        let label = (amount > 50.0) ^ (next() < 0.05);
        s.push_str(&format!("u{user},{amount:.2},{label},2026-01-{:02}T{:02}:00:00Z\n", 1 + day % 28, user % 24));
    }
    s
}

fn system() -> TempDir {
    let dir = TempDir::new("runtime-cli");
    dir.write("main.mlops.hcl", CONFIG);
    dir.write("data/events.csv", &events_csv());
    dir
}

#[test]
fn materialize_train_and_list_models() {
    let dir = system();
    let out = mlops().arg("materialize").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("feature_view.activity: 2000 rows read, 2000 new"), "{}", stdout(&out));
    // A second run finds nothing new.
    let out = mlops().arg("materialize").arg(dir.path()).output().unwrap();
    assert!(stdout(&out).contains("0 new"), "{}", stdout(&out));

    let out = mlops().arg("train").arg("training_job.model").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("training_job.model version 1"), "{text}");
    assert!(text.contains("gate auc ≥ 0.7"), "{text}");
    assert!(text.contains("status: production (promoted)"), "{text}");

    // Training again on the same data and seed: a new version, the same model bytes.
    let out = mlops().arg("train").arg(dir.path()).arg("training_job.model").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("version 2"), "{}", stdout(&out));
    assert!(stdout(&out).contains("status: candidate"), "{}", stdout(&out));

    let out = mlops().arg("models").arg(dir.path()).args(["--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let versions: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let versions = versions.as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["model_sha256"], versions[1]["model_sha256"], "training is deterministic");
    assert_eq!(versions[0]["data_hash"], versions[1]["data_hash"]);
    let auc = versions[0]["metrics"]["auc"].as_f64().unwrap();
    assert!(auc > 0.8, "auc {auc}");
    assert_eq!(versions[0]["signature"]["features"][1]["name"], "amount_sum_7d");

    let out = mlops().args(["models", "show", "training_job.model@1"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("\"status\": \"production\""), "{}", stdout(&out));
    let table = stdout(&mlops().arg("models").arg(dir.path()).output().unwrap());
    assert!(table.contains("production") && table.contains("candidate"), "{table}");
}

#[test]
fn a_model_below_its_gate_is_never_promoted() {
    let dir = system();
    let out = mlops()
        .arg("train")
        .arg(dir.path())
        .arg("training_job.model")
        .args(["--var", "min_auc=0.999"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}\n{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("FAILED"), "{}", stdout(&out));
    assert!(stdout(&out).contains("never promoted"), "{}", stdout(&out));
}

#[test]
fn bad_addresses_and_bad_data_are_clear_errors() {
    let dir = system();
    let out = mlops().arg("train").arg(dir.path()).arg("training_job.modle").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("did you mean `training_job.model`?"), "{}", stderr(&out));
    let out = mlops().arg("train").arg(dir.path()).arg("feature_view.activity").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is a feature_view, not a training_job"), "{}", stderr(&out));

    let mut csv = events_csv();
    csv.push_str("u1,lots,true,2026-01-02T00:00:00Z\n");
    dir.write("data/events.csv", &csv);
    let out = mlops().arg("materialize").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("source.events"), "{err}");
    assert!(err.contains("2002"), "names the line: {err}");
    assert!(err.contains("amount"), "names the column: {err}");
}
