"""Import deepmd-kit 3.2.0 standard energy models (DPA1 / se_atten / se_atten_v2).

Entry points:

* :func:`from_serialized` turns deepmd-kit's serialized model tree (what
  ``model.serialize()`` returns in every deepmd-kit backend, the ``model``
  entry of a ``.dp`` file) into a dpgraph :class:`~dpgraph.models.EnergyModel`:
  a dpgraph config is built from the tree's flags (so the model saves, reloads
  and exports like any other) and every weight is copied in.
* :func:`load_deepmd` reads a file: ``.dp`` (HDF5, see :func:`read_dp`),
  ``.yaml``/``.yml`` (deepmd-kit's text form of the same tree), or a PyTorch
  ``.pth`` (frozen TorchScript) / ``.pt`` (training checkpoint). The last two
  need deepmd-kit itself (``pip install deepmd-kit==3.2.0``) and are converted
  in a child process (see :func:`serialize_torch_file`).

What is read: descriptor ``dpa1``/``se_atten``/``se_atten_v2`` with every flag
(attention layers, smooth, dotr, normalize, temperature, scaling factor,
concat/strip, type_one_side, exclude_types, env_protection, set_davg_zero,
LayerNorm options, type-embedding bias, concat_output_tebd, activation,
precision) and ``davg``/``dstd``; fitting ``ener`` (weights, ``bias_atom_e``);
model ``type_map``, ``out_bias``, ``atom_exclude_types``,
``pair_exclude_types``. ``out_std`` does not enter an energy model's
prediction (deepmd-kit adds only ``out_bias``) and is only shape-checked.

Refused, with a :class:`ValueError` that names the field: other model types
(ZBL, linear, spin, DPA2/3/4, ...), compressed descriptors, ``lmax != 1``
moment bases, ``use_exp_switch``, ``use_econf_tebd``, ``attn_mask``,
multi-head attention, statistics that differ between neighbor slots, frame or
atom parameters, case embeddings, per-type (non-mixed) fitting nets,
``atom_ener``, 16-bit precisions, activations dpgraph lacks (``silu``,
``silut``), and any field this importer does not know (a newer deepmd-kit may
have added meaning to it).

Semantics (``semantics=``):

* ``"carry-all"`` (default) equals deepmd-kit's graph route
  (``call_graph`` / ``forward_common_lower_graph``, the ``pt_expt`` default):
  every neighbor inside ``rcut`` counts, ``sel`` is only a normalization.
* ``"dense"`` equals deepmd-kit's dense route (the ``pt``/``dpmodel``
  ``call`` on a sel-padded neighbor list, what ``.pth`` models and LAMMPS run):
  the nearest ``sum(sel)`` neighbors are kept, each empty slot adds
  ``exp(-20)`` to the smooth attention's softmax denominator, and with a
  nonzero ``davg`` (``set_davg_zero: false``) each empty slot also
  contributes a constant row ``(0 - davg)/dstd`` to the descriptor, embedded
  with the type of the frame's first atom (see "set_davg_zero" below).

set_davg_zero (measured against deepmd-kit 3.2.0 itself): deepmd-kit's
``EnvMat`` subtracts ``davg`` *after* zeroing the environment rows of empty
neighbor slots and nothing re-masks them, so on the dense route every empty
slot of a center of type ``t`` feeds ``R = (0 - davg[t]) / dstd[t]`` through
the embedding net (with the type embedding of extended atom 0, i.e. the
frame's first atom), through each attention layer as a fully masked query
(``G <- LayerNorm(G + out_proj(0))``) and into ``X = G^T R``. The graph route
leaves these rows out. Because the descriptor is quadratic in ``X``, the
constant rows change forces as well as energies. Measured with a random
full-size DPA1 (sel 120, ``davg`` from the data, ``s``-component 0.058 / 0.055
for O / H) on a 192-atom frame of deepmd-kit's water example data: dense minus
graph energy -2.54 eV (-13 meV/atom), forces differ by up to 0.023 eV/A (30 %
of the largest force of that model); moving an H atom to the front of the
frame changes the dense energy by -17.5 meV (the graph route is invariant).
Continuity at ``rcut`` (smooth attention, small random model, 1e-7 A steps):
with concat type embedding the dense energy jumps (2.6e-4 eV) when a neighbor
whose type differs from the first atom's crosses ``rcut`` and is continuous
otherwise, strip is continuous, and the graph route jumps at every crossing
(2e-4 eV), since a neighbor at ``rcut`` still carries ``-davg/dstd``.
dpgraph's ``"dense"`` semantics reproduces all of it (192 atoms: 1.7e-13 eV,
4e-16 eV/A). With ``set_davg_zero: true`` (``davg = 0``)
the rows vanish; dense and graph then differ only by the ``exp(-20)`` softmax
terms and the ``sel`` truncation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..descriptors import SEMANTICS
from ..models import EnergyModel, build_model
from ..nn import resolve_precision

DESCRIPTOR_TYPES = ("dpa1", "se_atten", "se_atten_v2")
_IDENTITY = {"none", "linear"}


class _Node:
    """A dict of the serialized tree with its path; tracks which keys were read."""

    def __init__(self, data: Any, path: str):
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping in deepmd-kit's serialized model, got {type(data).__name__}")
        self.data, self.path, self.seen = data, path, set()

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data

    def get(self, key: str, default: Any = None) -> Any:
        self.seen.add(key)
        return self.data.get(key, default)

    def req(self, key: str) -> Any:
        self.seen.add(key)
        if key not in self.data:
            raise ValueError(f"{self.sub(key)} is missing from the serialized deepmd-kit model")
        return self.data[key]

    def node(self, key: str) -> "_Node":
        return _Node(self.req(key), self.sub(key))

    def ignore(self, *keys: str) -> None:
        self.seen.update(keys)

    def expect(self, key: str, allowed, why: str, default: Any = None) -> Any:
        """Read ``key`` and refuse values outside ``allowed`` (a tuple or a predicate)."""
        val = self.get(key, default)
        ok = allowed(val) if callable(allowed) else val in allowed
        if not ok:
            raise ValueError(f"{self.sub(key)} = {val!r} is not supported by dpgraph: {why}")
        return val

    def version(self, newest: int, why: str = "") -> int:
        v = int(self.get("@version", 1))
        if v > newest:
            raise ValueError(
                f"{self.sub('@version')} = {v}: this importer reads up to version {newest} "
                f"(deepmd-kit 3.2.0){why}"
            )
        return v

    def done(self) -> None:
        left = sorted(set(self.data) - self.seen)
        if left:
            raise ValueError(
                f"{self.path or 'model'}: unknown field(s) {left} in the serialized deepmd-kit model; "
                "this importer was written for deepmd-kit 3.2.0 and cannot tell whether dpgraph "
                "represents them"
            )


def _array(x: Any, path: str) -> np.ndarray:
    if x is None:
        raise ValueError(f"{path} is missing (None) in the serialized deepmd-kit model")
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _is_false(v) -> bool:
    return v is None or v is False or v == 0 or v == [] or v == ()


# --------------------------------------------------------------- the config
def _descriptor_config(d: _Node, ntypes: int, type_map: list[str], semantics: str) -> dict:
    kind = d.expect("type", DESCRIPTOR_TYPES, f"dpgraph imports descriptors {DESCRIPTOR_TYPES} only")
    d.expect("@class", ("Descriptor",), "expected a descriptor node")
    d.version(2, "; version 3 marks a compressed descriptor and 4 an lmax > 1 moment basis, "
                 "neither of which dpgraph represents")
    d.expect("compress", _is_false, "compressed (tabulated) descriptors are not supported; "
             "import the uncompressed model")
    d.expect("lmax", (None, 1), "only the lmax = 1 (x, y, z) moment basis of DPA1 is supported")
    d.expect("spin", (None,), "spin models are not supported")
    d.expect("attn_mask", (False, None), "attn_mask=True is not implemented in deepmd-kit either")
    d.expect("use_econf_tebd", (False, None), "electronic-configuration type embeddings are not supported")
    d.expect("ntypes", (ntypes,), f"the model's type_map has {ntypes} types")
    tm = d.get("type_map")
    if tm is not None and list(tm) != list(type_map):
        raise ValueError(f"{d.sub('type_map')} = {tm} differs from the model's type_map {type_map}")
    d.ignore("trainable", "seed")
    sel = d.req("sel")
    sel = [int(s) for s in (sel if isinstance(sel, (list, tuple)) else [sel])]
    cfg: dict[str, Any] = {
        "type": kind,
        "rcut": float(d.req("rcut")),
        "rcut_smth": float(d.req("rcut_smth")),
        "sel": sel,
        "neuron": [int(n) for n in d.req("neuron")],
        "axis_neuron": int(d.req("axis_neuron")),
        "tebd_dim": int(d.req("tebd_dim")),
        "resnet_dt": bool(d.get("resnet_dt", False)),
        "type_one_side": bool(d.get("type_one_side", False)),
        "attn": int(d.req("attn")),
        "attn_layer": int(d.req("attn_layer")),
        "attn_dotr": bool(d.get("attn_dotr", True)),
        "exclude_types": [[int(a), int(b)] for a, b in d.get("exclude_types", []) or []],
        "env_protection": float(d.get("env_protection", 0.0)),
        "set_davg_zero": bool(d.get("set_davg_zero", False)),
        "activation_function": str(d.get("activation_function", "tanh")),
        "precision": str(d.get("precision", "float64")),
        "scaling_factor": float(d.get("scaling_factor", 1.0)),
        "normalize": bool(d.get("normalize", True)),
        "temperature": None if d.get("temperature") is None else float(d.get("temperature")),
        "trainable_ln": bool(d.get("trainable_ln", True)),
        "ln_eps": 1e-5 if d.get("ln_eps") is None else float(d.get("ln_eps")),
        "concat_output_tebd": bool(d.get("concat_output_tebd", True)),
        # deepmd-kit reads version-1 trees without the key as use_tebd_bias=True
        "use_tebd_bias": bool(d.get("use_tebd_bias", True)),
        "semantics": semantics,
    }
    if kind != "se_atten_v2":
        cfg["tebd_input_mode"] = d.expect("tebd_input_mode", ("concat", "strip"),
                                          "deepmd-kit knows concat and strip only", "concat")
        cfg["smooth_type_embedding"] = bool(d.get("smooth_type_embedding", True))
    resolve_precision(cfg["precision"])  # refuse 16-bit precisions early, naming nothing else
    env = d.node("env_mat")
    env.expect("use_exp_switch", (False, None), "dpgraph implements deepmd-kit's polynomial switch only")
    for key, want in (("rcut", cfg["rcut"]), ("rcut_smth", cfg["rcut_smth"]), ("protection", cfg["env_protection"])):
        if env.has(key) and float(env.get(key)) != want:
            raise ValueError(f"{env.sub(key)} = {env.get(key)} differs from the descriptor's {want}")
    env.done()
    return cfg


def _fitting_config(f: _Node, ntypes: int, dim_descrpt: int | None) -> dict:
    f.expect("@class", ("Fitting",), "expected a fitting node")
    f.expect("type", ("ener",), "dpgraph imports energy ('ener') fittings only")
    f.version(4)
    f.expect("var_name", ("energy", None), "an energy fitting predicts 'energy'")
    f.expect("dim_out", (1, None), "an energy fitting has one output")
    f.expect("ntypes", (ntypes,), f"the model's type_map has {ntypes} types")
    for key in ("numb_fparam", "numb_aparam", "dim_case_embd"):
        f.expect(key, (0, None), "NeighborGraph ABI v1 carries no frame/atom parameters or case embeddings")
    f.expect("default_fparam", (None,), "frame parameters are not supported")
    f.expect("mixed_types", (True,), "per-type fitting nets (mixed_types=False) are not supported; "
             "DPA1 models use one shared fitting net")
    f.expect("atom_ener", _is_false, "atom_ener (fixed per-type isolated-atom energies) is not supported")
    f.expect("use_aparam_as_mask", (False, None), "atom parameters are not supported")
    f.expect("spin", (None,), "spin models are not supported")
    f.expect("remove_vaccum_contribution", (None,), "vacuum-contribution removal is not supported")
    # training-only fields: layer sharing, trainability, zero-total-energy stats; rcond goes to the config
    f.ignore("layer_name", "trainable", "tot_ener_zero", "type_map", "seed", "exclude_types")
    if dim_descrpt is not None:
        f.expect("dim_descrpt", (dim_descrpt,), f"the descriptor produces {dim_descrpt} features")
    return {
        "neuron": [int(n) for n in f.req("neuron")],
        "resnet_dt": bool(f.get("resnet_dt", True)),
        "activation_function": str(f.get("activation_function", "tanh")),
        "precision": str(f.get("precision", "float64")),
        "rcond": None if f.get("rcond") is None else float(f.get("rcond")),
    }


# --------------------------------------------------------------- weights
def _effective_resnet(resnet: bool, n_in: int, n_out: int) -> bool:
    return bool(resnet) and (n_out == n_in or n_out == 2 * n_in)


@torch.no_grad()
def _load_layer(layer, node: _Node, dtype: torch.dtype) -> None:
    """Copy one deepmd-kit ``Layer`` into a :class:`~dpgraph.nn.DenseLayer`."""
    node.expect("@class", ("Layer", None), "expected a dense layer")
    node.version(2)
    node.ignore("trainable", "bias", "use_timestep")
    prec = node.get("precision")
    if prec is not None and resolve_precision(prec) != dtype:
        raise ValueError(f"{node.sub('precision')} = {prec!r} differs from its network's precision {dtype}")
    act = str(node.get("activation_function", "none")).lower()
    have = str(layer.activation_name or "none").lower()
    if act != have and not (act in _IDENTITY and have in _IDENTITY):
        raise ValueError(f"{node.sub('activation_function')} = {act!r} but dpgraph's layer uses {have!r}")
    var = node.node("@variables")
    w = _array(var.get("w"), var.sub("w"))
    if tuple(w.shape) != tuple(layer.w.shape):
        raise ValueError(f"{var.sub('w')} has shape {tuple(w.shape)}, expected {tuple(layer.w.shape)}")
    n_in, n_out = w.shape
    if _effective_resnet(node.get("resnet", False), n_in, n_out) != _effective_resnet(layer.resnet, n_in, n_out):
        raise ValueError(f"{node.sub('resnet')} = {node.get('resnet')} does not match the network layout")
    layer.w.copy_(torch.as_tensor(w, dtype=torch.float64).to(dtype))
    for name in ("b", "idt"):  # dpgraph builds the same parameters as deepmd-kit: no neutral fill-ins
        val = var.get(name)
        mine = getattr(layer, name)
        if val is None:
            if mine is not None:
                raise ValueError(f"{var.sub(name)} is absent but dpgraph's layer ({n_in} -> {n_out}) has one: "
                                 "the network configs differ")
            continue
        if mine is None:
            raise ValueError(f"{var.sub(name)} is set but dpgraph's layer ({n_in} -> {n_out}) has no {name}")
        arr = _array(val, var.sub(name)).reshape(-1)
        if arr.shape[0] != mine.shape[0]:
            raise ValueError(f"{var.sub(name)} has {arr.shape[0]} entries, expected {mine.shape[0]}")
        mine.copy_(torch.as_tensor(arr, dtype=torch.float64).to(dtype))
    var.done()
    node.done()


def _load_network(seq, node: _Node, dtype: torch.dtype, classes=("EmbeddingNetwork", "FittingNetwork")) -> None:
    node.expect("@class", classes, f"expected one of {classes}")
    node.version(2)
    node.ignore("in_dim", "out_dim", "neuron", "activation_function", "resnet_dt", "bias", "bias_out", "precision")
    layers = node.req("layers")
    if len(layers) != len(seq):
        raise ValueError(f"{node.sub('layers')} has {len(layers)} layers, expected {len(seq)}")
    for i, (layer, data) in enumerate(zip(seq, layers)):
        _load_layer(layer, _Node(data, f"{node.sub('layers')}[{i}]"), dtype)
    node.done()


def _load_collection(seq, node: _Node, dtype: torch.dtype, ntypes: int) -> None:
    """A ``NetworkCollection`` with one shared network (``ndim == 0``)."""
    node.expect("@class", ("NetworkCollection",), "expected a network collection")
    node.version(1)
    node.expect("ndim", (0,), "type-specific networks (ndim > 0) are not supported; DPA1 shares one network")
    node.ignore("ntypes", "network_type")
    nets = node.req("networks")
    if len(nets) != 1:
        raise ValueError(f"{node.sub('networks')} holds {len(nets)} networks, expected 1")
    _load_network(seq, _Node(nets[0], f"{node.sub('networks')}[0]"), dtype)
    node.done()


@torch.no_grad()
def _load_layer_norm(ln, node: _Node, eps: float, dtype: torch.dtype) -> None:
    node.expect("@class", ("LayerNorm", None), "expected a LayerNorm")
    node.version(1)
    node.ignore("trainable", "precision")
    if node.has("eps") and float(node.get("eps")) != eps:
        raise ValueError(f"{node.sub('eps')} = {node.get('eps')} differs from the descriptor's ln_eps {eps}")
    var = node.node("@variables")
    for name, mine in (("w", ln.weight), ("b", ln.bias)):
        val = var.get(name)
        arr = np.ones(mine.shape[0]) if val is None and name == "w" else (
            np.zeros(mine.shape[0]) if val is None else _array(val, var.sub(name)))
        if arr.shape != tuple(mine.shape):
            raise ValueError(f"{var.sub(name)} has shape {arr.shape}, expected {tuple(mine.shape)}")
        mine.copy_(torch.as_tensor(arr, dtype=torch.float64).to(dtype))
    var.done()
    node.done()


def _load_attention(desc, node: _Node, cfg: dict, dtype: torch.dtype) -> None:
    node.expect("@class", ("NeighborGatedAttention", None), "expected the attention block")
    node.version(1)
    node.expect("layer_num", (cfg["attn_layer"],), "must equal the descriptor's attn_layer")
    node.expect("do_mask", (False, None), "attention masks are not supported")
    node.ignore("nnei", "embed_dim", "hidden_dim", "dotr", "scaling_factor", "normalize", "temperature",
                "trainable_ln", "ln_eps", "precision", "smooth", "trainable", "seed")
    layers = node.req("attention_layers")
    if len(layers) != len(desc.attention_layers):
        raise ValueError(f"{node.sub('attention_layers')} has {len(layers)} layers, expected {len(desc.attention_layers)}")
    smooth = desc.smooth
    for i, (mine, data) in enumerate(zip(desc.attention_layers, layers)):
        lay = _Node(data, f"{node.sub('attention_layers')}[{i}]")
        lay.ignore("@class", "@version", "nnei", "embed_dim", "hidden_dim", "dotr", "do_mask", "scaling_factor",
                   "normalize", "temperature", "trainable_ln", "ln_eps", "precision", "smooth", "trainable", "seed")
        gal = lay.node("attention_layer")
        gal.ignore("@class", "@version", "nnei", "embed_dim", "hidden_dim", "precision", "trainable", "seed")
        gal.expect("num_heads", (1, None), "DPA1 attention is single-head")
        gal.expect("do_mask", (False, None), "attention masks are not supported")
        gal.expect("bias", (True, None), "dpgraph's attention projections carry biases")
        for key, want in (("dotr", cfg["attn_dotr"]), ("normalize", cfg["normalize"]), ("smooth", smooth),
                          ("scaling_factor", cfg["scaling_factor"]), ("temperature", cfg["temperature"])):
            if gal.has(key) and gal.get(key) != want:
                raise ValueError(f"{gal.sub(key)} = {gal.get(key)!r} differs from the descriptor's {want!r}; "
                                 "per-layer attention flags are not supported")
        _load_layer(mine.attention_layer.in_proj, gal.node("in_proj"), dtype)
        _load_layer(mine.attention_layer.out_proj, gal.node("out_proj"), dtype)
        gal.done()
        _load_layer_norm(mine.attn_layer_norm, lay.node("attn_layer_norm"), cfg["ln_eps"], dtype)
        lay.done()
    node.done()


@torch.no_grad()
def _load_type_embedding(desc, node: _Node, cfg: dict, dtype: torch.dtype) -> None:
    node.expect("@class", ("TypeEmbedNet", None), "expected the type embedding")
    node.version(2)
    node.expect("padding", (True, None), "DPA1 type embeddings carry a zero padding row")
    node.expect("use_econf_tebd", (False, None), "electronic-configuration type embeddings are not supported")
    node.expect("neuron", ([cfg["tebd_dim"]], None), "the type embedding must be one linear layer of tebd_dim")
    node.ignore("ntypes", "resnet_dt", "precision", "activation_function", "trainable", "use_tebd_bias",
                "type_map", "seed")
    _load_network(desc.type_embedding.embedding_net, node.node("embedding"), dtype)
    node.done()


def _slot_uniform(arr: np.ndarray, path: str, ntypes: int) -> np.ndarray:
    """(ntypes, nnei, 4) per-slot statistics -> (ntypes, 4); refuse slot-dependent ones."""
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim == 2:
        a = a[:, None, :]
    if a.ndim != 3 or a.shape[0] != ntypes or a.shape[2] != 4:
        raise ValueError(f"{path} has shape {a.shape}, expected ({ntypes}, nnei, 4)")
    if not np.array_equal(a, np.broadcast_to(a[:, :1, :], a.shape)):
        raise ValueError(
            f"{path} differs between neighbor slots; deepmd-kit computes one value per type and "
            "component (slot-uniform), and dpgraph's graph form (like deepmd-kit's graph route) "
            "has no neighbor slots"
        )
    return a[:, 0, :]


# --------------------------------------------------------------- entry points
def _unwrap(data: dict) -> dict:
    """The model node of a file-level dict (``{"model": ..., "backend": ...}``) or the node itself."""
    if isinstance(data, dict) and "model" in data and "@class" not in data:
        return data["model"]
    return data


def from_serialized(data: dict, semantics: str = "carry-all") -> EnergyModel:
    """Build a dpgraph :class:`EnergyModel` from deepmd-kit's serialized standard energy model.

    data : ``model.serialize()`` of a deepmd-kit 3.2.0 model (any backend), or
        the whole dict of a ``.dp`` file (its ``model`` entry is used)
    semantics : ``"carry-all"`` (deepmd-kit's graph route) or ``"dense"``
        (deepmd-kit's sel-padded dense route); see the module docstring

    Raises :class:`ValueError` naming the field for anything dpgraph cannot
    represent exactly.
    """
    if semantics not in SEMANTICS:
        raise ValueError(f"semantics must be one of {SEMANTICS}, got {semantics!r}")
    from . import dpa4  # DPA4 / SeZM energy models have their own importer

    if dpa4.is_dpa4(data):
        return dpa4.from_serialized(data)
    root = _Node(_unwrap(data), "")
    root.expect("@class", ("Model",), "expected deepmd-kit's serialized model (model.serialize())")
    root.expect("type", ("standard", None), "dpgraph imports standard (descriptor + fitting) energy models only")
    root.version(2)
    type_map = [str(t) for t in root.req("type_map")]
    nt = len(type_map)
    root.ignore("rcond", "preset_out_bias", "data_stat_protect", "min_nbor_dist")
    atom_excl = [int(t) for t in root.get("atom_exclude_types", []) or []]
    pair_excl = [[int(a), int(b)] for a, b in root.get("pair_exclude_types", []) or []]

    dnode = root.node("descriptor")
    dcfg = _descriptor_config(dnode, nt, type_map, semantics)
    fnode = root.node("fitting")
    fcfg = _fitting_config(fnode, nt, None)
    config: dict[str, Any] = {"type_map": type_map, "descriptor": dcfg, "fitting_net": fcfg}
    if atom_excl:
        config["atom_exclude_types"] = atom_excl
    if pair_excl:
        config["pair_exclude_types"] = pair_excl
    try:
        model = build_model(config)
    except ValueError as err:
        raise ValueError(f"the deepmd-kit model is not representable in dpgraph: {err}") from None
    desc = model.descriptor
    fnode.expect("dim_descrpt", (desc.dim_out,), f"the descriptor produces {desc.dim_out} features")

    # descriptor weights
    ddt = desc.dtype
    _load_collection(desc.embeddings, dnode.node("embeddings"), ddt, nt)
    if desc.tebd_input_mode == "strip":
        _load_collection(desc.embeddings_strip, dnode.node("embeddings_strip"), ddt, nt)
    elif dnode.has("embeddings_strip") and dnode.get("embeddings_strip") is not None:
        raise ValueError(f"{dnode.sub('embeddings_strip')} is set but tebd_input_mode is 'concat'")
    _load_attention(desc, dnode.node("attention_layers"), dcfg, ddt)
    _load_type_embedding(desc, dnode.node("type_embedding"), dcfg, ddt)
    dvar = dnode.node("@variables")
    davg = _slot_uniform(_array(dvar.get("davg"), dvar.sub("davg")), dvar.sub("davg"), nt)
    dstd = _slot_uniform(_array(dvar.get("dstd"), dvar.sub("dstd")), dvar.sub("dstd"), nt)
    dvar.done()
    with torch.no_grad():
        desc.davg.copy_(torch.as_tensor(davg).to(ddt))
        desc.dstd.copy_(torch.as_tensor(dstd).to(ddt))
    dnode.done()

    # fitting weights
    fit = model.fitting
    _load_collection(fit.net, fnode.node("nets"), fit.dtype, nt)
    fvar = fnode.node("@variables")
    bias = _array(fvar.get("bias_atom_e"), fvar.sub("bias_atom_e")).reshape(-1)
    if bias.shape[0] != nt:
        raise ValueError(f"{fvar.sub('bias_atom_e')} has {bias.shape[0]} entries, expected {nt}")
    for key in ("case_embd", "fparam_avg", "fparam_inv_std", "aparam_avg", "aparam_inv_std"):
        fvar.expect(key, lambda v: v is None or np.asarray(v).size == 0,
                    "frame/atom parameters and case embeddings are not supported")
    fvar.done()
    fnode.done()
    with torch.no_grad():
        fit.bias_atom_e.copy_(torch.as_tensor(bias, dtype=torch.float64).to(fit.dtype))

    # model statistics
    mvar = root.node("@variables")
    out_bias = _array(mvar.get("out_bias"), mvar.sub("out_bias"))
    if out_bias.size != nt:
        raise ValueError(f"{mvar.sub('out_bias')} has shape {out_bias.shape}, expected (1, {nt}, 1)")
    out_std = mvar.get("out_std")
    if out_std is not None and _array(out_std, mvar.sub("out_std")).size != nt:
        raise ValueError(f"{mvar.sub('out_std')} has shape {np.shape(out_std)}, expected (1, {nt}, 1)")
    mvar.done()
    with torch.no_grad():
        model.out_bias.copy_(torch.as_tensor(out_bias.reshape(-1), dtype=torch.float64).to(model.dtype))
    root.ignore("@variables", "descriptor", "fitting")
    root.done()
    return model.eval()


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
        from .dpa4 import read_model_json

        tree = read_model_json(path)
    else:
        raise ValueError(
            f"{path}: unknown deepmd-kit model format {suffix!r}; use .dp (any backend converts to it "
            "with `dp convert-backend`), .yaml, .pth, .pt, or a pt_expt .pt2 / its model.json"
        )
    return from_serialized(tree, semantics=semantics)
