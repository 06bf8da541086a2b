"""Physically absurd geometry is refused before the graph is built, with the numbers and how to
override, in the Python builder, the C++ cell list and DeepPot."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dpgraph import _core
from dpgraph.graph import build_graph

from conftest import deep_pot_fp64


def _cu_in_nm():
    a = 0.3615  # the fcc Cu lattice constant in nm, typed where Å are expected
    frac = np.array([[0, 0, 0], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
    return frac * a, np.zeros(4, dtype=np.int64), np.eye(3) * a


def test_absurd_density_refused_quickly(monkeypatch):
    monkeypatch.delenv("DPGRAPH_MAX_DENSITY", raising=False)
    x, t, c = _cu_in_nm()
    for build in (lambda: build_graph(x, t, cell=c, rcut=6.0), lambda: _core.build_graph(x, t, c, [True], 6.0)):
        with pytest.raises(ValueError, match=r"absurd geometry in frame 0: 4 atoms in 0.04724 Å\^3 is 84.67 "
                                             r"atoms/Å\^3, about 7.661e\+04 neighbours per atom.*DPGRAPH_MAX_DENSITY=86"):
            build()
    one = (np.zeros((2, 3)) + [[0, 0, 0], [0.1, 0.1, 0.1]], np.zeros(2, dtype=np.int64), np.eye(3) * 0.2)
    with pytest.raises(ValueError, match="absurd geometry"):
        build_graph(*one[:2], cell=one[2], rcut=6.0)
    with pytest.raises(ValueError, match="absurd geometry"):
        _core.build_graph(one[0], one[1], one[2], [True], 6.0)


def test_absurd_density_override(monkeypatch):
    x = np.array([[0.0, 0.0, 0.0], [0.25, 0.25, 0.25]])
    t, c = np.zeros(2, dtype=np.int64), np.eye(3) * 0.5  # 16 atoms/Å^3
    with pytest.raises(ValueError, match="DPGRAPH_MAX_DENSITY=17"):
        build_graph(x, t, cell=c, rcut=1.0)
    monkeypatch.setenv("DPGRAPH_MAX_DENSITY", "17")
    g = build_graph(x, t, cell=c, rcut=0.95)
    g2 = _core.build_graph(x, t, c, [True], 0.95)
    assert int(g.edge_mask.sum()) == int(g2[4].sum()) > 0
    monkeypatch.setenv("DPGRAPH_MAX_DENSITY", "lots")
    with pytest.raises(ValueError, match="DPGRAPH_MAX_DENSITY='lots' is not a positive number"):
        build_graph(x, t, cell=c, rcut=1.0)
    with pytest.raises(ValueError, match="DPGRAPH_MAX_DENSITY='lots' is not a positive number"):
        _core.build_graph(x, t, c, [True], 1.0)


def test_dense_but_physical_geometry_accepted(monkeypatch):
    """Slabs with a 1 Å vacuum vector (ASE's completed cell), molecules, diamond: no false refusals."""
    monkeypatch.delenv("DPGRAPH_MAX_DENSITY", raising=False)
    a = 3.567  # diamond
    frac = np.array([[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0], [.25, .25, .25], [.25, .75, .75],
                     [.75, .25, .75], [.75, .75, .25]])
    x = np.concatenate([(frac + np.array(s)) * a for s in itertools.product(range(2), repeat=3)])
    t = np.zeros(len(x), dtype=np.int64)
    assert build_graph(x, t, cell=np.eye(3) * 2 * a, rcut=6.0).n_edges > 0
    slab = x[x[:, 2] < a]  # one cell thick, periodic in x and y, the third vector 1 Å long
    cell = np.diag([2 * a, 2 * a, 1.0])
    g = build_graph(slab, t[: len(slab)], cell=cell, pbc=[True, True, False], rcut=6.0)
    g2 = _core.build_graph(slab, t[: len(slab)], cell, [True, True, False], 6.0)
    assert int(g.edge_mask.sum()) == int(g2[4].sum()) > 0
    mol = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.74]])  # H2, open boundaries
    assert int(build_graph(mol, np.zeros(2, dtype=np.int64), rcut=6.0).edge_mask.sum()) == 2


@pytest.mark.slow
def test_deep_pot_refuses_absurd_geometry():
    dp = deep_pot_fp64()
    x, t, c = _cu_in_nm()
    with pytest.raises(ValueError, match="absurd geometry.*not nm or bohr"):
        dp.eval(x[None], c.reshape(1, 9), t)
