//! Models as served. In: a registered [`ModelVersion`] and its XGBoost JSON model file, then
//! request rows — JSON objects keyed by feature name, or values an online store returned. Out:
//! dense `f32` rows in signature order (the encoding training used) and one [`Output`] per row.
//!
//! Encoding, as at training: numbers as `f32`; booleans 0/1; timestamps as Unix seconds (a
//! number); string and category features as their code, the index of the value
//! in [`FeatureSpec::categories`] — a value never seen at training is missing, like `null`.
//! Everything else is refused with a message naming the feature and what it expects: an absent
//! feature, a feature the model does not take, a value of the wrong JSON type, a number that does
//! not fit an `f32`.
//!
//! Prediction goes through [`Predict`], a `Sync` seam: today a small pool of XGBoost
//! [`Predictor`]s (which are `Send` but not `Sync`), later a native forest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};

use mlops_compiler::model::{ColumnType, Task};
use serde_json::Value;

use crate::dataset::FeatureSpec;
use crate::registry::{ModelVersion, Signature};
use crate::train::{Predictor, TrainError};

/// Predicts dense rows: `x` holds `rows × features` values, row-major, NaN for missing. Returns
/// the model's raw outputs: one value per row, or one per class per row (`multi:softprob`).
/// Implementations are shared by every request thread at once.
pub trait Predict: Send + Sync {
    /// Predicts `rows` rows.
    fn predict(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, PredictError>;

    /// Whether predicting `rows` rows is quick enough (tens of microseconds) to run on the
    /// async worker that received the request: handing it to a blocking thread costs two
    /// thread wake-ups, which dominates the latency of a single-row request. `false` unless
    /// an implementation knows its cost.
    fn is_quick(&self, _rows: usize) -> bool {
        false
    }
}

/// Tree walks per request below which the native forest predicts inline: at ~35 ns a walk
/// (200 trees of depth 6: 6.8 µs a row), about 70 µs of work, less than a blocking-pool
/// round trip under load.
const INLINE_TREE_WALKS: usize = 2048;

/// A prediction that failed inside the model (not the request's fault).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct PredictError {
    message: String,
}

impl PredictError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> PredictError {
        PredictError { message: message.into() }
    }
}

impl From<TrainError> for PredictError {
    fn from(e: TrainError) -> Self {
        PredictError::new(e.to_string())
    }
}

/// Why a model cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The model file does not load.
    #[error("cannot load {job} version {version}: {source}")]
    Load {
        /// The job address.
        job: String,
        /// The version.
        version: u32,
        /// Why.
        #[source]
        source: TrainError,
    },
    /// The model and its signature disagree.
    #[error("{job} version {version} cannot be served: {message}")]
    Signature {
        /// The job address.
        job: String,
        /// The version.
        version: u32,
        /// What is wrong.
        message: String,
    },
}

impl Predict for super::trees::Forest {
    fn predict(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, PredictError> {
        let mut out = Vec::with_capacity(rows * self.num_outputs_per_row());
        super::trees::Forest::predict(self, x, rows, &mut out).map_err(|e| PredictError::new(e.to_string()))?;
        Ok(out)
    }

    fn is_quick(&self, rows: usize) -> bool {
        rows.saturating_mul(self.num_trees()) <= INLINE_TREE_WALKS
    }
}

/// `Predictor`s behind mutexes, one per slot: a request takes a free slot, or waits for one.
/// XGBoost mutates a booster while predicting, so one booster serves one request at a time.
pub struct PredictorPool {
    slots: Vec<Mutex<Predictor>>,
    next: AtomicUsize,
    num_features: usize,
}

impl std::fmt::Debug for PredictorPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PredictorPool")
            .field("slots", &self.slots.len())
            .field("num_features", &self.num_features)
            .finish_non_exhaustive()
    }
}

