//! ML-aware risk notes: a resource's configuration before and after (typed) in, [`Risk`]s out —
//! the changes a reviewer must not miss because they weaken a safeguard (a gate, a rollback rule,
//! a drift threshold, a retrain budget) or send traffic to a model nobody has checked yet.

use super::show::number;
use super::{Action, Risk, RiskLevel};
use crate::model::{
    Config, Drift, Endpoint, FeatureKind, FeatureView, Gate, Monitor, RetrainPolicy, Source, TrainingJob,
};
use crate::schema::METRICS_HIGHER_IS_BETTER;

fn risk(level: RiskLevel, text: String) -> Risk {
    Risk { level, text }
}

/// Notes on a resource that stays (updated, replaced or untouched); `new_version`: an endpoint
/// rolls out a new model version in this plan.
pub(super) fn changed(action: Action, before: &Config, after: &Config, new_version: bool) -> Vec<Risk> {
    let mut out = Vec::new();
    match (before, after) {
        (Config::Source(b), Config::Source(a)) => source(b, a, &mut out),
        (Config::FeatureView(b), Config::FeatureView(a)) => feature_view(b, a, &mut out),
        (Config::TrainingJob(b), Config::TrainingJob(a)) => training_job(action, b, a, &mut out),
        (Config::Endpoint(b), Config::Endpoint(a)) => endpoint(b, a, new_version, &mut out),
        (Config::Monitor(b), Config::Monitor(a)) => monitor(b, a, &mut out),
        (Config::RetrainPolicy(b), Config::RetrainPolicy(a)) => retrain_policy(b, a, &mut out),
        _ => {}
    }
    out
}

/// Notes on a resource being destroyed; `referenced_by`: resources in state that depend on it,
/// each with whether it is still configured.
pub(super) fn deleted(before: &Config, referenced_by: &[(&str, bool)]) -> Vec<Risk> {
    let mut out = Vec::new();
    match before {
        Config::Endpoint(_) => {
            out.push(risk(RiskLevel::Danger, "endpoint removed: requests to it will fail".into()));
            if !referenced_by.is_empty() {
                let names: Vec<&str> = referenced_by.iter().map(|(a, _)| *a).collect();
                let kept = referenced_by.iter().any(|(_, kept)| *kept);
                let (level, tail) = if kept {
                    (RiskLevel::Danger, "some of them stay configured")
                } else {
                    (RiskLevel::Warn, "they are removed in this plan too")
                };
                out.push(risk(level, format!("endpoint removed while {} reference it: {tail}", names.join(", "))));
            }
        }
        Config::Monitor(m) => out.push(risk(
            RiskLevel::Warn,
            format!("monitor removed: {} is no longer watched for drift or quality", m.endpoint),
        )),
        Config::RetrainPolicy(p) => out.push(risk(
            RiskLevel::Warn,
            format!("retrain policy removed: {} is no longer retrained automatically", p.job),
        )),
        _ => {}
    }
    out
}

fn source(b: &Source, a: &Source, out: &mut Vec<Risk>) {
    if b.connection != a.connection || b.connection_env != a.connection_env {
        let same_rows = (b.format, &b.table, &b.query) == (a.format, &a.table, &a.query);
        let text = if same_rows {
            "connection changed (value hidden): the same table is assumed, so nothing is rebuilt or retrained"
        } else {
            "connection changed (value hidden)"
        };
        out.push(risk(RiskLevel::Info, text.into()));
    }
}

