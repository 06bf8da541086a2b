"""``dpgraph bench``: time one model on growing systems, against eager PyTorch in the same run.

The compiled package (``.pt2``, C++ runtime: graph assembly + AOTInductor
model, what LAMMPS runs) is timed against the eager PyTorch model on the same
structure. Reported per size: median wall time of one energy + forces +
virial evaluation, atom-steps/s (atoms / time), the ratio eager/package, and
the process peak RSS so far (sizes run smallest first).
"""

from __future__ import annotations

import resource
import statistics
import time

import numpy as np

from .evaluator import Structure, open_model


def _median_time(fn, repeat: int) -> float:
    fn()  # warm-up (first-call allocation, lazy init)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux


def replicate(s: Structure, n_min: int) -> Structure:
    """Repeat a periodic structure along its shortest-count axes until it has >= n_min atoms."""
    if s.cell is None:
        raise ValueError(f"{s.name}: benchmarking larger sizes needs a periodic structure to replicate")
    reps = [1, 1, 1]
    n = len(s.symbols)
    while n * reps[0] * reps[1] * reps[2] < n_min:
        k = int(np.argmin([reps[i] * np.linalg.norm(s.cell[i]) for i in range(3)]))
        reps[k] += 1
    shifts = np.array([[i, j, k] for i in range(reps[0]) for j in range(reps[1]) for k in range(reps[2])]) @ s.cell
    coords = (s.coords[None] + shifts[:, None]).reshape(-1, 3)
    return Structure(f"{s.name}x{reps[0]}x{reps[1]}x{reps[2]}", s.symbols * len(shifts), coords,
                     s.cell * np.array(reps)[:, None], s.pbc)


def builtin_structure(n_min: int) -> Structure:
    """A Cu50Au50 fcc box with >= n_min atoms (the built-in model's domain), thermally rattled.

    The rattle (0.1 Å, about 300 K) matters: on a perfect lattice every atom
    has the same degree, whereas in MD the degrees spread and the attention is
    padded to the largest one (measured: 1.3-1.4x the cost of the perfect
    lattice at 256 atoms).
    """
    from ..builtin.emt_data import random_alloy

    k = 1
    while 4 * k**3 < n_min:
        k += 1
    at = random_alloy(np.random.default_rng(0), repeat=k, x_au=0.5, strain=0.0)
    at.rattle(0.1, seed=1)
    return Structure(f"CuAu fcc {k}x{k}x{k}", at.get_chemical_symbols(), at.positions.copy(),
                     at.cell.array.copy(), (True, True, True))


def run_bench(model_spec: str, structure: Structure | None, sizes: list[int], repeat: int = 3,
              reference: bool = True, out=print) -> list[dict]:
    """Benchmark ``model_spec`` (package path, checkpoint or 'builtin'); returns one row per size."""
    from ..export.cache import cached_export

    if model_spec.endswith(".pt2"):
        pkg = open_model(model_spec)
        eager = None
        if reference:
            out("note: a .pt2 has no eager twin here; pass the checkpoint (.pt) or 'builtin' for the reference")
    else:
        eager = open_model(model_spec)
        pkg = open_model(str(cached_export(eager._model, log=out)))
    out(f"model {model_spec}: type_map {pkg.type_map}, rcut {pkg.rcut} Å; package run by the C++ runtime")
    out(f"{'atoms':>8} {'package s':>10} {'atom-steps/s':>13} {'eager s':>9} {'eager/pkg':>9} {'peak RSS GB':>11}")
    rows = []
    for n in sorted(sizes):
        s = builtin_structure(n) if structure is None else replicate(structure, n)
        natoms = len(s.symbols)
        t_pkg = _median_time(lambda: pkg.eval(s), repeat)
        row = {"atoms": natoms, "package_s": t_pkg, "atom_steps_per_s": natoms / t_pkg}
        t_eager = _median_time(lambda: eager.eval(s), repeat) if reference and eager is not None else float("nan")
        row.update(eager_s=t_eager, ratio=t_eager / t_pkg, peak_rss_gb=peak_rss_gb())
        out(f"{natoms:8d} {t_pkg:10.4f} {row['atom_steps_per_s']:13,.0f} {t_eager:9.4f} {row['ratio']:9.2f} "
            f"{row['peak_rss_gb']:11.2f}")
        rows.append(row)
    return rows
