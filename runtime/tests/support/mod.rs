//! Helpers shared by the runtime's integration tests: a real PostgreSQL server
//! ([`postgres::TestPostgres`]) and builders for compiled sources.
// Each test binary uses only some of these.
#![allow(dead_code)]

pub mod postgres;

use mlops_compiler::model::{Column, ColumnType, Source, SourceFormat};

/// Columns from `(name, type)` pairs; a type ending in `?` is nullable (`"float?"`).
#[track_caller]
pub fn columns(spec: &[(&str, &str)]) -> Vec<Column> {
    spec.iter()
        .map(|(name, ty)| {
            let nullable = ty.ends_with('?');
            let ty = ColumnType::parse(ty.trim_end_matches('?')).unwrap_or_else(|| panic!("unknown type {ty}"));
            Column { name: name.to_string(), ty, nullable }
        })
        .collect()
}

/// A source of `format` with `columns` and every other setting at its default.
#[track_caller]
pub fn source(format: SourceFormat, spec: &[(&str, &str)]) -> Source {
    Source {
        format,
        path: None,
        connection: None,
        connection_env: None,
        table: None,
        query: None,
        timestamp: None,
        delimiter: ",".to_string(),
        header: true,
        columns: columns(spec),
        description: None,
    }
}

/// A file source reading `path`.
#[track_caller]
pub fn file_source(format: SourceFormat, path: &str, spec: &[(&str, &str)]) -> Source {
    Source { path: Some(path.to_string()), ..source(format, spec) }
}

/// Every batch of `source`, or the first error (from opening or reading).
pub fn read_all(
    source: &Source,
    address: &str,
    root: &std::path::Path,
) -> Result<Vec<arrow_array::RecordBatch>, mlops_runtime::data::DataError> {
    mlops_runtime::data::open(source, address, root)?.collect()
}

/// The error reading `source` ends with; panics if it reads cleanly.
#[track_caller]
pub fn read_error(source: &Source, address: &str, root: &std::path::Path) -> mlops_runtime::data::DataError {
    match read_all(source, address, root) {
        Ok(batches) => panic!("expected an error, read {} batches", batches.len()),
        Err(e) => e,
    }
}
