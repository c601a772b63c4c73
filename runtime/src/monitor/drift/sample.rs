//! What the statistics compare: a numeric feature as its finite values sorted ascending
//! ([`NumericSample`]), a categorical one as counts per category ([`CategoryCounts`]). In: raw
//! values (NaN, ±∞ and nulls are dropped and counted as missing); out: the sorted sample or the
//! counts, plus the quantiles, bins and moments the statistics need.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// Finite values of a numeric feature, sorted ascending, and how many values were missing
/// (null, NaN or infinite) and so left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NumericSample {
    values: Vec<f64>,
    missing: u64,
}

impl NumericSample {
    /// Drops the non-finite values (counting them as missing) and sorts the rest.
    pub fn new(mut values: Vec<f64>) -> NumericSample {
        let before = values.len();
        values.retain(|x| x.is_finite());
        let missing = (before - values.len()) as u64;
        sort_floats(&mut values);
        NumericSample { values, missing }
    }

    /// Adds `n` to the count of missing values (nulls read from a file, say).
    pub fn with_missing(mut self, n: u64) -> NumericSample {
        self.missing += n;
        self
    }

    /// A sample from values already finite and sorted (as [`NumericSample::values`] returns
    /// them); `None` if they are not.
    pub fn from_sorted(values: Vec<f64>, missing: u64) -> Option<NumericSample> {
        let ok = values.iter().all(|x| x.is_finite()) && values.windows(2).all(|w| w[0] <= w[1]);
        ok.then_some(NumericSample { values, missing })
    }

    /// The values, sorted ascending.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Number of (finite) values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// No values at all?
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Values left out as missing.
    pub fn missing(&self) -> u64 {
        self.missing
    }

    /// Mean and population standard deviation (`ddof = 0`, as `numpy.std`), by two passes of
    /// blocked sums. `(NaN, NaN)` when empty.
    pub fn mean_std(&self) -> (f64, f64) {
        mean_std(&self.values)
    }

    /// The `q` quantile by linear interpolation between order statistics (`numpy.quantile`'s
    /// default `method="linear"`, Hyndman & Fan's type 7), computed exactly as NumPy does.
    pub fn quantile(&self, q: f64) -> f64 {
        linear_quantile(&self.values, q)
    }

    /// How many values are `≤ x`.
    pub fn count_at_most(&self, x: f64) -> usize {
        self.values.partition_point(|v| *v <= x)
    }
}

/// Sorts finite values ascending (unstable: equal values are indistinguishable).
pub fn sort_floats(values: &mut [f64]) {
    values.sort_unstable_by(f64::total_cmp);
}

/// See [`NumericSample::mean_std`].
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = values.len() as f64;
    let mean = blocked_sum(values.iter().copied()) / n;
    let var = blocked_sum(values.iter().map(|x| (x - mean) * (x - mean))) / n;
    (mean, var.sqrt())
}

/// A sum of blocks of 256 terms: rounding error grows with the number of blocks, not of terms.
fn blocked_sum(values: impl Iterator<Item = f64>) -> f64 {
    let mut total = 0.0;
    let mut block = 0.0;
    for (i, x) in values.enumerate() {
        block += x;
        if i % 256 == 255 {
            total += block;
            block = 0.0;
        }
    }
    total + block
}

/// NumPy's linear quantile of sorted values: virtual index `(n − 1) q`, then
/// `a + (b − a) γ` below γ = ½ and `b − (b − a)(1 − γ)` from it on.
pub fn linear_quantile(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let virtual_index = (n - 1) as f64 * q;
    if virtual_index >= (n - 1) as f64 {
        return sorted[n - 1];
    }
    if virtual_index < 0.0 {
        return sorted[0];
    }
    let previous = virtual_index.floor();
    let gamma = virtual_index - previous;
    let i = previous as usize;
    let (a, b) = (sorted[i], sorted[i + 1]);
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

/// The inner edges of `bins` quantile bins of a sorted reference: its quantiles at
/// `1/bins, 2/bins, …, (bins−1)/bins`, sorted and without repeats (a value that fills several
/// bins collapses them). Bin `k` holds the values in `(edge[k−1], edge[k]]`; the first bin is
/// open below, the last above.
pub fn quantile_edges(sorted: &[f64], bins: usize) -> Vec<f64> {
    let mut edges: Vec<f64> = (1..bins).map(|i| linear_quantile(sorted, i as f64 / bins as f64)).collect();
    edges.sort_unstable_by(f64::total_cmp);
    edges.dedup_by(|a, b| a == b);
    edges
}

/// Counts of a sorted sample in the bins [`quantile_edges`] defines (`edges.len() + 1` bins).
pub fn bin_counts_sorted(sorted: &[f64], edges: &[f64]) -> Vec<u64> {
    let mut counts = Vec::with_capacity(edges.len() + 1);
    let mut below = 0;
    for e in edges {
        let at_most = sorted.partition_point(|v| v <= e);
        counts.push((at_most - below) as u64);
        below = at_most;
    }
    counts.push((sorted.len() - below) as u64);
    counts
}

/// Counts of a categorical feature per category (sorted by name), and how many values were
/// missing (null).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CategoryCounts {
    counts: BTreeMap<String, u64>,
    missing: u64,
}

