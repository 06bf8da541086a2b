"""dpgraph's graph route in ``semantics="dense"`` vs an independent dense deepmd-kit re-implementation.

The oracle (:mod:`dense_reference`) builds a sel-padded neighbor list by brute
force over periodic images and evaluates deepmd-kit's dense se_atten math with
explicit (nloc, nnei, nnei) attention tensors, reading only the weights of the
dpgraph module. Statistics are random and ``davg`` is nonzero: deepmd-kit's
padded slots then carry ``(0 - davg)/dstd`` (embedded with the type of the
frame's first atom) into the descriptor, and the dense semantics reproduces
that (the descriptor's ``padded_slot_terms``).
"""

from __future__ import annotations

import math
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))

from dense_reference import dense_descriptor_from_coords, dense_nlist, dense_se_atten, extended_system  # noqa: E402

from dpgraph.descriptors import DescrptSeAtten  # noqa: E402
from dpgraph.graph import build_graph, from_dense_nlist  # noqa: E402

RCUT, RCUT_SMTH = 4.0, 0.5
FWD_RTOL = 1e-12
FORCE_RTOL = 1e-10


# ---------------------------------------------------------------- systems
def make_system(n: int, seed: int, volume_per_atom: float = 10.0, skew: float = 0.15, min_dist: float = 1.0):
    """Random triclinic periodic system: coords (n, 3) with fractional coords in [0, 1), atype, cell."""
    gen = torch.Generator().manual_seed(seed)
    length = (n * volume_per_atom) ** (1.0 / 3.0)
    cell = torch.eye(3, dtype=torch.float64) * length
    off = (torch.rand(3, generator=gen, dtype=torch.float64) * 2 - 1) * skew * length
    cell[1, 0], cell[2, 0], cell[2, 1] = off[0], off[1], off[2]
    inv = torch.linalg.inv(cell)
    pts: list[torch.Tensor] = []
    while len(pts) < n:
        f = torch.rand(3, generator=gen, dtype=torch.float64)
        p = f @ cell
        ok = True
        for q in pts:
            df = (p - q) @ inv
            df = df - torch.round(df)
            if float((df @ cell).norm()) < min_dist:
                ok = False
                break
        if ok:
            pts.append(p)
    coords = torch.stack(pts)
    atype = torch.randint(0, 2, (n,), generator=gen)
    atype[0], atype[1] = 0, 1  # both types present
    return coords, atype, cell


def degrees(coords, cell):
    coord_ext, _ = extended_system(coords, cell, RCUT)
    _, deg = dense_nlist(coord_ext, coords.shape[0], RCUT, 1)
    return deg


_SYSTEMS = {
    "s32": make_system(32, seed=11),
    "s24": make_system(24, seed=5, skew=0.3),
    "s40": make_system(40, seed=7, volume_per_atom=12.0),
}
_DEGREES = {k: degrees(c, cell) for k, (c, _, cell) in _SYSTEMS.items()}


def sel_for(system: str, regime: str) -> int:
    deg = _DEGREES[system]
    if regime == "pad":  # sel larger than every degree: padding active
        return int(deg.max()) + 7
    # sel ~ half the typical degree: truncation active for every center
    sel = int(deg.float().median()) // 2
    assert sel < int(deg.min())
    return sel


# ------------------------------------------------------------ descriptors
def make_descr(sel: int, seed: int = 1, **kw) -> DescrptSeAtten:
    args = dict(
        rcut=RCUT, rcut_smth=RCUT_SMTH, sel=[sel], ntypes=2, neuron=[6, 12], axis_neuron=4, tebd_dim=5,
        attn=8, attn_layer=2, semantics="dense", seed=seed,
    )
    args.update(kw)
    d = DescrptSeAtten(**args)
    gen = torch.Generator().manual_seed(1000 + seed)
    with torch.no_grad():
        d.davg.copy_(0.2 * torch.randn(d.davg.shape, generator=gen, dtype=torch.float64))
        d.dstd.copy_(0.5 + torch.rand(d.dstd.shape, generator=gen, dtype=torch.float64))
        for block in d.attention_layers:  # non-trivial LayerNorm parameters
            ln = block.attn_layer_norm
            ln.weight.copy_(1.0 + 0.3 * torch.randn(ln.weight.shape, generator=gen, dtype=torch.float64))
            ln.bias.copy_(0.3 * torch.randn(ln.bias.shape, generator=gen, dtype=torch.float64))
    return d


