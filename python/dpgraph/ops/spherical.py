"""Real spherical harmonics up to l = 3 and their Gaunt coupling tensor.

Convention (fixed; the equivariant model and its tests rely on it):

* packed index ``k = l*l + (m + l)`` for ``l = 0..lmax``, ``m = -l..l``, so a
  feature with ``lmax`` has ``K = (lmax + 1)**2`` components;
* the standard real (tesseral) harmonics of a unit vector ``u = (x, y, z)``
  with ``z`` the polar axis and no Condon-Shortley phase, e.g.
  ``Y_1 = sqrt(3) (y, z, x)`` for ``m = -1, 0, 1``;
* "component" normalization: ``sum_m Y_lm(u)**2 = 2l + 1`` for every unit
  ``u`` (``Y_00 = 1``), i.e. ``sqrt(4 pi)`` times the orthonormal harmonics,
  so that ``(1/4pi) int Y_a Y_b dOmega = delta_ab``.

Under a rotation ``R``, ``Y_l(R u) = D_l(R) Y_l(u)`` with a real orthogonal
Wigner matrix ``D_l``; under the inversion ``Y_l(-u) = (-1)**l Y_l(u)``.

The Gaunt tensor ``G[a, b, c] = (1/4pi) int Y_a Y_b Y_c dOmega`` couples two
features into a third one equivariantly; it is nonzero only when
``l_a + l_b + l_c`` is even and the triangle rule holds, so no pseudotensors
appear. For ``l_a + l_b <= lmax``: ``Y_a Y_b = sum_c G[a, b, c] Y_c``.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

LMAX_SUPPORTED = 3

__all__ = ["LMAX_SUPPORTED", "n_sph", "degree_index", "real_sph_harm", "gaunt_tensor"]


def n_sph(lmax: int) -> int:
    """Number of packed (l, m) components: ``(lmax + 1)**2``."""
    return (lmax + 1) ** 2


def degree_index(lmax: int) -> torch.Tensor:
    """(K,) int64: the degree ``l`` of every packed (l, m) position."""
    return torch.tensor([l for l in range(lmax + 1) for _ in range(2 * l + 1)], dtype=torch.int64)


def _check_lmax(lmax: int) -> None:
    if not isinstance(lmax, int) or isinstance(lmax, bool) or not 0 <= lmax <= LMAX_SUPPORTED:
        raise ValueError(f"lmax must be an integer in [0, {LMAX_SUPPORTED}], got {lmax!r}")


def real_sph_harm(u: torch.Tensor, lmax: int) -> torch.Tensor:
    """Real spherical harmonics of unit vectors (component normalization).

    u : (..., 3) unit vectors (not re-normalized here).
    Returns (..., (lmax + 1)**2) in the packed order of the module docstring.
    Polynomials in x, y, z only: traceable and smooth everywhere.
    """
    _check_lmax(lmax)
    x, y, z = u[..., 0], u[..., 1], u[..., 2]
    comps = [torch.ones_like(x)]
    if lmax >= 1:
        s3 = math.sqrt(3.0)
        comps += [s3 * y, s3 * z, s3 * x]
    if lmax >= 2:
        s15, s5 = math.sqrt(15.0), math.sqrt(5.0)
        x2, y2, z2 = x * x, y * y, z * z
        comps += [s15 * x * y, s15 * y * z, 0.5 * s5 * (3.0 * z2 - 1.0), s15 * x * z, 0.5 * s15 * (x2 - y2)]
    if lmax >= 3:
        a, b, c = math.sqrt(35.0 / 8.0), math.sqrt(105.0), math.sqrt(21.0 / 8.0)
        comps += [
            a * y * (3.0 * x2 - y2),
            b * x * y * z,
            c * y * (5.0 * z2 - 1.0),
            0.5 * math.sqrt(7.0) * z * (5.0 * z2 - 3.0),
            c * x * (5.0 * z2 - 1.0),
            0.5 * b * z * (x2 - y2),
            a * x * (x2 - 3.0 * y2),
        ]
    return torch.stack(comps, dim=-1)


@functools.lru_cache(maxsize=None)
def _gaunt_numpy(lmax: int) -> np.ndarray:
    # product quadrature, exact for polynomials of degree <= 3 lmax <= 9 on the sphere:
    # Gauss-Legendre in z = cos(theta) (exact to degree 2n-1) x trapezoid in phi
    # (exact for trigonometric degree < n_phi)
    zs, wz = np.polynomial.legendre.leggauss(8)
    n_phi = 24
    phi = 2.0 * np.pi * np.arange(n_phi) / n_phi
    st = np.sqrt(1.0 - zs**2)
    pts = np.stack([st[:, None] * np.cos(phi)[None], st[:, None] * np.sin(phi)[None],
                    np.broadcast_to(zs[:, None], (zs.size, n_phi))], -1).reshape(-1, 3)
    w = np.broadcast_to(wz[:, None] / (2.0 * n_phi), (zs.size, n_phi)).reshape(-1)  # sums to 1 (= 1/4pi int)
    y = real_sph_harm(torch.from_numpy(pts), lmax).numpy()  # (P, K)
    g = np.einsum("p,pa,pb,pc->abc", w, y, y, y)
    g[np.abs(g) < 1e-12] = 0.0
    return g


def gaunt_tensor(lmax: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(K, K, K) Gaunt coefficients ``(1/4pi) int Y_a Y_b Y_c dOmega`` of the real harmonics."""
    _check_lmax(lmax)
    return torch.from_numpy(_gaunt_numpy(lmax).copy()).to(dtype)
