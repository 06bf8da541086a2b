"""Segment (scatter) reductions over an edge list.

All functions reduce along dim 0: ``data`` has shape ``(E, *feat)`` and
``seg`` is an ``(E,)`` int64 tensor with values in ``[0, n)`` naming the
segment (typically the destination node) of each row.

They are written for graph capture (``make_fx(tracing_mode="symbolic")``,
``torch.export`` with dynamic ``E``): only torch ops, no Python control flow on
tensor values, no ``.item()``/``nonzero``, no in-place ops on tensors that
require grad. Masked or empty segments never produce NaN/inf, and masked
entries are replaced by safe values *before* any nonlinear op so that the
gradients stay finite (the double-``where`` trick).
"""

from __future__ import annotations

from typing import Optional

import torch

__all__ = ["segment_sum", "segment_max"]


def _expand_index(seg: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Broadcast an ``(E,)`` index to ``like.shape`` (``(E, *feat)``)."""
    shape = (-1,) + (1,) * (like.dim() - 1)
    return seg.reshape(shape).expand_as(like)


def _expand_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Return a bool mask broadcast to ``like.shape``.

    ``mask`` is ``(E,)``, ``(E, 1)``, ``(E, 1, 1)`` ... or any shape that is
    broadcastable to ``like`` once right-padded with singleton dims; non-bool
    masks count nonzero entries as valid.
    """
    if mask.dtype != torch.bool:
        mask = mask != 0
    if mask.dim() < like.dim():
        mask = mask.reshape(tuple(mask.shape) + (1,) * (like.dim() - mask.dim()))
    return mask.expand_as(like)


def segment_sum(data: torch.Tensor, seg: torch.Tensor, n: int) -> torch.Tensor:
    """Sum rows of ``data`` into ``n`` segments.

    Parameters
    ----------
    data : (E, *feat) tensor
    seg : (E,) int64, values in ``[0, n)``
    n : number of segments (int or SymInt)

    Returns
    -------
    (n, *feat) tensor, ``out[k] = sum_{e: seg[e] == k} data[e]`` (0 for empty
    segments). Out-of-place ``index_add``, differentiable w.r.t. ``data``.
    """
    out = data.new_zeros((n,) + tuple(data.shape[1:]))
    return out.index_add(0, seg, data)


def segment_max(
    data: torch.Tensor,
    seg: torch.Tensor,
    n: int,
    mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Per-segment maximum of ``data`` over unmasked entries.

    Parameters
    ----------
    data : (E, *feat) floating tensor
    seg : (E,) int64, values in ``[0, n)``
    n : number of segments
    mask : optional (E,) / (E, 1, ...) / (E, *feat) bool (or numeric, nonzero =
        valid) tensor; masked entries are ignored (their values may be
        NaN/inf).

    Returns
    -------
    (n, *feat) tensor. Empty or fully masked segments (and segments whose max
    is not finite) give 0, never ``-inf``. Meant as a softmax shift: callers
    should pass ``data.detach()`` (or detach the result) so that no gradient
    flows through the max.
    """
    neg_inf = torch.tensor(float("-inf"), dtype=data.dtype, device=data.device)
    if mask is not None:
        valid = _expand_mask(mask, data)
        src = torch.where(valid, data, neg_inf)
    else:
        src = data
    init = data.new_zeros((n,) + tuple(data.shape[1:]))
    out = init.scatter_reduce(
        0, _expand_index(seg, data), src, reduce="amax", include_self=False
    )
    # empty segments keep the init value 0; fully masked ones are -inf.
    return torch.where(torch.isfinite(out), out, torch.zeros_like(out))