def graph_forward(d: DescrptSeAtten, coords, atype, cell, semantics=None, impl=None):
    g = build_graph(coords, atype, cell, rcut=RCUT)
    old = d.semantics, d.attention_impl
    try:
        if semantics is not None:
            d.semantics = semantics
        if impl is not None:
            d.attention_impl = impl
        return d(g.atype, g.src, g.dst, g.edge_vec, g.edge_mask, g.n_node)
    finally:
        d.semantics, d.attention_impl = old


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().abs().max() / b.detach().abs().max())


def assert_rel_close(a, b, rtol, what=""):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert torch.isfinite(a).all() and torch.isfinite(b).all()
    err = rel_err(a, b)
    assert err <= rtol, f"{what}: max relative difference {err:.3e} > {rtol:.0e}"


def check_forward(system: str, regime: str, ref_kwargs=None, impls=("fused", "pairwise"), **kw):
    coords, atype, cell = _SYSTEMS[system]
    d = make_descr(sel_for(system, regime), **kw)
    ref, deg = dense_descriptor_from_coords(d, coords, atype, cell, **(ref_kwargs or {}))
    if regime == "pad":
        assert int(deg.max()) < d.nnei
    else:
        assert int(deg.min()) > d.nnei
    assert ref.shape == (coords.shape[0], d.dim_out)
    for impl in impls:
        out = graph_forward(d, coords, atype, cell, impl=impl)
        assert_rel_close(out, ref, FWD_RTOL, f"{system}/{regime}/{impl}/{kw}")
    return d, ref


# ------------------------------------------------------------ forward matrix
@pytest.mark.parametrize("regime", ["pad", "trunc"])
@pytest.mark.parametrize("type_one_side", [False, True])
@pytest.mark.parametrize("mode", ["concat", "strip"])
@pytest.mark.parametrize("dotr", [False, True])
@pytest.mark.parametrize("smooth", [False, True])
def test_forward_matrix(smooth, dotr, mode, type_one_side, regime):
    check_forward(
        "s32", regime, smooth_type_embedding=smooth, attn_dotr=dotr, tebd_input_mode=mode,
        type_one_side=type_one_side, attn_layer=2,
    )


@pytest.mark.parametrize("regime", ["pad", "trunc"])
@pytest.mark.parametrize("smooth", [False, True])
@pytest.mark.parametrize("mode", ["concat", "strip"])
@pytest.mark.parametrize("attn_layer", [0, 1])
def test_forward_attn_layers(attn_layer, mode, smooth, regime):
    check_forward("s24", regime, tebd_input_mode=mode, smooth_type_embedding=smooth, attn_layer=attn_layer)


OPTION_CASES = {
    "no_normalize": (dict(normalize=False), {}),
    "temperature": (dict(temperature=0.7), dict(temperature=0.7)),
    "scaling_factor": (dict(scaling_factor=2.5), dict(scaling_factor=2.5)),
    "resnet_dt": (dict(resnet_dt=True), {}),
    "env_protection": (dict(env_protection=0.3), {}),
    "tebd_residual": (dict(tebd_dim=4), {}),  # tebd_dim == 2 * ntypes: doubled residual in the type net
    "no_output_tebd": (dict(concat_output_tebd=False), {}),
    "gelu": (dict(activation_function="gelu"), {}),
    "exclude": (dict(exclude_types=[[0, 1]]), {}),
    "exclude_strip": (dict(exclude_types=[[1, 1]], tebd_input_mode="strip"), {}),
    "three_layers": (dict(attn_layer=3, attn=6, neuron=[4, 8, 16]), {}),
}


@pytest.mark.parametrize("regime", ["pad", "trunc"])
@pytest.mark.parametrize("case", sorted(OPTION_CASES))
def test_forward_options(case, regime):
    kw, ref_kwargs = OPTION_CASES[case]
    kw = dict(kw)
    kw.setdefault("smooth_type_embedding", True)
    check_forward("s40", regime, ref_kwargs=ref_kwargs, **kw)


