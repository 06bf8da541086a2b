"""Small neural-network building blocks with deepmd-kit's layer semantics."""

from .activations import ACTIVATIONS, get_activation
from .layers import DenseLayer, EmbeddingNet, FittingNet, LayerNorm, TypeEmbedNet
from .precision import resolve_precision

__all__ = [
    "ACTIVATIONS",
    "get_activation",
    "DenseLayer",
    "EmbeddingNet",
    "FittingNet",
    "LayerNorm",
    "TypeEmbedNet",
    "resolve_precision",
]
