//! What an objective does around the trees, as XGBoost 3.x's CPU code does it, in `f32` and with
//! the C library's `expf`/`logf` (which Rust's `f32::exp`/`f32::ln` call on Linux):
//!
//! - the link (XGBoost's `ProbToMargin`) turns the stored `base_score` into the margin every row
//!   starts from: logit for the logistic objectives, `ln` for the log-link ones, none otherwise
//!   (multi-class intercepts are stored as margins already);
//! - the transform (`PredTransform`) turns margins into predictions: sigmoid, `exp`, softmax,
//!   arg-max or the hinge threshold.

use super::TreeError;

/// The objectives the forest can predict for, grouped by what their link and transform are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `binary:logistic`, `reg:logistic`: logit link, sigmoid.
    Logistic,
    /// Identity link and no transform: `reg:squarederror`, `binary:logitraw`, `reg:absoluteerror`, …
    Identity,
    /// `count:poisson`, `reg:gamma`, `reg:tweedie`, `survival:cox`: log link, `exp`.
    Exp,
    /// `binary:hinge`: 1 when the margin is positive, else 0.
    Hinge,
    /// `multi:softprob`: softmax over the classes.
    Softprob,
    /// `multi:softmax`: index of the largest margin.
    Softmax,
}

impl Kind {
    pub(crate) fn of(name: &str) -> Result<Kind, TreeError> {
        Ok(match name {
            "binary:logistic" | "reg:logistic" => Kind::Logistic,
            "reg:squarederror"
            | "reg:linear"
            | "reg:squaredlogerror"
            | "reg:pseudohubererror"
            | "reg:absoluteerror"
            | "reg:quantileerror"
            | "binary:logitraw"
            | "rank:pairwise"
            | "rank:ndcg"
            | "rank:map" => Kind::Identity,
            "count:poisson" | "reg:gamma" | "reg:tweedie" | "survival:cox" => Kind::Exp,
            "binary:hinge" => Kind::Hinge,
            "multi:softprob" => Kind::Softprob,
            "multi:softmax" => Kind::Softmax,
            other => return Err(TreeError::Unsupported(format!("objective `{other}`"))),
        })
    }

    /// The margin a row starts from, given the `base_score` stored in the model. Errors where
    /// XGBoost refuses the intercept.
    pub(crate) fn link(self, objective: &str, base_score: f32) -> Result<f32, TreeError> {
        let bad = |why: &str| TreeError::Malformed(format!("base_score {base_score} {why} for `{objective}`"));
        Ok(match (self, objective) {
            (Kind::Logistic, _) => {
                if !(0.0..=1.0).contains(&base_score) {
                    return Err(bad("is outside [0, 1]"));
                }
                // XGBoost clamps to [1e-6, 1 - 1e-6], then -logf(1/p - 1).
                const EPS: f32 = 1e-6;
                let p = cmin(cmax(base_score, EPS), 1.0 - EPS);
                -(1.0 / p - 1.0).ln()
            }
            (Kind::Exp, "reg:gamma") if base_score <= 0.0 => return Err(bad("is not positive")),
            (Kind::Exp, _) => base_score.ln(),
            _ => base_score,
        })
    }

    /// Values per row of `predict` given the margins per row.
    pub(crate) fn outputs(self, groups: usize) -> usize {
        match self {
            Kind::Softmax => 1,
            _ => groups,
        }
    }

    /// Transforms `rows × groups` margins in place into predictions; `Softmax` leaves `rows`
    /// values (the caller truncates).
    pub(crate) fn transform(self, margins: &mut [f32], groups: usize) {
        match self {
            Kind::Identity => {}
            Kind::Logistic => margins.iter_mut().for_each(|m| *m = sigmoid(*m)),
            Kind::Exp => margins.iter_mut().for_each(|m| *m = m.exp()),
            Kind::Hinge => margins.iter_mut().for_each(|m| *m = if *m > 0.0 { 1.0 } else { 0.0 }),
            Kind::Softprob => margins.chunks_exact_mut(groups).for_each(softmax),
            Kind::Softmax => {
                let rows = margins.len() / groups;
                for r in 0..rows {
                    // Row r's margins start at r × groups ≥ r: writing slot r only ever overwrites
                    // margins already read.
                    let class = argmax(&margins[r * groups..(r + 1) * groups]);
                    margins[r] = class as f32;
                }
            }
        }
    }
}

/// `std::min` of C++: the first argument unless the second is smaller (so NaN stays NaN).
fn cmin(a: f32, b: f32) -> f32 {
    if b < a {
        b
    } else {
        a
    }
}

/// `std::max` of C++.
fn cmax(a: f32, b: f32) -> f32 {
    if a < b {
        b
    } else {
        a
    }
}

/// XGBoost's `common::Sigmoid(float)`: `1 / (expf(min(-x, 88.7)) + 1 + 1e-16)`.
pub(crate) fn sigmoid(x: f32) -> f32 {
    const EPS: f32 = 1e-16;
    let e = cmin(-x, 88.7).exp();
    1.0 / (e + 1.0 + EPS)
}

/// XGBoost's `common::Softmax`: the max by `fmaxf`, the sum of the `expf`s in `f64`, each
/// divided by the sum rounded to `f32`.
fn softmax(row: &mut [f32]) {
    let Some((&first, rest)) = row.split_first() else { return };
    // f32::max ignores NaN as fmaxf does.
    let wmax = rest.iter().fold(first, |m, &v| v.max(m));
    let mut wsum = 0.0f64;
    for v in row.iter_mut() {
        *v = (*v - wmax).exp();
        wsum += f64::from(*v);
    }
    let wsum = wsum as f32;
    for v in row.iter_mut() {
        *v /= wsum;
    }
}

/// XGBoost's `common::FindMaxIndex`: the first index holding a strictly larger value than all
/// before it.
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_saturates_without_overflow() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert!(sigmoid(-1000.0) > 0.0 && sigmoid(-1000.0) < 1e-38);
        assert!(sigmoid(f32::NAN).is_nan());
    }

    #[test]
    fn softmax_and_argmax_follow_xgboost() {
        let mut m = [1.0, 3.0, 3.0, 0.0, -1.0, 2.0];
        Kind::Softprob.transform(&mut m, 3);
        assert!((m[0] + m[1] + m[2] - 1.0).abs() < 1e-6 && m[1] == m[2]);
        let mut m = [1.0, 3.0, 3.0, 0.0, -1.0, 2.0];
        Kind::Softmax.transform(&mut m, 3);
        // Ties go to the first.
        assert_eq!(&m[..2], &[1.0, 2.0]);
    }

    #[test]
    fn links_invert_the_transforms() {
        let l = Kind::Logistic.link("binary:logistic", 0.25).unwrap();
        assert!((sigmoid(l) - 0.25).abs() < 1e-7);
        assert_eq!(Kind::Logistic.link("binary:logistic", 1.0).unwrap(), -(1.0f32 / (1.0 - 1e-6) - 1.0).ln());
        assert!(Kind::Logistic.link("binary:logistic", 1.5).is_err());
        assert_eq!(Kind::Exp.link("count:poisson", 2.0).unwrap(), 2.0f32.ln());
        assert!(Kind::Exp.link("reg:gamma", 0.0).is_err());
        assert_eq!(Kind::Identity.link("binary:logitraw", 0.5).unwrap(), 0.5);
        assert!(matches!(Kind::of("reg:made_up"), Err(TreeError::Unsupported(_))));
    }
}
