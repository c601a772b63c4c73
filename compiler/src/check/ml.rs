//! ML checks: the things a reviewer who knows ML would catch. Target leakage, labels and
//! metrics that do not fit the objective, unknown or out-of-range XGBoost parameters, time
//! splits without event time, drift thresholds outside what the statistic can produce, canary
//! steps that do not end at 100 %, retraining that can promote an ungated model, cooldowns
//! shorter than the window that triggers them.

use crate::codes;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::lower::node::Node;
use crate::model::{
    ColumnType, Config, Endpoint, FeatureKind, Model, Monitor, RetrainPolicy, Rollback, Target, Task, TrainingJob,
};
use crate::schema::{EXTERNAL_ROLLBACK_METRICS, OBJECTIVES, XGBOOST_PARAMS};
use crate::source::Span;
use crate::suggest::did_you_mean;
use crate::units::Duration;
use crate::value::{format_number, Value};

pub(super) fn check(model: &Model, diags: &mut Diagnostics) {
    for r in &model.resources {
        if r.node.errors {
            continue;
        }
        match &r.config {
            Config::TrainingJob(j) => training_job(model, &r.node, j, diags),
            Config::Endpoint(e) => endpoint(model, &r.node, e, diags),
            Config::Monitor(m) => monitor(model, &r.node, m, diags),
            Config::RetrainPolicy(p) => retrain_policy(model, &r.node, p, diags),
            _ => {}
        }
    }
}

fn metric_error(metric: &str, task: Task, objective: &str, at: Span, objective_at: Span) -> Diagnostic {
    Diagnostic::error(
        codes::METRIC_OBJECTIVE,
        at,
        format!("metric `{metric}` does not fit {} (objective \"{objective}\")", task.name()),
    )
    .label(format!("not a {} metric", task.name()))
    .with(objective_at, "objective chosen here")
    .help(format!("use one of: {}", task.metrics().join(", ")))
}

fn objective_span(node: &Node) -> Span {
    node.attr("params").map_or(node.header, |p| {
        if p.entries.contains_key("objective") {
            p.entry_span("objective")
        } else {
            p.key_span
        }
    })
}

