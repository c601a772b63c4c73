//! Row-at-a-time assembly of a batch, for the readers whose input comes in rows (CSV records,
//! PostgreSQL rows). In: typed values, column by column. Out: a [`RecordBatch`] with the
//! source's schema.

use super::{arrow_schema, DataError};
use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::SchemaRef;
use mlops_compiler::model::{ColumnType, Source};
use std::sync::Arc;

/// The builder of one column, by declared type. Readers match on the variant to append, so a
/// value of the wrong type cannot reach a column.
pub(crate) enum ColumnBuilder {
    /// string and category.
    Utf8(StringBuilder),
    /// int.
    Int(Int64Builder),
    /// float.
    Float(Float64Builder),
    /// bool.
    Bool(BooleanBuilder),
    /// timestamp, microseconds since the epoch, UTC.
    Timestamp(TimestampMicrosecondBuilder),
}

impl ColumnBuilder {
    fn new(ty: ColumnType, rows: usize) -> ColumnBuilder {
        match ty {
            // Strings grow their value buffer as needed; only the offsets are sized up front.
            ColumnType::String | ColumnType::Category => ColumnBuilder::Utf8(StringBuilder::with_capacity(rows, 0)),
            ColumnType::Int => ColumnBuilder::Int(Int64Builder::with_capacity(rows)),
            ColumnType::Float => ColumnBuilder::Float(Float64Builder::with_capacity(rows)),
            ColumnType::Bool => ColumnBuilder::Bool(BooleanBuilder::with_capacity(rows)),
            ColumnType::Timestamp => ColumnBuilder::Timestamp(TimestampMicrosecondBuilder::with_capacity(rows)),
        }
    }

    /// Appends a null.
    pub(crate) fn append_null(&mut self) {
        match self {
            ColumnBuilder::Utf8(b) => b.append_null(),
            ColumnBuilder::Int(b) => b.append_null(),
            ColumnBuilder::Float(b) => b.append_null(),
            ColumnBuilder::Bool(b) => b.append_null(),
            ColumnBuilder::Timestamp(b) => b.append_null(),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnBuilder::Utf8(b) => Arc::new(b.finish()),
            ColumnBuilder::Int(b) => Arc::new(b.finish()),
            ColumnBuilder::Float(b) => Arc::new(b.finish()),
            ColumnBuilder::Bool(b) => Arc::new(b.finish()),
            ColumnBuilder::Timestamp(b) => Arc::new(b.finish().with_timezone("UTC")),
        }
    }
}

/// Builders for every declared column, in declared order.
pub(crate) struct BatchBuilder {
    schema: SchemaRef,
    /// One builder per declared column.
    pub columns: Vec<ColumnBuilder>,
    rows: usize,
}

impl BatchBuilder {
    /// Builders for `source`'s columns, sized for `rows` rows.
    pub(crate) fn new(source: &Source, rows: usize) -> BatchBuilder {
        BatchBuilder {
            schema: arrow_schema(source),
            columns: source.columns.iter().map(|c| ColumnBuilder::new(c.ty, rows)).collect(),
            rows: 0,
        }
    }

    /// Records that a full row was appended to every column.
    pub(crate) fn end_row(&mut self) {
        self.rows += 1;
    }

    /// Rows appended since the last [`BatchBuilder::finish`].
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// The batch of the rows appended so far; the builders start over empty.
    pub(crate) fn finish(&mut self, address: &str) -> Result<RecordBatch, DataError> {
        let rows = std::mem::take(&mut self.rows);
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(ColumnBuilder::finish).collect();
        // The row count is explicit so a source without declared columns still counts rows.
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
            .map_err(|source| DataError::Arrow { address: address.to_string(), source })
    }
}