impl PredictorPool {
    /// Loads `slots` (at least 1) copies of the model.
    pub fn load(model_json: &[u8], slots: usize) -> Result<PredictorPool, TrainError> {
        let slots =
            (0..slots.max(1)).map(|_| Predictor::load(model_json).map(Mutex::new)).collect::<Result<Vec<_>, _>>()?;
        let num_features = slots[0].lock().unwrap_or_else(PoisonError::into_inner).num_features();
        Ok(PredictorPool { slots, next: AtomicUsize::new(0), num_features })
    }

    /// Number of feature columns the model takes.
    pub fn num_features(&self) -> usize {
        self.num_features
    }
}

impl Predict for PredictorPool {
    fn predict(&self, x: &[f32], rows: usize) -> Result<Vec<f32>, PredictError> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.slots.len();
        for i in 0..n {
            match self.slots[(start + i) % n].try_lock() {
                Ok(p) => return Ok(p.predict(x, rows)?),
                // A panic while predicting leaves the booster as XGBoost left it: usable.
                Err(TryLockError::Poisoned(p)) => return Ok(p.into_inner().predict(x, rows)?),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        let p = self.slots[start % n].lock().unwrap_or_else(PoisonError::into_inner);
        Ok(p.predict(x, rows)?)
    }
}

/// What the model gives per row.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Binary: probability of the positive class (or the margin / 0-1 class, by objective);
    /// regression: the value.
    Score(f32),
    /// Multi-class: the predicted class (index into [`ServingModel::classes`]) and, for
    /// `multi:softprob`, the probability of every class.
    Class {
        /// Index of the predicted class.
        class: usize,
        /// One probability per class (`multi:softprob` only).
        probabilities: Option<Vec<f32>>,
    },
}

impl Output {
    /// The number monitoring watches: the score, or the predicted class's probability (NaN for
    /// `multi:softmax`, which gives none).
    pub fn score(&self) -> f32 {
        match self {
            Output::Score(s) => *s,
            Output::Class { class, probabilities } => {
                probabilities.as_ref().and_then(|p| p.get(*class).copied()).unwrap_or(f32::NAN)
            }
        }
    }
}

/// How raw outputs map to rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputShape {
    /// One value per row.
    Score,
    /// `classes` probabilities per row.
    Probabilities,
    /// One class index per row.
    ClassIndex,
}

/// One value of a feature as it arrives, whatever the transport (JSON, a tensor, the online
/// store).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FeatureValue<'a> {
    /// Missing.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(f64),
    /// Text.
    Text(&'a str),
    /// Anything else (an array, an object), named for messages.
    Other(&'static str),
}

impl<'a> From<&'a Value> for FeatureValue<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Null => FeatureValue::Null,
            Value::Bool(b) => FeatureValue::Bool(*b),
            // Every JSON number has an f64 value (serde_json parses them so).
            Value::Number(n) => n.as_f64().map_or(FeatureValue::Other("a number out of range"), FeatureValue::Number),
            Value::String(s) => FeatureValue::Text(s),
            Value::Array(_) => FeatureValue::Other("an array"),
            Value::Object(_) => FeatureValue::Other("an object"),
        }
    }
}

impl<'a> From<&'a crate::features::OnlineValue> for FeatureValue<'a> {
    fn from(v: &'a crate::features::OnlineValue) -> Self {
        use crate::features::OnlineValue;
        match v {
            OnlineValue::Null => FeatureValue::Null,
            OnlineValue::Number(x) => FeatureValue::Number(*x),
            OnlineValue::Text(s) => FeatureValue::Text(s),
        }
    }
}

impl FeatureValue<'_> {
    fn describe(&self) -> String {
        match self {
            FeatureValue::Null => "null".into(),
            FeatureValue::Bool(b) => format!("the boolean {b}"),
            FeatureValue::Number(x) => format!("the number {x}"),
            FeatureValue::Text(s) => {
                let mut shown: String = s.chars().take(40).collect();
                if shown.len() < s.len() {
                    shown.push('…');
                }
                format!("the string {shown:?}")
            }
            FeatureValue::Other(what) => (*what).into(),
        }
    }
}

