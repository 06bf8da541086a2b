"""Statistics from data: the descriptor's input statistics (each descriptor
computes its own: se_atten in ``descriptors/env_stats.py``) and the per-type
energy shift.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import torch




def compute_descriptor_stats(descriptor, graphs: Iterable) -> tuple[torch.Tensor, torch.Tensor]:
    """Set the descriptor's input statistics from NeighborGraphs; returns them (se_atten: davg, dstd).

    Each descriptor owns its statistics (``descriptor.compute_input_stats``).
    """
    own = getattr(descriptor, "compute_input_stats", None)
    if own is None:
        raise TypeError(f"{type(descriptor).__name__} computes no input statistics from data "
                        "(it has no compute_input_stats); import its statistics with the model instead")
    return own(graphs)


def compute_energy_bias(
    type_counts: Sequence[Sequence[int]] | np.ndarray,
    energies: Sequence[float] | np.ndarray,
    rcond: float | None = None,
) -> np.ndarray:
    """Per-type energy shift (ntypes,) eV: least squares of frame energies on type counts.

    type_counts : (nframes, ntypes) number of atoms of each type per frame
    energies : (nframes,) eV
    """
    a = np.asarray(type_counts, dtype=np.float64)
    b = np.asarray(energies, dtype=np.float64).reshape(-1)
    if a.ndim != 2 or a.shape[0] != b.shape[0]:
        raise ValueError(f"type_counts must be (nframes, ntypes) matching energies, got {a.shape} and {b.shape}")
    bias, *_ = np.linalg.lstsq(a, b, rcond=rcond)
    return bias
