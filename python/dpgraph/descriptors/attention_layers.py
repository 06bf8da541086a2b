"""Parameterized attention layers of se_atten (deepmd-kit's NeighborGatedAttention).

Each layer maps edge features ``G`` (E, ng) to ``LayerNorm(G + out_proj(A(G)))``
where ``A`` is the gated attention of :mod:`.attention` over each center's
edges; q, k, v come from one ``in_proj`` (ng -> 3 * attn), single head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import DenseLayer, LayerNorm
from .attention import attention_blocks, attention_pairwise

IMPLEMENTATIONS = ("fused", "pairwise")  # production blocks | test oracle


class GatedAttentionLayer(nn.Module):
    """Single-head gated attention: (E, ng) -> (E, ng)."""

    def __init__(
        self,
        embed_dim: int,
        hidden_dim: int,
        dotr: bool,
        smooth: bool,
        normalize: bool = True,
        scaling_factor: float = 1.0,
        temperature: float | None = None,
        dtype: torch.dtype = torch.float64,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.dotr, self.smooth, self.normalize = dotr, smooth, normalize
        # deepmd-kit: scaling = temperature if given, else (head_dim * scaling_factor) ** -0.5
        self.scaling = float(temperature) if temperature is not None else (hidden_dim * scaling_factor) ** -0.5
        self.in_proj = DenseLayer(embed_dim, 3 * hidden_dim, dtype=dtype, generator=generator)
        self.out_proj = DenseLayer(hidden_dim, embed_dim, dtype=dtype, generator=generator)

    def _qkv(self, x):
        q, k, v = self.in_proj(x).chunk(3, dim=-1)
        if self.normalize:
            q, k, v = (F.normalize(t, dim=-1) for t in (q, k, v))
        return q * self.scaling, k, v

    def forward(self, x, sw, rhat, key_ok, n_phantom=None):
        """Block form: x (C*D, ng) rows of (C, D) blocks, sw (C, D), rhat (C, D, 3),
        key_ok (C, D), n_phantom (C,) -> (C*D, ng)."""
        c, d = key_ok.shape
        q, k, v = (t.reshape(c, d, t.shape[-1]) for t in self._qkv(x))  # no -1: C*D may be 0
        o = attention_blocks(q, k, v, sw, rhat, key_ok, self.smooth, self.dotr, n_phantom)
        return self.out_proj(o.reshape(c * d, o.shape[-1]))

    def forward_pairwise(self, x, sw, rhat, dst, edge_mask, n_nodes, n_phantom=None):
        """Edge form, the test oracle: x (E, ng), sw (E,), rhat (E, 3), n_phantom (N,) -> (E, ng)."""
        q, k, v = self._qkv(x)
        o = attention_pairwise(q, k, v, sw, rhat, dst, edge_mask, n_nodes, self.smooth, self.dotr, n_phantom)
        return self.out_proj(o)


class NeighborGatedAttentionLayer(nn.Module):
    """Residual + LayerNorm around :class:`GatedAttentionLayer`."""

    def __init__(self, embed_dim, hidden_dim, dotr, smooth, normalize, scaling_factor, temperature,
                 trainable_ln, ln_eps, dtype, generator):
        super().__init__()
        self.attention_layer = GatedAttentionLayer(
            embed_dim, hidden_dim, dotr, smooth, normalize, scaling_factor, temperature, dtype, generator
        )
        self.attn_layer_norm = LayerNorm(embed_dim, ln_eps, trainable_ln, dtype)

    def forward(self, x, *args):
        return self.attn_layer_norm(x + self.attention_layer(x, *args))

    def forward_pairwise(self, x, *args):
        return self.attn_layer_norm(x + self.attention_layer.forward_pairwise(x, *args))
