//! The runtime image's commands run outside a container the way a Kubernetes pod runs them: the
//! fraud example compiled to a spec file in a "ConfigMap" directory, its data copied under a
//! temporary root, and only the pod's environment (`MLOPS_SPEC`, `MLOPS_DATA_DIR`, `MLOPS_ROOT`,
//! `POD_NAME`). The training Job (`mlops train --spec … --promote`), the serving Deployment
//! (`mlops agent --spec … --endpoint …`: not ready until a production version exists, then
//! serving it, following the registry, and draining on SIGTERM without losing a request), the
//! controller Deployment (`mlops controller --spec …`: monitors reading every replica's
//! prediction log, a retrain promoted in the registry and picked up by every replica), and every
//! bad spec or endpoint named with the file and the fix.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ENDPOINT: &str = "module.fraud.endpoint.api";
const JOB: &str = "module.fraud.training_job.model";
const PREDICT: &str = "/v1/endpoints/module.fraud.api/predict";
const ROW: &str = r#"{"row": {"amount": 182.4, "log_amount": 5.21, "hour_of_day": 3, "amount_sum_24h": 950.0, "amount_mean_7d": 61.2, "txn_count_1h": 4}}"#;

/// A pod's view of the world: the ConfigMap's spec file, the root (the image's workdir) and the
/// shared volume, all under one temporary tree.
struct Pod {
    tree: TempDir,
    spec: PathBuf,
    root: PathBuf,
    data: PathBuf,
}

/// Compiles `config` (a configuration directory) into `<tree>/configmap/spec.json`.
#[track_caller]
fn compile_into(tree: &TempDir, config: &Path) -> PathBuf {
    let spec = tree.path().join("configmap/spec.json");
    std::fs::create_dir_all(spec.parent().unwrap()).unwrap();
    let out = mlops().arg("compile").arg(config).arg("--out").arg(&spec).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    spec
}

/// The fraud example as a pod sees it: its spec compiled, its source data under `root/data`
/// (the relative `data/transactions.csv` resolves against `MLOPS_ROOT`), the volume at
/// `root/data` as the contract's `MLOPS_DATA_DIR=/var/lib/mlops/data`.
fn pod(tag: &str) -> Pod {
    let tree = TempDir::new(tag);
    let spec = compile_into(&tree, &root().join("examples/fraud-detection"));
    let root_dir = tree.path().join("var/lib/mlops");
    let data = root_dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for f in ["transactions.csv", "chargebacks.csv"] {
        std::fs::copy(root().join("examples/fraud-detection/data").join(f), data.join(f)).unwrap();
    }
    Pod { tree, spec, root: root_dir, data }
}

