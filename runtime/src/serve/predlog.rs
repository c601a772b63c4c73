//! The prediction log. In: every answered request's predictions (endpoint, version, ids, time,
//! input values, outputs), handed over without waiting. Out: JSON-lines files, one per endpoint
//! per UTC hour — `<dir>/<endpoint>/<YYYY-MM-DD>T<HH>.jsonl` — written by one background
//! thread, which monitoring and feedback joins read.
//!
//! The request path never blocks on the log and never fails because of it: a request's batch
//! goes into a bounded queue with `try_send`. When the queue is full the batch is dropped, and
//! from then on only 1 in N requests is offered (N doubles on each full queue, up to a maximum,
//! and halves each time the writer finds the queue empty). Every line records the `sample_rate`
//! in force when it was queued, so readers can weight it. What is dropped is counted
//! (`mlops_predlog_dropped_total{reason="full"|"sampled"|"error"}`), so for any period
//! `predictions = written + dropped`.
//!
//! Each line:
//! ```json
//! {"prediction_id":"…","time":"2025-01-02T03:04:05.678901Z","endpoint":"fraud_api","job":"training_job.fraud",
//!  "model_version":3,"entity":"acct_7","features":{"amount":12.5,"merchant":"web"},"output":{"score":0.83},"sample_rate":1}
//! ```
//! `features` holds the values as received (a category's text even when unseen), `null` for
//! missing; `entity` is present when the request carried the sticky key. Files are flushed every
//! [`PredictionLogOptions::flush_interval`] and when the log is closed. One writer per file:
//! replicas sharing a volume (pods) each set [`PredictionLogOptions::pod`] and write
//! `<dir>/<endpoint>/pods/<pod>/<YYYY-MM-DD>T<HH>.jsonl`; readers take the endpoint's own files
//! and every pod's ([`crate::monitor::window::Window::read`]).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::metrics::{Metrics, ReasonLabels};
use super::model::{Output, ServingModel};
use super::util::{civil_from_days, rfc3339_micros};

/// How the log runs.
#[derive(Debug, Clone)]
pub struct PredictionLogOptions {
    /// Directory of the files (created if needed).
    pub dir: PathBuf,
    /// Requests the queue holds before it is full.
    pub capacity: usize,
    /// The largest N of "1 in N" sampling under pressure.
    pub max_sample_rate: u32,
    /// How often buffered lines are flushed to the files.
    pub flush_interval: Duration,
    /// This replica's name when several share `dir` (pods on one volume): its files go under
    /// `<endpoint>/pods/<pod>/` so no two processes append to one file.
    pub pod: Option<String>,
}

impl PredictionLogOptions {
    /// Defaults for `dir`: 4096 requests queued, sampling up to 1 in 1024, flushed every second.
    pub fn new(dir: impl Into<PathBuf>) -> PredictionLogOptions {
        PredictionLogOptions {
            dir: dir.into(),
            capacity: 4096,
            max_sample_rate: 1024,
            flush_interval: Duration::from_secs(1),
            pod: None,
        }
    }
}

/// A logged input value: what the request sent.
#[derive(Debug, Clone, PartialEq)]
pub enum LoggedValue {
    /// Missing.
    Null,
    /// A number (booleans are logged as sent).
    Number(f64),
    /// A boolean.
    Bool(bool),
    /// Text.
    Text(Box<str>),
}

impl From<super::model::FeatureValue<'_>> for LoggedValue {
    fn from(v: super::model::FeatureValue<'_>) -> Self {
        use super::model::FeatureValue as F;
        match v {
            F::Null | F::Other(_) => LoggedValue::Null,
            F::Bool(b) => LoggedValue::Bool(b),
            F::Number(x) => LoggedValue::Number(x),
            F::Text(s) => LoggedValue::Text(s.into()),
        }
    }
}

