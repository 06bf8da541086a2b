"""The NeighborGraph: the whole input of an exported dpgraph model (ABI v1).

Five tensors, in this order (docs/design.md, section "The ABI"):

=====  ============  ==================  =========================================
 #     name          shape, dtype        meaning
=====  ============  ==================  =========================================
 0     ``atype``     (N,) int64          model type index of each node
 1     ``n_node``    (nf, 2) int64       per frame ``[nodes, owned nodes]``
 2     ``edge_index`` (2, E) int64       row 0 ``src`` (neighbor), row 1 ``dst``
                                         (center)
 3     ``edge_vec``  (E, 3) float        ``r_src - r_dst`` in Å
 4     ``edge_mask`` (E,) bool           True for real edges
=====  ============  ==================  =========================================

Nodes are frame-major, owned nodes first within a frame. Real edges are sorted
by ``dst`` (stable); the last two (or more) edges are masked padding. Masked
edges elsewhere are tolerated by the models (they contribute exactly zero), but
the builders never produce them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

ABI_VERSION = 1
MIN_PADDING_EDGES = 2
FLOAT_DTYPES = (torch.float32, torch.float64)


def node_frames(n_node: torch.Tensor, n_nodes: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per node: (N,) frame index, (N,) index within its frame, (N,) bool owned flag.

    Shape-static in N (traceable with a symbolic node count).
    """
    ends = torch.cumsum(n_node[:, 0], 0)
    idx = torch.arange(n_nodes, device=n_node.device)
    frame = torch.searchsorted(ends, idx, right=True)
    local = idx - (ends - n_node[:, 0])[frame]
    return frame, local, local < n_node[:, 1][frame]


class GraphValidationError(ValueError):
    """A NeighborGraph breaks the ABI; the message names the field and the fix."""


