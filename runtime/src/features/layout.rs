//! A feature view compiled for execution: in go the view and its source; out comes a [`Layout`] — the key, time and value columns to read with their
//! types, each feature as a computation over those columns, the distinct (column, window)
//! groups aggregates share, the offline schema and a fingerprint of the definition.

use super::FeatureError;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use mlops_compiler::featexpr::{self, Expr};
use mlops_compiler::model::{Aggregate, ColumnType, FeatureKind, FeatureView, Source};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Bumped whenever the meaning of stored files changes, so old stores are recomputed.
const FORMAT_VERSION: u32 = 1;

/// Name of the event-time column in the offline store.
pub(crate) const EVENT_TIME: &str = "event_time";

/// A typed column read from the source.
#[derive(Debug, Clone)]
pub(crate) struct Col {
    pub name: String,
    pub ty: ColumnType,
}

/// How one feature is computed from a row and its entity's window.
#[derive(Debug, Clone)]
pub(crate) enum Calc {
    /// The value of column `cols[i]`.
    Column(usize),
    /// An expression; each column it reads with its index in `cols`.
    Expr(Expr, Vec<(String, usize)>),
    /// An aggregate over group `group`'s window.
    Agg { group: usize, agg: Aggregate },
}

/// One feature: its name, computation and output type.
#[derive(Debug, Clone)]
pub(crate) struct FeatureCalc {
    pub name: String,
    pub calc: Calc,
    pub dtype: ColumnType,
}

/// Aggregates over the same column and window share one sliding window.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Group {
    pub col: usize,
    /// Window length in microseconds (> 0).
    pub window: i64,
    pub stddev: bool,
    pub min: bool,
    pub max: bool,
}

/// A view ready to run.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub view: String,
    pub source: String,
    pub keys: Vec<Col>,
    pub time_col: String,
    /// Value columns read (each once), in first-use order.
    pub cols: Vec<Col>,
    pub features: Vec<FeatureCalc>,
    pub groups: Vec<Group>,
    /// The largest window (µs); 0 without aggregates.
    pub max_window: i64,
    /// Time to live (µs).
    pub ttl: Option<i64>,
    /// Changes whenever the definition changes what would be stored.
    pub fingerprint: String,
}