/// `mlops` with the pod's environment and nothing of ours: started in the tree's top directory,
/// so only `MLOPS_ROOT` can tell it where the sources are.
fn in_pod(p: &Pod, pod_name: &str) -> std::process::Command {
    let mut cmd = mlops_process();
    for (k, _) in std::env::vars() {
        if k.starts_with("MLOPS_") || k == "POD_NAME" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(p.tree.path())
        .env("MLOPS_SPEC", &p.spec)
        .env("MLOPS_DATA_DIR", &p.data)
        .env("MLOPS_ROOT", &p.root)
        .env("POD_NAME", pod_name)
        .env("OMP_WAIT_POLICY", "PASSIVE");
    cmd
}

/// The training Job's command.
#[track_caller]
fn train(p: &Pod) -> String {
    let out = in_pod(p, "train-job")
        .args(["train", "--spec"])
        .arg(&p.spec)
        .args([JOB, "--promote"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    text
}

/// The serving Deployment's command, on `port`, polling the registry every 250 ms and keeping
/// on serving 1 s after SIGTERM.
fn start_agent(p: &Pod, pod_name: &str, port: u16) -> Running {
    start_agent_in(&mut in_pod(p, pod_name), p, port)
}

/// [`start_agent`] with a pod's command line of one's own.
fn start_agent_in(pod: &mut std::process::Command, p: &Pod, port: u16) -> Running {
    Running::spawn(pod.args(["agent", "--spec"]).arg(&p.spec).args([
        "--endpoint",
        ENDPOINT,
        "--address",
        &format!("127.0.0.1:{port}"),
        "--poll-interval",
        "250ms",
        "--shutdown-delay",
        "1s",
    ]))
}

/// Waits for `cond` (checked every 50 ms) at most `secs`.
fn wait_until(secs: u64, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

/// One request on a fresh connection: (status, body); `None` when nothing listens.
fn http(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut c = Conn::open(port).ok()?;
    c.send(method, path, body).ok()
}

/// A keep-alive HTTP/1.1 connection.
struct Conn {
    reader: BufReader<TcpStream>,
}

/// How a request on a [`Conn`] went wrong.
#[derive(Debug)]
enum Failure {
    /// The connection was closed (or reset) before a single byte of the answer: the server had
    /// not taken the request (a keep-alive connection closed as it stops).
    Closed,
    /// Anything else: a torn answer, a timeout, garbage.
    Broken(String),
}

impl Conn {
    fn open(port: u16) -> std::io::Result<Conn> {
        let s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        s.set_nodelay(true)?;
        Ok(Conn { reader: BufReader::new(s) })
    }

    fn send(&mut self, method: &str, path: &str, body: &str) -> Result<(u16, String), Failure> {
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: pod\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if self.reader.get_mut().write_all(req.as_bytes()).is_err() {
            return Err(Failure::Closed);
        }
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => return Err(Failure::Closed),
            Err(e) if line.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Err(Failure::Closed)
            }
            Err(e) => return Err(Failure::Broken(e.to_string())),
            Ok(_) => {}
        }
        read_answer(&line, &mut self.reader).map_err(|e| Failure::Broken(format!("torn answer: {e}")))
    }
}

/// The prediction's (model version, score).
#[track_caller]
fn answer(body: &str) -> (u64, f64) {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (v["model_version"].as_u64().unwrap(), v["predictions"][0]["score"].as_f64().unwrap())
}

/// One request of a [`Load`]: when it ended, and the version that answered or what went wrong.
type Outcome = (Instant, Result<u64, String>);

/// Clients on keep-alive connections sending predictions until stopped or until the server
/// goes away; each answer is recorded with its time and version.
struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    log: Arc<Mutex<Vec<Outcome>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, clients: usize, body: &'static str) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicU64::new(0));
        let log: Arc<Mutex<Vec<Outcome>>> = Arc::default();
        let threads = (0..clients)
            .map(|_| {
                let (stop, answered, log) = (stop.clone(), answered.clone(), log.clone());
                std::thread::spawn(move || {
                    let Ok(mut conn) = Conn::open(port) else { return };
                    while !stop.load(Ordering::SeqCst) {
                        let outcome = match conn.send("POST", PREDICT, body) {
                            Ok((200, text)) => {
                                answered.fetch_add(1, Ordering::SeqCst);
                                Ok(answer(&text).0)
                            }
                            Ok((code, text)) => Err(format!("{code}: {text}")),
                            Err(Failure::Closed) => match Conn::open(port) {
                                // The server closed an idle keep-alive connection: open another.
                                Ok(c) => {
                                    conn = c;
                                    continue;
                                }
                                // It no longer accepts: this client is done.
                                Err(_) => return,
                            },
                            Err(Failure::Broken(e)) => Err(e),
                        };
                        log.lock().unwrap().push((Instant::now(), outcome));
                        std::thread::sleep(Duration::from_millis(1));
                    }
                })
            })
            .collect();
        Load { stop, answered, log, threads }
    }

    /// Waits until `n` more requests were answered.
    #[track_caller]
    fn wait_answers(&self, n: u64) {
        let target = self.answered.load(Ordering::SeqCst) + n;
        assert!(wait_until(30, || self.answered.load(Ordering::SeqCst) >= target), "the load is not answered");
    }

    /// Stops the clients; every outcome recorded.
    fn finish(mut self) -> Vec<Outcome> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

fn sigterm(pid: u32) {
    let status = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success());
}

/// The controller Deployment's command (`pod`: a pod's command line), on `port`, once ready.
#[track_caller]
fn start_controller(pod: &mut std::process::Command, p: &Pod, port: u16) -> Running {
    let controller = Running::spawn(
        pod.args(["controller", "--spec"]).arg(&p.spec).args(["--address", &format!("127.0.0.1:{port}")]),
    );
    assert!(
        wait_until(30, || http(port, "GET", "/readyz", "").is_some_and(|(c, _)| c == 200)),
        "{}",
        controller.stderr()
    );
    controller
}

/// Waits until `/readyz` answers `code`.
#[track_caller]
fn wait_ready(port: u16, code: u16, agent: &Running, secs: u64) {
    let ok = wait_until(secs, || http(port, "GET", "/readyz", "").is_some_and(|(c, _)| c == code));
    assert!(ok, "/readyz never answered {code}\nstderr:\n{}", agent.stderr());
}

