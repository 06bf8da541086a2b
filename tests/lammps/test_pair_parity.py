"""LAMMPS `run 0` with pair_style dpgraph == dpgraph.DeepPot on the same configuration (fp64).

Energy, forces, global virial, per-atom energy, per-atom virial in the
6-component (stress/atom) and 9-component centroid (centroid/stress/atom)
forms; every unit style but lj.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from lmp_util import NKTV2P, rel, run_lammps, water_system, write_data
from dpgraph import DeepPot

RUN0 = """
units {units}
atom_style atomic
boundary p p p
read_data data.lmp
pair_style dpgraph {model}
pair_coeff * * {names}
neighbor {skin} bin
compute pe all pe/atom
compute sa all stress/atom NULL virial
compute csa all centroid/stress/atom NULL virial
compute vir all pressure NULL virial
thermo_style custom step pe c_vir[1] c_vir[2] c_vir[3] c_vir[4] c_vir[5] c_vir[6] vol
thermo_modify format float %.17g
dump 1 all custom 1 atoms.dump id type fx fy fz c_pe c_sa[*] c_csa[*]
dump_modify 1 format float %.17g sort id
run 0
"""

# LAMMPS units per Å and per eV (CODATA 2018), the oracle for the unit test
UNITS = {
    "metal": (1.0, 1.0),
    "real": (1.0, 1.602176634e-19 * 6.02214076e23 / 4184.0),
    "si": (1e-10, 1.602176634e-19),
    "cgs": (1e-8, 1.602176634e-12),
    "electron": (1 / 0.529177210903, 1 / 27.211386245988),
    "micro": (1e-4, 1.602176634e-4),
    "nano": (1e-1, 160.2176634),
}

# model (row-major [a][b]) -> LAMMPS order: xx yy zz xy xz yz (yx zx zy)
V6 = [0, 4, 8, 3, 6, 7]
V9 = [0, 4, 8, 3, 6, 7, 1, 2, 5]


def run0(tmp_path, model_file, coords, lmp_types, names, cell, units="metal", nprocs=1):
    length, _ = UNITS[units]
    write_data(tmp_path / "data.lmp", coords, lmp_types, cell, [1.0] * len(names), scale=length)
    script = RUN0.format(units=units, model=model_file, names=" ".join(names), skin=0.5 * length)
    return run_lammps(tmp_path, script, nprocs=nprocs)


def expected(model_file, coords, lmp_types, names, cell):
    dp = DeepPot(model_file)
    tmap = dp.get_type_map()
    atype = np.array([tmap.index(names[t - 1]) for t in lmp_types])
    return dp.eval(coords[None], np.asarray(cell).reshape(1, 9), atype, atomic=True)


def check_run0(run, exp, units="metal"):
    length, energy = UNITS[units]
    e, f, v, ae, av = exp
    th = run.thermo()[-1]
    atoms = run.dump("atoms.dump")
    assert rel(th[1], e[0, 0] * energy) < 1e-10
    assert rel(atoms[:, 2:5], f[0] * energy / length) < 1e-10
    assert rel(atoms[:, 5], ae[0, :, 0] * energy) < 1e-10
    if units in NKTV2P:  # pressure-based quantities need LAMMPS' nktv2p
        nktv2p = NKTV2P[units]
        vol = th[8]
        virial = np.array(th[2:8]) * vol / nktv2p
        assert rel(virial, v[0, V6] * energy) < 1e-10
        # stress/atom is -(per-atom virial) in pressure * volume units
        assert rel(-atoms[:, 6:12] / nktv2p, av[0][:, V6] * energy) < 1e-10
        assert rel(-atoms[:, 12:21] / nktv2p, av[0][:, V9] * energy) < 1e-10


def test_water_run0_matches_deeppot(tmp_path, model_file):
    coords, atype, cell = water_system()
    names = ["O", "H"]
    run = run0(tmp_path, model_file, coords, atype + 1, names, cell)
    # auto-loaded through the lammps.plugins entry point (a failed plugin load only logs)
    assert "Loaded 1 plugins from" in run.output and "dpgraph/lammps" in run.output
    check_run0(run, expected(model_file, coords, atype + 1, names, cell))


@pytest.fixture(scope="module")
def triclinic():
    gen = np.random.default_rng(5)
    cell = np.array([[8.0, 0.0, 0.0], [1.5, 7.5, 0.0], [-1.0, 0.8, 7.8]])
    pts = []
    while len(pts) < 40:
        p = gen.random(3) @ cell
        d = np.array([p - q for q in pts]).reshape(-1, 3) @ np.linalg.inv(cell)
        d = (d - np.round(d)) @ cell
        if not len(pts) or np.linalg.norm(d, axis=1).min() > 1.0:
            pts.append(p)
    return np.array(pts), gen.integers(1, 4, size=40), cell


def test_triclinic_types_in_other_order(tmp_path, model_file, triclinic):
    coords, lmp_types, cell = triclinic
    names = ["H", "C", "O"]  # LAMMPS types 1, 2, 3 are the model's 1, 2, 0
    run = run0(tmp_path, model_file, coords, lmp_types, names, cell)
    check_run0(run, expected(model_file, coords, lmp_types, names, cell))


@pytest.mark.parametrize("nprocs", [2, 3])
def test_triclinic_run0_on_several_ranks(tmp_path, model_file, triclinic, nprocs):
    coords, lmp_types, cell = triclinic
    names = ["H", "C", "O"]
    run = run0(tmp_path, model_file, coords, lmp_types, names, cell, nprocs=nprocs)
    check_run0(run, expected(model_file, coords, lmp_types, names, cell))


@pytest.mark.parametrize("units", ["real", "si", "cgs", "electron", "micro", "nano"])
def test_unit_styles(tmp_path, model_file, triclinic, units):
    coords, lmp_types, cell = triclinic
    names = ["H", "C", "O"]
    run = run0(tmp_path, model_file, coords, lmp_types, names, cell, units=units)
    check_run0(run, expected(model_file, coords, lmp_types, names, cell), units=units)
    assert math.isfinite(run.thermo()[-1][1])


def test_hybrid_overlay_with_null_types(tmp_path, model_file, triclinic):
    """LAMMPS type 3 is NULL for dpgraph (handled by lj/cut only): dpgraph sees the other atoms only."""
    coords, lmp_types, cell = triclinic
    write_data(tmp_path / "data.lmp", coords, lmp_types, cell, [1.0, 1.0, 1.0])
    lj = "pair_coeff * * lj/cut 0.0 1.0\npair_coeff 3 3 lj/cut 0.01 2.0"
    common = """units metal
