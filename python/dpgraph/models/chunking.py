"""Evaluate a local model on a large graph in chunks of centers (bounded memory).

For a local model (receptive field == rcut) the energy of an owned node
depends only on its own incoming edges. So a graph can be cut into chunks of
centers: each chunk is a NeighborGraph of its own, with the chunk's centers as
owned nodes and their neighbors as ghost nodes (ABI: ghosts report zero
energy and carry the exact reaction forces). Summing the chunks' energies,
forces (scattered back to the parent's nodes) and virials gives the numbers of
one call, to fp64 rounding, at a peak memory set by the chunk size.

Centers are ordered by degree before they are cut, so each chunk pads its
attention blocks to about its own degree: a slab or a gas-phase system does
not pay (D_max / D_mean)^2.

Dense semantics (deepmd-kit's sel-padded route) embeds every empty neighbor
slot with the type of the frame's *first* atom: each chunk of a dense model
therefore starts with a center of that type (:func:`plan_chunks`).

The same algorithm runs in the C++ runtime (``cpp/src/chunked_run.cpp``); this
is its eager twin, used by :meth:`EnergyModel.evaluate`.
"""

from __future__ import annotations

import torch

from ..graph.neighbor_graph import MIN_PADDING_EDGES, NeighborGraph

DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes of model activations per call (1 GiB)
CACHE_EDGES = 32_768  # beyond ~ 300 water centers per chunk the (C, D, D) blocks leave the cache


def max_chunk_edges(bytes_per_edge: tuple[float, float], degree: float, budget: int = DEFAULT_MEMORY_BUDGET,
                    cpu: bool = True) -> int:
    """Edges per chunk for a memory budget (bytes).

    ``bytes_per_edge = (a, b)``: a chunk of E edges whose centers have ``degree``
    neighbors needs about ``E * (a + b * degree)`` bytes (``b`` counts the
    attention's (C, D, D) blocks). On a CPU the result is capped at
    :data:`CACHE_EDGES` (faster: the blocks stay in cache). At least 1.
    """
    a, b = bytes_per_edge
    per_edge = max(a + b * max(degree, 1.0), 1.0)
    edges = budget // per_edge
    return int(max(1, min(CACHE_EDGES, edges) if cpu else edges))


def plan_chunks(graph: NeighborGraph, max_edges: int, first_type: bool = False) -> list[tuple[int, torch.Tensor]]:
    """Cut every frame's owned nodes into chunks of at most ``max_edges`` real incoming edges.

    Returns a list of ``(frame, centers)`` with ``centers`` (c,) int64 parent
    node indices, degree-sorted chunks (a single center above ``max_edges``
    is a chunk of its own). ``first_type``: every chunk starts with a center
    of the type of its frame's first node (dense semantics); chunks are merged
    when there are fewer such centers than chunks.
    """
    n = graph.n_nodes
    deg = torch.zeros(n, dtype=torch.int64).index_add_(
        0, graph.dst[graph.edge_mask].cpu(), torch.ones(int(graph.edge_mask.sum()), dtype=torch.int64))
    n_node = graph.n_node.cpu()
    atype = graph.atype.cpu()
    plans, start = [], 0
    for f in range(n_node.shape[0]):
        n_f, owned = int(n_node[f, 0]), int(n_node[f, 1])
        nodes = torch.arange(start, start + owned)
        d = deg[nodes]
        order = torch.argsort(d, descending=True, stable=True)
        nodes, d = nodes[order], d[order]
        cum = torch.cumsum(d, 0)
        bounds, lo = [], 0
        while lo < owned:
            base = int(cum[lo - 1]) if lo else 0
            hi = int(torch.searchsorted(cum, base + max_edges, right=True))
            hi = max(hi, lo + 1)
            bounds.append((lo, hi))
            lo = hi
        chunks = [nodes[a:b] for a, b in bounds]
        if first_type and chunks:
            chunks = _lead_with_type(chunks, atype, int(atype[start]))
        plans.extend((f, c) for c in chunks)
        start += n_f
    return plans


