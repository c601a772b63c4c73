//! Training sets joined point-in-time from real offline stores: no value from after a label's
//! time reaches it, ttl and missing rows give NaN, categorical features and labels are encoded,
//! and bad inputs are clear errors.

use arrow_array::{ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use mlops_compiler::model::{
    Aggregate, Column, ColumnRef, ColumnType, Feature, FeatureKind, FeatureView, Resources, Source, SourceFormat, Task,
    TrainingJob, Validation,
};
use mlops_compiler::units::Duration;
use mlops_runtime::features::{materialize, training_set, FeatureError, FeatureStore};
use std::collections::BTreeMap;
use std::sync::Arc;

const VIEW: &str = "feature_view.activity";
const SEC: i64 = 1_000_000;
const MIN: i64 = 60 * SEC;
/// 2026-01-01T00:00:00Z in microseconds.
const BASE: i64 = 1_767_225_600 * SEC;
const FUTURE: f64 = 1e9;

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn col(name: &str, ty: ColumnType, nullable: bool) -> Column {
    Column { name: name.into(), ty, nullable }
}

fn source(timestamp: &str, columns: Vec<Column>) -> Source {
    Source {
        format: SourceFormat::Parquet,
        path: Some("x.parquet".into()),
        connection: None,
        connection_env: None,
        table: None,
        query: None,
        timestamp: Some(timestamp.into()),
        delimiter: ",".into(),
        header: true,
        columns,
        description: None,
    }
}

fn events_source() -> Source {
    source(
        "ts",
        vec![
            col("account", ColumnType::String, false),
            col("ts", ColumnType::Timestamp, false),
            col("x", ColumnType::Float, true),
            col("cat", ColumnType::Category, true),
        ],
    )
}

/// Feature rows: (account, time, x, cat).
fn events(rows: &[(String, i64, f64, String)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("account", DataType::Utf8, false),
        Field::new("ts", ts_type(), false),
        Field::new("x", DataType::Float64, true),
        Field::new("cat", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0.as_str()))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.1)).with_timezone("UTC")),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))),
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3.as_str()))),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn labels_source(label_ty: ColumnType) -> Source {
    source(
        "label_time",
        vec![
            col("account", ColumnType::String, true),
            col("label_time", ColumnType::Timestamp, false),
            col("y", label_ty, true),
        ],
    )
}

/// Label rows with a bool label: (account, time, y).
fn labels(rows: &[(Option<&str>, i64, Option<bool>)]) -> RecordBatch {
    label_batch(rows.iter().map(|r| (r.0, r.1)).collect(), Arc::new(BooleanArray::from_iter(rows.iter().map(|r| r.2))))
}

fn label_batch(keys: Vec<(Option<&str>, i64)>, y: ArrayRef) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("account", DataType::Utf8, true),
        Field::new("label_time", ts_type(), false),
        Field::new("y", y.data_type().clone(), true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter(keys.iter().map(|k| k.0))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(keys.iter().map(|k| k.1)).with_timezone("UTC")),
        y,
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

fn feature(name: &str, kind: FeatureKind, dtype: ColumnType) -> Feature {
    Feature { name: name.into(), kind, dtype, description: None }
}

fn agg(name: &str, column: &str, aggregate: Aggregate, window: &str) -> Feature {
    let dtype = if aggregate == Aggregate::Count { ColumnType::Int } else { ColumnType::Float };
    let window = Duration::parse(window).unwrap();
    feature(name, FeatureKind::Aggregate { column: column.into(), aggregate, window }, dtype)
}

fn activity_view(ttl: &str) -> FeatureView {
    FeatureView {
        source: "source.events".into(),
        entities: vec!["entity.account".into()],
        join_keys: vec!["account".into()],
        ttl: Some(Duration::parse(ttl).unwrap()),
        online: false,
        features: vec![
            feature("x", FeatureKind::Column { column: "x".into() }, ColumnType::Float),
            agg("x_sum_1h", "x", Aggregate::Sum, "1h"),
            agg("x_max_1d", "x", Aggregate::Max, "1d"),
            agg("x_last_1d", "x", Aggregate::Last, "1d"),
            agg("n_1h", "x", Aggregate::Count, "1h"),
            feature("cat", FeatureKind::Column { column: "cat".into() }, ColumnType::Category),
        ],
        description: None,
    }
}

