"""Import deepmd-kit DPA4 (SeZM) energy models: descriptor ``dpa4``, fitting ``dpa4_ener``.

Accepted trees (all as deepmd-kit 3.2.0 writes them):

* the standard-model serialization (``.dp`` / ``.yaml`` via
  :func:`dpgraph.interop.deepmd.read_dp`, ``model.serialize()`` of any backend);
* the pt backend's wrapper layout ``{"type": "SeZM", "atomic_model": {...}}``
  (an atomic-model serialization under ``atomic_model``);
* the ``model.json`` that pt_expt ``.pt2`` archives embed (same tree, arrays
  as ``{"@class": "np.ndarray", ...}`` leaves).

Every option outside what :mod:`dpgraph.descriptors.dpa4` implements is
refused with a ``ValueError`` naming it.
"""

from __future__ import annotations

import copy
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models import build_model
from ..models.energy import EnergyModel

DESCRIPTOR_TYPES = ("dpa4", "DPA4", "SeZM", "sezm")
FITTING_TYPES = ("dpa4_ener", "sezm_ener")

# deepmd-kit variables dpgraph derives itself (index tables, fixed constants)
_DERIVED_SUFFIXES = ("expand_index", "balance_weight", "kernel_compact_index", "kernel_dense_index", "m0_idx",
                     "pos_indices", "neg_indices", "degree_index_m")
_DERIVED_PREFIXES = ("wigner_calc.", "gie.", "gie_zonal_wigner_calc.")
_DERIVED_KEYS = ("version_tensor", "mean", "stddev")


def _arrays(obj: Any) -> Any:
    """``{"@class": "np.ndarray", "value": ..., "dtype": ...}`` leaves (JSON trees) -> numpy."""
    if isinstance(obj, dict):
        if obj.get("@class") == "np.ndarray" and "value" in obj:
            return np.asarray(obj["value"], dtype=np.dtype(obj["dtype"]))
        return {k: _arrays(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_arrays(v) for v in obj]
    return obj


def read_model_json(path: str | Path) -> dict:
    """The serialized model tree of a deepmd-kit pt_expt ``.pt2`` archive (its ``model/extra/model.json``)
    or of such a ``model.json`` file."""
    path = Path(path)
    if path.suffix == ".json":
        return _arrays(json.loads(path.read_text()))
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a zip archive; expected a deepmd-kit pt_expt .pt2")
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if n.endswith("extra/model.json")]
        if not names:
            raise ValueError(f"{path}: no model/extra/model.json inside; is it a deepmd-kit pt_expt .pt2 "
                             "(dpgraph's own .pt2 packages are loaded with dpgraph.DeepPot instead)?")
        text = zf.read(names[0])
        if not text.strip():
            raise ValueError(f"{path}: its model.json is empty (exported without the model tree)")
        return _arrays(json.loads(text))


def is_dpa4(tree: dict) -> bool:
    """True when ``tree`` (any accepted layout) holds a DPA4 descriptor."""
    try:
        return normalize(tree)["descriptor"].get("type") in DESCRIPTOR_TYPES
    except (KeyError, TypeError, ValueError):
        return False


def normalize(tree: dict) -> dict:
    """Any accepted layout -> the standard-model tree (descriptor, fitting, type_map, @variables)."""
    t = _arrays(tree)
    if isinstance(t, dict) and "model" in t and "@class" not in t:
        t = t["model"]
    if isinstance(t, dict) and "atomic_model" in t and "descriptor" not in t:
        am = t["atomic_model"]  # pt's SeZM wrapper: {"type": "SeZM", "atomic_model": {"type": "sezm_atomic", ...}}
        if am.get("type", "sezm_atomic") not in ("sezm_atomic", "standard"):
            raise ValueError(f"atomic_model type {am.get('type')!r} is not supported; supported: 'sezm_atomic'")
        t = {**am, "type": "standard", "type_map": am.get("type_map", t.get("type_map"))}
    if not isinstance(t, dict) or "descriptor" not in t or "fitting" not in t:
        raise ValueError("not a deepmd-kit standard energy model tree (needs 'descriptor' and 'fitting')")
    return t