atom_style atomic
boundary p p p
read_data data.lmp
neighbor 0.5 bin
{pair}
thermo_style custom step pe
thermo_modify format float %.17g
dump 1 all custom 1 atoms.dump id fx fy fz
dump_modify 1 format float %.17g sort id
run 0
"""
    for sub in ("both", "lj"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "data.lmp").write_text((tmp_path / "data.lmp").read_text())
    both = run_lammps(tmp_path / "both", common.format(
        pair=f"pair_style hybrid/overlay dpgraph {model_file} lj/cut 5.0\npair_coeff * * dpgraph H C NULL\n{lj}"))
    only_lj = run_lammps(tmp_path / "lj", common.format(pair=f"pair_style lj/cut 5.0\n{lj.replace(' lj/cut', '')}"))
    keep = lmp_types != 3
    e, f = expected(model_file, coords[keep], lmp_types[keep], ["H", "C", "O"], cell)[:2]
    assert rel(both.thermo()[-1][1] - only_lj.thermo()[-1][1], e[0, 0]) < 1e-10
    f_dp = both.dump("atoms.dump")[:, 1:4] - only_lj.dump("atoms.dump")[:, 1:4]
    assert rel(f_dp[keep], f[0]) < 1e-9
    assert np.abs(f_dp[~keep]).max() < 1e-9 * np.abs(f).max()
