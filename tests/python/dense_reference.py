"""Independent dense (sel-padded) re-implementation of deepmd-kit's se_atten forward.

This module is a test oracle. It re-writes, in deepmd-kit's dense layout
``(nloc, nnei, ...)``, the math of deepmd-kit's ``DescrptBlockSeAtten.call``
and ``NeighborGatedAttention`` (dpmodel / pt backends). A dpgraph
:class:`~dpgraph.descriptors.DescrptSeAtten` is used ONLY as a container of
parameters and flags: its weight tensors are read directly, while its forward,
its sub-modules' forwards and everything in ``dpgraph.descriptors.attention``
are never called. Dense layers, embedding nets, the type embedding, LayerNorm,
the environment matrix and the attention are all written out here.

Layout and semantics (deepmd-kit):

* ``nlist`` (nloc, nnei): indices into the extended atoms, neighbors within
  rcut sorted by distance, truncated to the nearest ``nnei = sum(sel)``,
  padded with -1.
* env: ``sw * [1/(r+p), d/(r+p)^2]`` on real slots, 0 on padded slots;
  ``rr = (env - davg[t_c]) / dstd[t_c]``; ``rr *= exclude_mask`` where the
  exclude mask is 1 on padded slots (deepmd-kit treats the padding type as
  never excluded) and 0 on real neighbors of an excluded type pair.

  NOTE: with ``davg != 0`` deepmd-kit's padded slots carry
  ``rr = (0 - davg)/dstd`` into the embedding and the final ``R^T G`` sum; the
  dpgraph graph route (carry-all) has no padded slots and leaves that out
  (docs/design.md, "Semantics"). This reference reproduces deepmd-kit
  faithfully, so the graph route can only match it with
  ``davg == 0`` (set_davg_zero-like statistics); the tests use that.
* excluded real neighbors then get nlist -1 semantics (sw = 0, masked in the
  attention, type index of atom 0), exactly as deepmd-kit.
* padded / excluded slots use the type of extended atom 0 for their neighbor
  type embedding (deepmd-kit's ``nlist_masked = where(mask, nlist, 0)``).

Deviation that changes no value: deepmd-kit computes the padded-slot distance
from ``coord_ext[0] - coord_center`` (plus 1); here padded slots use a fixed
stand-in vector (1, 1, 1) so that the autograd of the center-atom-0 rows is
finite in all cases. The result on padded slots is multiplied by ``sw = 0``
either way.
"""

from __future__ import annotations

import itertools
import math

import torch

ATTN_SHIFT = 20.0  # deepmd-kit's attnw_shift


# --------------------------------------------------------------- primitives
def _activation(name):
    key = "none" if name is None else str(name).lower()
    if key in ("none", "linear"):
        return lambda x: x
    if key == "tanh":
        return torch.tanh
    if key == "relu":
        return torch.relu
    if key == "sigmoid":
        return torch.sigmoid
    if key == "softplus":
        return lambda x: torch.log1p(torch.exp(-x.abs())) + torch.clamp(x, min=0)
    if key in ("gelu", "gelu_tf"):
        return lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    raise NotImplementedError(f"reference has no activation {name!r}")


def dense_layer(layer, x, resnet: bool):
    """deepmd-kit NativeLayer: act(x w + b) * idt (+ x | + [x, x])."""
    w = layer.w
    y = x @ w
    if layer.b is not None:
        y = y + layer.b
    y = _activation(layer.activation_name)(y)
    if layer.idt is not None:
        y = y * layer.idt
    n_in, n_out = w.shape
    if resnet and n_out == n_in:
        y = y + x
    elif resnet and n_out == 2 * n_in:
        y = y + torch.cat([x, x], dim=-1)
    return y


def embedding_net(net, x):
    """deepmd-kit EmbeddingNet: residual NativeLayers."""
    for layer in net:
        x = dense_layer(layer, x, resnet=True)
    return x


def type_embedding_table(descr):
    """(ntypes + 1, tebd_dim): EmbeddingNet(one-hot types) plus a zero padding row."""
    net = descr.type_embedding.embedding_net
    w = net[0].w
    eye = torch.eye(w.shape[0], dtype=w.dtype)
    emb = embedding_net(net, eye)
    return torch.cat([emb, torch.zeros(1, emb.shape[1], dtype=emb.dtype)], dim=0)


def layer_norm(ln, x):
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def switch(r, rcut_smth, rcut):
    u = (torch.clamp(r, rcut_smth, rcut) - rcut_smth) / (rcut - rcut_smth)
    return u**3 * (-6.0 * u**2 + 15.0 * u - 10.0) + 1.0


