//! Data sources. In: a configuration directory (and variables). Out:
//! - `mlops_model`: the production version of a training job, its metrics and model file, as
//!   the mlops state records them after apply;
//! - `mlops_plan`: the ML-aware plan of the directory against its state (text, Markdown for pull
//!   requests, JSON, counts), for outputs and `check`s.

use std::collections::BTreeMap;

use mlops_compiler::plan::{plan, render_markdown, render_text};

use crate::cty::{Ty, Val};
use crate::diag::{attr, Diag};
use crate::settings::Settings;
use crate::system::{Input, System};
use crate::tfschema::{TfAttr, TfBlock};

fn inputs() -> Vec<TfAttr> {
    vec![
        TfAttr::required("dir", Ty::String, "Directory of the `*.mlops.hcl` files."),
        TfAttr::optional("variables", Ty::map(Ty::String), "Root variables, as for `mlops_system`."),
    ]
}

/// The data sources: type name → schema.
pub fn schemas() -> BTreeMap<String, TfBlock> {
    let mut model = inputs();
    model.extend([
        TfAttr::required(
            "job",
            Ty::String,
            "Address of the training job: `training_job.fraud`, `module.fraud.training_job.model`.",
        ),
        TfAttr::computed("id", Ty::String, "`JOB@VERSION`."),
        TfAttr::computed("version", Ty::Number, "The version in production."),
        TfAttr::computed("metrics", Ty::map(Ty::Number), "Its holdout metrics."),
        TfAttr::computed("model_uri", Ty::String, "Its model file (XGBoost's format)."),
    ]);
    let mut p = inputs();
    p.extend([
        TfAttr::computed("id", Ty::String, "SHA-256 of the compiled spec."),
        TfAttr::computed("has_changes", Ty::Bool, "Would an apply change anything?"),
        TfAttr::computed("changes", Ty::list(Ty::String), "One line per changed resource."),
        TfAttr::computed("summary", Ty::map(Ty::Number), "Counts: create, update, replace, delete, noop."),
        TfAttr::computed("text", Ty::String, "The plan as `mlops plan` prints it."),
        TfAttr::computed("markdown", Ty::String, "The plan as a pull-request comment."),
        TfAttr::computed("json", Ty::String, "The plan as `mlops plan --json` writes it."),
    ]);
    BTreeMap::from([
        (
            "mlops_model".to_string(),
            TfBlock {
                attrs: model,
                blocks: Vec::new(),
                description: "The production version of a training job and its metrics.".into(),
            },
        ),
        (
            "mlops_plan".to_string(),
            TfBlock {
                attrs: p,
                blocks: Vec::new(),
                description: "The ML-aware plan of a configuration directory against its state.".into(),
            },
        ),
    ])
}

/// Reads a data source.
pub fn read(type_name: &str, config: &Val, settings: &Settings) -> (Val, Vec<Diag>) {
    let mut v = config.clone();
    let Some(input) = Input::from_val(config) else {
        return (v, vec![Diag::error("`dir` and `variables` must be known to read this data source")]);
    };
    let (sys, _) = match System::open(&input, settings) {
        Ok(s) => s,
        Err(d) => return (v, d),
    };
    let state = match sys.backend.read() {
        Ok(s) => s,
        Err(e) => return (v, vec![Diag::error(format!("cannot read the mlops state: {e}"))]),
    };
    match type_name {
        "mlops_model" => {
            let job = config.get("job").as_str().unwrap_or_default().to_string();
            let Some(r) = sys.spec.resource(&job).filter(|r| r.config.kind() == "training_job") else {
                return (
                    v,
                    vec![Diag::error(format!("{job} is not a training job of this configuration")).at(attr("job"))],
                );
            };
            let produced = state.as_ref().and_then(|s| s.resources.get(&r.address)).map(|r| &r.produced);
            let Some(version) = produced.and_then(|p| p.get("version")).and_then(|v| v.as_f64()) else {
                return (
                    v,
                    vec![Diag::error(format!("{job} has no version in production"))
                        .detail("Apply the configuration first (mlops_system or `mlops apply`).")
                        .at(attr("job"))],
                );
            };
            let produced = produced.expect("a version was found");
            v.set("id", Val::str(format!("{job}@{version}")));
            v.set("version", Val::num(version));
            let metrics = produced
                .get("metrics")
                .and_then(|m| m.as_object())
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), Val::num(v.as_f64()?)))).collect())
                .unwrap_or_default();
            v.set("metrics", Val::Map(metrics));
            v.set("model_uri", produced.get("model_uri").and_then(|u| u.as_str()).map_or(Val::Null, Val::str));
        }
        _ => {
            let drift = state.as_ref().map(|s| mlops_runtime::apply::refresh(s, sys.target.as_ref()));
            let mut current = state.clone();
            if let (Some(s), Some(Ok(d))) = (current.as_mut(), drift) {
                mlops_runtime::apply::mark_drift(s, &d);
            }
            let p = plan(&sys.spec, current.as_ref());
            let changes: Vec<Val> = p
                .changes
                .iter()
                .filter(|c| c.action != mlops_compiler::plan::Action::NoOp)
                .map(|c| Val::str(format!("{:?} {}: {}", c.action, c.address, c.reasons.join("; ")).to_lowercase()))
                .collect();
            v.set("id", Val::str(p.spec_hash.clone()));
            v.set("has_changes", Val::Bool(p.has_changes()));
            v.set("changes", Val::List(changes));
            let s = p.summary;
            v.set(
                "summary",
                Val::object([
                    ("create", Val::num(s.create as f64)),
                    ("update", Val::num(s.update as f64)),
                    ("replace", Val::num(s.replace as f64)),
                    ("delete", Val::num(s.delete as f64)),
                    ("noop", Val::num(s.noop as f64)),
                ]),
            );
            v.set("text", Val::str(render_text(&p)));
            v.set("markdown", Val::str(render_markdown(&p)));
            v.set("json", Val::str(p.to_json().unwrap_or_default()));
        }
    }
    (v, Vec::new())
}
