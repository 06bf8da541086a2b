"""deepmd-kit 3.2.0 as the test oracle (a test helper, not part of the package).

* :func:`random_model` builds a randomly initialized deepmd-kit standard energy
  model from a deepmd-kit ``model`` config with deepmd-kit's own code and
  returns its serialized tree, with random statistics (``davg``, ``dstd``,
  ``out_bias``, ``bias_atom_e``) and perturbed LayerNorm parameters so that
  every array the importer copies matters.
* :func:`evaluate` runs a serialized tree in deepmd-kit: energy, atom energy,
  force, virial and atom virial on the ``"dense"`` (sel-padded neighbor list)
  or ``"graph"`` (carry-all NeighborGraph) route of the ``pt_expt`` backend,
  or the classic ``pt`` backend's dense model (``backend="pt"``); energies
  only from the numpy ``dpmodel`` backend (``backend="dpmodel"``).

deepmd-kit's compiled PyTorch operator library is built for torch 2.11 and
aborts the import under torch 2.13; none of the code used here needs it, so
:func:`_deepmd` points ``deepmd.env.SHARED_LIB_DIR`` at an empty folder before
``deepmd.pt``/``deepmd.pt_expt`` are imported. Keep deepmd-kit's graph route
to small systems: it materializes every neighbor pair (> 20 GB for forces on
192 water atoms).
"""

from __future__ import annotations

import copy
import functools
import os
import pathlib
import tempfile
import warnings

import numpy as np


_NO_OPS = None


@functools.lru_cache(maxsize=None)
def _deepmd():
    """Import deepmd-kit with its compiled ops disabled; returns (dpmodel get_model, pt_expt, pt)."""
    import deepmd.env

    global _NO_OPS
    _NO_OPS = tempfile.TemporaryDirectory(prefix="deepmd-no-ops-")  # removed at exit
    deepmd.env.SHARED_LIB_DIR = pathlib.Path(_NO_OPS.name)
    os.environ.setdefault("DP_INFER_BATCH_SIZE", "1")
    import logging

    logging.getLogger("deepmd").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from deepmd.dpmodel.model.model import get_model
        import deepmd.pt.model.model as pt_model
        import deepmd.pt_expt.model as pt_expt_model
    return get_model, pt_expt_model, pt_model


def random_model(config: dict, seed: int = 0, davg_scale: float = 0.3) -> dict:
    """Serialized tree of a random deepmd-kit model built from ``config`` (deepmd-kit's ``model`` section).

    ``davg`` is random unless the descriptor sets ``set_davg_zero`` (then 0, as
    deepmd-kit's statistics would make it); ``dstd`` is random in [0.5, 1.5].
    """
    get_model, _, _ = _deepmd()
    tree = get_model(copy.deepcopy(config)).serialize()
    rng = np.random.default_rng(seed)
    desc = tree["descriptor"]
    var = desc["@variables"]
    nt, nnei, _ = var["davg"].shape
    dt = var["davg"].dtype
    davg = np.zeros((nt, 4)) if desc.get("set_davg_zero") else rng.normal(0.0, davg_scale, (nt, 4))
    dstd = rng.uniform(0.5, 1.5, (nt, 4))
    var["davg"] = np.broadcast_to(davg[:, None, :], (nt, nnei, 4)).astype(dt).copy()
    var["dstd"] = np.broadcast_to(dstd[:, None, :], (nt, nnei, 4)).astype(dt).copy()
    for layer in desc["attention_layers"]["attention_layers"]:
        ln = layer["attn_layer_norm"]["@variables"]
        ln["w"] = (1.0 + 0.2 * rng.standard_normal(ln["w"].shape)).astype(ln["w"].dtype)
        ln["b"] = (0.2 * rng.standard_normal(ln["b"].shape)).astype(ln["b"].dtype)
    fvar = tree["fitting"]["@variables"]
    fvar["bias_atom_e"] = rng.normal(0.0, 1.0, fvar["bias_atom_e"].shape).astype(fvar["bias_atom_e"].dtype)
    mvar = tree["@variables"]
    mvar["out_bias"] = rng.normal(-3.0, 1.0, mvar["out_bias"].shape).astype(mvar["out_bias"].dtype)
    return tree


def _as_frames(coords, cell):
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim == 2:
        coords = coords[None]
    box = None if cell is None else np.asarray(cell, dtype=np.float64).reshape(-1, 9)
    if box is not None and box.shape[0] == 1 and coords.shape[0] > 1:
        box = np.repeat(box, coords.shape[0], axis=0)
    return coords, box


def evaluate(tree: dict, coords, atype, cell=None, route: str = "dense", backend: str = "pt_expt") -> dict:
    """Run deepmd-kit on one or more frames; numpy outputs in dpgraph's flat layout.

    coords (natoms, 3) or (nf, natoms, 3) Å; atype (natoms,); cell (3, 3)
    rows = lattice vectors, or None for an open cluster.
    route: "dense" (sel-padded neighbor list) or "graph" (carry-all graph).
    backend: "pt_expt" (both routes, autograd forces), "pt" (classic dense
    model, forces) or "dpmodel" (numpy, energies only).

    Returns energy (nf,), atom_energy (nf*natoms,), and unless ``dpmodel``
    force (nf*natoms, 3), virial (nf, 9), atom_virial (nf*natoms, 9).
    """
    import torch

    get_model, pt_expt, pt = _deepmd()
    coords, box = _as_frames(coords, cell)
    nf, n = coords.shape[:2]
    at = np.broadcast_to(np.asarray(atype, dtype=np.int64).reshape(1, -1), (nf, n)).copy()
    if backend == "dpmodel":
        from deepmd.dpmodel.model.model import BaseModel

        model = BaseModel.deserialize(copy.deepcopy(tree))
        method = "legacy" if route == "dense" else "dense"
        ret = model.call_common(coords.reshape(nf, n * 3), at, box, neighbor_graph_method=method)
        return {"energy": ret["energy_redu"].reshape(nf), "atom_energy": ret["energy"].reshape(-1)}
    tc = torch.tensor(coords.reshape(nf, n * 3), dtype=torch.float64, requires_grad=True)
    ta = torch.tensor(at)
    tb = None if box is None else torch.tensor(box, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if backend == "pt":
            if route != "dense":
                raise ValueError("the classic pt backend has the dense route only")
            model = pt.BaseModel.deserialize(copy.deepcopy(tree)).eval()
            out = model(tc, ta, tb, do_atomic_virial=True)
        elif backend == "pt_expt":
            model = pt_expt.BaseModel.deserialize(copy.deepcopy(tree)).eval()
            method = "legacy" if route == "dense" else "dense"
            ret = model.call_common(tc, ta, tb, do_atomic_virial=True, neighbor_graph_method=method)
            out = model._translate_eager_call(ret, ta, do_atomic_virial=True)
        else:
            raise ValueError(f"unknown backend {backend!r}")
    g = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in out.items()}
    return {
        "energy": g["energy"].reshape(nf),
        "atom_energy": g["atom_energy"].reshape(-1),
        "force": g["force"].reshape(-1, 3),
        "virial": g["virial"].reshape(nf, 9),
        "atom_virial": g["atom_virial"].reshape(-1, 9),
    }
