//! Kubernetes manifests from a SystemSpec: pure, deterministic (the same spec gives the same
//! files, byte for byte, in the same order), one file per object plus a `kustomization.yaml`.
//! Object names come from [`names`], the controller's permissions from [`rbac`], and the YAML
//! from the templates in `compiler/templates/kubernetes/`, rendered through [`yaml`]'s escaping
//! filters. The checks (`check::kubernetes`) have already rejected what cannot be emitted, so an
//! error here means a spec that did not come from a successful compilation.
//!
//! What runs in the pods is the runtime image's `mlops` binary; the command lines, paths and
//! environment below are the contract with the runtime (README, "Kubernetes").

pub mod names;
pub mod object_store;
pub mod rbac;
mod yaml;

use crate::model::{Config, Endpoint, Resources, Target, TrainingJob};
use crate::spec::{ResourceSpec, SystemSpec};
use crate::units::Memory;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// One generated object (or the kustomization), as a file of the output folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// File name in the output folder, e.g. `deployment-fraud-detection-fraud-api.yaml`.
    pub path: String,
    /// Object kind (`Deployment` …; `Kustomization` for the index).
    pub kind: String,
    /// Object name.
    pub name: String,
    /// The YAML text.
    pub content: String,
}

/// Why manifests could not be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmitError {
    /// The spec's target is not `kubernetes`.
    #[error("the system's target is not \"kubernetes\"; declare `target \"kubernetes\" {{ image = … }}` in the `mlops` block or pass `--target kubernetes --image IMAGE`")]
    NotKubernetes,
    /// A name that the checks should have rejected.
    #[error("{what} {error}")]
    Name {
        /// What the name is of.
        what: String,
        /// What is wrong with it.
        error: String,
    },
    /// A template failed to render (a bug).
    #[error("template {0}")]
    Template(String),
}

/// Where runtime containers find the spec, and where the shared volume is (the contract).
const SPEC_PATH: &str = "/etc/mlops/spec.json";
/// Listen address of the runtime's HTTP server in a pod.
const LISTEN: &str = "0.0.0.0:8080";
/// The runtime's drain time on SIGTERM (serve::server's default `drain_timeout`), seconds.
const DRAIN_SECONDS: u64 = 30;
/// Defaults when a block gives no `resources` (HPA needs a CPU request to compute utilisation).
const ENDPOINT_DEFAULT: (&str, &str) = ("500m", "512Mi");
const JOB_DEFAULT: (&str, &str) = ("1", "2Gi");
const CONTROLLER_DEFAULT: (&str, &str) = ("250m", "256Mi");
/// HPA CPU target when `autoscaling` gives none.
const DEFAULT_TARGET_CPU: u32 = 70;

/// The names every object of a system is built from.
struct System<'a> {
    prefix: String,
    namespace: &'a str,
    image: &'a str,
    spec_sha256: String,
    secret_env: Vec<String>,
    /// With `object_store`: pods keep their data on an `emptyDir` and mirror it to the bucket,
    /// reading the store's credentials from this Secret (`envFrom`, optional); no shared volume.
    object_store_secret: Option<String>,
}

