//! Evaluation metrics on a holdout: pure functions from labels and model outputs to a number.
//! In: labels (0/1 for binary, class indices for multi-class, targets for regression) and
//! predictions (probabilities of the positive class, an `n × k` row-major probability matrix, or
//! predicted values). Out: the metric, or a [`MetricError`] when it is undefined for the input
//! (e.g. AUC with a single class) — never NaN.
//!
//! Classification thresholds follow XGBoost: a binary probability above 0.5 is the positive class;
//! a multi-class prediction is the most probable class (the first on ties). Precision, recall and
//! F1 of a class that is never predicted (or never present) count as 0, as in scikit-learn;
//! multi-class versions are macro averages over the classes present in the labels or predictions.

use std::collections::BTreeMap;

use mlops_compiler::model::Task;

/// Why a metric could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    /// No rows.
    #[error("no rows to evaluate")]
    Empty,
    /// Labels and predictions disagree in length.
    #[error("{labels} labels but {predictions} predictions")]
    Length {
        /// Number of labels.
        labels: usize,
        /// Number of predictions.
        predictions: usize,
    },
    /// A prediction or label is NaN or infinite.
    #[error("{what} {index} is not a finite number")]
    NotFinite {
        /// "label" or "prediction".
        what: &'static str,
        /// Its position.
        index: usize,
    },
    /// A class label outside `0..classes`.
    #[error("label {index} is {label}, not a class index below {classes}")]
    Class {
        /// Position of the label.
        index: usize,
        /// The label.
        label: f32,
        /// Number of classes.
        classes: usize,
    },
    /// The metric has no value for this input.
    #[error("{metric} is undefined: {reason}")]
    Undefined {
        /// Metric name.
        metric: &'static str,
        /// Why.
        reason: &'static str,
    },
}

type Result<T> = std::result::Result<T, MetricError>;

// Probabilities are clipped before taking logs so a confident mistake costs ~34.5, not infinity
// (the same epsilon as scikit-learn's log_loss).
const EPS: f64 = 1e-15;

fn check(labels: &[f32], predictions: &[f32], per_row: usize) -> Result<()> {
    if labels.is_empty() {
        return Err(MetricError::Empty);
    }
    if labels.len() * per_row != predictions.len() {
        return Err(MetricError::Length { labels: labels.len(), predictions: predictions.len() });
    }
    if let Some(index) = labels.iter().position(|v| !v.is_finite()) {
        return Err(MetricError::NotFinite { what: "label", index });
    }
    if let Some(index) = predictions.iter().position(|v| !v.is_finite()) {
        return Err(MetricError::NotFinite { what: "prediction", index });
    }
    Ok(())
}

fn positive(label: f32) -> bool {
    label > 0.5
}

/// Area under the ROC curve of binary labels against scores (any monotone score works, e.g.
/// probabilities or margins). Tied scores count half (the Mann–Whitney U statistic with average
/// ranks). Undefined when the labels hold a single class.
pub fn auc(labels: &[f32], scores: &[f32]) -> Result<f64> {
    check(labels, scores, 1)?;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let n_pos = labels.iter().filter(|&&l| positive(l)).count();
    let n_neg = labels.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Err(MetricError::Undefined { metric: "auc", reason: "the labels hold a single class" });
    }
    // Sum of the (1-based, tie-averaged) ranks of the positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg_rank * order[i..=j].iter().filter(|&&k| positive(labels[k])).count() as f64;
        i = j + 1;
    }
    let (p, n) = (n_pos as f64, n_neg as f64);
    Ok((rank_sum - p * (p + 1.0) / 2.0) / (p * n))
}

/// Binary cross-entropy of 0/1 labels against probabilities of the positive class.
pub fn logloss(labels: &[f32], probs: &[f32]) -> Result<f64> {
    check(labels, probs, 1)?;
    let sum: f64 = labels
        .iter()
        .zip(probs)
        .map(|(&y, &p)| {
            let p = (p as f64).clamp(EPS, 1.0 - EPS);
            if positive(y) {
                -p.ln()
            } else {
                -(1.0 - p).ln()
            }
        })
        .sum();
    Ok(sum / labels.len() as f64)
}

/// Binary class predicted from a probability (above 0.5 is positive, as XGBoost's `error`).
pub fn binary_classes(probs: &[f32]) -> Vec<f32> {
    probs.iter().map(|&p| if p > 0.5 { 1.0 } else { 0.0 }).collect()
}

/// The most probable class of each row of an `n × k` probability (or margin) matrix.
pub fn argmax_classes(probs: &[f32], classes: usize) -> Vec<f32> {
    if classes == 0 {
        return Vec::new();
    }
    probs
        .chunks(classes)
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = i;
                }
            }
            best as f32
        })
        .collect()
}