def _lead_with_type(chunks: list[torch.Tensor], atype: torch.Tensor, t0: int) -> list[torch.Tensor]:
    """Move/merge centers so that each chunk's first center has type ``t0``."""
    pool = sum(int((atype[c] == t0).sum()) for c in chunks)
    while len(chunks) > pool:  # fewer centers of type t0 than chunks: merge the smallest neighbours
        i = min(range(len(chunks) - 1), key=lambda j: chunks[j].numel() + chunks[j + 1].numel())
        chunks[i : i + 2] = [torch.cat([chunks[i], chunks[i + 1]])]
    leads = [c[atype[c] == t0].tolist() for c in chunks]
    for i in range(len(chunks)):
        if not leads[i]:  # borrow from the chunk with most (it has >= 2: pigeonhole)
            donor = max(range(len(chunks)), key=lambda j: len(leads[j]))
            give = leads[donor].pop()
            chunks[donor] = chunks[donor][chunks[donor] != give]
            chunks[i] = torch.cat([chunks[i], torch.tensor([give])])
            leads[i] = [give]
    out = []
    for c, lead in zip(chunks, leads):
        out.append(torch.cat([torch.tensor([lead[0]]), c[c != lead[0]]]))
    return out


class ChunkGraphs:
    """Sub-graphs of a parent graph, one per planned chunk (built lazily, one at a time)."""

    def __init__(self, graph: NeighborGraph, plans: list[tuple[int, torch.Tensor]]):
        dev = graph.atype.device
        n = graph.n_nodes
        self.graph, self.plans = graph, plans
        chunk_of = torch.full((n,), len(plans), dtype=torch.int64)
        for i, (_, c) in enumerate(plans):
            chunk_of[c] = i
        self.chunk_of = chunk_of.to(dev)
        edge_chunk = torch.where(graph.edge_mask, self.chunk_of[graph.dst], len(plans))
        self.order = torch.argsort(edge_chunk, stable=True)  # edges grouped by chunk, dst order kept
        counts = torch.bincount(edge_chunk, minlength=len(plans) + 1)[: len(plans)].cpu()
        self.offsets = [0] + torch.cumsum(counts, 0).tolist()
        self.local = torch.empty(n, dtype=torch.int64, device=dev)

    def __len__(self) -> int:
        return len(self.plans)

    def build(self, i: int) -> tuple[NeighborGraph, torch.Tensor, int]:
        """Chunk ``i`` as (graph, parent index of each of its nodes (n_sub,), number of centers)."""
        g = self.graph
        dev = g.atype.device
        centers = self.plans[i][1].to(dev)
        e = self.order[self.offsets[i] : self.offsets[i + 1]]
        src, dst = g.src[e], g.dst[e]
        outside = src[self.chunk_of[src] != i]
        ghosts = torch.unique(outside)
        nodes = torch.cat([centers, ghosts])
        self.local[nodes] = torch.arange(nodes.shape[0], device=dev)
        new_src, new_dst = self.local[src], self.local[dst]
        by_dst = torch.argsort(new_dst, stable=True)
        pad = MIN_PADDING_EDGES
        zeros = torch.zeros(pad, dtype=torch.int64, device=dev)
        edge_index = torch.stack([torch.cat([new_src[by_dst], zeros]), torch.cat([new_dst[by_dst], zeros])])
        vec = g.edge_vec[e][by_dst]
        edge_vec = torch.cat([vec, vec.new_zeros((pad, 3))])
        edge_mask = torch.cat([torch.ones(e.shape[0], dtype=torch.bool, device=dev),
                               torch.zeros(pad, dtype=torch.bool, device=dev)])
        n_node = torch.tensor([[nodes.shape[0], centers.shape[0]]], dtype=torch.int64, device=dev)
        return NeighborGraph(g.atype[nodes], n_node, edge_index, edge_vec, edge_mask), nodes, centers.shape[0]


def run_chunked(run, graph: NeighborGraph, plans: list[tuple[int, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
    """Sum ``run(chunk_graph) -> (energy, atom_energy, force, virial, atom_virial)`` over the chunks.

    Returns the parent's five outputs: (nf,), (N,), (N, 3), (nf, 9), (N, 9).
    """
    n, nf = graph.n_nodes, graph.n_frames
    parts = ChunkGraphs(graph, plans)
    like = graph.edge_vec
    energy, virial = like.new_zeros(nf), like.new_zeros(nf, 9)
    atom_energy, force, atom_virial = like.new_zeros(n), like.new_zeros(n, 3), like.new_zeros(n, 9)
    for i in range(len(parts)):
        frame = plans[i][0]
        sub, nodes, nc = parts.build(i)
        e, ae, f, v, av = run(sub)
        energy[frame] += e[0].to(like.dtype)
        virial[frame] += v[0].to(like.dtype)
        atom_energy.index_add_(0, nodes[:nc], ae[:nc].to(like.dtype))
        force.index_add_(0, nodes, f.to(like.dtype))
        atom_virial.index_add_(0, nodes, av.to(like.dtype))
    return energy, atom_energy, force, virial, atom_virial