impl System<'_> {
    fn spec_configmap(&self) -> String {
        format!("{}-spec", self.prefix)
    }
    fn data_pvc(&self) -> String {
        format!("{}-data", self.prefix)
    }
    fn secret(&self) -> String {
        format!("{}-secrets", self.prefix)
    }
    fn workload_sa(&self) -> String {
        format!("{}-workload", self.prefix)
    }
    fn controller(&self) -> String {
        format!("{}-controller", self.prefix)
    }

    /// Kubernetes' recommended labels: the application is the mlops runtime, the instance the
    /// object's base name, the component its role, and the system is what it is part of.
    fn labels(&self, instance: &str, component: &str) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name", "mlops".to_string()),
            ("app.kubernetes.io/instance", instance.to_string()),
            ("app.kubernetes.io/component", component.to_string()),
            ("app.kubernetes.io/part-of", self.prefix.clone()),
            ("app.kubernetes.io/managed-by", "mlops".to_string()),
        ])
    }

    /// The labels a workload's selector matches (immutable once created, so only stable ones).
    fn selector(&self, instance: &str, component: &str) -> BTreeMap<&'static str, String> {
        BTreeMap::from([
            ("app.kubernetes.io/instance", instance.to_string()),
            ("app.kubernetes.io/component", component.to_string()),
        ])
    }

    /// The context of a pod template; `extra` adds or overrides keys.
    fn pod(&self, labels: &BTreeMap<&'static str, String>, args: Vec<String>, res: &Res, extra: Value) -> Value {
        let mut ctx = json!({
            "labels": labels,
            "annotations": {},
            "service_account": self.workload_sa(),
            "automount": false,
            "image": self.image,
            "args": args,
            "secret_env": self.secret_env,
            "secret": self.secret(),
            "http": false,
            "gpu": res.gpu > 0,
            "requests": res.requests(),
            "limits": res.limits(),
            "spec_configmap": self.spec_configmap(),
            "data_pvc": self.data_pvc(),
            "object_store_secret": self.object_store_secret,
        });
        if let (Some(base), Value::Object(extra)) = (ctx.as_object_mut(), extra) {
            base.extend(extra);
        }
        ctx
    }

    fn meta(&self, name: &str, labels: &BTreeMap<&'static str, String>) -> Value {
        json!({ "name": name, "namespace": self.namespace, "labels": labels })
    }
}

/// Compute resources of a container, after defaults.
#[derive(Debug, Clone)]
struct Res {
    cpu: String,
    memory: String,
    gpu: u32,
}

impl Res {
    fn of(r: &Resources, default: (&str, &str)) -> Res {
        Res {
            cpu: r.cpu.map_or_else(|| default.0.to_string(), cpu_quantity),
            memory: r.memory.as_ref().map_or_else(|| default.1.to_string(), Memory::to_string),
            gpu: r.gpu.unwrap_or(0),
        }
    }

    /// CPU and memory are requested; GPUs are whole devices, requested and limited alike.
    fn requests(&self) -> BTreeMap<&'static str, String> {
        let mut m = BTreeMap::from([("cpu", self.cpu.clone()), ("memory", self.memory.clone())]);
        if self.gpu > 0 {
            m.insert("nvidia.com/gpu", self.gpu.to_string());
        }
        m
    }

    /// Memory is limited at the request (a pod over it is killed rather than starving its node);
    /// CPU is not limited (throttling a model server only adds latency).
    fn limits(&self) -> BTreeMap<&'static str, String> {
        let mut m = BTreeMap::from([("memory", self.memory.clone())]);
        if self.gpu > 0 {
            m.insert("nvidia.com/gpu", self.gpu.to_string());
        }
        m
    }
}

