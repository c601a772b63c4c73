//! Feature materialisation on real Parquet stores: every aggregate against hand-computed values,
//! window edges, a brute-force oracle on random data, the spilled (partitioned) path, incremental
//! runs against full recomputes, the online store with ttl, and a CSV source read through
//! `data::open`.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use mlops_compiler::model::{Aggregate, Column, ColumnType, Feature, FeatureKind, FeatureView, Source, SourceFormat};
use mlops_compiler::units::Duration;
use mlops_runtime::features::{materialize, read_offline, FeatureError, FeatureStore, OnlineValue};
use std::sync::Arc;

const VIEW: &str = "feature_view.activity";
const SEC: i64 = 1_000_000;
/// 2026-01-01T00:00:00Z in microseconds.
const BASE: i64 = 1_767_225_600 * SEC;

/// One source row: account, event time (µs), amount (nullable), merchant (nullable).
#[derive(Debug, Clone)]
struct In {
    key: String,
    t: i64,
    x: Option<f64>,
    cat: Option<String>,
}

fn row(key: &str, t: i64, x: Option<f64>) -> In {
    In { key: key.into(), t, x, cat: None }
}

fn source() -> Source {
    let col = |name: &str, ty, nullable| Column { name: name.into(), ty, nullable };
    Source {
        format: SourceFormat::Csv,
        path: Some("events.csv".into()),
        connection: None,
        connection_env: None,
        table: None,
        query: None,
        timestamp: Some("ts".into()),
        delimiter: ",".into(),
        header: true,
        columns: vec![
            col("account", ColumnType::String, false),
            col("ts", ColumnType::Timestamp, false),
            col("x", ColumnType::Float, true),
            col("cat", ColumnType::Category, true),
        ],
        description: None,
    }
}

fn batch(rows: &[In]) -> RecordBatch {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("account", DataType::Utf8, false),
        Field::new("ts", ts, false),
        Field::new("x", DataType::Float64, true),
        Field::new("cat", DataType::Utf8, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.key.as_str()))),
        Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.t)).with_timezone("UTC")),
        Arc::new(Float64Array::from_iter(rows.iter().map(|r| r.x))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.cat.as_deref()))),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// The rows as batches of `size` rows, as a source reader would stream them.
fn batches(rows: &[In], size: usize) -> impl Iterator<Item = Result<RecordBatch, std::io::Error>> + '_ {
    rows.chunks(size.max(1)).map(|c| Ok(batch(c)))
}

fn dur(text: &str) -> Duration {
    Duration::parse(text).unwrap()
}

fn agg(name: &str, column: &str, aggregate: Aggregate, window: &str) -> Feature {
    let dtype = match aggregate {
        Aggregate::Count => ColumnType::Int,
        Aggregate::Last | Aggregate::Min | Aggregate::Max if column == "cat" => ColumnType::Category,
        _ => ColumnType::Float,
    };
    Feature {
        name: name.into(),
        kind: FeatureKind::Aggregate { column: column.into(), aggregate, window: dur(window) },
        dtype,
        description: None,
    }
}

fn view(features: Vec<Feature>, ttl: Option<&str>) -> FeatureView {
    FeatureView {
        source: "source.events".into(),
        entities: vec!["entity.account".into()],
        join_keys: vec!["account".into()],
        ttl: ttl.map(dur),
        online: true,
        features,
        description: None,
    }
}

/// Every aggregate over `x` in one window.
fn all_aggregates(window: &str) -> Vec<Feature> {
    use Aggregate::*;
    [("sum", Sum), ("count", Count), ("mean", Mean), ("min", Min), ("max", Max), ("stddev", Stddev), ("last", Last)]
        .into_iter()
        .map(|(n, a)| agg(&format!("x_{n}_{window}"), "x", a, window))
        .collect()
}

/// A cell read back from the store, compared bit for bit (floats in IEEE total order).
#[derive(Debug, Clone)]
enum Val {
    Null,
    F(f64),
    I(i64),
    S(String),
}

impl Ord for Val {
    fn cmp(&self, other: &Val) -> std::cmp::Ordering {
        let rank = |v: &Val| match v {
            Val::Null => 0,
            Val::F(_) => 1,
            Val::I(_) => 2,
            Val::S(_) => 3,
        };
        match (self, other) {
            (Val::F(a), Val::F(b)) => a.total_cmp(b),
            (Val::I(a), Val::I(b)) => a.cmp(b),
            (Val::S(a), Val::S(b)) => a.cmp(b),
            _ => rank(self).cmp(&rank(other)),
        }
    }
}

