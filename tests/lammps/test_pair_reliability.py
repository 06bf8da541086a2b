"""Reliability of pair_style dpgraph: large atom IDs, the deviation file survives a
failed input, no temporary directories left by a LAMMPS error, absurd neighbor skins refused,
`clear` then a second pair_style dpgraph. Real lmp / mpirun, no mocks."""

from __future__ import annotations

import resource

import numpy as np
import pytest

from dpgraph import DeepPot
from lmp_util import error_message, rel, run_lammps, water_system, write_data

INPUT = """
units metal
atom_style atomic
boundary p p p
read_data data.lmp
pair_style dpgraph {style}
pair_coeff * * {names}
neighbor 1.0 bin
thermo_style custom step pe press
thermo_modify format float %.15g
run {steps}
"""


@pytest.fixture(scope="module")
def data_text(tmp_path_factory):
    d = tmp_path_factory.mktemp("reliab")
    coords, atype, cell = water_system(8, seed=1)  # 24 atoms
    write_data(d / "data.lmp", coords, atype + 1, cell, [15.999, 1.008])
    return (d / "data.lmp").read_text()


def _run(tmp_path, data_text, style, names="O H", steps=0, **kw):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "data.lmp").write_text(data_text)
    return run_lammps(tmp_path, INPUT.format(style=style, names=names, steps=steps), **kw)


def _with_atom_id(data_text: str, old: int, new: int) -> str:
    lines = data_text.splitlines()
    start = lines.index("Atoms # atomic") + 2
    for i in range(start, len(lines)):
        parts = lines[i].split()
        if parts and parts[0] == str(old):
            lines[i] = " ".join([str(new)] + parts[1:])
    return "\n".join(lines) + "\n"


def _limit_data_segment():
    """A 3 GB data limit for lmp: a table indexed by atom ID (2e9 IDs = 8 GB) cannot be allocated."""
    resource.setrlimit(resource.RLIMIT_DATA, (3 << 30, 3 << 30))


def _deep_pot_energy(model_file) -> float:
    coords, atype, cell = water_system(8, seed=1)
    return float(DeepPot(model_file).eval(coords[None], cell.reshape(1, 9), atype)[0][0, 0])


def test_large_atom_id(tmp_path, data_text, model_file):
    """rebuild_selection allocated max_tag + 1 ints at every rebuild: ID 2e9 cost 8 GB."""
    big = _with_atom_id(data_text, 24, 2_000_000_000)
    run = _run(tmp_path, big, model_file, preexec_fn=_limit_data_segment, check=False)
    assert run.returncode == 0, run.output[-2000:]
    assert rel(run.thermo()[0, 1], _deep_pot_energy(model_file)) < 1e-12


def test_deviation_file_survives_a_failed_input(tmp_path, data_text, model_file, second_model_file):
    """model_devi.out was truncated when pair_style was read, before the input failed."""
    style = f"{model_file} {second_model_file} out_file md.out out_freq 1"
    previous = "# the previous run's deviations\n0 1 2 3 4 5 6\n"
    (tmp_path / "md.out").write_text(previous)
    run = _run(tmp_path, data_text, style, names="O Xe", check=False)  # refused at pair_coeff
    assert run.returncode != 0 and "pair_coeff" in error_message(run)
    assert (tmp_path / "md.out").read_text() == previous
    (tmp_path / "newton").mkdir()
    (tmp_path / "newton" / "md.out").write_text(previous)
    (tmp_path / "newton" / "data.lmp").write_text(data_text)
    run = run_lammps(tmp_path / "newton", "newton off\n" + INPUT.format(style=style, names="O H", steps=0),
                     check=False)  # refused at init_style
    assert run.returncode != 0 and "newton pair on" in error_message(run)
    assert (tmp_path / "newton" / "md.out").read_text() == previous
    _run(tmp_path, data_text, style, steps=2)  # a good run replaces it
    lines = (tmp_path / "md.out").read_text().splitlines()
    assert lines[0].split()[:2] == ["#", "step"] and [int(l.split()[0]) for l in lines[1:]] == [0, 1, 2]