fn training_job(model: &Model, node: &Node, job: &TrainingJob, diags: &mut Diagnostics) {
    params(node, job, diags);
    let obj_span = objective_span(node);
    let label_span = node.span_of("label");
    let label_src = model.reliable_source(&job.label.source);
    // The label's type must fit the task.
    if let Some(col) = label_src.and_then(|s| s.column(&job.label.column)) {
        let fits = match job.task {
            Task::Binary => matches!(col.ty, ColumnType::Bool | ColumnType::Int | ColumnType::Category),
            Task::Multiclass => {
                matches!(col.ty, ColumnType::Int | ColumnType::Category | ColumnType::String | ColumnType::Bool)
            }
            Task::Regression => col.ty.is_numeric() || col.ty == ColumnType::Bool,
        };
        if !fits {
            diags.push(
                Diagnostic::error(
                    codes::LABEL_OBJECTIVE,
                    label_span,
                    format!(
                        "label `{}` is a {} column, which does not fit {}",
                        job.label.column,
                        col.ty.name(),
                        job.task.name()
                    ),
                )
                .label(format!("{} label", col.ty.name()))
                .with(obj_span, format!("objective \"{}\"", job.objective))
                .help(match job.task {
                    Task::Regression => {
                        "regression needs a numeric label (int or float); for classes use a binary: or multi: objective"
                            .to_string()
                    }
                    _ => {
                        "classification needs a bool, int or category label; for a numeric target use reg:squarederror"
                            .to_string()
                    }
                }),
            );
        }
    }
    // Features: exclusions must exist, names must be unambiguous, and none may be the label.
    let features = model.job_features(job);
    let mut all_names: Vec<&str> = Vec::new();
    for v in &job.features {
        if let Some(view) = model.feature_view(v) {
            all_names.extend(view.features.iter().map(|f| f.name.as_str()));
        }
    }
    if let Some(ex) = node.attr("exclude") {
        for (i, name) in job.exclude.iter().enumerate() {
            if !all_names.contains(&name.as_str()) {
                diags.push(unknown_feature(name, &all_names, ex.item_span(i), "the job's feature views"));
            }
        }
    }
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (view, f) in &features {
        if let Some((other, _)) = seen.iter().find(|(_, n)| *n == f.name) {
            diags.push(
                Diagnostic::error(
                    codes::DUPLICATE_NAME,
                    node.span_of("features"),
                    format!("feature `{}` is defined by both {other} and {view}", f.name),
                )
                .label("ambiguous feature name")
                .help(format!("rename one of them, or add `exclude = [\"{}\"]` and keep one", f.name)),
            );
        }
        seen.push((view, &f.name));
        let view_src = model.feature_view(view).map(|v| v.source.as_str()).unwrap_or("");
        if view_src != job.label.source {
            continue;
        }
        // Windows include the row itself (its value is known when it is served), so even an
        // aggregate of the label column sees the answer of the row being labelled.
        let leaks = match &f.kind {
            FeatureKind::Column { column } | FeatureKind::Aggregate { column, .. } => column == &job.label.column,
            FeatureKind::Expression { columns, .. } => columns.contains(&job.label.column),
        };
        if leaks {
            let at = model
                .get(view)
                .and_then(|r| r.node.blocks_of("feature").find(|b| b.name() == f.name))
                .map_or(node.span_of("features"), |b| {
                    b.span_of(if b.get("column").is_some() { "column" } else { "expression" })
                });
            diags.push(
                Diagnostic::error(
                    codes::LABEL_LEAKAGE,
                    label_span,
                    format!(
                        "target leakage: feature `{}` of {view} reads the label column `{}`",
                        f.name, job.label.column
                    ),
                )
                .label("label")
                .with(at, "the same column used as a feature")
                .help(format!(
                    "the model would learn the answer from its input: add `exclude = [\"{}\"]` or remove the feature",
                    f.name
                )),
            );
        }
    }
    // The label's source must carry the views' join keys (and event time, for point-in-time joins).
    if let Some(ls) = label_src {
        for v in &job.features {
            let Some(view) = model.feature_view(v) else { continue };
            for k in &view.join_keys {
                if ls.column(k).is_none() {
                    diags.push(
                        Diagnostic::error(
                            codes::JOIN_KEY_MISSING,
                            label_span,
                            format!("label source {} has no column `{k}` to join {v} on", job.label.source),
                        )
                        .label("labels cannot be joined to features")
                        .help(format!(
                            "add `{k}` to the schema of {}, or take the label from a source that has it",
                            job.label.source
                        )),
                    );
                }
            }
            let windowed = view.features.iter().any(|f| matches!(f.kind, FeatureKind::Aggregate { .. }));
            if windowed && ls.timestamp.is_none() {
                diags.push(
                    Diagnostic::error(
                        codes::TIME_SPLIT_WITHOUT_TIMESTAMP,
                        label_span,
                        format!("label source {} has no `timestamp`, so windowed features of {v} cannot be joined point-in-time", job.label.source),
                    )
                    .label("labels without event time")
                    .help(format!("set `timestamp = \"<column>\"` on {}", job.label.source)),
                );
            }
        }
        if job.validation.split == "time" && ls.timestamp.is_none() {
            let at = node.block("validation").map_or(node.header, |v| v.span_of("split"));
            diags.push(
                Diagnostic::error(
                    codes::TIME_SPLIT_WITHOUT_TIMESTAMP,
                    at,
                    format!("a time split needs event time, but {} has no `timestamp`", job.label.source),
                )
                .label("time split")
                .help(format!("set `timestamp` on {}, or use `split = \"random\"`", job.label.source)),
            );
        }
    }
    for g in node.blocks_of("gate") {
        let Some(metric) = g.str("metric") else { continue };
        if !job.task.metrics().contains(&metric) {
            diags.push(metric_error(metric, job.task, &job.objective, g.span_of("metric"), obj_span));
        }
        if g.get("min").is_none() && g.get("max").is_none() {
            diags.push(
                Diagnostic::error(codes::MISSING_ATTRIBUTE, g.header, "gate sets neither `min` nor `max`")
                    .label("gate with no bound")
                    .help(format!("add `min = …` for {metric} (or `max` for an error metric)")),
            );
        }
        let higher_better = crate::schema::METRICS_HIGHER_IS_BETTER.contains(&metric);
        let wrong = if higher_better { ("max", "min", "higher") } else { ("min", "max", "lower") };
        if g.get(wrong.0).is_some() && g.get(wrong.1).is_none() {
            diags.push(
                Diagnostic::error(
                    codes::GATE_DIRECTION,
                    g.key_span_of(wrong.0),
                    format!("{metric} is better when {}, so a gate `{}` lets worse models through", wrong.2, wrong.0),
                )
                .label(format!("`{}` on a {}-is-better metric", wrong.0, wrong.2))
                .help(format!("write `{} = …`: the worst acceptable {metric}", wrong.1)),
            );
        }
        for b in ["min", "max"] {
            if let Some(v) = g.num(b) {
                let bounded = ["auc", "accuracy", "precision", "recall", "f1", "merror"].contains(&metric);
                if bounded && !(0.0..=1.0).contains(&v) {
                    diags.push(
                        Diagnostic::error(
                            codes::OUT_OF_RANGE,
                            g.span_of(b),
                            format!(
                                "{metric} lies in [0, 1]; a gate {b} of {} can never be met as intended",
                                format_number(v)
                            ),
                        )
                        .label("out of range")
                        .help(format!("write the gate as a fraction, e.g. `{b} = 0.85`")),
                    );
                }
            }
        }
    }
    if let Some(t) = node.block("tuning") {
        if let Some(m) = t.str("metric") {
            if !job.task.metrics().contains(&m) {
                diags.push(metric_error(m, job.task, &job.objective, t.span_of("metric"), obj_span));
            }
        }
        for s in t.blocks_of("search") {
            let p = s.name();
            if !XGBOOST_PARAMS.iter().any(|(n, _, _)| *n == p) || p == "objective" {
                diags.push(
                    Diagnostic::error(codes::INVALID_PARAM, s.labels.first().map_or(s.header, |l| l.1), format!("cannot search over `{p}`"))
                        .label("not a tunable XGBoost parameter")
                        .help(match did_you_mean(p, XGBOOST_PARAMS.iter().map(|(n, _, _)| *n)) {
                            Some(x) => format!("did you mean `{x}`?"),
                            None => "tunable parameters: max_depth, eta, min_child_weight, subsample, colsample_bytree, lambda, alpha, gamma".into(),
                        }),
                );
            }
            match (s.get("values"), s.num("min"), s.num("max")) {
                (Some(_), None, None) => {}
                (None, Some(lo), Some(hi)) => {
                    if lo >= hi {
                        diags.push(
                            Diagnostic::error(
                                codes::OUT_OF_RANGE,
                                s.span_of("max"),
                                format!(
                                    "search range of `{p}` is empty: min {} ≥ max {}",
                                    format_number(lo),
                                    format_number(hi)
                                ),
                            )
                            .with(s.span_of("min"), "min")
                            .help("make min smaller than max"),
                        );
                    }
                    if s.str("scale") == Some("log") && lo <= 0.0 {
                        diags.push(
                            Diagnostic::error(
                                codes::OUT_OF_RANGE,
                                s.span_of("min"),
                                format!("a log-scale range needs min > 0, got {}", format_number(lo)),
                            )
                            .help("raise min above 0, or use scale = \"linear\""),
                        );
                    }
                }
                (Some(_), _, _) => diags.push(
                    Diagnostic::error(
                        codes::CONFLICT,
                        s.key_span_of("values"),
                        format!("search `{p}` gives both `values` and a range"),
                    )
                    .help("give `values = [...]` or `min`/`max`, not both"),
                ),
                _ => diags.push(
                    Diagnostic::error(
                        codes::MISSING_ATTRIBUTE,
                        s.header,
                        format!("search `{p}` needs `values` or both `min` and `max`"),
                    )
                    .label("incomplete search space")
                    .help("values = [4, 6, 8], or min = 0.01 max = 0.3"),
                ),
            }
        }
    }
    if let Some(gpu) = node.block("resources").and_then(|r| r.num("gpu")) {
        if gpu > 0.0 {
            if let Target::Kubernetes { gpu_nodes: false, .. } = model.system.target {
                let r = node.block("resources").expect("checked above");
                diags.push(
                    Diagnostic::error(
                        codes::CONFLICT,
                        r.span_of("gpu"),
                        "the job asks for GPUs, but the kubernetes target declares no GPU nodes",
                    )
                    .label("GPU request")
                    .help("set `gpu_nodes = true` in `target \"kubernetes\"` if the cluster has them, or remove `gpu`"),
                );
            }
        }
    }
}

