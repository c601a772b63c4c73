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

/// Samples at least this large are worked on by two threads (each sample, or each half of one,
/// on its own): below it a thread costs more than it saves.
const PARALLEL_FROM: usize = 1 << 17;

/// `(fa(), fb())`, on two threads when `parallel` and the machine has two cores.
pub(crate) fn both<A: Send, B: Send>(
    parallel: bool,
    fa: impl FnOnce() -> A + Send,
    fb: impl FnOnce() -> B + Send,
) -> (A, B) {
    if parallel && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1) {
        std::thread::scope(|scope| {
            let b = scope.spawn(fb);
            let a = fa();
            (a, b.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
        })
    } else {
        (fa(), fb())
    }
}

/// Is a sample of this size worth two threads?
pub(crate) fn large(n: usize) -> bool {
    n >= PARALLEL_FROM
}

/// One sample's counts per bucket of a level, and optionally the sums of its values' distances
/// from the bucket's origin ([`Digit::origin`]) and its least value per bucket.
struct Side {
    counts: Vec<u32>,
    sums: Vec<f64>,
    min: Vec<f64>,
}

impl Side {
    fn new(values: &[f64], digit: Digit, sums: bool) -> Side {
        let n = 1usize << digit.bits;
        let mut s = Side {
            counts: vec![0; n],
            sums: if sums { vec![0.0; n] } else { Vec::new() },
            min: if sums { vec![f64::INFINITY; n] } else { Vec::new() },
        };
        if sums {
            // Distances from the origin, not the values: near-equal values far from 0 would
            // otherwise lose their differences to rounding.
            for &x in values {
                let d = digit.of(x);
                s.counts[d] += 1;
                s.sums[d] += x - digit.origin(x);
                s.min[d] = s.min[d].min(x);
            }
        } else {
            for &x in values {
                s.counts[digit.of(x)] += 1;
            }
        }
        s
    }
}

/// Per bucket of one level: counts of each sample (and with `sums`, their sums and least values:
/// [`Side`]). The two samples are counted on two threads when large.
struct Histogram {
    a: Side,
    b: Side,
}

impl Histogram {
    fn new(a: &[f64], b: &[f64], level: usize, sums: bool) -> Histogram {
        let digit = Digit::at(level);
        let (a, b) = both(large(a.len().min(b.len())), || Side::new(a, digit, sums), || Side::new(b, digit, sums));
        Histogram { a, b }
    }

    /// Buckets holding any value, in value order.
    fn occupied(&self) -> Vec<usize> {
        (0..self.a.counts.len()).filter(|&d| self.a.counts[d] + self.b.counts[d] > 0).collect()
    }

    /// The least value of an occupied bucket.
    fn min(&self, d: usize) -> f64 {
        self.a.min[d].min(self.b.min[d])
    }
}

