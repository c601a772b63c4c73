//! Parquet files. In: a parquet source (path or glob, declared columns). Out: batches of at
//! most [`DEFAULT_BATCH_ROWS`] rows with only the declared columns read from disk, each
//! converted to its declared Arrow type: narrower integers widen, Float32 widens, timestamps of
//! any unit and zone become UTC microseconds, dates become midnight UTC, large and dictionary
//! strings become plain strings. Each file's schema is checked when it is opened.

use super::error::{truncate, Cell, Row};
use super::files::{self, DataFile};
use super::time::MICROS_PER_DAY;
use super::{arrow_schema, BatchReader, DataError, DEFAULT_BATCH_ROWS};
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type,
    UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, ArrowPrimitiveType, PrimitiveArray, RecordBatch, RecordBatchOptions, StringArray};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use mlops_compiler::model::{Column, ColumnType, Source};
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ProjectionMask;
use std::fmt::Display;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

/// One file being read.
struct OpenFile {
    reader: ParquetRecordBatchReader,
    display: String,
    /// Position of each declared column in the projected batches.
    positions: Vec<usize>,
    /// Rows of this file read so far, for row indexes in messages.
    row: u64,
}

/// Reads the files of a parquet source in order.
pub(crate) struct ParquetReader {
    source: Source,
    address: String,
    schema: SchemaRef,
    files: Vec<DataFile>,
    next_file: usize,
    current: Option<OpenFile>,
    done: bool,
}

impl ParquetReader {
    /// Resolves the files and opens the first, so a schema mismatch there is reported at once.
    pub(crate) fn open(source: &Source, address: &str, root: &Path) -> Result<ParquetReader, DataError> {
        let files = files::resolve(source.path.as_deref(), address, root)?;
        let mut reader = ParquetReader {
            source: source.clone(),
            address: address.to_string(),
            schema: arrow_schema(source),
            files,
            next_file: 0,
            current: None,
            done: false,
        };
        reader.current = Some(reader.open_next()?);
        Ok(reader)
    }

    fn open_next(&mut self) -> Result<OpenFile, DataError> {
        let file = &self.files[self.next_file];
        self.next_file += 1;
        let parquet_error =
            |source| DataError::Parquet { address: self.address.clone(), path: file.display.clone(), source };
        let handle = File::open(&file.path).map_err(|source| DataError::Io {
            address: self.address.clone(),
            path: file.display.clone(),
            source,
        })?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(handle).map_err(parquet_error)?;
        let file_schema = builder.schema().clone();
        let mut roots = Vec::with_capacity(self.source.columns.len());
        for c in &self.source.columns {
            let Ok(i) = file_schema.index_of(&c.name) else {
                return Err(DataError::MissingColumn {
                    address: self.address.clone(),
                    origin: file.display.clone(),
                    column: c.name.clone(),
                    found: file_schema.fields().iter().map(|f| f.name().clone()).collect(),
                });
            };
            let found = file_schema.field(i).data_type();
            if !compatible(found, c.ty) {
                return Err(DataError::IncompatibleType {
                    address: self.address.clone(),
                    origin: file.display.clone(),
                    column: c.name.clone(),
                    found: found.to_string(),
                    expected: c.ty,
                });
            }
            roots.push(i);
        }
        // Projected batches hold the chosen top-level columns in file order, once each.
        let mut projected = roots.clone();
        projected.sort_unstable();
        projected.dedup();
        let positions = roots.iter().map(|r| projected.binary_search(r).unwrap_or_default()).collect();
        let mask = ProjectionMask::roots(builder.parquet_schema(), projected);
        let reader =
            builder.with_projection(mask).with_batch_size(DEFAULT_BATCH_ROWS).build().map_err(parquet_error)?;
        Ok(OpenFile { reader, display: file.display.clone(), positions, row: 0 })
    }

