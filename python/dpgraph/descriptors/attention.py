"""Gated self-attention of se_atten (DPA1) over each center's neighbor edges.

Notation: E edges sorted by center ``dst``; a center's incoming edges form its
segment; ``m`` is a query edge, ``n`` a key edge of the same center. Given
projected ``q, k`` (E, dk) (already normalized and scaled) and ``v`` (E, dv),
the switch ``sw`` (E,) and unit vectors ``rhat`` (E, 3), deepmd-kit's layer is::

    l_mn = q_m . k_n                                   (plain)
    l_mn = (q_m . k_n + shift) sw_m sw_n - shift       (smooth)
    a_mn = softmax_n(l_mn)                             (over the segment)
    a_mn *= sw_m sw_n                                  (smooth)
    a_mn *= rhat_m . rhat_n                            (dotr)
    o_m  = sum_n a_mn v_n

Two implementations with identical results:

* :func:`attention_pairwise` materializes every (m, n) pair: memory grows with
  ``P = sum(deg^2)``. It is the plain formula, kept as the test oracle.
* :func:`attention_fused` is the production path, memory O(N * D * d) with D
  the largest degree. It rewrites the layer exactly onto one call of
  ``scaled_dot_product_attention`` per center (DESIGN.md section 3):
  the smooth logit minus its row constant is ``q'.k'`` with
  ``q' = [sw q, sw sqrt(shift)]``, ``k' = [sw k, sw sqrt(shift)]``; the
  post-softmax ``sw_m`` scales the output row and ``sw_n`` folds into v; the
  rank-3 ``rhat rhat^T`` gate becomes three value streams ``rhat_c v``.

``n_phantom`` (N,) reproduces deepmd-kit's dense (sel-padded) layout in smooth
mode: each padded slot adds ``exp(-shift)`` to the softmax denominator. The
oracle adds them explicitly; the fused path adds one key per center with value
0 and logit ``log(n_phantom)`` (q gets a constant component 1, that key the log).

Execution paths of :func:`attention_fused` (same numbers, fp64 rounding):

* eager on CPU: :class:`~.segment_sdpa.SegmentAttention`, chunks of centers,
  autograd keeps only E-layout tensors (4.8 vs 7.3 GB at 1,536 water atoms);
* export (:func:`exporting_attention`) and CUDA: one padded SDPA call under
  plain autograd (AOTInductor plans that graph better than the chunked one);
* second backward (:func:`double_backward_attention`, training on forces):
  the SDPA math kernel, whose memory grows with the pair count.
"""

from __future__ import annotations

import contextvars
import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..ops import segment_sum
from .segment_sdpa import DEFAULT_CHUNKS, SegmentAttention

ATTN_SHIFT = 20.0  # deepmd-kit's attnw_shift

_DOUBLE_BACKWARD = contextvars.ContextVar("dpgraph_double_backward", default=False)
_EXPORTING = contextvars.ContextVar("dpgraph_exporting", default=False)


def is_exporting() -> bool:
    return _EXPORTING.get()


@contextmanager
def exporting_attention():
    """Trace the padded-SDPA form under plain autograd for export.

    AOTInductor plans the memory of the traced forward+backward graph as a
    whole; the chunked recomputing Function below saves memory in eager mode
    but, once traced, its recomputation is merged with the forward and its
    chunks stay alive (13.6 GB vs 7.0 GB at 1,536 water atoms, measured).
    """
    token = _EXPORTING.set(True)
    try:
        yield
    finally:
        _EXPORTING.reset(token)


@contextmanager
def double_backward_attention(enabled: bool = True):
    """Within this context the fused attention supports a second backward pass
    (training on forces): it runs the plain SDPA math kernel under autograd,
    whose memory grows with the pair count, instead of the flash kernel."""
    token = _DOUBLE_BACKWARD.set(enabled)
    try:
        yield
    finally:
        _DOUBLE_BACKWARD.reset(token)


