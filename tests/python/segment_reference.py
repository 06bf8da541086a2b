"""Reference forms of dpgraph's segment ops, used only by the tests.

``segment_softmax`` (a plain masked per-segment softmax) and
``envelope_gated_softmax_padded`` (deepmd-kit's padded-layout signature of the
envelope-gated softmax) are oracles for :mod:`dpgraph.ops`; the library itself
uses only the edge-list forms.
"""

from __future__ import annotations

from typing import Optional

import torch

from dpgraph.ops import envelope_gated_softmax, segment_max, segment_sum
from dpgraph.ops.segment import _expand_mask


def segment_softmax(logits: torch.Tensor, seg: torch.Tensor, n: int, mask: Optional[torch.Tensor] = None):
    """Numerically stable softmax of ``logits`` within each segment.

    Parameters
    ----------
    logits : (E, *feat) floating tensor (e.g. (E, F, H)); ``seg`` applies to
        dim 0, every trailing position is normalised independently.
    seg : (E,) int64, values in ``[0, n)``
    n : number of segments
    mask : optional (E,) / (E, 1, ...) / (E, *feat) bool (or numeric, nonzero =
        valid) tensor. Masked logits may hold anything (1e30, +inf, NaN):
        they are replaced by the segment shift before ``exp``.

    Returns
    -------
    (E, *feat) tensor: ``exp(l_e) / sum_{e' in seg(e), unmasked} exp(l_e')``
    for unmasked entries, exactly 0 for masked entries; empty or fully masked
    segments give zeros. Forward and gradient are finite.
    """
    m = segment_max(logits.detach(), seg, n, mask)  # (n, *feat), detached shift
    m_e = m.index_select(0, seg)  # (E, *feat)
    if mask is not None:
        valid = _expand_mask(mask, logits)
        z = torch.where(valid, logits, m_e) - m_e  # masked -> 0, unmasked <= 0
        e = torch.where(valid, torch.exp(z), torch.zeros_like(z))
    else:
        e = torch.exp(logits - m_e)
    s = segment_sum(e, seg, n)  # (n, *feat); >= 1 for non-empty segments
    s = torch.where(s > 0, s, torch.ones_like(s))
    return e / s.index_select(0, seg)


def envelope_gated_softmax_padded(logits, edge_env, n_nodes: int, z_bias_raw, eps: float, src_weight=None,
                                  edge_mask=None) -> torch.Tensor:
    """Padded-layout variant (deepmd-kit dpmodel signature).

    Parameters
    ----------
    logits : (n_nodes * nnei, F, H); slot ``(i, j)`` (row ``i * nnei + j``)
        belongs to destination node ``i``.
    edge_env, src_weight, edge_mask : (E,) or (E, 1), as in
        :func:`envelope_gated_softmax`.
    n_nodes, z_bias_raw, eps : as in :func:`envelope_gated_softmax`.

    Returns
    -------
    (n_nodes * nnei, F, H), zero on invalid slots. Equivalent to the edge-list
    version with ``dst = arange(n_nodes).repeat_interleave(nnei)`` (built here
    with ``expand``/``reshape``, which traces without data-dependent sizes).
    """
    n_edges = logits.shape[0]
    if n_nodes == 0:
        nnei = 0
    else:
        if n_edges % n_nodes != 0:
            raise ValueError(
                f"padded logits have {n_edges} rows, not a multiple of n_nodes={n_nodes}"
            )
        nnei = n_edges // n_nodes
    dst = (
        torch.arange(n_nodes, dtype=torch.int64, device=logits.device)
        .unsqueeze(1)
        .expand(n_nodes, nnei)
        .reshape(-1)
    )
    return envelope_gated_softmax(
        logits, edge_env, dst, n_nodes, z_bias_raw, eps, src_weight, edge_mask
    )
