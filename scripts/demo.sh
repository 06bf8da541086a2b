#!/usr/bin/env bash
# The main job: install, compile the built-in Cu-Au model, run LAMMPS MD with pair_style dpgraph.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python_env.sh
bash scripts/install.sh
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
"$PY" -m dpgraph.app.cli demo "$@"
