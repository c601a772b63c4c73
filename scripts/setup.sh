#!/usr/bin/env bash
# Installs what mlops needs to build and test on a fresh Debian/Ubuntu machine with a Rust
# toolchain: a C compiler and pkg-config for -sys crates, Python for the reference checks,
# curl (the demo calls the endpoint), git (`mlops diff` and its tests),
# PostgreSQL's server binaries (the data-source tests start a throwaway server from them),
# Prometheus (the serving tests start one to scrape the server), XGBoost's native library
# with the Python package used by the interop tests, and SciPy and NumPy (the drift statistics
# are tested against them: runtime/tests/drift_scipy.rs), and kubernetes-validate (the generated
# Kubernetes manifests are checked against Kubernetes' schemas: tests/kubernetes_cli.rs), and
# moto's S3 server (pods mirroring their data directory to an object store are tested against
# it: runtime/tests/mirror_s3.rs, tests/pod_cli.rs).
# Safe to run again; it only installs what is missing.
set -euo pipefail

need=()
for pkg in gcc pkg-config python3 curl git; do
  command -v "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
# Debian puts the server in /usr/lib/postgresql/<version>/bin, outside PATH.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
[ -x /usr/bin/prometheus ] || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]/gcc/build-essential}"
fi

"$(dirname "$0")/install-xgboost.sh"

. "$(dirname "$0")/lib/pip.sh"
if ! python3 -c "import scipy, numpy" >/dev/null 2>&1; then
  pip_install setup.sh scipy numpy
fi
# 1.37.x bundles the schemas of Kubernetes 1.25 to 1.37.
if ! python3 -c "import kubernetes_validate" >/dev/null 2>&1; then
  pip_install setup.sh 'kubernetes-validate>=1.37,<1.38'
fi
# 5.x: the S3 REST protocol with conditional writes (If-Match, If-None-Match).
if ! python3 -c "import moto.server, flask" >/dev/null 2>&1; then
  pip_install setup.sh 'moto[server]>=5.1,<6'
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "mlops needs a Rust toolchain (cargo 1.89 or newer): https://rustup.rs" >&2
  exit 1
fi
