//! Parquet sources read from files written here with the parquet crate's ArrowWriter: type
//! conversions, projection, globs, batch boundaries and the schema and value errors.

mod support;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, DictionaryArray, Float32Array, Float64Array, Int16Array, Int32Array,
    Int64Array, LargeStringArray, RecordBatch, StringArray, TimestampMillisecondArray, TimestampNanosecondArray,
    UInt64Array,
};
use mlops_compiler::model::{ColumnType, SourceFormat};
use mlops_runtime::data::{self, Cell, DataError, Row, DEFAULT_BATCH_ROWS};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use std::path::Path;
use std::sync::Arc;
use support::{file_source, read_all, read_error};

const ADDR: &str = "source.readings";
/// 2024-01-31T12:00:00Z.
const NOON_MS: i64 = 1_706_702_400_000;
const NOON_US: i64 = NOON_MS * 1_000;

/// Writes `columns` as one Parquet file, `rows_per_group` rows to a row group.
fn write(root: &Path, rel: &str, columns: Vec<(&str, ArrayRef)>, rows_per_group: usize) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let props = WriterProperties::builder().set_max_row_group_row_count(Some(rows_per_group)).build();
    let mut writer = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), batch.schema(), Some(props)).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
}

fn parquet(path: &str, spec: &[(&str, &str)]) -> mlops_compiler::model::Source {
    file_source(SourceFormat::Parquet, path, spec)
}

#[test]
fn compatible_types_are_converted_to_the_declared_ones() {
    let dir = tempfile::tempdir().unwrap();
    let dict: DictionaryArray<Int32Type> = vec![Some("visa"), None, Some("amex"), Some("visa")].into_iter().collect();
    write(
        dir.path(),
        "r.parquet",
        vec![
            ("unused", Arc::new(Int64Array::from(vec![0, 0, 0, 0])) as ArrayRef),
            ("count", Arc::new(Int32Array::from(vec![1, -2, i32::MAX, 4]))),
            ("small", Arc::new(Int16Array::from(vec![Some(7), None, Some(-7), Some(0)]))),
            ("ratio", Arc::new(Float32Array::from(vec![0.5, -1.25, 3.0, 0.0]))),
            ("big", Arc::new(UInt64Array::from(vec![0, 1, i64::MAX as u64, 3]))),
            (
                "at",
                Arc::new(
                    TimestampMillisecondArray::from(vec![NOON_MS, NOON_MS + 1, NOON_MS - 1, 0]).with_timezone("+02:00"),
                ),
            ),
            ("at_ns", Arc::new(TimestampNanosecondArray::from(vec![1_999, -1, 0, 5_000]))),
            ("day", Arc::new(Date32Array::from(vec![19_753, 0, -1, 1]))),
            ("card", Arc::new(dict)),
            ("note", Arc::new(LargeStringArray::from(vec!["a", "b", "c", "d"]))),
            ("ok", Arc::new(BooleanArray::from(vec![true, false, true, false]))),
        ],
        1024,
    );
    // Declared in another order than the file, and without `unused`.
    let source = parquet(
        "r.parquet",
        &[
            ("card", "category?"),
            ("at", "timestamp"),
            ("count", "int"),
            ("small", "int?"),
            ("ratio", "float"),
            ("big", "int"),
            ("at_ns", "timestamp"),
            ("day", "timestamp"),
            ("note", "string"),
            ("ok", "bool"),
        ],
    );
    let batches = read_all(&source, ADDR, dir.path()).unwrap();
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(b.schema(), data::arrow_schema(&source));

    let card = b.column(0).as_string::<i32>();
    assert_eq!(card.iter().collect::<Vec<_>>(), [Some("visa"), None, Some("amex"), Some("visa")]);
    // The zone changes how a timestamp is shown, not the instant it stands for.
    assert_eq!(
        b.column(1).as_primitive::<TimestampMicrosecondType>().values().to_vec(),
        [NOON_US, NOON_US + 1_000, NOON_US - 1_000, 0]
    );
    assert_eq!(b.column(2).as_primitive::<Int64Type>().values().to_vec(), [1, -2, i64::from(i32::MAX), 4]);
    assert_eq!(b.column(3).as_primitive::<Int64Type>().iter().collect::<Vec<_>>(), [Some(7), None, Some(-7), Some(0)]);
    assert_eq!(b.column(4).as_primitive::<Float64Type>().values().to_vec(), [0.5, -1.25, 3.0, 0.0]);
    assert_eq!(b.column(5).as_primitive::<Int64Type>().value(2), i64::MAX);
    // Nanoseconds are floored to microseconds, also before the epoch.
    assert_eq!(b.column(6).as_primitive::<TimestampMicrosecondType>().values().to_vec(), [1, -1, 0, 5]);
    assert_eq!(
        b.column(7).as_primitive::<TimestampMicrosecondType>().values().to_vec(),
        [NOON_US - 12 * 3_600_000_000, 0, -86_400_000_000, 86_400_000_000]
    );
    assert_eq!(b.column(8).as_string::<i32>().value(3), "d");
    assert!(!b.column(9).as_boolean().value(1));
}

