//! Materialisation of one feature view: in go the view, its source, the source's batches and
//! a fingerprint of the source; out comes one committed run of the offline store (a part file,
//! the tails, `_state.json`), the updated online store and a [`MaterializeReport`].
//!
//! Order of writes: part and tails under temporary names, renamed; online store; state last.
//! A crash before the state is replaced leaves the previous run visible, and the next run
//! redoes the work (the online merge keeps the latest row, so redoing it is harmless).

use super::layout::Layout;
use super::offline::{self, part_name, tails_name, Part, PartWriter, State};
use super::online::{self, OnlineRow};
use super::rows::{extract, Rows};
use super::spill::{self, Partitioner, Partitions};
use super::window::{self, PartitionOutput};
use super::{tmp_path, FeatureError, FeatureStore};
use arrow_array::RecordBatch;
use mlops_compiler::model::{FeatureView, Source};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What a materialisation run did.
#[derive(Debug, Clone, PartialEq)]
pub struct MaterializeReport {
    /// The view's address.
    pub view: String,
    /// Source rows read.
    pub rows_read: u64,
    /// Source rows at or before the previous watermark, left out.
    pub rows_skipped: u64,
    /// Offline rows written (one per new source row).
    pub rows_written: u64,
    /// Watermark before the run (Unix µs).
    pub previous_watermark: Option<i64>,
    /// Watermark after the run (Unix µs).
    pub watermark: Option<i64>,
    /// Was everything computed from scratch (first run, reset, or the view's definition changed)?
    pub full_recompute: bool,
    /// The part file written, if any row was new.
    pub part: Option<PathBuf>,
    /// Partitions computed: 1 when everything fitted in memory.
    pub partitions: usize,
    /// Rows kept for the next incremental run.
    pub tail_rows: u64,
    /// Entities in the online store as this run wrote it (0 when it wrote none: offline-only
    /// views, or nothing new).
    pub online_entities: usize,
    /// Wall time of the run.
    pub duration: Duration,
}

/// Materialises `view` (at `view_address`) from `batches` of its `source` into `store`: only
/// rows after the stored watermark are taken, unless the view's definition changed since the
/// last run, in which case everything is recomputed. `source_fingerprint` (e.g.
/// [`data::fingerprint`](crate::data::fingerprint)) is recorded so callers can tell, with
/// [`FeatureStore::source_fingerprint`], whether the source changed at all; rewritten history
/// needs [`FeatureStore::reset`]. See the [module docs](super) for the semantics.
pub fn materialize<I, E>(
    store: &FeatureStore,
    view_address: &str,
    view: &FeatureView,
    source: &Source,
    batches: I,
    source_fingerprint: &str,
) -> Result<MaterializeReport, FeatureError>
where
    I: IntoIterator<Item = Result<RecordBatch, E>>,
    I::IntoIter: Send,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    let started = Instant::now();
    let layout = Layout::new(view_address, view, source)?;
    let dir = store.offline_dir(view_address)?;
    std::fs::create_dir_all(&dir).map_err(FeatureError::io("create", &dir))?;
    let stored = offline::load_state(&dir)?;
    let run = stored.as_ref().map_or(0, |s| s.runs);
    let (prev, stale) = match stored {
        Some(s) if s.fingerprint == layout.fingerprint => (Some(s), None),
        other => (None, other),
    };
    let after = prev.as_ref().and_then(|s| s.watermark);

    let mut partitioner = Partitioner::new(&layout, &store.root.join("tmp"), store.partition_rows, store.fanout);
    if let Some(tails) = prev.as_ref().and_then(|s| s.tails.as_ref()) {
        spill::read_blocks(&dir.join(tails), &layout, 4 << 20, |rows| partitioner.push(&rows))?;
    }
    let (mut rows_read, mut rows_skipped, mut new_rows, mut max_time) = (0u64, 0u64, 0u64, after);
    let mut seq = 0u64;
    // Decoding the source (CSV parsing, say) runs on its own thread, ahead of partitioning.
    let batches = batches.into_iter();
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel(2);
        s.spawn(move || {
            for item in batches {
                if tx.send(item).is_err() {
                    break; // the consumer stopped (an error): stop reading
                }
            }
        });
        for item in rx {
            let batch = item.map_err(|e| FeatureError::Source {
                source_address: view.source.clone(),
                consumer: view_address.to_string(),
                cause: e.into(),
            })?;
            let mut block = Rows::new(&layout);
            rows_skipped += extract(&batch, &layout, rows_read + 1, after, &mut seq, &mut block)?;
            rows_read += batch.num_rows() as u64;
            new_rows += block.len() as u64;
            if let Some(t) = block.time.iter().max() {
                max_time = Some(max_time.map_or(*t, |m| m.max(*t)));
            }
            partitioner.push(&block)?;
        }
        Ok::<(), FeatureError>(())
    })?;
    let report = |watermark, part, partitions, tail_rows, online_entities| MaterializeReport {
        view: view_address.to_string(),
        rows_read,
        rows_skipped,
        rows_written: new_rows,
        previous_watermark: after,
        watermark,
        full_recompute: prev.is_none(),
        part,
        partitions,
        tail_rows,
        online_entities,
        duration: started.elapsed(),
    };
    if let (0, Some(p)) = (new_rows, &prev) {
        return Ok(report(after, None, 0, p.tail_rows, 0));
    }
    let watermark = max_time.unwrap_or(i64::MIN);

    let part_path = dir.join(part_name(run));
    let tails_path = dir.join(tails_name(run));
    let _cleanup = RemoveOnDrop(vec![tmp_path(&part_path), tmp_path(&tails_path)]);
    let mut sink = Sink::new(&layout, tmp_path(&part_path), tmp_path(&tails_path))?;
    let partitions = match partitioner.finish()? {
        Partitions::Memory(rows) => {
            sink.take(window::compute(&rows, &layout, watermark, view.online)?)?;
            1
        }
        Partitions::Files { parts, _dir } => {
            compute_parallel(&parts, &layout, watermark, view.online, store.threads, &mut sink)?;
            parts.len()
        }
    };

    let (part, tail_rows, latest) = sink.finish()?;
    let part = match part {
        Some((rows, min_event_time, max_event_time)) => {
            rename(&tmp_path(&part_path), &part_path)?;
            Some(Part { file: part_name(run), rows, min_event_time, max_event_time })
        }
        None => None,
    };
    let tails = if tail_rows > 0 {
        rename(&tmp_path(&tails_path), &tails_path)?;
        Some(tails_name(run))
    } else {
        let _ = std::fs::remove_file(tmp_path(&tails_path));
        None
    };
    let online_entities = if view.online { online::update(store, &layout, latest, prev.is_none())? } else { 0 };
    let mut parts = prev.as_ref().map(|p| p.parts.clone()).unwrap_or_default();
    parts.extend(part.clone());
    let state = State {
        view: view_address.to_string(),
        fingerprint: layout.fingerprint.clone(),
        source_fingerprint: source_fingerprint.to_string(),
        watermark: max_time,
        rows: parts.iter().map(|p| p.rows).sum(),
        parts,
        tails,
        tail_rows,
        runs: run + 1,
    };
    offline::save_state(&dir, &state)?;

    // Committed: files of the previous state that the new one no longer lists can go.
    for old in prev.iter().chain(&stale) {
        let keep = |f: &String| state.parts.iter().any(|p| &p.file == f) || state.tails.as_ref() == Some(f);
        for f in old.parts.iter().map(|p| &p.file).chain(&old.tails) {
            if !keep(f) {
                let _ = std::fs::remove_file(dir.join(f));
            }
        }
    }
    Ok(report(max_time, part.map(|p| dir.join(p.file)), partitions, tail_rows, online_entities))
}

