//! `mlops apply`, `destroy`, `refresh`, `output` and `state rm` through the binary, on the fraud
//! example with its real data: real feature materialisation, real XGBoost training, a real
//! local state, a real serving agent. (Crash safety and lock contention have their own files;
//! serving has `serve_cli.rs`.)

mod common;

use common::{fraud_dir, fraud_tree, mlops, stderr, stdout};
use serde_json::Value;
use std::path::Path;
use std::process::Output;

const JOB: &str = "module.fraud.training_job.model";
const VIEW: &str = "feature_view.account_activity";
const ENDPOINT: &str = "module.fraud.endpoint.api";
const APPLIED: [&str; 8] = [
    "entity.account",
    VIEW,
    ENDPOINT,
    JOB,
    "monitor.fraud_health",
    "retrain_policy.fraud_auto",
    "source.chargebacks",
    "source.transactions",
];
/// A converged plan has no summary line.
const CONVERGED: &str = "(no summary)";

#[track_caller]
fn run(dir: &Path, args: &[&str]) -> Output {
    let out = mlops().args(args).arg(dir).output().unwrap();
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    out
}

#[track_caller]
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args);
    assert_eq!(out.status.code(), Some(0), "mlops {args:?}\n{}\n{}", stdout(&out), stderr(&out));
    stdout(&out)
}

#[track_caller]
fn fails(dir: &Path, args: &[&str]) -> (String, String) {
    let out = run(dir, args);
    assert_eq!(out.status.code(), Some(1), "mlops {args:?}\n{}\n{}", stdout(&out), stderr(&out));
    (stdout(&out), stderr(&out))
}

fn state(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join(".mlops/state/state.json")).unwrap()).unwrap()
}

fn produced(dir: &Path, address: &str) -> Value {
    state(dir)["resources"][address]["produced"].clone()
}

fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from:?} not in {file}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// The registry's record of a version.
fn meta(dir: &Path, version: u64) -> Value {
    let path = dir.join(format!(".mlops/data/registry/models/{JOB}/{version}/meta.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn plan_summary(dir: &Path) -> String {
    let out = run(dir, &["plan"]);
    stdout(&out).lines().find(|l| l.starts_with("Plan:")).unwrap_or("(no summary)").to_string()
}

#[test]
fn apply_runs_the_fraud_example_end_to_end_and_converges() {
    let tree = fraud_tree("apply-e2e");
    let dir = fraud_dir(&tree);
    let text = ok(&dir, &["apply", "--auto-approve"]);
    assert!(text.contains("source.transactions: Creation complete after"), "{text}");
    assert!(text.contains("rows=19904"), "{text}");
    assert!(text.contains(&format!("{JOB}: Creation complete after")), "{text}");
    assert!(text.contains("Apply complete! Resources: 8 created, 0 updated, 0 replaced, 0 destroyed"), "{text}");
    assert!(text.contains(&format!("{ENDPOINT}: Creation complete after")), "{text}");
    assert!(text.contains("monitor.fraud_health: Creation complete"), "{text}");
    assert!(text.contains("retrain_policy.fraud_auto: Creation complete"), "{text}");

    let listed = ok(&dir, &["state", "list"]);
    assert_eq!(listed.lines().collect::<Vec<_>>(), APPLIED);
    let job = produced(&dir, JOB);
    assert_eq!(job["version"], 1);
    assert!(job["metrics"]["auc"].as_f64().unwrap() > 0.85, "{job}");
    assert!(Path::new(job["model_uri"].as_str().unwrap()).is_file(), "{job}");
    assert_eq!(produced(&dir, "source.transactions")["rows"], 19904);
    assert!(produced(&dir, VIEW)["watermark"].as_str().unwrap().starts_with("2026-03-01T"), "{}", produced(&dir, VIEW));
    assert!(ok(&dir, &["models"]).contains("production"));

    // Nothing left to do; a second apply changes nothing.
    let out = run(&dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("No changes."), "{}", stdout(&out));
    let serial = state(&dir)["serial"].clone();
    let again = ok(&dir, &["apply", "--auto-approve"]);
    assert!(!again.contains("Creating...") && !again.contains("Replacing..."), "{again}");
    assert!(again.contains("Resources: 0 created, 0 updated, 0 replaced, 0 destroyed"), "{again}");
    assert_eq!(state(&dir)["serial"], serial, "a no-op apply writes nothing");

    // The output refers to the endpoint, deployed on the serving agent.
    let url = format!("http://{}/v1/endpoints/module.fraud.api", common::fraud_address(&tree));
    assert!(ok(&dir, &["output"]).contains(&format!("endpoint_url = \"{url}\"")));
    let (_, err) = fails(&dir, &["output", "endpoint_ur"]);
    assert!(err.contains("did you mean `endpoint_url`"), "{err}");
}

#[test]
fn a_param_change_retrains_and_a_failed_gate_keeps_production() {
    let tree = fraud_tree("apply-retrain");
    let dir = fraud_dir(&tree);
    ok(&dir, &["apply", "--auto-approve"]);
    let v1 = meta(&dir, 1);

    edit(&dir, "model.mlops.hcl", "max_depth = 6", "max_depth = 4");
    let plan = ok(&dir, &["plan"]);
    assert!(plan.contains(&format!("-/+ {JOB}")), "{plan}");
    assert!(plan.contains("max_depth 6 → 4"), "{plan}");
    let text = ok(&dir, &["apply", "--auto-approve"]);
    assert!(text.contains(&format!("{JOB}: Replacement complete after")), "{text}");
    assert!(text.contains("version=2"), "{text}");
    assert_eq!(produced(&dir, JOB)["version"], 2);
    assert_eq!(meta(&dir, 2)["status"], "production");
    assert_eq!(meta(&dir, 1)["status"], "archived");
    assert_ne!(meta(&dir, 2)["model_sha256"], v1["model_sha256"]);
    assert!(!text.contains(&format!("{VIEW}: ")), "features are untouched by a param change: {text}");

    // A gate no model can pass: apply fails on the job, says why, and production stays.
    edit(&dir, "model.mlops.hcl", "min_auc   = 0.85", "min_auc   = 0.9999");
    let (out, err) = fails(&dir, &["apply", "--auto-approve"]);
    // The gate is all that changed: the serving version is judged again, nothing is retrained.
    assert!(err.contains(&format!("`{JOB}` version 2 failed its gate (auc")), "{err}");
    assert!(err.contains("below min 0.9999"), "{err}");
    assert!(out.contains("Apply failed."), "{out}");
    assert_eq!(produced(&dir, JOB)["version"], 2, "the state keeps the model that is serving");
    assert_eq!(meta(&dir, 2)["status"], "production");
    assert!(!dir.join(format!(".mlops/data/registry/models/{JOB}/3")).exists());
    // Still planned: the next plan shows the job's change again.
    assert!(ok(&dir, &["plan"]).contains(&format!("{JOB} will be updated in place")));
    // Lowering the gate again makes the plan and the world agree without training.
    edit(&dir, "model.mlops.hcl", "min_auc   = 0.9999", "min_auc   = 0.8");
    let text = ok(&dir, &["apply", "--auto-approve"]);
    assert!(text.contains(&format!("{JOB}: Modifications complete")) && text.contains("version=2"), "{text}");
    assert_eq!(plan_summary(&dir), CONVERGED);
}

#[test]
fn refresh_finds_a_lost_model_and_new_data() {
    let tree = fraud_tree("apply-refresh");
    let dir = fraud_dir(&tree);
    ok(&dir, &["apply", "--auto-approve"]);
    assert!(ok(&dir, &["plan", "--refresh-only"]).contains("No changes outside mlops"));

    let v1 = meta(&dir, 1);
    std::fs::remove_file(produced(&dir, JOB)["model_uri"].as_str().unwrap()).unwrap();
    let serial = state(&dir)["serial"].as_u64().unwrap();
    let out = run(&dir, &["plan", "--refresh-only", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).contains(&format!("{JOB}: changed outside mlops: the model file of version 1 is missing")));
    assert_eq!(state(&dir)["serial"].as_u64().unwrap(), serial, "plan never writes");
    assert!(state(&dir)["resources"][JOB].get("drifted").is_none(), "plan records no drift");

    let text = ok(&dir, &["refresh"]);
    assert!(text.contains("Recorded 1 change(s)"), "{text}");
    assert_eq!(state(&dir)["serial"].as_u64().unwrap(), serial + 1);
    assert_eq!(state(&dir)["resources"][JOB]["drifted"]["replace"], true);
    let plan = ok(&dir, &["plan", "--refresh=false"]);
    assert!(plan.contains(&format!("-/+ {JOB}")) && plan.contains("the model file of version 1 is missing"), "{plan}");

    let text = ok(&dir, &["apply", "--auto-approve"]);
    assert!(text.contains(&format!("{JOB}: Replacement complete")), "{text}");
    assert_eq!(produced(&dir, JOB)["version"], 2);
    assert!(state(&dir)["resources"][JOB].get("drifted").is_none());
    // Training is deterministic: the lost model is rebuilt byte for byte.
    assert_eq!(meta(&dir, 2)["model_sha256"], v1["model_sha256"]);
    assert_eq!(plan_summary(&dir), CONVERGED);

    // New rows in a source: the view is rematerialised, the model is not retrained.
    let csv = dir.join("data/transactions.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    let last = text.lines().last().unwrap().to_string();
    let fields: Vec<&str> = last.split(',').collect();
    // transaction_id,account_id,amount,merchant,hour_of_day,is_fraud,event_time
    text.push_str(&format!("txn_new,{},2026-03-02T08:00:00Z\n", fields[1..6].join(",")));
    std::fs::write(&csv, text).unwrap();
    let plan = ok(&dir, &["plan"]);
    assert!(plan.contains(&format!("~ {VIEW}")), "{plan}");
    assert!(!plan.contains(&format!("-/+ {JOB}")), "new data alone does not retrain: {plan}");
    let text = ok(&dir, &["apply", "--auto-approve"]);
    assert!(text.contains("rows=19905"), "{text}");
    assert!(produced(&dir, VIEW)["watermark"].as_str().unwrap().starts_with("2026-03-02T08:00:00"), "{text}");
    assert_eq!(produced(&dir, JOB)["version"], 2);
    assert_eq!(plan_summary(&dir), CONVERGED);
}

#[test]
fn saved_plans_are_applied_as_reviewed_or_refused_when_stale() {
    let tree = fraud_tree("apply-saved");
    let dir = fraud_dir(&tree);
    let saved = tree.path().join("first.plan.json");
    let saved = saved.to_str().unwrap();
    ok(&dir, &["plan", "--out", saved]);
    // No prompt: the saved plan is what was reviewed.
    let text = ok(&dir, &["apply", saved]);
    assert!(text.contains("Apply complete! Resources: 8 created"), "{text}");

    // The configuration moved since the plan was saved.
    let second = tree.path().join("second.plan.json");
    let second = second.to_str().unwrap();
    edit(&dir, "model.mlops.hcl", "max_depth = 6", "max_depth = 5");
    ok(&dir, &["plan", "--out", second]);
    edit(&dir, "model.mlops.hcl", "max_depth = 5", "max_depth = 7");
    let (_, err) = fails(&dir, &["apply", second]);
    assert!(err.contains("the configuration changed since the plan was made"), "{err}");

    // The state moved since the plan was saved.
    ok(&dir, &["plan", "--out", second]);
    ok(&dir, &["apply", "--auto-approve"]);
    let (_, err) = fails(&dir, &["apply", second]);
    assert!(err.contains("the state moved since the plan was made"), "{err}");
    assert_eq!(produced(&dir, JOB)["version"], 2, "the refused plan trained nothing");

    // Not a plan at all.
    let junk = tree.write("junk.json", "{\"format_version\": 99}");
    let (_, err) = fails(&dir, &["apply", junk.to_str().unwrap()]);
    assert!(err.contains("is not a saved plan") && err.contains("format version 99"), "{err}");
}

#[test]
fn apply_asks_first_and_cancelling_changes_nothing() {
    let tree = fraud_tree("apply-confirm");
    let dir = fraud_dir(&tree);
    let answer = |input: &str| mlops().arg("apply").arg(&dir).write_stdin(input).output().unwrap();
    let out = answer("no\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("Do you want to perform these actions?"), "{}", stdout(&out));
    assert!(stdout(&out).contains("Apply cancelled."), "{}", stdout(&out));
    assert!(ok(&dir, &["state", "list"]).contains("No state yet"));
    assert!(!dir.join(".mlops/data/registry").exists(), "nothing was trained");

    let out = answer("");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("run with --auto-approve"), "{}", stderr(&out));

    let out = answer("yes\n");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("Apply complete!"));
}

#[test]
fn a_failing_source_stops_its_dependents_and_the_next_apply_converges() {
    let tree = fraud_tree("apply-fail");
    let dir = fraud_dir(&tree);
    let csv = dir.join("data/transactions.csv");
    let good = std::fs::read_to_string(&csv).unwrap();
    std::fs::write(&csv, format!("{good}oops\n")).unwrap();
    let (out, err) = fails(&dir, &["apply", "--auto-approve"]);
    assert!(err.contains("data/transactions.csv line 19906: malformed CSV"), "{err}");
    assert!(out.contains(&format!("{VIEW}: not applied: depends on source.transactions, which failed")), "{out}");
    assert!(out.contains(&format!("{JOB}: not applied: depends on {VIEW}, which was not applied")), "{out}");
    // What succeeded is recorded; what failed is not.
    let listed = ok(&dir, &["state", "list"]);
    assert_eq!(listed.lines().collect::<Vec<_>>(), ["entity.account", "source.chargebacks"]);
    assert!(plan_summary(&dir).starts_with("Plan: 6 to create"), "{}", plan_summary(&dir));

    std::fs::write(&csv, good).unwrap();
    let text = ok(&dir, &["apply", "--auto-approve"]);
    assert!(text.contains("Resources: 6 created"), "{text}");
    assert_eq!(plan_summary(&dir), CONVERGED);
}

#[test]
fn destroy_removes_what_apply_made_but_never_the_users_data() {
    let tree = fraud_tree("apply-destroy");
    let dir = fraud_dir(&tree);
    let (_, err) = fails(&dir, &["output"]);
    assert!(err.contains("no state yet"), "{err}");
    ok(&dir, &["apply", "--auto-approve"]);
    let offline = dir.join(".mlops/data/features/offline").join(VIEW);
    assert!(offline.is_dir());

    let plan = ok(&dir, &["plan", "--destroy"]);
    assert!(plan.contains("Plan: 0 to create, 0 to update, 0 to replace, 8 to destroy."), "{plan}");
    let text = ok(&dir, &["destroy", "--auto-approve"]);
    assert!(text.contains("Resources: 0 created, 0 updated, 0 replaced, 8 destroyed"), "{text}");
    // Dependents go first.
    let order: Vec<&str> = text.lines().filter_map(|l| l.strip_suffix(": Destroying...")).collect();
    let pos = |a: &str| order.iter().position(|o| *o == a).unwrap();
    assert!(pos(JOB) < pos(VIEW) && pos(VIEW) < pos("source.transactions"), "{order:?}");
    assert_eq!(ok(&dir, &["state", "list"]), "");
    assert!(!offline.exists(), "the feature store of the view is removed");
    assert_eq!(meta(&dir, 1)["status"], "archived", "model versions are archived, kept for audit");
    assert!(dir.join("data/transactions.csv").is_file(), "the user's data is never touched");
    assert!(plan_summary(&dir).starts_with("Plan: 8 to create"));
    assert!(ok(&dir, &["destroy", "--auto-approve"]).contains("No changes."), "destroying nothing is a no-op");
}

#[test]
fn state_rm_forgets_a_resource_without_touching_it() {
    let tree = fraud_tree("apply-rm");
    let dir = fraud_dir(&tree);
    let (_, err) = fails(&dir, &["state", "rm", "source.transactions"]);
    assert!(err.contains("no state yet"), "{err}");
    ok(&dir, &["apply", "--auto-approve"]);
    let (_, err) = fails(&dir, &["state", "rm", "source.transaction"]);
    assert!(err.contains("`source.transaction` is not in the state (did you mean `source.transactions`?)"), "{err}");
    assert_eq!(ok(&dir, &["state", "list"]).lines().count(), 8, "a refused rm removes nothing");

    let text = ok(&dir, &["state", "rm", "source.chargebacks", "entity.account"]);
    assert!(text.contains("Removed source.chargebacks from the state"), "{text}");
    assert_eq!(ok(&dir, &["state", "list"]).lines().count(), 6);
    assert!(plan_summary(&dir).starts_with("Plan: 2 to create"), "{}", plan_summary(&dir));
    // Adopting them again is an apply away; the view and model are untouched.
    let text = ok(&dir, &["apply", "--auto-approve"]);
    assert!(text.contains("Resources: 2 created, 0 updated, 0 replaced"), "{text}");
    assert_eq!(produced(&dir, JOB)["version"], 1);
}

#[test]
fn an_interrupt_finishes_what_is_running_records_it_and_releases_the_lock() {
    use std::io::BufRead;
    let tree = fraud_tree("apply-int");
    let dir = fraud_dir(&tree);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mlops"))
        .args(["apply", "--auto-approve", "--parallelism", "1"])
        .arg(&dir)
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        seen.push(line.clone());
        if line == format!("{VIEW}: Creating...") {
            let pid = child.id().to_string();
            assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
            break;
        }
    }
    seen.extend(lines.map(|l| l.unwrap()));
    let status = child.wait().unwrap();
    let text = seen.join("\n");
    assert_eq!(status.code(), Some(1), "{text}");
    assert!(text.contains(&format!("{VIEW}: Creation complete")), "the running resource finishes: {text}");
    assert!(text.contains(&format!("{JOB}: not applied: not started: apply was interrupted")), "{text}");
    assert!(text.contains("Apply interrupted."), "{text}");
    // Recorded, and the lock released: the next apply needs no force-unlock and does the rest.
    let listed = ok(&dir, &["state", "list"]);
    assert!(listed.contains(VIEW) && !listed.contains(JOB), "{listed}");
    let text = ok(&dir, &["apply", "--auto-approve"]);
    assert!(text.contains("Resources: 4 created"), "{text}");
}
