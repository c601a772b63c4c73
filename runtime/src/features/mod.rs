//! The feature store: a feature view's source rows (Arrow batches) go in; out come an offline
//! store (Parquet history of every feature row), an online store (the latest row per entity) and,
//! for a training job, a [`TrainingSet`](crate::dataset::TrainingSet) joined point-in-time.
//!
//! # Semantics (the contract)
//!
//! * **Rows.** A view's rows are keyed by its join keys (all entities' keys, in order) and the
//!   source's event time (Unix microseconds). A source row whose join key or event time is null
//!   is an error naming the view, the column and the row.
//! * **Column** features are the row's value. **Expression** features evaluate
//!   [`featexpr`](mlops_compiler::featexpr) on the row (timestamps as Unix seconds, booleans as
//!   0/1, null and text → NaN); they are always floats.
//! * **Aggregate** features of a row of entity `k` at event time `t` aggregate `k`'s rows with
//!   event time in `(t − window, t]` that come at or before the row in (event time, input order):
//!   a row is included, rows tied at `t` that come later in the input are not (so the last of a
//!   tie sees them all, as a streaming system would). Nulls (and NaN) are skipped. `sum`, `mean`,
//!   `stddev` (sample, n − 1; fewer than 2 values → null) are floats; `count` counts non-null
//!   values; `min`, `max`, `last` keep the column's type; `last` is the latest non-null value.
//!   With no non-null value in the window every aggregate but `count` (0) is null, as in SQL.
//!   Windows must be positive.
//! * **Offline store** (`<store>/offline/<view address>/`): `part-NNNNN.parquet` files with the
//!   join keys, `event_time` (timestamp, µs, UTC) and every feature, sorted by key and time
//!   within a partition; `_state.json` with the watermark (the greatest event time
//!   materialised), the source fingerprint, row counts and the list of committed parts; and
//!   `_tails-NNNNN.bin`, the per-entity window state incremental runs continue from. Parts not
//!   listed in `_state.json` (left by a crash) are ignored and overwritten.
//! * **Incremental runs** read only source rows with event time > watermark (others are counted
//!   as skipped: late data is not materialised) and append one part. Each entity's tail (its rows
//!   within the largest window before its last row) and its running sums are persisted, so an
//!   incremental run produces exactly — bit for bit — what a full recompute would. A change of
//!   the view's definition discards the store and recomputes; the source fingerprint is only
//!   recorded (history rewritten in place needs [`FeatureStore::reset`]).
//! * **Bounded memory.** Batches stream; up to [`FeatureStore::with_partition_rows`] rows are
//!   kept in memory, beyond that rows are hash-partitioned by entity key into spill files under
//!   `<store>/tmp/` (split again while a partition is too big), and partitions are computed one at
//!   a time per worker thread. Memory grows with the partition size and the number of entities
//!   (online store), not with the input: one entity's rows are never split.
//! * **Online store** (`<store>/online/<view address>.json`, replaced atomically): the latest
//!   feature row per entity key; [`OnlineView::get`] returns nothing when that row is older than
//!   `now − ttl`.
//! * **Point-in-time join.** For a label row (keys, label time `T`), each view contributes the
//!   row of that entity with the greatest event time ≤ `T` (the later in input order on ties);
//!   no row, or a row older than `T − ttl`, gives NaN for all the view's features. Nothing with an
//!   event time after `T` can reach the row. Aggregating the label column in the label's own
//!   source would include the labelled row itself, so it is refused as leakage.
//! * **Encoding.** Numbers as f32; booleans 0/1; timestamps as Unix seconds; text features as
//!   codes into [`FeatureSpec::categories`](crate::dataset::FeatureSpec) (sorted distinct values
//!   in the set). Labels: bool → 0/1; numbers → the value (regression, binary 0/1) or the index
//!   into the sorted distinct values (multi-class); text → index into sorted
//!   [`TrainingSet::classes`](crate::dataset::TrainingSet). Rows whose label is null are left
//!   out; a null join key in a label row is an error.

mod layout;
mod materialize;
mod offline;
mod online;
mod rows;
mod spill;
mod training;
mod window;

pub use materialize::{materialize, MaterializeReport};
pub use offline::{read_offline, OfflineReader};
pub use online::{OnlineRow, OnlineValue, OnlineView};
pub use training::training_set;

use std::path::{Path, PathBuf};

/// Everything that can go wrong in the feature store.
#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    /// A file or directory could not be read or written.
    #[error("cannot {action} `{}`: {source}", path.display())]
    Io {
        /// What was attempted ("write", "read", …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Parquet reading or writing failed.
    #[error("parquet file `{}`: {source}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: parquet::errors::ParquetError,
    },
    /// Building or reading an Arrow batch failed.
    #[error("{context}: {source}")]
    Arrow {
        /// What was being done.
        context: String,
        /// The cause.
        source: arrow_schema::ArrowError,
    },
    /// The source's batches reported an error.
    #[error("reading {source_address} for {consumer}: {cause}")]
    Source {
        /// The source's address.
        source_address: String,
        /// The view or job reading it.
        consumer: String,
        /// The cause.
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A view cannot be computed as defined.
    #[error("feature view `{view}`: {message}")]
    InvalidView {
        /// The view's address.
        view: String,
        /// What is wrong.
        message: String,
    },
    /// A column of the input is missing or has the wrong type.
    #[error("{context}: column `{column}` {message}")]
    Schema {
        /// The view or source being read.
        context: String,
        /// The column.
        column: String,
        /// What is wrong.
        message: String,
    },
    /// A row has a null join key or event time.
    #[error("{context}: row {row} has a null `{column}`; every row needs its join keys and event time")]
    NullKey {
        /// The view or source being read.
        context: String,
        /// The column.
        column: String,
        /// Row number in the input, from 1.
        row: u64,
    },
    /// The view has never been materialised.
    #[error("feature view `{view}` has not been materialised: run `mlops materialize` first")]
    NotMaterialized {
        /// The view's address.
        view: String,
    },
    /// A store file exists but cannot be understood.
    #[error("store file `{}` is damaged: {message}; delete the view's directory and materialise again", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A training set cannot be built as asked.
    #[error("training set labelled by `{label}`: {message}")]
    Training {
        /// The label column (`source.x.column`).
        label: String,
        /// What is wrong.
        message: String,
    },
}

