//! Feature materialisation against pandas: `cargo bench -p mlops-runtime --bench materialize`.
//!
//! Generates (once, deterministically) `target/bench-data/transactions-<rows>.csv` — 5,000,000
//! transactions by default (`MLOPS_BENCH_ROWS` overrides), ~100k accounts over 30 days, 1% of
//! amounts missing — then runs each side in its own process: our feature store (CSV through
//! `data::open`, sum/count/mean of `amount` over 24h and 7d per account, Parquet out) and
//! `materialize_pandas.py` (the same aggregation with pandas' time-based rolling windows,
//! Parquet out). Each process reports its wall time, its peak RSS (VmHWM) and a checksum of the
//! features of a sample of accounts; the checksums must agree. Prints both and the ratios.

use mlops_compiler::model::{Aggregate, Column, ColumnType, Feature, FeatureKind, FeatureView, Source, SourceFormat};
use mlops_compiler::units::Duration;
use mlops_runtime::data;
use mlops_runtime::features::{materialize, read_offline, FeatureStore};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

const VIEW: &str = "feature_view.account_activity";
const ACCOUNTS: u64 = 100_000;
const DAYS: i64 = 30;
/// 2026-01-01T00:00:00Z.
const START: i64 = 1_767_225_600;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--child") {
        Some(i) if args.len() >= i + 3 => match run_ours(Path::new(&args[i + 1]), Path::new(&args[i + 2])) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
        _ => match compare() {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => ExitCode::FAILURE,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

type Error = Box<dyn std::error::Error>;

fn compare() -> Result<bool, Error> {
    let rows: u64 = std::env::var("MLOPS_BENCH_ROWS").ok().and_then(|s| s.parse().ok()).unwrap_or(5_000_000);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| manifest.join("..").join("target"));
    let data_dir = target.join("bench-data");
    std::fs::create_dir_all(&data_dir)?;
    let csv = data_dir.join(format!("transactions-{rows}.csv"));
    if !csv.exists() {
        eprintln!("generating {} ({rows} rows)…", csv.display());
        generate(&csv, rows)?;
    }
    let size_mb = std::fs::metadata(&csv)?.len() as f64 / 1e6;

    let ours = run(Command::new(std::env::current_exe()?).arg("--child").arg(&csv).arg(data_dir.join("store")))?;
    let script = manifest.join("benches").join("materialize_pandas.py");
    let pandas = run(Command::new("python3").arg(&script).arg(&csv).arg(data_dir.join("pandas-out.parquet")))
        .map_err(|e| format!("{e}\n(the peer needs `pip install pandas pyarrow`)"))?;

    let (t_ours, t_pandas) = (ours.get("time_s")?, pandas.get("time_s")?);
    let (m_ours, m_pandas) = (ours.get("peak_rss_kb")? / 1024.0, pandas.get("peak_rss_kb")? / 1024.0);
    let (c_ours, c_pandas) = (ours.get("checksum")?, pandas.get("checksum")?);
    let agree = (c_ours - c_pandas).abs() <= 1e-9 * c_pandas.abs().max(1.0);
    println!(
        "materialise {rows} rows ({size_mb:.0} MB CSV, ~{ACCOUNTS} accounts): sum/count/mean of amount over 24h and 7d"
    );
    println!("  mlops feature store: {t_ours:>7.2} s  peak RSS {m_ours:>7.0} MiB  checksum {c_ours:.6}");
    println!("  pandas (pyarrow csv): {t_pandas:>6.2} s  peak RSS {m_pandas:>7.0} MiB  checksum {c_pandas:.6}");
    println!("  {}", ours.extra);
    println!(
        "speed: ours is {:.1}× pandas (target ≥ 5×); peak memory: ours is {:.2}× pandas; checksums {}",
        t_pandas / t_ours,
        m_ours / m_pandas,
        if agree { "agree" } else { "DIFFER" }
    );
    Ok(agree)
}

/// `key=value` lines printed by a side.
struct Outcome {
    values: Vec<(String, f64)>,
    extra: String,
}

impl Outcome {
    fn get(&self, key: &str) -> Result<f64, Error> {
        self.values.iter().find(|(k, _)| k == key).map(|(_, v)| *v).ok_or_else(|| format!("no `{key}` reported").into())
    }
}

fn run(cmd: &mut Command) -> Result<Outcome, Error> {
    let out = cmd.output().map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut values = Vec::new();
    let mut extra = String::new();
    for line in text.lines() {
        match line.split_once('=').map(|(k, v)| (k, v.parse::<f64>())) {
            Some((k, Ok(v))) => values.push((k.to_string(), v)),
            _ => extra.push_str(line),
        }
    }
    Ok(Outcome { values, extra })
}

