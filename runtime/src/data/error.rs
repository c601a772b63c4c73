//! Errors of reading a source. In: whatever went wrong (a setting, a file, a value, the
//! database). Out: a [`DataError`] whose message names the source's address, says where the
//! problem is (file and line, or row index), what was found and what was expected, and ends
//! with a phrase saying how to fix it.

use mlops_compiler::model::ColumnType;
use std::fmt;

/// Longest offending value quoted in a message, in characters.
const MAX_VALUE_CHARS: usize = 40;

/// Where in a source a row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Row {
    /// 1-based line number in a CSV file (the line where the record starts).
    Line(u64),
    /// 0-based row index in a Parquet file or a PostgreSQL result.
    Index(u64),
}

impl fmt::Display for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Row::Line(n) => write!(f, "line {n}"),
            Row::Index(n) => write!(f, "row {n} (counting from 0)"),
        }
    }
}

/// One cell of a source: the file (or `table x` / `query`), the row and the column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// File path as configured (relative to the configuration root), or `table NAME` / `query`.
    pub origin: String,
    /// The row.
    pub row: Row,
    /// The declared column.
    pub column: String,
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}, column `{}`", self.origin, self.row, self.column)
    }
}

/// Why a source could not be read. Every variant names the source's address.
///
/// Readers stop after their first error: a reader that yielded an `Err` yields nothing more.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The source's settings cannot be used (no path, a multi-byte delimiter, a bad table name…).
    #[error("{address}: {message}")]
    Config {
        /// Source address.
        address: String,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// A glob matched no file.
    #[error(
        "{address}: no file matches `{pattern}` (in {root}); check `path`, which is relative to the \
         configuration directory"
    )]
    NoMatch {
        /// Source address.
        address: String,
        /// The configured path.
        pattern: String,
        /// The configuration root it was resolved against.
        root: String,
    },

    /// A file or directory could not be read.
    #[error("{address}: cannot read {path}: {source}; check `path`, which is relative to the configuration directory")]
    Io {
        /// Source address.
        address: String,
        /// The file or directory.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A declared column is not in the file or the query result.
    #[error(
        "{address}: {origin} has no column `{column}` (found: {}); rename the column in the data or fix the \
         source's `schema`",
        found_list(.found)
    )]
    MissingColumn {
        /// Source address.
        address: String,
        /// File path, `table NAME` or `query`.
        origin: String,
        /// The declared column that is missing.
        column: String,
        /// The columns that are there.
        found: Vec<String>,
    },

    /// A stored column's type cannot be read as the declared type.
    #[error(
        "{address}: {origin} column `{column}` has type {found}, which cannot be read as {}; declare the \
         column with a type that fits, or convert the data",
        .expected.name()
    )]
    IncompatibleType {
        /// Source address.
        address: String,
        /// File path, `table NAME` or `query`.
        origin: String,
        /// The declared column.
        column: String,
        /// The stored type (Arrow or PostgreSQL name).
        found: String,
        /// The declared type.
        expected: ColumnType,
    },

    /// A value does not parse as, or does not fit, the declared type.
    #[error(
        "{address}: {cell}: `{value}` is not a valid {} ({reason}); fix the value, or declare the column with a \
         type that fits it",
        .expected.name()
    )]
    Value {
        /// Source address.
        address: String,
        /// Where the value is.
        cell: Box<Cell>,
        /// The offending value, truncated to a readable length.
        value: String,
        /// The declared type.
        expected: ColumnType,
        /// What exactly is wrong.
        reason: String,
    },

    /// A null (an empty CSV field) in a column declared non-nullable.
    #[error(
        "{address}: {cell}: null in non-nullable column (declared {ty}); declare it \
         `{{ type = \"{ty}\", nullable = true }}` or fill in the value",
        ty = .expected.name()
    )]
    Null {
        /// Source address.
        address: String,
        /// Where the null is.
        cell: Box<Cell>,
        /// The declared type.
        expected: ColumnType,
    },

    /// A CSV file is malformed (unequal field counts, bad quoting, invalid UTF-8 in a header).
    #[error("{address}: {path} line {line}: malformed CSV: {message}; fix the file or check `delimiter` and `header`")]
    Csv {
        /// Source address.
        address: String,
        /// The file.
        path: String,
        /// 1-based line number where the problem is (0 when unknown).
        line: u64,
        /// The CSV reader's explanation.
        message: String,
    },

    /// A Parquet file could not be decoded.
    #[error("{address}: {path}: cannot read Parquet: {source}; check that the file is a complete Parquet file")]
    Parquet {
        /// Source address.
        address: String,
        /// The file.
        path: String,
        /// The Parquet reader's error.
        #[source]
        source: parquet::errors::ParquetError,
    },

    /// Arrow refused to build a batch (a bug in a reader rather than in the data).
    #[error("{address}: cannot build a batch: {source}; this is a bug in mlops, please report it")]
    Arrow {
        /// Source address.
        address: String,
        /// Arrow's error.
        #[source]
        source: arrow_schema::ArrowError,
    },

    /// `connection_env` names an environment variable that is not set.
    #[error("{address}: environment variable `{var}` (named by `connection_env`) is not set; export it with the PostgreSQL connection string")]
    EnvUnset {
        /// Source address.
        address: String,
        /// The variable.
        var: String,
    },

    /// PostgreSQL reported an error (the connection string is never part of the message).
    #[error(
        "{address}: PostgreSQL error while {action}: {message}; check the connection (`connection` or \
         `connection_env`) and the `table` or `query`"
    )]
    Postgres {
        /// Source address.
        address: String,
        /// What was being done: "connecting", "running the query"…
        action: &'static str,
        /// The server's message with its detail, hint and SQLSTATE, or the client's explanation.
        message: String,
        /// The client's error.
        #[source]
        source: postgres::Error,
    },

    /// The thread streaming a PostgreSQL result could not start.
    #[error("{address}: cannot start a reader thread: {source}; the machine may be out of memory or threads")]
    Thread {
        /// Source address.
        address: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The thread streaming a PostgreSQL result ended without saying why.
    #[error("{address}: the PostgreSQL reader stopped unexpectedly; this is a bug in mlops, please report it")]
    ReaderStopped {
        /// Source address.
        address: String,
    },
}