def test_fused_matches_pairwise_dense():
    """The two attention implementations agree with each other in dense semantics."""
    coords, atype, cell = _SYSTEMS["s40"]
    for regime in ("pad", "trunc"):
        for smooth in (False, True):
            d = make_descr(sel_for("s40", regime), smooth_type_embedding=smooth, attn_dotr=True)
            a = graph_forward(d, coords, atype, cell, impl="fused")
            b = graph_forward(d, coords, atype, cell, impl="pairwise")
            assert_rel_close(a, b, FWD_RTOL, f"fused vs pairwise {regime} smooth={smooth}")


def test_from_dense_nlist_graph_matches_reference():
    """A graph converted from the oracle's own (truncated, padded) nlist gives the same numbers."""
    coords, atype, cell = _SYSTEMS["s32"]
    for regime in ("pad", "trunc"):
        for smooth in (False, True):
            d = make_descr(sel_for("s32", regime), smooth_type_embedding=smooth, tebd_input_mode="strip")
            coord_ext, mapping = extended_system(coords, cell, RCUT)
            nlist, _ = dense_nlist(coord_ext, coords.shape[0], RCUT, d.nnei)
            atype_ext = atype[mapping]
            ref = dense_se_atten(d, coord_ext, atype_ext, nlist)
            g = from_dense_nlist(coord_ext[None], atype_ext[None], nlist[None], mapping=mapping[None])
            out = d(g.atype, g.src, g.dst, g.edge_vec, g.edge_mask)
            assert_rel_close(out, ref, FWD_RTOL, f"from_dense_nlist {regime} smooth={smooth}")


# ------------------------------------------------------- carry-all vs dense
@pytest.mark.parametrize("mode", ["concat", "strip"])
def test_carry_all_differs_from_dense_when_smooth_and_padded(mode):
    """Smooth softmax: each padded slot adds exp(-20) to the denominator in dense semantics only."""
    coords, atype, cell = _SYSTEMS["s32"]
    d = make_descr(sel_for("s32", "pad"), smooth_type_embedding=True, tebd_input_mode=mode)
    with torch.no_grad():
        d.davg.zero_()  # isolate the softmax phantom terms from the padded-slot R terms
    dense = graph_forward(d, coords, atype, cell, semantics="dense")
    carry = graph_forward(d, coords, atype, cell, semantics="carry-all")
    ref, _ = dense_descriptor_from_coords(d, coords, atype, cell)
    assert_rel_close(dense, ref, FWD_RTOL, "dense")
    diff = rel_err(carry, dense)
    # the phantom terms add (sel - deg) e^-20 to denominators that are themselves small when
    # sw << 1 (rcut_smth = 0.5 here): a clear, far-above-rounding but sub-percent effect
    assert 1e-11 < diff < 1e-2, diff
    assert rel_err(carry, ref) > 1e-11


@pytest.mark.parametrize("dotr", [False, True])
@pytest.mark.parametrize("mode", ["concat", "strip"])
def test_carry_all_equals_dense_without_smooth(mode, dotr):
    coords, atype, cell = _SYSTEMS["s32"]
    deg_max = int(_DEGREES["s32"].max())
    for sel in (deg_max, deg_max + 9):  # sel >= max degree: nothing truncated
        d = make_descr(sel, smooth_type_embedding=False, tebd_input_mode=mode, attn_dotr=dotr)
        with torch.no_grad():
            d.davg.zero_()  # padded slots with davg != 0 exist only in the dense layout
        dense = graph_forward(d, coords, atype, cell, semantics="dense")
        carry = graph_forward(d, coords, atype, cell, semantics="carry-all")
        assert_rel_close(carry, dense, FWD_RTOL, f"carry-all vs dense sel={sel}")
        ref, _ = dense_descriptor_from_coords(d, coords, atype, cell)
        assert_rel_close(carry, ref, FWD_RTOL, f"carry-all vs reference sel={sel}")


# ------------------------------------------------------------------ forces
def _forces_graph(d, coords, atype, cell, weight):
    x = coords.clone().requires_grad_(True)
    g = build_graph(coords, atype, cell, rcut=RCUT)
    shift = g.edge_vec - (coords[g.src] - coords[g.dst])  # lattice shifts (0 on padding edges)
    ev = x[g.src] - x[g.dst] + shift
    e = (d(g.atype, g.src, g.dst, ev, g.edge_mask) * weight).sum()
    (grad,) = torch.autograd.grad(e, x)
    return -grad, e.detach()


