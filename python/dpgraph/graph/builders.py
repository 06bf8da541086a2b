"""Build a :class:`NeighborGraph` from coordinates or from a dense neighbor list.

:func:`build_graph` is an O(N) cell list written with vectorized torch ops:

1. fractional coordinates ``f = r @ inv(cell)``; periodic dims wrapped to [0, 1);
2. periodic images are generated only where they lie within ``rcut`` of the
   box (perpendicular widths ``d_i = V / |a_j x a_k|``, ``n_i = ceil(rcut/d_i)``);
3. owned + image atoms are binned in fractional bins whose perpendicular width
   is >= ``rcut``; every owned center searches its 27 neighboring bins;
4. candidates are filtered by distance; images are folded onto their owner
   (``src`` = owner index, the lattice shift lives in ``edge_vec``).

All lengths are in Å. Cells are (3, 3) with ROWS the lattice vectors.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..geometry_check import check_density, effective_volume
from .neighbor_graph import MIN_PADDING_EDGES, NeighborGraph

OVERLAP_TOL = 1e-6  # Å; closer pairs are reported as overlapping atoms
_MARGIN = 1e-6  # relative slack so rounding never drops a pair near a bin edge
_MAX_BINS = 1 << 20  # per dimension; keeps linear bin ids well inside int64
_MAX_SHIFTS = 10**6  # image shifts per frame; more means a nonsensical cell


# ----------------------------------------------------------------- inputs
def _as_tensor(x, device=None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x if device is None else x.to(device)
    return torch.as_tensor(np.asarray(x), device=device)


def _is_flag(p) -> bool:
    return isinstance(p, (bool, np.bool_)) or (isinstance(p, (int, np.integer)) and p in (0, 1))


def _pbc3(pbc) -> tuple[bool, bool, bool]:
    """A bool or 3 bools (0/1 too); anything else, e.g. the string "no", is refused rather than coerced."""
    if isinstance(pbc, (torch.Tensor, np.ndarray)):
        pbc = pbc.tolist()
    if _is_flag(pbc):
        return (bool(pbc),) * 3
    if isinstance(pbc, (list, tuple)) and len(pbc) == 3 and all(_is_flag(p) for p in pbc):
        return tuple(bool(p) for p in pbc)
    raise ValueError(f"pbc must be a bool or 3 bools (one per lattice vector), got {pbc!r}")


def _integer_types(atype: torch.Tensor) -> torch.Tensor:
    """int64 types; floats only if integral (0.9 is refused, never truncated to 0), booleans refused."""
    if atype.dtype == torch.bool or atype.is_complex():
        raise ValueError(f"atype must be integer type indices, got {atype.dtype}")
    if atype.is_floating_point():
        bad = ~torch.isfinite(atype) | (atype != torch.round(atype))
        if bool(bad.any()):
            k = [int(i) for i in torch.nonzero(bad)[0]]
            raise ValueError(f"atype must be integer type indices; atype{k} = {float(atype[tuple(k)])} is not an "
                             "integer")
    return atype.to(torch.int64)


def normalize_frames(coords, atype, cell, pbc):
    """Return coords (nf, n, 3) float64, atype (nf, n) int64, cell (nf, 3, 3) or None, pbc, out dtype."""
    coords = _as_tensor(coords)
    out_dtype = coords.dtype if coords.dtype in (torch.float32, torch.float64) else torch.float64
    if coords.dim() == 2:
        coords = coords.unsqueeze(0)
    if coords.dim() != 3 or coords.shape[-1] != 3:
        raise ValueError(f"coords must be (natoms, 3) or (nf, natoms, 3) in Å, got shape {tuple(coords.shape)}")
    nf, n = coords.shape[:2]
    coords = coords.to(torch.float64)
    device = coords.device

    atype = _integer_types(_as_tensor(atype, device))
    given = tuple(atype.shape)
    if atype.dim() == 1:
        atype = atype.unsqueeze(0).expand(nf, -1)
    if tuple(atype.shape) != (nf, n):
        raise ValueError(
            f"atype has shape {given} but coords has {n} atoms in {nf} frame(s); "
            f"pass atype as ({n},) or ({nf}, {n})"
        )

    bad = ~torch.isfinite(coords).all(-1)
    if bool(bad.any()):
        f, i = (int(v) for v in torch.nonzero(bad)[0])
        raise ValueError(f"coordinates of atom {i} (frame {f}) are NaN or inf; fix the input coordinates")

    pbc = (False, False, False) if cell is None else _pbc3(pbc)
    if not any(pbc):
        return coords, atype, None, pbc, out_dtype  # open boundaries: the cell is not needed

    cell = _as_tensor(cell, device).to(torch.float64)
    if cell.shape[-1] == 9:
        cell = cell.reshape(*cell.shape[:-1], 3, 3)
    if cell.dim() == 2:
        cell = cell.unsqueeze(0).expand(nf, 3, 3)
    if tuple(cell.shape) != (nf, 3, 3):
        raise ValueError(f"cell must be (3, 3), (nf, 3, 3) or (nf, 9) with nf = {nf}, got {tuple(cell.shape)}")
    for f in range(nf):
        _check_cell(cell[f], f)
    return coords, atype, cell, pbc, out_dtype


def _check_cell(cell: torch.Tensor, frame: int) -> None:
    if not bool(torch.isfinite(cell).all()):
        raise ValueError(f"cell of frame {frame} has NaN or inf entries")
    vol = float(torch.linalg.det(cell).abs())
    scale = float(torch.linalg.vector_norm(cell, dim=1).prod())
    if scale == 0.0 or vol <= 1e-10 * scale:
        raise ValueError(
            f"cell of frame {frame} is singular or degenerate (volume {vol:.3g} Å^3); its three rows must be "
            "linearly independent lattice vectors in Å (for a slab give a non-zero vector along the "
            "non-periodic direction)"
        )


def perpendicular_widths(cell: torch.Tensor) -> torch.Tensor:
    """(3,) distances (Å) between opposite faces of the cell: ``V / |a_j x a_k|``."""
    vol = torch.linalg.det(cell).abs()
    cross = torch.stack([torch.linalg.cross(cell[(i + 1) % 3], cell[(i + 2) % 3]) for i in range(3)])
    return vol / torch.linalg.vector_norm(cross, dim=1)


# ------------------------------------------------------------- ordering
def sort_edges(src: torch.Tensor, dst: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
    """(E,) permutation ordering edges by dst, then src, distance, vx, vy, vz (deterministic)."""
    if dst.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=dst.device)
    pair = dst * (int(src.max()) + 1) + src
    pair_sorted, perm = torch.sort(pair, stable=True)
    if not bool((pair_sorted[1:] == pair_sorted[:-1]).any()):
        return perm  # no pair repeats (no multiple images), so (dst, src) decides the order
    keys = [pair, torch.linalg.vector_norm(vec, dim=1), vec[:, 0], vec[:, 1], vec[:, 2]]
    perm = torch.arange(dst.numel(), device=dst.device)
    for key in reversed(keys):  # least significant key first; stable sorts keep earlier order
        perm = perm[torch.sort(key[perm], stable=True).indices]
    return perm


def assemble_graph(atype, n_node, src, dst, vec, n_pad: int, dtype) -> NeighborGraph:
    """Sort real edges, append ``n_pad`` masked padding edges (src = dst = 0, vec = 0), validate."""
    if n_pad < MIN_PADDING_EDGES:
        raise ValueError(f"n_pad must be >= {MIN_PADDING_EDGES} (the ABI needs trailing padding), got {n_pad}")
    perm = sort_edges(src, dst, vec)
    dev = vec.device
    pad_i = torch.zeros(n_pad, dtype=torch.int64, device=dev)
    edge_index = torch.stack([torch.cat([src[perm], pad_i]), torch.cat([dst[perm], pad_i])])
    edge_vec = torch.cat([vec[perm], torch.zeros(n_pad, 3, dtype=vec.dtype, device=dev)]).to(dtype)
    edge_mask = torch.cat([torch.ones(src.numel(), dtype=torch.bool, device=dev),
                           torch.zeros(n_pad, dtype=torch.bool, device=dev)])
    g = NeighborGraph(atype.reshape(-1).contiguous(), n_node, edge_index, edge_vec, edge_mask)
    return g.validate()


# ------------------------------------------------------------ cell list
def _images(frac, pbc, rc_frac):
    """Periodic images within ``rcut`` of the box.

    frac : (n, 3) wrapped fractional coords. Returns owner (M,) int64 and
    shift (M, 3) float integer lattice shifts of the image atoms (M may be 0).
    """
    dev = frac.device
    reach = [math.ceil(float(rc_frac[i]) * (1 + _MARGIN)) if pbc[i] else 0 for i in range(3)]
    n_shift = math.prod(2 * m + 1 for m in reach)
    if n_shift > _MAX_SHIFTS:
        raise ValueError(
            f"the cell is far too thin for rcut: {n_shift} periodic image shifts would be needed; "
            "check the cell units (Å) and rcut"
        )
    grid = torch.cartesian_prod(*[torch.arange(-m, m + 1, device=dev, dtype=torch.float64) for m in reach])
    grid = grid.reshape(-1, 3)
    grid = grid[(grid != 0).any(1)]  # (S, 3), zero shift = the owned atoms themselves
    pos = frac[None] + grid[:, None]  # (S, n, 3)
    lim = rc_frac * (1 + _MARGIN)
    keep = torch.ones(pos.shape[:2], dtype=torch.bool, device=dev)
    for i in range(3):
        if pbc[i]:
            keep &= (pos[..., i] >= -lim[i]) & (pos[..., i] < 1 + lim[i])
    s_idx, owner = torch.nonzero(keep, as_tuple=True)
    return owner, grid[s_idx]


def _candidate_pairs(fe: torch.Tensor, n_center: int, lo, hi, rc_frac):
    """Cell list: (center, ext) index pairs of atoms in the same or adjacent bins.

    fe : (M, 3) fractional coords of all (owned first, then image) atoms;
    the first ``n_center`` are the centers. Bins span [lo, hi] per dim with
    fractional width >= rc_frac (i.e. perpendicular width >= rcut).
    """
    dev = fe.device
    span = (hi - lo).clamp_min(0)
    nb = torch.floor(span / (rc_frac * (1 + _MARGIN))).clamp(1, _MAX_BINS).to(torch.int64)
    width = torch.where(span > 0, span / nb, torch.ones_like(span))
    b = torch.floor((fe - lo) / width).to(torch.int64)
    b = torch.minimum(b.clamp_min(0), nb - 1)  # (M, 3) bin coordinates
    strides = torch.stack([nb[1] * nb[2], nb[2], torch.ones_like(nb[2])])
    lin_sorted, order = torch.sort((b * strides).sum(1))

    offsets = torch.cartesian_prod(*[torch.arange(-1, 2, device=dev)] * 3)  # (27, 3)
    qb = b[:n_center, None, :] + offsets[None]  # (n, 27, 3)
    valid = ((qb >= 0) & (qb < nb)).all(-1)
    q = (qb * strides).sum(-1).reshape(-1)
    start = torch.searchsorted(lin_sorted, q)
    count = (torch.searchsorted(lin_sorted, q, right=True) - start) * valid.reshape(-1)

    total = int(count.sum())
    center = torch.arange(n_center, device=dev).repeat_interleave(27).repeat_interleave(count)
    first = torch.cumsum(count, 0) - count  # position of each query's first pair
    pos = torch.arange(total, device=dev) + (start - first).repeat_interleave(count)
    return center, order[pos]


def _frame_edges(pos: torch.Tensor, cell, pbc, rcut: float, frame: int):
    """Edges of one frame: local (src, dst) int64 and vec (E, 3) float64 in Å."""
    n, dev = pos.shape[0], pos.device
    if cell is None:
        cell = torch.eye(3, dtype=pos.dtype, device=dev)
        widths = torch.ones(3, dtype=pos.dtype, device=dev)
    else:
        widths = perpendicular_widths(cell)
    rc_frac = rcut / widths  # rcut in fractional units, per lattice direction
    periodic = torch.tensor(pbc, device=dev)

    frac = pos @ torch.linalg.inv(cell)
    check_density(n, effective_volume(frac, float(torch.linalg.det(cell).abs()), widths, pbc, rcut), rcut, frame)
    k = torch.where(periodic, -torch.floor(frac), torch.zeros_like(frac))  # integer wrap shifts
    fw = frac + k
    owner_img, shift_img = _images(fw, pbc, rc_frac)
    owner = torch.cat([torch.arange(n, device=dev), owner_img])
    shift = torch.cat([k, k[owner_img] + shift_img])  # total integer shift of every ext atom
    fe = torch.cat([fw, fw[owner_img] + shift_img])

    if n:
        lo = torch.where(periodic, -rc_frac * (1 + _MARGIN), fw.min(0).values)
        hi = torch.where(periodic, 1 + rc_frac * (1 + _MARGIN), fw.max(0).values)
        dst, ext = _candidate_pairs(fe, n, lo, hi, rc_frac)
    else:
        dst = ext = torch.zeros(0, dtype=torch.int64, device=dev)
    # coarse filter on the binned (wrapped) positions, with slack for rounding
    cart = fe @ cell
    near = ((cart[ext] - cart[dst]).square().sum(1) < (rcut * (1 + _MARGIN)) ** 2) & (ext != dst)
    dst, ext = dst[near], ext[near]  # ext == dst is the atom itself at zero shift
    # exact vectors from the input positions and integer lattice shifts
    src = owner[ext]
    vec = (pos[src] - pos[dst]) + (shift[ext] - k[dst]) @ cell
    r = torch.linalg.vector_norm(vec, dim=1)
    close = r < OVERLAP_TOL
    if bool(close.any()):
        e = int(torch.nonzero(close)[0, 0])
        i, j = int(dst[e]), int(src[e])
        what = f"atom {i} and its own periodic image" if i == j else f"atoms {i} and {j}"
        raise ValueError(
            f"overlapping atoms in frame {frame}: {what} are {float(r[e]):.3g} Å apart (< {OVERLAP_TOL} Å); "
            "remove duplicated atoms or fix the cell"
        )
    keep = r < rcut
    return src[keep], dst[keep], vec[keep]


# ------------------------------------------------------------ public API
def build_graph(coords, atype, cell=None, pbc=True, rcut: float = 6.0, n_pad: int = MIN_PADDING_EDGES,
                dtype: torch.dtype | None = None) -> NeighborGraph:
    """Neighbor graph of all pairs with ``0 < |r| < rcut`` (Å), periodic images folded onto owners.

    Parameters
    ----------
    coords : (natoms, 3) or (nf, natoms, 3) positions in Å (tensor or ndarray).
    atype : (natoms,) or (nf, natoms) integer types.
    cell : None (open boundaries), (3, 3), (nf, 3, 3) or (nf, 9); rows are lattice vectors (Å).
    pbc : bool or 3 bools, periodicity along each lattice vector (ignored when cell is None).
    rcut : cutoff radius in Å (> 0).
    n_pad : number of trailing masked padding edges (>= 2).
    dtype : float dtype of ``edge_vec``; default the dtype of ``coords`` (float64 for ndarrays).

    Returns a validated NeighborGraph with ``n_node[f] = [natoms, natoms]``, on the device of coords.
    """
    rcut = float(rcut)
    if not (math.isfinite(rcut) and rcut > 0):
        raise ValueError(f"rcut must be a positive finite number of Å, got {rcut}")
    coords, atype, cell, pbc, out_dtype = normalize_frames(coords, atype, cell, pbc)
    nf, n = coords.shape[:2]
    srcs, dsts, vecs = [], [], []
    for f in range(nf):
        src, dst, vec = _frame_edges(coords[f], None if cell is None else cell[f], pbc, rcut, f)
        srcs.append(src + f * n)
        dsts.append(dst + f * n)
        vecs.append(vec)
    n_node = torch.tensor([[n, n]] * nf, dtype=torch.int64, device=coords.device)
    return assemble_graph(atype, n_node, torch.cat(srcs), torch.cat(dsts), torch.cat(vecs), n_pad, dtype or out_dtype)


def from_dense_nlist(coord_ext, atype_ext, nlist, nloc: int | None = None, mapping=None,
                     rcut: float | None = None, n_pad: int = MIN_PADDING_EDGES, fold: bool = True) -> NeighborGraph:
    """Convert a deepmd-kit style dense neighbor list to a NeighborGraph.

    Parameters
    ----------
    coord_ext : (nf, nall, 3) extended coordinates in Å; the first ``nloc`` atoms are local.
    atype_ext : (nf, nall) integer types of the extended atoms.
    nlist : (nf, nloc, nnei) indices into the extended atoms, -1 for empty slots.
    nloc : number of local atoms (default ``nlist.shape[1]``).
    mapping : (nf, nall) extended -> local index; needed for ``fold``.
    rcut : if given, keep only neighbors with ``|r| < rcut`` (Å).
    n_pad : number of trailing masked padding edges (>= 2).
    fold : with a mapping, fold ghosts onto their owners (nodes = nloc per frame);
        otherwise ghosts are extra nodes (nodes = nall, owned = nloc) without incoming edges.

    ``edge_vec = coord_ext[nlist] - coord_ext[center]`` keeps the dtype of coord_ext.
    """
    coord_ext = _as_tensor(coord_ext)
    dev = coord_ext.device
    if not coord_ext.is_floating_point():
        coord_ext = coord_ext.to(torch.float64)
    atype_ext = _as_tensor(atype_ext, dev).to(torch.int64)
    nlist = _as_tensor(nlist, dev).to(torch.int64)
    if coord_ext.dim() == 2:
        coord_ext, atype_ext, nlist = coord_ext[None], atype_ext.reshape(1, -1), nlist[None]
    nf, nall = coord_ext.shape[:2]
    nloc = nlist.shape[1] if nloc is None else int(nloc)
    if tuple(atype_ext.shape) != (nf, nall) or nlist.dim() != 3 or nlist.shape[0] != nf or nlist.shape[1] < nloc:
        raise ValueError(
            f"expected coord_ext (nf, nall, 3), atype_ext (nf, nall), nlist (nf, nloc, nnei); got "
            f"{tuple(coord_ext.shape)}, {tuple(atype_ext.shape)}, {tuple(nlist.shape)} with nloc = {nloc}"
        )
    if nloc > nall:
        raise ValueError(f"nloc = {nloc} exceeds the number of extended atoms nall = {nall}")
    nlist = nlist[:, :nloc]
    if bool((nlist >= nall).any()) or bool((nlist < -1).any()):
        raise ValueError(f"nlist entries must be -1 (empty) or in [0, nall = {nall})")

    f, i, s = torch.nonzero(nlist >= 0, as_tuple=True)
    j = nlist[f, i, s]
    vec = coord_ext[f, j] - coord_ext[f, i]
    if rcut is not None:
        inside = torch.linalg.vector_norm(vec, dim=1) < rcut
        f, i, j, vec = f[inside], i[inside], j[inside], vec[inside]

    if fold and mapping is not None:
        mapping = _as_tensor(mapping, dev).to(torch.int64).reshape(nf, nall)
        if bool(((mapping < 0) | (mapping >= nloc)).any()):
            raise ValueError(f"mapping entries must be local atom indices in [0, nloc = {nloc})")
        j = mapping[f, j]
        per_frame, atype = nloc, atype_ext[:, :nloc]
    else:
        per_frame, atype = nall, atype_ext
    n_node = torch.tensor([[per_frame, nloc]] * nf, dtype=torch.int64, device=dev)
    return assemble_graph(atype, n_node, j + f * per_frame, i + f * per_frame, vec, n_pad, vec.dtype)
