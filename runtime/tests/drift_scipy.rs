//! The drift statistics against SciPy: datasets generated here (normal, shifted, tied, small
//! samples on KS's exact path and large ones on its asymptotic path, empty PSI bins, NaNs,
//! categories unseen in the reference, two and hundreds of categories) are written to a
//! temporary directory; `support/drift_reference.py` computes SciPy's and NumPy's values on the
//! same data, and every statistic and p-value must agree within 1e-9 (relative above 1). So do
//! the distributions behind the p-values, on grids that reach every branch of their algorithms:
//! `scipy.stats.kstwo.sf`, `scipy.special.smirnov`, `scipy.stats.chi2.sf`.
//!
//! CI installs SciPy (`scripts/setup.sh`); without it this test fails, naming the fix.

use mlops_runtime::monitor::drift::{
    chi2_sf, kstwo_sf, smirnov_sf, CategoryCounts, FeatureData, Method, NumericSample, MAX_EXACT_N,
};
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

const BINS: usize = 10;

/// SplitMix64 with Box–Muller normals: reproducible data without a dependency.
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

    fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        mean + sd * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    fn normals(&mut self, n: usize, mean: f64, sd: f64) -> Vec<f64> {
        (0..n).map(|_| self.normal(mean, sd)).collect()
    }

    /// A category drawn with weights.
    fn pick<'a>(&mut self, names: &'a [String], weights: &[f64]) -> &'a str {
        let total: f64 = weights.iter().sum();
        let mut u = self.uniform() * total;
        for (n, w) in names.iter().zip(weights) {
            if u < *w {
                return n;
            }
            u -= w;
        }
        names.last().unwrap()
    }
}

enum Data {
    Numeric(Vec<f64>, Vec<f64>),
    Categorical(Vec<String>, Vec<String>),
}

struct Case {
    name: &'static str,
    data: Data,
    /// Which KS path the case is there for (None: either).
    ks_exact: Option<bool>,
}

fn numeric_cases(rng: &mut Rng) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add =
        |name, a: Vec<f64>, b: Vec<f64>, ks_exact| cases.push(Case { name, data: Data::Numeric(a, b), ks_exact });
    add("normal_same_exact", rng.normals(5_000, 0.0, 1.0), rng.normals(4_000, 0.0, 1.0), Some(true));
    add("normal_shift_equal_n", rng.normals(3_000, 0.0, 1.0), rng.normals(3_000, 0.15, 1.0), Some(true));
    add("normal_far_equal_n", rng.normals(800, 0.0, 1.0), rng.normals(800, 1.0, 1.0), Some(true));
    add("small", rng.normals(7, 0.0, 1.0), rng.normals(9, 0.5, 1.0), Some(true));
    add("tiny_disjoint", vec![1.0, 2.0], vec![3.0, 4.0, 5.0], Some(true));
    add("exact_at_limit", rng.normals(MAX_EXACT_N, 0.0, 1.0), rng.normals(9_973, 0.05, 1.0), Some(true));
    // Rounded values: many ties, within and across samples.
    let ties = |rng: &mut Rng, n, m: f64| (0..n).map(|_| rng.normal(m, 3.0).round()).collect::<Vec<f64>>();
    add("ties_exact", ties(rng, 2_000, 10.0), ties(rng, 2_500, 10.4), Some(true));
    add("ties_asymptotic", ties(rng, 30_000, 10.0), ties(rng, 20_000, 10.1), Some(false));
    add("large_same", rng.normals(50_000, 0.0, 1.0), rng.normals(40_000, 0.0, 1.0), Some(false));
    add("large_shift", rng.normals(200_000, 0.0, 1.0), rng.normals(150_000, 0.02, 1.05), Some(false));
    add("large_far", rng.normals(60_000, 0.0, 1.0), rng.normals(60_000, 0.5, 1.0), Some(false));
    // Very unequal sizes: the asymptotic p-value's n is about the smaller one (≤ 140 here).
    add("unequal_sizes", rng.normals(20_001, 0.0, 1.0), rng.normals(120, 0.3, 1.0), Some(false));
    add("unequal_sizes_close", rng.normals(30_000, 0.0, 1.0), rng.normals(60, 0.05, 1.0), Some(false));
    // Heavy tails and a scale far from 1.
    let lognormal = |rng: &mut Rng, n, s: f64| (0..n).map(|_| (rng.normal(0.0, s)).exp() * 1e4).collect::<Vec<f64>>();
    add("lognormal", lognormal(rng, 12_000, 1.0), lognormal(rng, 11_000, 1.2), Some(false));
    // The current window leaves most reference bins empty.
    let uniform =
        |rng: &mut Rng, n, lo: f64, hi: f64| (0..n).map(|_| lo + (hi - lo) * rng.uniform()).collect::<Vec<f64>>();
    add("psi_empty_bins", uniform(rng, 5_000, 0.0, 1.0), uniform(rng, 3_000, 0.7, 1.0), Some(true));
    // A reference that is 80 % one value: its quantile bins collapse.
    let mut zeros = vec![0.0; 4_000];
    zeros.extend(uniform(rng, 1_000, 0.0, 5.0));
    let mut cur = vec![0.0; 2_000];
    cur.extend(uniform(rng, 2_000, 0.0, 5.0));
    add("psi_collapsed_bins", zeros, cur, Some(true));
    // Missing values are dropped on both sides before anything is computed.
    let mut with_nan = rng.normals(3_000, 0.0, 1.0);
    for i in (0..with_nan.len()).step_by(7) {
        with_nan[i] = f64::NAN;
    }
    let mut cur = rng.normals(2_000, 0.1, 1.0);
    cur[5] = f64::INFINITY;
    cur[9] = f64::NAN;
    add("nan_dropped", with_nan, cur, Some(true));
    cases
}

