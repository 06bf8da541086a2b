#!/usr/bin/env bash
# Install everything and run the whole test suite (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# run from the repo root against the installed package (not the source tree)
"${PYTHON:-python3}" -m pytest tests/python -q "$@"
