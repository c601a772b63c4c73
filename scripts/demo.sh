#!/usr/bin/env bash
# The main job on the embedded default: the fraud-detection example, end to end as far as the
# project goes today — set up, build, validate, compile to a SystemSpec and draw the graph.
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
