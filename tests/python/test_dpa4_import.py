"""Importing deepmd-kit DPA4 models: every file layout a user has, and every refusal.

Layouts: ``.dp`` and ``.yaml`` (deepmd-kit's own writer), the pt backend's
``{"type": "SeZM", "atomic_model": ...}`` wrapper, the ``model.json`` that a
pt_expt ``.pt2`` embeds (deepmd-kit's own JSON encoding), and the CLI.
Refusals: each unsupported option raises a ValueError naming it.
"""

from __future__ import annotations

import copy
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import deepmd_oracle  # noqa: E402
import dpa4_oracle as d4  # noqa: E402
from test_dpa4_parity import GEOMS, KEYS, rel, run_eager  # noqa: E402

from dpgraph.app.cli import main as cli_main  # noqa: E402
from dpgraph.interop.deepmd import from_serialized, load_deepmd  # noqa: E402
from dpgraph.models import load_model  # noqa: E402


@pytest.fixture(scope="module")
def tree():
    return d4.random_dpa4(d4.small_config("float64"), seed=0)


@pytest.fixture(scope="module")
def reference(tree):
    coords, atype, cell = GEOMS["triclinic"]
    return deepmd_oracle.evaluate(tree, coords, atype, cell, route="graph")


def _check(model, reference):
    coords, atype, cell = GEOMS["triclinic"]
    out = run_eager(model, coords, atype, cell)
    for k in KEYS:
        assert rel(out[k], reference[k]) < 1e-10, k


@pytest.mark.parametrize("suffix", [".dp", ".yaml"])
def test_dp_and_yaml_files(tmp_path, tree, reference, suffix):
    deepmd_oracle._deepmd()
    from deepmd.dpmodel.utils.serialization import save_dp_model

    path = tmp_path / f"model{suffix}"
    save_dp_model(str(path), {"model": copy.deepcopy(tree), "backend": "dpmodel", "software": "deepmd-kit"})
    _check(load_deepmd(path), reference)


def test_pt_expt_model_json(tmp_path, tree, reference):
    """The ``model/extra/model.json`` entry of a pt_expt .pt2 archive, in deepmd-kit's JSON encoding."""
    deepmd_oracle._deepmd()
    from deepmd.pt_expt.utils.serialization import _numpy_to_json_serializable

    text = json.dumps(_numpy_to_json_serializable({"model": copy.deepcopy(tree)}))
    archive = tmp_path / "frozen.pt2"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("frozen/model/extra/model.json", text)
    _check(load_deepmd(archive), reference)
    (tmp_path / "model.json").write_text(text)
    _check(load_deepmd(tmp_path / "model.json"), reference)


def test_pt_wrapper_layout():
    """pt's SeZM model serializes as {"type": "SeZM", "atomic_model": {...}}; pt_expt reads that layout
    too and is the reference (pt's own SeZM forward needs vesin / nvalchemiops for its neighbor list)."""
    _, _, pt = deepmd_oracle._deepmd()
    from deepmd.pt.model.model import get_model as pt_get_model

    cfg = d4.small_config("float64")
    cfg["type"] = "SeZM"
    wrapper = pt_get_model(copy.deepcopy(cfg)).serialize()
    assert wrapper["type"] == "SeZM" and "atomic_model" in wrapper
    rng = np.random.default_rng(9)
    am = wrapper["atomic_model"]
    d4._perturb(am["descriptor"]["@variables"], rng)
    for net in am["fitting"]["nets"]["networks"]:
        d4._perturb(net["@variables"], rng)
    am["@variables"]["out_bias"] = rng.normal(-3.0, 1.0, am["@variables"]["out_bias"].shape)
    coords, atype, cell = GEOMS["triclinic"]
    ref = deepmd_oracle.evaluate(wrapper, coords, atype, cell, route="graph")
    out = run_eager(from_serialized(wrapper), coords, atype, cell)
    for k in KEYS:
        assert rel(out[k], ref[k]) < 1e-10, k


def test_cli_import_to_checkpoint(tmp_path, tree, reference):
    deepmd_oracle._deepmd()
    from deepmd.dpmodel.utils.serialization import save_dp_model

    save_dp_model(str(tmp_path / "model.dp"), {"model": copy.deepcopy(tree), "backend": "dpmodel"})
    assert cli_main(["import-deepmd", str(tmp_path / "model.dp"), "-o", str(tmp_path / "m.pt")]) == 0
    _check(load_model(tmp_path / "m.pt"), reference)


