//! What the statistics compare: a numeric feature as its finite values sorted ascending
//! ([`NumericSample`]), a categorical one as counts per category ([`CategoryCounts`]). In: raw
//! values (NaN, ±∞ and nulls are dropped and counted as missing); out: the sorted sample or the
//! counts, plus the quantiles, bins and moments the statistics need.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// Finite values of a numeric feature and how many values were missing (null, NaN or
/// infinite) and so left out. A reference sample is sorted ascending ([`NumericSample::new`]);
/// a window that is compared once may stay in its original order
/// ([`NumericSample::unsorted`]): binned statistics never need it sorted, and the others sort a
/// copy when they need one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericSample {
    values: Vec<f64>,
    missing: u64,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    sorted: bool,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Below this many values a copy is sorted for quantiles rather than selected from: selection
/// clears tables of 2¹⁸ counts, which a small sample does not repay.
const SELECT_FROM: usize = 1 << 14;

impl Default for NumericSample {
    fn default() -> NumericSample {
        NumericSample { values: Vec::new(), missing: 0, sorted: true }
    }
}

impl NumericSample {
    /// Drops the non-finite values (counting them as missing) and sorts the rest.
    pub fn new(values: Vec<f64>) -> NumericSample {
        let mut s = NumericSample::unsorted(values);
        sort_floats(&mut s.values);
        s.sorted = true;
        s
    }

    /// Drops the non-finite values (counting them as missing) and keeps the rest in order.
    pub fn unsorted(mut values: Vec<f64>) -> NumericSample {
        let before = values.len();
        // Usually nothing is missing: a read-only check is far cheaper than moving every value.
        if !values.iter().fold(true, |all, x| all & x.is_finite()) {
            values.retain(|x| x.is_finite());
        }
        let missing = (before - values.len()) as u64;
        let sorted = values.len() < 2;
        NumericSample { values, missing, sorted }
    }

    /// Adds `n` to the count of missing values (nulls read from a file, say).
    pub fn with_missing(mut self, n: u64) -> NumericSample {
        self.missing += n;
        self
    }

    /// A sample from values already finite and sorted; `None` if they are not.
    pub fn from_sorted(values: Vec<f64>, missing: u64) -> Option<NumericSample> {
        let ok = values.iter().all(|x| x.is_finite()) && values.windows(2).all(|w| w[0] <= w[1]);
        ok.then_some(NumericSample { values, missing, sorted: true })
    }

    /// The values, in storage order: sorted ascending unless built with
    /// [`NumericSample::unsorted`].
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Are the values sorted?
    pub fn is_sorted(&self) -> bool {
        self.sorted
    }

    /// The values sorted ascending: borrowed when they are, else a sorted copy.
    pub fn sorted_values(&self) -> Cow<'_, [f64]> {
        if self.sorted {
            Cow::Borrowed(&self.values)
        } else {
            let mut v = self.values.clone();
            sort_floats(&mut v);
            Cow::Owned(v)
        }
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
        linear_quantile(&self.sorted_values(), q)
    }

    /// The inner edges of `bins` quantile bins of this sample ([`quantile_edges`]); an unsorted
    /// sample is not sorted for it, only the order statistics needed are selected.
    pub fn quantile_edges(&self, bins: usize) -> Vec<f64> {
        self.quantile_bins(bins).0
    }

    /// The inner edges of `bins` quantile bins ([`NumericSample::quantile_edges`]) and this
    /// sample's counts in them ([`NumericSample::bin_counts`]). An unsorted sample is counted
    /// from the buckets its quantiles were selected in, without another pass where it can be.
    pub fn quantile_bins(&self, bins: usize) -> (Vec<f64>, Vec<u64>) {
        let n = self.values.len();
        if self.sorted || n < SELECT_FROM {
            let sorted = self.sorted_values();
            let edges = quantile_edges(&sorted, bins);
            let counts = bin_counts_sorted(&sorted, &edges);
            return (edges, counts);
        }
        // The two order statistics each quantile interpolates between.
        let mut ranks: Vec<usize> = (1..bins)
            .flat_map(|i| {
                let k = (((n - 1) as f64 * (i as f64 / bins as f64)).floor() as usize).min(n - 1);
                [k, (k + 1).min(n - 1)]
            })
            .collect();
        ranks.sort_unstable();
        ranks.dedup();
        let selection = super::buckets::order_statistics(&self.values, &ranks);
        // The quantile at q interpolates between the values of ranks ⌊(n−1)q⌋ and the next.
        let at = |r: usize| selection.values[ranks.binary_search(&r).expect("every needed rank was selected")];
        let edges = edges_from(
            |q| {
                let virtual_index = (n - 1) as f64 * q;
                let previous = virtual_index.floor();
                let i = previous as usize;
                if i >= n - 1 {
                    return at(n - 1);
                }
                lerp(at(i), at(i + 1), virtual_index - previous)
            },
            bins,
        );
        let at_most: Option<Vec<u64>> = edges.iter().map(|&e| selection.at_most(e)).collect();
        let counts = match at_most {
            Some(at_most) => {
                let mut counts = Vec::with_capacity(edges.len() + 1);
                let mut below = 0;
                for m in at_most {
                    counts.push(m - below);
                    below = m;
                }
                counts.push(n as u64 - below);
                counts
            }
            None => bin_counts_unsorted(&self.values, &edges),
        };
        (edges, counts)
    }

    /// Counts in the bins the inner `edges` define (`edges.len() + 1` bins, closed on the
    /// right).
    pub fn bin_counts(&self, edges: &[f64]) -> Vec<u64> {
        if self.sorted {
            bin_counts_sorted(&self.values, edges)
        } else {
            bin_counts_unsorted(&self.values, edges)
        }
    }
}

