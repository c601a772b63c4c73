//! Monitoring: what production traffic looks like against what the model was trained on, and
//! how good its predictions turned out. In: the prediction log, feedback labels, the training
//! reference of the serving version. Out: per-check values against thresholds, and breaches.

pub mod feedback;
pub mod window;
