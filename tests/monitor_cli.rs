//! The closed loop end to end on the fraud example: apply, traffic from the training
//! distribution (no alert), then a shift with new data — drift detected, retrain, gate and
//! comparison, canary, promotion — all asserted from `mlops events`, `mlops status` and the
//! endpoint's answers; and a retrain that does not beat production is not promoted.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

#[track_caller]
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = mlops().args(args).arg(dir).output().unwrap();
    assert!(out.status.success(), "mlops {args:?} failed:\n{}{}", stdout(&out), stderr(&out));
    stdout(&out)
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn events(dir: &Path) -> Vec<Value> {
    ok(dir, &["events", "--json"]).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn kinds(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["kind"].as_str().unwrap().to_string()).collect()
}

fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    cond()
}

/// Short windows and steps so the loop turns in seconds: 3 s windows judged on 40 values,
/// a 1 s canary, no schedule.
fn fast_loop(tree: &TempDir, min_gain: &str) {
    let model = fraud_dir(tree).join("model.mlops.hcl");
    edit(&model, "window      = \"1h\"", "window      = \"3s\"");
    edit(&model, "min_samples = 500", "min_samples = 40");
    // The test's traffic draws each feature from its own training marginal, which breaks the
    // joint distribution the scores depend on: the score check would see that, not drift.
    edit(&model, "  drift {\n    features  = [\"prediction\"]\n    method    = \"ks\"\n    threshold = 0.2\n  }\n", "");
    edit(&model, "  schedule = \"0 3 * * *\"\n", "");
    edit(&model, "cooldown = \"6h\"", "cooldown = \"3s\"");
    edit(&model, "min_gain = 0.0", &format!("min_gain = {min_gain}"));
    let module = tree.path().join("modules/tabular-classifier/main.mlops.hcl");
    edit(&module, "interval = \"10m\"", "interval = \"1s\"");
}

/// Feature values drawn from the training reference of `version` (each feature's marginal).
struct Sampler {
    columns: Vec<(String, Vec<f64>)>,
    state: u64,
}