fn unknown_feature(name: &str, known: &[&str], at: Span, whose: &str) -> Diagnostic {
    Diagnostic::error(codes::UNKNOWN_FEATURE, at, format!("no feature `{name}` in {whose}"))
        .label("unknown feature")
        .help(match did_you_mean(name, known.iter().copied()) {
            Some(s) => format!("did you mean `{s}`?"),
            None if known.is_empty() => "the views define no features".to_string(),
            None => format!("features: {}", known.join(", ")),
        })
}

fn params(node: &Node, job: &TrainingJob, diags: &mut Diagnostics) {
    let Some(p) = node.attr("params") else { return };
    let Value::Object(map) = &p.value else { return };
    let multi = job.task == Task::Multiclass;
    for (k, v) in map {
        let key_span = p.entry_key_span(k);
        let val_span = p.entry_span(k);
        let Some((_, ty, range)) = XGBOOST_PARAMS.iter().find(|(n, _, _)| n == k) else {
            diags.push(
                Diagnostic::error(codes::INVALID_PARAM, key_span, format!("unknown XGBoost parameter `{k}`"))
                    .label("not a known parameter")
                    .help(match did_you_mean(k, XGBOOST_PARAMS.iter().map(|(n, _, _)| *n)) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!(
                            "parameters: {}",
                            XGBOOST_PARAMS.iter().map(|(n, _, _)| *n).collect::<Vec<_>>().join(", ")
                        ),
                    }),
            );
            continue;
        };
        let bad = |msg: String| {
            Diagnostic::error(codes::INVALID_PARAM, val_span, msg)
                .label("invalid value")
                .help(format!("`{k}` accepts {range}"))
        };
        match (k.as_str(), v) {
            ("objective", Value::String(o)) => {
                if !OBJECTIVES.contains(&o.as_str()) {
                    diags.push(
                        Diagnostic::error(codes::INVALID_PARAM, val_span, format!("unknown objective \"{o}\""))
                            .label("not an XGBoost objective")
                            .help(match did_you_mean(o, OBJECTIVES.iter().copied()) {
                                Some(s) => format!("did you mean \"{s}\"?"),
                                None => format!("objectives: {}", OBJECTIVES.join(", ")),
                            }),
                    );
                }
            }
            ("tree_method", Value::String(t)) => {
                if !["auto", "exact", "approx", "hist"].contains(&t.as_str()) {
                    diags.push(bad(format!("unknown tree_method \"{t}\"")));
                }
            }
            ("grow_policy", Value::String(t)) => {
                if !["depthwise", "lossguide"].contains(&t.as_str()) {
                    diags.push(bad(format!("unknown grow_policy \"{t}\"")));
                }
            }
            (_, Value::String(_)) if matches!(ty, crate::schema::Ty::String) => {}
            (_, Value::Number(n)) if !matches!(ty, crate::schema::Ty::String) => {
                let n = *n;
                let whole = matches!(ty, crate::schema::Ty::Integer);
                if whole && n.fract() != 0.0 {
                    diags.push(bad(format!("`{k}` must be a whole number, got {}", format_number(n))));
                    continue;
                }
                let ok = match k.as_str() {
                    "eta" | "learning_rate" | "subsample" | "colsample_bytree" | "colsample_bylevel"
                    | "colsample_bynode" => n > 0.0 && n <= 1.0,
                    "max_leaves" | "reg_lambda" | "reg_alpha" | "min_split_loss" => n >= 0.0,
                    "num_parallel_tree" => n >= 1.0,
                    "max_depth" => (0.0..=64.0).contains(&n),
                    "rounds" | "early_stopping_rounds" | "nthread" => n >= 1.0,
                    "num_class" => n >= 2.0,
                    "max_bin" => n >= 2.0,
                    "scale_pos_weight" => n > 0.0,
                    "min_child_weight" | "lambda" | "alpha" | "gamma" | "max_delta_step" => n >= 0.0,
                    _ => true,
                };
                if !ok {
                    diags.push(bad(format!("`{k}` = {} is out of range", format_number(n))));
                }
            }
            (_, other) => diags.push(bad(format!(
                "`{k}` must be a {}, got {}",
                if matches!(ty, crate::schema::Ty::String) { "string" } else { "number" },
                other.type_name()
            ))),
        }
    }
    let has_num_class = map.contains_key("num_class");
    if multi && !has_num_class {
        diags.push(
            Diagnostic::error(
                codes::INVALID_PARAM,
                objective_span(node),
                format!("objective \"{}\" needs `num_class`", job.objective),
            )
            .label("multi-class objective")
            .help("add `num_class = <number of classes>` to params"),
        );
    }
    if !multi && has_num_class {
        diags.push(
            Diagnostic::error(
                codes::INVALID_PARAM,
                p.entry_key_span("num_class"),
                format!("`num_class` is only for multi-class objectives, not \"{}\"", job.objective),
            )
            .label("ignored by this objective")
            .help("remove `num_class`, or use objective = \"multi:softprob\""),
        );
    }
    if map.contains_key("early_stopping_rounds") {
        let es = map.get("early_stopping_rounds").and_then(Value::as_number).unwrap_or(0.0);
        if es >= job.rounds as f64 {
            diags.push(
                Diagnostic::error(
                    codes::INVALID_PARAM,
                    p.entry_span("early_stopping_rounds"),
                    format!(
                        "early_stopping_rounds ({}) ≥ rounds ({}) never stops early",
                        format_number(es),
                        job.rounds
                    ),
                )
                .label("no effect")
                .help("make early_stopping_rounds smaller than rounds"),
            );
        }
    }
}

