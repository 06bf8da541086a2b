"""Cache compiled packages: compiling takes tens of seconds, loading milliseconds.

Key: the model's config and weights, the dpgraph sources that shape the
compiled graph, torch version, device and target ISA. Location:
``$DPGRAPH_CACHE`` or ``~/.cache/dpgraph``. Processes asking for the same
package at once (parallel test workers, several ranks) wait on a lock file
while the first one compiles, then share its package.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
from pathlib import Path

import torch

from .exporter import PORTABLE_ISA, export_model

_SOURCE_DIRS = ("descriptors", "descriptors/dpa4", "models", "nn", "ops", "export", "graph")


def cache_dir() -> Path:
    return Path(os.environ.get("DPGRAPH_CACHE", Path.home() / ".cache" / "dpgraph"))


def _sources_digest() -> str:
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for d in _SOURCE_DIRS:
        for f in sorted((root / d).glob("*.py")):
            h.update(f.read_bytes())
    return h.hexdigest()


def model_key(model, portable: bool = False, device: str = "cpu") -> str:
    """Hex digest identifying the compiled package of ``model``."""
    h = hashlib.sha256()
    h.update(json.dumps(model.config, sort_keys=True).encode())
    buf = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
    h.update(buf.getvalue())
    isa = PORTABLE_ISA if portable else torch.backends.cpu.get_cpu_capability().lower()
    h.update(f"{torch.__version__}|{device}|{isa}|{model.dtype}|{_sources_digest()}".encode())
    return h.hexdigest()[:24]


def cached_export(model, portable: bool = False, check: bool = True, device: str = "cpu", log=None) -> Path:
    """Path of ``model``'s package for ``device``, compiling it on the first request only.

    ``log``: a callable given progress lines while compiling (see ``export_model``).
    """
    path = cache_dir() / f"{model_key(model, portable, device)}.pt2"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one compile per package; the others wait for it
        if not path.exists():
            if log:
                log(f"no cached package in {path.parent}")
            tmp = path.with_suffix(f".{os.getpid()}.tmp.pt2")
            export_model(model, tmp, portable=portable, check=check, device=device, log=log)
            os.replace(tmp, path)
    return path
