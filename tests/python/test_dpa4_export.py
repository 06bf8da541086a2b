"""A deepmd-kit DPA4 model compiled to .pt2 (5-tensor ABI): the package in Python and the C++
runtime behind ``dpgraph.DeepPot`` give deepmd-kit's numbers (fp64, 1e-10), and the package
metadata carries the receptive field (n_blocks + 1) * rcut that sizes LAMMPS ghost shells.

One compiled fixture (``dpa4_oracle.compiled_tree``), through the compile cache.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import deepmd_oracle  # noqa: E402
import dpa4_oracle as d4  # noqa: E402
from test_dpa4_parity import GEOMS, KEYS, rel  # noqa: E402

from dpgraph.export import load_package  # noqa: E402
from dpgraph.export.cache import cached_export  # noqa: E402
from dpgraph.graph import build_graph  # noqa: E402
from dpgraph.interop.dpa4 import from_serialized  # noqa: E402


@pytest.fixture(scope="module")
def compiled():
    tree = d4.compiled_tree()
    model = from_serialized(tree)
    return tree, model, cached_export(model)


def test_metadata_receptive_field(compiled):
    _, model, path = compiled
    pkg = load_package(path)
    assert pkg.rcut == 3.5
    assert pkg.receptive_field == model.receptive_field == (1 + 1) * 3.5


@pytest.mark.parametrize("name", ["triclinic", "thin", "cluster"])
def test_pt2_and_deeppot_match_deepmd(compiled, name):
    import dpgraph

    tree, _, path = compiled
    coords, atype, cell = GEOMS[name]
    ref = deepmd_oracle.evaluate(tree, coords, atype, cell, route="graph")
    pkg = load_package(path)
    g = build_graph(torch.as_tensor(coords), torch.as_tensor(atype),
                    cell=None if cell is None else torch.as_tensor(cell), rcut=pkg.rcut)
    out = {k: v.double().numpy() for k, v in pkg.evaluate(g).items()}
    for k in KEYS:
        assert rel(out[k], ref[k]) < 1e-10, ("pt2", k)
    n = coords.shape[0]
    box = None if cell is None else np.asarray(cell, dtype=np.float64).reshape(1, 9)
    e, f, v, ae, av = dpgraph.DeepPot(str(path)).eval(coords.reshape(1, n * 3), box, atype, atomic=True)
    cpp = {"energy": np.reshape(e, 1), "atom_energy": np.reshape(ae, n), "force": np.reshape(f, (n, 3)),
           "virial": np.reshape(v, (1, 9)), "atom_virial": np.reshape(av, (n, 9))}
    for k in KEYS:
        assert rel(cpp[k], ref[k]) < 1e-10, ("DeepPot", k)


@pytest.mark.slow  # compiles a second package (cached)
def test_multi_focus_package_matches_deepmd():
    """Two SO(2) focus streams with one attention stream each (``n_focus`` 2, no ``atten_f_mix``): the
    per-focus attention path compiles to a package with deepmd-kit's forces (an AOTInductor gradient bug
    seen on the one-stream form of this path is what this guards against)."""
    import dpgraph

    tree = d4.random_dpa4(d4.small_config(n_blocks=1, rcut=3.5, n_focus=2, focus_dim=8), seed=7)
    path = cached_export(from_serialized(tree))
    coords, atype, cell = GEOMS["triclinic"]
    ref = deepmd_oracle.evaluate(tree, coords, atype, cell, route="graph")
    n = coords.shape[0]
    e, f, v, ae, av = dpgraph.DeepPot(str(path)).eval(coords.reshape(1, n * 3), np.reshape(cell, (1, 9)), atype,
                                                     atomic=True)
    assert rel(np.reshape(e, 1), ref["energy"]) < 1e-10
    assert rel(np.reshape(f, (n, 3)), ref["force"]) < 1e-10
    assert rel(np.reshape(v, (1, 9)), ref["virial"]) < 1e-10
