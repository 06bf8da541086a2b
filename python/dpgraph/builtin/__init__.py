"""The built-in model: a small trained DPA1 for Cu–Au alloys (no data or network needed).

``cuau.pt`` is a dpgraph checkpoint (config + weights) and ``cuau.json`` its
model card: how it was made (``scripts/make_builtin_model.py``, reference
data from ASE's EMT, see ``emt_data``), training time and test errors.
"""

from __future__ import annotations

import json
from pathlib import Path

BUILTIN_DIR = Path(__file__).resolve().parent
BUILTIN_NAME = "builtin"


def builtin_path() -> Path:
    """The checkpoint file of the built-in model."""
    path = BUILTIN_DIR / "cuau.pt"
    if not path.exists():
        raise FileNotFoundError(f"the built-in model {path} is missing from this installation; reinstall dpgraph")
    return path


def builtin_card() -> dict:
    """The model card (``cuau.json``): provenance, training and test errors."""
    return json.loads((BUILTIN_DIR / "cuau.json").read_text())


def load_builtin():
    """The built-in :class:`dpgraph.models.EnergyModel` in eval mode."""
    from ..models import load_model

    model = load_model(builtin_path())
    model.eval()
    return model


__all__ = ["BUILTIN_DIR", "BUILTIN_NAME", "builtin_path", "builtin_card", "load_builtin"]
