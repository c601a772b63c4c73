//! HTTP serving against FastAPI: `cargo bench -p mlops-runtime --bench serve`.
//!
//! One realistic model, trained through the project's trainer and registered — binary:logistic,
//! 200 rounds, max_depth 6, eta 0.1, on 20,000 generated rows × 30 features (3 categorical with
//! 8, 20 and 50 categories, 2% missing values in 5 columns) — and its registry file served by:
//!
//! - **mlops**: `Server::start` on 127.0.0.1 in this process, on its own tokio runtime with the
//!   default worker threads (one per core), one endpoint, the prediction log on (the realistic
//!   setting; also measured off); `POST /v1/endpoints/bench/predict`.
//! - **FastAPI**: `benches/serve_python.py` under uvicorn (1 worker, as `uvicorn app:app` runs,
//!   and 2 workers, one per core), the same file loaded with `xgboost.Booster`; `POST /predict`.
//!
//! Both take the same bodies, `{"row": {feature: value, …}}` with one value per feature by name
//! (categories as their names, missing values as null), cycling through 512 distinct rows. Before
//! timing, the run checks that both servers answer every one of those rows with the very score
//! the native `Forest` computes in process (bit-identical f32), and fails if not.
//!
//! The load generator is the same for both: a minimal HTTP/1.1 client in this file (keep-alive
//! connections, requests written whole, responses read by `Content-Length`) on its own tokio
//! runtime with 1 worker thread (`MLOPS_BENCH_GEN_THREADS`), recording every latency:
//!
//! - **closed loop** (peak): `MLOPS_BENCH_CONNS` connections (default 64) each send a request as
//!   soon as the previous answer arrived, for `MLOPS_BENCH_SECS` seconds (default 5) after a
//!   1-second warm-up → throughput, p50/p99 at peak;
//! - **open loop** at half of that server's measured peak: a pacer thread releases requests on a
//!   fixed schedule (every ~100 µs, the ones due) to 32 connections → p50/p99/p99.9, measured
//!   from when the request was written; the lag between a request's scheduled and actual send
//!   is reported too (it stays small unless all connections are busy, i.e. the server is behind).
//!
//! The generator and the servers share the machine's cores (2 on the reference machine): the
//! generator is kept to one thread, and each run reports the CPU time (µs per request) of the
//! server and of the generator, and the cores other processes used meanwhile, so a contended
//! figure is visible as such ("others" is the machine's busy time from `/proc/stat` minus the
//! server's and the generator's threads, so it also holds interrupt and softirq time — loopback
//! traffic included — and time stolen by the hypervisor). Nothing is pinned (`unsafe` is not allowed here, and pinning
//! uvicorn's workers to cores the generator also needs would not be fairer).
//!
//! Afterwards mlops (log on) is also driven open-loop at a quarter of its peak and at each
//! FastAPI configuration's peak rate.
//!
//! Bare in-process figures of the same rows: `Forest::predict`, XGBoost's C predictor (a DMatrix
//! per call), mlops's request decoding + `Forest` (`ServingModel::decode_object` + `predict`), and
//! in Python `Booster.inplace_predict` alone and with the row built from its JSON object. The HTTP
//! overhead is the p50 at half peak minus the bare prediction.
//!
//! Targets (from the project's issue): mlops/FastAPI peak throughput ≥ 10×, mlops p99 < 1 ms at
//! half of its peak. They are reported, not asserted.
//!
//! Needs `fastapi` and `uvicorn` (`scripts/install-bench-tools.sh`); without them the FastAPI
//! peer is skipped. Environment: `MLOPS_BENCH_SECS`, `MLOPS_BENCH_CONNS`,
//! `MLOPS_BENCH_GEN_THREADS`, `MLOPS_BENCH_REPS` (rounds per server, the least contended kept;
//! default 1), `MLOPS_BENCH_PY_WORKERS` (default `1,2`), `PYTHON` (default
//! `python3`).

use std::collections::HashMap;
use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlops_compiler::model::{ColumnRef, ColumnType, Resources, Task, TrainingJob, Validation};
use mlops_runtime::dataset::{FeatureSpec, TrainingSet};
use mlops_runtime::registry::Registry;
use mlops_runtime::serve::trees::Forest;
use mlops_runtime::serve::ServingModel;
use mlops_runtime::serve::{EndpointSettings, Endpoints, PredictionLogOptions, RunningServer, Server, ServerOptions};
use mlops_runtime::train::{self, Predictor, TrainOptions};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

type Error = Box<dyn std::error::Error>;

