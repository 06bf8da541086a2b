"""DPA4 (deepmd-kit SeZM) in dpgraph vs deepmd-kit 3.2.0 itself (pt_expt graph route, fp64).

Randomized deepmd-kit models (``dpa4_oracle.random_dpa4``; a fresh DPA4 has
zero forces) on periodic water (the first frame of deepmd-kit's water example data, see WATER), a
triclinic box, an open cluster and a box thinner than 2 rcut: energy, atom
energy, force, virial and atom virial to 1e-10 relative (fp64), 1e-5 (fp32).
Options are covered pairwise on one geometry; physics checks (rotation
invariance, force = -finite difference) on the eager model.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import deepmd_oracle  # noqa: E402
import dpa4_oracle as d4  # noqa: E402

from dpgraph.graph import build_graph  # noqa: E402
from dpgraph.interop.dpa4 import from_serialized  # noqa: E402

KEYS = ("energy", "atom_energy", "force", "virial", "atom_virial")
REPO = Path(__file__).resolve().parents[2]
# deepmd-kit's water example data (examples/water/data): $DPGRAPH_WATER_DATA, else shared/data/water
# next to the repository checkout
WATER = Path(os.environ.get("DPGRAPH_WATER_DATA") or REPO.parent / "shared" / "data" / "water") / "data_0"


def rel(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def _random_points(n, cell, seed, min_dist=0.9, periodic=True):
    gen = np.random.default_rng(seed)
    inv = np.linalg.inv(cell)
    pts = []
    while len(pts) < n:
        p = gen.random(3) @ cell
        if pts:
            d = np.array(pts) - p
            if periodic:
                f = d @ inv
                d = (f - np.round(f)) @ cell
            if np.linalg.norm(d, axis=1).min() < min_dist:
                continue
        pts.append(p)
    return np.array(pts)


def water_frame():
    """192-atom liquid water (64 O, 128 H), cubic 12.44 Å box: frame 0 of the deepmd-kit example data."""
    coord = np.load(WATER / "set.000" / "coord.npy")[0].reshape(-1, 3).astype(np.float64)
    box = np.load(WATER / "set.000" / "box.npy")[0].reshape(3, 3).astype(np.float64)
    atype = np.loadtxt(WATER / "type.raw", dtype=np.int64).reshape(-1)
    return coord, atype, box


def geometries():
    tri = np.array([[6.5, 0.0, 0.0], [1.8, 6.0, 0.0], [-1.2, 1.0, 6.8]])
    thin = np.diag([7.0, 6.5, 2.6])  # thinner than rcut: an atom sees its own images
    gen = np.random.default_rng(7)
    return {
        "water192": water_frame(),
        "triclinic": (_random_points(20, tri, 1), gen.integers(0, 2, 20), tri),
        "cluster": (_random_points(14, np.eye(3) * 5.0, 2, periodic=False), gen.integers(0, 2, 14), None),
        "thin": (_random_points(10, thin, 3), gen.integers(0, 2, 10), thin),
    }


GEOMS = geometries()


def run_eager(model, coords, atype, cell):
    g = build_graph(torch.as_tensor(coords), torch.as_tensor(atype),
                    cell=None if cell is None else torch.as_tensor(cell), rcut=model.rcut)
    out = model.evaluate(g.to(dtype=model.dtype))
    return {k: v.detach().double().numpy() for k, v in out.items()}


@pytest.fixture(scope="module")
def fp64():
    tree = d4.random_dpa4(d4.small_config("float64"), seed=0)
    return tree, from_serialized(tree)


@pytest.mark.parametrize("name", list(GEOMS))
def test_fp64_matches_deepmd(fp64, name):
    tree, model = fp64
    coords, atype, cell = GEOMS[name]
    ref = deepmd_oracle.evaluate(tree, coords, atype, cell, route="graph")
    out = run_eager(model, coords, atype, cell)
    assert np.abs(ref["force"]).max() > 1e-2  # randomized: forces are not trivially zero
    for k in KEYS:
        assert rel(out[k], ref[k]) < 1e-10, k


def test_fp32_matches_deepmd():
    tree = d4.random_dpa4(d4.small_config("float32"), seed=1)
    model = from_serialized(tree)
    assert model.dtype == torch.float32
    coords, atype, cell = GEOMS["triclinic"]
    ref = deepmd_oracle.evaluate(tree, coords, atype, cell, route="graph")
    out = run_eager(model, coords, atype, cell)
    for k in KEYS:
        assert rel(out[k], ref[k]) < 2e-5, k


# pairwise coverage of the supported options (each row one randomized model)
OPTIONS = [
    {"n_atten_head": 0, "radial_so2_mode": "none", "s2_activation": [True, True], "sandwich_norm": [True] * 4},
    {"n_atten_head": 2, "radial_so2_mode": "degree", "s2_activation": [False, False], "glu_activation": False,
     "edge_norm": False, "layer_scale": True, "extra_node_l": 1},
    {"radial_so2_rank": 0, "use_env_seed": False, "s2_activation": [True, False], "ffn_blocks": 2,
     "activation_function": "tanh", "mlp_bias": True},
    {"l_schedule": [3, 2], "m_schedule": [2, 1], "mixing_layers": 2, "basis_type": "gaussian",
     "readout_layers": 2, "sandwich_norm": [True, False, False, True], "so2_norm": True},
    {"lmax": 4, "mmax": 4, "n_blocks": 1, "radial_so2_rank": 2, "env_exp": [5, 3], "radial_mlp": [24, 12],
     "ffn_neurons": 40, "edge_norm": False, "mlp_bias": True},
    {"so3_readout": "glu", "kmax": 0, "l_schedule": [3, 2], "glu_activation": False},
    {"so3_readout": "mlp", "kmax": 2, "readout_layers": 2, "mlp_bias": True, "extra_node_l": 1},
    {"message_node_so3": True, "grid_mlp": [False, True, False], "kmax": 2, "mlp_bias": True, "n_atten_head": 0,
     "l_schedule": [3, 2], "m_schedule": [2, 1]},
    {"message_node_s2": True, "mmax": 1, "s2_activation": [True, True], "extra_node_l": 1},
    {"atten_f_mix": True, "atten_v_proj": True, "atten_o_proj": True, "n_atten_head": 4, "mlp_bias": True},
    {"ffn_so3_grid": True, "grid_mlp": [False, True, True], "kmax": 2, "extra_node_l": 1, "message_node_so3": True,
     "mlp_bias": True, "ffn_blocks": 2},
    {"n_focus": 3, "focus_dim": 8, "n_atten_head": 2, "mlp_bias": True, "layer_scale": True, "radial_so2_rank": 2},
    {"n_focus": 2, "atten_f_mix": True, "atten_v_proj": True, "atten_o_proj": True, "n_atten_head": 4,
     "edge_norm": False, "mmax": 1},
    {"n_focus": 2, "focus_dim": 8, "so2_norm": True, "s2_activation": [True, True], "atten_v_proj": True,
     "atten_o_proj": True, "mlp_bias": True, "message_node_so3": True, "grid_mlp": [False, True, False]},
    {"grid_branch": [0, 2, 2], "ffn_so3_grid": True, "message_node_so3": True, "kmax": 2, "mlp_bias": True},
    {"grid_branch": [0, 2, 0], "grid_mlp": [False, False, True], "message_node_s2": True, "n_focus": 2,
     "focus_dim": 8},
    {"node_wise_so3": True, "mmax": 1, "grid_mlp": [True, False, False], "n_focus": 2, "focus_dim": 8,
     "mlp_bias": True, "kmax": 2},
    {"node_wise_s2": True, "mmax": 1, "grid_branch": [2, 0, 0], "l_schedule": [3, 2], "m_schedule": [2, 1]},
]


@pytest.mark.parametrize("opts", OPTIONS, ids=[f"opts{i}" for i in range(len(OPTIONS))])
def test_options_match_deepmd(opts):
    tree = d4.random_dpa4(d4.small_config("float64", **opts), seed=2)
    model = from_serialized(tree)
    coords, atype, cell = GEOMS["triclinic"]
    ref = deepmd_oracle.evaluate(tree, coords, atype, cell, route="graph")
    out = run_eager(model, coords, atype, cell)
    for k in KEYS:
        assert rel(out[k], ref[k]) < 1e-10, (k, opts)


def test_lmax6_wigner_blocks_match_deepmd():
    """The highest supported degree (Wigner-D from degree-1 products) on the cluster."""
    tree = d4.random_dpa4(d4.small_config("float64", lmax=6, mmax=2, n_blocks=1, channels=8), seed=3)
    model = from_serialized(tree)
    coords, atype, cell = GEOMS["cluster"]
    ref = deepmd_oracle.evaluate(tree, coords, atype, cell, route="graph")
    out = run_eager(model, coords, atype, cell)
    for k in KEYS:
        assert rel(out[k], ref[k]) < 1e-10, k


def test_receptive_field_is_n_blocks_plus_one_rcut(fp64):
    _, model = fp64
    assert model.receptive_field == (2 + 1) * 4.0


def test_rotation_invariance(fp64):
    _, model = fp64
    coords, atype, cell = GEOMS["triclinic"]
    q, _ = np.linalg.qr(np.random.default_rng(4).standard_normal((3, 3)))
    q *= np.sign(np.linalg.det(q))
    a = run_eager(model, coords, atype, cell)
    b = run_eager(model, coords @ q.T, atype, cell @ q.T)
    assert rel(b["energy"], a["energy"]) < 1e-12
    assert rel(b["atom_energy"], a["atom_energy"]) < 1e-11
    assert rel(b["force"], a["force"] @ q.T) < 1e-11


def test_force_is_minus_energy_gradient(fp64):
    _, model = fp64
    coords, atype, _ = GEOMS["cluster"]
    f = run_eager(model, coords, atype, None)["force"]
    h = 1e-5
    for atom, axis in ((0, 0), (5, 2), (9, 1)):
        e = []
        for s in (h, -h):
            c = coords.copy()
            c[atom, axis] += s
            e.append(run_eager(model, c, atype, None)["energy"][0])
        fd = -(e[0] - e[1]) / (2 * h)
        assert abs(fd - f[atom, axis]) < 1e-6 * max(1.0, abs(f[atom, axis]))