impl Sampler {
    fn new(data_dir: &Path, version: u32) -> Sampler {
        let registry = data_dir.join("registry/models");
        let job_dir = std::fs::read_dir(&registry).unwrap().next().unwrap().unwrap().path();
        let text = std::fs::read_to_string(job_dir.join(version.to_string()).join("reference.json")).unwrap();
        let r: Value = serde_json::from_str(&text).unwrap();
        let mut columns = Vec::new();
        for (name, f) in r["features"].as_object().unwrap() {
            if name == "prediction" {
                continue;
            }
            let values: Vec<f64> =
                f["data"]["values"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            columns.push((name.clone(), values));
        }
        assert!(columns.len() >= 5, "{columns:?}");
        Sampler { columns, state: 0x9e37_79b9_7f4a_7c15 }
    }

    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    /// One request body; amounts multiplied by `shift`.
    fn row(&mut self, shift: f64) -> String {
        let mut fields = Vec::new();
        for i in 0..self.columns.len() {
            let pick = (self.next() % self.columns[i].1.len() as u64) as usize;
            let (name, values) = &self.columns[i];
            let mut v = values[pick];
            if name.contains("amount") {
                v *= shift;
            }
            fields.push(format!("\"{name}\": {v}"));
        }
        format!("{{\"row\": {{{}}}}}", fields.join(", "))
    }
}

/// Sends requests on one keep-alive connection until stopped; counts answers by version.
struct Traffic {
    stop: Arc<AtomicBool>,
    shift: Arc<Mutex<f64>>,
    answered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    last_version: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Traffic {
    fn start(address: &str, mut sampler: Sampler) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let shift = Arc::new(Mutex::new(1.0));
        let answered = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let last_version = Arc::new(AtomicU64::new(0));
        let (s, sh, a, f, lv) = (stop.clone(), shift.clone(), answered.clone(), failed.clone(), last_version.clone());
        let address = address.to_string();
        let thread = std::thread::spawn(move || {
            let stream = TcpStream::connect(&address).unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut writer = stream;
            while !s.load(Ordering::Relaxed) {
                let body = sampler.row(*sh.lock().unwrap());
                let req = format!(
                    "POST /v1/endpoints/module.fraud.api/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                writer.write_all(req.as_bytes()).unwrap();
                let mut status = String::new();
                reader.read_line(&mut status).unwrap();
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    if h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut buf = vec![0u8; len];
                std::io::Read::read_exact(&mut reader, &mut buf).unwrap();
                if status.contains(" 200 ") {
                    a.fetch_add(1, Ordering::Relaxed);
                    let v: Value = serde_json::from_slice(&buf).unwrap();
                    lv.store(v["model_version"].as_u64().unwrap(), Ordering::Relaxed);
                } else {
                    f.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Traffic { stop, shift, answered, failed, last_version, thread: Some(thread) }
    }

    fn shift(&self, by: f64) {
        *self.shift.lock().unwrap() = by;
    }

    fn finish(mut self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        (self.answered.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }
}

/// New transactions after the training data: the last 5,000 again, 60 days later, amounts ×3
/// (the world changed: the source has new rows, in a new range).
fn append_shifted_data(dir: &Path) {
    let csv = dir.join("data/transactions.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = text.clone();
    for (i, line) in lines[lines.len() - 5000..].iter().enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let amount: f64 = f[2].parse().unwrap();
        let time =
            f[6].replacen("2026-02", "2026-04", 1).replacen("2026-03", "2026-05", 1).replacen("2026-01", "2026-03", 1);
        out.push_str(&format!("txn_new_{i},{},{:.2},{},{},{},{}\n", f[1], amount * 3.0, f[3], f[4], f[5], time));
    }
    std::fs::write(&csv, out).unwrap();
}

#[test]
fn drift_triggers_a_retrain_that_rolls_out_and_is_promoted() {
    let tree = fraud_tree("loop-promote");
    let dir = fraud_dir(&tree);
    fast_loop(&tree, "0.0");
    // A check on the agent's own metrics page, read through prometheus-parse each window.
    let scrape = format!(
        "  prometheus \"served\" {{\n    scrape = \"http://{}/metrics\"\n    query  = \"mlops_predictions_total{{endpoint=\\\"module.fraud.api\\\"}}\"\n    above  = 1000000000\n  }}\n\n  performance {{",
        fraud_address(&tree)
    );
    edit(&dir.join("model.mlops.hcl"), "  performance {", &scrape);
    let applied = ok(&dir, &["apply", "--auto-approve"]);
    assert!(applied.contains("monitor.fraud_health: Creation complete"), "{applied}");
    assert!(applied.contains("retrain_policy.fraud_auto: Creation complete"), "{applied}");
    let data = dir.join(".mlops/data");
    let traffic = Traffic::start(&fraud_address(&tree), Sampler::new(&data, 1));

    // Traffic like the training data: windows judged ok, nothing retrains.
    assert!(
        wait_until(30, || kinds(&events(&dir)).iter().filter(|k| *k == "monitor_ok").count() >= 2),
        "{:?}",
        events(&dir)
    );
    let calm = events(&dir);
    assert!(!kinds(&calm).iter().any(|k| k == "breach" || k == "retrain_started"), "{calm:#?}");
    let status = ok(&dir, &["status"]);
    assert!(status.contains("monitor.fraud_health  (watches module.fraud.api, version 1)  ok"), "{status}");
    assert!(status.contains("psi(amount)"), "{status}");
    assert!(
        status.lines().any(|l| l.contains("prometheus") && l.contains("scrape(served)") && l.contains(" ok")),
        "{status}"
    );

    // The world shifts: new rows in the source, amounts ×3 in the traffic.
    append_shifted_data(&dir);
    traffic.shift(3.0);
    let promoted = wait_until(120, || kinds(&events(&dir)).iter().any(|k| k == "promoted"));
    let all = events(&dir);
    let ks = kinds(&all);
    assert!(promoted, "{all:#?}");
    let at = |k: &str| ks.iter().position(|x| x == k).unwrap_or_else(|| panic!("no {k}: {all:#?}"));
    assert!(at("breach") < at("retrain_started") && at("retrain_started") < at("gate_result"), "{ks:?}");
    assert!(at("gate_result") < at("rollout_started") && at("rollout_started") < at("promoted"), "{ks:?}");
    let breach = &all[at("breach")];
    assert!(breach["message"].as_str().unwrap().contains("psi(amount"), "{breach}");
    let gate = &all[at("gate_result")];
    assert_eq!(gate["details"]["accepted"], true, "{gate}");
    assert_eq!(gate["details"]["candidate"]["version"], 2, "{gate}");
    assert!(gate["details"]["comparison"]["rows"].as_u64().unwrap() > 1000, "{gate}");
    assert!(wait_until(10, || traffic.last_version.load(Ordering::Relaxed) == 2));
    // The loop's decisions and the monitor's values are metrics too.
    let out = std::process::Command::new("curl")
        .arg("-s")
        .arg(format!("http://{}/metrics", fraud_address(&tree)))
        .output()
        .unwrap();
    let metrics = String::from_utf8(out.stdout).unwrap();
    for series in [
        r#"mlops_loop_events_total{kind="breach",subject="monitor.fraud_health"}"#,
        r#"mlops_loop_events_total{kind="promoted",subject="retrain_policy.fraud_auto"} 1"#,
        r#"mlops_monitor_value{monitor="monitor.fraud_health",check="drift",name="psi(amount)"}"#,
        r#"mlops_monitor_breached{monitor="monitor.fraud_health"}"#,
    ] {
        assert!(metrics.contains(series), "{series} not in\n{metrics}");
    }
    // The report people look at: the shifted window against the training reference.
    let page = tree.path().join("report.html");
    let wrote =
        ok(&dir, &["drift", "report", "monitor.fraud_health", "--out", page.to_str().unwrap(), "--window", "20s"]);
    assert!(wrote.contains("breached"), "{wrote}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(html.matches("<svg").count(), 3, "one plot per drift feature");
    assert!(html.contains("BREACHED") && html.contains("psi") && html.contains("amount_sum_24h"));
    let out = mlops().args(["drift", "report", "monitor.nope", "--out", "x.html"]).arg(&dir).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("`monitor.nope` is not a monitor of this configuration"), "{}", stderr(&out));
    let (answered, failed) = traffic.finish();
    assert!(answered > 100, "{answered}");
    assert_eq!(failed, 0);

    // The state takes over what the policy did: no change to plan.
    let models = ok(&dir, &["models"]);
    assert!(models.lines().any(|l| l.contains(" 2 ") && l.contains("production")), "{models}");
    let plan = ok(&dir, &["plan"]);
    assert!(plan.contains("module.fraud.training_job.model: version 2 promoted by the runtime (was 1)"), "{plan}");
    assert!(plan.contains("module.fraud.endpoint.api: serving version 2 deployed by a retrain policy"), "{plan}");
    // Only the source's new rows are news to the state (the retrain read them; apply records them).
    assert!(plan.contains("Plan: 0 to create, 1 to update, 0 to replace, 0 to destroy."), "{plan}");
    assert!(plan.contains("~ source.transactions"), "{plan}");
    let applied = ok(&dir, &["apply", "--auto-approve"]);
    assert!(!applied.contains("training_job.model: Modifying"), "{applied}");
    assert!(ok(&dir, &["plan"]).contains("No changes."));
    assert!(ok(&dir, &["output", "endpoint_url"]).contains("module.fraud.api"));
}

#[test]
fn a_retrain_that_does_not_beat_production_is_not_promoted() {
    let tree = fraud_tree("loop-reject");
    let dir = fraud_dir(&tree);
    // No candidate can gain 0.5 AUC on production.
    fast_loop(&tree, "0.5");
    ok(&dir, &["apply", "--auto-approve"]);
    let data = dir.join(".mlops/data");
    append_shifted_data(&dir);
    let traffic = Traffic::start(&fraud_address(&tree), Sampler::new(&data, 1));
    traffic.shift(3.0);
    let rejected = wait_until(120, || kinds(&events(&dir)).iter().any(|k| k == "candidate_rejected"));
    let all = events(&dir);
    assert!(rejected, "{all:#?}");
    let gate = all.iter().find(|e| e["kind"] == "gate_result").unwrap();
    assert_eq!(gate["details"]["accepted"], false, "{gate}");
    assert!(gate["message"].as_str().unwrap().contains("< 0.5"), "{gate}");
    assert!(!kinds(&all).iter().any(|k| k == "rollout_started" || k == "promoted"), "{all:#?}");
    // Breaches keep coming; the cooldown and the budget say why nothing retrains again at once.
    assert!(wait_until(30, || kinds(&events(&dir)).iter().any(|k| k == "retrain_skipped")), "{:#?}", events(&dir));
    // plan sees the data: the monitor's values and what the policy would do about them now.
    let plan = ok(&dir, &["plan"]);
    assert!(plan.contains("Monitors now (the running agent's last windows):"), "{plan}");
    assert!(plan.contains("monitor.fraud_health: psi(amount_sum_24h)="), "{plan}");
    assert!(plan.contains("→ retrain_policy.fraud_auto: would"), "{plan}");
    assert!(plan.contains("psi(amount) ") && plan.contains(" > 0.2 over "), "{plan}");
    let (answered, failed) = traffic.finish();
    assert!(answered > 0 && failed == 0);
    assert_eq!(traffic_version(&tree), 1);
    let models = ok(&dir, &["models"]);
    assert!(models.lines().any(|l| l.contains(" 1 ") && l.contains("production")), "{models}");
    assert!(ok(&dir, &["events", "--kind", "candidate_rejected"]).contains("production keeps serving"));
}

fn traffic_version(tree: &TempDir) -> u64 {
    let mut sampler = Sampler::new(&fraud_dir(tree).join(".mlops/data"), 1);
    let body = sampler.row(1.0);
    let out = std::process::Command::new("curl")
        .args(["-s", "-X", "POST", "-H", "content-type: application/json", "-d", &body])
        .arg(format!("http://{}/v1/endpoints/module.fraud.api/predict", fraud_address(tree)))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["model_version"].as_u64().unwrap()
}

#[test]
fn enough_new_rows_trigger_a_retrain_without_any_traffic() {
    let tree = fraud_tree("loop-new-data");
    let dir = fraud_dir(&tree);
    fast_loop(&tree, "0.5");
    let model = dir.join("model.mlops.hcl");
    edit(&model, "  budget {", "  new_data {\n    source = source.transactions\n    rows   = 1000\n  }\n\n  budget {");
    ok(&dir, &["apply", "--auto-approve"]);
    // The controller's routes want the agent's token and a body for the address in the path.
    let agent: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(".mlops/data/agent/agent.json")).unwrap()).unwrap();
    let put = |token: &str, path: &str, body: &str| {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/stderr",
                "-w",
                "%{http_code}",
                "-X",
                "PUT",
                "-H",
                &format!("authorization: Bearer {token}"),
                "-d",
                body,
            ])
            .arg(format!("http://{}/_mlops/v1/{path}", fraud_address(&tree)))
            .output()
            .unwrap();
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let token = agent["token"].as_str().unwrap();
    assert_eq!(put("guess", "monitors/monitor.x", "{}").0, "401");
    let (code, body) = put(token, "monitors/monitor.x", "{\"address\": 1}");
    assert_eq!(code, "400", "{body}");
    assert!(body.contains("bad monitor request"), "{body}");
    // Nothing arrives: no trigger, however long.
    std::thread::sleep(Duration::from_secs(4));
    assert!(!kinds(&events(&dir)).iter().any(|k| k == "retrain_started"), "{:#?}", events(&dir));
    append_shifted_data(&dir);
    let started = wait_until(60, || kinds(&events(&dir)).iter().any(|k| k == "retrain_started"));
    let all = events(&dir);
    assert!(started, "{all:#?}");
    let start = all.iter().find(|e| e["kind"] == "retrain_started").unwrap();
    assert!(start["message"].as_str().unwrap().contains("5000 new rows"), "{start}");
    assert_eq!(start["details"]["trigger"]["trigger"], "new_data", "{start}");
}