/// A decoded value: the number the model sees, and whether it was a category value unseen at
/// training (encoded as missing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decoded {
    /// The encoded value (NaN for missing).
    pub value: f32,
    /// A category value the model never saw.
    pub unseen: bool,
}

/// A model loaded for serving: its signature, how to decode requests into rows, and its
/// predictor.
pub struct ServingModel {
    job: String,
    version: u32,
    objective: String,
    task: Task,
    signature: Signature,
    names: Arc<[String]>,
    /// Feature name → column.
    index: HashMap<String, usize>,
    /// Per column: category value → code (empty for other types).
    codes: Vec<HashMap<String, u32>>,
    classes: Vec<String>,
    shape: OutputShape,
    predictor: Arc<dyn Predict>,
}

impl std::fmt::Debug for ServingModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingModel")
            .field("job", &self.job)
            .field("version", &self.version)
            .field("objective", &self.objective)
            .field("features", &self.names)
            .finish_non_exhaustive()
    }
}

/// Predictor slots per model: one per core, so every core can predict at once.
fn default_slots() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

impl ServingModel {
    /// Loads a registered version from its model file (as [`crate::registry::Registry::model_json`]
    /// returns it). It is served by the native [`Forest`](super::trees::Forest) — bit-identical to
    /// XGBoost's predictor, lock-free and ~27× faster per row — or, for a model kind the forest
    /// does not support, by a pool of one XGBoost predictor per core.
    pub fn load(version: &ModelVersion, model_json: &[u8]) -> Result<ServingModel, ModelError> {
        match super::trees::Forest::from_json(model_json) {
            Ok(forest) => {
                if forest.num_features() != version.signature.features.len() {
                    return Err(ModelError::Signature {
                        job: version.job.clone(),
                        version: version.version,
                        message: format!(
                            "the model file takes {} features, its signature lists {}",
                            forest.num_features(),
                            version.signature.features.len()
                        ),
                    });
                }
                return ServingModel::with_predictor(version, Arc::new(forest));
            }
            Err(super::trees::TreeError::Unsupported(_)) => {}
            Err(e) => {
                return Err(ModelError::Signature {
                    job: version.job.clone(),
                    version: version.version,
                    message: format!("its model file cannot be read: {e}"),
                })
            }
        }
        let pool = PredictorPool::load(model_json, default_slots()).map_err(|source| ModelError::Load {
            job: version.job.clone(),
            version: version.version,
            source,
        })?;
        if pool.num_features() != version.signature.features.len() {
            return Err(ModelError::Signature {
                job: version.job.clone(),
                version: version.version,
                message: format!(
                    "the model file takes {} features, its signature lists {}",
                    pool.num_features(),
                    version.signature.features.len()
                ),
            });
        }
        ServingModel::with_predictor(version, Arc::new(pool))
    }

    /// A version served by another [`Predict`] implementation (a native forest, a test double).
    pub fn with_predictor(version: &ModelVersion, predictor: Arc<dyn Predict>) -> Result<ServingModel, ModelError> {
        let err =
            |message: String| ModelError::Signature { job: version.job.clone(), version: version.version, message };
        let features = &version.signature.features;
        if features.is_empty() {
            return Err(err("the signature has no features".into()));
        }
        let mut index = HashMap::with_capacity(features.len());
        for (i, f) in features.iter().enumerate() {
            if index.insert(f.name.clone(), i).is_some() {
                return Err(err(format!("feature `{}` appears twice in the signature", f.name)));
            }
        }
        let codes = features
            .iter()
            .map(|f| f.categories.iter().enumerate().map(|(i, c)| (c.clone(), i as u32)).collect())
            .collect();
        let num_class = version.params.get("num_class").and_then(Value::as_u64).unwrap_or(0) as usize;
        let classes = if version.signature.classes.is_empty() {
            (0..num_class).map(|i| i.to_string()).collect()
        } else {
            version.signature.classes.clone()
        };
        let shape = match version.task {
            Task::Multiclass if version.objective == "multi:softmax" => OutputShape::ClassIndex,
            Task::Multiclass => OutputShape::Probabilities,
            Task::Binary | Task::Regression => OutputShape::Score,
        };
        if shape != OutputShape::Score && classes.len() < 2 {
            return Err(err(format!("a multi-class model ({}) without its classes", version.objective)));
        }
        Ok(ServingModel {
            job: version.job.clone(),
            version: version.version,
            objective: version.objective.clone(),
            task: version.task,
            signature: version.signature.clone(),
            names: features.iter().map(|f| f.name.clone()).collect(),
            index,
            codes,
            classes,
            shape,
            predictor,
        })
    }

