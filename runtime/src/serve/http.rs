//! The HTTP API. In: requests. Out: predictions from the endpoints' models, health, metrics.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /v1/endpoints/{name}/predict` | `{"rows": [{feature: value, …}, …]}`, `{"row": {…}}` or `{"entities": [{join key: value, …}, …]}` → `{"endpoint", "model_version", "predictions": [{"prediction_id", "score"} or {"prediction_id", "class", "probabilities"}]}` |
//! | `POST /v2/models/{name}[/versions/{v}]/infer` | Open Inference Protocol (KServe V2): one tensor per feature (shape `[rows]`), or one FP32 tensor `[rows, features]` in signature order (categories as codes) |
//! | `GET /v2/models/{name}[/versions/{v}]` | model metadata: inputs with datatypes and shapes, versions, outputs |
//! | `GET /v2/models/{name}[/versions/{v}]/ready` | 200 when the model takes traffic |
//! | `GET /v2/health/live`, `/v2/health/ready`, `/v2` | server liveness, readiness, metadata |
//! | `GET /healthz`, `GET /readyz` | liveness; readiness (ready once the endpoints are loaded, not while draining) |
//! | `GET /metrics` | Prometheus exposition (see [`super::metrics`]) |
//!
//! Every error is JSON `{"error": "…"}` naming the problem: 400 bad input (the message names the
//! row and feature), 401 a missing or wrong bearer token (with `WWW-Authenticate: Bearer`; the
//! token is never echoed), 404 an unknown endpoint, model version or route, 405 a wrong method,
//! 413 a body over the endpoint's limit, 415 a body that is not `application/json`, **504** when
//! the endpoint's per-request timeout passes before the answer (reading the body included), 503
//! not ready, 500 a failure inside the server — logged with its cause, sent without it. A panic
//! in a handler is caught and answered 500 (and counted in `mlops_http_panics_total`).
//!
//! A request is routed to one model version as a whole (see [`super::endpoints`]); with a sticky
//! key configured, the key's value is taken from the first row or entity (`rows` may carry it as
//! a field that is not a feature).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::{FutureExt, StreamExt};
use mlops_compiler::model::{ColumnType, Task};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::endpoints::{Deployment, Endpoints, Route};
use super::metrics::{EndpointCodeLabels, Metrics, RouteLabels, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};
use super::model::{Decoded, FeatureValue, Output, ServingModel};
use super::predlog::{output_json, LoggedBatch, LoggedPrediction, LoggedValue, PredictionLogger};
use super::util::{now_micros, prediction_id};
use crate::monitor::feedback::{parse_item, FeedbackStore};

/// An answer that is not a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 400: the request cannot be used; says why.
    BadRequest(String),
    /// 401: no token, or not the endpoint's token.
    Unauthorized {
        /// What is wrong (never the token).
        message: String,
        /// A token was given but is wrong.
        invalid_token: bool,
    },
    /// 404.
    NotFound(String),
    /// 405.
    MethodNotAllowed,
    /// 413: the body is over the limit (bytes).
    PayloadTooLarge(usize),
    /// 415.
    UnsupportedMediaType(String),
    /// 504: the per-request timeout passed.
    Timeout(Duration),
    /// 503.
    Unavailable(String),
    /// 500: logged with this cause, answered without it.
    Internal(String),
}

impl ApiError {
    /// The status code.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message sent to the client.
    pub fn message(&self) -> String {
        match self {
            ApiError::BadRequest(m) | ApiError::NotFound(m) | ApiError::UnsupportedMediaType(m) => m.clone(),
            ApiError::Unavailable(m) => m.clone(),
            ApiError::Unauthorized { message, .. } => message.clone(),
            ApiError::MethodNotAllowed => "method not allowed on this route".into(),
            ApiError::PayloadTooLarge(limit) => {
                format!("the request body is larger than this endpoint's limit of {limit} bytes")
            }
            ApiError::Timeout(t) => format!("no answer within this endpoint's timeout of {}", show_duration(*t)),
            ApiError::Internal(_) => "internal error: the server could not answer; it has logged why".into(),
        }
    }
}

fn show_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(cause = %cause, "internal error answering a request");
        }
        let mut resp = json_response(self.status_code(), &json!({ "error": self.message() }));
        if let ApiError::Unauthorized { invalid_token, .. } = &self {
            let v = if *invalid_token {
                "Bearer realm=\"mlops\", error=\"invalid_token\""
            } else {
                "Bearer realm=\"mlops\""
            };
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
        }
        resp
    }
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    // Serialising a Value cannot fail.
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    endpoints: Arc<Endpoints>,
    metrics: Arc<Metrics>,
    logger: Option<PredictionLogger>,
    draining: Arc<AtomicBool>,
    cut: Arc<tokio::sync::watch::Sender<bool>>,
    feedback: Option<Arc<FeedbackStore>>,
}

impl AppState {
    /// State over `endpoints`, logging predictions through `logger` when given.
    pub fn new(endpoints: Arc<Endpoints>, logger: Option<PredictionLogger>) -> AppState {
        let metrics = endpoints.metrics().clone();
        let (cut, _) = tokio::sync::watch::channel(false);
        AppState {
            endpoints,
            metrics,
            logger,
            draining: Arc::new(AtomicBool::new(false)),
            cut: Arc::new(cut),
            feedback: None,
        }
    }

    /// Keeps labels posted to `/v1/endpoints/{name}/feedback` in `store`.
    pub fn with_feedback(mut self, store: Arc<FeedbackStore>) -> AppState {
        self.feedback = Some(store);
        self
    }

