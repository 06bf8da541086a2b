"""A plain-text progress bar with loss and ETA (no dependency).

On a terminal it redraws one line (``\\r``); otherwise (logs, CI) it prints a
full line at most every ``min_interval`` seconds. ETA = remaining steps times
the mean time per step since the bar started.
"""

from __future__ import annotations

import sys
import time


def format_seconds(s: float) -> str:
    s = max(int(round(s)), 0)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h:d}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


class ProgressBar:
    def __init__(self, total: int, start: int = 0, width: int = 24, stream=None, min_interval: float = 10.0):
        self.total, self.start, self.width = total, start, width
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.min_interval = min_interval if not self.tty else 0.2
        self.t0 = time.perf_counter()
        self._last = -1e30

    def line(self, step: int, info: str = "") -> str:
        done = step - self.start
        frac = step / self.total if self.total else 1.0
        filled = int(self.width * frac)
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / done * (self.total - step) if done > 0 else float("nan")
        eta_s = format_seconds(eta) if eta == eta else "--:--"
        bar = "#" * filled + "." * (self.width - filled)
        return (f"step {step}/{self.total} [{bar}] {100 * frac:3.0f}% {info} "
                f"elapsed {format_seconds(elapsed)} ETA {eta_s}")

    def update(self, step: int, info: str = "", force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self._last < self.min_interval and step < self.total:
            return
        self._last = now
        text = self.line(step, info)
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
