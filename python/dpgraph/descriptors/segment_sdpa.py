"""Per-center fused attention with O(E) saved memory: a custom autograd Function.

Given per-edge ``q, k, v`` (E, w) (already augmented, see :mod:`.attention`)
and per-edge stream weights ``r`` (E, S), computes for every real edge m of
center c::

    o_m = sum_s r_ms * sum_{n in c} softmax_n(q_m . k_n [+ phantom]) * r_ns * v_n

(S = 3 with ``r = rhat`` is the ``dotr`` gate, S = 1 with ``r = 1`` plain
attention). Each center's edges are laid out in a padded block of D slots and
the three streams are attention heads of one CPU flash-attention call.

Memory: autograd keeps only the E-layout inputs. The padded blocks, the
attention output and its log-sum-exp exist only transiently, one chunk of
centers at a time (``chunks`` static chunks), in the forward and again in the
backward, which recomputes the forward of its chunk before calling the flash
backward kernel. Both passes trace with ``make_fx`` and export.
"""

from __future__ import annotations

import torch

_fwd = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default
_bwd = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward.default

DEFAULT_CHUNKS = 8


class _Chunk:
    """Slot bookkeeping of centers ``[i c, (i + 1) c)``; ``inv`` maps slot -> edge (E: none)."""

    def __init__(self, i, c, D, slot, edge_mask, deg, log_n, has, ph_col):
        n_e = slot.shape[0]
        local = slot - i * c * D
        inside = edge_mask & (local >= 0) & (local < c * D)
        idx = torch.where(inside, local, torch.full_like(local, c * D))
        inv = torch.full((c * D + 1,), n_e, dtype=torch.int64, device=slot.device)
        inv = inv.index_put((idx,), torch.arange(n_e, device=slot.device))
        self.inv = inv[: c * D]
        self.c, self.D, self.ph_col = c, D, ph_col
        # this chunk's centers; those past the last node read the appended zero row
        n = deg.shape[0]
        centers = i * c + torch.arange(c, device=slot.device)
        centers = torch.where(centers < n, centers, torch.full_like(centers, n))
        deg = torch.cat([deg, deg.new_zeros(1)])[centers]
        ar = torch.arange(D, device=slot.device)[None, :]
        ok = (ar < deg[:, None]) | ((ar == 0) & (deg[:, None] == 0))  # (c, D)
        self.phantom = log_n is not None
        if self.phantom:
            ok = torch.cat([ok, torch.cat([has, has.new_zeros(1)])[centers][:, None]], dim=1)
            self.log_n = torch.cat([log_n, log_n.new_zeros(1)])[centers]
        zero = torch.zeros((), dtype=torch.float64, device=slot.device)
        # additive mask (c, 1, 1, Dk): 0 where allowed, -inf elsewhere
        self.mask = torch.where(ok, zero, zero - float("inf"))[:, None, None, :]

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """(E, f) edge rows -> (c, D, f), zeros in empty slots (no copy of x)."""
        n_e = x.shape[0]
        rows = x[self.inv.clamp(max=max(n_e - 1, 0))] if n_e else x.new_zeros((self.inv.shape[0], x.shape[1]))
        rows = torch.where((self.inv < n_e)[:, None], rows, torch.zeros_like(rows))
        return rows.view(self.c, self.D, x.shape[1])

    def inputs(self, q, k, v, r):
        """Padded heads: q, k (c, S, D, w) (k with the phantom key), v (c, S, Dk, w), r (c, D, S)."""
        S, w = r.shape[1], q.shape[1]
        qp, kp, vp, rp = self.pad(q), self.pad(k), self.pad(v), self.pad(r)
        if self.phantom:
            ph = torch.zeros((self.c, 1, w), dtype=q.dtype, device=q.device)
            ph = torch.cat([ph[:, :, : self.ph_col], self.log_n.to(q.dtype)[:, None, None], ph[:, :, self.ph_col + 1 :]], dim=2)
            kp = torch.cat([kp, ph], dim=1)
            vp = torch.cat([vp, torch.zeros_like(vp[:, :1])], dim=1)
            rp_k = torch.cat([rp, torch.zeros_like(rp[:, :1])], dim=1)
        else:
            rp_k = rp
        qh = qp[:, None].expand(-1, S, -1, -1)
        kh = kp[:, None].expand(-1, S, -1, -1)
        vh = rp_k.transpose(1, 2)[..., None] * vp[:, None]  # (c, S, Dk, w)
        return qh, kh, vh, rp, vp

    def scatter(self, acc: torch.Tensor, rows: torch.Tensor) -> None:
        """acc (E + 1, f) += rows (c * D, f) at each slot's edge (trash row E for empty slots)."""
        acc.index_add_(0, self.inv, rows)


