"""pair_style dpgraph with a message-passing model (the SO(3)-equivariant
``sezm``: 2 blocks of rcut 3.5 Å, receptive field 7 Å, fp64).

One rank folds ghosts onto their owners (the folded graph is the periodic
graph). Several ranks keep ghosts as graph nodes out to the receptive field
(ghost cutoff 2 rcut + skin, wider than a sub-domain here: LAMMPS exchanges
ghosts over several hops), ghosts within receptive_field - rcut (+ skin) of
the sub-domain are centres with their own edges, and forces and per-atom
virials of ghosts are reverse-communicated. Checked against dpgraph.DeepPot
(the C++ runtime on the periodic graph): `run 0` on 1, 2 and 3 ranks of a
triclinic box, and 1, 2, 3 ranks give the same 100-step NVE thermo.

One compiled model for the file (conftest: equivariant_model_file).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from lmp_util import EQUIVARIANT_CONFIG, NKTV2P, rel, run_lammps, water_system, write_data
import dpgraph
from dpgraph import DeepPot

RCUT = EQUIVARIANT_CONFIG["descriptor"]["rcut"]
RECEPTIVE = EQUIVARIANT_CONFIG["descriptor"]["n_blocks"] * RCUT
SKIN = 0.5

RUN0 = f"""
units metal
atom_style atomic
boundary p p p
read_data data.lmp
pair_style dpgraph {{model}}
pair_coeff * * O H
neighbor {SKIN} bin
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

# model (row-major [a][b]) -> LAMMPS order: xx yy zz xy xz yz (yx zx zy)
V6 = [0, 4, 8, 3, 6, 7]
V9 = [0, 4, 8, 3, 6, 7, 1, 2, 5]


@pytest.fixture(scope="module")
def triclinic():
    """40 O/H atoms (at least 1 Å apart) in a triclinic cell about 8 Å wide."""
    gen = np.random.default_rng(11)
    cell = np.array([[8.0, 0.0, 0.0], [1.5, 7.5, 0.0], [-1.0, 0.8, 7.8]])
    pts = []
    while len(pts) < 40:
        p = gen.random(3) @ cell
        d = np.array([p - q for q in pts]).reshape(-1, 3) @ np.linalg.inv(cell)
        d = (d - np.round(d)) @ cell
        if not len(pts) or np.linalg.norm(d, axis=1).min() > 1.0:
            pts.append(p)
    return np.array(pts), gen.integers(0, 2, size=40), cell


def processor_grid(run) -> list[int]:
    m = re.search(r"(\d+) by (\d+) by (\d+) MPI processor grid", run.output)
    return [int(v) for v in m.groups()]


def check_message_passing_layout(run, nprocs, widths):
    """Several ranks: ghost cutoff = receptive field + skin, wider than a sub-domain; ghosts are centres."""
    assert f"ghost atom cutoff = {RECEPTIVE + SKIN:g}" in run.output
    assert "pair build: full/bin/ghost" in run.output
    m = re.search(r"message passing \(receptive field (\S+) A\): (\d+) ghost nodes, (\d+) of them centres",
                  run.output)
    assert m and float(m.group(1)) == RECEPTIVE
    assert 0 < int(m.group(3)) < int(m.group(2))  # far ghosts are nodes but not centres
    grid = processor_grid(run)
    assert np.prod(grid) == nprocs
    assert min(w / g for w, g in zip(widths, grid)) < RECEPTIVE + SKIN  # multi-hop ghost exchange


def test_metadata_records_the_receptive_field(equivariant_model_file):
    dp = DeepPot(equivariant_model_file)
    assert dp.get_rcut() == RCUT
    assert float(dp.metadata["receptive_field"]) == RECEPTIVE == 2 * RCUT
    assert dp.get_type_map() == ["O", "H"]


