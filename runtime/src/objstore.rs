//! The data directory mirrored to an object store — what pods do instead of sharing a
//! ReadWriteMany volume when the kubernetes target names `object_store = "s3://bucket/prefix"`.
//! In: the URL, the pod's own (local, empty at start) data directory, the standard `AWS_*`
//! variables. Out: the same files in both places, file by file.
//!
//! Every file of the data directory has one writer at a time, as on the shared volume: a pod's
//! prediction log, feedback and counters are its own; rollouts and events are the controller's;
//! the registry and the feature store are written under a lock. So the mirror is a per-file
//! copy, not a merge:
//!
//! * **push** uploads the files changed here since they were last synchronised (size or
//!   modification time moved), deletes remotely the ones deleted here, and uploads commit files
//!   (`index.json`, `_state.json`) after everything else, so a reader never sees an index
//!   naming a file not there yet. An upload is conditional on the object still being what this
//!   pod last saw (`If-Match`, or `If-None-Match: *` for a new one); when another writer moved it
//!   meanwhile, the local file still wins (the volume's last-writer-wins) and the report counts
//!   the conflict, so it is logged.
//! * **pull** downloads the objects changed remotely since last seen (by ETag) whose local copy
//!   did not change meanwhile, commit files last, each replaced atomically; objects deleted
//!   remotely are deleted here.
//! * **area locks** (`registry/`, `features/`) are objects created with `If-None-Match: *`:
//!   one holder across every pod; the holder pulls the area, writes, pushes it and releases.
//!   A lock older than its time to live is taken over (its holder died).
//!
//! Hidden files (atomic writes' temporaries) and `*.lock` files are never mirrored. Only
//! `s3://` URLs are supported: S3 and every S3-compatible store (MinIO, Ceph, R2, GCS's XML
//! API) through `AWS_ENDPOINT_URL`.
//!
//! The mirror is process-wide ([`install`] / [`active`]): the data directory is one per
//! process, and the registry and pipeline find it without threading it through every call.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as Key;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload, RetryConfig, UpdateVersion};

use crate::fsio::{create_dirs, write_atomic};

/// Why the mirror failed; each names the URL, object or file.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    /// The URL is not one the mirror reads.
    #[error("object store `{url}`: {message}")]
    Url {
        /// The URL.
        url: String,
        /// What is wrong and the fix.
        message: String,
    },
    /// The store refused or could not be reached.
    #[error(
        "cannot {action} {url}/{key}: {message}; check the bucket exists and the pod's AWS_* variables \
         (credentials, AWS_REGION, AWS_ENDPOINT_URL for an S3-compatible store)"
    )]
    Store {
        /// What was being done.
        action: &'static str,
        /// The store's URL.
        url: String,
        /// The object, relative to the URL.
        key: String,
        /// The store's error.
        message: String,
    },
    /// A local file operation failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another pod holds an area's lock.
    #[error("{url}/{area} is busy: {holder} holds its lock (since {age}s); try again when it has finished")]
    Locked {
        /// The store's URL.
        url: String,
        /// The area.
        area: String,
        /// Who holds it.
        holder: String,
        /// For how long, in seconds.
        age: u64,
    },
}

impl From<crate::fsio::FsError> for MirrorError {
    fn from(e: crate::fsio::FsError) -> Self {
        MirrorError::Io { action: e.action, path: e.path, source: e.source }
    }
}

type Result<T, E = MirrorError> = std::result::Result<T, E>;

/// What one push or pull did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Files uploaded.
    pub uploaded: usize,
    /// Files downloaded.
    pub downloaded: usize,
    /// Files deleted (remotely by a push, locally by a pull).
    pub deleted: usize,
    /// Files another writer changed too: uploads that overwrote it, downloads skipped.
    pub conflicts: Vec<String>,
}

impl SyncReport {
    fn add(&mut self, other: SyncReport) {
        self.uploaded += other.uploaded;
        self.downloaded += other.downloaded;
        self.deleted += other.deleted;
        self.conflicts.extend(other.conflicts);
    }
}