impl LoggedValue {
    fn to_json(&self) -> Value {
        match self {
            LoggedValue::Null => Value::Null,
            // Whole numbers as integers, as clients mostly send them.
            LoggedValue::Number(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Value::from(*x as i64),
            LoggedValue::Number(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
            LoggedValue::Bool(b) => Value::Bool(*b),
            LoggedValue::Text(s) => Value::String(s.to_string()),
        }
    }
}

/// One prediction to log.
#[derive(Debug, Clone)]
pub struct LoggedPrediction {
    /// Its id (as answered).
    pub id: String,
    /// The sticky entity key's value, when the request had one.
    pub entity: Option<String>,
    /// Input values in signature order.
    pub features: Vec<LoggedValue>,
    /// What the model answered.
    pub output: Output,
}

/// The predictions of one request.
#[derive(Debug, Clone)]
pub struct LoggedBatch {
    /// Endpoint name.
    pub endpoint: Arc<str>,
    /// The model that answered (its version, feature and class names).
    pub model: Arc<ServingModel>,
    /// When it was answered, Unix microseconds.
    pub time: i64,
    /// The predictions.
    pub rows: Vec<LoggedPrediction>,
}

/// How long the writer rests after draining the queue (see [`Writer::run`]): at most 500
/// wake-ups a second, and at the default capacity room for 2 ms of ~2 million requests a second.
const LINGER: Duration = Duration::from_millis(2);

struct Queued {
    batch: LoggedBatch,
    sample_rate: u32,
}

enum Message {
    Batch(Queued),
    Close,
}

struct Shared {
    queued: AtomicUsize,
    sample_rate: AtomicU32,
    max_sample_rate: u32,
    sequence: AtomicU64,
    metrics: Arc<Metrics>,
}

/// The handle requests log through: cheap to clone, never blocks.
#[derive(Clone)]
pub struct PredictionLogger {
    tx: SyncSender<Message>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PredictionLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PredictionLogger").finish_non_exhaustive()
    }
}

impl PredictionLogger {
    /// Queues a request's predictions, or counts them dropped when the queue is full or
    /// sampling leaves them out.
    pub fn log(&self, batch: LoggedBatch) {
        let n = batch.rows.len() as u64;
        let s = &self.shared;
        let rate = s.sample_rate.load(Ordering::Relaxed).max(1);
        if rate > 1 && !s.sequence.fetch_add(1, Ordering::Relaxed).is_multiple_of(u64::from(rate)) {
            s.metrics.predlog_dropped.get_or_create(&ReasonLabels { reason: "sampled" }).inc_by(n);
            return;
        }
        // Counted before sending so the writer never sees it negative.
        s.queued.fetch_add(1, Ordering::SeqCst);
        match self.tx.try_send(Message::Batch(Queued { batch, sample_rate: rate })) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                s.queued.fetch_sub(1, Ordering::SeqCst);
                s.metrics.predlog_dropped.get_or_create(&ReasonLabels { reason: "full" }).inc_by(n);
                let next = rate.saturating_mul(2).min(s.max_sample_rate.max(1));
                // Only raise from the rate this request saw, so concurrent drops double it once.
                let _ = s.sample_rate.compare_exchange(rate, next, Ordering::Relaxed, Ordering::Relaxed);
                s.metrics.predlog_sample_rate.set(i64::from(s.sample_rate.load(Ordering::Relaxed)));
            }
            Err(TrySendError::Disconnected(_)) => {
                s.queued.fetch_sub(1, Ordering::SeqCst);
                s.metrics.predlog_dropped.get_or_create(&ReasonLabels { reason: "error" }).inc_by(n);
            }
        }
    }
}

/// What the log did, reported when it is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PredictionLogStats {
    /// Predictions written.
    pub written: u64,
    /// Predictions dropped (full queue, sampling, write errors).
    pub dropped: u64,
}

/// The running log: a writer thread and its queue.
pub struct PredictionLog {
    logger: PredictionLogger,
    writer: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for PredictionLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PredictionLog").finish_non_exhaustive()
    }
}

