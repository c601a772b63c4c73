//! Serving through the binary: `mlops apply` deploys the fraud example's endpoint into a real
//! serving agent (a detached `mlops agent` process on a free port), which answers real HTTP;
//! canary rollouts, `mlops status`, `mlops rollback`, destroy, and an agent killed with SIGKILL.
//! Every tree stops its agent when dropped.

mod common;

use common::{agent_pid, fraud_address, fraud_dir, fraud_tree, mlops, pid_alive, read_answer, stderr, stdout, TempDir};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const ENDPOINT: &str = "module.fraud.endpoint.api";
const ROW: &str = r#"{"row": {"amount": 182.4, "log_amount": 5.21, "hour_of_day": 3, "amount_sum_24h": 950.0, "amount_mean_7d": 61.2, "txn_count_1h": 4}}"#;

#[track_caller]
fn ok(dir: &Path, args: &[&str]) -> String {
    let out = mlops().args(args).arg(dir).env("OMP_WAIT_POLICY", "PASSIVE").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "mlops {args:?}\n{}\n{}", stdout(&out), stderr(&out));
    stdout(&out)
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{from:?} not in {}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn data(dir: &Path) -> PathBuf {
    dir.join(".mlops/data")
}

/// `mlops status --json` (`Value::Null`: no agent).
fn status(dir: &Path) -> Value {
    serde_json::from_str(&ok(dir, &["status", "--json"])).unwrap()
}

/// The endpoint's (version, percent) pairs in the status.
fn weights(dir: &Path) -> Vec<(u64, f64)> {
    let s = status(dir);
    s["endpoints"][0]["versions"]
        .as_array()
        .map(|v| v.iter().map(|v| (v["version"].as_u64().unwrap(), v["percent"].as_f64().unwrap())).collect())
        .unwrap_or_default()
}

/// A keep-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn open(address: &str) -> std::io::Result<Conn> {
        let s = TcpStream::connect(address)?;
        s.set_read_timeout(Some(Duration::from_secs(20)))?;
        s.set_nodelay(true)?;
        Ok(Conn { reader: BufReader::new(s) })
    }

    fn post(&mut self, path: &str, body: &str) -> std::io::Result<(u16, String)> {
        self.post_with(path, "", body)
    }

    /// A POST with extra header lines (each ending `\r\n`).
    fn post_with(&mut self, path: &str, headers: &str, body: &str) -> std::io::Result<(u16, String)> {
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: test\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        self.reader.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        read_answer(&line, &mut self.reader)
    }
}

