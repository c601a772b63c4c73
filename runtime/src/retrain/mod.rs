//! Retraining: when a policy retrains ([`policy`], pure) and what a retrain does ([`run`]):
//! fresh data, a candidate, its gates, the comparison with production on a shared holdout.

pub mod controller;
pub mod policy;
pub mod run;
pub mod standalone;
