//! `mlops apply` killed with SIGKILL at 21 points, between and during resources. After each kill:
//! the state is readable and true (the next plan shows exactly what is left), a lock left behind
//! names its holder and is cleared with `mlops force-unlock`, and the next apply converges to
//! what one uninterrupted apply gives — same resources, spec hashes, produced values, feature
//! store and production model bytes.
//!
//! The product has no test hooks: the kill points are found from outside, by reading apply's
//! event lines as it prints them, by timing against the reference run's steps, and by watching
//! the model registry's files appear. The points: before any output; right after each of the 13
//! event lines (`--parallelism 1`); with three resources in flight; 30% and 70% into
//! materialisation and into training; while the model version is being registered; and between
//! its registration and its promotion. Each runs in a fresh copy of the fraud example; run with
//! `--nocapture` to see where each kill landed.

mod common;

use std::collections::BTreeMap;
use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{fraud_dir, fraud_tree, lock_id_in, stderr, stdout, Finished, Running, TempDir};
use mlops_runtime::state::{LocalState, StateBackend};
use serde_json::Value;

const JOB: &str = "module.fraud.training_job.model";
const VIEW: &str = "feature_view.account_activity";
/// Resources in the fraud example.
const RESOURCES: usize = 8;
/// Upper bound for anything to happen (a loaded CI machine trains slowly in a debug build).
const PATIENCE: Duration = Duration::from_secs(180);

/// Where an apply is killed.
#[derive(Debug, Clone, Copy)]
enum Point {
    /// At once after it is spawned, before it prints anything.
    BeforeOutput,
    /// Right after its k-th event line (1-based; `ADDRESS: Creating...`, `… Creation complete
    /// after …`, `… not applied: …`), with `--parallelism 1` so that the order is fixed.
    AfterEvent(usize),
    /// Right after its third event line with the default parallelism: the entity and both
    /// sources have started at once (apply starts every ready resource before it waits for one).
    InFlight,
    /// This fraction of the step's duration in the reference run after `ADDRESS: Creating...`.
    During(&'static str, f64),
    /// As soon as the registry has a directory for the model's first version: registration is
    /// writing the model's files, and the index does not list it yet.
    Registering,
    /// As soon as the registry's index exists: the version is registered; promotion and the
    /// state write follow.
    Registered,
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Point::BeforeOutput => write!(f, "before any output"),
            Point::AfterEvent(k) => write!(f, "right after event line {k} (--parallelism 1)"),
            Point::InFlight => write!(f, "right after event line 3, three resources in flight (default parallelism)"),
            Point::During(address, fraction) => {
                write!(f, "{:.0}% into {address} (timed from its reference duration)", fraction * 100.0)
            }
            Point::Registering => write!(f, "when the registry's version directory appears"),
            Point::Registered => write!(f, "when the registry's index appears"),
        }
    }
}

/// The kill points, for an apply that prints `events` event lines.
fn points(events: usize) -> Vec<Point> {
    let mut points = vec![Point::BeforeOutput];
    points.extend((1..=events).map(Point::AfterEvent));
    points.extend([
        Point::InFlight,
        Point::During(VIEW, 0.3),
        Point::During(VIEW, 0.7),
        Point::During(JOB, 0.3),
        Point::During(JOB, 0.7),
        Point::Registering,
        Point::Registered,
    ]);
    points
}

/// XGBoost's OpenMP threads spin while they wait by default, which on a shared two-core machine
/// mostly burns the other processes' time; waiting passively trains the same model, faster.
const OMP_WAIT: (&str, &str) = ("OMP_WAIT_POLICY", "PASSIVE");

/// `mlops`, run to completion.
fn mlops() -> assert_cmd::Command {
    let mut cmd = common::mlops();
    cmd.env(OMP_WAIT.0, OMP_WAIT.1);
    cmd
}

/// `mlops`, to run in the background.
fn mlops_process() -> std::process::Command {
    let mut cmd = common::mlops_process();
    cmd.env(OMP_WAIT.0, OMP_WAIT.1);
    cmd
}

