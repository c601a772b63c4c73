//! The `mlops` binary, driven as a user would: exit codes, output, machine formats.

mod common;

use common::{mlops, stderr, stdout, TempDir};

const FRAUD: &str = "examples/fraud-detection";

const SMALL: &str = r#"
source "tx" {
  format    = "csv"
  path      = "tx.csv"
  timestamp = "ts"

  schema {
    account_id = "string"
    amount     = "float"
    is_fraud   = "bool"
  }
}

entity "account" {
  join_keys = ["account_id"]
}

feature_view "activity" {
  source   = source.tx
  entities = [entity.account]

  feature "amount" {
    column = "amount"
  }
}

training_job "fraud" {
  features = [feature_view.activity]
  label    = source.tx.columns.is_fraud

  gate {
    metric = "auc"
    min    = 0.8
  }
}
"#;

#[test]
fn validate_accepts_the_fraud_example() {
    let out = mlops().args(["validate", FRAUD]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("The configuration is valid: 8 resources"), "{}", stdout(&out));
}

#[test]
fn validate_reports_every_error_and_exits_1() {
    let dir = TempDir::new("validate-errors");
    let bad =
        SMALL.replace("\"float\"", "\"flaot\"").replace("source.tx.columns.is_fraud", "source.txn.columns.is_fraud");
    dir.write("main.mlops.hcl", &bad);
    let out = mlops().arg("validate").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("mlops::check::unknown_column") || err.contains("mlops::schema::invalid_choice"), "{err}");
    assert!(err.contains("column `amount` has unknown type `flaot`"), "{err}");
    assert!(err.contains("reference to undeclared source `txn`"), "{err}");
    assert!(err.contains("did you mean `source.tx`?"), "{err}");
    assert!(err.contains("validation failed: 2 errors"), "{err}");
}

#[test]
fn validate_json_is_machine_readable() {
    let dir = TempDir::new("validate-json");
    dir.write("main.mlops.hcl", &SMALL.replace("min    = 0.8", "min    = 80"));
    let out = mlops().arg("validate").arg(dir.path()).args(["--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON on stdout");
    assert_eq!(doc["valid"], false);
    assert_eq!(doc["error_count"], 1);
    let d = &doc["diagnostics"][0];
    assert_eq!(d["code"], "mlops::units::out_of_range");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["location"]["line"], 33);
    assert_eq!(d["location"]["column"], 14);
    assert!(d["help"].as_str().unwrap().contains("min = 0.85"));
}

