"""The main job: export the built-in example model, evaluate a water box, run LAMMPS MD.

Prints energy, forces and virial from the compiled package, their agreement
with the eager model, and the time per evaluation of both.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from .examples import example_config, water_box
from .export.cache import cached_export
from .export.package import load_package
from .graph import build_graph
from .models import build_model, compute_descriptor_stats


def _best_time(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run_lammps_md(path, n_molecules: int, steps: int) -> None:
    """Short NVE run of the package in LAMMPS (pair_style dpgraph)."""
    import tempfile

    from .lammps_md import run_md

    coords, atype, cell = water_box(n_molecules, seed=1)
    with tempfile.TemporaryDirectory(prefix="dpgraph-demo-") as d:
        res = run_md(path, coords.numpy(), atype.numpy(), cell.numpy(), ["O", "H"], Path(d), steps=steps)
    print(f"\nLAMMPS: pair_style dpgraph, {res.natoms} atoms, NVE {steps} steps of 0.5 fs")
    print("  ".join(f"{h:>14}" for h in res.thermo_header))
    for row in res.thermo:
        print("  ".join(f"{v:14.6f}" if i else f"{int(v):14d}" for i, v in enumerate(row)))
    print(f"performance: {res.atom_steps_per_s:,.0f} atom-steps/s, {res.ns_per_day:.4g} ns/day "
          f"({torch.get_num_threads()} threads)")


def run_demo(output: str | None = None, n_molecules: int = 64, md_steps: int = 20) -> int:
    model = build_model(example_config())
    coords, atype, cell = water_box(n_molecules)
    compute_descriptor_stats(model.descriptor, [build_graph(coords, atype, cell=cell, rcut=model.rcut)])
    print(f"dpgraph demo: DPA1 (se_atten) example model, type_map {model.type_map}, rcut {model.rcut} Å")
    t0 = time.perf_counter()
    path = cached_export(model)
    print(f"package: {path} ({time.perf_counter() - t0:.1f} s incl. compile on first use)")
    if output:
        shutil.copyfile(path, output)
        print(f"copied to {output}")
    pkg = load_package(path)
    coords, atype, cell = water_box(n_molecules, seed=1)
    graph = build_graph(coords, atype, cell=cell, rcut=pkg.rcut)
    out = pkg.evaluate(graph)
    ref = model.evaluate(graph)
    n = atype.numel()
    print(f"water box: {n} atoms, cell {float(cell[0, 0]):.3f} Å, {int(graph.edge_mask.sum())} edges")
    print(f"energy       {float(out['energy'][0]):.10f} eV  ({float(out['energy'][0]) / n:.6f} eV/atom)")
    print(f"max |force|  {float(out['force'].norm(dim=1).max()):.6f} eV/Å;  sum of forces {out['force'].sum(0).abs().max():.2e}")
    print("virial (eV)  " + " ".join(f"{v:.6f}" for v in out["virial"][0].tolist()))
    diff = max(float((out[k] - ref[k]).abs().max()) for k in out)
    print(f"package vs eager: max abs difference {diff:.2e}")
    t_pkg = _best_time(lambda: pkg.evaluate(graph))
    t_eager = _best_time(lambda: model.evaluate(graph))
    print(f"time per eval: package {t_pkg * 1e3:.1f} ms, eager {t_eager * 1e3:.1f} ms "
          f"({t_eager / t_pkg:.2f}x), {torch.get_num_threads()} threads")
    if md_steps > 0:
        run_lammps_md(path, n_molecules, md_steps)
    return 0 if diff < 1e-8 else 1
