//! One judgement of a monitor. In: the monitor's configuration, a [`Window`] of the endpoint's
//! logged predictions, the training reference of the version that answered most of them, and
//! the labels known for them. Out: a [`MonitorReport`] — every check's value against its
//! threshold (drift per feature, with the multiple-testing correction across a check's
//! features; the performance metric on the labelled predictions), and whether any breached.
//! A check with too little data says so and never breaches.

use std::collections::HashMap;
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::Array;
use mlops_compiler::model::{ColumnType, Monitor, Source};
use serde::{Deserialize, Serialize};

use super::drift::{self, CategoryCounts, Check, Correction, FeatureData, Method, NumericSample, Policy};
use super::feedback;
use super::reference::Reference;
use super::window::{Column, Window};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    /// Within its threshold.
    Ok,
    /// Beyond it.
    Breached,
    /// Too little data to judge.
    InsufficientData,
    /// Could not be computed (no reference, a wrong kind of value …); never a breach.
    Error,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// `drift`, `performance`.
    pub check: String,
    /// The feature (drift) or metric (performance).
    pub name: String,
    /// The statistic or metric (`psi`, `f1` …).
    pub method: String,
    /// Its value.
    pub value: Option<f64>,
    /// The p-value after correction, where the method has one.
    pub p_value: Option<f64>,
    /// The threshold, in words: "> 0.2", "< 0.05 (p)", "≥ 0.8".
    pub threshold: String,
    /// Values or labelled predictions it was computed on.
    pub samples: u64,
    /// How it came out.
    pub status: CheckStatus,
    /// In words: "psi(amount) 0.31 > 0.2".
    pub message: String,
}

/// A monitor's judgement of one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonitorReport {
    /// The monitor's address.
    pub monitor: String,
    /// Window start and end, Unix milliseconds.
    pub from_ms: u64,
    /// End (exclusive).
    pub to_ms: u64,
    /// Predictions in the window.
    pub predictions: usize,
    /// The version whose reference was used (the one that answered most of the window).
    pub version: Option<u32>,
    /// Every check.
    pub checks: Vec<CheckResult>,
}

impl MonitorReport {
    /// The checks that breached.
    pub fn breaches(&self) -> Vec<&CheckResult> {
        self.checks.iter().filter(|c| c.status == CheckStatus::Breached).collect()
    }

    /// Whether every check lacked data (nothing judged).
    pub fn insufficient(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.status == CheckStatus::InsufficientData)
    }
}

fn fmt4(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_string()
    }
}

fn current_data(column: Column, missing: u64) -> FeatureData {
    match column {
        // Compared once: the statistics select what they need without sorting it whole.
        Column::Numeric(v) => FeatureData::Numeric(NumericSample::unsorted(v).with_missing(missing)),
        Column::Categorical(v) => {
            let mut c = CategoryCounts::from_values(v.iter().map(|s| Some(s.as_str())));
            c.add_missing(missing);
            FeatureData::Categorical(c)
        }
    }
}

/// Judges `window` for the monitor at `address`. `reference` is the training reference of
/// `version`; `labels` the known labels by prediction id.
pub fn evaluate(
    address: &str,
    monitor: &Monitor,
    window: &Window,
    version: Option<u32>,
    reference: Option<&Reference>,
    labels: &HashMap<String, f64>,
) -> MonitorReport {
    let mut checks = Vec::new();
    for d in &monitor.drift {
        drift_checks(d, monitor.min_samples, window, reference, &mut checks);
    }
    if let Some(p) = &monitor.performance {
        let pairs = feedback::join(window, labels);
        let n = pairs.len() as u64;
        let bound = match (p.min, p.max) {
            (Some(min), _) => format!("≥ {}", fmt4(min)),
            (None, Some(max)) => format!("≤ {}", fmt4(max)),
            _ => "—".into(),
        };
        let mut r = CheckResult {
            check: "performance".into(),
            name: p.metric.clone(),
            method: p.metric.clone(),
            value: None,
            p_value: None,
            threshold: bound.clone(),
            samples: n,
            status: CheckStatus::InsufficientData,
            message: String::new(),
        };
        if n < u64::from(monitor.min_samples.max(1)) {
            r.message = format!("{}: {n} labelled predictions, {} needed", p.metric, monitor.min_samples.max(1));
        } else {
            match feedback::metric(&p.metric, &pairs) {
                Ok(v) => {
                    let low = p.min.is_some_and(|m| v < m);
                    let high = p.max.is_some_and(|m| v > m);
                    r.value = Some(v);
                    r.status = if low || high { CheckStatus::Breached } else { CheckStatus::Ok };
                    let (metric, value, bare) = (&p.metric, fmt4(v), bound.trim_start_matches(['≥', '≤', ' ']));
                    r.message = match (low, high) {
                        (true, _) => format!("{metric} {value} < {bare} over {n} labelled predictions"),
                        (_, true) => format!("{metric} {value} > {bare} over {n} labelled predictions"),
                        _ => format!("{metric} {value} (bound {bound}) over {n} labelled predictions"),
                    };
                }
                Err(e) => {
                    r.status = CheckStatus::Error;
                    r.message = format!("{}: {e}", p.metric);
                }
            }
        }
        checks.push(r);
    }
    MonitorReport {
        monitor: address.to_string(),
        from_ms: (window.from_us / 1000).max(0) as u64,
        to_ms: (window.to_us / 1000).max(0) as u64,
        predictions: window.len(),
        version,
        checks,
    }
}