# ------------------------------------------------------------------ refusals
DESCRIPTOR_REFUSALS = [
    ("edge_cartesian", True), ("node_cartesian", "default:1"), ("so2_attn_res", "independent"),
    ("full_attn_res", "dependent"), ("block_attn_res", "independent"), ("n_focus", 0), ("focus_dim", -1),

    ("so3_readout", "attn"), ("kmax", 3),
    ("extra_node_l", 5), ("inner_clamp_r_inner", 0.5), ("add_chg_spin_ebd", True), ("use_spin", [True, False]),
    ("precision", "float16"), ("precision", "bfloat16"), ("lmax", 7),
    ("activation_function", "gelu"), ("grid_mlp", [True, False]), ("grid_branch", -1),
    ("exclude_types", [[0, 1]]), ("lebedev_quadrature", [True, False]), ("mixing_layers", 0),
    ("n_atten_head", 3), ("a_new_option", 1),
]


@pytest.mark.parametrize("opt,value", DESCRIPTOR_REFUSALS, ids=[f"{o}={v}" for o, v in DESCRIPTOR_REFUSALS])
def test_descriptor_refusals(tree, opt, value):
    t = copy.deepcopy(tree)
    t["descriptor"]["config"][opt] = value
    if opt == "lmax":
        t["descriptor"]["config"]["l_schedule"] = [7, 7]
    with pytest.raises(ValueError, match=opt):
        from_serialized(t)


@pytest.mark.parametrize("opt", ["message_node_s2", "node_wise_s2"])
def test_s2_grid_products_need_lebedev(tree, opt):
    """The e3nn product grid of ``lebedev_quadrature: False`` is not exact: refused for the S2 products."""
    t = copy.deepcopy(tree)
    t["descriptor"]["config"].update({opt: True, "s2_activation": [False, False],
                                      "lebedev_quadrature": [False, True]})
    with pytest.raises(ValueError, match="lebedev_quadrature"):
        from_serialized(t)


MODEL_REFUSALS = [
    (("fitting", "numb_fparam"), 1, "numb_fparam"),
    (("fitting", "numb_aparam"), 2, "numb_aparam"),
    (("fitting", "dim_case_embd"), 2, "dim_case_embd"),
    (("fitting", "type"), "property", "fitting type"),
    (("pair_exclude_types",), [[0, 1]], "pair_exclude_types"),
    (("atom_exclude_types",), [1], "atom_exclude_types"),
    (("descriptor", "@version"), 1.0, "@version"),
    (("type",), "zbl", "model type"),
]


@pytest.mark.parametrize("path,value,match", MODEL_REFUSALS, ids=[m for _, _, m in MODEL_REFUSALS])
def test_model_refusals(tree, path, value, match):
    t = copy.deepcopy(tree)
    node = t
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(ValueError, match=match):
        from_serialized(t)


def test_dpa4c_is_refused(tree):
    t = copy.deepcopy(tree)
    t["descriptor"]["type"] = "dpa4c"
    with pytest.raises(ValueError, match="dpa4c"):
        from_serialized(t)


def test_unknown_pt2_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "x.pt2", "w") as zf:
        zf.writestr("x/data.bin", b"")
    with pytest.raises(ValueError, match="model.json"):
        load_deepmd(tmp_path / "x.pt2")


def test_pt_training_checkpoint(tmp_path):
    """A deepmd-kit pt training checkpoint (``{"model": ModelWrapper.state_dict()}``, as ``dp train`` saves
    it), read by deepmd-kit's own code in a child process; reference: the same weights in pt_expt."""
    deepmd_oracle._deepmd()
    from deepmd.pt.model.model import get_model as pt_get_model
    from deepmd.pt.train.wrapper import ModelWrapper

    cfg = d4.small_config("float64")
    cfg["type"] = "SeZM"
    model = pt_get_model(copy.deepcopy(cfg))
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dtype.is_floating_point and "adam_freqs" not in name:
                p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    torch.save({"model": ModelWrapper(model, model_params=copy.deepcopy(cfg)).state_dict()}, tmp_path / "model.pt")
    coords, atype, cell = GEOMS["triclinic"]
    ref = deepmd_oracle.evaluate(model.serialize(), coords, atype, cell, route="graph")
    out = run_eager(load_deepmd(tmp_path / "model.pt"), coords, atype, cell)
    assert np.abs(ref["force"]).max() > 1e-2
    for k in KEYS:
        assert rel(out[k], ref[k]) < 1e-10, k
