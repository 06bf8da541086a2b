"""Small DPA4 building blocks (torch), parameter layouts as deepmd-kit serializes them.

Shapes: N nodes, E edges, D = (lmax+1)**2 packed SO(3) coefficients, F focus
streams, K Wigner-D frames (SO(3) grids), C channels. Lengths in Å.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from torch import nn

from .basis import WignerTables, edge_rotation, real_sh, sphere_quadrature, wigner_blocks

ACTIVATIONS = ("silu", "tanh", "relu", "sigmoid", "softplus", "linear", "none")


def activation(name: str):
    """deepmd-kit activation by name -> callable."""
    if name == "silu":
        return torch.nn.functional.silu
    if name == "tanh":
        return torch.tanh
    if name == "relu":
        return torch.relu
    if name == "sigmoid":
        return torch.sigmoid
    if name == "softplus":
        return torch.nn.functional.softplus
    if name in ("linear", "none"):
        return lambda x: x
    raise ValueError(f"activation_function {name!r} is not supported; supported: {list(ACTIVATIONS)}")


def degree_index(lmax: int) -> list[int]:
    """Degree l of each packed (l, m) position."""
    return [l for l in range(lmax + 1) for _ in range(2 * l + 1)]


def zeros_parameter(shape, dtype) -> nn.Parameter:
    """A zero-filled parameter of ``shape``: every DPA4 weight is created so and filled by the importer."""
    return nn.Parameter(torch.zeros(shape, dtype=dtype))


class Dense(nn.Module):
    """``act(x @ matrix (+ bias))``; deepmd-kit's NativeLayer (keys ``matrix``, ``bias``)."""

    def __init__(self, n_in: int, n_out: int, bias: bool, act: str | None, dtype):
        super().__init__()
        self.matrix = zeros_parameter((n_in, n_out), dtype)
        self.bias = zeros_parameter((n_out,), dtype) if bias else None
        self.act = activation(act) if act else None

    def forward(self, x):
        y = x @ self.matrix
        if self.bias is not None:
            y = y + self.bias
        return self.act(y) if self.act is not None else y


class RMSNorm(nn.Module):
    """Channel RMS norm over the last axis with a per-channel scale ``adam_scale`` of ``shape``."""

    def __init__(self, shape, eps: float, dtype):
        super().__init__()
        self.adam_scale = zeros_parameter(shape, dtype)
        self.eps = eps

    def forward(self, x):
        inv = torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps)
        return x * inv * self.adam_scale.reshape(self.adam_scale.shape[-1])


class ScalarRMSNorm(RMSNorm):
    """(..., C) RMS norm, scale (1, C) (one focus stream); with ``n_focus`` F > 1: (..., F, C), scale (F, C)."""

    def __init__(self, channels: int, eps: float, dtype, n_focus: int = 1):
        super().__init__((n_focus, channels), eps, dtype)

    def forward(self, x):
        if self.adam_scale.shape[0] == 1:
            return super().forward(x)
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps) * self.adam_scale

    def stream(self, x, j: int):
        """(..., C) -> (..., C): the norm of focus stream ``j`` alone (its scale row ``j``)."""
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + self.eps) * self.adam_scale[j]