impl PartialOrd for Val {
    fn partial_cmp(&self, other: &Val) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Val {
    fn eq(&self, other: &Val) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Val {}

impl Val {
    fn f(&self) -> Option<f64> {
        match self {
            Val::F(x) => Some(*x),
            Val::I(n) => Some(*n as f64),
            _ => None,
        }
    }
}

/// All offline rows of a view as (key, event time, feature values), sorted.
fn offline(store: &FeatureStore, view: &str) -> Vec<(String, i64, Vec<Val>)> {
    let mut out = Vec::new();
    for b in read_offline(store, view, None).unwrap() {
        let b = b.unwrap();
        let keys = b.column(0).as_string::<i32>();
        let times = b.column(1).as_primitive::<TimestampMicrosecondType>();
        for i in 0..b.num_rows() {
            let vals = (2..b.num_columns())
                .map(|c| {
                    let a = b.column(c);
                    if a.is_null(i) {
                        return Val::Null;
                    }
                    match a.data_type() {
                        DataType::Float64 => Val::F(a.as_primitive::<Float64Type>().value(i)),
                        DataType::Int64 => Val::I(a.as_primitive::<Int64Type>().value(i)),
                        DataType::Utf8 => Val::S(a.as_string::<i32>().value(i).to_string()),
                        other => panic!("unexpected offline type {other}"),
                    }
                })
                .collect();
            out.push((keys.value(i).to_string(), times.value(i), vals));
        }
    }
    out.sort();
    out
}

/// Asserts two stores' rows are identical, reporting the first difference (not all rows).
#[track_caller]
fn assert_same(got: &[(String, i64, Vec<Val>)], want: &[(String, i64, Vec<Val>)]) {
    assert_eq!(got.len(), want.len(), "row counts differ");
    if let Some((g, w)) = got.iter().zip(want).find(|(g, w)| g != w) {
        panic!("first differing row:\n  got  {g:?}\n  want {w:?}");
    }
}

fn store(dir: &std::path::Path) -> FeatureStore {
    FeatureStore::open(dir).unwrap()
}

#[track_caller]
fn close(got: &Val, want: Option<f64>, what: &str) {
    match (got.f(), want) {
        (None, None) => {}
        (Some(g), Some(w)) => assert!((g - w).abs() <= 1e-9 * w.abs().max(1.0), "{what}: got {g}, want {w}"),
        _ => panic!("{what}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn every_aggregate_matches_hand_computed_values() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let s = |n: i64| BASE + n * SEC;
    // Unsorted input; `a` has a tie at 5s (the null comes later in the input) and a null;
    // `b` has a tie at 1s; `c` only a null.
    let rows = vec![
        row("a", s(12), Some(2.0)),
        row("b", s(1), Some(10.0)),
        row("a", s(0), Some(1.0)),
        row("c", s(3), None),
        row("a", s(5), Some(3.0)),
        row("a", s(5), None),
        row("b", s(1), Some(20.0)),
        row("a", s(20), Some(4.0)),
    ];
    let mut features = all_aggregates("10s");
    features.push(Feature {
        name: "x".into(),
        kind: FeatureKind::Column { column: "x".into() },
        dtype: ColumnType::Float,
        description: None,
    });
    features.push(Feature {
        name: "x2".into(),
        kind: FeatureKind::Expression { expression: "x * 2 + 1".into(), columns: vec!["x".into()] },
        dtype: ColumnType::Float,
        description: None,
    });
    let report = materialize(&st, VIEW, &view(features, None), &source(), batches(&rows, 3), "fp").unwrap();
    assert_eq!((report.rows_read, report.rows_written, report.rows_skipped), (8, 8, 0));
    assert_eq!(report.watermark, Some(s(20)));
    assert!(report.full_recompute);

    // Sorted by (key, time, values): of a's two rows at 5s the one with a null x comes first.
    let got = offline(&st, VIEW);
    let (r2, n, nan) = (2f64.sqrt(), None, Some(f64::NAN));
    let v = |x: f64| Some(x);
    // (key, t in s, [sum, count, mean, min, max, stddev, last, x, x*2+1]) — None is null.
    let want: Vec<(&str, i64, [Option<f64>; 9])> = vec![
        ("a", 0, [v(1.0), v(1.0), v(1.0), v(1.0), v(1.0), n, v(1.0), v(1.0), v(3.0)]),
        ("a", 5, [v(4.0), v(2.0), v(2.0), v(1.0), v(3.0), v(r2), v(3.0), n, nan]),
        ("a", 5, [v(4.0), v(2.0), v(2.0), v(1.0), v(3.0), v(r2), v(3.0), v(3.0), v(7.0)]),
        ("a", 12, [v(5.0), v(2.0), v(2.5), v(2.0), v(3.0), v(0.5f64.sqrt()), v(2.0), v(2.0), v(5.0)]),
        ("a", 20, [v(6.0), v(2.0), v(3.0), v(2.0), v(4.0), v(r2), v(4.0), v(4.0), v(9.0)]),
        ("b", 1, [v(10.0), v(1.0), v(10.0), v(10.0), v(10.0), n, v(10.0), v(10.0), v(21.0)]),
        ("b", 1, [v(30.0), v(2.0), v(15.0), v(10.0), v(20.0), v(50f64.sqrt()), v(20.0), v(20.0), v(41.0)]),
        ("c", 3, [n, v(0.0), n, n, n, n, n, n, nan]),
    ];
    assert_eq!(got.len(), want.len());
    for ((key, t, vals), (wk, wt, wv)) in got.iter().zip(&want) {
        assert_eq!((key.as_str(), *t), (*wk, s(*wt)));
        let names = ["sum", "count", "mean", "min", "max", "stddev", "last", "x", "x*2+1"];
        for (i, name) in names.iter().enumerate() {
            let what = format!("{name} of {key} at {wt}s");
            match wv[i] {
                Some(w) if w.is_nan() => assert!(vals[i].f().is_some_and(f64::is_nan), "{what}: {:?}", vals[i]),
                w => close(&vals[i], w, &what),
            }
        }
        // count is an integer column.
        assert!(matches!(vals[1], Val::I(_)), "count is stored as int");
    }
}

#[test]
fn window_excludes_a_row_exactly_one_window_before_and_includes_one_just_inside() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let w = 10 * SEC;
    let rows = vec![
        row("a", BASE, Some(1.0)),
        row("a", BASE + w - 1, Some(10.0)),
        row("a", BASE + w, Some(100.0)),
        row("a", BASE + 2 * w - 1, Some(1000.0)),
    ];
    let v = view(vec![agg("s", "x", Aggregate::Sum, "10s"), agg("n", "x", Aggregate::Count, "10s")], None);
    materialize(&st, VIEW, &v, &source(), batches(&rows, 10), "fp").unwrap();
    let got: Vec<(Option<f64>, Option<f64>)> = offline(&st, VIEW).iter().map(|r| (r.2[0].f(), r.2[1].f())).collect();
    assert_eq!(
        got,
        vec![
            (Some(1.0), Some(1.0)),
            (Some(11.0), Some(2.0)),   // 1µs inside the window: the first row counts
            (Some(110.0), Some(2.0)),  // exactly 10s later: the first row is out
            (Some(1100.0), Some(2.0)), // (t − 10s, t] holds the two rows before
        ]
    );
}

/// A deterministic pseudo-random generator (SplitMix64), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random rows: `entities` accounts, times on a coarse grid (so ties happen), some nulls, and a
/// few merchants; shuffled.
fn random_rows(seed: u64, n: usize, entities: u64) -> Vec<In> {
    let mut rng = Rng(seed);
    let mut rows: Vec<In> = (0..n)
        .map(|_| {
            let key = format!("acct_{}", rng.below(entities));
            let t = BASE + rng.below(400) as i64 * 15 * 60 * SEC; // ~4 days on a 15-minute grid
            let x = (rng.below(10) != 0).then(|| (rng.below(20_000) as f64) / 100.0 - 50.0);
            let cat = (rng.below(5) != 0).then(|| ["grocery", "travel", "fuel"][rng.below(3) as usize].to_string());
            In { key, t, x, cat }
        })
        .collect();
    for i in (1..rows.len()).rev() {
        rows.swap(i, rng.below(i as u64 + 1) as usize);
    }
    rows
}

fn rich_view() -> FeatureView {
    let mut f = all_aggregates("1h");
    f.extend(all_aggregates("1d"));
    f.push(agg("cat_last_1d", "cat", Aggregate::Last, "1d"));
    f.push(agg("cat_count_1h", "cat", Aggregate::Count, "1h"));
    f.push(Feature {
        name: "hour".into(),
        kind: FeatureKind::Expression { expression: "hour(ts)".into(), columns: vec!["ts".into()] },
        dtype: ColumnType::Float,
        description: None,
    });
    view(f, Some("2d"))
}

/// The brute-force reference: for each row, scan its entity's rows directly.
fn oracle(rows: &[In]) -> Vec<(String, i64, Vec<Val>)> {
    let mut out = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        // Rows of the entity at or before this one in (time, input order).
        let seen: Vec<&In> = rows
            .iter()
            .enumerate()
            .filter(|(j, o)| o.key == r.key && (o.t < r.t || (o.t == r.t && *j <= i)))
            .map(|(_, o)| o)
            .collect();
        let mut vals = Vec::new();
        for w in [3600 * SEC, 86_400 * SEC] {
            let mut win: Vec<&In> = seen.iter().copied().filter(|o| o.t > r.t - w).collect();
            win.sort_by_key(|o| o.t); // stable: ties stay in input order
            let xs: Vec<f64> = win.iter().filter_map(|o| o.x).collect();
            let n = xs.len() as f64;
            let sum: f64 = xs.iter().sum();
            let mean = sum / n;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
            let opt = |v: f64, ok: bool| if ok { Val::F(v) } else { Val::Null };
            vals.push(opt(sum, !xs.is_empty()));
            vals.push(Val::I(xs.len() as i64));
            vals.push(opt(mean, !xs.is_empty()));
            vals.push(opt(xs.iter().copied().fold(f64::INFINITY, f64::min), !xs.is_empty()));
            vals.push(opt(xs.iter().copied().fold(f64::NEG_INFINITY, f64::max), !xs.is_empty()));
            vals.push(opt(var.sqrt(), xs.len() >= 2));
            vals.push(xs.last().map_or(Val::Null, |x| Val::F(*x)));
            if w == 86_400 * SEC {
                vals.push(win.iter().rev().find_map(|o| o.cat.clone()).map_or(Val::Null, Val::S));
            }
        }
        let hour_window: Vec<&&In> = seen.iter().filter(|o| o.t > r.t - 3600 * SEC).collect();
        // Order of the view's features: 1h aggregates, 1d aggregates, cat_last_1d, cat_count_1h, hour.
        let mut ordered = vals[..7].to_vec();
        ordered.extend_from_slice(&vals[7..15]);
        ordered.push(Val::I(hour_window.iter().filter(|o| o.cat.is_some()).count() as i64));
        ordered.push(Val::F((((r.t / SEC) % 86_400) / 3600) as f64));
        out.push((r.key.clone(), r.t, ordered));
    }
    out
}

#[test]
fn random_data_matches_a_brute_force_oracle() {
    let rows = random_rows(7, 600, 12);
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    materialize(&st, VIEW, &rich_view(), &source(), batches(&rows, 97), "fp").unwrap();
    let got = offline(&st, VIEW);
    assert_eq!(got.len(), rows.len());
    // Offline rows carry no input position, so rows tied on (key, time) cannot be paired with
    // the oracle's; compare the others (their windows still include tied rows before them).
    let tied = |k: &str, t: i64| rows.iter().filter(|r| r.key == k && r.t == t).count() > 1;
    let got: Vec<_> = got.into_iter().filter(|r| !tied(&r.0, r.1)).collect();
    let mut want = oracle(&rows);
    want.retain(|r| !tied(&r.0, r.1));
    want.sort();
    assert!(got.len() > 400, "only {} untied rows", got.len());
    assert_matches(&got, &want);
}

#[track_caller]
fn assert_matches(got: &[(String, i64, Vec<Val>)], want: &[(String, i64, Vec<Val>)]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!((&g.0, g.1), (&w.0, w.1));
        for (i, (gv, wv)) in g.2.iter().zip(&w.2).enumerate() {
            match (gv, wv) {
                (Val::F(a), Val::F(b)) => {
                    assert!((a - b).abs() <= 1e-9 * b.abs().max(1.0), "feature {i} of {} at {}: {a} vs {b}", g.0, g.1)
                }
                _ => assert_eq!(gv, wv, "feature {i} of {} at {}", g.0, g.1),
            }
        }
    }
}

#[test]
fn tied_rows_see_only_earlier_input_rows() {
    // All rows of one entity at one instant: the k-th sees k values, whatever their order.
    let rows: Vec<In> = [5.0, 1.0, 3.0].iter().map(|x| row("a", BASE, Some(*x))).collect();
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let v = view(vec![agg("n", "x", Aggregate::Count, "1h"), agg("last", "x", Aggregate::Last, "1h")], None);
    materialize(&st, VIEW, &v, &source(), batches(&rows, 2), "fp").unwrap();
    let got: Vec<(Val, Val)> = offline(&st, VIEW).into_iter().map(|r| (r.2[0].clone(), r.2[1].clone())).collect();
    assert_eq!(got, vec![(Val::I(1), Val::F(5.0)), (Val::I(2), Val::F(1.0)), (Val::I(3), Val::F(3.0))]);
}

#[test]
fn spilled_partitions_give_the_same_rows_as_memory() {
    let rows = random_rows(11, 3000, 40);
    let mem_dir = tempfile::tempdir().unwrap();
    let mem = store(mem_dir.path());
    let r1 = materialize(&mem, VIEW, &rich_view(), &source(), batches(&rows, 256), "fp").unwrap();
    assert_eq!(r1.partitions, 1);
    // 50 rows a partition with a fan-out of 4: the first pass cannot fit, so partitions are
    // split again, and entities (~75 rows each) exceed the budget on their own.
    let spill_dir = tempfile::tempdir().unwrap();
    let spilled = store(spill_dir.path()).with_partition_rows(50).with_fanout(4).with_threads(2);
    let r2 = materialize(&spilled, VIEW, &rich_view(), &source(), batches(&rows, 256), "fp").unwrap();
    assert!(r2.partitions > 4, "re-split into {} partitions", r2.partitions);
    assert_eq!(r2.rows_written, 3000);
    assert_same(&offline(&spilled, VIEW), &offline(&mem, VIEW));
    // The spill directory is gone.
    let tmp = spill_dir.path().join("tmp");
    assert_eq!(std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0), 0);
}

