//! Drift statistics against SciPy: `cargo bench -p mlops-runtime --bench drift`.
//!
//! Generates (deterministically) 1,000,000 reference and 1,000,000 current values — normal, the
//! current shifted by 0.05 and scaled by 1.1 — and 1,000,000 categories a side (50 merchant
//! names, the current with other weights and one new name), writes them to
//! `target/bench-data/drift/`, and runs each statistic from the raw values to its result, here
//! (`mlops_runtime::monitor::drift`, which puts two threads on samples of 131,072 values or
//! more) and in `drift_python.py` (SciPy and NumPy,
//! loaded once; file loading not timed) on the same data in the same run. Prints, per
//! statistic, the median of `MLOPS_BENCH_REPS` runs (default 5, after every statistic ran once
//! untimed, and each once more just before its timing) on both sides and the ratio
//! (target ≥ 10×), after checking the two values agree within 1e-9.
//!
//! "From raw values" includes everything: sorting both samples (KS, Wasserstein), the
//! reference's quantiles and both samples' bin counts (PSI, JS), counting categories (χ²). A
//! monitor does less per window, because the reference is sorted once when the model is
//! trained; the last column times that: only the current window, against a prepared reference.
//!
//! Environment: `MLOPS_BENCH_REPS`, `MLOPS_BENCH_ROWS` (values a side), `PYTHON`.

use mlops_runtime::monitor::drift::{CategoryCounts, FeatureData, Measurement, Method, NumericSample, DEFAULT_BINS};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

type Error = Box<dyn std::error::Error>;

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

/// SplitMix64 with Box–Muller normals.
struct Rng(u64);

impl Rng {
    fn u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn uniform(&mut self) -> f64 {
        (self.u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * self.uniform()).cos()
    }
}

struct Data {
    reference: Vec<f64>,
    current: Vec<f64>,
    ref_cats: Vec<String>,
    cur_cats: Vec<String>,
}

fn generate(n: usize) -> Data {
    let mut rng = Rng(6);
    let reference = (0..n).map(|_| rng.normal()).collect();
    let current = (0..n).map(|_| 0.05 + 1.1 * rng.normal()).collect();
    let names: Vec<String> = (0..51).map(|i| format!("merchant_{i:02}")).collect();
    // Reference: Zipf-like over the first 50; current: flatter, and the 51st name appears.
    let pick = |rng: &mut Rng, skew: f64, k: usize| {
        let weights: Vec<f64> = (0..k).map(|i| 1.0 / (1.0 + i as f64).powf(skew)).collect();
        let total: f64 = weights.iter().sum();
        let mut u = rng.uniform() * total;
        for (i, w) in weights.iter().enumerate() {
            if u < *w {
                return i;
            }
            u -= w;
        }
        k - 1
    };
    let ref_cats = (0..n).map(|_| names[pick(&mut rng, 1.0, 50)].clone()).collect();
    let cur_cats = (0..n).map(|_| names[pick(&mut rng, 0.9, 51)].clone()).collect();
    Data { reference, current, ref_cats, cur_cats }
}

fn write(dir: &Path, d: &Data) -> Result<(), Error> {
    std::fs::create_dir_all(dir)?;
    let f64s = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    std::fs::write(dir.join("ref.f64"), f64s(&d.reference))?;
    std::fs::write(dir.join("cur.f64"), f64s(&d.current))?;
    std::fs::write(dir.join("ref.txt"), d.ref_cats.join("\n") + "\n")?;
    std::fs::write(dir.join("cur.txt"), d.cur_cats.join("\n") + "\n")?;
    Ok(())
}

fn categorical(v: &[String]) -> FeatureData {
    FeatureData::Categorical(CategoryCounts::from_values(v.iter().map(|s| Some(s.as_str()))))
}

/// Raw values handed over: numbers as an owned vector (made before the clock starts, as a
/// window's values are when they arrive), categories as strings.
enum Raw<'a> {
    Numbers(Vec<f64>, Vec<f64>),
    Categories(&'a [String], &'a [String]),
}

fn raw(method: Method, d: &Data) -> Raw<'_> {
    match method {
        Method::Chi2 => Raw::Categories(&d.ref_cats, &d.cur_cats),
        _ => Raw::Numbers(d.reference.clone(), d.current.clone()),
    }
}

/// The statistic from raw values: both sides prepared (missing values dropped, categories
/// counted), then measured.
fn from_raw(method: Method, raw: Raw<'_>) -> Measurement {
    let (r, c) = match raw {
        Raw::Categories(a, b) => (categorical(a), categorical(b)),
        Raw::Numbers(a, b) => {
            (FeatureData::Numeric(NumericSample::unsorted(a)), FeatureData::Numeric(NumericSample::unsorted(b)))
        }
    };
    method.statistic(DEFAULT_BINS).measure(&r, &c).expect("the benchmark data fits every method")
}

