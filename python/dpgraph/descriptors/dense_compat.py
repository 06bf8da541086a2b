"""Reproduce deepmd-kit's dense (sel-padded) neighbor layout on a graph.

deepmd-kit's dense route keeps the ``nnei = sum(sel)`` nearest neighbors of
each center and pads the rest. In smooth attention each padded slot adds
``exp(-shift)`` to the softmax denominator. These helpers give the graph route
the same numbers: :func:`nearest_k_mask` drops edges beyond the nearest
``nnei`` and :func:`phantom_count` counts the padded slots per center; the
descriptor's own ``padded_slot_terms`` adds what those slots contribute.
"""

from __future__ import annotations

import torch

from ..graph.neighbor_graph import node_frames
from ..ops import segment_sum


def nearest_k_mask(r: torch.Tensor, dst: torch.Tensor, edge_mask: torch.Tensor, n_nodes: int, k: int) -> torch.Tensor:
    """(E,) bool: real edges that are among the ``k`` nearest of their center.

    r : (E,) lengths; dst : (E,) centers; ties are broken by edge order.
    """
    big = torch.full_like(dst, n_nodes)
    key_dst = torch.where(edge_mask, dst, big)
    key_r = torch.where(edge_mask, r.detach(), torch.zeros_like(r))
    order = torch.argsort(key_r, stable=True)
    order = order[torch.argsort(key_dst[order], stable=True)]
    deg = segment_sum(edge_mask.to(torch.int64), dst, n_nodes)
    start = torch.cat([torch.cumsum(deg, 0) - deg, deg.new_zeros(1)])
    sorted_dst = key_dst[order]
    rank_sorted = torch.arange(dst.shape[0], device=dst.device) - start[sorted_dst]
    rank = torch.empty_like(rank_sorted).scatter(0, order, rank_sorted)
    return edge_mask & (rank < k)


def phantom_count(dst: torch.Tensor, edge_mask: torch.Tensor, n_nodes: int, nnei: int) -> torch.Tensor:
    """(N,) int64: padded slots ``max(nnei - deg, 0)`` of each center."""
    deg = segment_sum(edge_mask.to(torch.int64), dst, n_nodes)
    return (nnei - deg).clamp(min=0)


def first_node_type(atype: torch.Tensor, n_node: torch.Tensor | None) -> torch.Tensor:
    """(N,) type of the first node of each node's frame.

    deepmd-kit's dense route points empty neighbor slots at extended atom 0,
    the first local atom of the frame, and embeds them with its type.
    """
    if n_node is None:
        return atype[:1].expand(atype.shape[0])
    n = atype.shape[0]
    _, local, _ = node_frames(n_node, n)
    return atype[torch.arange(n, device=atype.device) - local]