/// A file as last synchronised: the object's ETag and the local file's size and mtime then.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    etag: String,
    len: u64,
    mtime: SystemTime,
}

/// A local file's size and modification time.
type Stat = (u64, SystemTime);

/// An object's bytes and ETag.
type Object = (Vec<u8>, Option<String>);

/// The data directory `local` mirrored to the object store at `url`.
pub struct Mirror {
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: String,
    local: PathBuf,
    // Async calls run here, awaited through a channel, so the mirror works from plain threads
    // and from inside the agent's own runtime alike.
    rt: tokio::runtime::Runtime,
    seen: Mutex<BTreeMap<String, Seen>>,
    // One push or pull at a time in this process: they share `seen`.
    busy: Mutex<()>,
}

impl std::fmt::Debug for Mirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mirror").field("url", &self.url).field("local", &self.local).finish()
    }
}

/// Files that commit others: written last, read last.
fn is_commit_file(rel: &str) -> bool {
    matches!(rel.rsplit('/').next(), Some("index.json" | "_state.json"))
}

/// Never mirrored: hidden files (temporaries of atomic writes, lock objects) and lock files.
fn is_private(rel: &str) -> bool {
    rel.split('/').any(|s| s.starts_with('.')) || rel.ends_with(".lock")
}

/// `s3://bucket[/prefix]` as (bucket, prefix without slashes at either end), split as the
/// compiler checked it.
pub fn parse_url(url: &str) -> Result<(String, String)> {
    mlops_compiler::emit::kubernetes::object_store::parse(url).map(|l| (l.bucket, l.prefix)).map_err(|e| {
        MirrorError::Url {
            url: url.to_string(),
            message: format!("{e}; write s3://BUCKET[/PREFIX] (S3-compatible stores: s3:// with AWS_ENDPOINT_URL)"),
        }
    })
}

impl Mirror {
    /// The mirror of `local` at `url`, configured from the `AWS_*` variables (region default
    /// `us-east-1`); checks the bucket can be listed.
    pub fn open(url: &str, local: &Path) -> Result<Mirror> {
        Mirror::open_with(url, local, std::env::vars())
    }

    /// [`Mirror::open`] with the `AWS_*` settings taken from `vars` instead of the environment.
    pub fn open_with(url: &str, local: &Path, vars: impl IntoIterator<Item = (String, String)>) -> Result<Mirror> {
        let (bucket, prefix) = parse_url(url)?;
        let vars: Vec<(String, String)> = vars.into_iter().filter(|(k, _)| k.starts_with("AWS_")).collect();
        let var = |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let region = var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")).unwrap_or_else(|| "us-east-1".into());
        let mut builder = AmazonS3Builder::new().with_bucket_name(&bucket);
        for (key, value) in &vars {
            if let Ok(config) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                builder = builder.with_config(config, value);
            }
        }
        builder = builder.with_region(region);
        // A store that does not answer fails within half a minute, not after the default three.
        let retry = RetryConfig { max_retries: 10, retry_timeout: Duration::from_secs(30), ..Default::default() };
        let store = builder
            .with_retry(retry)
            .build()
            .map_err(|e| MirrorError::Url { url: url.to_string(), message: e.to_string() })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mlops-mirror")
            .enable_all()
            .build()
            .map_err(|e| MirrorError::Io {
                action: "start the object-store client for",
                path: local.into(),
                source: e,
            })?;
        let mirror = Mirror {
            url: url.trim_end_matches('/').to_string(),
            store: Arc::new(store),
            prefix,
            local: local.to_path_buf(),
            rt,
            seen: Mutex::new(BTreeMap::new()),
            busy: Mutex::new(()),
        };
        // One listing request: the bucket exists and these credentials may read it.
        let store = mirror.store.clone();
        let at = mirror.key("");
        mirror
            .block(async move { store.list_with_delimiter((!at.as_ref().is_empty()).then_some(&at)).await })
            .map_err(|e| mirror.store_err("list", "", e))?;
        Ok(mirror)
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The local data directory.
    pub fn local(&self) -> &Path {
        &self.local
    }

