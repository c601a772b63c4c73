//! Pearson's χ² test of homogeneity for a categorical feature: is the current window drawn from
//! the same category distribution as the reference? In: the two samples' counts over the union of
//! their categories (a 2 × k contingency table; a category unseen in one sample counts 0 there,
//! which this test — unlike a goodness-of-fit test against the reference proportions — handles
//! without any epsilon). Out: the statistic, the p-value and the degrees of freedom, exactly as
//! `scipy.stats.chi2_contingency(table)` computes them with its defaults: expected counts from the
//! margins, `k − 1` degrees of freedom, Yates' continuity correction when `k = 2`, and a
//! statistic of 0 with p-value 1 when there is only one category.

use super::special::chi2_sf;

/// A χ² test result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Chi2Test {
    /// Pearson's statistic `Σ (O − E)² / E` over the 2 × k cells.
    pub statistic: f64,
    /// `P(χ²(dof) ≥ statistic)`.
    pub p_value: f64,
    /// Degrees of freedom, `k − 1`.
    pub dof: u64,
}

/// The test on two count vectors over the same categories; every category must have a positive
/// count in at least one sample and both totals must be positive.
pub fn chi2_contingency(reference: &[u64], current: &[u64]) -> Chi2Test {
    debug_assert_eq!(reference.len(), current.len());
    let k = reference.len();
    let dof = k.saturating_sub(1) as u64;
    if dof == 0 {
        return Chi2Test { statistic: 0.0, p_value: 1.0, dof };
    }
    let rows = [reference.iter().sum::<u64>(), current.iter().sum::<u64>()];
    let total = (rows[0] + rows[1]) as f64;
    let mut terms = Vec::with_capacity(2 * k);
    for (row, counts) in [reference, current].into_iter().enumerate() {
        for (j, &observed) in counts.iter().enumerate() {
            let column = u128::from(reference[j] + current[j]);
            let expected = (u128::from(rows[row]) * column) as f64 / total;
            let mut observed = observed as f64;
            if dof == 1 {
                // Yates: move each count towards its expectation by at most ½.
                let diff = expected - observed;
                observed += diff.abs().min(0.5) * diff.signum();
            }
            terms.push((observed - expected) * (observed - expected) / expected);
        }
    }
    let statistic: f64 = terms.iter().sum();
    Chi2Test { statistic, p_value: chi2_sf(statistic, dof as f64), dof }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportional_rows_have_no_evidence() {
        let t = chi2_contingency(&[10, 20, 30], &[20, 40, 60]);
        assert!(t.statistic.abs() < 1e-12);
        assert!((t.p_value - 1.0).abs() < 1e-12);
        assert_eq!(t.dof, 2);
    }

    #[test]
    fn by_hand_three_categories() {
        // Rows (10, 10, 10) and (20, 5, 5): totals 30 and 30, columns 30, 15, 15, N = 60;
        // expected 15, 7.5, 7.5 in both rows; χ² = 2 (25/15 + 6.25/7.5 + 6.25/7.5) = 20/3.
        let t = chi2_contingency(&[10, 10, 10], &[20, 5, 5]);
        assert!((t.statistic - 20.0 / 3.0).abs() < 1e-12, "{}", t.statistic);
        // χ²(2) survival at x is e^{-x/2}.
        assert!((t.p_value - (-10.0f64 / 3.0).exp()).abs() < 1e-14);
    }

    #[test]
    fn two_categories_get_yates_correction() {
        // Rows (10, 20), (20, 10): expected 15 everywhere, |O − E| = 5 → 4.5 after Yates;
        // χ² = 4 · 4.5² / 15 = 5.4.
        let t = chi2_contingency(&[10, 20], &[20, 10]);
        assert!((t.statistic - 5.4).abs() < 1e-12, "{}", t.statistic);
        assert_eq!(t.dof, 1);
    }

    #[test]
    fn one_category_is_degenerate() {
        let t = chi2_contingency(&[5], &[7]);
        assert_eq!((t.statistic, t.p_value, t.dof), (0.0, 1.0, 0));
    }
}
