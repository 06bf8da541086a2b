"""pair_style dpgraph with an imported deepmd-kit DPA4 model (1 block, rcut 3.5 Å, receptive field
(1 + 1) * 3.5 = 7 Å, fp64; the compiled fixture of tests/python/test_dpa4_export.py).

`run 0` on 1, 2 and 3 ranks of a triclinic box equals dpgraph.DeepPot (which equals deepmd-kit,
tests/python/test_dpa4_export.py), and 1, 2, 3 ranks give the same 100-step NVE thermo to 1e-8.
On several ranks the plugin sizes the ghost shell from the package's receptive field.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from lmp_util import NKTV2P, rel, run_lammps, water_system, write_data
from test_pair_equivariant import RUN0, SKIN, V6, V9, nve_on_ranks, triclinic  # noqa: F401  (fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
import dpa4_oracle as d4  # noqa: E402

from dpgraph import DeepPot  # noqa: E402
from dpgraph.export.cache import cached_export  # noqa: E402
from dpgraph.interop.dpa4 import from_serialized  # noqa: E402

RECEPTIVE = 7.0


@pytest.fixture(scope="module")
def dpa4_file(tmp_path_factory) -> Path:
    import shutil

    out = tmp_path_factory.mktemp("models") / "dpa4.pt2"
    shutil.copyfile(cached_export(from_serialized(d4.compiled_tree())), out)
    return out


def _ghost_layout_ok(run):
    assert f"ghost atom cutoff = {RECEPTIVE + SKIN:g}" in run.output
    assert f"message passing (receptive field {RECEPTIVE:g} A)" in run.output


def test_metadata(dpa4_file):
    dp = DeepPot(dpa4_file)
    assert dp.get_rcut() == 3.5
    assert float(dp.metadata["receptive_field"]) == RECEPTIVE


@pytest.mark.parametrize("nprocs", [1, 2, 3])
def test_run0_matches_deeppot(tmp_path, dpa4_file, triclinic, nprocs):  # noqa: F811
    coords, atype, cell = triclinic
    write_data(tmp_path / "data.lmp", coords, atype + 1, cell, [15.999, 1.008])
    run = run_lammps(tmp_path, RUN0.format(model=dpa4_file), nprocs=nprocs)
    e, f, v, ae, av = DeepPot(dpa4_file).eval(coords[None], cell.reshape(1, 9), atype, atomic=True)
    th, atoms = run.thermo()[-1], run.dump("atoms.dump")
    assert rel(th[1], e[0, 0]) < 1e-10
    assert rel(atoms[:, 2:5], f[0]) < 1e-10
    assert rel(atoms[:, 5], ae[0, :, 0]) < 1e-10
    nktv2p = NKTV2P["metal"]
    assert rel(np.array(th[2:8]) * th[8] / nktv2p, v[0, V6]) < 1e-10
    assert rel(-atoms[:, 6:12] / nktv2p, av[0][:, V6]) < 1e-10
    assert rel(-atoms[:, 12:21] / nktv2p, av[0][:, V9]) < 1e-10
    if nprocs > 1:
        _ghost_layout_ok(run)


@pytest.mark.slow  # 3 x 100 MD steps; runs in CI too
def test_1_2_3_ranks_same_trajectory(tmp_path, dpa4_file):
    coords, atype, cell = water_system(16, seed=4)  # the system nve_on_ranks runs
    th = {}
    for n, run in nve_on_ranks(tmp_path, dpa4_file, steps=100).items():
        if n > 1:
            _ghost_layout_ok(run)
        th[n] = run.thermo()
    assert th[1].shape[0] == 11 and np.isfinite(th[1]).all()
    for n in (2, 3):
        assert rel(th[n][:, 1:], th[1][:, 1:]) < 1e-8, f"{n} ranks differ from 1"
    e = DeepPot(dpa4_file).eval(coords[None], cell.reshape(1, 9), atype)[0]
    assert rel(th[1][0, 1], e[0, 0]) < 1e-10
