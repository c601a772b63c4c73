//! Shared by the `serve_*` tests: real XGBoost models trained on generated data and registered
//! in a temporary registry (once per test binary), test-only predictors, an in-memory online
//! store, and request helpers for the router.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use mlops_compiler::model::{ColumnRef, ColumnType, Resources, Task, TrainingJob, Validation};
use mlops_runtime::dataset::{FeatureSpec, TrainingSet};
use mlops_runtime::features::OnlineValue;
use mlops_runtime::registry::{ModelVersion, Registry};
use mlops_runtime::serve::{FeatureSource, Predict, PredictError, ServingModel};
use mlops_runtime::train::{self, TrainOptions};
use serde_json::{json, Value};
use tower::ServiceExt;

pub const MERCHANTS: [&str; 4] = ["mail", "phone", "store", "web"];
pub const CLASSES: [&str; 3] = ["high", "low", "mid"];

/// SplitMix64, so the data depends on no crate's generator.
struct Rng(u64);

impl Rng {
    fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f32 {
        (self.u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        (0..12).map(|_| self.uniform()).sum::<f32>() - 6.0
    }
}

/// The signature of every test model: a float, an int, a bool and a category.
pub fn features() -> Vec<FeatureSpec> {
    vec![
        FeatureSpec { name: "amount".into(), dtype: ColumnType::Float, categories: vec![] },
        FeatureSpec { name: "n_items".into(), dtype: ColumnType::Int, categories: vec![] },
        FeatureSpec { name: "is_new".into(), dtype: ColumnType::Bool, categories: vec![] },
        FeatureSpec {
            name: "merchant".into(),
            dtype: ColumnType::Category,
            categories: MERCHANTS.iter().map(|s| s.to_string()).collect(),
        },
    ]
}

/// Rows whose latent score rises with the amount, new accounts and the `web` merchant.
fn set(rows: usize, seed: u64, multiclass: bool) -> TrainingSet {
    let mut r = Rng(seed);
    let mut s = TrainingSet { features: features(), ..Default::default() };
    if multiclass {
        s.classes = CLASSES.iter().map(|c| c.to_string()).collect();
    }
    for i in 0..rows {
        let amount = r.normal() * 50.0 + 100.0;
        let n_items = (r.u64() % 10) as f32;
        let is_new = (r.u64() % 2) as f32;
        let merchant = (r.u64() % 4) as f32;
        let latent = (amount - 100.0) / 25.0 + 1.5 * is_new + if merchant == 3.0 { 2.0 } else { -0.5 } + 0.1 * n_items;
        let noisy = latent + 0.5 * r.normal();
        s.x.extend_from_slice(&[amount, n_items, is_new, merchant]);
        s.y.push(if multiclass {
            // high, low, mid
            if noisy < -0.5 {
                1.0
            } else if noisy < 1.5 {
                2.0
            } else {
                0.0
            }
        } else if noisy > 0.5 {
            1.0
        } else {
            0.0
        });
        s.event_time.push(i as i64 * 1_000_000);
    }
    s
}

fn job(objective: &str, rounds: u32) -> TrainingJob {
    TrainingJob {
        features: vec!["feature_view.test".into()],
        label: ColumnRef { source: "source.test".into(), column: "label".into() },
        exclude: vec![],
        algorithm: "xgboost".into(),
        objective: objective.into(),
        task: Task::of_objective(objective),
        rounds,
        params: BTreeMap::from([("max_depth".to_string(), json!(3)), ("eta".to_string(), json!(0.3))]),
        validation: Validation { split: "random".into(), holdout: 0.2, seed: 42 },
        tuning: None,
        gates: vec![],
        resources: Resources::default(),
        schedule: None,
        description: None,
    }
}

/// The registry every test of a binary shares: `training_job.fraud` versions 1 and 2 (binary,
/// trained on different data), `training_job.segment` version 1 (multi-class softprob).
pub struct Models {
    _dir: tempfile::TempDir,
    pub registry: Registry,
    pub fraud_v1: ModelVersion,
    pub fraud_v2: ModelVersion,
    pub segment: ModelVersion,
}

pub fn models() -> &'static Models {
    static MODELS: OnceLock<Models> = OnceLock::new();
    MODELS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let registry = Registry::open(dir.path()).unwrap();
        let opts = TrainOptions { threads: Some(1), progress: false };
        let register = |job_name: &str, objective: &str, seed: u64, multiclass: bool| {
            let s = set(1000, seed, multiclass);
            let m = train::train(&s, &job(objective, 20), &opts).unwrap();
            registry.register(job_name, &m, "spec", &train::data_hash(&s)).unwrap()
        };
        let fraud_v1 = register("training_job.fraud", "binary:logistic", 1, false);
        let fraud_v2 = register("training_job.fraud", "binary:logistic", 2, false);
        let segment = register("training_job.segment", "multi:softprob", 3, true);
        Models { registry: Registry::open(dir.path()).unwrap(), _dir: dir, fraud_v1, fraud_v2, segment }
    })
}

