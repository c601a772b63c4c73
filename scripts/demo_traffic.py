#!/usr/bin/env python3
"""Traffic and new data for the demo's closed loop (Python 3 standard library only).

  demo_traffic.py traffic URL REFERENCE_JSON SECONDS [SHIFT]
      POSTs single-row predictions to URL for SECONDS, each feature drawn from its training
      values in REFERENCE_JSON (a model version's reference.json); amounts multiplied by SHIFT
      (default 1: traffic like the training data). Prints how many were answered 200.
  demo_traffic.py shift-data CSV
      Appends the last 5,000 transactions again, 60 days later, amounts x3: new rows in a new
      range, as the world changing would bring.
"""

import json
import random
import sys
import time
import urllib.request


def traffic(url, reference, seconds, shift):
    features = json.load(open(reference))["features"]
    columns = {k: v["data"]["values"] for k, v in features.items() if k != "prediction" and "values" in v["data"]}
    rng = random.Random(7)
    ok = failed = 0
    end = time.time() + seconds
    while time.time() < end:
        row = {}
        for name, values in columns.items():
            v = rng.choice(values)
            row[name] = v * shift if "amount" in name else v
        req = urllib.request.Request(url, json.dumps({"row": row}).encode(), {"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                ok += r.status == 200
        except Exception:
            failed += 1
        time.sleep(0.01)
    print(f"{ok} predictions answered 200, {failed} failed")
    return failed == 0


def shift_data(path):
    lines = open(path).read().splitlines()
    out = []
    for i, line in enumerate(lines[-5000:]):
        f = line.split(",")
        t = f[6].replace("2026-02", "2026-04", 1).replace("2026-03", "2026-05", 1).replace("2026-01", "2026-03", 1)
        out.append(f"txn_new_{i},{f[1]},{float(f[2]) * 3:.2f},{f[3]},{f[4]},{f[5]},{t}")
    with open(path, "a") as fh:
        fh.write("\n".join(out) + "\n")
    print(f"appended {len(out)} transactions to {path}")


if __name__ == "__main__":
    if sys.argv[1] == "traffic":
        sys.exit(0 if traffic(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]) if len(sys.argv) > 5 else 1.0) else 1)
    elif sys.argv[1] == "shift-data":
        shift_data(sys.argv[2])
    else:
        sys.exit(__doc__)
