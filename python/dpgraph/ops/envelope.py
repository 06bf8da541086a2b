"""Destination-wise envelope-gated softmax (DPA4/SeZM attention normaliser).

Sparse edge-list port of deepmd-kit's ``segment_envelope_gated_softmax``::

    w_e  = edge_env_e**2 * src_weight_e * edge_mask_e            (>= 0)
    zeta = softplus(z_bias_raw)                                   (F, H)
    a_e  = w_e exp(l_e) / (zeta + eps + sum_{e' -> dst(e)} w_e' exp(l_e'))

Edges with ``w_e == 0`` (masked, zero envelope, muted source) drop out of
the numerator, the denominator and the shift. The stable form uses the
per-destination shift ``M = max(m, log(zeta + eps))`` where ``m`` is the max
logit over edges with ``w > 0`` (``M`` is a log-sum-exp bound that includes
the bias term, so every ``exp`` argument is ``<= 0`` and nothing overflows
for logits of either sign)::

    a_e = w_e exp(l_e - M) / ((zeta + eps) exp(-M) + sum w exp(l - M))

Traceable with ``make_fx(tracing_mode="symbolic")`` / ``torch.export``.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .segment import segment_max, segment_sum

__all__ = ["envelope_gated_softmax"]


def _edge_vector(x: torch.Tensor) -> torch.Tensor:
    """(E,) or (E, 1) -> (E,)."""
    return x.reshape(-1)


def envelope_gated_softmax(
    logits: torch.Tensor,
    edge_env: torch.Tensor,
    dst: torch.Tensor,
    n_nodes: int,
    z_bias_raw: torch.Tensor,
    eps: float,
    src_weight: Optional[torch.Tensor] = None,
    edge_mask: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Envelope-gated softmax of edge logits, normalised per destination node.

    Parameters
    ----------
    logits : (E, F, H) attention logits (any trailing shape works; the
        ``z_bias_raw`` shape must broadcast against it).
    edge_env : (E,) or (E, 1) cutoff envelope (non-negative).
    dst : (E,) int64 destination node of each edge, in ``[0, n_nodes)``.
        Edges need not be sorted.
    n_nodes : number of destination nodes (int or SymInt).
    z_bias_raw : (F, H) unconstrained denominator bias; ``zeta =
        softplus(z_bias_raw)``.
    eps : small positive constant added to ``zeta``.
    src_weight : optional (E,) or (E, 1) non-negative per-edge multiplier;
        0 removes the edge from numerator and denominator.
    edge_mask : optional (E,) or (E, 1) validity mask (bool or numeric,
        nonzero = valid). Masked edges may carry NaN/inf logits.

    Returns
    -------
    (E, F, H) tensor ``w_e exp(l_e) / (zeta + eps + sum_{dst} w exp(l))``;
    exactly 0 where ``w_e == 0``. Finite forward and gradients.
    """
    env = _edge_vector(edge_env)
    sw = None if src_weight is None else _edge_vector(src_weight)
    if edge_mask is not None:
        mk = _edge_vector(edge_mask)
        if mk.dtype != torch.bool:
            mk = mk != 0
        # safe values before any arithmetic, so NaN/inf on masked slots
        # cannot leak into forward or backward.
        env = torch.where(mk, env, torch.zeros_like(env))
        if sw is not None:
            sw = torch.where(mk, sw, torch.zeros_like(sw))
    w = env * env
    if sw is not None:
        w = w * sw
    valid = w > 0  # (E,)

    feat_ones = (1,) * (logits.dim() - 1)
    w_b = w.reshape((-1,) + feat_ones).to(logits.dtype)  # (E, 1, 1)
    valid_b = valid.reshape((-1,) + feat_ones).expand_as(logits)  # (E, F, H)

    zeta = F.softplus(z_bias_raw.to(logits.dtype))
    c = zeta + eps  # (F, H), > 0
    tiny = torch.finfo(logits.dtype).tiny
    log_c = torch.log(torch.clamp(c.detach(), min=tiny))  # exp(-M) <= 1/tiny

    m = segment_max(logits.detach(), dst, n_nodes, valid)  # (n, F, H), 0 if empty
    shift = torch.maximum(m, log_c)  # (n, F, H), detached
    shift_e = shift.index_select(0, dst)  # (E, F, H)

    z = torch.where(valid_b, logits, shift_e) - shift_e  # <= 0 on valid edges
    num = torch.where(valid_b, w_b * torch.exp(z), torch.zeros_like(z))
    den = c * torch.exp(-shift) + segment_sum(num, dst, n_nodes)  # (n, F, H)
    den = torch.where(den > 0, den, torch.ones_like(den))
    return num / den.index_select(0, dst)