const COLS: usize = 30;
const TRAIN_ROWS: usize = 20_000;
/// Distinct request rows, sent in turn.
const REQUEST_ROWS: usize = 512;
/// (column, category count) of the categorical features.
const CATEGORICAL: [(usize, usize); 3] = [(27, 8), (28, 20), (29, 50)];
const WARMUP: Duration = Duration::from_secs(1);
/// Connections of the open-loop runs.
const OPEN_CONNS: usize = 32;
/// How often the open-loop pacer releases the requests due.
const PACER_TICK: Duration = Duration::from_micros(100);
const TARGET_RATIO: f64 = 10.0;
/// The lighter load mlops is also measured at, as a fraction of its peak.
const QUARTER: f64 = 0.25;
const TARGET_P99_US: f64 = 1000.0;
const ENDPOINT: &str = "bench";

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// The model and the requests (the data of `benches/predict.rs`).

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f32 {
        (self.u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        (0..12).map(|_| self.uniform()).sum::<f32>() - 6.0
    }
}

fn features() -> Vec<FeatureSpec> {
    (0..COLS)
        .map(|c| match CATEGORICAL.iter().find(|&&(col, _)| col == c) {
            Some(&(_, n)) => FeatureSpec {
                name: format!("cat{c}"),
                dtype: ColumnType::Category,
                categories: (0..n).map(|i| format!("c{i}")).collect(),
            },
            None => FeatureSpec { name: format!("f{c}"), dtype: ColumnType::Float, categories: vec![] },
        })
        .collect()
}

/// `n` rows and binary labels from a noisy score with interactions and category effects.
fn rows(n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut r = Rng(seed);
    let mut x = Vec::with_capacity(n * COLS);
    let mut y = Vec::with_capacity(n);
    for _ in 0..n {
        let mut v = [0f32; COLS];
        for (c, slot) in v.iter_mut().enumerate() {
            *slot = match CATEGORICAL.iter().find(|&&(col, _)| col == c) {
                Some(&(_, k)) => (r.u64() % k as u64) as f32,
                None if c >= 20 && r.uniform() < 0.02 => f32::NAN,
                None => r.normal(),
            };
        }
        let g = |i: usize| if v[i].is_nan() { 0.0 } else { v[i] };
        let cat = |i: usize, m: u64| if (v[i] as u64).is_multiple_of(m) { 1.0 } else { -0.3 };
        let score = g(0) - 0.8 * g(1) + 0.5 * g(2) * g(3) + (g(4) * 2.0).sin() + 0.3 * g(5).abs() - 0.2 * g(21)
            + cat(27, 3)
            + 0.7 * cat(28, 4)
            + 0.5 * cat(29, 7)
            + 0.8 * r.normal();
        x.extend_from_slice(&v);
        y.push(f32::from(score > 0.3));
    }
    (x, y)
}

fn job() -> TrainingJob {
    let params = json!({"max_depth": 6, "eta": 0.1, "tree_method": "hist", "max_cat_to_onehot": 1});
    TrainingJob {
        features: vec!["feature_view.bench".into()],
        label: ColumnRef { source: "source.bench".into(), column: "label".into() },
        exclude: vec![],
        algorithm: "xgboost".into(),
        objective: "binary:logistic".into(),
        task: Task::Binary,
        rounds: 200,
        params: serde_json::from_value(params).expect("params"),
        validation: Validation { split: "time".into(), holdout: 0.2, seed: 42 },
        tuning: None,
        gates: vec![],
        resources: Resources::default(),
        schedule: None,
        description: None,
    }
}

/// A request body `{"row": {...}}` for one row: numbers in their shortest f32 form (so both
/// servers parse back the very f32), categories by name, missing values as null.
fn body(features: &[FeatureSpec], row: &[f32]) -> String {
    let fields: Vec<String> = features
        .iter()
        .zip(row)
        .map(|(f, &v)| {
            let value = if v.is_nan() {
                "null".to_string()
            } else if f.categories.is_empty() {
                format!("{v}")
            } else {
                format!("\"{}\"", f.categories[v as usize])
            };
            format!("\"{}\":{value}", f.name)
        })
        .collect();
    format!("{{\"row\":{{{}}}}}", fields.join(","))
}

// ---------------------------------------------------------------------------------------------
// CPU accounting (Linux /proc; absent elsewhere, then not reported).

/// Nanoseconds each thread of this process ran, by thread id, with its name.
fn threads_cpu() -> HashMap<String, (String, u64)> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return out };
    for e in dir.flatten() {
        let p = e.path();
        let name = std::fs::read_to_string(p.join("comm")).unwrap_or_default().trim().to_string();
        let ns = std::fs::read_to_string(p.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
            .unwrap_or(0);
        out.insert(e.file_name().to_string_lossy().into_owned(), (name, ns));
    }
    out
}

/// utime + stime of a process, in clock ticks (100 Hz on Linux).
fn process_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return vec![] };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|s| s[s.rfind(')')? + 2..].split_whitespace().nth(1)?.parse::<u32>().ok())
                == Some(pid)
        })
        .collect()
}

/// Busy ticks of the whole machine (`/proc/stat`: everything but idle and iowait).
fn machine_busy_ticks() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = s.lines().next()?.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    Some(v.iter().take(8).sum::<u64>() - v.get(3)? - v.get(4)?)
}

const TICK_NS: f64 = 1e7;

