//! The mlops runtime: executes what a compiled [`mlops_compiler::spec::SystemSpec`] describes.
//! It never parses HCL; its input is the spec.
//!
//! ```text
//! data (sources → Arrow batches) ─▶ features (offline + online store, point-in-time joins)
//!   ─▶ train (XGBoost) ─▶ registry (versioned models) ─▶ serve (HTTP, metrics, prediction log)
//!   ─▶ monitor (drift statistics against the training reference)
//! ```
#![warn(missing_docs)]

pub mod apply;
pub mod data;
pub mod dataset;
pub mod events;
pub mod features;
mod fsio;
pub mod monitor;
pub mod objstore;
pub mod pipeline;
pub mod pod;
pub mod registry;
pub mod retrain;
pub mod serve;
pub mod state;
pub mod targets;
pub mod train;
pub mod workspace;
