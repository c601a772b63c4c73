//! Sources: the runtime's input side. In: a compiled [`Source`] (its format, where the data is,
//! and the declared columns), its address (`source.transactions`) and the configuration root
//! that relative paths resolve against. Out: a stream of Arrow [`RecordBatch`]es whose schema is
//! exactly the declared columns, in declared order, typed as below — or a [`DataError`] that
//! names the source, the file and row, the column, the value and the expected type.
//!
//! ```no_run
//! fn count_rows(source: &mlops_compiler::model::Source) -> Result<usize, mlops_runtime::data::DataError> {
//!     let reader = mlops_runtime::data::open(source, "source.transactions", std::path::Path::new("."))?;
//!     let mut rows = 0;
//!     for batch in reader {
//!         rows += batch?.num_rows(); // at most DEFAULT_BATCH_ROWS rows a batch
//!     }
//!     Ok(rows)
//! }
//! ```
//!
//! | declared type | Arrow type | CSV text | Parquet column | PostgreSQL column |
//! | --- | --- | --- | --- | --- |
//! | `string`, `category` | `Utf8` | as written | `Utf8`, `LargeUtf8`, `Utf8View`, `Dictionary<_, Utf8>` | `text`, `varchar`, `bpchar`, `name`, enum types |
//! | `int` | `Int64` | `-12`, `+7` | `Int8/16/32/64`, `UInt8/16/32/64` (UInt64 checked for overflow) | `int2`, `int4`, `int8` |
//! | `float` | `Float64` | `1.5`, `-2e3`, `7` (finite only) | `Float32/64`, any integer (finite only) | `float4`, `float8`, `numeric`, `int2/4/8` (finite only) |
//! | `bool` | `Boolean` | `true/false/1/0/yes/no`, any case | `Boolean` | `bool` |
//! | `timestamp` | `Timestamp(µs, "UTC")` | RFC 3339 with `Z` or offset; `YYYY-MM-DD HH:MM:SS[.ffffff]` (UTC); `YYYY-MM-DD` (midnight UTC) | `Timestamp` of any unit and zone, `Date32`, `Date64` | `timestamptz`, `timestamp` (as UTC), `date` (midnight UTC) |
//!
//! Nulls: an empty CSV field (after trimming spaces, for non-string types), a Parquet null or
//! an SQL `NULL` is a null; in a column declared `nullable = true` it stays null, otherwise it
//! is an error. NaN and infinities are errors everywhere: a missing value is a null.
//!
//! Columns are found by name. A file or query may hold more columns than declared: the extra
//! ones are ignored (Parquet and PostgreSQL tables do not even read them). A path may be a glob
//! with `*` and `?` in its last component; the matching files are read in sorted order, and
//! each file's columns are checked when it is opened.
//!
//! CSV: `delimiter` is one ASCII character; header names are matched after trimming spaces
//! (and a leading byte-order mark); with `header = false` the fields are in declared order.
//! Every record must have as many fields as the header (or, without one, the first record).
//!
//! PostgreSQL: `table` is `name` or `schema.name`, quoted for you; unquoted parts fold to lower
//! case as in SQL, `"Quoted"` parts keep their case. A `query` runs as written, in a read-only
//! transaction. Rows arrive through a portal, [`DEFAULT_BATCH_ROWS`] at a time.

mod builder;
mod csv_source;
mod error;
mod files;
mod parquet_source;
mod postgres_source;
mod time;

pub use error::{Cell, DataError, Row};

use ::arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow_array::RecordBatch;
use mlops_compiler::model::{ColumnType, Source, SourceFormat};
use std::path::Path;
use std::sync::Arc;

/// Rows per batch: large enough that per-batch overhead vanishes, small enough that a batch of a
/// few dozen columns stays within tens of megabytes.
pub const DEFAULT_BATCH_ROWS: usize = 65_536;

/// A stream of batches from one source, each with [`BatchReader::schema`]. After an error the
/// reader yields nothing more. Readers only hold one batch (PostgreSQL: two) in memory at a time.
pub trait BatchReader: Iterator<Item = Result<RecordBatch, DataError>> + Send {
    /// The schema of every batch: the declared columns, as [`arrow_schema`] gives it.
    fn schema(&self) -> SchemaRef;
}

/// The Arrow type a declared column type is read as.
pub fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::String | ColumnType::Category => DataType::Utf8,
        ColumnType::Int => DataType::Int64,
        ColumnType::Float => DataType::Float64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    }
}

/// The schema of the batches read from `source`: its declared columns in declared order, typed
/// by [`arrow_type`], nullable as declared.
pub fn arrow_schema(source: &Source) -> SchemaRef {
    let fields: Vec<Field> = source.columns.iter().map(|c| Field::new(&c.name, arrow_type(c.ty), c.nullable)).collect();
    Arc::new(Schema::new(fields))
}

/// Opens `source` (at `address`, with relative paths resolved against `root`) for reading.
///
/// Problems visible before reading any data — a bad setting, no matching file, a missing
/// column or incompatible type in the first file or in the query result, an unreachable
/// database — are returned here; problems in the data come from the iterator.
pub fn open(source: &Source, address: &str, root: &Path) -> Result<Box<dyn BatchReader>, DataError> {
    Ok(match source.format {
        SourceFormat::Csv => Box::new(csv_source::CsvReader::open(source, address, root)?),
        SourceFormat::Parquet => Box::new(parquet_source::ParquetReader::open(source, address, root)?),
        SourceFormat::Postgres => Box::new(postgres_source::PostgresReader::open(source, address)?),
    })
}

/// A hex sha256 that changes when the data probably changed: for files, over their paths (as
/// configured), sizes and modification times; for PostgreSQL, over the query text and the
/// number of rows it returns. Cheap: no file is read, and the database only counts.
pub fn fingerprint(source: &Source, address: &str, root: &Path) -> Result<String, DataError> {
    match source.format {
        SourceFormat::Csv | SourceFormat::Parquet => {
            let files = files::resolve(source.path.as_deref(), address, root)?;
            files::fingerprint(&files, address)
        }
        SourceFormat::Postgres => postgres_source::fingerprint(source, address),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlops_compiler::model::Column;

    #[test]
    fn schema_follows_declared_order_types_and_nullability() {
        let col = |name: &str, ty, nullable| Column { name: name.into(), ty, nullable };
        let source = Source {
            format: SourceFormat::Csv,
            path: None,
            connection: None,
            connection_env: None,
            table: None,
            query: None,
            timestamp: None,
            delimiter: ",".into(),
            header: true,
            columns: vec![
                col("z", ColumnType::Timestamp, false),
                col("a", ColumnType::Category, true),
                col("m", ColumnType::Int, false),
            ],
            description: None,
        };
        let schema = arrow_schema(&source);
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["z", "a", "m"]);
        assert_eq!(schema.field(0).data_type(), &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
        assert!(schema.field(1).is_nullable());
        assert!(!schema.field(2).is_nullable());
    }
}
