"""Equivariant product of edge features with the edge's spherical harmonics.

For an edge ``e`` with harmonics ``Y_e`` (K,) and features ``x_e`` (K, F, C)::

    out[e, c] = R_e[l_c] * sum_{a, b} w[l_a, l_b, l_c] G[a, b, c] x_e[a] Y_e[b]

``G`` is the real Gaunt tensor (:func:`dpgraph.ops.spherical.gaunt_tensor`),
``w`` one learnable weight per coupling path ``(l_a, l_b) -> l_c`` (init 1),
and ``R_e`` (E, lmax + 1, F, C) optional per-edge, per-output-degree,
per-channel radial weights. This is the relative positional encoding of
e3x-style attention: a key or value of the source node "seen from" the edge.
Computed as one ``(E, K) @ (K, K*K)`` matmul (``T_e = sum_b Y_e[b] G[:, b, :]``)
and one batched ``(K, K) x (K, F*C)`` product per edge — no loop over ``l``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ops.spherical import degree_index, gaunt_tensor, n_sph


class GauntProduct(nn.Module):
    """(E, K, F, C) features, (E, K) harmonics [, (E, lmax+1, F, C) radial] -> (E, K, F, C)."""

    def __init__(self, lmax: int, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.lmax = lmax
        self.k = n_sph(lmax)
        deg = degree_index(lmax)
        self.register_buffer("gaunt", gaunt_tensor(lmax, dtype), persistent=False)
        self.register_buffer("deg", deg, persistent=False)
        self.register_buffer("deg_a", deg.view(-1, 1, 1), persistent=False)
        self.register_buffer("deg_b", deg.view(1, -1, 1), persistent=False)
        self.register_buffer("deg_c", deg.view(1, 1, -1), persistent=False)
        self.path_weight = nn.Parameter(torch.ones(lmax + 1, lmax + 1, lmax + 1, dtype=dtype))

    def forward(self, x: torch.Tensor, ysh: torch.Tensor, radial: torch.Tensor | None = None) -> torch.Tensor:
        k = self.k
        e, _, f, c = x.shape
        g = self.gaunt * self.path_weight[self.deg_a, self.deg_b, self.deg_c]  # (K, K, K)
        t = (ysh @ g.transpose(0, 1).reshape(k, k * k)).view(-1, k, k)  # (E, K_in, K_out)
        out = torch.bmm(t.transpose(1, 2), x.reshape(e, k, f * c)).view(e, k, f, c)
        if radial is not None:
            out = out * radial.index_select(1, self.deg)
        return out
