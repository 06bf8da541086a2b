"""Per-edge environment matrix of the se_a / se_atten family.

For an edge with vector ``x = r_src - r_dst`` (Å) and length ``r``::

    sw(r)  = smooth switch: 1 below rcut_smth, 0 above rcut, C2 in between
    env    = sw * [1/(r+p), x/(r+p)^2, y/(r+p)^2, z/(r+p)^2]     (1/Å)

with ``p = env_protection``, exactly deepmd-kit's ``_make_env_mat``.
Masked (padding) edges get a safe stand-in vector before any division, so
their values and gradients are finite, and are then zeroed (double ``where``).
"""

from __future__ import annotations

import torch


def type_pair_table(ntypes: int, pairs) -> torch.Tensor:
    """(ntypes * ntypes,) bool, True at ``a * ntypes + b`` and ``b * ntypes + a`` for each pair (a, b).

    Index it with ``atype[dst] * ntypes + atype[src]`` to test an edge's type pair.
    """
    table = torch.zeros(ntypes, ntypes, dtype=torch.bool)
    for a, b in pairs:
        table[int(a), int(b)] = table[int(b), int(a)] = True
    return table.reshape(-1)


def smooth_switch(r: torch.Tensor, rcut_smth: float, rcut: float) -> torch.Tensor:
    """deepmd-kit's switch ``u^3 (-6u^2 + 15u - 10) + 1`` with ``u`` clipped to [0, 1].

    r : (...) distances in Å -> (...) in [0, 1].
    """
    u = (torch.clamp(r, rcut_smth, rcut) - rcut_smth) / (rcut - rcut_smth)
    return u * u * u * (-6.0 * u * u + 15.0 * u - 10.0) + 1.0


def safe_edge_vec(edge_vec: torch.Tensor, edge_mask: torch.Tensor) -> torch.Tensor:
    """(E, 3): ``edge_vec`` on real edges, (1, 1, 1) Å on masked ones.

    Use the result for every nonlinear function of the geometry; mask after.
    """
    return torch.where(edge_mask[:, None], edge_vec, torch.ones_like(edge_vec))


def edge_env_mat(
    edge_vec: torch.Tensor,
    edge_mask: torch.Tensor,
    rcut: float,
    rcut_smth: float,
    protection: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Environment matrix and switch of every edge.

    Parameters
    ----------
    edge_vec : (E, 3) Å
    edge_mask : (E,) bool, False on padding

    Returns
    -------
    env : (E, 4) 1/Å, zero on masked edges and beyond rcut
    sw : (E,) switch value, zero on masked edges
    """
    vec = safe_edge_vec(edge_vec, edge_mask)
    r = torch.linalg.vector_norm(vec, dim=-1)
    sw = smooth_switch(r, rcut_smth, rcut)
    sw = torch.where(edge_mask, sw, torch.zeros_like(sw))
    rp = r + protection
    env = torch.cat([(1.0 / rp)[:, None], vec / (rp * rp)[:, None]], dim=-1) * sw[:, None]
    return env, sw
