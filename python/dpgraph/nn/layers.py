"""Dense layers and networks with deepmd-kit's semantics.

A :class:`DenseLayer` computes ``y = act(x @ w + b)``, plus a residual ``x``
when the layer keeps the width, or ``[x, x]`` when it doubles it. With
``resnet_dt`` the activated output is first scaled by a per-feature timestep
``idt``, and only on layers whose widths allow that skip connection (a layer
such as 136 -> 32 has neither the skip nor an ``idt``). deepmd-kit builds its
embedding and fitting nets by this rule, so a fresh dpgraph network has exactly
deepmd-kit's parameters and importing its weights reproduces its numbers.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .activations import get_activation


def _normal(shape, std: float, mean: float, gen: torch.Generator | None, dtype) -> torch.Tensor:
    t = torch.empty(shape, dtype=torch.float64).normal_(mean, std, generator=gen)
    return t.to(dtype)


def has_skip_widths(n_in: int, n_out: int) -> bool:
    """Whether a residual layer n_in -> n_out has a skip connection (same or doubled width)."""
    return n_out == n_in or n_out == 2 * n_in


class DenseLayer(nn.Module):
    """One layer: (..., n_in) -> (..., n_out).

    Parameters
    ----------
    n_in, n_out : widths
    activation : deepmd-kit activation name (None: identity)
    bias : learn a bias
    resnet : add the identity (n_out == n_in) or the doubled input (n_out == 2 n_in)
    use_timestep : multiply the activated output by a learned ``idt`` (resnet_dt);
        honoured only where ``n_out`` is ``n_in`` or ``2 n_in`` (deepmd-kit's rule)
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        activation: str | None = None,
        *,
        bias: bool = True,
        resnet: bool = False,
        use_timestep: bool = False,
        dtype: torch.dtype = torch.float64,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.n_in, self.n_out = n_in, n_out
        self.activation_name = activation
        self.act = get_activation(activation)
        self.resnet = resnet
        self.w = nn.Parameter(_normal((n_in, n_out), 1.0 / math.sqrt(n_in + n_out), 0.0, generator, dtype))
        self.b = nn.Parameter(_normal((n_out,), 1.0, 0.0, generator, dtype)) if bias else None
        has_dt = use_timestep and has_skip_widths(n_in, n_out)
        self.idt = nn.Parameter(_normal((n_out,), 0.001, 0.1, generator, dtype)) if has_dt else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x @ self.w
        if self.b is not None:
            y = y + self.b
        y = self.act(y)
        if self.idt is not None:
            y = y * self.idt
        if self.resnet and self.n_out == self.n_in:
            y = y + x
        elif self.resnet and self.n_out == 2 * self.n_in:
            y = y + torch.cat([x, x], dim=-1)
        return y


class EmbeddingNet(nn.Sequential):
    """Stack of residual :class:`DenseLayer`: (..., n_in) -> (..., neuron[-1])."""

    def __init__(
        self,
        n_in: int,
        neuron: Sequence[int],
        activation: str = "tanh",
        *,
        resnet_dt: bool = False,
        bias: bool = True,
        dtype: torch.dtype = torch.float64,
        generator: torch.Generator | None = None,
    ):
        widths = [n_in, *neuron]
        super().__init__(
            *[
                DenseLayer(a, b, activation, bias=bias, resnet=True, use_timestep=resnet_dt, dtype=dtype,
                           generator=generator)
                for a, b in zip(widths[:-1], widths[1:])
            ]
        )
        self.n_in, self.n_out = n_in, widths[-1]


class FittingNet(nn.Sequential):
    """Residual hidden layers then a linear output: (..., n_in) -> (..., n_out)."""

    def __init__(
        self,
        n_in: int,
        n_out: int,
        neuron: Sequence[int],
        activation: str = "tanh",
        *,
        resnet_dt: bool = True,
        bias_out: bool = True,
        dtype: torch.dtype = torch.float64,
        generator: torch.Generator | None = None,
    ):
        widths = [n_in, *neuron]
        layers = [
            DenseLayer(a, b, activation, resnet=True, use_timestep=resnet_dt, dtype=dtype, generator=generator)
            for a, b in zip(widths[:-1], widths[1:])
        ]
        layers.append(DenseLayer(widths[-1], n_out, None, bias=bias_out, dtype=dtype, generator=generator))
        super().__init__(*layers)
        self.n_in, self.n_out = n_in, n_out


class TypeEmbedNet(nn.Module):
    """Type embedding table: () -> (ntypes + 1, tebd_dim); the last row is zero padding.

    The table is a linear :class:`EmbeddingNet` applied to one-hot type vectors,
    as in deepmd-kit (including its residual when ``ntypes == tebd_dim``).
    """

    def __init__(
        self,
        ntypes: int,
        tebd_dim: int,
        *,
        use_tebd_bias: bool = False,
        dtype: torch.dtype = torch.float64,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.ntypes, self.tebd_dim = ntypes, tebd_dim
        self.embedding_net = EmbeddingNet(ntypes, [tebd_dim], "linear", bias=use_tebd_bias, dtype=dtype,
                                          generator=generator)

    def forward(self) -> torch.Tensor:
        w = self.embedding_net[0].w
        eye = torch.eye(self.ntypes, dtype=w.dtype, device=w.device)
        embed = self.embedding_net(eye)
        return torch.cat([embed, embed.new_zeros(1, self.tebd_dim)], dim=0)


class LayerNorm(nn.Module):
    """LayerNorm over the last dim with optional trainable scale/shift."""

    def __init__(self, n: int, eps: float = 1e-5, trainable: bool = True, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(n, dtype=dtype), requires_grad=trainable)
        self.bias = nn.Parameter(torch.zeros(n, dtype=dtype), requires_grad=trainable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)
