//! Kubernetes manifests: every example's are snapshotted (compiled for the kubernetes target, as
//! `mlops build --target kubernetes --image …` does for the examples that declare the local
//! one), generated twice to the same bytes, and hold the contract with the runtime (the spec
//! ConfigMap is the compiled spec, names and labels follow the conventions). Their validity
//! against Kubernetes' own schemas is checked by `tests/kubernetes_cli.rs` at the workspace root.

#[path = "support/examples.rs"]
mod examples_dir;

use examples_dir::{examples, root};
use mlops_compiler::compile::KubernetesOverride;
use mlops_compiler::emit::kubernetes::{emit, Manifest};
use mlops_compiler::spec::SystemSpec;
use mlops_compiler::{compile, Options};
use std::path::Path;

/// The image the snapshots are generated with.
const IMAGE: &str = "ghcr.io/example/mlops-runtime:0.1.0";

fn compile_for_kubernetes(dir: &Path) -> SystemSpec {
    let options = Options {
        display_base: Some(root()),
        kubernetes: Some(KubernetesOverride { image: Some(IMAGE.into()), namespace: None }),
        ..Options::default()
    };
    let c = compile(dir, &options);
    assert!(!c.diagnostics.has_errors(), "{}: {}", dir.display(), c.diagnostics.render(&c.sources, false));
    c.spec.expect("no errors")
}

fn joined(manifests: &[Manifest]) -> String {
    manifests.iter().map(|m| format!("## {}\n{}", m.path, m.content)).collect::<Vec<_>>().join("\n")
}

#[test]
fn every_example_has_snapshotted_manifests() {
    for dir in examples() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let spec = compile_for_kubernetes(&dir);
        let manifests = emit(&spec).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(manifests, emit(&compile_for_kubernetes(&dir)).unwrap(), "{name}: not deterministic");
        let paths: Vec<&str> = manifests.iter().map(|m| m.path.as_str()).collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths.last(), Some(&"kustomization.yaml"), "{name}");
        sorted.retain(|p| *p != "kustomization.yaml");
        assert_eq!(&paths[..paths.len() - 1], &sorted[..], "{name}: objects are sorted by file name");
        insta::assert_snapshot!(format!("kubernetes_{name}"), joined(&manifests));
    }
}

#[test]
fn the_fixture_with_gpus_schedules_and_autoscaling_is_snapshotted() {
    // Declares its own kubernetes target: compiled as it is.
    let options = Options { display_base: Some(root()), ..Options::default() };
    let c = compile(&root().join("tests/fixtures/kubernetes"), &options);
    assert!(!c.diagnostics.has_errors(), "{}", c.diagnostics.render(&c.sources, false));
    let manifests = emit(&c.spec.unwrap()).unwrap();
    let kinds: std::collections::BTreeSet<&str> = manifests.iter().map(|m| m.kind.as_str()).collect();
    for kind in ["CronJob", "HorizontalPodAutoscaler", "ServiceMonitor", "Job", "ServiceAccount"] {
        assert!(kinds.contains(kind), "no {kind}");
    }
    // The controller needs no API access: no Role, and no token in its pod.
    assert!(!kinds.contains("Role") && !kinds.contains("RoleBinding"), "{kinds:?}");
    let controller = manifests.iter().find(|m| m.kind == "Deployment" && m.name.ends_with("-controller")).unwrap();
    assert!(controller.content.contains("automountServiceAccountToken: false"), "{}", controller.content);
    let job = manifests.iter().find(|m| m.kind == "Job").unwrap();
    assert!(job.content.contains("\"nvidia.com/gpu\": \"1\"") && job.content.contains("key: \"nvidia.com/gpu\""));
    assert!(job.content.contains("- name: \"DEFECT_API_TOKEN\""), "secrets come from the system's Secret");
    insta::assert_snapshot!("kubernetes_fixture", joined(&manifests));
}