def test_deviation_file_unwritable_refused_at_pair_style(tmp_path, data_text, model_file):
    run = _run(tmp_path, data_text, f"{model_file} out_file nodir/md.out", check=False)
    assert run.returncode != 0
    assert "cannot write the model deviation file nodir/md.out" in error_message(run)


@pytest.mark.parametrize("nprocs", [1, 2])
def test_no_temporary_directories_left_after_an_error(tmp_path, data_text, model_file, second_model_file, nprocs):
    """Every LAMMPS error exit left a 2.6 MB aotinductor_* directory per model per rank."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    run = _run(tmp_path, data_text, f"{model_file} {second_model_file}", names="O Xe", nprocs=nprocs,
               env={"TMPDIR": str(tmp)}, check=False)
    assert run.returncode != 0 and "'Xe'" in error_message(run)
    assert sorted(p.name for p in tmp.iterdir()) == []
    if nprocs == 1:
        # a good run cleans up too, and sweeps the scratch directory of a killed process
        stale = tmp / "dpgraph-lmp-999999999-abcdef"  # no such process
        (stale / "aotinductor_x").mkdir(parents=True)
        keep = tmp / "dpgraph-lmp-notapid-abcdef"
        keep.mkdir()
        _run(tmp_path, data_text, str(model_file), env={"TMPDIR": str(tmp)})
        assert sorted(p.name for p in tmp.iterdir()) == [keep.name]


SKIN_INPUT = """
units {units}
atom_style atomic
boundary p p p
read_data data.lmp
pair_style dpgraph {model}
pair_coeff * * O H
{neighbor}
run 0
"""


@pytest.mark.parametrize("units, scale, hint", [("si", 1e-10, "neighbor 2e-10 bin"),
                                                ("micro", 1e-4, "neighbor 0.0002 bin")])
def test_absurd_default_skin_refused(tmp_path, model_file, units, scale, hint):
    """With units si/cgs/micro LAMMPS' default skin is 1e7 or 1e3 Angstrom: it blew up with no message.
    (With the suggested skin, test_pair_parity.py::test_unit_styles runs these units.)"""
    coords, atype, cell = water_system(8, seed=1)
    write_data(tmp_path / "data.lmp", coords, atype + 1, cell, [15.999, 1.008], scale=scale)
    run = run_lammps(tmp_path, SKIN_INPUT.format(units=units, model=model_file, neighbor=""), check=False, timeout=120)
    assert run.returncode != 0
    msg = error_message(run)
    assert "neighbor skin" in msg and f"'{hint}'" in msg and "times the model cutoff 4 Angstrom" in msg


def test_large_skin_warns(tmp_path, data_text, model_file):
    (tmp_path / "data.lmp").write_text(data_text)
    run = run_lammps(tmp_path, SKIN_INPUT.format(units="metal", model=model_file, neighbor="neighbor 6.0 bin"))
    assert "WARNING" in run.output and "larger than the model cutoff 4 Angstrom" in run.output


def test_clear_then_a_second_pair_style(tmp_path, data_text, model_file, second_model_file):
    """`clear` and a second pair_style dpgraph in one input give each model's own numbers."""
    one = INPUT.format(style=model_file, names="O H", steps=0)
    two = INPUT.format(style=second_model_file, names="O H", steps=0)
    (tmp_path / "data.lmp").write_text(data_text)
    run = run_lammps(tmp_path, one + "clear\n" + two + "clear\n" + one)
    pe = np.array([float(r.split()[1]) for r in run.output.splitlines() if r.strip().startswith("0 ")])
    e1, e2 = _deep_pot_energy(model_file), _deep_pot_energy(second_model_file)
    assert len(pe) == 3 and e1 != e2
    assert rel(pe, [e1, e2, e1]) < 1e-12
