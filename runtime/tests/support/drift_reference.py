#!/usr/bin/env python3
"""The independent reference of `runtime/tests/drift_scipy.rs`: SciPy's (and NumPy's) drift
statistics on the datasets the Rust test wrote, for it to compare with its own.

Usage: drift_reference.py DIR

DIR/request.json lists
  cases:  {"name", "kind": "numeric"|"categorical", "bins"}; the values are in
          DIR/<name>.ref.f64 and DIR/<name>.cur.f64 (little-endian float64, NaN possible) or
          DIR/<name>.ref.txt and DIR/<name>.cur.txt (one category per line);
  kstwo:  [[n, d], ...]   points for scipy.stats.kstwo.sf(d, n)
  smirnov: [[n, d], ...]  points for scipy.special.smirnov(n, d)
  chi2:   [[x, dof], ...] points for scipy.stats.chi2.sf(x, dof)
and this writes DIR/scipy.json with the same structure filled in. Definitions (see
runtime/src/monitor/drift/): non-finite values are dropped before anything; PSI and numeric JS use
the reference's quantile bins (numpy.quantile at i/bins, linear method, unique edges, bins closed
on the right via searchsorted(side="left")); PSI counts an empty bin as 1e-4; JS is
scipy.spatial.distance.jensenshannon(p, q, base=2); chi2 is scipy.stats.chi2_contingency over the
union of categories; Wasserstein is scipy.stats.wasserstein_distance, normalised by numpy.std of
the reference.
"""

import json
import os
import sys

try:
    import numpy as np
    import scipy
    from scipy import special, stats
    from scipy.spatial import distance
except ImportError as e:
    print(f"scipy and numpy are needed for the drift reference ({e}): run scripts/setup.sh", file=sys.stderr)
    sys.exit(3)

PSI_EPSILON = 1e-4


def numeric(path):
    x = np.fromfile(path, dtype="<f8")
    return x[np.isfinite(x)]


def categories(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def bins(ref, cur, n_bins):
    edges = np.unique(np.quantile(ref, np.arange(1, n_bins) / n_bins))
    r = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=len(edges) + 1)
    c = np.bincount(np.searchsorted(edges, cur, side="left"), minlength=len(edges) + 1)
    return r, c


def psi(r, c):
    rp = np.where(r == 0, PSI_EPSILON, r / r.sum())
    cp = np.where(c == 0, PSI_EPSILON, c / c.sum())
    return float(np.sum((cp - rp) * np.log(cp / rp)))


def table(ref, cur):
    names = sorted(set(ref) | set(cur))
    index = {k: i for i, k in enumerate(names)}
    r = np.zeros(len(names), dtype=np.int64)
    c = np.zeros(len(names), dtype=np.int64)
    for v in ref:
        r[index[v]] += 1
    for v in cur:
        c[index[v]] += 1
    return r, c


def main():
    d = sys.argv[1]
    with open(os.path.join(d, "request.json")) as f:
        req = json.load(f)
    out = {"scipy": scipy.__version__, "numpy": np.__version__, "cases": {}}
    for case in req["cases"]:
        name = case["name"]
        res = {}
        if case["kind"] == "numeric":
            ref = numeric(os.path.join(d, f"{name}.ref.f64"))
            cur = numeric(os.path.join(d, f"{name}.cur.f64"))
            ks = stats.ks_2samp(ref, cur)
            res["ks"] = {"statistic": float(ks.statistic), "p_value": float(ks.pvalue)}
            raw = float(stats.wasserstein_distance(ref, cur))
            res["wasserstein"] = {"raw": raw, "std": float(np.std(ref)), "statistic": raw / float(np.std(ref))}
            r, c = bins(ref, cur, case["bins"])
            res["psi"] = psi(r, c)
            res["js"] = float(distance.jensenshannon(r, c, base=2))
            res["bins"] = int(len(r))
        else:
            ref = categories(os.path.join(d, f"{name}.ref.txt"))
            cur = categories(os.path.join(d, f"{name}.cur.txt"))
            r, c = table(ref, cur)
            chi = stats.chi2_contingency(np.array([r, c]))
            res["chi2"] = {"statistic": float(chi.statistic), "p_value": float(chi.pvalue), "dof": int(chi.dof)}
            res["js"] = float(distance.jensenshannon(r, c, base=2))
        out["cases"][name] = res
    out["kstwo"] = [float(stats.kstwo.sf(x, n)) for n, x in req.get("kstwo", [])]
    out["smirnov"] = [float(special.smirnov(n, x)) for n, x in req.get("smirnov", [])]
    out["chi2"] = [float(stats.chi2.sf(x, k)) for x, k in req.get("chi2", [])]
    with open(os.path.join(d, "scipy.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