impl PredictionLog {
    /// Creates the directory and starts the writer thread.
    pub fn start(options: PredictionLogOptions, metrics: Arc<Metrics>) -> std::io::Result<PredictionLog> {
        std::fs::create_dir_all(&options.dir)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(options.capacity.max(1));
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            sample_rate: AtomicU32::new(1),
            max_sample_rate: options.max_sample_rate.max(1),
            sequence: AtomicU64::new(0),
            metrics,
        });
        let writer_shared = shared.clone();
        let writer = std::thread::Builder::new()
            .name("mlops-predlog".into())
            .spawn(move || Writer::new(options, writer_shared).run(rx))?;
        Ok(PredictionLog { logger: PredictionLogger { tx, shared }, writer: Some(writer) })
    }

    /// A handle to log through.
    pub fn logger(&self) -> PredictionLogger {
        self.logger.clone()
    }

    /// Counts so far.
    pub fn stats(&self) -> PredictionLogStats {
        let m = &self.logger.shared.metrics;
        PredictionLogStats { written: m.predlog_written(), dropped: m.predlog_dropped() }
    }

    /// Writes and flushes everything queued before this call, then stops the writer (blocking:
    /// call from a blocking thread). Later `log` calls count as dropped.
    pub fn close(mut self) -> PredictionLogStats {
        self.shutdown();
        self.stats()
    }

    fn shutdown(&mut self) {
        if let Some(w) = self.writer.take() {
            // A blocking send: everything queued before it is written first.
            let _ = self.logger.tx.send(Message::Close);
            let _ = w.join();
        }
    }
}

impl Drop for PredictionLog {
    fn drop(&mut self) {
        self.shutdown();
    }
}

struct OpenFile {
    hour: i64,
    out: BufWriter<File>,
}

struct Writer {
    options: PredictionLogOptions,
    shared: Arc<Shared>,
    files: HashMap<Arc<str>, OpenFile>,
}

/// A directory name for an endpoint: endpoint names are already plain (letters, digits, `_`,
/// `-`, `.`), but a leading dot is escaped so none can be `.` or `..`.
fn endpoint_dir(name: &str) -> String {
    match name.strip_prefix('.') {
        Some(rest) => format!("%2E{rest}"),
        None => name.to_string(),
    }
}

/// The log file of `endpoint` for `hour` (hours since the Unix epoch, UTC).
pub(crate) fn hour_file(dir: &Path, endpoint: &str, hour: i64) -> PathBuf {
    dir.join(endpoint_dir(endpoint)).join(hour_name(hour))
}

/// The log file of `endpoint` for `hour` written by replica `pod`.
pub(crate) fn pod_hour_file(dir: &Path, endpoint: &str, pod: &str, hour: i64) -> PathBuf {
    pods_dir(dir, endpoint).join(pod).join(hour_name(hour))
}

/// Where the replicas of `endpoint` keep their own files (one directory per pod).
pub(crate) fn pods_dir(dir: &Path, endpoint: &str) -> PathBuf {
    dir.join(endpoint_dir(endpoint)).join("pods")
}

fn hour_name(hour: i64) -> String {
    let (y, m, d) = civil_from_days(hour.div_euclid(24));
    format!("{y:04}-{m:02}-{d:02}T{:02}.jsonl", hour.rem_euclid(24))
}

impl Writer {
    fn new(options: PredictionLogOptions, shared: Arc<Shared>) -> Writer {
        Writer { options, shared, files: HashMap::new() }
    }

