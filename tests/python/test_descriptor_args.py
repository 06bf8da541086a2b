"""Every constructor argument of deepmd-kit's ``DescrptSeAttenV2`` / ``DescrptDPA1``.

Source of truth: deepmd-kit's documented signature (``deepmd.jax.descriptor.se_atten_v2.
DescrptSeAttenV2``, copied into ``DOCUMENTED_DEFAULTS`` below). Each argument is
either implemented, and a test here shows its documented effect, or refused with a
``ValueError`` whose message names the argument and says what to do instead:

==========================  ==========================================================
argument                    test(s)
==========================  ==========================================================
rcut, rcut_smth             test_rcut_*, test_rcut_smth_*
sel                         test_sel_*
ntypes, type_map            test_ntypes_type_map_*
neuron                      test_neuron_*
axis_neuron                 test_axis_neuron_*
tebd_dim                    test_tebd_dim_*
tebd_input_mode             test_tebd_input_mode_*
stripped_type_embedding     test_stripped_type_embedding_*
resnet_dt                   test_resnet_dt_*
trainable                   test_trainable_*
type_one_side               test_type_one_side_*
attn, attn_layer, attn_dotr test_attn_*
attn_mask                   test_attn_mask_* (True refused)
exclude_types               test_exclude_types_*
env_protection              test_env_protection_*
set_davg_zero               test_set_davg_zero_*
activation_function         test_activation_*
precision                   test_precision_* (float16 refused)
scaling_factor, temperature test_scaling_factor_temperature_*
normalize                   test_normalize_*
trainable_ln, ln_eps        test_trainable_ln_*, test_ln_eps_*
smooth_type_embedding       test_smooth_type_embedding_*
concat_output_tebd          test_concat_output_tebd_*
spin                        test_spin_* (not None refused)
use_econf_tebd              test_use_econf_tebd_* (True refused)
use_tebd_bias               test_use_tebd_bias_*
seed                        test_seed_*
se_atten_v2 preset, dpa1    test_se_atten_v2_*, test_dpa1_*
==========================  ==========================================================

plus ``build_model`` config errors (test_build_model_*). Tiny models (neuron [4, 8],
attn 8) on a 12-atom periodic system; the module runs in a few seconds.
"""

from __future__ import annotations

import copy
import functools
import inspect
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import random_system
from dpgraph.descriptors import DescrptSeAtten, DescrptSeAttenV2, build_descriptor
from dpgraph.graph import build_graph
from dpgraph.models import build_model, compute_descriptor_stats
from dpgraph.nn import ACTIVATIONS, get_activation

RCUT = 4.0
RCUT_SMTH = 0.5
NTYPES = 2

BASE_DESC = {
    "type": "se_atten",
    "rcut": RCUT,
    "rcut_smth": RCUT_SMTH,
    "sel": 40,
    "neuron": [4, 8],
    "axis_neuron": 4,
    "tebd_dim": 4,
    "attn": 8,
    "attn_layer": 2,
    "seed": 1,
}
BASE_FIT = {"neuron": [8, 8], "seed": 2}

# deepmd-kit's documented signature: argument -> default (REQUIRED: no default)
REQUIRED = object()
DOCUMENTED_DEFAULTS = {
    "rcut": REQUIRED,
    "rcut_smth": REQUIRED,
    "sel": REQUIRED,
    "ntypes": REQUIRED,
    "neuron": [25, 50, 100],
    "axis_neuron": 8,
    "tebd_dim": 8,
    "tebd_input_mode": "concat",
    "resnet_dt": False,
    "trainable": True,
    "type_one_side": False,
    "attn": 128,
    "attn_layer": 2,
    "attn_dotr": True,
    "attn_mask": False,
    "exclude_types": [],
    "env_protection": 0.0,
    "set_davg_zero": False,
    "activation_function": "tanh",
    "precision": "default",  # deepmd-kit's DEFAULT_PRECISION is float64
    "scaling_factor": 1.0,
    "normalize": True,
    "temperature": None,
    "trainable_ln": True,
    "ln_eps": 1e-5,
    "smooth_type_embedding": True,
    "concat_output_tebd": True,
    "spin": None,
    "stripped_type_embedding": None,
    "use_econf_tebd": False,
    "use_tebd_bias": False,
    "type_map": None,
    "seed": None,
}


# ------------------------------------------------------------------ helpers
@functools.lru_cache(maxsize=None)
def system():
    """12-atom periodic system, 5 Å cubic box (coords, atype, cell) and its graph."""
    coords, atype, cell = random_system(12, 5.0, seed=0)
    graph = build_graph(coords, atype, cell=cell, rcut=RCUT)
    return coords, atype, cell, graph