/// Median and best of `reps` timings of `f` on what `setup` (not timed) makes, in seconds, and
/// its last result.
fn time<I, T>(reps: usize, mut setup: impl FnMut() -> I, mut f: impl FnMut(I) -> T) -> (f64, f64, T) {
    let mut times = Vec::with_capacity(reps);
    let mut last = None;
    // One untimed warm-up run (allocator, caches, thread start-up), as the peer gets.
    std::hint::black_box(f(setup()));
    for _ in 0..reps {
        let input = setup();
        let t = Instant::now();
        let out = f(input);
        times.push(t.elapsed().as_secs_f64());
        last = Some(std::hint::black_box(out));
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[0], last.expect("at least one repetition"))
}

fn run() -> Result<bool, Error> {
    let n: usize = env_or("MLOPS_BENCH_ROWS", 1_000_000);
    let reps: usize = env_or("MLOPS_BENCH_REPS", 5).max(1);
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| manifest.join("..").join("target"));
    let dir = target.join("bench-data").join(format!("drift-{n}"));
    eprintln!("generating {n} reference and {n} current values (numbers and categories)…");
    let data = generate(n);
    write(&dir, &data)?;

    eprintln!("timing SciPy ({reps} runs a statistic)…");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg(manifest.join("benches").join("drift_python.py"))
        .arg(&dir)
        .arg(reps.to_string())
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the SciPy peer failed (scripts/setup.sh installs scipy and numpy):\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let py: Value = serde_json::from_slice(&out.stdout)?;

    eprintln!("timing mlops…");
    println!(
        "drift statistics on {n} reference + {n} current values (categories: 50 + 51 names), median of {reps} runs; \
         mlops (2 threads) vs SciPy {} / NumPy {} (1 thread)",
        py["scipy"].as_str().unwrap_or("?"),
        py["numpy"].as_str().unwrap_or("?")
    );
    println!(
        "{:<12} {:>12} {:>12} {:>8} {:>16}  values (mlops = SciPy within 1e-9)",
        "statistic", "mlops ms", "SciPy ms", "ratio", "monitor ms"
    );
    let mut all_agree = true;
    let mut ratios = Vec::new();
    // Every statistic once, untimed, before any is timed: the allocator settles on the sizes
    // the whole run uses (otherwise the first statistic timed pays for it alone).
    for method in Method::ALL {
        std::hint::black_box(from_raw(method, raw(method, &data)));
    }
    for method in Method::ALL {
        let (median, _best, m) = time(reps, || raw(method, &data), |r| from_raw(method, r));
        // A monitor's case: the reference prepared once, only the window per run.
        let reference = match method {
            Method::Chi2 => categorical(&data.ref_cats),
            _ => FeatureData::Numeric(NumericSample::new(data.reference.clone())),
        };
        let stat = method.statistic(DEFAULT_BINS);
        let (monitor, _, _) = time(
            reps,
            || data.current.clone(),
            |current| {
                let current = match method {
                    Method::Chi2 => categorical(&data.cur_cats),
                    _ => FeatureData::Numeric(NumericSample::unsorted(current)),
                };
                stat.measure(&reference, &current).map(|m| m.statistic)
            },
        );
        let p = &py[method.name()];
        let theirs = p["value"].as_f64().ok_or("the peer gave no value")?;
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        let mut agree = close(m.statistic, theirs);
        let mut values = format!("{:.10} vs {theirs:.10}", m.statistic);
        if let (Some(ours), Some(their_p)) = (m.p_value, p["p_value"].as_f64()) {
            agree &= close(ours, their_p);
            values.push_str(&format!(", p {ours:.6e} vs {their_p:.6e}"));
        }
        all_agree &= agree;
        let scipy_s = p["median_s"].as_f64().ok_or("the peer gave no time")?;
        ratios.push(scipy_s / median);
        println!(
            "{:<12} {:>12.1} {:>12.1} {:>7.1}× {:>16.1}  {}{}",
            method.name(),
            median * 1e3,
            scipy_s * 1e3,
            scipy_s / median,
            monitor * 1e3,
            values,
            if agree { "" } else { "  DIFFERENT" }
        );
    }
    let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    println!("slowest ratio {min:.1}× (target ≥ 10×); values {}", if all_agree { "agree" } else { "DIFFER" });
    Ok(all_agree)
}