def _chunks(n_blocks, chunks, D, slot, edge_mask, deg, log_n, has, ph_col):
    c = (n_blocks + chunks - 1) // chunks + 1  # >= 2: a size-1 dim would specialize the export
    for i in range(chunks):
        yield _Chunk(i, c, D, slot, edge_mask, deg, log_n, has, ph_col)


class SegmentAttention(torch.autograd.Function):
    """o (E, w) = per-center multi-stream attention; see the module docstring."""

    @staticmethod
    def forward(ctx, q, k, v, r, slot, edge_mask, deg, log_n, has, n_blocks, D, chunks, ph_col):
        n_e, w = q.shape
        acc = q.new_zeros((n_e + 1, w))
        for ch in _chunks(n_blocks, chunks, D, slot, edge_mask, deg, log_n, has, ph_col):
            qh, kh, vh, rp, _ = ch.inputs(q, k, v, r)
            out, _ = _fwd(qh, kh, vh, attn_mask=ch.mask.to(q.dtype), scale=1.0)  # (c, S, D, w)
            o = (rp.transpose(1, 2)[..., None] * out).sum(1)  # (c, D, w)
            ch.scatter(acc, o.reshape(-1, w))
        ctx.save_for_backward(q, k, v, r, slot, edge_mask, deg, log_n, has)
        ctx.n_blocks, ctx.D, ctx.chunks, ctx.ph_col = n_blocks, D, chunks, ph_col
        return acc[:n_e]

    @staticmethod
    def backward(ctx, grad_o):
        q, k, v, r, slot, edge_mask, deg, log_n, has = ctx.saved_tensors
        n_e, w = q.shape
        S = r.shape[1]
        gq, gk, gv = (q.new_zeros((n_e + 1, w)) for _ in range(3))
        gr = q.new_zeros((n_e + 1, S))
        for ch in _chunks(ctx.n_blocks, ctx.chunks, ctx.D, slot, edge_mask, deg, log_n, has, ctx.ph_col):
            qh, kh, vh, rp, vp = ch.inputs(q, k, v, r)
            mask = ch.mask.to(q.dtype)
            out, lse = _fwd(qh, kh, vh, attn_mask=mask, scale=1.0)
            go = ch.pad(grad_o)  # (c, D, w)
            grad_out = rp.transpose(1, 2)[..., None] * go[:, None]  # (c, S, D, w)
            g_qh, g_kh, g_vh = _bwd(grad_out, qh, kh, vh, out, lse, 0.0, False, attn_mask=mask, scale=1.0)
            g_rq = (out * go[:, None]).sum(-1).transpose(1, 2)  # (c, D, S): r as query weight
            g_vh = g_vh[:, :, : ch.D]  # drop the phantom key (constant)
            g_rk = (g_vh * vp[:, None, : ch.D]).sum(-1).transpose(1, 2)  # r as value weight
            g_v = (rp.transpose(1, 2)[..., None] * g_vh).sum(1)
            ch.scatter(gq, g_qh.sum(1).reshape(-1, w))
            ch.scatter(gk, g_kh[:, :, : ch.D].sum(1).reshape(-1, w))
            ch.scatter(gv, g_v.reshape(-1, w))
            ch.scatter(gr, (g_rq + g_rk).reshape(-1, S))
        return gq[:n_e], gk[:n_e], gv[:n_e], gr[:n_e], None, None, None, None, None, None, None, None, None
