//! The native predictor against XGBoost itself: models trained by the project's trainer (and a
//! few straight through the `xgb` binding) predict probe rows — generated rows plus every column
//! set to NaN, unseen and out-of-range category codes, fractions, negatives and huge values — with
//! `Forest` and with XGBoost's C predictor, and the two must agree bit for bit, for predictions
//! and margins, in batches and row by row. Malformed models are errors, not panics; one `Forest`
//! serves 8 threads at once.

mod train_support;

use std::collections::BTreeMap;

use mlops_compiler::model::ColumnType;
use mlops_runtime::dataset::{FeatureSpec, TrainingSet};
use mlops_runtime::serve::trees::{Forest, TreeError};
use mlops_runtime::train::{self, Predictor, TrainOptions};
use serde_json::{json, Value};
use train_support::{job, Rng};
use xgb::parameters::BoosterParameters;
use xgb::{Booster, DMatrix};

const COLS: usize = 6;
/// Codes of `channel` in training: 0..6; of `city`: 0..50.
const CHANNELS: usize = 6;
const CITIES: usize = 50;

fn opts() -> TrainOptions {
    TrainOptions { threads: Some(2), progress: false }
}

fn features() -> Vec<FeatureSpec> {
    let spec = |name: &str, dtype: ColumnType, n: usize| FeatureSpec {
        name: name.into(),
        dtype,
        categories: (0..n).map(|i| format!("{name}{i}")).collect(),
    };
    vec![
        spec("x0", ColumnType::Float, 0),
        spec("x1", ColumnType::Float, 0),
        spec("x2", ColumnType::Float, 0),
        spec("channel", ColumnType::Category, CHANNELS),
        spec("city", ColumnType::Category, CITIES),
        spec("n_items", ColumnType::Int, 0),
    ]
}

/// One row: x0 normal; x1 normal, 10% missing; x2 wide-ranged; channel a code with 5% missing;
/// city one of 50 codes (so category sets span two 32-bit words); n_items 0..10. Plus the latent
/// score labels derive from, in which the categories matter by identity, not magnitude.
fn row(r: &mut Rng) -> ([f32; COLS], f32) {
    let x0 = r.normal();
    let x1 = if r.uniform() < 0.1 { f32::NAN } else { r.normal() };
    let x2 = r.normal() * 100.0;
    let channel = if r.uniform() < 0.05 { f32::NAN } else { (r.u64() % CHANNELS as u64) as f32 };
    let city = (r.u64() % CITIES as u64) as f32;
    let n_items = (r.u64() % 10) as f32;
    let ch = match channel as usize {
        _ if channel.is_nan() => 0.7,
        2 => 1.5,
        4 => -1.0,
        5 => 0.5,
        _ => -0.3,
    };
    let ct = match city as usize {
        c if c % 7 == 3 => 1.0,
        c if c % 5 == 1 => -0.8,
        c if c >= 40 => 0.6,
        _ => 0.0,
    };
    let latent = x0 - 0.8 * if x1.is_nan() { -0.5 } else { x1 } + 0.004 * x2 + ch + ct + 0.1 * n_items;
    ([x0, x1, x2, channel, city, n_items], latent)
}

/// `rows` rows labelled by `label(latent, rng)`.
fn set(rows: usize, seed: u64, label: impl Fn(f32, &mut Rng) -> f32) -> TrainingSet {
    let mut r = Rng::new(seed);
    let mut s = TrainingSet { features: features(), ..Default::default() };
    for i in 0..rows {
        let (x, latent) = row(&mut r);
        s.x.extend_from_slice(&x);
        let y = label(latent, &mut r);
        s.y.push(y);
        s.event_time.push(i as i64);
    }
    s
}

fn binary(latent: f32, r: &mut Rng) -> f32 {
    f32::from(latent + 0.5 * r.normal() > 0.0)
}

fn regression(latent: f32, r: &mut Rng) -> f32 {
    10.0 + 3.0 * latent + 0.3 * r.normal()
}

