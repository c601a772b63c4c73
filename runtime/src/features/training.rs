//! Training sets by point-in-time join: in go a training job, its materialised feature views
//! and the batches of its label source; out comes a [`TrainingSet`] with one row per labelled
//! source row, each view contributing its latest feature row at or before the label's time.
//!
//! Labels are held in memory (the set is dense anyway); feature rows stream from the offline
//! store. A feature row at time `t` is offered only to the first label slot of its entity with
//! time ≥ `t` (labels of an entity sorted by time); a running maximum over the slots then gives
//! every label the latest row at or before it — no row after a label's time can reach it.

use super::layout::{type_fits, Col, EVENT_TIME};
use super::offline::read_offline;
use super::rows::{Arr, KeyHash};
use super::{FeatureError, FeatureStore};
use crate::dataset::{FeatureSpec, TrainingSet};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use mlops_compiler::model::{ColumnType, FeatureKind, FeatureView, Source, Task, TrainingJob};
use std::collections::{BTreeSet, HashMap};

/// One included feature of one view.
struct Included {
    name: String,
    dtype: ColumnType,
}

/// A view's part of the join.
struct ViewJoin<'a> {
    address: &'a str,
    view: &'a FeatureView,
    features: Vec<Included>,
    /// Column offset of its first feature in a training row.
    offset: usize,
}

/// A label value before encoding.
enum RawLabel {
    Num(f64),
    Text(String),
}

