"""Spherical-harmonic bases, Wigner-D blocks and an exact sphere quadrature for DPA4.

Two real bases appear in deepmd-kit's DPA4 (both "norm"-normalised up to the
stated factor, packed index ``k = l*l + l + m``):

* the *feature* basis in which node and edge coefficients live and Wigner-D
  blocks act: ``Yc'_lm(u) = s(l, m) * Y_lm(u)`` with ``Y_lm`` the standard
  z-polar real harmonics without Condon-Shortley phase in component
  normalisation (``sum_m Y_lm**2 = 2l + 1``) and ``s = (-1)**(l+m)`` for
  ``m >= 0``, ``-(-1)**(l+|m|)`` for ``m < 0`` (l = 1 is ``sqrt(3)(-y, -z, x)``);
* the *grid* basis of the S2 projectors (e3nn's y-polar convention):
  ``Y_lm(z, x, y) / sqrt(2l + 1)``.

Everything here is polynomial in the unit-vector components, so it traces
and differentiates everywhere.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

__all__ = [
    "feature_sign",
    "real_sh",
    "sphere_quadrature",
    "edge_rotation",
    "wigner_blocks",
]


def feature_sign(lmax: int) -> np.ndarray:
    """((lmax+1)**2,) the sign ``s(l, m)`` of the feature basis."""
    out = []
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            out.append((-1.0) ** (l + m) if m >= 0 else -((-1.0) ** (l + abs(m))))
    return np.asarray(out)


def real_sh(u, lmax: int):
    """Standard real harmonics, component normalisation, no Condon-Shortley phase.

    u : (..., 3) unit vectors, numpy array or torch tensor.
    Returns (..., (lmax+1)**2) in packed (l, m) order.
    """
    lib = torch if isinstance(u, torch.Tensor) else np
    x, y, z = u[..., 0], u[..., 1], u[..., 2]
    a = [lib.ones_like(x)]  # Re (x + i y)**m
    b = [lib.zeros_like(x)]  # Im (x + i y)**m
    for m in range(1, lmax + 1):
        a.append(a[-1] * x - b[-1] * y)
        b.append(a[-2] * y + b[-1] * x)
    q = {}
    for m in range(lmax + 1):
        dfact = float(np.prod(np.arange(1, 2 * m, 2))) if m > 0 else 1.0
        q[(m, m)] = lib.ones_like(z) * dfact
        if m + 1 <= lmax:
            q[(m + 1, m)] = (2 * m + 1) * z * q[(m, m)]
        for l in range(m + 2, lmax + 1):
            q[(l, m)] = ((2 * l - 1) * z * q[(l - 1, m)] - (l + m - 1) * q[(l - 2, m)]) / (l - m)
    comps = []
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            am = abs(m)
            norm = math.sqrt((2 * l + 1) * math.factorial(l - am) / math.factorial(l + am))
            if m > 0:
                comps.append(norm * math.sqrt(2.0) * q[(l, am)] * a[am])
            elif m == 0:
                comps.append(norm * q[(l, 0)])
            else:
                comps.append(norm * math.sqrt(2.0) * q[(l, am)] * b[am])
    return lib.stack(comps, -1) if lib is np else torch.stack(comps, -1)


@functools.lru_cache(maxsize=None)
def sphere_quadrature(degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre (in z) x uniform (in phi) rule, exact for polynomials of ``degree``.

    Returns points (G, 3) on the unit sphere and weights (G,) summing to 1.
    """
    n_z = degree // 2 + 1
    n_phi = degree + 1
    zs, wz = np.polynomial.legendre.leggauss(n_z)
    phi = 2.0 * math.pi * np.arange(n_phi) / n_phi
    rho = np.sqrt(1.0 - zs * zs)
    pts = np.stack(
        [np.outer(rho, np.cos(phi)), np.outer(rho, np.sin(phi)), np.broadcast_to(zs[:, None], (n_z, n_phi))], -1
    ).reshape(-1, 3)
    w = (np.broadcast_to(wz[:, None], (n_z, n_phi)) / (2.0 * n_phi)).reshape(-1)
    return pts, w


