"""Built-in example model config and a water box generator."""

from __future__ import annotations

import copy
import math

import torch

EXAMPLE_CONFIG = {
    "type_map": ["O", "H"],
    "descriptor": {
        "type": "se_atten",
        "rcut": 6.0,
        "rcut_smth": 0.5,
        "sel": 120,
        "neuron": [25, 50, 100],
        "axis_neuron": 16,
        "tebd_dim": 8,
        "attn": 128,
        "attn_layer": 2,
        "attn_dotr": True,
        "smooth_type_embedding": True,
        # davg = 0 keeps the energy continuous when a neighbor leaves rcut
        "set_davg_zero": True,
        "seed": 1,
    },
    "fitting_net": {"neuron": [240, 240, 240], "resnet_dt": True, "seed": 1},
}


EXAMPLE_EQUIVARIANT_CONFIG = {
    "type_map": ["O", "H"],
    "descriptor": {
        "type": "sezm",
        "rcut": 5.0,
        "rcut_smth": 0.5,
        "lmax": 2,
        "channels": 16,
        "n_focus": 2,
        "n_heads": 4,
        "n_blocks": 2,
        "n_radial": 8,
        "radial_neuron": 32,
        "seed": 1,
    },
    "fitting_net": {"neuron": [64, 64], "resnet_dt": True, "seed": 1},
}


def example_config(**descriptor_overrides) -> dict:
    """A copy of the built-in DPA1 water config (full size: sel 120, attn 128 x 2)."""
    cfg = copy.deepcopy(EXAMPLE_CONFIG)
    cfg["descriptor"].update(descriptor_overrides)
    return cfg


def example_equivariant_config(**descriptor_overrides) -> dict:
    """A copy of the built-in SO(3)-equivariant attention config (``sezm``, docs/equivariant.md):
    lmax 2, 2 focus streams x 16 channels, 4 heads, 2 blocks of rcut 5 Å (receptive field 10 Å)."""
    cfg = copy.deepcopy(EXAMPLE_EQUIVARIANT_CONFIG)
    cfg["descriptor"].update(descriptor_overrides)
    return cfg


def water_box(n_molecules: int = 64, seed: int = 0, density: float = 0.0334):
    """A liquid-density water box: molecules on a jittered grid, random orientations.

    Returns coords (3 n, 3) Å float64, atype (3 n,) int64 (0 = O, 1 = H) and a
    cubic cell (3, 3) Å. ``density`` is molecules per Å^3 (0.0334 = 1 g/cm^3).
    """
    gen = torch.Generator().manual_seed(seed)
    side = (n_molecules / density) ** (1.0 / 3.0)
    per_dim = math.ceil(n_molecules ** (1.0 / 3.0) - 1e-9)
    spacing = side / per_dim
    grid = torch.stack(
        torch.meshgrid(*[torch.arange(per_dim, dtype=torch.float64)] * 3, indexing="ij"), -1
    ).reshape(-1, 3)[:n_molecules]
    centers = (grid + 0.5) * spacing + (torch.rand(n_molecules, 3, generator=gen, dtype=torch.float64) - 0.5) * 0.3
    # O-H 0.9572 Å, H-O-H 104.52 degrees, random rotation per molecule
    half = math.radians(104.52) / 2
    local = torch.tensor(
        [[0.0, 0.0, 0.0], [0.9572 * math.sin(half), 0.0, 0.9572 * math.cos(half)],
         [-0.9572 * math.sin(half), 0.0, 0.9572 * math.cos(half)]], dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(n_molecules, 3, 3, generator=gen, dtype=torch.float64))
    coords = (centers[:, None, :] + local[None] @ q.transpose(1, 2)).reshape(-1, 3)
    atype = torch.tensor([0, 1, 1] * n_molecules, dtype=torch.int64)
    return coords, atype, torch.eye(3, dtype=torch.float64) * side
