//! Shared by the `train_*` tests: deterministic data generators and job builders.
#![allow(dead_code)]

use std::collections::BTreeMap;

use mlops_compiler::model::{ColumnRef, ColumnType, Gate, Resources, Task, TrainingJob, Tuning, Validation};
use mlops_runtime::dataset::{FeatureSpec, TrainingSet};
use serde_json::Value;

/// SplitMix64, so the data does not depend on any crate's RNG.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Roughly standard normal (Irwin–Hall with 12 uniforms).
    pub fn normal(&mut self) -> f32 {
        (0..12).map(|_| self.uniform()).sum::<f32>() - 6.0
    }
}

pub fn feature(name: &str, dtype: ColumnType) -> FeatureSpec {
    let categories = if dtype == ColumnType::Category {
        ["web", "store", "phone", "mail"].iter().map(|s| s.to_string()).collect()
    } else {
        vec![]
    };
    FeatureSpec { name: name.into(), dtype, categories }
}

/// Features: x0, x1, x2 (floats, ~5% missing in x2), channel (category code 0..4), n_items (int).
fn base_features() -> Vec<FeatureSpec> {
    vec![
        feature("x0", ColumnType::Float),
        feature("x1", ColumnType::Float),
        feature("x2", ColumnType::Float),
        feature("channel", ColumnType::Category),
        feature("n_items", ColumnType::Int),
    ]
}

/// One row of the base features and a latent score the labels derive from.
fn base_row(r: &mut Rng) -> ([f32; 5], f32) {
    let x0 = r.normal();
    let x1 = r.normal();
    let x2 = if r.uniform() < 0.05 { f32::NAN } else { r.normal() };
    let channel = (r.u64() % 4) as f32;
    let n_items = (r.u64() % 10) as f32;
    // The channel matters by category, not by its code's magnitude (2 is the risky one).
    let channel_effect = if channel == 2.0 { 1.5 } else { -0.5 };
    let latent = 2.0 * x0 - 1.5 * x1 + channel_effect + 0.1 * n_items;
    ([x0, x1, x2, channel, n_items], latent)
}

/// Binary labels from a noisy linear score: separable enough for an AUC well above 0.9.
/// Event times are the row order (one per second).
pub fn binary_set(rows: usize, seed: u64) -> TrainingSet {
    let mut r = Rng::new(seed);
    let mut set = TrainingSet { features: base_features(), ..Default::default() };
    for i in 0..rows {
        let (x, latent) = base_row(&mut r);
        set.x.extend_from_slice(&x);
        set.y.push(if latent + 0.5 * r.normal() > 0.0 { 1.0 } else { 0.0 });
        set.event_time.push(i as i64 * 1_000_000);
    }
    set
}

/// Three classes by which third of the latent score a row falls in.
pub fn multiclass_set(rows: usize, seed: u64) -> TrainingSet {
    let mut r = Rng::new(seed);
    let mut set = TrainingSet {
        features: base_features(),
        classes: vec!["low".into(), "mid".into(), "high".into()],
        ..Default::default()
    };
    for i in 0..rows {
        let (x, latent) = base_row(&mut r);
        let noisy = latent + 0.3 * r.normal();
        set.x.extend_from_slice(&x);
        set.y.push(if noisy < -1.0 {
            0.0
        } else if noisy < 1.5 {
            1.0
        } else {
            2.0
        });
        set.event_time.push(i as i64 * 1_000_000);
    }
    set
}

/// A regression target: the latent score plus a little noise, shifted away from 0.
pub fn regression_set(rows: usize, seed: u64) -> TrainingSet {
    let mut r = Rng::new(seed);
    let mut set = TrainingSet { features: base_features(), ..Default::default() };
    for i in 0..rows {
        let (x, latent) = base_row(&mut r);
        set.x.extend_from_slice(&x);
        set.y.push(10.0 + latent + 0.2 * r.normal());
        set.event_time.push(i as i64 * 1_000_000);
    }
    set
}

/// Labels independent of the features.
pub fn noise_set(rows: usize, seed: u64) -> TrainingSet {
    let mut set = binary_set(rows, seed);
    let mut r = Rng::new(seed ^ 0xdead_beef);
    for y in &mut set.y {
        *y = if r.uniform() < 0.5 { 1.0 } else { 0.0 };
    }
    set
}

pub fn params(v: Value) -> BTreeMap<String, Value> {
    serde_json::from_value(v).expect("params are an object")
}

pub fn job(objective: &str, rounds: u32, p: Value) -> TrainingJob {
    TrainingJob {
        features: vec!["feature_view.test".into()],
        label: ColumnRef { source: "source.test".into(), column: "label".into() },
        exclude: vec![],
        algorithm: "xgboost".into(),
        objective: objective.into(),
        task: Task::of_objective(objective),
        rounds,
        params: params(p),
        validation: Validation { split: "random".into(), holdout: 0.2, seed: 42 },
        tuning: None,
        gates: vec![],
        resources: Resources::default(),
        schedule: None,
        description: None,
    }
}

pub fn gate(metric: &str, min: Option<f64>, max: Option<f64>) -> Gate {
    Gate { metric: metric.into(), min, max }
}

pub fn tuning(trials: u32, metric: &str, parallelism: u32, search: Value) -> Tuning {
    Tuning {
        trials,
        metric: metric.into(),
        parallelism,
        search: serde_json::from_value(search).expect("search spaces"),
    }
}

/// Rows `from..to` of a set's features, flattened.
pub fn rows_of(set: &TrainingSet, from: usize, to: usize) -> Vec<f32> {
    set.x[from * set.cols()..to * set.cols()].to_vec()
}

/// The number of trees in an XGBoost JSON model.
pub fn num_trees(model_json: &[u8]) -> usize {
    let v: Value = serde_json::from_slice(model_json).expect("model is JSON");
    v["learner"]["gradient_booster"]["model"]["trees"].as_array().expect("trees").len()
}