fn drift_checks(
    d: &mlops_compiler::model::Drift,
    min_samples: u32,
    window: &Window,
    reference: Option<&Reference>,
    out: &mut Vec<CheckResult>,
) {
    let error = |name: &str, message: String| CheckResult {
        check: "drift".into(),
        name: name.to_string(),
        method: d.method.clone(),
        value: None,
        p_value: None,
        threshold: format!("> {}", fmt4(d.threshold)),
        samples: 0,
        status: CheckStatus::Error,
        message,
    };
    let Some(method) = Method::parse(&d.method) else {
        out.extend(d.features.iter().map(|f| error(f, format!("unknown drift method `{}`", d.method))));
        return;
    };
    let Some(reference) = reference else {
        out.extend(
            d.features
                .iter()
                .map(|f| error(f, format!("{}({f}): no training reference for the serving version", d.method))),
        );
        return;
    };
    let currents: Vec<(String, FeatureData)> = d
        .features
        .iter()
        .map(|f| {
            let (column, missing) = window.column(f);
            (f.clone(), current_data(column, missing))
        })
        .collect();
    let mut judged = Vec::new();
    let mut checks = Vec::new();
    for (name, current) in &currents {
        match reference.feature(name) {
            None => out.push(error(name, format!("{}({name}): the training reference has no `{name}`", d.method))),
            // An empty window has no strings to tell it is categorical: judge it as insufficient.
            Some(fr) if current.count() == 0 => {
                let data = match &fr.data {
                    FeatureData::Categorical(_) => FeatureData::Categorical(CategoryCounts::default()),
                    FeatureData::Numeric(_) => FeatureData::Numeric(NumericSample::new(Vec::new())),
                };
                judged.push(name.clone());
                checks.push((name.clone(), &fr.data, data));
            }
            Some(fr) => {
                judged.push(name.clone());
                checks.push((name.clone(), &fr.data, current.clone()));
            }
        }
    }
    let inputs: Vec<Check<'_>> = checks
        .iter()
        .map(|(name, reference, current)| Check {
            feature: name,
            method,
            threshold: d.threshold,
            judged_on: method.judged_on(),
            reference,
            current,
        })
        .collect();
    let policy = Policy {
        correction: Correction::parse(&d.correction).unwrap_or_default(),
        min_samples: u64::from(min_samples.max(1)),
        ..Policy::default()
    };
    // Judged one by one on a kind mismatch, so one bad feature does not hide the others.
    let verdicts = match drift::judge(&inputs, &policy) {
        Ok(v) => v.into_iter().map(Ok).collect::<Vec<_>>(),
        Err(_) => {
            inputs.iter().map(|c| drift::judge(std::slice::from_ref(c), &policy).map(|mut v| v.remove(0))).collect()
        }
    };
    for (name, verdict) in judged.iter().zip(verdicts) {
        match verdict {
            Err(e) => out.push(error(name, format!("{}({name}): {e}", d.method))),
            Ok(v) => {
                let on_p = v.judged_on == drift::JudgedOn::PValue;
                let threshold =
                    if on_p { format!("p < {}", fmt4(v.threshold)) } else { format!("> {}", fmt4(v.threshold)) };
                let value = v.measurement.as_ref().map(|m| m.statistic);
                let p = v.p_value_adjusted.or_else(|| v.measurement.as_ref().and_then(|m| m.p_value));
                let status = match v.status {
                    drift::Status::Ok => CheckStatus::Ok,
                    drift::Status::Drifted => CheckStatus::Breached,
                    drift::Status::InsufficientData => CheckStatus::InsufficientData,
                };
                let shown = match (on_p, value, p) {
                    (true, _, Some(p)) => format!("p {}", fmt4(p)),
                    (_, Some(v), _) => fmt4(v),
                    _ => "—".into(),
                };
                let message = match status {
                    CheckStatus::InsufficientData => format!(
                        "{}({name}): {} values in the window, {} needed",
                        d.method, v.current_count, policy.min_samples
                    ),
                    CheckStatus::Breached => {
                        format!("{}({name}) {shown} {threshold} over {} values", d.method, v.current_count)
                    }
                    _ => {
                        format!("{}({name}) {shown} (threshold {threshold}) over {} values", d.method, v.current_count)
                    }
                };
                out.push(CheckResult {
                    check: "drift".into(),
                    name: name.clone(),
                    method: d.method.clone(),
                    value,
                    p_value: p,
                    threshold,
                    samples: v.current_count,
                    status,
                    message,
                });
            }
        }
    }
}

