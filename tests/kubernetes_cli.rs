//! The kubernetes target through the binary: `mlops build` on every example (and on
//! `tests/fixtures/kubernetes`, which uses what the examples do not: GPUs, a schedule,
//! autoscaling, ServiceMonitors; and on `tests/fixtures/kubernetes_object_store`, the same system
//! with its data in an object store instead of a shared volume) gives manifests that Kubernetes' own schemas accept, strictly,
//! for the oldest and newest versions `kubernetes-validate` bundles; `plan` shows exactly the
//! objects a change touches, and `apply` writes them and converges.
//!
//! `kubernetes-validate` comes from PyPI (`scripts/setup.sh` installs it). Without it this test
//! fails under CI (`CI` set) and is skipped, loudly, elsewhere. It knows no CRDs, so the
//! ServiceMonitors are checked here instead (structure, and that they select their Service).

mod common;

use common::{mlops, root, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;

const IMAGE: &str = "ghcr.io/example/mlops-runtime:0.1.0";
/// The oldest and the newest Kubernetes whose schemas kubernetes-validate 1.37 bundles.
const VERSIONS: [&str; 2] = ["1.25.0", "1.37.0"];

fn systems() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            std::fs::read_dir(p)
                .is_ok_and(|mut d| d.any(|f| f.is_ok_and(|f| f.file_name().to_string_lossy().ends_with(".mlops.hcl"))))
        })
        .collect();
    v.sort();
    assert!(v.len() >= 3, "expected the three examples, found {v:?}");
    v.push(root().join("tests/fixtures/kubernetes"));
    v.push(root().join("tests/fixtures/kubernetes_object_store"));
    v
}