/// Builds the training set of `job` from the label source's batches and the offline stores of
/// the job's feature views (`views`: address and definition, at least those `job` names).
pub fn training_set<I, E>(
    store: &FeatureStore,
    job: &TrainingJob,
    views: &[(&str, &FeatureView)],
    label_source: &Source,
    label_batches: I,
) -> Result<TrainingSet, FeatureError>
where
    I: IntoIterator<Item = Result<RecordBatch, E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let label_name = format!("{}.{}", job.label.source, job.label.column);
    let err = |message: String| FeatureError::Training { label: label_name.clone(), message };

    // The views, their included features and where those go in a row.
    let mut joins: Vec<ViewJoin<'_>> = Vec::new();
    let mut cols = 0;
    for address in &job.features {
        let Some((_, view)) = views.iter().find(|(a, _)| a == address) else {
            return Err(err(format!("feature view `{address}` was not given with the job's views")));
        };
        let mut features = Vec::new();
        for f in &view.features {
            if job.exclude.contains(&f.name) {
                continue;
            }
            if view.source == job.label.source {
                let reads_label = match &f.kind {
                    FeatureKind::Column { column } | FeatureKind::Aggregate { column, .. } => {
                        column == &job.label.column
                    }
                    FeatureKind::Expression { columns, .. } => columns.contains(&job.label.column),
                };
                if reads_label {
                    return Err(err(format!(
                        "feature `{}` of {address} reads the label column `{}` of the labelled rows themselves \
                         (a window includes its own row), which leaks the answer; exclude it",
                        f.name, job.label.column
                    )));
                }
            }
            features.push(Included { name: f.name.clone(), dtype: f.dtype });
        }
        let n = features.len();
        joins.push(ViewJoin { address, view, features, offset: cols });
        cols += n;
    }
    let feature_specs: Vec<FeatureSpec> = joins
        .iter()
        .flat_map(|j| j.features.iter())
        .map(|f| FeatureSpec { name: f.name.clone(), dtype: f.dtype, categories: Vec::new() })
        .collect();
    for (i, f) in feature_specs.iter().enumerate() {
        if feature_specs[..i].iter().any(|g| g.name == f.name) {
            return Err(err(format!("feature `{}` comes from two views; exclude one of them", f.name)));
        }
    }

    // The label rows.
    let context = format!("{} (labels)", job.label.source);
    let declared = |name: &str| {
        label_source.column(name).map(|c| Col { name: name.to_string(), ty: c.ty }).ok_or_else(|| {
            err(format!("column `{name}` is not declared in the schema of the label source {}", job.label.source))
        })
    };
    let time_col = label_source.timestamp.as_deref().ok_or_else(|| {
        err(format!(
            "the label source {} has no `timestamp`; point-in-time joins need the labels' time",
            job.label.source
        ))
    })?;
    let time_col = declared(time_col)?;
    let label_col = declared(&job.label.column)?;
    let key_cols: Vec<Vec<Col>> =
        joins.iter().map(|j| j.view.join_keys.iter().map(|k| declared(k)).collect()).collect::<Result<_, _>>()?;

    let mut label_time: Vec<i64> = Vec::new();
    let mut raw_labels: Vec<RawLabel> = Vec::new();
    // Per view: entity key bytes → entity number, and each label's entity number.
    let mut entity_ids: Vec<HashMap<Box<[u8]>, u32, KeyHash>> = joins.iter().map(|_| HashMap::default()).collect();
    let mut label_entity: Vec<Vec<u32>> = joins.iter().map(|_| Vec::new()).collect();
    let mut row_number = 0u64;
    let mut key = Vec::new();
    for item in label_batches {
        let batch = item.map_err(|e| FeatureError::Source {
            source_address: job.label.source.clone(),
            consumer: format!("the training set labelled by {label_name}"),
            cause: e.into(),
        })?;
        let Arr::Ts(times) = Arr::find(&batch, &time_col, &context)? else {
            return Err(err(format!("the label time column `{}` is not a timestamp", time_col.name)));
        };
        let labels = Arr::find(&batch, &label_col, &context)?;
        let keys: Vec<Vec<Arr<'_>>> = key_cols
            .iter()
            .map(|ks| ks.iter().map(|k| Arr::find(&batch, k, &context)).collect::<Result<_, _>>())
            .collect::<Result<_, _>>()?;
        for i in 0..batch.num_rows() {
            row_number += 1;
            let null = |column: &str| FeatureError::NullKey {
                context: context.clone(),
                column: column.to_string(),
                row: row_number,
            };
            if times.is_null(i) {
                return Err(null(&time_col.name));
            }
            let Some(label) = raw_label(&labels, i) else { continue };
            for (v, arrs) in keys.iter().enumerate() {
                key.clear();
                for (k, a) in key_cols[v].iter().zip(arrs) {
                    if !a.encode_key(i, &mut key) {
                        return Err(null(&k.name));
                    }
                }
                let ids = &mut entity_ids[v];
                let next = ids.len() as u32;
                let id = match ids.get(key.as_slice()) {
                    Some(id) => *id,
                    None => {
                        ids.insert(key.clone().into_boxed_slice(), next);
                        next
                    }
                };
                label_entity[v].push(id);
            }
            label_time.push(times.value(i));
            raw_labels.push(label);
        }
    }
    let (y, classes) = encode_labels(raw_labels, label_col.ty, job.task).map_err(err)?;
    let rows = y.len();

    // Feature values per label, as f64 (text as an id into `texts`; NaN when missing).
    let mut values = vec![f64::NAN; rows * cols];
    let mut texts: Vec<Vec<String>> = vec![Vec::new(); cols];
    for (v, j) in joins.iter().enumerate() {
        join_view(
            store,
            j,
            &key_cols[v],
            &entity_ids[v],
            &label_entity[v],
            &label_time,
            &mut values,
            cols,
            &mut texts,
        )?;
    }

    // Text features become codes into their sorted distinct values.
    let mut specs = feature_specs;
    let mut x = vec![f32::NAN; rows * cols];
    for (c, spec) in specs.iter_mut().enumerate() {
        let is_text = !texts[c].is_empty() || matches!(spec.dtype, ColumnType::String | ColumnType::Category);
        if !is_text {
            for r in 0..rows {
                x[r * cols + c] = values[r * cols + c] as f32;
            }
            continue;
        }
        let used: BTreeSet<&str> = (0..rows)
            .map(|r| values[r * cols + c])
            .filter(|v| !v.is_nan())
            .map(|v| texts[c][v as usize].as_str())
            .collect();
        let categories: Vec<String> = used.into_iter().map(str::to_string).collect();
        let code: HashMap<&str, usize> = categories.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect();
        for r in 0..rows {
            let v = values[r * cols + c];
            if !v.is_nan() {
                x[r * cols + c] = code.get(texts[c][v as usize].as_str()).map_or(f32::NAN, |&k| k as f32);
            }
        }
        spec.categories = categories;
    }
    Ok(TrainingSet { features: specs, x, y, event_time: label_time, classes })
}

/// The label at row `i`, or `None` when null.
fn raw_label(a: &Arr<'_>, i: usize) -> Option<RawLabel> {
    if a.is_null(i) {
        return None;
    }
    Some(match a {
        Arr::F64(a) => RawLabel::Num(a.value(i)),
        Arr::I64(a) => RawLabel::Num(a.value(i) as f64),
        Arr::Ts(a) => RawLabel::Num(a.value(i) as f64),
        Arr::Bool(a) => RawLabel::Num(f64::from(u8::from(a.value(i)))),
        Arr::Str(a) => RawLabel::Text(a.value(i).to_string()),
    })
}

