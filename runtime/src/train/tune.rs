//! Random-search tuning. In: the declared search space, the number of trials and a seed. Out:
//! each trial's parameter values, drawn before any trial runs (so the draws never depend on
//! thread scheduling), and a way to run the trials on a bounded number of threads.
//!
//! A space is either a list of `values` (one picked uniformly) or a `min`..`max` range, uniform on
//! a `linear` or `log` scale, optionally `integer`. Drawn reals are rounded to 4 significant
//! digits: a random search gains nothing from more, and people read these values in plans.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use mlops_compiler::model::Search;
use serde_json::Value;

use super::rng::SplitMix64;
use super::TrainError;

fn search_err(param: &str, reason: impl Into<String>) -> TrainError {
    TrainError::Search { param: param.to_string(), reason: reason.into() }
}

fn round_sig(v: f64, digits: i32) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(digits - 1 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

/// Checks a search space without drawing from it.
pub(crate) fn check_space(space: &[Search]) -> Result<(), TrainError> {
    for s in space {
        match (&s.values, s.min, s.max) {
            (Some(values), None, None) => {
                if values.is_empty() {
                    return Err(search_err(&s.param, "`values` is empty"));
                }
            }
            (None, Some(lo), Some(hi)) => {
                if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                    return Err(search_err(&s.param, format!("min {lo} and max {hi} do not form a range")));
                }
                match s.scale.as_str() {
                    "linear" => {}
                    "log" if lo > 0.0 => {}
                    "log" => return Err(search_err(&s.param, format!("a log scale needs min > 0, got {lo}"))),
                    other => return Err(search_err(&s.param, format!("unknown scale `{other}` (linear or log)"))),
                }
                if s.integer && lo.ceil() > hi.floor() {
                    return Err(search_err(&s.param, format!("no whole number between {lo} and {hi}")));
                }
            }
            _ => return Err(search_err(&s.param, "give either `values` or both `min` and `max`")),
        }
    }
    Ok(())
}

fn draw(s: &Search, rng: &mut SplitMix64) -> Value {
    if let Some(values) = &s.values {
        return values[rng.below(values.len() as u64) as usize].clone();
    }
    let (lo, hi) = (s.min.unwrap_or(0.0), s.max.unwrap_or(0.0));
    if s.integer && s.scale == "linear" {
        // Every whole number in the range equally likely.
        let (a, b) = (lo.ceil() as i64, hi.floor() as i64);
        return Value::from(a + rng.below((b - a) as u64 + 1) as i64);
    }
    let u = rng.next_f64();
    let v = if s.scale == "log" { (lo.ln() + u * (hi.ln() - lo.ln())).exp() } else { lo + u * (hi - lo) };
    if s.integer {
        Value::from(v.round().clamp(lo.ceil(), hi.floor()) as i64)
    } else {
        Value::from(round_sig(v, 4).clamp(lo, hi))
    }
}

/// The parameter values of each trial, drawn in trial order from one seeded stream.
pub(crate) fn draw_trials(
    space: &[Search],
    trials: u32,
    seed: u64,
) -> Result<Vec<BTreeMap<String, Value>>, TrainError> {
    check_space(space)?;
    // A stream of its own, so tuning draws are unrelated to the holdout shuffle of the same seed.
    let mut rng = SplitMix64::new(seed ^ 0x7475_6e69_6e67_2e31);
    Ok((0..trials).map(|_| space.iter().map(|s| (s.param.clone(), draw(s, &mut rng))).collect()).collect())
}

