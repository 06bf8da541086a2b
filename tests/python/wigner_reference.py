"""Wigner D-matrices in dpgraph's real spherical-harmonic basis, from e3nn.

e3nn is the independent reference: it supplies ``D_l(R)`` for its own real
harmonics. dpgraph's harmonics span the same spaces in another (orthonormal)
basis, ``Y_l = Q_l Y_l^e3nn``; ``Q_l`` is fitted by least squares on random
directions (and checked to be orthogonal), so ``D_l = Q_l D_l^e3nn Q_l^T``.
Only the test suite imports e3nn.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from e3nn import o3

from dpgraph.ops.spherical import real_sph_harm


@functools.lru_cache(maxsize=None)
def basis_change(l: int) -> tuple[np.ndarray, float, float]:
    """(Q_l, fit residual, |Q Q^T - I|)."""
    gen = torch.Generator().manual_seed(123 + l)
    u = torch.randn(200, 3, generator=gen, dtype=torch.float64)
    u = u / u.norm(dim=1, keepdim=True)
    ours = real_sph_harm(u, l)[:, l * l:]
    ref = o3.spherical_harmonics(l, u, normalize=True, normalization="component")
    sol = torch.linalg.lstsq(ref, ours).solution  # ours = ref @ sol  ->  Q = sol^T
    q = sol.T.numpy()
    resid = float((ref @ sol - ours).abs().max())
    ortho = float(np.abs(q @ q.T - np.eye(2 * l + 1)).max())
    return q, resid, ortho


def wigner_d(rot: np.ndarray, lmax: int) -> np.ndarray:
    """(K, K) block-diagonal D(R) of an orthogonal 3x3 ``rot`` in dpgraph's basis.

    Improper ``rot`` (det -1) = inversion times a rotation: degree l gets (-1)^l.
    """
    rot = np.asarray(rot, dtype=np.float64)
    det = np.sign(np.linalg.det(rot))
    proper = torch.from_numpy(rot * det)
    k = (lmax + 1) ** 2
    d = np.zeros((k, k))
    for l in range(lmax + 1):
        q = basis_change(l)[0]
        old = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)  # e3nn builds its generators in the default dtype
        try:
            dl = o3.Irrep(l, 1).D_from_matrix(proper).numpy()
        finally:
            torch.set_default_dtype(old)
        d[l * l:(l + 1) ** 2, l * l:(l + 1) ** 2] = (det**l) * (q @ dl @ q.T)
    return d


def random_rotation(seed: int, reflect: bool = False) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return -q if reflect else q