    /// The training job's address.
    pub fn job(&self) -> &str {
        &self.job
    }

    /// The registry version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The XGBoost objective.
    pub fn objective(&self) -> &str {
        &self.objective
    }

    /// The task.
    pub fn task(&self) -> Task {
        self.task
    }

    /// Inputs and classes.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// The input features, in row order.
    pub fn features(&self) -> &[FeatureSpec] {
        &self.signature.features
    }

    /// Feature names, in row order.
    pub fn feature_names(&self) -> &Arc<[String]> {
        &self.names
    }

    /// The column of a feature.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Class names of a multi-class model (class i ↔ `classes()[i]`); empty otherwise.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Does the output carry class probabilities (`multi:softprob`)?
    pub fn has_probabilities(&self) -> bool {
        self.shape == OutputShape::Probabilities
    }

    /// Is it a multi-class model?
    pub fn is_multiclass(&self) -> bool {
        self.shape != OutputShape::Score
    }

    /// The predictor.
    pub fn predictor(&self) -> &Arc<dyn Predict> {
        &self.predictor
    }

    /// Encodes one value for column `col`; on a value the feature cannot take, says what it
    /// expects (the caller adds where the value was).
    pub fn decode(&self, col: usize, value: FeatureValue<'_>) -> Result<Decoded, String> {
        let f = &self.signature.features[col];
        let ok = |value: f32| Ok(Decoded { value, unseen: false });
        let expected = |what: &str| Err(format!("expects {what}, got {}", value.describe()));
        let number = |x: f64| -> Result<Decoded, String> {
            let v = x as f32;
            if v.is_finite() {
                ok(v)
            } else {
                Err(format!("the number {x} does not fit a 32-bit float"))
            }
        };
        match (f.dtype, value) {
            (_, FeatureValue::Null) => ok(f32::NAN),
            (ColumnType::Float, FeatureValue::Number(x)) => number(x),
            (ColumnType::Float, _) => expected("a number"),
            (ColumnType::Int, FeatureValue::Number(x)) if x.fract() == 0.0 => number(x),
            (ColumnType::Int, _) => expected("an integer"),
            (ColumnType::Bool, FeatureValue::Bool(b)) => ok(f32::from(u8::from(b))),
            (ColumnType::Bool, FeatureValue::Number(x)) if x == 0.0 || x == 1.0 => ok(x as f32),
            (ColumnType::Bool, _) => expected("a boolean (true or false)"),
            (ColumnType::Timestamp, FeatureValue::Number(x)) => number(x),
            (ColumnType::Timestamp, _) => expected("a timestamp in Unix seconds"),
            (ColumnType::Category | ColumnType::String, FeatureValue::Text(s)) => Ok(match self.codes[col].get(s) {
                Some(&code) => Decoded { value: code as f32, unseen: false },
                None => Decoded { value: f32::NAN, unseen: true },
            }),
            (ColumnType::Category | ColumnType::String, _) => expected("a string (one of its categories)"),
        }
    }

