"""SO(3)-equivariant linear layers (semantics of deepmd-kit's ``dpa4_nn.so3``).

Equivariant node features hold real spherical-harmonic coefficients
(:mod:`dpgraph.ops.spherical`) and have shape ``(N, K, F, C)``: ``K =
(lmax + 1)**2`` packed ``(l, m)`` components, ``F`` focus streams, ``C``
channels. All weights are stored ``(in, out)`` (rows = fan-in).

* :class:`ChannelLinear` — ``(..., C_in) -> (..., C_out)``, shared by every
  focus stream; weight ``(C_in, C_out)``, bias ``(C_out,)``.
* :class:`FocusLinear` — ``(..., F, C_in) -> (..., F, C_out)``, one matrix per
  focus stream; weight ``(C_in, F * C_out)``, bias ``(F * C_out,)``. A focus
  axis of size 1 is broadcast to the ``F`` streams.
* :class:`SO3Linear` — degree-wise self-interaction ``(N, K, F, C_in) -> (N,
  K, F, C_out)``; weight ``(lmax + 1, C_in, F * C_out)`` shared by all ``m`` of
  a degree (so it commutes with rotations), bias ``(F * C_out,)`` on ``l = 0``
  only. One einsum ``ndfi,difo->ndfo`` after expanding the weight to the packed
  positions with ``index_select`` — no Python loop over ``l``.

``init_std``: ``None`` = default init (uniform ``±1/sqrt(C_in)`` as
``torch.nn.Linear`` for the two channel maps; truncated normal with std
``1/sqrt(C_in)``, cut at 2 std, for SO3Linear); a number = ``normal(0,
init_std)`` for the weights; ``0.0`` = zero init. Biases start at zero
except in the default uniform init.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..ops.spherical import degree_index, n_sph


def _weight(shape, fan_in: int, init_std, default: str, gen, dtype) -> torch.Tensor:
    t = torch.empty(shape, dtype=torch.float64)
    if init_std is not None:
        if init_std == 0.0:
            return t.zero_().to(dtype)
        return t.normal_(0.0, float(init_std), generator=gen).to(dtype)
    bound = 1.0 / math.sqrt(max(fan_in, 1))
    if default == "uniform":
        return t.uniform_(-bound, bound, generator=gen).to(dtype)
    return nn.init.trunc_normal_(t, 0.0, bound, -2.0 * bound, 2.0 * bound, generator=gen).to(dtype)


def _bias(shape, fan_in: int, init_std, gen, dtype) -> torch.Tensor:
    t = torch.zeros(shape, dtype=torch.float64)
    if init_std is None:
        bound = 1.0 / math.sqrt(max(fan_in, 1))
        t.uniform_(-bound, bound, generator=gen)
    return t.to(dtype)


class ChannelLinear(nn.Module):
    """Channel-only linear map on the last axis: (..., C_in) -> (..., C_out)."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True, init_std: float | None = None,
                 dtype: torch.dtype = torch.float64, generator: torch.Generator | None = None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.weight = nn.Parameter(_weight((in_channels, out_channels), in_channels, init_std, "uniform",
                                           generator, dtype))
        self.bias = nn.Parameter(_bias((out_channels,), in_channels, init_std, generator, dtype)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.weight
        return y + self.bias if self.bias is not None else y


class FocusLinear(nn.Module):
    """Per-focus linear map: (..., F or 1, C_in) -> (..., F, C_out)."""

    def __init__(self, in_channels: int, out_channels: int, n_focus: int, bias: bool = True,
                 init_std: float | None = None, dtype: torch.dtype = torch.float64,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.in_channels, self.out_channels, self.n_focus = in_channels, out_channels, n_focus
        self.weight = nn.Parameter(_weight((in_channels, n_focus * out_channels), in_channels, init_std, "uniform",
                                           generator, dtype))
        self.bias = (nn.Parameter(_bias((n_focus * out_channels,), in_channels, init_std, generator, dtype))
                     if bias else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.view(self.in_channels, self.n_focus, self.out_channels)
        x = x.expand(*x.shape[:-2], self.n_focus, self.in_channels)
        y = torch.einsum("...fi,ifo->...fo", x, w)
        if self.bias is not None:
            y = y + self.bias.view(self.n_focus, self.out_channels)
        return y


class SO3Linear(nn.Module):
    """Focus-aware degree-wise linear map: (N, K, F or 1, C_in) -> (N, K, F, C_out).

    Commutes with rotations: every ``(2l + 1)``-block is multiplied by the same
    ``(C_in, C_out)`` matrix, and the bias touches ``l = 0`` only.
    """

    def __init__(self, lmax: int, in_channels: int, out_channels: int, n_focus: int = 1, mlp_bias: bool = False,
                 init_std: float | None = None, dtype: torch.dtype = torch.float64,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.lmax, self.in_channels, self.out_channels, self.n_focus = lmax, in_channels, out_channels, n_focus
        self.weight = nn.Parameter(_weight((lmax + 1, in_channels, n_focus * out_channels), in_channels, init_std,
                                           "trunc_normal", generator, dtype))
        self.bias = nn.Parameter(torch.zeros(n_focus * out_channels, dtype=dtype)) if mlp_bias else None
        self.register_buffer("expand_index", degree_index(lmax), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = n_sph(self.lmax)
        w = self.weight.index_select(0, self.expand_index)  # (K, C_in, F * C_out)
        w = w.view(k, self.in_channels, self.n_focus, self.out_channels)
        x = x.expand(x.shape[0], k, self.n_focus, self.in_channels)
        y = torch.einsum("ndfi,difo->ndfo", x, w)
        if self.bias is None:
            return y
        b = self.bias.view(1, 1, self.n_focus, self.out_channels)
        return torch.cat([y[:, :1] + b, y[:, 1:]], dim=1)