/// The outcome of a `prometheus "name" { … }` check on the value read (or why none was).
pub fn prometheus_check(check: &mlops_compiler::model::PrometheusCheck, value: Result<f64, String>) -> CheckResult {
    let bound = match (check.above, check.below) {
        (Some(a), Some(b)) => format!("> {} or < {}", fmt4(a), fmt4(b)),
        (Some(a), None) => format!("> {}", fmt4(a)),
        (None, Some(b)) => format!("< {}", fmt4(b)),
        (None, None) => "—".into(),
    };
    let mut r = CheckResult {
        check: "prometheus".into(),
        name: check.name.clone(),
        method: if check.scrape.is_some() { "scrape" } else { "query" }.into(),
        value: None,
        p_value: None,
        threshold: bound.clone(),
        samples: 0,
        status: CheckStatus::Error,
        message: String::new(),
    };
    match value {
        Err(e) => r.message = format!("{}: {e}", check.name),
        Ok(v) => {
            let breached = check.above.is_some_and(|a| v > a) || check.below.is_some_and(|b| v < b);
            r.value = Some(v);
            r.samples = 1;
            r.status = if breached { CheckStatus::Breached } else { CheckStatus::Ok };
            r.message = if breached {
                format!("{} {} {bound}", check.name, fmt4(v))
            } else {
                format!("{} {} (alerts {bound})", check.name, fmt4(v))
            };
        }
    }
    r
}

