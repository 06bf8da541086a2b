"""Activation functions by deepmd-kit name.

deepmd-kit's nine names: ``none`` and ``linear`` are the identity; ``gelu`` and
``gelu_tf`` are both the tanh approximation of GELU (deepmd-kit evaluates both
that way).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

Activation = Callable[[torch.Tensor], torch.Tensor]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def _gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


ACTIVATIONS: dict[str, Activation] = {
    "none": _identity,
    "linear": _identity,
    "tanh": torch.tanh,
    "relu": torch.relu,
    "relu6": F.relu6,
    "sigmoid": torch.sigmoid,
    "softplus": F.softplus,
    "gelu": _gelu_tanh,
    "gelu_tf": _gelu_tanh,
}


def get_activation(name: str | None) -> Activation:
    """Return the activation called ``name`` (case-insensitive; None = identity)."""
    key = "none" if name is None else str(name).lower()
    if key not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation_function {name!r}; supported: {sorted(ACTIVATIONS)}"
        )
    return ACTIVATIONS[key]
