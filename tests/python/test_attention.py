"""Production (fused) attention == pair-materialized oracle, energy/forces/virial to 1e-12."""

from __future__ import annotations

import itertools

import pytest
import torch

from dpgraph.graph import build_graph

from conftest import make_model, random_system, small_config

COMBOS = list(
    itertools.product(
        [0, 1, 2],  # attn_layer
        [True, False],  # smooth_type_embedding
        [True, False],  # attn_dotr
        [True, False],  # normalize
        [None, 0.7],  # temperature
        ["concat", "strip"],  # tebd_input_mode
    )
)


@pytest.fixture(scope="module")
def system():
    coords, atype, cell = random_system(24, 6.5, seed=11)
    return coords, atype, cell, build_graph(coords, atype, cell=cell, rcut=4.0)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-300))


@pytest.mark.parametrize("attn_layer,smooth,dotr,normalize,temperature,mode", COMBOS)
@pytest.mark.parametrize("semantics", ["carry-all", "dense"])
def test_fused_equals_oracle(system, attn_layer, smooth, dotr, normalize, temperature, mode, semantics):
    coords, atype, cell, graph = system
    cfg = small_config(
        attn_layer=attn_layer, smooth_type_embedding=smooth, attn_dotr=dotr, normalize=normalize,
        temperature=temperature, tebd_input_mode=mode, semantics=semantics,
        sel=30 if semantics == "dense" else 40,
    )
    model = make_model(cfg, coords, atype, cell, scale_out=50.0)
    fused = model.evaluate(graph)
    model.descriptor.attention_impl = "pairwise"
    oracle = model.evaluate(graph)
    for key in ("energy", "force", "virial", "atom_energy", "atom_virial"):
        assert _rel(fused[key], oracle[key]) < 1e-12, key


def test_attention_changes_the_result(system):
    """Guard against a silently inactive attention path."""
    coords, atype, cell, graph = system
    e = {}
    for layers in (0, 2):
        model = make_model(small_config(attn_layer=layers), coords, atype, cell)
        e[layers] = float(model.evaluate(graph)["energy"][0])
    assert abs(e[0] - e[2]) > 1e-6


def test_center_without_neighbors_and_high_degree():
    """An isolated atom (fully masked attention row) next to a dense cluster: finite and equal."""
    gen = torch.Generator().manual_seed(0)
    cluster = torch.randn(20, 3, generator=gen, dtype=torch.float64) * 1.2
    lone = torch.tensor([[30.0, 30.0, 30.0]], dtype=torch.float64)
    coords = torch.cat([cluster, lone])
    atype = torch.arange(21) % 2
    graph = build_graph(coords, atype, cell=None, rcut=4.0)
    model = make_model(small_config(), coords, atype, None, scale_out=10.0)
    fused = model.evaluate(graph)
    model.descriptor.attention_impl = "pairwise"
    oracle = model.evaluate(graph)
    for key in fused:
        assert torch.isfinite(fused[key]).all()
        assert _rel(fused[key], oracle[key]) < 1e-12
    assert float(fused["force"][-1].abs().max()) == 0.0


@pytest.mark.parametrize("mode", ["concat", "strip"])
def test_force_loss_gradients_fused_equal_oracle(system, mode):
    """Training on forces needs a second backward: fused (math-kernel path) == oracle."""
    coords, atype, cell, graph = system
    model = make_model(small_config(tebd_input_mode=mode, semantics="dense", sel=30), coords, atype, cell, 20.0)
    grads = {}
    for impl in ("fused", "pairwise"):
        model.descriptor.attention_impl = impl
        model.zero_grad()
        out = model(*graph.as_tuple(), create_graph=True)
        loss = (out[2] ** 2).sum() + out[0].sum() ** 2
        loss.backward()
        grads[impl] = torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None])
    assert _rel(grads["fused"], grads["pairwise"]) < 1e-11


def test_block_attention_gradcheck():
    """The production attention's first and second derivatives by gradcheck/gradgradcheck."""
    from dpgraph.descriptors.attention import BlockLayout, attention_blocks

    gen = torch.Generator().manual_seed(0)
    n_e, n = 40, 7
    dst = torch.sort(torch.randint(0, n - 1, (n_e,), generator=gen))[0]
    mask = torch.ones(n_e, dtype=torch.bool)
    mask[-3:] = False
    mask[5] = False
    lay = BlockLayout(dst, mask, n)
    args = [torch.randn(n_e, d, dtype=torch.float64, generator=gen, requires_grad=True) for d in (4, 4, 3)]
    sw = torch.rand(n_e, dtype=torch.float64, generator=gen, requires_grad=True)
    rhat = torch.nn.functional.normalize(torch.randn(n_e, 3, dtype=torch.float64, generator=gen), dim=-1)
    rhat.requires_grad_(True)
    nph = torch.randint(0, 4, (n,), generator=gen)
    for smooth, dotr, ph in ((True, True, nph), (False, True, None), (True, False, None)):
        def f(q, k, v, sw, rhat):
            q, k, v, rhat = (lay.pad(t) for t in (q, k, v, rhat))
            nph = None if ph is None else ph.index_select(0, lay.centers)
            o = attention_blocks(q, k, v, lay.pad(sw[:, None])[..., 0], rhat, lay.key_ok, smooth, dotr, nph)
            return lay.unpad(o)
        assert torch.autograd.gradcheck(f, (*args, sw, rhat))
        assert torch.autograd.gradgradcheck(f, (*args, sw, rhat))