@dataclass
class NeighborGraph:
    """Graph-form input of a dpgraph model.

    Attributes
    ----------
    atype : (N,) int64
    n_node : (nf, 2) int64, per frame [nodes, owned nodes]
    edge_index : (2, E) int64, [src; dst]
    edge_vec : (E, 3) float32/float64, r_src - r_dst (Å)
    edge_mask : (E,) bool
    """

    atype: torch.Tensor
    n_node: torch.Tensor
    edge_index: torch.Tensor
    edge_vec: torch.Tensor
    edge_mask: torch.Tensor

    # ------------------------------------------------------------------ views
    @property
    def src(self) -> torch.Tensor:
        return self.edge_index[0]

    @property
    def dst(self) -> torch.Tensor:
        return self.edge_index[1]

    @property
    def n_nodes(self) -> int:
        return int(self.atype.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.edge_vec.shape[0])

    @property
    def n_frames(self) -> int:
        return int(self.n_node.shape[0])

    def as_tuple(self) -> tuple[torch.Tensor, ...]:
        """The five tensors in ABI order."""
        return tuple(getattr(self, f.name) for f in fields(self))

    def to(self, device=None, dtype: torch.dtype | None = None) -> "NeighborGraph":
        """Move to ``device``; ``dtype`` converts ``edge_vec`` only."""
        return NeighborGraph(
            self.atype.to(device),
            self.n_node.to(device),
            self.edge_index.to(device),
            self.edge_vec.to(device=device, dtype=dtype or self.edge_vec.dtype),
            self.edge_mask.to(device),
        )

    def frame_of_node(self) -> torch.Tensor:
        """(N,) int64 frame index of every node."""
        return node_frames(self.n_node, self.n_nodes)[0]

    def real_edges(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(src, dst, vec) of the real (unmasked) edges only."""
        m = self.edge_mask
        return self.src[m], self.dst[m], self.edge_vec[m]

    # ------------------------------------------------------------- validation
    def validate(self, ntypes: int | None = None, dtype: torch.dtype | None = None) -> "NeighborGraph":
        """Check the ABI; raise :class:`GraphValidationError` naming the problem.

        Parameters
        ----------
        ntypes : if given, every ``atype`` must be in ``[0, ntypes)``.
        dtype : if given, the float dtype ``edge_vec`` must have (the model's).
        """
        _check_dtypes(self, dtype)
        _check_shapes(self)
        _check_values(self, ntypes)
        return self


def _fail(msg: str) -> None:
    raise GraphValidationError(msg)


def _check_dtypes(g: NeighborGraph, dtype: torch.dtype | None) -> None:
    for name in ("atype", "n_node", "edge_index"):
        t = getattr(g, name)
        if t.dtype != torch.int64:
            _fail(f"NeighborGraph.{name} must be int64, got {t.dtype}; convert with .to(torch.int64)")
    if g.edge_vec.dtype not in FLOAT_DTYPES:
        _fail(f"NeighborGraph.edge_vec must be float32 or float64, got {g.edge_vec.dtype}")
    if dtype is not None and g.edge_vec.dtype != dtype:
        _fail(
            f"NeighborGraph.edge_vec is {g.edge_vec.dtype} but the model runs in {dtype}; "
            f"convert with graph.to(dtype={dtype})"
        )
    if g.edge_mask.dtype != torch.bool:
        _fail(f"NeighborGraph.edge_mask must be bool, got {g.edge_mask.dtype}")


def _check_shapes(g: NeighborGraph) -> None:
    if g.atype.dim() != 1:
        _fail(f"NeighborGraph.atype must be 1-D (N,), got shape {tuple(g.atype.shape)}")
    if g.n_node.dim() != 2 or g.n_node.shape[1] != 2 or g.n_node.shape[0] < 1:
        _fail(f"NeighborGraph.n_node must be (nf >= 1, 2), got shape {tuple(g.n_node.shape)}")
    if g.edge_index.dim() != 2 or g.edge_index.shape[0] != 2:
        _fail(f"NeighborGraph.edge_index must be (2, E), got shape {tuple(g.edge_index.shape)}")
    n_e = g.edge_index.shape[1]
    if tuple(g.edge_vec.shape) != (n_e, 3):
        _fail(f"NeighborGraph.edge_vec must be (E, 3) = ({n_e}, 3), got {tuple(g.edge_vec.shape)}")
    if tuple(g.edge_mask.shape) != (n_e,):
        _fail(f"NeighborGraph.edge_mask must be (E,) = ({n_e},), got {tuple(g.edge_mask.shape)}")
    if n_e < MIN_PADDING_EDGES:
        _fail(f"NeighborGraph needs at least {MIN_PADDING_EDGES} edges (trailing padding), got {n_e}")
    devices = {t.device for t in g.as_tuple()}
    if len(devices) != 1:
        _fail(f"NeighborGraph tensors live on different devices {sorted(map(str, devices))}; move them together")


def _check_values(g: NeighborGraph, ntypes: int | None) -> None:
    n = g.n_nodes
    nodes, owned = g.n_node[:, 0], g.n_node[:, 1]
    if int(nodes.sum()) != n:
        _fail(f"sum(n_node[:, 0]) = {int(nodes.sum())} but atype has {n} nodes")
    if bool(((owned < 0) | (owned > nodes)).any()):
        _fail("n_node[:, 1] (owned nodes) must be in [0, n_node[:, 0]] for every frame")
    if n and bool((g.atype < 0).any()):
        _fail("NeighborGraph.atype has negative type indices")
    if ntypes is not None and n and int(g.atype.max()) >= ntypes:
        _fail(f"NeighborGraph.atype has type index {int(g.atype.max())} but the model has {ntypes} types")
    if bool(g.edge_mask[-MIN_PADDING_EDGES:].any()):
        _fail(
            f"the last {MIN_PADDING_EDGES} edges must be masked padding (edge_mask False); "
            "append padding edges (src = dst = 0, edge_vec = 0)"
        )
    if bool(((g.edge_index < 0) | (g.edge_index >= max(n, 1))).any()):
        _fail(f"NeighborGraph.edge_index has entries outside [0, N) with N = {n}")
    if not bool(torch.isfinite(g.edge_vec).all()):
        bad = torch.nonzero(~torch.isfinite(g.edge_vec).all(1))[:, 0]
        _fail(f"NeighborGraph.edge_vec has non-finite entries (edges {bad[:5].tolist()}); check coordinates for NaN/inf")
    src, dst, vec = g.real_edges()
    if dst.numel() > 1 and bool((dst[1:] < dst[:-1]).any()):
        _fail("real edges must be sorted by dst (center-major); sort with a stable argsort of edge_index[1]")
    if src.numel():
        frame = g.frame_of_node()
        if bool((frame[src] != frame[dst]).any()):
            _fail("an edge connects nodes of different frames")
        r = torch.linalg.vector_norm(vec, dim=1)
        if bool((r < 1e-6).any()):
            k = int(torch.nonzero(r < 1e-6)[0, 0])
            _fail(
                f"overlapping atoms: edge {int(src[k])} -> {int(dst[k])} has length {float(r[k]):.3g} Å; "
                "two atoms (or an atom and its periodic image) sit on top of each other"
            )
