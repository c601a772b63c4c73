#!/usr/bin/env bash
# Installs XGBoost's native library for the Rust binding (`xgb`, linked dynamically) and the
# Python package the interop tests compare against. Safe to run again: each step only runs when
# what it provides is missing.
#
#   .deps/xgboost/lib/libxgboost.so            from the PyPI wheel xgboost-cpu==3.2.0 (sha256-pinned)
#   .deps/xgboost/lib/libgomp-<hash>.so.1.0.0  the OpenMP runtime the wheel bundles for it
#   .deps/xgboost_cpu.libs -> xgboost/lib      where the library's own RPATH ($ORIGIN/../../xgboost_cpu.libs)
#                                              looks for that libgomp
#   .deps/wheels/<the wheel>                   kept, so Python installs the very same verified build
#   libclang (Debian libclang-dev)             bindgen generates the C API bindings at build time
#   python3: xgboost-cpu==3.2.0 and numpy      the interop tests load Rust-trained models with them
#                                              (skipped with MLOPS_XGBOOST_NATIVE_ONLY=1, as the
#                                              runtime image's builder stage does: it only links)
#
# Debian's libxgboost-dev (1.7) is deliberately not used: it lacks C functions the binding calls
# and mispredicts models saved by XGBoost 3.x without any error.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/pip.sh

version=3.2.0
wheel=xgboost_cpu-${version}-py3-none-manylinux_2_28_x86_64.whl
wheel_sha256=9c10b1653e1a689bf4094a328144cf3633c9be0e5217a76fbdc2fde6abcb2950
deps=.deps
lib="$deps/xgboost/lib"

if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "install-xgboost.sh: only linux x86_64 is pinned here (the $wheel wheel)" >&2
  exit 1
fi

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
apt_updated=""
apt_install() {
  echo "install-xgboost.sh: installing $* (apt-get)"
  if [ -z "$apt_updated" ]; then
    $SUDO apt-get update -qq
    apt_updated=1
  fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# bindgen loads libclang at build time.
have_libclang() {
  local f
  for f in /usr/lib/llvm-*/lib/libclang.so /usr/lib/x86_64-linux-gnu/libclang-*.so; do
    [ -e "$f" ] && return 0
  done
  return 1
}
have_libclang || apt_install libclang-dev

command -v python3 >/dev/null 2>&1 || apt_install python3
python3 -m pip --version >/dev/null 2>&1 || apt_install python3-pip

if [ ! -f "$lib/libxgboost.so" ] || [ ! -f "$deps/wheels/$wheel" ]; then
  echo "install-xgboost.sh: fetching $wheel"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
    "xgboost-cpu==$version" -d "$tmp"
  actual=$(sha256sum "$tmp/$wheel" | cut -d' ' -f1)
  if [ "$actual" != "$wheel_sha256" ]; then
    echo "install-xgboost.sh: $wheel has sha256 $actual, expected $wheel_sha256" >&2
    exit 1
  fi
  # Python's zipfile rather than unzip, which a fresh machine may lack.
  (cd "$tmp" && python3 -c 'import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for n in z.namelist():
    if n == "xgboost/lib/libxgboost.so" or n.startswith("xgboost_cpu.libs/"):
        z.extract(n)' "$wheel")
  rm -rf "$lib.partial"
  mkdir -p "$lib.partial" "$deps/wheels"
  cp "$tmp"/xgboost_cpu.libs/libgomp-*.so* "$tmp/xgboost/lib/libxgboost.so" "$lib.partial/"
  # Moved into place whole, so a present libxgboost.so always means a finished install.
  rm -rf "$lib"
  mv "$lib.partial" "$lib"
  ln -sfn xgboost/lib "$deps/xgboost_cpu.libs"
  cp "$tmp/$wheel" "$deps/wheels/$wheel"
  # Every library it needs must resolve, its libgomp from beside it.
  if ldd "$lib/libxgboost.so" | grep -q "not found"; then
    ldd "$lib/libxgboost.so" >&2
    echo "install-xgboost.sh: $lib/libxgboost.so has unresolved dependencies" >&2
    exit 1
  fi
  echo "install-xgboost.sh: installed $lib/libxgboost.so (XGBoost $version)"
fi

# Python xgboost for the interop tests: the same build as the native library.
if [ "${MLOPS_XGBOOST_NATIVE_ONLY:-}" = 1 ]; then
  exit 0
fi
if ! python3 -c "import numpy, xgboost, sys; sys.exit(xgboost.__version__ != '$version')" >/dev/null 2>&1; then
  pip_install install-xgboost.sh "$deps/wheels/$wheel" numpy
fi