fn positive(latent: f32, r: &mut Rng) -> f32 {
    (0.4 * latent.clamp(-4.0, 4.0)).exp() * (0.5 + r.uniform())
}

fn counts(latent: f32, r: &mut Rng) -> f32 {
    ((0.5 * latent.clamp(-4.0, 4.0)).exp() * 2.0 * r.uniform()).floor()
}

fn three_classes(latent: f32, r: &mut Rng) -> f32 {
    let v = latent + 0.3 * r.normal();
    if v < -0.5 {
        0.0
    } else if v < 1.0 {
        1.0
    } else {
        2.0
    }
}

/// Rows to predict: fresh generated rows, then rows where one column at a time holds an edge
/// value (missing, unseen and out-of-range codes, fractions, negatives, huge), and an all-NaN row.
fn probe_rows() -> (Vec<f32>, usize) {
    let mut r = Rng::new(0xfeed);
    let mut x = Vec::new();
    let mut base = Vec::new();
    for i in 0..200 {
        let (v, _) = row(&mut r);
        x.extend_from_slice(&v);
        if i < 4 {
            base.push(v);
        }
    }
    let specials = [
        f32::NAN,
        -0.0,
        0.0,
        -0.5,
        -1.0,
        -1e-45,
        1e-45,
        f32::MIN_POSITIVE,
        0.5,
        2.5,
        3.999,
        5.0,
        6.0,
        7.0,
        31.0,
        31.5,
        32.0,
        33.0,
        49.0,
        50.0,
        63.0,
        64.0,
        100.0,
        1e6,
        16_777_215.0,
        16_777_216.0,
        3e38,
        f32::MAX,
        -3e38,
        f32::MIN,
    ];
    for b in &base {
        for c in 0..COLS {
            for &s in &specials {
                let mut v = *b;
                v[c] = s;
                x.extend_from_slice(&v);
            }
        }
    }
    x.extend_from_slice(&[f32::NAN; COLS]);
    let rows = x.len() / COLS;
    (x, rows)
}

