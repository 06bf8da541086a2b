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

Two implementations with identical results (fp64 rounding):

* :func:`attention_blocks` is the one production path (eager, export/AOTI,
  CUDA, second derivative for training on forces). Each center's edges are
  laid out in a (D, ·) block (:class:`BlockLayout`), D the largest degree of
  the call, and the layer is three batched GEMMs over the C blocks: ``L = Q K^T`` (C, D, D), a masked
  softmax, ``A *= R R^T`` (the dotr gate on the weights: one value stream),
  ``O = A V``. The smooth logit is rewritten exactly: ``-shift`` is a row
  constant that cancels in the softmax, and ``sw_m sw_n (q.k + shift)`` is the
  dot product of ``[sw q, sw sqrt(shift)]`` and ``[sw k, sw sqrt(shift)]``;
  the post-softmax ``sw_m`` scales the output row and ``sw_n`` folds into v.
  Its memory is O(C D^2) per layer: the runtime keeps that bounded by
  evaluating a large graph in chunks of centers (:mod:`dpgraph.models.chunking`).
* :func:`attention_pairwise` materializes every (m, n) pair as a flat list
  (memory grows with ``P = sum(deg^2)``). It is the plain formula, kept as the
  test oracle.

``n_phantom`` (N,) reproduces deepmd-kit's dense (sel-padded) layout in smooth
mode: each padded slot has logit ``-shift`` and adds ``exp(-shift)`` to the
softmax denominator (in the shifted frame above: ``n_phantom * exp(0)``).
"""

from __future__ import annotations

import math

import torch

from ..ops import segment_sum

ATTN_SHIFT = 20.0  # deepmd-kit's attnw_shift


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


# --------------------------------------------------------------------------- layout
class BlockLayout:
    """Every real edge's place in a padded (C, D) layout over the centers with real edges.

    Nodes without real edges (ghost nodes of an MPI rank, isolated atoms) get
    no block. The descriptor pads its per-edge inputs once and then works on
    blocks to the end (embedding, attention layers, the moment ``R^T G``).

    slot : (E,) int64, ``block * D + position``; masked edges get ``C * D`` (a trash slot)
    deg : (C,) int64, real edges of each block's center
    D : padded width, ``max(deg)`` and at least 2 (an unbacked SymInt under export)
    centers : (C,) int64, node index of each block (C a SymInt under export)
    key_ok : (C, D) bool, slot holds a real edge
    """

    def __init__(self, dst: torch.Tensor, edge_mask: torch.Tensor, n_nodes: int):
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
        n_blocks = centers.shape[0]
        self.slot = torch.where(edge_mask, block[dst] * D + pos, torch.full_like(pos, n_blocks * D))
        self.deg, self.D, self.centers, self.edge_mask = deg, D, centers, edge_mask
        self.key_ok = torch.arange(D, device=dst.device)[None, :] < deg[:, None]

    @property
    def n_blocks(self):
        return self.centers.shape[0]

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """(E, f) edge rows -> (C, D, f), zeros in empty slots."""
        c, d = self.n_blocks, self.D
        buf = x.new_zeros((c * d + 1, x.shape[1]))
        buf = buf.index_put((self.slot,), x)  # masked edges all land in the trash row
        return buf[: c * d].view(c, d, x.shape[1])

    def unpad(self, y: torch.Tensor) -> torch.Tensor:
        """(C, D, f) -> (E, f): each edge's row; masked edges read zeros."""
        flat = y.reshape(-1, y.shape[-1])
        flat = torch.cat([flat, flat.new_zeros((1, flat.shape[1]))], dim=0)
        return flat[self.slot]


# --------------------------------------------------------------------------- production
def attention_blocks(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    sw: torch.Tensor,
    rhat: torch.Tensor,
    key_ok: torch.Tensor,
    smooth: bool,
    dotr: bool,
    n_phantom: torch.Tensor | None = None,
    shift: float = ATTN_SHIFT,
) -> torch.Tensor:
    """Production attention on padded center blocks; see the module docstring.

    q, k : (C, D, dk); v : (C, D, dv); sw : (C, D); rhat : (C, D, 3);
    key_ok : (C, D) bool, slot holds a real edge; n_phantom : (C,) padded
    dense slots of each center (smooth only). Returns (C, D, dv); rows of
    empty slots are finite and meaningless. Differentiable to any order under
    plain autograd; traces with ``make_fx``.
    """
    swc = sw[:, :, None]
    if smooth:
        root = math.sqrt(shift)
        q = torch.cat([q * swc, swc * root], dim=2)
        k = torch.cat([k * swc, swc * root], dim=2)
        v = v * swc
    logits = torch.bmm(q, k.transpose(1, 2))  # (C, D, D), shifted by +shift in smooth mode
    logits = torch.where(key_ok[:, None, :], logits, torch.full_like(logits, -math.inf))
    if smooth and n_phantom is not None:
        # padded dense slots: logit 0 in the shifted frame, so each adds exp(0 - m)
        nph = n_phantom.to(q.dtype)[:, None, None]
        m = torch.clamp(logits.amax(dim=-1, keepdim=True), min=0.0).detach()
        ex = torch.exp(logits - m)
        a = ex / (ex.sum(dim=-1, keepdim=True) + nph * torch.exp(-m))
    else:
        a = torch.softmax(logits, dim=-1)
    if dotr:
        a = a * torch.bmm(rhat, rhat.transpose(1, 2))
    o = torch.bmm(a, v)
    return o * swc if smooth else o
