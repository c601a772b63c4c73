//! The training reference of a model version, taken when it is registered. In: the training
//! set it was trained on and its model file. Out: a [`Reference`] with every feature's values
//! (categorical codes turned back into their names, as the prediction log records them) and the
//! model's scores on the holdout rows under `prediction` — what unseen traffic scored like — saved
//! as `reference.json` next to the model.

use std::path::Path;

use mlops_compiler::model::TrainingJob;

use super::drift::CategoryCounts;
use super::reference::{FeatureReference, Reference, ReferenceError, DEFAULT_SAMPLE_CAP, DEFAULT_SEED};
use crate::dataset::TrainingSet;
use crate::serve::trees::Forest;
use crate::train;

/// The reference of a model trained on `set` (`model_json`: its XGBoost model file). Scores are
/// left out when the native forest cannot read the model (a kind it does not serve).
pub fn reference(set: &TrainingSet, job: &TrainingJob, model_json: &[u8]) -> Reference {
    let mut r = Reference::new(DEFAULT_SAMPLE_CAP, DEFAULT_SEED);
    let cols = set.cols();
    for (j, f) in set.features.iter().enumerate() {
        let column = (0..set.rows()).map(|i| set.x[i * cols + j]);
        let reference = if f.categories.is_empty() {
            FeatureReference::numeric(column.map(f64::from), DEFAULT_SAMPLE_CAP, DEFAULT_SEED)
        } else {
            let names = column.map(|code| {
                (code.is_finite() && code >= 0.0).then(|| f.categories.get(code as usize).map(String::as_str)).flatten()
            });
            FeatureReference::categorical(CategoryCounts::from_values(names))
        };
        r.features.insert(f.name.clone(), reference);
    }
    if let (Ok(forest), Ok(rows)) = (Forest::from_json(model_json), train::holdout_rows(set, job)) {
        if forest.num_outputs_per_row() == 1 {
            let mut x = Vec::with_capacity(rows.len() * cols);
            for &i in &rows {
                x.extend_from_slice(set.row(i));
            }
            let mut scores = Vec::new();
            if forest.predict(&x, rows.len(), &mut scores).is_ok() {
                let scores = scores.into_iter().map(f64::from);
                r.features
                    .insert("prediction".into(), FeatureReference::numeric(scores, DEFAULT_SAMPLE_CAP, DEFAULT_SEED));
            }
        }
    }
    r
}

/// Builds and saves the reference next to the model file at `model_path`.
pub fn save(set: &TrainingSet, job: &TrainingJob, model_json: &[u8], model_path: &Path) -> Result<(), ReferenceError> {
    let dir = model_path.parent().unwrap_or(Path::new("."));
    reference(set, job, model_json).save(dir).map(|_| ())
}
