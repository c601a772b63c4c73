//! Rows of one view in memory and on disk: in go Arrow batches (or spill/tail bytes), out come
//! [`Rows`] — encoded entity keys, event times, input sequence numbers and the value columns a
//! view reads — which can be encoded again as compact records for spill and tail files.
//!
//! Record layout (little-endian): length `u32` of the rest, flags `u8` (1 = tail row, 2 = carries window state), key length
//! `u32` and key bytes, time `i64`, sequence `u64`, one cell per value column, then for flag 2 one
//! [`AccState`] per window group. Keys encode each join key as a tag byte and its value, so equal
//! keys have equal bytes and the bytes decode back to typed values.

use super::layout::{type_fits, Col, Layout};
use super::FeatureError;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use mlops_compiler::model::ColumnType;

/// Running sums of one window group, persisted so incremental runs continue bit for bit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct AccState {
    /// Non-null values in the window.
    pub n: u64,
    /// Kahan-compensated sum and its compensation.
    pub sum: f64,
    pub comp: f64,
    /// Welford mean and sum of squared deviations (only kept for stddev).
    pub mean: f64,
    pub m2: f64,
}

/// Values of one column.
#[derive(Debug, Clone)]
pub(crate) enum Cells {
    F64(Vec<Option<f64>>),
    /// Ints and timestamps (µs).
    I64(Vec<Option<i64>>),
    Bool(Vec<Option<bool>>),
    Str(Vec<Option<Box<str>>>),
}

impl Cells {
    pub fn new(ty: ColumnType) -> Cells {
        match ty {
            ColumnType::Float => Cells::F64(Vec::new()),
            ColumnType::Int | ColumnType::Timestamp => Cells::I64(Vec::new()),
            ColumnType::Bool => Cells::Bool(Vec::new()),
            ColumnType::String | ColumnType::Category => Cells::Str(Vec::new()),
        }
    }

    /// The value as a number for aggregates: NaN and text count as null.
    pub fn num(&self, i: usize) -> Option<f64> {
        match self {
            Cells::F64(v) => v[i].filter(|x| !x.is_nan()),
            Cells::I64(v) => v[i].map(|x| x as f64),
            Cells::Bool(v) => v[i].map(|b| f64::from(u8::from(b))),
            Cells::Str(_) => None,
        }
    }

    pub fn is_null(&self, i: usize) -> bool {
        match self {
            Cells::F64(v) => v[i].is_none_or(f64::is_nan),
            Cells::I64(v) => v[i].is_none(),
            Cells::Bool(v) => v[i].is_none(),
            Cells::Str(v) => v[i].is_none(),
        }
    }

    fn push_from(&mut self, src: &Cells, i: usize) {
        match (self, src) {
            (Cells::F64(d), Cells::F64(s)) => d.push(s[i]),
            (Cells::I64(d), Cells::I64(s)) => d.push(s[i]),
            (Cells::Bool(d), Cells::Bool(s)) => d.push(s[i]),
            (Cells::Str(d), Cells::Str(s)) => d.push(s[i].clone()),
            // Both sides come from the same layout, so the variants always agree.
            _ => {}
        }
    }

    fn push_arrow(&mut self, a: &Arr<'_>, i: usize) {
        match (self, a) {
            (Cells::F64(d), Arr::F64(s)) => d.push(s.is_valid(i).then(|| s.value(i))),
            (Cells::I64(d), Arr::I64(s)) => d.push(s.is_valid(i).then(|| s.value(i))),
            (Cells::I64(d), Arr::Ts(s)) => d.push(s.is_valid(i).then(|| s.value(i))),
            (Cells::Bool(d), Arr::Bool(s)) => d.push(s.is_valid(i).then(|| s.value(i))),
            (Cells::Str(d), Arr::Str(s)) => d.push(s.is_valid(i).then(|| s.value(i).into())),
            _ => {}
        }
    }

