//! The binned statistics: the population stability index and the Jensen–Shannon distance. In:
//! counts of the reference and the current sample over the same bins (for numeric features the
//! reference's quantile bins, [`super::sample::quantile_edges`]; for categorical ones the union
//! of categories); out: the statistic.

/// Proportion an empty bin counts as in the PSI, so that its logarithm stays finite: 10⁻⁴, the
/// usual choice (a bin holding nothing contributes as if it held 0.01 % of its sample).
pub const PSI_EPSILON: f64 = 1e-4;

/// The population stability index `Σ (c − r) ln(c / r)` over bins, where `r` and `c` are the
/// proportions of the reference and current samples in the bin, and an empty bin's proportion is
/// [`PSI_EPSILON`] (proportions are not renormalised afterwards). Both totals must be positive.
pub fn psi(reference: &[u64], current: &[u64]) -> f64 {
    debug_assert_eq!(reference.len(), current.len());
    let (nr, nc) = (reference.iter().sum::<u64>() as f64, current.iter().sum::<u64>() as f64);
    let share = |count: u64, total: f64| if count == 0 { PSI_EPSILON } else { count as f64 / total };
    reference
        .iter()
        .zip(current)
        .map(|(&r, &c)| {
            let (r, c) = (share(r, nr), share(c, nc));
            (c - r) * (c / r).ln()
        })
        .sum()
}

/// `x ln(x / y)`, with `0 ln(0 / y) = 0` (SciPy's `rel_entr` for `y > 0`).
fn rel_entr(x: f64, y: f64) -> f64 {
    if x == 0.0 {
        0.0
    } else {
        x * (x / y).ln()
    }
}

/// The Jensen–Shannon distance in base 2 (between 0 and 1) of two count vectors over the same
/// bins, each normalised to a probability vector: `√((KL(p‖m) + KL(q‖m)) / (2 ln 2))` with
/// `m = (p + q)/2` — `scipy.spatial.distance.jensenshannon(p, q, base=2)`, step for step.
pub fn jensen_shannon(reference: &[u64], current: &[u64]) -> f64 {
    debug_assert_eq!(reference.len(), current.len());
    let (nr, nc) = (reference.iter().sum::<u64>() as f64, current.iter().sum::<u64>() as f64);
    let (mut left, mut right) = (0.0, 0.0);
    for (&r, &c) in reference.iter().zip(current) {
        let (p, q) = (r as f64 / nr, c as f64 / nc);
        let m = (p + q) / 2.0;
        left += rel_entr(p, m);
        right += rel_entr(q, m);
    }
    let js = (left + right) / std::f64::consts::LN_2;
    (js / 2.0).max(0.0).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psi_of_equal_proportions_is_zero() {
        assert_eq!(psi(&[10, 20, 30], &[1, 2, 3]), 0.0);
    }

    #[test]
    fn psi_by_hand() {
        // Proportions (0.5, 0.5) vs (0.25, 0.75):
        // (0.25 − 0.5) ln(0.5) + (0.75 − 0.5) ln(1.5) = 0.25 ln 3 ≈ 0.274653.
        let v = psi(&[50, 50], &[25, 75]);
        assert!((v - 0.25 * 3f64.ln()).abs() < 1e-15, "{v}");
    }

    #[test]
    fn psi_uses_epsilon_for_empty_bins() {
        // Reference (1, 0), current (0.5, 0.5): the empty reference bin counts as 1e-4.
        let v = psi(&[10, 0], &[5, 5]);
        let want = (0.5 - 1.0) * (0.5f64 / 1.0).ln() + (0.5 - PSI_EPSILON) * (0.5 / PSI_EPSILON).ln();
        assert!((v - want).abs() < 1e-15, "{v} vs {want}");
        assert!(v.is_finite());
    }

    #[test]
    fn js_distance_bounds() {
        assert_eq!(jensen_shannon(&[1, 2, 3], &[2, 4, 6]), 0.0);
        // Disjoint supports: distance 1 in base 2.
        assert!((jensen_shannon(&[5, 0], &[0, 7]) - 1.0).abs() < 1e-15);
        // p = (1/2, 1/2), q = (1, 0): m = (3/4, 1/4);
        // KL(p‖m) = ½ ln(2/3) + ½ ln 2, KL(q‖m) = ln(4/3).
        let kl = 0.5 * (2.0f64 / 3.0).ln() + 0.5 * 2f64.ln() + (4.0f64 / 3.0).ln();
        let want = (kl / std::f64::consts::LN_2 / 2.0).sqrt();
        assert!((jensen_shannon(&[1, 1], &[3, 0]) - want).abs() < 1e-15);
    }
}