impl Layout {
    pub fn new(view_address: &str, view: &FeatureView, source: &Source) -> Result<Layout, FeatureError> {
        let invalid = |message: String| FeatureError::InvalidView { view: view_address.to_string(), message };
        let declared = |name: &str| {
            source
                .column(name)
                .map(|c| c.ty)
                .ok_or_else(|| invalid(format!("column `{name}` is not declared in the schema of {}", view.source)))
        };
        let time_col = source
            .timestamp
            .clone()
            .ok_or_else(|| invalid(format!("{} has no `timestamp`, so its rows have no event time", view.source)))?;
        if declared(&time_col)? != ColumnType::Timestamp {
            return Err(invalid(format!("the event-time column `{time_col}` of {} is not a timestamp", view.source)));
        }
        if view.join_keys.is_empty() {
            return Err(invalid("it has no join keys (its entities declare none)".into()));
        }
        let mut keys = Vec::new();
        for k in &view.join_keys {
            let ty = declared(k)?;
            if ty == ColumnType::Float {
                return Err(invalid(format!(
                    "join key `{k}` is a float; keys must be strings, ints, bools or timestamps"
                )));
            }
            keys.push(Col { name: k.clone(), ty });
        }

        let mut cols: Vec<Col> = Vec::new();
        let mut col_index = |name: &str| -> Result<usize, FeatureError> {
            if let Some(i) = cols.iter().position(|c| c.name == name) {
                return Ok(i);
            }
            cols.push(Col { name: name.to_string(), ty: declared(name)? });
            Ok(cols.len() - 1)
        };
        let mut groups: Vec<Group> = Vec::new();
        let mut features: Vec<FeatureCalc> = Vec::new();
        for f in &view.features {
            let taken =
                f.name == EVENT_TIME || view.join_keys.contains(&f.name) || features.iter().any(|g| g.name == f.name);
            if taken {
                return Err(invalid(format!(
                    "feature name `{}` is used twice (join keys and `{EVENT_TIME}` are columns of the store too)",
                    f.name
                )));
            }
            let (calc, dtype) = match &f.kind {
                FeatureKind::Column { column } => {
                    let c = col_index(column)?;
                    (Calc::Column(c), declared(column)?)
                }
                FeatureKind::Expression { expression, .. } => {
                    let expr = featexpr::parse(expression).map_err(|e| {
                        invalid(format!("feature `{}`: expression {expression:?}: {}", f.name, e.message))
                    })?;
                    let mut reads = Vec::new();
                    for c in expr.columns() {
                        let i = col_index(&c)?;
                        reads.push((c, i));
                    }
                    (Calc::Expr(expr, reads), ColumnType::Float)
                }
                FeatureKind::Aggregate { column, aggregate, window } => {
                    let c = col_index(column)?;
                    let ty = declared(column)?;
                    let numeric = ty.is_numeric() || ty == ColumnType::Bool;
                    let fits = match aggregate {
                        Aggregate::Sum | Aggregate::Mean | Aggregate::Stddev => numeric,
                        Aggregate::Min | Aggregate::Max => numeric || ty == ColumnType::Timestamp,
                        Aggregate::Count | Aggregate::Last => true,
                    };
                    if !fits {
                        return Err(invalid(format!(
                            "feature `{}`: {aggregate:?} cannot aggregate `{column}` of type {}",
                            f.name,
                            ty.name()
                        )));
                    }
                    let window = i64::try_from(window.as_millis())
                        .ok()
                        .and_then(|ms| ms.checked_mul(1000))
                        .filter(|w| *w > 0)
                        .ok_or_else(|| invalid(format!("feature `{}`: the window must be positive", f.name)))?;
                    let g = match groups.iter().position(|g| g.col == c && g.window == window) {
                        Some(g) => g,
                        None => {
                            groups.push(Group { col: c, window, stddev: false, min: false, max: false });
                            groups.len() - 1
                        }
                    };
                    let group = &mut groups[g];
                    group.stddev |= *aggregate == Aggregate::Stddev;
                    group.min |= *aggregate == Aggregate::Min;
                    group.max |= *aggregate == Aggregate::Max;
                    let dtype = match aggregate {
                        Aggregate::Count => ColumnType::Int,
                        Aggregate::Min | Aggregate::Max | Aggregate::Last => ty,
                        Aggregate::Sum | Aggregate::Mean | Aggregate::Stddev => ColumnType::Float,
                    };
                    (Calc::Agg { group: g, agg: *aggregate }, dtype)
                }
            };
            features.push(FeatureCalc { name: f.name.clone(), calc, dtype });
        }
        let max_window = groups.iter().map(|g| g.window).max().unwrap_or(0);
        let ttl = view.ttl.map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 1000).saturating_mul(1000));

        let mut h = Sha256::new();
        h.update(FORMAT_VERSION.to_le_bytes());
        h.update(serde_json::to_vec(view).unwrap_or_default());
        h.update(time_col.as_bytes());
        for c in keys.iter().chain(&cols) {
            h.update(format!("\n{}:{}", c.name, c.ty.name()).as_bytes());
        }
        let fingerprint = h.finalize().iter().map(|b| format!("{b:02x}")).collect();

        Ok(Layout {
            view: view_address.to_string(),
            source: view.source.clone(),
            keys,
            time_col,
            cols,
            features,
            groups,
            max_window,
            ttl,
            fingerprint,
        })
    }

    /// Columns of the offline store: join keys, `event_time`, features.
    pub fn offline_schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self.keys.iter().map(|k| Field::new(&k.name, arrow_type(k.ty), false)).collect();
        fields.push(Field::new(EVENT_TIME, arrow_type(ColumnType::Timestamp), false));
        fields.extend(self.features.iter().map(|f| Field::new(&f.name, arrow_type(f.dtype), true)));
        Arc::new(Schema::new(fields))
    }
}

/// The Arrow type a column of this type has in source batches and in the offline store: the
/// sources' mapping, so the two can never disagree.
pub(crate) fn arrow_type(ty: ColumnType) -> DataType {
    crate::data::arrow_type(ty)
}

/// Does an Arrow type carry values of this column type? (Any time zone: µs are UTC-based.)
pub(crate) fn type_fits(ty: ColumnType, dt: &DataType) -> bool {
    match ty {
        ColumnType::Timestamp => matches!(dt, DataType::Timestamp(TimeUnit::Microsecond, _)),
        _ => *dt == arrow_type(ty),
    }
}
