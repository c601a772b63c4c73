//! The holdout split. In: a training set's rows and its `validation` block. Out: the row indices
//! of the training part and of the holdout, each in ascending row order, both non-empty.
//!
//! `random` shuffles with SplitMix64 seeded by `validation.seed`; `time` holds out the latest
//! `holdout` fraction by event time (ties broken by row order), so the model is judged on the
//! future it will face.

use mlops_compiler::model::Validation;

use super::rng::SplitMix64;
use super::TrainError;

/// Row indices of both parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Split {
    pub(crate) train: Vec<usize>,
    pub(crate) holdout: Vec<usize>,
}

pub(crate) fn split(event_time: &[i64], rows: usize, v: &Validation) -> Result<Split, TrainError> {
    if !(v.holdout > 0.0 && v.holdout < 1.0) {
        return Err(TrainError::Holdout(v.holdout));
    }
    if rows < 2 {
        return Err(TrainError::TooFewRows { rows, holdout: v.holdout });
    }
    // At least one row on each side, whatever the fraction.
    let n_hold = ((rows as f64 * v.holdout).round() as usize).clamp(1, rows - 1);
    let mut order: Vec<usize> = (0..rows).collect();
    let (mut train, mut holdout) = match v.split.as_str() {
        "random" => {
            SplitMix64::new(v.seed).shuffle(&mut order);
            let train = order.split_off(n_hold);
            (train, order)
        }
        "time" => {
            if event_time.len() != rows {
                return Err(TrainError::Shape(format!(
                    "a time split needs an event time per row: {} for {rows} rows",
                    event_time.len()
                )));
            }
            order.sort_by_key(|&i| (event_time[i], i));
            let holdout = order.split_off(rows - n_hold);
            (order, holdout)
        }
        other => return Err(TrainError::Split(other.to_string())),
    };
    train.sort_unstable();
    holdout.sort_unstable();
    Ok(Split { train, holdout })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(split: &str, holdout: f64, seed: u64) -> Validation {
        Validation { split: split.into(), holdout, seed }
    }

    #[test]
    fn random_split_is_seeded_disjoint_and_complete() {
        let a = split(&[], 100, &v("random", 0.2, 1)).unwrap();
        assert_eq!(a, split(&[], 100, &v("random", 0.2, 1)).unwrap());
        assert_ne!(a, split(&[], 100, &v("random", 0.2, 2)).unwrap());
        assert_eq!(a.holdout.len(), 20);
        let mut all: Vec<usize> = a.train.iter().chain(&a.holdout).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        // Not simply the last rows.
        assert_ne!(a.holdout, (80..100).collect::<Vec<_>>());
    }

    #[test]
    fn time_split_holds_out_the_latest_rows() {
        // Event times in reverse row order: the latest are the first rows.
        let times: Vec<i64> = (0..10).rev().collect();
        let s = split(&times, 10, &v("time", 0.3, 0)).unwrap();
        assert_eq!(s.holdout, vec![0, 1, 2]);
        assert_eq!(s.train, (3..10).collect::<Vec<_>>());
    }

    #[test]
    fn bad_validation_is_an_error() {
        assert!(matches!(split(&[], 10, &v("random", 0.0, 0)), Err(TrainError::Holdout(_))));
        assert!(matches!(split(&[], 10, &v("random", 1.0, 0)), Err(TrainError::Holdout(_))));
        assert!(matches!(split(&[], 10, &v("random", f64::NAN, 0)), Err(TrainError::Holdout(_))));
        assert!(matches!(split(&[], 10, &v("kfold", 0.2, 0)), Err(TrainError::Split(s)) if s == "kfold"));
        assert!(matches!(split(&[], 1, &v("random", 0.2, 0)), Err(TrainError::TooFewRows { rows: 1, .. })));
        // Tiny fractions still leave a row on each side.
        let s = split(&[], 3, &v("random", 0.01, 0)).unwrap();
        assert_eq!((s.train.len(), s.holdout.len()), (2, 1));
    }
}