impl DataError {
    /// A PostgreSQL error while doing `action`, with the server's own words in the message
    /// (the client's `Display` alone says only "db error").
    pub(crate) fn postgres(address: &str, action: &'static str, source: postgres::Error) -> DataError {
        let message = match source.as_db_error() {
            Some(db) => {
                let mut m = format!("{} (SQLSTATE {})", db.message(), db.code().code());
                if let Some(detail) = db.detail() {
                    m.push_str(&format!("; {detail}"));
                }
                if let Some(hint) = db.hint() {
                    m.push_str(&format!("; hint: {hint}"));
                }
                m
            }
            None => {
                let mut m = source.to_string();
                let mut cause = std::error::Error::source(&source);
                while let Some(c) = cause {
                    m.push_str(&format!(": {c}"));
                    cause = c.source();
                }
                m
            }
        };
        DataError::Postgres { address: address.to_string(), action, message, source }
    }
}

fn found_list(found: &[String]) -> String {
    if found.is_empty() {
        return "no columns".to_string();
    }
    found.iter().map(|c| format!("`{c}`")).collect::<Vec<_>>().join(", ")
}

/// `value` cut to a readable length, so one huge field does not flood a message.
pub(crate) fn truncate(value: &str) -> String {
    match value.char_indices().nth(MAX_VALUE_CHARS) {
        Some((at, _)) => format!("{}…", &value[..at]),
        None => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_values_are_truncated_on_a_char_boundary() {
        let v = "é".repeat(100);
        let t = truncate(&v);
        assert_eq!(t.chars().count(), MAX_VALUE_CHARS + 1);
        assert!(t.ends_with('…'));
        assert_eq!(truncate("short"), "short");
    }

    #[test]
    fn null_message_shows_how_to_declare_the_column_nullable() {
        let e = DataError::Null {
            address: "source.tx".into(),
            cell: Box::new(Cell { origin: "data/tx.csv".into(), row: Row::Line(7), column: "amount".into() }),
            expected: ColumnType::Float,
        };
        assert_eq!(
            e.to_string(),
            "source.tx: data/tx.csv line 7, column `amount`: null in non-nullable column (declared float); \
             declare it `{ type = \"float\", nullable = true }` or fill in the value"
        );
    }
}
