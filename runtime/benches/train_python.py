#!/usr/bin/env python3
"""The Python xgboost peer of `cargo bench -p mlops-runtime --bench train`.

Loads the benchmark's rows once (raw little-endian f32 written by the benchmark, read with
numpy.fromfile, so both sides train on exactly the same numbers), then answers commands on stdin,
one per line, so the benchmark can alternate the two sides while this process stays loaded:

  run                 one timed training; prints `time_s=<seconds>`
  finish OUT_DIR      writes the last model (OUT_DIR/python.json, XGBoost's JSON) and its
                      predictions of the sample rows (OUT_DIR/python_pred.f32); prints `done`

What `run` times is the work `mlops_runtime::train::train` does for a job without early stopping
and a time split: the training and holdout DMatrix (feature names and types set, NaN missing),
`xgb.train` for every round with the holdout evaluated after each round (as the Rust trainer
does, to watch its metric), the holdout predictions (for the metrics) and the model serialised
as JSON. Reading the files and importing xgboost are not timed.

Usage: train_python.py SPEC.json   (prints `ready` and the xgboost version when loaded)
"""

import json
import sys
import time

try:
    import numpy as np
    import xgboost as xgb
except ImportError as e:
    print(f"python xgboost is missing ({e}): run scripts/install-xgboost.sh", file=sys.stderr)
    sys.exit(3)


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    rows, cols, n_train = spec["rows"], spec["cols"], spec["train_rows"]
    x = np.fromfile(spec["x"], dtype="<f4").reshape(rows, cols)
    y = np.fromfile(spec["y"], dtype="<f4")
    assert y.shape == (rows,), f"{spec['y']} holds {y.shape[0]} labels, expected {rows}"
    # The first `train_rows` rows train, the rest are the holdout: the Rust trainer's time split
    # on row-ordered event times, which keeps row order on both sides.
    x_train, y_train = x[:n_train], y[:n_train]
    x_hold, y_hold = x[n_train:], y[n_train:]
    sample = np.asarray(spec["sample_rows"], dtype=np.int64)
    params = dict(spec["params"])
    rounds = spec["rounds"]
    kw = dict(missing=np.nan, feature_names=spec["names"], feature_types=spec["types"])

    print(f"ready xgboost={xgb.__version__}", flush=True)
    bst = None
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "run":
            bst = None  # free the previous model before timing, as the Rust side has none
            started = time.perf_counter()
            dtrain = xgb.DMatrix(x_train, y_train, **kw)
            dhold = xgb.DMatrix(x_hold, y_hold, **kw)
            bst = xgb.train(params, dtrain, rounds, evals=[(dhold, "holdout")], verbose_eval=False)
            bst.predict(dhold)
            bst.save_raw("json")
            elapsed = time.perf_counter() - started
            del dtrain, dhold
            print(f"time_s={elapsed:.6f}", flush=True)
        elif cmd[0] == "finish":
            out = cmd[1]
            with open(f"{out}/python.json", "wb") as f:
                f.write(bytes(bst.save_raw("json")))
            pred = bst.predict(xgb.DMatrix(x[sample], **kw))
            pred.astype("<f4").ravel().tofile(f"{out}/python_pred.f32")
            print("done", flush=True)
        else:
            print(f"unknown command {cmd[0]!r}", file=sys.stderr)
            sys.exit(2)


if __name__ == "__main__":
    main()
