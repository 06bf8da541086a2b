"""Seeds of network initialization: deepmd-kit configs give an int or a list of ints."""

from __future__ import annotations

from typing import Sequence

import torch


def seed_to_int(seed: int | Sequence[int]) -> int:
    """One int from deepmd-kit's ``seed`` (an int, or a list folded into one 63-bit int)."""
    if isinstance(seed, (list, tuple)):
        acc = 0
        for s in seed:
            acc = (acc * 1_000_003 + int(s)) % (2**63)
        return acc
    return int(seed)


def init_generator(seed: int | Sequence[int] | None) -> torch.Generator | None:
    """A CPU generator seeded from ``seed``; None (torch's global RNG) when no seed is given."""
    return torch.Generator().manual_seed(seed_to_int(seed)) if seed is not None else None