    fn read(&mut self) -> Result<Option<RecordBatch>, DataError> {
        loop {
            let Some(file) = self.current.as_mut() else {
                if self.next_file == self.files.len() {
                    return Ok(None);
                }
                self.current = Some(self.open_next()?);
                continue;
            };
            let Some(batch) = file.reader.next() else {
                self.current = None;
                continue;
            };
            let batch = batch.map_err(|e| DataError::Parquet {
                address: self.address.clone(),
                path: file.display.clone(),
                source: e.into(),
            })?;
            let first_row = file.row;
            file.row += batch.num_rows() as u64;
            let mut arrays = Vec::with_capacity(self.source.columns.len());
            for (column, &pos) in self.source.columns.iter().zip(&file.positions) {
                let at = |index: usize| {
                    Box::new(Cell {
                        origin: file.display.clone(),
                        row: Row::Index(first_row + index as u64),
                        column: column.name.clone(),
                    })
                };
                arrays.push(convert_checked(batch.column(pos), column).map_err(|failure| match failure {
                    Failure::Type(found) => DataError::IncompatibleType {
                        address: self.address.clone(),
                        origin: file.display.clone(),
                        column: column.name.clone(),
                        found,
                        expected: column.ty,
                    },
                    Failure::Null(index) => {
                        DataError::Null { address: self.address.clone(), cell: at(index), expected: column.ty }
                    }
                    Failure::Value { index, value, reason } => DataError::Value {
                        address: self.address.clone(),
                        cell: at(index),
                        value,
                        expected: column.ty,
                        reason,
                    },
                })?);
            }
            let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
            return RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)
                .map(Some)
                .map_err(|source| DataError::Arrow { address: self.address.clone(), source });
        }
    }
}

impl Iterator for ParquetReader {
    type Item = Result<RecordBatch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let out = self.read();
        if !matches!(out, Ok(Some(_))) {
            self.done = true;
        }
        out.transpose()
    }
}

