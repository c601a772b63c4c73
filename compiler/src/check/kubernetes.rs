//! Checks for the kubernetes target: what would otherwise become manifests the API server
//! rejects, or pods that start and then fail. Names must map to object names (see
//! `emit::kubernetes::names`) without colliding, the runtime image must be given, an
//! `object_store` must be an `s3://` URL that replaces the shared volume's settings, and settings
//! the runtime cannot honour in a pod yet are errors rather than silently ignored. Runs only when
//! the system's target is `kubernetes` (declared, or chosen with `mlops build --target`).

use crate::codes;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::emit::kubernetes::names::{self, NameError};
use crate::emit::kubernetes::object_store::{self, ObjectStoreError};
use crate::lower::node::Node;
use crate::model::{Config, Model, Target};
use crate::source::Span;
use crate::value::InstanceKey;
use std::collections::BTreeMap;

const NAME_HELP: &str = "Kubernetes object names are lower-case letters, digits and `-` (mlops writes `_` as `-`); \
                         rename the block or key";

pub(super) fn check(model: &Model, diags: &mut Diagnostics) {
    let Target::Kubernetes { namespace, image, object_store, .. } = &model.system.target else { return };
    let settings = model.settings.as_ref();
    let block = settings.and_then(|s| s.block("target")).filter(|t| t.name() == "kubernetes");
    // Settings from the command line have no place in the files: point at the `mlops` block, or
    // the start of the first file.
    let at = |attr: &str| -> (Span, &'static str) {
        match (block, settings) {
            (Some(b), _) if b.attr(attr).is_some() => (b.span_of(attr), ""),
            (Some(b), _) => (b.header, ""),
            (None, Some(s)) => (s.header, " (target chosen on the command line)"),
            (None, None) => (Span::default(), " (target chosen on the command line)"),
        }
    };

    if image.trim().is_empty() {
        let (span, whence) = at("image");
        diags.push(
            Diagnostic::error(codes::KUBERNETES_IMAGE, span, format!("the kubernetes target has no runtime image{whence}"))
                .label("no image")
                .help("set `image` in `target \"kubernetes\"` (or pass `--image`) to the runtime image, e.g. \"ghcr.io/acme/mlops-runtime:0.1.0\""),
        );
    } else if image.chars().any(char::is_whitespace) {
        let (span, whence) = at("image");
        diags.push(
            Diagnostic::error(
                codes::KUBERNETES_IMAGE,
                span,
                format!("image {image:?} is not an image reference{whence}"),
            )
            .label("has whitespace")
            .help("write the image as registry/name:tag, without spaces"),
        );
    }
    if let Err(e) = names::check_label(namespace) {
        let (span, whence) = at("namespace");
        diags.push(
            Diagnostic::error(codes::KUBERNETES_NAME, span, format!("namespace {namespace:?} {e}{whence}"))
                .label("not a valid namespace")
                .help("a namespace is a DNS-1123 label: at most 63 lower-case letters, digits and `-`, starting and ending with a letter or digit"),
        );
    }
    if let Some(url) = object_store {
        object_store_settings(url, block, diags);
    }

    let prefix = match names::system(&model.system.name) {
        Ok(p) => Some(p),
        Err(e) => {
            let span = settings.map_or(Span::default(), |s| s.span_of("name"));
            let whence = if settings.and_then(|s| s.attr("name")).is_some() {
                ""
            } else {
                " (the name of the configuration's directory)"
            };
            diags.push(
                Diagnostic::error(
                    codes::KUBERNETES_NAME,
                    span,
                    format!("system name {:?} {e}{whence}", model.system.name),
                )
                .label("prefixes every object name")
                .help(format!("{NAME_HELP}; the system name must start with a letter and be at most 52 characters")),
            );
            None
        }
    };

    // Object-name stems by kind of workload, to find two resources that become one object.
    let mut endpoints: BTreeMap<String, (String, Span)> = BTreeMap::new();
    let mut jobs: BTreeMap<String, (String, Span)> = BTreeMap::new();
    for r in &model.resources {
        if r.node.errors {
            continue;
        }
        let (seen, extra, cron) = match &r.config {
            Config::Endpoint(e) => {
                endpoint_settings(&r.node, e, diags);
                (&mut endpoints, 0, false)
            }
            Config::TrainingJob(j) => (&mut jobs, names::JOB_SUFFIX, j.schedule.is_some()),
            _ => continue,
        };
        let address = r.address.to_string();
        let span = r.node.labels.first().map_or(r.node.header, |l| l.1);
        let key = r.address.key.as_ref().map(|k| match k {
            InstanceKey::Index(i) => i.to_string(),
            InstanceKey::Key(k) => k.clone(),
        });
        let stem = match names::stem(&r.address.module, &r.address.name, key.as_deref()) {
            Ok(s) => s,
            Err(e) => {
                diags.push(name_error(&address, &e, span));
                continue;
            }
        };
        if let Some(p) = &prefix {
            let full = names::object(p, &stem, extra, names::MAX_LABEL).and_then(|n| {
                if cron {
                    names::object(p, &stem, 0, names::MAX_CRONJOB)
                } else {
                    Ok(n)
                }
            });
            if let Err(e) = full {
                diags.push(name_error(&address, &e, span));
                continue;
            }
        }
        let reserved = matches!(r.config, Config::Endpoint(_)) && names::RESERVED.contains(&stem.as_str());
        if reserved {
            diags.push(
                Diagnostic::error(
                    codes::KUBERNETES_NAME_COLLISION,
                    span,
                    format!("{address} would be named like the system's own `{stem}` objects"),
                )
                .label("reserved name")
                .help(format!("rename the endpoint: `{stem}` is the controller's Deployment")),
            );
        } else if let Some((other, other_span)) = seen.get(&stem) {
            diags.push(
                Diagnostic::error(
                    codes::KUBERNETES_NAME_COLLISION,
                    span,
                    format!("{address} and {other} both become Kubernetes objects named `…-{stem}`"),
                )
                .label("second")
                .with(*other_span, "first")
                .help("rename one of them: `_` is written `-` in object names, so `a_b` and `a-b` are the same name"),
            );
        } else {
            seen.insert(stem, (address, span));
        }
    }
}

