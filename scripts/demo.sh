#!/usr/bin/env bash
# The main job on the embedded default: the fraud-detection example, end to end as far as the
# project goes today — set up (system packages, XGBoost's library), build, validate, compile to a
# SystemSpec, draw the graph, materialise the features, train and register the model.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release --quiet --bin mlops
mlops=target/release/mlops
example=examples/fraud-detection
out=target/demo
mkdir -p "$out"

echo "== mlops validate $example"
"$mlops" validate "$example"

echo
echo "== mlops compile $example --out $out/spec.json"
"$mlops" compile "$example" --out "$out/spec.json"

echo
echo "== mlops graph $example --format text"
"$mlops" graph "$example" --format text

echo
echo "== a mistake, caught at compile time (drift threshold out of range)"
"$mlops" validate "$example" --var drift_threshold=1.5 || true

echo
echo "== mlops materialize $example"
"$mlops" materialize "$example"

echo
echo "== mlops train $example module.fraud.training_job.model"
"$mlops" train "$example" module.fraud.training_job.model

echo
echo "== mlops models $example"
"$mlops" models "$example"
