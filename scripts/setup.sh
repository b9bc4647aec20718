#!/usr/bin/env bash
# Set up dezoom-steps on a Debian/Ubuntu machine with python3 >= 3.11.
#
#   scripts/setup.sh          .venv/ in the repository with the project installed (editable,
#                             with its test extras): run things as .venv/bin/python ...
#   scripts/setup.sh --slurm  the same, plus Snakemake's SLURM executor plugin (the `slurm`
#                             extra), to run the workflow with --profile profiles/slurm
#   scripts/setup.sh --test   --slurm, plus the Debian packages the real-server tests need
#                             (tests/rig/install_packages.sh: vips, nginx, iipsrv, curl, fonts,
#                             gdal-bin and GNU time for the benchmark suite and its smoke test;
#                             tests/slurm/install.sh: slurmctld, slurmd, slurm-client, munge)
#
# Safe to re-run: the venv is reused, and pip runs again only when pyproject.toml changed
# (a stamp in .venv/ records its hash). Needs network access to PyPI, and to the Debian
# mirror when packages are missing. apt runs through sudo when not root.
# PYTHON=/path/to/python3.x picks another interpreter.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
WITH_TEST_PACKAGES=0
EXTRAS=test
for arg in "$@"; do
  case $arg in
    --test) WITH_TEST_PACKAGES=1; EXTRAS=test,slurm ;;
    --slurm) EXTRAS=test,slurm ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "setup: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done
say() { echo "setup: $*"; }

as_root() { # run a command as root (sudo only when needed)
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi
}

command -v "$PYTHON" >/dev/null || { echo "setup: $PYTHON not found; install Python 3.11 or newer" >&2; exit 1; }
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "setup: $("$PYTHON" -V 2>&1) is too old; dezoom-steps needs Python >= 3.11 (set PYTHON=...)" >&2; exit 1; }

# ---------------------------------------------------------------- virtual environment
VENV=$ROOT/.venv
if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1 || ! [ -x "$VENV/bin/pip" ]; then
  rm -rf "$VENV"
  if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
    # Debian and Ubuntu ship venv/ensurepip separately (python3-venv, python3.X-venv)
    rm -rf "$VENV"
    command -v apt-get >/dev/null || { echo "setup: '$PYTHON -m venv' failed and apt-get is not available" >&2; exit 1; }
    pyver=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
    say "installing python3-venv with apt"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "python$pyver-venv" >/dev/null 2>&1 \
      || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    "$PYTHON" -m venv "$VENV"
  fi
  say "created $VENV ($("$VENV/bin/python" -V))"
fi

# ---------------------------------------------------------------- the project itself
STAMP=$VENV/.dezoom-steps-setup
want=$( { cat pyproject.toml; "$VENV/bin/python" -V; echo "$EXTRAS"; } | sha256sum | cut -c1-16)
if [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ] && "$VENV/bin/python" -c 'import dezoom_steps, pytest' 2>/dev/null; then
  say "project already installed in .venv"
else
  # editable installs from pyproject.toml need pip >= 21.3
  if ! "$VENV/bin/python" -c 'import pip, sys; sys.exit(int(pip.__version__.split(".")[0]) < 22)' 2>/dev/null; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip
  fi
  say "installing dezoom-steps with the extras $EXTRAS into .venv (pip)"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$EXTRAS]"
  echo "$want" > "$STAMP"
fi
# Bytecode for the package and the step scripts, as a non-editable install would have: every
# step is a new process, and compiling the sources costs each one ~0.1 s (also when
# PYTHONDONTWRITEBYTECODE keeps Python from caching it itself). Stale files are recompiled.
"$VENV/bin/python" -m compileall -q "$ROOT/dezoom_steps" "$ROOT/scripts" >/dev/null

# ---------------------------------------------------------------- real-server test rig
if [ "$WITH_TEST_PACKAGES" = 1 ]; then
  bash "$ROOT/tests/rig/install_packages.sh"
  bash "$ROOT/tests/slurm/install.sh"
fi
say "done; run the tests with: .venv/bin/python -m pytest"
