#!/usr/bin/env bash
# The main job: install, export the built-in example model, evaluate a water box.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
"${PYTHON:-python3}" -m dpgraph.cli demo "$@"