def model_config(fitting=None, **desc) -> dict:
    d = copy.deepcopy(BASE_DESC)
    d.update(desc)
    f = copy.deepcopy(BASE_FIT)
    f.update(fitting or {})
    return {"type_map": ["O", "H"], "descriptor": d, "fitting_net": f}


def make(stats: bool = True, **desc):
    """Model (with descriptor statistics from the test system unless ``stats=False``)."""
    model = build_model(model_config(**desc))
    if stats:
        compute_descriptor_stats(model.descriptor, [system()[3]])
    return model


def energy(model, graph=None) -> torch.Tensor:
    graph = system()[3] if graph is None else graph
    return model.evaluate(graph)["energy"][0]


def e_of(**desc) -> float:
    return float(energy(make(**desc)))


def descriptor(**desc) -> DescrptSeAtten:
    cfg = {k: v for k, v in {**BASE_DESC, **desc}.items()}
    return build_descriptor(cfg, NTYPES, ["O", "H"])


def run_descriptor(d, graph=None, atype=None) -> torch.Tensor:
    g = system()[3] if graph is None else graph
    at = g.atype if atype is None else atype
    return d(at, g.src, g.dst, g.edge_vec, g.edge_mask, g.n_node)


@functools.lru_cache(maxsize=None)
def e_ref() -> float:
    return e_of()


def assert_changes(value: float, ref: float | None = None, atol: float = 1e-9) -> None:
    ref = e_ref() if ref is None else ref
    assert math.isfinite(value)
    assert abs(value - ref) > atol, f"argument had no effect: {value} == {ref}"


def refused(match: str, **desc):
    """Build via DescrptSeAtten keyword arguments; must raise ValueError matching ``match``."""
    kw = {k: v for k, v in BASE_DESC.items() if k != "type"}
    kw.update(desc)
    with pytest.raises(ValueError, match=match) as info:
        DescrptSeAtten(ntypes=kw.pop("ntypes", NTYPES), **kw)
    return str(info.value)


# ------------------------------------------------------------- signature
def test_signature_matches_documented_arguments_and_defaults():
    params = inspect.signature(DescrptSeAtten.__init__).parameters
    missing = sorted(set(DOCUMENTED_DEFAULTS) - set(params))
    assert not missing, f"documented arguments not accepted: {missing}"
    for name, default in DOCUMENTED_DEFAULTS.items():
        got = params[name].default
        if default is REQUIRED:
            assert got is inspect.Parameter.empty, name
        elif isinstance(default, list):
            assert list(got) == default, name
        else:
            assert got == default, (name, got, default)


def test_every_documented_argument_accepted_by_build_descriptor():
    """Passing every documented argument with its default value builds (via the config route)."""
    cfg = {k: v for k, v in DOCUMENTED_DEFAULTS.items() if v is not REQUIRED}
    cfg.update(rcut=RCUT, rcut_smth=RCUT_SMTH, sel=10, ntypes=2, type_map=["O", "H"],
               neuron=[4, 8], attn=8)
    for kind in ("se_atten", "dpa1"):
        d = build_descriptor({"type": kind, **cfg}, NTYPES)
        assert d.tebd_input_mode == "concat"
    # the v2 preset with the documented arguments (its own mode is forced to strip)
    cfg.pop("tebd_input_mode")
    d = build_descriptor({"type": "se_atten_v2", **cfg}, NTYPES)
    assert d.tebd_input_mode == "strip" and d.smooth


# ------------------------------------------------------------ rcut / rcut_smth
@pytest.mark.parametrize("rcut_smth", [RCUT, RCUT + 1.0, -0.1])
def test_rcut_smth_must_be_below_rcut(rcut_smth):
    msg = refused("rcut_smth", rcut_smth=rcut_smth)
    assert "rcut_smth < rcut" in msg and "rcut" in msg


def test_rcut_edges_beyond_cutoff_are_ignored():
    """A model with rcut=3 on a graph built with rcut=4 equals the same model on a rcut=3 graph."""
    coords, atype, cell, g4 = system()
    g3 = build_graph(coords, atype, cell=cell, rcut=3.0)
    assert g3.n_edges < g4.n_edges
    model = make(rcut=3.0)
    assert model.rcut == 3.0
    e3, e4 = energy(model, g3), energy(model, g4)
    torch.testing.assert_close(e4, e3, rtol=1e-12, atol=1e-12)
    assert_changes(float(e3))


def test_rcut_smth_changes_switch():
    assert_changes(e_of(rcut_smth=2.0))