/// Materialises `rows` in runs split at the given times (each run sees every row up to its
/// cut, in shuffled order, like a growing file), returning the store.
fn incremental(st: FeatureStore, rows: &[In], cuts: &[i64]) -> FeatureStore {
    let mut skipped_total = 0;
    for (i, cut) in cuts.iter().enumerate() {
        let upto: Vec<In> = rows.iter().filter(|r| r.t <= *cut).cloned().collect();
        let report = materialize(&st, VIEW, &rich_view(), &source(), batches(&upto, 128), "fp").unwrap();
        assert_eq!(report.full_recompute, i == 0);
        skipped_total += report.rows_skipped;
        assert_eq!(report.rows_read, upto.len() as u64);
    }
    assert!(skipped_total > 0);
    st
}

#[test]
fn incremental_runs_equal_a_full_recompute_bit_for_bit() {
    let rows = random_rows(3, 2500, 30);
    let full_dir = tempfile::tempdir().unwrap();
    let full = store(full_dir.path());
    materialize(&full, VIEW, &rich_view(), &source(), batches(&rows, 300), "fp").unwrap();

    let cuts = [BASE + 30 * 3600 * SEC, BASE + 31 * 3600 * SEC, BASE + 70 * 3600 * SEC, i64::MAX];
    let inc_dir = tempfile::tempdir().unwrap();
    let inc = incremental(store(inc_dir.path()), &rows, &cuts);
    assert_same(&offline(&inc, VIEW), &offline(&full, VIEW));

    // Through spilled partitions too (tails are routed like rows).
    let part_dir = tempfile::tempdir().unwrap();
    let part = incremental(store(part_dir.path()).with_partition_rows(100).with_fanout(3), &rows, &cuts);
    assert_same(&offline(&part, VIEW), &offline(&full, VIEW));

    // The online stores agree as well.
    let a = full.online(VIEW).unwrap();
    let b = inc.online(VIEW).unwrap();
    assert_eq!(a.len(), 30);
    for k in 0..30 {
        let key = [format!("acct_{k}")];
        assert_eq!(a.get(&key, BASE), b.get(&key, BASE), "online row of {key:?}");
    }
    // Four runs: four parts, and the state records the watermark and the fingerprint.
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(inc_dir.path().join("offline").join(VIEW).join("_state.json")).unwrap())
            .unwrap();
    assert_eq!(state["parts"].as_array().unwrap().len(), 4);
    assert_eq!(state["watermark"].as_i64(), rows.iter().map(|r| r.t).max());
    assert_eq!(inc.source_fingerprint(VIEW).unwrap().as_deref(), Some("fp"));
}