/// Fraction of predicted classes equal to the labels.
pub fn accuracy(labels: &[f32], predicted: &[f32]) -> Result<f64> {
    check(labels, predicted, 1)?;
    let hits = labels.iter().zip(predicted).filter(|(y, p)| y == p).count();
    Ok(hits as f64 / labels.len() as f64)
}

/// True positives, predicted positives and actual positives of one class.
fn counts(labels: &[f32], predicted: &[f32], class: f32) -> (usize, usize, usize) {
    let mut tp = 0;
    let mut pred = 0;
    let mut actual = 0;
    for (&y, &p) in labels.iter().zip(predicted) {
        tp += usize::from(y == class && p == class);
        pred += usize::from(p == class);
        actual += usize::from(y == class);
    }
    (tp, pred, actual)
}

fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

fn f1_of(precision: f64, recall: f64) -> f64 {
    if precision + recall == 0.0 {
        0.0
    } else {
        2.0 * precision * recall / (precision + recall)
    }
}

/// Precision of the positive class (1) of binary predicted classes.
pub fn precision(labels: &[f32], predicted: &[f32]) -> Result<f64> {
    check(labels, predicted, 1)?;
    let (tp, pred, _) = counts(labels, predicted, 1.0);
    Ok(ratio(tp, pred))
}

/// Recall of the positive class (1) of binary predicted classes.
pub fn recall(labels: &[f32], predicted: &[f32]) -> Result<f64> {
    check(labels, predicted, 1)?;
    let (tp, _, actual) = counts(labels, predicted, 1.0);
    Ok(ratio(tp, actual))
}

/// F1 score of the positive class (1) of binary predicted classes.
pub fn f1(labels: &[f32], predicted: &[f32]) -> Result<f64> {
    Ok(f1_of(precision(labels, predicted)?, recall(labels, predicted)?))
}

/// Macro-averaged precision, recall and F1 over the classes present in the labels or the
/// predictions.
pub fn macro_precision_recall_f1(labels: &[f32], predicted: &[f32]) -> Result<(f64, f64, f64)> {
    check(labels, predicted, 1)?;
    let mut classes: Vec<f32> = labels.iter().chain(predicted).copied().collect();
    classes.sort_by(f32::total_cmp);
    classes.dedup();
    let (mut p, mut r, mut f) = (0.0, 0.0, 0.0);
    for &c in &classes {
        let (tp, pred, actual) = counts(labels, predicted, c);
        let (pc, rc) = (ratio(tp, pred), ratio(tp, actual));
        p += pc;
        r += rc;
        f += f1_of(pc, rc);
    }
    let k = classes.len() as f64;
    Ok((p / k, r / k, f / k))
}

fn check_classes(labels: &[f32], classes: usize) -> Result<()> {
    match labels.iter().position(|&l| l < 0.0 || l.fract() != 0.0 || l as usize >= classes) {
        Some(index) => Err(MetricError::Class { index, label: labels[index], classes }),
        None => Ok(()),
    }
}

/// Multi-class cross-entropy of class indices against an `n × classes` probability matrix.
pub fn mlogloss(labels: &[f32], probs: &[f32], classes: usize) -> Result<f64> {
    check(labels, probs, classes)?;
    check_classes(labels, classes)?;
    let sum: f64 = labels
        .iter()
        .zip(probs.chunks(classes))
        .map(|(&y, row)| -(row[y as usize] as f64).clamp(EPS, 1.0 - EPS).ln())
        .sum();
    Ok(sum / labels.len() as f64)
}

/// Multi-class error rate: the fraction of rows whose most probable class is not the label.
pub fn merror(labels: &[f32], probs: &[f32], classes: usize) -> Result<f64> {
    check(labels, probs, classes)?;
    check_classes(labels, classes)?;
    Ok(1.0 - accuracy(labels, &argmax_classes(probs, classes))?)
}

/// Root mean squared error.
pub fn rmse(labels: &[f32], predictions: &[f32]) -> Result<f64> {
    check(labels, predictions, 1)?;
    let sum: f64 = labels.iter().zip(predictions).map(|(&y, &p)| (y as f64 - p as f64).powi(2)).sum();
    Ok((sum / labels.len() as f64).sqrt())
}

/// Mean absolute error.
pub fn mae(labels: &[f32], predictions: &[f32]) -> Result<f64> {
    check(labels, predictions, 1)?;
    let sum: f64 = labels.iter().zip(predictions).map(|(&y, &p)| (y as f64 - p as f64).abs()).sum();
    Ok(sum / labels.len() as f64)
}

