"""SO(2) convolution of DPA4: rotate to the edge frame, mix per |m|, attend, rotate back.

Edge-frame coefficients use the m-major truncated layout: ``[m=0: l=0..L]``,
then for each ``m = 1..M``: ``[-m: l=m..L]``, ``[+m: l=m..L]`` (``Dm`` rows).
Inside the mixing stack these blocks are separate tensors (:func:`m_blocks`):
each SO(2) linear is then plain GEMMs on views, with no per-layer slicing and
concatenation of coefficients (which, with its gradient, used to cost as much
as the GEMMs in the compiled package).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...ops import envelope_gated_softmax, segment_sum
from .layers import (CrossGridNet, FocusLinear, S2GridGLU, ScalarRMSNorm, SO3Linear, activation, degree_index,
                     zeros_parameter)


def m_major_index(lmax: int, mmax: int) -> tuple[list[int], list[int]]:
    """(packed index, degree) of each m-major truncated row."""
    idx = [l * l + l for l in range(lmax + 1)]
    deg = list(range(lmax + 1))
    for m in range(1, mmax + 1):
        for sgn in (-1, 1):
            for l in range(m, lmax + 1):
                idx.append(l * l + l + sgn * m)
                deg.append(l)
    return idx, deg


def edge_frame_rows(rot_d, lmax: int, mmax: int):
    """Rows of the Wigner-D that rotate into the edge frame, m-major truncated.

    rot_d (E, Dfull, Dfull) -> d_m (E, Dm, D), D = (lmax+1)**2; ``d_m.transpose(1, 2)``
    rotates back. Blocks with the same (lmax, mmax) share it.
    """
    dim = (lmax + 1) ** 2
    idx = torch.tensor(m_major_index(lmax, mmax)[0], device=rot_d.device)
    return rot_d[:, :dim, :dim].index_select(1, idx)


def m_blocks(lmax: int, mmax: int) -> list[tuple[int, int]]:
    """(m, n_l) of each block of the m-major layout: ``m = 0`` then ``-m, +m`` for ``m = 1..mmax``;
    a block holds degrees ``m..lmax``."""
    out = [(0, lmax + 1)]
    for m in range(1, mmax + 1):
        out += [(m, lmax - m + 1)] * 2
    return out


def split_blocks(x, lmax: int, mmax: int) -> list:
    """(E, Dm, ...) m-major rows -> list of views (E, n_l, ...), one per :func:`m_blocks` block."""
    return list(torch.split(x, [n for _, n in m_blocks(lmax, mmax)], 1))


class SO2Linear(nn.Module):
    """Per-|m| block linear, complex-like on (-m, +m), per focus stream, on block lists.

    Blocks (E, n_l, F, Cin) -> (E, n_l, F, Cout) in :func:`m_blocks` order.
    ``weight_m0`` ((L+1)*Cin, F*(L+1)*Cout) on m = 0; ``weight_m.{m-1}``
    (n_l*Cin, F*2*n_l*Cout) = per focus [U | V] with ``out_- = x_- U - x_+ V``,
    ``out_+ = x_- V + x_+ U`` (n_l = L - m + 1); ``bias0`` (F*Cout,) on (l, m) = (0, 0).
    Working on blocks keeps every GEMM operand a view of a contiguous tensor (no
    slice-and-concatenate per layer, and none in the gradient).
    """

    def __init__(self, lmax: int, mmax: int, c_in: int, c_out: int, dtype, bias: bool = False, n_focus: int = 1):
        super().__init__()
        self.lmax, self.mmax, self.c_in, self.c_out, self.f = lmax, mmax, c_in, c_out, n_focus
        n0 = lmax + 1
        self.weight_m0 = zeros_parameter((n0 * c_in, n_focus * n0 * c_out), dtype)
        self.bias0 = zeros_parameter((n_focus * c_out,), dtype) if bias else None
        self.weight_m = nn.ParameterList(
            [zeros_parameter(((lmax - m + 1) * c_in, n_focus * 2 * (lmax - m + 1) * c_out), dtype)
             for m in range(1, mmax + 1)]
        )

    def _block(self, xb, w, nl: int):
        """(E, nl, F, Cin) @ w (nl*Cin, F, W) -> (E, nl, F, W / nl)."""
        e = xb.shape[0]
        if self.f == 1:
            y = xb.reshape(e, nl * self.c_in) @ w[:, 0]
            return y.reshape(e, nl, 1, -1)
        xf = xb.permute(2, 0, 1, 3).reshape(self.f, e, nl * self.c_in)  # (F, E, nl*Cin)
        y = torch.matmul(xf, w.permute(1, 0, 2)).transpose(0, 1)  # (E, F, W)
        return y.reshape(e, self.f, nl, -1).transpose(1, 2)

    def forward(self, blocks: list) -> list:
        n0 = self.lmax + 1
        w0 = self.weight_m0.reshape(n0 * self.c_in, self.f, n0 * self.c_out)
        y0 = self._block(blocks[0], w0, n0)
        if self.bias0 is not None:
            # the bias sits on row (l, m) = (0, 0) only: pad it to the m = 0 block, one fused add
            b = self.bias0.reshape(1, self.f, self.c_out)
            y0 = y0 + torch.cat([b, b.new_zeros((n0 - 1, self.f, self.c_out))], 0)
        outs = [y0]
        for m in range(1, self.mmax + 1):
            nl = self.lmax - m + 1
            w = self.weight_m[m - 1].reshape(nl * self.c_in, self.f, 2, nl * self.c_out)
            u, v = w[:, :, 0], w[:, :, 1]
            xn, xp = blocks[2 * m - 1], blocks[2 * m]
            # (xn + i xp)(U + i V) with three real products instead of four (Gauss):
            # out_- = k1 - k3 = xn U - xp V, out_+ = k1 + k2 = xn V + xp U
            k1 = self._block(xn + xp, u, nl)
            outs.append(k1 - self._block(xp, u + v, nl))
            outs.append(k1 + self._block(xn, v - u, nl))
        return outs


class FocusGatedActivation(nn.Module):
    """:class:`GatedActivation` on blocks (E, n_l, F, C) with a per-focus ``gate_linear`` (C, F*lmax*C).

    Row 0 of the m = 0 block (l = 0) is activated; every other row of degree l is
    scaled by ``sigmoid`` of the l-th gate, computed from that l = 0 row.
    """

    def __init__(self, lmax: int, mmax: int, channels: int, act: str, dtype, bias: bool = False,
                 n_focus: int = 1):
        super().__init__()
        self.lmax, self.mmax, self.c, self.f = lmax, mmax, channels, n_focus
        self.act = activation(act)
        self.gate_linear = FocusLinear(channels, n_focus * lmax * channels, dtype, bias)

    def forward(self, blocks: list) -> list:
        b0 = blocks[0]
        e = b0.shape[0]
        w = self.gate_linear.weight.reshape(self.c, self.f, -1)
        g = focus_matmul(b0[:, 0], w)  # (E, F, lmax*C)
        if self.gate_linear.bias is not None:
            g = g + self.gate_linear.bias.reshape(self.f, -1)
        g = torch.sigmoid(g).reshape(e, self.f, self.lmax, self.c).transpose(1, 2)  # (E, L, F, C): gate of l = 1..L
        outs = [torch.cat([self.act(b0[:, :1]), b0[:, 1:] * g], 1)]
        for m in range(1, self.mmax + 1):
            gm = g[:, m - 1:]  # degrees m..L
            outs += [blocks[2 * m - 1] * gm, blocks[2 * m] * gm]
        return outs


class FocusSO3Linear(nn.Module):
    """(E, D, F, Cin) -> (E, D, F, Cout): bias-free per-degree, per-focus map; ``weight`` (lmax+1, Cin, F*Cout)."""

    def __init__(self, lmax: int, c_in: int, c_out: int, n_focus: int, dtype):
        super().__init__()
        self.f, self.c_out = n_focus, c_out
        self.weight = zeros_parameter((lmax + 1, c_in, n_focus * c_out), dtype)
        self.register_buffer("deg", torch.tensor(degree_index(lmax)), persistent=False)

    def forward(self, x):
        w = self.weight.reshape(self.weight.shape[0], self.weight.shape[1], self.f, self.c_out)[self.deg]
        return torch.einsum("edfi,difo->edfo", x, w)


def focus_matmul(x, weight):
    """(B, F, Cin) @ weight (Cin, F, Cout) per focus -> (B, F, Cout)."""
    return torch.matmul(x.transpose(0, 1), weight.permute(1, 0, 2)).transpose(0, 1)


class RadialDegreeMixer(nn.Module):
    """Edge-dependent mixing across degrees inside each m block (deepmd-kit's DynamicRadialDegreeMixer).

    kernel = rad_m0 ((L+1)*C) @ weight -> per m-block (n_l, n_l) kernels
    (shared by -m and +m), per channel (``degree_channel``, rank 0), through a
    rank-r channel basis (``degree_channel``, rank r), or channel-shared (``degree``).
    x (E, Dm, C), rad (E, Dm, C) -> blocks (E, n_l, C) in :func:`m_blocks` order.
    """

    def __init__(self, lmax: int, mmax: int, channels: int, mode: str, rank: int, dtype):
        super().__init__()
        self.lmax, self.mmax, self.c, self.mode, self.rank = lmax, mmax, channels, mode, rank
        self.ksize = sum((lmax - m + 1) ** 2 for m in range(mmax + 1))
        width = self.ksize if mode == "degree" else self.ksize * (rank if rank > 0 else channels)
        self.weight = zeros_parameter(((lmax + 1) * channels, width), dtype)
        self.channel_basis = (zeros_parameter((rank, channels), dtype)
                              if (mode == "degree_channel" and rank > 0) else None)

    def forward(self, x, rad):
        e = x.shape[0]
        k = rad[:, : self.lmax + 1].reshape(e, -1) @ self.weight
        if self.mode == "degree":
            k = k.reshape(e, self.ksize, 1)
        elif self.rank > 0:
            k = k.reshape(e, self.ksize, self.rank)
        else:
            k = k.reshape(e, self.ksize, self.c)
        outs = []
        koff = 0
        off = 0
        for m in range(self.mmax + 1):
            nl = self.lmax - m + 1
            km = k[:, koff: koff + nl * nl].reshape(e, nl, nl, -1)  # (E, l_in, l_out, r)
            koff += nl * nl
            for _ in range(1 if m == 0 else 2):
                xb = x[:, off: off + nl]  # (E, l_in, C)
                if self.mode == "degree":
                    yb = torch.bmm(km[..., 0].transpose(1, 2), xb)
                elif self.rank > 0:
                    t = torch.bmm(km.permute(0, 2, 3, 1).reshape(e, nl * self.rank, nl), xb)
                    yb = (t.reshape(e, nl, self.rank, -1) * self.channel_basis).sum(2)
                else:
                    yb = (km * xb[:, :, None, :]).sum(1)
                outs.append(yb)
                off += nl
        return outs


class ReducedEquivariantRMSNorm(nn.Module):
    """(E, Dm, F, C) m-major edge-frame RMS norm (``so2_norm``) per focus stream: l = 0 centred,
    degree-balanced over the kept orders (weight ``1 / ((L+1) C (2 min(l, M) + 1))``);
    ``adam_scale`` (F, L+1, C), ``bias0`` (F, C)."""

    def __init__(self, lmax: int, mmax: int, channels: int, degrees: list[int], dtype, eps: float = 1e-5,
                 n_focus: int = 1):
        super().__init__()
        self.eps = eps
        self.adam_scale = zeros_parameter((n_focus, lmax + 1, channels), dtype)
        self.bias0 = zeros_parameter((n_focus, channels), dtype)
        w = [1.0 / ((lmax + 1) * channels) / (2 * min(l, mmax) + 1) for l in degrees]
        self.register_buffer("balance", torch.tensor(w, dtype=dtype), persistent=False)
        self.register_buffer("deg", torch.tensor(degrees), persistent=False)

    def forward(self, x):
        x0 = x[:, :1] - x[:, :1].mean(-1, keepdim=True)
        xt = x[:, 1:]
        var = (x0 * x0).sum((1, 3)) * self.balance[0] + ((xt * xt) * self.balance[1:, None, None]).sum((1, 3))
        inv = torch.rsqrt(var + self.eps)[:, None, :, None]  # (E, 1, F, 1)
        scale = self.adam_scale[:, self.deg].transpose(0, 1)  # (Dm, F, C)
        return torch.cat([x0 * inv * scale[:1] + self.bias0, xt * inv * scale[1:]], 1)


class SO2Convolution(nn.Module):
    """Node features (N, D, C) -> aggregated messages (N, D, C).

    ``pre_focus_mix`` (C -> F*Cf) -> gather source -> rotate into the edge frame (rows of
    D(R) in m-major order) -> radial degree mixing (radial features through
    ``radial_hidden_proj`` when F*Cf != C) -> ``mixing_layers`` residual SO(2) linears with
    gated activations between, per focus stream (F = ``n_focus``, Cf = ``focus_dim``;
    channel index ``f*Cf + c``) -> cross-focus softmax competition (F > 1) -> rotate back
    (``Dt``, degrees above ``mmax`` rescaled) -> envelope-gated attention
    (``n_atten_head > 0``, heads per focus stream) or envelope weights with ``1/sqrt(deg)``
    -> sum to the centre -> ``post_focus_mix`` (F*Cf -> C).
    """

    def __init__(self, lmax: int, mmax: int, channels: int, mixing_layers: int, n_head: int,
                 radial_mode: str, radial_rank: int, so2_s2_activation: bool, act: str, eps: float, dtype,
                 layer_scale: bool = False, so2_norm: bool = False, bias: bool = False,
                 message_node: str | None = None, message_node_op: str = "glu", kmax: int = 1,
                 atten_f_mix: bool = False, atten_v_proj: bool = False, atten_o_proj: bool = False,
                 n_focus: int = 1, focus_dim: int = 0, focus_norm: bool = True, n_branches: int = 1,
                 node_wise: str | None = None, node_wise_op: str = "glu", node_wise_branches: int = 1):
        super().__init__()
        self.lmax, self.mmax, self.n_head, self.eps = lmax, mmax, n_head, eps
        self.f = n_focus
        self.cf = cf = channels if focus_dim == 0 else focus_dim
        self.c = hidden = n_focus * cf
        idx, deg = m_major_index(lmax, mmax)
        resc = [math.sqrt((2 * l + 1) / (2 * mmax + 1)) if l > mmax else 1.0 for l in degree_index(lmax)]
        self.register_buffer("rotate_back_rescale", torch.tensor(resc, dtype=dtype), persistent=False)
        self.pre_focus_mix = SO3Linear(lmax, channels, hidden, dtype, bias)
        self.post_focus_mix = SO3Linear(lmax, hidden, channels, dtype, bias)
        self.radial_hidden_proj = FocusLinear(channels, hidden, dtype) if hidden != channels else None
        self.radial_degree_mixer = (
            RadialDegreeMixer(lmax, mmax, hidden, radial_mode, radial_rank, dtype) if radial_mode != "none" else None
        )
        self.so2_s2 = so2_s2_activation
        # with the S2 grid GLU between layers, every layer but the last outputs value and gate halves
        widths = [2 * cf if (so2_s2_activation and i < mixing_layers - 1) else cf for i in range(mixing_layers)]
        self.so2_linears = nn.ModuleList([SO2Linear(lmax, mmax, cf, w, dtype, bias, n_focus) for w in widths])
        nl = []
        for _ in range(mixing_layers - 1):
            if so2_s2_activation:
                nl.append(S2GridGLU(lmax, cf, dtype, coeff_index=idx, mmax=mmax, bias=bias, n_focus=n_focus))
            else:
                nl.append(FocusGatedActivation(lmax, mmax, cf, act, dtype, bias, n_focus))
        self.non_linearities = nn.ModuleList(nl)
        self.so2_inter_norms = (
            nn.ModuleList([ReducedEquivariantRMSNorm(lmax, mmax, cf, deg, dtype, n_focus=n_focus)
                           if i < mixing_layers - 1
                           else nn.Identity() for i in range(mixing_layers)]) if so2_norm else None
        )
        # layer_scale: per-channel scale on each SO(2) residual update, ``adam_so2_layer_scales.{i}`` (F, Cf)
        self.adam_so2_layer_scales = (
            nn.ParameterList([zeros_parameter((n_focus, cf), dtype) for _ in range(mixing_layers)])
            if layer_scale else None
        )
        # cross-focus competition: alpha = label-smoothed softmax_f(norm(s_f) . w_f (+ b_f)), s the l = 0 input
        self.focus_compete_norm = None
        if n_focus > 1:
            if focus_norm:
                self.focus_compete_norm = ScalarRMSNorm(cf, eps, dtype, n_focus)
            self.adamw_focus_compete_w = zeros_parameter((cf, n_focus), dtype)
            self.focus_compete_bias = zeros_parameter((n_focus,), dtype) if bias else None
        # node_wise 's2' / 'so3': ``x_loc += CrossGridNet(x_loc, D_m x_dst)`` in the edge frame after radial mixing
        self.node_wise_grid_product = (
            CrossGridNet(lmax, cf, node_wise_op, dtype, bias, kmax=min(kmax, lmax) if node_wise == "so3" else None,
                         n_focus=n_focus, n_branches=node_wise_branches, coeff_index=idx, mmax=mmax)
            if node_wise is not None else None
        )
        # message_node 's2' / 'so3': ``out += CrossGridNet(out, x)`` before post_focus_mix
        self.message_node_grid_product = (
            CrossGridNet(lmax, cf, message_node_op, dtype, bias,
                         kmax=min(kmax, lmax) if message_node == "so3" else None, n_focus=n_focus,
                         n_branches=n_branches)
            if message_node is not None else None
        )
        if n_head > 0:
            # attention streams: one of width F*Cf (atten_f_mix) or F of width Cf
            self.fa, self.ca = (1, hidden) if atten_f_mix else (n_focus, cf)
            self.head_dim = self.ca // n_head
            self.attn_qk_norm = ScalarRMSNorm(self.ca, eps, dtype, self.fa)
            self.attn_q_proj = FocusLinear(self.ca, self.fa * self.ca, dtype)
            self.attn_k_proj = FocusLinear(self.ca, self.fa * self.ca, dtype)
            self.attn_output_gate_norm = ScalarRMSNorm(self.ca, eps, dtype, self.fa)
            self.adamw_attn_logit_w = zeros_parameter((self.ca, self.fa, n_head), dtype)
            self.adamw_attn_z_bias_raw = zeros_parameter((self.fa, n_head), dtype)
            self.adamw_attn_gate_w = zeros_parameter((self.ca, self.fa, n_head), dtype)
            # optional bias-free per-degree maps: on the rotated-back message (atten_f_mix),
            # on the attention values (atten_v_proj), on the gated head outputs (atten_o_proj)
            self.attn_focus_mix = SO3Linear(lmax, hidden, hidden, dtype) if atten_f_mix else None
            self.attn_v_proj = FocusSO3Linear(lmax, self.ca, self.ca, self.fa, dtype) if atten_v_proj else None
            self.attn_o_proj = FocusSO3Linear(lmax, self.ca, self.ca, self.fa, dtype) if atten_o_proj else None

    def _focus_alpha(self, s):
        """(E, F, Cf) l = 0 scalars -> (E, F) label-smoothed (0.02) competition weights."""
        if self.focus_compete_norm is not None:
            s = self.focus_compete_norm(s)
        logits = (s * self.adamw_focus_compete_w.transpose(0, 1)).sum(-1)  # (E, F)
        if self.focus_compete_bias is not None:
            logits = logits + self.focus_compete_bias
        return torch.softmax(logits, -1) * (1.0 - 0.02) + 0.02 / self.f

    def _mix(self, blocks: list, rad0, edge_env) -> list:
        """SO(2) mixing stack on blocks (E, n_l, F, Cf); rad0 (E, F, Cf) radial l = 0 feature."""
        n_layers = len(self.so2_linears)
        lm = (self.lmax, self.mmax)
        for i, lin in enumerate(self.so2_linears):
            h = blocks
            if self.so2_inter_norms is not None and i < n_layers - 1:
                h = split_blocks(self.so2_inter_norms[i](torch.cat(h, 1)), *lm)
            y = lin(h)
            if i == 0 and lin.bias0 is not None:
                # the first layer's l = 0 bias is scaled by the edge's radial l = 0 feature and envelope,
                # so it vanishes smoothly at rcut: b -> b * rad0 * env
                r0 = rad0 if lin.c_out == self.cf else torch.cat([rad0, rad0], -1)
                corr = lin.bias0.reshape(self.f, lin.c_out) * (r0 * edge_env[:, :, None] - 1.0)  # (E, F, Cout)
                y[0] = torch.cat([y[0][:, :1] + corr[:, None], y[0][:, 1:]], 1)
            if i < n_layers - 1:
                nlin = self.non_linearities[i]
                y = split_blocks(nlin(torch.cat(y, 1)), *lm) if isinstance(nlin, S2GridGLU) else nlin(y)
            if self.adam_so2_layer_scales is not None:
                y = [b * self.adam_so2_layer_scales[i] for b in y]
            blocks = [a + b for a, b in zip(blocks, y)]
        return blocks

    def forward(self, x, src, dst, d_m, edge_env, inv_sqrt_deg, rad, edge_mask):
        """x (N, D, C); d_m (E, Dm, D) of :func:`edge_frame_rows`; edge_env (E, 1);
        inv_sqrt_deg (N, 1, 1); rad (E, L+1, C) radial-type features."""
        n = x.shape[0]
        e = src.shape[0]
        f, cf = self.f, self.cf
        dim = (self.lmax + 1) ** 2
        x = self.pre_focus_mix(x)  # (N, D, F*Cf)
        xl = torch.bmm(d_m, x.index_select(0, src))  # (E, Dm, F*Cf)
        # (E, Dm, C): the radial row of each m-major row's degree, as slices (a sum of slices in the gradient)
        rad_m = torch.cat([rad[:, m:] for m, _ in m_blocks(self.lmax, self.mmax)], 1)
        if self.radial_hidden_proj is not None:
            rad_m = self.radial_hidden_proj(rad_m)  # (E, Dm, F*Cf)
        lm = (self.lmax, self.mmax)
        if self.radial_degree_mixer is None:
            blocks = split_blocks(xl * rad_m, *lm)
        else:
            blocks = self.radial_degree_mixer(xl, rad_m)
        if self.node_wise_grid_product is not None:
            xl = torch.cat(blocks, 1)
            blocks = split_blocks(xl + self.node_wise_grid_product(xl, torch.bmm(d_m, x.index_select(0, dst))), *lm)
        dm = xl.shape[1]
        blocks = [b.reshape(e, b.shape[1], f, cf) for b in blocks]
        gate_src = blocks[0][:, 0]  # (E, F, Cf) competition input
        blocks = self._mix(blocks, rad_m[:, 0].reshape(e, f, cf), edge_env)
        if f > 1:
            alpha = self._focus_alpha(gate_src)[:, None, :, None]
            blocks = [b * alpha for b in blocks]
        xl = torch.cat(blocks, 1).reshape(e, dm, f * cf)
        msg = torch.bmm(d_m.transpose(1, 2), xl) * self.rotate_back_rescale[None, :, None]  # (E, D, F*Cf)
        if self.n_head == 0:
            out = segment_sum(msg * edge_env[:, :, None], dst, n) * inv_sqrt_deg
        else:
            h, hd, fa, ca = self.n_head, self.head_dim, self.fa, self.ca
            if self.attn_focus_mix is not None:
                msg = self.attn_focus_mix(msg)
            # per attention stream, plain 2-D (N, Ca) projections. A per-focus (N, F, C) batched form
            # gives the same eager numbers, but AOTInductor (torch 2.13, CPU) then drops the SO(2)
            # message path's index_add from the node-feature gradient (wrong forces in the .pt2)
            wq = self.attn_q_proj.weight.reshape(ca, fa, ca)
            wk = self.attn_k_proj.weight.reshape(ca, fa, ca)
            logits, gate = [], []
            for j in range(fa):
                x0 = x[:, 0, j * ca: (j + 1) * ca]  # (N, Ca)
                qk = self.attn_qk_norm.stream(x0, j)
                q = (qk @ wq[:, j]).index_select(0, dst).reshape(e, h, hd)
                k = (qk @ wk[:, j]).index_select(0, src).reshape(e, h, hd)
                logits.append((q * k).sum(-1) * hd ** -0.5
                              + rad_m[:, 0, j * ca: (j + 1) * ca] @ self.adamw_attn_logit_w[:, j])  # (E, H)
                g = self.attn_output_gate_norm.stream(x0, j)
                gate.append(torch.sigmoid(g @ self.adamw_attn_gate_w[:, j]))  # (N, H)
            logits, gate = torch.stack(logits, 1), torch.stack(gate, 1)  # (E, Fa, H), (N, Fa, H)
            alpha = envelope_gated_softmax(
                logits, edge_env, dst, n, self.adamw_attn_z_bias_raw, self.eps, edge_mask=edge_mask
            )  # (E, Fa, H)
            val = msg.reshape(e, dim, fa, ca)
            if self.attn_v_proj is not None:
                val = self.attn_v_proj(val)
            val = val.reshape(e, dim, fa, h, hd) * alpha[:, None, :, :, None]
            out = segment_sum(val, dst, n)  # (N, D, Fa, H, hd); gate (N, Fa, H)
            out = (out * gate[:, None, :, :, None]).reshape(n, dim, fa, ca)
            if self.attn_o_proj is not None:
                out = self.attn_o_proj(out)
            out = out.reshape(n, dim, fa * ca)
        if self.message_node_grid_product is not None:
            out = out + self.message_node_grid_product(out, x)
        return self.post_focus_mix(out)