fn feature_view(b: &FeatureView, a: &FeatureView, out: &mut Vec<Risk>) {
    let mut what = Vec::new();
    if b.ttl != a.ttl {
        let show = |d: Option<crate::units::Duration>| d.map_or_else(|| "none".to_string(), |d| d.to_string());
        what.push(format!("ttl {} → {}", show(b.ttl), show(a.ttl)));
    }
    for fa in &a.features {
        let Some(fb) = b.features.iter().find(|f| f.name == fa.name) else { continue };
        if let (
            FeatureKind::Aggregate { aggregate: ab, window: wb, .. },
            FeatureKind::Aggregate { aggregate: aa, window: wa, .. },
        ) = (&fb.kind, &fa.kind)
        {
            if wb != wa {
                what.push(format!("{} window {wb} → {wa}", fa.name));
            }
            if ab != aa {
                let name = |x| serde_json::to_value(x).ok().and_then(|v| v.as_str().map(str::to_string));
                let (x, y) = (name(ab).unwrap_or_default(), name(aa).unwrap_or_default());
                what.push(format!("{} aggregate {x} → {y}", fa.name));
            }
        }
    }
    if !what.is_empty() {
        out.push(risk(RiskLevel::Warn, format!("training data window changed → full retrain ({})", what.join(", "))));
    }
    if b.online && !a.online {
        out.push(risk(
            RiskLevel::Info,
            "online store turned off: serving can no longer read fresh values of these features".into(),
        ));
    }
}

fn training_job(action: Action, b: &TrainingJob, a: &TrainingJob, out: &mut Vec<Risk>) {
    if b.label != a.label {
        out.push(risk(
            RiskLevel::Warn,
            format!(
                "label changed {}.{} → {}.{}: the model learns a different target; earlier metrics are not comparable",
                b.label.source, b.label.column, a.label.source, a.label.column
            ),
        ));
    }
    gates(&b.gates, &a.gates, out);
    if action == Action::Replace && a.gates.is_empty() {
        out.push(risk(
            RiskLevel::Warn,
            "retrained without a gate: the new model version is promoted whatever its quality".into(),
        ));
    }
    if b.validation.split != a.validation.split || b.validation.holdout != a.validation.holdout {
        out.push(risk(
            RiskLevel::Info,
            format!(
                "validation changed ({} {} → {} {}): holdout metrics are not comparable with earlier versions",
                b.validation.split,
                number(b.validation.holdout),
                a.validation.split,
                number(a.validation.holdout)
            ),
        ));
    }
}

fn bound(g: &Gate) -> String {
    match (g.min, g.max) {
        (Some(lo), Some(hi)) => format!("{} in [{}, {}]", g.metric, number(lo), number(hi)),
        (Some(lo), None) => format!("{} ≥ {}", g.metric, number(lo)),
        (None, Some(hi)) => format!("{} ≤ {}", g.metric, number(hi)),
        (None, None) => g.metric.clone(),
    }
}

fn gates(before: &[Gate], after: &[Gate], out: &mut Vec<Risk>) {
    for gb in before {
        let Some(ga) = after.iter().find(|g| g.metric == gb.metric) else {
            out.push(risk(
                RiskLevel::Danger,
                format!("gate removed: {} is no longer required before a model is promoted", bound(gb)),
            ));
            continue;
        };
        let m = &gb.metric;
        match (gb.min, ga.min) {
            (Some(x), Some(y)) if y < x => {
                out.push(risk(RiskLevel::Warn, format!("gate lowered {m} {} → {}", number(x), number(y))))
            }
            (Some(x), Some(y)) if y > x => {
                out.push(risk(RiskLevel::Info, format!("gate raised {m} {} → {}", number(x), number(y))))
            }
            (Some(x), None) => out.push(risk(
                RiskLevel::Danger,
                format!("gate removed: {m} ≥ {} is no longer required before a model is promoted", number(x)),
            )),
            (None, Some(y)) => out.push(risk(RiskLevel::Info, format!("gate added: {m} ≥ {}", number(y)))),
            _ => {}
        }
        match (gb.max, ga.max) {
            (Some(x), Some(y)) if y > x => {
                out.push(risk(RiskLevel::Warn, format!("gate loosened {m} ≤ {} → ≤ {}", number(x), number(y))))
            }
            (Some(x), Some(y)) if y < x => {
                out.push(risk(RiskLevel::Info, format!("gate tightened {m} ≤ {} → ≤ {}", number(x), number(y))))
            }
            (Some(x), None) => out.push(risk(
                RiskLevel::Danger,
                format!("gate removed: {m} ≤ {} is no longer required before a model is promoted", number(x)),
            )),
            (None, Some(y)) => out.push(risk(RiskLevel::Info, format!("gate added: {m} ≤ {}", number(y)))),
            _ => {}
        }
    }
    for ga in after.iter().filter(|g| !before.iter().any(|b| b.metric == g.metric)) {
        out.push(risk(RiskLevel::Info, format!("gate added: {}", bound(ga))));
    }
}

