"""Equivariant multi-head attention over each center's incoming edges.

Semantics of e3x ``MultiHeadAttention`` in its sparse (edge-list) form, with
the destination-wise envelope-gated softmax of deepmd-kit's DPA4/SeZM as the
normaliser. Node features ``x`` (N, K, F, C); edge ``e`` runs ``src -> dst``::

    q_i   = SO3Linear_q(x)_i                                  (queries at centers)
    k_e   = SO3Linear_k(x)_src        v_e = SO3Linear_v(x)_src
    k_e  <- GauntProduct(k_e, Y_e, R^k_e)     if rpe_qk   (relative positional
    v_e  <- GauntProduct(v_e, Y_e, R^v_e)     if rpe_v     encodings, radial R)
    d_e[l, f, h] = sum_{m, c in head h} q_dst[lm, f, c] k_e[lm, f, c]
    s_e[f, h]    = sum_l w[l, f, h] d_e[l, f, h] / sqrt((lmax + 1) C / H)
    a_e  = env_e^2 exp(s_e) / (zeta + eps + sum_{e' -> dst} env_e'^2 exp(s_e'))
    o_i  = SO3Linear_o( sum_{e -> i} a_e v_e )

The logits are invariant (degree-wise dot products), so ``o`` is equivariant.
``env^2`` is e3x's ``cutoff_value`` multiplying the exponentials before
normalization; ``zeta = softplus(z_bias_raw)`` (F, H) is a learnable null mass.
With it the weights stay smooth as an edge crosses rcut (env -> 0 smoothly,
nothing renormalises the remaining edges abruptly), and a center without real
edges gets exactly zero messages, never NaN. Masked edges get weight 0 and
contribute exactly zero (their inputs must only be finite).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..ops import envelope_gated_softmax, segment_sum
from ..ops.spherical import degree_index, n_sph
from .gaunt import GauntProduct
from .so3 import ChannelLinear, SO3Linear


class EquivariantAttention(nn.Module):
    """One attention layer: (N, K, F, C) node features -> (N, K, F, C) messages.

    Parameters
    ----------
    lmax, channels (C), n_focus (F), n_heads (H, divides C)
    radial_dim : width of the per-edge radial features ``rad`` fed to forward
    rpe_qk, rpe_v : relative positional encodings for keys / values (e3x's
        ``use_relative_positional_encoding_qk`` / ``_v``)
    eps : added to the null mass in the softmax denominator
    """

    def __init__(self, lmax: int, channels: int, n_focus: int, n_heads: int, radial_dim: int,
                 rpe_qk: bool = True, rpe_v: bool = True, eps: float = 1e-6,
                 dtype: torch.dtype = torch.float64, generator: torch.Generator | None = None):
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels ({channels}) must be divisible by n_heads ({n_heads})")
        self.lmax, self.channels, self.n_focus, self.n_heads = lmax, channels, n_focus, n_heads
        self.rpe_qk, self.rpe_v, self.eps = bool(rpe_qk), bool(rpe_v), float(eps)
        self.scale = 1.0 / math.sqrt((lmax + 1) * channels / n_heads)
        args = dict(dtype=dtype, generator=generator)
        self.q = SO3Linear(lmax, channels, channels, n_focus, **args)
        self.k = SO3Linear(lmax, channels, channels, n_focus, **args)
        self.v = SO3Linear(lmax, channels, channels, n_focus, **args)
        self.o = SO3Linear(lmax, channels, channels, n_focus, mlp_bias=True, **args)
        self.n_radial_maps = int(self.rpe_qk) + int(self.rpe_v)
        self.radial = (ChannelLinear(radial_dim, self.n_radial_maps * (lmax + 1) * n_focus * channels, **args)
                       if self.n_radial_maps else None)
        self.tp_k = GauntProduct(lmax, dtype) if self.rpe_qk else None
        self.tp_v = GauntProduct(lmax, dtype) if self.rpe_v else None
        self.degree_weight = nn.Parameter(torch.ones(lmax + 1, n_focus, n_heads, dtype=dtype))
        self.z_bias_raw = nn.Parameter(torch.zeros(n_focus, n_heads, dtype=dtype))
        onehot = torch.nn.functional.one_hot(degree_index(lmax), lmax + 1).to(dtype)
        self.register_buffer("degree_onehot", onehot, persistent=False)  # (K, lmax + 1)

    def forward(self, x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, ysh: torch.Tensor,
                rad: torch.Tensor, env: torch.Tensor, edge_mask: torch.Tensor) -> torch.Tensor:
        """
        x : (N, K, F, C) node features; src, dst : (E,) int64
        ysh : (E, K) edge harmonics; rad : (E, radial_dim) radial features
        env : (E,) envelope (0 on masked edges); edge_mask : (E,) bool
        Returns (N, K, F, C).
        """
        n = x.shape[0]
        k_sph, nl, f, c, h = n_sph(self.lmax), self.lmax + 1, self.n_focus, self.channels, self.n_heads
        q = self.q(x).index_select(0, dst)  # (E, K, F, C)
        key = self.k(x).index_select(0, src)
        val = self.v(x).index_select(0, src)
        if self.radial is not None:
            rw = self.radial(rad).view(-1, self.n_radial_maps, nl, f, c)
            if self.tp_k is not None:
                key = self.tp_k(key, ysh, rw[:, 0])
            if self.tp_v is not None:
                val = self.tp_v(val, ysh, rw[:, -1])
        dots = torch.einsum("ekfc,kl->elfc", q * key, self.degree_onehot)  # (E, lmax+1, F, C)
        dots = dots.reshape(-1, nl, f, h, c // h).sum(-1)  # (E, lmax+1, F, H)
        logits = (dots * self.degree_weight).sum(1) * self.scale  # (E, F, H)
        attn = envelope_gated_softmax(logits, env, dst, n, self.z_bias_raw, self.eps, edge_mask=edge_mask)
        msg = val.reshape(-1, k_sph, f, h, c // h) * attn[:, None, :, :, None]
        return self.o(segment_sum(msg.reshape(-1, k_sph, f, c), dst, n))