fn categorical_cases(rng: &mut Rng) -> Vec<Case> {
    let names = |n: usize, prefix: &str| (0..n).map(|i| format!("{prefix}{i:03}")).collect::<Vec<String>>();
    let draw = |rng: &mut Rng, n: usize, names: &[String], weights: &[f64]| {
        (0..n).map(|_| rng.pick(names, weights).to_string()).collect::<Vec<String>>()
    };
    let ten = names(10, "merchant_");
    let w: Vec<f64> = (1..=10).map(f64::from).collect();
    let mut w2 = w.clone();
    w2.reverse();
    let mut cases = Vec::new();
    let same = (draw(rng, 5_000, &ten, &w), draw(rng, 4_000, &ten, &w));
    cases.push(Case { name: "cat_same", data: Data::Categorical(same.0, same.1), ks_exact: None });
    let shift = (draw(rng, 5_000, &ten, &w), draw(rng, 4_000, &ten, &w2));
    cases.push(Case { name: "cat_shift", data: Data::Categorical(shift.0, shift.1), ks_exact: None });
    // Current has categories the reference never saw (and lacks one it had).
    let mut wider = ten.clone();
    wider.extend(names(3, "new_"));
    let ww: Vec<f64> = (0..13).map(|i| if i == 0 { 0.0 } else { 1.0 }).collect();
    let unseen = (draw(rng, 3_000, &ten, &w), draw(rng, 3_000, &wider, &ww));
    cases.push(Case { name: "cat_unseen", data: Data::Categorical(unseen.0, unseen.1), ks_exact: None });
    let two = names(2, "flag_");
    let yates = (draw(rng, 400, &two, &[0.5, 0.5]), draw(rng, 300, &two, &[0.56, 0.44]));
    cases.push(Case { name: "cat_two_yates", data: Data::Categorical(yates.0, yates.1), ks_exact: None });
    let one = vec!["only".to_string(); 50];
    cases.push(Case { name: "cat_one", data: Data::Categorical(one.clone(), one[..20].to_vec()), ks_exact: None });
    let many = names(300, "c");
    let wm: Vec<f64> = (0..300).map(|i| 1.0 / (1.0 + i as f64)).collect();
    let many_draw = (draw(rng, 60_000, &many, &wm), draw(rng, 50_000, &many, &wm));
    cases.push(Case { name: "cat_many", data: Data::Categorical(many_draw.0, many_draw.1), ks_exact: None });
    cases
}

fn write_f64(path: &Path, values: &[f64]) {
    let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Runs the reference script on `dir/request.json` and returns `dir/scipy.json`.
fn scipy(dir: &Path) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/drift_reference.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; install Python 3 with scripts/setup.sh", python()));
    assert!(
        out.status.success(),
        "the SciPy reference failed (scripts/setup.sh installs scipy and numpy):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(dir.join("scipy.json")).unwrap()).unwrap()
}

/// Equal within 1e-9, relative to the size of the value when it is above 1.
#[track_caller]
fn assert_close(what: &str, ours: f64, theirs: f64) {
    let tol = 1e-9 * theirs.abs().max(1.0);
    assert!(
        (ours - theirs).abs() <= tol || ours == theirs,
        "{what}: ours {ours:e}, SciPy {theirs:e} (difference {:e})",
        (ours - theirs).abs()
    );
}

/// A p-value must also agree relatively wherever it is not vanishingly small, so that tiny
/// p-values are checked too rather than passing as "both about 0".
#[track_caller]
fn assert_p_close(what: &str, ours: f64, theirs: f64) {
    assert_close(what, ours, theirs);
    if theirs > 1e-250 {
        let rel = (ours - theirs).abs() / theirs;
        assert!(rel <= 1e-8, "{what}: ours {ours:e}, SciPy {theirs:e} (relative difference {rel:e})");
    }
}

fn f(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer).and_then(Value::as_f64).unwrap_or_else(|| panic!("no number at {pointer} in {v}"))
}