/// The validator's command, or `None` (after saying so) when it is not installed outside CI.
fn validator() -> Option<Vec<String>> {
    let works =
        |cmd: &[&str]| Command::new(cmd[0]).args(&cmd[1..]).arg("--version").output().is_ok_and(|o| o.status.success());
    for cmd in [&["kubernetes-validate"][..], &["python3", "-m", "kubernetes_validate"][..]] {
        if works(cmd) {
            return Some(cmd.iter().map(|s| s.to_string()).collect());
        }
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    assert!(!ci, "kubernetes-validate is not installed: run scripts/setup.sh (pip install kubernetes-validate)");
    eprintln!(
        "SKIPPED: kubernetes-validate is not installed, the manifests were not checked against Kubernetes' schemas (scripts/setup.sh installs it)"
    );
    None
}

fn build(dir: &Path, out: &Path) -> Vec<PathBuf> {
    let o = mlops()
        .args(["build"])
        .arg(dir)
        .args(["--target", "kubernetes", "--image", IMAGE, "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "build {}: {}", dir.display(), String::from_utf8_lossy(&o.stderr));
    let mut files: Vec<PathBuf> = std::fs::read_dir(out).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

#[test]
fn every_example_builds_to_manifests_that_kubernetes_accepts() {
    let tmp = TempDir::new("k8s-validate");
    let validate = validator();
    for dir in systems() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let out = tmp.path().join(&name);
        let files = build(&dir, &out);
        let file_name = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
        // Not Kubernetes API objects: the kustomization, and the Prometheus operator's CRD kind
        // (checked below). Everything else is validated.
        let objects: Vec<&PathBuf> = files
            .iter()
            .filter(|p| file_name(p) != "kustomization.yaml" && !file_name(p).starts_with("servicemonitor-"))
            .collect();
        assert!(objects.len() >= 10, "{name}: {objects:?}");
        // The shared volume, unless the data lives in an object store.
        let pvc = files.iter().any(|p| file_name(p).starts_with("persistentvolumeclaim-"));
        assert_eq!(pvc, name != "kubernetes_object_store", "{name}: {files:?}");
        if let Some(cmd) = &validate {
            for version in VERSIONS {
                let o = Command::new(&cmd[0])
                    .args(&cmd[1..])
                    .args(["--strict", "--quiet", "-k", version])
                    .args(&objects)
                    .output()
                    .unwrap();
                let said = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
                assert!(o.status.success() && said.trim().is_empty(), "{name} on Kubernetes {version}:\n{said}");
            }
        }
        check_structure(&name, &out);
    }
}

/// What the schemas cannot say, read with PyYAML: the kustomization lists exactly the objects;
/// each ServiceMonitor selects its Service's pods' port; Deployments' selectors match their
/// pods; every runtime pod's `data` volume is the system's PersistentVolumeClaim or, with no PVC
/// (`object_store`), an emptyDir with the optional object-store Secret in every container's
/// `envFrom`; the spec ConfigMap is the compiled spec byte for byte.
fn check_structure(name: &str, out: &Path) {
    const SCRIPT: &str = r#"
import json, os, sys, yaml
out, spec = sys.argv[1], sys.argv[2]
files = sorted(f for f in os.listdir(out) if f.endswith(".yaml"))
docs = {f: yaml.safe_load(open(os.path.join(out, f))) for f in files}
k = docs.pop("kustomization.yaml")
assert k["kind"] == "Kustomization" and k["resources"] == sorted(docs), (k["resources"], sorted(docs))
by = {(d["kind"], d["metadata"]["name"]): d for d in docs.values()}
for d in docs.values():
    if d["kind"] == "Deployment":
        sel = d["spec"]["selector"]["matchLabels"]
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(a) == b for a, b in sel.items()), d["metadata"]["name"]
    if d["kind"] == "ServiceMonitor":
        assert d["apiVersion"] == "monitoring.coreos.com/v1", d
        svc = by[("Service", d["metadata"]["name"])]
        assert d["spec"]["selector"]["matchLabels"] == {a: b for a, b in svc["metadata"]["labels"].items() if a in d["spec"]["selector"]["matchLabels"]}
        assert d["spec"]["namespaceSelector"]["matchNames"] == [svc["metadata"]["namespace"]]
        assert [e["port"] for e in d["spec"]["endpoints"]] == [p["name"] for p in svc["spec"]["ports"]]
        assert set(d["spec"]["endpoints"][0]) <= {"port", "path", "interval"}
pvcs = [d["metadata"]["name"] for d in docs.values() if d["kind"] == "PersistentVolumeClaim"]
assert len(pvcs) <= 1, pvcs
pods = 0
for d in docs.values():
    if d["kind"] in ("Deployment", "Job"):
        pod = d["spec"]["template"]["spec"]
    elif d["kind"] == "CronJob":
        pod = d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    else:
        continue
    pods += 1
    what = (d["kind"], d["metadata"]["name"])
    data = [v for v in pod["volumes"] if v["name"] == "data"]
    assert len(data) == 1, what
    for c in pod["containers"]:
        assert {"name": "data", "mountPath": "/var/lib/mlops/data"} in c["volumeMounts"], what
        assert {"name": "MLOPS_DATA_DIR", "value": "/var/lib/mlops/data"} in c["env"], what
        if pvcs:
            assert "envFrom" not in c, what
        else:
            secret = d["metadata"]["labels"]["app.kubernetes.io/part-of"] + "-object-store"
            assert c["envFrom"] == [{"secretRef": {"name": secret, "optional": True}}], what
    if pvcs:
        assert data[0] == {"name": "data", "persistentVolumeClaim": {"claimName": pvcs[0]}}, what
    else:
        assert data[0] == {"name": "data", "emptyDir": {}}, what
assert pods >= 2, pods
cms = [d for d in docs.values() if d["kind"] == "ConfigMap"]
assert len(cms) == 1
if spec:
    assert cms[0]["data"]["spec.json"] == open(spec).read(), "spec.json differs from mlops compile"
"#;
    // The examples that declare the kubernetes target compile to the very spec the pods read.
    let spec = if name == "multi-region" {
        let o = mlops().args(["compile", "examples/multi-region"]).output().unwrap();
        assert!(o.status.success());
        let path = out.with_extension("spec.json");
        std::fs::write(&path, &o.stdout).unwrap();
        path.to_string_lossy().into_owned()
    } else {
        String::new()
    };
    let o = Command::new("python3").args(["-c", SCRIPT]).arg(out).arg(&spec).output().expect("python3 runs");
    assert!(o.status.success(), "{name}: {}", String::from_utf8_lossy(&o.stderr));
}

/// The object lines of a plan (`  + Kind name (file)`), without the file names.
fn plan_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("  + ") || l.starts_with("  ~ ") || l.starts_with("  - "))
        .map(|l| l.split(" (").next().unwrap().to_string())
        .collect()
}

