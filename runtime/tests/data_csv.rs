//! CSV sources read from real files: values, nulls, globs, batch boundaries, every error a user
//! can cause (with the line it points at), and fingerprints.

mod support;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use mlops_compiler::model::{ColumnType, SourceFormat};
use mlops_runtime::data::{self, Cell, DataError, Row, DEFAULT_BATCH_ROWS};
use std::path::Path;
use support::{file_source, read_all, read_error};

const ADDR: &str = "source.transactions";
/// 2024-01-31T12:00:00Z in microseconds.
const NOON: i64 = 1_706_702_400_000_000;

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn csv(path: &str, spec: &[(&str, &str)]) -> mlops_compiler::model::Source {
    file_source(SourceFormat::Csv, path, spec)
}

fn one_batch(batches: Vec<RecordBatch>) -> RecordBatch {
    assert_eq!(batches.len(), 1, "expected one batch");
    batches.into_iter().next().unwrap()
}

#[test]
fn reads_every_type_by_header_name_ignoring_extra_columns() {
    let dir = tempfile::tempdir().unwrap();
    // Columns in another order than declared, plus one that is not declared.
    write(
        dir.path(),
        "data/tx.csv",
        "\u{feff}ignored,event_time,amount,account_id,n,is_fraud,merchant\n\
         x,2024-01-31T12:00:00Z,12.5,a1,7,true,shop\n\
         x,2024-01-31 12:00:00.25,-3e2,a2, -4 ,NO,\"caf\u{e9}, \"\"the\"\" one\"\n\
         x,2024-01-31T14:00:00+02:00,,a3,,1,\n\
         x,2024-01-31,0,a4,9223372036854775807,Yes,\n",
    );
    let source = csv(
        "data/tx.csv",
        &[
            ("account_id", "string"),
            ("amount", "float?"),
            ("merchant", "category?"),
            ("is_fraud", "bool"),
            ("n", "int?"),
            ("event_time", "timestamp"),
        ],
    );
    let reader = data::open(&source, ADDR, dir.path()).unwrap();
    assert_eq!(reader.schema(), data::arrow_schema(&source));
    let batch = one_batch(reader.collect::<Result<_, _>>().unwrap());
    assert_eq!(batch.schema(), data::arrow_schema(&source));
    assert_eq!(batch.num_rows(), 4);

    let ids: Vec<&str> = batch.column(0).as_string::<i32>().iter().map(Option::unwrap).collect();
    assert_eq!(ids, ["a1", "a2", "a3", "a4"]);
    let amount = batch.column(1).as_primitive::<Float64Type>();
    assert_eq!((amount.value(0), amount.value(1), amount.is_null(2), amount.value(3)), (12.5, -300.0, true, 0.0));
    let merchant = batch.column(2).as_string::<i32>();
    assert_eq!(merchant.value(0), "shop");
    assert_eq!(merchant.value(1), "caf\u{e9}, \"the\" one");
    assert!(merchant.is_null(2) && merchant.is_null(3));
    let fraud: Vec<bool> = batch.column(3).as_boolean().iter().map(Option::unwrap).collect();
    assert_eq!(fraud, [true, false, true, true]);
    let n = batch.column(4).as_primitive::<Int64Type>();
    assert_eq!((n.value(0), n.value(1), n.is_null(2), n.value(3)), (7, -4, true, i64::MAX));
    let t = batch.column(5).as_primitive::<TimestampMicrosecondType>();
    assert_eq!(t.values().to_vec(), [NOON, NOON + 250_000, NOON, NOON - 12 * 3_600_000_000]);
}

#[test]
fn without_a_header_fields_are_in_declared_order_with_the_declared_delimiter() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "d.csv", "a;1;2024-01-31T12:00:00Z\nb;2;2024-01-31T12:00:01Z\n");
    let mut source = csv("d.csv", &[("k", "string"), ("v", "int"), ("t", "timestamp")]);
    source.header = false;
    source.delimiter = ";".into();
    let batch = one_batch(read_all(&source, ADDR, dir.path()).unwrap());
    assert_eq!(batch.column(1).as_primitive::<Int64Type>().values().to_vec(), [1, 2]);
    assert_eq!(batch.column(2).as_primitive::<TimestampMicrosecondType>().value(1), NOON + 1_000_000);
}

