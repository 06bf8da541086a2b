"""Exponential learning-rate decay with deepmd-kit's ``learning_rate`` semantics.

``{"type": "exp", "start_lr": 1e-3, "stop_lr": 1e-8, "decay_steps": 5000}``::

    decay_rate = exp(log(stop_lr / start_lr) / (numb_steps / decay_steps))
    lr(step)   = max(start_lr * decay_rate ** (step // decay_steps), stop_lr)

so the rate reaches ``stop_lr`` at the last step, in stairs of ``decay_steps``.
As in deepmd-kit, ``decay_steps >= numb_steps`` falls back to 100 (or
``numb_steps // 100 + 1`` for short runs). An explicit ``decay_rate`` overrides
the computed one.
"""

from __future__ import annotations

import math


class ExpDecayLR:
    def __init__(self, numb_steps: int, start_lr: float = 1e-3, stop_lr: float = 1e-8, decay_steps: int = 5000,
                 decay_rate: float | None = None, type: str = "exp", **unused):
        if type != "exp":
            raise ValueError(f"learning_rate.type {type!r} is not supported; use 'exp'")
        if unused:
            raise ValueError(f"learning_rate: unsupported keys {sorted(unused)}")
        if not (start_lr > 0 and stop_lr > 0):
            raise ValueError(f"learning_rate: start_lr and stop_lr must be > 0, got {start_lr}, {stop_lr}")
        if decay_steps < 1:
            raise ValueError(f"learning_rate.decay_steps must be >= 1, got {decay_steps}")
        numb_steps = max(int(numb_steps), 1)
        if decay_steps >= numb_steps:
            decay_steps = 100 if numb_steps // 10 > 100 else numb_steps // 100 + 1
        self.start_lr, self.stop_lr, self.decay_steps = float(start_lr), float(stop_lr), int(decay_steps)
        if decay_rate is None:
            decay_rate = math.exp(math.log(stop_lr / start_lr) / (numb_steps / self.decay_steps))
        self.decay_rate = float(decay_rate)

    def __call__(self, step: int) -> float:
        return max(self.start_lr * self.decay_rate ** (step // self.decay_steps), self.stop_lr)