#[test]
fn rerun_without_new_rows_writes_nothing_and_a_changed_view_recomputes() {
    let rows = random_rows(5, 200, 5);
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let v = rich_view();
    materialize(&st, VIEW, &v, &source(), batches(&rows, 50), "fp").unwrap();
    let again = materialize(&st, VIEW, &v, &source(), batches(&rows, 50), "fp").unwrap();
    assert_eq!((again.rows_written, again.rows_skipped, again.part.clone()), (0, 200, None));
    let first = offline(&st, VIEW);
    assert_eq!(first.len(), 200);

    // A different view definition: everything is recomputed, the old parts are gone.
    let narrower = view(all_aggregates("1h"), None);
    let r = materialize(&st, VIEW, &narrower, &source(), batches(&rows, 50), "fp").unwrap();
    assert!(r.full_recompute);
    assert_eq!(r.rows_written, 200);
    let after = offline(&st, VIEW);
    assert_eq!(after.len(), 200);
    assert_eq!(after[0].2.len(), 7);
    let parts = std::fs::read_dir(dir.path().join("offline").join(VIEW))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with("part-"))
        .count();
    assert_eq!(parts, 1);

    // reset: the next run starts over.
    st.reset(VIEW).unwrap();
    assert!(matches!(read_offline(&st, VIEW, None).err(), Some(FeatureError::NotMaterialized { .. })));
    assert!(materialize(&st, VIEW, &narrower, &source(), batches(&rows, 50), "fp").unwrap().full_recompute);
}