#[test]
fn the_pod_agent_waits_for_its_training_job_then_serves_and_follows_production() {
    let p = pod("pod-serve");
    let port = free_port();
    // The Deployment starts alongside its first training Job: nothing is in production yet.
    let agent = start_agent(&p, "api-0", port);
    assert!(wait_until(30, || http(port, "GET", "/healthz", "").is_some()), "{}", agent.stderr());
    let (code, body) = http(port, "GET", "/readyz", "").unwrap();
    assert_eq!(code, 503, "{body}");
    assert_eq!(http(port, "GET", "/healthz", "").unwrap().0, 200, "alive while not ready");
    assert!(
        wait_until(10, || agent.stderr().contains(&format!("module.fraud.api: not ready: no version of {JOB}"))),
        "the agent does not say why it is not ready:\n{}",
        agent.stderr()
    );
    assert_ne!(http(port, "POST", PREDICT, ROW).unwrap().0, 200, "nothing to predict with yet");

    // The training Job, with only the pod's environment to find the data and the volume.
    let out = train(&p);
    assert!(out.contains(&format!("{JOB} version 1:")) && out.contains("(promoted)"), "{out}");
    assert!(p.data.join("registry/index.json").is_file(), "the registry is on the volume");
    assert!(!p.root.join(".mlops").exists(), "nothing under the root's default data directory");

    wait_ready(port, 200, &agent, 20);
    let (code, body) = http(port, "POST", PREDICT, ROW).unwrap();
    assert_eq!(code, 200, "{body}");
    let (version, score) = answer(&body);
    assert_eq!(version, 1);
    assert!(score > 0.0 && score < 1.0, "a probability: {score}");
    assert!(agent.stderr().contains(&format!("serving version 1 of {JOB}")), "{}", agent.stderr());
    // Labels posted to a replica go to its own file on the volume, where the controller reads them.
    let id =
        serde_json::from_str::<Value>(&body).unwrap()["predictions"][0]["prediction_id"].as_str().unwrap().to_string();
    let feedback = format!("{{\"feedback\": [{{\"prediction_id\": \"{id}\", \"label\": true}}]}}");
    let (code, text) = http(port, "POST", "/v1/endpoints/module.fraud.api/feedback", &feedback).unwrap();
    assert_eq!(code, 200, "{text}");
    let labels = std::fs::read_to_string(p.data.join("feedback/pods/api-0/module.fraud.api.jsonl")).unwrap();
    assert!(labels.contains(&id), "{labels}");

    // A later training Job promotes version 2: the pod switches under load, losing nothing.
    let load = Load::start(port, 3, ROW);
    load.wait_answers(20);
    let out = train(&p);
    assert!(out.contains(&format!("{JOB} version 2:")) && out.contains("(promoted)"), "{out}");
    let switched =
        wait_until(20, || http(port, "POST", PREDICT, ROW).is_some_and(|(c, b)| c == 200 && answer(&b).0 == 2));
    assert!(switched, "{}", agent.stderr());
    load.wait_answers(20);
    let outcomes = load.finish();
    let failures: Vec<&String> = outcomes.iter().filter_map(|(_, o)| o.as_ref().err()).collect();
    assert!(failures.is_empty(), "{failures:?}");
    let versions: std::collections::BTreeSet<u64> = outcomes.iter().filter_map(|(_, o)| o.clone().ok()).collect();
    assert_eq!(versions, [1, 2].into(), "the load saw both versions");
    assert!(agent.stderr().contains("production of module.fraud.training_job.model moved to version 2"));

    // The replica's prediction log is its own; nothing else of the agent is on the volume.
    let pod_log = p.data.join("predictions/module.fraud.api/pods/api-0");
    assert!(
        wait_until(5, || std::fs::read_dir(&pod_log).is_ok_and(|mut d| d.next().is_some())),
        "no log in {}",
        pod_log.display()
    );
    let shared: Vec<_> = std::fs::read_dir(p.data.join("predictions/module.fraud.api"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(shared, ["pods"], "a replica writes only under pods/<its name>");
    assert!(!p.data.join("agent/agent.json").exists() && !p.data.join("agent/endpoints.json").exists());

    sigterm(agent.pid());
    let done = agent.finish(Duration::from_secs(30));
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
}

#[test]
fn sigterm_mid_traffic_answers_every_request_and_exits_0() {
    let p = pod("pod-sigterm");
    train(&p);
    let port = free_port();
    let agent = start_agent(&p, "api-0", port);
    wait_ready(port, 200, &agent, 30);
    let load = Load::start(port, 4, ROW);
    load.wait_answers(50);
    let term = Instant::now();
    sigterm(agent.pid());
    // During the shutdown delay it is not ready, yet still takes connections and answers.
    assert!(wait_until(5, || http(port, "GET", "/readyz", "").is_some_and(|(c, _)| c == 503)), "{}", agent.stderr());
    let (code, body) = http(port, "POST", PREDICT, ROW).expect("a new connection during the delay");
    assert_eq!(code, 200, "{body}");
    let done = agent.finish(Duration::from_secs(40));
    let outcomes = load.finish();
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    assert!(done.stderr.contains("every request drained: true"), "{}", done.stderr);
    assert!(done.stderr.contains("terminating: not ready, still serving for 1.0s"), "{}", done.stderr);
    // Every request the server took was answered 200: no 503 at a drain deadline, no torn answer.
    let failures: Vec<&String> = outcomes.iter().filter_map(|(_, o)| o.as_ref().err()).collect();
    assert!(failures.is_empty(), "{failures:?}");
    let after = outcomes.iter().filter(|(t, o)| *t > term && o.is_ok()).count();
    assert!(after > 10, "only {after} answers after SIGTERM: the delay should keep serving");
    // After the agent is gone nothing listens.
    assert!(http(port, "GET", "/healthz", "").is_none());
}

#[test]
fn spec_files_and_endpoints_that_cannot_be_used_are_named_with_the_fix() {
    let p = pod("pod-errors");
    let run = |args: &[&str], spec: Option<&Path>| {
        let mut cmd = in_pod(&p, "api-0");
        match spec {
            Some(s) => cmd.env("MLOPS_SPEC", s),
            None => cmd.env_remove("MLOPS_SPEC"),
        };
        let out = cmd.args(args).stdin(std::process::Stdio::null()).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let missing = p.tree.path().join("configmap/missing.json");
    let (code, err) = run(&["agent", "--spec", missing.to_str().unwrap(), "--endpoint", ENDPOINT], None);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("cannot read the SystemSpec {}", missing.display())), "{err}");
    assert!(err.contains("mlops compile DIR --out"), "{err}");

    let bad = p.tree.write("configmap/bad.json", "fraud: yes\n");
    let (code, err) = run(&["train", "--spec", bad.to_str().unwrap(), JOB], None);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("{} is not a SystemSpec", bad.display())), "{err}");
    assert!(err.contains("exactly what `mlops compile DIR` prints"), "{err}");

    let text = std::fs::read_to_string(&p.spec).unwrap().replacen("\"format_version\": 1", "\"format_version\": 7", 1);
    let future = p.tree.write("configmap/future.json", &text);
    let (code, err) = run(&["controller", "--spec", future.to_str().unwrap()], None);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("format version 7, but this mlops reads version 1"), "{err}");

    // The endpoint must be one of the spec's (here the spec comes from MLOPS_SPEC).
    let (code, err) = run(&["agent", "--endpoint", "endpoint.fraud"], Some(&p.spec));
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "`endpoint.fraud` is not an endpoint of {}; its endpoints: {ENDPOINT}",
            p.spec.display()
        )),
        "{err}"
    );
    let (code, err) = run(&["agent", "--spec", p.spec.to_str().unwrap()], None);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "name the endpoint to serve with --endpoint; the endpoints of {}: {ENDPOINT}",
            p.spec.display()
        )),
        "{err}"
    );
    let (code, err) = run(&["agent", "--endpoint", ENDPOINT], None);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--endpoint needs the compiled spec: --spec FILE, or MLOPS_SPEC"), "{err}");
    let (code, err) = run(&["controller"], None);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("the controller runs from a compiled spec"), "{err}");

    // With --spec the positionals are addresses, and they must exist.
    let spec = p.spec.to_str().unwrap();
    let (code, err) = run(&["train", "--spec", spec, "examples/fraud-detection", JOB], None);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("with --spec the spec replaces the configuration directory"), "{err}");
    let (code, err) = run(&["train", "--spec", spec, "module.fraud.training_job.modle"], None);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("did you mean `module.fraud.training_job.model`"), "{err}");
    let (code, err) = run(&["train", "--root", "/tmp", "examples/fraud-detection", JOB], None);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--root and --data-dir go with --spec FILE"), "{err}");
}

