"""Brute-force reference neighbor search, for tests only.

:func:`brute_force_edges` loops over every lattice shift that can matter and
checks all pairs per shift: O(N^2 * n_shifts), with no wrapping and no bins,
so it shares no search logic with :func:`dpgraph.graph.build_graph`. Output
conventions (ordering, padding, dtypes) are the same, so graphs compare
directly; :func:`edge_set` gives an order-free view for comparisons.
"""

from __future__ import annotations

import itertools
import math

import torch

from dpgraph.graph.builders import assemble_graph, normalize_frames
from dpgraph.graph.neighbor_graph import MIN_PADDING_EDGES, NeighborGraph


def _shift_range(pos: torch.Tensor, cell: torch.Tensor, pbc, rcut: float) -> list[range]:
    """Per lattice direction, every integer shift S with a pair possibly within rcut.

    A pair needs ``|df_i + S_i| <= rcut / d_i`` where ``df`` is the fractional
    separation (at most the fractional span of the atoms) and
    ``d_i = 1 / |inv(cell)[:, i]|`` is the perpendicular width of the cell (Å).
    """
    inv = torch.linalg.inv(cell)
    frac = pos @ inv
    span = frac.max(0).values - frac.min(0).values
    widths = 1.0 / torch.linalg.vector_norm(inv, dim=0)
    out = []
    for i in range(3):
        m = math.ceil(float(span[i]) + rcut / float(widths[i])) if pbc[i] else 0
        out.append(range(-m, m + 1))
    return out


def _brute_frame(pos, cell, pbc, rcut, centers):
    n, dev = pos.shape[0], pos.device
    if cell is None:
        cell, pbc = torch.eye(3, dtype=pos.dtype, device=dev), (False, False, False)
    ci = torch.arange(n, device=dev) if centers is None else torch.as_tensor(centers, device=dev)
    diff = pos[None, :, :] - pos[ci, None, :]  # (nc, n, 3): r_j - r_i
    srcs, dsts, vecs = [], [], []
    for shift in itertools.product(*_shift_range(pos, cell, pbc, rcut)):
        s = torch.tensor(shift, dtype=pos.dtype, device=dev)
        vec = diff + s[None, None] @ cell if any(shift) else diff
        r = torch.linalg.vector_norm(vec, dim=-1)
        ok = (r > 0) & (r < rcut)
        if not any(shift):
            ok &= ci[:, None] != torch.arange(n, device=dev)[None, :]
        a, j = torch.nonzero(ok, as_tuple=True)
        srcs.append(j)
        dsts.append(ci[a])
        vecs.append(vec[a, j])
    return torch.cat(srcs), torch.cat(dsts), torch.cat(vecs).reshape(-1, 3)


def brute_force_edges(coords, atype, cell=None, pbc=True, rcut: float = 6.0, centers=None,
                      n_pad: int = MIN_PADDING_EDGES) -> NeighborGraph:
    """Reference graph with the inputs and output conventions of ``build_graph``.

    coords : (natoms, 3) or (nf, natoms, 3) in Å; atype : (natoms,) or (nf, natoms);
    cell : None, (3, 3), (nf, 3, 3) or (nf, 9), rows are lattice vectors (Å); pbc : bool or 3 bools;
    rcut : Å. ``centers`` (frame-local atom indices) restricts which atoms get
    incoming edges, to check large systems on a subset.
    """
    coords, atype, cell, pbc, out_dtype = normalize_frames(coords, atype, cell, pbc)
    nf, n = coords.shape[:2]
    srcs, dsts, vecs = [], [], []
    for f in range(nf):
        src, dst, vec = _brute_frame(coords[f], None if cell is None else cell[f], pbc, float(rcut), centers)
        srcs.append(src + f * n)
        dsts.append(dst + f * n)
        vecs.append(vec)
    n_node = torch.tensor([[n, n]] * nf, dtype=torch.int64, device=coords.device)
    return assemble_graph(atype, n_node, torch.cat(srcs), torch.cat(dsts), torch.cat(vecs), n_pad, out_dtype)


def edge_set(graph: NeighborGraph, decimals: int = 6) -> set[tuple]:
    """Real edges as a set of ``(frame, dst, src, vx, vy, vz)`` with frame-local node
    indices and edge_vec (Å) rounded to ``decimals``; independent of edge order."""
    src, dst, vec = graph.real_edges()
    frame = graph.frame_of_node()[dst]
    start = (torch.cumsum(graph.n_node[:, 0], 0) - graph.n_node[:, 0])[frame]
    rows = zip(frame.tolist(), (dst - start).tolist(), (src - start).tolist(),
               vec.to(torch.float64).tolist())
    return {(f, d, s, *(round(x, decimals) + 0.0 for x in v)) for f, d, s, v in rows}
