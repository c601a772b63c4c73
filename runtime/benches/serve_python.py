"""The Python serving peer of `cargo bench -p mlops-runtime --bench serve`.

FastAPI + uvicorn + xgboost, as most teams would write it: the model file the registry holds is
loaded once with `xgboost.Booster`; `POST /predict` takes the very body mlops's
`/v1/endpoints/{name}/predict` takes, `{"row": {feature: value, ...}}`, builds a one-row float32
array in signature order (a category value becomes its code, its index in the signature's
category list, as mlops encodes it; null and unseen values become NaN) and answers
`{"score": p}` from `Booster.inplace_predict` — XGBoost's fastest Python path (no DMatrix).
The booster predicts on 1 thread: a single row gains nothing from more, and OpenMP threads
spinning at a barrier would only take CPU from the server and the load generator.

Run by the bench as
    MLOPS_SERVE_SPEC=spec.json python3 -m uvicorn serve_python:app --app-dir runtime/benches \
        --host 127.0.0.1 --port P --workers W --no-access-log
and, for the bare in-process figure, as
    python3 serve_python.py bare spec.json requests.json N
which times `inplace_predict` on one prepared row, and the same with the row built from its
JSON object, and prints one JSON line of microseconds per call.

The spec (written by the bench): {"model": path, "features": [{"name", "categories"}, ...]}.
"""

import json
import math
import os
import sys
import time

import numpy as np
import xgboost as xgb


def load(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    booster = xgb.Booster(model_file=spec["model"])
    booster.set_param({"nthread": 1})
    features = spec["features"]
    index = {f["name"]: i for i, f in enumerate(features)}
    codes = [{c: float(i) for i, c in enumerate(f["categories"])} if f["categories"] else None for f in features]
    return booster, index, codes


def encode(row, index, codes):
    """One row (feature name -> value) as a (1, n) float32 array; raises KeyError/ValueError."""
    x = np.full((1, len(index)), np.nan, dtype=np.float32)
    for name, value in row.items():
        col = index[name]
        if value is None:
            continue
        table = codes[col]
        if table is not None:
            x[0, col] = table.get(value, math.nan)
        else:
            x[0, col] = float(value)
    return x


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "bare":
        sys.exit("usage: serve_python.py bare SPEC REQUESTS N")
    booster, index, codes = load(sys.argv[2])
    with open(sys.argv[3]) as f:
        rows = [r["row"] for r in json.load(f)]
    n = int(sys.argv[4])
    prepared = [encode(r, index, codes) for r in rows]

    def per_call(f):
        for i in range(min(n, 200)):  # warm-up
            f(i)
        best = math.inf
        for _ in range(3):
            t = time.perf_counter()
            for i in range(n):
                f(i)
            best = min(best, (time.perf_counter() - t) / n * 1e6)
        return best

    predict_us = per_call(lambda i: booster.inplace_predict(prepared[i % len(prepared)]))
    encode_predict_us = per_call(lambda i: booster.inplace_predict(encode(rows[i % len(rows)], index, codes)))
    print(json.dumps({"predict_us": predict_us, "encode_predict_us": encode_predict_us}))
    sys.exit(0)

from fastapi import FastAPI, HTTPException  # noqa: E402
from pydantic import BaseModel  # noqa: E402

BOOSTER, INDEX, CODES = load(os.environ["MLOPS_SERVE_SPEC"])
app = FastAPI()


class PredictRequest(BaseModel):
    row: dict[str, float | str | None]


@app.get("/health")
async def health():
    return {"status": "ok"}


@app.post("/predict")
async def predict(request: PredictRequest):
    try:
        x = encode(request.row, INDEX, CODES)
    except (KeyError, ValueError) as e:
        raise HTTPException(status_code=400, detail=f"bad row: {e}")
    score = BOOSTER.inplace_predict(x)
    return {"score": float(score[0])}
