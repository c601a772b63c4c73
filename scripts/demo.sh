#!/usr/bin/env bash
# The main job on the embedded default: the fraud-detection example, end to end as far as the
# project goes today — set up (system packages, XGBoost's library), build, validate (and a caught
# mistake), plan, apply (ingest the sources, materialise the features, train, register and
# promote the model), plan again, change a training parameter and apply the retrain, then show
# the outputs and the registry. It works on a copy under target/demo, so the example in the
# repository is left untouched and every run starts from nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo build --release --quiet --bin mlops
mlops="$PWD/target/release/mlops"

work=target/demo
rm -rf "$work"
mkdir -p "$work/examples" "$work/modules"
cp -r examples/fraud-detection "$work/examples/"
cp -r modules/tabular-classifier "$work/modules/"
rm -rf "$work/examples/fraud-detection/.mlops"
example="$work/examples/fraud-detection"

step() { printf '\n== %s\n' "$*"; }

step "mlops validate $example"
"$mlops" validate "$example"

step "a mistake, caught at compile time (drift threshold out of range)"
"$mlops" validate "$example" --var drift_threshold=1.5 || true

step "mlops plan $example"
"$mlops" plan "$example"

step "mlops apply $example --auto-approve"
"$mlops" apply "$example" --auto-approve

step "mlops plan $example   (only what the local target cannot run yet remains)"
"$mlops" plan "$example" | tail -n 3

step "a reviewed change: max_depth 6 → 8 retrains the model"
sed -i 's/max_depth = 6/max_depth = 8/' "$example/model.mlops.hcl"
"$mlops" plan "$example" --out "$work/retrain.plan" | grep -E '^(  #|-/\+|Plan:)' || true
"$mlops" apply "$example" "$work/retrain.plan"

step "mlops state list / output / models"
"$mlops" state list "$example"
"$mlops" output "$example"
"$mlops" models "$example"
