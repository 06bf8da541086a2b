"""deepmd-kit descriptor / fitting flags -> a dpgraph model config (refusing what dpgraph cannot represent)."""

from __future__ import annotations

from typing import Any

from ...nn import resolve_precision
from .tree import Node, is_false

DESCRIPTOR_TYPES = ("dpa1", "se_atten", "se_atten_v2")


def descriptor_config(d: Node, ntypes: int, type_map: list[str], semantics: str) -> dict:
    kind = d.expect("type", DESCRIPTOR_TYPES, f"dpgraph imports descriptors {DESCRIPTOR_TYPES} only")
    d.expect("@class", ("Descriptor",), "expected a descriptor node")
    d.version(2, "; version 3 marks a compressed descriptor and 4 an lmax > 1 moment basis, "
                 "neither of which dpgraph represents")
    d.expect("compress", is_false, "compressed (tabulated) descriptors are not supported; "
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


def fitting_config(f: Node, ntypes: int, dim_descrpt: int | None) -> dict:
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
    f.expect("atom_ener", is_false, "atom_ener (fixed per-type isolated-atom energies) is not supported")
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
