//! Monitoring: whether production data still looks like the data a model was trained on, and
//! how good its predictions turned out. In: the training reference of a model version
//! ([`reference::Reference`], saved next to the model), windows of logged features and scores
//! ([`window`]) and delayed labels ([`feedback`]). Out: drift measurements and verdicts
//! ([`drift`]) and performance metrics. [`compare`] runs the same statistics on any two CSV or
//! Parquet files (`mlops drift compare`).

pub mod capture;
pub mod compare;
pub mod drift;
pub mod evaluate;
pub mod feedback;
pub mod reference;
pub mod report;
pub mod window;