class EquivariantRMSNorm(nn.Module):
    """(N, D, C) -> (N, D, C): degree-balanced RMS over all (l, m, c), l = 0 centred.

    ``adam_scale`` (lmax+1, 1, C) per degree, ``bias`` (1, C) on l = 0.
    """

    def __init__(self, lmax: int, channels: int, eps: float, dtype):
        super().__init__()
        self.lmax = lmax
        self.eps = eps
        self.adam_scale = zeros_parameter((lmax + 1, 1, channels), dtype)
        self.bias = zeros_parameter((1, channels), dtype)
        w = [1.0 / ((lmax + 1) * channels) / (2 * l + 1) for l in degree_index(lmax)]
        self.register_buffer("balance", torch.tensor(w, dtype=dtype), persistent=False)
        self.register_buffer("deg", torch.tensor(degree_index(lmax)), persistent=False)

    def forward(self, x):
        x0 = x[:, :1] - x[:, :1].mean(-1, keepdim=True)
        xt = x[:, 1:]
        var = (x0 * x0).sum((1, 2)) * self.balance[0]
        if self.lmax > 0:
            var = var + ((xt * xt) * self.balance[1:, None]).sum((1, 2))
        inv = torch.rsqrt(var + self.eps)[:, None, None]
        scale = self.adam_scale[:, 0, :][self.deg]  # (D, C)
        y0 = x0 * inv * scale[:1] + self.bias
        if self.lmax == 0:
            return y0
        return torch.cat([y0, xt * inv * scale[1:]], 1)


class SO3Linear(nn.Module):
    """(N, D, Cin) -> (N, D, Cout), one (Cin, Cout) matrix per degree; ``weight`` (lmax+1, Cin, Cout)."""

    def __init__(self, lmax: int, c_in: int, c_out: int, dtype, bias: bool = False):
        super().__init__()
        self.weight = zeros_parameter((lmax + 1, c_in, c_out), dtype)
        self.bias = zeros_parameter((c_out,), dtype) if bias else None  # on l = 0 only (mlp_bias)
        self.register_buffer("deg", torch.tensor(degree_index(lmax)), persistent=False)
        self.lmax = lmax

    def forward(self, x):
        if self.lmax == 0:
            y = x @ self.weight[0]
            return y + self.bias if self.bias is not None else y
        w = self.weight[self.deg]  # (D, Cin, Cout)
        y = torch.matmul(x.transpose(0, 1), w).transpose(0, 1)
        if self.bias is not None:
            y = torch.cat([y[:, :1] + self.bias, y[:, 1:]], 1)
        return y


class FocusLinear(nn.Module):
    """(..., Cin) @ weight (Cin, Cout) (+ bias (Cout,)), one focus stream."""

    def __init__(self, c_in: int, c_out: int, dtype, bias: bool = False):
        super().__init__()
        self.weight = zeros_parameter((c_in, c_out), dtype)
        self.bias = zeros_parameter((c_out,), dtype) if bias else None

    def forward(self, x):
        y = x @ self.weight
        return y + self.bias if self.bias is not None else y


