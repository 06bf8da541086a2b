"""Precision names as deepmd-kit spells them."""

from __future__ import annotations

import torch

_PRECISIONS = {
    "default": torch.float64,
    "float64": torch.float64,
    "double": torch.float64,
    "float32": torch.float32,
    "single": torch.float32,
}
_REFUSED = {"float16", "half", "bfloat16"}


def resolve_precision(name: str | torch.dtype | None) -> torch.dtype:
    """Map a deepmd-kit precision name to a torch dtype.

    ``default`` is float64, as in deepmd-kit. Half precisions are refused: the
    environment matrix (1/r near the cutoff) and force accumulation lose too
    many digits in 16 bits to give usable forces.
    """
    if isinstance(name, torch.dtype):
        if name not in (torch.float32, torch.float64):
            raise ValueError(f"precision {name} is not supported; use float32 or float64")
        return name
    key = "default" if name is None else str(name).lower()
    if key in _REFUSED:
        raise ValueError(
            f"precision {name!r} is not supported by dpgraph: 16-bit floats are too coarse "
            "for energy/force accumulation; use 'float32' or 'float64'"
        )
    if key not in _PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; use 'float64', 'float32' or 'default'")
    return _PRECISIONS[key]