fn is_event(line: &str) -> bool {
    !line.starts_with(' ')
        && [": Creating...", ": Creation complete after ", ": not applied: "].iter().any(|m| line.contains(m))
}

/// The complete event lines of an apply's output so far.
fn events(stdout: &str) -> Vec<&str> {
    stdout.split_inclusive('\n').filter(|l| l.ends_with('\n')).map(str::trim_end).filter(|l| is_event(l)).collect()
}

fn data(dir: &Path) -> PathBuf {
    dir.join(".mlops/data")
}

fn version_dir(dir: &Path, version: u64) -> PathBuf {
    data(dir).join(format!("registry/models/{JOB}/{version}"))
}

/// A fresh copy of the fraud example whose data files all carry the same modification time, so
/// that the sources' fingerprints (over paths, sizes and mtimes) agree between copies.
fn tree(tag: &str) -> TempDir {
    let tree = fraud_tree(tag);
    let data = fraud_dir(&tree).join("data");
    let when = std::time::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    for entry in std::fs::read_dir(&data).unwrap() {
        let file = std::fs::File::options().write(true).open(entry.unwrap().path()).unwrap();
        file.set_modified(when).unwrap();
    }
    tree
}

#[track_caller]
fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What an apply left, in the parts that must not depend on whether it was interrupted.
#[derive(Debug)]
struct Outcome {
    /// `mlops state list`.
    addresses: Vec<String>,
    /// Per resource: its spec hash and what it produced, without `version` and `model_uri` (the
    /// numbering may differ, see [`Applied::version`]) and `_reused` (whether a registered
    /// version was found instead of training again is how the result was reached, not what it is).
    resources: BTreeMap<String, (String, Value)>,
    /// The root outputs as recorded.
    outputs: Value,
    /// The registry's checksum of the production model.
    model_sha256: String,
    /// The view's committed offline run: rows, watermark, parts, fingerprints.
    features: Value,
    /// The view's online store.
    online: Value,
}

impl Outcome {
    fn json(&self) -> Value {
        serde_json::json!({
            "addresses": self.addresses,
            "resources": self.resources,
            "outputs": self.outputs,
            "model_sha256": self.model_sha256,
            "features": self.features,
            "online": self.online,
        })
    }

    /// Where `self` differs from `expected`, as JSON paths with both values (a few at most).
    fn differences(&self, expected: &Outcome) -> Vec<String> {
        let mut found = Vec::new();
        differ("", &self.json(), &expected.json(), &mut found);
        found.truncate(10);
        found
    }
}

fn differ(path: &str, got: &Value, expected: &Value, found: &mut Vec<String>) {
    match (got, expected) {
        (Value::Object(a), Value::Object(b)) => {
            for key in a.keys().chain(b.keys().filter(|k| !a.contains_key(*k))) {
                let (x, y) = (a.get(key).unwrap_or(&Value::Null), b.get(key).unwrap_or(&Value::Null));
                differ(&format!("{path}/{key}"), x, y, found);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                differ(&format!("{path}/{i}"), x, y, found);
            }
        }
        _ if got != expected => {
            let short = |v: &Value| v.to_string().chars().take(200).collect::<String>();
            found.push(format!("{path}: {} (reference: {})", short(got), short(expected)));
        }
        _ => {}
    }
}

/// A converged apply.
struct Applied {
    same: Outcome,
    /// The production model's version number.
    version: u64,
    /// The production model file.
    model: Vec<u8>,
    /// The apply found that version registered already instead of training.
    reused: bool,
}