fn same_bits(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn ulps(a: f32, b: f32) -> u64 {
    let key = |v: f32| {
        let i = v.to_bits() as i32;
        i64::from(if i < 0 { i32::MIN - i } else { i })
    };
    (key(a) - key(b)).unsigned_abs()
}

/// Asserts `ours` and `theirs` are identical, naming the first difference.
fn assert_identical(what: &str, ours: &[f32], theirs: &[f32], per_row: usize) {
    assert_eq!(ours.len(), theirs.len(), "{what}: lengths");
    let diffs: Vec<usize> = (0..ours.len()).filter(|&i| !same_bits(ours[i], theirs[i])).collect();
    if let Some(&i) = diffs.first() {
        let worst = diffs.iter().map(|&i| ulps(ours[i], theirs[i])).max().unwrap_or(0);
        panic!(
            "{what}: {} of {} values differ (worst {worst} ulp); first at row {}, output {}: ours {:e}, XGBoost {:e}",
            diffs.len(),
            ours.len(),
            i / per_row,
            i % per_row,
            ours[i],
            theirs[i]
        );
    }
}

/// XGBoost's margins for `x`.
fn xgb_margins(model_json: &[u8], x: &[f32], rows: usize) -> Vec<f32> {
    let b = Booster::load_buffer(model_json).unwrap();
    let m = DMatrix::from_dense(x, rows).unwrap();
    b.predict_margin(&m).unwrap()
}

/// Predictions and margins of `Forest` and XGBoost agree bit for bit on the probe rows, as one
/// batch and row by row. Returns the forest.
fn check_exact(what: &str, model_json: &[u8]) -> Forest {
    let forest = Forest::from_json(model_json).unwrap_or_else(|e| panic!("{what}: {e}"));
    let (x, rows) = probe_rows();
    let xgb = Predictor::load(model_json).unwrap();
    assert_eq!(forest.num_features(), xgb.num_features());

    let theirs = xgb.predict(&x, rows).unwrap();
    let mut ours = Vec::new();
    forest.predict(&x, rows, &mut ours).unwrap();
    assert_eq!(ours.len(), rows * forest.num_outputs_per_row(), "{what}");
    assert_identical(&format!("{what}: predict"), &ours, &theirs, forest.num_outputs_per_row());

    let theirs = xgb_margins(model_json, &x, rows);
    forest.predict_margin(&x, rows, &mut ours).unwrap();
    assert_eq!(ours.len(), rows * forest.num_margins_per_row(), "{what}");
    assert_identical(&format!("{what}: margins"), &ours, &theirs, forest.num_margins_per_row());

    // Rows without missing values, in batches (blocks without NaN take a shorter path).
    let clean: Vec<f32> = x.chunks(COLS).filter(|r| !r.iter().any(|v| v.is_nan())).flatten().copied().collect();
    let n = clean.len() / COLS;
    assert!(n > 100, "{n} rows without NaN");
    let theirs = xgb.predict(&clean, n).unwrap();
    forest.predict(&clean, n, &mut ours).unwrap();
    assert_identical(&format!("{what}: rows without NaN"), &ours, &theirs, forest.num_outputs_per_row());

    // One row at a time: XGBoost takes another code path (no block layout, one thread).
    for r in (0..rows).step_by(5) {
        let one = &x[r * COLS..(r + 1) * COLS];
        let theirs = xgb.predict(one, 1).unwrap();
        forest.predict(one, 1, &mut ours).unwrap();
        assert_identical(&format!("{what}: row {r} alone"), &ours, &theirs, forest.num_outputs_per_row());
    }
    forest
}

fn model_json_value(model_json: &[u8]) -> Value {
    serde_json::from_slice(model_json).unwrap()
}

fn trees(v: &Value) -> &Vec<Value> {
    let gb = &v["learner"]["gradient_booster"];
    let model = if gb["name"] == "dart" { &gb["gbtree"]["model"] } else { &gb["model"] };
    model["trees"].as_array().unwrap()
}

/// (categorical splits, of which with a category ≥ 32, max depth) over all trees.
fn shape(model_json: &[u8]) -> (usize, usize, usize) {
    let v = model_json_value(model_json);
    let (mut cat, mut wide, mut depth) = (0, 0, 0);
    for t in trees(&v) {
        let types = t["split_type"].as_array().unwrap();
        cat += types.iter().filter(|s| s.as_u64() == Some(1)).count();
        let cats = t["categories"].as_array().unwrap();
        let sizes = t["categories_sizes"].as_array().unwrap();
        let segs = t["categories_segments"].as_array().unwrap();
        for (s, z) in segs.iter().zip(sizes) {
            let (s, z) = (s.as_u64().unwrap() as usize, z.as_u64().unwrap() as usize);
            if cats[s..s + z].iter().any(|c| c.as_u64().unwrap() >= 32) {
                wide += 1;
            }
        }
        let left = t["left_children"].as_array().unwrap();
        let right = t["right_children"].as_array().unwrap();
        let mut stack = vec![(0usize, 0usize)];
        while let Some((n, d)) = stack.pop() {
            depth = depth.max(d);
            let l = left[n].as_i64().unwrap();
            if l >= 0 {
                stack.push((l as usize, d + 1));
                stack.push((right[n].as_i64().unwrap() as usize, d + 1));
            }
        }
    }
    (cat, wide, depth)
}

fn train_json(objective: &str, rounds: u32, params: Value, data: &TrainingSet) -> Vec<u8> {
    let j = job(objective, rounds, params);
    train::train(data, &j, &opts()).unwrap_or_else(|e| panic!("{objective}: {e}")).model_json
}

#[test]
fn binary_logistic_with_categories_and_missing_values_is_exact() {
    let data = set(500, 1, binary);
    // Partition-based categorical splits (a set of categories goes right) and one-hot ones (a
    // single category goes right; XGBoost uses them below max_cat_to_onehot categories).
    for (what, params) in [
        ("partition", json!({"max_depth": 5, "eta": 0.3, "max_cat_to_onehot": 1})),
        ("one-hot", json!({"max_depth": 4, "eta": 0.3, "max_cat_to_onehot": 64})),
    ] {
        let m = train_json("binary:logistic", 40, params, &data);
        let (cat, wide, _) = shape(&m);
        assert!(cat > 0, "{what}: no categorical split was learned");
        if what == "partition" {
            assert!(wide > 0, "{what}: no category set reaches past the first 32-bit word");
        }
        let f = check_exact(&format!("binary:logistic ({what})"), &m);
        assert_eq!((f.num_outputs_per_row(), f.objective()), (1, "binary:logistic"));
    }
}

#[test]
fn binary_margin_objectives_are_exact() {
    let data = set(400, 2, binary);
    check_exact("binary:logitraw", &train_json("binary:logitraw", 30, json!({"max_depth": 4}), &data));
    check_exact("binary:hinge", &train_json("binary:hinge", 30, json!({"max_depth": 4}), &data));
}

#[test]
fn regression_objectives_are_exact() {
    let data = set(400, 3, regression);
    for objective in ["reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror", "reg:squaredlogerror"] {
        let m = train_json(objective, 30, json!({"max_depth": 4, "max_cat_to_onehot": 1}), &data);
        check_exact(objective, &m);
    }
    let m = train_json("reg:quantileerror", 30, json!({"max_depth": 4, "quantile_alpha": 0.3}), &data);
    check_exact("reg:quantileerror", &m);
    let probabilities = set(400, 4, |l, r| 1.0 / (1.0 + (-(l + 0.3 * r.normal())).exp()));
    check_exact("reg:logistic", &train_json("reg:logistic", 30, json!({"max_depth": 4}), &probabilities));
}

#[test]
fn log_link_objectives_are_exact() {
    let m = train_json("count:poisson", 40, json!({"max_depth": 4}), &set(400, 5, counts));
    check_exact("count:poisson", &m);
    let data = set(400, 6, positive);
    check_exact("reg:gamma", &train_json("reg:gamma", 40, json!({"max_depth": 4}), &data));
    let m = train_json("reg:tweedie", 40, json!({"max_depth": 4, "tweedie_variance_power": 1.3}), &set(400, 7, counts));
    check_exact("reg:tweedie", &m);
}

#[test]
fn multiclass_objectives_are_exact() {
    let mut data = set(450, 8, three_classes);
    data.classes = vec!["low".into(), "mid".into(), "high".into()];
    for objective in ["multi:softprob", "multi:softmax"] {
        let m = train_json(objective, 25, json!({"max_depth": 4, "max_cat_to_onehot": 1}), &data);
        // XGBoost 3.x estimates one intercept per class.
        let v = model_json_value(&m);
        let base = v["learner"]["learner_model_param"]["base_score"].as_str().unwrap().to_string();
        assert_eq!(base.matches(',').count(), 2, "{base}");
        let f = check_exact(objective, &m);
        assert_eq!(f.num_margins_per_row(), 3);
        assert_eq!(f.num_outputs_per_row(), if objective == "multi:softprob" { 3 } else { 1 });
    }
}

#[test]
fn deep_single_round_dart_and_forest_models_are_exact() {
    // Unlimited depth, no regularisation: noisy targets are fitted down to single rows.
    let m = train_json(
        "reg:squarederror",
        4,
        json!({"max_depth": 0, "grow_policy": "lossguide", "max_leaves": 0, "min_child_weight": 0,
               "lambda": 0, "gamma": 0, "max_cat_to_onehot": 1}),
        &set(600, 9, |l, r| l + 2.0 * r.normal()),
    );
    let (_, _, depth) = shape(&m);
    assert!(depth >= 12, "the deep model is only {depth} levels deep");
    check_exact("deep", &m);

    let m = train_json("reg:squarederror", 1, json!({"max_depth": 6}), &set(300, 10, regression));
    assert_eq!(Forest::from_json(&m).unwrap().num_trees(), 1);
    check_exact("single round", &m);

    let data = set(500, 9, binary);
    let m = train_json(
        "binary:logistic",
        15,
        json!({"booster": "dart", "rate_drop": 0.3, "skip_drop": 0, "max_depth": 4, "max_cat_to_onehot": 1}),
        &data,
    );
    let v = model_json_value(&m);
    let weights = v["learner"]["gradient_booster"]["weight_drop"].as_array().unwrap();
    assert!(weights.iter().any(|w| w.as_f64() != Some(1.0)), "dart weights are all 1");
    check_exact("dart", &m);

    let m = train_json(
        "multi:softprob",
        5,
        json!({"num_parallel_tree": 4, "subsample": 0.7, "colsample_bynode": 0.7, "max_depth": 5}),
        &{
            let mut d = set(400, 11, three_classes);
            d.classes = vec!["a".into(), "b".into(), "c".into()];
            d
        },
    );
    check_exact("boosted random forest, 3 classes", &m);
}

/// Trains straight through the binding, for what the trainer does not make.
fn raw_model(params: &[(&str, &str)], data: &TrainingSet, rounds: i32) -> Vec<u8> {
    let mut m = DMatrix::from_dense(&data.x, data.rows()).unwrap();
    m.set_labels(&data.y).unwrap();
    let types: Vec<&str> =
        data.features.iter().map(|f| if f.dtype == ColumnType::Category { "c" } else { "float" }).collect();
    m.set_feature_types(&types).unwrap();
    // The binding's defaults include base_score 0.5, which XGBoost then keeps.
    let mut b = Booster::new_with_cached_dmats(&BoosterParameters::default(), &[&m]).unwrap();
    for (k, v) in params {
        b.set_param(k, v).unwrap();
    }
    for i in 0..rounds {
        b.update(&m, i).unwrap();
    }
    b.save_buffer(false).unwrap()
}

#[test]
fn ranking_survival_multi_target_and_given_intercepts_are_exact() {
    let data = set(300, 12, regression);
    let m = raw_model(&[("objective", "rank:pairwise"), ("max_depth", "4")], &data, 15);
    check_exact("rank:pairwise", &m);

    let mut cox = set(300, 13, positive);
    // Negative labels are censored times.
    for (i, y) in cox.y.iter_mut().enumerate() {
        if i % 4 == 0 {
            *y = -*y;
        }
    }
    let m = raw_model(&[("objective", "survival:cox"), ("max_depth", "3")], &cox, 15);
    check_exact("survival:cox", &m);

    // Two quantiles: two targets, one tree per target and round.
    let m = raw_model(
        &[("objective", "reg:quantileerror"), ("quantile_alpha", "[0.2, 0.8]"), ("max_depth", "4")],
        &data,
        15,
    );
    let f = check_exact("reg:quantileerror, 2 targets", &m);
    assert_eq!(f.num_outputs_per_row(), 2);

    // A base_score the user gave, kept in probability space and put through the logit.
    let bin = set(300, 14, binary);
    let m = raw_model(
        &[("objective", "binary:logistic"), ("base_score", "0.3"), ("boost_from_average", "0"), ("max_depth", "3")],
        &bin,
        10,
    );
    assert!(model_json_value(&m)["learner"]["learner_model_param"]["base_score"].as_str().unwrap().contains("3E-1"));
    check_exact("binary:logistic, base_score 0.3", &m);
    let m = raw_model(
        &[("objective", "count:poisson"), ("base_score", "2.5"), ("max_depth", "3")],
        &set(300, 15, counts),
        10,
    );
    check_exact("count:poisson, base_score 2.5", &m);
}

#[test]
fn old_style_scalar_base_score_is_read_like_xgboost_reads_it() {
    let mut data = set(300, 16, three_classes);
    data.classes = vec!["a".into(), "b".into(), "c".into()];
    let m = train_json("multi:softprob", 5, json!({"max_depth": 3}), &data);
    let mut v = model_json_value(&m);
    // Before 3.1 one scalar served every class.
    v["learner"]["learner_model_param"]["base_score"] = json!("2.5E-1");
    let m = serde_json::to_vec(&v).unwrap();
    check_exact("multi:softprob, scalar base_score", &m);
}

#[test]
fn infinite_inputs_are_refused_like_xgboost_refuses_them() {
    let m = train_json("reg:squarederror", 3, json!({}), &set(200, 17, regression));
    let f = Forest::from_json(&m).unwrap();
    let p = Predictor::load(&m).unwrap();
    let mut x = vec![0.5; COLS * 2];
    x[COLS + 2] = f32::INFINITY;
    assert!(p.predict(&x, 2).is_err(), "XGBoost accepted an infinite value");
    let err = f.predict(&x, 2, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, TreeError::Infinite { row: 1, col: 2 }), "{err}");
    x[COLS + 2] = f32::NEG_INFINITY;
    assert!(p.predict(&x, 2).is_err());
    assert!(f.predict(&x, 2, &mut Vec::new()).is_err());
    // Shape errors.
    assert!(matches!(f.predict(&x, 3, &mut Vec::new()), Err(TreeError::Features { rows: 3, cols: 6, got: 12 })));
    assert!(f.predict(&x[..5], 1, &mut Vec::new()).is_err());
    assert!(f.predict(&[], usize::MAX, &mut Vec::new()).is_err());
    // No rows: nothing, and the output is replaced, not appended to.
    let mut out = vec![1.0];
    f.predict(&[], 0, &mut out).unwrap();
    assert!(out.is_empty());
}