    /// Answers every request still running 503 at once (the drain deadline passed).
    pub fn cut_requests(&self) {
        self.cut.send_replace(true);
    }

    /// Set while the server drains: readiness turns 503 so balancers stop sending.
    pub fn draining(&self) -> &Arc<AtomicBool> {
        &self.draining
    }
}

/// The whole API over `endpoints` (for a server, or in-process tests with `tower::ServiceExt`).
pub fn router(endpoints: Arc<Endpoints>, logger: Option<PredictionLogger>) -> Router {
    router_with(AppState::new(endpoints, logger))
}

/// The whole API over a prepared state.
pub fn router_with(state: AppState) -> Router {
    let routes = Router::new()
        .route("/v1/endpoints/{name}/predict", post(predict_v1))
        .route("/v1/endpoints/{name}/feedback", post(feedback_v1))
        .route("/v2", get(v2_server))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(v2_metadata))
        .route("/v2/models/{name}/ready", get(v2_model_ready))
        .route("/v2/models/{name}/infer", post(v2_infer))
        .route("/v2/models/{name}/versions/{version}", get(v2_metadata_version))
        .route("/v2/models/{name}/versions/{version}/ready", get(v2_model_ready_version))
        .route("/v2/models/{name}/versions/{version}/infer", post(v2_infer_version))
        .route("/healthz", get(live))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    with_layers(routes, state)
}

fn with_layers(routes: Router<AppState>, state: AppState) -> Router {
    routes.layer(axum::middleware::from_fn_with_state(state.clone(), track)).with_state(state)
}

struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts every request by route and status, turns a handler panic into a 500, and answers 503
/// when the server cuts the requests still running at its drain deadline.
async fn track(State(s): State<AppState>, req: Request, next: Next) -> Response {
    // `:name` rather than `{name}`: some exposition parsers stumble on braces in label values.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().replace('{', ":").replace('}', ""));
    let metrics = &s.metrics;
    metrics.http_in_flight.inc();
    let _in_flight = InFlight(metrics.http_in_flight.clone());
    let mut cut = s.cut.subscribe();
    let run = AssertUnwindSafe(next.run(req)).catch_unwind();
    let outcome = tokio::select! {
        outcome = run => outcome,
        _ = cut.wait_for(|cut| *cut) => {
            Ok(ApiError::Unavailable("the server shut down before this request finished".into()).into_response())
        }
    };
    let resp = match outcome {
        Ok(resp) => resp,
        Err(panic) => {
            metrics.panics.inc();
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic payload".into());
            tracing::error!(route = %route, panic = %what, "a request handler panicked");
            json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({ "error": ApiError::Internal(String::new()).message() }),
            )
        }
    };
    metrics.http_requests.get_or_create(&RouteLabels { route, code: resp.status().as_u16() }).inc();
    resp
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such route; see /v1/endpoints/{name}/predict, /v2/models/{name}/infer".into())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

async fn live() -> Response {
    json_response(StatusCode::OK, &json!({ "status": "live" }))
}

async fn ready(State(s): State<AppState>) -> Response {
    if s.draining.load(Ordering::SeqCst) {
        return ApiError::Unavailable("not ready: the server is shutting down".into()).into_response();
    }
    if !s.endpoints.is_ready() {
        return ApiError::Unavailable("not ready: the endpoints are still loading".into()).into_response();
    }
    json_response(StatusCode::OK, &json!({ "status": "ready", "endpoints": s.endpoints.names() }))
}

async fn metrics(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    let (body, content_type) = if accept.contains("application/openmetrics-text") {
        (s.metrics.encode_openmetrics(), OPENMETRICS_CONTENT_TYPE)
    } else {
        (s.metrics.encode_text(), TEXT_CONTENT_TYPE)
    };
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

async fn v2_server() -> Response {
    json_response(StatusCode::OK, &json!({ "name": "mlops", "version": env!("CARGO_PKG_VERSION"), "extensions": [] }))
}

// ---- routing a request to an endpoint -------------------------------------------------------

fn shown(name: &str) -> String {
    let s: String = name.chars().take(100).collect();
    format!("{s:?}")
}

fn lookup(s: &AppState, name: Result<Path<String>, PathRejection>) -> Result<Arc<Deployment>, ApiError> {
    let Path(name) = name.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    s.endpoints.get(&name).ok_or_else(|| ApiError::NotFound(format!("no endpoint named {}", shown(&name))))
}

fn authorize(d: &Deployment, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &d.settings.token else { return Ok(()) };
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthorized {
            message: format!("endpoint `{}` needs a bearer token: send `Authorization: Bearer <token>`", d.name),
            invalid_token: false,
        });
    };
    let presented = value.to_str().ok().and_then(|v| {
        let (scheme, rest) = v.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
    });
    match presented {
        None => Err(ApiError::Unauthorized {
            message: "the Authorization header is not `Bearer <token>`".into(),
            invalid_token: false,
        }),
        Some(t) if token.verify(t) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized {
            message: format!("the bearer token is not valid for endpoint `{}`", d.name),
            invalid_token: true,
        }),
    }
}

fn check_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let essence = ct.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/json") => Ok(()),
        Some(other) => Err(ApiError::UnsupportedMediaType(format!(
            "the body must be `Content-Type: application/json`, not `{}`",
            other.chars().take(80).collect::<String>()
        ))),
        None => Err(ApiError::UnsupportedMediaType("the body must be `Content-Type: application/json`".into())),
    }
}

