//! Exact statistics of unsorted samples without sorting them whole. In: samples in any order;
//! out: the KS extremes, the Wasserstein distance and order statistics — the same numbers the
//! sorted merge walks give, up to the order of additions.
//!
//! Values are put in 2²⁰ buckets by the top 20 bits of an order-preserving integer key (sign,
//! exponent and 8 mantissa bits), so bucket order is value order and one pass counts (and sums)
//! each side per bucket; a bucket that must be looked into is split the same way by the next 12
//! bits, and so on, until it is small enough to sort. From the counts alone the empirical CDFs are known at every bucket
//! boundary, and within a bucket `F_a − F_b` can only move between two bounds. Only the buckets
//! where the answer could lie — where the bounds reach the best KS extreme seen at a boundary, or
//! where `F_a − F_b` may change sign for Wasserstein — are gathered and looked into; elsewhere the
//! integral of a one-signed difference of step functions needs only each bucket's count and sum.
//! Data crowded into a few buckets only makes more buckets need sorting: the result is the same.

/// Bits of the key that choose the bucket at each level: 20 for the whole sample (sign, exponent
/// and 8 mantissa bits: a bucket spans 1/256 of a binade), then 12, 12, 12 and 8 within a bucket
/// (64 in all, after which a bucket holds one value).
const LEVEL_BITS: [u32; 5] = [20, 12, 12, 12, 8];
/// A bucket with fewer values than this is sorted rather than split further.
const SORT_BELOW: usize = 4_096;