/// A version loaded for serving from the registry's file.
pub fn load(v: &ModelVersion) -> Arc<ServingModel> {
    let json = models().registry.model_json(v).unwrap();
    Arc::new(ServingModel::load(v, &json).unwrap())
}

/// A version answered by another predictor.
pub fn with_predictor(v: &ModelVersion, p: impl Predict + 'static) -> Arc<ServingModel> {
    Arc::new(ServingModel::with_predictor(v, Arc::new(p)).unwrap())
}

/// Answers every row with `score` after `delay` (blocking, as a real predictor would).
pub struct SlowPredict {
    pub delay: Duration,
    pub score: f32,
}

impl Predict for SlowPredict {
    fn predict(&self, _x: &[f32], rows: usize) -> Result<Vec<f32>, PredictError> {
        std::thread::sleep(self.delay);
        Ok(vec![self.score; rows])
    }
}

/// Answers every row with a constant at once.
pub struct ConstPredict(pub f32);

impl Predict for ConstPredict {
    fn predict(&self, _x: &[f32], rows: usize) -> Result<Vec<f32>, PredictError> {
        Ok(vec![self.0; rows])
    }
}

/// An online store in memory: entity `account_id` → (amount, merchant).
pub struct MemoryFeatures {
    keys: Vec<String>,
    features: Vec<String>,
    rows: HashMap<String, Vec<OnlineValue>>,
}

impl MemoryFeatures {
    pub fn new(rows: &[(&str, f64, &str)]) -> MemoryFeatures {
        MemoryFeatures {
            keys: vec!["account_id".into()],
            features: vec!["amount".into(), "merchant".into()],
            rows: rows
                .iter()
                .map(|(k, a, m)| (k.to_string(), vec![OnlineValue::Number(*a), OnlineValue::Text(m.to_string())]))
                .collect(),
        }
    }
}

impl FeatureSource for MemoryFeatures {
    fn keys(&self) -> &[String] {
        &self.keys
    }
    fn features(&self) -> &[String] {
        &self.features
    }
    fn lookup(&self, entity: &HashMap<String, String>, _now: i64) -> Vec<(usize, OnlineValue)> {
        entity
            .get("account_id")
            .and_then(|k| self.rows.get(k))
            .map(|v| v.iter().cloned().enumerate().collect())
            .unwrap_or_default()
    }
}

/// One response: status, headers and body (JSON when it parses, else a string).
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The `error` message.
    #[track_caller]
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or_else(|| panic!("no error message in {}", self.text))
    }
}

/// Sends one request through the router in process.
pub async fn send(
    app: &axum::Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Reply {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app.clone().oneshot(req.body(body.into()).unwrap()).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20).await.unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::String(text.clone()));
    Reply { status, headers, body, text }
}

/// POSTs JSON.
pub async fn post(app: &axum::Router, uri: &str, body: &Value) -> Reply {
    send(app, "POST", uri, &[("content-type", "application/json")], body.to_string()).await
}

/// A row of the test signature.
pub fn row(amount: f64, n_items: i64, is_new: bool, merchant: &str) -> Value {
    json!({ "amount": amount, "n_items": n_items, "is_new": is_new, "merchant": merchant })
}