def _unit(x):
    """x / max(|x|, 1e-12) along the last dim (F.normalize / deepmd-kit's input_r).

    The norm is differentiated safely at x = 0 (deepmd-kit's safe_for_vector_norm):
    zero rows (padded / excluded slots) have a zero, not NaN, gradient.
    """
    sq = (x * x).sum(-1, keepdim=True)
    nz = sq > 0
    n = torch.where(nz, torch.sqrt(torch.where(nz, sq, torch.ones_like(sq))), torch.zeros_like(sq))
    return x / torch.clamp(n, min=1e-12)


# ----------------------------------------------------------- neighbor list
def extended_system(coords, cell, rcut):
    """Brute-force periodic images.

    coords (nloc, 3) with fractional coordinates in [0, 1); cell (3, 3) rows =
    lattice vectors. Returns coord_ext (nall, 3) (differentiable in coords;
    the first nloc rows are the local atoms) and mapping (nall,) ext -> local.
    """
    nloc = coords.shape[0]
    cell_d = cell.detach().to(torch.float64)
    vol = torch.linalg.det(cell_d).abs()
    reach = []
    for i in range(3):
        cr = torch.linalg.cross(cell_d[(i + 1) % 3], cell_d[(i + 2) % 3])
        width = float(vol / torch.linalg.vector_norm(cr))
        reach.append(math.ceil(rcut / width) + 1)
    shifts = [(0, 0, 0)] + [
        s for s in itertools.product(*[range(-m, m + 1) for m in reach]) if s != (0, 0, 0)
    ]
    shifts = torch.tensor(shifts, dtype=coords.dtype)
    disp = shifts @ cell.to(coords.dtype)  # (S, 3)
    coord_ext = (coords[None, :, :] + disp[:, None, :]).reshape(-1, 3)
    mapping = torch.arange(nloc).repeat(shifts.shape[0])
    return coord_ext, mapping


def dense_nlist(coord_ext, nloc: int, rcut: float, nnei: int):
    """(nloc, nnei) int64: neighbors with 0 < r < rcut, nearest first, -1 padded.

    Also returns the full degree (neighbors within rcut before truncation).
    """
    ce = coord_ext.detach()
    dist = torch.cdist(ce[:nloc], ce)  # (nloc, nall)
    dist[torch.arange(nloc), torch.arange(nloc)] = math.inf  # self
    nlist = torch.full((nloc, nnei), -1, dtype=torch.int64)
    deg = torch.zeros(nloc, dtype=torch.int64)
    for i in range(nloc):
        inside = torch.nonzero(dist[i] < rcut)[:, 0]
        order = inside[torch.argsort(dist[i, inside], stable=True)]
        deg[i] = order.numel()
        keep = order[:nnei]
        nlist[i, : keep.numel()] = keep
    return nlist, deg