#[test]
fn validate_json_on_a_valid_config() {
    let out = mlops().args(["validate", FRAUD, "--format", "json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(doc["valid"], true);
    assert_eq!(doc["diagnostics"], serde_json::json!([]));
}

#[test]
fn missing_directory_is_a_clear_error() {
    let out = mlops().args(["validate", "no/such/dir"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read configuration"), "{}", stderr(&out));
}

#[test]
fn compile_is_byte_for_byte_stable_and_written_atomically() {
    let dir = TempDir::new("compile");
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    for p in [&a, &b] {
        let out = mlops().args(["compile", FRAUD, "--out"]).arg(p).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let (ja, jb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(ja, jb);
    let spec: serde_json::Value = serde_json::from_slice(&ja).unwrap();
    assert_eq!(spec["format_version"], 1);
    assert_eq!(spec["system"]["name"], "fraud-detection");
    // Dependency order: every resource comes after what it depends on.
    let order: Vec<&str> =
        spec["resources"].as_array().unwrap().iter().map(|r| r["address"].as_str().unwrap()).collect();
    for r in spec["resources"].as_array().unwrap() {
        let me = order.iter().position(|a| *a == r["address"]).unwrap();
        for d in r["depends_on"].as_array().unwrap() {
            assert!(order.iter().position(|a| *a == d).unwrap() < me, "{d} after {}", r["address"]);
        }
    }
    // No temporary files left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().filter_map(|e| e.ok()).collect();
    assert_eq!(left.len(), 2);
}

#[test]
fn compile_refuses_an_invalid_config_and_writes_nothing() {
    let dir = TempDir::new("compile-bad");
    dir.write("main.mlops.hcl", &SMALL.replace("entities = [entity.account]", "entities = [entity.acount]"));
    let out_file = dir.path().join("spec.json");
    let out = mlops().arg("compile").arg(dir.path()).arg("--out").arg(&out_file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!out_file.exists());
    assert!(stderr(&out).contains("did you mean `entity.account`?"), "{}", stderr(&out));
}

#[test]
fn variables_from_flags_files_and_environment() {
    let dir = TempDir::new("vars");
    let var_file = dir.write("prod.vars.hcl", "drift_threshold = 0.3\nenvironment = \"prod\"\n");
    let spec = |out: std::process::Output| -> serde_json::Value {
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    let threshold = |s: &serde_json::Value| {
        s["resources"].as_array().unwrap().iter().find(|r| r["address"] == "monitor.fraud_health").unwrap()["config"]
            ["drift"][0]["threshold"]
            .clone()
    };
    let from_file = spec(mlops().args(["compile", FRAUD, "--var-file"]).arg(&var_file).output().unwrap());
    assert_eq!(threshold(&from_file), 0.3);
    // -var beats the file, the file beats the environment.
    let both = spec(
        mlops()
            .args(["compile", FRAUD, "--var", "drift_threshold=0.4", "--var-file"])
            .arg(&var_file)
            .env("MLOPS_VAR_drift_threshold", "0.1")
            .output()
            .unwrap(),
    );
    assert_eq!(threshold(&both), 0.4);
    let env = spec(mlops().args(["compile", FRAUD]).env("MLOPS_VAR_drift_threshold", "0.15").output().unwrap());
    assert_eq!(threshold(&env), 0.15);
}

#[test]
fn bad_variables_are_rejected() {
    let out = mlops().args(["validate", FRAUD, "--var", "drift_threshold=2"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("drift_threshold must be in (0, 1)."), "{}", stderr(&out));
    let out = mlops().args(["validate", FRAUD, "--var", "drift_treshold=0.3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("did you mean `drift_threshold`?"), "{}", stderr(&out));
    let out = mlops().args(["validate", FRAUD, "--var", "novalue"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("expected NAME=VALUE"), "{}", stderr(&out));
    let out = mlops().args(["validate", FRAUD, "--var", "drift_threshold=abc"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("expected number"), "{}", stderr(&out));
}

#[test]
fn fmt_check_and_rewrite() {
    let dir = TempDir::new("fmt");
    let messy = "source \"tx\" {\n    format = \"csv\"\n  path      =   \"tx.csv\"\n\n\n\n  schema {\n   a = \"float\"\n  }\n}\n";
    let file = dir.write("main.mlops.hcl", messy);
    let out = mlops().args(["fmt", "--check"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(stdout(&out).contains("main.mlops.hcl"));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), messy, "--check must not write");
    let out = mlops().arg("fmt").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let formatted = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        formatted,
        "source \"tx\" {\n  format = \"csv\"\n  path   = \"tx.csv\"\n\n  schema {\n    a = \"float\"\n  }\n}\n"
    );
    let out = mlops().args(["fmt", "--check"]).arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn fmt_refuses_invalid_syntax_without_touching_the_file() {
    let dir = TempDir::new("fmt-bad");
    let file = dir.write("main.mlops.hcl", "source \"tx\" {\n  format = \n");
    let out = mlops().arg("fmt").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("syntax error"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "source \"tx\" {\n  format = \n");
}

#[test]
fn every_shipped_configuration_is_formatted() {
    for dir in ["examples", "modules"] {
        let out = mlops().args(["fmt", "--check", "--recursive", dir]).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "unformatted files in {dir}:\n{}", stdout(&out));
    }
}

#[test]
fn graph_as_dot_and_text() {
    let out = mlops().args(["graph", FRAUD]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let dot = stdout(&out);
    assert!(dot.starts_with("digraph mlops {"));
    assert!(dot.contains("\"source.transactions\" -> \"feature_view.account_activity\";"), "{dot}");
    assert!(dot.contains("\"module.fraud.endpoint.api\" -> \"monitor.fraud_health\";"), "{dot}");
    let out = mlops().args(["graph", FRAUD, "--format", "text"]).output().unwrap();
    let text = stdout(&out);
    let pos = |s: &str| text.find(&format!("{s}\n")).unwrap_or_else(|| panic!("{s} missing in\n{text}"));
    assert!(pos("source.transactions") < pos("feature_view.account_activity"));
    assert!(pos("module.fraud.training_job.model") < pos("module.fraud.endpoint.api"));
}

#[test]
fn graph_reports_cycles() {
    let dir = TempDir::new("graph-cycle");
    dir.write(
        "main.mlops.hcl",
        &SMALL.replace("entity \"account\" {", "entity \"account\" {\n  depends_on = [training_job.fraud]"),
    );
    let out = mlops().arg("graph").arg(dir.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("mlops::graph::cycle"), "{err}");
    assert!(err.contains("entity.account → feature_view.activity → training_job.fraud"), "{err}");
}

#[test]
fn schema_prints_json_schema_and_markdown() {
    let out = mlops().arg("schema").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let s: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    assert!(s["properties"]["retrain_policy"].is_object());
    let out = mlops().args(["schema", "--format", "markdown"]).output().unwrap();
    assert_eq!(stdout(&out), std::fs::read_to_string(common::root().join("docs/language.md")).unwrap());
}
