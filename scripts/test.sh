#!/usr/bin/env bash
# Install everything and run the whole test suite (what CI runs):
# GoogleTest (C++ runtime, via ctest) and pytest (Python, C++ bindings, ...).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
bash scripts/install.sh
# tools installed next to this Python (cmake, ninja, lmp, mpirun) come first
export PATH="$(dirname "$("$PY" -c 'import sys; print(sys.executable)')"):$PATH"

# GoogleTest from Debian (the C++ tests link it)
if ! dpkg -s libgtest-dev >/dev/null 2>&1; then
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo "sudo")
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libgtest-dev >/dev/null
fi
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

# C++: built as a downstream project of the installed package (find_package(dpgraph))
cmake -S tests/cpp -B build/cpp-tests -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$("$PY" -c 'import dpgraph; print(dpgraph.cmake_prefix_path)')" >/dev/null
cmake --build build/cpp-tests -j2
ctest --test-dir build/cpp-tests --output-on-failure

# Python, then LAMMPS (pytest driving lmp/mpirun): from the repo root, against the installed
# package. Two sessions: each suite has its own conftest module.
"$PY" -m pytest tests/python -q "$@"
"$PY" -m pytest tests/lammps -q "$@"