/// Coefficient of determination, 1 − SS_res / SS_tot. Undefined when every label is the same.
pub fn r2(labels: &[f32], predictions: &[f32]) -> Result<f64> {
    check(labels, predictions, 1)?;
    let n = labels.len() as f64;
    let mean = labels.iter().map(|&y| y as f64).sum::<f64>() / n;
    let ss_tot: f64 = labels.iter().map(|&y| (y as f64 - mean).powi(2)).sum();
    let ss_res: f64 = labels.iter().zip(predictions).map(|(&y, &p)| (y as f64 - p as f64).powi(2)).sum();
    if ss_tot == 0.0 {
        return Err(MetricError::Undefined { metric: "r2", reason: "every label has the same value" });
    }
    Ok(1.0 - ss_res / ss_tot)
}

/// Whether a larger value of the metric is better (for tuning and early stopping).
pub fn higher_is_better(metric: &str) -> bool {
    // XGBoost's maximised metrics (auc, aucpr, map, ndcg, pre and their @k forms) and ours.
    let base = metric.split('@').next().unwrap_or(metric);
    matches!(base, "auc" | "aucpr" | "map" | "ndcg" | "pre" | "accuracy" | "precision" | "recall" | "f1" | "r2")
}

/// The holdout metrics of a task (the names of [`Task::metrics`]). `outputs` are probabilities of
/// the positive class (binary), an `n × classes` probability matrix (multi-class) or predicted
/// values (regression). Metrics undefined for this holdout (see [`MetricError`]) are left out.
pub fn task_metrics(task: Task, labels: &[f32], outputs: &[f32], classes: usize) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut put = |name: &str, v: Result<f64>| {
        if let Ok(v) = v {
            if v.is_finite() {
                out.insert(name.to_string(), v);
            }
        }
    };
    match task {
        Task::Binary => {
            let predicted = binary_classes(outputs);
            put("auc", auc(labels, outputs));
            put("logloss", logloss(labels, outputs));
            put("accuracy", accuracy(labels, &predicted));
            put("precision", precision(labels, &predicted));
            put("recall", recall(labels, &predicted));
            put("f1", f1(labels, &predicted));
        }
        Task::Multiclass => {
            put("mlogloss", mlogloss(labels, outputs, classes));
            put("merror", merror(labels, outputs, classes));
            if check(labels, outputs, classes).is_ok() {
                let predicted = argmax_classes(outputs, classes);
                put("accuracy", accuracy(labels, &predicted));
                if let Ok((p, r, f)) = macro_precision_recall_f1(labels, &predicted) {
                    put("precision", Ok(p));
                    put("recall", Ok(r));
                    put("f1", Ok(f));
                }
            }
        }
        Task::Regression => {
            put("rmse", rmse(labels, outputs));
            put("mae", mae(labels, outputs));
            put("r2", r2(labels, outputs));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn auc_counts_pairs_and_halves_ties() {
        // Positives 0.8, 0.4; negatives 0.6, 0.2: pairs (0.8>0.6 ✓, 0.8>0.2 ✓, 0.4<0.6 ✗, 0.4>0.2 ✓) = 3/4.
        close(auc(&[1.0, 0.0, 1.0, 0.0], &[0.8, 0.6, 0.4, 0.2]).unwrap(), 0.75);
        // A tie between a positive and a negative counts half: (1 + 0.5) / 2.
        close(auc(&[1.0, 0.0, 0.0], &[0.5, 0.5, 0.1]).unwrap(), 0.75);
        // All scores equal: every pair is a tie.
        close(auc(&[1.0, 0.0, 1.0, 0.0], &[0.3; 4]).unwrap(), 0.5);
        close(auc(&[0.0, 0.0, 1.0], &[0.1, 0.2, 0.9]).unwrap(), 1.0);
        close(auc(&[1.0, 1.0, 0.0], &[0.1, 0.2, 0.9]).unwrap(), 0.0);
    }

    #[test]
    fn auc_of_a_single_class_is_undefined() {
        assert!(matches!(auc(&[1.0, 1.0], &[0.2, 0.9]), Err(MetricError::Undefined { metric: "auc", .. })));
        assert!(matches!(auc(&[0.0], &[0.2]), Err(MetricError::Undefined { .. })));
    }

    #[test]
    fn bad_shapes_and_values_are_errors() {
        assert_eq!(auc(&[], &[]), Err(MetricError::Empty));
        assert_eq!(rmse(&[1.0], &[1.0, 2.0]), Err(MetricError::Length { labels: 1, predictions: 2 }));
        assert_eq!(mae(&[1.0, 2.0], &[1.0, f32::NAN]), Err(MetricError::NotFinite { what: "prediction", index: 1 }));
        assert_eq!(
            mlogloss(&[0.0, 3.0], &[0.5, 0.5, 0.5, 0.5], 2),
            Err(MetricError::Class { index: 1, label: 3.0, classes: 2 })
        );
    }

    #[test]
    fn logloss_matches_hand_computation_and_clips() {
        // −(ln 0.9 + ln 0.8) / 2, with the probabilities as the f32s they are.
        let ln = |p: f32| (p as f64).ln();
        close(logloss(&[1.0, 0.0], &[0.9, 0.2]).unwrap(), -(ln(0.9) + (1.0 - 0.2f32 as f64).ln()) / 2.0);
        // A certain mistake is large but finite.
        let v = logloss(&[1.0], &[0.0]).unwrap();
        close(v, -(1e-15f64).ln());
    }

    #[test]
    fn binary_classification_counts() {
        // labels 1 1 0 0 1, predicted (p > 0.5) 1 0 1 0 1: tp 2, fp 1, fn 1.
        let labels = [1.0, 1.0, 0.0, 0.0, 1.0];
        let predicted = binary_classes(&[0.9, 0.3, 0.7, 0.5, 0.51]);
        assert_eq!(predicted, vec![1.0, 0.0, 1.0, 0.0, 1.0]);
        close(accuracy(&labels, &predicted).unwrap(), 0.6);
        close(precision(&labels, &predicted).unwrap(), 2.0 / 3.0);
        close(recall(&labels, &predicted).unwrap(), 2.0 / 3.0);
        close(f1(&labels, &predicted).unwrap(), 2.0 / 3.0);
        // Nothing predicted positive: precision and F1 count as 0.
        close(precision(&labels, &[0.0; 5]).unwrap(), 0.0);
        close(f1(&labels, &[0.0; 5]).unwrap(), 0.0);
    }

    #[test]
    fn multiclass_metrics() {
        // 3 classes; rows' argmax: 0, 1, 2, 1; labels 0, 1, 2, 2.
        let probs = [0.7, 0.2, 0.1, 0.1, 0.8, 0.1, 0.2, 0.2, 0.6, 0.3, 0.4, 0.3];
        let labels = [0.0, 1.0, 2.0, 2.0];
        assert_eq!(argmax_classes(&probs, 3), vec![0.0, 1.0, 2.0, 1.0]);
        close(merror(&labels, &probs, 3).unwrap(), 0.25);
        let ln = |p: f32| (p as f64).ln();
        close(mlogloss(&labels, &probs, 3).unwrap(), -(ln(0.7) + ln(0.8) + ln(0.6) + ln(0.3)) / 4.0);
        // class 0: p 1 r 1; class 1: p 1/2 r 1; class 2: p 1 r 1/2.
        let (p, r, f) = macro_precision_recall_f1(&labels, &argmax_classes(&probs, 3)).unwrap();
        close(p, (1.0 + 0.5 + 1.0) / 3.0);
        close(r, (1.0 + 1.0 + 0.5) / 3.0);
        close(f, (1.0 + 2.0 / 3.0 + 2.0 / 3.0) / 3.0);
    }

    #[test]
    fn regression_metrics() {
        let y = [1.0, 2.0, 3.0, 4.0];
        let p = [1.5, 2.0, 2.0, 4.0];
        close(rmse(&y, &p).unwrap(), ((0.25 + 0.0 + 1.0 + 0.0) / 4.0f64).sqrt());
        close(mae(&y, &p).unwrap(), 1.5 / 4.0);
        // SS_tot = 5, SS_res = 1.25.
        close(r2(&y, &p).unwrap(), 0.75);
        assert!(matches!(r2(&[2.0, 2.0], &[2.0, 2.0]), Err(MetricError::Undefined { metric: "r2", .. })));
    }

    #[test]
    fn task_metrics_cover_the_task_and_skip_undefined_ones() {
        let m = task_metrics(Task::Binary, &[1.0, 0.0, 1.0], &[0.9, 0.2, 0.6], 0);
        assert_eq!(m.keys().map(String::as_str).collect::<Vec<_>>(), {
            let mut names = Task::Binary.metrics().to_vec();
            names.sort_unstable();
            names
        });
        let single = task_metrics(Task::Binary, &[1.0, 1.0], &[0.9, 0.6], 0);
        assert!(!single.contains_key("auc"));
        assert_eq!(single["accuracy"], 1.0);
        let m = task_metrics(Task::Multiclass, &[0.0, 1.0], &[0.9, 0.1, 0.2, 0.8], 2);
        assert_eq!(m.len(), Task::Multiclass.metrics().len());
        let m = task_metrics(Task::Regression, &[1.0, 2.0], &[1.0, 2.0], 0);
        assert_eq!(m["r2"], 1.0);
        assert_eq!(m["rmse"], 0.0);
    }

    #[test]
    fn directions() {
        for m in ["auc", "accuracy", "precision", "recall", "f1", "r2", "ndcg@5"] {
            assert!(higher_is_better(m), "{m}");
        }
        for m in ["logloss", "mlogloss", "merror", "rmse", "mae", "error"] {
            assert!(!higher_is_better(m), "{m}");
        }
    }
}
