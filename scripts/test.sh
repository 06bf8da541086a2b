#!/usr/bin/env bash
# Install everything and run the whole test suite (what CI runs):
# GoogleTest (C++ runtime, via ctest) and pytest (Python, C++ bindings, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python_env.sh
bash scripts/install.sh
# tools installed next to this Python (cmake, ninja, lmp, mpirun) come first
export PATH="$(dirname "$("$PY" -c 'import sys; print(sys.executable)')"):$PATH"

# GoogleTest from Debian (the C++ tests link it)
if ! dpkg -s libgtest-dev >/dev/null 2>&1; then
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo "sudo")
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libgtest-dev >/dev/null
fi
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
# compiled test packages: cached in build/ (reused by later runs), not in ~/.cache/dpgraph
export DPGRAPH_CACHE=${DPGRAPH_CACHE:-$PWD/build/test-cache}

# C++: built as a downstream project of the installed package (find_package(dpgraph))
cmake -S tests/cpp -B build/cpp-tests -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$("$PY" -c 'import dpgraph; print(dpgraph.cmake_prefix_path)')" >/dev/null
cmake --build build/cpp-tests -j2
ctest --test-dir build/cpp-tests --output-on-failure

# Python, then LAMMPS (pytest driving lmp/mpirun): from the repo root, against the installed
# package. Two sessions: each suite has its own conftest module. Test files are spread over
# DPGRAPH_TEST_WORKERS processes (pytest-xdist; default: one per core, at most 2), a file's tests
# staying in one process so that its compiled fixtures are built once.
WORKERS=${DPGRAPH_TEST_WORKERS:-$("$PY" -c 'import os; print(min(2, os.cpu_count() or 1))')}
"$PY" -m pytest tests/python -q -n "$WORKERS" --dist loadfile --durations=15 "$@"
"$PY" -m pytest tests/lammps -q -n "$WORKERS" --dist loadfile --durations=10 "$@"
