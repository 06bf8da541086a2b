"""Gated equivariant feed-forward layer (self-interaction + gated nonlinearity).

``(N, K, F, C) -> (N, K, F, C)``::

    y      = SO3Linear_1(x)                          (N, K, F, C_h), bias on l = 0
    s      = y[:, 0]                                 scalars (N, F, C_h)
    g      = sigmoid(ChannelLinear(flatten(s)))      (N, F, lmax, C_h): one gate per
                                                     degree l >= 1 and channel, mixing
                                                     all focus streams
    y'_0   = silu(s);   y'_l = g_l * y_l  (l >= 1)  (gates are invariant: equivariant)
    out    = SO3Linear_2(y')                         (N, K, F, C)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.spherical import degree_index
from .so3 import ChannelLinear, SO3Linear


class GatedFeedForward(nn.Module):
    def __init__(self, lmax: int, channels: int, hidden: int, n_focus: int,
                 dtype: torch.dtype = torch.float64, generator: torch.Generator | None = None):
        super().__init__()
        self.lmax, self.hidden, self.n_focus = lmax, hidden, n_focus
        args = dict(dtype=dtype, generator=generator)
        self.lin1 = SO3Linear(lmax, channels, hidden, n_focus, mlp_bias=True, **args)
        self.gate = ChannelLinear(n_focus * hidden, n_focus * lmax * hidden, **args) if lmax > 0 else None
        self.lin2 = SO3Linear(lmax, hidden, channels, n_focus, mlp_bias=True, **args)
        # packed position k >= 1 -> its gate row (l - 1)
        self.register_buffer("gate_index", degree_index(lmax)[1:] - 1, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.lin1(x)
        s = y[:, 0]  # (N, F, C_h)
        out0 = F.silu(s)[:, None]
        if self.gate is None:
            return self.lin2(out0)
        g = torch.sigmoid(self.gate(s.reshape(-1, self.n_focus * self.hidden)))
        g = g.view(-1, self.n_focus, self.lmax, self.hidden).transpose(1, 2)  # (N, lmax, F, C_h)
        return self.lin2(torch.cat([out0, y[:, 1:] * g.index_select(1, self.gate_index)], dim=1))
