//! Semantic checks over the typed model: what the schema cannot say. References into
//! attributes and columns, data consistency (columns, join keys, aggregates, windows), ML sense
//! (leakage, objectives and metrics, drift thresholds, rollouts, retraining guardrails) and
//! warnings about legal but risky choices. Blocks whose schema check failed are skipped, so a
//! mistake is reported once.

mod data;
mod kubernetes;
mod lint;
mod ml;
mod references;

use crate::diagnostic::Diagnostics;
use crate::model::Model;

/// Runs every check.
pub fn check(model: &Model, diags: &mut Diagnostics) {
    references::check(model, diags);
    data::check(model, diags);
    ml::check(model, diags);
    lint::check(model, diags);
    kubernetes::check(model, diags);
}
