"""Small neural-network building blocks with deepmd-kit's layer semantics."""

from .activations import ACTIVATIONS, get_activation
from .layers import DenseLayer, EmbeddingNet, FittingNet, LayerNorm, TypeEmbedNet
from .precision import resolve_precision
from .so3 import ChannelLinear, FocusLinear, SO3Linear
from .gaunt import GauntProduct
from .equivariant_attention import EquivariantAttention
from .gate import GatedFeedForward

__all__ = [
    "ACTIVATIONS",
    "get_activation",
    "DenseLayer",
    "EmbeddingNet",
    "FittingNet",
    "LayerNorm",
    "TypeEmbedNet",
    "resolve_precision",
    "ChannelLinear",
    "FocusLinear",
    "SO3Linear",
    "GauntProduct",
    "EquivariantAttention",
    "GatedFeedForward",
]