/// Reads what a finished apply left in `dir`, checking that the state and the registry agree.
#[track_caller]
fn applied(dir: &Path, ctx: &str) -> Applied {
    let out = mlops().args(["state", "list"]).arg(dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{ctx}: state list\n{}", stderr(&out));
    let addresses: Vec<String> = stdout(&out).lines().map(str::to_string).collect();

    // Each tree serves on its own port: compare the endpoint's URL without it.
    let hcl = std::fs::read_to_string(dir.join("main.mlops.hcl")).unwrap();
    let address = hcl.split("address = \"").nth(1).and_then(|a| a.split('"').next()).unwrap().to_string();
    let path = dir.join(".mlops/state/state.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let state: Value = serde_json::from_str(&text.replace(&address, "ADDRESS")).unwrap();
    let mut resources = BTreeMap::new();
    let (mut version, mut reused) = (None, false);
    for (address, r) in state["resources"].as_object().unwrap() {
        let mut produced = r["produced"].as_object().unwrap().clone();
        if address.as_str() != JOB {
            produced.remove("version");
        }
        reused |= produced.remove("_reused") == Some(Value::Bool(true));
        // The endpoint records the job's version too.
        if let Some(v) = produced.remove("version").filter(|_| address.as_str() == JOB) {
            let v = v.as_u64().unwrap();
            let uri = produced.remove("model_uri").unwrap();
            let expected = version_dir(dir, v).join("model.json");
            assert_eq!(Path::new(uri.as_str().unwrap()), expected, "{ctx}: model_uri of {address}");
            version = Some(v);
        }
        let hash = r["spec"]["hash"].as_str().unwrap().to_string();
        resources.insert(address.clone(), (hash, Value::Object(produced)));
    }
    let version = version.unwrap_or_else(|| panic!("{ctx}: no model version in the state"));

    // Exactly one version is registered, the one the state names, in production: an interrupted
    // registration may have left a numbered directory, never an index entry.
    let index = read_json(&data(dir).join("registry/index.json"));
    assert_eq!(
        index["jobs"][JOB]["versions"],
        serde_json::json!([{ "version": version, "status": "production" }]),
        "{ctx}: registry index"
    );
    let meta = read_json(&version_dir(dir, version).join("meta.json"));
    let model = std::fs::read(version_dir(dir, version).join("model.json")).unwrap();
    Applied {
        same: Outcome {
            addresses,
            resources,
            outputs: state["outputs"].clone(),
            model_sha256: meta["model_sha256"].as_str().unwrap().to_string(),
            features: read_json(&data(dir).join(format!("features/offline/{VIEW}/_state.json"))),
            online: read_json(&data(dir).join(format!("features/online/{VIEW}.json"))),
        },
        version,
        model,
        reused,
    }
}

/// The uninterrupted apply, and how long its slow steps took.
struct Reference {
    result: Applied,
    events: usize,
    materialise: Duration,
    train: Duration,
}

impl Reference {
    fn duration(&self, address: &str) -> Duration {
        match address {
            VIEW => self.materialise,
            JOB => self.train,
            other => panic!("no reference duration for {other}"),
        }
    }
}

fn reference() -> Reference {
    let tree = tree("crash-ref");
    let dir = fraud_dir(&tree);
    let run = Running::spawn(mlops_process().args(["apply", "--auto-approve"]).arg(&dir));
    let at = |line: String| {
        assert!(run.wait_for(PATIENCE, |out| out.contains(&line)), "reference apply never printed {line}");
        Instant::now()
    };
    let view_started = at(format!("{VIEW}: Creating..."));
    let view_done = at(format!("{VIEW}: Creation complete"));
    let job_started = at(format!("{JOB}: Creating..."));
    let job_done = at(format!("{JOB}: Creation complete"));
    let out = run.finish(PATIENCE);
    assert!(out.status.success(), "reference apply failed\n{}\n{}", out.stdout, out.stderr);
    let result = applied(&dir, "reference");
    assert_eq!(result.same.addresses.len(), RESOURCES, "{:?}", result.same.addresses);
    Reference {
        result,
        events: events(&out.stdout).len(),
        materialise: view_done - view_started,
        train: job_done - job_started,
    }
}

/// Polls `ready` every millisecond while `run` is alive; false when the output ended first.
fn poll(run: &Running, ready: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if ready() {
            return true;
        }
        if run.output_ended() || Instant::now() > deadline {
            return ready();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Runs `apply --auto-approve` in `dir` and SIGKILLs it at `point`.
fn kill_at(dir: &Path, point: Point, reference: &Reference) -> (u32, Finished) {
    let mut cmd = mlops_process();
    cmd.args(["apply", "--auto-approve"]).arg(dir);
    if let Point::AfterEvent(_) = point {
        cmd.args(["--parallelism", "1"]);
    }
    let mut run = Running::spawn(&mut cmd);
    let pid = run.pid();
    let reached = match point {
        Point::BeforeOutput => true,
        Point::AfterEvent(k) => run.wait_for(PATIENCE, |out| events(out).len() >= k),
        Point::InFlight => {
            let reached = run.wait_for(PATIENCE, |out| events(out).len() >= 3);
            let started = events(&run.stdout()).iter().take(3).filter(|l| l.ends_with(": Creating...")).count();
            assert_eq!(started, 3, "{point}: the first three events are not three starts\n{}", run.stdout());
            reached
        }
        Point::During(address, fraction) => {
            let started = format!("{address}: Creating...");
            let reached = run.wait_for(PATIENCE, |out| out.contains(&started));
            std::thread::sleep(reference.duration(address).mul_f64(fraction));
            reached
        }
        Point::Registering => poll(&run, || version_dir(dir, 1).exists()),
        Point::Registered => poll(&run, || data(dir).join("registry/index.json").exists()),
    };
    run.kill();
    let out = run.finish(PATIENCE);
    assert!(reached, "kill point {point}: apply ended before it\n{}\n{}", out.stdout, out.stderr);
    (pid, out)
}

/// One kill point, start to finish. Returns a line for the summary.
fn crash_and_converge(n: usize, point: Point, reference: &Reference) -> String {
    let tree = tree(&format!("crash-{n}"));
    let dir = fraud_dir(&tree);
    let (pid, killed) = kill_at(&dir, point, reference);
    let landed = events(&killed.stdout).last().map_or("(no event line)".to_string(), |l| l.to_string());
    let how = match (killed.status.signal(), killed.status.code()) {
        (Some(9), _) => "killed".to_string(),
        (_, Some(0)) => "had already finished".to_string(),
        _ => panic!("kill point {n} ({point}): unexpected end {:?}\n{}", killed.status, killed.stderr),
    };
    let ctx = format!(
        "kill point {n} ({point}; {how} after: {landed})\nkilled apply's events:\n  {}\nits stderr:\n{}",
        events(&killed.stdout).join("\n  "),
        killed.stderr
    );

    // (a) The state is readable, and true: the plan shows exactly what is left to do.
    let out = mlops().args(["state", "list"]).arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{ctx}\nstate list:\n{}", stderr(&out));
    let backend = LocalState::new(dir.join(".mlops/state"));
    let state = backend.read().unwrap_or_else(|e| panic!("{ctx}\nthe state does not read: {e}"));
    let recorded = match &state {
        None => {
            assert!(stdout(&out).starts_with("No state yet"), "{ctx}\n{}", stdout(&out));
            0
        }
        Some(s) => {
            let listed = stdout(&out);
            let listed: Vec<&str> = listed.lines().collect();
            assert_eq!(listed, s.resources.keys().map(String::as_str).collect::<Vec<_>>(), "{ctx}");
            for v in backend.history().unwrap_or_else(|e| panic!("{ctx}\nhistory: {e}")) {
                let kept = backend.read_version(v.serial);
                assert!(kept.is_ok(), "{ctx}\nversion {} does not read: {}", v.serial, kept.unwrap_err());
            }
            assert!(backend.read_version(s.serial).is_ok(), "{ctx}: version {} not kept", s.serial);
            s.resources.len()
        }
    };
    let out = mlops().arg("plan").arg(&dir).arg("--detailed-exitcode").output().unwrap();
    // Killed after the last resource was recorded: nothing is left to do.
    let (expected, code) = if recorded == RESOURCES {
        ("No changes.".to_string(), 0)
    } else {
        (format!("Plan: {} to create, 0 to update, 0 to replace, 0 to destroy.", RESOURCES - recorded), 2)
    };
    assert_eq!(out.status.code(), Some(code), "{ctx}\nplan:\n{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains(&expected), "{ctx}\nexpected {expected}\n{}", stdout(&out));

    // (b) A lock left behind stops the next apply at once, naming the killed process and the
    // lock's id; force-unlock with that id clears it.
    let lock_file = dir.join(".mlops/state/.lock");
    let lock_left = lock_file.exists();
    if lock_left {
        let started = Instant::now();
        let out = mlops().args(["apply", "--auto-approve"]).arg(&dir).output().unwrap();
        let took = started.elapsed();
        let message = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{ctx}\napply with the lock left:\n{}{message}", stdout(&out));
        assert!(took < Duration::from_secs(20), "{ctx}\napply waited {took:?} on the lock");
        assert!(message.contains("is locked"), "{ctx}\n{message}");
        let id = lock_id_in(&message).unwrap_or_else(|| panic!("{ctx}\nno lock id in: {message}"));
        match serde_json::from_slice::<Value>(&std::fs::read(&lock_file).unwrap()) {
            Ok(record) => {
                assert_eq!(record["pid"], pid, "{ctx}\nthe lock names another process");
                assert_eq!(record["id"], id.as_str(), "{ctx}");
                for part in [
                    format!("(pid {pid})"),
                    "running `apply`".to_string(),
                    format!("lock id {id}"),
                    format!("by {}", record["who"].as_str().unwrap()),
                    format!("process {pid} is no longer running on this host"),
                ] {
                    assert!(message.contains(&part), "{ctx}\n`{part}` missing from: {message}");
                }
            }
            // Killed between creating the lock file and writing it: no holder to name, but
            // still an id to clear it with.
            Err(_) => assert!(message.contains("holds no readable lock record"), "{ctx}\n{message}"),
        }
        let out = mlops().arg("force-unlock").arg(&id).arg(&dir).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{ctx}\nforce-unlock {id}:\n{}", stderr(&out));
        assert!(!lock_file.exists(), "{ctx}: force-unlock left the lock file");
    }

    // (c) The next apply converges to the uninterrupted result.
    let out = mlops().args(["apply", "--auto-approve"]).arg(&dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{ctx}\nconverging apply:\n{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("Apply complete!"), "{ctx}\n{}", stdout(&out));
    let result = applied(&dir, &ctx);
    let differences = result.same.differences(&reference.result.same);
    assert!(differences.is_empty(), "{ctx}\nconverged result differs from the reference:\n{}", differences.join("\n"));
    assert!(result.model == reference.result.model, "{ctx}\nproduction model bytes differ from the reference");
    if result.version != reference.result.version {
        // Only a registration killed after creating its version directory and before writing
        // the index consumes a number: that directory is still there, unlisted.
        let training = killed.stdout.contains(&format!("{JOB}: Creating..."))
            && !killed.stdout.contains(&format!("{JOB}: Creation complete"));
        assert!(training, "{ctx}\nversion {} instead of {}", result.version, reference.result.version);
        assert_eq!(result.version, reference.result.version + 1, "{ctx}\none kill consumes one number at most");
        assert!(version_dir(&dir, reference.result.version).is_dir(), "{ctx}");
    }

    // (d) Nothing is left to do.
    let out = mlops().arg("plan").arg(&dir).arg("--detailed-exitcode").output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{ctx}\nfinal plan:\n{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("No changes."), "{ctx}\n{}", stdout(&out));

    format!(
        "{n:>2}. {point}: {how} after `{landed}`; {recorded} resources recorded, lock {}; converged to version {}{}",
        if lock_left { "left and force-unlocked" } else { "not left" },
        result.version,
        if result.reused { " (found registered, not trained again)" } else { "" }
    )
}

#[test]
fn sigkill_at_each_point_then_apply_converges() {
    let started = Instant::now();
    let reference = reference();
    assert_eq!(reference.events, 16, "event lines of the fraud apply (8 resources, Creating and complete)");
    let points = points(reference.events);
    assert!(points.len() >= 20, "{points:?}");
    let mut summary = vec![format!(
        "reference: materialisation {:?}, training {:?}, version {}",
        reference.materialise, reference.train, reference.result.version
    )];
    for (i, point) in points.into_iter().enumerate() {
        summary.push(crash_and_converge(i + 1, point, &reference));
    }
    summary.push(format!("total {:?}", started.elapsed()));
    eprintln!("{}", summary.join("\n"));
}
