"""Edge geometry of the equivariant model: radial basis, envelope, directions.

For an edge with vector ``x = r_src - r_dst`` (Å), ``r = |x|``::

    env(r)   = deepmd-kit's C2 switch: 1 for r <= rcut_smth, 0 for r >= rcut
    b_n(r)   = sqrt(2 / rcut) sin(n pi r / rcut) / r,  n = 1..n_radial   (1/Å^1.5)
    Y(x / r) = real spherical harmonics (component normalization)

Masked (padding) edges get the stand-in vector (1, 1, 1) Å before the norm and
the division, so every value and gradient is finite; their envelope is 0.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .env import safe_edge_vec, smooth_switch
from ..ops.spherical import real_sph_harm


class BesselBasis(nn.Module):
    """(E,) distances (Å) -> (E, n_radial) sine (spherical Bessel j0) basis; not trainable."""

    def __init__(self, rcut: float, n_radial: int, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.rcut = float(rcut)
        self.n_radial = int(n_radial)
        freq = torch.arange(1, n_radial + 1, dtype=torch.float64) * math.pi / self.rcut
        self.register_buffer("freq", freq.to(dtype), persistent=False)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return math.sqrt(2.0 / self.rcut) * torch.sin(r[:, None] * self.freq) / r[:, None]


def edge_geometry(edge_vec: torch.Tensor, edge_mask: torch.Tensor, rcut: float, rcut_smth: float, lmax: int):
    """Per-edge distance, envelope and spherical harmonics.

    edge_vec : (E, 3) Å; edge_mask : (E,) bool.
    Returns r (E,) Å (1.73 on masked edges), env (E,) in [0, 1] (0 on masked
    edges and for r >= rcut), ysh (E, (lmax + 1)**2).
    """
    vec = safe_edge_vec(edge_vec, edge_mask)
    r = torch.linalg.vector_norm(vec, dim=-1)
    env = torch.where(edge_mask, smooth_switch(r, rcut_smth, rcut), torch.zeros_like(r))
    ysh = real_sph_harm(vec / r[:, None], lmax)
    return r, env, ysh