# ------------------------------------------------------------------- sel
def test_sel_int_and_list_give_same_nnei_and_result():
    d_int, d_list = descriptor(sel=40), descriptor(sel=[15, 25])
    assert d_int.nnei == d_list.nnei == 40
    assert d_list.sel == [15, 25] and d_int.sel == [40]
    torch.testing.assert_close(run_descriptor(d_int), run_descriptor(d_list), rtol=0, atol=0)
    assert e_of(sel=[15, 25]) == e_of(sel=40)


def test_sel_changes_normalization():
    """nnei is the 1/N_c normalization of the descriptor: doubling it quarters D (no stats)."""
    d40, d80 = descriptor(sel=40, concat_output_tebd=False), descriptor(sel=[40, 40], concat_output_tebd=False)
    assert d80.nnei == 80
    torch.testing.assert_close(run_descriptor(d80) * 4, run_descriptor(d40), rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------ ntypes / type_map
def test_ntypes_type_map_mismatch_refused():
    with pytest.raises(ValueError, match=r"type_map has 3 names but ntypes=2"):
        DescrptSeAtten(RCUT, RCUT_SMTH, 20, 2, type_map=["O", "H", "C"])
    with pytest.raises(ValueError, match=r"type_map has 2 names but ntypes=3"):
        build_descriptor({**BASE_DESC, "ntypes": 3}, NTYPES, ["O", "H"])
    with pytest.raises(ValueError, match="ntypes must be >= 1"):
        DescrptSeAtten(RCUT, RCUT_SMTH, 20, 0)


def test_ntypes_sets_type_embedding_rows():
    d = DescrptSeAtten(RCUT, RCUT_SMTH, 20, 3, neuron=[4, 8], attn=8, tebd_dim=4, type_map=["O", "H", "C"])
    assert d.ntypes == 3 and d.type_map == ["O", "H", "C"]
    assert d.type_embedding().shape == (4, 4)  # ntypes + 1 padding row
    assert d.davg.shape == d.dstd.shape == (3, 4)


# ---------------------------------------------------------------- neuron
def test_neuron_sets_embedding_widths():
    d = descriptor(neuron=[4, 8, 16])
    assert [layer.n_out for layer in d.embeddings] == [4, 8, 16]
    assert d.ng == 16
    assert d.dim_out == 16 * 4 + 4
    assert run_descriptor(d).shape == (12, 16 * 4 + 4)
    assert d.attention_layers[0].attention_layer.in_proj.n_in == 16


# ----------------------------------------------------------- axis_neuron
def test_axis_neuron_sets_output_width():
    d = descriptor(axis_neuron=2)
    assert d.dim_out == 8 * 2 + 4
    assert run_descriptor(d).shape == (12, 8 * 2 + 4)


def test_axis_neuron_larger_than_last_neuron_refused():
    msg = refused("axis_neuron", axis_neuron=9)
    assert "axis_neuron=9" in msg and "8" in msg


# --------------------------------------------------------------- tebd_dim
def test_tebd_dim_changes_output_dim_and_tail():
    d = descriptor(tebd_dim=6)
    assert d.type_embedding().shape == (NTYPES + 1, 6)
    assert d.embeddings[0].n_in == 1 + 2 * 6
    out = run_descriptor(d)
    assert out.shape == (12, 8 * 4 + 6) and d.dim_out == 8 * 4 + 6
    # the concatenated tail is the center's type embedding
    torch.testing.assert_close(out[:, -6:], d.type_embedding()[system()[3].atype])
    assert descriptor(tebd_dim=3).dim_out == 8 * 4 + 3


# --------------------------------------------------------- tebd_input_mode
def test_tebd_input_mode_concat():
    d = descriptor(tebd_input_mode="concat")
    assert d.embeddings_strip is None
    assert d.embeddings[0].n_in == 1 + 2 * 4


def test_tebd_input_mode_strip_builds_embeddings_strip():
    d = descriptor(tebd_input_mode="strip")
    assert d.embeddings_strip is not None
    assert d.embeddings[0].n_in == 1  # radial net sees s only
    assert d.embeddings_strip[0].n_in == 2 * 4
    assert d.embeddings_strip[-1].n_out == d.ng
    assert any(k.startswith("embeddings_strip.") for k in d.state_dict())
    assert_changes(e_of(tebd_input_mode="strip"))


def test_tebd_input_mode_unknown_refused():
    msg = refused("tebd_input_mode", tebd_input_mode="sum")
    assert "'concat' or 'strip'" in msg and "'sum'" in msg


# ------------------------------------------------- stripped_type_embedding
def test_stripped_type_embedding_alias():
    assert descriptor(stripped_type_embedding=True).tebd_input_mode == "strip"
    assert descriptor(stripped_type_embedding=False, tebd_input_mode="strip").tebd_input_mode == "concat"
    assert descriptor(stripped_type_embedding=None, tebd_input_mode="strip").tebd_input_mode == "strip"
    assert e_of(stripped_type_embedding=True) == e_of(tebd_input_mode="strip")


# -------------------------------------------------------------- resnet_dt
def test_resnet_dt_adds_timestep_parameters_where_a_skip_exists():
    plain = descriptor(tebd_input_mode="strip")
    assert all(layer.idt is None for layer in plain.embeddings)
    d = descriptor(resnet_dt=True, tebd_input_mode="strip")
    n_dt = 0
    for net in (d.embeddings, d.embeddings_strip):
        for layer in net:
            if layer.n_out in (layer.n_in, 2 * layer.n_in):  # deepmd-kit's rule: idt only with a skip
                assert isinstance(layer.idt, torch.nn.Parameter) and layer.idt.shape == (layer.n_out,)
                n_dt += 1
            else:
                assert layer.idt is None, (layer.n_in, layer.n_out)
    assert n_dt >= 2
    # the first layer (1 -> 8, no skip) is a plain activation; a doubling layer is x2 + idt * act(...)
    first = d.embeddings[0]
    x = torch.randn(5, first.n_in, dtype=torch.float64)
    torch.testing.assert_close(first(x), torch.tanh(x @ first.w + first.b))
    layer = d.embeddings[1]
    x = torch.randn(5, layer.n_in, dtype=torch.float64)
    torch.testing.assert_close(layer(x), torch.tanh(x @ layer.w + layer.b) * layer.idt + torch.cat([x, x], -1))
    assert_changes(e_of(resnet_dt=True))


# -------------------------------------------------------------- trainable
@pytest.mark.parametrize("mode", ["concat", "strip"])
def test_trainable_false_freezes_every_parameter(mode):
    d = descriptor(trainable=False, tebd_input_mode=mode, resnet_dt=True, use_tebd_bias=True)
    params = list(d.parameters())
    assert params and not any(p.requires_grad for p in params)
    d = descriptor(trainable=True, tebd_input_mode=mode)
    assert all(p.requires_grad for p in d.parameters())


def test_trainable_false_descriptor_gets_no_gradient():
    model = make(trainable=False)
    e = model.atom_energy(*system()[3].as_tuple()).sum()
    e.backward()
    assert all(p.grad is None for p in model.descriptor.parameters())
    assert any(p.grad is not None for p in model.fitting.parameters())


# ---------------------------------------------------------- type_one_side
def test_type_one_side_embedding_input_width():
    assert descriptor(type_one_side=False).embeddings[0].n_in == 1 + 2 * 4
    assert descriptor(type_one_side=True).embeddings[0].n_in == 1 + 4
    assert descriptor(type_one_side=False, tebd_input_mode="strip").embeddings_strip[0].n_in == 2 * 4
    assert descriptor(type_one_side=True, tebd_input_mode="strip").embeddings_strip[0].n_in == 4
    assert_changes(e_of(type_one_side=True))


@pytest.mark.parametrize("mode", ["concat", "strip"])
def test_type_one_side_ignores_center_type(mode):
    """Only neighbor types enter G: with davg=0/dstd=1 and no output tebd, a center's
    descriptor row does not depend on its own type (it does when type_one_side=False)."""
    g = system()[3]
    flipped = g.atype.clone()
    flipped[0] = 1 - flipped[0]
    for one_side in (True, False):
        d = descriptor(type_one_side=one_side, tebd_input_mode=mode, concat_output_tebd=False)
        a, b = run_descriptor(d)[0], run_descriptor(d, atype=flipped)[0]
        if one_side:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
        else:
            assert (a - b).abs().max() > 1e-8


# ------------------------------------------------------------------- attn
def test_attn_sets_hidden_dimension():
    d = descriptor(attn=6)
    layer = d.attention_layers[0].attention_layer
    assert layer.hidden_dim == 6
    assert layer.in_proj.w.shape == (8, 3 * 6)
    assert layer.out_proj.w.shape == (6, 8)


def test_attn_layer_counts():
    energies = []
    for n in range(4):
        d = descriptor(attn_layer=n)
        assert len(d.attention_layers) == n
        assert sum(k.startswith("attention_layers.") for k in d.state_dict()) == 6 * n
        energies.append(e_of(attn_layer=n))
    assert all(math.isfinite(e) for e in energies)
    for a, b in itertools.combinations(energies, 2):
        assert abs(a - b) > 1e-9
    with pytest.raises(ValueError, match="attn_layer must be >= 0"):
        DescrptSeAtten(RCUT, RCUT_SMTH, 20, 2, attn_layer=-1)


def test_attn_dotr_changes_result():
    assert_changes(e_of(attn_dotr=False))
    # and it is a no-op without attention layers
    assert e_of(attn_dotr=False, attn_layer=0) == e_of(attn_dotr=True, attn_layer=0)


def test_attn_mask_true_refused():
    msg = refused("attn_mask", attn_mask=True)
    assert "set attn_mask to False" in msg
    DescrptSeAtten(RCUT, RCUT_SMTH, 20, 2, attn_mask=False)


# ---------------------------------------------------------- exclude_types
def _cluster_with_far_pair():
    """10-atom open cluster plus an O-H pair (1.1 Å apart) 30 Å away from it."""
    coords, atype, _ = random_system(10, 5.0, seed=4)
    pair = torch.tensor([[30.0, 0.0, 0.0], [31.1, 0.0, 0.0]], dtype=torch.float64)
    return (torch.cat([coords, pair]), torch.cat([atype, torch.tensor([0, 1])]), coords, atype)


@pytest.mark.parametrize("mode", ["concat", "strip"])
@pytest.mark.parametrize("excl", [[[0, 1]], [[1, 0]]])
def test_exclude_types_pair_decouples(mode, excl):
    """An excluded O-H pair far from the rest: E = E(rest) + E(O alone) + E(H alone), no force."""
    coords, atype, rest_c, rest_t = _cluster_with_far_pair()
    model = make(exclude_types=excl, tebd_input_mode=mode)  # davg != 0: stats from the periodic system
    out = model.evaluate(build_graph(coords, atype, cell=None, rcut=RCUT))
    e_rest = energy(model, build_graph(rest_c, rest_t, cell=None, rcut=RCUT))
    e_o = energy(model, build_graph(coords[-2:-1], atype[-2:-1], cell=None, rcut=RCUT))
    e_h = energy(model, build_graph(coords[-1:], atype[-1:], cell=None, rcut=RCUT))
    torch.testing.assert_close(out["energy"][0], e_rest + e_o + e_h, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out["atom_energy"][-2], e_o, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out["atom_energy"][-1], e_h, rtol=1e-12, atol=1e-12)
    assert out["force"][-2:].abs().max() == 0
    # without the exclusion (or excluding another pair) the O-H pair interacts
    for other in ([], [[1, 1]]):
        m2 = make(exclude_types=other, tebd_input_mode=mode)
        out2 = m2.evaluate(build_graph(coords, atype, cell=None, rcut=RCUT))
        assert (out2["force"][-2:].abs().max()) > 1e-8
        e_o2 = energy(m2, build_graph(coords[-2:-1], atype[-2:-1], cell=None, rcut=RCUT))
        assert abs(float(out2["atom_energy"][-2] - e_o2)) > 1e-9


@pytest.mark.parametrize("pair", [[0, 2], [-1, 0], [0], [0, 1, 1]])
def test_exclude_types_invalid_pair_refused(pair):
    msg = refused("exclude_types", exclude_types=[pair])
    assert "pair of integer type indices in [0, 2)" in msg


# --------------------------------------------------------- env_protection
def test_env_protection_changes_result_slightly():
    e = e_of(env_protection=1e-3)
    assert_changes(e)
    assert abs(e - e_ref()) < 1e-2 * abs(e_ref())


# ---------------------------------------------------------- set_davg_zero
def test_set_davg_zero():
    g = system()[3]
    d = descriptor(set_davg_zero=True)
    davg, dstd = compute_descriptor_stats(d, [g])
    assert torch.all(davg == 0) and torch.all(d.davg == 0)
    assert torch.all(dstd != 1.0)  # the std is still computed
    d2 = descriptor(set_davg_zero=False)
    davg2, dstd2 = compute_descriptor_stats(d2, [g])
    assert torch.all(davg2[:, 0] != 0) and torch.all(davg2[:, 1:] == 0)
    torch.testing.assert_close(dstd, dstd2)
    assert_changes(e_of(set_davg_zero=True))


# ---------------------------------------------------- activation_function
def _gelu_tanh_formula(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


FORMULAS = {
    "none": lambda x: x,
    "linear": lambda x: x,
    "tanh": lambda x: (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x)),
    "relu": lambda x: torch.where(x > 0, x, torch.zeros_like(x)),
    "relu6": lambda x: torch.minimum(torch.where(x > 0, x, torch.zeros_like(x)), torch.full_like(x, 6.0)),
    "sigmoid": lambda x: 1.0 / (1.0 + torch.exp(-x)),
    "softplus": lambda x: torch.log(1.0 + torch.exp(x)),
    "gelu": _gelu_tanh_formula,
    "gelu_tf": _gelu_tanh_formula,
}
ALIASES = [{"none", "linear"}, {"gelu", "gelu_tf"}]


def test_activation_names_are_the_documented_nine():
    assert set(ACTIVATIONS) == set(FORMULAS)


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_activation_matches_formula(name):
    x = torch.linspace(-9.0, 9.0, 181, dtype=torch.float64)
    torch.testing.assert_close(get_activation(name)(x), FORMULAS[name](x), rtol=1e-12, atol=1e-12)
    # and the descriptor's embedding layers apply it: first layer y = act(x W + b)
    d = descriptor(activation_function=name, tebd_input_mode="strip")
    for layer in (d.embeddings[0], d.embeddings_strip[0]):
        xin = 3.0 * torch.randn(7, layer.n_in, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(layer(xin), FORMULAS[name](xin @ layer.w + layer.b), rtol=1e-12, atol=1e-12)


def test_gelu_is_the_tanh_approximation_not_erf():
    x = torch.linspace(-4.0, 4.0, 81, dtype=torch.float64)
    for name in ("gelu", "gelu_tf"):
        assert (get_activation(name)(x) - F.gelu(x)).abs().max() > 1e-5


def _activation_energy(name: str) -> float:
    model = make(activation_function=name)
    with torch.no_grad():  # push some pre-activations above 6 so relu and relu6 differ
        model.descriptor.embeddings[0].b[:2] += 7.0
    return float(energy(model))


def test_activation_energies_finite_and_distinct():
    es = {name: _activation_energy(name) for name in FORMULAS}
    assert all(math.isfinite(e) for e in es.values()), es
    for a, b in itertools.combinations(sorted(es), 2):
        if {a, b} in ALIASES:  # the same function under two names
            assert es[a] == es[b], (a, b)
        else:
            assert abs(es[a] - es[b]) > 1e-9, (a, b, es)


def test_activation_unknown_refused():
    msg = refused("activation_function", activation_function="swish")
    assert "'swish'" in msg and "supported" in msg and "tanh" in msg
    # case-insensitive names are accepted
    assert descriptor(activation_function="TANH").embeddings[0].act is torch.tanh


# -------------------------------------------------------------- precision
@pytest.mark.parametrize("precision,dtype", [("float32", torch.float32), ("float64", torch.float64),
                                             ("default", torch.float64)])
def test_precision_parameter_dtypes(precision, dtype):
    d = descriptor(precision=precision, tebd_input_mode="strip", resnet_dt=True)
    assert d.dtype == dtype
    assert all(p.dtype == dtype for p in d.parameters())
    assert d.davg.dtype == d.dstd.dtype == dtype
    assert run_descriptor(d).dtype == dtype
    model = make(precision=precision)
    e = energy(model)
    assert e.dtype == dtype
    assert abs(float(e) - e_ref()) < 1e-4 * abs(e_ref())  # float32 close to float64, same weights


@pytest.mark.parametrize("precision", ["float16", "half", "bfloat16"])
def test_precision_half_refused(precision):
    msg = refused("precision", precision=precision)
    assert repr(precision) in msg and "16-bit" in msg and "'float32' or 'float64'" in msg


def test_precision_unknown_refused():
    refused(r"unknown precision 'float8'.*'float64', 'float32' or 'default'", precision="float8")


# ------------------------------------------------ scaling_factor / temperature
def test_scaling_factor_temperature_change_result():
    e_sf = e_of(scaling_factor=0.25)
    e_t = e_of(temperature=2.0)
    assert_changes(e_sf)
    assert_changes(e_t)
    assert abs(e_sf - e_t) > 1e-9


def test_scaling_factor_temperature_equivalence():
    """q is scaled by temperature if given, else by (attn * scaling_factor) ** -0.5."""
    d = descriptor(scaling_factor=0.25)
    assert d.attention_layers[0].attention_layer.scaling == pytest.approx((8 * 0.25) ** -0.5)
    assert descriptor(temperature=2.0).attention_layers[0].attention_layer.scaling == 2.0
    assert descriptor().attention_layers[0].attention_layer.scaling == pytest.approx(8**-0.5)
    e_sf = e_of(scaling_factor=0.25)
    e_t = e_of(temperature=(8 * 0.25) ** -0.5, scaling_factor=123.0)  # temperature wins
    assert e_sf == pytest.approx(e_t, rel=1e-13)


# -------------------------------------------------------------- normalize
def test_normalize_changes_result():
    assert_changes(e_of(normalize=False))
    assert descriptor(normalize=False).attention_layers[0].attention_layer.normalize is False


# ------------------------------------------------------ trainable_ln / ln_eps
def test_trainable_ln_false():
    d = descriptor(trainable_ln=False)
    ln_params = [p for layer in d.attention_layers for p in layer.attn_layer_norm.parameters()]
    assert len(ln_params) == 2 * 2
    assert not any(p.requires_grad for p in ln_params)
    ln_ids = {id(p) for p in ln_params}
    assert all(p.requires_grad for p in d.parameters() if id(p) not in ln_ids)
    d_t = descriptor(trainable_ln=True)
    assert all(p.requires_grad for layer in d_t.attention_layers for p in layer.attn_layer_norm.parameters())
    # freshly initialized LayerNorm (scale 1, shift 0): same numbers either way
    assert e_of(trainable_ln=False) == e_ref()


def test_ln_eps():
    d = descriptor(ln_eps=1e-2)
    assert all(layer.attn_layer_norm.eps == 1e-2 for layer in d.attention_layers)
    assert descriptor(ln_eps=None).attention_layers[0].attn_layer_norm.eps == 1e-5
    assert e_of(ln_eps=None) == e_ref()
    assert_changes(e_of(ln_eps=0.5))


# -------------------------------------------------- smooth_type_embedding
@pytest.mark.parametrize("mode", ["concat", "strip"])
def test_smooth_type_embedding_changes_result(mode):
    assert descriptor(smooth_type_embedding=False).smooth is False
    assert_changes(e_of(smooth_type_embedding=False, tebd_input_mode=mode),
                   e_of(smooth_type_embedding=True, tebd_input_mode=mode))


# ----------------------------------------------------- concat_output_tebd
def test_concat_output_tebd_dim_out():
    on, off = descriptor(concat_output_tebd=True), descriptor(concat_output_tebd=False)
    assert on.dim_out == 8 * 4 + 4 and off.dim_out == 8 * 4
    out_on, out_off = run_descriptor(on), run_descriptor(off)
    assert out_on.shape == (12, 36) and out_off.shape == (12, 32)
    torch.testing.assert_close(out_on[:, :32], out_off, rtol=0, atol=0)
    assert make(concat_output_tebd=False).fitting.dim_descrpt == 32


# -------------------------------------------------- spin / use_econf_tebd
def test_spin_not_none_refused():
    msg = refused("spin", spin={"use_spin": [True, False]})
    assert "remove the 'spin' argument" in msg
    DescrptSeAtten(RCUT, RCUT_SMTH, 20, 2, spin=None)


def test_use_econf_tebd_true_refused():
    msg = refused("use_econf_tebd", use_econf_tebd=True)
    assert "set use_econf_tebd to False" in msg


# ----------------------------------------------------------- use_tebd_bias
def test_use_tebd_bias():
    assert descriptor(use_tebd_bias=False).type_embedding.embedding_net[0].b is None
    # tebd_dim 3 (neither ntypes nor 2 * ntypes): no residual in the linear type-embedding layer
    d = descriptor(use_tebd_bias=True, tebd_dim=3)
    layer = d.type_embedding.embedding_net[0]
    assert isinstance(layer.b, torch.nn.Parameter) and layer.b.shape == (3,)
    # table rows = onehot @ W + b; the padding row stays zero
    table = d.type_embedding()
    torch.testing.assert_close(table[:2], layer.w + layer.b, rtol=1e-14, atol=1e-14)
    assert torch.all(table[2] == 0)
    assert_changes(e_of(use_tebd_bias=True))


# ------------------------------------------------------------------- seed
def _random_state(d):
    """Parameters drawn from the RNG (LayerNorm starts at 1 / 0 deterministically)."""
    return {k: v for k, v in d.state_dict().items() if "layer_norm" not in k and k.split(".")[-1] in ("w", "b", "idt")}


@pytest.mark.parametrize("seed_a,seed_b", [(1, 2), ([1, 2], [2, 1])])
def test_seed_reproducible_and_distinct(seed_a, seed_b):
    kw = dict(tebd_input_mode="strip", resnet_dt=True, use_tebd_bias=True)
    a1, a2, b = descriptor(seed=seed_a, **kw), descriptor(seed=seed_a, **kw), descriptor(seed=seed_b, **kw)
    s1, s2, sb = _random_state(a1), _random_state(a2), _random_state(b)
    assert s1.keys() == s2.keys() == sb.keys() and s1
    for k in s1:
        assert torch.equal(s1[k], s2[k]), k
        assert not torch.equal(s1[k], sb[k]), k


def test_seed_same_energy():
    assert e_of(seed=7) == e_of(seed=7)
    assert e_of(seed=7) != e_of(seed=8)


# ------------------------------------------------------- se_atten_v2 / dpa1
def test_se_atten_v2_preset_is_strip_smooth():
    d = descriptor(type="se_atten_v2")
    assert isinstance(d, DescrptSeAttenV2)
    assert d.tebd_input_mode == "strip" and d.smooth is True
    assert d.embeddings_strip is not None and d.embeddings[0].n_in == 1
    e_v2 = e_of(type="se_atten_v2")
    assert e_v2 == e_of(type="se_atten", tebd_input_mode="strip", smooth_type_embedding=True)
    # the preset's own values may be passed explicitly
    assert e_of(type="se_atten_v2", tebd_input_mode="strip", smooth_type_embedding=True) == e_v2
    assert e_of(type="se_atten_v2", stripped_type_embedding=True) == e_v2


@pytest.mark.parametrize("conflict", [{"tebd_input_mode": "concat"}, {"smooth_type_embedding": False}])
def test_se_atten_v2_conflicting_mode_refused(conflict):
    with pytest.raises(ValueError, match="se_atten_v2 is the strip \\+ smooth preset") as info:
        descriptor(type="se_atten_v2", **conflict)
    msg = str(info.value)
    assert "tebd_input_mode" in msg and "smooth_type_embedding" in msg and "'se_atten'" in msg


def test_se_atten_v2_stripped_type_embedding_false_refused():
    with pytest.raises(ValueError, match="se_atten_v2"):
        descriptor(type="se_atten_v2", stripped_type_embedding=False)


def test_dpa1_alias():
    d = descriptor(type="dpa1")
    assert type(d) is DescrptSeAtten
    assert e_of(type="dpa1") == e_ref()


# --------------------------------------------------- build_model config errors
def test_build_model_unknown_descriptor_type():
    cfg = model_config(type="se_e2_a")
    with pytest.raises(ValueError, match=r"unknown descriptor type 'se_e2_a'; supported: .*'se_atten'"):
        build_model(cfg)


def test_build_model_unknown_descriptor_kwarg():
    with pytest.raises(ValueError, match=r"descriptor 'se_atten'.*unexpected keyword argument 'atten_layer'"):
        build_model(model_config(atten_layer=2))


@pytest.mark.parametrize("name", ["numb_fparam", "numb_aparam", "dim_case_embd"])
def test_build_model_fitting_params_refused(name):
    with pytest.raises(ValueError, match=rf"fitting_net.{name}=1 is not supported.*set it to 0"):
        build_model(model_config(fitting={name: 1}))
    build_model(model_config(fitting={name: 0}))


def test_build_model_unknown_fitting_type():
    with pytest.raises(ValueError, match=r"fitting_net type 'dipole' is not supported; use 'ener'"):
        build_model(model_config(fitting={"type": "dipole"}))


def test_build_model_unknown_fitting_kwarg():
    with pytest.raises(ValueError, match=r"fitting_net: unsupported arguments \['layers'\]"):
        build_model(model_config(fitting={"layers": 3}))


@pytest.mark.parametrize("key", ["type_map", "descriptor"])
def test_build_model_missing_section(key):
    cfg = model_config()
    del cfg[key]
    with pytest.raises(ValueError, match=rf"model config needs '{key}'"):
        build_model(cfg)


def test_build_model_unknown_top_level_key_and_model_type():
    cfg = model_config()
    cfg["spin"] = {}
    with pytest.raises(ValueError, match=r"unsupported keys \['spin'\]"):
        build_model(cfg)
    cfg = model_config()
    cfg["type"] = "dipole"
    with pytest.raises(ValueError, match="model type 'dipole' is not supported"):
        build_model(cfg)


# ------------------------------------------- known validation gaps (library bugs)
# Each documents an argument value that should be refused with a clear ValueError but
@pytest.mark.parametrize("sel", [0, [0, 0], -5])
def test_sel_nonpositive_refused(sel):
    refused("sel", sel=sel)


@pytest.mark.parametrize("axis_neuron", [0, -1])
def test_axis_neuron_nonpositive_refused(axis_neuron):
    refused("axis_neuron", axis_neuron=axis_neuron)


def test_neuron_empty_refused():
    refused("neuron", neuron=[])


def test_attn_zero_refused():
    refused("attn", attn=0)


@pytest.mark.parametrize("pair", [(0.5, 1), ("a", 1)])
def test_exclude_types_non_integer_refused(pair):
    refused("exclude_types", exclude_types=[pair])
