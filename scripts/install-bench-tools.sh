#!/usr/bin/env bash
# Installs the Python peers the benchmarks compare against (runtime/benches/*_python.py):
#
#   xgboost-cpu==3.2.0   the same build as the native library scripts/install-xgboost.sh installs
#                        (from its verified wheel in .deps/wheels when present)
#   numpy
#   fastapi, uvicorn[standard]   the serving peer (runtime/benches/serve_python.py); [standard]
#                        brings uvloop and httptools, uvicorn's fast event loop and HTTP parser
#
# Safe to run again: pip is only called when something is missing or at another version.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/pip.sh

xgb_version=3.2.0
wheel=.deps/wheels/xgboost_cpu-${xgb_version}-py3-none-manylinux_2_28_x86_64.whl

command -v python3 >/dev/null 2>&1 || { echo "install-bench-tools.sh: python3 is required" >&2; exit 1; }

if ! python3 -c "import numpy, xgboost, sys; sys.exit(xgboost.__version__ != '$xgb_version')" >/dev/null 2>&1; then
  if [ -f "$wheel" ]; then
    pip_install install-bench-tools.sh "$wheel" numpy
  else
    pip_install install-bench-tools.sh "xgboost-cpu==$xgb_version" numpy
  fi
fi

if ! python3 -c "import fastapi, uvicorn, uvloop, httptools" >/dev/null 2>&1; then
  pip_install install-bench-tools.sh fastapi "uvicorn[standard]"
fi

python3 -c 'import fastapi, uvicorn, xgboost, numpy
print(f"install-bench-tools.sh: fastapi {fastapi.__version__}, uvicorn {uvicorn.__version__}, "
      f"xgboost {xgboost.__version__}, numpy {numpy.__version__}")'
