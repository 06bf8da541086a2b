"""Training input: a deepmd-kit style JSON/YAML document.

::

    model:          deepmd-kit ``model`` section (see dpgraph.models.build)
    learning_rate:  {type: exp, start_lr, stop_lr, decay_steps}        (dpgraph.train.lr)
    loss:           {type: ener, start_pref_e, limit_pref_e, start_pref_f, limit_pref_f,
                     start_pref_v, limit_pref_v}                        (dpgraph.train.loss)
    training:
      training_data:   {systems: [paths], batch_size: int | "auto" | "auto:N"}
      validation_data: {systems: [paths], batch_size: 1, numb_btch: 1}   (optional)
      validation_fraction: 0.0   dpgraph: without validation_data, hold out this share of
                                 the frames of every training system (the last frames)
      numb_steps: 1000           (deepmd-kit's alias ``stop_batch`` is accepted)
      seed: 1                    batch sampling
      disp_file: lcurve.out      disp_freq: 100
      save_ckpt: model.ckpt      save_freq: 1000      max_ckpt_keep: 5
      max_time: null             dpgraph: stop (and save) after this many seconds of training
      data_stat_nframes: 10      frames per system for descriptor statistics

Relative paths are taken from the current directory, as deepmd-kit does.
Unknown keys are refused, except deepmd-kit keys that have no effect here
(listed in ``IGNORED_TRAINING_KEYS``).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

TRAINING_DEFAULTS = {
    "validation_data": None,
    "validation_fraction": 0.0,
    "numb_steps": 1000,
    "seed": 1,
    "disp_file": "lcurve.out",
    "disp_freq": 100,
    "save_ckpt": "model.ckpt",
    "save_freq": 1000,
    "max_ckpt_keep": 5,
    "max_time": None,
    "data_stat_nframes": 10,
}
IGNORED_TRAINING_KEYS = {"disp_training", "time_training", "profiling", "profiling_file", "tensorboard",
                         "tensorboard_log_dir", "tensorboard_freq", "enable_profiler", "_comment", "gradient_max_norm"}


def read_input(path: str | Path) -> dict:
    """Parse a ``.json`` or ``.yaml``/``.yml`` training input."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"training input {path} does not exist")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError(f"{path}: YAML input needs PyYAML (pip install pyyaml), or use JSON") from None
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: invalid YAML ({err})") from None
    else:
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: invalid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: the training input must be a mapping with model/learning_rate/loss/training")
    return doc


def _systems(section: dict, name: str) -> list[str]:
    if not isinstance(section, dict) or "systems" not in section:
        raise ValueError(f"training.{name} needs a 'systems' list of data paths")
    s = section["systems"]
    s = [s] if isinstance(s, str) else list(s)
    if not s:
        raise ValueError(f"training.{name}.systems is empty")
    return [str(p) for p in s]


def normalize_input(doc: dict) -> dict:
    """A complete copy of ``doc`` with defaults filled in and keys checked."""
    doc = copy.deepcopy(doc)
    for key in ("model", "training"):
        if key not in doc:
            raise ValueError(f"training input needs a {key!r} section")
    extra = set(doc) - {"model", "learning_rate", "loss", "training", "_comment"}
    if extra:
        raise ValueError(f"training input: unsupported top-level keys {sorted(extra)}")
    doc.setdefault("learning_rate", {"type": "exp", "start_lr": 1e-3, "stop_lr": 3.51e-8, "decay_steps": 5000})
    doc.setdefault("loss", {"type": "ener"})
    tr = dict(doc["training"])
    if "stop_batch" in tr:
        tr.setdefault("numb_steps", tr.pop("stop_batch"))
    td = tr.pop("training_data", None)
    if td is None:
        raise ValueError("training.training_data is missing (systems and batch_size)")
    td = {"batch_size": "auto", **td, "systems": _systems(td, "training_data")}
    extra = set(td) - {"systems", "batch_size", "_comment", "auto_prob", "sys_probs"}
    if extra:
        raise ValueError(f"training.training_data: unsupported keys {sorted(extra)}")
    vd = tr.get("validation_data")
    if vd is not None:
        vd = {"batch_size": 1, "numb_btch": 1, **vd, "systems": _systems(vd, "validation_data")}
        extra = set(vd) - {"systems", "batch_size", "numb_btch", "_comment", "auto_prob", "sys_probs"}
        if extra:
            raise ValueError(f"training.validation_data: unsupported keys {sorted(extra)}")
        tr["validation_data"] = vd
    for k in IGNORED_TRAINING_KEYS:
        tr.pop(k, None)
    extra = set(tr) - set(TRAINING_DEFAULTS)
    if extra:
        raise ValueError(f"training: unsupported keys {sorted(extra)}")
    tr = {**TRAINING_DEFAULTS, **tr, "training_data": td}
    if not 0.0 <= float(tr["validation_fraction"]) < 1.0:
        raise ValueError(f"training.validation_fraction must be in [0, 1), got {tr['validation_fraction']}")
    for k in ("numb_steps", "disp_freq", "save_freq", "max_ckpt_keep", "data_stat_nframes"):
        if not isinstance(tr[k], int) or tr[k] < 1:
            raise ValueError(f"training.{k} must be a positive integer, got {tr[k]!r}")
    doc["training"] = tr
    return doc