fn job(label_source: &str, task: Task) -> TrainingJob {
    TrainingJob {
        features: vec![VIEW.into()],
        label: ColumnRef { source: label_source.into(), column: "y".into() },
        exclude: vec![],
        algorithm: "xgboost".into(),
        objective: match task {
            Task::Binary => "binary:logistic",
            Task::Multiclass => "multi:softprob",
            Task::Regression => "reg:squarederror",
        }
        .into(),
        task,
        rounds: 10,
        params: BTreeMap::new(),
        validation: Validation { split: "time".into(), holdout: 0.2, seed: 42 },
        tuning: None,
        gates: vec![],
        resources: Resources::default(),
        schedule: None,
        description: None,
    }
}

fn ok(b: RecordBatch) -> Vec<Result<RecordBatch, std::io::Error>> {
    vec![Ok(b)]
}

#[test]
fn no_value_from_after_a_label_reaches_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = FeatureStore::open(dir.path()).unwrap();
    // Eight accounts with feature rows every 5 minutes for 200 minutes; account k is labelled
    // at T_k = (20k + 30) minutes, and each of its rows after T_k holds 1e9 and "FUTURE". Label
    // times and feature rows of different accounts interleave.
    let label_at = |k: i64| BASE + (20 * k + 30) * MIN;
    let mut rows = Vec::new();
    let mut clean: Vec<(String, i64, f64, String)> = Vec::new();
    for j in 0..40 {
        for k in 0..8 {
            let t = BASE + j * 5 * MIN;
            let key = format!("acct_{k}");
            let r = if t <= label_at(k) {
                (key, t, (k * 100 + j) as f64, ["fuel", "grocery", "travel"][(j % 3) as usize].to_string())
            } else {
                (key, t, FUTURE, "FUTURE".to_string())
            };
            if r.2 != FUTURE {
                clean.push(r.clone());
            }
            rows.push(r);
        }
    }
    // Late data for the ttl and no-row cases: `stale` was last seen 3h before its label (ttl 2h),
    // `early` only after its label, `ghost` never.
    rows.push(("stale".into(), BASE, 5.0, "fuel".into()));
    rows.push(("early".into(), BASE + 100 * MIN, FUTURE, "FUTURE".into()));
    // Materialise in two runs split in time (the second incremental), from batches that mix
    // accounts.
    let cut = BASE + 97 * MIN;
    let first: Vec<_> = rows.iter().filter(|r| r.1 <= cut).cloned().collect();
    let second: Vec<_> = rows.iter().filter(|r| r.1 > cut).cloned().collect();
    let view = activity_view("2h");
    for part in [first, second] {
        let report = materialize(&store, VIEW, &view, &events_source(), ok(events(&part)), "fp").unwrap();
        assert_eq!(report.rows_skipped, 0);
    }

    let mut label_rows: Vec<(Option<&str>, i64, Option<bool>)> = Vec::new();
    let keys: Vec<String> = (0..8).map(|k| format!("acct_{k}")).collect();
    for (k, key) in keys.iter().enumerate() {
        label_rows.push((Some(key.as_str()), label_at(k as i64), Some(k % 2 == 0)));
    }
    label_rows.push((Some("stale"), BASE + 3 * 60 * MIN, Some(true)));
    label_rows.push((Some("early"), BASE + 50 * MIN, Some(false)));
    label_rows.push((Some("ghost"), BASE + 50 * MIN, Some(true)));
    label_rows.push((Some("acct_1"), BASE, None)); // a null label: left out
    let ts = training_set(
        &store,
        &job("source.labels", Task::Binary),
        &[(VIEW, &view)],
        &labels_source(ColumnType::Bool),
        ok(labels(&label_rows)),
    )
    .unwrap();
    ts.check_shape().unwrap();
    assert_eq!(ts.rows(), 11);
    let names: Vec<&str> = ts.features.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["x", "x_sum_1h", "x_max_1d", "x_last_1d", "n_1h", "cat"]);

    // Nothing from the future.
    assert!(ts.x.iter().all(|v| v.is_nan() || *v < 1e8), "a value from after a label leaked");
    let cats = &ts.features[5].categories;
    assert_eq!(cats, &["fuel", "grocery", "travel"], "categories are the sorted values seen");

    // Each account's row equals the as-of values computed by hand from its clean rows.
    for (k, key) in keys.iter().enumerate() {
        let t = label_at(k as i64);
        let mine: Vec<&(String, i64, f64, String)> = clean.iter().filter(|r| &r.0 == key).collect();
        let at = mine.iter().filter(|r| r.1 <= t).max_by_key(|r| r.1).unwrap();
        assert_eq!(at.1, t, "the row at the label's own time counts");
        let hour: Vec<f64> = mine.iter().filter(|r| r.1 > t - 60 * MIN && r.1 <= t).map(|r| r.2).collect();
        let want = [
            at.2,
            hour.iter().sum(),
            at.2, // x grows with time, so the day's max is the latest
            at.2,
            hour.len() as f64,
            cats.iter().position(|c| *c == at.3).unwrap() as f64,
        ];
        let got: Vec<f64> = ts.row(k).iter().map(|v| f64::from(*v)).collect();
        assert_eq!(got, want, "{key}");
        assert_eq!(ts.y[k], if k % 2 == 0 { 1.0 } else { 0.0 });
        assert_eq!(ts.event_time[k], t);
    }
    // stale (ttl), early (only later rows) and ghost (no rows): every feature missing.
    for r in 8..11 {
        assert!(ts.row(r).iter().all(|v| v.is_nan()), "row {r}: {:?}", ts.row(r));
    }
    assert!(ts.classes.is_empty());
}