#[test]
fn online_store_keeps_the_latest_row_and_honours_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let h = |n: i64| BASE + n * 3600 * SEC;
    let mut v = view(
        vec![agg("x_sum_1d", "x", Aggregate::Sum, "1d"), agg("cat_last", "cat", Aggregate::Last, "1d")],
        Some("6h"),
    );
    v.online = true;
    let mut rows = vec![row("a", h(2), Some(1.0)), row("a", h(1), Some(2.0)), row("b", h(0), Some(5.0))];
    rows[0].cat = Some("fuel".into());
    materialize(&st, VIEW, &v, &source(), batches(&rows, 2), "fp").unwrap();

    let online = st.online(VIEW).unwrap();
    let key = |k: &str| [k.to_string()];
    let (t, values) = online.get(&key("a"), h(3)).unwrap();
    assert_eq!(t, h(2));
    assert_eq!(values, vec![("x_sum_1d", &OnlineValue::Number(3.0)), ("cat_last", &OnlineValue::Text("fuel".into()))]);
    // ttl 6h: b's row (at 0h) is served at 6h and expired after it.
    assert!(online.get(&key("b"), h(6)).is_some());
    assert!(online.get(&key("b"), h(6) + 1).is_none());
    assert!(online.get(&key("nobody"), h(0)).is_none());

    // A later run replaces a's row and keeps b's.
    let more = vec![row("a", h(10), None)];
    materialize(&st, VIEW, &v, &source(), batches(&more, 1), "fp").unwrap();
    let online = st.online(VIEW).unwrap();
    let (t, values) = online.get(&key("a"), h(10)).unwrap();
    assert_eq!(t, h(10));
    // Rows at 1h and 2h are still within a day; the new row's x is null.
    assert_eq!(values[0].1, &OnlineValue::Number(3.0));
    assert_eq!(online.get(&key("b"), h(0)).unwrap().0, h(0));
    assert_eq!(online.len(), 2);
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    let v = view(all_aggregates("1h"), None);

    // A null key names the column and the row.
    let b = batch(&[row("a", BASE, Some(1.0))]);
    let keys: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>]));
    let bad = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("account", DataType::Utf8, true),
            b.schema().field(1).clone(),
            b.schema().field(2).clone(),
            b.schema().field(3).clone(),
        ])),
        vec![keys, b.column(1).clone(), b.column(2).clone(), b.column(3).clone()],
    )
    .unwrap();
    let input = vec![Ok::<_, std::io::Error>(batch(&[row("z", BASE, None)])), Ok(bad)];
    let e = materialize(&st, VIEW, &v, &source(), input, "fp").unwrap_err().to_string();
    assert!(e.contains("row 2") && e.contains("`account`"), "{e}");

    // A missing column.
    let narrow = b.project(&[0, 1]).unwrap();
    let e = materialize(&st, VIEW, &v, &source(), vec![Ok::<_, std::io::Error>(narrow)], "fp").unwrap_err();
    assert!(e.to_string().contains("column `x` is missing"), "{e}");

    // A reader error is passed on with the source and view named.
    let failing = vec![Err(std::io::Error::other("disk on fire"))];
    let e = materialize(&st, VIEW, &v, &source(), failing, "fp").unwrap_err().to_string();
    assert!(e.contains("source.events") && e.contains(VIEW) && e.contains("disk on fire"), "{e}");

    // A zero window and an address that would leave the store.
    let mut zero_window = agg("s", "x", Aggregate::Sum, "1h");
    zero_window.kind =
        FeatureKind::Aggregate { column: "x".into(), aggregate: Aggregate::Sum, window: Duration::from_millis(0) };
    let zero = view(vec![zero_window], None);
    let e = materialize(&st, VIEW, &zero, &source(), batches(&[], 1), "fp").unwrap_err();
    assert!(e.to_string().contains("window must be positive"), "{e}");
    let e = materialize(&st, "../escape", &v, &source(), batches(&[], 1), "fp").unwrap_err();
    assert!(matches!(e, FeatureError::InvalidView { .. }), "{e}");

    // Nothing was committed by the failed runs.
    assert!(matches!(st.online(VIEW).err(), Some(FeatureError::NotMaterialized { .. })));
}

