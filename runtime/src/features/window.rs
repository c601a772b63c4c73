//! Feature computation for one partition: in go [`Rows`] (every row of the entities they hold,
//! replayed tail rows first) and the view's [`Layout`]; out come the offline rows of the new
//! source rows as one Arrow batch, the entities' tails for the next incremental run and the
//! latest row per entity for the online store.
//!
//! Rows are sorted by (entity, event time, input order) and each entity is swept once. Every
//! (column, window) group keeps a window start, running sums, monotonic deques for min/max and
//! the latest non-null position, so a row costs O(groups) amortised whatever the window size.

use super::layout::{Calc, Layout};
use super::online::{value_at, OnlineRow};
use super::rows::{decode_key, AccState, Cells, KeyHash, KeyPart, Rows};
use super::FeatureError;
use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use mlops_compiler::model::{Aggregate, ColumnType};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// What one partition produced.
pub(crate) struct PartitionOutput {
    /// Offline rows of the new (non-tail) rows; `None` when there were none.
    pub batch: Option<RecordBatch>,
    /// Tail records for the next run (see [`Rows::encode`]).
    pub tails: Vec<u8>,
    pub tail_rows: u64,
    /// The latest new row of each entity (empty unless asked for).
    pub latest: Vec<OnlineRow>,
    /// Least and greatest event time of the new rows.
    pub times: (i64, i64),
}

impl AccState {
    fn add(&mut self, x: f64, welford: bool) {
        self.n += 1;
        // Kahan summation keeps long-running window sums from drifting as values come and go.
        let y = x - self.comp;
        let t = self.sum + y;
        self.comp = (t - self.sum) - y;
        self.sum = t;
        if welford {
            let d = x - self.mean;
            self.mean += d / self.n as f64;
            self.m2 += d * (x - self.mean);
        }
    }

    fn remove(&mut self, x: f64, welford: bool) {
        if self.n <= 1 {
            // An empty window restarts from exact zeros, which is also what a fresh run starts from.
            *self = AccState::default();
            return;
        }
        self.n -= 1;
        let y = -x - self.comp;
        let t = self.sum + y;
        self.comp = (t - self.sum) - y;
        self.sum = t;
        if welford {
            let d = x - self.mean;
            self.mean -= d / self.n as f64;
            self.m2 -= d * (x - self.mean);
        }
    }
}

/// The sliding window of one group over one entity; positions index the entity's sorted rows.
#[derive(Default)]
struct Win {
    start: usize,
    acc: AccState,
    /// Non-null cells (text included), for `count`.
    count: u64,
    min_q: VecDeque<usize>,
    max_q: VecDeque<usize>,
    last: Option<usize>,
}

