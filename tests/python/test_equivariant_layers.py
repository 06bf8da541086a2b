"""Equivariant building blocks: real spherical harmonics, Gaunt tensor, ChannelLinear,
FocusLinear, SO3Linear (deepmd-kit's dpa4_nn.so3 semantics), GauntProduct, the gated
feed-forward and the equivariant attention (e3x MultiHeadAttention semantics with deepmd-kit's
dpa4_nn.attention envelope-gated softmax as the normaliser).

Wigner D-matrices come from e3nn through an orthogonal change of basis
(``wigner_reference``). Everything is fp64 and tiny; the module runs in seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dpgraph.nn import ChannelLinear, EquivariantAttention, FocusLinear, GatedFeedForward, GauntProduct, SO3Linear
from dpgraph.ops.spherical import degree_index, gaunt_tensor, n_sph, real_sph_harm

from wigner_reference import basis_change, random_rotation, wigner_d

TOL = 1e-12
pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad:UserWarning")


def _unit(n: int, seed: int) -> torch.Tensor:
    u = torch.randn(n, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return u / u.norm(dim=1, keepdim=True)


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _rotate(x: torch.Tensor, d: np.ndarray, dim: int = 1) -> torch.Tensor:
    """Apply D (K, K) on axis ``dim`` of x."""
    return torch.movedim(torch.tensordot(torch.from_numpy(d), torch.movedim(x, dim, 0), dims=1), 0, dim)


# ------------------------------------------------------------ harmonics
@pytest.mark.parametrize("l", [0, 1, 2, 3])
def test_sph_normalization_and_e3nn_basis(l):
    u = _unit(50, l)
    y = real_sph_harm(u, 3)[:, l * l:(l + 1) ** 2]
    assert float((y.square().sum(1) - (2 * l + 1)).abs().max()) < TOL  # component normalization
    q, resid, ortho = basis_change(l)
    assert resid < 1e-12 and ortho < 1e-12, (resid, ortho)  # same space as e3nn's, orthogonal basis change
    for seed in range(3):
        for reflect in (False, True):
            rot = random_rotation(seed, reflect)
            yr = real_sph_harm(u @ torch.from_numpy(rot).T, 3)
            want = _rotate(real_sph_harm(u, 3), wigner_d(rot, 3))
            assert float((yr - want).abs().max()) < TOL


def test_sph_l1_is_the_direction():
    u = _unit(5, 9)
    y = real_sph_harm(u, 1)
    assert torch.allclose(y[:, 1:], math.sqrt(3.0) * u[:, [1, 2, 0]], atol=0, rtol=1e-15)


def test_gaunt_tensor():
    g = gaunt_tensor(3)
    k = n_sph(3)
    deg = degree_index(3)
    assert torch.allclose(g[0], torch.eye(k, dtype=torch.float64), atol=TOL)  # Y_00 = 1
    for perm in [(1, 0, 2), (0, 2, 1), (2, 1, 0)]:
        assert torch.allclose(g, g.permute(*perm), rtol=0, atol=TOL)
    la, lb, lc = deg[:, None, None], deg[None, :, None], deg[None, None, :]
    forbidden = ((la + lb + lc) % 2 == 1) | (lc > la + lb) | (lc < (la - lb).abs())
    assert float(g[forbidden].abs().max()) == 0.0
    u = _unit(40, 3)
    y = real_sph_harm(u, 3)
    for a in range(k):
        for b in range(k):
            if deg[a] + deg[b] <= 3:  # the product lies in the span: exact expansion
                assert float((y[:, a] * y[:, b] - y @ g[a, b]).abs().max()) < TOL


# ------------------------------------------------------------ linear maps
def test_channel_linear():
    lin = ChannelLinear(5, 3, bias=True, init_std=0.3, generator=torch.Generator().manual_seed(0))
    assert lin.weight.shape == (5, 3) and lin.bias.shape == (3,)
    assert float(lin.bias.detach().abs().max()) == 0.0  # init_std given: normal weights, zero bias
    x = _rand(4, 2, 5)
    assert torch.allclose(lin(x), x @ lin.weight + lin.bias, rtol=0, atol=0)
    zero = ChannelLinear(5, 3, init_std=0.0)
    assert float(zero(x).abs().max()) == 0.0
    default = ChannelLinear(400, 7)  # default: uniform(+-1/sqrt(in)), as torch.nn.Linear
    assert float(default.weight.detach().abs().max()) <= 1 / 20 and float(default.bias.detach().abs().max()) > 0


def test_focus_linear():
    lin = FocusLinear(4, 3, n_focus=2, generator=torch.Generator().manual_seed(1))
    assert lin.weight.shape == (4, 6) and lin.bias.shape == (6,)
    x = _rand(5, 7, 2, 4)
    y = lin(x)
    assert y.shape == (5, 7, 2, 3)
    w, b = lin.weight.view(4, 2, 3), lin.bias.view(2, 3)
    for f in range(2):
        assert torch.allclose(y[..., f, :], x[..., f, :] @ w[:, f] + b[f], rtol=0, atol=1e-14)
    shared = lin(x[..., :1, :])  # a single focus stream is broadcast to all streams
    assert torch.allclose(shared[..., 1, :], x[..., 0, :] @ w[:, 1] + b[1], atol=1e-14)
    assert float(FocusLinear(4, 3, 2, init_std=0.0)(x).abs().max()) == 0.0


def _so3_loop_reference(lin: SO3Linear, x: torch.Tensor) -> torch.Tensor:
    """Per-degree loop, the plain formula the vectorized layer must reproduce."""
    w = lin.weight.view(lin.lmax + 1, lin.in_channels, lin.n_focus, lin.out_channels)
    out = []
    for l in range(lin.lmax + 1):
        y = torch.einsum("nmfi,ifo->nmfo", x[:, l * l:(l + 1) ** 2], w[l])
        if l == 0 and lin.bias is not None:
            y = y + lin.bias.view(lin.n_focus, lin.out_channels)
        out.append(y)
    return torch.cat(out, 1)


@pytest.mark.parametrize("lmax", [0, 1, 2, 3])
def test_so3linear(lmax):
    lin = SO3Linear(lmax, 3, 4, n_focus=2, mlp_bias=True, generator=torch.Generator().manual_seed(lmax))
    with torch.no_grad():
        lin.bias.normal_()
    assert lin.weight.shape == (lmax + 1, 3, 8) and lin.bias.shape == (8,)
    k = n_sph(lmax)
    x = _rand(6, k, 2, 3, seed=lmax)
    y = lin(x)
    assert y.shape == (6, k, 2, 4)
    assert torch.allclose(y, _so3_loop_reference(lin, x), rtol=0, atol=1e-13)
    # commutes with rotations and with the inversion
    for seed, reflect in [(0, False), (1, False), (2, True)]:
        d = wigner_d(random_rotation(seed, reflect), lmax)
        assert float((lin(_rotate(x, d)) - _rotate(y, d)).abs().max()) < TOL
    # bias on l = 0 only
    if lmax:
        assert float(lin(torch.zeros_like(x))[:, 1:].abs().max()) == 0.0
    # zero init: zero output (no bias by default)
    zero = SO3Linear(lmax, 3, 4, n_focus=2, init_std=0.0)
    assert zero.bias is None and float(zero(x).abs().max()) == 0.0


def test_so3linear_init_std():
    lin = SO3Linear(2, 64, 64, n_focus=2, init_std=0.05, generator=torch.Generator().manual_seed(0))
    assert abs(float(lin.weight.detach().std()) - 0.05) < 0.003
    default = SO3Linear(2, 64, 64, generator=torch.Generator().manual_seed(0))
    assert float(default.weight.detach().abs().max()) <= 2 / 8 + 1e-12  # truncated at 2 std, std = 1/sqrt(C_in)


# ------------------------------------------------------------ products, gates
@pytest.mark.parametrize("lmax", [1, 2, 3])
def test_gaunt_product_and_gate_equivariant(lmax):
    gen = torch.Generator().manual_seed(lmax)
    k = n_sph(lmax)
    tp = GauntProduct(lmax)
    with torch.no_grad():
        tp.path_weight.normal_(generator=gen)
    x, u, radial = _rand(7, k, 2, 3, seed=1), _unit(7, 2), _rand(7, lmax + 1, 2, 3, seed=3)
    y = tp(x, real_sph_harm(u, lmax), radial)
    ffn = GatedFeedForward(lmax, 3, 5, n_focus=2, generator=gen)
    z = ffn(x)
    for seed, reflect in [(4, False), (5, True)]:
        rot = random_rotation(seed, reflect)
        d = wigner_d(rot, lmax)
        yr = tp(_rotate(x, d), real_sph_harm(u @ torch.from_numpy(rot).T, lmax), radial)
        assert float((yr - _rotate(y, d)).abs().max()) < TOL
        assert float((ffn(_rotate(x, d)) - _rotate(z, d)).abs().max()) < TOL
    # a scalar feature times Y gives every degree: x[0] Y_k
    x0 = torch.zeros(7, k, 2, 3, dtype=torch.float64)
    x0[:, 0] = 1.0
    plain = GauntProduct(lmax)(x0, real_sph_harm(u, lmax))
    assert torch.allclose(plain[:, :, 0, 0], real_sph_harm(u, lmax), atol=1e-14)


# ------------------------------------------------------------ attention
def _attention_setup(lmax=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    att = EquivariantAttention(lmax, channels=4, n_focus=2, n_heads=2, radial_dim=3, generator=gen)
    with torch.no_grad():
        att.z_bias_raw.normal_(generator=gen)
        att.degree_weight.uniform_(0.5, 1.5, generator=gen)
        att.o.bias.normal_(generator=gen)
    n = 5  # node 4 has no real incoming edge
    dst = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 0, 0])
    src = torch.tensor([1, 2, 3, 0, 4, 1, 0, 1, 2, 4, 0, 0])
    mask = torch.ones(12, dtype=torch.bool)
    mask[-2:] = False
    u = _unit(12, seed + 1)
    env = torch.rand(12, generator=gen, dtype=torch.float64) * mask
    env[2] = 0.0  # an edge exactly at rcut: weight 0
    x = _rand(n, n_sph(lmax), 2, 4, seed=seed + 2)
    rad = _rand(12, 3, seed=seed + 3)
    return att, x, src, dst, u, rad, env, mask


def _attention_oracle(att, x, src, dst, ysh, rad, env, mask):
    """Per-center loop with the explicit formula of the module docstring."""
    lmax, f, c, h = att.lmax, att.n_focus, att.channels, att.n_heads
    q, k, v = att.q(x), att.k(x)[src], att.v(x)[src]
    rw = att.radial(rad).view(-1, 2, lmax + 1, f, c)
    k, v = att.tp_k(k, ysh, rw[:, 0]), att.tp_v(v, ysh, rw[:, 1])
    zeta = torch.nn.functional.softplus(att.z_bias_raw) + att.eps
    deg = degree_index(lmax)
    out = torch.zeros_like(x)
    for i in range(x.shape[0]):
        es = [e for e in range(src.numel()) if int(dst[e]) == i and bool(mask[e])]
        if not es:
            continue
        logits = []
        for e in es:
            prod = (q[i] * k[e]).view(-1, f, h, c // h).sum(-1)  # (K, F, H)
            per_l = torch.stack([prod[deg == l].sum(0) for l in range(lmax + 1)])
            logits.append((per_l * att.degree_weight).sum(0) * att.scale)
        wexp = torch.stack([env[e] ** 2 * torch.exp(s) for e, s in zip(es, logits)])  # (n_e, F, H)
        a = wexp / (zeta + wexp.sum(0))
        for j, e in enumerate(es):
            out[i] += (v[e].view(-1, f, h, c // h) * a[j][None, :, :, None]).view(-1, f, c)
    return att.o(out)


def test_attention_matches_oracle_and_empty_center():
    att, x, src, dst, u, rad, env, mask = _attention_setup()
    ysh = real_sph_harm(u, att.lmax)
    got = att(x, src, dst, ysh, rad, env, mask)
    ref = _attention_oracle(att, x, src, dst, ysh, rad, env, mask)
    assert float((got - ref).abs().max()) < 1e-13
    # node 4 has no real edges: zero messages, only the output bias on l = 0
    bias = att.o.bias.view(2, 4)
    assert torch.equal(got[4, 0], bias) and float(got[4, 1:].abs().max()) == 0.0


def test_attention_padding_contributes_exactly_zero():
    att, x, src, dst, u, rad, env, mask = _attention_setup()
    ysh = real_sph_harm(u, att.lmax)
    ref = att(x, src, dst, ysh, rad, env, mask)
    # garbage on the masked edges (huge values, any endpoints) changes nothing, bit for bit
    src2, dst2, ysh2, rad2 = src.clone(), dst.clone(), ysh.clone(), rad.clone()
    src2[-2:], dst2[-2:] = torch.tensor([3, 2]), torch.tensor([4, 1])
    ysh2[-2:], rad2[-2:] = 1e30, -1e30
    env2 = env.clone()
    env2[-2:] = 0.7
    assert torch.equal(att(x, src2, dst2, ysh2, rad2, env2, mask), ref)
    # finite gradients everywhere, zero on masked edges
    ysh_g, rad_g, env_g = ysh.clone().requires_grad_(), rad.clone().requires_grad_(), env.clone().requires_grad_()
    out = att(x, src, dst, ysh_g, rad_g, env_g, mask)
    grads = torch.autograd.grad(out.square().sum(), (ysh_g, rad_g, env_g, *att.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)
    assert float(grads[0][~mask].abs().max()) == 0.0 and float(grads[1][~mask].abs().max()) == 0.0


@pytest.mark.parametrize("lmax", [0, 1, 3])
def test_attention_equivariant(lmax):
    att, x, src, dst, u, rad, env, mask = _attention_setup(lmax, seed=lmax)
    out = att(x, src, dst, real_sph_harm(u, lmax), rad, env, mask)
    for seed, reflect in [(7, False), (8, True)]:
        rot = random_rotation(seed, reflect)
        d = wigner_d(rot, lmax)
        got = att(_rotate(x, d), src, dst, real_sph_harm(u @ torch.from_numpy(rot).T, lmax), rad, env, mask)
        assert float((got - _rotate(out, d)).abs().max()) < TOL