    fn encode(&self, i: usize, out: &mut Vec<u8>) {
        match self {
            Cells::F64(v) => put_opt(out, v[i].map(f64::to_le_bytes)),
            Cells::I64(v) => put_opt(out, v[i].map(i64::to_le_bytes)),
            Cells::Bool(v) => out.push(v[i].map_or(0, |b| 1 + u8::from(b))),
            Cells::Str(v) => match &v[i] {
                None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
                Some(s) => {
                    out.extend_from_slice(&len_u32(s.len()).to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
            },
        }
    }

    fn decode_push(&mut self, r: &mut Reader<'_>) -> Result<(), String> {
        match self {
            Cells::F64(v) => v.push(if r.u8()? == 0 { None } else { Some(f64::from_le_bytes(r.array()?)) }),
            Cells::I64(v) => v.push(if r.u8()? == 0 { None } else { Some(i64::from_le_bytes(r.array()?)) }),
            Cells::Bool(v) => v.push(match r.u8()? {
                0 => None,
                b => Some(b == 2),
            }),
            Cells::Str(v) => {
                let n = r.u32()?;
                v.push(if n == u32::MAX { None } else { Some(r.str(n as usize)?.into()) });
            }
        }
        Ok(())
    }
}

fn put_opt(out: &mut Vec<u8>, v: Option<[u8; 8]>) {
    match v {
        None => out.push(0),
        Some(b) => {
            out.push(1);
            out.extend_from_slice(&b);
        }
    }
}

/// Lengths above 4 GiB cannot occur in one Arrow string array; saturate rather than panic.
fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX - 1)
}

/// A block of rows of one view, column by column.
#[derive(Debug, Clone)]
pub(crate) struct Rows {
    key_bytes: Vec<u8>,
    key_ends: Vec<usize>,
    pub time: Vec<i64>,
    pub seq: Vec<u64>,
    /// Rows replayed from the previous run's tail: they feed windows but are not output again.
    pub tail: Vec<bool>,
    /// Window state at this row, for the last tail row of an entity.
    pub state: Vec<Option<Box<[AccState]>>>,
    pub cols: Vec<Cells>,
}

impl Rows {
    pub fn new(layout: &Layout) -> Rows {
        Rows {
            key_bytes: Vec::new(),
            key_ends: Vec::new(),
            time: Vec::new(),
            seq: Vec::new(),
            tail: Vec::new(),
            state: Vec::new(),
            cols: layout.cols.iter().map(|c| Cells::new(c.ty)).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.time.len()
    }

    pub fn key(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.key_ends[i - 1] };
        &self.key_bytes[start..self.key_ends[i]]
    }

    /// Appends row `i` of `src`, optionally as a tail row carrying `state`.
    pub fn push_from(&mut self, src: &Rows, i: usize, tail: bool, state: Option<Box<[AccState]>>) {
        self.key_bytes.extend_from_slice(src.key(i));
        self.key_ends.push(self.key_bytes.len());
        self.time.push(src.time[i]);
        self.seq.push(src.seq[i]);
        self.tail.push(tail);
        self.state.push(state);
        for (d, s) in self.cols.iter_mut().zip(&src.cols) {
            d.push_from(s, i);
        }
    }

    /// Appends row `i` as a record (see the module doc).
    pub fn encode(&self, i: usize, out: &mut Vec<u8>) {
        self.encode_as(i, self.tail[i], self.state[i].as_deref(), out);
    }

    /// Appends row `i` as a record with the given tail flag and window state.
    pub fn encode_as(&self, i: usize, tail: bool, state: Option<&[AccState]>, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        out.push(u8::from(tail) | if state.is_some() { 2 } else { 0 });
        let key = self.key(i);
        out.extend_from_slice(&len_u32(key.len()).to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&self.time[i].to_le_bytes());
        out.extend_from_slice(&self.seq[i].to_le_bytes());
        for c in &self.cols {
            c.encode(i, out);
        }
        for s in state.unwrap_or_default() {
            out.extend_from_slice(&s.n.to_le_bytes());
            for x in [s.sum, s.comp, s.mean, s.m2] {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        let len = len_u32(out.len() - start - 4).to_le_bytes();
        out[start..start + 4].copy_from_slice(&len);
    }

    /// Decodes records written by [`Rows::encode`] for this layout.
    pub fn decode(bytes: &[u8], layout: &Layout) -> Result<Rows, String> {
        let mut rows = Rows::new(layout);
        let mut r = Reader { b: bytes, at: 0 };
        while r.at < bytes.len() {
            let len = r.u32()? as usize;
            let end = r.at + len;
            let flags = r.u8()?;
            let n = r.u32()? as usize;
            rows.key_bytes.extend_from_slice(r.take(n)?);
            rows.key_ends.push(rows.key_bytes.len());
            rows.time.push(i64::from_le_bytes(r.array()?));
            rows.seq.push(u64::from_le_bytes(r.array()?));
            for c in &mut rows.cols {
                c.decode_push(&mut r)?;
            }
            rows.tail.push(flags & 1 != 0);
            rows.state.push(if flags & 2 != 0 {
                let mut s = Vec::with_capacity(layout.groups.len());
                for _ in &layout.groups {
                    s.push(AccState {
                        n: u64::from_le_bytes(r.array()?),
                        sum: f64::from_le_bytes(r.array()?),
                        comp: f64::from_le_bytes(r.array()?),
                        mean: f64::from_le_bytes(r.array()?),
                        m2: f64::from_le_bytes(r.array()?),
                    });
                }
                Some(s.into_boxed_slice())
            } else {
                None
            });
            if r.at != end {
                return Err("a record's length does not match its content".into());
            }
        }
        Ok(rows)
    }
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len()).ok_or("a record is cut short")?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn str(&mut self, n: usize) -> Result<&'a str, String> {
        std::str::from_utf8(self.take(n)?).map_err(|_| "a text value is not UTF-8".to_string())
    }
}