enum Builder {
    F64(Float64Builder),
    I64(Int64Builder),
    Ts(TimestampMicrosecondBuilder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
}

impl Builder {
    fn new(ty: ColumnType, capacity: usize) -> Builder {
        match ty {
            ColumnType::Float => Builder::F64(Float64Builder::with_capacity(capacity)),
            ColumnType::Int => Builder::I64(Int64Builder::with_capacity(capacity)),
            ColumnType::Timestamp => {
                Builder::Ts(TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"))
            }
            ColumnType::Bool => Builder::Bool(BooleanBuilder::with_capacity(capacity)),
            ColumnType::String | ColumnType::Category => Builder::Str(StringBuilder::new()),
        }
    }

    fn null(&mut self) {
        match self {
            Builder::F64(b) => b.append_null(),
            Builder::I64(b) => b.append_null(),
            Builder::Ts(b) => b.append_null(),
            Builder::Bool(b) => b.append_null(),
            Builder::Str(b) => b.append_null(),
        }
    }

    fn f64(&mut self, v: Option<f64>) {
        match self {
            Builder::F64(b) => b.append_option(v),
            _ => self.null(),
        }
    }

    /// Copies cell `i` (same type family as the builder by construction).
    fn copy(&mut self, cells: &Cells, i: usize) {
        match (self, cells) {
            (Builder::F64(b), Cells::F64(v)) => b.append_option(v[i]),
            (Builder::I64(b), Cells::I64(v)) => b.append_option(v[i]),
            (Builder::Ts(b), Cells::I64(v)) => b.append_option(v[i]),
            (Builder::Bool(b), Cells::Bool(v)) => b.append_option(v[i]),
            (Builder::Str(b), Cells::Str(v)) => b.append_option(v[i].as_deref()),
            (b, _) => b.null(),
        }
    }

    fn key(&mut self, part: Option<&KeyPart<'_>>) {
        match (self, part) {
            (Builder::Str(b), Some(KeyPart::Str(s))) => b.append_value(s),
            (Builder::I64(b), Some(KeyPart::Int(n))) => b.append_value(*n),
            (Builder::Ts(b), Some(KeyPart::Time(n))) => b.append_value(*n),
            (Builder::Bool(b), Some(KeyPart::Bool(x))) => b.append_value(*x),
            (b, _) => b.null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Builder::F64(mut b) => Arc::new(b.finish()),
            Builder::I64(mut b) => Arc::new(b.finish()),
            Builder::Ts(mut b) => Arc::new(b.finish()),
            Builder::Bool(mut b) => Arc::new(b.finish()),
            Builder::Str(mut b) => Arc::new(b.finish()),
        }
    }
}

/// Computes one partition. `watermark` is the run's new watermark: entities whose last row is
/// a full largest-window older than it keep no tail, since no future row can see their rows.
pub(crate) fn compute(
    rows: &Rows,
    layout: &Layout,
    watermark: i64,
    want_latest: bool,
) -> Result<PartitionOutput, FeatureError> {
    let n = rows.len();
    let mut ids: HashMap<&[u8], u32, KeyHash> = HashMap::with_capacity_and_hasher(n / 4 + 1, KeyHash);
    let mut entity = Vec::with_capacity(n);
    for i in 0..n {
        let next = ids.len() as u32;
        entity.push(*ids.entry(rows.key(i)).or_insert(next));
    }
    let entities = ids.len();
    drop(ids);
    // A counting sort by entity keeps input order within each entity; sources mostly arrive in
    // time order, so sorting each entity's rows by (time, input order) afterwards is cheap.
    let mut start = vec![0usize; entities + 1];
    for &e in &entity {
        start[e as usize + 1] += 1;
    }
    for e in 0..entities {
        start[e + 1] += start[e];
    }
    let mut fill = start.clone();
    let mut order = vec![0u32; n];
    for (i, &e) in entity.iter().enumerate() {
        order[fill[e as usize]] = i as u32;
        fill[e as usize] += 1;
    }
    drop((entity, fill));
    for e in 0..entities {
        order[start[e]..start[e + 1]].sort_by_key(|&i| (rows.time[i as usize], rows.seq[i as usize]));
    }
    // The sweep reads these for every row and window, so gather them in sorted order once:
    // sequential reads instead of cache misses.
    let time: Vec<i64> = order.iter().map(|&i| rows.time[i as usize]).collect();
    let tail: Vec<bool> = order.iter().map(|&i| rows.tail[i as usize]).collect();
    // Per aggregated column (shared by its windows): the value as a number (NaN when null or
    // text) and whether it is present (non-null, text included).
    let mut gathered: Vec<(usize, Vec<f64>, Vec<bool>)> = Vec::new();
    let mut values_of: Vec<usize> = Vec::with_capacity(layout.groups.len());
    for g in &layout.groups {
        let slot = match gathered.iter().position(|(c, ..)| *c == g.col) {
            Some(slot) => slot,
            None => {
                let cells = &rows.cols[g.col];
                let nums = order.iter().map(|&i| cells.num(i as usize).unwrap_or(f64::NAN)).collect();
                let present = order.iter().map(|&i| !cells.is_null(i as usize)).collect();
                gathered.push((g.col, nums, present));
                gathered.len() - 1
            }
        };
        values_of.push(slot);
    }

    let new_rows = tail.iter().filter(|t| !**t).count();
    let mut keys: Vec<Builder> = layout.keys.iter().map(|k| Builder::new(k.ty, new_rows)).collect();
    let mut times = TimestampMicrosecondBuilder::with_capacity(new_rows).with_timezone("UTC");
    let mut outs: Vec<Builder> = layout.features.iter().map(|f| Builder::new(f.dtype, new_rows)).collect();
    let mut wins: Vec<Win> = layout.groups.iter().map(|_| Win::default()).collect();
    let mut latest_at: Vec<(usize, usize)> = Vec::new(); // (output row, row index)
    let mut tails = Vec::new();
    let mut tail_rows = 0u64;
    let mut out_row = 0usize;
    let mut times_seen = (i64::MAX, i64::MIN);
    let mut expr_vals: Vec<Option<f64>> = Vec::new();

    // Positions `q` index the sorted arrays; `order[q]` is the row in `rows`.
    for e in 0..entities {
        let (lo, hi) = (start[e], start[e + 1]);
        let key_parts = decode_key(rows.key(order[lo] as usize)).ok_or_else(|| FeatureError::InvalidView {
            view: layout.view.clone(),
            message: "an entity key could not be decoded (damaged spill or tail file)".into(),
        })?;
        for w in &mut wins {
            w.start = lo;
            w.acc = AccState::default();
            w.count = 0;
            w.min_q.clear();
            w.max_q.clear();
            w.last = None;
        }
        let mut last_out = None;
        for q in lo..hi {
            let r = order[q] as usize;
            let t = time[q];
            for ((g, w), &slot) in layout.groups.iter().zip(wins.iter_mut()).zip(&values_of) {
                let (_, nums, present) = &gathered[slot];
                // (t − window, t]: drop rows at or before t − window.
                let limit = t.saturating_sub(g.window);
                while w.start < q && time[w.start] <= limit {
                    let old = w.start;
                    if !nums[old].is_nan() {
                        w.acc.remove(nums[old], g.stddev);
                    }
                    if present[old] {
                        w.count -= 1;
                    }
                    if w.min_q.front() == Some(&old) {
                        w.min_q.pop_front();
                    }
                    if w.max_q.front() == Some(&old) {
                        w.max_q.pop_front();
                    }
                    w.start += 1;
                }
                if present[q] {
                    w.count += 1;
                    w.last = Some(q);
                }
                let x = nums[q];
                if !x.is_nan() {
                    w.acc.add(x, g.stddev);
                    if g.min {
                        while w.min_q.back().is_some_and(|&b| nums[b] >= x) {
                            w.min_q.pop_back();
                        }
                        w.min_q.push_back(q);
                    }
                    if g.max {
                        while w.max_q.back().is_some_and(|&b| nums[b] <= x) {
                            w.max_q.pop_back();
                        }
                        w.max_q.push_back(q);
                    }
                }
            }
            if tail[q] {
                if let Some(state) = &rows.state[r] {
                    // The previous run's running sums at this row: continue exactly from them.
                    for (w, s) in wins.iter_mut().zip(state.iter()) {
                        w.acc = *s;
                    }
                }
                continue;
            }
            for (k, part) in keys.iter_mut().enumerate() {
                part.key(key_parts.get(k));
            }
            times.append_value(t);
            times_seen = (times_seen.0.min(t), times_seen.1.max(t));
            for (f, out) in layout.features.iter().zip(outs.iter_mut()) {
                match &f.calc {
                    Calc::Column(c) => out.copy(&rows.cols[*c], r),
                    Calc::Expr(expr, reads) => {
                        expr_vals.clear();
                        expr_vals.extend(reads.iter().map(|(_, c)| {
                            let v = rows.cols[*c].num(r);
                            // Expressions see timestamps as Unix seconds.
                            if layout.cols[*c].ty == ColumnType::Timestamp {
                                v.map(|us| us / 1e6)
                            } else {
                                v
                            }
                        }));
                        let lookup = |name: &str| reads.iter().position(|(n, _)| n == name).and_then(|j| expr_vals[j]);
                        out.f64(Some(expr.eval(&lookup)));
                    }
                    Calc::Agg { group, agg } => {
                        let w = &wins[*group];
                        let cells = &rows.cols[layout.groups[*group].col];
                        let s = &w.acc;
                        match agg {
                            Aggregate::Sum => out.f64((s.n > 0).then_some(s.sum)),
                            Aggregate::Mean => out.f64((s.n > 0).then(|| s.sum / s.n as f64)),
                            Aggregate::Stddev => out.f64((s.n > 1).then(|| (s.m2.max(0.0) / (s.n - 1) as f64).sqrt())),
                            Aggregate::Count => match out {
                                Builder::I64(b) => b.append_value(w.count as i64),
                                other => other.null(),
                            },
                            Aggregate::Min | Aggregate::Max | Aggregate::Last => {
                                let at = match agg {
                                    Aggregate::Min => w.min_q.front().copied(),
                                    Aggregate::Max => w.max_q.front().copied(),
                                    _ => w.last.filter(|&q| q >= w.start),
                                };
                                match at {
                                    Some(q) => out.copy(cells, order[q] as usize),
                                    None => out.null(),
                                }
                            }
                        }
                    }
                }
            }
            last_out = Some((out_row, r));
            out_row += 1;
        }
        if want_latest {
            latest_at.extend(last_out);
        }
        // The tail: rows a future row (after the watermark) may still have in a window.
        if layout.max_window > 0 {
            let t_last = time[hi - 1];
            if t_last > watermark.saturating_sub(layout.max_window) {
                let from = t_last.saturating_sub(layout.max_window);
                let accs: Vec<AccState> = wins.iter().map(|w| w.acc).collect();
                for q in lo..hi {
                    if time[q] > from {
                        let last = q + 1 == hi;
                        rows.encode_as(order[q] as usize, true, last.then_some(&accs[..]), &mut tails);
                        tail_rows += 1;
                    }
                }
            }
        }
    }

    let batch = if out_row == 0 {
        None
    } else {
        let mut columns: Vec<ArrayRef> = keys.into_iter().map(Builder::finish).collect();
        columns.push(Arc::new(times.finish()));
        columns.extend(outs.into_iter().map(Builder::finish));
        let batch = RecordBatch::try_new(layout.offline_schema(), columns).map_err(|source| FeatureError::Arrow {
            context: format!("building the offline rows of {}", layout.view),
            source,
        })?;
        Some(batch)
    };
    let latest = match &batch {
        Some(batch) => latest_at
            .iter()
            .map(|&(o, r)| OnlineRow {
                key: decode_key(rows.key(r)).unwrap_or_default().iter().map(ToString::to_string).collect(),
                event_time: rows.time[r],
                values: (0..layout.features.len())
                    .map(|f| value_at(batch.column(layout.keys.len() + 1 + f).as_ref(), o))
                    .collect(),
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(PartitionOutput { batch, tails, tail_rows, latest, times: times_seen })
}