    fn run(mut self, rx: Receiver<Message>) {
        loop {
            match rx.recv_timeout(self.options.flush_interval) {
                Ok(Message::Batch(q)) => {
                    let left = self.shared.queued.fetch_sub(1, Ordering::SeqCst).saturating_sub(1);
                    self.write(q);
                    if left == 0 {
                        self.relax();
                        // Let a few requests queue up before looking again: a writer parked on
                        // an empty queue is woken by every request (a futex wake and a context
                        // switch on the request path's cores); one that lingers is not.
                        std::thread::sleep(LINGER);
                    }
                }
                Ok(Message::Close) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    self.flush_all();
                    self.relax();
                }
            }
        }
        self.flush_all();
    }

    /// The queue drained: halve the sampling rate.
    fn relax(&self) {
        let s = &self.shared;
        let rate = s.sample_rate.load(Ordering::Relaxed);
        if rate > 1 {
            let _ = s.sample_rate.compare_exchange(rate, rate / 2, Ordering::Relaxed, Ordering::Relaxed);
            s.metrics.predlog_sample_rate.set(i64::from(s.sample_rate.load(Ordering::Relaxed)));
        }
    }

    fn flush_all(&mut self) {
        let mut failed = Vec::new();
        for (name, f) in &mut self.files {
            if let Err(e) = f.out.flush() {
                tracing::error!(endpoint = %name, error = %e, "cannot flush the prediction log");
                failed.push(name.clone());
            }
        }
        for name in failed {
            self.files.remove(&name);
        }
    }

    fn write(&mut self, q: Queued) {
        let n = q.batch.rows.len() as u64;
        match self.write_lines(&q) {
            Ok(()) => {
                self.shared.metrics.predlog_written.inc_by(n);
            }
            Err(e) => {
                tracing::error!(endpoint = %q.batch.endpoint, error = %e, "cannot write the prediction log");
                self.files.remove(&q.batch.endpoint);
                self.shared.metrics.predlog_dropped.get_or_create(&ReasonLabels { reason: "error" }).inc_by(n);
            }
        }
    }

    fn file(&mut self, endpoint: &Arc<str>, hour: i64) -> std::io::Result<&mut BufWriter<File>> {
        let current = self.files.get(endpoint).map(|f| f.hour);
        if current != Some(hour) {
            if let Some(mut old) = self.files.remove(endpoint) {
                old.out.flush()?;
            }
            let path = match &self.options.pod {
                Some(pod) => pod_hour_file(&self.options.dir, endpoint, pod, hour),
                None => hour_file(&self.options.dir, endpoint, hour),
            };
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            self.files.insert(endpoint.clone(), OpenFile { hour, out: BufWriter::with_capacity(64 * 1024, file) });
        }
        // Just inserted when absent.
        self.files.get_mut(endpoint).map(|f| &mut f.out).ok_or_else(|| std::io::Error::other("no open file"))
    }

    fn write_lines(&mut self, q: &Queued) -> std::io::Result<()> {
        let b = &q.batch;
        let hour = b.time.div_euclid(3_600_000_000);
        let time = rfc3339_micros(b.time);
        let names = b.model.feature_names().clone();
        let classes = b.model.classes().to_vec();
        let mut buf = Vec::with_capacity(256 * b.rows.len());
        for row in &b.rows {
            let mut features = Map::with_capacity(names.len());
            for (name, v) in names.iter().zip(&row.features) {
                features.insert(name.clone(), v.to_json());
            }
            let mut line = Map::new();
            line.insert("prediction_id".into(), json!(row.id));
            line.insert("time".into(), json!(time));
            line.insert("endpoint".into(), json!(&*b.endpoint));
            line.insert("job".into(), json!(b.model.job()));
            line.insert("model_version".into(), json!(b.model.version()));
            if let Some(e) = &row.entity {
                line.insert("entity".into(), json!(e));
            }
            line.insert("features".into(), Value::Object(features));
            line.insert("output".into(), output_json(&row.output, &classes));
            line.insert("sample_rate".into(), json!(q.sample_rate));
            serde_json::to_writer(&mut buf, &Value::Object(line))?;
            buf.push(b'\n');
        }
        self.file(&b.endpoint, hour)?.write_all(&buf)
    }
}

fn finite(x: f32) -> Value {
    serde_json::Number::from_f64(f64::from(x)).map_or(Value::Null, Value::Number)
}

/// An output as JSON: `{"score": s}` or `{"class": name, "probabilities": {name: p, …}}`.
pub(crate) fn output_json(output: &Output, classes: &[String]) -> Value {
    match output {
        Output::Score(s) => json!({ "score": finite(*s) }),
        Output::Class { class, probabilities } => {
            let mut m = Map::new();
            m.insert("class".into(), json!(classes.get(*class).map_or("", String::as_str)));
            if let Some(p) = probabilities {
                let probs: Map<String, Value> = classes.iter().zip(p).map(|(c, p)| (c.clone(), finite(*p))).collect();
                m.insert("probabilities".into(), Value::Object(probs));
            }
            Value::Object(m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_per_endpoint_and_hour() {
        let p = hour_file(Path::new("/log"), "fraud_api", 1_709_211_845 / 3600);
        assert_eq!(p, Path::new("/log/fraud_api/2024-02-29T13.jsonl"));
        let p = pod_hour_file(Path::new("/log"), "fraud_api", "api-7c9-x2", 1_709_211_845 / 3600);
        assert_eq!(p, Path::new("/log/fraud_api/pods/api-7c9-x2/2024-02-29T13.jsonl"));
        assert_eq!(endpoint_dir(".."), "%2E.");
    }
}