# ------------------------------------------------------------- descriptor
def dense_se_atten(descr, coord_ext, atype_ext, nlist, *, scaling_factor: float = 1.0, temperature=None):
    """deepmd-kit dense se_atten forward: -> (nloc, dim_out) float64.

    descr : dpgraph DescrptSeAtten (parameter container only)
    coord_ext (nall, 3), atype_ext (nall,), nlist (nloc, nnei) with -1 padding.
    scaling_factor / temperature : the constructor arguments, so that the
    attention scaling is derived here independently of the module.
    """
    nloc, nnei = nlist.shape
    assert nnei == sum(descr.sel)
    nt = descr.ntypes
    rcut, rcut_smth, prot = descr.rcut, descr.rcut_smth, descr.env_protection
    coord_ext = coord_ext.to(torch.float64)
    atype = atype_ext[:nloc]

    # ---- environment matrix (deepmd-kit _make_env_mat + normalization)
    mask = nlist >= 0  # real slot
    idx = torch.where(mask, nlist, torch.zeros_like(nlist))
    diff = coord_ext[idx] - coord_ext[:nloc, None, :]  # (nloc, nnei, 3)
    diff = torch.where(mask[..., None], diff, torch.ones_like(diff))  # finite stand-in on padding
    length = torch.sqrt((diff * diff).sum(-1, keepdim=True))
    sw = switch(length, rcut_smth, rcut) * mask[..., None].to(length.dtype)  # (nloc, nnei, 1)
    env = torch.cat([1.0 / (length + prot), diff / (length + prot) ** 2], dim=-1) * sw
    davg = descr.davg.to(torch.float64)[atype][:, None, :]
    dstd = descr.dstd.to(torch.float64)[atype][:, None, :]
    rr = (env - davg) / dstd  # padded slots: -davg/dstd, as deepmd-kit

    # ---- type exclusion (deepmd-kit PairExcludeMask; the padding type is never excluded)
    table = descr.exclude_table.reshape(nt, nt)
    tn_raw = atype_ext[idx]
    excluded = mask & table[atype[:, None].expand(-1, nnei), tn_raw]
    exclude_mask = ~excluded  # 1 on padding
    rr = rr * exclude_mask[..., None].to(rr.dtype)
    nlist_mask = mask & exclude_mask  # nlist = -1 on excluded slots
    sw = sw * nlist_mask[..., None].to(sw.dtype)
    nlist_masked = torch.where(nlist_mask, nlist, torch.zeros_like(nlist))
    tn = atype_ext[nlist_masked]  # (nloc, nnei)

    # ---- embedding
    tebd = type_embedding_table(descr)  # (nt + 1, tebd_dim)
    tdim = tebd.shape[1]
    ss = rr[..., :1]
    if descr.tebd_input_mode == "concat":
        nei_embd = tebd[tn]
        if descr.type_one_side:
            inp = torch.cat([ss, nei_embd], dim=-1)
        else:
            cen_embd = tebd[atype][:, None, :].expand(nloc, nnei, tdim)
            inp = torch.cat([ss, nei_embd, cen_embd], dim=-1)
        gg = embedding_net(descr.embeddings, inp)
    elif descr.tebd_input_mode == "strip":
        gg_s = embedding_net(descr.embeddings, ss)
        nt1 = tebd.shape[0]
        if descr.type_one_side:
            tt_full = embedding_net(descr.embeddings_strip, tebd)
            gg_t = tt_full[tn]
        else:
            tebd_nei = tebd[None, :, :].expand(nt1, nt1, tdim)  # [i, j] -> tebd[j]
            tebd_cen = tebd[:, None, :].expand(nt1, nt1, tdim)  # [i, j] -> tebd[i]
            two_side = torch.cat([tebd_nei, tebd_cen], dim=-1).reshape(nt1 * nt1, 2 * tdim)
            tt_full = embedding_net(descr.embeddings_strip, two_side)
            gg_t = tt_full[atype[:, None] * nt1 + tn]
        if descr.smooth:
            gg_t = gg_t * sw
        gg = gg_s * gg_t + gg_s
    else:
        raise NotImplementedError(descr.tebd_input_mode)

    # ---- gated attention (deepmd-kit NeighborGatedAttention, one head)
    input_r = _unit(rr[..., 1:4])  # (nloc, nnei, 3)
    swv = sw[..., 0]  # (nloc, nnei)
    for block in descr.attention_layers:
        att = block.attention_layer
        hidden = att.in_proj.w.shape[1] // 3
        scaling = float(temperature) if temperature is not None else (hidden * scaling_factor) ** -0.5
        qkv = dense_layer(att.in_proj, gg, resnet=False)
        q, k, v = qkv[..., :hidden], qkv[..., hidden : 2 * hidden], qkv[..., 2 * hidden :]
        if att.normalize:
            q, k, v = _unit(q), _unit(k), _unit(v)
        q = q * scaling
        logits = q @ k.transpose(1, 2)  # (nloc, nnei, nnei) [query m, key n]
        if att.smooth:
            logits = (logits + ATTN_SHIFT) * swv[:, :, None] * swv[:, None, :] - ATTN_SHIFT
        else:
            logits = torch.where(nlist_mask[:, None, :], logits, torch.full_like(logits, -math.inf))
            # a center without any real key gives an all -inf row (NaN in deepmd-kit's
            # softmax, zeroed below because all its queries are padding); keep it finite
            any_key = nlist_mask.any(-1)[:, None, None]
            logits = torch.where(any_key, logits, torch.zeros_like(logits))
        w = torch.softmax(logits, dim=-1)
        w = torch.where(nlist_mask[:, :, None], w, torch.zeros_like(w))
        if att.smooth:
            w = w * swv[:, :, None] * swv[:, None, :]
        if att.dotr:
            w = w * (input_r @ input_r.transpose(1, 2))
        o = w @ v
        out = dense_layer(att.out_proj, o, resnet=False)
        gg = layer_norm(block.attn_layer_norm, gg + out)

    # ---- invariant contraction
    xyz = rr.transpose(1, 2) @ gg / nnei  # (nloc, 4, ng)
    d = xyz.transpose(1, 2) @ xyz[:, :, : descr.axis_neuron]  # (nloc, ng, axis)
    d = d.reshape(nloc, -1)
    if descr.concat_output_tebd:
        d = torch.cat([d, tebd[atype]], dim=-1)
    return d


def dense_descriptor_from_coords(descr, coords, atype, cell, **kwargs):
    """Convenience: images + dense nlist + :func:`dense_se_atten`.

    Returns (descriptor (nloc, dim_out), deg (nloc,) full degree within rcut).
    """
    coord_ext, mapping = extended_system(coords, cell, descr.rcut)
    nlist, deg = dense_nlist(coord_ext, coords.shape[0], descr.rcut, descr.nnei)
    atype_ext = atype[mapping]
    return dense_se_atten(descr, coord_ext, atype_ext, nlist, **kwargs), deg