fn predict(tree: &TempDir, body: &str) -> (u16, Value) {
    let mut c = Conn::open(&fraud_address(tree)).unwrap();
    let (code, text) = c.post("/v1/endpoints/module.fraud.api/predict", body).unwrap();
    (code, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Steady load: `threads` clients on keep-alive connections, counting what they sent, what was
/// answered 2xx, and which versions answered.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    answered: Arc<AtomicU64>,
    by_version: Arc<[AtomicU64; 8]>,
    threads: Vec<std::thread::JoinHandle<Vec<String>>>,
}

impl Load {
    fn start(address: &str, threads: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let answered = Arc::new(AtomicU64::new(0));
        let by_version: Arc<[AtomicU64; 8]> = Arc::new(Default::default());
        let threads = (0..threads)
            .map(|_| {
                let (stop, sent, answered, by_version) =
                    (stop.clone(), sent.clone(), answered.clone(), by_version.clone());
                let address = address.to_string();
                std::thread::spawn(move || {
                    let mut failures = Vec::new();
                    let mut conn = Conn::open(&address).unwrap();
                    while !stop.load(Ordering::SeqCst) {
                        sent.fetch_add(1, Ordering::SeqCst);
                        match conn.post("/v1/endpoints/module.fraud.api/predict", ROW) {
                            Ok((200, body)) => {
                                answered.fetch_add(1, Ordering::SeqCst);
                                let v: Value = serde_json::from_str(&body).unwrap();
                                let version = v["model_version"].as_u64().unwrap() as usize;
                                by_version[version.min(7)].fetch_add(1, Ordering::SeqCst);
                            }
                            Ok((code, body)) => failures.push(format!("{code}: {body}")),
                            Err(e) => {
                                failures.push(e.to_string());
                                conn = Conn::open(&address).unwrap();
                            }
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    failures
                })
            })
            .collect();
        Load { stop, sent, answered, by_version, threads }
    }

    /// Stops and returns (sent, answered 2xx, failures).
    fn finish(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let failures = self.threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
        (self.sent.load(Ordering::SeqCst), self.answered.load(Ordering::SeqCst), failures)
    }

    fn served(&self, version: usize) -> u64 {
        self.by_version[version].load(Ordering::SeqCst)
    }
}

/// Polls `cond` every 200 ms for up to `secs`.
fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    cond()
}

/// A retrain (max_depth) with a short canary: steps [10, 50, 100], 1 s each.
fn short_canary_and_new_model(tree: &TempDir) {
    let module = tree.path().join("modules/tabular-classifier/main.mlops.hcl");
    edit(&module, "interval = \"10m\"", "interval = \"1s\"");
    edit(&fraud_dir(tree).join("model.mlops.hcl"), "max_depth = 6", "max_depth = 4");
}

#[test]
fn apply_deploys_the_endpoint_and_it_answers_http() {
    let tree = fraud_tree("serve-deploy");
    let dir = fraud_dir(&tree);
    let text = ok(&dir, &["apply", "--auto-approve"]);
    assert!(text.contains(&format!("{ENDPOINT}: Creation complete after")), "{text}");
    let url = format!("http://{}/v1/endpoints/module.fraud.api", fraud_address(&tree));
    assert!(text.contains(&format!("url={url}, version=1")), "{text}");
    let plan = ok(&dir, &["plan"]);
    assert!(plan.contains("No changes."), "{plan}");

    let (code, body) = predict(&tree, ROW);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["model_version"], 1, "{body}");
    let score = body["predictions"][0]["score"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&score), "{body}");
    let (code, body) = predict(&tree, r#"{"row": {"amount": "lots"}}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body["error"].as_str().unwrap().contains("amount"), "{body}");
    // The control API wants the token.
    let mut c = Conn::open(&fraud_address(&tree)).unwrap();
    assert_eq!(c.post("/_mlops/v1/endpoints/module.fraud.api/rollback", "").unwrap().0, 401);

    let shown = ok(&dir, &["status"]);
    assert!(shown.contains("module.fraud.api") && shown.contains("healthy"), "{shown}");
    assert!(shown.contains("version 1") && shown.contains("100.0%"), "{shown}");
    assert_eq!(weights(&dir), [(1, 100.0)]);
    assert_eq!(ok(&dir, &["output", "endpoint_url", "--raw"]).trim(), url);
    // agent.json is the owner's only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data(&dir).join("agent/agent.json")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn a_retrain_rolls_out_as_a_canary_and_is_promoted() {
    let tree = fraud_tree("serve-canary");
    let dir = fraud_dir(&tree);
    ok(&dir, &["apply", "--auto-approve"]);
    short_canary_and_new_model(&tree);
    let text = ok(&dir, &["apply", "--auto-approve"]);
    assert!(text.contains(&format!("{ENDPOINT}: Modifications complete")) && text.contains("version=2"), "{text}");
    let shown = ok(&dir, &["status"]);
    assert!(shown.contains("rollout: version 2 at 10% (step 1 of 3)"), "{shown}");
    assert_eq!(weights(&dir), [(2, 10.0), (1, 90.0)]);
    // The rollback rule judges 100 requests per step: traffic moves it on.
    let load = Load::start(&fraud_address(&tree), 2);
    let promoted = wait_until(30, || weights(&dir) == [(2, 100.0)]);
    let (sent, answered, failures) = load.finish();
    assert!(promoted, "{}", ok(&dir, &["status"]));
    assert_eq!(sent, answered, "{failures:?}");
    assert!(ok(&dir, &["status"]).contains("rollout: version 2 promoted"));
    let (_, body) = predict(&tree, ROW);
    assert_eq!(body["model_version"], 2);
    assert!(ok(&dir, &["plan"]).contains("No changes."));
}

#[test]
fn no_request_is_lost_through_a_canary_and_a_rollback() {
    let tree = fraud_tree("serve-zero-loss");
    let dir = fraud_dir(&tree);
    ok(&dir, &["apply", "--auto-approve"]);
    short_canary_and_new_model(&tree);
    let load = Load::start(&fraud_address(&tree), 8);
    std::thread::sleep(Duration::from_millis(300));
    ok(&dir, &["apply", "--auto-approve"]);
    let promoted = wait_until(40, || weights(&dir) == [(2, 100.0)]);
    assert!(promoted, "{}", ok(&dir, &["status"]));
    std::thread::sleep(Duration::from_millis(300));
    let text = ok(&dir, &["rollback", ENDPOINT]);
    assert!(text.contains(&format!("Rolled back {ENDPOINT}")), "{text}");
    assert_eq!(weights(&dir), [(1, 100.0)]);
    std::thread::sleep(Duration::from_millis(300));
    let (v1, v2) = (load.served(1), load.served(2));
    let (sent, answered, failures) = load.finish();
    assert!(failures.is_empty(), "{} failures: {:?}", failures.len(), &failures[..failures.len().min(5)]);
    assert_eq!(sent, answered);
    assert!(v1 > 0 && v2 > 0, "v1 {v1}, v2 {v2}");
    eprintln!("{sent} requests, all answered: {v1} by version 1, {v2} by version 2");
    assert!(ok(&dir, &["status"]).contains("rolled back by `mlops rollback`"));
    // The state still asks for version 2: the next plan puts it back.
    let plan = ok(&dir, &["plan"]);
    assert!(plan.contains(&format!("{ENDPOINT}: changed outside mlops")), "{plan}");
}

#[test]
fn destroy_removes_the_endpoint_and_stops_the_agent() {
    let tree = fraud_tree("serve-destroy");
    let dir = fraud_dir(&tree);
    ok(&dir, &["apply", "--auto-approve"]);
    let pid = agent_pid(&data(&dir)).unwrap();
    assert!(pid_alive(pid));
    let text = ok(&dir, &["destroy", "--auto-approve"]);
    assert!(text.contains(&format!("{ENDPOINT}: Destruction complete")), "{text}");
    assert!(!pid_alive(pid), "the agent serves nothing: it stopped");
    assert!(!data(&dir).join("agent/agent.json").exists());
    assert!(ok(&dir, &["status"]).contains("No agent running"));
}

#[test]
fn an_agent_killed_is_found_drifted_and_apply_restarts_it() {
    let tree = fraud_tree("serve-sigkill");
    let dir = fraud_dir(&tree);
    ok(&dir, &["apply", "--auto-approve"]);
    let pid = agent_pid(&data(&dir)).unwrap();
    std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
    assert!(wait_until(5, || !pid_alive(pid)));
    assert!(ok(&dir, &["status"]).contains("No agent running"));
    let plan = ok(&dir, &["plan"]);
    assert!(plan.contains(&format!("{ENDPOINT}: changed outside mlops: the serving agent is not running")), "{plan}");
    // The monitor and the retrain policy ran in the agent too.
    assert!(plan.contains("Plan: 0 to create, 3 to update"), "{plan}");
    let text = ok(&dir, &["apply", "--auto-approve"]);
    assert!(text.contains(&format!("{ENDPOINT}: Modifications complete")), "{text}");
    let new_pid = agent_pid(&data(&dir)).unwrap();
    assert_ne!(new_pid, pid);
    let (code, body) = predict(&tree, ROW);
    assert_eq!((code, body["model_version"].as_u64()), (200, Some(1)), "{body}");
    assert!(ok(&dir, &["plan"]).contains("No changes."));
}

#[test]
fn a_candidate_that_trips_its_rollback_rule_is_rolled_back_automatically() {
    let tree = fraud_tree("serve-auto-rollback");
    let dir = fraud_dir(&tree);
    ok(&dir, &["apply", "--auto-approve"]);
    short_canary_and_new_model(&tree);
    // Every answer takes more than 0 s: the candidate's median latency trips the rule.
    let module = tree.path().join("modules/tabular-classifier/main.mlops.hcl");
    edit(&module, "metric = \"error_rate\"", "metric = \"latency_p50\"");
    edit(&module, "above  = 0.02", "above  = 0\n      min_requests = 20");
    ok(&dir, &["apply", "--auto-approve"]);
    let load = Load::start(&fraud_address(&tree), 2);
    let rolled_back = wait_until(30, || weights(&dir) == [(1, 100.0)]);
    let (sent, answered, failures) = load.finish();
    let shown = ok(&dir, &["status"]);
    assert!(rolled_back, "{shown}");
    assert_eq!(sent, answered, "{failures:?}");
    assert!(shown.contains("rollout: version 2 rolled back: latency_p50 "), "{shown}");
    assert!(shown.contains("> 0 over ") && shown.contains(" requests at 10%"), "{shown}");
}

#[test]
fn a_rollback_rule_on_a_scraped_metric_rolls_back_and_an_unreadable_one_holds() {
    let tree = fraud_tree("serve-external-rollback");
    let dir = fraud_dir(&tree);
    ok(&dir, &["apply", "--auto-approve"]);
    short_canary_and_new_model(&tree);
    // First a metric nobody serves: the canary may not pass its 1 s steps without it.
    let module = tree.path().join("modules/tabular-classifier/main.mlops.hcl");
    let rule = "metric = \"error_rate\"\n      above  = 0.02";
    let unreadable = "metric = \"prometheus\"\n      url = \"http://127.0.0.1:1\"\n      query = \"up\"\n      above  = 1\n      min_requests = 1";
    edit(&module, rule, unreadable);
    ok(&dir, &["apply", "--auto-approve"]);
    let load = Load::start(&fraud_address(&tree), 2);
    let waiting = wait_until(30, || {
        ok(&dir, &["status"])
            .contains("cannot read it, so the step waits: cannot reach Prometheus at http://127.0.0.1:1")
    });
    std::thread::sleep(std::time::Duration::from_secs(3));
    let held = weights(&dir);
    let (sent, answered, failures) = load.finish();
    assert!(waiting, "{}", ok(&dir, &["status"]));
    assert_eq!(held, [(2, 10.0), (1, 90.0)], "three 1 s intervals later the canary is still at its first step");
    assert_eq!(sent, answered, "{failures:?}");

    // Then the agent's own page: more than 20 predictions by the candidate trips it.
    let address = fraud_address(&tree);
    let scraped = format!(
        "metric = \"scrape\"\n      url = \"http://{address}/metrics\"\n      query = \"mlops_predictions_total{{endpoint=\\\"$endpoint\\\",version=\\\"$candidate\\\"}}\"\n      above  = 20\n      min_requests = 1"
    );
    edit(&module, unreadable, &scraped);
    edit(&fraud_dir(&tree).join("model.mlops.hcl"), "max_depth = 4", "max_depth = 5");
    ok(&dir, &["apply", "--auto-approve"]);
    let load = Load::start(&address, 2);
    let rolled_back = wait_until(30, || weights(&dir) == [(1, 100.0)]);
    let (sent, answered, failures) = load.finish();
    let shown = ok(&dir, &["status"]);
    assert!(rolled_back, "{shown}");
    assert_eq!(sent, answered, "{failures:?}");
    assert!(shown.contains("rollout: version 3 rolled back: scrape "), "{shown}");
    assert!(shown.contains("> 20 over "), "{shown}");
}

#[test]
fn rematerialised_online_features_reach_the_running_endpoint() {
    let tree = fraud_tree("serve-online-reload");
    let dir = fraud_dir(&tree);
    ok(&dir, &["apply", "--auto-approve"]);
    let lookup = r#"{"entities": [{"account_id": "acct_fresh"}]}"#;
    let (code, before) = predict(&tree, lookup);
    assert_eq!(code, 200, "{before}");
    // New transactions of an account the store did not know, dated now (inside the view's ttl).
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let stamp = |secs: u64| {
        let out = std::process::Command::new("date")
            .args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%SZ"])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let csv = dir.join("data/transactions.csv");
    let mut text = std::fs::read_to_string(&csv).unwrap();
    for (i, amount) in [2400.0, 3100.0, 2950.0].iter().enumerate() {
        text.push_str(&format!(
            "txn_fresh_{i},acct_fresh,{amount},electronics,3,false,{}\n",
            stamp(now - 600 + 60 * i as u64)
        ));
    }
    std::fs::write(&csv, text).unwrap();
    let applied = ok(&dir, &["apply", "--auto-approve"]);
    assert!(applied.contains("feature_view"), "{applied}");
    let mut after = Value::Null;
    let reloaded = wait_until(20, || {
        after = predict(&tree, lookup).1;
        after["predictions"][0]["score"] != before["predictions"][0]["score"]
    });
    assert!(reloaded, "the endpoint still answers from the old store: {before} vs {after}");
    let log = std::fs::read_to_string(data(&dir).join("agent/agent.log")).unwrap();
    assert!(log.contains("module.fraud.api: online features reloaded"), "{log}");
}

#[test]
fn moving_the_address_restarts_the_agent_there() {
    let tree = fraud_tree("serve-move");
    let dir = fraud_dir(&tree);
    ok(&dir, &["apply", "--auto-approve"]);
    let (old, pid) = (fraud_address(&tree), agent_pid(&data(&dir)).unwrap());
    let new = format!("127.0.0.1:{}", common::free_port());
    edit(&dir.join("main.mlops.hcl"), &old, &new);
    let plan = ok(&dir, &["plan"]);
    assert!(plan.contains(&format!("the serving agent listens on {old}, not {new}")), "{plan}");
    let text = ok(&dir, &["apply", "--auto-approve"]);
    assert!(text.contains(&format!("url=http://{new}/v1/endpoints/module.fraud.api")), "{text}");
    assert!(!pid_alive(pid), "the agent on the old address stopped");
    let (code, body) = predict(&tree, ROW);
    assert_eq!((code, body["model_version"].as_u64()), (200, Some(1)), "{body}");
    assert_eq!(
        ok(&dir, &["output", "endpoint_url", "--raw"]).trim(),
        format!("http://{new}/v1/endpoints/module.fraud.api")
    );
}

#[test]
fn a_bearer_token_from_apply_s_environment_guards_the_endpoint() {
    let tree = fraud_tree("serve-auth");
    let dir = fraud_dir(&tree);
    let module = tree.path().join("modules/tabular-classifier/main.mlops.hcl");
    edit(
        &module,
        "timeout  = \"2s\"\n",
        "timeout  = \"2s\"\n\n  auth {\n    type      = \"bearer\"\n    token_env = \"SERVE_CLI_TOKEN\"\n  }\n",
    );
    // Without the variable, apply says which one is missing.
    let out = mlops().args(["apply", "--auto-approve"]).arg(&dir).env_remove("SERVE_CLI_TOKEN").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("SERVE_CLI_TOKEN"), "{}", stderr(&out));
    let out = mlops()
        .args(["apply", "--auto-approve"])
        .arg(&dir)
        .env("SERVE_CLI_TOKEN", "t0ken")
        .env("OMP_WAIT_POLICY", "PASSIVE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    let path = "/v1/endpoints/module.fraud.api/predict";
    let mut c = Conn::open(&fraud_address(&tree)).unwrap();
    assert_eq!(c.post(path, ROW).unwrap().0, 401);
    assert_eq!(c.post_with(path, "Authorization: Bearer wrong\r\n", ROW).unwrap().0, 401);
    assert_eq!(c.post_with(path, "Authorization: Bearer t0ken\r\n", ROW).unwrap().0, 200);
    // The agent keeps only the digest, and needs no environment to restore the endpoint.
    let kept = std::fs::read_to_string(data(&dir).join("agent/endpoints.json")).unwrap();
    assert!(!kept.contains("t0ken") && kept.contains("token_sha256"), "{kept}");
}