#[test]
fn ttl_counts_from_the_label_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = FeatureStore::open(dir.path()).unwrap();
    let view = activity_view("1h");
    let rows = vec![("a".to_string(), BASE, 3.0, "fuel".to_string())];
    materialize(&store, VIEW, &view, &events_source(), ok(events(&rows)), "fp").unwrap();
    let at = [BASE + 60 * MIN, BASE + 60 * MIN + 1];
    let label_rows: Vec<_> = at.iter().map(|t| (Some("a"), *t, Some(true))).collect();
    let ts = training_set(
        &store,
        &job("source.labels", Task::Binary),
        &[(VIEW, &view)],
        &labels_source(ColumnType::Bool),
        ok(labels(&label_rows)),
    )
    .unwrap();
    assert_eq!(ts.row(0)[0], 3.0, "exactly ttl old is still fresh");
    assert!(ts.row(1)[0].is_nan(), "1µs older than ttl is missing");
}

#[test]
fn text_labels_become_sorted_classes_and_text_features_codes() {
    let dir = tempfile::tempdir().unwrap();
    let store = FeatureStore::open(dir.path()).unwrap();
    let view = activity_view("7d");
    let rows: Vec<_> = [("a", "travel"), ("b", "fuel"), ("c", "grocery")]
        .iter()
        .enumerate()
        .map(|(i, (k, c))| (k.to_string(), BASE + i as i64 * MIN, 1.0, c.to_string()))
        .collect();
    materialize(&store, VIEW, &view, &events_source(), ok(events(&rows)), "fp").unwrap();
    let y: ArrayRef = Arc::new(StringArray::from(vec!["low", "high", "mid", "high"]));
    let keys = vec![(Some("a"), BASE + 10 * MIN), (Some("b"), BASE + 10 * MIN), (Some("c"), BASE), (Some("a"), BASE)];
    let ts = training_set(
        &store,
        &job("source.labels", Task::Multiclass),
        &[(VIEW, &view)],
        &labels_source(ColumnType::Category),
        ok(label_batch(keys, y)),
    )
    .unwrap();
    assert_eq!(ts.classes, ["high", "low", "mid"]);
    assert_eq!(ts.y, [1.0, 0.0, 2.0, 0.0]);
    // c's label comes before its only row (at 2 minutes): missing; a, b see their merchants.
    let cat = ts.features.iter().position(|f| f.name == "cat").unwrap();
    assert_eq!(ts.features[cat].categories, ["fuel", "travel"]);
    let codes: Vec<f32> = (0..4).map(|r| ts.row(r)[cat]).collect();
    assert_eq!(codes[..2], [1.0, 0.0]);
    assert!(codes[2].is_nan());
    assert_eq!(codes[3], 1.0);

    // A binary objective with three text classes is refused.
    let y: ArrayRef = Arc::new(StringArray::from(vec!["low", "high", "mid"]));
    let keys = vec![(Some("a"), BASE), (Some("b"), BASE), (Some("c"), BASE)];
    let e = training_set(
        &store,
        &job("source.labels", Task::Binary),
        &[(VIEW, &view)],
        &labels_source(ColumnType::Category),
        ok(label_batch(keys, y)),
    )
    .unwrap_err();
    assert!(e.to_string().contains("two classes"), "{e}");
}