/// Sorts finite values ascending. They are sorted as order-preserving unsigned integers
/// (cheaper comparisons than `f64::total_cmp`), with −0 taken as 0 so that the two zeros stay
/// equal, as they are to the statistics.
pub fn sort_floats(values: &mut [f64]) {
    use super::buckets::{from_key, key};
    let mut keys: Vec<u64> = values.iter().map(|&x| key(x)).collect();
    keys.sort_unstable();
    for (v, k) in values.iter_mut().zip(keys) {
        *v = from_key(k);
    }
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
    let i = previous as usize;
    lerp(sorted[i], sorted[i + 1], virtual_index - previous)
}

/// NumPy's interpolation between neighbours `a ≤ b` at `gamma`: from `a` below ½, from `b`
/// from ½ on.
fn lerp(a: f64, b: f64, gamma: f64) -> f64 {
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
    if sorted.is_empty() {
        return Vec::new();
    }
    edges_from(|q| linear_quantile(sorted, q), bins)
}

fn edges_from(quantile: impl Fn(f64) -> f64, bins: usize) -> Vec<f64> {
    let mut edges: Vec<f64> = (1..bins).map(|i| quantile(i as f64 / bins as f64)).collect();
    edges.sort_unstable_by(f64::total_cmp);
    edges.dedup_by(|a, b| a == b);
    edges
}

/// Counts of values in any order in the bins of [`quantile_edges`]. For a few edges, blocks of
/// values small enough to stay in L1 are compared with one edge at a time: a branch-free count
/// the compiler turns into vector compares (a value's bin is the number of edges below it, so bin
/// `k` holds `above[k−1] − above[k]`). Many edges: a binary search per value.
pub fn bin_counts_unsorted(values: &[f64], edges: &[f64]) -> Vec<u64> {
    use super::buckets::{both, large};
    if !large(values.len()) {
        return bin_counts_serial(values, edges);
    }
    // Two halves on two threads.
    let (first, second) = values.split_at(values.len() / 2);
    let (mut a, b) = both(true, || bin_counts_serial(first, edges), || bin_counts_serial(second, edges));
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
    a
}