/// A rollback rule reading an external metric needs a query and a URL it can use; the others
/// take neither.
fn rollback(rule: &Rollback, node: &Node, diags: &mut Diagnostics) {
    let external = EXTERNAL_ROLLBACK_METRICS.contains(&rule.metric.as_str());
    if !external {
        for name in ["query", "url"] {
            if node.get(name).is_some() {
                diags.push(
                    Diagnostic::error(
                        codes::ROLLBACK_QUERY,
                        node.key_span_of(name),
                        format!("`{name}` is only read when metric = \"prometheus\" or \"scrape\""),
                    )
                    .with(
                        node.span_of("metric"),
                        format!("metric \"{}\" is measured by the server itself", rule.metric),
                    )
                    .help(format!("remove `{name}`, or set metric = \"prometheus\" to ask a Prometheus server")),
                );
            }
        }
        return;
    }
    let example = if rule.metric == "prometheus" {
        (
            r#"query = "sum(rate(mlops_endpoint_requests_total{code=~\"5..\", version=\"$candidate\"}[1m]))""#,
            r#"url = "http://127.0.0.1:9090""#,
        )
    } else {
        (r#"query = "queue_depth{endpoint=\"$endpoint\"}""#, r#"url = "http://127.0.0.1:8080/metrics""#)
    };
    for (name, value, add) in [("query", &rule.query, example.0), ("url", &rule.url, example.1)] {
        if value.is_none() {
            diags.push(
                Diagnostic::error(
                    codes::ROLLBACK_QUERY,
                    node.header,
                    format!("metric = \"{}\" needs `{name}`", rule.metric),
                )
                .with(node.span_of("metric"), "metric read from outside")
                .help(format!("add `{add}`")),
            );
        }
    }
    if let Some(url) = &rule.url {
        if !(url.starts_with("http://") && url.len() > "http://".len()) {
            let help = if url.starts_with("https://") {
                "metrics are read over plain HTTP (loopback or a trusted network): use http://"
            } else {
                "give a full URL, e.g. `http://127.0.0.1:9090`"
            };
            diags.push(
                Diagnostic::error(codes::ROLLBACK_QUERY, node.span_of("url"), format!("`{url}` is not an http:// URL"))
                    .label("not an http:// URL")
                    .help(help),
            );
        }
    }
    match &rule.query {
        Some(q) if q.trim().is_empty() => diags.push(
            Diagnostic::error(codes::ROLLBACK_QUERY, node.span_of("query"), "the query is empty").help(format!(
                "write the {} to read",
                if rule.metric == "scrape" { "series selector" } else { "PromQL expression" }
            )),
        ),
        Some(q) if rule.metric == "scrape" => {
            if let Err((at, message)) = crate::selector::Selector::parse(&q.replace('$', "v")) {
                let whole = node.span_of("query");
                // Point inside the string when it has no escapes (its text is the source's).
                let span = if whole.end - whole.start == q.len() + 2 {
                    Span { start: whole.start + 1 + at, end: (whole.start + 2 + at).min(whole.end - 1), ..whole }
                } else {
                    whole
                };
                diags.push(
                    Diagnostic::error(codes::ROLLBACK_QUERY, span, format!("this series selector cannot be read: {message}"))
                        .label("here")
                        .help(r#"a scrape reads series by name and labels, e.g. `errors_total{endpoint="$endpoint"}`; for PromQL use metric = "prometheus""#),
                );
            }
        }
        _ => {}
    }
}

fn endpoint(model: &Model, node: &Node, e: &Endpoint, diags: &mut Diagnostics) {
    let _ = model;
    if let Some(r) = node.block("rollout") {
        let strategy = r.str("strategy").unwrap_or("immediate");
        let steps_span = r.span_of("steps");
        if strategy == "canary" {
            if e.rollout.steps.is_empty() {
                diags.push(
                    Diagnostic::error(codes::CANARY_STEPS, r.header, "a canary rollout needs `steps`")
                        .label("no traffic steps")
                        .help("add `steps = [10, 50, 100]`: the percentage of traffic at each step"),
                );
            } else {
                let items = r.attr("steps");
                for (i, w) in e.rollout.steps.windows(2).enumerate() {
                    if w[1] <= w[0] {
                        diags.push(
                            Diagnostic::error(
                                codes::CANARY_STEPS,
                                items.map_or(steps_span, |a| a.item_span(i + 1)),
                                format!(
                                    "canary steps must increase: {} follows {}",
                                    format_number(w[1]),
                                    format_number(w[0])
                                ),
                            )
                            .label("not larger than the step before")
                            .help("list traffic percentages in increasing order, e.g. [10, 50, 100]"),
                        );
                    }
                }
                let last = *e.rollout.steps.last().expect("non-empty");
                if last != 100.0 {
                    let n = e.rollout.steps.len();
                    diags.push(
                        Diagnostic::error(
                            codes::CANARY_STEPS,
                            items.map_or(steps_span, |a| a.item_span(n - 1)),
                            format!(
                                "canary steps end at {}%, so the new version never takes all traffic",
                                format_number(last)
                            ),
                        )
                        .label("last step")
                        .help("end the steps at 100"),
                    );
                }
                if e.rollout.steps.first().is_some_and(|f| *f <= 0.0) {
                    diags.push(
                        Diagnostic::error(
                            codes::CANARY_STEPS,
                            items.map_or(steps_span, |a| a.item_span(0)),
                            "the first canary step sends no traffic",
                        )
                        .help("start with a small positive percentage, e.g. 5"),
                    );
                }
            }
            if e.rollout.interval.is_none() {
                diags.push(
                    Diagnostic::error(codes::MISSING_ATTRIBUTE, r.header, "a canary rollout needs an `interval`")
                        .label("how long is each step?")
                        .help("add `interval = \"10m\"`"),
                );
            }
        } else if r.get("steps").is_some() {
            diags.push(
                Diagnostic::error(
                    codes::CONFLICT,
                    r.key_span_of("steps"),
                    format!("`steps` only apply to canary rollouts, not \"{strategy}\""),
                )
                .with(r.span_of("strategy"), "strategy set here")
                .help("set `strategy = \"canary\"`, or remove `steps`"),
            );
        }
    }
    if let (Some(rule), Some(rb)) = (&e.rollout.rollback, node.block("rollout").and_then(|r| r.block("rollback"))) {
        rollback(rule, rb, diags);
    }
    if let (Some(a), Some(asn)) = (&e.autoscaling, node.block("autoscaling")) {
        if a.min_replicas > a.max_replicas {
            diags.push(
                Diagnostic::error(
                    codes::AUTOSCALING,
                    asn.span_of("min_replicas"),
                    format!("min_replicas {} is larger than max_replicas {}", a.min_replicas, a.max_replicas),
                )
                .label("larger than max_replicas")
                .with(asn.span_of("max_replicas"), "max_replicas")
                .help("make min_replicas ≤ max_replicas"),
            );
        }
        if node.get("replicas").is_some() && (e.replicas < a.min_replicas || e.replicas > a.max_replicas) {
            diags.push(
                Diagnostic::error(
                    codes::AUTOSCALING,
                    node.span_of("replicas"),
                    format!(
                        "replicas {} is outside the autoscaling range {}–{}",
                        e.replicas, a.min_replicas, a.max_replicas
                    ),
                )
                .label("outside the range")
                .with(asn.header, "autoscaling")
                .help("remove `replicas` (autoscaling starts at min_replicas) or bring it into the range"),
            );
        }
        if a.target_cpu.is_none() && a.target_rps.is_none() {
            diags.push(
                Diagnostic::error(codes::AUTOSCALING, asn.header, "autoscaling has no target to scale on")
                    .label("no target_cpu or target_rps")
                    .help("add `target_cpu = 70` (percent) or `target_rps = 100`"),
            );
        }
    }
    if let (Some(a), Some(an)) = (&e.auth, node.block("auth")) {
        if a.kind == "bearer" {
            match (&a.token_env, &a.token_file) {
                (None, None) => diags.push(
                    Diagnostic::error(
                        codes::MISSING_ATTRIBUTE,
                        an.header,
                        "bearer auth needs `token_env` or `token_file`",
                    )
                    .label("where is the token?")
                    .help("add `token_env = \"FRAUD_API_TOKEN\"`"),
                ),
                (Some(_), Some(_)) => diags.push(
                    Diagnostic::error(
                        codes::CONFLICT,
                        an.key_span_of("token_file"),
                        "`token_env` and `token_file` cannot both be set",
                    )
                    .with(an.key_span_of("token_env"), "token_env")
                    .help("keep one"),
                ),
                _ => {}
            }
        }
    }
}

/// Can a drift statistic be computed on a feature of this type?
fn method_fits(method: &str, ty: ColumnType) -> bool {
    match method {
        "chi2" => ty.is_discrete() || ty == ColumnType::Int,
        "js" => true,
        _ => ty.is_numeric() || ty == ColumnType::Bool,
    }
}

fn monitor(model: &Model, node: &Node, m: &Monitor, diags: &mut Diagnostics) {
    if node.blocks.is_empty() {
        diags.push(
            Diagnostic::error(
                codes::MISSING_ATTRIBUTE,
                node.header,
                format!("monitor `{}` watches nothing", node.name()),
            )
            .label("no drift, performance or prometheus block")
            .help("add `drift { features = [...] method = \"psi\" threshold = 0.2 }`"),
        );
    }
    let job = model.endpoint(&m.endpoint).and_then(|e| model.training_job(&e.model).map(|j| (e, j)));
    for d in node.blocks_of("drift") {
        if d.errors {
            continue;
        }
        let method = d.str("method").unwrap_or("psi");
        let threshold = d.num("threshold").unwrap_or(0.0);
        let (ok, range) = match method {
            "psi" => (threshold > 0.0, "> 0 (0.1 is a small shift, 0.25 a large one)"),
            "ks" => (threshold > 0.0 && threshold <= 1.0, "in (0, 1]: the KS statistic D"),
            "js" => (threshold > 0.0 && threshold <= 1.0, "in (0, 1]: the Jensen–Shannon distance (base 2)"),
            "chi2" => (threshold > 0.0 && threshold < 1.0, "in (0, 1): the significance level α of the p-value"),
            _ => (threshold > 0.0, "> 0: the Wasserstein distance in reference standard deviations"),
        };
        if !ok {
            diags.push(
                Diagnostic::error(
                    codes::DRIFT_THRESHOLD,
                    d.span_of("threshold"),
                    format!("a {method} threshold of {} can never be crossed as intended", format_number(threshold)),
                )
                .label("out of range for this method")
                .with(d.span_of("method"), format!("{method} chosen here"))
                .help(format!("{method} thresholds are {range}")),
            );
        }
        if method == "psi" && ok {
            // Under no change, PSI over 10 quantile bins of n samples is ≈ χ²(9)/n; its 95th
            // percentile is ≈ 16.9/n. A lower threshold alerts on unchanged data.
            let n = m.min_samples.max(1) as f64;
            let noise = 16.9 / n;
            if threshold < noise {
                let need = (16.9 / threshold).ceil();
                diags.push(
                    Diagnostic::warning(
                        codes::PSI_THRESHOLD_LOW,
                        d.span_of("threshold"),
                        format!(
                            "PSI threshold {} is below sampling noise for windows of {} predictions (≈{:.3})",
                            format_number(threshold),
                            m.min_samples,
                            noise
                        ),
                    )
                    .label("alerts on unchanged data")
                    .with(
                        node.attr("min_samples").map_or(node.header, |a| a.span),
                        format!("min_samples = {}", m.min_samples),
                    )
                    .help(format!(
                        "raise `min_samples` to at least {} or the threshold to at least {:.2}",
                        format_number(need),
                        noise
                    )),
                );
            }
        }
        let Some((_, j)) = job else { continue };
        let feats = model.job_features(j);
        let names: Vec<&str> = feats.iter().map(|(_, f)| f.name.as_str()).collect();
        let items = d.attr("features");
        if let Some(Value::List(list)) = d.get("features") {
            if list.is_empty() {
                diags.push(
                    Diagnostic::error(codes::MISSING_ATTRIBUTE, d.span_of("features"), "drift checks no features")
                        .help(format!("list features of the model: {}", names.join(", "))),
                );
            }
        }
        for (i, f) in d
            .get("features")
            .map(|_| m.drift.iter().find(|x| x.method == method))
            .into_iter()
            .flatten()
            .flat_map(|x| x.features.iter())
            .enumerate()
        {
            let _ = (i, f);
        }
        let declared: Vec<String> = match d.get("features") {
            Some(Value::List(l)) => l.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        };
        for (i, f) in declared.iter().enumerate() {
            let at = items.map_or(d.header, |a| a.item_span(i));
            if f == "prediction" {
                continue;
            }
            match feats.iter().find(|(_, x)| &x.name == f) {
                None => diags.push(unknown_feature(f, &names, at, &format!("the model served by {}", m.endpoint))),
                Some((_, feat)) => {
                    if !method_fits(method, feat.dtype) {
                        diags.push(
                            Diagnostic::error(
                                codes::DRIFT_METHOD,
                                at,
                                format!("{method} does not fit feature `{f}` of type {}", feat.dtype.name()),
                            )
                            .label(format!("{} feature", feat.dtype.name()))
                            .with(d.span_of("method"), "method")
                            .help(if method == "chi2" {
                                "chi2 compares categories; use psi, ks or wasserstein for numeric features".to_string()
                            } else {
                                "use chi2 or js for categorical features".to_string()
                            }),
                        );
                    }
                }
            }
        }
    }
    if let (Some(p), Some(pn)) = (&m.performance, node.block("performance")) {
        if let Some((_, j)) = job {
            if !j.task.metrics().contains(&p.metric.as_str()) {
                let obj_at = model
                    .get(&model.endpoint(&m.endpoint).map(|e| e.model.clone()).unwrap_or_default())
                    .map_or(pn.header, |r| objective_span(&r.node));
                diags.push(metric_error(&p.metric, j.task, &j.objective, pn.span_of("metric"), obj_at));
            }
        }
        if p.min.is_none() && p.max.is_none() {
            diags.push(
                Diagnostic::error(codes::MISSING_ATTRIBUTE, pn.header, "performance sets neither `min` nor `max`")
                    .label("no bound to alert on")
                    .help(format!("add `min = …` for {}", p.metric)),
            );
        }
        if let Some(fb) = model.reliable_source(&p.feedback) {
            for (attr, col) in [("id_column", &p.id_column), ("label_column", &p.label_column)] {
                if fb.column(col).is_none() {
                    let names: Vec<&str> = fb.columns.iter().map(|c| c.name.as_str()).collect();
                    diags.push(
                        Diagnostic::error(
                            codes::UNKNOWN_COLUMN,
                            if pn.get(attr).is_some() { pn.span_of(attr) } else { pn.span_of("feedback") },
                            format!("feedback source {} has no column `{col}` ({attr})", p.feedback),
                        )
                        .label(format!("needs column `{col}`"))
                        .help(match did_you_mean(col, names.iter().copied()) {
                            Some(s) => format!("did you mean `{s}`? set `{attr} = \"{s}\"`"),
                            None => format!("set `{attr}` to one of: {}", names.join(", ")),
                        }),
                    );
                }
            }
        }
    }
    for pr in node.blocks_of("prometheus") {
        match (pr.get("url"), pr.get("scrape")) {
            (Some(_), Some(_)) => diags.push(
                Diagnostic::error(codes::CONFLICT, pr.key_span_of("scrape"), "`url` and `scrape` cannot both be set")
                    .with(pr.key_span_of("url"), "url")
                    .help("query a Prometheus server (`url`) or scrape an exposition (`scrape`), not both"),
            ),
            (None, None) => diags.push(
                Diagnostic::error(codes::MISSING_ATTRIBUTE, pr.header, "prometheus check needs `url` or `scrape`")
                    .label("where does the metric come from?")
                    .help("add `url = \"http://127.0.0.1:9090\"` or `scrape = \"http://…/metrics\"`"),
            ),
            _ => {}
        }
        if pr.get("above").is_none() && pr.get("below").is_none() {
            diags.push(
                Diagnostic::error(
                    codes::MISSING_ATTRIBUTE,
                    pr.header,
                    "prometheus check sets neither `above` nor `below`",
                )
                .label("no bound")
                .help("add `above = …` or `below = …`"),
            );
        }
    }
}

fn retrain_policy(model: &Model, node: &Node, p: &RetrainPolicy, diags: &mut Diagnostics) {
    if p.on.is_empty() && p.schedule.is_none() && p.new_data.is_none() {
        diags.push(
            Diagnostic::error(
                codes::NO_TRIGGER,
                node.header,
                format!("retrain_policy `{}` has no trigger", node.name()),
            )
            .label("never runs")
            .help("add `on = [monitor.<name>]`, `schedule = \"0 3 * * *\"` or a `new_data { … }` block"),
        );
    }
    let job = model.training_job(&p.job).filter(|_| model.get(&p.job).is_some_and(|r| !r.node.errors));
    if let (Some(j), Some(pr)) = (job, node.block("promote")) {
        if j.gates.is_empty() {
            let job_header = model.get(&p.job).map_or(node.header, |r| r.node.header);
            diags.push(
                Diagnostic::error(codes::PROMOTE_WITHOUT_GATE, pr.header, format!("retrain_policy `{}` can promote models of {} which has no gate", node.name(), p.job))
                    .label("promotes automatically")
                    .with(job_header, "no `gate` block in this job")
                    .help("add `gate { metric = \"auc\"  min = 0.85 }` to the training job, so a bad retrain is never promoted"),
            );
        }
        if let Some(c) = pr.str("compare") {
            if !j.task.metrics().contains(&c) {
                let obj_at = model.get(&p.job).map_or(pr.header, |r| objective_span(&r.node));
                diags.push(metric_error(c, j.task, &j.objective, pr.span_of("compare"), obj_at));
            }
        }
        if let Some(via) = &p.promote.as_ref().and_then(|x| x.via.clone()) {
            if let Some(e) = model.endpoint(via) {
                if e.model != p.job {
                    diags.push(
                        Diagnostic::error(
                            codes::PROMOTE_ENDPOINT_MISMATCH,
                            pr.span_of("via"),
                            format!("{via} serves {}, not {}", e.model, p.job),
                        )
                        .label("serves another model")
                        .help(format!("promote through an endpoint whose `model = {}`", p.job)),
                    );
                }
            }
        }
    }
    let on_items = node.attr("on");
    let mut longest: Option<(Duration, Span)> = None;
    for (i, mon) in p.on.iter().enumerate() {
        let Some(m) = model.monitor(mon) else { continue };
        let at = on_items.map_or(node.header, |a| a.item_span(i));
        if let Some(e) = model.endpoint(&m.endpoint) {
            if e.model != p.job {
                diags.push(
                    Diagnostic::error(
                        codes::PROMOTE_ENDPOINT_MISMATCH,
                        at,
                        format!("{mon} watches {}, which serves {}, not {}", m.endpoint, e.model, p.job),
                    )
                    .label("watches another model")
                    .help(format!("trigger on monitors of endpoints serving {}", p.job)),
                );
            }
        }
        if longest.is_none_or(|(d, _)| m.window.as_millis() > d.as_millis()) {
            let span = model.get(mon).map_or(at, |r| r.node.span_of("window"));
            longest = Some((m.window, span));
        }
    }
    if let (Some((window, wspan)), Some(_)) = (longest, node.get("cooldown")) {
        if p.cooldown.as_millis() < window.as_millis() {
            diags.push(
                Diagnostic::error(
                    codes::COOLDOWN_SHORTER_THAN_WINDOW,
                    node.span_of("cooldown"),
                    format!("cooldown {} is shorter than the monitor window {window}", p.cooldown),
                )
                .label("cooldown")
                .with(wspan, format!("window {window}"))
                .help(format!(
                    "the same breach would retrain again before a fresh window is seen: set cooldown ≥ {window}"
                )),
            );
        }
    }
}
