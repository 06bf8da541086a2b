"""Shared fixtures: small model configs, graphs, and cached compiled packages."""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import torch

from dpgraph.graph import build_graph
from dpgraph.models import build_model, compute_descriptor_stats

# Compiled packages go to the repository's build/test-cache (kept between runs, ignored by git),
# never to the user's ~/.cache/dpgraph; DPGRAPH_CACHE overrides.
os.environ.setdefault("DPGRAPH_CACHE", str(Path(__file__).resolve().parents[2] / "build" / "test-cache"))

SMALL = {
    "type_map": ["O", "H"],
    "descriptor": {
        "type": "se_atten",
        "rcut": 4.0,
        "rcut_smth": 0.5,
        "sel": 40,
        "neuron": [6, 12],
        "axis_neuron": 4,
        "tebd_dim": 5,
        "attn": 8,
        "attn_layer": 2,
        "seed": 1,
    },
    "fitting_net": {"neuron": [12, 12], "seed": 2},
}


def small_config(**descriptor) -> dict:
    cfg = copy.deepcopy(SMALL)
    cfg["descriptor"].update(descriptor)
    return cfg


def random_system(n: int, box: float, seed: int = 0, ntypes: int = 2, min_dist: float = 0.8):
    """Random periodic system with a minimum pair distance: coords (n, 3), atype, cell."""
    gen = torch.Generator().manual_seed(seed)
    pts = []
    while len(pts) < n:
        p = torch.rand(3, generator=gen, dtype=torch.float64) * box
        ok = True
        for q in pts:
            d = p - q
            d = d - box * torch.round(d / box)
            if float(d.norm()) < min_dist:
                ok = False
                break
        if ok:
            pts.append(p)
    coords = torch.stack(pts)
    atype = torch.arange(n) % ntypes
    return coords, atype, torch.eye(3, dtype=torch.float64) * box


def make_model(cfg: dict, coords=None, atype=None, cell=None, scale_out: float = 1.0):
    """Build a model; set descriptor statistics from one system if given."""
    model = build_model(cfg)
    if coords is not None:
        compute_descriptor_stats(model.descriptor, [build_graph(coords, atype, cell=cell, rcut=model.rcut)])
    if scale_out != 1.0:
        with torch.no_grad():
            model.fitting.net[-1].w.mul_(scale_out)
    return model


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """Test tensors are tiny: intra-op threads only add overhead (10x on a loaded 2-core box)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def small_system():
    return random_system(30, 7.0, seed=3)


def deep_pot_fp64():
    """dpgraph.DeepPot of the session's small fp64 package (the one test_deep_pot.py and
    test_export.py compile; cached, so only the first use compiles)."""
    from dpgraph.deep_pot import DeepPot
    from dpgraph.export.cache import cached_export

    coords, atype, cell = random_system(30, 7.0, seed=5)
    cfg = small_config(precision="float64")
    cfg["fitting_net"]["precision"] = "float64"
    return DeepPot(cached_export(make_model(cfg, coords, atype, cell, scale_out=20.0)))
