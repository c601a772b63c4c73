//! The server's Prometheus metrics. In: what the HTTP layer, the endpoints and the prediction
//! log observe. Out: the exposition at `/metrics` — the Prometheus text format 0.0.4 by default
//! (`text/plain; version=0.0.4`), OpenMetrics 1.0 when the scraper asks for it in `Accept` (as
//! Prometheus itself does). The 0.0.4 text is what `prometheus-parse` and most tools read: in it a
//! counter's `# TYPE` line names the `_total` sample, where OpenMetrics names the family.
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | `mlops_http_requests_total` | counter | `route` (the route template, `/v1/endpoints/:name/predict`), `code` |
//! | `mlops_http_requests_in_flight` | gauge | |
//! | `mlops_http_panics_total` | counter | |
//! | `mlops_endpoint_requests_total` | counter | `endpoint`, `version` (empty before routing), `code` |
//! | `mlops_endpoint_request_duration_seconds` | histogram | `endpoint`, `version` |
//! | `mlops_endpoint_requests_in_flight` | gauge | `endpoint` |
//! | `mlops_endpoint_traffic_weight` | gauge | `endpoint`, `version` |
//! | `mlops_predictions_total` | counter | `endpoint`, `version` (rows predicted) |
//! | `mlops_prediction_score` | histogram | `endpoint`, `version` (probability; 0–1 in 0.05 steps) |
//! | `mlops_prediction_value` | histogram | `endpoint`, `version` (regression; signed log scale) |
//! | `mlops_predicted_class_total` | counter | `endpoint`, `version`, `class` |
//! | `mlops_feature_value` | histogram | `endpoint`, `feature` (numeric features; signed log scale) |
//! | `mlops_feature_missing_total` | counter | `endpoint`, `feature` (null, absent online, or unseen) |
//! | `mlops_feature_unseen_category_total` | counter | `endpoint`, `feature` |
//! | `mlops_online_entity_misses_total` | counter | `endpoint` (entity not in the online store) |
//! | `mlops_predlog_written_total` | counter | (predictions written to the log) |
//! | `mlops_predlog_dropped_total` | counter | `reason`: `full` (queue full), `sampled` (left out by sampling), `error` (write failed) |
//! | `mlops_predlog_sample_rate` | gauge | (1 in N requests offered to the log) |
//! | `mlops_loop_events_total` | counter | `kind`, `subject` (decisions of the monitoring and retraining loop) |
//! | `mlops_monitor_value` | gauge | `monitor`, `check`, `name` (latest value of each monitor check) |
//! | `mlops_monitor_breached` | gauge | `monitor` (1 while the latest window breached) |
//!
//! Label values come from the control plane (endpoint names, versions) or the model (features,
//! classes), never from request paths, so a client cannot grow the series.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// `route`, `code`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route template (`/v1/endpoints/:name/predict`), or `unmatched`.
    pub route: String,
    /// HTTP status code.
    pub code: u16,
}

/// `endpoint`, `version`, `code`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointCodeLabels {
    /// Endpoint name.
    pub endpoint: String,
    /// Model version, empty when the request failed before one was chosen.
    pub version: String,
    /// HTTP status code.
    pub code: u16,
}

/// `endpoint`, `version`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointVersionLabels {
    /// Endpoint name.
    pub endpoint: String,
    /// Model version.
    pub version: String,
}

/// `endpoint`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// Endpoint name.
    pub endpoint: String,
}

/// `endpoint`, `version`, `class`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClassLabels {
    /// Endpoint name.
    pub endpoint: String,
    /// Model version.
    pub version: String,
    /// Class name.
    pub class: String,
}

/// `endpoint`, `feature`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FeatureLabels {
    /// Endpoint name.
    pub endpoint: String,
    /// Feature name.
    pub feature: String,
}

/// `kind`, `subject` of a loop event.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// Event kind (`breach`, `promoted` …).
    pub kind: String,
    /// The monitor or policy it is about.
    pub subject: String,
}

/// `monitor`, `check`, `name` of a monitor check.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    /// Monitor address.
    pub monitor: String,
    /// `drift`, `performance`, `prometheus`.
    pub check: String,
    /// Feature, metric or check name, with the method: `psi(amount)`.
    pub name: String,
}

/// `monitor`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MonitorLabels {
    /// Monitor address.
    pub monitor: String,
}

/// `reason`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// Why.
    pub reason: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 0.25 ms … ~16 s, doubling.
    Histogram::new((0..17).map(|i| 0.000_25 * f64::from(1u32 << i)))
}

fn probability_histogram() -> Histogram {
    Histogram::new((1..20).map(|i| f64::from(i) * 0.05))
}

