"""Reading deepmd-kit model files: ``.dp`` / ``.yaml`` trees, PyTorch ``.pth`` / ``.pt`` (through
deepmd-kit in a child process) and pt_expt ``.pt2`` / ``model.json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from ...models import EnergyModel
from .dpa1 import from_serialized


def read_dp(path: str | Path) -> dict:
    """Read deepmd-kit's native ``.dp`` file (or its ``.yaml``/``.yml`` text form).

    A ``.dp`` file is HDF5: the attribute ``json`` of the root group holds the
    JSON tree (``software``, ``version``, ``time``, ``backend``, ``model``,
    ``model_def_script``, ``@variables``); every array inside a ``@variables``
    mapping is replaced by the name of a root-level dataset
    (``/variable_0000``, ...). Returns the tree with the arrays read back
    (numpy), as ``deepmd.dpmodel.utils.serialization.load_dp_model`` does.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"deepmd-kit model file {path} does not exist")
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ValueError("reading deepmd-kit .yaml files needs pyyaml: pip install pyyaml") from None

        def conv(x):
            if isinstance(x, dict) and x.get("@class") == "np.ndarray":
                return np.asarray(x["value"], dtype=np.dtype(x["dtype"]))
            return x

        return _walk(yaml.safe_load(path.read_text()), conv)
    try:
        import h5py
    except ImportError:
        raise ValueError("reading deepmd-kit .dp files needs h5py: pip install h5py") from None
    try:
        with h5py.File(path, "r") as f:
            if "json" not in f.attrs:
                raise ValueError(f"{path} is an HDF5 file but not a deepmd-kit model (no 'json' attribute)")
            tree = json.loads(f.attrs["json"])
            return _walk(tree, lambda name: f[name][()].copy() if isinstance(name, str) else name)
    except OSError as err:
        raise ValueError(f"{path} is not a deepmd-kit .dp (HDF5) file: {err}") from None


def _walk(obj: Any, leaf, in_vars: bool = False) -> Any:
    """deepmd-kit's ``traverse_model_dict``: apply ``leaf`` to every value under a ``@variables`` key."""
    if isinstance(obj, dict):
        if obj.get("@is_variable", False) or (in_vars and obj.get("@class") == "np.ndarray"):
            return leaf(obj)
        return {k: _walk(v, leaf, in_vars or k == "@variables") for k, v in obj.items()}
    if isinstance(obj, list):
        return [_walk(v, leaf, in_vars) for v in obj]
    if obj is None:
        return None
    return leaf(obj) if in_vars else obj


# Run in a child process (``python -c``, from an empty working directory, so that nothing named
# ``deepmd`` shadows deepmd-kit). deepmd-kit's compiled operator library (libdeepmd_op_pt.so) is
# built for one torch version and aborts the import under any other; reading weights does not
# need it, so its directory is pointed at an empty folder before deepmd.pt is imported.
_CONVERTER = """
import pathlib, sys, tempfile
import deepmd.env
deepmd.env.SHARED_LIB_DIR = pathlib.Path(tempfile.mkdtemp(prefix="dpgraph-no-deepmd-ops-"))
from deepmd.dpmodel.utils.serialization import save_dp_model
from deepmd.pt.utils.serialization import serialize_from_file
save_dp_model(sys.argv[2], serialize_from_file(sys.argv[1]))
"""


def serialize_torch_file(path: str | Path, timeout: float = 600.0) -> dict:
    """Serialized tree of a deepmd-kit PyTorch ``.pth`` (frozen) or ``.pt`` (checkpoint) file.

    Needs deepmd-kit (``pip install deepmd-kit==3.2.0``): its own code rebuilds
    the model from the file (``deepmd.pt.utils.serialization``) and writes a
    ``.dp``. That runs in a child process, with deepmd-kit's compiled operator
    library disabled (it is built for another torch and is not needed to read
    weights), so this process's deepmd-kit state is untouched. A frozen model
    whose TorchScript code calls deepmd-kit's compiled operators cannot be
    loaded that way; convert it with ``dp convert-backend model.pth model.dp``
    where deepmd-kit's PyTorch backend works and import the ``.dp``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"deepmd-kit model file {path} does not exist")
    import importlib.util

    if importlib.util.find_spec("deepmd") is None:
        raise ValueError(
            f"reading {path.suffix} files needs deepmd-kit's PyTorch code: pip install deepmd-kit==3.2.0 "
            "(without the [torch] extra, which replaces torch), or convert it to .dp with "
            "`dp convert-backend` elsewhere and import the .dp"
        )
    with tempfile.TemporaryDirectory(prefix="dpgraph-import-") as tmp:
        out = Path(tmp) / "model.dp"
        env = dict(os.environ, OMP_NUM_THREADS="1")
        res = subprocess.run([sys.executable, "-c", _CONVERTER, str(path.resolve()), str(out)],
                             capture_output=True, text=True, env=env, timeout=timeout, cwd=tmp)
        if res.returncode != 0 or not out.exists():
            lines = [ln for ln in (res.stderr or res.stdout).strip().splitlines() if ln.strip()]
            tail = lines[-1] if lines else f"exit code {res.returncode}"
            hint = ""
            if "Unknown builtin op" in (res.stderr or "") or "deepmd::" in (res.stderr or ""):
                hint = (" The TorchScript code of this .pth calls deepmd-kit's compiled operators, which do "
                        "not load under this torch; convert it with `dp convert-backend model.pth model.dp` "
                        "where deepmd-kit's PyTorch backend works, then import the .dp.")
            raise ValueError(f"deepmd-kit could not read {path}: {tail}.{hint}")
        return read_dp(out)


def load_deepmd(path: str | Path, semantics: str = "carry-all") -> EnergyModel:
    """Load a deepmd-kit model file (``.dp``, ``.yaml``, ``.pth``, ``.pt``) as a dpgraph model."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".dp", ".hlo", ".yaml", ".yml"):
        tree = read_dp(path)
    elif suffix in (".pth", ".pt"):
        tree = serialize_torch_file(path)
    elif suffix in (".pt2", ".json"):  # deepmd-kit pt_expt archive (its embedded model.json), or that file
        from ..dpa4 import read_model_json

        tree = read_model_json(path)
    else:
        raise ValueError(
            f"{path}: unknown deepmd-kit model format {suffix!r}; use .dp (any backend converts to it "
            "with `dp convert-backend`), .yaml, .pth, .pt, or a pt_expt .pt2 / its model.json"
        )
    return from_serialized(tree, semantics=semantics)