async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut stream = body.into_data_stream();
    let mut buf = Vec::with_capacity(declared.map_or(1024, |n| n as usize));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("cannot read the request body: {e}")))?;
        if buf.len() + chunk.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8], shape: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        use serde_json::error::Category;
        match e.classify() {
            Category::Syntax | Category::Eof | Category::Io => ApiError::BadRequest(format!("invalid JSON: {e}")),
            Category::Data => ApiError::BadRequest(format!("invalid request: {e}; expected {shape}")),
        }
    })
}

/// Rows decoded for one version, ready to predict.
struct Prepared {
    x: Vec<f32>,
    rows: usize,
    /// Per row, the columns holding an unseen category.
    unseen: Vec<Vec<usize>>,
    /// Per row, the entity key (for the log).
    entities: Vec<Option<String>>,
    /// Per row, the values as received (only when logging).
    logged: Vec<Vec<LoggedValue>>,
    misses: u64,
}

/// Runs a routed request: auth, content checks, the per-request timeout, metrics.
async fn serve_request<F, Fut>(s: &AppState, d: Arc<Deployment>, headers: &HeaderMap, body: Body, work: F) -> Response
where
    F: FnOnce(Bytes, Arc<Deployment>, Arc<OnceLock<usize>>) -> Fut,
    Fut: std::future::Future<Output = Result<Response, ApiError>>,
{
    let start = Instant::now();
    d.requests.fetch_add(1, Ordering::Relaxed);
    d.in_flight.inc();
    let _in_flight = InFlight(d.in_flight.clone());
    let chosen = Arc::new(OnceLock::new());
    let result = match authorize(&d, headers).and_then(|()| check_json(headers)) {
        Err(e) => Err(e),
        Ok(()) => {
            let timeout = d.settings.timeout;
            let fut = async {
                let bytes = read_body(headers, body, d.settings.max_body).await?;
                work(bytes, d.clone(), chosen.clone()).await
            };
            tokio::time::timeout(timeout, fut).await.unwrap_or(Err(ApiError::Timeout(timeout)))
        }
    };
    let resp = result.unwrap_or_else(IntoResponse::into_response);
    let code = resp.status().as_u16();
    let route = chosen.get().and_then(|&i| d.routes.get(i));
    if let Some(r) = route {
        r.stats.requests.fetch_add(1, Ordering::Relaxed);
        if resp.status().is_client_error() {
            r.stats.client_errors.fetch_add(1, Ordering::Relaxed);
        } else if resp.status().is_server_error() {
            r.stats.server_errors.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = start.elapsed().as_secs_f64();
        r.stats.observe_latency(seconds);
        r.metrics.latency.observe(seconds);
    }
    s.metrics
        .endpoint_requests
        .get_or_create(&EndpointCodeLabels {
            endpoint: d.name.to_string(),
            version: route.map_or_else(String::new, |r| r.label.clone()),
            code,
        })
        .inc();
    resp
}

/// The route for a request: a given version, else by sticky key, else at random.
fn choose<'d>(d: &'d Deployment, version: Option<u32>, key: Option<&str>) -> Result<(usize, &'d Route), ApiError> {
    let route = match version {
        Some(v) => d
            .version(v)
            .ok_or_else(|| ApiError::NotFound(format!("endpoint `{}` has no version {v} loaded", d.name)))?,
        None => d.route(key),
    };
    let index = d.routes.iter().position(|r| std::ptr::eq(r, route)).unwrap_or(0);
    Ok((index, route))
}

/// A key value as text: strings as they are, integers in decimal.
fn key_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        _ => None,
    }
}

/// Predicts — inline when the model says it is quick, else on a blocking thread (XGBoost may
/// take a while on a big batch) — records the prediction metrics and logs the batch.
async fn predict(
    s: &AppState,
    d: &Deployment,
    route: &Route,
    p: Prepared,
) -> Result<(Vec<String>, Vec<Output>), ApiError> {
    let model = route.model.clone();
    let Prepared { x, rows, unseen, entities, logged, misses } = p;
    record_features(d, route, &x, rows, &unseen, misses, &s.metrics);
    let predicted = if model.predictor().is_quick(rows) {
        model.predict(&x, rows)
    } else {
        tokio::task::spawn_blocking(move || model.predict(&x, rows))
            .await
            .map_err(|e| ApiError::Internal(format!("the prediction thread failed: {e}")))?
    };
    let outputs = predicted.map_err(|e| {
        ApiError::Internal(format!("{} version {} failed to predict: {e}", route.model.job(), route.model.version()))
    })?;
    let now = now_micros();
    let ids: Vec<String> = (0..rows).map(|_| prediction_id(now)).collect();
    let m = &route.metrics;
    m.predictions.inc_by(rows as u64);
    let regression = route.model.task() == Task::Regression;
    for o in &outputs {
        let score = o.score();
        if !score.is_nan() {
            m.score.observe(f64::from(score));
            route.stats.observe_score(f64::from(score), regression);
        }
        if let Output::Class { class, .. } = o {
            if let Some(c) = m.classes.get(*class) {
                c.inc();
            }
        }
    }
    if let Some(logger) = &s.logger {
        let batch = LoggedBatch {
            endpoint: d.name.clone(),
            model: route.model.clone(),
            time: now,
            rows: ids
                .iter()
                .zip(&outputs)
                .zip(logged.into_iter().zip(entities))
                .map(|((id, o), (features, entity))| LoggedPrediction {
                    id: id.clone(),
                    entity,
                    features,
                    output: o.clone(),
                })
                .collect(),
        };
        logger.log(batch);
    }
    Ok((ids, outputs))
}