/// Where the CPU time of a run went.
#[derive(Clone, Copy, Default)]
struct Cpu {
    /// Seconds of CPU of the server, the generator, and everything else on the machine.
    server: f64,
    generator: f64,
    others: f64,
}

/// Who is being measured.
#[derive(Clone, Copy)]
enum Target {
    /// The mlops server: this process's threads except the generator's.
    InProcess,
    /// A server process and its children.
    Process(u32),
}

struct CpuProbe {
    target: Target,
    threads: HashMap<String, (String, u64)>,
    process: u64,
    machine: Option<u64>,
}

fn is_generator(name: &str) -> bool {
    name.starts_with("loadgen") || name.starts_with("pacer")
}

impl CpuProbe {
    fn start(target: Target) -> CpuProbe {
        let process = match target {
            Target::InProcess => 0,
            Target::Process(pid) => std::iter::once(pid).chain(children(pid)).filter_map(process_ticks).sum(),
        };
        CpuProbe { target, threads: threads_cpu(), process, machine: machine_busy_ticks() }
    }

    fn stop(&self) -> Cpu {
        let now = threads_cpu();
        let (mut generator, mut own_rest) = (0u64, 0u64);
        for (tid, (name, ns)) in &now {
            let before = self.threads.get(tid).map_or(0, |t| t.1);
            let d = ns.saturating_sub(before);
            if is_generator(name) {
                generator += d;
            } else {
                own_rest += d;
            }
        }
        let server = match self.target {
            Target::InProcess => own_rest as f64 / 1e9,
            Target::Process(pid) => {
                let ticks: u64 = std::iter::once(pid).chain(children(pid)).filter_map(process_ticks).sum();
                ticks.saturating_sub(self.process) as f64 * TICK_NS / 1e9
            }
        };
        let generator = generator as f64 / 1e9;
        let mine = match self.target {
            Target::InProcess => server + generator,
            // This process's other threads (main, idle) are negligible.
            Target::Process(_) => server + generator + own_rest as f64 / 1e9,
        };
        let others = match (self.machine, machine_busy_ticks()) {
            (Some(a), Some(b)) => ((b.saturating_sub(a)) as f64 * TICK_NS / 1e9 - mine).max(0.0),
            _ => f64::NAN,
        };
        Cpu { server, generator, others }
    }
}

// ---------------------------------------------------------------------------------------------
// The load generator: one keep-alive HTTP/1.1 connection.

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream, buf: Vec::with_capacity(4096) })
    }

    /// Sends one request and reads its response: (status, body).
    async fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, &[u8])> {
        use std::io::{Error, ErrorKind};
        let mut rest = request;
        while !rest.is_empty() {
            self.stream.writable().await?;
            match self.stream.try_write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        self.buf.clear();
        let mut head: Option<(usize, u16, usize)> = None;
        loop {
            if head.is_none() {
                if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let text = std::str::from_utf8(&self.buf[..end])
                        .map_err(|_| Error::new(ErrorKind::InvalidData, "non-UTF-8 response head"))?;
                    let status = text
                        .split_whitespace()
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .ok_or_else(|| Error::new(ErrorKind::InvalidData, "no status line"))?;
                    let length = text
                        .lines()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.trim().parse().ok())
                        .ok_or_else(|| Error::new(ErrorKind::InvalidData, "a response without Content-Length"))?;
                    head = Some((end + 4, status, length));
                }
            }
            if let Some((start, status, length)) = head {
                if self.buf.len() >= start + length {
                    return Ok((status, &self.buf[start..start + length]));
                }
            }
            self.stream.readable().await?;
            let len = self.buf.len();
            self.buf.resize(len + 4096, 0);
            match self.stream.try_read(&mut self.buf[len..]) {
                Ok(0) => return Err(Error::new(ErrorKind::UnexpectedEof, "the server closed the connection")),
                Ok(n) => self.buf.truncate(len + n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.buf.truncate(len),
                Err(e) => return Err(e),
            }
        }
    }
}

/// A server under test: where to send what.
#[derive(Clone)]
struct Peer {
    name: String,
    addr: SocketAddr,
    /// One full request per row.
    requests: Arc<Vec<Vec<u8>>>,
    cpu: Target,
}

impl Peer {
    fn new(name: &str, addr: SocketAddr, path: &str, bodies: &[String], cpu: Target) -> Peer {
        let requests = bodies
            .iter()
            .map(|b| {
                format!(
                    "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                    b.len()
                )
                .into_bytes()
            })
            .collect();
        Peer { name: name.into(), addr, requests: Arc::new(requests), cpu }
    }
}

/// What one run measured.
struct Measured {
    /// Answers within the measured window, per second.
    rate: f64,
    /// Latencies (ns), sorted.
    latencies: Vec<u64>,
    /// Scheduled-to-sent lag (ns) of open-loop requests, sorted.
    lag: Vec<u64>,
    errors: u64,
    cpu: Cpu,
    /// Offered rate of an open-loop run.
    offered: Option<f64>,
}

