"""Traceable segment / attention ops on edge lists (reduce along dim 0)."""

from .envelope import envelope_gated_softmax, envelope_gated_softmax_padded
from .segment import segment_max, segment_softmax, segment_sum

__all__ = [
    "segment_sum",
    "segment_max",
    "segment_softmax",
    "envelope_gated_softmax",
    "envelope_gated_softmax_padded",
]
