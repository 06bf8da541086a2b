"""MD with pair_style dpgraph: rank-count independence, an MPI rank with no
atoms, NVE energy conservation, pe/atom and pressure consistency, fix npt,
model deviation output."""

from __future__ import annotations

import numpy as np
import pytest

from lmp_util import NKTV2P, rel, run_lammps, water_system, write_data
from dpgraph import DeepPot

HEADER = """
units metal
atom_style atomic
boundary p p p
read_data data.lmp
pair_style dpgraph {model} {extra}
pair_coeff * * O H
neighbor 1.0 bin
timestep {dt}
"""


@pytest.fixture(scope="module")
def water(tmp_path_factory):
    """64-molecule water box as a LAMMPS data file (O = 1, H = 2)."""
    d = tmp_path_factory.mktemp("water")
    coords, atype, cell = water_system(64, seed=3)
    write_data(d / "data.lmp", coords, atype + 1, cell, [15.999, 1.008])
    return d / "data.lmp", coords, atype, cell


def md_script(model, steps, dt=0.0005, extra="", thermo_every=10, fix="nve", pre=""):
    return HEADER.format(model=model, extra=extra, dt=dt) + pre + f"""
velocity all create 300 4928 loop geom
fix 1 all {fix}
thermo_style custom step pe ke etotal press pxx pyy pzz pxy pxz pyz vol
thermo_modify format float %.15g
thermo {thermo_every}
run {steps}
"""


def in_dir(tmp_path, data):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "data.lmp").write_text(data.read_text())
    return tmp_path


def test_1_2_3_ranks_give_the_same_trajectory(tmp_path, model_file):
    """100 steps of 96-atom water (32 molecules: the CI budget) on 1, 2 and 3 ranks."""
    coords, atype, cell = water_system(32, seed=4)
    write_data(tmp_path / "data.lmp", coords, atype + 1, cell, [15.999, 1.008])
    runs = {}
    for n in (1, 2, 3):
        run = run_lammps(in_dir(tmp_path / f"np{n}", tmp_path / "data.lmp"), md_script(model_file, 100), nprocs=n)
        runs[n] = run.thermo()
    assert runs[1].shape[0] == 11
    for n in (2, 3):
        assert rel(runs[n][:, 1:], runs[1][:, 1:]) < 1e-8, f"{n} ranks differ from 1"


def test_rank_without_atoms(tmp_path, model_file):
    """A cluster in one third of the box: with `processors 3 1 1` one rank owns nothing."""
    coords, atype, _ = water_system(8, seed=2)
    coords = coords - coords.min(0) + 1.0
    cell = np.diag([30.0, 12.0, 12.0])
    write_data(tmp_path / "data.lmp", coords, atype + 1, cell, [15.999, 1.008])
    script = md_script(model_file, 20).replace("read_data", "processors 3 1 1\nread_data")
    runs = {}
    for n in (1, 3):
        d = tmp_path / f"np{n}"
        d.mkdir()
        (d / "data.lmp").write_text((tmp_path / "data.lmp").read_text())
        runs[n] = run_lammps(d, script if n == 3 else script.replace("processors 3 1 1\n", ""), nprocs=n)
    one, three = runs[1], runs[3]
    assert "Nlocal:" in three.output and " 0 min" in three.output.split("Nlocal:")[1].splitlines()[0]
    assert rel(three.thermo()[:, 1:], one.thermo()[:, 1:]) < 1e-8


