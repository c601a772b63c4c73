//! CSV files. In: a csv source (path or glob, delimiter, header, declared columns). Out: batches
//! of at most [`DEFAULT_BATCH_ROWS`] rows, parsed record by record so a file is never loaded
//! whole. Batches may span files of a glob; the header of each file is matched by name.

use super::builder::{BatchBuilder, ColumnBuilder};
use super::error::{truncate, Cell, Row};
use super::files::{self, DataFile};
use super::time::parse_timestamp;
use super::{arrow_schema, BatchReader, DataError, DEFAULT_BATCH_ROWS};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use mlops_compiler::model::{Column, Source};
use std::fs::File;
use std::path::Path;

/// One file being read.
struct OpenFile {
    reader: csv::Reader<File>,
    /// Name for messages.
    display: String,
    /// Field index of each declared column.
    fields: Vec<usize>,
    /// Number of fields every record must have (the header's, or the first record's).
    width: Option<usize>,
}

/// Reads the files of a csv source in order.
pub(crate) struct CsvReader {
    source: Source,
    address: String,
    delimiter: u8,
    files: Vec<DataFile>,
    next_file: usize,
    current: Option<OpenFile>,
    record: csv::ByteRecord,
    batch: BatchBuilder,
    done: bool,
}

impl CsvReader {
    /// Resolves the files and opens the first, so a missing column there is reported at once.
    pub(crate) fn open(source: &Source, address: &str, root: &Path) -> Result<CsvReader, DataError> {
        let delimiter = match source.delimiter.as_bytes() {
            [] => b',',
            [b] if b.is_ascii() => *b,
            _ => {
                return Err(DataError::Config {
                    address: address.to_string(),
                    message: format!(
                        "delimiter `{}` is not a single ASCII character; use one such as `,`, `;`, `|` or a tab",
                        source.delimiter.escape_default()
                    ),
                })
            }
        };
        let files = files::resolve(source.path.as_deref(), address, root)?;
        let mut reader = CsvReader {
            source: source.clone(),
            address: address.to_string(),
            delimiter,
            files,
            next_file: 0,
            current: None,
            record: csv::ByteRecord::new(),
            batch: BatchBuilder::new(source, DEFAULT_BATCH_ROWS),
            done: false,
        };
        reader.current = Some(reader.open_next()?);
        Ok(reader)
    }

    /// Opens the next file and maps its header to the declared columns.
    fn open_next(&mut self) -> Result<OpenFile, DataError> {
        let file = &self.files[self.next_file];
        self.next_file += 1;
        let handle = File::open(&file.path).map_err(|source| DataError::Io {
            address: self.address.clone(),
            path: file.display.clone(),
            source,
        })?;
        // `flexible` so that a short or long record is reported by us, with both counts.
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .has_headers(self.source.header)
            .flexible(true)
            .from_reader(handle);
        if !self.source.header {
            let fields = (0..self.source.columns.len()).collect();
            return Ok(OpenFile { reader, display: file.display.clone(), fields, width: None });
        }

        let header = reader.headers().map_err(|e| csv_error(&self.address, &file.display, &e))?;
        let found: Vec<String> = header
            .iter()
            .enumerate()
            // Spreadsheets like to start files with a byte-order mark and pad names with spaces.
            .map(|(i, h)| if i == 0 { h.trim_start_matches('\u{feff}') } else { h }.trim().to_string())
            .collect();
        let mut fields = Vec::with_capacity(self.source.columns.len());
        for c in &self.source.columns {
            match found.iter().position(|h| *h == c.name) {
                Some(i) => fields.push(i),
                None => {
                    return Err(DataError::MissingColumn {
                        address: self.address.clone(),
                        origin: file.display.clone(),
                        column: c.name.clone(),
                        found,
                    })
                }
            }
        }
        Ok(OpenFile { reader, display: file.display.clone(), fields, width: Some(found.len()) })
    }

    /// Reads records into the batch until it is full or the files run out.
    fn fill(&mut self) -> Result<Option<RecordBatch>, DataError> {
        while self.batch.rows() < DEFAULT_BATCH_ROWS {
            let Some(file) = self.current.as_mut() else {
                if self.next_file == self.files.len() {
                    break;
                }
                self.current = Some(self.open_next()?);
                continue;
            };
            let more = file
                .reader
                .read_byte_record(&mut self.record)
                .map_err(|e| csv_error(&self.address, &file.display, &e))?;
            if !more {
                self.current = None;
                continue;
            }
            read_record(file, &self.record, &self.source.columns, &mut self.batch, &self.address)?;
        }
        if self.batch.rows() == 0 {
            return Ok(None);
        }
        self.batch.finish(&self.address).map(Some)
    }
}