#[test]
fn drift_statistics_equal_scipy_on_the_same_data() {
    let mut rng = Rng(20_260_601);
    let mut cases = numeric_cases(&mut rng);
    cases.extend(categorical_cases(&mut rng));
    let dir = tempfile::tempdir().unwrap();
    let mut request = Vec::new();
    for c in &cases {
        match &c.data {
            Data::Numeric(a, b) => {
                write_f64(&dir.path().join(format!("{}.ref.f64", c.name)), a);
                write_f64(&dir.path().join(format!("{}.cur.f64", c.name)), b);
                request.push(json!({"name": c.name, "kind": "numeric", "bins": BINS}));
            }
            Data::Categorical(a, b) => {
                std::fs::write(dir.path().join(format!("{}.ref.txt", c.name)), a.join("\n") + "\n").unwrap();
                std::fs::write(dir.path().join(format!("{}.cur.txt", c.name)), b.join("\n") + "\n").unwrap();
                request.push(json!({"name": c.name, "kind": "categorical"}));
            }
        }
    }
    std::fs::write(dir.path().join("request.json"), json!({"cases": request}).to_string()).unwrap();
    let sp = scipy(dir.path());

    let mut paths = [0usize; 2];
    for c in &cases {
        let r = &sp["cases"][c.name];
        // Numeric samples both sorted up front (a stored reference) and left in their order (a
        // window compared once): the two paths must give the same numbers.
        let sides: Vec<(&str, FeatureData, FeatureData)> = match &c.data {
            Data::Numeric(a, b) => vec![
                (
                    "sorted",
                    FeatureData::Numeric(NumericSample::new(a.clone())),
                    FeatureData::Numeric(NumericSample::new(b.clone())),
                ),
                (
                    "unsorted",
                    FeatureData::Numeric(NumericSample::unsorted(a.clone())),
                    FeatureData::Numeric(NumericSample::unsorted(b.clone())),
                ),
            ],
            Data::Categorical(a, b) => vec![(
                "counts",
                FeatureData::Categorical(CategoryCounts::from_values(a.iter().map(|s| Some(s.as_str())))),
                FeatureData::Categorical(CategoryCounts::from_values(b.iter().map(|s| Some(s.as_str())))),
            )],
        };
        for (how, reference, current) in &sides {
            let measure = |m: Method| m.statistic(BINS).measure(reference, current).unwrap();
            let name = format!("{} ({how})", c.name);
            match &c.data {
                Data::Numeric(..) => {
                    let ks = measure(Method::Ks);
                    assert_close(&format!("{name}: KS D"), ks.statistic, f(r, "/ks/statistic"));
                    assert_p_close(&format!("{name}: KS p-value"), ks.p_value.unwrap(), f(r, "/ks/p_value"));
                    let exact = ks.details.exact.unwrap();
                    paths[usize::from(exact)] += 1;
                    if let Some(want) = c.ks_exact {
                        assert_eq!(exact, want, "{name}: KS path");
                    }
                    let w = measure(Method::Wasserstein);
                    assert_close(
                        &format!("{name}: Wasserstein"),
                        w.details.raw_distance.unwrap(),
                        f(r, "/wasserstein/raw"),
                    );
                    assert_close(
                        &format!("{name}: reference std"),
                        w.details.reference_std.unwrap(),
                        f(r, "/wasserstein/std"),
                    );
                    assert_close(&format!("{name}: Wasserstein / std"), w.statistic, f(r, "/wasserstein/statistic"));
                    let psi = measure(Method::Psi);
                    assert_eq!(psi.details.bins.unwrap() as f64, f(r, "/bins"), "{name}: number of bins");
                    assert_close(&format!("{name}: PSI"), psi.statistic, f(r, "/psi"));
                    assert_close(&format!("{name}: JS"), measure(Method::Js).statistic, f(r, "/js"));
                }
                Data::Categorical(..) => {
                    let chi = measure(Method::Chi2);
                    assert_close(&format!("{name}: chi2"), chi.statistic, f(r, "/chi2/statistic"));
                    assert_p_close(&format!("{name}: chi2 p-value"), chi.p_value.unwrap(), f(r, "/chi2/p_value"));
                    assert_eq!(chi.details.dof.unwrap() as f64, f(r, "/chi2/dof"), "{name}: dof");
                    assert_close(&format!("{name}: JS"), measure(Method::Js).statistic, f(r, "/js"));
                }
            }
        }
    }
    assert!(paths[0] >= 5 && paths[1] >= 5, "both KS paths exercised: {paths:?}");
    // The cases meant to differ do, and those meant to agree do not (the data is what it says).
    assert!(f(&sp, "/cases/large_far/ks/p_value") < 1e-100);
    assert!(f(&sp, "/cases/large_same/ks/p_value") > 0.01);
    assert!(f(&sp, "/cases/cat_shift/chi2/p_value") < 1e-10);
    assert!(f(&sp, "/cases/psi_empty_bins/psi") > 1.0);
}