fn run(args: &[&str], dir: &Path) -> (i32, String, String) {
    let o = mlops().args(args).arg(dir).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn plan_shows_the_changed_objects_and_apply_converges() {
    let tmp = TempDir::new("k8s-apply");
    let dir = tmp.path().join("vision");
    let fixture = std::fs::read_to_string(root().join("tests/fixtures/kubernetes/main.mlops.hcl")).unwrap();
    tmp.write("vision/main.mlops.hcl", &fixture);
    let out = dir.join("manifests");

    let (code, text, err) = run(&["plan", "--detailed-exitcode"], &dir);
    assert_eq!(code, 2, "{text}{err}");
    assert!(text.contains("Plan: 14 to add, 0 to change, 0 to remove."), "{text}");
    assert!(!out.exists(), "plan writes nothing");

    let (code, text, err) = run(&["apply", "--auto-approve"], &dir);
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains("Apply complete! Manifests: 14 added, 0 changed, 0 removed"), "{text}");
    assert!(text.contains("kubectl apply -k"), "{text}");
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 14);
    // A file of the user's in the folder is not mlops's to remove.
    std::fs::write(out.join("secret.yaml"), "apiVersion: v1\nkind: Secret\n").unwrap();

    let (code, text, _) = run(&["plan", "--detailed-exitcode"], &dir);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("No changes."), "{text}");

    // A training parameter: the spec changes (ConfigMap, and the pods that roll with it), the
    // training run is a new Job, the old one goes, the kustomization lists the new one.
    let old_job = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|f| f.starts_with("job-"))
        .unwrap();
    tmp.write("vision/main.mlops.hcl", &fixture.replace("max_depth = 4", "max_depth = 5"));
    let (code, text, err) = run(&["plan", "--detailed-exitcode"], &dir);
    assert_eq!(code, 2, "{text}{err}");
    let lines = plan_lines(&text);
    let old_job_name = old_job.trim_start_matches("job-").trim_end_matches(".yaml");
    let new_job = lines.iter().find(|l| l.starts_with("  + Job ")).expect("a new Job").clone();
    assert_ne!(new_job, format!("  + Job {old_job_name}"));
    // Objects come in file order, so the two Jobs' order follows their hashes.
    let mut expected = [
        "  ~ ConfigMap vision-scoring-spec",
        "  ~ CronJob vision-scoring-defect-model",
        "  ~ Deployment vision-scoring-controller",
        "  ~ Deployment vision-scoring-defect-api",
        &new_job,
        &format!("  - Job {old_job_name}"),
        "  ~ Kustomization vision-scoring",
    ]
    .map(str::to_string);
    let mut sorted = lines.clone();
    sorted.sort();
    expected.sort();
    assert_eq!(sorted, expected, "{text}");
    // The ConfigMap's line diff shows the parameter.
    let diff_line = |sign: &str, v: u8| {
        text.lines().any(|l| {
            l.strip_prefix("      ").is_some_and(|l| l.starts_with(sign) && l.contains(&format!("\"max_depth\": {v}")))
        })
    };
    assert!(diff_line("-", 4) && diff_line("+", 5), "{text}");
    assert!(text.contains("Plan: 1 to add, 5 to change, 1 to remove."), "{text}");

    let (code, text, err) = run(&["apply", "--auto-approve"], &dir);
    assert_eq!(code, 0, "{text}{err}");
    assert!(!out.join(&old_job).exists());
    assert!(out.join("secret.yaml").exists());
    let (code, text, _) = run(&["apply", "--auto-approve"], &dir);
    assert_eq!(code, 0);
    assert!(text.starts_with("No changes."), "{text}");

    // Destroy removes what mlops wrote, and only that.
    let (code, text, err) = run(&["destroy", "--auto-approve"], &dir);
    assert_eq!(code, 0, "{text}{err}");
    let left: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, ["secret.yaml"]);
}

#[test]
fn building_without_an_image_is_a_diagnostic() {
    let tmp = TempDir::new("k8s-noimage");
    let o = mlops().args(["build", "examples/fraud-detection", "--out"]).arg(tmp.path().join("out")).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("mlops::kubernetes::missing_image"), "{err}");
    assert!(err.contains("(target chosen on the command line)"), "{err}");
    assert!(!tmp.path().join("out").exists());
    // A bad namespace on the command line too.
    let o = mlops()
        .args(["build", "examples/fraud-detection", "--image", IMAGE, "--namespace", "Fraud", "--out"])
        .arg(tmp.path().join("out"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("mlops::kubernetes::invalid_name") && err.contains("namespace \"Fraud\""), "{err}");
}

/// `args` then `dir`, as [`run`], with paths among the arguments.
fn run_with(args: &[&std::ffi::OsStr], dir: &Path) -> (i32, String, String) {
    let o = mlops().args(args).arg(dir).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// (action, kind, name) of every change of a JSON plan.
fn json_changes(v: &serde_json::Value) -> Vec<(String, String, String)> {
    v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap().to_string();
            (s("action"), s("kind"), s("name"))
        })
        .collect()
}

/// Every file of a folder, by name.
fn folder(dir: &Path) -> std::collections::BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect()
}

