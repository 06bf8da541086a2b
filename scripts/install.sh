#!/usr/bin/env bash
# Install dpgraph and its build/test requirements into the current Python.
# torch is pinned and installed FIRST, and dpgraph is built without build
# isolation: an isolated build would pull a multi-GB CUDA torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pip install --quiet "torch==2.13.0" numpy
"$PY" -m pip install --quiet "scikit-build-core>=0.10" "pybind11>=2.12" "cmake>=3.18" ninja "pytest>=7" hypothesis
"$PY" -m pip install --quiet --no-build-isolation .
"$PY" -c "import dpgraph, dpgraph._core; print('dpgraph', dpgraph.__version__, 'installed against torch', dpgraph._core.TORCH_VERSION)"
