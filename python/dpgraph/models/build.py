"""Build, save and load energy models from deepmd-kit style configs.

A config is the ``model`` section of a deepmd-kit input::

    {"type_map": ["O", "H"],
     "descriptor": {"type": "se_atten", "rcut": 6.0, "rcut_smth": 0.5, "sel": 120, ...},
     "fitting_net": {"neuron": [240, 240, 240], "resnet_dt": true, ...}}

Model-level ``atom_exclude_types`` (those atoms get zero atom energy) and
``pair_exclude_types`` (those type pairs are no neighbors) are accepted as in
deepmd-kit.

A checkpoint is ``torch.save({"format": "dpgraph-checkpoint", "version": 2,
"config": config, "state_dict": ...})``. Version 2 is deepmd-kit's network
definition (a timestep ``idt`` only on layers with a skip connection, a fixed
``bias_atom_e``); a version-1 checkpoint loads when it has no ``idt`` on a
layer without a skip, and is refused with a message otherwise.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from ..descriptors import build_descriptor
from ..nn import resolve_precision
from .energy import EnergyModel
from .dpa4_fitting import DPA4EnergyFitting
from .fitting import EnergyFitting

CHECKPOINT_FORMAT = "dpgraph-checkpoint"
CHECKPOINT_VERSION = 2


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
    if fit_type not in ("ener", "dpa4_ener", "sezm_ener"):
        raise ValueError(f"fitting_net type {fit_type!r} is not supported; use 'ener' (or 'dpa4_ener' with dpa4)")
    cfg.pop("data_stat_nbatch", None)
    atom_excl = _type_list(cfg.pop("atom_exclude_types", []), len(type_map), "atom_exclude_types")
    pair_excl = _pair_list(cfg.pop("pair_exclude_types", []), len(type_map))
    if cfg:
        raise ValueError(f"model config: unsupported keys {sorted(cfg)}")
    if pair_excl:  # model level: the pairs are no neighbors at all (deepmd-kit drops them from the list)
        dcfg = {**dcfg, "pair_exclude_types": pair_excl}
    descriptor = build_descriptor(dcfg, len(type_map), type_map)
    if fit_type == "ener":
        fitting = EnergyFitting(len(type_map), descriptor.dim_out, **fcfg)
    else:
        fitting = DPA4EnergyFitting(len(type_map), descriptor.dim_out, **fcfg)
    dtype = resolve_precision(dcfg.get("precision", "default"))
    model = EnergyModel(descriptor, fitting, type_map, dtype, atom_exclude_types=atom_excl)
    model.config = copy.deepcopy(config)
    return model


def _type_list(value, ntypes: int, name: str) -> list[int]:
    out = []
    for t in value:
        if isinstance(t, bool) or not isinstance(t, int) or not 0 <= t < ntypes:
            raise ValueError(f"model config: {name} entry {t!r} must be a type index in [0, {ntypes})")
        out.append(int(t))
    return out


def _pair_list(value, ntypes: int) -> list[list[int]]:
    out = []
    for pair in value:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"model config: pair_exclude_types entry {pair!r} must be a pair of type indices")
        out.append(_type_list(pair, ntypes, "pair_exclude_types"))
    return out


def save_checkpoint(model: EnergyModel, path: str | Path) -> None:
    """Write a model-only checkpoint; atomically: a failed write leaves an existing ``path`` as it was."""
    from ..atomic_io import atomic_write

    with atomic_write(path, check=read_checkpoint, what="checkpoint") as tmp:
        torch.save(
            {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": model.config,
             "state_dict": model.state_dict()},
            str(tmp),
        )


def read_checkpoint(path: Path, expected: str = "a dpgraph checkpoint") -> dict:
    """The dict of a dpgraph checkpoint file (model-only or training); ValueError for anything else."""
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not {expected} ({err})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a dpgraph checkpoint (no '{CHECKPOINT_FORMAT}' header)")
    return ckpt


def load_model(path: str | Path) -> EnergyModel:
    """Load a checkpoint (``.pt``) or build a fresh model from a config (``.json``)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"model file {path} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"model file {path} is a directory; give a .pt checkpoint or a .json config")
    if path.suffix == ".json":
        try:
            cfg = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{path}: invalid JSON ({err})") from None
        if not isinstance(cfg, dict):
            raise ValueError(f"{path}: a model config must be a JSON object (deepmd-kit's model section, or an "
                             "input with a 'model' key)")
        return build_model(cfg.get("model", cfg))
    ckpt = read_checkpoint(path, "a dpgraph checkpoint or JSON config")
    model = build_model(ckpt["config"])
    load_weights(model, ckpt, path)
    return model


def load_weights(model: EnergyModel, ckpt: dict, path) -> None:
    """Copy a checkpoint's weights into ``model`` (built from its config).

    Version-1 checkpoints (dpgraph's network before it followed deepmd-kit's)
    load exactly unless a layer without a skip connection carries an ``idt``:
    that product cannot be folded into other weights, so it is refused.
    """
    version = int(ckpt.get("version", 1))
    if version > CHECKPOINT_VERSION:
        raise ValueError(f"{path} is a version-{version} checkpoint; this dpgraph reads versions up to "
                         f"{CHECKPOINT_VERSION}: upgrade dpgraph")
    state = ckpt["state_dict"]
    mine = model.state_dict()
    stray = sorted(k for k in state if k.endswith(".idt") and k not in mine)
    if stray:
        raise ValueError(
            f"{path} is a version-{version} checkpoint whose layers {', '.join(stray[:3])} carry a timestep "
            "'idt' without a skip connection (dpgraph's network before version 2; deepmd-kit has no such "
            "parameter). It cannot be converted exactly: retrain from its config with 'dpgraph train', or "
            "re-import the deepmd-kit model it came from")
    model.load_state_dict(state)