    /// Decodes one row given as a JSON object of feature values, appending one value per feature
    /// to `out` (and to `unseen` the columns holding a category value unseen at training).
    /// `ignore` lists keys that are not features (the entity key); `base` holds, per column, a
    /// value from another source (the online store) used when the object does not name the
    /// feature. On failure, says which feature and what it expects (the caller adds the row).
    pub fn decode_object(
        &self,
        object: &serde_json::Map<String, Value>,
        ignore: &[&str],
        base: Option<&[Option<Decoded>]>,
        out: &mut Vec<f32>,
        unseen: &mut Vec<usize>,
    ) -> Result<(), String> {
        let n = self.names.len();
        let start = out.len();
        out.resize(start + n, f32::NAN);
        let mut set = vec![false; n];
        if let Some(base) = base {
            for (col, d) in base.iter().enumerate().take(n) {
                if let Some(d) = d {
                    out[start + col] = d.value;
                    set[col] = true;
                    if d.unseen {
                        unseen.push(col);
                    }
                }
            }
        }
        let mut unknown = Vec::new();
        for (key, value) in object {
            let Some(col) = self.column(key) else {
                if !ignore.contains(&key.as_str()) {
                    unknown.push(key.as_str());
                }
                continue;
            };
            let d = self.decode(col, value.into()).map_err(|why| format!("feature `{key}` {why}"))?;
            unseen.retain(|&c| c != col);
            if d.unseen {
                unseen.push(col);
            }
            out[start + col] = d.value;
            set[col] = true;
        }
        if let Some(first) = unknown.first() {
            out.truncate(start);
            return Err(self.unknown_message(first, unknown.len()));
        }
        let missing: Vec<&str> =
            set.iter().zip(self.names.iter()).filter(|(s, _)| !**s).map(|(_, n)| n.as_str()).collect();
        if !missing.is_empty() {
            out.truncate(start);
            let shown: Vec<String> = missing.iter().take(10).map(|m| format!("`{m}`")).collect();
            let more = if missing.len() > 10 { format!(" and {} more", missing.len() - 10) } else { String::new() };
            let s = if missing.len() == 1 { "" } else { "s" };
            return Err(format!("missing feature{s} {}{more} (send null for a missing value)", shown.join(", ")));
        }
        Ok(())
    }

    /// "unknown feature `x`", with the closest name the model takes, or the names it takes.
    pub fn unknown_message(&self, name: &str, count: usize) -> String {
        let shown: String = name.chars().take(60).collect();
        let closest = self
            .names
            .iter()
            .map(|n| (strsim::jaro_winkler(n, name), n))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let hint = match closest {
            Some((_, n)) => format!("did you mean `{n}`?"),
            None => {
                let list: Vec<&str> = self.names.iter().take(12).map(String::as_str).collect();
                let more = if self.names.len() > 12 { ", …" } else { "" };
                format!("the model takes {}{more}", list.join(", "))
            }
        };
        let others = if count > 1 { format!(" and {} other unknown key(s)", count - 1) } else { String::new() };
        format!("unknown feature `{shown}`{others}; {hint}")
    }

    /// Splits the predictor's raw output for `rows` rows into one [`Output`] per row.
    pub fn outputs(&self, raw: &[f32], rows: usize) -> Result<Vec<Output>, PredictError> {
        let k = match self.shape {
            OutputShape::Probabilities => self.classes.len(),
            OutputShape::Score | OutputShape::ClassIndex => 1,
        };
        if raw.len() != rows * k {
            return Err(PredictError::new(format!(
                "the predictor returned {} values for {rows} rows ({k} expected per row)",
                raw.len()
            )));
        }
        Ok(match self.shape {
            OutputShape::Score => raw.iter().map(|&s| Output::Score(s)).collect(),
            OutputShape::ClassIndex => raw
                .iter()
                .map(|&c| Output::Class {
                    class: (c.max(0.0) as usize).min(self.classes.len() - 1),
                    probabilities: None,
                })
                .collect(),
            OutputShape::Probabilities => raw
                .chunks(k)
                .map(|p| {
                    let class = p.iter().enumerate().fold(0, |best, (i, &v)| if v > p[best] { i } else { best });
                    Output::Class { class, probabilities: Some(p.to_vec()) }
                })
                .collect(),
        })
    }

    /// Predicts `rows` dense rows (blocking: call from a blocking thread).
    pub fn predict(&self, x: &[f32], rows: usize) -> Result<Vec<Output>, PredictError> {
        let raw = self.predictor.predict(x, rows)?;
        self.outputs(&raw, rows)
    }
}
