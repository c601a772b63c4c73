//! The two-sample Kolmogorov–Smirnov test, as `scipy.stats.ks_2samp(a, b)` computes it with
//! its defaults (two-sided, `method="auto"`). In: two sorted, non-empty samples; out: the
//! statistic `D = sup |F_a − F_b|` and its p-value.
//!
//! - **Statistic.** One merge walk over both samples; at each distinct value the empirical CDFs
//!   are `i/n_a` and `j/n_b` (values equal to it included, so ties are handled as SciPy's
//!   `searchsorted(side="right")` does).
//! - **p-value, exact** when both samples have at most 10,000 values: the share of lattice paths
//!   from (0, 0) to (n_a, n_b) that leave the band `|x/n_a − y/n_b| < D` — with equal sizes by the
//!   alternating binomial series, otherwise by Hodges' "inside" recursion for `1 − p` (Viehmann
//!   2021). As in SciPy the statistic is then rounded to `h / lcm(n_a, n_b)`.
//! - **p-value, asymptotic** otherwise: `P(D_m ≥ D)` for the one-sample distribution with
//!   `m = round(n_a n_b / (n_a + n_b))` ([`super::kolmogorov::kstwo_sf`]).

use super::kolmogorov::kstwo_sf;

/// Above this many values in either sample the p-value is asymptotic (SciPy's `MAX_AUTO_N`).
pub const MAX_EXACT_N: usize = 10_000;

/// A two-sample KS result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KsTest {
    /// `D`, the largest distance between the two empirical CDFs.
    pub statistic: f64,
    /// The two-sided p-value.
    pub p_value: f64,
    /// Whether the p-value is exact (else asymptotic).
    pub exact: bool,
}

/// The largest positive and negative differences `F_a − F_b` over all values (the second as a
/// non-negative number).
fn extreme_differences(a: &[f64], b: &[f64]) -> (f64, f64) {
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j) = (0, 0);
    let (mut max, mut min) = (f64::NEG_INFINITY, f64::INFINITY);
    while i < a.len() || j < b.len() {
        let v = match (a.get(i), b.get(j)) {
            (Some(&x), Some(&y)) => x.min(y),
            (Some(&x), None) => x,
            (None, Some(&y)) => y,
            (None, None) => unreachable!(),
        };
        while i < a.len() && a[i] <= v {
            i += 1;
        }
        while j < b.len() && b[j] <= v {
            j += 1;
        }
        let diff = i as f64 / na - j as f64 / nb;
        max = max.max(diff);
        min = min.min(diff);
    }
    (max, (-min).clamp(0.0, 1.0))
}

/// `scipy.stats.ks_2samp(a, b)` for sorted, finite, non-empty `a` and `b`.
pub fn ks_2samp(a: &[f64], b: &[f64]) -> KsTest {
    assert!(!a.is_empty() && !b.is_empty(), "ks_2samp needs two non-empty samples");
    let (max_s, min_s) = extreme_differences(a, b);
    ks_test(a.len() as u64, b.len() as u64, max_s, min_s)
}

/// [`ks_2samp`] for finite, non-empty samples in any order, without sorting them whole
/// (see [`super::buckets`]).
pub fn ks_2samp_unsorted(a: &[f64], b: &[f64]) -> KsTest {
    assert!(!a.is_empty() && !b.is_empty(), "ks_2samp needs two non-empty samples");
    let (max, min) = super::buckets::ks_extremes(a, b);
    ks_test(a.len() as u64, b.len() as u64, max, (-min).clamp(0.0, 1.0))
}