impl Measured {
    fn q(v: &[u64], p: f64) -> f64 {
        if v.is_empty() {
            return f64::NAN;
        }
        v[((v.len() - 1) as f64 * p).round() as usize] as f64 / 1e3
    }
    fn p(&self, p: f64) -> f64 {
        Measured::q(&self.latencies, p)
    }
    fn per_request_us(&self, seconds: f64) -> f64 {
        seconds * 1e6 / self.latencies.len().max(1) as f64
    }
}

/// Per connection: latencies (and lags) recorded, errors.
type ConnResult = (Vec<u64>, Vec<u64>, u64);

/// Closed loop: `conns` connections, each sending as soon as it has its answer.
fn closed_loop(rt: &Runtime, peer: &Peer, conns: usize, secs: f64) -> Result<Measured, Error> {
    let start = Instant::now();
    let from = start + WARMUP;
    let until = from + Duration::from_secs_f64(secs);
    let probe: Arc<std::sync::Mutex<Option<CpuProbe>>> = Arc::default();
    let results: Vec<ConnResult> = rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..conns {
            let (peer, probe) = (peer.clone(), probe.clone());
            tasks.push(tokio::spawn(async move {
                let mut conn = Conn::open(peer.addr).await?;
                let (mut lat, mut errors) = (Vec::with_capacity(1 << 16), 0u64);
                let mut k = c * 7919;
                loop {
                    let t = Instant::now();
                    if t >= until {
                        break;
                    }
                    if c == 0 && t >= from {
                        let mut p = probe.lock().expect("probe");
                        if p.is_none() {
                            *p = Some(CpuProbe::start(peer.cpu));
                        }
                    }
                    let (status, _) = conn.exchange(&peer.requests[k % peer.requests.len()]).await?;
                    k += 1;
                    let done = Instant::now();
                    if t >= from && done <= until {
                        if status == 200 {
                            lat.push((done - t).as_nanos() as u64);
                        } else {
                            errors += 1;
                        }
                    }
                }
                Ok::<_, std::io::Error>((lat, Vec::new(), errors))
            }));
        }
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?);
        }
        Ok::<_, String>(out)
    })?;
    let cpu = probe.lock().expect("probe").as_ref().map(CpuProbe::stop).unwrap_or_default();
    Ok(collect(results, secs, cpu, None))
}

/// Open loop: requests released at `rate` per second on a fixed schedule, to `conns` connections.
fn open_loop(rt: &Runtime, peer: &Peer, conns: usize, rate: f64, secs: f64) -> Result<Measured, Error> {
    let permits = Arc::new(Semaphore::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let measured_from = (WARMUP.as_secs_f64() * rate) as u64;
    let measured_to = ((WARMUP.as_secs_f64() + secs) * rate) as u64;
    let connected = Arc::new(AtomicU64::new(0));
    // Connect first, then start the schedule.
    let (tasks, t0_tx) = rt.block_on(async {
        let (t0_tx, t0_rx) = tokio::sync::watch::channel(None::<Instant>);
        let mut tasks = Vec::new();
        for c in 0..conns {
            let (peer, permits, next, connected, mut t0_rx) =
                (peer.clone(), permits.clone(), next.clone(), connected.clone(), t0_rx.clone());
            tasks.push(tokio::spawn(async move {
                let mut conn = Conn::open(peer.addr).await?;
                connected.fetch_add(1, Ordering::SeqCst);
                let t0 = loop {
                    if let Some(t0) = *t0_rx.borrow_and_update() {
                        break t0;
                    }
                    if t0_rx.changed().await.is_err() {
                        return Ok((Vec::new(), Vec::new(), 0));
                    }
                };
                let (mut lat, mut lag, mut errors) = (Vec::with_capacity(1 << 15), Vec::with_capacity(1 << 15), 0u64);
                let mut k = c * 7919;
                while let Ok(permit) = permits.acquire().await {
                    permit.forget();
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let scheduled = t0 + Duration::from_secs_f64(i as f64 / rate);
                    let t = Instant::now();
                    let (status, _) = conn.exchange(&peer.requests[k % peer.requests.len()]).await?;
                    k += 1;
                    let done = Instant::now();
                    if (measured_from..measured_to).contains(&i) {
                        if status == 200 {
                            lat.push((done - t).as_nanos() as u64);
                            lag.push(t.saturating_duration_since(scheduled).as_nanos() as u64);
                        } else {
                            errors += 1;
                        }
                    }
                }
                Ok::<_, std::io::Error>((lat, lag, errors))
            }));
        }
        (tasks, t0_tx)
    });
    while connected.load(Ordering::SeqCst) < conns as u64 {
        std::thread::sleep(Duration::from_millis(5));
        if tasks.iter().any(|t| t.is_finished()) {
            break;
        }
    }
    // The pacer: releases the requests due every tick, then stops the connections.
    let t0 = Instant::now();
    t0_tx.send(Some(t0)).map_err(|_| "the connections are gone")?;
    let pacer = {
        let (permits, target) = (permits.clone(), peer.cpu);
        std::thread::Builder::new().name("pacer".into()).spawn(move || {
            let mut released = 0u64;
            let mut probe = None;
            let end = t0 + WARMUP + Duration::from_secs_f64(secs);
            loop {
                let now = Instant::now();
                if probe.is_none() && now >= t0 + WARMUP {
                    probe = Some(CpuProbe::start(target));
                }
                if now >= end {
                    break;
                }
                let due = ((now - t0).as_secs_f64() * rate) as u64;
                if due > released {
                    permits.add_permits((due - released) as usize);
                    released = due;
                }
                std::thread::sleep(PACER_TICK);
            }
            permits.close();
            probe.as_ref().map(CpuProbe::stop).unwrap_or_default()
        })?
    };
    let cpu = pacer.join().map_err(|_| "the pacer panicked")?;
    let results: Vec<ConnResult> = rt.block_on(async {
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?);
        }
        Ok::<_, String>(out)
    })?;
    Ok(collect(results, secs, cpu, Some(rate)))
}

