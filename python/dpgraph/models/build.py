"""Build, save and load energy models from deepmd-kit style configs.

A config is the ``model`` section of a deepmd-kit input::

    {"type_map": ["O", "H"],
     "descriptor": {"type": "se_atten", "rcut": 6.0, "rcut_smth": 0.5, "sel": 120, ...},
     "fitting_net": {"neuron": [240, 240, 240], "resnet_dt": true, ...}}

A checkpoint is ``torch.save({"format": "dpgraph-checkpoint", "version": 1,
"config": config, "state_dict": ...})``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from ..descriptors import build_descriptor
from ..nn import resolve_precision
from .energy import EnergyModel
from .fitting import EnergyFitting

CHECKPOINT_FORMAT = "dpgraph-checkpoint"


def build_model(config: dict) -> EnergyModel:
    """Build an :class:`EnergyModel` from a config dict (see module docstring)."""
    cfg = copy.deepcopy(config)
    model_type = cfg.pop("type", "standard")
    if model_type not in ("standard", "ener"):
        raise ValueError(f"model type {model_type!r} is not supported; use a standard energy model")
    try:
        type_map = list(cfg.pop("type_map"))
        dcfg = cfg.pop("descriptor")
    except KeyError as err:
        raise ValueError(f"model config needs {err.args[0]!r}") from None
    fcfg = dict(cfg.pop("fitting_net", {}))
    fit_type = fcfg.pop("type", "ener")
    if fit_type != "ener":
        raise ValueError(f"fitting_net type {fit_type!r} is not supported; use 'ener'")
    cfg.pop("data_stat_nbatch", None)
    if cfg:
        raise ValueError(f"model config: unsupported keys {sorted(cfg)}")
    descriptor = build_descriptor(dcfg, len(type_map), type_map)
    fitting = EnergyFitting(len(type_map), descriptor.dim_out, **fcfg)
    dtype = resolve_precision(dcfg.get("precision", "default"))
    model = EnergyModel(descriptor, fitting, type_map, dtype)
    model.config = copy.deepcopy(config)
    return model


def save_checkpoint(model: EnergyModel, path: str | Path) -> None:
    torch.save(
        {"format": CHECKPOINT_FORMAT, "version": 1, "config": model.config, "state_dict": model.state_dict()},
        str(path),
    )


def load_model(path: str | Path) -> EnergyModel:
    """Load a checkpoint (``.pt``) or build a fresh model from a config (``.json``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file {path} does not exist")
    if path.suffix == ".json":
        cfg = json.loads(path.read_text())
        return build_model(cfg.get("model", cfg))
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not a dpgraph checkpoint or JSON config ({err})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a dpgraph checkpoint (no '{CHECKPOINT_FORMAT}' header)")
    model = build_model(ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    return model