/// Encodes labels for the task: the targets and, for class indices, the class names.
fn encode_labels(raw: Vec<RawLabel>, ty: ColumnType, task: Task) -> Result<(Vec<f32>, Vec<String>), String> {
    match (ty, task) {
        (ColumnType::Timestamp, _) => Err("a timestamp label cannot be learned; use a bool, number or category".into()),
        (ColumnType::String | ColumnType::Category, Task::Regression) => {
            Err(format!("a {} label needs a classification objective, not regression", ty.name()))
        }
        (ColumnType::String | ColumnType::Category, _) => {
            let text = |r: &RawLabel| match r {
                RawLabel::Text(s) => s.clone(),
                RawLabel::Num(n) => n.to_string(),
            };
            let classes: Vec<String> = raw.iter().map(text).collect::<BTreeSet<_>>().into_iter().collect();
            if task == Task::Binary && classes.len() > 2 {
                return Err(format!(
                    "a binary objective needs two classes, the label has {} ({}…)",
                    classes.len(),
                    classes[..3].join(", ")
                ));
            }
            let index: HashMap<&str, usize> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
            let y = raw.iter().map(|r| index.get(text(r).as_str()).map_or(f32::NAN, |&i| i as f32)).collect();
            Ok((y, classes))
        }
        (_, Task::Regression) => Ok((raw.iter().map(|r| num(r) as f32).collect(), Vec::new())),
        (_, Task::Binary) => {
            if let Some(bad) = raw.iter().map(num).find(|v| *v != 0.0 && *v != 1.0) {
                return Err(format!("a binary objective needs labels 0 or 1, found {bad}"));
            }
            Ok((raw.iter().map(|r| num(r) as f32).collect(), Vec::new()))
        }
        (_, Task::Multiclass) => {
            let mut distinct: Vec<f64> = raw.iter().map(num).filter(|v| !v.is_nan()).collect();
            distinct.sort_by(f64::total_cmp);
            distinct.dedup();
            let y = raw
                .iter()
                .map(|r| distinct.binary_search_by(|d| d.total_cmp(&num(r))).map_or(f32::NAN, |i| i as f32))
                .collect();
            let classes =
                distinct.iter().map(|d| if d.fract() == 0.0 { format!("{d:.0}") } else { d.to_string() }).collect();
            Ok((y, classes))
        }
    }
}

fn num(r: &RawLabel) -> f64 {
    match r {
        RawLabel::Num(n) => *n,
        RawLabel::Text(_) => f64::NAN,
    }
}