fn collect(results: Vec<ConnResult>, secs: f64, cpu: Cpu, offered: Option<f64>) -> Measured {
    let (mut latencies, mut lag, mut errors) = (Vec::new(), Vec::new(), 0);
    for (l, g, e) in results {
        latencies.extend(l);
        lag.extend(g);
        errors += e;
    }
    latencies.sort_unstable();
    lag.sort_unstable();
    Measured { rate: latencies.len() as f64 / secs, latencies, lag, errors, cpu, offered }
}

// ---------------------------------------------------------------------------------------------
// The FastAPI peer.

/// A uvicorn server; stopped (SIGTERM, so it stops its workers too) when dropped.
struct Uvicorn {
    child: Child,
    addr: SocketAddr,
    workers: usize,
}

impl Uvicorn {
    fn start(python: &str, dir: &Path, spec: &Path, workers: usize, log: &Path) -> Result<Uvicorn, Error> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        let child = Command::new(python)
            .args(["-m", "uvicorn", "serve_python:app", "--app-dir"])
            .arg(dir)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--workers", &workers.to_string()])
            .args(["--no-access-log", "--log-level", "warning"])
            .env("MLOPS_SERVE_SPEC", spec)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(log)?)
            .spawn()?;
        let mut server = Uvicorn { child, addr, workers };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = server.child.try_wait()? {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                return Err(format!("uvicorn exited ({status}):\n{log}").into());
            }
            if std::net::TcpStream::connect(addr).is_ok() && server.children_ready() {
                if workers > 1 {
                    // Each worker imports FastAPI and loads the model before it accepts; let
                    // them all get there, so connections spread over all of them.
                    std::thread::sleep(Duration::from_secs(3));
                }
                return Ok(server);
            }
            if Instant::now() > deadline {
                return Err("uvicorn did not start listening within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// With several workers the parent listens before they run; wait until all of them exist.
    fn children_ready(&self) -> bool {
        self.workers == 1 || children(self.child.id()).len() >= self.workers
    }
}

impl Drop for Uvicorn {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python_has(python: &str, modules: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {modules}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------------------------------------
// Checks and bare predictions.

/// The score in an answer: mlops `{"predictions": [{"score": s}]}`, FastAPI `{"score": s}`.
fn score_of(body: &[u8]) -> Option<f32> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let s = v.get("predictions").and_then(|p| p.get(0)).unwrap_or(&v).get("score")?.as_f64()?;
    Some(s as f32)
}

/// Sends every distinct request once; the answers must be `expected`, bit for bit.
fn check_answers(rt: &Runtime, peer: &Peer, expected: &[f32]) -> Result<(), Error> {
    let answers: Vec<Option<f32>> = rt.block_on(async {
        let mut conn = Conn::open(peer.addr).await?;
        let mut out = Vec::new();
        for r in peer.requests.iter() {
            let (status, body) = conn.exchange(r).await?;
            out.push(if status == 200 { score_of(body) } else { None });
        }
        Ok::<_, std::io::Error>(out)
    })?;
    let differ: Vec<usize> =
        (0..expected.len()).filter(|&i| answers[i].map(f32::to_bits) != Some(expected[i].to_bits())).collect();
    if let Some(&i) = differ.first() {
        return Err(format!(
            "{}: {} of {} answers differ from the in-process Forest (row {i}: {:?}, expected {})",
            peer.name,
            differ.len(),
            expected.len(),
            answers[i],
            expected[i]
        )
        .into());
    }
    Ok(())
}

/// Mean µs per call of `f(i)` over `n` calls, best of 3 rounds.
fn per_call(n: usize, mut f: impl FnMut(usize) -> f32) -> f64 {
    let mut sink = 0.0;
    for i in 0..n.min(1000) {
        sink += f(i);
    }
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        for i in 0..n {
            sink += f(i);
        }
        best = best.min(t.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
    std::hint::black_box(sink);
    best
}

/// In-process µs per single-row call.
struct Bare {
    forest: f64,
    xgboost: f64,
    decode_forest: f64,
    python: Option<(f64, f64)>,
}

// ---------------------------------------------------------------------------------------------

struct Row {
    name: String,
    peak: Measured,
    half: Option<Measured>,
}

/// `reps` rounds of a closed-loop run and an open-loop run at half its peak; the round in which
/// other processes used the least CPU is kept.
fn measure(rt: &Runtime, peer: &Peer, conns: usize, secs: f64, reps: usize) -> Result<Row, Error> {
    let mut best: Option<Row> = None;
    for rep in 0..reps {
        let round = if reps > 1 { format!(" (round {} of {reps})", rep + 1) } else { String::new() };
        eprintln!("{}{round}: closed loop, {conns} connections, {secs} s …", peer.name);
        let peak = closed_loop(rt, peer, conns, secs)?;
        let rate = peak.rate / 2.0;
        eprintln!("{}: peak {:.0} req/s; open loop at {rate:.0} req/s, {secs} s …", peer.name, peak.rate);
        let half = if rate >= 1.0 { Some(open_loop(rt, peer, OPEN_CONNS, rate, secs)?) } else { None };
        let row = Row { name: peer.name.clone(), peak, half };
        best = match best {
            Some(b) if b.others() <= row.others() => Some(b),
            _ => Some(row),
        };
    }
    best.ok_or_else(|| "no round ran".into())
}

impl Row {
    /// Cores other processes used, summed over the row's two runs.
    fn others(&self) -> f64 {
        let o = |c: f64| if c.is_nan() { 0.0 } else { c };
        o(self.peak.cpu.others) + self.half.as_ref().map_or(0.0, |h| o(h.cpu.others))
    }
}

fn run() -> Result<bool, Error> {
    let secs: f64 = env_or("MLOPS_BENCH_SECS", 5.0_f64).max(0.5);
    let conns: usize = env_or("MLOPS_BENCH_CONNS", 64).max(1);
    let gen_threads: usize = env_or("MLOPS_BENCH_GEN_THREADS", 1).max(1);
    let reps: usize = env_or("MLOPS_BENCH_REPS", 1).max(1);
    let py_workers: Vec<usize> = std::env::var("MLOPS_BENCH_PY_WORKERS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|&n| n > 0)
        .collect();
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| manifest.join("..").join("target"));
    let dir = target.join("bench-serve");
    std::fs::create_dir_all(&dir)?;
    let scratch = tempfile::tempdir_in(&dir)?;

    // The model, trained and registered as the control plane would.
    let (x, y) = rows(TRAIN_ROWS, 1);
    let set = TrainingSet { features: features(), x, y, event_time: (0..TRAIN_ROWS as i64).collect(), classes: vec![] };
    eprintln!("training binary:logistic, 200 rounds, depth 6 on {TRAIN_ROWS} rows × {COLS} features …");
    let model = train::train(&set, &job(), &TrainOptions { threads: None, progress: false })?;
    let registry = Registry::open(scratch.path().join("registry"))?;
    let version = registry.register("training_job.bench", &model, "bench", &train::data_hash(&set))?;
    let json = registry.model_json(&version)?;
    let serving = Arc::new(ServingModel::load(&version, &json)?);

    // The requests, and what the model answers them in process.
    let (px, _) = rows(REQUEST_ROWS, 2);
    let feats = features();
    let bodies: Vec<String> = px.chunks(COLS).map(|r| body(&feats, r)).collect();
    let forest = Forest::from_json(&json)?;
    let mut expected = Vec::new();
    forest.predict(&px, REQUEST_ROWS, &mut expected)?;

    // Bare in-process predictions of the same rows.
    let xgb = Predictor::load(&json)?;
    let mut out = Vec::with_capacity(1);
    let row = |i: usize| &px[(i % REQUEST_ROWS) * COLS..(i % REQUEST_ROWS + 1) * COLS];
    let forest_us = per_call(20_000, |i| {
        forest.predict(row(i), 1, &mut out).expect("forest");
        out[0]
    });
    let xgboost_us = per_call(2_000, |i| xgb.predict(row(i), 1).expect("xgboost")[0]);
    let (mut xs, mut unseen) = (Vec::with_capacity(COLS), Vec::new());
    let decode_forest_us = per_call(20_000, |i| {
        let v: Value = serde_json::from_str(&bodies[i % REQUEST_ROWS]).expect("body");
        xs.clear();
        unseen.clear();
        serving.decode_object(v["row"].as_object().expect("row"), &[], None, &mut xs, &mut unseen).expect("decode");
        serving.predict(&xs, 1).expect("predict")[0].score()
    });

    // The FastAPI peer's inputs: the registry's model file, the signature, the bodies.
    let spec_path = scratch.path().join("spec.json");
    let spec = json!({
        "model": version.model_path,
        "features": feats.iter().map(|f| json!({"name": f.name, "categories": f.categories})).collect::<Vec<_>>(),
    });
    std::fs::write(&spec_path, serde_json::to_vec(&spec)?)?;
    let requests_path = scratch.path().join("requests.json");
    std::fs::write(&requests_path, format!("[{}]", bodies.join(",")))?;
    let script_dir = manifest.join("benches");
    let have_python = python_has(&python, "fastapi, uvicorn, xgboost, numpy");
    if !have_python {
        eprintln!(
            "note: {python} lacks fastapi, uvicorn, xgboost or numpy — the FastAPI peer is skipped; \
             install them with scripts/install-bench-tools.sh"
        );
    }
    let python_bare = if have_python {
        let o = Command::new(&python)
            .arg(script_dir.join("serve_python.py"))
            .args(["bare"])
            .arg(&spec_path)
            .arg(&requests_path)
            .arg("2000")
            .output()?;
        if !o.status.success() {
            return Err(format!("serve_python.py bare failed:\n{}", String::from_utf8_lossy(&o.stderr)).into());
        }
        let v: Value = serde_json::from_slice(&o.stdout)?;
        v["predict_us"].as_f64().zip(v["encode_predict_us"].as_f64())
    } else {
        None
    };
    let bare = Bare { forest: forest_us, xgboost: xgboost_us, decode_forest: decode_forest_us, python: python_bare };

    // mlops: its own runtime, default worker threads; prediction log on and off.
    let server_rt = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("mlops-server").build()?;
    let generator = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(gen_threads)
        .enable_all()
        .thread_name("loadgen")
        .build()?;
    let start = |log: Option<PathBuf>| -> Result<RunningServer, Error> {
        let endpoints = Arc::new(Endpoints::new());
        endpoints.upsert(ENDPOINT, EndpointSettings::default(), vec![(serving.clone(), 100)])?;
        endpoints.set_ready(true);
        let options = ServerOptions { prediction_log: log.map(PredictionLogOptions::new), ..ServerOptions::default() };
        Ok(server_rt.block_on(Server::start("127.0.0.1:0".parse()?, endpoints, options))?)
    };
    let path = format!("/v1/endpoints/{ENDPOINT}/predict");
    let mut results = Vec::new();
    // The log-on server stays up for the extra open-loop runs at the end.
    let logged = start(Some(scratch.path().join("predictions")))?;
    let logged_peer = Peer::new("mlops (prediction log on)", logged.local_addr(), &path, &bodies, Target::InProcess);
    check_answers(&generator, &logged_peer, &expected)?;
    results.push(measure(&generator, &logged_peer, conns, secs, reps)?);
    {
        let server = start(None)?;
        let peer = Peer::new("mlops (prediction log off)", server.local_addr(), &path, &bodies, Target::InProcess);
        check_answers(&generator, &peer, &expected)?;
        results.push(measure(&generator, &peer, conns, secs, reps)?);
        server_rt.block_on(server.shutdown());
    }
    if have_python {
        for &w in &py_workers {
            let name = format!("FastAPI+uvicorn ({w} worker{})", if w == 1 { "" } else { "s" });
            let server =
                Uvicorn::start(&python, &script_dir, &spec_path, w, &scratch.path().join(format!("uvicorn-{w}.log")))?;
            let peer = Peer::new(&name, server.addr, "/predict", &bodies, Target::Process(server.child.id()));
            check_answers(&generator, &peer, &expected)?;
            results.push(measure(&generator, &peer, conns, secs, reps)?);
        }
    }
    // mlops (log on), open loop at lighter loads: a quarter of its peak, and each FastAPI peak.
    let mut extra = Vec::new();
    let mut loads = vec![(format!("{:.0}% of its peak", 100.0 * QUARTER), results[0].peak.rate * QUARTER)];
    for r in results.iter().filter(|r| !r.name.starts_with("mlops")) {
        loads.push((format!("{}'s peak", r.name), r.peak.rate));
    }
    for (what, rate) in loads {
        if rate >= 1.0 {
            eprintln!("mlops (prediction log on): open loop at {rate:.0} req/s ({what}), {secs} s …");
            extra.push((what, open_loop(&generator, &logged_peer, OPEN_CONNS, rate, secs)?));
        }
    }
    let log_stats = server_rt.block_on(logged.shutdown()).prediction_log;

    report(&results, &extra, &bare, log_stats, cores, conns, gen_threads, secs);
    Ok(true)
}

#[allow(clippy::too_many_arguments)]
fn report(
    results: &[Row],
    extra: &[(String, Measured)],
    bare: &Bare,
    log: Option<mlops_runtime::serve::PredictionLogStats>,
    cores: usize,
    conns: usize,
    gen_threads: usize,
    secs: f64,
) {
    println!();
    println!(
        "single-row POSTs on loopback, {cores} cores shared by server and load generator ({gen_threads} thread); \
         {secs} s per run after 1 s warm-up"
    );
    println!(
        "every server answered all {REQUEST_ROWS} distinct rows with the in-process Forest's score, bit-identical"
    );
    println!();
    println!(
        "{:<30} {:>9} {:>8} {:>8} {:>7} {:>7} {:>7} │ {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
        "", "peak", "p50", "p99", "srv", "gen", "others", "half", "p50", "p99", "p99.9", "lag p99", "srv", "others"
    );
    println!(
        "{:<30} {:>9} {:>8} {:>8} {:>7} {:>7} {:>7} │ {:>8} {:>8} {:>8} {:>8} {:>8} {:>7} {:>7}",
        "", "req/s", "µs", "µs", "µs/req", "µs/req", "cores", "req/s", "µs", "µs", "µs", "µs", "µs/req", "cores"
    );
    for r in results {
        let p = &r.peak;
        let mut line = format!(
            "{:<30} {:>9.0} {:>8.0} {:>8.0} {:>7.1} {:>7.1} {:>7.2} │",
            r.name,
            p.rate,
            p.p(0.5),
            p.p(0.99),
            p.per_request_us(p.cpu.server),
            p.per_request_us(p.cpu.generator),
            p.cpu.others / secs,
        );
        if let Some(h) = &r.half {
            line += &format!(
                " {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>7.1} {:>7.2}",
                h.offered.unwrap_or(h.rate),
                h.p(0.5),
                h.p(0.99),
                h.p(0.999),
                Measured::q(&h.lag, 0.99),
                h.per_request_us(h.cpu.server),
                h.cpu.others / secs,
            );
        }
        if p.errors + r.half.as_ref().map_or(0, |h| h.errors) > 0 {
            line += &format!("  ({} errors)", p.errors + r.half.as_ref().map_or(0, |h| h.errors));
        }
        println!("{line}");
    }
    println!();
    println!(
        "closed loop: {conns} connections; half: open loop at half that row's peak, 32 connections, latency from \
         write to answer; lag: scheduled → sent"
    );
    println!(
        "srv/gen: CPU time of the server / the load generator per answered request; others: cores used by other \
         processes, interrupts and the hypervisor"
    );
    if !extra.is_empty() {
        println!();
        println!("mlops (prediction log on), open loop at lighter loads:");
        println!(
            "  {:<44} {:>8} {:>8} {:>8} {:>8} {:>8} {:>7}",
            "load", "req/s", "p50 µs", "p99 µs", "p99.9 µs", "lag p99", "others"
        );
        for (what, h) in extra {
            println!(
                "  {:<44} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>8.0} {:>7.2}",
                what,
                h.offered.unwrap_or(h.rate),
                h.p(0.5),
                h.p(0.99),
                h.p(0.999),
                Measured::q(&h.lag, 0.99),
                h.cpu.others / secs
            );
        }
    }
    if let Some(s) = log {
        println!("prediction log: {} predictions written, {} dropped (sampled under pressure)", s.written, s.dropped);
    }

    println!();
    println!("bare in-process prediction of one row, µs per call:");
    println!("  native Forest                               {:8.2}", bare.forest);
    println!("  XGBoost C predictor (DMatrix + predict)     {:8.2}", bare.xgboost);
    println!("  mlops decode JSON row + Forest              {:8.2}", bare.decode_forest);
    if let Some((p, e)) = bare.python {
        println!("  Python Booster.inplace_predict              {p:8.2}");
        println!("  Python dict → numpy row + inplace_predict   {e:8.2}");
    }

    let mlops = results.iter().find(|r| r.name.starts_with("mlops"));
    let Some(m) = mlops else { return };
    println!();
    if let Some(h) = &m.half {
        let p50 = h.p(0.5);
        println!(
            "HTTP overhead ({}, p50 at half peak over bare Forest): {:.0} µs ({:.0}× the prediction; {:.1}× XGBoost's \
             predictor)",
            m.name,
            p50 - bare.forest,
            p50 / bare.forest,
            p50 / bare.xgboost
        );
        let p99 = h.p(0.99);
        println!(
            "target p99 < 1 ms at half peak: {p99:.0} µs at {:.0} req/s — {}",
            h.offered.unwrap_or(h.rate),
            if p99 < TARGET_P99_US { "met" } else { "NOT met" }
        );
    }
    for r in results.iter().filter(|r| !r.name.starts_with("mlops")) {
        if let (Some(h), Some((py, _))) = (&r.half, bare.python) {
            println!("HTTP overhead ({}, p50 at half peak over bare inplace_predict): {:.0} µs", r.name, h.p(0.5) - py);
        }
        for mr in results.iter().filter(|x| x.name.starts_with("mlops")) {
            let ratio = mr.peak.rate / r.peak.rate;
            let cpu = r.peak.per_request_us(r.peak.cpu.server) / mr.peak.per_request_us(mr.peak.cpu.server);
            println!(
                "throughput {} / {}: {ratio:.1}× (target ≥ {TARGET_RATIO:.0}×: {}); server CPU per request at \
                 peak: {cpu:.1}× less",
                mr.name,
                r.name,
                if ratio >= TARGET_RATIO { "met" } else { "NOT met" }
            );
        }
    }
}