fn small_model() -> Vec<u8> {
    train_json("binary:logistic", 4, json!({"max_depth": 3, "max_cat_to_onehot": 1}), &set(300, 18, binary))
}

/// Loads `v`, expecting a clear error of the given kind.
fn expect_err(what: &str, v: &Value, kind: fn(&TreeError) -> bool) {
    let bytes = serde_json::to_vec(v).unwrap();
    match Forest::from_json(&bytes) {
        Ok(_) => panic!("{what}: loaded"),
        Err(e) => {
            assert!(kind(&e), "{what}: wrong kind of error: {e:?}");
            assert!(!e.to_string().is_empty());
        }
    }
}

fn malformed(e: &TreeError) -> bool {
    matches!(e, TreeError::Malformed(_))
}
fn json_err(e: &TreeError) -> bool {
    matches!(e, TreeError::Json(_))
}
fn unsupported(e: &TreeError) -> bool {
    matches!(e, TreeError::Unsupported(_))
}

#[test]
fn malformed_models_are_errors() {
    let good = small_model();
    let v = model_json_value(&good);
    Forest::from_json(&good).unwrap();

    for cut in [0, 1, good.len() / 3, good.len() / 2, good.len() - 1] {
        assert!(matches!(Forest::from_json(&good[..cut]), Err(TreeError::Json(_))), "cut at {cut}");
    }
    for bytes in [&b"{}"[..], b"[]", b"null", b"\xff\xfe", b"{\"learner\": 3}"] {
        assert!(Forest::from_json(bytes).is_err());
    }

    let tree = "/learner/gradient_booster/model/trees/0";
    let edit = |path: &str, value: Value| {
        let mut v = v.clone();
        *v.pointer_mut(path).unwrap_or_else(|| panic!("{path}")) = value;
        v
    };
    let remove = |parent: &str, key: &str| {
        let mut v = v.clone();
        v.pointer_mut(parent).unwrap().as_object_mut().unwrap().remove(key);
        v
    };
    // Wrong child indices, cycles and shared children.
    expect_err("child out of range", &edit(&format!("{tree}/left_children/0"), json!(999)), malformed);
    expect_err("negative child", &edit(&format!("{tree}/right_children/0"), json!(-7)), malformed);
    expect_err("self loop", &edit(&format!("{tree}/left_children/0"), json!(0)), malformed);
    expect_err("cycle", &edit(&format!("{tree}/left_children/1"), json!(0)), malformed);
    let t0 = &v.pointer(tree).unwrap();
    let l0 = t0["left_children"][0].clone();
    expect_err("same child twice", &edit(&format!("{tree}/right_children/0"), l0), malformed);
    expect_err("feature out of range", &edit(&format!("{tree}/split_indices/0"), json!(6)), malformed);
    expect_err("negative feature", &edit(&format!("{tree}/split_indices/0"), json!(-1)), malformed);
    expect_err("bad split type", &edit(&format!("{tree}/split_type/0"), json!(7)), malformed);
    expect_err("short array", &edit(&format!("{tree}/split_conditions"), json!([0.5])), malformed);
    expect_err("no nodes", &edit(&format!("{tree}/left_children"), json!([])), malformed);
    expect_err("wrong num_nodes", &edit(&format!("{tree}/tree_param/num_nodes"), json!("2")), malformed);
    expect_err("group out of range", &edit("/learner/gradient_booster/model/tree_info/0", json!(1)), malformed);
    expect_err("tree_info short", &edit("/learner/gradient_booster/model/tree_info", json!([0])), malformed);
    expect_err("duplicate tree id", &edit("/learner/gradient_booster/model/trees/1/id", json!(0)), malformed);
    expect_err(
        "num_trees",
        &edit("/learner/gradient_booster/model/gbtree_model_param/num_trees", json!("9")),
        malformed,
    );
    expect_err("base_score", &edit("/learner/learner_model_param/base_score", json!("[abc]")), malformed);
    expect_err("base_score count", &edit("/learner/learner_model_param/base_score", json!("[0.1,0.2]")), malformed);
    expect_err("base_score range", &edit("/learner/learner_model_param/base_score", json!("[1.5]")), malformed);
    expect_err("num_feature", &edit("/learner/learner_model_param/num_feature", json!("many")), malformed);
    expect_err("no trees", &edit("/learner/gradient_booster/model/trees", json!([])), malformed);
    // Categorical nodes: a split typed categorical without categories, and bad segments.
    let numeric = (0..t0["split_type"].as_array().unwrap().len())
        .find(|&i| t0["split_type"][i] == 0 && t0["left_children"][i].as_i64().unwrap() >= 0)
        .expect("a numeric split");
    expect_err("categorical without categories", &edit(&format!("{tree}/split_type/{numeric}"), json!(1)), malformed);
    let cat_tree = trees(&v).iter().position(|t| !t["categories_nodes"].as_array().unwrap().is_empty());
    let cat_tree = format!("/learner/gradient_booster/model/trees/{}", cat_tree.expect("a categorical split"));
    expect_err("segment out of range", &edit(&format!("{cat_tree}/categories_segments/0"), json!(10_000)), malformed);
    expect_err("negative category", &edit(&format!("{cat_tree}/categories/0"), json!(-3)), malformed);
    expect_err("empty category set", &edit(&format!("{cat_tree}/categories_sizes/0"), json!(0)), malformed);
    expect_err("categories node", &edit(&format!("{cat_tree}/categories_nodes/0"), json!(100_000)), malformed);

    // Missing fields and wrong types.
    expect_err("no split_conditions", &remove(tree, "split_conditions"), json_err);
    expect_err("no tree_info", &remove("/learner/gradient_booster/model", "tree_info"), json_err);
    expect_err("no model param", &remove("/learner", "learner_model_param"), json_err);
    expect_err("no objective", &remove("/learner", "objective"), json_err);
    expect_err("no model", &remove("/learner/gradient_booster", "model"), malformed);
    expect_err("string children", &edit(&format!("{tree}/left_children"), json!("1,2")), json_err);
    expect_err("default_left 2", &edit(&format!("{tree}/default_left/0"), json!(2)), json_err);

    // Valid but unsupported.
    expect_err("objective", &edit("/learner/objective/name", json!("survival:aft")), unsupported);
    expect_err("gblinear", &edit("/learner/gradient_booster/name", json!("gblinear")), unsupported);
    expect_err("vector leaves", &edit(&format!("{tree}/tree_param/size_leaf_vector"), json!("3")), unsupported);
    expect_err(
        "category re-encoding",
        &edit("/learner/gradient_booster/model/cats/enc", json!([{"type": 0, "values": []}])),
        unsupported,
    );
}