fn bin_counts_serial(values: &[f64], edges: &[f64]) -> Vec<u64> {
    let mut counts = vec![0u64; edges.len() + 1];
    if edges.is_empty() {
        counts[0] = values.len() as u64;
    } else if edges.len() <= 32 {
        let mut above = vec![0u64; edges.len()];
        for block in values.chunks(1024) {
            for (a, &e) in above.iter_mut().zip(edges) {
                *a += block.iter().map(|&x| u64::from(x > e)).sum::<u64>();
            }
        }
        counts[0] = values.len() as u64 - above[0];
        for k in 1..edges.len() {
            counts[k] = above[k - 1] - above[k];
        }
        counts[edges.len()] = above[edges.len() - 1];
    } else {
        for &x in values {
            counts[edges.partition_point(|&e| e < x)] += 1;
        }
    }
    counts
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
    /// Counts values; `None` is a missing value. A name of up to 16 bytes is looked up by its
    /// bytes packed into integers ([`ShortKey`]), so counting compares no strings.
    pub fn from_values<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> CategoryCounts {
        let mut short: HashMap<ShortKey, (&str, u64), BuildHasherDefault<FxHasher>> = HashMap::default();
        let mut long: HashMap<&str, u64, BuildHasherDefault<FxHasher>> = HashMap::default();
        let mut missing = 0;
        for v in values {
            match v {
                Some(s) => match ShortKey::of(s) {
                    Some(k) => short.entry(k).or_insert((s, 0)).1 += 1,
                    None => *long.entry(s).or_insert(0) += 1,
                },
                None => missing += 1,
            }
        }
        let counts = short.into_values().chain(long).map(|(k, v)| (k.to_string(), v)).collect();
        CategoryCounts { counts, missing }
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

/// A category name of at most 16 bytes as integers: its first and last (up to) 8 bytes, which
/// overlap when it is shorter, and its length — together they determine the name.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ShortKey {
    head: u64,
    tail: u64,
    len: u8,
}

impl std::hash::Hash for ShortKey {
    fn hash<H: Hasher>(&self, h: &mut H) {
        // Names often differ only in their last bytes, the high bits of `tail`; Fx keeps input
        // bits where they are, so fold them down before the table takes its low bits.
        let mut x = self.head.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ self.tail.rotate_left(29) ^ u64::from(self.len);
        x = (x ^ (x >> 32)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
        h.write_u64(x ^ (x >> 32));
    }
}

impl ShortKey {
    #[inline]
    fn of(s: &str) -> Option<ShortKey> {
        let b = s.as_bytes();
        let n = b.len();
        let word = |at: usize, width: usize| {
            let mut w = [0u8; 8];
            w[..width].copy_from_slice(&b[at..at + width]);
            u64::from_le_bytes(w)
        };
        let (head, tail) = match n {
            0 => (0, 0),
            1..=3 => (u64::from(b[0]) | u64::from(b[n / 2]) << 8 | u64::from(b[n - 1]) << 16, 0),
            4..=7 => (word(0, 4), word(n - 4, 4)),
            8..=16 => (word(0, 8), word(n - 8, 8)),
            _ => return None,
        };
        Some(ShortKey { head, tail, len: n as u8 })
    }
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

    fn write_u64(&mut self, n: u64) {
        self.add(n);
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
    fn unsorted_windows_bin_and_select_like_sorted_ones() {
        let mut x = 0x1234_5678u64;
        let values: Vec<f64> = (0..10_001)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                ((x >> 11) % 1000) as f64 / 7.0 - 50.0
            })
            .collect();
        let sorted = NumericSample::new(values.clone());
        let window = NumericSample::unsorted(values);
        assert!(sorted.is_sorted() && !window.is_sorted());
        for bins in [2, 3, 10, 64] {
            let edges = sorted.quantile_edges(bins);
            assert_eq!(window.quantile_edges(bins), edges, "{bins} bins");
            assert_eq!(window.bin_counts(&edges), sorted.bin_counts(&edges), "{bins} bins");
            assert_eq!(window.quantile_bins(bins), (edges.clone(), sorted.bin_counts(&edges)), "{bins} bins");
            assert_eq!(sorted.quantile_bins(bins), (edges.clone(), sorted.bin_counts(&edges)), "{bins} bins");
        }
        assert_eq!(&*window.sorted_values(), sorted.values());
        // Two threads count a large window in halves.
        let large: Vec<f64> = (0..300_001).map(|i| f64::from(i % 977) * 0.5 - 100.0).collect();
        let (large_sorted, large_window) = (NumericSample::new(large.clone()), NumericSample::unsorted(large));
        for bins in [2, 3, 10, 64] {
            // Selected (not sorted) at this size; 977 distinct values, so ties at every edge.
            let edges = large_sorted.quantile_edges(bins);
            assert_eq!(large_window.quantile_bins(bins), (edges.clone(), large_sorted.bin_counts(&edges)));
            assert_eq!(large_window.bin_counts(&edges), large_sorted.bin_counts(&edges));
        }
        assert_eq!(window.quantile(0.37), sorted.quantile(0.37));
        // −0 sorts as 0, equal to it.
        let z = NumericSample::new(vec![0.0, -0.0, -1.0]);
        assert_eq!(z.values(), &[-1.0, 0.0, 0.0]);
        let json = serde_json::to_string(&window).unwrap();
        assert_eq!(serde_json::from_str::<NumericSample>(&json).unwrap(), window);
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
