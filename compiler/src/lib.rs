//! The mlops compiler: a directory of `*.mlops.hcl` files in, a checked [`spec::SystemSpec`] out.
//!
//! ```text
//! files ──parse──▶ hcl-edit bodies ──lower──▶ checked blocks ──model──▶ typed model
//!       ──check──▶ diagnostics ──graph──▶ dependency DAG ──spec──▶ SystemSpec (versioned JSON)
//! ```
//!
//! The compiler is pure: it reads the configuration's files and nothing else, starts no process
//! and opens no socket. Every problem is a [`diagnostic::Diagnostic`] with a stable code from
//! [`codes`]; the shape of the language is defined once, in [`schema`].
#![warn(missing_docs)]

pub mod check;
pub mod codes;
pub mod compile;
pub mod diagnostic;
pub mod emit;
pub mod eval;
pub mod featexpr;
pub mod format;
pub mod functions;
pub mod graph;
pub mod json_schema;
pub mod lower;
pub mod model;
pub mod parse;
pub mod plan;
pub mod schema;
pub mod selector;
pub mod source;
pub mod spec;
pub mod state;
pub mod suggest;
pub mod units;
pub mod value;

pub use compile::{compile, Compilation};
pub use lower::Options;