fn endpoint(b: &Endpoint, a: &Endpoint, new_version: bool, out: &mut Vec<Risk>) {
    let (rb, ra) = (&b.rollout, &a.rollout);
    if rb.strategy != "immediate" && ra.strategy == "immediate" {
        out.push(risk(
            RiskLevel::Danger,
            format!("{} replaced by immediate rollout: traffic to an untested model", rb.strategy.replace('_', "-")),
        ));
    } else if new_version && ra.strategy == "immediate" {
        out.push(risk(
            RiskLevel::Warn,
            "the new model version takes all traffic at once (immediate rollout, no canary)".into(),
        ));
    }
    match (&rb.rollback, &ra.rollback) {
        (Some(x), None) => out.push(risk(
            RiskLevel::Danger,
            format!(
                "rollback rule removed: a version with {} above {} is no longer rolled back automatically",
                x.metric,
                number(x.above)
            ),
        )),
        (Some(x), Some(y)) if x.metric == y.metric && y.above > x.above => out.push(risk(
            RiskLevel::Warn,
            format!("rollback threshold loosened {} {} → {}", x.metric, number(x.above), number(y.above)),
        )),
        (None, Some(y)) => {
            out.push(risk(RiskLevel::Info, format!("rollback rule added: {} above {}", y.metric, number(y.above))))
        }
        _ => {}
    }
    if let (Some(x), Some(y)) = (rb.steps.first(), ra.steps.first()) {
        if ra.strategy == "canary" && rb.strategy == "canary" && y > x {
            out.push(risk(
                RiskLevel::Info,
                format!("canary starts with {}% of traffic (was {}%)", number(*y), number(*x)),
            ));
        }
    }
    let authenticated = |e: &Endpoint| e.auth.as_ref().is_some_and(|a| a.kind != "none");
    if authenticated(b) && !authenticated(a) {
        out.push(risk(RiskLevel::Danger, "authentication removed: the endpoint accepts anonymous requests".into()));
    }
    if a.replicas < b.replicas {
        out.push(risk(RiskLevel::Info, format!("replicas reduced {} → {}", b.replicas, a.replicas)));
    }
}

fn higher_is_better(metric: &str) -> bool {
    METRICS_HIGHER_IS_BETTER.contains(&metric)
}

fn drift_scope(d: &Drift) -> String {
    format!("{} on {}", d.method, d.features.join(", "))
}