    fn key(&self, rel: &str) -> Key {
        Key::from(if self.prefix.is_empty() { rel.to_string() } else { format!("{}/{rel}", self.prefix) })
    }

    fn store_err(&self, action: &'static str, rel: &str, e: object_store::Error) -> MirrorError {
        // The client's own message ends at "error sending request"; the cause is further down.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message = format!("{message}: {text}");
            }
            source = cause.source();
        }
        MirrorError::Store { action, url: self.url.clone(), key: rel.to_string(), message }
    }

    /// Runs `f` on the mirror's runtime and waits for it.
    fn block<T: Send + 'static>(&self, f: impl std::future::Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        self.rt.spawn(async move {
            let _ = tx.send(f.await);
        });
        rx.recv().expect("the mirror's runtime runs as long as the mirror")
    }

    /// Remote objects under `area` (relative paths → ETag), private ones left out.
    fn remote_files(&self, area: &str) -> Result<BTreeMap<String, String>> {
        let store = self.store.clone();
        let base = if self.prefix.is_empty() { String::new() } else { format!("{}/", self.prefix) };
        let list_at = self.key(area.trim_end_matches('/'));
        let listed = self.block(async move {
            let at = (!list_at.as_ref().is_empty()).then_some(&list_at);
            let mut out = Vec::new();
            let mut stream = store.list(at);
            while let Some(item) = stream.next().await {
                out.push(item?);
            }
            Ok::<_, object_store::Error>(out)
        });
        let listed = listed.map_err(|e| self.store_err("list", area, e))?;
        Ok(listed
            .into_iter()
            .filter_map(|m| {
                let rel = m.location.as_ref().strip_prefix(&base)?.to_string();
                (!is_private(&rel)).then(|| (rel, m.e_tag.unwrap_or_default()))
            })
            .collect())
    }

    /// Local files under `area` (relative paths with `/`), private ones left out.
    fn local_files(&self, area: &str) -> Result<BTreeMap<String, Stat>> {
        let mut out = BTreeMap::new();
        let start = if area.is_empty() { self.local.clone() } else { self.local.join(area) };
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(MirrorError::Io { action: "read directory", path: dir, source }),
            };
            for entry in entries {
                let entry =
                    entry.map_err(|source| MirrorError::Io { action: "read directory", path: dir.clone(), source })?;
                let path = entry.path();
                let Ok(rel) = path.strip_prefix(&self.local) else { continue };
                let Some(rel) = rel.to_str().map(|r| r.replace(std::path::MAIN_SEPARATOR, "/")) else { continue };
                if is_private(&rel) {
                    continue;
                }
                let meta = entry.metadata().map_err(|source| MirrorError::Io {
                    action: "read",
                    path: path.clone(),
                    source,
                })?;
                if meta.is_dir() {
                    stack.push(path);
                } else if meta.is_file() {
                    out.insert(rel, (meta.len(), meta.modified().unwrap_or(UNIX_EPOCH)));
                }
            }
        }
        Ok(out)
    }

    fn stat(&self, rel: &str) -> Option<Stat> {
        let meta = std::fs::metadata(self.local.join(rel)).ok()?;
        Some((meta.len(), meta.modified().unwrap_or(UNIX_EPOCH)))
    }

    /// Uploads what changed here under each of `areas` (relative directories; `""` is all).
    pub fn push(&self, areas: &[&str]) -> Result<SyncReport> {
        self.per_area(areas, Mirror::push_area)
    }

    /// `one` on each area in turn, one push or pull of this process at a time.
    fn per_area(&self, areas: &[&str], one: fn(&Mirror, &str) -> Result<SyncReport>) -> Result<SyncReport> {
        let _busy = self.busy.lock().unwrap_or_else(|p| p.into_inner());
        let mut report = SyncReport::default();
        for area in areas {
            report.add(one(self, area)?);
        }
        Ok(report)
    }

    fn push_area(&self, area: &str) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        let local = self.local_files(area)?;
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut changed: Vec<&String> = local
            .iter()
            .filter(|(rel, (len, mtime))| seen.get(*rel).is_none_or(|s| s.len != *len || s.mtime != *mtime))
            .map(|(rel, _)| rel)
            .collect();
        changed.sort_by_key(|rel| (is_commit_file(rel), rel.as_str()));
        for rel in changed {
            let path = self.local.join(rel);
            let Some(stat) = self.stat(rel) else { continue };
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(MirrorError::Io { action: "read", path, source }),
            };
            let mode = match seen.get(rel) {
                Some(s) => PutMode::Update(UpdateVersion { e_tag: Some(s.etag.clone()), version: None }),
                None => PutMode::Create,
            };
            let etag = match self.put(rel, bytes.clone(), mode)? {
                Some(etag) => etag,
                None => {
                    // Another writer moved it since this pod last saw it: the local file wins.
                    report.conflicts.push(rel.clone());
                    self.put(rel, bytes, PutMode::Overwrite)?.unwrap_or_default()
                }
            };
            self.remember(rel, etag, stat);
            report.uploaded += 1;
        }
        let gone: Vec<String> =
            seen.keys().filter(|rel| in_area(rel, area) && !local.contains_key(*rel)).cloned().collect();
        for rel in gone {
            let store = self.store.clone();
            let key = self.key(&rel);
            match self.block(async move { store.delete(&key).await }) {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.store_err("delete", &rel, e)),
            }
            self.seen.lock().unwrap_or_else(|p| p.into_inner()).remove(&rel);
            report.deleted += 1;
        }
        Ok(report)
    }

    /// Puts `bytes` at `rel` with `mode`; `None` when its precondition failed.
    fn put(&self, rel: &str, bytes: Vec<u8>, mode: PutMode) -> Result<Option<String>> {
        let store = self.store.clone();
        let key = self.key(rel);
        let opts = PutOptions { mode, ..Default::default() };
        match self.block(async move { store.put_opts(&key, PutPayload::from(bytes), opts).await }) {
            Ok(r) => Ok(Some(r.e_tag.unwrap_or_default())),
            Err(object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. }) => Ok(None),
            Err(e) => Err(self.store_err("upload", rel, e)),
        }
    }

    /// The object at `rel` and its ETag; `None` when there is none.
    fn get(&self, rel: &str) -> Result<Option<Object>, object_store::Error> {
        let store = self.store.clone();
        let key = self.key(rel);
        let got = self.block(async move {
            let r = store.get(&key).await?;
            let etag = r.meta.e_tag.clone();
            Ok::<_, object_store::Error>((r.bytes().await?.to_vec(), etag))
        });
        match got {
            Ok(g) => Ok(Some(g)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn remember(&self, rel: &str, etag: String, (len, mtime): Stat) {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).insert(rel.to_string(), Seen { etag, len, mtime });
    }

    /// Downloads what changed remotely under each of `areas` (`""` is all).
    pub fn pull(&self, areas: &[&str]) -> Result<SyncReport> {
        self.per_area(areas, Mirror::pull_area)
    }

    fn pull_area(&self, area: &str) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        let remote = self.remote_files(area)?;
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut wanted: Vec<(&String, &String)> =
            remote.iter().filter(|(rel, etag)| seen.get(*rel).is_none_or(|s| &s.etag != *etag)).collect();
        wanted.sort_by_key(|(rel, _)| (is_commit_file(rel), rel.as_str()));
        for (rel, etag) in wanted {
            let here = self.stat(rel);
            // Changed here too (a file this pod writes): its next push decides.
            if let (Some(s), Some((len, mtime))) = (seen.get(rel), here) {
                if s.len != len || s.mtime != mtime {
                    report.conflicts.push(rel.clone());
                    continue;
                }
            }
            let (bytes, got_etag) = match self.get(rel) {
                Ok(Some(g)) => g,
                // Deleted since the listing: the next pull sees it gone.
                Ok(None) => continue,
                Err(e) => return Err(self.store_err("download", rel, e)),
            };
            let path = self.local.join(rel);
            if let Some(dir) = path.parent() {
                create_dirs(dir)?;
            }
            write_atomic(&path, &bytes)?;
            if let Some(stat) = self.stat(rel) {
                self.remember(rel, got_etag.unwrap_or_else(|| etag.clone()), stat);
            }
            report.downloaded += 1;
        }
        let gone: Vec<String> =
            seen.keys().filter(|rel| in_area(rel, area) && !remote.contains_key(*rel)).cloned().collect();
        for rel in gone {
            let s = &seen[&rel];
            // Deleted remotely; removed here unless it changed here since.
            if self.stat(&rel).is_none_or(|(len, mtime)| s.len == len && s.mtime == mtime) {
                let path = self.local.join(&rel);
                match std::fs::remove_file(&path) {
                    Ok(()) => report.deleted += 1,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(source) => return Err(MirrorError::Io { action: "remove", path, source }),
                }
                self.seen.lock().unwrap_or_else(|p| p.into_inner()).remove(&rel);
            }
        }
        Ok(report)
    }

    /// Pushes everything changed here but the locked areas (written only under their lock),
    /// then pulls `areas`: one round of a pod's background synchronisation.
    pub fn sync(&self, areas: &[&str]) -> Result<SyncReport> {
        let mut report = SyncReport::default();
        let top = self.local_files("")?;
        let mut own: Vec<String> = top
            .keys()
            .filter_map(|rel| rel.split('/').next())
            .filter(|a| !LOCKED_AREAS.contains(a))
            .map(str::to_string)
            .collect();
        own.dedup();
        let own_refs: Vec<&str> = own.iter().map(String::as_str).collect();
        report.add(self.push(&own_refs)?);
        report.add(self.pull(areas)?);
        Ok(report)
    }

    /// Takes `area`'s lock (waiting up to `wait` for another holder; one older than `ttl` is
    /// taken over), then pulls the area. Release with [`AreaLock::commit`] (push, then
    /// release) or by dropping it (release only).
    pub fn lock_area(&self, area: &str, wait: Duration, ttl: Duration) -> Result<AreaLock<'_>> {
        let rel = format!("{area}/.mlops-lock");
        let start = Instant::now();
        let holder = format!("{} (pid {})", crate::pod::pod_name(), std::process::id());
        let body = |now: u64| serde_json::json!({ "holder": holder, "since_ms": now }).to_string().into_bytes();
        loop {
            let now = now_ms();
            if let Some(etag) = self.put(&rel, body(now), PutMode::Create)? {
                let lock = AreaLock { mirror: self, area: area.to_string(), rel, etag, released: false };
                self.pull(&[area])?;
                return Ok(lock);
            }
            // Held: by whom, since when?
            let (bytes, etag) = match self.get(&rel) {
                Ok(Some(c)) => c,
                Ok(None) => continue,
                Err(e) => return Err(self.store_err("read the lock", &rel, e)),
            };
            let held: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            let since = held["since_ms"].as_u64().unwrap_or(0);
            let age = Duration::from_millis(now.saturating_sub(since));
            if age > ttl {
                let mode = PutMode::Update(UpdateVersion { e_tag: etag, version: None });
                if let Some(etag) = self.put(&rel, body(now), mode)? {
                    tracing::warn!(area, holder = %held["holder"], "took over a stale object-store lock");
                    let lock = AreaLock { mirror: self, area: area.to_string(), rel, etag, released: false };
                    self.pull(&[area])?;
                    return Ok(lock);
                }
                continue;
            }
            if start.elapsed() >= wait {
                return Err(MirrorError::Locked {
                    url: self.url.clone(),
                    area: area.to_string(),
                    holder: held["holder"].as_str().unwrap_or("another pod").to_string(),
                    age: age.as_secs(),
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn release(&self, rel: &str, etag: &str) {
        let store = self.store.clone();
        let key = self.key(rel);
        let etag = etag.to_string();
        // Only our own lock: a holder that outlived the ttl may have been replaced.
        let result = self.block(async move {
            match store.head(&key).await {
                Ok(m) if m.e_tag.as_deref() == Some(etag.as_str()) => store.delete(&key).await,
                Ok(_) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        });
        if let Err(e) = result {
            tracing::warn!(lock = rel, error = %e, "could not release an object-store lock; it expires with its ttl");
        }
    }
}

/// Areas written only under their lock ([`Mirror::lock_area`]).
pub const LOCKED_AREAS: [&str; 2] = ["registry", "features"];

fn in_area(rel: &str, area: &str) -> bool {
    area.is_empty() || rel == area || rel.starts_with(&format!("{}/", area.trim_end_matches('/')))
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// An area's lock in the object store; see [`Mirror::lock_area`].
#[derive(Debug)]
pub struct AreaLock<'a> {
    mirror: &'a Mirror,
    area: String,
    rel: String,
    etag: String,
    released: bool,
}

impl AreaLock<'_> {
    /// Uploads what changed in the area, then releases the lock.
    pub fn commit(mut self) -> Result<SyncReport> {
        let pushed = self.mirror.push(&[&self.area]);
        self.released = true;
        self.mirror.release(&self.rel, &self.etag);
        pushed
    }
}

impl Drop for AreaLock<'_> {
    fn drop(&mut self) {
        if !self.released {
            self.mirror.release(&self.rel, &self.etag);
        }
    }
}

static ACTIVE: OnceLock<Mirror> = OnceLock::new();

/// Makes `mirror` this process's mirror; `false` if one was installed already.
pub fn install(mirror: Mirror) -> bool {
    ACTIVE.set(mirror).is_ok()
}

/// This process's mirror, if any.
pub fn active() -> Option<&'static Mirror> {
    ACTIVE.get()
}

/// The mirror and the area `dir` is, when `dir` is one of the mirrored data directory's
/// locked areas.
pub fn covering(dir: &Path) -> Option<(&'static Mirror, &'static str)> {
    let m = active()?;
    let rel = dir.strip_prefix(&m.local).ok()?;
    let area = rel.to_str()?;
    LOCKED_AREAS.iter().find(|a| **a == area).map(|a| (m, *a))
}

/// How long an area lock may be held before others take it over: registry writes take
/// seconds; materialising a feature view may take minutes.
pub fn lock_ttl(area: &str) -> Duration {
    if area == "registry" {
        Duration::from_secs(120)
    } else {
        Duration::from_secs(30 * 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_bucket_and_a_clean_prefix() {
        assert_eq!(parse_url("s3://models/churn/prod").unwrap(), ("models".into(), "churn/prod".into()));
        assert_eq!(parse_url("s3://models").unwrap(), ("models".into(), String::new()));
        for bad in ["gs://models/x", "models/x", "s3:///x", "s3://mod/a/../b", "s3://mod/a//b"] {
            let e = parse_url(bad).unwrap_err().to_string();
            assert!(e.contains(bad), "{e}");
        }
        assert!(parse_url("gs://x").unwrap_err().to_string().contains("AWS_ENDPOINT_URL"));
    }

    #[test]
    fn temporaries_and_locks_stay_private_and_indexes_commit_last() {
        assert!(is_private("registry/.index.json.tmp-12"));
        assert!(is_private("registry/registry.lock"));
        assert!(is_private("features/.mlops-lock"));
        assert!(!is_private("registry/models/j/1/model.json"));
        assert!(is_commit_file("registry/index.json") && is_commit_file("features/offline/v/_state.json"));
        assert!(!is_commit_file("registry/models/j/1/meta.json"));
        assert!(in_area("registry/index.json", "registry") && !in_area("registry2/x", "registry"));
        assert!(in_area("x/y", ""));
    }
}
