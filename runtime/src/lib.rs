//! The mlops runtime (placeholder crate root; see README for status).
#![warn(missing_docs)]