#[test]
fn a_glob_reads_files_in_sorted_order_in_full_batches_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let part = |name: &str, ids: std::ops::Range<i64>| {
        let mut text = String::from("id,score\n");
        for i in ids {
            text.push_str(&format!("{i},{}.5\n", i % 100));
        }
        write(dir.path(), &format!("data/{name}"), &text);
    };
    // Written out of order: sorted order is what counts. 70,000 rows in all.
    part("part-2.csv", 40_000..70_000);
    part("part-1.csv", 0..40_000);
    write(dir.path(), "data/notes.txt", "not data\n");
    let source = csv("data/part-?.csv", &[("id", "int"), ("score", "float")]);
    let batches = read_all(&source, ADDR, dir.path()).unwrap();
    let sizes: Vec<usize> = batches.iter().map(RecordBatch::num_rows).collect();
    assert_eq!(sizes, [DEFAULT_BATCH_ROWS, 70_000 - DEFAULT_BATCH_ROWS]);
    let ids: Vec<i64> =
        batches.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
    assert_eq!(ids, (0..70_000).collect::<Vec<_>>());
    assert_eq!(batches[1].column(1).as_primitive::<Float64Type>().value(0), 36.5);
    // id 65,536
}

#[test]
fn a_missing_column_is_named_with_the_columns_found() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "tx.csv", "account_id,amout\na,1\n");
    let source = csv("tx.csv", &[("account_id", "string"), ("amount", "float")]);
    let err = data::open(&source, ADDR, dir.path()).err().expect("open fails");
    match &err {
        DataError::MissingColumn { address, origin, column, found } => {
            assert_eq!((address.as_str(), origin.as_str(), column.as_str()), (ADDR, "tx.csv", "amount"));
            assert_eq!(found, &["account_id", "amout"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "source.transactions: tx.csv has no column `amount` (found: `account_id`, `amout`); rename the column in \
         the data or fix the source's `schema`"
    );
}

#[test]
fn a_missing_column_in_a_later_file_of_a_glob_is_reported_for_that_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "d/a.csv", "k,v\nx,1\n");
    write(dir.path(), "d/b.csv", "k,value\ny,2\n");
    let err = read_error(&csv("d/*.csv", &[("k", "string"), ("v", "int")]), ADDR, dir.path());
    assert!(matches!(&err, DataError::MissingColumn { origin, .. } if origin == "d/b.csv"), "{err}");
}

/// The value error of a one-column file whose lines are `lines`.
fn value_error(ty: &str, lines: &str) -> DataError {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "v.csv", &format!("id,x\n{lines}"));
    read_error(&csv("v.csv", &[("id", "int"), ("x", ty)]), ADDR, dir.path())
}