fn record_features(
    d: &Deployment,
    route: &Route,
    x: &[f32],
    rows: usize,
    unseen: &[Vec<usize>],
    misses: u64,
    m: &Metrics,
) {
    let fm = &route.metrics.features;
    let n = fm.len();
    if n == 0 {
        return;
    }
    for row in x.chunks(n).take(rows) {
        for (v, f) in row.iter().zip(fm) {
            if v.is_nan() {
                f.missing.inc();
            } else if let Some(h) = &f.value {
                h.observe(f64::from(*v));
            }
        }
    }
    for cols in unseen {
        for &c in cols {
            if let Some(f) = fm.get(c) {
                f.unseen.inc();
            }
        }
    }
    if misses > 0 {
        m.entity_misses.get_or_create(&super::metrics::EndpointLabels { endpoint: d.name.to_string() }).inc_by(misses);
    }
}

// ---- v1 -------------------------------------------------------------------------------------

const V1_SHAPE: &str =
    r#"{"rows": [{"feature": value, …}, …]}, {"row": {…}} or {"entities": [{"join_key": value, …}, …]}"#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct V1Request {
    row: Option<Map<String, Value>>,
    rows: Option<Vec<Map<String, Value>>>,
    entities: Option<Vec<Map<String, Value>>>,
}

async fn predict_v1(
    State(s): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let d = match lookup(&s, name) {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let state = s.clone();
    serve_request(&s, d, &headers, body, |bytes, d, chosen| async move {
        let req: V1Request = parse_json(&bytes, V1_SHAPE)?;
        let (prefix, objects, entities) = match (req.row, req.rows, req.entities) {
            (Some(row), None, None) => ("row", vec![row], false),
            (None, Some(rows), None) => ("rows", rows, false),
            (None, None, Some(e)) => ("entities", e, true),
            (None, None, None) => return Err(ApiError::BadRequest(format!("nothing to predict; send {V1_SHAPE}"))),
            _ => return Err(ApiError::BadRequest("send only one of `row`, `rows` and `entities`".into())),
        };
        if objects.is_empty() {
            return Err(ApiError::BadRequest(format!("`{prefix}` is empty: send at least one")));
        }
        let sticky = d.settings.sticky_key.as_deref();
        let key = sticky.and_then(|k| objects[0].get(k)).and_then(key_text);
        let (index, route) = choose(&d, None, key.as_deref())?;
        let _ = chosen.set(index);
        let model = &route.model;
        let at = |i: usize| if prefix == "row" { "row".to_string() } else { format!("{prefix}[{i}]") };
        let prepared = if entities {
            decode_entities(&state, &d, model, &objects, &at)?
        } else {
            decode_rows(&state, &d, model, &objects, &at)?
        };
        let (ids, outputs) = predict(&state, &d, route, prepared).await?;
        let predictions: Vec<Value> = ids
            .into_iter()
            .zip(&outputs)
            .map(|(id, o)| {
                let mut obj = Map::new();
                obj.insert("prediction_id".into(), Value::String(id));
                if let Value::Object(fields) = output_json(o, model.classes()) {
                    obj.extend(fields);
                }
                Value::Object(obj)
            })
            .collect();
        Ok(json_response(
            StatusCode::OK,
            &json!({ "endpoint": &*d.name, "model_version": model.version(), "predictions": predictions }),
        ))
    })
    .await
}

/// Most labels one feedback request may carry.
const MAX_FEEDBACK_ITEMS: usize = 10_000;

const FEEDBACK_SHAPE: &str = r#"{"feedback": [{"prediction_id": "…", "label": true | 0 | 1.5}, …]}"#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeedbackRequest {
    feedback: Vec<Value>,
}