/// `(n, d)` points that reach every method of the one-sample distribution: Ruben–Gambino at
/// both ends, the exact tail for d ≥ ½, Durbin's matrix, Pomeranz, Pelz–Good, the one-sided tail
/// (lower and upper sums) and its approximation beyond a million.
fn kstwo_grid() -> Vec<(u64, f64)> {
    let mut points = Vec::new();
    for n in
        [1u64, 2, 3, 5, 10, 31, 64, 100, 139, 140, 141, 300, 1_000, 4_999, 20_000, 100_000, 100_001, 250_000, 500_000]
    {
        let nf = n as f64;
        // SciPy takes up to a second a point for the largest n: fewer of them there.
        let all = [0.2, 0.4, 0.6, 0.8, 0.9, 1.0, 1.2, 1.5, 1.8, 2.0, 2.5, 3.0, 4.0, 6.0, 10.0, 19.0];
        let few = [0.4, 0.9, 1.4, 1.6, 3.0, 19.0];
        for &c in if n >= 100_000 { &few[..] } else { &all[..] } {
            let d = c / nf.sqrt();
            if d < 1.0 {
                points.push((n, d));
            }
        }
        for d in [0.6 / nf, 0.9 / nf, 1.5 / nf, 0.5, 0.51, 0.7, 0.95, 1.0 - 1.5 / nf] {
            if d > 0.0 && d < 1.0 {
                points.push((n, d));
            }
        }
    }
    points
}

fn smirnov_grid() -> Vec<(u64, f64)> {
    let mut points = Vec::new();
    for n in [1u64, 2, 7, 10, 11, 50, 200, 1_000, 10_000, 100_000, 500_000, 1_000_000, 1_500_000] {
        let nf = n as f64;
        let all = [0.05, 0.1, 0.3, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0];
        let few = [0.1, 1.0, 3.0];
        for &c in if n >= 100_000 { &few[..] } else { &all[..] } {
            let d = c / nf.sqrt();
            if d < 1.0 {
                points.push((n, d));
            }
        }
        for d in [0.5 / nf, 1.0 / nf, 2.0 / nf, 0.5, 0.9, 1.0 - 0.5 / nf] {
            if d > 0.0 && d < 1.0 {
                points.push((n, d));
            }
        }
    }
    points
}

fn chi2_grid() -> Vec<(f64, f64)> {
    let mut points = Vec::new();
    for dof in [1.0, 2.0, 3.0, 9.0, 20.0, 99.0, 299.0, 1_000.0, 10_000.0] {
        for c in [0.01, 0.1, 0.5, 0.9, 1.0, 1.1, 1.5, 2.0, 3.0, 10.0] {
            points.push((dof * c, dof));
        }
        for x in [1e-6, 0.5, 50.0, 500.0] {
            points.push((x, dof));
        }
    }
    points
}

#[test]
fn the_distributions_behind_the_p_values_equal_scipy() {
    let dir = tempfile::tempdir().unwrap();
    let (ks, sm, chi) = (kstwo_grid(), smirnov_grid(), chi2_grid());
    let request = json!({"cases": [], "kstwo": ks, "smirnov": sm, "chi2": chi});
    std::fs::write(dir.path().join("request.json"), request.to_string()).unwrap();
    let sp = scipy(dir.path());
    for (i, &(n, d)) in ks.iter().enumerate() {
        assert_p_close(&format!("kstwo.sf({d}, {n})"), kstwo_sf(n, d), f(&sp, &format!("/kstwo/{i}")));
    }
    for (i, &(n, d)) in sm.iter().enumerate() {
        assert_p_close(&format!("smirnov({n}, {d})"), smirnov_sf(n, d), f(&sp, &format!("/smirnov/{i}")));
    }
    for (i, &(x, dof)) in chi.iter().enumerate() {
        assert_p_close(&format!("chi2.sf({x}, {dof})"), chi2_sf(x, dof), f(&sp, &format!("/chi2/{i}")));
    }
}
