"""The main job (``dpgraph demo``): built-in model → .pt2 → LAMMPS MD.

1. Loads the built-in Cu–Au model (``dpgraph.builtin``) and prints its card.
2. Compiles it to a ``.pt2`` once (cached, keyed by model, sources, torch
   version and CPU ISA) and checks package vs eager on an alloy box, and the
   model against its reference (ASE EMT) on the same box.
3. Runs NVE MD in LAMMPS with ``pair_style dpgraph``, prints thermo,
   atom-steps/s and ns/day, and writes a temperature/energy plot.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from ..atomic_io import atomic_copy
from ..builtin import builtin_card, load_builtin
from ..export.cache import cached_export
from ..export.package import load_package
from ..graph import build_graph


def _check_box(model, pkg, atoms) -> float:
    """Package vs eager vs EMT on one box; returns the max package/eager difference."""
    types = torch.tensor([model.type_map.index(s) for s in atoms.get_chemical_symbols()])
    coords = torch.tensor(atoms.positions, dtype=model.dtype)
    cell = torch.tensor(atoms.cell.array, dtype=model.dtype)
    graph = build_graph(coords, types, cell=cell, rcut=pkg.rcut)
    out = pkg.evaluate(graph)
    ref = model.evaluate(graph)
    n = len(atoms)
    diff = max(float((out[k] - ref[k]).abs().max()) for k in out)
    print(f"alloy box: {atoms.get_chemical_formula()}, {n} atoms, cell {atoms.cell.lengths()[0]:.3f} Å, "
          f"{int(graph.edge_mask.sum())} edges")
    print(f"energy       {float(out['energy'][0]):.8f} eV ({float(out['energy'][0]) / n:.6f} eV/atom)")
    print(f"package vs eager: max abs difference {diff:.2e}")
    try:
        from ..builtin.emt_data import emt_comparison

        cmp = emt_comparison(model, atoms)
    except ImportError:
        return diff
    print(f"model vs EMT reference: energy {cmp['de'] * 1e3:+.2f} meV/atom, force RMSE {cmp['force_rmse']:.3f} eV/Å "
          f"(atoms at rest), pressure {cmp['p_model']:.2f} vs {cmp['p_emt']:.2f} GPa")
    return diff


def plot_thermo(res, timestep_fs: float, path: str | Path) -> bool:
    """Temperature and energies vs time (ps) from an MDResult; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    col = {h: i for i, h in enumerate(res.thermo_header)}
    t = res.thermo[:, col["Step"]] * timestep_fs * 1e-3
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    ax1.plot(t, res.thermo[:, col["Temp"]], color="C3")
    ax1.set_ylabel("temperature (K)")
    for key, label in (("PotEng", "potential"), ("TotEng", "total")):
        e = res.thermo[:, col[key]]
        ax2.plot(t, (e - e[0]) / res.natoms * 1e3, label=label)
    ax2.set_ylabel("energy − initial (meV/atom)")
    ax2.set_xlabel("time (ps)")
    ax2.legend()
    fig.suptitle(f"dpgraph demo: NVE, {res.natoms} atoms")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def run_demo(output: str | None = None, repeat: int = 4, md_steps: int = 200, temperature: float = 300.0,
             timestep_fs: float = 2.0, plot: str | None = "demo.png") -> int:
    model = load_builtin()
    card = builtin_card()
    err = card["test_errors"]
    print(f"dpgraph demo: built-in model '{card['name']}': {card['description']}")
    print(f"  type_map {model.type_map}, rcut {model.rcut} Å; test RMSE vs EMT: energy {err['rmse_e'] * 1e3:.2f} "
          f"meV/atom, force {err['rmse_f']:.3f} eV/Å")
    t0 = time.perf_counter()
    path = cached_export(model, log=lambda line: print(f"  {line}", flush=True))
    print(f"package: {path} ({time.perf_counter() - t0:.1f} s incl. compile on first use)")
    if output:
        atomic_copy(path, output, "package copy")
        print(f"copied to {output}")
    pkg = load_package(path)
    from ..builtin.emt_data import demo_box

    atoms = demo_box(repeat)
    diff = _check_box(model, pkg, atoms)
    if md_steps > 0:
        from .lammps_md import run_md

        types = [model.type_map.index(s) for s in atoms.get_chemical_symbols()]
        with tempfile.TemporaryDirectory(prefix="dpgraph-demo-") as d:
            res = run_md(path, atoms.positions, types, atoms.cell.array, model.type_map, Path(d), steps=md_steps,
                         temperature=temperature, timestep_fs=timestep_fs, thermo_every=max(1, md_steps // 20))
        print(f"\nLAMMPS: pair_style dpgraph, {res.natoms} atoms, NVE {md_steps} steps of {timestep_fs:g} fs "
              f"from {temperature:g} K")
        print("  ".join(f"{h:>14}" for h in res.thermo_header))
        for row in res.thermo:
            print("  ".join(f"{v:14.6f}" if i else f"{int(v):14d}" for i, v in enumerate(row)))
        print(f"performance: {res.atom_steps_per_s:,.0f} atom-steps/s, {res.ns_per_day:.4g} ns/day "
              f"({torch.get_num_threads()} threads)")
        if plot:
            if plot_thermo(res, timestep_fs, plot):
                print(f"wrote {plot} (temperature and energy vs time)")
            else:
                print("plot skipped: matplotlib is not installed (pip install matplotlib)")
    return 0 if diff < 1e-8 else 1
