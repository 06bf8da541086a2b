"""NeighborGraph ABI v1 and its builders."""

from .neighbor_graph import NeighborGraph, GraphValidationError
from .builders import build_graph, from_dense_nlist

__all__ = ["NeighborGraph", "GraphValidationError", "build_graph", "from_dense_nlist"]
