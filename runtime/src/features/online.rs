//! The embedded online store: in go the latest offline row of each entity from a
//! materialisation run; out comes `<store>/online/<view address>.json` (replaced atomically)
//! holding the latest row per entity key, and [`OnlineView`] which serves it with ttl checks.

use super::layout::Layout;
use super::{write_atomic, FeatureError, FeatureStore};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::Array;
use arrow_schema::DataType;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One feature value as served: numbers (booleans 0/1, timestamps in Unix seconds), text or null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OnlineValue {
    /// Missing.
    Null,
    /// A number.
    Number(f64),
    /// A text (string or category) value.
    Text(String),
}

/// The latest row of one entity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnlineRow {
    /// Join key values, as text, in the view's key order.
    pub key: Vec<String>,
    /// Event time of the row (Unix microseconds).
    pub event_time: i64,
    /// Feature values, in the view's feature order.
    pub values: Vec<OnlineValue>,
}

#[derive(Debug, Serialize, Deserialize)]
struct OnlineFile {
    view: String,
    fingerprint: String,
    /// Time to live in microseconds.
    ttl: Option<i64>,
    features: Vec<String>,
    rows: Vec<OnlineRow>,
}

/// The online rows of one view, loaded in memory for lookups.
#[derive(Debug, Clone)]
pub struct OnlineView {
    view: String,
    ttl: Option<i64>,
    features: Vec<String>,
    rows: HashMap<Vec<String>, (i64, Vec<OnlineValue>)>,
}

impl OnlineView {
    /// The latest feature row of the entity `key` (join key values as text, e.g. `["acct_7"]`),
    /// as (event time in Unix µs, named values); `None` when the entity is unknown or its row
    /// is older than `now − ttl` (`now` in Unix µs).
    pub fn get(&self, key: &[String], now: i64) -> Option<(i64, Vec<(&str, &OnlineValue)>)> {
        let (t, values) = self.rows.get(key)?;
        if self.ttl.is_some_and(|ttl| *t < now.saturating_sub(ttl)) {
            return None;
        }
        Some((*t, self.features.iter().map(String::as_str).zip(values).collect()))
    }

    /// The view's address.
    pub fn view(&self) -> &str {
        &self.view
    }

    /// Feature names, in order.
    pub fn features(&self) -> &[String] {
        &self.features
    }

    /// Number of entities held.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Does it hold no entity?
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Loads a view's online store.
pub(crate) fn load(store: &FeatureStore, view_address: &str) -> Result<OnlineView, FeatureError> {
    let path = store.online_file(view_address)?;
    let Some(file) = read(&path)? else {
        return Err(FeatureError::NotMaterialized { view: view_address.to_string() });
    };
    Ok(OnlineView {
        view: file.view,
        ttl: file.ttl,
        features: file.features,
        rows: file.rows.into_iter().map(|r| (r.key, (r.event_time, r.values))).collect(),
    })
}

fn read(path: &std::path::Path) -> Result<Option<OnlineFile>, FeatureError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FeatureError::Io { action: "read", path: path.to_path_buf(), source: e }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| FeatureError::Corrupt { path: path.to_path_buf(), message: e.to_string() })
}

/// Merges a run's latest rows into the view's online file (`reset`: start from nothing).
pub(crate) fn update(
    store: &FeatureStore,
    layout: &Layout,
    latest: Vec<OnlineRow>,
    reset: bool,
) -> Result<usize, FeatureError> {
    let path = store.online_file(&layout.view)?;
    let old = if reset { None } else { read(&path)?.filter(|f| f.fingerprint == layout.fingerprint) };
    let mut rows: HashMap<Vec<String>, OnlineRow> =
        old.map(|f| f.rows.into_iter().map(|r| (r.key.clone(), r)).collect()).unwrap_or_default();
    for r in latest {
        match rows.get(&r.key) {
            Some(old) if old.event_time > r.event_time => {}
            _ => {
                rows.insert(r.key.clone(), r);
            }
        }
    }
    let mut rows: Vec<OnlineRow> = rows.into_values().collect();
    rows.sort_by(|a, b| a.key.cmp(&b.key));
    let count = rows.len();
    let file = OnlineFile {
        view: layout.view.clone(),
        fingerprint: layout.fingerprint.clone(),
        ttl: layout.ttl,
        features: layout.features.iter().map(|f| f.name.clone()).collect(),
        rows,
    };
    let bytes = serde_json::to_vec(&file)
        .map_err(|e| FeatureError::Corrupt { path: path.clone(), message: format!("cannot serialise: {e}") })?;
    write_atomic(&path, &bytes)?;
    Ok(count)
}

/// The value at row `i` of an offline column, as served.
pub(crate) fn value_at(a: &dyn Array, i: usize) -> OnlineValue {
    if a.is_null(i) {
        return OnlineValue::Null;
    }
    match a.data_type() {
        DataType::Float64 => a.as_primitive_opt::<Float64Type>().map(|a| a.value(i)).map_or(OnlineValue::Null, num),
        DataType::Int64 => a.as_primitive_opt::<Int64Type>().map(|a| a.value(i) as f64).map_or(OnlineValue::Null, num),
        DataType::Timestamp(..) => a
            .as_primitive_opt::<TimestampMicrosecondType>()
            .map(|a| a.value(i) as f64 / 1e6)
            .map_or(OnlineValue::Null, num),
        DataType::Boolean => a.as_boolean_opt().map(|a| f64::from(u8::from(a.value(i)))).map_or(OnlineValue::Null, num),
        DataType::Utf8 => {
            a.as_string_opt::<i32>().map_or(OnlineValue::Null, |a| OnlineValue::Text(a.value(i).to_string()))
        }
        _ => OnlineValue::Null,
    }
}

fn num(x: f64) -> OnlineValue {
    if x.is_nan() {
        OnlineValue::Null
    } else {
        OnlineValue::Number(x)
    }
}
