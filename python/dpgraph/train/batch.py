"""Batching: several frames of one system -> one NeighborGraph + label tensors.

:class:`Batch` fields (``nf`` frames, ``N = nf * natoms`` nodes):

* ``graph``: :class:`~dpgraph.graph.NeighborGraph` (edge_vec in the model dtype, Å)
* ``natoms``: (nf,) float, atoms per frame
* ``energy``: (nf,) eV; ``force``: (N, 3) eV/Å or None; ``virial``: (nf, 9) eV or None

:class:`BatchSampler` draws a system with probability proportional to its
frame count (deepmd-kit's ``prob_sys_size``), then ``batch_size`` frames of it
without replacement, from its own ``numpy.random.Generator``; its state is
saved in checkpoints so a resumed run draws the same batches.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import torch

from ..graph import build_graph
from ..graph.neighbor_graph import NeighborGraph
from .data import LabelledSystem


@dataclass
class Batch:
    graph: NeighborGraph
    natoms: torch.Tensor
    energy: torch.Tensor
    force: torch.Tensor | None
    virial: torch.Tensor | None


def make_batch(system: LabelledSystem, frames, rcut: float, dtype: torch.dtype) -> Batch:
    """Frames ``frames`` of ``system`` as one batched graph (frame-major nodes)."""
    idx = np.asarray(frames, dtype=np.int64)
    coords = torch.from_numpy(system.coords[idx])
    cell = None if system.cells is None else torch.from_numpy(system.cells[idx])
    pbc = system.pbc if cell is not None else False
    g = build_graph(coords, torch.from_numpy(system.atype), cell=cell, pbc=pbc, rcut=rcut, dtype=dtype)
    nf = len(idx)
    lab = lambda a, shape: None if a is None else torch.from_numpy(a[idx]).to(dtype).reshape(shape)  # noqa: E731
    return Batch(g, torch.full((nf,), float(system.natoms), dtype=dtype), lab(system.energy, (nf,)),
                 lab(system.force, (-1, 3)), lab(system.virial, (nf, 9)))


def resolve_batch_size(spec, natoms: int) -> int:
    """deepmd-kit ``batch_size``: an int, ``"auto"`` (= ``"auto:32"``) or ``"auto:K"`` -> frames so that
    ``frames * natoms >= K``."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        if spec < 1:
            raise ValueError(f"batch_size must be >= 1, got {spec}")
        return spec
    if isinstance(spec, str) and spec.startswith("auto"):
        k = int(spec.split(":")[1]) if ":" in spec else 32
        return max(1, -(-k // natoms))
    raise ValueError(f"batch_size must be an int, 'auto' or 'auto:N', got {spec!r}")


class BatchSampler:
    """Random batches over several systems (see module docstring)."""

    def __init__(self, systems: list[LabelledSystem], batch_size, rcut: float, dtype: torch.dtype, seed: int = 0):
        self.systems = systems
        self.sizes = [min(resolve_batch_size(batch_size, s.natoms), s.n_frames) for s in systems]
        self.rcut, self.dtype = rcut, dtype
        n = np.array([s.n_frames for s in systems], dtype=np.float64)
        self.prob = n / n.sum()
        self.rng = np.random.default_rng(seed)

    def next(self) -> Batch:
        k = int(self.rng.choice(len(self.systems), p=self.prob)) if len(self.systems) > 1 else 0
        s = self.systems[k]
        frames = np.sort(self.rng.choice(s.n_frames, size=self.sizes[k], replace=False))
        return make_batch(s, frames, self.rcut, self.dtype)

    def state(self) -> str:
        return json.dumps(self.rng.bit_generator.state)

    def set_state(self, state: str) -> None:
        self.rng.bit_generator.state = json.loads(state)


def iterate_frames(systems: list[LabelledSystem], batch_size: int, rcut: float, dtype: torch.dtype):
    """Every frame once, in order, ``batch_size`` frames of one system per batch (for validation/test)."""
    for s in systems:
        for start in range(0, s.n_frames, batch_size):
            yield s, make_batch(s, np.arange(start, min(start + batch_size, s.n_frames)), rcut, dtype)