fn source(csv: &Path) -> Source {
    let col = |name: &str, ty, nullable| Column { name: name.into(), ty, nullable };
    Source {
        format: SourceFormat::Csv,
        path: Some(csv.to_string_lossy().into_owned()),
        connection: None,
        connection_env: None,
        table: None,
        query: None,
        timestamp: Some("event_time".into()),
        delimiter: ",".into(),
        header: true,
        columns: vec![
            col("account_id", ColumnType::Int, false),
            col("event_time", ColumnType::Timestamp, false),
            col("amount", ColumnType::Float, true),
        ],
        description: None,
    }
}

fn view() -> Result<FeatureView, Error> {
    let mut features = Vec::new();
    for window in ["24h", "7d"] {
        for (name, aggregate, dtype) in [
            ("sum", Aggregate::Sum, ColumnType::Float),
            ("count", Aggregate::Count, ColumnType::Int),
            ("mean", Aggregate::Mean, ColumnType::Float),
        ] {
            features.push(Feature {
                name: format!("amount_{name}_{window}"),
                kind: FeatureKind::Aggregate { column: "amount".into(), aggregate, window: Duration::parse(window)? },
                dtype,
                description: None,
            });
        }
    }
    Ok(FeatureView {
        source: "source.transactions".into(),
        entities: vec!["entity.account".into()],
        join_keys: vec!["account_id".into()],
        ttl: Some(Duration::parse("7d")?),
        online: true,
        features,
        description: None,
    })
}

/// The child process: one full materialisation, then (untimed) the sample checksum.
fn run_ours(csv: &Path, store_dir: &Path) -> Result<(), Error> {
    let _ = std::fs::remove_dir_all(store_dir);
    let store = FeatureStore::open(store_dir)?;
    let (source, view) = (source(csv), view()?);
    let started = Instant::now();
    let reader = data::open(&source, "source.transactions", Path::new("/"))?;
    let fingerprint = data::fingerprint(&source, "source.transactions", Path::new("/"))?;
    let report = materialize(&store, VIEW, &view, &source, reader, &fingerprint)?;
    let elapsed = started.elapsed().as_secs_f64();
    let peak = peak_rss_kb();

    let mut checksum = 0.0;
    for batch in read_offline(&store, VIEW, None)? {
        let batch = batch?;
        let ids = batch.column(0).as_any().downcast_ref::<arrow_array::Int64Array>().ok_or("account_id type")?;
        for c in 2..batch.num_columns() {
            let col = batch.column(c);
            let value = |i: usize| -> Option<f64> {
                let any = col.as_any();
                if col.is_null(i) {
                    None
                } else if let Some(a) = any.downcast_ref::<arrow_array::Float64Array>() {
                    Some(a.value(i))
                } else {
                    any.downcast_ref::<arrow_array::Int64Array>().map(|a| a.value(i) as f64)
                }
            };
            for i in 0..batch.num_rows() {
                if ids.value(i) % 1000 == 0 {
                    checksum += value(i).unwrap_or(0.0);
                }
            }
        }
    }
    println!("time_s={elapsed:.3}");
    println!("peak_rss_kb={peak}");
    println!("rows={}", report.rows_written);
    println!("checksum={checksum:.6}");
    println!(
        "(ours: {} partitions, {} tail rows kept, {} accounts online, {} threads)",
        report.partitions,
        report.tail_rows,
        report.online_entities,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(())
}

use arrow_array::Array;

fn peak_rss_kb() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(-1)
}

/// SplitMix64: fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Writes the transactions: roughly in time order (a few minutes of jitter, as logs arrive).
fn generate(path: &Path, rows: u64) -> Result<(), Error> {
    let tmp = path.with_extension("csv.tmp");
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp)?);
    writeln!(w, "account_id,event_time,amount")?;
    let mut rng = Rng(42);
    let span = DAYS * 86_400;
    for i in 0..rows {
        let account = rng.next() % ACCOUNTS;
        let jitter = (rng.next() % 600) as i64 - 300;
        let t = (START + (i as i64 * span) / rows as i64 + jitter).max(START);
        let r = rng.next();
        write!(w, "{account},{},", rfc3339(t))?;
        if !r.is_multiple_of(100) {
            // Cents, log-uniform-ish: mostly small purchases, some large ones.
            let cents = (r >> 8) % 10_000 * (1 + (r >> 40) % 50);
            write!(w, "{}.{:02}", cents / 100, cents % 100)?;
        }
        w.write_all(b"\n")?;
    }
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (days → civil date after H. Hinnant).
fn rfc3339(t: i64) -> String {
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}