#[track_caller]
fn assert_value_error(err: &DataError, line: u64, value: &str, expected: ColumnType, reason: &str) {
    match err {
        DataError::Value { address, cell, value: v, expected: e, reason: r } => {
            assert_eq!(address, ADDR);
            assert_eq!(**cell, Cell { origin: "v.csv".into(), row: Row::Line(line), column: "x".into() });
            assert_eq!((v.as_str(), *e), (value, expected));
            assert!(r.contains(reason), "reason {r:?} lacks {reason:?}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn an_unparsable_value_is_reported_at_its_line() {
    // A quoted field spanning two lines comes first, so records and lines differ.
    let err = value_error("int", "1,5\n2,\"6\n\"\n3,7\n4,12abc\n5,8\n");
    assert_value_error(&err, 6, "12abc", ColumnType::Int, "not a number");
    assert_eq!(
        err.to_string(),
        "source.transactions: v.csv line 6, column `x`: `12abc` is not a valid int (not a number); fix the value, \
         or declare the column with a type that fits it"
    );
}

#[test]
fn a_value_of_the_wrong_type_says_what_would_fit() {
    let err = value_error("int", "1,2.5\n");
    assert_value_error(&err, 2, "2.5", ColumnType::Int, "declare the column `float`");
    assert_value_error(
        &value_error("int", "1,99999999999999999999\n"),
        2,
        "99999999999999999999",
        ColumnType::Int,
        "out of range",
    );
    assert_value_error(&value_error("bool", "1,true\n2,maybe\n"), 3, "maybe", ColumnType::Bool, "yes/no");
    assert_value_error(&value_error("float", "1,1.5\n2,abc\n"), 3, "abc", ColumnType::Float, "not a number");
}

#[test]
fn non_finite_floats_are_refused() {
    for (text, shown) in [("NaN", "NaN"), ("inf", "inf"), ("-Infinity", "-Infinity"), ("1e999", "1e999")] {
        let err = value_error("float?", &format!("1,{text}\n"));
        assert_value_error(&err, 2, shown, ColumnType::Float, "not a finite number");
    }
}

#[test]
fn a_bad_timestamp_lists_the_accepted_forms() {
    let err = value_error("timestamp", "1,2024-01-31T12:00:00Z\n2,31/01/2024\n");
    assert_value_error(&err, 3, "31/01/2024", ColumnType::Timestamp, "RFC 3339");
    let err = value_error("timestamp", "1,2023-02-29\n");
    assert_value_error(&err, 2, "2023-02-29", ColumnType::Timestamp, "day 29 does not exist in 2023-02");
}

#[test]
fn a_null_in_a_non_nullable_column_says_how_to_declare_it() {
    let err = value_error("float", "1,1.5\n2,\n");
    match &err {
        DataError::Null { cell, expected, .. } => {
            assert_eq!(cell.row, Row::Line(3));
            assert_eq!(*expected, ColumnType::Float);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("declare it `{ type = \"float\", nullable = true }`"), "{err}");
    // Blank text in a non-string column is also a null; in a string column it is a value.
    assert!(matches!(value_error("int", "1,  \n"), DataError::Null { .. }));
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "s.csv", "s\n  \n");
    let batch = one_batch(read_all(&csv("s.csv", &[("s", "string")]), ADDR, dir.path()).unwrap());
    assert_eq!(batch.column(0).as_string::<i32>().value(0), "  ");
}

#[test]
fn a_record_with_the_wrong_number_of_fields_is_malformed() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "m.csv", "a,b\n1,2\n3,4,5\n");
    let err = read_error(&csv("m.csv", &[("a", "int"), ("b", "int")]), ADDR, dir.path());
    match &err {
        DataError::Csv { path, line, message, .. } => {
            assert_eq!((path.as_str(), *line), ("m.csv", 3));
            assert!(message.contains("3 fields, expected 2"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
    // Without a header, a file narrower than the declaration is malformed too.
    write(dir.path(), "n.csv", "1\n");
    let mut source = csv("n.csv", &[("a", "int"), ("b", "int")]);
    source.header = false;
    assert!(matches!(read_error(&source, ADDR, dir.path()), DataError::Csv { line: 1, .. }));
}

#[test]
fn the_reader_stops_after_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "e.csv", "x\nbad\n1\n");
    let mut reader = data::open(&csv("e.csv", &[("x", "int")]), ADDR, dir.path()).unwrap();
    assert!(matches!(reader.next(), Some(Err(DataError::Value { .. }))));
    assert!(reader.next().is_none());
}

#[test]
fn a_glob_without_matches_and_a_missing_file_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "data/a.parquet", "");
    let err = data::open(&csv("data/*.csv", &[("x", "int")]), ADDR, dir.path()).err().expect("fails");
    assert!(matches!(&err, DataError::NoMatch { pattern, .. } if pattern == "data/*.csv"), "{err:?}");
    assert!(err.to_string().starts_with("source.transactions: no file matches `data/*.csv`"), "{err}");

    let err = data::open(&csv("data/missing.csv", &[("x", "int")]), ADDR, dir.path()).err().expect("fails");
    assert!(matches!(&err, DataError::Io { path, .. } if path == "data/missing.csv"), "{err:?}");

    let err = data::open(&csv("nope/*.csv", &[("x", "int")]), ADDR, dir.path()).err().expect("fails");
    assert!(matches!(&err, DataError::Io { path, .. } if path == "nope/"), "{err:?}");
}

#[test]
fn a_multi_byte_delimiter_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "d.csv", "x\n1\n");
    let mut source = csv("d.csv", &[("x", "int")]);
    source.delimiter = "→".into();
    let err = data::open(&source, ADDR, dir.path()).err().expect("fails");
    assert!(matches!(err, DataError::Config { .. }), "{err:?}");
}

#[test]
fn fingerprints_change_with_the_files_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "d/a.csv", "x\n1\n");
    write(dir.path(), "d/b.csv", "x\n2\n");
    let source = csv("d/*.csv", &[("x", "int")]);
    let first = data::fingerprint(&source, ADDR, dir.path()).unwrap();
    assert_eq!(first.len(), 64);
    assert_eq!(data::fingerprint(&source, ADDR, dir.path()).unwrap(), first);

    write(dir.path(), "d/b.csv", "x\n2\n3\n");
    let appended = data::fingerprint(&source, ADDR, dir.path()).unwrap();
    assert_ne!(appended, first);

    write(dir.path(), "d/c.csv", "x\n4\n");
    assert_ne!(data::fingerprint(&source, ADDR, dir.path()).unwrap(), appended);

    // Paths count as configured, not as absolute: the same files (same times) under another
    // configuration directory fingerprint alike.
    let moved = tempfile::tempdir().unwrap();
    for name in ["a.csv", "b.csv", "c.csv"] {
        let from = dir.path().join("d").join(name);
        write(moved.path(), &format!("d/{name}"), &std::fs::read_to_string(&from).unwrap());
        let modified = std::fs::metadata(&from).unwrap().modified().unwrap();
        std::fs::File::options()
            .write(true)
            .open(moved.path().join("d").join(name))
            .unwrap()
            .set_modified(modified)
            .unwrap();
    }
    assert_eq!(
        data::fingerprint(&source, ADDR, moved.path()).unwrap(),
        data::fingerprint(&source, ADDR, dir.path()).unwrap()
    );

    let err = data::fingerprint(&csv("none/*.csv", &[("x", "int")]), ADDR, dir.path()).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
}
