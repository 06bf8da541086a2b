"""Initial node state of DPA4: environment FiLM seed and geometric initial embedding."""

from __future__ import annotations

import torch
from torch import nn

from ...ops import segment_sum
from .layers import Dense, zeros_parameter


class EnvSeedEmbedding(nn.Module):
    """Per-node FiLM logits (N, 2C) from the smooth environment matrix.

    Per edge: ``r~ = [s, s r^]`` with ``s = env / r``; ``g = MLP([rbf MLP, type(src), type(dst)])``
    (E, embed); ``A = sum_dst r~ (x) g / sqrt(deg)`` (N, 4, embed);
    ``output_proj(A^T A[:, :, :axis])``.
    """

    def __init__(self, ntypes: int, n_radial: int, channels: int, embed: int, axis: int, type_dim: int,
                 hidden: int, act: str, eps: float, dtype, bias: bool = False):
        super().__init__()
        self.embed, self.axis, self.eps = embed, axis, eps
        rbf_out = max(32, embed - 2 * type_dim)
        self.rbf_proj_layer1 = Dense(n_radial, rbf_out, bias, act, dtype)
        self.rbf_proj_layer2 = Dense(rbf_out, rbf_out, bias, None, dtype)
        self.env_type_embed = _TypeTable(ntypes, type_dim, dtype)
        self.g_layer1 = Dense(rbf_out + 2 * type_dim, hidden, bias, act, dtype)
        self.g_layer2 = Dense(hidden, embed, bias, None, dtype)
        self.output_proj = Dense(embed * axis, 2 * channels, False, None, dtype)

    def forward(self, atype, src, dst, ev, rbf, env, inv_sqrt_deg, keep, n):
        r2 = (ev * ev).sum(-1, keepdim=True)
        inv_r = torch.rsqrt(r2 + self.eps * self.eps)
        s = env * inv_r
        rt = torch.cat([s, s * ev * inv_r], -1)  # (E, 4)
        t_src = self.env_type_embed(atype.index_select(0, src))
        t_dst = self.env_type_embed(atype.index_select(0, dst))
        g = self.g_layer2(self.g_layer1(torch.cat([self.rbf_proj_layer2(self.rbf_proj_layer1(rbf)), t_src, t_dst], -1)))
        outer = (rt[:, :, None] * g[:, None, :]) * keep[:, :, None]  # (E, 4, embed)
        agg = segment_sum(outer, dst, n) * inv_sqrt_deg  # (N, 4, embed)
        d = torch.matmul(agg.transpose(1, 2), agg[:, :, : self.axis])  # (N, embed, axis)
        return self.output_proj(d.reshape(n, -1))


class _TypeTable(nn.Module):
    """Type embedding table ``adam_type_embedding`` (ntypes + 1, C); the last row is padding."""

    def __init__(self, ntypes: int, dim: int, dtype):
        super().__init__()
        self.adam_type_embedding = zeros_parameter((ntypes + 1, dim), dtype)

    def forward(self, atype):
        return self.adam_type_embedding.index_select(0, atype)


def geometric_initial_embedding(rot_d, radial_feat, dst, inv_sqrt_deg, keep, n: int, lmax: int):
    """(N, D, C) l > 0 seed: ``sum_dst D[l0, row](edge) * radial_feat[l] / sqrt(deg)``, l = 0 row zero.

    rot_d (E, Dfull, Dfull) Wigner-D (global -> edge frame); radial_feat (E, L+1, C), row l for degree l.
    """
    rows = []
    degs = []
    for l in range(1, lmax + 1):
        for m in range(-l, l + 1):
            rows.append(l * l + l + m)
            degs.append(l)
    rows_t = torch.tensor(rows, device=rot_d.device)
    cols_t = torch.tensor([l * l + l for l in degs], device=rot_d.device)
    zonal = rot_d[:, cols_t, rows_t]  # (E, D-1): Dt[row, m0 col] = D[m0 col, row]
    msg = zonal[:, :, None] * radial_feat[:, torch.tensor(degs, device=rot_d.device)] * keep[:, :, None]
    out = segment_sum(msg, dst, n)  # (N, D-1, C)
    out = torch.cat([out.new_zeros((n, 1, out.shape[-1])), out], 1)
    return out * inv_sqrt_deg
