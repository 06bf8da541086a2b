"""deepmd-kit's standard energy model (DPA1 / se_atten / se_atten_v2) -> dpgraph EnergyModel."""

from __future__ import annotations

import numpy as np
import torch

from ...descriptors import SEMANTICS
from ...models import EnergyModel, build_model
from typing import Any

from .config import descriptor_config, fitting_config
from .tree import Node, as_array, unwrap
from .weights import load_attention, load_collection, load_type_embedding, slot_uniform


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
    from .. import dpa4  # DPA4 / SeZM energy models have their own importer

    if dpa4.is_dpa4(data):
        return dpa4.from_serialized(data)
    root = Node(unwrap(data), "")
    root.expect("@class", ("Model",), "expected deepmd-kit's serialized model (model.serialize())")
    root.expect("type", ("standard", None), "dpgraph imports standard (descriptor + fitting) energy models only")
    root.version(2)
    type_map = [str(t) for t in root.req("type_map")]
    nt = len(type_map)
    root.ignore("rcond", "preset_out_bias", "data_stat_protect", "min_nbor_dist")
    atom_excl = [int(t) for t in root.get("atom_exclude_types", []) or []]
    pair_excl = [[int(a), int(b)] for a, b in root.get("pair_exclude_types", []) or []]

    dnode = root.node("descriptor")
    dcfg = descriptor_config(dnode, nt, type_map, semantics)
    fnode = root.node("fitting")
    fcfg = fitting_config(fnode, nt, None)
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
    load_collection(desc.embeddings, dnode.node("embeddings"), ddt, nt)
    if desc.tebd_input_mode == "strip":
        load_collection(desc.embeddings_strip, dnode.node("embeddings_strip"), ddt, nt)
    elif dnode.has("embeddings_strip") and dnode.get("embeddings_strip") is not None:
        raise ValueError(f"{dnode.sub('embeddings_strip')} is set but tebd_input_mode is 'concat'")
    load_attention(desc, dnode.node("attention_layers"), dcfg, ddt)
    load_type_embedding(desc, dnode.node("type_embedding"), dcfg, ddt)
    dvar = dnode.node("@variables")
    davg = slot_uniform(as_array(dvar.get("davg"), dvar.sub("davg")), dvar.sub("davg"), nt)
    dstd = slot_uniform(as_array(dvar.get("dstd"), dvar.sub("dstd")), dvar.sub("dstd"), nt)
    dvar.done()
    with torch.no_grad():
        desc.davg.copy_(torch.as_tensor(davg).to(ddt))
        desc.dstd.copy_(torch.as_tensor(dstd).to(ddt))
    dnode.done()

    # fitting weights
    fit = model.fitting
    load_collection(fit.net, fnode.node("nets"), fit.dtype, nt)
    fvar = fnode.node("@variables")
    bias = as_array(fvar.get("bias_atom_e"), fvar.sub("bias_atom_e")).reshape(-1)
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
    out_bias = as_array(mvar.get("out_bias"), mvar.sub("out_bias"))
    if out_bias.size != nt:
        raise ValueError(f"{mvar.sub('out_bias')} has shape {out_bias.shape}, expected (1, {nt}, 1)")
    out_std = mvar.get("out_std")
    if out_std is not None and as_array(out_std, mvar.sub("out_std")).size != nt:
        raise ValueError(f"{mvar.sub('out_std')} has shape {np.shape(out_std)}, expected (1, {nt}, 1)")
    mvar.done()
    with torch.no_grad():
        model.out_bias.copy_(torch.as_tensor(out_bias.reshape(-1), dtype=torch.float64).to(model.dtype))
    root.ignore("@variables", "descriptor", "fitting")
    root.done()
    return model.eval()
