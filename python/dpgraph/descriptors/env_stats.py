"""Input statistics of the env-matrix descriptors (se_atten / DPA1): ``davg``, ``dstd``.

deepmd-kit's se_a convention: per center type, ``davg = [mean(s), 0, 0, 0]``
and ``dstd = [std(s), std(a), std(a), std(a)]`` where ``s`` is the first and
``a`` the three last columns of the raw environment matrix, averaged over
``max(deg, nnei)`` slots per center (so a center with fewer than ``nnei``
neighbors counts the missing slots as zeros, as deepmd-kit's padded layout
does). Standard deviations below 1e-2 are raised to 1e-2; a type that never
appears gets ``davg = 0``, ``dstd = 0.1``. Only owned nodes are centers.
"""

from __future__ import annotations

from typing import Iterable

import torch

from ..graph.neighbor_graph import node_frames
from ..ops import segment_sum
from .env import edge_env_mat

STD_PROTECTION = 1e-2
STD_DEFAULT = 0.1


@torch.no_grad()
def env_mat_stats(descriptor, graphs: Iterable) -> tuple[torch.Tensor, torch.Tensor]:
    """Set ``descriptor.davg/dstd`` from NeighborGraphs; returns copies of (davg, dstd), each (ntypes, 4)."""
    nt = descriptor.ntypes
    acc = torch.zeros(nt, 5, dtype=torch.float64)  # n, sum s, sum s^2, sum a, sum a^2
    for g in graphs:
        atype, src, dst = g.atype, g.src, g.dst
        vec = g.edge_vec.to(torch.float64)
        mask = descriptor.edge_mask_effective(atype, src, dst, vec, g.edge_mask)
        env, _ = edge_env_mat(vec, mask, descriptor.rcut, descriptor.rcut_smth, descriptor.env_protection)
        n = atype.shape[0]
        # only owned nodes are centers; ghost nodes (MPI layouts) are skipped
        owned = node_frames(g.n_node, n)[2]
        per_node = segment_sum(
            torch.stack([env[:, 0], env[:, 0] ** 2, env[:, 1:].sum(1), (env[:, 1:] ** 2).sum(1)], 1), dst, n
        )
        deg = segment_sum(mask.to(torch.float64), dst, n)
        slots = torch.clamp(deg, min=float(descriptor.nnei))
        rows = torch.cat([slots[:, None], per_node], 1)[owned]
        acc += segment_sum(rows.cpu(), atype[owned].cpu(), nt)
    davg = torch.zeros(nt, 4, dtype=torch.float64)
    dstd = torch.full((nt, 4), STD_DEFAULT, dtype=torch.float64)
    seen = acc[:, 0] > 0
    ns = acc[seen, 0]
    mean_s = acc[seen, 1] / ns
    std_s = torch.sqrt(torch.clamp(acc[seen, 2] / ns - mean_s**2, min=0.0))
    na = 3 * ns
    std_a = torch.sqrt(torch.clamp(acc[seen, 4] / na - (acc[seen, 3] / na) ** 2, min=0.0))
    davg[seen, 0] = 0.0 if descriptor.set_davg_zero else mean_s
    dstd[seen, 0] = std_s
    dstd[seen, 1:] = std_a[:, None]
    dstd = torch.where(dstd.abs() < STD_PROTECTION, torch.full_like(dstd, STD_PROTECTION), dstd)
    descriptor.davg.copy_(davg)
    descriptor.dstd.copy_(dstd)
    return descriptor.davg.clone(), descriptor.dstd.clone()
