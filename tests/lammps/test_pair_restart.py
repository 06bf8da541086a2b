"""LAMMPS restart with pair_style dpgraph: ``write_restart`` after 20 steps, then
``read_restart`` and 20 more give the thermo of 40 uninterrupted steps (1 and 2
ranks). The pair style stores nothing in the restart file (the model is a file
of its own), so LAMMPS asks for it again after ``read_restart``; forgetting it
is LAMMPS' clear error, not a run with another potential."""

from __future__ import annotations

import pytest

from lmp_util import error_message, rel, run_lammps, water_system, write_data

PAIR = """pair_style dpgraph {model}
pair_coeff * * O H
"""
THERMO = """thermo_style custom step pe ke etotal press pxx pyy pzz pxy pxz pyz
thermo_modify format float %.15g
thermo 10
"""


def fresh(model: str, steps: int, tail: str = "") -> str:
    return f"""units metal
atom_style atomic
boundary p p p
read_data data.lmp
{PAIR.format(model=model)}neighbor 1.0 bin
timestep 0.0005
velocity all create 300 4928 loop geom
fix 1 all nve
{THERMO}run {steps}
{tail}"""


def resumed(model: str | None, steps: int) -> str:
    pair = PAIR.format(model=model) if model else ""
    return f"""units metal
read_restart state.restart
{pair}neighbor 1.0 bin
fix 1 all nve
{THERMO}run {steps}
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("restart-data")
    coords, atype, cell = water_system(32, seed=5)
    write_data(d / "data.lmp", coords, atype + 1, cell, [15.999, 1.008])
    return (d / "data.lmp").read_text()


@pytest.mark.parametrize("nprocs", [1, 2])
def test_restart_continues_the_trajectory(tmp_path, model_file, data, nprocs):
    for d in ("whole", "split"):
        (tmp_path / d).mkdir()
        (tmp_path / d / "data.lmp").write_text(data)
    ref = run_lammps(tmp_path / "whole", fresh(model_file, 40), nprocs=nprocs).thermo()
    run_lammps(tmp_path / "split", fresh(model_file, 20, "write_restart state.restart\n"), nprocs=nprocs)
    got = run_lammps(tmp_path / "split", resumed(model_file, 20), nprocs=nprocs).thermo()
    assert ref[-1, 0] == got[-1, 0] == 40
    steps = {int(s): row for s, row in zip(ref[:, 0], ref)}
    for row in got:
        assert rel(row[1:], steps[int(row[0])][1:]) < 1e-8, f"step {int(row[0])} differs after restart"


def test_restart_without_pair_style_is_refused(tmp_path, model_file, data):
    (tmp_path / "data.lmp").write_text(data)
    run_lammps(tmp_path, fresh(model_file, 10, "write_restart state.restart\n"))
    run = run_lammps(tmp_path, resumed(None, 10), check=False)
    assert run.returncode != 0
    msg = error_message(run)
    assert "pair" in msg.lower() and "dpgraph" in msg, msg