/// A CPU count as a Kubernetes quantity: whole cores as such, fractions in millicores.
fn cpu_quantity(cpu: f64) -> String {
    let milli = (cpu * 1000.0).round().max(1.0) as u64;
    if milli.is_multiple_of(1000) {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The object-name stem of a resource (see [`names::stem`]).
fn stem_of(r: &ResourceSpec) -> Result<String, EmitError> {
    let key = r.key.as_ref().map(|k| k.as_str().map_or_else(|| k.to_string(), str::to_string));
    names::stem(&r.module, &r.name, key.as_deref())
        .map_err(|e| EmitError::Name { what: r.address.clone(), error: e.to_string() })
}

fn named(what: &str, r: Result<String, names::NameError>) -> Result<String, EmitError> {
    r.map_err(|e| EmitError::Name { what: what.to_string(), error: e.to_string() })
}

/// Every `*_env` attribute in the spec: the environment variables the runtime reads secrets
/// from (a database connection, an endpoint's token …), each served from the system's Secret.
fn secret_env(spec: &SystemSpec) -> Vec<String> {
    fn walk(v: &Value, out: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match v {
                        Value::String(s) if k.ends_with("_env") && !s.is_empty() => {
                            out.insert(s.clone());
                        }
                        _ => walk(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(&serde_json::to_value(spec).unwrap_or(Value::Null), &mut out);
    out.into_iter().collect()
}

/// Hash of what a training run depends on: the job's configuration and, transitively, that of
/// everything it reads (a changed feature window means a new training set).
fn training_hash(spec: &SystemSpec, job: &ResourceSpec) -> String {
    let by_address: BTreeMap<&str, &ResourceSpec> = spec.resources.iter().map(|r| (r.address.as_str(), r)).collect();
    let mut seen = BTreeSet::new();
    let mut todo = vec![job.address.as_str()];
    while let Some(a) = todo.pop() {
        if let Some(r) = by_address.get(a) {
            if seen.insert((r.address.as_str(), r.hash.as_str())) {
                todo.extend(r.depends_on.iter().map(String::as_str));
            }
        }
    }
    let joined: Vec<String> = seen.iter().map(|(a, h)| format!("{a}={h}")).collect();
    sha256_hex(joined.join("\n").as_bytes())
}

/// Generates the manifests of a system whose target is `kubernetes`, sorted by file name, the
/// kustomization last.
pub fn emit(spec: &SystemSpec) -> Result<Vec<Manifest>, EmitError> {
    let Target::Kubernetes { namespace, image, storage_class, storage_size, object_store, service_monitor, .. } =
        &spec.system.target
    else {
        return Err(EmitError::NotKubernetes);
    };
    named("the namespace", names::check_label(namespace).map(|()| namespace.clone()))?;
    let spec_json = spec.to_json();
    let prefix = named("the system name", names::system(&spec.system.name))?;
    let object_store_secret = object_store.as_ref().map(|_| object_store::secret_name(&prefix));
    let sys = System {
        prefix,
        namespace,
        image,
        spec_sha256: sha256_hex(spec_json.as_bytes()),
        secret_env: secret_env(spec),
        object_store_secret,
    };
    let mut out = Out { tera: yaml::engine(), manifests: Vec::new() };

    // The system: namespace, spec, shared volume (unless the data lives in an object store), the
    // workloads' token-less service account.
    let p = sys.prefix.clone();
    out.object(
        "namespace",
        "Namespace",
        namespace,
        json!({ "name": namespace, "labels": sys.labels(&p, "namespace") }),
    )?;
    let mut cm = sys.meta(&sys.spec_configmap(), &sys.labels(&p, "spec"));
    cm["spec_json"] = json!(spec_json);
    cm["spec_sha256"] = json!(sys.spec_sha256);
    out.object("configmap", "ConfigMap", &sys.spec_configmap(), cm)?;
    if sys.object_store_secret.is_none() {
        let mut pvc = sys.meta(&sys.data_pvc(), &sys.labels(&p, "storage"));
        pvc["storage_class"] = json!(storage_class);
        pvc["storage_size"] = json!(storage_size.to_string());
        out.object("pvc", "PersistentVolumeClaim", &sys.data_pvc(), pvc)?;
    }
    let mut sa = sys.meta(&sys.workload_sa(), &sys.labels(&p, "workload"));
    sa["automount"] = json!(false);
    out.object("serviceaccount", "ServiceAccount", &sys.workload_sa(), sa)?;

    let grace = |timeout_secs: f64| DRAIN_SECONDS + (timeout_secs.ceil() as u64).max(15);
    let deployment_annotations = json!(BTreeMap::from([
        ("mlops.dev/spec-sha256", sys.spec_sha256.as_str()),
        ("prometheus.io/scrape", "true"),
        ("prometheus.io/port", "8080"),
        ("prometheus.io/path", "/metrics"),
    ]));
    let has_controller =
        spec.resources.iter().any(|r| matches!(r.config, Config::Monitor(_) | Config::RetrainPolicy(_)));
    let mut endpoint_names: BTreeMap<&str, String> = BTreeMap::new();
    for r in &spec.resources {
        match &r.config {
            Config::Endpoint(e) => {
                let name = named(&r.address, names::object(&p, &stem_of(r)?, 0, names::MAX_LABEL))?;
                endpoint_names.insert(r.address.as_str(), name.clone());
                emit_endpoint(&sys, r, e, &name, *service_monitor, &deployment_annotations, grace, &mut out)?;
            }
            Config::TrainingJob(j) => emit_training(&sys, spec, r, j, has_controller, &mut out)?,
            _ => {}
        }
    }

    // The controller, when there is something for it to run.
    let mut watched: BTreeSet<String> = BTreeSet::new();
    let mut retrained: Vec<&TrainingJob> = Vec::new();
    for r in &spec.resources {
        match &r.config {
            Config::Monitor(m) => {
                watched.extend(endpoint_names.get(m.endpoint.as_str()).cloned());
            }
            Config::RetrainPolicy(rp) => {
                if let Some(Config::TrainingJob(j)) = spec.resource(&rp.job).map(|j| &j.config) {
                    retrained.push(j);
                }
                if let Some(via) = rp.promote.as_ref().and_then(|p| p.via.as_deref()) {
                    watched.extend(endpoint_names.get(via).cloned());
                }
                // Endpoints serving the retrained job are rolled out when it is promoted.
                for e in &spec.resources {
                    if matches!(&e.config, Config::Endpoint(ep) if ep.model == rp.job) {
                        watched.extend(endpoint_names.get(e.address.as_str()).cloned());
                    }
                }
            }
            _ => {}
        }
    }
    if has_controller {
        emit_controller(&sys, &watched, &retrained, &deployment_annotations, grace(0.0), &mut out)?;
    }

    let mut manifests = out.manifests;
    manifests.sort_by(|a, b| a.path.cmp(&b.path));
    let resources: Vec<&str> = manifests.iter().map(|m| m.path.as_str()).collect();
    let kustomization = render(&out.tera, "kustomization", json!({ "resources": resources }))?;
    manifests.push(Manifest {
        path: "kustomization.yaml".into(),
        kind: "Kustomization".into(),
        name: p,
        content: kustomization,
    });
    Ok(manifests)
}

/// The manifests rendered so far.
struct Out {
    tera: tera::Tera,
    manifests: Vec<Manifest>,
}

impl Out {
    /// Renders one object into its file.
    fn object(&mut self, template: &str, kind: &str, name: &str, ctx: Value) -> Result<(), EmitError> {
        let content = render(&self.tera, template, ctx)?;
        let path = format!("{}-{name}.yaml", kind.to_ascii_lowercase());
        self.manifests.push(Manifest { path, kind: kind.to_string(), name: name.to_string(), content });
        Ok(())
    }

    /// Renders a pod template, to be placed inside a workload.
    fn pod(&self, ctx: Value) -> Result<String, EmitError> {
        render(&self.tera, "pod", ctx).map(|s| s.trim_end().to_string())
    }
}

fn render(tera: &tera::Tera, template: &str, ctx: Value) -> Result<String, EmitError> {
    let ctx = tera::Context::from_value(ctx).map_err(|e| EmitError::Template(format!("{template}: {e}")))?;
    let mut text = tera.render(template, &ctx).map_err(|e| {
        let mut msg = format!("{template}: {e}");
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg.push_str(&format!(": {s}"));
            source = s.source();
        }
        EmitError::Template(msg)
    })?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// Deployment, Service, PodDisruptionBudget, HorizontalPodAutoscaler (with `autoscaling`) and
/// ServiceMonitor (with `service_monitor = true`) of one endpoint.
#[allow(clippy::too_many_arguments)]
fn emit_endpoint(
    sys: &System,
    r: &ResourceSpec,
    e: &Endpoint,
    name: &str,
    service_monitor: bool,
    annotations: &Value,
    grace: impl Fn(f64) -> u64,
    out: &mut Out,
) -> Result<(), EmitError> {
    let labels = sys.labels(name, "endpoint");
    let selector = sys.selector(name, "endpoint");
    let args = ["agent", "--spec", SPEC_PATH, "--endpoint", &r.address, "--address", LISTEN];
    let res = Res::of(&e.resources, ENDPOINT_DEFAULT);
    let pod = sys.pod(
        &labels,
        args.map(str::to_string).to_vec(),
        &res,
        json!({ "annotations": annotations, "http": true, "grace_seconds": grace(e.timeout.as_secs_f64()) }),
    );
    let pod = out.pod(pod)?;
    let mut d = sys.meta(name, &labels);
    d["address"] = json!(r.address);
    d["selector"] = json!(selector);
    // With an autoscaler the replica count is its to set; writing it here would undo its work
    // on every `kubectl apply`.
    d["replicas"] = if e.autoscaling.is_some() { Value::Null } else { json!(e.replicas) };
    d["recreate"] = json!(false);
    d["pod"] = json!(pod);
    out.object("deployment", "Deployment", name, d)?;

    let mut s = sys.meta(name, &labels);
    s["address"] = json!(r.address);
    s["selector"] = json!(selector);
    out.object("service", "Service", name, s)?;

    let min = e.autoscaling.as_ref().map_or(e.replicas, |a| a.min_replicas);
    let mut pdb = sys.meta(name, &labels);
    pdb["selector"] = json!(selector);
    // minAvailable 1 on a single replica would block every node drain; allow one down instead.
    pdb["min_available"] = if min >= 2 { json!(1) } else { Value::Null };
    out.object("pdb", "PodDisruptionBudget", name, pdb)?;

    if let Some(a) = &e.autoscaling {
        let mut h = sys.meta(name, &labels);
        h["min_replicas"] = json!(a.min_replicas.max(1));
        h["max_replicas"] = json!(a.max_replicas.max(a.min_replicas).max(1));
        h["target_cpu"] = json!(a.target_cpu.map_or(DEFAULT_TARGET_CPU, |c| c.round().max(1.0) as u32));
        out.object("hpa", "HorizontalPodAutoscaler", name, h)?;
    }
    if service_monitor {
        let mut m = sys.meta(name, &labels);
        m["selector"] = json!(selector);
        out.object("servicemonitor", "ServiceMonitor", name, m)?;
    }
    Ok(())
}

/// The Job of a training run and, with a `schedule`, its CronJob.
fn emit_training(
    sys: &System,
    spec: &SystemSpec,
    r: &ResourceSpec,
    j: &TrainingJob,
    has_controller: bool,
    out: &mut Out,
) -> Result<(), EmitError> {
    let stem = stem_of(r)?;
    let base = named(&r.address, names::object(&sys.prefix, &stem, names::JOB_SUFFIX, names::MAX_LABEL))?;
    let labels = sys.labels(&base, "training");
    // A version the Job trains goes out as the endpoints' rollout blocks say — the controller
    // steps it — when there is a controller and an endpoint serving the job; else the Job
    // promotes it itself.
    let served = spec.resources.iter().any(|e| matches!(&e.config, Config::Endpoint(ep) if ep.model == r.address));
    let decide = if has_controller && served { "--propose" } else { "--promote" };
    let args: Vec<String> =
        ["train", "--spec", SPEC_PATH, &r.address, decide].into_iter().map(str::to_string).collect();
    let res = Res::of(&j.resources, JOB_DEFAULT);
    let pod = sys.pod(
        &labels,
        args.clone(),
        &res,
        json!({
            "annotations": { "mlops.dev/training-sha256": training_hash(spec, r) },
            "restart_policy": "Never",
        }),
    );
    let pod = out.pod(pod)?;
    // A Job's pod template is immutable: name the Job after it, so any change is a new Job.
    let name = format!("{base}-{}", &sha256_hex(pod.as_bytes())[..8]);
    let mut job = sys.meta(&name, &labels);
    job["address"] = json!(r.address);
    job["pod"] = json!(pod);
    out.object("job", "Job", &name, job)?;

    if let Some(schedule) = &j.schedule {
        let cron_name = named(&r.address, names::object(&sys.prefix, &stem, 0, names::MAX_CRONJOB))?;
        let pod = sys.pod(
            &labels,
            args,
            &res,
            json!({
                "annotations": { "mlops.dev/spec-sha256": sys.spec_sha256 },
                "restart_policy": "Never",
            }),
        );
        let mut c = sys.meta(&cron_name, &labels);
        c["address"] = json!(r.address);
        c["schedule"] = json!(schedule.to_string());
        c["pod"] = json!(out.pod(pod)?);
        out.object("cronjob", "CronJob", &cron_name, c)?;
    }
    Ok(())
}

/// The controller: Deployment (one replica, never two at once), its ServiceAccount, and a Role
/// and RoleBinding when it has API rules ([`rbac`]).
fn emit_controller(
    sys: &System,
    endpoints: &BTreeSet<String>,
    retrained: &[&TrainingJob],
    annotations: &Value,
    grace: u64,
    out: &mut Out,
) -> Result<(), EmitError> {
    let name = sys.controller();
    let labels = sys.labels(&name, "controller");
    // It retrains in its own pod, so it needs room for the largest job it may run.
    let res = retrained.iter().map(|j| Res::of(&j.resources, JOB_DEFAULT)).reduce(|a, b| Res {
        cpu: if quantity_millis(&b.cpu) > quantity_millis(&a.cpu) { b.cpu } else { a.cpu },
        memory: if memory_bytes(&b.memory) > memory_bytes(&a.memory) { b.memory } else { a.memory },
        gpu: a.gpu.max(b.gpu),
    });
    let res = res.unwrap_or_else(|| Res::of(&Resources::default(), CONTROLLER_DEFAULT));
    let rules: Vec<Value> = rbac::CONTROLLER_RULES
        .iter()
        .filter_map(|rule| {
            let names: Vec<String> = match rule.names {
                rbac::Names::EndpointDeployments => endpoints.iter().cloned().collect(),
                rbac::Names::SpecConfigMap => vec![sys.spec_configmap()],
            };
            // A rule with no names would grant nothing (an empty resourceNames means all).
            (!names.is_empty()).then(|| {
                json!({ "api_group": rule.api_group, "resource": rule.resource, "verbs": rule.verbs, "names": names })
            })
        })
        .collect();
    // A token only when the Role grants something.
    let token = !rules.is_empty();
    let args: Vec<String> =
        ["controller", "--spec", SPEC_PATH, "--address", LISTEN].into_iter().map(str::to_string).collect();
    let pod = sys.pod(
        &labels,
        args,
        &res,
        json!({
            "annotations": annotations,
            "http": true,
            "grace_seconds": grace,
            "service_account": name,
            "automount": token,
        }),
    );
    let mut d = sys.meta(&name, &labels);
    d["selector"] = json!(sys.selector(&name, "controller"));
    d["replicas"] = json!(1);
    d["recreate"] = json!(true);
    d["pod"] = json!(out.pod(pod)?);
    out.object("deployment", "Deployment", &name, d)?;

    let mut sa = sys.meta(&name, &labels);
    sa["automount"] = json!(token);
    out.object("serviceaccount", "ServiceAccount", &name, sa)?;
    if !token {
        return Ok(());
    }

    let mut role = sys.meta(&name, &labels);
    role["rules"] = json!(rules);
    out.object("role", "Role", &name, role)?;
    let mut rb = sys.meta(&name, &labels);
    rb["service_account"] = json!(name);
    out.object("rolebinding", "RoleBinding", &name, rb)?;
    Ok(())
}

fn quantity_millis(cpu: &str) -> u64 {
    match cpu.strip_suffix('m') {
        Some(m) => m.parse().unwrap_or(0),
        None => cpu.parse::<f64>().map_or(0, |c| (c * 1000.0).round() as u64),
    }
}

fn memory_bytes(m: &str) -> u64 {
    Memory::parse(m).map_or(0, |m| m.bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        assert_eq!(cpu_quantity(4.0), "4");
        assert_eq!(cpu_quantity(0.5), "500m");
        assert_eq!(cpu_quantity(1.25), "1250m");
        assert_eq!(quantity_millis("1250m"), 1250);
        assert_eq!(quantity_millis("2"), 2000);
    }
}
