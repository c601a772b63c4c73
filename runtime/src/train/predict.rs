//! Prediction with a saved model. In: XGBoost's JSON model bytes (as [`super::TrainedModel`] and
//! the registry hold them) and dense row-major features, NaN for missing. Out: XGBoost's own
//! predictions — per row one value (probability of the positive class, regression value, or class
//! for `multi:softmax`), or per row one probability per class for `multi:softprob`.

use serde::Deserialize;
use xgb::{Booster, DMatrix};

use super::booster::xgb_message;
use super::TrainError;

// Only the header of the model file is read here; serde skips the trees.
#[derive(Deserialize)]
struct ModelFile {
    learner: Learner,
}

#[derive(Deserialize)]
struct Learner {
    learner_model_param: LearnerModelParam,
}

#[derive(Deserialize)]
struct LearnerModelParam {
    num_feature: String,
}

/// A loaded model, for predicting many times (loading parses the whole model).
/// `Send` but not `Sync`: XGBoost mutates the booster while predicting, so share it behind a
/// mutex or load one per thread.
pub struct Predictor {
    booster: Booster,
    num_features: usize,
}

impl std::fmt::Debug for Predictor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Predictor").field("num_features", &self.num_features).finish_non_exhaustive()
    }
}

impl Predictor {
    /// Loads a model saved in XGBoost's JSON format.
    pub fn load(model_json: &[u8]) -> Result<Predictor, TrainError> {
        // Checked before XGBoost sees it, so a file that is not a model gets a clear error.
        let header: ModelFile = serde_json::from_slice(model_json).map_err(|e| TrainError::Model(e.to_string()))?;
        let num_features = header
            .learner
            .learner_model_param
            .num_feature
            .parse()
            .map_err(|_| TrainError::Model("learner_model_param.num_feature is not a number".into()))?;
        let booster = Booster::load_buffer(model_json).map_err(|e| TrainError::Model(xgb_message(&e)))?;
        Ok(Predictor { booster, num_features })
    }

    /// Number of feature columns the model expects.
    pub fn num_features(&self) -> usize {
        self.num_features
    }

    /// Predicts `rows` rows of `num_features()` values each.
    pub fn predict(&self, features: &[f32], rows: usize) -> Result<Vec<f32>, TrainError> {
        let cols = self.num_features;
        if rows.checked_mul(cols) != Some(features.len()) {
            return Err(TrainError::Features { rows, cols, got: features.len() });
        }
        if rows == 0 {
            return Ok(Vec::new());
        }
        let during = |e: xgb::XGBError| TrainError::Xgboost { during: "predicting".into(), message: xgb_message(&e) };
        let m = DMatrix::from_dense(features, rows).map_err(during)?;
        self.booster.predict(&m).map_err(during)
    }
}

/// Predicts with a model given as XGBoost JSON: `features` holds `rows × cols` values, row-major,
/// NaN for missing; `cols` must be the model's feature count.
pub fn predict(model_json: &[u8], features: &[f32], rows: usize, cols: usize) -> Result<Vec<f32>, TrainError> {
    let p = Predictor::load(model_json)?;
    if cols != p.num_features {
        return Err(TrainError::FeatureCount { expected: p.num_features, got: cols });
    }
    p.predict(features, rows)
}
