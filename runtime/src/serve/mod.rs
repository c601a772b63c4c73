//! HTTP serving (being built).

pub mod trees;
