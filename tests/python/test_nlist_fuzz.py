"""Fuzz of the C++ neighbor-list path (``DeepPot.eval_nlist``, what ``pair_style dpgraph`` calls)
against brute force.

Each case is a random LAMMPS-like full list: a random (often triclinic, sometimes
thin or nearly empty) periodic box, ghosts within ``rcut + skin`` of the faces,
skin pairs beyond ``rcut``, special-bond flags in the top bits of some neighbor
indices, shuffled centers and neighbors, and centers with no neighbor at all.
The reference is the eager model on the brute-force graph of
``graph_reference.brute_force_edges`` (no bins, no wrapping): energies, folded
forces and virials must agree to 1e-10, with ghosts folded onto owners (one
process) and as extra nodes (several ranks).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graph_reference import brute_force_edges
from test_deep_pot import _compiled, fold, lammps_list, rel

pytestmark = pytest.mark.slow
SPECIAL_BITS = (1 << 30, 2 << 30)  # LAMMPS' special-bond flags (SBBITS = 30)
N_CASES = 24


@pytest.fixture(scope="module")
def fp64():
    return _compiled("float64")


def random_case(rng: np.random.Generator, rcut: float):
    """coords (n, 3), atype (n,), cell (3, 3) of one random periodic box."""
    n = int(rng.integers(1, 36))
    kind = rng.choice(["cubic", "triclinic", "thin", "sparse"])
    if kind == "sparse":  # few atoms in a big box: isolated centers with empty neighbor lists
        n = int(rng.integers(1, 5))
        cell = np.diag(rng.uniform(3.0 * rcut, 4.0 * rcut, 3))
    else:
        lengths = rng.uniform(0.45 * rcut if kind == "thin" else 1.1 * rcut, 2.2 * rcut, 3)
        cell = np.diag(lengths)
        if kind != "cubic":
            cell[1, 0], cell[2, 0], cell[2, 1] = rng.uniform(-0.4, 0.4, 3) * lengths[[0, 0, 1]]
    frac = rng.random((n, 3))
    coords = frac @ cell
    # keep atoms apart (a pair closer than 0.7 Å is physically absurd, not a list bug)
    keep = [0]
    for i in range(1, n):
        d = coords[i] - coords[keep]
        f = d @ np.linalg.inv(cell)
        f -= np.round(f)
        if np.linalg.norm(f @ cell, axis=1).min() > 0.7:
            keep.append(i)
    coords = coords[keep]
    atype = rng.integers(0, 2, len(coords))
    return coords, atype, cell


def reference(model, coords, atype, cell):
    g = brute_force_edges(torch.as_tensor(coords), torch.as_tensor(atype), torch.as_tensor(cell), pbc=True,
                          rcut=model.rcut)
    out = model.evaluate(g)
    return {k: v.detach().numpy() for k, v in out.items()}


@pytest.mark.parametrize("seed", range(N_CASES))
def test_eval_nlist_equals_brute_force(fp64, seed):
    rng = np.random.default_rng(1000 + seed)
    rcut = fp64.dp.get_rcut()
    coords, atype, cell = random_case(rng, rcut)
    skin = float(rng.uniform(0.0, 2.0))
    nl = lammps_list(coords, atype, cell, rcut + skin, rng)
    neighbors = nl["neighbors"].astype(np.int64).copy()
    flagged = rng.random(len(neighbors)) < 0.2
    neighbors[flagged] |= rng.choice(SPECIAL_BITS, flagged.sum())
    ref = reference(fp64.model, coords, atype, cell)
    n = nl["nlocal"]
    for ghosts_as_nodes in (False, True):
        kw = dict(ghosts_as_nodes=ghosts_as_nodes, ago=0)
        if not ghosts_as_nodes:
            kw["mapping"] = nl["mapping"]
        e, f, v, ae, av = fp64.dp.eval_nlist(nl["x"], nl["atype"], n, nl["ilist"], nl["offsets"],
                                             neighbors.astype(np.int32), **kw)
        if ghosts_as_nodes:
            f, ae, av = fold(f, nl["mapping"], n), ae[:n], fold(av, nl["mapping"], n)
        where = f"case {seed}: {len(coords)} atoms, skin {skin:.2f}, ghosts_as_nodes {ghosts_as_nodes}"
        assert rel(e, ref["energy"]) < 1e-10, where
        assert rel(f, ref["force"]) < 1e-10, where
        assert rel(v.reshape(-1), ref["virial"].reshape(-1)) < 1e-10, where
        assert rel(ae, ref["atom_energy"]) < 1e-10, where
        assert rel(av.reshape(n, 9), ref["atom_virial"].reshape(n, 9)) < 1e-10, where


def test_fuzz_covers_the_hard_cases(fp64):
    """The random cases include empty centers, skin pairs and flagged neighbors (guards the fuzz itself)."""
    rcut = fp64.dp.get_rcut()
    empty = skin_pairs = 0
    for seed in range(N_CASES):
        rng = np.random.default_rng(1000 + seed)
        coords, atype, cell = random_case(rng, rcut)
        skin = float(rng.uniform(0.0, 2.0))
        nl = lammps_list(coords, atype, cell, rcut + skin, rng)
        empty += int((np.diff(nl["offsets"]) == 0).sum())
        centers = np.repeat(nl["ilist"], np.diff(nl["offsets"]))
        d = np.linalg.norm(nl["x"][nl["neighbors"]] - nl["x"][centers], axis=1) if len(centers) else np.zeros(0)
        skin_pairs += int((d >= rcut).sum())
    assert empty > 0 and skin_pairs > 100