/// Labels from a declared feedback source: `id_column` → `label_column` (booleans as 0/1).
pub fn source_labels(
    source: &Source,
    address: &str,
    root: &Path,
    id_column: &str,
    label_column: &str,
) -> Result<HashMap<String, f64>, String> {
    let reader = crate::data::open(source, address, root).map_err(|e| e.to_string())?;
    let mut out = HashMap::new();
    let label_type = source.column(label_column).map(|c| c.ty);
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let ids = batch.column_by_name(id_column).ok_or_else(|| format!("{address} has no column `{id_column}`"))?;
        let labels =
            batch.column_by_name(label_column).ok_or_else(|| format!("{address} has no column `{label_column}`"))?;
        let ids = ids.as_string_opt::<i32>().ok_or_else(|| format!("`{id_column}` of {address} is not text"))?;
        for i in 0..batch.num_rows() {
            if ids.is_null(i) || labels.is_null(i) {
                continue;
            }
            let label = match label_type {
                Some(ColumnType::Bool) => labels.as_boolean_opt().map(|a| f64::from(u8::from(a.value(i)))),
                Some(ColumnType::Int) => {
                    labels.as_primitive_opt::<arrow_array::types::Int64Type>().map(|a| a.value(i) as f64)
                }
                Some(ColumnType::Float) => {
                    labels.as_primitive_opt::<arrow_array::types::Float64Type>().map(|a| a.value(i))
                }
                _ => None,
            }
            .ok_or_else(|| format!("`{label_column}` of {address} is not a boolean or a number"))?;
            out.insert(ids.value(i).to_string(), label);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitor::reference::FeatureReference;
    use crate::monitor::window::Logged;
    use mlops_compiler::model::{Drift, Performance};
    use mlops_compiler::units::Duration;

    fn monitor(min_samples: u32, threshold: f64) -> Monitor {
        Monitor {
            endpoint: "endpoint.api".into(),
            window: Duration::from_millis(60_000),
            min_samples,
            drift: vec![
                Drift {
                    features: vec!["amount".into()],
                    method: "psi".into(),
                    threshold,
                    correction: "bonferroni".into(),
                },
                Drift {
                    features: vec!["merchant".into()],
                    method: "chi2".into(),
                    threshold: 0.01,
                    correction: "bonferroni".into(),
                },
            ],
            performance: Some(Performance {
                feedback: "source.labels".into(),
                metric: "recall".into(),
                min: Some(0.5),
                max: None,
                id_column: "prediction_id".into(),
                label_column: "label".into(),
            }),
            prometheus: Vec::new(),
            description: None,
        }
    }

    fn reference() -> Reference {
        let mut r = Reference::new(1000, 1);
        r.features.insert("amount".into(), FeatureReference::numeric((0..1000).map(|i| f64::from(i % 100)), 1000, 1));
        let merchants = (0..1000).map(|i| Some(if i % 2 == 0 { "web" } else { "shop" }));
        r.features.insert("merchant".into(), FeatureReference::categorical(CategoryCounts::from_values(merchants)));
        r
    }

    fn window(n: usize, shift: f64, merchant: impl Fn(usize) -> &'static str) -> Window {
        let rows = (0..n)
            .map(|i| {
                let mut f = serde_json::Map::new();
                f.insert("amount".into(), serde_json::json!((i % 100) as f64 + shift));
                f.insert("merchant".into(), serde_json::json!(merchant(i)));
                Logged {
                    id: format!("p{i}"),
                    version: 3,
                    features: f,
                    score: Some(if i % 2 == 0 { 0.9 } else { 0.1 }),
                    class: None,
                }
            })
            .collect();
        Window { from_us: 0, to_us: 60_000_000, rows, skipped: 0 }
    }

    #[test]
    fn the_same_distribution_passes_and_a_shift_breaches() {
        let r = reference();
        let same = window(500, 0.0, |i| if i % 2 == 0 { "web" } else { "shop" });
        let report = evaluate("monitor.m", &monitor(100, 0.2), &same, Some(3), Some(&r), &HashMap::new());
        let status: Vec<_> = report.checks.iter().map(|c| (c.name.as_str(), c.status)).collect();
        assert_eq!(
            status,
            [("amount", CheckStatus::Ok), ("merchant", CheckStatus::Ok), ("recall", CheckStatus::InsufficientData)]
        );
        assert!(report.breaches().is_empty());

        let shifted = window(500, 60.0, |i| if i % 5 == 0 { "web" } else { "shop" });
        let report = evaluate("monitor.m", &monitor(100, 0.2), &shifted, Some(3), Some(&r), &HashMap::new());
        let breached: Vec<&str> = report.breaches().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(breached, ["amount", "merchant"]);
        assert!(report.checks[0].message.starts_with("psi(amount) "), "{}", report.checks[0].message);
        assert!(report.checks[0].message.contains(" > 0.2 over 500 values"), "{}", report.checks[0].message);
        assert!(report.checks[1].threshold.starts_with("p < "), "{}", report.checks[1].threshold);
    }

    #[test]
    fn too_few_values_or_no_reference_never_breach() {
        let few = window(20, 60.0, |_| "web");
        let report = evaluate("monitor.m", &monitor(100, 0.2), &few, Some(3), Some(&reference()), &HashMap::new());
        assert!(report.insufficient(), "{report:?}");
        assert!(report.checks[0].message.contains("20 values in the window, 100 needed"));
        let report = evaluate("monitor.m", &monitor(1, 0.2), &few, Some(3), None, &HashMap::new());
        assert!(report.checks[..2].iter().all(|c| c.status == CheckStatus::Error));
        assert!(report.checks[0].message.contains("no training reference"), "{}", report.checks[0].message);
    }

    #[test]
    fn prometheus_checks_compare_the_value_read_with_their_bounds() {
        let check = mlops_compiler::model::PrometheusCheck {
            name: "p99".into(),
            url: Some("http://127.0.0.1:9090".into()),
            scrape: None,
            query: "q".into(),
            above: Some(0.5),
            below: Some(0.1),
        };
        let r = prometheus_check(&check, Ok(0.7));
        assert_eq!((r.status, r.message.as_str()), (CheckStatus::Breached, "p99 0.7 > 0.5 or < 0.1"));
        assert_eq!(prometheus_check(&check, Ok(0.05)).status, CheckStatus::Breached);
        let r = prometheus_check(&check, Ok(0.3));
        assert_eq!((r.status, r.message.as_str()), (CheckStatus::Ok, "p99 0.3 (alerts > 0.5 or < 0.1)"));
        let r = prometheus_check(&check, Err("cannot reach Prometheus".into()));
        assert_eq!((r.status, r.message.as_str()), (CheckStatus::Error, "p99: cannot reach Prometheus"));
    }

    #[test]
    fn performance_is_judged_on_joined_labels() {
        let w = window(200, 0.0, |_| "web");
        // Scores alternate 0.9 / 0.1; say every even one was really negative, every odd positive.
        let labels: HashMap<String, f64> =
            (0..200).map(|i| (format!("p{i}"), if i % 2 == 0 { 0.0 } else { 1.0 })).collect();
        let report = evaluate("monitor.m", &monitor(100, 0.2), &w, Some(3), Some(&reference()), &labels);
        let perf = report.checks.last().unwrap();
        assert_eq!((perf.status, perf.value, perf.samples), (CheckStatus::Breached, Some(0.0), 200));
        assert_eq!(perf.message, "recall 0 < 0.5 over 200 labelled predictions");
    }
}