def c3_envelope(r: torch.Tensor, rcut: float, p: int) -> torch.Tensor:
    """C^3 cutoff envelope ``u**4 * sum_k C(k+3, 3) (1-u)**k`` (k < p), ``u = clip((rc - r)/rc, 0, 1)``."""
    u = torch.clamp((rcut - r) / rcut, min=0.0, max=1.0)
    x = 1.0 - u
    coeffs = [float(math.comb(k + 3, 3)) for k in range(p)]
    series = torch.full_like(x, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        series = c + x * series
    return u ** 4 * series


class RadialBasis(nn.Module):
    """(E, 1) length -> (E, n) basis times the C^3 envelope; ``adam_freqs`` (1, n).

    bessel: ``sin(f r) / r`` (``f = k pi / rcut``); gaussian: ``exp(-(r - mu)**2 / (2 w**2))``.
    """

    def __init__(self, rcut: float, n: int, kind: str, exponent: int, dtype):
        super().__init__()
        self.rcut, self.kind, self.exponent = rcut, kind, exponent
        self.adam_freqs = zeros_parameter((1, n), dtype)
        width = rcut / max(n - 1, 1)
        self.gauss = -0.5 / (width * width)

    def forward(self, r):
        f = self.adam_freqs
        if self.kind == "bessel":
            pz = r * f
            zero = pz == 0.0
            safe = torch.where(zero, torch.ones_like(pz), pz)
            raw = f * torch.where(zero, torch.ones_like(pz), torch.sin(safe) / safe)
        else:
            d = r - f
            raw = torch.exp(d * d * self.gauss)
        return raw * c3_envelope(r, self.rcut, self.exponent)


class RadialMLP(nn.Module):
    """Bias-free MLP ``net.{i}``: Dense, (RMSNorm), act, ..., Dense."""

    def __init__(self, layers: list[int], act: str, norm: bool, eps: float, dtype):
        super().__init__()
        mods = []
        for i in range(len(layers) - 1):
            mods.append(Dense(layers[i], layers[i + 1], False, None, dtype))
            if i < len(layers) - 2:
                if norm:
                    mods.append(RMSNorm((layers[i + 1],), eps, dtype))
                mods.append(_Act(act))
        self.net = nn.ModuleList(mods)

    def forward(self, x):
        for m in self.net:
            x = m(x)
        return x


class _Act(nn.Module):
    def __init__(self, name: str):
        super().__init__()
        self.fn = activation(name)

    def forward(self, x):
        return self.fn(x)


class GatedActivation(nn.Module):
    """Gate l > 0 by ``sigmoid(gate_linear(scalar))`` and activate l = 0.

    x (B, D, C) in any degree layout described by ``degrees`` (degree of each
    row, row 0 the l = 0 scalar). Without ``gate``: ``x0 -> act(x0)`` and the
    gate source is ``x0``; with ``gate`` (same shape): ``x0 * act(g0)`` and the
    source is ``g0``. ``gate_linear.weight`` (C, lmax*C).
    """

    def __init__(self, degrees: list[int], channels: int, act: str, dtype, bias: bool = False):
        super().__init__()
        self.lmax = max(degrees)
        self.channels = channels
        self.act = activation(act)
        if self.lmax > 0:
            self.gate_linear = FocusLinear(channels, self.lmax * channels, dtype, bias)
            self.register_buffer("rows", torch.tensor([d - 1 for d in degrees[1:]]), persistent=False)

    def forward(self, x, gate=None):
        src = x[:, 0] if gate is None else gate[:, 0]
        x0 = self.act(x[:, :1]) if gate is None else x[:, :1] * self.act(gate[:, :1])
        if self.lmax == 0:
            return x0
        g = torch.sigmoid(self.gate_linear(src)).reshape(x.shape[0], self.lmax, self.channels)
        return torch.cat([x0, x[:, 1:] * g[:, self.rows]], 1)


def s2_grid(lmax: int, mmax: int, coeff_index=None) -> tuple[np.ndarray, np.ndarray]:
    """deepmd-kit's S2 projectors on an exact degree ``3*lmax`` rule: to_grid (G, D), from_grid (D, G).

    to: ``Y/sqrt(lmax+1)``; from: ``w Y sqrt(lmax+1) (2l+1)`` (Y the y-polar "norm" harmonics);
    degrees l > mmax rescaled by ``sqrt((2l+1)/(2mmax+1))`` in both; ``coeff_index`` picks rows.
    """
    pts, w = sphere_quadrature(3 * lmax)
    y = real_sh(pts[:, [2, 0, 1]], lmax)  # component norm, grid basis
    degs = np.asarray(degree_index(lmax))
    y = y / np.sqrt(2 * degs + 1.0)  # "norm" normalisation
    scale = math.sqrt(lmax + 1.0)
    to_g = y / scale
    from_g = y * (w[:, None] * scale * (2 * degs + 1.0)[None, :])
    if mmax != lmax:
        resc = np.where(degs > mmax, np.sqrt((2 * degs + 1.0) / (2 * mmax + 1.0)), 1.0)
        to_g = to_g * resc
        from_g = from_g * resc
    if coeff_index is not None:
        to_g = to_g[:, coeff_index]
        from_g = from_g[:, coeff_index]
    return to_g, from_g.T.copy()


class S2GridGLU(nn.Module):
    """deepmd-kit's S2 grid net, ``mode='self'``, ``op='glu'``, one focus stream.

    q (B, D, 2H) -> (B, D, H): split into ``left``/``right``; the coefficient
    path is the grid product ``from_grid(to_grid(left) * to_grid(right))``
    with deepmd-kit's projector scaling (to: ``Y/sqrt(lmax+1)``; from:
    ``w Y sqrt(lmax+1) (2l+1)``, Y the y-polar "norm" harmonics), evaluated on
    an exact rule of degree ``3*lmax`` (any exact rule gives the same numbers
    as deepmd-kit's Lebedev grid). Then every coefficient is scaled by
    ``sigmoid(scalar_gate([l0, r0]))`` and ``silu(l0) * r0`` is added to l = 0.

    ``coeff_index`` selects the stored coefficients among packed (l, m) (the
    m-major truncated layout inside SO(2)); degrees with l > mmax are rescaled
    by ``sqrt((2l+1)/(2mmax+1))`` in both projections as in deepmd-kit.
    """

    def __init__(self, lmax: int, channels: int, dtype, coeff_index=None, mmax: int | None = None,
                 bias: bool = False, n_focus: int = 1):
        super().__init__()
        self.h, self.f = channels, n_focus
        to_g, from_g = s2_grid(lmax, lmax if mmax is None else mmax, coeff_index)
        self.register_buffer("to_grid", torch.tensor(to_g, dtype=dtype), persistent=False)  # (G, D)
        self.register_buffer("from_grid", torch.tensor(from_g, dtype=dtype), persistent=False)  # (D, G)
        self.scalar_gate = FocusLinear(2 * channels, n_focus * channels, dtype, bias)

    def forward(self, q):
        """q (B, D, 2H) -> (B, D, H), or per focus stream (B, D, F, 2H) -> (B, D, F, H)."""
        if q.dim() == 4:
            return self._forward_focus(q)
        h = self.h
        left, right = q[..., :h], q[..., h:]
        gl = torch.matmul(self.to_grid, left)  # (B, G, H)
        gr = torch.matmul(self.to_grid, right)
        out = torch.matmul(self.from_grid, gl * gr)  # (B, D, H)
        pair = torch.cat([left[:, 0], right[:, 0]], -1)  # (B, 2H)
        s_out = torch.nn.functional.silu(pair[:, :h]) * pair[:, h:]
        gate = torch.sigmoid(self.scalar_gate(pair))
        out = out * gate[:, None, :]
        return torch.cat([out[:, :1] + s_out[:, None, :], out[:, 1:]], 1)

    def _forward_focus(self, q):
        bsz, d, f, _ = q.shape
        h = self.h
        left, right = q[..., :h], q[..., h:]  # (B, D, F, H)
        g = torch.matmul(self.to_grid, left.reshape(bsz, d, f * h)) * torch.matmul(
            self.to_grid, right.reshape(bsz, d, f * h))
        out = torch.matmul(self.from_grid, g).reshape(bsz, d, f, h)
        pair = torch.cat([left[:, 0], right[:, 0]], -1)  # (B, F, 2H)
        s_out = torch.nn.functional.silu(pair[..., :h]) * pair[..., h:]
        gate = torch.matmul(pair.transpose(0, 1), self.scalar_gate.weight.reshape(2 * h, f, h).transpose(0, 1))
        gate = gate.transpose(0, 1)  # (B, F, H)
        if self.scalar_gate.bias is not None:
            gate = gate + self.scalar_gate.bias.reshape(f, h)
        out = out * torch.sigmoid(gate)[:, None]
        return torch.cat([out[:, :1] + s_out[:, None], out[:, 1:]], 1)


def so3_frames(kmax: int) -> list[int]:
    """deepmd-kit's Wigner-D frame set ``[0, -1, 1, ..., -kmax, kmax]``."""
    return [0] + [s * k for k in range(1, kmax + 1) for s in (-1, 1)]


@functools.lru_cache(maxsize=None)
def so3_grid(lmax: int, kmax: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact SO(3) projectors for packed (l, m, k) coefficients, k in :func:`so3_frames`.

    Grid rotations ``g = Rz(gamma) R_p`` (``R_p p = z``; p on an exact degree ``3*lmax``
    sphere rule, gamma on ``3*kmax+1`` uniform angles) with Haar weights; exact for the
    cubic integrands of the grid products, so any exact rule gives deepmd-kit's
    (Lebedev x gamma) numbers. Returns to_grid (G, D*K) with entries ``D(g)[(l,k),(l,m)]``
    (zero for ``|k| > l``) and from_grid (D*K, G) ``= (2l+1) w D(g)[(l,k),(l,m)]``.
    """
    frames = so3_frames(kmax)
    pts, w = sphere_quadrature(3 * lmax)
    n_gamma = 1 if kmax == 0 else 3 * kmax + 1
    gam = 2.0 * math.pi * np.arange(n_gamma) / n_gamma
    rz = np.zeros((n_gamma, 3, 3))
    rz[:, 0, 0] = rz[:, 1, 1] = np.cos(gam)
    rz[:, 0, 1], rz[:, 1, 0] = -np.sin(gam), np.sin(gam)
    rz[:, 2, 2] = 1.0
    r_p = edge_rotation(torch.tensor(pts, dtype=torch.float64)).numpy()  # (P, 3, 3)
    rot = np.einsum("gij,pjk->pgik", rz, r_p).reshape(-1, 3, 3)
    weights = np.repeat(w, n_gamma) / n_gamma
    tab = WignerTables(lmax)
    couple = [torch.tensor(tab.couple[l]) for l in range(2, lmax + 1)]
    dmat = wigner_blocks(torch.tensor(rot), lmax, torch.tensor(tab.l1), couple).numpy()  # (G, D, D)
    d, k = (lmax + 1) ** 2, len(frames)
    to_g = np.zeros((rot.shape[0], d * k))
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            for j, f in enumerate(frames):
                if abs(f) <= l:
                    to_g[:, (l * l + l + m) * k + j] = dmat[:, l * l + l + f, l * l + l + m]
    degs = np.repeat(np.asarray(degree_index(lmax)), k)
    from_g = (to_g * weights[:, None] * (2.0 * degs + 1.0)[None, :]).T.copy()
    return to_g, from_g


def make_grid_op(op: str, channels: int, mode: str, dtype, n_branches: int = 1):
    """The learnable part of deepmd-kit's grid op (``grid_op.*``), None for ``'glu'``.

    mlp: ``left_proj`` / ``right_proj`` (Cin, 2C) with Cin = 2C (self mode: per-frame ``[l, r]``)
    or C (cross), ``out_proj`` (2C, C); branch: ``left_proj`` / ``right_proj`` (C, nb*C),
    ``router`` (2C, nb), ``out_proj`` (C, C).
    """
    if op == "glu":
        return None
    m = nn.Module()
    if op == "mlp":
        c_in = 2 * channels if mode == "self" else channels
        m.left_proj = FocusLinear(c_in, 2 * channels, dtype)
        m.right_proj = FocusLinear(c_in, 2 * channels, dtype)
        m.out_proj = FocusLinear(2 * channels, channels, dtype)
    else:
        m.left_proj = FocusLinear(channels, n_branches * channels, dtype)
        m.right_proj = FocusLinear(channels, n_branches * channels, dtype)
        m.router = FocusLinear(2 * channels, n_branches, dtype)
        m.out_proj = FocusLinear(channels, channels, dtype)
    return m


def apply_grid_op(op: str, mod, mode: str, left, right, pair, product):
    """Grid op on coefficient operands (B, D, [F,] K, C) -> same shape.

    glu: ``product(l, r)``; mlp: ``out_proj(product(left_proj(u), right_proj(v)))`` with
    ``u = v = [l, r]`` (self) or ``u, v = l, r`` (cross); branch: ``nb`` products of
    ``left_proj(l)``, ``right_proj(r)`` mixed by ``softmax(router(pair))`` (pair (B, [F,] 2C)),
    then ``out_proj``. ``product(a, b)`` is ``from_grid(to_grid(a) * to_grid(b))``.
    """
    if op == "glu":
        return product(left, right)
    if op == "mlp":
        if mode == "self":
            left = right = torch.cat([left, right], -1)
        return mod.out_proj(product(mod.left_proj(left), mod.right_proj(right)))
    c = left.shape[-1]
    p = product(mod.left_proj(left), mod.right_proj(right))
    p = p.reshape(*p.shape[:-1], -1, c)  # (B, D, [F,] K, nb, C)
    r = torch.softmax(mod.router(pair), -1)  # (B, [F,] nb)
    r = r.reshape(r.shape[0], 1, *r.shape[1:-1], 1, r.shape[-1], 1)
    return mod.out_proj((p * r).sum(-2))


class SO3GridNet(nn.Module):
    """deepmd-kit's SO(3) (Wigner-D) grid net, ``mode='self'``, one focus stream; with ``kmax=None``
    the S2 grid net on the same footing (K = 1, S2 projectors).

    q (B, D, 2KH) -> (B, D, KH), K = 2*kmax+1 frames, channel index ``frame * H + c``;
    halves ``left``/``right``, combined by :func:`apply_grid_op` (op ``'glu'``, ``'mlp'``,
    ``'branch'``). Then every coefficient is scaled by ``sigmoid(scalar_gate(s))`` and
    ``silu(s_l) * s_r`` is added to (l, k) = (0, 0), with ``s = [left, right]`` at
    (l, k) = (0, 0) (B, 2H).
    """

    def __init__(self, lmax: int, kmax: int | None, channels: int, op: str, dtype, bias: bool = False,
                 n_branches: int = 1):
        super().__init__()
        self.h, self.op = channels, op
        self.k = 1 if kmax is None else len(so3_frames(kmax))
        to_g, from_g = s2_grid(lmax, lmax) if kmax is None else so3_grid(lmax, kmax)
        self.register_buffer("to_grid", torch.tensor(to_g, dtype=dtype), persistent=False)  # (G, D*K)
        self.register_buffer("from_grid", torch.tensor(from_g, dtype=dtype), persistent=False)  # (D*K, G)
        self.scalar_gate = FocusLinear(2 * channels, channels, dtype, bias)
        self.grid_op = make_grid_op(op, channels, "self", dtype, n_branches)

    def _product(self, a, b):
        """(B, D, K, C) x2 -> (B, D, K, C) ``from_grid(to_grid(a) * to_grid(b))``."""
        bsz, d, k, c = a.shape
        ga = torch.matmul(self.to_grid, a.reshape(bsz, d * k, c))  # (B, G, C)
        gb = torch.matmul(self.to_grid, b.reshape(bsz, d * k, c))
        return torch.matmul(self.from_grid, ga * gb).reshape(bsz, d, k, c)

    def forward(self, q):
        bsz, d, _ = q.shape
        h, k = self.h, self.k
        left = q[..., : k * h].reshape(bsz, d, k, h)
        right = q[..., k * h:].reshape(bsz, d, k, h)
        pair = torch.cat([left[:, 0, 0], right[:, 0, 0]], -1)  # (B, 2H)
        out = apply_grid_op(self.op, self.grid_op, "self", left, right, pair, self._product)
        out = out * torch.sigmoid(self.scalar_gate(pair))[:, None, None, :]
        s_out = torch.nn.functional.silu(pair[:, :h]) * pair[:, h:]
        head = torch.cat([out[:, :1, :1] + s_out[:, None, None, :], out[:, :1, 1:]], 2)
        return torch.cat([head, out[:, 1:]], 1).reshape(bsz, d, k * h)


class CrossGridNet(nn.Module):
    """deepmd-kit's ``mode='cross'`` grid net on packed coefficients (the ``message_node_*`` product).

    query, context (B, D, F*C) -> (B, D, F*C), F focus streams of C channels. S2 (``kmax=None``):
    operands as they are; SO(3): ``frame_expand`` (lmax+1, C, KC) per degree on both,
    ``frame_contract`` (lmax+1, KC, C) at the end (channel index ``frame * C + c`` inside a stream).
    Grid op (:func:`apply_grid_op`) glu: ``from(to(q) * to(x))``; mlp: ``grid_op.left_proj``
    (C, 2C) on q, ``right_proj`` (C, 2C) on x, product, ``out_proj`` (2C, C), per frame; branch. Then every coefficient is scaled by
    ``sigmoid(scalar_gate(s))`` (per stream, (2C, F*C)) and ``silu(s_q) * s_x`` is added to
    (l, k) = (0, 0), ``s = [q, x]`` at l = 0 before the expansion (B, F, 2C); finally the
    ``residual_scale`` (F, C). ``coeff_index`` / ``mmax``: the operands hold only those packed rows
    (the m-major truncated edge-frame layout of the ``node_wise_*`` product; S2 degrees above
    ``mmax`` rescaled as in :func:`s2_grid`).
    """

    def __init__(self, lmax: int, channels: int, op: str, dtype, bias: bool = False, kmax: int | None = None,
                 n_focus: int = 1, n_branches: int = 1, coeff_index=None, mmax: int | None = None):
        super().__init__()
        self.c, self.op, self.f = channels, op, n_focus
        self.k = k = 1 if kmax is None else len(so3_frames(kmax))
        mmax = lmax if mmax is None else mmax
        idx = list(range((lmax + 1) ** 2)) if coeff_index is None else list(coeff_index)
        if kmax is None:
            to_g, from_g = s2_grid(lmax, mmax, idx)
        else:
            to_g, from_g = so3_grid(lmax, kmax)
            cols = [p * k + j for p in idx for j in range(k)]
            to_g, from_g = to_g[:, cols], from_g[cols]
        self.register_buffer("to_grid", torch.tensor(to_g, dtype=dtype), persistent=False)  # (G, D*K)
        self.register_buffer("from_grid", torch.tensor(from_g, dtype=dtype), persistent=False)  # (D*K, G)
        degs = degree_index(lmax)
        self.register_buffer("deg", torch.tensor([degs[p] for p in idx]), persistent=False)
        self.scalar_gate = FocusLinear(2 * channels, n_focus * channels, dtype, bias)
        self.grid_op = make_grid_op(op, channels, "cross", dtype, n_branches)
        self.frame_expand = self.frame_contract = None
        if kmax is not None:
            self.frame_expand = nn.Module()
            self.frame_expand.weight = zeros_parameter((lmax + 1, channels, self.k * channels), dtype)
            self.frame_contract = nn.Module()
            self.frame_contract.weight = zeros_parameter((lmax + 1, self.k * channels, channels), dtype)
        self.residual_scale = zeros_parameter((n_focus, channels), dtype)

    def _product(self, a, b):
        """(B, D, F, K, C') x2 -> (B, D, F, K, C') ``from_grid(to_grid(a) * to_grid(b))``."""
        bsz, d, f, k, c = a.shape

        def flat(v):
            return v.permute(0, 1, 3, 2, 4).reshape(bsz, d * k, f * c)

        g = torch.matmul(self.to_grid, flat(a)) * torch.matmul(self.to_grid, flat(b))  # (B, G, F*C')
        return torch.matmul(self.from_grid, g).reshape(bsz, d, k, f, c).permute(0, 1, 3, 2, 4)

    def _per_degree(self, x, weight):
        """(B, D, F, Cin) @ weight[l(d)] (lmax+1, Cin, Cout) -> (B, D, F, Cout)."""
        return torch.matmul(x.transpose(0, 1), weight[self.deg][:, None]).transpose(0, 1)

    def forward(self, query, context):
        bsz, d, _ = query.shape
        f, c, k = self.f, self.c, self.k
        q = query.reshape(bsz, d, f, c)
        x = context.reshape(bsz, d, f, c)
        pair = torch.cat([q[:, 0], x[:, 0]], -1)  # (B, F, 2C)
        if self.frame_expand is not None:
            q = self._per_degree(q, self.frame_expand.weight)
            x = self._per_degree(x, self.frame_expand.weight)
        q = q.reshape(bsz, d, f, k, c)
        x = x.reshape(bsz, d, f, k, c)
        out = apply_grid_op(self.op, self.grid_op, "cross", q, x, pair, self._product)
        gate = torch.matmul(pair.transpose(0, 1), self.scalar_gate.weight.reshape(2 * c, f, c).transpose(0, 1))
        gate = gate.transpose(0, 1)  # (B, F, C)
        if self.scalar_gate.bias is not None:
            gate = gate + self.scalar_gate.bias.reshape(f, c)
        out = out * torch.sigmoid(gate)[:, None, :, None, :]
        s_out = torch.nn.functional.silu(pair[..., :c]) * pair[..., c:]  # (B, F, C)
        head = torch.cat([out[:, :1, :, :1] + s_out[:, None, :, None, :], out[:, :1, :, 1:]], 3)
        out = torch.cat([head, out[:, 1:]], 1).reshape(bsz, d, f, k * c)
        if self.frame_contract is not None:
            out = self._per_degree(out, self.frame_contract.weight)
        return (out * self.residual_scale).reshape(bsz, d, f * c)


class EquivariantFFN(nn.Module):
    """SO3Linear -> (S2 grid GLU | SO(3) grid net | gated activation) -> SO3Linear; (N, D, C) -> (N, D, C).

    ``so3_grid`` (``'glu'`` / ``'mlp'`` / ``'branch'``, with ``kmax``): deepmd-kit's ``ffn_so3_grid``
    path (K = 2*kmax+1 frames: the linears are (C, 2KH) and (KH, C)); ``s2_op`` the op of the S2
    grid path; ``n_branches`` for ``'branch'``.
    """

    def __init__(self, lmax: int, channels: int, hidden: int, s2_grid: bool, glu: bool, act: str, dtype,
                 bias: bool = False, so3_grid: str | None = None, kmax: int = 1, s2_op: str = "glu",
                 n_branches: int = 1):
        super().__init__()
        self.s2_grid, self.glu, self.hidden = s2_grid or so3_grid is not None, glu, hidden
        frames = len(so3_frames(kmax)) if so3_grid is not None else 1
        width = 2 * frames * hidden if (self.s2_grid or glu) else hidden
        self.so3_linear_1 = SO3Linear(lmax, channels, width, dtype, bias)
        if so3_grid is not None:
            self.act = SO3GridNet(lmax, kmax, hidden, so3_grid, dtype, bias, n_branches)
        elif s2_grid and s2_op != "glu":
            self.act = SO3GridNet(lmax, None, hidden, s2_op, dtype, bias, n_branches)
        elif s2_grid:
            self.act = S2GridGLU(lmax, hidden, dtype, bias=bias)
        else:
            self.act = GatedActivation(degree_index(lmax), hidden, act, dtype, bias)
        self.so3_linear_2 = SO3Linear(lmax, frames * hidden, channels, dtype, bias)

    def forward(self, x):
        y = self.so3_linear_1(x)
        if self.s2_grid:
            y = self.act(y)
        elif self.glu:
            y = self.act(y[..., : self.hidden], gate=y[..., self.hidden:])
        else:
            y = self.act(y)
        return self.so3_linear_2(y)
