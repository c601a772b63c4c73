//! Monitoring: whether production data still looks like the data a model was trained on. In:
//! the training reference of a model version ([`reference::Reference`], saved next to the
//! model) and windows of logged features and scores; out: drift measurements and verdicts
//! ([`drift`]). [`compare`] runs the same statistics on any two CSV or Parquet files
//! (`mlops drift compare`).

pub mod compare;
pub mod drift;
pub mod reference;
