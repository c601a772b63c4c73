//! A training set: the meeting point of the feature store (which builds it with point-in-time
//! joins) and the trainer (which splits it, trains and evaluates on it).

use mlops_compiler::model::ColumnType;
use serde::{Deserialize, Serialize};

/// One feature column of a model's input: its name and type (the model's signature).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Feature name, unique within the set.
    pub name: String,
    /// Declared or derived type; categorical values are encoded as codes (see `categories`).
    pub dtype: ColumnType,
    /// For string/category features: the category of each code (code i ↔ `categories[i]`).
    /// Values not in the list (unseen at serving time) encode as missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
}

/// Rows of features with a label, dense and row-major, ready for XGBoost.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrainingSet {
    /// Feature columns, in the order of each row.
    pub features: Vec<FeatureSpec>,
    /// `rows × features.len()` values, row-major; missing values are NaN.
    pub x: Vec<f32>,
    /// One label per row: 0/1 for binary, the class index for multi-class, the target value
    /// for regression.
    pub y: Vec<f32>,
    /// Event time of each row's label (Unix microseconds), for time-based splits.
    pub event_time: Vec<i64>,
    /// For multi-class labels: the class of each index.
    pub classes: Vec<String>,
}

impl TrainingSet {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.y.len()
    }

    /// Number of feature columns.
    pub fn cols(&self) -> usize {
        self.features.len()
    }

    /// Row `i` as a slice of feature values.
    pub fn row(&self, i: usize) -> &[f32] {
        let c = self.cols();
        &self.x[i * c..(i + 1) * c]
    }

    /// Checks the shape invariants (used by producers in debug builds and by tests).
    pub fn check_shape(&self) -> Result<(), String> {
        let (r, c) = (self.rows(), self.cols());
        if self.x.len() != r * c {
            return Err(format!("x has {} values, expected {r} rows × {c} features", self.x.len()));
        }
        if self.event_time.len() != r {
            return Err(format!("event_time has {} values, expected {r}", self.event_time.len()));
        }
        Ok(())
    }
}