def _model_config(t: dict) -> tuple[dict, dict]:
    d, f = t["descriptor"], t["fitting"]
    if d.get("type") not in DESCRIPTOR_TYPES:
        raise ValueError(f"descriptor type {d.get('type')!r} is not DPA4")
    ver = float(d.get("@version", 0))
    if ver < 1.1 or ver > 1.2:
        raise ValueError(f"DPA4 descriptor @version={ver} is not supported; supported: 1.1, 1.2 (deepmd-kit 3.2.0)")
    if f.get("type") not in FITTING_TYPES:
        raise ValueError(f"fitting type {f.get('type')!r} is not supported with DPA4; supported: {list(FITTING_TYPES)}")
    mtype = t.get("type", "standard")
    if mtype not in ("standard", "ener"):
        raise ValueError(f"model type {mtype!r} is not supported; supported: a standard energy model")
    for key in ("pair_exclude_types", "atom_exclude_types"):
        if t.get(key):
            raise ValueError(f"model.{key}={t[key]!r} is not supported with DPA4; supported: []")
    if t.get("preset_out_bias") is not None:
        raise ValueError("model.preset_out_bias is not supported; supported: None")
    for key in ("numb_fparam", "numb_aparam", "dim_case_embd"):
        if f.get(key):
            raise ValueError(f"fitting.{key}={f[key]!r} is not supported: the NeighborGraph ABI carries no "
                             "frame/atom parameters; supported: 0")
    if f.get("case_film_embd"):
        raise ValueError("fitting.case_film_embd is not supported; supported: False")
    if f.get("atom_ener"):
        raise ValueError("fitting.atom_ener is not supported; supported: None")
    if f.get("exclude_types"):
        raise ValueError(f"fitting.exclude_types={f['exclude_types']!r} is not supported; supported: []")
    if f.get("spin") is not None:
        raise ValueError("fitting.spin is not supported; supported: None")
    nets = f["nets"]["networks"]
    if len(nets) != 1:
        raise ValueError("dpa4_ener fitting with per-type networks (mixed_types False) is not supported; "
                         "supported: one shared network")
    net = nets[0]
    if net.get("resnet_dt"):
        raise ValueError("fitting resnet_dt=True is not supported; supported: False")
    dcfg = dict(d["config"])
    dcfg.pop("ntypes", None)
    dcfg.pop("type_map", None)
    dcfg["type"] = "dpa4"
    fcfg = {"type": "dpa4_ener", "neuron": list(net["neuron"]), "activation_function": net["activation_function"],
            "precision": net.get("precision", f.get("precision", "float32")), "bias_out": bool(net.get("bias_out"))}
    return dcfg, fcfg


def _descriptor_state(variables: dict, dtype: torch.dtype) -> dict:
    out = {}
    for key, val in variables.items():
        if key in _DERIVED_KEYS or key.startswith(_DERIVED_PREFIXES) or key.endswith(_DERIVED_SUFFIXES):
            continue
        arr = np.asarray(val)
        if not np.issubdtype(arr.dtype, np.floating):
            continue
        out[key] = torch.tensor(arr, dtype=dtype)
    return out


def from_serialized(tree: dict) -> EnergyModel:
    """deepmd-kit DPA4 energy model tree -> dpgraph :class:`EnergyModel` (same numbers)."""
    t = normalize(copy.deepcopy(tree))
    dcfg, fcfg = _model_config(t)
    type_map = list(t["type_map"])
    model = build_model({"type_map": type_map, "descriptor": dcfg, "fitting_net": fcfg})
    desc = model.descriptor
    state = _descriptor_state(t["descriptor"]["@variables"], desc.dtype)
    # the env-seed film strengths are stored as logs of shape (1,)
    missing, unexpected = desc.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"DPA4 weights do not match the configuration: missing {sorted(missing)}, "
                         f"unexpected {sorted(unexpected)}")
    fit = model.fitting
    net_vars = t["fitting"]["nets"]["networks"][0]["@variables"]
    with torch.no_grad():
        for i, blk in enumerate(fit.hidden_layers):
            blk.linear.matrix.copy_(torch.tensor(np.asarray(net_vars[f"hidden_layers.{i}.linear.matrix"])))
            blk.linear.bias.copy_(torch.tensor(np.asarray(net_vars[f"hidden_layers.{i}.linear.bias"])))
        fit.output_layer.matrix.copy_(torch.tensor(np.asarray(net_vars["output_layer.matrix"])))
        if fit.output_layer.bias is not None:
            fit.output_layer.bias.copy_(torch.tensor(np.asarray(net_vars["output_layer.bias"])))
        bias = np.asarray(t["fitting"]["@variables"]["bias_atom_e"]).reshape(len(type_map), -1)
        fit.bias_atom_e.copy_(torch.tensor(bias[:, 0]))
        out_bias = np.asarray(t["@variables"]["out_bias"]).reshape(-1, len(type_map))
        model.out_bias.copy_(torch.tensor(out_bias[0], dtype=model.out_bias.dtype))
    return model