#[test]
fn reads_a_csv_source_through_data_open() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "account,ts,x,cat\n\
               a,2026-01-01T00:00:00Z,1.5,fuel\n\
               a,2026-01-01T00:30:00Z,2.5,\n\
               b,2026-01-01T00:10:00Z,,travel\n\
               a,2026-01-01T02:00:00Z,4,fuel\n";
    std::fs::write(dir.path().join("events.csv"), csv).unwrap();
    let src = source();
    let reader = mlops_runtime::data::open(&src, "source.events", dir.path()).unwrap();
    let st = store(&dir.path().join("store"));
    let v = view(vec![agg("s", "x", Aggregate::Sum, "1h"), agg("c", "cat", Aggregate::Count, "1h")], None);
    let r = materialize(&st, VIEW, &v, &src, reader, "fp").unwrap();
    assert_eq!(r.rows_written, 4);
    let got: Vec<(String, Option<f64>, Option<f64>)> =
        offline(&st, VIEW).into_iter().map(|(k, _, v)| (k, v[0].f(), v[1].f())).collect();
    let want =
        [("a", Some(1.5), Some(1.0)), ("a", Some(4.0), Some(1.0)), ("a", Some(4.0), Some(1.0)), ("b", None, Some(1.0))];
    assert_eq!(got, want.map(|(k, s, c)| (k.to_string(), s, c)));
}