/// Bounded buckets for values of unknown scale: 0 and ±10^k for k in −3..=6.
pub const SIGNED_LOG_BUCKETS: [f64; 21] = [
    -1e6, -1e5, -1e4, -1e3, -1e2, -1e1, -1.0, -1e-1, -1e-2, -1e-3, 0.0, 1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2, 1e3, 1e4, 1e5,
    1e6,
];

/// [`SIGNED_LOG_BUCKETS`] as a histogram takes them.
pub fn signed_log_buckets() -> Vec<f64> {
    SIGNED_LOG_BUCKETS.to_vec()
}

fn signed_log_histogram() -> Histogram {
    Histogram::new(signed_log_buckets())
}

/// Every metric of one server, registered in one registry.
pub struct Metrics {
    registry: Registry,
    pub(crate) http_requests: Family<RouteLabels, Counter>,
    pub(crate) http_in_flight: Gauge,
    pub(crate) panics: Counter,
    pub(crate) endpoint_requests: Family<EndpointCodeLabels, Counter>,
    pub(crate) latency: HistogramFamily<EndpointVersionLabels>,
    pub(crate) endpoint_in_flight: Family<EndpointLabels, Gauge>,
    pub(crate) weight: Family<EndpointVersionLabels, Gauge>,
    pub(crate) predictions: Family<EndpointVersionLabels, Counter>,
    pub(crate) score: HistogramFamily<EndpointVersionLabels>,
    pub(crate) value: HistogramFamily<EndpointVersionLabels>,
    pub(crate) classes: Family<ClassLabels, Counter>,
    pub(crate) feature_value: HistogramFamily<FeatureLabels>,
    pub(crate) feature_missing: Family<FeatureLabels, Counter>,
    pub(crate) feature_unseen: Family<FeatureLabels, Counter>,
    pub(crate) entity_misses: Family<EndpointLabels, Counter>,
    pub(crate) predlog_written: Counter,
    pub(crate) predlog_dropped: Family<ReasonLabels, Counter>,
    pub(crate) predlog_sample_rate: Gauge,
    pub(crate) loop_events: Family<EventLabels, Counter>,
    pub(crate) monitor_value: Family<CheckLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub(crate) monitor_breached: Family<MonitorLabels, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh set of metrics, all at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            http_requests: Family::default(),
            http_in_flight: Gauge::default(),
            panics: Counter::default(),
            endpoint_requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            endpoint_in_flight: Family::default(),
            weight: Family::default(),
            predictions: Family::default(),
            score: Family::new_with_constructor(probability_histogram),
            value: Family::new_with_constructor(signed_log_histogram),
            classes: Family::default(),
            feature_value: Family::new_with_constructor(signed_log_histogram),
            feature_missing: Family::default(),
            feature_unseen: Family::default(),
            entity_misses: Family::default(),
            predlog_written: Counter::default(),
            predlog_dropped: Family::default(),
            predlog_sample_rate: Gauge::default(),
            loop_events: Family::default(),
            monitor_value: Family::default(),
            monitor_breached: Family::default(),
            registry: Registry::default(),
        };
        m.predlog_sample_rate.set(1);
        registry.register(
            "mlops_http_requests",
            "HTTP requests by route template and status code",
            m.http_requests.clone(),
        );
        registry.register("mlops_http_requests_in_flight", "HTTP requests being handled", m.http_in_flight.clone());
        registry.register("mlops_http_panics", "Handler panics turned into 500 responses", m.panics.clone());
        registry.register(
            "mlops_endpoint_requests",
            "Requests to an endpoint by model version and status code",
            m.endpoint_requests.clone(),
        );
        registry.register(
            "mlops_endpoint_request_duration_seconds",
            "Time to answer a routed request, by endpoint and model version",
            m.latency.clone(),
        );
        registry.register(
            "mlops_endpoint_requests_in_flight",
            "Requests to an endpoint being handled",
            m.endpoint_in_flight.clone(),
        );
        registry.register(
            "mlops_endpoint_traffic_weight",
            "Traffic weight of each model version of an endpoint",
            m.weight.clone(),
        );
        registry.register("mlops_predictions", "Rows predicted", m.predictions.clone());
        registry.register(
            "mlops_prediction_score",
            "Predicted probability (binary: positive class; multi-class: predicted class)",
            m.score.clone(),
        );
        registry.register("mlops_prediction_value", "Predicted value of regression models", m.value.clone());
        registry.register("mlops_predicted_class", "Predicted classes of multi-class models", m.classes.clone());
        registry.register("mlops_feature_value", "Values of numeric input features", m.feature_value.clone());
        registry.register(
            "mlops_feature_missing",
            "Input values that reached the model as missing",
            m.feature_missing.clone(),
        );
        registry.register(
            "mlops_feature_unseen_category",
            "Category values the model never saw at training (served as missing)",
            m.feature_unseen.clone(),
        );
        registry.register(
            "mlops_online_entity_misses",
            "Entities with no fresh row in the online store",
            m.entity_misses.clone(),
        );
        registry.register(
            "mlops_loop_events",
            "Decisions of the monitoring and retraining loop, by kind and monitor or policy",
            m.loop_events.clone(),
        );
        registry.register("mlops_monitor_value", "Latest value of each monitor check", m.monitor_value.clone());
        registry.register(
            "mlops_monitor_breached",
            "Whether the monitor's latest window breached (1) or not (0)",
            m.monitor_breached.clone(),
        );
        registry.register(
            "mlops_predlog_written",
            "Predictions written to the prediction log",
            m.predlog_written.clone(),
        );
        registry.register(
            "mlops_predlog_dropped",
            "Predictions left out of the prediction log, by reason",
            m.predlog_dropped.clone(),
        );
        registry.register(
            "mlops_predlog_sample_rate",
            "The prediction log keeps 1 in this many requests (1 unless under pressure)",
            m.predlog_sample_rate.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The Prometheus text format 0.0.4.
    pub fn encode_text(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// OpenMetrics 1.0 text (ends with `# EOF`).
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Predictions dropped from the log so far, every reason together.
    pub fn predlog_dropped(&self) -> u64 {
        ["full", "sampled", "error"]
            .into_iter()
            .map(|reason| self.predlog_dropped.get(&ReasonLabels { reason }).map_or(0, |c| c.get()))
            .sum()
    }

    /// Counts one decision of the monitoring and retraining loop.
    pub fn record_event(&self, kind: &str, subject: &str) {
        self.loop_events.get_or_create(&EventLabels { kind: kind.to_string(), subject: subject.to_string() }).inc();
    }

    /// Records a monitor's latest judgement: each check's value, and whether any breached.
    pub fn record_monitor(&self, report: &crate::monitor::evaluate::MonitorReport) {
        for c in &report.checks {
            if let Some(v) = c.value {
                let labels = CheckLabels {
                    monitor: report.monitor.clone(),
                    check: c.check.clone(),
                    name: format!("{}({})", c.method, c.name),
                };
                self.monitor_value.get_or_create(&labels).set(v);
            }
        }
        let breached = i64::from(!report.breaches().is_empty());
        self.monitor_breached.get_or_create(&MonitorLabels { monitor: report.monitor.clone() }).set(breached);
    }

    /// Predictions written to the log so far.
    pub fn predlog_written(&self) -> u64 {
        self.predlog_written.get()
    }

    /// Handler panics so far.
    pub fn panics(&self) -> u64 {
        self.panics.get()
    }
}

/// The content type of [`Metrics::encode_text`].
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// The content type of [`Metrics::encode_openmetrics`].
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Handles to one model version's metrics, taken once when the version is deployed so requests
/// touch no label maps.
#[derive(Clone)]
pub(crate) struct VersionMetrics {
    pub latency: Histogram,
    pub predictions: Counter,
    /// `mlops_prediction_score` (classifiers) or `mlops_prediction_value` (regression).
    pub score: Histogram,
    /// Per class (multi-class models).
    pub classes: Vec<Counter>,
    /// Per feature column: value histogram (numeric features only), missing, unseen.
    pub features: Vec<FeatureMetrics>,
    pub weight: Gauge,
}

#[derive(Clone)]
pub(crate) struct FeatureMetrics {
    pub value: Option<Histogram>,
    pub missing: Counter,
    pub unseen: Counter,
}

impl VersionMetrics {
    pub fn new(m: &Metrics, endpoint: &str, model: &super::model::ServingModel) -> VersionMetrics {
        use mlops_compiler::model::{ColumnType, Task};
        let ev = EndpointVersionLabels { endpoint: endpoint.to_string(), version: model.version().to_string() };
        let score = if model.task() == Task::Regression { &m.value } else { &m.score };
        let features = model
            .features()
            .iter()
            .map(|f| {
                let l = FeatureLabels { endpoint: endpoint.to_string(), feature: f.name.clone() };
                let numeric = matches!(f.dtype, ColumnType::Int | ColumnType::Float);
                FeatureMetrics {
                    value: numeric.then(|| m.feature_value.get_or_create_owned(&l)),
                    missing: m.feature_missing.get_or_create_owned(&l),
                    unseen: m.feature_unseen.get_or_create_owned(&l),
                }
            })
            .collect();
        VersionMetrics {
            latency: m.latency.get_or_create_owned(&ev),
            predictions: m.predictions.get_or_create_owned(&ev),
            score: score.get_or_create_owned(&ev),
            classes: model
                .classes()
                .iter()
                .map(|c| {
                    m.classes.get_or_create_owned(&ClassLabels {
                        endpoint: endpoint.to_string(),
                        version: ev.version.clone(),
                        class: c.clone(),
                    })
                })
                .collect(),
            features,
            weight: m.weight.get_or_create_owned(&ev),
        }
    }
}