/// A typed view of one Arrow column.
pub(crate) enum Arr<'a> {
    F64(&'a Float64Array),
    I64(&'a Int64Array),
    Ts(&'a TimestampMicrosecondArray),
    Bool(&'a BooleanArray),
    Str(&'a StringArray),
}

impl<'a> Arr<'a> {
    /// Finds `col` in `batch`, checking its type; `context` names the reader in errors.
    pub fn find(batch: &'a RecordBatch, col: &Col, context: &str) -> Result<Arr<'a>, FeatureError> {
        let schema_err =
            |message: String| FeatureError::Schema { context: context.to_string(), column: col.name.clone(), message };
        let i = batch.schema().index_of(&col.name).map_err(|_| schema_err("is missing from the input".into()))?;
        let a = batch.column(i).as_ref();
        if !type_fits(col.ty, a.data_type()) {
            return Err(schema_err(format!("is declared {} but the input has {}", col.ty.name(), a.data_type())));
        }
        match col.ty {
            ColumnType::Float => a.as_primitive_opt::<Float64Type>().map(Arr::F64),
            ColumnType::Int => a.as_primitive_opt::<Int64Type>().map(Arr::I64),
            ColumnType::Timestamp => a.as_primitive_opt::<TimestampMicrosecondType>().map(Arr::Ts),
            ColumnType::Bool => a.as_boolean_opt().map(Arr::Bool),
            ColumnType::String | ColumnType::Category => a.as_string_opt::<i32>().map(Arr::Str),
        }
        .ok_or_else(|| schema_err(format!("has an unexpected layout ({})", a.data_type())))
    }

    pub fn is_null(&self, i: usize) -> bool {
        match self {
            Arr::F64(a) => a.is_null(i),
            Arr::I64(a) => a.is_null(i),
            Arr::Ts(a) => a.is_null(i),
            Arr::Bool(a) => a.is_null(i),
            Arr::Str(a) => a.is_null(i),
        }
    }

    /// Appends this row's value as a key part; `false` when it is null.
    pub fn encode_key(&self, i: usize, out: &mut Vec<u8>) -> bool {
        if self.is_null(i) {
            return false;
        }
        match self {
            Arr::Str(a) => {
                let s = a.value(i);
                out.push(b'S');
                out.extend_from_slice(&len_u32(s.len()).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
            }
            Arr::I64(a) => {
                out.push(b'I');
                out.extend_from_slice(&a.value(i).to_le_bytes());
            }
            Arr::Ts(a) => {
                out.push(b'T');
                out.extend_from_slice(&a.value(i).to_le_bytes());
            }
            Arr::Bool(a) => {
                out.push(b'B');
                out.push(u8::from(a.value(i)));
            }
            // Float keys are refused when the layout is built.
            Arr::F64(a) => {
                out.push(b'F');
                out.extend_from_slice(&a.value(i).to_le_bytes());
            }
        }
        true
    }
}

/// One decoded part of a key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum KeyPart<'a> {
    Str(&'a str),
    Int(i64),
    Time(i64),
    Bool(bool),
    Float(f64),
}

impl std::fmt::Display for KeyPart<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyPart::Str(s) => f.write_str(s),
            KeyPart::Int(n) | KeyPart::Time(n) => write!(f, "{n}"),
            KeyPart::Bool(b) => write!(f, "{b}"),
            KeyPart::Float(x) => write!(f, "{x}"),
        }
    }
}

/// The key bytes of one record (without its length prefix); `None` if it is cut short.
pub(crate) fn record_key(record: &[u8]) -> Option<&[u8]> {
    let n = u32::from_le_bytes(record.get(1..5)?.try_into().ok()?) as usize;
    record.get(5..5 + n)
}

/// Decodes a key encoded by [`Arr::encode_key`]; `None` if the bytes are damaged.
pub(crate) fn decode_key(mut b: &[u8]) -> Option<Vec<KeyPart<'_>>> {
    let mut parts = Vec::new();
    while let Some((&tag, rest)) = b.split_first() {
        let eight = |r: &[u8]| -> Option<[u8; 8]> { r.get(..8)?.try_into().ok() };
        let (part, rest) = match tag {
            b'S' => {
                let n = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
                let s = std::str::from_utf8(rest.get(4..4 + n)?).ok()?;
                (KeyPart::Str(s), &rest[4 + n..])
            }
            b'I' => (KeyPart::Int(i64::from_le_bytes(eight(rest)?)), &rest[8..]),
            b'T' => (KeyPart::Time(i64::from_le_bytes(eight(rest)?)), &rest[8..]),
            b'F' => (KeyPart::Float(f64::from_le_bytes(eight(rest)?)), &rest[8..]),
            b'B' => (KeyPart::Bool(*rest.first()? != 0), &rest[1..]),
            _ => return None,
        };
        parts.push(part);
        b = rest;
    }
    Some(parts)
}

/// Appends the rows of `batch` with event time after `after` to `out`, numbering them from
/// `*seq`; returns how many were skipped as already materialised. `first_row` is the input row
/// number of the batch's first row (from 1), for errors.
pub(crate) fn extract(
    batch: &RecordBatch,
    layout: &Layout,
    first_row: u64,
    after: Option<i64>,
    seq: &mut u64,
    out: &mut Rows,
) -> Result<u64, FeatureError> {
    let context = format!("{} (read for {})", layout.source, layout.view);
    let time_col = Col { name: layout.time_col.clone(), ty: ColumnType::Timestamp };
    let Arr::Ts(time) = Arr::find(batch, &time_col, &context)? else {
        return Err(FeatureError::Schema { context, column: time_col.name, message: "is not a timestamp".into() });
    };
    let keys = layout.keys.iter().map(|k| Arr::find(batch, k, &context)).collect::<Result<Vec<_>, _>>()?;
    let cols = layout.cols.iter().map(|c| Arr::find(batch, c, &context)).collect::<Result<Vec<_>, _>>()?;
    let null = |column: &str, i: usize| FeatureError::NullKey {
        context: context.clone(),
        column: column.to_string(),
        row: first_row + i as u64,
    };
    let mut skipped = 0;
    for i in 0..batch.num_rows() {
        if time.is_null(i) {
            return Err(null(&layout.time_col, i));
        }
        let t = time.value(i);
        if after.is_some_and(|w| t <= w) {
            skipped += 1;
            continue;
        }
        for (k, a) in layout.keys.iter().zip(&keys) {
            if !a.encode_key(i, &mut out.key_bytes) {
                // Drop the half-written key so `out` stays consistent for the caller.
                out.key_bytes.truncate(out.key_ends.last().copied().unwrap_or(0));
                return Err(null(&k.name, i));
            }
        }
        out.key_ends.push(out.key_bytes.len());
        out.time.push(t);
        out.seq.push(*seq);
        *seq += 1;
        out.tail.push(false);
        out.state.push(None);
        for (c, a) in out.cols.iter_mut().zip(&cols) {
            c.push_arrow(a, i);
        }
    }
    Ok(skipped)
}

const MIX: u64 = 0x9E37_79B9_7F4A_7C15;

/// A fast, seedable 64-bit hash of key bytes (partitioning and entity maps use different seeds,
/// so a partition's keys still spread over its map's buckets).
pub(crate) fn hash_key(bytes: &[u8], seed: u64) -> u64 {
    let mut h = seed.wrapping_mul(MIX) ^ (bytes.len() as u64);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(MIX).rotate_left(31);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(MIX).rotate_left(31);
    }
    // murmur3's finaliser: every input bit affects every output bit.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// [`std::hash::BuildHasher`] over [`hash_key`] for maps keyed by key bytes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KeyHash;

/// The hasher [`KeyHash`] builds.
#[derive(Debug, Default)]
pub(crate) struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0 = hash_key(bytes, self.0 ^ 0x5bd1_e995);
    }
}

impl std::hash::BuildHasher for KeyHash {
    type Hasher = KeyHasher;
    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}