/// An order-preserving integer for a finite float, with −0 taken as 0.
#[inline]
pub(crate) fn key(x: f64) -> u64 {
    let b = (x + 0.0).to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

/// The float of a [`key`].
#[inline]
pub(crate) fn from_key(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

/// How to find the bucket of a value at one level: the level's bits of its key, after those of
/// the levels above.
#[derive(Clone, Copy)]
struct Digit {
    used: u32,
    bits: u32,
}

impl Digit {
    fn at(level: usize) -> Digit {
        Digit { used: LEVEL_BITS[..level].iter().sum(), bits: LEVEL_BITS[level] }
    }

    #[inline]
    fn of(self, x: f64) -> usize {
        ((key(x) << self.used) >> (64 - self.bits)) as usize
    }

    /// The least value whose key starts as `x`'s does up to and including this level: every
    /// value of `x`'s bucket is at least this, in the same binade, so differences from it are
    /// exact.
    #[inline]
    fn origin(self, x: f64) -> f64 {
        let keep = self.used + self.bits;
        let mask = if keep >= 64 { u64::MAX } else { !(u64::MAX >> keep) };
        from_key(key(x) & mask)
    }
}

/// Per bucket of one level: counts of each sample, and optionally the sums of their distances
/// from the bucket's origin ([`Digit::origin`]) and the bucket's least value.
struct Histogram {
    ca: Vec<u32>,
    cb: Vec<u32>,
    sa: Vec<f64>,
    sb: Vec<f64>,
    min: Vec<f64>,
}

impl Histogram {
    fn new(a: &[f64], b: &[f64], level: usize, sums: bool) -> Histogram {
        let digit = Digit::at(level);
        let n = 1usize << digit.bits;
        let mut h = Histogram {
            ca: vec![0; n],
            cb: vec![0; n],
            sa: if sums { vec![0.0; n] } else { Vec::new() },
            sb: if sums { vec![0.0; n] } else { Vec::new() },
            min: if sums { vec![f64::INFINITY; n] } else { Vec::new() },
        };
        for (values, counts, sum) in [(a, &mut h.ca, &mut h.sa), (b, &mut h.cb, &mut h.sb)] {
            if sums {
                // Distances from the origin, not the values: near-equal values far from 0 would
                // otherwise lose their differences to rounding.
                for &x in values {
                    let d = digit.of(x);
                    counts[d] += 1;
                    sum[d] += x - digit.origin(x);
                    h.min[d] = h.min[d].min(x);
                }
            } else {
                for &x in values {
                    counts[digit.of(x)] += 1;
                }
            }
        }
        h
    }

    /// Buckets holding any value, in value order.
    fn occupied(&self) -> Vec<usize> {
        (0..self.ca.len()).filter(|&d| self.ca[d] + self.cb[d] > 0).collect()
    }
}

/// The values of `a` and `b` in the chosen buckets of `level`, per bucket.
fn gather(a: &[f64], b: &[f64], level: usize, buckets: &[usize]) -> Vec<(Vec<f64>, Vec<f64>)> {
    let digit = Digit::at(level);
    let mut out = vec![(Vec::new(), Vec::new()); buckets.len()];
    if buckets.len() <= 8 {
        // A few buckets: a scan of their digits beats clearing a table of every digit.
        let find = |x: f64| {
            let d = digit.of(x);
            buckets.iter().position(|&c| c == d)
        };
        for &x in a {
            if let Some(i) = find(x) {
                out[i].0.push(x);
            }
        }
        for &x in b {
            if let Some(i) = find(x) {
                out[i].1.push(x);
            }
        }
        return out;
    }
    let mut index = vec![u32::MAX; 1usize << digit.bits];
    for (i, &d) in buckets.iter().enumerate() {
        index[d] = i as u32;
    }
    for &x in a {
        let i = index[digit.of(x)];
        if i != u32::MAX {
            out[i as usize].0.push(x);
        }
    }
    for &x in b {
        let i = index[digit.of(x)];
        if i != u32::MAX {
            out[i as usize].1.push(x);
        }
    }
    out
}

/// Visits every distinct value of the sorted `a` and `b` with the counts of each `≤` it.
fn walk(a: &[f64], b: &[f64], mut visit: impl FnMut(f64, usize, usize, Option<f64>)) {
    let (mut p, mut q) = (0, 0);
    let first = |p: usize, q: usize| match (a.get(p), b.get(q)) {
        (Some(&x), Some(&y)) => Some(x.min(y)),
        (Some(&x), None) => Some(x),
        (None, Some(&y)) => Some(y),
        (None, None) => None,
    };
    let mut v = first(0, 0);
    while let Some(x) = v {
        while p < a.len() && a[p] <= x {
            p += 1;
        }
        while q < b.len() && b[q] <= x {
            q += 1;
        }
        let next = first(p, q);
        visit(x, p, q, next);
        v = next;
    }
}

/// Running extremes of `F_a − F_b`.
struct Extremes {
    na: f64,
    nb: f64,
    max: f64,
    min: f64,
}

impl Extremes {
    fn diff(&self, i: u64, j: u64) -> f64 {
        i as f64 / self.na - j as f64 / self.nb
    }

    fn see(&mut self, d: f64) {
        self.max = self.max.max(d);
        self.min = self.min.min(d);
    }

    /// Looks for the extremes among `a` and `b` (all in one bucket of the level above, or the
    /// whole samples), `i0` and `j0` values of each sample lying below them.
    fn search(&mut self, a: &[f64], b: &[f64], level: usize, i0: u64, j0: u64) {
        if level == LEVEL_BITS.len() || a.len() + b.len() < SORT_BELOW {
            let (mut a, mut b) = (a.to_vec(), b.to_vec());
            super::sample::sort_floats(&mut a);
            super::sample::sort_floats(&mut b);
            walk(&a, &b, |_, p, q, _| {
                let d = self.diff(i0 + p as u64, j0 + q as u64);
                self.see(d);
            });
            return;
        }
        let h = Histogram::new(a, b, level, false);
        // The difference after each bucket is attained; within one it stays between the
        // bounds of all its a-values first (hi) and all its b-values first (lo).
        let mut buckets = Vec::new();
        let (mut i, mut j) = (i0, j0);
        for d in h.occupied() {
            let (x, y) = (u64::from(h.ca[d]), u64::from(h.cb[d]));
            buckets.push((d, i, j, self.diff(i + x, j), self.diff(i, j + y)));
            i += x;
            j += y;
            let end = self.diff(i, j);
            self.see(end);
        }
        let mut chosen: Vec<_> = buckets.into_iter().filter(|b| b.3 > self.max || b.4 < self.min).collect();
        // The bounds are loose until the extremes are known well: look first into the two
        // buckets most likely to hold each extreme, which then rules most others out.
        let mut first = Vec::new();
        for _ in 0..2 {
            for pick in [
                chosen.iter().enumerate().max_by(|x, y| x.1 .3.total_cmp(&y.1 .3)).map(|(k, _)| k),
                chosen.iter().enumerate().min_by(|x, y| x.1 .4.total_cmp(&y.1 .4)).map(|(k, _)| k),
            ]
            .into_iter()
            .flatten()
            {
                if pick < chosen.len() {
                    first.push(chosen.swap_remove(pick));
                }
            }
        }
        self.look_into(a, b, level, first);
        chosen.retain(|b| b.3 > self.max || b.4 < self.min);
        self.look_into(a, b, level, chosen);
    }

    /// Searches the chosen buckets `(digit, below in a, below in b, hi, lo)` of `level`.
    fn look_into(&mut self, a: &[f64], b: &[f64], level: usize, chosen: Vec<(usize, u64, u64, f64, f64)>) {
        if chosen.is_empty() {
            return;
        }
        let digits: Vec<usize> = chosen.iter().map(|c| c.0).collect();
        for ((xa, xb), (_, i, j, hi, lo)) in gather(a, b, level, &digits).into_iter().zip(chosen) {
            // An extreme found in an earlier bucket may rule this one out now.
            if hi > self.max || lo < self.min {
                self.search(&xa, &xb, level + 1, i, j);
            }
        }
    }
}

/// `(max, min)` of `F_a − F_b` over every value of either sample (`F` counting values `≤ x`),
/// each difference formed as `i/n_a − j/n_b` exactly as the sorted walk forms it.
pub(crate) fn ks_extremes(a: &[f64], b: &[f64]) -> (f64, f64) {
    let mut e = Extremes { na: a.len() as f64, nb: b.len() as f64, max: f64::NEG_INFINITY, min: f64::INFINITY };
    e.search(a, b, 0, 0, 0);
    (e.max, e.min)
}

/// `∫ |F_a − F_b|` from the least value of `a ∪ b` (all in one bucket of the level above, or the
/// whole samples) to `end`, `i0` and `j0` values of each sample lying below them.
fn area(a: &[f64], b: &[f64], level: usize, i0: u64, j0: u64, end: f64, n: (f64, f64)) -> f64 {
    let (na, nb) = n;
    if level == LEVEL_BITS.len() || a.len() + b.len() < SORT_BELOW {
        let (mut a, mut b) = (a.to_vec(), b.to_vec());
        super::sample::sort_floats(&mut a);
        super::sample::sort_floats(&mut b);
        let mut total = 0.0;
        walk(&a, &b, |x, p, q, next| {
            let d = (i0 + p as u64) as f64 / na - (j0 + q as u64) as f64 / nb;
            total += d.abs() * (next.unwrap_or(end) - x);
        });
        return total;
    }
    let h = Histogram::new(a, b, level, true);
    let digit = Digit::at(level);
    let occupied = h.occupied();
    let mut total = 0.0;
    let mut block = 0.0;
    let mut split = Vec::new();
    let (mut i, mut j) = (i0, j0);
    for (pos, &d) in occupied.iter().enumerate() {
        let (x, y) = (u64::from(h.ca[d]), u64::from(h.cb[d]));
        // The bucket's interval runs from its least value to the next bucket's least value.
        let (start, stop) = (h.min[d], occupied.get(pos + 1).map_or(end, |&next| h.min[next]));
        let base = i as f64 / na - j as f64 / nb;
        let (hi, lo) = (base + x as f64 / na, base - y as f64 / nb);
        if lo >= 0.0 || hi <= 0.0 {
            // One sign throughout: ∫ F over [start, stop) is (C_below (stop − start) + Σ (stop − x)) / n,
            // with Σ (stop − x) = c (stop − origin) − Σ (x − origin).
            let to_stop = stop - digit.origin(start);
            let int_a = (i as f64 * (stop - start) + (x as f64 * to_stop - h.sa[d])) / na;
            let int_b = (j as f64 * (stop - start) + (y as f64 * to_stop - h.sb[d])) / nb;
            block += if lo >= 0.0 { int_a - int_b } else { int_b - int_a };
            if pos % 256 == 255 {
                total += block;
                block = 0.0;
            }
        } else {
            split.push((d, i, j, stop));
        }
        i += x;
        j += y;
    }
    total += block;
    if !split.is_empty() {
        let digits: Vec<usize> = split.iter().map(|s| s.0).collect();
        for ((xa, xb), (_, i, j, stop)) in gather(a, b, level, &digits).into_iter().zip(split) {
            total += area(&xa, &xb, level + 1, i, j, stop, n);
        }
    }
    total
}

/// `∫ |F_a − F_b| dx`, for unsorted non-empty samples.
pub(crate) fn wasserstein(a: &[f64], b: &[f64]) -> f64 {
    let end = a.iter().chain(b).copied().fold(f64::NEG_INFINITY, f64::max);
    area(a, b, 0, 0, 0, end, (a.len() as f64, b.len() as f64))
}

/// Count per level-0 bucket.
fn counts(values: &[f64]) -> Vec<u32> {
    let mut c = vec![0u32; 1usize << LEVEL_BITS[0]];
    let digit = Digit::at(0);
    for &x in values {
        c[digit.of(x)] += 1;
    }
    c
}

/// The values at the given sorted-order `ranks` (ascending, each `< values.len()`), without
/// sorting: a count per bucket finds the bucket of each rank, then only those buckets are
/// gathered and sorted.
pub(crate) fn order_statistics(values: &[f64], ranks: &[usize]) -> Vec<f64> {
    let c = counts(values);
    let mut digits: Vec<usize> = Vec::new();
    let mut picks = Vec::with_capacity(ranks.len());
    let (mut d, mut before) = (0usize, 0usize);
    for &r in ranks {
        while before + c[d] as usize <= r {
            before += c[d] as usize;
            d += 1;
        }
        if digits.last() != Some(&d) {
            digits.push(d);
        }
        picks.push((digits.len() - 1, r - before));
    }
    let mut gathered = gather(values, &[], 0, &digits);
    for (v, _) in &mut gathered {
        super::sample::sort_floats(v);
    }
    picks.into_iter().map(|(g, at)| gathered[g].0[at]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(v: &[f64]) -> Vec<f64> {
        let mut s = v.to_vec();
        s.sort_by(f64::total_cmp);
        s
    }

    fn data(seed: u64, n: usize, scale: f64, shift: f64) -> Vec<f64> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                (((x >> 11) as f64 / (1u64 << 53) as f64) - 0.5) * scale + shift
            })
            .collect()
    }

    #[test]
    fn keys_preserve_order() {
        let v = [-1e300, -2.5, -1e-300, -0.0, 0.0, 1e-300, 3.0, f64::MAX];
        for w in v.windows(2) {
            assert!(key(w[0]) <= key(w[1]), "{w:?}");
        }
        assert_eq!(key(-0.0), key(0.0));
        for x in v {
            assert_eq!(from_key(key(x)), x + 0.0);
        }
    }

    #[test]
    fn bucketed_statistics_equal_the_sorted_walks() {
        // Wide and narrow ranges (narrow: everything in a few buckets), shifted and tied.
        let cases = [
            (data(1, 5_000, 10.0, 0.0), data(2, 4_000, 10.0, 0.3)),
            (data(3, 3_000, 1e-3, 1000.0), data(4, 3_000, 1e-3, 1000.0)),
            (
                data(5, 2_000, 8.0, 0.0).iter().map(|x| x.round()).collect(),
                data(6, 1_000, 8.0, 1.0).iter().map(|x| x.round()).collect(),
            ),
            (vec![1.0], vec![2.0, 3.0]),
            // Large and narrow: buckets are split level after level.
            (data(7, 30_000, 1e-6, 1000.0), data(8, 20_000, 1e-6, 1000.0 + 1e-8)),
            (data(9, 40_000, 4.0, 0.0), data(10, 40_000, 4.0, 0.01)),
        ];
        for (a, b) in &cases {
            let (sa, sb) = (sorted(a), sorted(b));
            assert_eq!(super::super::ks::ks_2samp(&sa, &sb), super::super::ks::ks_2samp_unsorted(a, b));
            let w = super::super::wasserstein::wasserstein_distance(&sa, &sb);
            let wb = wasserstein(a, b);
            assert!((w - wb).abs() <= 1e-12 * w.abs().max(1e-300), "{w} vs {wb}");
            let ranks = [0, a.len() / 3, a.len() / 2, a.len() - 1];
            let stats = order_statistics(a, &ranks);
            for (r, s) in ranks.iter().zip(stats) {
                assert_eq!(s, sa[*r] + 0.0);
            }
        }
    }
}