impl FeatureError {
    pub(crate) fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> FeatureError + 'a {
        move |source| FeatureError::Io { action, path: path.to_path_buf(), source }
    }
}

/// The embedded feature store: a directory holding `offline/`, `online/` and `tmp/`.
#[derive(Debug, Clone)]
pub struct FeatureStore {
    root: PathBuf,
    partition_rows: usize,
    fanout: usize,
    threads: usize,
}

/// Rows kept in memory before spilling to partitions: about 100 bytes each, so ~25 MB.
const DEFAULT_PARTITION_ROWS: usize = 256 * 1024;
/// Spill files per partitioning pass: many small partitions keep each one's working set in
/// cache (measured: a quarter less CPU than 64 on the benchmark) for 256 × 64 KiB of buffers.
const DEFAULT_FANOUT: usize = 256;

impl FeatureStore {
    /// Opens (creating if needed) the store rooted at `dir`.
    pub fn open(dir: &Path) -> Result<FeatureStore, FeatureError> {
        std::fs::create_dir_all(dir).map_err(FeatureError::io("create", dir))?;
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(FeatureStore {
            root: dir.to_path_buf(),
            partition_rows: DEFAULT_PARTITION_ROWS,
            fanout: DEFAULT_FANOUT,
            threads,
        })
    }

    /// Sets how many rows one partition may hold in memory (at least 1); inputs larger than this
    /// are spilled to disk in hash partitions. Small values force the partitioned path (tests).
    pub fn with_partition_rows(mut self, rows: usize) -> FeatureStore {
        self.partition_rows = rows.max(1);
        self
    }

    /// Sets how many spill files one partitioning pass writes (at least 2).
    pub fn with_fanout(mut self, fanout: usize) -> FeatureStore {
        self.fanout = fanout.max(2);
        self
    }

    /// Sets how many partitions are computed at once (at least 1; default: the cores).
    pub fn with_threads(mut self, threads: usize) -> FeatureStore {
        self.threads = threads.max(1);
        self
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The online store of a materialised view.
    pub fn online(&self, view_address: &str) -> Result<OnlineView, FeatureError> {
        online::load(self, view_address)
    }

    /// When the view's online store was last written (`None`: it has none), so a reader can
    /// tell it moved without loading it.
    pub fn online_written(&self, view_address: &str) -> Option<std::time::SystemTime> {
        let path = self.online_file(view_address).ok()?;
        std::fs::metadata(path).and_then(|m| m.modified()).ok()
    }

    /// The source fingerprint recorded by the view's last materialisation (`None`: never run).
    pub fn source_fingerprint(&self, view_address: &str) -> Result<Option<String>, FeatureError> {
        Ok(offline::load_state(&self.offline_dir(view_address)?)?.map(|s| s.source_fingerprint))
    }

    /// Forgets everything materialised for a view (offline and online), so the next run
    /// recomputes it from the whole source.
    pub fn reset(&self, view_address: &str) -> Result<(), FeatureError> {
        let dir = self.offline_dir(view_address)?;
        let online = self.online_file(view_address)?;
        for (path, result) in [(&dir, std::fs::remove_dir_all(&dir)), (&online, std::fs::remove_file(&online))] {
            match result {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(FeatureError::Io { action: "remove", path: path.clone(), source: e })
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// `<root>/offline/<view address>`, after checking the address cannot escape the store.
    pub(crate) fn offline_dir(&self, view_address: &str) -> Result<PathBuf, FeatureError> {
        check_address(view_address)?;
        Ok(self.root.join("offline").join(view_address))
    }

    pub(crate) fn online_file(&self, view_address: &str) -> Result<PathBuf, FeatureError> {
        check_address(view_address)?;
        Ok(self.root.join("online").join(format!("{view_address}.json")))
    }
}

/// Addresses become file names, so they must be plain names (`feature_view.x`, `module.m.feature_view.x`).
fn check_address(address: &str) -> Result<(), FeatureError> {
    let plain = !address.is_empty()
        && !address.starts_with('.')
        && address.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !address.contains("..");
    if plain {
        Ok(())
    } else {
        Err(FeatureError::InvalidView {
            view: address.to_string(),
            message: "the address cannot be used as a directory name (letters, digits, `.`, `_`, `-` only)".into(),
        })
    }
}

impl From<crate::fsio::FsError> for FeatureError {
    fn from(e: crate::fsio::FsError) -> Self {
        FeatureError::Io { action: e.action, path: e.path, source: e.source }
    }
}

/// Writes `bytes` to `path` atomically and durably (creating its directory).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FeatureError> {
    if let Some(dir) = path.parent() {
        crate::fsio::create_dirs(dir)?;
    }
    Ok(crate::fsio::write_atomic(path, bytes)?)
}

/// `<path>.tmp`: where a part file is streamed before it is renamed into place. Deterministic
/// (unlike [`crate::fsio::tmp_path`]), so a crashed run's leftover is overwritten by the next.
pub(crate) fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".tmp");
    PathBuf::from(s)
}