#[test]
fn a_kubernetes_target_spec_runs_with_its_data_under_the_root_by_default() {
    let tree = fraud_tree("pod-k8s");
    let main = fraud_dir(&tree).join("main.mlops.hcl");
    let text = std::fs::read_to_string(&main).unwrap();
    let local = &text[text.find("  target \"local\" {").unwrap()..];
    let local = &local[..local.find("  }\n").unwrap() + 4];
    let k8s =
        "  target \"kubernetes\" {\n    namespace = \"fraud\"\n    image     = \"ghcr.io/example/mlops:0.1\"\n  }\n";
    std::fs::write(&main, text.replacen(local, k8s, 1)).unwrap();
    let spec = compile_into(&tree, &fraud_dir(&tree));
    assert!(std::fs::read_to_string(&spec).unwrap().contains("\"kubernetes\""));
    let p = Pod { spec, root: fraud_dir(&tree), data: fraud_dir(&tree).join(".mlops/data"), tree };
    // No MLOPS_DATA_DIR: the kubernetes target's data directory is `.mlops/data` under the root.
    let materialize =
        in_pod(&p, "job").env_remove("MLOPS_DATA_DIR").args(["materialize", "--spec"]).arg(&p.spec).output().unwrap();
    assert!(materialize.status.success(), "{}", stderr(&materialize));
    assert!(
        stdout(&materialize).contains("feature_view.account_activity: 19904 rows read"),
        "{}",
        stdout(&materialize)
    );
    assert!(p.data.join("features/online").is_dir());
    // The agent takes the same spec; nothing trained yet, so it runs not ready.
    let port = free_port();
    let mut cmd = in_pod(&p, "api-0");
    cmd.env_remove("MLOPS_DATA_DIR").args(["agent", "--endpoint", "module.fraud.api", "--address"]);
    let agent = Running::spawn(cmd.arg(format!("127.0.0.1:{port}")));
    wait_ready(port, 503, &agent, 30);
    assert!(wait_until(10, || agent.stderr().contains("not ready: no version")), "{}", agent.stderr());
    assert!(agent.stderr().contains(&format!("data in {}", p.data.display())), "{}", agent.stderr());
    sigterm(agent.pid());
    let done = agent.finish(Duration::from_secs(30));
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
}

