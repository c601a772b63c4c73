//! The embedded offline store: in go a run's offline batches and tail records; out come
//! `part-NNNNN.parquet` and `_tails-NNNNN.bin` under `<store>/offline/<view address>/`, made
//! visible by replacing `_state.json` last (so a crash leaves the previous run's view intact),
//! and [`read_offline`], which streams a view's committed rows back as Arrow batches.

use super::{write_atomic, FeatureError, FeatureStore};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};

const STATE_FILE: &str = "_state.json";

/// `_state.json`: what the offline store of a view holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct State {
    pub view: String,
    /// Fingerprint of the view's definition and source; a change forces a full recompute.
    pub fingerprint: String,
    pub source_fingerprint: String,
    /// Greatest event time materialised (Unix µs); later runs read only rows after it.
    pub watermark: Option<i64>,
    /// Committed parts, oldest first.
    pub parts: Vec<Part>,
    /// The tail file incremental runs continue from.
    pub tails: Option<String>,
    pub tail_rows: u64,
    /// Rows in all parts.
    pub rows: u64,
    /// Runs that wrote something; numbers the next part and tail file, never reused.
    pub runs: u64,
}

/// One committed part file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Part {
    pub file: String,
    pub rows: u64,
    pub min_event_time: i64,
    pub max_event_time: i64,
}

/// The state of the view stored in `dir`, if it has been materialised.
pub(crate) fn load_state(dir: &Path) -> Result<Option<State>, FeatureError> {
    let path = dir.join(STATE_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(FeatureError::Io { action: "read", path, source: e }),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| FeatureError::Corrupt { path, message: e.to_string() })
}

/// Commits a run: from now on readers see `state`.
pub(crate) fn save_state(dir: &Path, state: &State) -> Result<(), FeatureError> {
    let path = dir.join(STATE_FILE);
    let bytes = serde_json::to_vec_pretty(state)
        .map_err(|e| FeatureError::Corrupt { path: path.clone(), message: format!("cannot serialise: {e}") })?;
    write_atomic(&path, &bytes)
}

/// Writes one part file.
pub(crate) struct PartWriter {
    path: PathBuf,
    writer: ArrowWriter<File>,
    pub rows: u64,
    pub min_time: i64,
    pub max_time: i64,
}

impl PartWriter {
    pub fn create(path: &Path, schema: SchemaRef) -> Result<PartWriter, FeatureError> {
        let file = File::create(path).map_err(FeatureError::io("create", path))?;
        // The writer buffers a whole row group: keep groups modest so memory stays bounded.
        let mut props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(128 * 1024));
        // Dictionaries pay off for keys, counts and text, rarely for real-valued features.
        for f in schema.fields() {
            if f.data_type() == &arrow_schema::DataType::Float64 {
                props = props.set_column_dictionary_enabled(ColumnPath::from(f.name().as_str()), false);
            }
        }
        let props = props.build();
        let writer = ArrowWriter::try_new(file, schema, Some(props))
            .map_err(|source| FeatureError::Parquet { path: path.to_path_buf(), source })?;
        Ok(PartWriter { path: path.to_path_buf(), writer, rows: 0, min_time: i64::MAX, max_time: i64::MIN })
    }

    /// Appends rows; `times` are their event times (for the part's bounds).
    pub fn write(&mut self, batch: &RecordBatch, times: (i64, i64)) -> Result<(), FeatureError> {
        self.writer.write(batch).map_err(|source| FeatureError::Parquet { path: self.path.clone(), source })?;
        self.rows += batch.num_rows() as u64;
        self.min_time = self.min_time.min(times.0);
        self.max_time = self.max_time.max(times.1);
        Ok(())
    }

    pub fn finish(self) -> Result<(u64, i64, i64), FeatureError> {
        let file =
            self.writer.into_inner().map_err(|source| FeatureError::Parquet { path: self.path.clone(), source })?;
        // The state file will point at this part: make sure its bytes are on disk first.
        file.sync_all().map_err(FeatureError::io("sync", &self.path))?;
        Ok((self.rows, self.min_time, self.max_time))
    }
}

/// Streams the committed rows of a materialised view (all columns, or only `columns`).
pub struct OfflineReader {
    parts: VecDeque<PathBuf>,
    columns: Option<Vec<String>>,
    current: Option<(PathBuf, ParquetRecordBatchReader)>,
    schema: Option<SchemaRef>,
}

impl OfflineReader {
    fn open_next(&mut self) -> Result<bool, FeatureError> {
        let Some(path) = self.parts.pop_front() else { return Ok(false) };
        let file = File::open(&path).map_err(FeatureError::io("open", &path))?;
        let perr = |source| FeatureError::Parquet { path: path.clone(), source };
        let mut builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(perr)?.with_batch_size(64 * 1024);
        if let Some(cols) = &self.columns {
            let schema = builder.schema().clone();
            let mut indices = Vec::new();
            for c in cols {
                let i = schema.index_of(c).map_err(|_| FeatureError::Corrupt {
                    path: path.clone(),
                    message: format!("column `{c}` is missing"),
                })?;
                indices.push(i);
            }
            let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
            builder = builder.with_projection(mask);
        }
        let reader = builder.build().map_err(perr)?;
        self.current = Some((path, reader));
        Ok(true)
    }

    /// The schema of the first part (`None` before the first batch when there are no parts).
    pub fn schema(&self) -> Option<SchemaRef> {
        self.schema.clone()
    }
}

impl Iterator for OfflineReader {
    type Item = Result<RecordBatch, FeatureError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((path, reader)) = &mut self.current {
                match reader.next() {
                    Some(Ok(batch)) => {
                        self.schema.get_or_insert_with(|| batch.schema());
                        return Some(Ok(batch));
                    }
                    Some(Err(source)) => {
                        let context = format!("reading `{}`", path.display());
                        self.current = None;
                        return Some(Err(FeatureError::Arrow { context, source }));
                    }
                    None => self.current = None,
                }
            }
            match self.open_next() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Streams the offline rows of a materialised view: join keys, `event_time` and every feature
/// (or only `columns`, in the file's column order), part by part.
pub fn read_offline(
    store: &FeatureStore,
    view_address: &str,
    columns: Option<&[&str]>,
) -> Result<OfflineReader, FeatureError> {
    let dir = store.offline_dir(view_address)?;
    let state = load_state(&dir)?.ok_or_else(|| FeatureError::NotMaterialized { view: view_address.to_string() })?;
    Ok(OfflineReader {
        parts: state.parts.iter().map(|p| dir.join(&p.file)).collect(),
        columns: columns.map(|c| c.iter().map(|s| s.to_string()).collect()),
        current: None,
        schema: None,
    })
}

/// File name of the part written by run number `run`.
pub(crate) fn part_name(run: u64) -> String {
    format!("part-{run:05}.parquet")
}

/// File name of the tails written by run number `run`.
pub(crate) fn tails_name(run: u64) -> String {
    format!("_tails-{run:05}.bin")
}
