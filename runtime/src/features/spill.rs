//! Bounded-memory grouping by entity: in go blocks of [`Rows`]; out come [`Partitions`] — the
//! rows themselves when they fit the memory budget, otherwise spill files under
//! `<store>/tmp/` to which rows were routed by a hash of their entity key, so that every entity
//! lies in exactly one partition. A partition still over budget is split again with another
//! hash seed (a few levels deep: one entity's rows cannot be split).

use super::layout::Layout;
use super::rows::{hash_key, record_key, Rows};
use super::FeatureError;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// Bytes buffered per spill file before a write.
const BUFFER: usize = 64 * 1024;
/// Re-splitting levels before an oversized partition is taken as it is.
const MAX_DEPTH: u64 = 3;

/// A temporary directory removed (with its files) when dropped.
#[derive(Debug)]
pub(crate) struct SpillDir {
    path: PathBuf,
}

impl SpillDir {
    fn create(root: &Path, view: &str) -> Result<SpillDir, FeatureError> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = root.join(format!("{view}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(FeatureError::io("create", &path))?;
        Ok(SpillDir { path })
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        // Best effort: a leftover directory under tmp/ wastes space but breaks nothing.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

struct SpillFile {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    rows: u64,
}

impl SpillFile {
    fn flush(&mut self) -> Result<(), FeatureError> {
        self.file.write_all(&self.buf).map_err(FeatureError::io("write", &self.path))?;
        self.buf.clear();
        Ok(())
    }
}

/// Writes records to `fanout` files named `<prefix>-<i>` in `dir`, routed by key hash.
struct Router {
    files: Vec<SpillFile>,
    seed: u64,
}

impl Router {
    fn new(dir: &Path, prefix: &str, fanout: usize, seed: u64) -> Result<Router, FeatureError> {
        let mut files = Vec::with_capacity(fanout);
        for i in 0..fanout {
            let path = dir.join(format!("{prefix}-{i}"));
            let file = File::create(&path).map_err(FeatureError::io("create", &path))?;
            files.push(SpillFile { path, file, buf: Vec::with_capacity(BUFFER), rows: 0 });
        }
        Ok(Router { files, seed })
    }

    fn target(&self, key: &[u8]) -> usize {
        (hash_key(key, self.seed) % self.files.len() as u64) as usize
    }

    fn push_rows(&mut self, rows: &Rows) -> Result<(), FeatureError> {
        for i in 0..rows.len() {
            let f = self.target(rows.key(i));
            let file = &mut self.files[f];
            rows.encode(i, &mut file.buf);
            file.rows += 1;
            if file.buf.len() >= BUFFER {
                file.flush()?;
            }
        }
        Ok(())
    }

    fn push_record(&mut self, record_with_len: &[u8], key: &[u8]) -> Result<(), FeatureError> {
        let f = self.target(key);
        let file = &mut self.files[f];
        file.buf.extend_from_slice(record_with_len);
        file.rows += 1;
        if file.buf.len() >= BUFFER {
            file.flush()?;
        }
        Ok(())
    }

    /// Flushes everything; returns the non-empty files with their row counts.
    fn finish(mut self) -> Result<Vec<(PathBuf, u64)>, FeatureError> {
        let mut out = Vec::new();
        for f in &mut self.files {
            f.flush()?;
        }
        for f in self.files {
            if f.rows > 0 {
                out.push((f.path, f.rows));
            } else {
                let _ = std::fs::remove_file(&f.path);
            }
        }
        Ok(out)
    }
}

/// Where the rows of a run ended up.
pub(crate) enum Partitions {
    /// Everything fitted in memory: one partition.
    Memory(Rows),
    /// Spill files (path, rows), each small enough to load unless one entity is too big alone.
    Files { _dir: SpillDir, parts: Vec<(PathBuf, u64)> },
}

/// Collects rows, spilling to hash partitions once they exceed the budget.
pub(crate) struct Partitioner<'a> {
    layout: &'a Layout,
    budget: usize,
    fanout: usize,
    tmp_root: PathBuf,
    mem: Rows,
    spill: Option<(SpillDir, Router)>,
}

impl<'a> Partitioner<'a> {
    pub fn new(layout: &'a Layout, tmp_root: &Path, budget: usize, fanout: usize) -> Partitioner<'a> {
        Partitioner { layout, budget, fanout, tmp_root: tmp_root.to_path_buf(), mem: Rows::new(layout), spill: None }
    }

    pub fn push(&mut self, block: &Rows) -> Result<(), FeatureError> {
        if self.spill.is_none() && self.mem.len() + block.len() <= self.budget {
            for i in 0..block.len() {
                self.mem.push_from(block, i, block.tail[i], block.state[i].clone());
            }
            return Ok(());
        }
        if self.spill.is_none() {
            let dir = SpillDir::create(&self.tmp_root, &self.layout.view)?;
            let mut router = Router::new(&dir.path, "p", self.fanout, 1)?;
            router.push_rows(&self.mem)?;
            self.mem = Rows::new(self.layout);
            self.spill = Some((dir, router));
        }
        match &mut self.spill {
            Some((_, router)) => router.push_rows(block),
            None => Ok(()),
        }
    }

    pub fn finish(self) -> Result<Partitions, FeatureError> {
        let Some((dir, router)) = self.spill else {
            return Ok(Partitions::Memory(self.mem));
        };
        let mut todo: Vec<(PathBuf, u64, u64)> = router.finish()?.into_iter().map(|(p, n)| (p, n, 1)).collect();
        let mut parts = Vec::new();
        while let Some((path, rows, depth)) = todo.pop() {
            if rows as usize <= self.budget || depth >= MAX_DEPTH {
                parts.push((path, rows));
                continue;
            }
            let prefix = format!("{}-s", path.file_name().and_then(|n| n.to_str()).unwrap_or("p"));
            let mut router = Router::new(&dir.path, &prefix, self.fanout, depth + 1)?;
            split(&path, &mut router)?;
            let _ = std::fs::remove_file(&path);
            todo.extend(router.finish()?.into_iter().map(|(p, n)| (p, n, depth + 1)));
        }
        parts.sort();
        Ok(Partitions::Files { _dir: dir, parts })
    }
}

/// Streams the records of `path` into `router` without loading the file.
fn split(path: &Path, router: &mut Router) -> Result<(), FeatureError> {
    let file = File::open(path).map_err(FeatureError::io("open", path))?;
    let mut r = BufReader::with_capacity(BUFFER, file);
    let mut record = Vec::new();
    loop {
        let mut len = [0u8; 4];
        match r.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(FeatureError::Io { action: "read", path: path.to_path_buf(), source: e }),
        }
        record.clear();
        record.extend_from_slice(&len);
        let n = u32::from_le_bytes(len) as usize;
        record.resize(4 + n, 0);
        r.read_exact(&mut record[4..]).map_err(FeatureError::io("read", path))?;
        let key = record_key(&record[4..]).ok_or_else(|| FeatureError::Corrupt {
            path: path.to_path_buf(),
            message: "a record is cut short".into(),
        })?;
        router.push_record(&record, key)?;
    }
}

/// Loads one spill file.
pub(crate) fn load(path: &Path, layout: &Layout) -> Result<Rows, FeatureError> {
    let bytes = std::fs::read(path).map_err(FeatureError::io("read", path))?;
    Rows::decode(&bytes, layout).map_err(|message| FeatureError::Corrupt { path: path.to_path_buf(), message })
}

/// Streams the records of a tail file as blocks of about `block_bytes` of records.
pub(crate) fn read_blocks(
    path: &Path,
    layout: &Layout,
    block_bytes: usize,
    mut f: impl FnMut(Rows) -> Result<(), FeatureError>,
) -> Result<(), FeatureError> {
    let file = File::open(path).map_err(FeatureError::io("open", path))?;
    let mut r = BufReader::with_capacity(BUFFER, file);
    let mut buf = Vec::new();
    let corrupt = |message: String| FeatureError::Corrupt { path: path.to_path_buf(), message };
    loop {
        let mut len = [0u8; 4];
        let more = match r.read_exact(&mut len) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => false,
            Err(e) => return Err(FeatureError::Io { action: "read", path: path.to_path_buf(), source: e }),
        };
        if more {
            let start = buf.len();
            buf.extend_from_slice(&len);
            buf.resize(start + 4 + u32::from_le_bytes(len) as usize, 0);
            r.read_exact(&mut buf[start + 4..]).map_err(FeatureError::io("read", path))?;
        }
        if !buf.is_empty() && (!more || buf.len() >= block_bytes) {
            f(Rows::decode(&buf, layout).map_err(corrupt)?)?;
            buf.clear();
        }
        if !more {
            return Ok(());
        }
    }
}