def _forces_reference(d, coords, atype, cell, weight):
    x = coords.clone().requires_grad_(True)
    desc, _ = dense_descriptor_from_coords(d, x, atype, cell)
    e = (desc * weight).sum()
    (grad,) = torch.autograd.grad(e, x)
    return -grad, e.detach()


@pytest.mark.parametrize("regime", ["pad", "trunc"])
@pytest.mark.parametrize("mode", ["concat", "strip"])
@pytest.mark.parametrize("smooth", [False, True])
def test_forces_match_reference(smooth, mode, regime):
    coords, atype, cell = _SYSTEMS["s24"]
    d = make_descr(sel_for("s24", regime), smooth_type_embedding=smooth, tebd_input_mode=mode, attn_dotr=True)
    gen = torch.Generator().manual_seed(77)
    weight = torch.randn(coords.shape[0], d.dim_out, generator=gen, dtype=torch.float64)
    f_ref, e_ref = _forces_reference(d, coords, atype, cell, weight)
    assert float(f_ref.abs().max()) > 1e-3  # a non-trivial functional
    for impl in ("fused", "pairwise"):
        d.attention_impl = impl
        f_g, e_g = _forces_graph(d, coords, atype, cell, weight)
        assert abs(float(e_g - e_ref)) <= FWD_RTOL * max(1.0, abs(float(e_ref)))
        assert_rel_close(f_g, f_ref, FORCE_RTOL, f"forces {impl}")
        assert float((f_g - f_ref).abs().max()) <= FORCE_RTOL * max(1.0, float(f_ref.abs().max()))


# ------------------------------------------------------- nonzero davg
@pytest.mark.parametrize("mode", ["concat", "strip"])
@pytest.mark.parametrize("smooth", [False, True])
def test_nonzero_davg_padded_slots_reproduced(mode, smooth):
    """deepmd-kit's padded slots carry (0 - davg)/dstd into G and R^T G; dense semantics
    reproduces them, carry-all leaves them out (a documented, large difference)."""
    coords, atype, cell = _SYSTEMS["s24"]
    d = make_descr(sel_for("s24", "pad"), smooth_type_embedding=smooth, tebd_input_mode=mode)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        d.davg.copy_(0.3 * torch.randn(d.davg.shape, generator=gen, dtype=torch.float64))
    ref, _ = dense_descriptor_from_coords(d, coords, atype, cell)
    assert_rel_close(graph_forward(d, coords, atype, cell), ref, FWD_RTOL, "davg != 0 with padding")
    assert rel_err(graph_forward(d, coords, atype, cell, semantics="carry-all"), ref) > 1e-3


# -------------------------------------------------------------- edge cases
@pytest.mark.parametrize("mode", ["concat", "strip"])
@pytest.mark.parametrize("smooth", [False, True])
@pytest.mark.parametrize("exclude", [[], [[1, 1]]])
def test_sparse_system_edge_cases(exclude, smooth, mode):
    """Isolated atom (no neighbor at all), small clusters, and with exclude_types=[[1, 1]] a
    type-1 center whose only neighbor is excluded (and a type-1 pair excluded both ways)."""
    coords = torch.tensor(
        [[1.0, 1, 1], [2.2, 1, 1], [1, 2.3, 1], [8, 8, 8], [8.0, 9.5, 8], [14, 3, 14]], dtype=torch.float64
    )
    atype = torch.tensor([0, 1, 0, 1, 1, 0])
    cell = torch.eye(3, dtype=torch.float64) * 18.0
    d = make_descr(4, smooth_type_embedding=smooth, exclude_types=exclude, tebd_input_mode=mode)
    gen = torch.Generator().manual_seed(5)
    weight = torch.randn(coords.shape[0], d.dim_out, generator=gen, dtype=torch.float64)
    ref, deg = dense_descriptor_from_coords(d, coords, atype, cell)
    assert int(deg.min()) == 0
    f_ref, _ = _forces_reference(d, coords, atype, cell, weight)
    for impl in ("fused", "pairwise"):
        d.attention_impl = impl
        assert_rel_close(graph_forward(d, coords, atype, cell), ref, FWD_RTOL, f"edge cases {impl}")
        f_g, _ = _forces_graph(d, coords, atype, cell, weight)
        assert_rel_close(f_g, f_ref, FORCE_RTOL, f"edge-case forces {impl}")