/// Removes files that may be left when a run fails (after a successful run they are gone).
struct RemoveOnDrop(Vec<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn rename(from: &Path, to: &Path) -> Result<(), FeatureError> {
    std::fs::rename(from, to).map_err(FeatureError::io("rename into place", to))
}

/// Computes spilled partitions on `threads` workers while this thread writes their results.
fn compute_parallel(
    parts: &[(PathBuf, u64)],
    layout: &Layout,
    watermark: i64,
    online: bool,
    threads: usize,
    sink: &mut Sink,
) -> Result<(), FeatureError> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    // A bounded queue: finished partitions wait for the writer instead of piling up in memory.
    let (tx, rx) = mpsc::sync_channel::<Result<PartitionOutput, FeatureError>>(threads);
    std::thread::scope(|s| {
        for _ in 0..threads.min(parts.len()) {
            let tx = tx.clone();
            let (next, failed) = (&next, &failed);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= parts.len() || failed.load(Ordering::Relaxed) {
                    break;
                }
                let path = &parts[i].0;
                let result = spill::load(path, layout).and_then(|rows| {
                    // The rows are in memory now; the file is no longer needed.
                    let _ = std::fs::remove_file(path);
                    window::compute(&rows, layout, watermark, online)
                });
                if tx.send(result).is_err() {
                    break;
                }
            });
        }
        drop(tx);
        let mut first_error = None;
        for result in rx {
            if let Err(e) = result.and_then(|out| sink.take(out)) {
                failed.store(true, Ordering::Relaxed);
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    })
}

/// Receives partition outputs: offline rows to the part file, tails to the tail file, latest
/// rows kept for the online store.
struct Sink {
    schema: arrow_schema::SchemaRef,
    part_tmp: PathBuf,
    part: Option<PartWriter>,
    tails_tmp: PathBuf,
    tails: BufWriter<File>,
    tail_rows: u64,
    latest: Vec<OnlineRow>,
}

impl Sink {
    fn new(layout: &Layout, part_tmp: PathBuf, tails_tmp: PathBuf) -> Result<Sink, FeatureError> {
        let file = File::create(&tails_tmp).map_err(FeatureError::io("create", &tails_tmp))?;
        Ok(Sink {
            schema: layout.offline_schema(),
            part_tmp,
            part: None,
            tails_tmp,
            tails: BufWriter::with_capacity(1 << 20, file),
            tail_rows: 0,
            latest: Vec::new(),
        })
    }

    fn take(&mut self, out: PartitionOutput) -> Result<(), FeatureError> {
        if let Some(batch) = &out.batch {
            let writer = match &mut self.part {
                Some(w) => w,
                None => self.part.insert(PartWriter::create(&self.part_tmp, self.schema.clone())?),
            };
            writer.write(batch, out.times)?;
        }
        self.tails.write_all(&out.tails).map_err(FeatureError::io("write", &self.tails_tmp))?;
        self.tail_rows += out.tail_rows;
        self.latest.extend(out.latest);
        Ok(())
    }

    #[allow(clippy::type_complexity)]
    fn finish(self) -> Result<(Option<(u64, i64, i64)>, u64, Vec<OnlineRow>), FeatureError> {
        let file = self.tails.into_inner().map_err(|e| FeatureError::Io {
            action: "write",
            path: self.tails_tmp.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(FeatureError::io("sync", &self.tails_tmp))?;
        let part = self.part.map(PartWriter::finish).transpose()?;
        Ok((part, self.tail_rows, self.latest))
    }
}
