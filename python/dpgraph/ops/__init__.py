"""Traceable segment / attention ops on edge lists (reduce along dim 0); real spherical harmonics."""

from .envelope import envelope_gated_softmax, envelope_gated_softmax_padded
from .segment import segment_max, segment_softmax, segment_sum
from .spherical import gaunt_tensor, real_sph_harm

__all__ = [
    "segment_sum",
    "segment_max",
    "segment_softmax",
    "envelope_gated_softmax",
    "envelope_gated_softmax_padded",
    "real_sph_harm",
    "gaunt_tensor",
]