impl BatchReader for ParquetReader {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

/// Can a stored column of type `found` be read as `ty`?
fn compatible(found: &DataType, ty: ColumnType) -> bool {
    let is_text = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    match ty {
        ColumnType::String | ColumnType::Category => {
            is_text(found) || matches!(found, DataType::Dictionary(_, v) if is_text(v))
        }
        ColumnType::Int => found.is_integer(),
        ColumnType::Float => matches!(found, DataType::Float32 | DataType::Float64) || found.is_integer(),
        ColumnType::Bool => matches!(found, DataType::Boolean),
        ColumnType::Timestamp => matches!(found, DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64),
    }
}

/// Why a column could not be converted.
enum Failure {
    /// The array's type cannot become the declared one (its name).
    Type(String),
    /// A null at this index in a non-nullable column.
    Null(usize),
    /// The value at this index does not fit.
    Value { index: usize, value: String, reason: String },
}

/// Converts a column and checks nulls and finiteness against the declaration.
fn convert_checked(array: &ArrayRef, column: &Column) -> Result<ArrayRef, Failure> {
    let out = convert(array, column.ty)?;
    if !column.nullable && out.null_count() > 0 {
        return Err(Failure::Null((0..out.len()).find(|&i| out.is_null(i)).unwrap_or_default()));
    }
    if let Some(floats) = out.as_primitive_opt::<Float64Type>() {
        if let Some((index, x)) =
            floats.iter().enumerate().find_map(|(i, x)| x.filter(|x| !x.is_finite()).map(|x| (i, x)))
        {
            return Err(Failure::Value {
                index,
                value: x.to_string(),
                reason: "not a finite number; store a missing value as null".to_string(),
            });
        }
    }
    Ok(out)
}

fn convert(array: &ArrayRef, ty: ColumnType) -> Result<ArrayRef, Failure> {
    let dt = array.data_type();
    let wrong = || Failure::Type(dt.to_string());
    Ok(match (ty, dt) {
        (ColumnType::String | ColumnType::Category, _) => Arc::new(strings(array.as_ref()).ok_or_else(wrong)?),
        (ColumnType::Int, DataType::Int64) => array.clone(),
        (ColumnType::Int, _) => Arc::new(widen_int(array.as_ref()).ok_or_else(wrong)??),
        (ColumnType::Float, DataType::Float64) => array.clone(),
        (ColumnType::Float, DataType::Float32) => {
            Arc::new(prim::<Float32Type>(array)?.unary::<_, Float64Type>(f64::from))
        }
        (ColumnType::Float, _) => {
            // Integers as floats: exact up to 2^53, which covers every count and id in practice.
            let ints = widen_int(array.as_ref()).ok_or_else(wrong)??;
            Arc::new(ints.unary::<_, Float64Type>(|v| v as f64))
        }
        (ColumnType::Bool, DataType::Boolean) => array.clone(),
        (ColumnType::Timestamp, DataType::Timestamp(unit, _)) => {
            // Arrow timestamps count from the epoch in UTC whatever their zone; a zone-less
            // one is wall-clock time, read as UTC.
            let micros: PrimitiveArray<TimestampMicrosecondType> = match unit {
                TimeUnit::Second => {
                    try_map::<TimestampSecondType, _>(array, |v| v.checked_mul(1_000_000), "out of range")?
                }
                TimeUnit::Millisecond => {
                    try_map::<TimestampMillisecondType, _>(array, |v| v.checked_mul(1_000), "out of range")?
                }
                TimeUnit::Microsecond => prim::<TimestampMicrosecondType>(array)?.clone(),
                TimeUnit::Nanosecond => prim::<TimestampNanosecondType>(array)?.unary(|v: i64| v.div_euclid(1_000)),
            };
            Arc::new(micros.with_timezone("UTC"))
        }
        (ColumnType::Timestamp, DataType::Date32) => Arc::new(
            try_map::<Date32Type, _>(array, |d| i64::from(d).checked_mul(MICROS_PER_DAY), "out of range")?
                .with_timezone("UTC"),
        ),
        (ColumnType::Timestamp, DataType::Date64) => {
            Arc::new(try_map::<Date64Type, _>(array, |ms| ms.checked_mul(1_000), "out of range")?.with_timezone("UTC"))
        }
        _ => return Err(wrong()),
    })
}

fn prim<T: ArrowPrimitiveType>(array: &ArrayRef) -> Result<&PrimitiveArray<T>, Failure> {
    array.as_primitive_opt::<T>().ok_or_else(|| Failure::Type(array.data_type().to_string()))
}

/// Maps every non-null value to a microsecond timestamp, or fails at the first that does not fit.
fn try_map<T, F>(array: &ArrayRef, f: F, reason: &str) -> Result<PrimitiveArray<TimestampMicrosecondType>, Failure>
where
    T: ArrowPrimitiveType,
    T::Native: Display,
    F: Fn(T::Native) -> Option<i64>,
{
    let a = prim::<T>(array)?;
    let mut out = Vec::with_capacity(a.len());
    for (index, v) in a.iter().enumerate() {
        out.push(match v {
            None => None,
            Some(v) => Some(f(v).ok_or_else(|| Failure::Value {
                index,
                value: truncate(&v.to_string()),
                reason: reason.to_string(),
            })?),
        });
    }
    Ok(out.into_iter().collect())
}

/// Any integer array as Int64 (`None` if it is not an integer array); UInt64 values above
/// i64::MAX fail.
fn widen_int(array: &dyn Array) -> Option<Result<PrimitiveArray<Int64Type>, Failure>> {
    fn widen<T: ArrowPrimitiveType>(a: &dyn Array, f: impl Fn(T::Native) -> i64) -> Option<PrimitiveArray<Int64Type>> {
        a.as_primitive_opt::<T>().map(|p| p.unary::<_, Int64Type>(f))
    }
    Some(Ok(match array.data_type() {
        DataType::Int8 => widen::<Int8Type>(array, i64::from)?,
        DataType::Int16 => widen::<Int16Type>(array, i64::from)?,
        DataType::Int32 => widen::<Int32Type>(array, i64::from)?,
        DataType::Int64 => array.as_primitive_opt::<Int64Type>()?.clone(),
        DataType::UInt8 => widen::<UInt8Type>(array, i64::from)?,
        DataType::UInt16 => widen::<UInt16Type>(array, i64::from)?,
        DataType::UInt32 => widen::<UInt32Type>(array, i64::from)?,
        DataType::UInt64 => {
            let a = array.as_primitive_opt::<UInt64Type>()?;
            let mut out = Vec::with_capacity(a.len());
            for (index, v) in a.iter().enumerate() {
                match v.map(i64::try_from) {
                    None => out.push(None),
                    Some(Ok(v)) => out.push(Some(v)),
                    Some(Err(_)) => {
                        return Some(Err(Failure::Value {
                            index,
                            value: v.unwrap_or_default().to_string(),
                            reason: "out of range for a 64-bit signed integer".to_string(),
                        }))
                    }
                }
            }
            out.into_iter().collect()
        }
        _ => return None,
    }))
}

/// Any string-like array (plain, large, view, or a dictionary of those) as a plain string array.
fn strings(array: &dyn Array) -> Option<StringArray> {
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string_opt::<i32>()?.clone()),
        DataType::LargeUtf8 => Some(array.as_string_opt::<i64>()?.iter().collect()),
        DataType::Utf8View => Some(array.as_string_view_opt()?.iter().collect()),
        DataType::Dictionary(_, _) => {
            let dict = array.as_any_dictionary_opt()?;
            let values = strings(dict.values().as_ref())?;
            if values.is_empty() {
                // No values means every key is null (anything else is an invalid array).
                return Some(StringArray::new_null(array.len()));
            }
            let keys = dict.normalized_keys();
            let key_nulls = dict.keys();
            Some(
                keys.iter()
                    .enumerate()
                    .map(|(i, &k)| (!key_nulls.is_null(i) && values.is_valid(k)).then(|| values.value(k)))
                    .collect(),
            )
        }
        _ => None,
    }
}