/// The values of `a` and `b` in the chosen buckets of `level`, per bucket (in the order given).
/// Membership is a bitmap of the level's digits and a bucket's place the number of chosen
/// digits below it (a count per 64-bit word plus a popcount): both small enough to stay in
/// cache, where a table of every digit would miss it on every value.
fn gather(a: &[f64], b: &[f64], digit: Digit, buckets: &[usize]) -> Vec<(Vec<f64>, Vec<f64>)> {
    let mut sorted: Vec<(usize, usize)> = buckets.iter().enumerate().map(|(i, &d)| (d, i)).collect();
    sorted.sort_unstable();
    let words = (1usize << digit.bits).div_ceil(64);
    let mut bits = vec![0u64; words];
    for &(d, _) in &sorted {
        bits[d / 64] |= 1 << (d % 64);
    }
    let mut below = vec![0u32; words];
    let mut total = 0;
    for (w, b) in below.iter_mut().zip(&bits) {
        *w = total;
        total += b.count_ones();
    }
    let collect = |values: &[f64]| {
        let mut out = vec![Vec::new(); sorted.len()];
        for &x in values {
            let d = digit.of(x);
            let word = bits[d / 64];
            if word >> (d % 64) & 1 == 1 {
                let rank = below[d / 64] + (word & ((1u64 << (d % 64)) - 1)).count_ones();
                out[rank as usize].push(x);
            }
        }
        out
    };
    let (mut fa, mut fb) = both(large(a.len().min(b.len())), || collect(a), || collect(b));
    // Back to the caller's order.
    let mut out = vec![(Vec::new(), Vec::new()); buckets.len()];
    for (rank, &(_, i)) in sorted.iter().enumerate() {
        out[i] = (std::mem::take(&mut fa[rank]), std::mem::take(&mut fb[rank]));
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
            let (x, y) = (u64::from(h.a.counts[d]), u64::from(h.b.counts[d]));
            buckets.push((d, i, j, self.diff(i + x, j), self.diff(i, j + y)));
            i += x;
            j += y;
            let end = self.diff(i, j);
            self.see(end);
        }
        let mut chosen: Vec<_> = buckets.into_iter().filter(|b| b.3 > self.max || b.4 < self.min).collect();
        // The bounds are loose until the extremes are known well: look first into the two
        // buckets most likely to hold each extreme, which then rules most others out. All are
        // gathered in one pass; the later ones are searched only if still in the running.
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
        first.append(&mut chosen);
        self.look_into(a, b, level, first);
    }

    /// Searches the chosen buckets `(digit, below in a, below in b, hi, lo)` of `level`.
    fn look_into(&mut self, a: &[f64], b: &[f64], level: usize, chosen: Vec<(usize, u64, u64, f64, f64)>) {
        if chosen.is_empty() {
            return;
        }
        let digits: Vec<usize> = chosen.iter().map(|c| c.0).collect();
        for ((xa, xb), (_, i, j, hi, lo)) in gather(a, b, Digit::at(level), &digits).into_iter().zip(chosen) {
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
        let (x, y) = (u64::from(h.a.counts[d]), u64::from(h.b.counts[d]));
        // The bucket's interval runs from its least value to the next bucket's least value.
        let (start, stop) = (h.min(d), occupied.get(pos + 1).map_or(end, |&next| h.min(next)));
        let base = i as f64 / na - j as f64 / nb;
        let (hi, lo) = (base + x as f64 / na, base - y as f64 / nb);
        if lo >= 0.0 || hi <= 0.0 {
            // One sign throughout: ∫ F over [start, stop) is (C_below (stop − start) + Σ (stop − x)) / n,
            // with Σ (stop − x) = c (stop − origin) − Σ (x − origin).
            let to_stop = stop - digit.origin(start);
            let int_a = (i as f64 * (stop - start) + (x as f64 * to_stop - h.a.sums[d])) / na;
            let int_b = (j as f64 * (stop - start) + (y as f64 * to_stop - h.b.sums[d])) / nb;
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
        for ((xa, xb), (_, i, j, stop)) in gather(a, b, Digit::at(level), &digits).into_iter().zip(split) {
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

/// Bits of the key that choose a bucket when selecting order statistics (sign, exponent and 6
/// mantissa bits): measured on 1M normal values, 18 beat 20 (4.0–4.4 ms against 4.9–5.1: the
/// tables to clear and walk are a quarter the size) and 16 (larger buckets left to search).
const SELECT_BITS: u32 = 18;

/// Order statistics of an unsorted sample, found without sorting it, and the buckets they were
/// found in — from which the count of values `≤ x` is known for any `x` near them.
pub(crate) struct Selection {
    digit: Digit,
    /// Count per bucket, of each half of the sample.
    counts: [Vec<u32>; 2],
    /// The buckets searched (ascending), the number of values below each, and its values.
    buckets: Vec<(usize, u64, Vec<f64>)>,
    /// The values at the ranks asked for, in their order.
    pub values: Vec<f64>,
}

/// The values at the given sorted-order `ranks` (ascending, each `< values.len()`), without
/// sorting: a count per bucket finds the bucket of each rank, then only those buckets are
/// gathered and searched.
pub(crate) fn order_statistics(values: &[f64], ranks: &[usize]) -> Selection {
    let digit = Digit { used: 0, bits: SELECT_BITS };
    // Two halves on two threads when large: counted apart, then added; gathered apart, then
    // joined (a bucket's order does not matter to the selection).
    let parallel = large(values.len());
    let (first, second) = values.split_at(if parallel { values.len() / 2 } else { values.len() });
    let (one, other) = both(parallel, || Side::new(first, digit, false), || Side::new(second, digit, false));
    let counts = [one.counts, other.counts];
    let count = |d: usize| (counts[0][d] + counts[1][d]) as usize;
    let mut digits: Vec<usize> = Vec::new();
    let mut below: Vec<u64> = Vec::new();
    let mut picks = Vec::with_capacity(ranks.len());
    let (mut d, mut before) = (0usize, 0usize);
    for &r in ranks {
        // Whole blocks of buckets below the rank are skipped by their sum (vector adds), the
        // rest walked one bucket at a time.
        while d % SKIP == 0 && d + SKIP <= counts[0].len() {
            let block = sum_counts(&counts, d..d + SKIP) as usize;
            if before + block > r {
                break;
            }
            before += block;
            d += SKIP;
        }
        while before + count(d) <= r {
            before += count(d);
            d += 1;
        }
        if digits.last() != Some(&d) {
            digits.push(d);
            below.push(before as u64);
        }
        picks.push((digits.len() - 1, r - before));
    }
    let mut buckets: Vec<(usize, u64, Vec<f64>)> = gather(first, second, digit, &digits)
        .into_iter()
        .zip(digits.iter().zip(&below))
        .map(|((mut v, w), (&d, &b))| {
            v.extend(w);
            (d, b, v)
        })
        .collect();
    // Ascending selections within each bucket, each on what lies above the previous one.
    let mut out = vec![0.0; picks.len()];
    let mut done: Vec<usize> = vec![0; buckets.len()];
    for (k, &(g, at)) in picks.iter().enumerate() {
        let v = &mut buckets[g].2;
        let from = done[g].min(at);
        let (_, nth, _) = v[from..].select_nth_unstable_by_key(at - from, |&x| key(x));
        out[k] = *nth + 0.0;
        done[g] = at;
    }
    Selection { digit, counts, buckets, values: out }
}

impl Selection {
    /// How many values of the sample are `≤ x`, if `x` lies in a searched bucket or among
    /// buckets close after one (`None` otherwise: the caller counts).
    pub(crate) fn at_most(&self, x: f64) -> Option<u64> {
        let d = self.digit.of(x);
        let g = self.buckets.partition_point(|b| b.0 <= d).checked_sub(1)?;
        let (start, below, values) = &self.buckets[g];
        if *start == d {
            let kx = key(x);
            return Some(below + values.iter().filter(|&&v| key(v) <= kx).count() as u64);
        }
        // Every value of the buckets from this one up to x's (exclusive) is below x.
        if d - start > 4_096 {
            return None;
        }
        Some(below + sum_counts(&self.counts, *start..d))
    }
}

/// Buckets skipped at once while looking for a rank's bucket.
const SKIP: usize = 256;

/// The values counted in a range of buckets, over both halves' tables.
fn sum_counts(counts: &[Vec<u32>; 2], range: std::ops::Range<usize>) -> u64 {
    counts.iter().map(|c| c[range.clone()].iter().map(|&n| u64::from(n)).sum::<u64>()).sum()
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
            // Large enough for two threads (each sample, or each half of one, apart).
            (data(11, 300_001, 4.0, 0.0), data(12, 200_000, 4.0, 0.02)),
        ];
        for (a, b) in &cases {
            let (sa, sb) = (sorted(a), sorted(b));
            assert_eq!(super::super::ks::ks_2samp(&sa, &sb), super::super::ks::ks_2samp_unsorted(a, b));
            let w = super::super::wasserstein::wasserstein_distance(&sa, &sb);
            let wb = wasserstein(a, b);
            assert!((w - wb).abs() <= 1e-12 * w.abs().max(1e-300), "{w} vs {wb}");
            let ranks = [0, a.len() / 3, a.len() / 2, a.len() - 1];
            let selection = order_statistics(a, &ranks);
            for (r, s) in ranks.iter().zip(&selection.values) {
                assert_eq!(*s, sa[*r] + 0.0);
            }
            // Counts of values ≤ each order statistic, and ≤ points between values.
            for &r in &ranks {
                for x in [sa[r], sa[r] + 1e-9, sa[r] - 1e-9] {
                    let expected = sa.partition_point(|&v| v <= x) as u64;
                    if let Some(n) = selection.at_most(x) {
                        assert_eq!(n, expected, "≤ {x}");
                    }
                }
            }
        }
    }
}