#[test]
fn integers_may_be_read_as_floats() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "i.parquet", vec![("n", Arc::new(Int32Array::from(vec![3, -4])) as ArrayRef)], 1024);
    let batches = read_all(&parquet("i.parquet", &[("n", "float")]), ADDR, dir.path()).unwrap();
    assert_eq!(batches[0].column(0).as_primitive::<Float64Type>().values().to_vec(), [3.0, -4.0]);
}

#[test]
fn large_files_and_globs_stream_in_bounded_batches_with_row_indexes_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let n = 70_000;
    let ids: Vec<Option<i64>> = (0..n).map(|i| if i == 66_000 { None } else { Some(i) }).collect();
    write(dir.path(), "d/b.parquet", vec![("id", Arc::new(Int64Array::from(ids)) as ArrayRef)], 20_000);
    write(dir.path(), "d/a.parquet", vec![("id", Arc::new(Int64Array::from(vec![-2i64, -1])) as ArrayRef)], 1024);

    let batches = read_all(&parquet("d/*.parquet", &[("id", "int?")]), ADDR, dir.path()).unwrap();
    assert!(batches.iter().all(|b| b.num_rows() <= DEFAULT_BATCH_ROWS));
    let ids: Vec<Option<i64>> = batches.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().iter()).collect();
    assert_eq!(ids.len(), 70_002);
    assert_eq!(&ids[..3], [Some(-2), Some(-1), Some(0)]); // a.parquet first
    assert_eq!(ids[66_002], None);
    assert_eq!(ids[70_001], Some(69_999));

    // Declared non-nullable, the null is reported at its index in its own file.
    let err = read_error(&parquet("d/*.parquet", &[("id", "int")]), ADDR, dir.path());
    match &err {
        DataError::Null { address, cell, expected } => {
            assert_eq!(address, ADDR);
            assert_eq!(**cell, Cell { origin: "d/b.parquet".into(), row: Row::Index(66_000), column: "id".into() });
            assert_eq!(*expected, ColumnType::Int);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("d/b.parquet row 66000 (counting from 0), column `id`: null in non-nullable"));
}

#[test]
fn a_missing_column_is_named_with_the_columns_found() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "m.parquet",
        vec![
            ("sensor", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
            ("temp", Arc::new(Float64Array::from(vec![1.0]))),
        ],
        1024,
    );
    let err = data::open(&parquet("m.parquet", &[("sensor", "string"), ("temperature", "float")]), ADDR, dir.path())
        .err()
        .expect("open fails");
    match &err {
        DataError::MissingColumn { origin, column, found, .. } => {
            assert_eq!((origin.as_str(), column.as_str()), ("m.parquet", "temperature"));
            assert_eq!(found, &["sensor", "temp"]);
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn an_incompatible_type_names_both_types() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "t.parquet", vec![("temp", Arc::new(StringArray::from(vec!["hot"])) as ArrayRef)], 1024);
    let err = data::open(&parquet("t.parquet", &[("temp", "float")]), ADDR, dir.path()).err().expect("open fails");
    match &err {
        DataError::IncompatibleType { column, found, expected, .. } => {
            assert_eq!((column.as_str(), found.as_str(), *expected), ("temp", "Utf8", ColumnType::Float));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("column `temp` has type Utf8, which cannot be read as float"), "{err}");

    write(dir.path(), "f.parquet", vec![("n", Arc::new(Float64Array::from(vec![1.5])) as ArrayRef)], 1024);
    let err = data::open(&parquet("f.parquet", &[("n", "int")]), ADDR, dir.path()).err().expect("open fails");
    assert!(matches!(&err, DataError::IncompatibleType { found, .. } if found == "Float64"), "{err:?}");
}

#[test]
fn values_that_do_not_fit_are_reported_at_their_row() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "u.parquet", vec![("n", Arc::new(UInt64Array::from(vec![1, u64::MAX])) as ArrayRef)], 1024);
    let err = read_error(&parquet("u.parquet", &[("n", "int")]), ADDR, dir.path());
    match &err {
        DataError::Value { cell, value, expected, reason, .. } => {
            assert_eq!(cell.row, Row::Index(1));
            assert_eq!((value.as_str(), *expected), ("18446744073709551615", ColumnType::Int));
            assert!(reason.contains("out of range"), "{reason}");
        }
        other => panic!("unexpected {other:?}"),
    }

    write(
        dir.path(),
        "n.parquet",
        vec![("x", Arc::new(Float64Array::from(vec![1.0, 2.0, f64::NAN])) as ArrayRef)],
        1024,
    );
    let err = read_error(&parquet("n.parquet", &[("x", "float?")]), ADDR, dir.path());
    assert!(
        matches!(&err, DataError::Value { cell, value, .. } if cell.row == Row::Index(2) && value == "NaN"),
        "{err:?}"
    );
}

#[test]
fn a_file_that_is_not_parquet_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x.parquet"), "id,amount\n1,2\n").unwrap();
    let err = data::open(&parquet("x.parquet", &[("id", "int")]), ADDR, dir.path()).err().expect("fails");
    assert!(matches!(&err, DataError::Parquet { path, .. } if path == "x.parquet"), "{err:?}");
    assert!(err.to_string().starts_with("source.readings: x.parquet: cannot read Parquet"), "{err}");
}
