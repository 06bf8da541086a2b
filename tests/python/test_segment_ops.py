"""Tests for dpgraph.ops: segment reductions and the envelope-gated softmax."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch

from dpgraph.ops import envelope_gated_softmax, segment_max, segment_sum

sys.path.insert(0, str(Path(__file__).parent))
from segment_reference import envelope_gated_softmax_padded, segment_softmax  # noqa: E402


F_, H_ = 3, 2
EPS = 1e-3


# --------------------------------------------------------------- references
def _rand_case(E=23, n=7, feat=(F_, H_), seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    seg = torch.randint(0, n - 2, (E,), generator=g)  # segments n-2, n-1 empty
    seg[seg == 1] = 0  # segment 1 empty too
    data = torch.randn((E,) + feat, generator=g, dtype=dtype) * 3
    return data, seg, n, g


def _naive_sum(data, seg, n):
    out = torch.zeros((n,) + tuple(data.shape[1:]), dtype=torch.float64)
    for e in range(data.shape[0]):
        out[int(seg[e])] += data[e].double()
    return out


def _full_mask(mask, like):
    m = mask.bool()
    while m.dim() < like.dim():
        m = m.unsqueeze(-1)
    return m.expand_as(like)


def _naive_max(data, seg, n, mask=None):
    data = data.double()
    flat = data.reshape(data.shape[0], -1)
    valid = (
        torch.ones_like(flat, dtype=torch.bool)
        if mask is None
        else _full_mask(mask, data).reshape(flat.shape)
    )
    out = torch.zeros(n, flat.shape[1], dtype=torch.float64)
    for k in range(n):
        for f in range(flat.shape[1]):
            vals = [float(flat[e, f]) for e in range(flat.shape[0]) if int(seg[e]) == k and valid[e, f]]
            out[k, f] = max(vals) if vals else 0.0
    return out.reshape((n,) + tuple(data.shape[1:]))


def _naive_softmax(logits, seg, n, mask=None):
    logits = logits.double()
    flat = logits.reshape(logits.shape[0], -1)
    valid = (
        torch.ones_like(flat, dtype=torch.bool)
        if mask is None
        else _full_mask(mask, logits).reshape(flat.shape)
    )
    out = torch.zeros_like(flat)
    for k in range(n):
        for f in range(flat.shape[1]):
            idx = [e for e in range(flat.shape[0]) if int(seg[e]) == k and valid[e, f]]
            if not idx:
                continue
            mx = max(float(flat[e, f]) for e in idx)
            z = sum(math.exp(float(flat[e, f]) - mx) for e in idx)
            for e in idx:
                out[e, f] = math.exp(float(flat[e, f]) - mx) / z
    return out.reshape(logits.shape)


def _naive_envelope(logits, env, dst, n, z_bias_raw, eps, src_weight=None, edge_mask=None):
    """Literal float64 formula: w e^l / (zeta + eps + sum w e^l)."""
    logits = logits.double()
    w = env.double().reshape(-1) ** 2
    if src_weight is not None:
        w = w * src_weight.double().reshape(-1)
    if edge_mask is not None:
        w = torch.where(edge_mask.reshape(-1).bool(), w, torch.zeros_like(w))
    c = torch.nn.functional.softplus(z_bias_raw.double()) + eps
    out = torch.zeros_like(logits)
    for k in range(n):
        idx = [e for e in range(logits.shape[0]) if int(dst[e]) == k and w[e] > 0]
        if not idx:
            continue
        den = c.clone()
        for e in idx:
            den = den + w[e] * torch.exp(logits[e])
        for e in idx:
            out[e] = w[e] * torch.exp(logits[e]) / den
    return out


def _env_case(E=19, n=6, seed=1, dtype=torch.float64, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    dst = torch.randint(0, n - 1, (E,), generator=g)  # node n-1 has no edges
    logits = (torch.randn(E, F_, H_, generator=g) * scale).to(dtype)
    env = (torch.rand(E, generator=g) * 0.9 + 0.1).to(dtype)
    z = torch.randn(F_, H_, generator=g).to(dtype)
    sw = (torch.rand(E, 1, generator=g) * 0.9 + 0.1).to(dtype)
    mask = torch.rand(E, generator=g) > 0.25
    return logits, env, dst, n, z, sw, mask


# ------------------------------------------------------------- segment_sum
def test_segment_sum_matches_loop():
    data, seg, n, _ = _rand_case()
    out = segment_sum(data, seg, n)
    assert out.shape == (n, F_, H_)
    torch.testing.assert_close(out, _naive_sum(data, seg, n))
    assert torch.all(out[[1, n - 2, n - 1]] == 0)


def test_segment_sum_grad():
    data, seg, n, _ = _rand_case(E=9, n=4, feat=(2,))
    data.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda d: segment_sum(d, seg, n), (data,))


# ------------------------------------------------------------- segment_max
@pytest.mark.parametrize("mask_kind", [None, "edge", "full"])
def test_segment_max_matches_loop(mask_kind):
    data, seg, n, g = _rand_case()
    mask = None
    if mask_kind == "edge":
        mask = torch.rand(data.shape[0], generator=g) > 0.3
        mask[seg == 2] = False  # segment 2 fully masked
    elif mask_kind == "full":
        mask = torch.rand(data.shape, generator=g) > 0.3
    out = segment_max(data, seg, n, mask)
    torch.testing.assert_close(out, _naive_max(data, seg, n, mask))
    assert torch.isfinite(out).all()
    assert torch.all(out[[1, n - 2, n - 1]] == 0)
    if mask_kind == "edge":
        assert torch.all(out[2] == 0)


def test_segment_max_ignores_extreme_masked():
    data = torch.tensor([1.0, 2.0, 1e30, float("inf"), float("nan"), -5.0], dtype=torch.float64)
    seg = torch.tensor([0, 0, 0, 1, 1, 2])
    mask = torch.tensor([True, True, False, False, False, True])
    out = segment_max(data, seg, 4, mask)
    torch.testing.assert_close(out, torch.tensor([2.0, 0.0, -5.0, 0.0], dtype=torch.float64))


# --------------------------------------------------------- segment_softmax
@pytest.mark.parametrize("mask_kind", [None, "edge", "edge_col", "full"])
def test_segment_softmax_matches_loop(mask_kind):
    logits, seg, n, g = _rand_case()
    mask = None
    if mask_kind in ("edge", "edge_col"):
        mask = torch.rand(logits.shape[0], generator=g) > 0.3
        mask[seg == 2] = False
        if mask_kind == "edge_col":
            mask = mask.unsqueeze(1).float()  # (E, 1) numeric mask
    elif mask_kind == "full":
        mask = torch.rand(logits.shape, generator=g) > 0.3
    out = segment_softmax(logits, seg, n, mask)
    assert out.shape == logits.shape
    ref = _naive_softmax(logits, seg, n, mask)
    torch.testing.assert_close(out, ref)
    if mask is not None:
        fm = _full_mask(mask, logits)
        assert torch.all(out[~fm] == 0)
    # unmasked entries of every non-empty (segment, feature) sum to one
    sums = segment_sum(out, seg, n)
    valid_cnt = segment_sum(
        (torch.ones_like(logits) if mask is None else _full_mask(mask, logits).double()), seg, n
    )
    torch.testing.assert_close(sums[valid_cnt > 0], torch.ones_like(sums[valid_cnt > 0]))
    assert torch.all(sums[valid_cnt == 0] == 0)


def test_segment_softmax_1d_and_float32():
    logits, seg, n, g = _rand_case(feat=(), dtype=torch.float32)
    logits = logits * 30  # exp would overflow float32 without the shift
    mask = torch.rand(logits.shape[0], generator=g) > 0.2
    out = segment_softmax(logits, seg, n, mask)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.double(), _naive_softmax(logits, seg, n, mask), atol=1e-6, rtol=1e-5)


def test_segment_softmax_all_masked_and_empty():
    logits = torch.randn(5, F_, H_, dtype=torch.float64)
    seg = torch.tensor([0, 0, 2, 2, 2])
    mask = torch.zeros(5, dtype=torch.bool)
    out = segment_softmax(logits, seg, 4, mask)
    assert torch.all(out == 0)
    out = segment_softmax(logits[:0], seg[:0], 4)
    assert out.shape == (0, F_, H_)


@pytest.mark.parametrize("bad", [1e30, float("inf"), float("nan")])
def test_segment_softmax_extreme_masked_regression(bad):
    # masked logit far above the unmasked max (or inf / nan) must not leak
    logits = torch.tensor([[0.5, -1.0], [2.0, 3.0], [1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    logits[2] = 3.0 + bad  # 1e30 above the max, or inf, or nan
    logits = logits.requires_grad_(True)
    seg = torch.tensor([0, 0, 0, 1])
    mask = torch.tensor([True, True, False, False])  # segment 1 fully masked
    out = segment_softmax(logits, seg, 2, mask)
    assert torch.isfinite(out).all()
    assert torch.all(out[2:] == 0)
    torch.testing.assert_close(out[:2].sum(0), torch.ones(2, dtype=torch.float64))
    ref = torch.softmax(logits.detach()[:2], dim=0)
    torch.testing.assert_close(out[:2], ref)
    (out * torch.randn_like(out)).sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert torch.all(logits.grad[2:] == 0)


def test_segment_softmax_gradcheck():
    logits, seg, n, g = _rand_case(E=10, n=5, feat=(2, 2))
    mask = torch.rand(10, generator=g) > 0.3
    mask[seg == 2] = False
    full = torch.rand(logits.shape, generator=g) > 0.3
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: segment_softmax(x, seg, n, mask), (logits,))
    assert torch.autograd.gradcheck(lambda x: segment_softmax(x, seg, n, full), (logits,))
    assert torch.autograd.gradcheck(lambda x: segment_softmax(x, seg, n), (logits,))


def test_segment_softmax_gradcheck_with_extreme_masked():
    logits = torch.randn(6, 2, dtype=torch.float64)
    logits[1, 0] = 1e30
    logits[3, 1] = float("inf")
    logits[4] = float("nan")
    seg = torch.tensor([0, 0, 0, 1, 1, 1])
    mask = torch.ones(6, 2, dtype=torch.bool)
    mask[1, 0] = mask[3, 1] = False
    mask[4] = False
    logits.requires_grad_(True)
    out = segment_softmax(logits, seg, 2, mask)
    assert torch.isfinite(out).all()
    assert torch.autograd.gradcheck(lambda x: segment_softmax(x, seg, 2, mask), (logits,))
    # second order also finite
    (gx,) = torch.autograd.grad((out**2).sum(), logits, create_graph=True)
    (ggx,) = torch.autograd.grad(gx.sum(), logits)
    assert torch.isfinite(gx).all() and torch.isfinite(ggx).all()


# ------------------------------------------------------ envelope softmax
@pytest.mark.parametrize("use_sw,use_mask", [(False, False), (True, False), (False, True), (True, True)])
def test_envelope_matches_naive(use_sw, use_mask):
    logits, env, dst, n, z, sw, mask = _env_case()
    sw = sw if use_sw else None
    mask = mask if use_mask else None
    out = envelope_gated_softmax(logits, env, dst, n, z, EPS, sw, mask)
    assert out.shape == logits.shape
    ref = _naive_envelope(logits, env, dst, n, z, EPS, sw, mask)
    torch.testing.assert_close(out, ref)
    if mask is not None:
        assert torch.all(out[~mask] == 0)
    # gated: per-destination sums are < 1
    sums = segment_sum(out, dst, n)
    assert torch.all(sums < 1) and torch.all(sums[n - 1] == 0)


def test_envelope_env_column_and_numeric_mask():
    logits, env, dst, n, z, sw, mask = _env_case(seed=3)
    a = envelope_gated_softmax(logits, env, dst, n, z, EPS, sw, mask)
    b = envelope_gated_softmax(logits, env.unsqueeze(1), dst, n, z, EPS, sw.reshape(-1), mask.double().unsqueeze(1))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_envelope_src_weight_zero_removes_edge():
    logits, env, dst, n, z, sw, _ = _env_case(seed=4)
    drop = torch.tensor([0, 5, 11])
    sw0 = sw.clone()
    sw0[drop] = 0.0
    out = envelope_gated_softmax(logits, env, dst, n, z, EPS, sw0)
    assert torch.all(out[drop] == 0)
    keep = torch.ones(logits.shape[0], dtype=torch.bool)
    keep[drop] = False
    ref = envelope_gated_softmax(logits[keep], env[keep], dst[keep], n, z, EPS, sw[keep])
    torch.testing.assert_close(out[keep], ref)
    # mask has the same effect as src_weight = 0
    out_m = envelope_gated_softmax(logits, env, dst, n, z, EPS, sw, keep)
    torch.testing.assert_close(out_m, out)


def test_envelope_padded_equals_edge_list():
    n, nnei = 5, 4
    g = torch.Generator().manual_seed(7)
    E = n * nnei
    logits = torch.randn(E, F_, H_, generator=g, dtype=torch.float64)
    env = torch.rand(E, 1, generator=g, dtype=torch.float64)
    sw = torch.rand(E, generator=g, dtype=torch.float64)
    mask = torch.rand(E, generator=g) > 0.3
    mask[2 * nnei : 3 * nnei] = False  # node 2: all slots padded
    logits[~mask] = float("nan")  # padded slots carry garbage
    z = torch.randn(F_, H_, generator=g, dtype=torch.float64)
    out_p = envelope_gated_softmax_padded(logits, env, n, z, EPS, sw, mask)
    dst = torch.arange(n).repeat_interleave(nnei)
    out_e = envelope_gated_softmax(logits, env, dst, n, z, EPS, sw, mask)
    torch.testing.assert_close(out_p, out_e, rtol=0, atol=0)
    assert torch.isfinite(out_p).all() and torch.all(out_p[~mask] == 0)
    # compacted edge list (padding removed) gives the same values
    out_c = envelope_gated_softmax(logits[mask], env[mask], dst[mask], n, z, EPS, sw[mask])
    torch.testing.assert_close(out_p[mask], out_c)
    torch.testing.assert_close(out_p[mask], _naive_envelope(logits[mask], env[mask], dst[mask], n, z, EPS, sw[mask]))
    with pytest.raises(ValueError):
        envelope_gated_softmax_padded(logits[:-1], env[:-1], n, z, EPS)


def test_envelope_extreme_logits_limits():
    z = torch.zeros(1, 1, dtype=torch.float64)
    c = math.log(2.0) + EPS
    env = torch.tensor([1.0, 0.5, 1.0, 1.0, 0.8, 1.0], dtype=torch.float64)
    w = env**2
    dst = torch.tensor([0, 0, 1, 1, 2, 2])
    big = 1e4
    logits = torch.tensor([big, big - 1.0, -big, -big + 1.0, big, -big], dtype=torch.float64)
    logits = logits.reshape(-1, 1, 1).requires_grad_(True)
    out = envelope_gated_softmax(logits, env, dst, 3, z, EPS)
    assert torch.isfinite(out).all()
    # node 0: bias negligible -> weighted softmax
    e0 = torch.tensor([w[0] * 1.0, w[1] * math.exp(-1.0)])
    ref0 = e0 / e0.sum()
    torch.testing.assert_close(out[:2, 0, 0], ref0.double())
    # node 1: numerators underflow against the bias -> 0
    assert torch.all(out[2:4] == 0)
    # node 2: the +big edge takes everything, the -big edge nothing
    torch.testing.assert_close(out[4, 0, 0], torch.tensor(1.0, dtype=torch.float64))
    assert out[5, 0, 0] == 0
    (out * torch.randn_like(out)).sum().backward()
    assert torch.isfinite(logits.grad).all()
    # moderate-but-large logits: exact against the literal float64 formula
    mod = torch.tensor([30.0, 29.0, -30.0, -25.0, 5.0, -700.0], dtype=torch.float64).reshape(-1, 1, 1)
    torch.testing.assert_close(
        envelope_gated_softmax(mod, env, dst, 3, z, EPS), _naive_envelope(mod, env, dst, 3, z, EPS)
    )
    # node 1 at moderate negative logits: tiny but nonzero, correct ratio to c
    v = envelope_gated_softmax(mod, env, dst, 3, z, EPS)[2, 0, 0]
    torch.testing.assert_close(v, torch.tensor(math.exp(-30.0) / (c + math.exp(-30.0) + math.exp(-25.0)), dtype=torch.float64))


def test_envelope_float32_large_logits():
    logits, env, dst, n, z, sw, mask = _env_case(seed=5, scale=60.0)  # exp overflows float32
    out = envelope_gated_softmax(logits.float(), env.float(), dst, n, z.float(), EPS, sw.float(), mask)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    ref = _naive_envelope(logits, env, dst, n, z, EPS, sw, mask)
    torch.testing.assert_close(out.double(), ref, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("bad", [1e30, float("inf"), float("nan"), -float("inf")])
def test_envelope_extreme_masked(bad):
    logits, env, dst, n, z, sw, mask = _env_case(seed=6)
    mask[dst == 2] = False  # a fully masked destination
    logits = logits.clone()
    logits[~mask] = bad
    env = env.clone()
    env[~mask] = bad if bad == bad else float("nan")  # garbage envelope too
    for t in (logits, env, z, sw):
        t.requires_grad_(True)
    out = envelope_gated_softmax(logits, env, dst, n, z, EPS, sw, mask)
    assert torch.isfinite(out).all()
    assert torch.all(out[~mask] == 0)
    clean = _naive_envelope(
        logits.detach()[mask], env.detach()[mask], dst[mask], n, z.detach(), EPS, sw.detach()[mask]
    )
    torch.testing.assert_close(out[mask], clean)
    (out * torch.randn_like(out)).sum().backward()
    for t in (logits, env, z, sw):
        assert torch.isfinite(t.grad).all()
    assert torch.all(logits.grad[~mask] == 0)


def test_envelope_gradcheck():
    logits, env, dst, n, z, sw, mask = _env_case(E=9, n=4, seed=8)
    logits[~mask] = 1e30
    for t in (logits, env, z, sw):
        t.requires_grad_(True)
    fn = lambda l, e, zz, s: envelope_gated_softmax(l, e, dst, n, zz, EPS, s, mask)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (logits, env, z, sw))
    fn2 = lambda l, e, zz: envelope_gated_softmax(l, e, dst, n, zz, EPS)  # noqa: E731
    assert torch.autograd.gradcheck(fn2, (logits.detach().clamp(max=5).requires_grad_(), env, z))


# ------------------------------------------------------------- tracing
def test_make_fx_symbolic_traces():
    from torch.fx.experimental.proxy_tensor import make_fx

    n = 6
    logits, seg, _, g = _rand_case(E=17, n=n)
    mask = torch.rand(17, generator=g) > 0.3
    gm = make_fx(lambda l, s, m: segment_softmax(l, s, n, m), tracing_mode="symbolic")(logits, seg, mask)
    l2, s2, _, g2 = _rand_case(E=29, n=n, seed=3)
    m2 = torch.rand(29, generator=g2) > 0.3
    l2[~m2] = float("nan")
    torch.testing.assert_close(gm(l2, s2, m2), segment_softmax(l2, s2, n, m2), rtol=0, atol=0)

    lg, env, dst, nn_, z, sw, mk = _env_case()
    fn = lambda l, e, d, zz, s, m: envelope_gated_softmax(l, e, d, nn_, zz, EPS, s, m)  # noqa: E731
    gm2 = make_fx(fn, tracing_mode="symbolic")(lg, env, dst, z, sw, mk)
    lg2, env2, dst2, _, z2, sw2, mk2 = _env_case(E=31, seed=9)
    lg2[~mk2] = 1e30
    torch.testing.assert_close(
        gm2(lg2, env2, dst2, z2, sw2, mk2), fn(lg2, env2, dst2, z2, sw2, mk2), rtol=0, atol=0
    )
    ops = {str(node.target) for node in gm2.graph.nodes if node.op == "call_function"}
    assert not any("nonzero" in o or "item" in o or "local_scalar" in o for o in ops)


def test_torch_export_dynamic_edges():
    from torch.export import Dim, export

    n = 6

    class M(torch.nn.Module):
        def forward(self, l, e, d, zz, s, m):
            return envelope_gated_softmax(l, e, d, n, zz, EPS, s, m)

    lg, env, dst, _, z, sw, mk = _env_case(E=19, n=n)
    E = Dim("E", min=2)
    shapes = ({0: E}, {0: E}, {0: E}, None, {0: E}, {0: E})
    ep = export(M(), (lg, env, dst, z, sw, mk), dynamic_shapes=shapes)
    lg2, env2, dst2, _, z2, sw2, mk2 = _env_case(E=40, n=n, seed=11)
    torch.testing.assert_close(
        ep.module()(lg2, env2, dst2, z2, sw2, mk2), M()(lg2, env2, dst2, z2, sw2, mk2), rtol=0, atol=0
    )