# --------------------------------------------------------------------------- oracle
def attention_pairwise(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    sw: torch.Tensor,
    rhat: torch.Tensor,
    dst: torch.Tensor,
    edge_mask: torch.Tensor,
    n_nodes: int,
    smooth: bool,
    dotr: bool,
    n_phantom: torch.Tensor | None = None,
    shift: float = ATTN_SHIFT,
) -> torch.Tensor:
    """Pair-materialized reference: (E, dk), (E, dk), (E, dv) -> (E, dv). Eager only."""
    real = torch.nonzero(edge_mask)[:, 0]  # real edges, sorted by dst
    d = dst[real]
    deg = torch.bincount(d, minlength=n_nodes)
    start = torch.cumsum(deg, 0) - deg
    # pairs (m, n) of real edges with the same center, in compact numbering
    per_query = deg[d]
    pm = torch.repeat_interleave(torch.arange(real.numel(), device=dst.device), per_query)
    row_start = torch.cumsum(per_query, 0) - per_query
    pn = start[d[pm]] + torch.arange(pm.numel(), device=dst.device) - row_start[pm]
    m, n = real[pm], real[pn]

    logits = (q[m] * k[n]).sum(-1)
    if smooth:
        logits = (logits + shift) * sw[m] * sw[n] - shift
    lmax = torch.full((q.shape[0],), -math.inf, dtype=q.dtype, device=q.device)
    lmax = lmax.scatter_reduce(0, m, logits, "amax").detach()
    ex = torch.exp(logits - lmax[m])
    denom = segment_sum(ex, m, q.shape[0])
    if smooth and n_phantom is not None:
        denom = denom + n_phantom[dst].to(q.dtype) * torch.exp(-shift - lmax)
    w = ex / denom[m]
    if smooth:
        w = w * sw[m] * sw[n]
    if dotr:
        w = w * (rhat[m] * rhat[n]).sum(-1)
    return segment_sum(w[:, None] * v[n], m, q.shape[0])


# --------------------------------------------------------------------------- fused
def edge_slots(dst: torch.Tensor, edge_mask: torch.Tensor, n_nodes: int):
    """Place every real edge in a padded layout over the centers that have real edges.

    Nodes without real edges (ghost nodes of an MPI rank, isolated atoms) get
    no block: on a rank with 96 owned atoms and ~1,300 ghosts they would
    otherwise cost ~14x the attention work.

    Returns
    -------
    slot : (E,) int64, ``block * D + position``; masked edges get ``C * D`` (a trash slot)
    deg : (C,) int64 number of real edges of each block's center
    D : padded width, ``max(deg)`` but at least 2 (a SymInt under export)
    centers : (C,) int64 node index of each block (C a SymInt under export)
    """
    maski = edge_mask.to(torch.int64)
    deg_all = segment_sum(maski, dst, n_nodes)
    has = deg_all > 0
    centers = torch.nonzero(has).squeeze(1)
    torch._check(centers.shape[0] <= deg_all.shape[0])
    block = torch.cumsum(has.to(torch.int64), 0) - 1  # (N,) block of each center, -1 for the others
    deg = deg_all.index_select(0, centers)
    # the trailing 0 keeps max() defined for a graph with no edges
    D = torch.cat([deg, deg.new_zeros(1)]).max().clamp(min=2).item()
    torch._check(D >= 2)
    torch._check(D <= dst.shape[0])
    torch.ops.aten.sym_constrain_range_for_size.default(D, min=2)
    start = torch.cumsum(deg_all, 0) - deg_all
    rank = torch.cumsum(maski, 0) - 1  # position among real edges
    pos = rank - start[dst]
    slot = torch.where(edge_mask, block[dst] * D + pos, torch.full_like(pos, centers.shape[0] * D))
    return slot, deg, D, centers


def _pad(x: torch.Tensor, slot: torch.Tensor, n_blocks: int, D: int) -> torch.Tensor:
    """(E, d) edge rows -> (C, D, d) with zeros in empty slots (C = n_blocks)."""
    buf = x.new_zeros((n_blocks * D + 1, x.shape[1]))
    buf = buf.index_put((slot,), x)  # masked edges all land in the trash row
    return buf[: n_blocks * D].view(n_blocks, D, x.shape[1])


