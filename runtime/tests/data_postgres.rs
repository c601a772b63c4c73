//! PostgreSQL sources read from a real server started for this test process
//! (`support::postgres`): tables, queries, type mapping, batch boundaries, the connection from
//! the environment, and the schema and null errors. Each test uses tables of its own.

mod support;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::RecordBatch;
use mlops_compiler::model::{ColumnType, Source, SourceFormat};
use mlops_runtime::data::{self, DataError, Row, DEFAULT_BATCH_ROWS};
use std::path::Path;
use support::postgres::TestPostgres;
use support::{read_all, read_error, source};

const ADDR: &str = "source.accounts";
/// 2024-01-31T12:00:00Z in microseconds.
const NOON: i64 = 1_706_702_400_000_000;

fn pg() -> &'static TestPostgres {
    TestPostgres::shared()
}

fn table(name: &str, spec: &[(&str, &str)]) -> Source {
    Source {
        table: Some(name.to_string()),
        connection: Some(pg().connection_string().to_string()),
        ..source(SourceFormat::Postgres, spec)
    }
}

fn query(sql: &str, spec: &[(&str, &str)]) -> Source {
    Source { table: None, query: Some(sql.to_string()), ..table("unused", spec) }
}

fn read(source: &Source) -> Vec<RecordBatch> {
    read_all(source, ADDR, Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_table_is_read_with_every_type_mapped() {
    pg().execute(
        "CREATE TYPE tier AS ENUM ('gold', 'silver');
         CREATE TABLE typed (
           id int8, s2 int2, s4 int4, name text, code varchar(8), pad char(3), label name, level tier,
           f4 float4, f8 float8, amount numeric(12, 4), whole int4, active bool,
           at timestamptz, local_at timestamp, day date, unused text);
         INSERT INTO typed VALUES
           (1, -2, 40000, 'ann', 'X1', 'ab', 'n', 'gold', 0.5, -1.25, 1234.5678, 7, true,
            '2024-01-31 14:00:00+02', '2024-01-31 12:00:00.5', '2024-01-31', 'x'),
           (2, NULL, NULL, 'bob', NULL, NULL, 'm', 'silver', NULL, 1e300, -0.0001, NULL, false,
            '1969-12-31 23:59:59.999999+00', NULL, '1970-01-01', 'y');",
    );
    let source = table(
        "typed",
        &[
            ("name", "string"),
            ("id", "int"),
            ("s2", "int?"),
            ("s4", "int?"),
            ("code", "string?"),
            ("pad", "string?"),
            ("label", "string"),
            ("level", "category"),
            ("f4", "float?"),
            ("f8", "float"),
            ("amount", "float"),
            ("whole", "float?"),
            ("active", "bool"),
            ("at", "timestamp"),
            ("local_at", "timestamp?"),
            ("day", "timestamp"),
        ],
    );
    let reader = data::open(&source, ADDR, Path::new(".")).unwrap();
    assert_eq!(reader.schema(), data::arrow_schema(&source));
    let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(b.schema(), data::arrow_schema(&source));
    let strings = |i: usize| b.column(i).as_string::<i32>().iter().collect::<Vec<_>>();
    let ints = |i: usize| b.column(i).as_primitive::<Int64Type>().iter().collect::<Vec<_>>();
    let floats = |i: usize| b.column(i).as_primitive::<Float64Type>().iter().collect::<Vec<_>>();
    let times = |i: usize| b.column(i).as_primitive::<TimestampMicrosecondType>().iter().collect::<Vec<_>>();

    assert_eq!(strings(0), [Some("ann"), Some("bob")]);
    assert_eq!(ints(1), [Some(1), Some(2)]);
    assert_eq!(ints(2), [Some(-2), None]);
    assert_eq!(ints(3), [Some(40_000), None]);
    assert_eq!(strings(4), [Some("X1"), None]);
    assert_eq!(strings(5), [Some("ab "), None]); // char(n) keeps its padding, as PostgreSQL prints it
    assert_eq!(strings(6), [Some("n"), Some("m")]);
    assert_eq!(strings(7), [Some("gold"), Some("silver")]);
    assert_eq!(floats(8), [Some(0.5), None]);
    assert_eq!(floats(9), [Some(-1.25), Some(1e300)]);
    assert_eq!(floats(10), [Some(1234.5678), Some(-0.0001)]);
    assert_eq!(floats(11), [Some(7.0), None]);
    assert_eq!(b.column(12).as_boolean().iter().collect::<Vec<_>>(), [Some(true), Some(false)]);
    assert_eq!(times(13), [Some(NOON), Some(-1)]);
    assert_eq!(times(14), [Some(NOON + 500_000), None]);
    assert_eq!(times(15), [Some(NOON - 12 * 3_600_000_000), Some(0)]);
}

#[test]
fn a_query_is_read_and_a_trailing_semicolon_is_fine() {
    pg().execute(
        "CREATE TABLE orders (account text, amount float8, placed timestamptz);
         INSERT INTO orders VALUES ('a', 1, '2024-01-31T12:00:00Z'), ('a', 2, '2024-01-31T13:00:00Z'),
                                   ('b', 5, '2024-01-31T12:00:00Z');",
    );
    let source = query(
        "SELECT account, sum(amount) AS total, count(*) AS n, max(placed) AS last_at
           FROM orders GROUP BY account ORDER BY account;",
        &[("account", "string"), ("total", "float"), ("n", "int"), ("last_at", "timestamp")],
    );
    let b = &read(&source)[0];
    assert_eq!(b.column(0).as_string::<i32>().iter().collect::<Vec<_>>(), [Some("a"), Some("b")]);
    assert_eq!(b.column(1).as_primitive::<Float64Type>().values().to_vec(), [3.0, 5.0]);
    assert_eq!(b.column(2).as_primitive::<Int64Type>().values().to_vec(), [2, 1]);
    assert_eq!(b.column(3).as_primitive::<TimestampMicrosecondType>().values().to_vec(), [NOON + 3_600_000_000, NOON]);
}

#[test]
fn schema_qualified_and_mixed_case_tables_are_quoted_safely() {
    pg().execute(
        "CREATE SCHEMA sales;
         CREATE TABLE sales.\"Big Orders\" (id int8);
         INSERT INTO sales.\"Big Orders\" VALUES (42);",
    );
    let b = &read(&table("Sales.\"Big Orders\"", &[("id", "int")]))[0];
    assert_eq!(b.column(0).as_primitive::<Int64Type>().values().to_vec(), [42]);
}

#[test]
fn a_large_table_streams_in_batches_across_the_boundary() {
    pg().execute(
        "CREATE TABLE events AS
           SELECT g AS id, (g % 7)::float8 AS v, timestamptz '2024-01-01Z' + g * interval '1 second' AS at
             FROM generate_series(0, 69999) AS g;",
    );
    let source = Source {
        query: Some("SELECT * FROM events ORDER BY id".into()),
        table: None,
        ..table("events", &[("id", "int"), ("v", "float"), ("at", "timestamp")])
    };
    let batches = read(&source);
    let sizes: Vec<usize> = batches.iter().map(RecordBatch::num_rows).collect();
    assert_eq!(sizes, [DEFAULT_BATCH_ROWS, 70_000 - DEFAULT_BATCH_ROWS]);
    let ids: Vec<i64> =
        batches.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
    assert_eq!(ids, (0..70_000).collect::<Vec<_>>());
    let second = batches[1].column(2).as_primitive::<TimestampMicrosecondType>();
    assert_eq!(second.value(0), 1_704_067_200_000_000 + 65_536 * 1_000_000);
}

#[test]
fn dropping_a_reader_midway_releases_its_connection() {
    pg().execute("CREATE TABLE many AS SELECT g AS id FROM generate_series(1, 200000) AS g;");
    let source = table("many", &[("id", "int")]);
    let before = connections();
    let mut reader = data::open(&source, ADDR, Path::new(".")).unwrap();
    assert_eq!(reader.next().unwrap().unwrap().num_rows(), DEFAULT_BATCH_ROWS);
    assert_eq!(connections(), before + 1, "the reader holds one connection while it reads");
    drop(reader);
    // The reading thread notices at its next hand-over and closes the connection.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while connections() > before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(connections() <= before, "the reader's connection is still open");
}

/// Client connections reading the `many` table (other tests may be connected meanwhile).
fn connections() -> i64 {
    let row = pg()
        .client()
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%FROM \"many\"%' AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap();
    row.get(0)
}

#[test]
fn the_connection_can_come_from_the_environment_and_an_unset_variable_is_named() {
    pg().execute("CREATE TABLE envtest (id int8); INSERT INTO envtest VALUES (1);");
    let mut source = table("envtest", &[("id", "int")]);
    source.connection = None;
    source.connection_env = Some("MLOPS_TEST_UNSET_PG_URL".into());
    let err = data::open(&source, ADDR, Path::new(".")).err().expect("fails");
    assert!(matches!(&err, DataError::EnvUnset { var, .. } if var == "MLOPS_TEST_UNSET_PG_URL"), "{err:?}");
    assert_eq!(
        err.to_string(),
        "source.accounts: environment variable `MLOPS_TEST_UNSET_PG_URL` (named by `connection_env`) is not set; \
         export it with the PostgreSQL connection string"
    );

    // Only this test touches this variable.
    std::env::set_var("MLOPS_TEST_DATA_PG_URL", pg().connection_string());
    source.connection_env = Some("MLOPS_TEST_DATA_PG_URL".into());
    assert_eq!(read(&source)[0].num_rows(), 1);
}

#[test]
fn a_missing_column_lists_the_columns_of_the_result() {
    pg().execute("CREATE TABLE people (id int8, full_name text);");
    let err =
        data::open(&table("people", &[("id", "int"), ("name", "string")]), ADDR, Path::new(".")).err().expect("fails");
    match &err {
        DataError::MissingColumn { origin, column, found, .. } => {
            assert_eq!((origin.as_str(), column.as_str()), ("table people", "name"));
            assert_eq!(found, &["id", "full_name"]);
        }
        other => panic!("unexpected {other:?}"),
    }
    let err = data::open(&query("SELECT 1 AS one", &[("two", "int")]), ADDR, Path::new(".")).err().expect("fails");
    assert!(matches!(&err, DataError::MissingColumn { origin, found, .. } if origin == "query" && found == &["one"]));
}

#[test]
fn an_incompatible_column_type_names_both_types() {
    let err = data::open(&query("SELECT 'x'::text AS n", &[("n", "int")]), ADDR, Path::new(".")).err().expect("fails");
    match &err {
        DataError::IncompatibleType { column, found, expected, .. } => {
            assert_eq!((column.as_str(), found.as_str(), *expected), ("n", "text", ColumnType::Int));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn a_null_in_a_non_nullable_column_is_reported_at_its_row() {
    pg().execute(
        "CREATE TABLE scores (id int8, score float8); INSERT INTO scores VALUES (1, 0.5), (2, 0.7), (3, NULL);",
    );
    let source = query("SELECT * FROM scores ORDER BY id", &[("id", "int"), ("score", "float")]);
    let err = read_error(&source, ADDR, Path::new("."));
    match &err {
        DataError::Null { cell, expected, .. } => {
            assert_eq!((cell.origin.as_str(), cell.row, cell.column.as_str()), ("query", Row::Index(2), "score"));
            assert_eq!(*expected, ColumnType::Float);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(err.to_string().contains("declare it `{ type = \"float\", nullable = true }`"), "{err}");
}

#[test]
fn non_finite_and_infinite_values_are_refused() {
    let err = read_error(&query("SELECT 'NaN'::numeric AS x", &[("x", "float")]), ADDR, Path::new("."));
    assert!(matches!(&err, DataError::Value { value, .. } if value == "NaN"), "{err:?}");
    let err = read_error(&query("SELECT 'infinity'::timestamptz AS t", &[("t", "timestamp")]), ADDR, Path::new("."));
    assert!(matches!(&err, DataError::Value { value, .. } if value == "infinity"), "{err:?}");
}

#[test]
fn queries_run_read_only() {
    pg().execute("CREATE TABLE guarded (id int8);");
    let source = query("INSERT INTO guarded VALUES (1) RETURNING id", &[("id", "int")]);
    let err = read_error(&source, ADDR, Path::new("."));
    assert!(matches!(err, DataError::Postgres { .. }), "{err:?}");
    assert!(err.to_string().contains("read-only transaction"), "{err}");
    let rows: i64 = pg().client().query_one("SELECT count(*) FROM guarded", &[]).unwrap().get(0);
    assert_eq!(rows, 0);
}

#[test]
fn fingerprints_follow_the_row_count() {
    pg().execute("CREATE TABLE grows (id int8); INSERT INTO grows VALUES (1);");
    let source = table("grows", &[("id", "int")]);
    let first = data::fingerprint(&source, ADDR, Path::new(".")).unwrap();
    assert_eq!(data::fingerprint(&source, ADDR, Path::new(".")).unwrap(), first);
    pg().execute("INSERT INTO grows VALUES (2);");
    assert_ne!(data::fingerprint(&source, ADDR, Path::new(".")).unwrap(), first);
}

#[test]
fn an_unreachable_server_is_a_postgres_error_without_the_connection_string() {
    let mut source = table("t", &[("id", "int")]);
    source.connection = Some("host=127.0.0.1 port=1 user=secret_user password=hunter2 connect_timeout=5".into());
    let err = data::open(&source, ADDR, Path::new(".")).err().expect("fails");
    assert!(matches!(err, DataError::Postgres { action: "connecting", .. }), "{err:?}");
    let text = err.to_string();
    assert!(!text.contains("hunter2") && !text.contains("secret_user"), "{text}");
}

#[test]
fn a_query_that_cannot_run_fails_at_open() {
    let err = data::open(&query("SELECT $1::int8 AS x", &[("x", "int")]), ADDR, Path::new(".")).err().expect("fails");
    assert!(matches!(err, DataError::Postgres { action: "running the query", .. }), "{err:?}");
    let err = data::open(&query("SELEC 1", &[("x", "int")]), ADDR, Path::new(".")).err().expect("fails");
    assert!(err.to_string().contains("syntax error"), "{err}");
}