#[test]
fn files_of_an_uncommitted_run_are_ignored_and_replaced() {
    let rows = random_rows(13, 400, 6);
    let cut = BASE + 48 * 3600 * SEC;
    let (early, late): (Vec<In>, Vec<In>) = rows.iter().cloned().partition(|r| r.t <= cut);
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path());
    materialize(&st, VIEW, &rich_view(), &source(), batches(&early, 64), "fp").unwrap();
    let committed = offline(&st, VIEW);
    // A run that died after writing its part but before committing the state leaves these.
    let view_dir = dir.path().join("offline").join(VIEW);
    std::fs::write(view_dir.join("part-00001.parquet"), b"half a parquet file").unwrap();
    std::fs::write(view_dir.join("_tails-00001.bin.tmp"), b"junk").unwrap();
    assert_same(&offline(&st, VIEW), &committed);

    // The next run redoes the work over them, and the result is a full recompute's.
    materialize(&st, VIEW, &rich_view(), &source(), batches(&late, 64), "fp").unwrap();
    let full_dir = tempfile::tempdir().unwrap();
    let full = store(full_dir.path());
    materialize(&full, VIEW, &rich_view(), &source(), batches(&rows, 64), "fp").unwrap();
    assert_same(&offline(&st, VIEW), &offline(&full, VIEW));
    assert!(!view_dir.join("_tails-00001.bin.tmp").exists());
}