impl Iterator for CsvReader {
    type Item = Result<RecordBatch, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let out = self.fill();
        if !matches!(out, Ok(Some(_))) {
            self.done = true;
        }
        out.transpose()
    }
}

impl BatchReader for CsvReader {
    fn schema(&self) -> SchemaRef {
        arrow_schema(&self.source)
    }
}

fn csv_error(address: &str, display: &str, e: &csv::Error) -> DataError {
    DataError::Csv {
        address: address.to_string(),
        path: display.to_string(),
        line: e.position().map_or(0, csv::Position::line),
        message: match e.kind() {
            csv::ErrorKind::Utf8 { err, .. } => format!("header is not valid UTF-8 ({err})"),
            _ => e.to_string(),
        },
    }
}

/// Appends one record's declared fields to the batch.
fn read_record(
    file: &mut OpenFile,
    record: &csv::ByteRecord,
    columns: &[Column],
    batch: &mut BatchBuilder,
    address: &str,
) -> Result<(), DataError> {
    let line = record.position().map_or(0, csv::Position::line);
    // Without a header the first record sets the width every other record must have.
    let width = *file.width.get_or_insert(record.len());
    if record.len() != width || file.fields.iter().any(|&f| f >= width) {
        let needed = file.fields.iter().max().map_or(0, |m| m + 1).max(width);
        return Err(DataError::Csv {
            address: address.to_string(),
            path: file.display.clone(),
            line,
            message: format!("the record has {} fields, expected {needed}", record.len()),
        });
    }
    for (i, (column, &field)) in columns.iter().zip(&file.fields).enumerate() {
        let raw = record.get(field).unwrap_or_default();
        if let Err(problem) = append(&mut batch.columns[i], column, raw) {
            let cell =
                Box::new(Cell { origin: file.display.clone(), row: Row::Line(line), column: column.name.clone() });
            let address = address.to_string();
            return Err(match problem {
                Problem::Null => DataError::Null { address, cell, expected: column.ty },
                Problem::Bad { value, reason } => {
                    DataError::Value { address, cell, value, expected: column.ty, reason }
                }
            });
        }
    }
    batch.end_row();
    Ok(())
}

/// What is wrong with one field.
enum Problem {
    Null,
    Bad { value: String, reason: String },
}

fn bad(value: &str, reason: impl Into<String>) -> Problem {
    Problem::Bad { value: truncate(value), reason: reason.into() }
}

/// Parses one field as the column's type and appends it.
fn append(builder: &mut ColumnBuilder, column: &Column, raw: &[u8]) -> Result<(), Problem> {
    let text = std::str::from_utf8(raw).map_err(|_| bad(&String::from_utf8_lossy(raw), "not valid UTF-8"))?;
    // Strings are kept as written; other values may be padded (`1, 2, 3` is common).
    let value = if matches!(builder, ColumnBuilder::Utf8(_)) { text } else { text.trim() };
    if value.is_empty() {
        if !column.nullable {
            return Err(Problem::Null);
        }
        builder.append_null();
        return Ok(());
    }
    match builder {
        ColumnBuilder::Utf8(b) => b.append_value(value),
        ColumnBuilder::Int(b) => b.append_value(parse_int(value)?),
        ColumnBuilder::Float(b) => b.append_value(parse_float(value)?),
        ColumnBuilder::Bool(b) => b.append_value(parse_bool(value)?),
        ColumnBuilder::Timestamp(b) => b.append_value(parse_timestamp(value).map_err(|reason| bad(value, reason))?),
    }
    Ok(())
}

fn parse_int(value: &str) -> Result<i64, Problem> {
    value.parse::<i64>().map_err(|e| {
        let reason = match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                "out of range for a 64-bit integer"
            }
            _ if value.parse::<f64>().is_ok_and(f64::is_finite) => {
                "not a whole number; declare the column `float` if it has fractions"
            }
            _ => "not a number",
        };
        bad(value, reason)
    })
}

fn parse_float(value: &str) -> Result<f64, Problem> {
    match value.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        // Rust also parses "NaN" and "inf"; a model treats those as data, so they are refused.
        Ok(_) => Err(bad(value, "not a finite number; leave the field empty for a missing value")),
        Err(_) => Err(bad(value, "not a number")),
    }
}

fn parse_bool(value: &str) -> Result<bool, Problem> {
    const TRUE: [&str; 3] = ["true", "yes", "1"];
    const FALSE: [&str; 3] = ["false", "no", "0"];
    if TRUE.iter().any(|t| value.eq_ignore_ascii_case(t)) {
        Ok(true)
    } else if FALSE.iter().any(|f| value.eq_ignore_ascii_case(f)) {
        Ok(false)
    } else {
        Err(bad(value, "expected true/false, yes/no or 1/0"))
    }
}