#[test]
fn plan_as_json_and_markdown_and_saved_plans_applied_as_reviewed() {
    let tmp = TempDir::new("k8s-saved");
    let dir = tmp.path().join("vision");
    let fixture = std::fs::read_to_string(root().join("tests/fixtures/kubernetes/main.mlops.hcl")).unwrap();
    tmp.write("vision/main.mlops.hcl", &fixture);
    let out = dir.join("manifests");
    let os = |s: &str| std::ffi::OsString::from(s);

    // A fresh folder: every object is added.
    let (code, text, err) = run(&["plan", "--json", "--detailed-exitcode"], &dir);
    assert_eq!(code, 2, "{text}{err}");
    let v = json(&text);
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["target"], "kubernetes");
    assert_eq!(v["system"], "vision_scoring");
    assert_eq!(v["out"], "manifests");
    assert_eq!(v["summary"], serde_json::json!({"add": 14, "change": 0, "remove": 0, "unchanged": 0}));
    let changes = json_changes(&v);
    assert!(changes.iter().all(|(a, _, _)| a == "add"), "{changes:?}");
    assert!(changes.contains(&("add".into(), "Deployment".into(), "vision-scoring-defect-api".into())), "{changes:?}");
    assert!(changes.contains(&("add".into(), "Kustomization".into(), "vision-scoring".into())), "{changes:?}");
    assert!(!out.exists(), "plan writes nothing");
    let (code, md, err) = run(&["plan", "--format", "markdown", "--detailed-exitcode"], &dir);
    assert_eq!(code, 2, "{md}{err}");
    assert!(md.contains("**Plan: 14 to add, 0 to change, 0 to remove.**"), "{md}");
    assert!(md.contains("| `+` | add | Deployment | `vision-scoring-defect-api` |"), "{md}");

    // Saved, then applied: exactly the planned files, without a question.
    let first = tmp.path().join("first.plan");
    let (code, text, err) = run_with(&[&os("plan"), &os("--out"), first.as_os_str(), &os("--detailed-exitcode")], &dir);
    assert_eq!(code, 2, "{text}{err}");
    assert!(err.contains("Saved the plan to"), "{err}");
    let saved = json(&std::fs::read_to_string(&first).unwrap());
    assert_eq!(saved["summary"]["add"], 14);
    assert!(!out.exists(), "plan --out writes nothing but the plan");
    let (code, text, err) = run_with(&[&os("apply"), first.as_os_str()], &dir);
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains("Apply complete! Manifests: 14 added, 0 changed, 0 removed"), "{text}");
    let written = folder(&out);
    assert_eq!(written.len(), 14);
    for c in saved["changes"].as_array().unwrap() {
        assert_eq!(written[c["file"].as_str().unwrap()], c["content"].as_str().unwrap());
    }
    let (code, text, _) = run(&["plan", "--detailed-exitcode"], &dir);
    assert_eq!(code, 0, "{text}");
    assert!(text.starts_with("No changes."), "{text}");
    let (code, text, _) = run(&["plan", "--json", "--detailed-exitcode"], &dir);
    assert_eq!(code, 0, "{text}");
    let v = json(&text);
    assert_eq!(v["changes"], serde_json::json!([]));
    assert_eq!(v["summary"]["unchanged"], 14);
    let (_, md, _) = run(&["plan", "--format", "markdown"], &dir);
    assert!(md.contains("**No changes.**"), "{md}");

    // The same plan again: the folder is no longer what it was planned against.
    let (code, text, err) = run_with(&[&os("apply"), first.as_os_str()], &dir);
    assert_eq!(code, 1, "{text}{err}");
    assert!(err.contains("the manifest folder changed since this plan was made"), "{err}");
    assert!(err.contains("run `mlops plan` again"), "{err}");

    // A change of the endpoint's replicas: JSON and markdown show the objects and the line diff.
    tmp.write("vision/main.mlops.hcl", &fixture.replace("min_replicas = 2", "min_replicas = 3"));
    let (code, text, err) = run(&["plan", "--json", "--detailed-exitcode"], &dir);
    assert_eq!(code, 2, "{text}{err}");
    let v = json(&text);
    let changes = json_changes(&v);
    assert!(changes.iter().all(|(a, _, _)| a == "change"), "{changes:?}");
    assert!(changes.contains(&("change".into(), "HorizontalPodAutoscaler".into(), "vision-scoring-defect-api".into())));
    assert!(changes.contains(&("change".into(), "ConfigMap".into(), "vision-scoring-spec".into())));
    let hpa = v["changes"].as_array().unwrap().iter().find(|c| c["kind"] == "HorizontalPodAutoscaler").unwrap();
    let diff = hpa["diff"].as_str().unwrap();
    assert!(diff.lines().any(|l| l == "-  minReplicas: 2") && diff.lines().any(|l| l == "+  minReplicas: 3"), "{diff}");
    assert_ne!(hpa["before_sha256"], hpa["after_sha256"]);
    let (code, md, err) = run(&["plan", "--format", "markdown", "--detailed-exitcode"], &dir);
    assert_eq!(code, 2, "{md}{err}");
    assert!(md.contains("| `~` | change | HorizontalPodAutoscaler | `vision-scoring-defect-api` |"), "{md}");
    assert!(
        md.contains(
            "<details><summary><code>~</code> HorizontalPodAutoscaler <code>vision-scoring-defect-api</code></summary>"
        ),
        "{md}"
    );
    assert!(md.contains("```diff\n") && md.contains("\n+  minReplicas: 3\n"), "{md}");

    // Saved, then the folder is edited under it: refused, nothing written.
    let second = tmp.path().join("second.plan");
    let (code, _, err) = run_with(&[&os("plan"), &os("--out"), second.as_os_str()], &dir);
    assert_eq!(code, 0, "{err}");
    let hpa_file = out.join("horizontalpodautoscaler-vision-scoring-defect-api.yaml");
    let edited = std::fs::read_to_string(&hpa_file).unwrap() + "# edited by hand\n";
    std::fs::write(&hpa_file, &edited).unwrap();
    let before = folder(&out);
    let (code, text, err) = run_with(&[&os("apply"), second.as_os_str()], &dir);
    assert_eq!(code, 1, "{text}{err}");
    assert!(err.contains("the manifest folder changed since this plan was made"), "{err}");
    assert_eq!(folder(&out), before, "a refused plan writes nothing");

    // Planned again, it applies, and the folder converges.
    let (code, _, err) = run_with(&[&os("plan"), &os("--out"), second.as_os_str()], &dir);
    assert_eq!(code, 0, "{err}");
    let shown = mlops().arg("show").arg(&second).output().unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(shown.contains("  ~ HorizontalPodAutoscaler vision-scoring-defect-api ("), "{shown}");
    let (code, text, err) = run_with(&[&os("apply"), second.as_os_str()], &dir);
    assert_eq!(code, 0, "{text}{err}");
    assert!(!std::fs::read_to_string(&hpa_file).unwrap().contains("# edited by hand"));
    let (code, text, _) = run(&["plan", "--detailed-exitcode"], &dir);
    assert_eq!(code, 0, "{text}");

    // A plan of the other target, either way round, is refused.
    let fraud = common::fraud_tree("k8s-local-plan");
    let fraud_dir = common::fraud_dir(&fraud);
    let local = fraud.path().join("local.plan");
    let (code, _, err) = run_with(&[&os("plan"), &os("--refresh=false"), &os("--out"), local.as_os_str()], &fraud_dir);
    assert_eq!(code, 0, "{err}");
    let (code, text, err) = run_with(&[&os("apply"), local.as_os_str()], &dir);
    assert_eq!(code, 1, "{text}{err}");
    assert!(err.contains("is a plan for the local target, but this configuration's target is kubernetes"), "{err}");
    let (code, text, err) = run_with(&[&os("apply"), second.as_os_str()], &fraud_dir);
    assert_eq!(code, 1, "{text}{err}");
    assert!(err.contains("is a plan for the kubernetes target, but this configuration's target is local"), "{err}");
    assert!(!text.contains("Apply complete"), "{text}");

    // Cut short, or not a plan at all: refused with what is wrong.
    let before = folder(&out);
    let text = std::fs::read_to_string(&second).unwrap();
    let half = (0..=text.len() / 2).rev().find(|i| text.is_char_boundary(*i)).unwrap();
    for (name, junk) in [("cut.plan", &text[..half]), ("junk.plan", "not a plan\n")] {
        let f = tmp.write(name, junk);
        let (code, text, err) = run_with(&[&os("apply"), f.as_os_str()], &dir);
        assert_eq!(code, 1, "{name}: {text}{err}");
        assert!(err.contains("is not a saved plan") && err.contains("invalid plan file"), "{name}: {err}");
    }
    // A planned file's content altered: its hash says so.
    let f = tmp.write("altered.plan", &text.replace("minReplicas: 3", "minReplicas: 30"));
    let (code, _, err) = run_with(&[&os("apply"), f.as_os_str()], &dir);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("does not match its after_sha256"), "{err}");
    assert_eq!(folder(&out), before);

    // --destroy and --refresh-only stay refused.
    let (code, _, err) = run(&["plan", "--destroy"], &dir);
    assert_eq!(code, 1);
    assert!(err.contains("--destroy and --refresh-only are not supported there"), "{err}");
}