/// Runs `f(0..n)` on up to `workers` threads; results in index order. After a failure no new
/// task starts, and the error of the lowest failing index is returned.
pub(crate) fn run_parallel<T: Send>(
    n: usize,
    workers: usize,
    f: impl Fn(usize) -> Result<T, TrainError> + Sync,
) -> Result<Vec<T>, TrainError> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<T, TrainError>>>> = Mutex::new((0..n).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..workers.clamp(1, n.max(1)) {
            scope.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let r = f(i);
                if r.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                results.lock().unwrap_or_else(PoisonError::into_inner)[i] = Some(r);
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(PoisonError::into_inner);
    let mut out = Vec::with_capacity(n);
    let mut first_err = None;
    for r in results {
        match r {
            Some(Ok(v)) => out.push(v),
            Some(Err(e)) => {
                first_err.get_or_insert(e);
            }
            // Skipped after a failure.
            None => {}
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn range(param: &str, min: f64, max: f64, scale: &str, integer: bool) -> Search {
        Search { param: param.into(), values: None, min: Some(min), max: Some(max), scale: scale.into(), integer }
    }

    #[test]
    fn draws_are_seeded_and_stay_in_their_space() {
        let space = vec![
            range("eta", 0.001, 1.0, "log", false),
            range("max_depth", 2.0, 9.0, "linear", true),
            range("subsample", 0.5, 1.0, "linear", false),
            Search {
                param: "tree_method".into(),
                values: Some(vec![json!("hist"), json!("approx")]),
                min: None,
                max: None,
                scale: "linear".into(),
                integer: false,
            },
        ];
        let a = draw_trials(&space, 400, 5).unwrap();
        assert_eq!(a, draw_trials(&space, 400, 5).unwrap());
        assert_ne!(a, draw_trials(&space, 400, 6).unwrap());
        let etas: Vec<f64> = a.iter().map(|t| t["eta"].as_f64().unwrap()).collect();
        assert!(etas.iter().all(|e| (0.001..=1.0).contains(e)));
        // Log-uniform: about a third of the draws in each decade 0.001–0.01, 0.01–0.1, 0.1–1.
        let low = etas.iter().filter(|&&e| e < 0.01).count();
        assert!((90..180).contains(&low), "{low} of 400 below 0.01");
        let depths: Vec<i64> = a.iter().map(|t| t["max_depth"].as_i64().unwrap()).collect();
        for d in 2..=9 {
            assert!(depths.contains(&d), "max_depth {d} never drawn");
        }
        assert!(depths.iter().all(|d| (2..=9).contains(d)));
        assert!(a.iter().any(|t| t["tree_method"] == "approx") && a.iter().any(|t| t["tree_method"] == "hist"));
        // 4 significant digits.
        assert!(a.iter().all(|t| {
            let s = t["subsample"].as_f64().unwrap();
            (s * 1e4).round() / 1e4 == s || (s * 1e3).round() / 1e3 == s
        }));
    }

    #[test]
    fn bad_spaces_are_errors() {
        let bad = [
            range("eta", 0.0, 1.0, "log", false),
            range("eta", 1.0, 0.5, "linear", false),
            range("eta", 0.1, 0.5, "cubic", false),
            range("max_depth", 2.2, 2.8, "linear", true),
            Search {
                param: "x".into(),
                values: None,
                min: Some(1.0),
                max: None,
                scale: "linear".into(),
                integer: false,
            },
            Search {
                param: "x".into(),
                values: Some(vec![]),
                min: None,
                max: None,
                scale: "linear".into(),
                integer: false,
            },
        ];
        for s in bad {
            let p = s.param.clone();
            assert!(matches!(draw_trials(&[s], 3, 0), Err(TrainError::Search { param, .. }) if param == p));
        }
    }

    #[test]
    fn parallel_runs_keep_order_and_report_the_first_error() {
        let out = run_parallel(20, 3, |i| Ok(i * 2)).unwrap();
        assert_eq!(out, (0..20).map(|i| i * 2).collect::<Vec<_>>());
        let err = run_parallel(5, 1, |i| if i >= 2 { Err(TrainError::Tuning(format!("trial {i}"))) } else { Ok(i) });
        assert!(matches!(err, Err(TrainError::Tuning(m)) if m == "trial 2"));
        assert_eq!(run_parallel(0, 4, Ok).unwrap(), Vec::<usize>::new());
    }
}