impl CategoryCounts {
    /// Counts values; `None` is a missing value.
    pub fn from_values<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> CategoryCounts {
        let mut by_name: HashMap<&str, u64, BuildHasherDefault<FxHasher>> = HashMap::default();
        let mut missing = 0;
        for v in values {
            match v {
                Some(s) => *by_name.entry(s).or_insert(0) += 1,
                None => missing += 1,
            }
        }
        CategoryCounts { counts: by_name.into_iter().map(|(k, v)| (k.to_string(), v)).collect(), missing }
    }

    /// From counts already made.
    pub fn from_counts(counts: BTreeMap<String, u64>, missing: u64) -> CategoryCounts {
        CategoryCounts { counts: counts.into_iter().filter(|(_, n)| *n > 0).collect(), missing }
    }

    /// Adds `n` occurrences of `category`.
    pub fn add(&mut self, category: &str, n: u64) {
        if n > 0 {
            *self.counts.entry(category.to_string()).or_insert(0) += n;
        }
    }

    /// Adds `n` missing values.
    pub fn add_missing(&mut self, n: u64) {
        self.missing += n;
    }

    /// Merges other counts into these.
    pub fn merge(&mut self, other: &CategoryCounts) {
        for (k, n) in &other.counts {
            self.add(k, *n);
        }
        self.missing += other.missing;
    }

    /// Count per category, by name.
    pub fn counts(&self) -> &BTreeMap<String, u64> {
        &self.counts
    }

    /// Number of (non-missing) values.
    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Values left out as missing.
    pub fn missing(&self) -> u64 {
        self.missing
    }
}

/// Counts of two samples over the union of their categories, in name order: the contingency
/// table of a reference and a current window. Categories unseen in one side count 0 there.
pub fn aligned_counts(reference: &CategoryCounts, current: &CategoryCounts) -> (Vec<String>, Vec<u64>, Vec<u64>) {
    let mut names: Vec<&String> = reference.counts.keys().chain(current.counts.keys()).collect();
    names.sort_unstable();
    names.dedup();
    let r = names.iter().map(|k| reference.counts.get(*k).copied().unwrap_or(0)).collect();
    let c = names.iter().map(|k| current.counts.get(*k).copied().unwrap_or(0)).collect();
    (names.into_iter().cloned().collect(), r, c)
}

/// The Firefox/rustc "Fx" hash: a multiply-rotate per word, much faster than SipHash on short
/// category names; hash flooding is no concern for counting one's own data.
#[derive(Default)]
struct FxHasher {
    hash: u64,
}

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.add(u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
        }
        for &b in chunks.remainder() {
            self.add(u64::from(b));
        }
    }

    fn write_u8(&mut self, b: u8) {
        self.add(u64::from(b));
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_are_dropped_and_counted() {
        let s = NumericSample::new(vec![3.0, f64::NAN, 1.0, f64::INFINITY, 2.0, f64::NEG_INFINITY]);
        assert_eq!(s.values(), &[1.0, 2.0, 3.0]);
        assert_eq!(s.missing(), 3);
        assert_eq!(s.with_missing(2).missing(), 5);
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        // numpy.quantile([1, 2, 4, 8], [0, 0.25, 0.5, 0.9, 1]) = [1, 1.75, 3, 6.8, 8].
        let s = NumericSample::new(vec![8.0, 1.0, 4.0, 2.0]);
        assert_eq!(s.quantile(0.0), 1.0);
        assert_eq!(s.quantile(0.25), 1.75);
        assert_eq!(s.quantile(0.5), 3.0);
        assert!((s.quantile(0.9) - 6.8).abs() < 1e-15);
        assert_eq!(s.quantile(1.0), 8.0);
    }

    #[test]
    fn quantile_bins_collapse_on_ties_and_count_right_closed() {
        // Deciles of 1..=10: 1.9, 2.8, …, 9.1; of a sample that is 80 % zeros: 0 repeated, then two.
        let s = NumericSample::new((1..=10).map(f64::from).collect());
        let edges = quantile_edges(s.values(), 10);
        assert_eq!(edges.len(), 9);
        assert_eq!(bin_counts_sorted(s.values(), &edges), vec![1; 10]);
        let tied = NumericSample::new([vec![0.0; 8], vec![5.0, 7.0]].concat());
        let edges = quantile_edges(tied.values(), 10);
        assert_eq!(edges[0], 0.0);
        assert_eq!(edges.len(), 3, "{edges:?}");
        // Right-closed: the eight zeros fall in the first bin (−∞, 0].
        assert_eq!(bin_counts_sorted(tied.values(), &edges)[0], 8);
        assert_eq!(bin_counts_sorted(tied.values(), &edges).iter().sum::<u64>(), 10);
    }

    #[test]
    fn mean_and_population_std() {
        let (m, s) = mean_std(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!((m, s), (5.0, 2.0));
        assert!(mean_std(&[]).0.is_nan());
    }

    #[test]
    fn categories_are_counted_and_aligned_over_the_union() {
        let r = CategoryCounts::from_values([Some("a"), Some("b"), Some("a"), None]);
        let c = CategoryCounts::from_values([Some("c"), Some("a")]);
        assert_eq!(r.total(), 3);
        assert_eq!(r.missing(), 1);
        let (names, rc, cc) = aligned_counts(&r, &c);
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(rc, [2, 1, 0]);
        assert_eq!(cc, [1, 0, 1]);
    }
}
