"""Descriptor (``davg``/``dstd``) and energy-bias statistics from training data.

* descriptor: :func:`dpgraph.models.compute_descriptor_stats` over the first
  ``nframes`` frames of every system (deepmd-kit's ``data_stat_nbatch`` role);
* energy bias ``out_bias`` (ntypes,) eV: least squares of every frame energy
  on its type counts (:func:`dpgraph.models.compute_energy_bias`). Types
  absent from the data get 0.
"""

from __future__ import annotations

import numpy as np
import torch

from ..graph import build_graph
from ..models import compute_descriptor_stats, compute_energy_bias
from .data import LabelledSystem


def data_statistics(model, systems: list[LabelledSystem], nframes: int = 10) -> dict:
    """Set the model's descriptor statistics and ``out_bias``; returns them as lists."""
    graphs = []
    for s in systems:
        k = min(nframes, s.n_frames)
        cell = None if s.cells is None else torch.from_numpy(s.cells[:k])
        graphs.append(build_graph(torch.from_numpy(s.coords[:k]), torch.from_numpy(s.atype), cell=cell,
                                  pbc=s.pbc if cell is not None else False, rcut=model.rcut, dtype=torch.float64))
    davg, dstd = compute_descriptor_stats(model.descriptor, graphs)
    counts = np.concatenate([np.tile(np.bincount(s.atype, minlength=model.ntypes), (s.n_frames, 1)) for s in systems])
    energies = np.concatenate([s.energy for s in systems])
    present = counts.sum(0) > 0
    bias = np.zeros(model.ntypes)
    bias[present] = compute_energy_bias(counts[:, present], energies)
    with torch.no_grad():
        model.out_bias.copy_(torch.as_tensor(bias, dtype=model.dtype))
    return {"davg": davg.tolist(), "dstd": dstd.tolist(), "energy_bias": bias.tolist()}
