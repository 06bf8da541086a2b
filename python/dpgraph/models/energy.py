"""Energy model: NeighborGraph -> energy, forces and virials (docs/design.md, "Forces and virials").

One backward pass w.r.t. ``edge_vec`` gives ``g_e = dE/d edge_vec_e`` (eV/Å)::

    F_k        = sum_{dst(e)=k} g_e - sum_{src(e)=k} g_e            (eV/Å)
    W_e[a, b]  = -g_e[a] * edge_vec_e[b]                            (eV)
    virial     = sum_e W_e  (per frame)        atom_virial[src(e)] += W_e

``W`` follows deepmd-kit's ``force (x) coord`` index order (row = gradient
component); it is symmetric after summation for a rotation-invariant model.
Per-edge virials are attributed entirely to the neighbor ``src``, as in
deepmd-kit's graph route. Only owned nodes contribute energy; ghost nodes
report zero atom energy and carry reaction forces.
"""

from __future__ import annotations

import torch
from torch import nn

from ..graph.neighbor_graph import node_frames
from ..ops import segment_sum
from .chunking import DEFAULT_MEMORY_BUDGET, max_chunk_edges, plan_chunks, run_chunked

OUTPUTS = ("energy", "atom_energy", "force", "virial", "atom_virial")


class EnergyModel(nn.Module):
    """Descriptor + fitting -> the five ABI outputs.

    ``out_bias`` (ntypes,) eV is added to every atom energy (deepmd-kit's
    output statistics); the fitting's fixed ``bias_atom_e`` is added on top (zero
    unless imported).
    ``atom_exclude_types`` (deepmd-kit's model key): atoms of these types get
    zero atom energy (they still act as neighbors).
    """

    def __init__(self, descriptor: nn.Module, fitting: nn.Module, type_map, dtype: torch.dtype,
                 atom_exclude_types=()):
        super().__init__()
        self.descriptor = descriptor
        self.fitting = fitting
        self.type_map = list(type_map)
        self.ntypes = len(self.type_map)
        self.dtype = dtype
        self.register_buffer("out_bias", torch.zeros(self.ntypes, dtype=dtype))
        keep = torch.ones(self.ntypes, dtype=torch.bool)
        for t in atom_exclude_types:
            keep[int(t)] = False
        # derived from the config, so not part of the state dict
        self.register_buffer("atom_keep", keep, persistent=False)
        self.has_atom_exclude = not bool(keep.all())
        self.config: dict = {}

    @property
    def rcut(self) -> float:
        return self.descriptor.rcut

    @property
    def receptive_field(self) -> float:
        """How far (Å) ghost atoms are needed: rcut for a local descriptor,
        ``n_blocks * rcut`` for a message-passing one (the descriptor's own
        ``receptive_field`` when it has one)."""
        return float(getattr(self.descriptor, "receptive_field", self.descriptor.rcut))

    def atom_energy(self, atype, n_node, edge_index, edge_vec, edge_mask, owned=None) -> torch.Tensor:
        """(N,) energy of each node in the model dtype, zero on ghost nodes.

        ``owned`` (N,) bool may be passed when already known (see ``node_frames``).
        """
        desc = self.descriptor(atype, edge_index[0], edge_index[1], edge_vec, edge_mask, n_node)
        e = self.fitting(desc, atype).to(self.dtype) + self.out_bias[atype]
        if owned is None:
            owned = node_frames(n_node, atype.shape[0])[2]
        if self.has_atom_exclude:
            owned = owned & self.atom_keep[atype]
        return torch.where(owned, e, torch.zeros_like(e))

    def forward(self, atype, n_node, edge_index, edge_vec, edge_mask, create_graph: bool = False):
        """The five NeighborGraph tensors -> (energy (nf,), atom_energy (N,),
        force (N, 3), virial (nf, 9), atom_virial (N, 9)), all in the model dtype.

        ``create_graph=True`` keeps the graph of the forces (training on forces).
        """
        n, nf = atype.shape[0], n_node.shape[0]
        if isinstance(n, int) and n == 0:  # no nodes (an MPI rank without atoms); never when tracing
            z = edge_vec.new_zeros
            return z(nf, dtype=self.dtype), z(0, dtype=self.dtype), z(0, 3, dtype=self.dtype), \
                z(nf, 9, dtype=self.dtype), z(0, 9, dtype=self.dtype)
        src, dst = edge_index[0], edge_index[1]
        frame, _, owned = node_frames(n_node, n)
        with torch.enable_grad():
            ev = edge_vec.to(self.dtype)
            if not ev.requires_grad:
                ev = ev.detach().requires_grad_(True)
            atom_e = self.atom_energy(atype, n_node, edge_index, ev, edge_mask, owned)
            (g,) = torch.autograd.grad(atom_e.sum(), ev, create_graph=create_graph)
        if not create_graph:
            atom_e, g, ev = atom_e.detach(), g.detach(), ev.detach()
        g = torch.where(edge_mask[:, None], g, torch.zeros_like(g))
        energy = segment_sum(atom_e, frame, nf)
        force = segment_sum(g, dst, n) - segment_sum(g, src, n)
        w = (-g[:, :, None] * ev[:, None, :]).reshape(-1, 9)
        virial = segment_sum(w, frame[dst], nf)
        atom_virial = segment_sum(w, src, n)
        return energy, atom_e, force, virial, atom_virial

    @property
    def is_local(self) -> bool:
        """True when an atom's energy depends only on its own edges (receptive field == rcut)."""
        return self.receptive_field <= self.rcut

    @property
    def dense_first_type(self) -> bool:
        """True when empty dense slots take the type of the frame's first atom (chunks must keep it first)."""
        return getattr(self.descriptor, "semantics", "carry-all") == "dense"

    def bytes_per_edge(self) -> tuple[float, float]:
        """(a, b): one call on E edges of degree D keeps about ``E * (a + b * D)`` bytes alive."""
        est = getattr(self.descriptor, "bytes_per_edge", None)
        return est() if est is not None else (65536.0, 0.0)

    def evaluate(self, graph, create_graph: bool = False,
                 memory_budget: int | None = DEFAULT_MEMORY_BUDGET) -> dict[str, torch.Tensor]:
        """Run on a :class:`~dpgraph.graph.NeighborGraph`; returns a dict by output name.

        memory_budget : bytes of activations per model call. A local model is
            evaluated in chunks of centers that fit it (:mod:`.chunking`: the
            same numbers as one call); ``None`` = one call. Ignored with
            ``create_graph`` (training) and for message-passing models.
        """
        if memory_budget is None or create_graph or not self.is_local or graph.n_nodes == 0:
            return dict(zip(OUTPUTS, self(*graph.as_tuple(), create_graph=create_graph)))
        n_real = int(graph.edge_mask.sum())
        n_owned = max(int(graph.n_node[:, 1].sum()), 1)
        max_edges = max_chunk_edges(self.bytes_per_edge(), n_real / n_owned, memory_budget,
                                    cpu=graph.edge_vec.device.type == "cpu")
        if n_real <= max_edges:
            return dict(zip(OUTPUTS, self(*graph.as_tuple())))
        plans = plan_chunks(graph, max_edges, first_type=self.dense_first_type)
        return dict(zip(OUTPUTS, run_chunked(lambda g: self(*g.as_tuple()), graph, plans)))