#[test]
fn labels_from_the_view_source_see_their_own_row() {
    // The fraud example's shape: transactions carry both features and the label.
    let dir = tempfile::tempdir().unwrap();
    let store = FeatureStore::open(dir.path()).unwrap();
    let mut columns = events_source().columns;
    columns.push(col("y", ColumnType::Bool, false));
    let tx = source("ts", columns);
    let mut view = activity_view("7d");
    view.source = "source.tx".into();
    let batch = |keys: &[&str], t: &[i64], x: &[f64], y: &[bool]| {
        let schema = Arc::new(Schema::new(vec![
            Field::new("account", DataType::Utf8, false),
            Field::new("ts", ts_type(), false),
            Field::new("x", DataType::Float64, true),
            Field::new("cat", DataType::Utf8, true),
            Field::new("y", DataType::Boolean, false),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(keys.to_vec())),
            Arc::new(TimestampMicrosecondArray::from(t.to_vec()).with_timezone("UTC")),
            Arc::new(Float64Array::from(x.to_vec())),
            Arc::new(StringArray::from(vec!["fuel"; keys.len()])),
            Arc::new(BooleanArray::from(y.to_vec())),
        ];
        RecordBatch::try_new(schema, columns).unwrap()
    };
    let b = batch(&["a", "a", "b"], &[BASE, BASE + MIN, BASE], &[1.0, 2.0, 7.0], &[false, true, false]);
    materialize(&store, VIEW, &view, &tx, ok(b.clone()), "fp").unwrap();
    let ts = training_set(&store, &job("source.tx", Task::Binary), &[(VIEW, &view)], &tx, ok(b.clone())).unwrap();
    let sums: Vec<f32> = (0..3).map(|r| ts.row(r)[1]).collect();
    assert_eq!(sums, [1.0, 3.0, 7.0]);
    assert_eq!(ts.y, [0.0, 1.0, 0.0]);

    // Aggregating the label in its own source would include each row's own answer: refused.
    let mut leaky = view.clone();
    leaky.features.push(agg("fraud_24h", "y", Aggregate::Sum, "24h"));
    let e = training_set(&store, &job("source.tx", Task::Binary), &[(VIEW, &leaky)], &tx, ok(b.clone())).unwrap_err();
    assert!(e.to_string().contains("fraud_24h") && e.to_string().contains("leaks"), "{e}");
    // Excluding it is the way out.
    let mut j = job("source.tx", Task::Binary);
    j.exclude = vec!["fraud_24h".into()];
    assert!(training_set(&store, &j, &[(VIEW, &leaky)], &tx, ok(b)).is_ok());
}

#[test]
fn bad_requests_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = FeatureStore::open(dir.path()).unwrap();
    let view = activity_view("7d");
    let bool_labels = labels_source(ColumnType::Bool);
    let j = job("source.labels", Task::Binary);
    let some = || ok(labels(&[(Some("a"), BASE, Some(true))]));

    let e = training_set(&store, &j, &[(VIEW, &view)], &bool_labels, some()).unwrap_err();
    assert!(matches!(e, FeatureError::NotMaterialized { .. }), "{e}");
    assert!(e.to_string().contains("run `mlops materialize` first"), "{e}");

    let e = training_set(&store, &j, &[], &bool_labels, some()).unwrap_err();
    assert!(e.to_string().contains("feature view `feature_view.activity` was not given"), "{e}");

    let rows = vec![("a".to_string(), BASE, 1.0, "fuel".to_string())];
    materialize(&store, VIEW, &view, &events_source(), ok(events(&rows)), "fp").unwrap();
    let e = training_set(
        &store,
        &j,
        &[(VIEW, &view)],
        &bool_labels,
        ok(labels(&[(Some("a"), BASE, Some(true)), (None, BASE, Some(false))])),
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("row 2") && msg.contains("`account`"), "{msg}");

    let mut untimed = bool_labels.clone();
    untimed.timestamp = None;
    let e = training_set(&store, &j, &[(VIEW, &view)], &untimed, some()).unwrap_err();
    assert!(e.to_string().contains("has no `timestamp`"), "{e}");

    let numbers: ArrayRef = Arc::new(Float64Array::from(vec![0.0, 2.0]));
    let e = training_set(
        &store,
        &j,
        &[(VIEW, &view)],
        &labels_source(ColumnType::Float),
        ok(label_batch(vec![(Some("a"), BASE), (Some("a"), BASE)], numbers)),
    )
    .unwrap_err();
    assert!(e.to_string().contains("labels 0 or 1, found 2"), "{e}");
}