def _unpad(y: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
    """(C, D, d) -> (E, d) rows at each edge's slot; the trash slot reads zeros."""
    flat = y.reshape(-1, y.shape[-1])
    flat = torch.cat([flat, flat.new_zeros((1, flat.shape[1]))], dim=0)
    return flat[slot]


def attention_fused(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    sw: torch.Tensor,
    rhat: torch.Tensor,
    dst: torch.Tensor,
    edge_mask: torch.Tensor,
    n_nodes: int,
    smooth: bool,
    dotr: bool,
    n_phantom: torch.Tensor | None = None,
    shift: float = ATTN_SHIFT,
    slots: tuple | None = None,
    chunks: int = DEFAULT_CHUNKS,
) -> torch.Tensor:
    """Production attention: same contract as :func:`attention_pairwise`.

    ``slots`` is the result of :func:`edge_slots`, shared across layers.
    """
    slot, deg, D, centers = slots if slots is not None else edge_slots(dst, edge_mask, n_nodes)
    n_blocks = centers.shape[0]  # centers with real edges: only they get a padded block
    swc = sw[:, None]
    if smooth:
        root = math.sqrt(shift)
        q = torch.cat([q * swc, swc * root], dim=1)
        k = torch.cat([k * swc, swc * root], dim=1)
        v = v * swc
    use_phantom = smooth and n_phantom is not None
    ph_col = q.shape[1]
    if use_phantom:
        q = torch.cat([q, torch.ones_like(q[:, :1])], dim=1)
        k = torch.cat([k, torch.zeros_like(k[:, :1])], dim=1)
    # the fused CPU kernel needs equal q/k and v widths: zero-pad the narrower
    dv, dq = v.shape[1], q.shape[1]
    width = max(dv, dq)
    q, k = F.pad(q, (0, width - dq)), F.pad(k, (0, width - dq))
    v = F.pad(v, (0, width - dv))
    # value streams: rhat_c * v for c = x, y, z (dotr) or v alone
    r = rhat if dotr else torch.ones_like(rhat[:, :1])
    log_n = has = None
    if use_phantom:
        nph = n_phantom.to(q.dtype).index_select(0, centers)
        has = nph > 0
        log_n = torch.log(torch.where(has, nph, torch.ones_like(nph)))
    if _DOUBLE_BACKWARD.get():
        with sdpa_kernel([SDPBackend.MATH]):
            o = _attention_padded(q, k, v, r, slot, deg, D, n_blocks, log_n, has, ph_col)
    elif q.device.type == "cpu" and not _EXPORTING.get():
        o = SegmentAttention.apply(q, k, v, r, slot, edge_mask, deg, log_n, has, n_blocks, D, chunks, ph_col)
    else:
        o = _attention_padded(q, k, v, r, slot, deg, D, n_blocks, log_n, has, ph_col)
    o = o[:, :dv]
    if smooth:
        o = o * swc
    return torch.where(edge_mask[:, None], o, torch.zeros_like(o))


def _attention_padded(q, k, v, r, slot, deg, D, n_blocks, log_n, has, ph_col) -> torch.Tensor:
    """Device-generic path (CUDA): one padded SDPA call under plain autograd."""
    streams, width = r.shape[1], q.shape[1]
    qp = _pad(q, slot, n_blocks, D)[:, None].expand(-1, streams, -1, -1)
    kp = _pad(k, slot, n_blocks, D)[:, None].expand(-1, streams, -1, -1)
    vs = (r[:, :, None] * v[:, None, :]).reshape(v.shape[0], streams * width)
    vp = _pad(vs, slot, n_blocks, D).view(n_blocks, D, streams, width).transpose(1, 2)
    ar = torch.arange(D, device=slot.device)[None, :]
    key_ok = (ar < deg[:, None]) | ((ar == 0) & (deg[:, None] == 0))
    if log_n is not None:
        ph = F.pad(log_n[:, None], (ph_col, width - ph_col - 1))
        kp = torch.cat([kp, ph[:, None, None, :].expand(-1, streams, 1, -1)], dim=2)
        vp = torch.cat([vp, torch.zeros_like(vp[:, :, :1, :])], dim=2)
        key_ok = torch.cat([key_ok, has[:, None]], dim=1)
    out = F.scaled_dot_product_attention(qp, kp, vp, attn_mask=key_ok[:, None, None, :], scale=1.0)
    out = out.transpose(1, 2).reshape(n_blocks, D, streams * width)
    o = _unpad(out, slot).view(-1, streams, width)
    return (r[:, :, None] * o).sum(1)