fn name_error(address: &str, e: &NameError, span: Span) -> Diagnostic {
    let help = match e {
        NameError::TooLong { max, .. } => format!(
            "shorten the block, module or system name: object names are at most {max} characters with the system's name in front"
        ),
        _ => NAME_HELP.to_string(),
    };
    Diagnostic::error(codes::KUBERNETES_NAME, span, format!("{address} {e}"))
        .label("not a Kubernetes object name")
        .help(help)
}

/// Endpoint settings a pod cannot honour yet.
fn endpoint_settings(node: &Node, e: &crate::model::Endpoint, diags: &mut Diagnostics) {
    if let Some(auth) = node.block("auth").filter(|_| e.auth.as_ref().is_some_and(|a| a.token_file.is_some())) {
        diags.push(
            Diagnostic::error(
                codes::KUBERNETES_UNSUPPORTED,
                auth.span_of("token_file"),
                "a token file is not in the endpoint's pods",
            )
            .label("not supported on kubernetes")
            .help("use `token_env`: the variable is filled from the system's Secret (`<system>-secrets`)"),
        );
    }
    if let Some(a) = node.block("autoscaling").filter(|a| a.attr("target_rps").is_some()) {
        diags.push(
            Diagnostic::error(
                codes::KUBERNETES_UNSUPPORTED,
                a.span_of("target_rps"),
                "the HorizontalPodAutoscaler cannot scale on requests per second",
            )
            .label("needs a custom-metrics adapter")
            .help("use `target_cpu` (a percentage of the CPU request) on the kubernetes target"),
        );
    }
}

/// `object_store`: an `s3://BUCKET[/PREFIX]` URL, and no settings of the shared volume it
/// replaces. It can only come from the configuration, so `block` is the target block.
fn object_store_settings(url: &str, block: Option<&Node>, diags: &mut Diagnostics) {
    let Some(block) = block else { return };
    let span = block.span_of("object_store");
    if let Err(e) = object_store::parse(url) {
        let (label, help) = match &e {
            ObjectStoreError::Scheme(_) => (
                "not an s3:// URL",
                "only `s3://BUCKET[/PREFIX]` is supported; S3-compatible stores (MinIO, Ceph, R2, GCS interoperability) \
                 are reached with `s3://` plus `AWS_ENDPOINT_URL` in the Secret `<system>-object-store`",
            ),
            ObjectStoreError::Bucket(_) => (
                "invalid bucket",
                "write `s3://BUCKET[/PREFIX]` with a bucket of 3 to 63 lower-case letters, digits, `-` and `.`, \
                 starting and ending with a letter or digit",
            ),
            ObjectStoreError::Prefix(_) => (
                "invalid prefix",
                "write the prefix as `/`-separated names, e.g. `s3://acme-models/churn/prod`: no empty, `.` or `..` segment, \
                 no trailing `/`, no spaces, `?` or `#`",
            ),
        };
        diags.push(
            Diagnostic::error(codes::KUBERNETES_OBJECT_STORE, span, format!("object_store {url:?} {e}"))
                .label(label)
                .help(help),
        );
    }
    for attr in ["storage_class", "storage_size"] {
        if block.attr(attr).is_some() {
            diags.push(
                Diagnostic::error(
                    codes::CONFLICT,
                    block.span_of(attr),
                    format!("`{attr}` configures the shared volume, but with `object_store` there is none"),
                )
                .label("shared-volume setting")
                .with(span, "replaces the shared volume")
                .help(format!(
                    "remove `{attr}`: with `object_store` every pod keeps its data directory on a pod-local volume \
                     and mirrors it to the bucket"
                )),
            );
        }
    }
}
