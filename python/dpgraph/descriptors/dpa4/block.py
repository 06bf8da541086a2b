"""One DPA4 interaction block: SO(2) message passing then equivariant FFN sub-blocks, residual."""

from __future__ import annotations

import torch
from torch import nn

from .layers import EquivariantFFN, EquivariantRMSNorm
from .so2 import SO2Convolution


class InteractionBlock(nn.Module):
    """(N, D, C) -> (N, D, C): ``u = x + post(SO2(pre(x)))``, then ``u += post(FFN(pre(u)))`` per sub-block.

    Message passing runs at degree ``lmax``; the node state (and the FFN) at
    ``node_lmax = lmax + extra_node_l``: the SO(2) unit reads and updates the
    first ``(lmax+1)**2`` rows only.
    """

    def __init__(self, lmax: int, mmax: int, channels: int, cfg: dict, dtype, node_lmax: int | None = None):
        super().__init__()
        node_lmax = lmax if node_lmax is None else node_lmax
        self.mp_dim = (lmax + 1) ** 2
        pre_so2, post_so2, pre_ffn, post_ffn = cfg["sandwich_norm"]
        eps = cfg["eps"]
        self.pre_so2_norm = EquivariantRMSNorm(lmax, channels, 1e-5, dtype) if pre_so2 else None
        self.post_so2_norm = (
            EquivariantRMSNorm(lmax, channels, 1e-5 if cfg["edge_norm"] else 1.0, dtype) if post_so2 else None
        )
        self.so2_conv = SO2Convolution(
            lmax, mmax, channels, cfg["mixing_layers"], cfg["n_atten_head"], cfg["radial_so2_mode"],
            cfg["radial_so2_rank"], cfg["s2_activation"][0], cfg["activation_function"], eps, dtype,
            layer_scale=cfg["layer_scale"], so2_norm=cfg["so2_norm"], bias=cfg["mlp_bias"],
            message_node=cfg["message_node"], message_node_op=cfg["message_node_op"], kmax=cfg["kmax"],
            n_branches=cfg["grid_branches"][1], node_wise=cfg["node_wise"], node_wise_op=cfg["node_wise_op"],
            node_wise_branches=cfg["grid_branches"][0],
            atten_f_mix=cfg["atten_f_mix"], atten_v_proj=cfg["atten_v_proj"], atten_o_proj=cfg["atten_o_proj"],
            n_focus=cfg["n_focus"], focus_dim=cfg["focus_dim"], focus_norm=cfg["edge_norm"],
        )
        n = cfg["ffn_blocks"]
        self.pre_ffn_norms = nn.ModuleList(
            [EquivariantRMSNorm(node_lmax, channels, 1e-5, dtype) if pre_ffn else nn.Identity() for _ in range(n)]
        )
        self.post_ffn_norms = nn.ModuleList(
            [EquivariantRMSNorm(node_lmax, channels, 1e-5, dtype) if post_ffn else nn.Identity() for _ in range(n)]
        )
        # layer_scale: per-channel scale on each FFN residual update, ``adam_ffn_layer_scales.{i}`` (C,)
        self.adam_ffn_layer_scales = (
            nn.ParameterList([nn.Parameter(torch.zeros(channels, dtype=dtype)) for _ in range(n)])
            if cfg["layer_scale"] else None
        )
        s2 = cfg["s2_activation"][1]
        so3 = cfg["ffn_so3_grid"]  # None, 'glu' or 'mlp': the SO(3) grid FFN (wins over the S2 one)
        self.ffns = nn.ModuleList(
            [
                EquivariantFFN(node_lmax, channels, cfg["block_ffn_neurons"], s2 and so3 is None,
                               True if (s2 or so3) else cfg["glu_activation"],
                               "silu" if s2 else cfg["activation_function"], dtype, cfg["mlp_bias"],
                               so3_grid=so3, kmax=min(cfg["kmax"], lmax), s2_op=cfg["ffn_grid_op"],
                               n_branches=cfg["grid_branches"][2])
                for _ in range(n)
            ]
        )

    def forward(self, x, src, dst, d_m, edge_env, inv_sqrt_deg, rad, edge_mask):
        """d_m (E, Dm, D): :func:`.so2.edge_frame_rows` for this block's (lmax, mmax)."""
        h = x[:, : self.mp_dim]
        if self.pre_so2_norm is not None:
            h = self.pre_so2_norm(h)
        m = self.so2_conv(h, src, dst, d_m, edge_env, inv_sqrt_deg, rad, edge_mask)
        if self.post_so2_norm is not None:
            m = self.post_so2_norm(m)
        x = x + m if x.shape[1] == self.mp_dim else torch.cat([x[:, : self.mp_dim] + m, x[:, self.mp_dim:]], 1)
        for i, (pre, ffn, post) in enumerate(zip(self.pre_ffn_norms, self.ffns, self.post_ffn_norms)):
            y = post(ffn(pre(x)))
            if self.adam_ffn_layer_scales is not None:
                y = y * self.adam_ffn_layer_scales[i]
            x = x + y
        return x