#[test]
fn with_an_object_store_pods_keep_their_data_on_an_empty_dir_and_read_the_store_secret() {
    let options = Options { display_base: Some(root()), ..Options::default() };
    let c = compile(&root().join("tests/fixtures/kubernetes_object_store"), &options);
    assert!(!c.diagnostics.has_errors(), "{}", c.diagnostics.render(&c.sources, false));
    let spec = c.spec.unwrap();
    let manifests = emit(&spec).unwrap();
    assert_eq!(manifests, emit(&spec).unwrap(), "not deterministic");
    // The runtime reads the URL from the spec the pods mount.
    assert!(spec.to_json().contains(r#""object_store": "s3://acme-models/churn""#));

    // No shared volume, in the folder or the kustomization.
    assert!(manifests.iter().all(|m| m.kind != "PersistentVolumeClaim"), "a PVC was emitted");
    let kustomization = &manifests.last().unwrap().content;
    assert!(!kustomization.contains("pvc-"), "{kustomization}");
    assert!(manifests.iter().all(|m| !m.content.contains("persistentVolumeClaim")));

    // Every runtime pod: endpoint and controller Deployments, the training Job and CronJob.
    let pods: Vec<&Manifest> =
        manifests.iter().filter(|m| matches!(m.kind.as_str(), "Deployment" | "Job" | "CronJob")).collect();
    let kinds: std::collections::BTreeSet<&str> = pods.iter().map(|m| m.kind.as_str()).collect();
    assert_eq!(kinds, ["CronJob", "Deployment", "Job"].into());
    assert!(pods.iter().any(|m| m.name == "vision-scoring-controller"), "no controller");
    for m in &pods {
        let c = &m.content;
        // Same mount path and MLOPS_DATA_DIR as with the shared volume.
        assert_eq!(c.matches("- name: \"data\"\n").count(), 2, "{}: {c}", m.path);
        assert!(c.contains("mountPath: \"/var/lib/mlops/data\""), "{}", m.path);
        assert!(c.contains("- name: \"MLOPS_DATA_DIR\"\n") && c.contains("value: \"/var/lib/mlops/data\""));
        let volume = c.split("  volumes:\n").nth(1).unwrap();
        let data = volume.split("- name: \"data\"\n").nth(1).unwrap();
        assert_eq!(data.trim(), "emptyDir: {}", "{}: the data volume is not an emptyDir", m.path);
        // In the container, optional: with workload identity (IRSA …) the Secret need not exist.
        let i = c.lines().find(|l| l.trim_start() == "- name: \"mlops\"").unwrap().split('-').next().unwrap();
        let env_from = format!(
            "{i}  envFrom:\n{i}    - secretRef:\n{i}        name: \"vision-scoring-object-store\"\n{i}        optional: true\n"
        );
        assert!(c.contains(&env_from), "{}: no optional envFrom secretRef:\n{c}", m.path);
        // The token still comes from the system's Secret.
        assert!(c.contains("name: \"vision-scoring-secrets\""), "{}", m.path);
    }
    insta::assert_snapshot!("kubernetes_fixture_object_store", joined(&manifests));
}

#[test]
fn without_an_object_store_pods_mount_the_shared_volume() {
    let spec = compile_for_kubernetes(&root().join("examples/fraud-detection"));
    let manifests = emit(&spec).unwrap();
    assert!(manifests.iter().any(|m| m.kind == "PersistentVolumeClaim"));
    for m in manifests.iter().filter(|m| matches!(m.kind.as_str(), "Deployment" | "Job" | "CronJob")) {
        assert!(m.content.contains("claimName: \"fraud-detection-data\""), "{}", m.path);
        assert!(!m.content.contains("envFrom") && !m.content.contains("emptyDir"), "{}", m.path);
    }
}

#[test]
fn the_spec_configmap_holds_the_compiled_spec_and_its_hash() {
    let spec = compile_for_kubernetes(&root().join("examples/fraud-detection"));
    let manifests = emit(&spec).unwrap();
    let cm = manifests.iter().find(|m| m.kind == "ConfigMap").unwrap();
    assert_eq!(cm.name, "fraud-detection-spec");
    // The literal block holds the spec's lines indented by four spaces.
    let indented: String = spec.to_json().lines().map(|l| format!("    {l}\n")).collect();
    assert!(cm.content.contains(&format!("  \"spec.json\": |\n{indented}")), "{}", cm.content);
    let deployment = manifests.iter().find(|m| m.path == "deployment-fraud-detection-fraud-api.yaml").unwrap();
    let sha = sha256(spec.to_json().as_bytes());
    assert!(deployment.content.contains(&format!("\"mlops.dev/spec-sha256\": \"{sha}\"")));
    assert!(deployment.content.contains(r#"- "module.fraud.endpoint.api""#));
}

#[test]
fn a_training_job_is_renamed_only_when_its_run_changes() {
    let dir = root().join("examples/fraud-detection");
    let job_name = |spec: &SystemSpec| emit(spec).unwrap().into_iter().find(|m| m.kind == "Job").unwrap().name;
    let spec = compile_for_kubernetes(&dir);
    let before = job_name(&spec);
    assert!(before.starts_with("fraud-detection-fraud-model-"), "{before}");
    // Another endpoint replica count: the spec changes, the training run does not.
    let mut other = spec.clone();
    for r in &mut other.resources {
        if let mlops_compiler::model::Config::Endpoint(e) = &mut r.config {
            e.replicas += 1;
            r.hash = mlops_compiler::spec::config_hash(&r.config);
        }
    }
    assert_eq!(job_name(&other), before);
    // A training parameter: a new run.
    let mut retrain = spec.clone();
    for r in &mut retrain.resources {
        if let mlops_compiler::model::Config::TrainingJob(j) = &mut r.config {
            j.rounds += 1;
            r.hash = mlops_compiler::spec::config_hash(&r.config);
        }
    }
    assert_ne!(job_name(&retrain), before);
}

#[test]
fn user_strings_cannot_break_the_yaml() {
    let mut spec = compile_for_kubernetes(&root().join("examples/fraud-detection"));
    if let mlops_compiler::model::Target::Kubernetes { image, .. } = &mut spec.system.target {
        *image = "evil\"\n  injected: true\u{2028}#".into();
    }
    let manifests = emit(&spec).unwrap();
    let d = manifests.iter().find(|m| m.kind == "Deployment").unwrap();
    assert!(d.content.contains(r#"image: "evil\"\n  injected: true\u2028#""#), "{}", d.content);
    assert!(!d.content.contains("\n  injected"));
}

#[test]
fn a_local_target_is_not_emitted() {
    let options = Options { display_base: Some(root()), ..Options::default() };
    let c = compile(&root().join("examples/fraud-detection"), &options);
    let err = emit(&c.spec.unwrap()).unwrap_err();
    assert!(err.to_string().contains("--target kubernetes"), "{err}");
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