@pytest.mark.parametrize("nprocs", [1, 2, 3])
def test_triclinic_run0_matches_deeppot(tmp_path, equivariant_model_file, triclinic, nprocs):
    """Energy, forces, global virial, pe/atom, stress/atom and centroid/stress/atom == DeepPot."""
    coords, atype, cell = triclinic
    write_data(tmp_path / "data.lmp", coords, atype + 1, cell, [15.999, 1.008])
    run = run_lammps(tmp_path, RUN0.format(model=equivariant_model_file), nprocs=nprocs)
    # the plugin of the dpgraph under test (two installs: the lmp of another Python loads its own)
    plugin_dir = Path(dpgraph.__file__).parent / "lammps"
    assert f"Loaded 1 plugins from {plugin_dir}" in run.output, (
        f"lmp did not load pair_style dpgraph from {plugin_dir}: use the lmp of this Python")
    e, f, v, ae, av = DeepPot(equivariant_model_file).eval(coords[None], cell.reshape(1, 9), atype, atomic=True)
    th, atoms = run.thermo()[-1], run.dump("atoms.dump")
    assert rel(th[1], e[0, 0]) < 1e-10
    assert rel(atoms[:, 2:5], f[0]) < 1e-10
    assert rel(atoms[:, 5], ae[0, :, 0]) < 1e-10
    nktv2p = NKTV2P["metal"]
    assert rel(np.array(th[2:8]) * th[8] / nktv2p, v[0, V6]) < 1e-10
    assert rel(-atoms[:, 6:12] / nktv2p, av[0][:, V6]) < 1e-10
    assert rel(-atoms[:, 12:21] / nktv2p, av[0][:, V9]) < 1e-10
    if nprocs == 1:
        assert "message passing" not in run.output and "full/bin/ghost" not in run.output  # folded
    else:
        widths = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
        check_message_passing_layout(run, nprocs, widths)


def test_1_2_3_ranks_give_the_same_trajectory(tmp_path, equivariant_model_file):
    """100 NVE steps of 48-atom water (16 molecules, a 7.8 Å box: the CI budget) on 1, 2 and 3
    ranks: the same thermo to 1e-8, and step 0 == DeepPot."""
    coords, atype, cell = water_system(16, seed=4)  # the system nve_on_ranks runs
    runs = nve_on_ranks(tmp_path, equivariant_model_file, steps=100)
    for n in (2, 3):
        check_message_passing_layout(runs[n], n, np.diag(cell))
    th = {n: r.thermo() for n, r in runs.items()}
    assert th[1].shape[0] == 11 and np.isfinite(th[1]).all()
    assert abs(th[1][-1, 2] - th[1][0, 2]) > 1e-3 * th[1][0, 2]  # the atoms moved
    for n in (2, 3):
        assert rel(th[n][:, 1:], th[1][:, 1:]) < 1e-8, f"{n} ranks differ from 1"
    e = DeepPot(equivariant_model_file).eval(coords[None], cell.reshape(1, 9), atype)[0]
    for n in (1, 2, 3):
        assert rel(th[n][0, 1], e[0, 0]) < 1e-10


def nve_on_ranks(tmp_path: Path, model_file, steps: int, ranks=(1, 2, 3)) -> dict:
    """The same 16-molecule NVE water run on each rank count: {ranks: LAMMPS run}."""
    coords, atype, cell = water_system(16, seed=4)
    script = f"""
units metal
atom_style atomic
boundary p p p
read_data data.lmp
pair_style dpgraph {model_file}
pair_coeff * * O H
neighbor {SKIN} bin
timestep 0.0005
velocity all create 300 4928 loop geom
fix 1 all nve
thermo_style custom step pe ke etotal press pxx pyy pzz pxy pxz pyz
thermo_modify format float %.15g
thermo 10
run {steps}
"""
    runs = {}
    for n in ranks:
        d = tmp_path / f"np{n}"
        d.mkdir()
        write_data(d / "data.lmp", coords, atype + 1, cell, [15.999, 1.008])
        runs[n] = run_lammps(d, script, nprocs=n)
    return runs