/// The statistic and p-value from the largest positive difference and the largest negative one
/// (as a non-negative number).
fn ks_test(n1: u64, n2: u64, max_s: f64, min_s: f64) -> KsTest {
    let d = if min_s > max_s { min_s } else { max_s };

    if n1.max(n2) <= MAX_EXACT_N as u64 {
        let g = gcd(n1, n2);
        let lcm = (n1 / g) * n2;
        let h = (d * lcm as f64).round_ties_even() as u64;
        let d = h as f64 / lcm as f64;
        if h == 0 {
            return KsTest { statistic: d, p_value: 1.0, exact: true };
        }
        let p = if n1 == n2 { prob_outside_square(n1, h) } else { outer_prob_inside_method(n1, n2, g, h) };
        if (0.0..=1.0).contains(&p) {
            return KsTest { statistic: d, p_value: p, exact: true };
        }
        // Not reached with these methods (both stay in [0, 1]); SciPy falls back likewise.
    }
    let (m, n) = if n1 >= n2 { (n1 as f64, n2 as f64) } else { (n2 as f64, n1 as f64) };
    let en = m * n / (m + n);
    let p = kstwo_sf(en.round_ties_even() as u64, d);
    KsTest { statistic: d, p_value: p.clamp(0.0, 1.0), exact: false }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `P(D_{n,n} ≥ h/n)`: `2 Σ_k (−1)^(k+1) C(2n, n − kh) / C(2n, n)`, each ratio formed as a product
/// of `h` factors and the series folded Horner-style to avoid cancellation.
fn prob_outside_square(n: u64, h: u64) -> f64 {
    let mut p = 0.0;
    let (nf, hf) = (n as f64, h as f64);
    let mut k = n / h;
    loop {
        let kf = k as f64;
        let mut p1 = 1.0;
        for j in 0..h {
            let jf = j as f64;
            p1 = (nf - kf * hf - jf) * p1 / (nf + kf * hf + jf + 1.0);
        }
        p = p1 * (1.0 - p);
        if k == 0 {
            break;
        }
        k -= 1;
    }
    2.0 * p
}

/// `P(D_{m,n} ≥ h / lcm(m, n))` by counting the lattice paths that stay strictly inside
/// `|x/m − y/n| < h / lcm`, normalised column by column so the recursion yields the probability
/// directly (`A(x, y) = (A(x−1, y)·x + A(x, y−1)·y)/(x + y)`), over a sliding window of `y`.
fn outer_prob_inside_method(m: u64, n: u64, g: u64, h: u64) -> f64 {
    let (m, n) = if m < n { (n, m) } else { (m, n) };
    let (mg, ng) = ((m / g) as i64, (n / g) as i64);
    let (n_i, h_i) = (n as i64, h as i64);
    let mut minj = 0i64;
    let mut maxj = ((h_i as f64 / mg as f64).ceil() as i64).min(n_i + 1);
    let mut curlen = maxj - minj;
    let len_a = ((2 * maxj + 2) as usize).min(n as usize + 1);
    let mut a = vec![1.0f64; len_a];
    for x in a.iter_mut().take(maxj as usize).skip(minj as usize) {
        *x = 0.0;
    }
    for i in 1..=m as i64 {
        let (lastminj, lastlen) = (minj, curlen);
        minj = ((((ng * i - h_i) as f64 / mg as f64).floor() as i64) + 1).max(0);
        minj = minj.min(n_i);
        maxj = (((ng * i + h_i) as f64 / mg as f64).ceil() as i64).min(n_i + 1);
        if maxj <= minj {
            return 1.0;
        }
        let fi = i as f64;
        let mut val = if minj == 0 { 0.0 } else { 1.0 };
        for jj in 0..(maxj - minj) {
            let j = jj + minj;
            val = (a[(jj + minj - lastminj) as usize] * fi + val * j as f64) / (fi + j as f64);
            a[jj as usize] = val;
        }
        curlen = maxj - minj;
        if lastlen > curlen {
            let from = (maxj - minj) as usize;
            let to = (from + (lastlen - curlen) as usize).min(a.len());
            a[from..to].iter_mut().for_each(|x| *x = 1.0);
        }
    }
    a[(maxj - minj - 1) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_samples_have_d_zero_and_p_one() {
        let a = [1.0, 2.0, 3.0];
        let t = ks_2samp(&a, &a);
        assert_eq!((t.statistic, t.p_value, t.exact), (0.0, 1.0, true));
    }

    #[test]
    fn disjoint_samples_have_d_one() {
        // n = m = 3, completely separated: P = 2 / C(6, 3) = 0.1.
        let t = ks_2samp(&[1.0, 2.0, 3.0], &[4.0, 5.0, 6.0]);
        assert_eq!(t.statistic, 1.0);
        assert!((t.p_value - 0.1).abs() < 1e-15, "{}", t.p_value);
        // Unequal sizes 2 and 3, separated: 2 / C(5, 2) = 0.2.
        let t = ks_2samp(&[1.0, 2.0], &[4.0, 5.0, 6.0]);
        assert_eq!(t.statistic, 1.0);
        assert!((t.p_value - 0.2).abs() < 1e-15, "{}", t.p_value);
    }

    #[test]
    fn ties_are_compared_at_equal_values() {
        // F_a jumps to 1 at 1.0; F_b is 1/2 there and 1 at 2.0: D = 1/2, not 1.
        let t = ks_2samp(&[1.0, 1.0], &[1.0, 2.0]);
        assert_eq!(t.statistic, 0.5);
    }

    #[test]
    fn large_samples_use_the_asymptotic_p_value() {
        let a: Vec<f64> = (0..20_000).map(|i| i as f64).collect();
        let b: Vec<f64> = (0..20_000).map(|i| i as f64 + 1_000.0).collect();
        let t = ks_2samp(&a, &b);
        assert!(!t.exact);
        assert!((t.statistic - 0.05).abs() < 1e-15);
        assert!(t.p_value > 0.0 && t.p_value < 1e-20, "{}", t.p_value);
    }
}
