#!/usr/bin/env bash
# Memory checks of the C++ runtime (run after scripts/install.sh; not part of the CI test command):
#
#   bash scripts/check_memory.sh [asan|valgrind|all]      (default: all)
#
# asan     : libdpgraph and the GoogleTest suite built with AddressSanitizer + LeakSanitizer
#            (-DDPGRAPH_SANITIZE=address, RelWithDebInfo) into build/asan, then the whole ctest suite.
#            libtorch itself is not instrumented. Any leak or memory error fails the run (no
#            suppressions are needed today).
# valgrind : the normal (Release) test binary under valgrind memcheck, on fixtures compiled for
#            AVX2 (--portable: valgrind does not emulate AVX-512), every test but the sezm ones
#            (their package is not portable); "definitely lost" or any error fails the run; the
#            suppressions (scripts/valgrind.supp) cover libtorch-internal reports only.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python_env.sh
mode=${1:-all}
prefix_path=$("$PY" -c 'import dpgraph; print(dpgraph.cmake_prefix_path)')
export OMP_NUM_THREADS=1 DPGRAPH_CACHE=${DPGRAPH_CACHE:-$PWD/build/test-cache}
export PATH="$(dirname "$("$PY" -c 'import sys; print(sys.executable)')"):$PATH"  # cmake, ninja of this Python
# GoogleTest and valgrind from Debian
need=""
dpkg -s libgtest-dev >/dev/null 2>&1 || need="$need libgtest-dev"
command -v valgrind >/dev/null || need="$need valgrind"
if [ -n "$need" ]; then
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo "sudo")
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $need >/dev/null
fi

run_asan() {
  # DPGRAPH_SANITIZE instruments libdpgraph; its PUBLIC flags reach the tests through dpgraph::dpgraph
  echo "== AddressSanitizer: building libdpgraph and the C++ tests into build/asan"
  cmake -S . -B build/asan/lib -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDPGRAPH_BUILD_LAMMPS=OFF \
    -DPython_EXECUTABLE="$PY" -DDPGRAPH_SANITIZE=address -DCMAKE_CXX_FLAGS="" \
    -DCMAKE_INSTALL_PREFIX="$PWD/build/asan/prefix" >/dev/null
  cmake --build build/asan/lib -j"${JOBS:-2}"
  cmake --install build/asan/lib >/dev/null
  cmake -S tests/cpp -B build/asan/tests -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS="" \
    -DPython_EXECUTABLE="$PY" -DCMAKE_PREFIX_PATH="$PWD/build/asan/prefix;$prefix_path" >/dev/null
  cmake --build build/asan/tests -j"${JOBS:-2}"
  ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:halt_on_error=1:detect_odr_violation=0" \
    ctest --test-dir build/asan/tests --output-on-failure
}

run_valgrind() {
  echo "== valgrind memcheck: Release C++ tests on AVX2 fixtures (build/valgrind)"
  cmake -S tests/cpp -B build/valgrind -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE="$PY" \
    -DCMAKE_PREFIX_PATH="$prefix_path" >/dev/null
  cmake --build build/valgrind -j"${JOBS:-2}"
  "$PY" tests/cpp/make_fixtures.py build/valgrind/fixtures --portable
  DPGRAPH_FIXTURES=$PWD/build/valgrind/fixtures valgrind --error-exitcode=99 --leak-check=full \
    --errors-for-leak-kinds=definite --show-leak-kinds=definite --suppressions=scripts/valgrind.supp \
    --num-callers=30 build/valgrind/dpgraph_tests \
    --gtest_filter="${DPGRAPH_VALGRIND_FILTER:--Equivariant*}"
}

case "$mode" in
  asan) run_asan ;;
  valgrind) run_valgrind ;;
  all) run_asan; run_valgrind ;;
  *) echo "usage: bash scripts/check_memory.sh [asan|valgrind|all]" >&2; exit 2 ;;
esac
echo "memory checks ($mode): no errors, no leaks"
