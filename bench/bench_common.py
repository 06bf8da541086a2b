"""Helpers shared by the bench scripts: water boxes, worker subprocesses, memory readings.

The benches run every measurement in a fresh worker process (``python
bench/X.py --worker ...``) so that peak memory is per measurement.
"""

from __future__ import annotations

import json
import os
import subprocess

BASE_ATOMS = 192  # one 64-molecule water box, replicated k x k x k


def water(n_atoms: int):
    """A water box of ``n_atoms`` (numpy): the 192-atom box replicated k^3 times when possible."""
    import numpy as np

    from dpgraph.samples import water_box

    k = round((n_atoms / BASE_ATOMS) ** (1 / 3))
    if BASE_ATOMS * k**3 == n_atoms:
        c, a, cell = (t.numpy() for t in water_box(BASE_ATOMS // 3, seed=0))
        shifts = np.array([[i, j, l] for i in range(k) for j in range(k) for l in range(k)], dtype=np.float64) @ cell
        coords = (c[None] + shifts[:, None]).reshape(-1, 3)
        return coords, np.tile(a, k**3), cell * k
    if n_atoms % 3:
        raise SystemExit(f"{n_atoms} atoms: give 192 k^3 atoms (replicated box) or a multiple of 3 (water molecules)")
    c, a, cell = (t.numpy() for t in water_box(n_atoms // 3, seed=0))
    return c, a, cell


def rss_kb(field: str) -> int:
    """A field of /proc/self/status in kB (VmRSS, VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def mem_available_gb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    return 8.0


def child_env(threads: int) -> dict:
    return dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE", PYTHONUNBUFFERED="1")


def run_json(cmd: list[str], threads: int, timeout: float) -> dict:
    """Run a worker; its last stdout line is a JSON dict. Failures come back as {"error": why}."""
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, env=child_env(threads), timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or [""])[-1]
        if res.returncode < 0:
            why = f"killed by signal {-res.returncode}" + (" (out of memory?)" if res.returncode == -9 else "")
        else:
            why = f"exit {res.returncode}"
        return {"error": f"{why}: {last[-160:]}"}
    return json.loads(res.stdout.strip().splitlines()[-1])


def compile_in_child(cmd: list[str], what: str) -> str:
    """Compile in a subprocess (compiling must not count in any worker's peak memory); returns its last line."""
    res = subprocess.run(cmd, capture_output=True, text=True, env=child_env(os.cpu_count() or 1))
    if res.returncode != 0:
        raise RuntimeError(f"compiling {what} failed:\n{res.stderr[-2000:]}")
    return res.stdout.strip().splitlines()[-1]


_NO_OPS_DIR = None


def disable_deepmd_ops() -> None:
    """Point deepmd-kit at an empty op library folder before importing its backends: its compiled
    ops are built for another torch, and its pure-PyTorch paths are the reference. The folder is
    removed when the process exits."""
    global _NO_OPS_DIR
    import pathlib
    import tempfile

    import deepmd.env

    if _NO_OPS_DIR is None:
        _NO_OPS_DIR = tempfile.TemporaryDirectory(prefix="deepmd-no-ops-")
    deepmd.env.SHARED_LIB_DIR = pathlib.Path(_NO_OPS_DIR.name)


def gemm_rate(dtype: str, m: int = 2000, k: int = 2000, n: int = 2000) -> float:
    """GFLOP/s of one (m x k) @ (k x n) matrix product on one thread (best of 3, CPU time)."""
    import time

    import torch

    torch.set_num_threads(1)
    a = torch.randn(m, k, dtype=getattr(torch, dtype))
    b = torch.randn(k, n, dtype=a.dtype)
    a @ b
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        a @ b
        best = min(best, time.process_time() - t)
    return 2 * m * k * n / best / 1e9
