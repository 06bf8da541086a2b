"""Evaluation in chunks of centers (bounded memory) == one call, eager and through DeepPot.

The chunk planner (degree-sorted, every owned node once, dense chunks led by
the frame's first atom's type) and the chunked sums over energies, forces,
virials and per-atom outputs, for carry-all and dense semantics, with a nonzero
davg (so dense empty slots matter), an H atom first, several frames, an
isolated atom and ghost nodes of an MD rank.
"""

from __future__ import annotations

import pytest
import torch

from dpgraph.graph import build_graph
from dpgraph.graph.neighbor_graph import NeighborGraph
from dpgraph.models.chunking import plan_chunks

from conftest import make_model, random_system, small_config

KEYS = ("energy", "atom_energy", "force", "virial", "atom_virial")


def _rel(a, b) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-300)) if b.numel() else 0.0


def _system(h_first: bool, frames: int = 1):
    coords, atype, cell = [], None, None
    for f in range(frames):
        c, t, cell = random_system(40, 7.5, seed=30 + f)
        if h_first:
            t = torch.roll(t, -1)  # atom 0 becomes type 1
        coords.append(c)
        atype = t
    return torch.stack(coords), atype, cell


def _model(semantics: str, coords, atype, cell):
    model = make_model(small_config(semantics=semantics, sel=30, set_davg_zero=False), coords[0], atype, cell,
                       scale_out=20.0)
    assert float(model.descriptor.davg.abs().max()) > 0  # dense empty slots then carry -davg/dstd
    return model


@pytest.mark.parametrize("semantics", ["carry-all", "dense"])
@pytest.mark.parametrize("h_first", [False, True])
def test_chunked_equals_one_call(semantics, h_first):
    coords, atype, cell = _system(h_first, frames=2)
    model = _model(semantics, coords, atype, cell)
    g = build_graph(coords, atype, cell=cell, rcut=model.rcut)
    one = model.evaluate(g, memory_budget=None)
    budget = int(60 * sum(model.bytes_per_edge()) * 10)  # about 60 edges: a few centers per chunk
    chunked = model.evaluate(g, memory_budget=budget)
    for k in KEYS:
        assert _rel(chunked[k], one[k]) < 1e-12, k


def test_dense_chunks_need_the_first_type():
    """Guard that the test above can fail: chunks led by another type than the frame's first atom differ."""
    from dpgraph.models import chunking

    coords, atype, cell = _system(h_first=True)
    model = _model("dense", coords, atype, cell)
    g = build_graph(coords, atype, cell=cell, rcut=model.rcut)
    one = model.evaluate(g, memory_budget=None)
    plans = plan_chunks(g, 60, first_type=False)
    assert any(int(atype[c[0]]) != int(atype[0]) for _, c in plans)
    wrong = chunking.run_chunked(lambda s: model(*s.as_tuple()), g, plans)
    assert _rel(wrong[0], one["energy"]) > 1e-8


@pytest.mark.parametrize("first_type", [False, True])
def test_plan_covers_each_owned_node_once(first_type):
    coords, atype, cell = _system(h_first=True, frames=2)
    g = build_graph(coords, atype, cell=cell, rcut=4.0)
    deg = torch.bincount(g.dst[g.edge_mask], minlength=g.n_nodes)
    plans = plan_chunks(g, 3 * int(deg.max()), first_type=first_type)
    seen = torch.cat([c for _, c in plans])
    assert torch.equal(torch.sort(seen)[0], torch.arange(g.n_nodes))
    for f, c in plans:
        assert bool((g.frame_of_node()[c] == f).all())
        if first_type:
            first = int(g.n_node[:f, 0].sum())
            assert int(g.atype[c[0]]) == int(g.atype[first])
        else:
            assert int(deg[c].sum()) <= 3 * int(deg.max())


def test_isolated_atom_and_ghost_nodes():
    """An atom without neighbours keeps its energy; edges into ghost nodes of an MD rank are dropped."""
    coords, atype, cell = random_system(30, 7.0, seed=41)
    coords = torch.cat([coords, torch.tensor([[30.0, 30.0, 30.0]], dtype=torch.float64)])
    atype = torch.cat([atype, torch.tensor([1])])
    model = make_model(small_config(), coords, atype, None, scale_out=20.0)
    g = build_graph(coords, atype, cell=None, rcut=model.rcut)
    # the same graph with its last 5 nodes declared ghosts, and the edges into them kept
    n = g.n_nodes
    ghosted = NeighborGraph(g.atype, torch.tensor([[n, n - 5]]), g.edge_index, g.edge_vec, g.edge_mask)
    for graph in (g, ghosted):
        one = model.evaluate(graph, memory_budget=None)
        chunked = model.evaluate(graph, memory_budget=int(40 * sum(model.bytes_per_edge()) * 10))
        for k in KEYS:
            assert _rel(chunked[k], one[k]) < 1e-12, k
        if graph is g:  # the isolated atom (last) has an energy of its own
            assert float(chunked["atom_energy"][n - 1]) == pytest.approx(float(one["atom_energy"][n - 1]), abs=0)
            assert float(one["atom_energy"][n - 1]) != 0.0