/// Random edits of a small model's numbers and bytes never panic: they load and predict, or fail
/// with an error.
#[test]
fn mutated_models_never_panic() {
    let good = small_model();
    let v = model_json_value(&good);
    let (x, rows) = probe_rows();
    let mut r = Rng::new(99);
    let mut out = Vec::new();
    let mut loaded = 0;
    // Every integer array element of a tree is a target for an edit.
    let mut targets = Vec::new();
    for (t, tree) in trees(&v).iter().enumerate() {
        for (key, arr) in tree.as_object().unwrap() {
            if let Some(a) = arr.as_array() {
                for i in 0..a.len() {
                    targets.push(format!("/learner/gradient_booster/model/trees/{t}/{key}/{i}"));
                }
            }
        }
    }
    let values = [json!(-2), json!(-1), json!(0), json!(1), json!(2), json!(3), json!(31), json!(64), json!(1e9)];
    for i in 0..1500 {
        let mut m = v.clone();
        for _ in 0..1 + i % 3 {
            let path = &targets[(r.u64() % targets.len() as u64) as usize];
            *m.pointer_mut(path).unwrap() = values[(r.u64() % values.len() as u64) as usize].clone();
        }
        if let Ok(f) = Forest::from_json(&serde_json::to_vec(&m).unwrap()) {
            loaded += 1;
            f.predict(&x, rows, &mut out).unwrap();
        }
    }
    for _ in 0..300 {
        let mut bytes = good.clone();
        let at = (r.u64() % bytes.len() as u64) as usize;
        bytes[at] = b"0123456789-,[]{}\":eE."[(r.u64() % 21) as usize];
        if let Ok(f) = Forest::from_json(&bytes) {
            f.predict(&x, rows, &mut out).unwrap();
        }
    }
    assert!(loaded > 0);
}