def _rodrigues_to(u: torch.Tensor, t: float) -> torch.Tensor:
    """(E, 3) unit u -> (E, 3, 3) rotation taking u to t*z (t = +1 or -1), singular at u = -t*z."""
    x, y, z = u[:, 0], u[:, 1], u[:, 2]
    # k = u x (t z) = t (y, -x, 0); c = t z
    kx, ky = t * y, -t * x
    c = t * z
    f = 1.0 / (1.0 + c)
    one = torch.ones_like(x)
    # R = I + [k]x + [k]x^2 / (1 + c), with kz = 0
    r00 = one - f * ky * ky
    r01 = f * kx * ky
    r02 = ky
    r10 = f * kx * ky
    r11 = one - f * kx * kx
    r12 = -kx
    r20 = -ky
    r21 = kx
    r22 = one - f * (kx * kx + ky * ky)
    return torch.stack([r00, r01, r02, r10, r11, r12, r20, r21, r22], -1).reshape(-1, 3, 3)


def edge_rotation(u: torch.Tensor) -> torch.Tensor:
    """(E, 3) unit edge directions -> (E, 3, 3) rotations R with ``R u = +z``.

    Two Rodrigues charts (towards +z for u_z >= 0; towards -z followed by a
    half turn about x otherwise), chosen with a double ``where`` so the unused
    chart never produces a NaN gradient. The roll about the edge differs
    between charts; DPA4 is exactly roll-equivariant, so the energy and its
    gradient do not depend on it.
    """
    up = u[:, 2:3] >= 0.0
    safe_pos = torch.where(up, u, torch.tensor([0.0, 0.0, 1.0], dtype=u.dtype).expand_as(u))
    safe_neg = torch.where(up, torch.tensor([0.0, 0.0, -1.0], dtype=u.dtype).expand_as(u), u)
    r_pos = _rodrigues_to(safe_pos, 1.0)
    flip = torch.tensor([1.0, -1.0, -1.0], dtype=u.dtype)
    r_neg = flip[None, :, None] * _rodrigues_to(safe_neg, -1.0)
    return torch.where(up[:, :, None], r_pos, r_neg)


class WignerTables:
    """Constant tables for :func:`wigner_blocks` (numpy float64).

    ``couple[l]`` (2l+1, 3(2l-1)) is the isometric intertwiner that picks the
    degree-l part of ``(degree l-1) x (degree 1)`` in the feature basis, from
    the exact projection of ``Y_{l-1,b} Y_{1,c}`` onto ``Y_{l,a}``.
    """

    def __init__(self, lmax: int):
        self.lmax = lmax
        pts, w = sphere_quadrature(2 * lmax + 1)
        y = real_sh(pts, lmax) * feature_sign(lmax)  # (G, D)
        self.couple = {}
        for l in range(2, lmax + 1):
            yl = y[:, l * l:(l + 1) ** 2]
            ya = y[:, (l - 1) ** 2: l * l]
            y1 = y[:, 1:4]
            prod = (ya[:, :, None] * y1[:, None, :]).reshape(len(w), -1)  # (G, 3(2l-1))
            c = (yl * w[:, None]).T @ prod  # (2l+1, 3(2l-1))
            c /= np.linalg.norm(c, axis=1, keepdims=True)
            self.couple[l] = c
        # l = 1: D1 = P R P^T with the feature basis (-y, -z, x)
        self.l1 = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


def wigner_blocks(rot: torch.Tensor, lmax: int, l1: torch.Tensor, couple: list[torch.Tensor]) -> torch.Tensor:
    """Block-diagonal Wigner-D of each rotation in the feature basis, ``Y(R u) = D Y(u)``.

    rot : (E, 3, 3); l1 (3, 3) basis map of degree 1; couple[l-2] from
    :class:`WignerTables`. ``D_l = C_l (D_{l-1} (x) D_1) C_l^T``. Returns (E, D, D).
    """
    n = rot.shape[0]
    d1 = torch.matmul(torch.matmul(l1, rot), l1.transpose(0, 1))  # (E, 3, 3)
    blocks = [rot.new_ones((n, 1, 1)), d1]
    prev = d1
    for l in range(2, lmax + 1):
        k = 2 * l - 1
        kron = (prev[:, :, None, :, None] * d1[:, None, :, None, :]).reshape(n, 3 * k, 3 * k)
        c = couple[l - 2]
        prev = torch.matmul(torch.matmul(c, kron), c.transpose(0, 1))
        blocks.append(prev)
    return _block_diag_batched(blocks[: lmax + 1], n, (lmax + 1) ** 2)


def _block_diag_batched(blocks, n: int, d: int) -> torch.Tensor:
    """List of (n, k_i, k_i) blocks -> (n, d, d) block-diagonal tensor."""
    rows = []
    off = 0
    for b in blocks:
        k = b.shape[-1]
        left = b.new_zeros((n, k, off))
        right = b.new_zeros((n, k, d - off - k))
        rows.append(torch.cat([left, b, right], dim=2))
        off += k
    return torch.cat(rows, dim=1)