/// Events the controller appended on the volume.
fn events(data: &Path) -> Vec<Value> {
    std::fs::read_to_string(data.join("events/events.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Two serving replicas and the controller on one volume, the controller's first window judged.
struct Cluster {
    p: Pod,
    dir: PathBuf,
    ports: [u16; 2],
    agents: [Running; 2],
    controller: Running,
    control_port: u16,
}

/// A 10 s monitor window, a retrain on 1,000 new rows, a 10 s cooldown; the endpoint's canary at
/// 50 % then 100 %, 1 s a step, its rule (`rule`: (from, to) edits of the module's rollback
/// block) judged on 20 requests. Version 1 trained, two replicas serving it, the controller
/// started and its first window judged — on both replicas' predictions — and whatever retrain it
/// started finished.
fn cluster(tag: &str, rule: &[(&str, &str)]) -> Cluster {
    let tree = fraud_tree(tag);
    let dir = fraud_dir(&tree);
    let edit = |file: &Path, from: &str, to: &str| {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.contains(from), "{from:?}");
        std::fs::write(file, text.replacen(from, to, 1)).unwrap();
    };
    let model = dir.join("model.mlops.hcl");
    edit(&model, "window      = \"1h\"", "window      = \"10s\"");
    edit(&model, "min_samples = 500", "min_samples = 40");
    edit(&model, "  schedule = \"0 3 * * *\"\n", "");
    edit(&model, "cooldown = \"6h\"", "cooldown = \"10s\"");
    edit(&model, "  budget {", "  new_data {\n    source = source.transactions\n    rows   = 1000\n  }\n\n  budget {");
    edit(&model, "  min_auc   = 0.85\n", "  min_auc   = 0.85\n  canary_steps = [50, 100]\n");
    let module = tree.path().join("modules/tabular-classifier/main.mlops.hcl");
    edit(&module, "interval = \"10m\"", "interval = \"1s\"");
    for (from, to) in rule {
        edit(&module, from, to);
    }
    let spec = compile_into(&tree, &dir);
    let p = Pod { spec, root: dir.clone(), data: tree.path().join("volume"), tree };
    train(&p);

    // Two replicas of the endpoint on the one volume, and the controller.
    let ports = [free_port(), free_port()];
    let agents = [start_agent(&p, "api-0", ports[0]), start_agent(&p, "api-1", ports[1])];
    for (port, agent) in ports.iter().zip(&agents) {
        wait_ready(*port, 200, agent, 30);
    }
    let control_port = free_port();
    let controller = start_controller(&mut in_pod(&p, "controller-0"), &p, control_port);
    assert!(controller.stderr().contains("1 monitor(s), 1 retrain policy"), "{}", controller.stderr());
    // 30 predictions from each replica, well inside the controller's first window (which ends
    // 10 s after it started, judged on the tick after: up to 1 s later).
    std::thread::sleep(Duration::from_millis(1500));
    for port in ports {
        for _ in 0..30 {
            assert_eq!(http(port, "POST", PREDICT, ROW).unwrap().0, 200);
        }
    }
    let judged = |e: &Value| {
        e["subject"] == "monitor.fraud_health"
            && ["monitor_ok", "breach", "insufficient_data"].contains(&e["kind"].as_str().unwrap_or(""))
    };
    assert!(wait_until(30, || events(&p.data).iter().any(judged)), "{}", controller.stderr());
    let first = events(&p.data).into_iter().find(judged).unwrap();
    assert_eq!(first["details"]["predictions"], 60, "both replicas' predictions are judged: {first}");

    // The constant requests may breach the drift checks: a retrain on the same data, rejected.
    // Let it finish first, so the new rows below are what the next retrain sees.
    std::thread::sleep(Duration::from_secs(1));
    let settled = wait_until(60, || {
        let all = events(&p.data);
        let started = all.iter().filter(|e| e["kind"] == "retrain_started").count();
        let ended = all
            .iter()
            .filter(|e| {
                ["candidate_rejected", "retrain_failed", "promoted", "rolled_back"]
                    .contains(&e["kind"].as_str().unwrap_or(""))
            })
            .count();
        ended >= started
    });
    assert!(settled, "{}", controller.stderr());
    Cluster { p, dir, ports, agents, controller, control_port }
}

/// New transactions after the training data, renamed into place (a reader never sees half the
/// file): the last 5,000 again, 60 days later, amounts ×3.
fn append_new_rows(dir: &Path) {
    let csv = dir.join("data/transactions.csv");
    let text = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut more = text.clone();
    for (i, line) in lines[lines.len() - 5000..].iter().enumerate() {
        let f: Vec<&str> = line.split(',').collect();
        let amount: f64 = f[2].parse().unwrap();
        let time =
            f[6].replacen("2026-02", "2026-04", 1).replacen("2026-03", "2026-05", 1).replacen("2026-01", "2026-03", 1);
        more.push_str(&format!("txn_new_{i},{},{:.2},{},{},{},{}\n", f[1], amount * 3.0, f[3], f[4], f[5], time));
    }
    std::fs::write(csv.with_extension("tmp"), more).unwrap();
    std::fs::rename(csv.with_extension("tmp"), &csv).unwrap();
}

/// Stops every process of the cluster with SIGTERM: each exits 0.
fn stop(processes: impl IntoIterator<Item = Running>) {
    for r in processes {
        sigterm(r.pid());
        let done = r.finish(Duration::from_secs(30));
        assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    }
}

#[test]
fn the_controller_watches_every_replica_and_rolls_its_retrain_out_across_them() {
    let rule = [("above  = 0.02", "above  = 0.02\n      min_requests = 20")];
    let Cluster { p, dir, ports, agents, controller, control_port } = cluster("pod-controller", &rule);

    // Traffic on both replicas from here on: the canary is judged on what they both count.
    let loads = ports.map(|port| Load::start(port, 2, ROW));
    // New rows arrive: the controller retrains in its own process and rolls the candidate out
    // across both replicas; the last step promotes it in the registry.
    append_new_rows(&dir);
    let rollout_file = p.data.join("rollouts/module.fraud.api.json");
    let mut stepping = None;
    let promoted = wait_until(120, || {
        if let Some(r) =
            std::fs::read_to_string(&rollout_file).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            if r["rollout"]["phase"]["phase"] == "stepping" && stepping.is_none() {
                // Mid-rollout, production in the registry has not moved yet.
                let index = std::fs::read_to_string(p.data.join("registry/index.json")).unwrap();
                stepping = Some((r, index));
            }
        }
        events(&p.data).iter().any(|e| e["kind"] == "promoted")
    });
    let all = events(&p.data);
    let kinds: Vec<&str> = all.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(promoted, "{kinds:?}\n{}", controller.stderr());
    let version = all.iter().find(|e| e["kind"] == "promoted").unwrap()["details"]["version"].as_u64().unwrap();
    assert!(version >= 2, "{all:?}");
    assert!(kinds.contains(&"rollout_started"), "{kinds:?}");
    let (r, index) = stepping.expect("the rollout file was never seen stepping");
    assert_eq!(r["rollout"]["candidate"], version, "{r}");
    assert_eq!(r["rollout"]["previous"], 1, "{r}");
    let index: Value = serde_json::from_str(&index).unwrap();
    assert!(index.to_string().contains("\"production\""), "{index}");
    let stderr = controller.stderr();
    assert!(stderr.contains(&format!("module.fraud.api: version {version} promoted on every pod")), "{stderr}");
    for (port, agent) in ports.iter().zip(&agents) {
        let serves = wait_until(20, || {
            http(*port, "POST", PREDICT, ROW).is_some_and(|(c, b)| c == 200 && answer(&b).0 == version)
        });
        assert!(serves, "replica on {port} does not serve version {version}");
        assert!(
            agent.stderr().contains(&format!("version {version} takes 50% of traffic, version 1 the rest")),
            "{}",
            agent.stderr()
        );
    }
    for load in loads {
        load.wait_answers(10);
        let outcomes = load.finish();
        let failures: Vec<&String> = outcomes.iter().filter_map(|(_, o)| o.as_ref().err()).collect();
        assert!(failures.is_empty(), "{failures:?}");
        let versions: std::collections::BTreeSet<u64> = outcomes.iter().filter_map(|(_, o)| o.clone().ok()).collect();
        assert!(versions.contains(&1) && versions.contains(&version), "{versions:?}");
    }
    let (code, metrics) = http(control_port, "GET", "/metrics", "").unwrap();
    assert_eq!(code, 200);
    assert!(metrics.contains("mlops_loop_events_total{kind=\"promoted\""), "{metrics}");

    stop(agents.into_iter().chain([controller]));
}

#[test]
fn a_candidate_that_trips_its_rule_on_the_replicas_counters_is_rolled_back_on_every_pod() {
    // Every answer takes more than 0 s: the candidate's median latency, summed over both
    // replicas, trips the rule at the first step.
    let rule = [
        ("metric = \"error_rate\"", "metric = \"latency_p50\""),
        ("above  = 0.02", "above  = 0\n      min_requests = 20"),
    ];
    let Cluster { p, dir, ports, agents, controller, control_port: _ } = cluster("pod-rollback", &rule);
    let loads = ports.map(|port| Load::start(port, 2, ROW));
    append_new_rows(&dir);
    let rolled_back = wait_until(120, || events(&p.data).iter().any(|e| e["kind"] == "rolled_back"));
    let all = events(&p.data);
    let kinds: Vec<&str> = all.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(rolled_back, "{kinds:?}\n{}", controller.stderr());
    assert!(!kinds.contains(&"promoted"), "{kinds:?}");
    let event = all.iter().find(|e| e["kind"] == "rolled_back").unwrap();
    let candidate = event["details"]["version"].as_u64().unwrap();
    assert!(event["message"].as_str().unwrap().contains("latency_p50 "), "{event}");
    // Production never moved; the candidate is archived; every replica serves version 1 alone.
    let index = std::fs::read_to_string(p.data.join("registry/index.json")).unwrap();
    let index: Value = serde_json::from_str(&index).unwrap();
    let versions = index.to_string();
    assert!(versions.contains("\"archived\""), "{index}");
    for (port, agent) in ports.iter().zip(&agents) {
        assert!(
            wait_until(20, || agent.stderr().contains("all traffic on version 1 (production); the rollout ended")),
            "{}",
            agent.stderr()
        );
        for _ in 0..20 {
            let (code, body) = http(*port, "POST", PREDICT, ROW).unwrap();
            assert_eq!((code, answer(&body).0), (200, 1), "{body}");
        }
    }
    assert!(
        controller.stderr().contains(&format!("version {candidate} rolled back on every pod: latency_p50")),
        "{}",
        controller.stderr()
    );
    for load in loads {
        let outcomes = load.finish();
        let failures: Vec<&String> = outcomes.iter().filter_map(|(_, o)| o.as_ref().err()).collect();
        assert!(failures.is_empty(), "{failures:?}");
    }
    stop(agents.into_iter().chain([controller]));
}

/// The fraud example as pods see it when the kubernetes target names `object_store = url`:
/// the spec, root and data of [`pod`], the spec's target replaced by that one.
fn object_store_pod(tag: &str, url: &str) -> Pod {
    let p = pod(tag);
    let mut spec: Value = serde_json::from_str(&std::fs::read_to_string(&p.spec).unwrap()).unwrap();
    spec["system"]["target"] = serde_json::json!({
        "type": "kubernetes", "namespace": "fraud", "image": "ghcr.io/example/mlops:0.1",
        "storage_size": "10Gi", "object_store": url, "gpu_nodes": false, "service_monitor": false
    });
    std::fs::write(&p.spec, serde_json::to_string_pretty(&spec).unwrap()).unwrap();
    p
}

/// `in_pod` with the pod's own empty data directory (an `emptyDir`, not a shared volume) and
/// the object store's variables, as its Secret gives them.
fn in_pod_with_store(p: &Pod, pod_name: &str, s3: &s3::S3Server) -> std::process::Command {
    let own = p.tree.path().join("emptydir").join(pod_name);
    std::fs::create_dir_all(&own).unwrap();
    let mut cmd = in_pod(p, pod_name);
    cmd.env("MLOPS_DATA_DIR", &own).envs(s3.env());
    cmd
}

#[test]
fn pods_without_a_shared_volume_meet_in_the_object_store() {
    let Some(s3) = s3::start_s3() else { return };
    s3.create_bucket("fraud-models");
    let p = object_store_pod("pod-s3", "s3://fraud-models/prod");
    let port = free_port();
    let agent = start_agent_in(&mut in_pod_with_store(&p, "api-0", &s3), &p, port);
    wait_ready(port, 503, &agent, 30);

    // Two training Jobs at once, each on its own empty directory: the registry's lock in the
    // bucket gives them distinct versions, and neither registration is lost.
    let job = |name: &str| {
        in_pod_with_store(&p, name, &s3)
            .args(["train", "--spec"])
            .arg(&p.spec)
            .args([JOB, "--promote"])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (job("train-a"), job("train-b"));
    let mut versions = std::collections::BTreeSet::new();
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("(promoted)"), "{text}");
        let v = text.split(&format!("{JOB} version ")).nth(1).and_then(|t| t.split(':').next()).unwrap();
        versions.insert(v.parse::<u64>().unwrap());
    }
    assert_eq!(versions, [1, 2].into(), "each Job registered its own version");
    let keys = s3.keys("fraud-models", "prod/registry/");
    for v in [1, 2] {
        let model = format!("prod/registry/models/{JOB}/{v}/model.json");
        assert!(keys.contains(&model), "{model} not in {keys:?}");
    }
    assert!(keys.contains(&"prod/registry/index.json".to_string()), "{keys:?}");
    assert!(!keys.iter().any(|k| k.ends_with(".lock") || k.contains("/.")), "locks released: {keys:?}");

    // The serving pod, which shares no directory with either Job, serves what they promoted.
    wait_ready(port, 200, &agent, 30);
    let (code, body) = http(port, "POST", PREDICT, ROW).unwrap();
    assert_eq!(code, 200, "{body}");
    assert!([1, 2].contains(&answer(&body).0), "{body}");

    // The controller, on a directory of its own too, reads the replica's prediction log
    // through the bucket, and keeps its own state there.
    let control_port = free_port();
    let controller = start_controller(&mut in_pod_with_store(&p, "controller-0", &s3), &p, control_port);
    for _ in 0..20 {
        assert_eq!(http(port, "POST", PREDICT, ROW).unwrap().0, 200);
    }
    let seen_by_controller = p.tree.path().join("emptydir/controller-0/predictions/module.fraud.api/pods/api-0");
    let lines = || {
        std::fs::read_dir(&seen_by_controller)
            .map(|d| d.flatten().map(|f| std::fs::read_to_string(f.path()).unwrap_or_default().lines().count()).sum())
            .unwrap_or(0)
    };
    assert!(wait_until(20, || lines() >= 21), "the controller has {} of the replica's 21 predictions", lines());
    assert!(
        wait_until(10, || s3.keys("fraud-models", "prod/agent/").contains(&"prod/agent/controller.json".into())),
        "the controller's state is not in the bucket: {:?}",
        s3.keys("fraud-models", "prod/")
    );
    sigterm(controller.pid());
    let done = controller.finish(Duration::from_secs(30));
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);

    // The replica's prediction log is in the bucket, up to its last line once it stops.
    sigterm(agent.pid());
    let done = agent.finish(Duration::from_secs(30));
    assert_eq!(done.status.code(), Some(0), "{}", done.stderr);
    let logs = s3.keys("fraud-models", "prod/predictions/module.fraud.api/pods/api-0/");
    assert!(!logs.is_empty(), "the replica's prediction log was not uploaded");

    // A bucket that does not exist stops the pod at once, naming it and what to check.
    let bad = object_store_pod("pod-s3-bad", "s3://no-such-bucket/prod");
    let out = in_pod_with_store(&bad, "train-x", &s3)
        .args(["train", "--spec"])
        .arg(&bad.spec)
        .arg(JOB)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("s3://no-such-bucket/prod") && err.contains("check the bucket exists"), "{err}");
}