/// Joins one view into `values` (see the module doc).
#[allow(clippy::too_many_arguments)]
fn join_view(
    store: &FeatureStore,
    j: &ViewJoin<'_>,
    key_cols: &[Col],
    entity_ids: &HashMap<Box<[u8]>, u32, KeyHash>,
    label_entity: &[u32],
    label_time: &[i64],
    values: &mut [f64],
    cols: usize,
    texts: &mut [Vec<String>],
) -> Result<(), FeatureError> {
    // Slots: each entity's labels sorted by time, laid out entity after entity.
    let entities = entity_ids.len();
    let mut start = vec![0usize; entities + 1];
    for &e in label_entity {
        start[e as usize + 1] += 1;
    }
    for e in 0..entities {
        start[e + 1] += start[e];
    }
    let mut fill = start.clone();
    let mut slot_label = vec![0u32; label_entity.len()];
    for (l, &e) in label_entity.iter().enumerate() {
        slot_label[fill[e as usize]] = l as u32;
        fill[e as usize] += 1;
    }
    for e in 0..entities {
        slot_label[start[e]..start[e + 1]].sort_by_key(|&l| (label_time[l as usize], l));
    }
    let slot_time: Vec<i64> = slot_label.iter().map(|&l| label_time[l as usize]).collect();
    let nf = j.features.len();
    // The best candidate offered to each slot: (event time, scan position) and its values.
    let mut best: Vec<Option<(i64, u64)>> = vec![None; slot_label.len()];
    let mut best_values = vec![f64::NAN; slot_label.len() * nf];

    let mut wanted: Vec<&str> = key_cols.iter().map(|k| k.name.as_str()).collect();
    wanted.push(EVENT_TIME);
    wanted.extend(j.features.iter().map(|f| f.name.as_str()));
    let context = format!("offline store of {}", j.address);
    let mut text_ids: Vec<HashMap<String, u32>> = vec![HashMap::new(); nf];
    let mut scan = 0u64;
    let mut key = Vec::new();
    for batch in read_offline(store, j.address, Some(&wanted))? {
        let batch = batch?;
        let keys = key_cols
            .iter()
            .map(|k| {
                let a = Arr::find(&batch, &Col { name: k.name.clone(), ty: offline_type(&batch, &k.name) }, &context)?;
                let offline_ty = offline_type(&batch, &k.name);
                let fits = match (k.ty, offline_ty) {
                    (ColumnType::String | ColumnType::Category, ColumnType::String) => true,
                    (a, b) => a == b,
                };
                if !fits {
                    return Err(FeatureError::Schema {
                        context: context.clone(),
                        column: k.name.clone(),
                        message: format!(
                            "is a {} join key in the view but {} in the label source",
                            offline_ty.name(),
                            k.ty.name()
                        ),
                    });
                }
                Ok(a)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let time_col = Col { name: EVENT_TIME.into(), ty: ColumnType::Timestamp };
        let Arr::Ts(times) = Arr::find(&batch, &time_col, &context)? else { continue };
        let feats: Vec<&dyn Array> = j
            .features
            .iter()
            .map(|f| {
                batch.column_by_name(&f.name).map(|a| a.as_ref()).ok_or_else(|| FeatureError::Schema {
                    context: context.clone(),
                    column: f.name.clone(),
                    message: "is missing; materialise the view again".into(),
                })
            })
            .collect::<Result<_, _>>()?;
        for i in 0..batch.num_rows() {
            scan += 1;
            key.clear();
            if !keys.iter().all(|a| a.encode_key(i, &mut key)) {
                continue;
            }
            let Some(&e) = entity_ids.get(key.as_slice()) else { continue };
            let (lo, hi) = (start[e as usize], start[e as usize + 1]);
            let t = times.value(i);
            // The first label at or after t; later labels inherit it through the running maximum.
            let s = lo + slot_time[lo..hi].partition_point(|&lt| lt < t);
            if s == hi || best[s].is_some_and(|(bt, _)| bt > t) {
                continue;
            }
            best[s] = Some((t, scan));
            for (f, a) in feats.iter().enumerate() {
                best_values[s * nf + f] = cell(*a, i, &mut text_ids[f], &mut texts[j.offset + f]);
            }
        }
    }

    let ttl = j.view.ttl.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 1000).saturating_mul(1000));
    for e in 0..entities {
        let mut carry: Option<usize> = None;
        for s in start[e]..start[e + 1] {
            if best[s].is_some() && carry.is_none_or(|c| best[s] >= best[c]) {
                carry = Some(s);
            }
            let Some(c) = carry else { continue };
            let Some((t, _)) = best[c] else { continue };
            let l = slot_label[s] as usize;
            if ttl.is_some_and(|ttl| t < label_time[l].saturating_sub(ttl)) {
                continue;
            }
            values[l * cols + j.offset..l * cols + j.offset + nf].copy_from_slice(&best_values[c * nf..(c + 1) * nf]);
        }
    }
    Ok(())
}

/// The column type an offline column was written with.
fn offline_type(batch: &RecordBatch, name: &str) -> ColumnType {
    match batch.column_by_name(name).map(|a| a.data_type().clone()) {
        Some(DataType::Int64) => ColumnType::Int,
        Some(DataType::Boolean) => ColumnType::Bool,
        Some(DataType::Float64) => ColumnType::Float,
        Some(dt) if type_fits(ColumnType::Timestamp, &dt) => ColumnType::Timestamp,
        _ => ColumnType::String,
    }
}

/// One offline cell as f64: numbers as they are, booleans 0/1, timestamps in Unix seconds, text
/// as an id into `texts` (interned through `ids`); NaN when null.
fn cell(a: &dyn Array, i: usize, ids: &mut HashMap<String, u32>, texts: &mut Vec<String>) -> f64 {
    if a.is_null(i) {
        return f64::NAN;
    }
    match a.data_type() {
        DataType::Float64 => a.as_primitive_opt::<Float64Type>().map_or(f64::NAN, |a| a.value(i)),
        DataType::Int64 => a.as_primitive_opt::<Int64Type>().map_or(f64::NAN, |a| a.value(i) as f64),
        DataType::Boolean => a.as_boolean_opt().map_or(f64::NAN, |a| f64::from(u8::from(a.value(i)))),
        DataType::Timestamp(..) => {
            a.as_primitive_opt::<TimestampMicrosecondType>().map_or(f64::NAN, |a| a.value(i) as f64 / 1e6)
        }
        DataType::Utf8 => match a.as_string_opt::<i32>() {
            Some(a) => {
                let s = a.value(i);
                let id = match ids.get(s) {
                    Some(id) => *id,
                    None => {
                        let id = texts.len() as u32;
                        ids.insert(s.to_string(), id);
                        texts.push(s.to_string());
                        id
                    }
                };
                f64::from(id)
            }
            None => f64::NAN,
        },
        _ => f64::NAN,
    }
}
