"""Traceable segment / attention ops on edge lists (reduce along dim 0); real spherical harmonics.

Reference forms used only by the tests (a plain segment softmax, the padded-layout
envelope softmax) live in ``tests/python/segment_reference.py``.
"""

from .envelope import envelope_gated_softmax
from .segment import segment_max, segment_sum
from .spherical import gaunt_tensor, real_sph_harm

__all__ = [
    "segment_sum",
    "segment_max",
    "envelope_gated_softmax",
    "real_sph_harm",
    "gaunt_tensor",
]