@pytest.mark.slow  # 2,000 MD steps; runs in CI too
def test_nve_energy_conservation(tmp_path, model_file):
    """2,000 steps of 0.5 fs (1 ps) of 96-atom water (32 molecules: the CI budget).

    Bound: velocity Verlet conserves a shadow Hamiltonian, so with a smooth
    potential the total energy only fluctuates by O(dt^2) around a constant
    and does not drift. We require the linear drift over the run to stay below
    2e-4 eV/atom (0.02 eV in total), a tenth of the thermal energy per atom at
    300 K (kT = 0.026 eV) divided by ~13, and the fluctuation of the total
    energy to stay below 1% of the kinetic energy's.
    """
    coords, atype, cell = water_system(32, seed=5)
    write_data(tmp_path / "data.lmp", coords, atype + 1, cell, [15.999, 1.008])
    run = run_lammps(tmp_path, md_script(model_file, 2000, thermo_every=20), timeout=1200)
    th = run.thermo()
    step, ke, etot = th[:, 0], th[:, 2], th[:, 3]
    n = 96
    slope = np.polyfit(step * 0.0005, etot, 1)[0]  # eV / ps
    drift = abs(slope) * 1.0 / n
    assert drift < 2e-4, f"energy drift {drift:.3g} eV/atom/ps"
    assert np.std(etot) < 0.01 * np.std(ke), (np.std(etot), np.std(ke))


def test_pe_atom_and_pressure_consistency(tmp_path, model_file, water):
    data, coords, atype, cell = water
    script = HEADER.format(model=model_file, extra="", dt=0.0005) + """
compute pe all pe/atom
compute pesum all reduce sum c_pe
compute vir all pressure NULL virial
thermo_style custom step pe c_pesum press c_vir[1] c_vir[2] c_vir[3] c_vir[4] c_vir[5] c_vir[6] vol
thermo_modify format float %.17g
run 0
"""
    th = run_lammps(in_dir(tmp_path, data), script).thermo()[-1]
    assert rel(th[2], th[1]) < 1e-12  # sum of pe/atom == pe
    e, f, v = DeepPot(model_file).eval(coords[None], cell.reshape(1, 9), atype)
    virial = np.array(th[4:10]) * th[10] / NKTV2P["metal"]
    assert rel(virial, v[0, [0, 4, 8, 3, 6, 7]]) < 1e-10
    # no velocities: the pressure is the virial pressure, trace / 3V
    assert rel(th[3], np.trace(v[0].reshape(3, 3)) / (3 * th[10]) * NKTV2P["metal"]) < 1e-10


def test_fix_npt_runs(tmp_path, model_file, water):
    script = md_script(model_file, 50, fix="npt temp 300 300 0.05 iso 1.0 1.0 0.5")
    th = run_lammps(in_dir(tmp_path, water[0]), script).thermo()
    assert np.isfinite(th).all()
    assert th[-1, -1] != th[0, -1]  # the volume moved


def test_model_deviation(tmp_path, model_file, second_model_file, water):
    data, coords, atype, cell = water
    extra = f"{second_model_file} out_file md.out out_freq 5 atomic"
    script = HEADER.format(model=model_file, extra=extra, dt=0.0005) + "thermo 5\nrun 10\n"
    for n in (1, 2):
        run_lammps(in_dir(tmp_path / f"np{n}", data), script, nprocs=n)
    lines = (tmp_path / "np1" / "md.out").read_text().splitlines()
    assert lines[0].split()[:7] == ["#", "step", "max_devi_v", "min_devi_v", "avg_devi_v", "max_devi_f",
                                     "min_devi_f"]
    rows = np.array([[float(v) for v in l.split()] for l in lines[1:]])
    assert rows[:, 0].tolist() == [0, 5, 10]
    assert rows.shape[1] == 7 + 192
    # step 0 from the two models directly
    f = [DeepPot(m).eval(coords[None], cell.reshape(1, 9), atype) for m in (model_file, second_model_file)]
    forces = np.stack([x[1][0] for x in f])  # (2, n, 3)
    devi = np.sqrt(((forces - forces.mean(0)) ** 2).sum(-1).mean(0))
    assert rel(rows[0, 7:], devi) < 1e-8
    assert rel(rows[0, [4, 5, 6]], [devi.max(), devi.min(), devi.mean()]) < 1e-8
    vir = np.stack([x[2][0] for x in f])
    vdev = np.sqrt(((vir - vir.mean(0)) ** 2).mean(0)) / 192
    assert rel(rows[0, [1, 2, 3]], [vdev.max(), vdev.min(), vdev.mean()]) < 1e-8
    two = np.array([[float(v) for v in l.split()] for l in
                    (tmp_path / "np2" / "md.out").read_text().splitlines()[1:]])
    assert rel(two, rows) < 1e-8