#[test]
fn one_forest_serves_eight_threads_at_once() {
    let m = train_json("multi:softprob", 30, json!({"max_depth": 5, "max_cat_to_onehot": 1}), &{
        let mut d = set(400, 19, three_classes);
        d.classes = vec!["a".into(), "b".into(), "c".into()];
        d
    });
    let forest = Forest::from_json(&m).unwrap();
    let (x, rows) = probe_rows();
    let mut expected = Vec::new();
    forest.predict(&x, rows, &mut expected).unwrap();
    let results: BTreeMap<usize, bool> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (forest, x, expected) = (&forest, &x, &expected);
                s.spawn(move || {
                    let mut out = Vec::new();
                    let mut ok = true;
                    for i in 0..6 {
                        // Alternate whole batches and single rows.
                        if (i + t) % 2 == 0 {
                            forest.predict(x, rows, &mut out).unwrap();
                            ok &= out.iter().zip(expected).all(|(a, b)| same_bits(*a, *b));
                        } else {
                            for r in (t..rows).step_by(8) {
                                forest.predict(&x[r * COLS..(r + 1) * COLS], 1, &mut out).unwrap();
                                ok &= out.iter().zip(&expected[r * 3..r * 3 + 3]).all(|(a, b)| same_bits(*a, *b));
                            }
                        }
                    }
                    (t, ok)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results.len(), 8);
    assert!(results.values().all(|&ok| ok), "{results:?}");
}
