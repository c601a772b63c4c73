# Sourced by the install scripts: `pip_install TAG ARGS…` runs `python3 -m pip install` quietly,
# saying what it installs under TAG. A distribution's Python (PEP 668) refuses system-wide pip
# installs; outside a virtualenv, it installs for the user instead.
pip_install() {
  local tag=$1
  shift
  local flags=()
  if [ -z "${VIRTUAL_ENV:-}" ] && python3 -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
    flags=(--user --break-system-packages)
  fi
  echo "$tag: pip install $*"
  python3 -m pip install --quiet ${flags[@]+"${flags[@]}"} "$@"
}
