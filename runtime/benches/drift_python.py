#!/usr/bin/env python3
"""The SciPy peer of `cargo bench -p mlops-runtime --bench drift`.

Usage: drift_python.py DIR REPS

Loads DIR/ref.f64 and DIR/cur.f64 (little-endian float64) and DIR/ref.txt and DIR/cur.txt (one
category per line) into NumPy arrays — not timed — then times each statistic REPS times from
those raw arrays, as a SciPy user would compute it:

  ks           scipy.stats.ks_2samp(ref, cur)
  wasserstein  scipy.stats.wasserstein_distance(ref, cur) / numpy.std(ref)
  psi          numpy.quantile bins of ref, searchsorted + bincount of both, the PSI sum (NumPy:
               SciPy has no PSI)
  js           the same bins, then scipy.spatial.distance.jensenshannon(p, q, base=2)
  chi2         numpy.unique(return_counts=True) of both, aligned on the union of categories,
               then scipy.stats.chi2_contingency

Prints one JSON object: per statistic the median and best time in seconds and the value (and
p-value), for the benchmark to compare with its own.
"""

import json
import os
import sys
import time

try:
    import numpy as np
    import scipy
    from scipy import stats
    from scipy.spatial import distance
except ImportError as e:
    print(f"scipy and numpy are needed ({e}): run scripts/setup.sh", file=sys.stderr)
    sys.exit(3)


def edges_of(ref, bins=10):
    return np.unique(np.quantile(ref, np.arange(1, bins) / bins))


def counts(edges, x):
    return np.bincount(np.searchsorted(edges, x, side="left"), minlength=len(edges) + 1)


def psi(ref, cur):
    e = edges_of(ref)
    r, c = counts(e, ref), counts(e, cur)
    rp = np.where(r == 0, 1e-4, r / r.sum())
    cp = np.where(c == 0, 1e-4, c / c.sum())
    return float(np.sum((cp - rp) * np.log(cp / rp))), None


def js(ref, cur):
    e = edges_of(ref)
    return float(distance.jensenshannon(counts(e, ref), counts(e, cur), base=2)), None


def ks(ref, cur):
    r = stats.ks_2samp(ref, cur)
    return float(r.statistic), float(r.pvalue)


def wasserstein(ref, cur):
    return float(stats.wasserstein_distance(ref, cur) / np.std(ref)), None


def chi2(ref, cur):
    rn, rc = np.unique(ref, return_counts=True)
    cn, cc = np.unique(cur, return_counts=True)
    names = np.union1d(rn, cn)
    table = np.zeros((2, len(names)), dtype=np.int64)
    table[0, np.searchsorted(names, rn)] = rc
    table[1, np.searchsorted(names, cn)] = cc
    r = stats.chi2_contingency(table)
    return float(r.statistic), float(r.pvalue)


def main():
    d, reps = sys.argv[1], int(sys.argv[2])
    ref = np.fromfile(os.path.join(d, "ref.f64"), dtype="<f8")
    cur = np.fromfile(os.path.join(d, "cur.f64"), dtype="<f8")
    with open(os.path.join(d, "ref.txt")) as f:
        cref = np.array(f.read().split("\n")[:-1])
    with open(os.path.join(d, "cur.txt")) as f:
        ccur = np.array(f.read().split("\n")[:-1])
    out = {"scipy": scipy.__version__, "numpy": np.__version__}
    cases = [("psi", psi, ref, cur), ("ks", ks, ref, cur), ("js", js, ref, cur),
             ("chi2", chi2, cref, ccur), ("wasserstein", wasserstein, ref, cur)]
    for _, fn, a, b in cases:
        fn(a, b)  # every statistic once, untimed, before any is timed (as on the Rust side)
    for name, fn, a, b in cases:
        times = []
        fn(a, b)  # one untimed warm-up run, as on the Rust side
        for _ in range(reps):
            t = time.perf_counter()
            value, p = fn(a, b)
            times.append(time.perf_counter() - t)
        times.sort()
        out[name] = {"median_s": times[len(times) // 2], "best_s": times[0], "value": value, "p_value": p}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