fn monitor(b: &Monitor, a: &Monitor, out: &mut Vec<Risk>) {
    if b.endpoint != a.endpoint {
        out.push(risk(RiskLevel::Info, format!("now watches {} instead of {}", a.endpoint, b.endpoint)));
    }
    for i in 0..b.drift.len().max(a.drift.len()) {
        match (b.drift.get(i), a.drift.get(i)) {
            (Some(x), Some(y)) if x.method != y.method => out.push(risk(
                RiskLevel::Info,
                format!(
                    "drift method {} → {} on {}: thresholds are not comparable",
                    x.method,
                    y.method,
                    y.features.join(", ")
                ),
            )),
            (Some(x), Some(y)) if x.threshold != y.threshold => {
                // chi2's threshold is a significance level (alert when p < α): lower is looser.
                let loosened = if y.method == "chi2" { y.threshold < x.threshold } else { y.threshold > x.threshold };
                let (t0, t1) = (number(x.threshold), number(y.threshold));
                out.push(if loosened {
                    risk(
                        RiskLevel::Warn,
                        format!("drift threshold loosened {t0} → {t1} ({}): fewer drift alerts", drift_scope(y)),
                    )
                } else {
                    risk(
                        RiskLevel::Info,
                        format!("drift threshold tightened {t0} → {t1} ({}): more drift alerts", drift_scope(y)),
                    )
                });
            }
            (Some(x), None) => out.push(risk(RiskLevel::Warn, format!("drift check removed ({})", drift_scope(x)))),
            (None, Some(y)) => out.push(risk(RiskLevel::Info, format!("drift check added ({})", drift_scope(y)))),
            _ => {}
        }
    }
    match (&b.performance, &a.performance) {
        (Some(x), None) => out.push(risk(
            RiskLevel::Warn,
            format!("performance check removed: {} on feedback is no longer watched", x.metric),
        )),
        (Some(x), Some(y)) if x.metric == y.metric => {
            let looser = if higher_is_better(&y.metric) {
                matches!((x.min, y.min), (Some(p), Some(q)) if q < p) || (x.min.is_some() && y.min.is_none())
            } else {
                matches!((x.max, y.max), (Some(p), Some(q)) if q > p) || (x.max.is_some() && y.max.is_none())
            };
            if looser {
                let show = |v: Option<f64>| v.map_or_else(|| "none".to_string(), number);
                let (p, q) = if higher_is_better(&y.metric) { (x.min, y.min) } else { (x.max, y.max) };
                out.push(risk(
                    RiskLevel::Warn,
                    format!("performance alert loosened {} {} → {}", y.metric, show(p), show(q)),
                ));
            }
        }
        (None, Some(y)) => out.push(risk(RiskLevel::Info, format!("performance check added: {}", y.metric))),
        _ => {}
    }
    if a.window > b.window {
        out.push(risk(RiskLevel::Info, format!("monitor window {} → {}: drift is detected later", b.window, a.window)));
    }
}

fn retrain_policy(b: &RetrainPolicy, a: &RetrainPolicy, out: &mut Vec<Risk>) {
    match (&b.budget, &a.budget) {
        (Some(x), Some(y)) => {
            // Compare rates: runs per millisecond, cross-multiplied to stay in integers.
            let before = u128::from(x.max_runs) * u128::from(y.per.as_millis());
            let after = u128::from(y.max_runs) * u128::from(x.per.as_millis());
            if after > before {
                out.push(risk(
                    RiskLevel::Warn,
                    format!("retrain budget raised {} per {} → {} per {}", x.max_runs, x.per, y.max_runs, y.per),
                ));
            }
        }
        (Some(x), None) => out.push(risk(
            RiskLevel::Warn,
            format!("retrain budget removed (was {} per {}): retraining is no longer capped", x.max_runs, x.per),
        )),
        _ => {}
    }
    if a.cooldown < b.cooldown {
        out.push(risk(RiskLevel::Warn, format!("cooldown shortened {} → {}", b.cooldown, a.cooldown)));
    }
    match (&b.promote, &a.promote) {
        (Some(x), Some(y)) if y.min_gain < x.min_gain => out.push(risk(
            RiskLevel::Warn,
            format!("promotion bar lowered: {} gain {} → {}", y.compare, number(x.min_gain), number(y.min_gain)),
        )),
        (Some(_), None) => out.push(risk(RiskLevel::Warn, "promotion rule removed".into())),
        _ => {}
    }
    for m in b.on.iter().filter(|m| !a.on.contains(m)) {
        out.push(risk(RiskLevel::Info, format!("no longer retrains when {m} breaches")));
    }
}
