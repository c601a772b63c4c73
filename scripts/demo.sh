#!/usr/bin/env bash
# The main job on the embedded default: the fraud-detection example, end to end as far as the
# project goes today — set up (system packages, XGBoost's library), build, validate (and a caught
# mistake), plan, apply (ingest the sources, materialise the features, train, register and
# promote the model, deploy the endpoint into the local serving agent, start its monitor and
# retrain policy), call the endpoint over HTTP, change a training parameter and apply the
# retrain (rolled out as a canary), then the closed loop: traffic like the training data (no
# alert), the world shifts (new data, traffic amounts x3), drift is detected, the policy
# retrains, compares, canaries and promotes the new version by itself — timed from the shift to
# 100 % — a drift report, status, events, outputs and the registry, and destroy (which stops the
# agent). It works on a copy under target/demo, on a free port, with the monitor's window, the
# cooldown and the canary steps shortened to seconds, so the example in the repository is left
# untouched and every run starts from nothing.
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
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -i "s/127.0.0.1:8080/127.0.0.1:$port/" "$example/main.mlops.hcl"
# Seconds instead of hours, so the loop turns while you watch.
sed -i -e 's/window      = "1h"/window      = "5s"/' -e 's/min_samples = 500/min_samples = 100/' \
  -e 's/cooldown = "6h"/cooldown = "5s"/' -e '/schedule = "0 3 \* \* \*"/d' "$example/model.mlops.hcl"
sed -i 's/interval = "10m"/interval = "2s"/' "$work/modules/tabular-classifier/main.mlops.hcl"
# Whatever happens, do not leave the serving agent running.
trap '"$mlops" destroy "$example" --auto-approve >/dev/null 2>&1 || true' EXIT

step() { printf '\n== %s\n' "$*"; }

step "mlops validate $example"
"$mlops" validate "$example"

step "a mistake, caught at compile time (drift threshold out of range)"
"$mlops" validate "$example" --var drift_threshold=1.5 || true

step "mlops plan $example"
"$mlops" plan "$example"

step "mlops apply $example --auto-approve"
"$mlops" apply "$example" --auto-approve

step "mlops plan $example   (converged: nothing left to do)"
"$mlops" plan "$example" | tail -n 3

step "a prediction over HTTP from the deployed endpoint"
url=$("$mlops" output "$example" endpoint_url --raw)
echo "POST $url/predict"
curl -sS -X POST "$url/predict" -H 'content-type: application/json' \
  -d '{"row": {"amount": 182.4, "log_amount": 5.21, "hour_of_day": 3, "amount_sum_24h": 950, "amount_mean_7d": 61.2, "txn_count_1h": 4}}'
echo
echo "and a bad request, refused with a reason:"
curl -sS -X POST "$url/predict" -H 'content-type: application/json' -d '{"row": {"amount": "lots"}}'
echo

step "a reviewed change: max_depth 6 → 8 retrains the model"
sed -i 's/max_depth = 6/max_depth = 8/' "$example/model.mlops.hcl"
"$mlops" plan "$example" --out "$work/retrain.plan" | grep -E '^(  #|-/\+|Plan:)' || true
"$mlops" apply "$example" "$work/retrain.plan"

step "the closed loop: traffic like the training data — the canary above completes, the monitor sees no drift"
reference=$(ls -d "$example"/.mlops/data/registry/models/*/2)/reference.json
python3 scripts/demo_traffic.py traffic "$url/predict" "$reference" 30 &
calm=$!
# Each canary step needs 100 judged requests: the traffic carries version 2 to 100 %.
for _ in $(seq 1 60); do
  "$mlops" status "$example" | grep -q "rollout: version 2 promoted" && break
  sleep 1
done
wait "$calm"
"$mlops" status "$example" | grep "rollout:"
"$mlops" events "$example" --kind monitor_ok,breach | tail -n 2

step "the world shifts: new transactions arrive, amounts x3 — drift, retrain, canary, promotion"
python3 scripts/demo_traffic.py shift-data "$example/data/transactions.csv"
shifted=$(date +%s)
python3 scripts/demo_traffic.py traffic "$url/predict" "$reference" 600 3 &
traffic=$!
for _ in $(seq 1 300); do
  "$mlops" events "$example" --kind promoted,candidate_rejected,retrain_failed --json | grep -q . && break
  sleep 1
done
kill "$traffic" 2>/dev/null || true
wait "$traffic" 2>/dev/null || true
"$mlops" events "$example" --since 10m | grep -v -E 'monitor_ok|insufficient_data'
echo "from the shift to the new version at 100 %: $(( $(date +%s) - shifted )) s"
"$mlops" status "$example"
# Version 3 (the drift retrain, after the original and the reviewed one) must be what serves.
if ! "$mlops" status "$example" | grep -q "rollout: version 3 promoted"; then
  echo "error: the loop did not end with version 3 serving all traffic (see the events above)" >&2
  exit 1
fi

step "mlops drift report monitor.fraud_health --out $work/drift-report.html"
"$mlops" drift report monitor.fraud_health "$example" --out "$work/drift-report.html" --window 30s

step "mlops plan $example   (the promotion is recorded, not undone; the new rows are news)"
"$mlops" plan "$example" | grep -E 'recorded in the state|^Plan:|No changes' || true

step "mlops status / state list / output / models"
"$mlops" status "$example"
"$mlops" state list "$example"
"$mlops" output "$example"
"$mlops" models "$example"

step "mlops destroy $example --auto-approve   (archives the models, stops the agent; your data stays)"
trap - EXIT
"$mlops" destroy "$example" --auto-approve | tail -n 4