#[test]
fn a_version_a_training_job_proposes_goes_out_through_the_endpoints_rollout() {
    let Cluster { p, dir: _, ports, agents, controller, control_port: _ } = cluster("pod-propose", &[]);
    let loads = ports.map(|port| Load::start(port, 2, ROW));
    // The Job's command when a controller runs: the version is left for it to roll out.
    let out = in_pod(&p, "train-job")
        .args(["train", "--spec"])
        .arg(&p.spec)
        .args([JOB, "--propose"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(text.contains("(proposed: the controller rolls it out)"), "{text}");
    // Past the setup's own retrains, which the controller may have registered and rejected.
    let v: u64 =
        text.split(&format!("{JOB} version ")).nth(1).and_then(|t| t.split(':').next()).unwrap().parse().unwrap();
    let rollout_file = p.data.join("rollouts/module.fraud.api.json");
    let mut stepping = None;
    let promoted = wait_until(90, || {
        if let Some(r) =
            std::fs::read_to_string(&rollout_file).ok().and_then(|t| serde_json::from_str::<Value>(&t).ok())
        {
            if r["rollout"]["phase"]["phase"] == "stepping" && stepping.is_none() {
                stepping = Some(r);
            }
        }
        controller.stderr().contains(&format!("module.fraud.api: version {v} promoted on every pod"))
    });
    assert!(promoted, "{}", controller.stderr());
    let r = stepping.expect("the proposed version never went through the rollout's steps");
    assert_eq!((r["rollout"]["candidate"].as_u64(), r["rollout"]["previous"].as_u64()), (Some(v), Some(1)), "{r}");
    assert!(
        !p.data.join("rollouts/proposals").read_dir().is_ok_and(|mut d| d.next().is_some()),
        "proposal left behind"
    );
    for port in ports {
        let serves =
            wait_until(20, || http(port, "POST", PREDICT, ROW).is_some_and(|(c, b)| c == 200 && answer(&b).0 == v));
        assert!(serves, "replica on {port} does not serve version {v}");
    }
    for load in loads {
        load.wait_answers(10);
        let failures: Vec<String> = load.finish().into_iter().filter_map(|(_, o)| o.err()).collect();
        assert!(failures.is_empty(), "{failures:?}");
    }
    // Outside a pod there is no controller to leave it to.
    let out = mlops().args(["train", "examples/fraud-detection", JOB, "--propose"]).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--propose goes with --spec FILE"), "{}", stderr(&out));
    stop(agents.into_iter().chain([controller]));
}