/// Delayed labels for earlier predictions: checked item by item, then appended and synced to
/// the endpoint's feedback file before the answer, so an accepted label is never lost.
async fn feedback_v1(
    State(s): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let d = match lookup(&s, name) {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    let store = s.feedback.clone();
    serve_request(&s, d, &headers, body, |bytes, d, _| async move {
        let Some(store) = store else {
            return Err(ApiError::NotFound(format!(
                "endpoint `{}` takes no feedback here: this server keeps no feedback store",
                d.name
            )));
        };
        let req: FeedbackRequest = parse_json(&bytes, FEEDBACK_SHAPE)?;
        if req.feedback.is_empty() {
            return Err(ApiError::BadRequest(format!("`feedback` is empty: send {FEEDBACK_SHAPE}")));
        }
        if req.feedback.len() > MAX_FEEDBACK_ITEMS {
            return Err(ApiError::BadRequest(format!(
                "{} feedback items in one request; send at most {MAX_FEEDBACK_ITEMS}",
                req.feedback.len()
            )));
        }
        let items = req
            .feedback
            .iter()
            .enumerate()
            .map(|(i, v)| parse_item(v).map_err(|e| ApiError::BadRequest(format!("feedback[{i}]: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let n = items.len();
        let name = d.name.clone();
        tokio::task::spawn_blocking(move || store.append(&name, &items))
            .await
            .map_err(|e| ApiError::Internal(format!("the feedback thread failed: {e}")))?
            .map_err(|e| ApiError::Internal(format!("cannot store feedback: {e}")))?;
        Ok(json_response(StatusCode::OK, &json!({ "endpoint": &*d.name, "accepted": n })))
    })
    .await
}

fn logged_values(
    model: &ServingModel,
    object: &Map<String, Value>,
    base: Option<&[Option<LoggedValue>]>,
) -> Vec<LoggedValue> {
    model
        .feature_names()
        .iter()
        .enumerate()
        .map(|(col, name)| match object.get(name) {
            Some(v) => FeatureValue::from(v).into(),
            None => base.and_then(|b| b.get(col).cloned().flatten()).unwrap_or(LoggedValue::Null),
        })
        .collect()
}

fn decode_rows(
    s: &AppState,
    d: &Deployment,
    model: &ServingModel,
    objects: &[Map<String, Value>],
    at: &dyn Fn(usize) -> String,
) -> Result<Prepared, ApiError> {
    let sticky = d.settings.sticky_key.as_deref();
    let ignore: Vec<&str> = sticky.into_iter().collect();
    let n = model.features().len();
    let mut p = Prepared {
        x: Vec::with_capacity(objects.len() * n),
        rows: objects.len(),
        unseen: Vec::with_capacity(objects.len()),
        entities: Vec::with_capacity(objects.len()),
        logged: Vec::new(),
        misses: 0,
    };
    for (i, object) in objects.iter().enumerate() {
        let mut unseen = Vec::new();
        model
            .decode_object(object, &ignore, None, &mut p.x, &mut unseen)
            .map_err(|e| ApiError::BadRequest(format!("{}: {e}", at(i))))?;
        p.unseen.push(unseen);
        p.entities.push(sticky.and_then(|k| object.get(k)).and_then(key_text));
        if s.logger.is_some() {
            p.logged.push(logged_values(model, object, None));
        }
    }
    Ok(p)
}

fn decode_entities(
    s: &AppState,
    d: &Deployment,
    model: &ServingModel,
    objects: &[Map<String, Value>],
    at: &dyn Fn(usize) -> String,
) -> Result<Prepared, ApiError> {
    let Some(source) = &d.settings.features else {
        return Err(ApiError::BadRequest(format!(
            "endpoint `{}` has no online feature store: send feature values in `rows`",
            d.name
        )));
    };
    let keys = source.keys();
    let ignore: Vec<&str> = keys.iter().map(String::as_str).collect();
    // Source feature → model column.
    let columns: Vec<Option<usize>> = source.features().iter().map(|f| model.column(f)).collect();
    let now = now_micros();
    let n = model.features().len();
    let mut p = Prepared {
        x: Vec::with_capacity(objects.len() * n),
        rows: objects.len(),
        unseen: Vec::with_capacity(objects.len()),
        entities: Vec::with_capacity(objects.len()),
        logged: Vec::new(),
        misses: 0,
    };
    for (i, object) in objects.iter().enumerate() {
        let mut entity = HashMap::with_capacity(keys.len());
        for k in keys {
            match object.get(k) {
                None => {
                    return Err(ApiError::BadRequest(format!(
                        "{}: missing join key `{k}` (the online store is keyed by {})",
                        at(i),
                        keys.join(", ")
                    )))
                }
                Some(v) => match key_text(v) {
                    Some(t) => {
                        entity.insert(k.clone(), t);
                    }
                    None => {
                        return Err(ApiError::BadRequest(format!(
                            "{}: join key `{k}` expects a string or an integer, got {}",
                            at(i),
                            match v {
                                Value::Null => "null",
                                Value::Bool(_) => "a boolean",
                                Value::Number(_) => "a fractional number",
                                Value::Array(_) => "an array",
                                Value::Object(_) => "an object",
                                Value::String(_) => "a string",
                            }
                        )))
                    }
                },
            }
        }
        let found = source.lookup(&entity, now);
        if found.is_empty() {
            p.misses += 1;
        }
        // Features the store provides start missing; found values fill them in.
        let mut base: Vec<Option<Decoded>> = vec![None; n];
        let mut logged_base: Vec<Option<LoggedValue>> = vec![None; n];
        for col in columns.iter().flatten() {
            base[*col] = Some(Decoded { value: f32::NAN, unseen: false });
            logged_base[*col] = Some(LoggedValue::Null);
        }
        for (fi, value) in &found {
            let Some(Some(col)) = columns.get(*fi) else { continue };
            let decoded = model.decode(*col, value.into()).map_err(|e| {
                ApiError::Internal(format!(
                    "online feature `{}` of endpoint `{}` does not fit the model: {e}",
                    source.features()[*fi],
                    d.name
                ))
            })?;
            base[*col] = Some(decoded);
            logged_base[*col] = Some(FeatureValue::from(value).into());
        }
        let mut unseen = Vec::new();
        model
            .decode_object(object, &ignore, Some(&base), &mut p.x, &mut unseen)
            .map_err(|e| ApiError::BadRequest(format!("{}: {e}", at(i))))?;
        p.unseen.push(unseen);
        p.entities.push(d.settings.sticky_key.as_deref().and_then(|k| object.get(k)).and_then(key_text));
        if s.logger.is_some() {
            p.logged.push(logged_values(model, object, Some(&logged_base)));
        }
    }
    Ok(p)
}

// ---- v2 (Open Inference Protocol) -----------------------------------------------------------

const V2_SHAPE: &str = r#"{"inputs": [{"name": "<feature>", "shape": [rows], "datatype": "FP32", "data": […]}, …]}"#;

#[derive(Deserialize)]
struct V2Request {
    id: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    parameters: Option<Map<String, Value>>,
    inputs: Vec<V2Tensor>,
    #[serde(default)]
    outputs: Option<Vec<V2OutputRequest>>,
}

#[derive(Deserialize)]
struct V2Tensor {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    data: Value,
}

#[derive(Deserialize)]
struct V2OutputRequest {
    name: String,
}

fn v2_datatype(dtype: ColumnType) -> &'static str {
    match dtype {
        ColumnType::Float | ColumnType::Timestamp => "FP32",
        ColumnType::Int => "INT64",
        ColumnType::Bool => "BOOL",
        ColumnType::Category | ColumnType::String => "BYTES",
    }
}

const NUMERIC_DATATYPES: &[&str] =
    &["UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64"];

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

fn v2_decode(model: &ServingModel, req: &V2Request, logging: bool) -> Result<Prepared, ApiError> {
    let bad = |m: String| ApiError::BadRequest(m);
    if req.inputs.is_empty() {
        return Err(bad(format!("`inputs` is empty; expected {V2_SHAPE}")));
    }
    let n = model.features().len();
    let mut tensors: Vec<(usize, Vec<&Value>)> = Vec::with_capacity(req.inputs.len());
    for (i, t) in req.inputs.iter().enumerate() {
        if t.shape.iter().any(|&d| d < 0) {
            return Err(bad(format!("inputs[{i}] (`{}`): shape {:?} has a negative dimension", t.name, t.shape)));
        }
        let mut flat = Vec::new();
        flatten(&t.data, &mut flat);
        let expected = t.shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64)).unwrap_or(u64::MAX);
        if expected != flat.len() as u64 {
            return Err(bad(format!(
                "inputs[{i}] (`{}`): shape {:?} holds {expected} values, `data` has {}",
                t.name,
                t.shape,
                flat.len()
            )));
        }
        let dt = t.datatype.as_str();
        if dt != "BOOL" && dt != "BYTES" && !NUMERIC_DATATYPES.contains(&dt) {
            return Err(bad(format!(
                "inputs[{i}] (`{}`): unknown datatype `{}`",
                t.name,
                t.datatype.chars().take(20).collect::<String>()
            )));
        }
        tensors.push((i, flat));
    }

    let dense = req.inputs.len() == 1 && model.column(&req.inputs[0].name).is_none() && req.inputs[0].shape.len() == 2;
    if dense {
        let t = &req.inputs[0];
        let (rows, cols) = (t.shape[0] as usize, t.shape[1] as usize);
        if cols != n {
            return Err(bad(format!("inputs[0] (`{}`): a [rows, features] tensor needs {n} columns (the model's features in order: {}), got {cols}", t.name, model.feature_names().join(", "))));
        }
        if !NUMERIC_DATATYPES.contains(&t.datatype.as_str()) {
            return Err(bad(format!(
                "inputs[0] (`{}`): a [rows, features] tensor must be numeric (FP32), not {}",
                t.name, t.datatype
            )));
        }
        if rows == 0 {
            return Err(bad("inputs[0]: no rows".into()));
        }
        let flat = &tensors[0].1;
        let mut p = empty_prepared(rows, n);
        for r in 0..rows {
            let mut unseen = Vec::new();
            let mut logged = Vec::new();
            for c in 0..n {
                let v = flat[r * n + c];
                let f = &model.features()[c];
                let value = FeatureValue::from(v);
                let decoded = match (f.dtype, value) {
                    // Category columns of a dense tensor carry codes.
                    (ColumnType::Category | ColumnType::String, FeatureValue::Number(x)) => {
                        if x.fract() != 0.0 || x < 0.0 || x >= f.categories.len() as f64 {
                            return Err(bad(format!(
                                "inputs[0] row {r}: `{}` is a category column: expects a code from 0 to {}, got {x}",
                                f.name,
                                f.categories.len().saturating_sub(1)
                            )));
                        }
                        Decoded { value: x as f32, unseen: false }
                    }
                    _ => model
                        .decode(c, value)
                        .map_err(|e| bad(format!("inputs[0] row {r}: feature `{}` {e}", f.name)))?,
                };
                if decoded.unseen {
                    unseen.push(c);
                }
                p.x.push(decoded.value);
                if logging {
                    logged.push(match (f.dtype, value) {
                        (ColumnType::Category | ColumnType::String, FeatureValue::Number(x)) => f
                            .categories
                            .get(x as usize)
                            .map_or(LoggedValue::Null, |c| LoggedValue::Text(c.as_str().into())),
                        _ => value.into(),
                    });
                }
            }
            p.unseen.push(unseen);
            p.entities.push(None);
            if logging {
                p.logged.push(logged);
            }
        }
        return Ok(p);
    }

    // One tensor per feature.
    let mut by_col: Vec<Option<usize>> = vec![None; n];
    let mut rows: Option<usize> = None;
    for (i, t) in req.inputs.iter().enumerate() {
        let Some(col) = model.column(&t.name) else {
            return Err(bad(format!("inputs[{i}]: {}", model.unknown_message(&t.name, 1))));
        };
        if by_col[col].replace(i).is_some() {
            return Err(bad(format!("inputs[{i}]: feature `{}` is given twice", t.name)));
        }
        let r = match t.shape.as_slice() {
            [r] | [r, 1] => *r as usize,
            _ => {
                return Err(bad(format!(
                    "inputs[{i}] (`{}`): a feature tensor has shape [rows] or [rows, 1], got {:?}",
                    t.name, t.shape
                )))
            }
        };
        if let Some(prev) = rows {
            if prev != r {
                return Err(bad(format!("inputs[{i}] (`{}`) has {r} rows, the inputs before it {prev}", t.name)));
            }
        }
        rows = Some(r);
        let f = &model.features()[col];
        let dt = t.datatype.as_str();
        let fits = match f.dtype {
            ColumnType::Category | ColumnType::String => dt == "BYTES",
            ColumnType::Bool => dt == "BOOL" || NUMERIC_DATATYPES.contains(&dt),
            _ => NUMERIC_DATATYPES.contains(&dt),
        };
        if !fits {
            return Err(bad(format!(
                "inputs[{i}] (`{}`): datatype {} does not fit a {} feature (expected {})",
                t.name,
                t.datatype,
                f.dtype.name(),
                v2_datatype(f.dtype)
            )));
        }
    }
    let missing: Vec<&str> =
        by_col.iter().zip(model.feature_names().iter()).filter(|(b, _)| b.is_none()).map(|(_, n)| n.as_str()).collect();
    if !missing.is_empty() {
        return Err(bad(format!(
            "missing input tensor(s) for feature(s) {} (send null in `data` for a missing value)",
            missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
        )));
    }
    let rows = rows.unwrap_or(0);
    if rows == 0 {
        return Err(bad("the input tensors have no rows".into()));
    }
    let mut p = empty_prepared(rows, n);
    let cols: Vec<usize> = by_col.iter().map(|b| b.unwrap_or(0)).collect();
    for r in 0..rows {
        let mut unseen = Vec::new();
        let mut logged = Vec::new();
        for (c, &ti) in cols.iter().enumerate() {
            let value = FeatureValue::from(tensors[ti].1[r]);
            let d = model
                .decode(c, value)
                .map_err(|e| bad(format!("inputs[{ti}] (`{}`) row {r}: {e}", req.inputs[ti].name)))?;
            if d.unseen {
                unseen.push(c);
            }
            p.x.push(d.value);
            if logging {
                logged.push(value.into());
            }
        }
        p.unseen.push(unseen);
        p.entities.push(None);
        if logging {
            p.logged.push(logged);
        }
    }
    Ok(p)
}

fn empty_prepared(rows: usize, n: usize) -> Prepared {
    Prepared {
        x: Vec::with_capacity(rows * n),
        rows,
        unseen: Vec::with_capacity(rows),
        entities: Vec::with_capacity(rows),
        logged: Vec::new(),
        misses: 0,
    }
}

fn v2_outputs(model: &ServingModel) -> Vec<(&'static str, &'static str, bool)> {
    // (name, datatype, per class)
    let mut v = Vec::new();
    if model.is_multiclass() {
        if model.has_probabilities() {
            v.push(("probabilities", "FP32", true));
        }
        v.push(("class", "BYTES", false));
    } else {
        v.push(("score", "FP32", false));
    }
    v.push(("prediction_id", "BYTES", false));
    v
}

fn v2_response(
    name: &str,
    model: &ServingModel,
    id: Option<&str>,
    wanted: Option<&[String]>,
    ids: Vec<String>,
    outputs: &[Output],
) -> Response {
    let rows = outputs.len();
    let k = model.classes().len();
    let mut tensors = Vec::new();
    let num = |x: f32| serde_json::Number::from_f64(f64::from(x)).map_or(Value::Null, Value::Number);
    for (oname, dt, per_class) in v2_outputs(model) {
        if wanted.is_some_and(|w| !w.iter().any(|n| n == oname)) {
            continue;
        }
        let shape: Vec<usize> = if per_class { vec![rows, k] } else { vec![rows] };
        let data: Vec<Value> = match oname {
            "score" => outputs.iter().map(|o| num(o.score())).collect(),
            "probabilities" => outputs
                .iter()
                .flat_map(|o| match o {
                    Output::Class { probabilities: Some(p), .. } => p.iter().map(|&x| num(x)).collect::<Vec<_>>(),
                    _ => vec![Value::Null; k],
                })
                .collect(),
            "class" => outputs
                .iter()
                .map(|o| match o {
                    Output::Class { class, .. } => json!(model.classes().get(*class)),
                    Output::Score(_) => Value::Null,
                })
                .collect(),
            _ => ids.iter().map(|i| json!(i)).collect(),
        };
        tensors.push(json!({ "name": oname, "datatype": dt, "shape": shape, "data": data }));
    }
    let mut body = json!({ "model_name": name, "model_version": model.version().to_string(), "outputs": tensors });
    if let Some(id) = id {
        body["id"] = json!(id);
    }
    json_response(StatusCode::OK, &body)
}

async fn v2_infer(
    State(s): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let d = match lookup(&s, name) {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    v2_infer_at(s, d, None, headers, body).await
}

async fn v2_infer_version(
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match versioned(&s, path) {
        Ok((d, v)) => v2_infer_at(s, d, Some(v), headers, body).await,
        Err(e) => e.into_response(),
    }
}

fn versioned(
    s: &AppState,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<(Arc<Deployment>, u32), ApiError> {
    let Path((name, version)) = path.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let d = s.endpoints.get(&name).ok_or_else(|| ApiError::NotFound(format!("no model named {}", shown(&name))))?;
    let v = version
        .parse::<u32>()
        .map_err(|_| ApiError::NotFound(format!("model `{}` has no version {}", d.name, shown(&version))))?;
    Ok((d, v))
}

async fn v2_infer_at(
    s: AppState,
    d: Arc<Deployment>,
    version: Option<u32>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let state = s.clone();
    serve_request(&s, d, &headers, body, |bytes, d, chosen| async move {
        let req: V2Request = parse_json(&bytes, V2_SHAPE)?;
        let (index, route) = choose(&d, version, None)?;
        let _ = chosen.set(index);
        let prepared = v2_decode(&route.model, &req, state.logger.is_some())?;
        let wanted: Option<Vec<String>> = req.outputs.as_ref().map(|o| o.iter().map(|o| o.name.clone()).collect());
        // Unknown output names are refused before predicting.
        if let Some(w) = &wanted {
            let available = v2_outputs(&route.model);
            if let Some(bad) = w.iter().find(|n| !available.iter().any(|(a, _, _)| a == n)) {
                return Err(ApiError::BadRequest(format!(
                    "unknown output `{}`; this model has {}",
                    bad.chars().take(60).collect::<String>(),
                    available.iter().map(|(n, _, _)| *n).collect::<Vec<_>>().join(", ")
                )));
            }
        }
        let (ids, outputs) = predict(&state, &d, route, prepared).await?;
        Ok(v2_response(&d.name, &route.model, req.id.as_deref(), wanted.as_deref(), ids, &outputs))
    })
    .await
}

fn v2_model_metadata(d: &Deployment, model: &ServingModel) -> Value {
    let inputs: Vec<Value> = model
        .features()
        .iter()
        .map(|f| {
            let mut t = json!({ "name": f.name, "datatype": v2_datatype(f.dtype), "shape": [-1] });
            if !f.categories.is_empty() {
                t["parameters"] = json!({ "categories": f.categories });
            }
            t
        })
        .collect();
    let outputs: Vec<Value> = v2_outputs(model)
        .into_iter()
        .map(|(name, dt, per_class)| {
            let shape = if per_class { json!([-1, model.classes().len()]) } else { json!([-1]) };
            json!({ "name": name, "datatype": dt, "shape": shape })
        })
        .collect();
    let mut v = json!({
        "name": &*d.name,
        "versions": d.routes.iter().map(|r| r.label.clone()).collect::<Vec<_>>(),
        "platform": "xgboost_json",
        "inputs": inputs,
        "outputs": outputs,
        "parameters": { "job": model.job(), "version": model.version(), "objective": model.objective() },
    });
    if !model.classes().is_empty() {
        v["parameters"]["classes"] = json!(model.classes());
    }
    v
}

async fn v2_metadata(
    State(s): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let r = lookup(&s, name).and_then(|d| {
        authorize(&d, &headers)?;
        Ok(json_response(StatusCode::OK, &v2_model_metadata(&d, &d.primary().model)))
    });
    r.unwrap_or_else(IntoResponse::into_response)
}

async fn v2_metadata_version(
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let r = versioned(&s, path).and_then(|(d, v)| {
        authorize(&d, &headers)?;
        let (_, route) = choose(&d, Some(v), None)?;
        Ok(json_response(StatusCode::OK, &v2_model_metadata(&d, &route.model)))
    });
    r.unwrap_or_else(IntoResponse::into_response)
}

async fn v2_model_ready(
    State(s): State<AppState>,
    name: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let r = lookup(&s, name).and_then(|d| {
        authorize(&d, &headers)?;
        if d.is_ready() {
            Ok(json_response(StatusCode::OK, &json!({ "name": &*d.name, "ready": true })))
        } else {
            Err(ApiError::Unavailable(format!("model `{}` takes no traffic", d.name)))
        }
    });
    r.unwrap_or_else(IntoResponse::into_response)
}

async fn v2_model_ready_version(
    State(s): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let r = versioned(&s, path).and_then(|(d, v)| {
        authorize(&d, &headers)?;
        choose(&d, Some(v), None)?;
        Ok(json_response(StatusCode::OK, &json!({ "name": &*d.name, "version": v.to_string(), "ready": true })))
    });
    r.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_is_counted() {
        let endpoints = Arc::new(Endpoints::new());
        let state = AppState::new(endpoints.clone(), None);
        let routes = Router::new().route(
            "/boom",
            get(|| async {
                if std::hint::black_box(true) {
                    panic!("kaboom");
                }
                "unreachable"
            }),
        );
        let app = with_layers(routes, state);
        let resp = app.oneshot(Request::builder().uri("/boom").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert!(v["error"].as_str().unwrap().starts_with("internal error"), "{v}");
        assert!(!v["error"].as_str().unwrap().contains("kaboom"));
        assert_eq!(endpoints.metrics().panics(), 1);
        assert!(endpoints
            .metrics()
            .encode_text()
            .contains("mlops_http_requests_total{route=\"/boom\",code=\"500\"} 1"));
    }

    #[test]
    fn errors_have_their_status_and_hide_internal_causes() {
        assert_eq!(ApiError::Timeout(Duration::from_millis(250)).status_code(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(
            ApiError::Timeout(Duration::from_millis(250)).message(),
            "no answer within this endpoint's timeout of 250ms"
        );
        assert_eq!(
            ApiError::Timeout(Duration::from_secs(5)).message(),
            "no answer within this endpoint's timeout of 5s"
        );
        assert!(!ApiError::Internal("secret cause".into()).message().contains("secret"));
    }
}
