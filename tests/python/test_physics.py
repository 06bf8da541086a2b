"""Physics checks of the se_atten / DPA1 energy model (docs/design.md, "Forces and virials").

* force = -dE/dx by central finite differences (fp64), periodic triclinic and
  open boundaries, for concat / strip (se_atten_v2), smooth / plain attention,
  attn_layer 0 and 2;
* virial = -dE/d(strain) by finite differences, sum rules
  (atom energy, atom virial, total force);
* rotation (incl. reflection), translation, permutation and lattice-image
  invariance;
* continuity of energy and forces when a pair crosses rcut;
* float32 model vs float64 model with the same weights;
* several frames in one graph, heterogeneous frame sizes;
* ghost nodes (MPI-rank style graphs from a dense neighbor list) vs folded
  graphs; extra edges beyond rcut (neighbor-list skin) are ignored;
* an isolated atom: energy = biases + fitting(zero descriptor), zero force.

All systems are small (20-32 atoms, rcut 4 Å); the whole module runs in a few
seconds on one thread.

Conventions under test (energy.py): ``W[a, b] = -g_a * vec_b`` per edge,
``virial = sum_e W_e``, atom virial attributed to ``src``; with
``x' = (I + eps) x`` for coordinates and cell rows, ``virial_ab = -dE/deps_ab``.
"""

from __future__ import annotations

import copy
import functools
import itertools

import numpy as np
import pytest
import torch

from dpgraph.graph import NeighborGraph, build_graph, from_dense_nlist
from dpgraph.models import build_model, compute_descriptor_stats

RCUT = 4.0
RCUT_SMTH = 0.5
H_FD = 1e-5  # finite-difference step (Å, or strain)
RTOL_FD = 1e-6  # finite differences, relative to the largest component
RTOL_INV = 1e-10  # symmetry checks, relative

# Descriptor variants: concat / strip, smooth / plain attention, 0 or 2 attention layers.
VARIANTS = {
    "concat-smooth-a2": dict(type="se_atten", tebd_input_mode="concat", smooth_type_embedding=True, attn_layer=2),
    "concat-plain-a2": dict(type="se_atten", tebd_input_mode="concat", smooth_type_embedding=False, attn_layer=2),
    "concat-smooth-a0": dict(type="se_atten", tebd_input_mode="concat", smooth_type_embedding=True, attn_layer=0),
    "concat-plain-a0": dict(type="se_atten", tebd_input_mode="concat", smooth_type_embedding=False, attn_layer=0),
    "v2-a2": dict(type="se_atten_v2", attn_layer=2),
    "v2-a0": dict(type="se_atten_v2", attn_layer=0),
    "strip-plain-a2": dict(type="se_atten", tebd_input_mode="strip", smooth_type_embedding=False, attn_layer=2),
    "strip-plain-a0": dict(type="se_atten", tebd_input_mode="strip", smooth_type_embedding=False, attn_layer=0),
}
MAIN = ["concat-smooth-a2", "concat-plain-a2", "v2-a2"]


# ----------------------------------------------------------------- systems
def _rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


# triclinic cell (rows = lattice vectors, Å), in a generic orientation;
# perpendicular widths ~7 Å: several images of one pair lie within rcut
CELL = np.array([[7.2, 0.0, 0.0], [1.1, 7.4, 0.0], [-0.9, 1.3, 7.0]]) @ _rotation(11).T


def _min_image_dist(p, pts, cell):
    if cell is None:
        return np.linalg.norm(pts - p, axis=1).min()
    inv = np.linalg.inv(cell)
    f = (pts - p) @ inv
    f -= np.round(f)
    imgs = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float)
    d = (f[:, None, :] + imgs[None]) @ cell
    return np.linalg.norm(d, axis=-1).min()


def _rcut_gap(coords, cell) -> float:
    """Smallest | |r_ij| - rcut | over all pairs (and images)."""
    g = build_graph(coords, np.zeros(len(coords), dtype=np.int64), cell, pbc=cell is not None, rcut=RCUT + 0.5)
    r = torch.linalg.vector_norm(g.real_edges()[2], dim=1).numpy()
    return float(np.abs(r - RCUT).min())


def random_system(n: int, periodic: bool, seed: int, dmin: float = 1.0):
    """(coords (n, 3) Å, atype (n,), cell or None) with min distance dmin and no pair within 2e-3 Å of rcut."""
    rng = np.random.default_rng(seed)
    cell = CELL if periodic else None
    while True:
        pts = []
        while len(pts) < n:
            if periodic:
                p = rng.uniform(-0.2, 1.2, 3) @ cell  # partly outside the box: wrapping is exercised
            else:
                p = rng.uniform(-2.6, 2.6, 3) + np.array([10.0, -3.0, 5.0])
            if not pts or _min_image_dist(p, np.array(pts), cell) > dmin:
                pts.append(p)
        coords = np.array(pts)
        if _rcut_gap(coords, cell) > 2e-3:  # finite differences never move a pair across rcut
            break
    atype = rng.permutation(np.arange(n) % 2).astype(np.int64)
    return coords, atype, cell


@functools.lru_cache(maxsize=None)
def periodic_system():
    return random_system(32, True, seed=1)


@functools.lru_cache(maxsize=None)
def open_system():
    return random_system(20, False, seed=2)


def system(kind: str):
    return periodic_system() if kind == "pbc" else open_system()


# ------------------------------------------------------------------ models
def model_config(variant: str, **extra) -> dict:
    desc = {"rcut": RCUT, "rcut_smth": RCUT_SMTH, "sel": 30, "neuron": [8, 16], "axis_neuron": 4,
            "attn": 16, "seed": 1, **VARIANTS[variant], **extra}
    return {"type_map": ["O", "H"], "descriptor": desc, "fitting_net": {"neuron": [16, 16], "seed": 2}}


@functools.lru_cache(maxsize=None)
def get_model(variant: str, set_davg_zero: bool = False):
    """fp64 model with data statistics (davg != 0 unless set_davg_zero) and forces O(1) eV/Å.

    The last fitting layer is rescaled so that the largest force component on
    the periodic system is 1 eV/Å (forces are linear in that layer's weights).
    """
    model = build_model(model_config(variant, set_davg_zero=set_davg_zero))
    coords, atype, cell = periodic_system()
    g = build_graph(coords, atype, cell, rcut=RCUT)
    compute_descriptor_stats(model.descriptor, [g])
    with torch.no_grad():
        model.out_bias.copy_(torch.tensor([-2.5, -0.75], dtype=torch.float64))
        model.fitting.bias_atom_e.copy_(torch.tensor([0.3, -0.2], dtype=torch.float64))
        fmax = float(model.evaluate(g)["force"].abs().max())
        model.fitting.net[-1].w.mul_(1.0 / fmax)
    model.eval()
    return model


def graph_of(coords, atype, cell, rcut=RCUT, dtype=None) -> NeighborGraph:
    return build_graph(coords, atype, cell, pbc=cell is not None, rcut=rcut, dtype=dtype)


def run(model, coords, atype, cell, **kw) -> dict[str, np.ndarray]:
    out = model.evaluate(graph_of(coords, atype, cell, **kw))
    return {k: v.detach().to(torch.float64).numpy() for k, v in out.items()}


def energy(model, coords, atype, cell) -> float:
    """Total energy only (no backward pass), for finite differences."""
    g = graph_of(coords, atype, cell)
    with torch.no_grad():
        return float(model.atom_energy(*g.as_tuple()).sum())


def assert_close(a, b, rtol, scale=None, what=""):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.abs(b).max(initial=0.0), 1e-300) if scale is None else scale
    err = np.abs(a - b).max(initial=0.0)
    assert err <= rtol * scale, f"{what}: max abs error {err:.3e} > {rtol:.1e} * {scale:.3e}"


# ------------------------------------------------- force = -dE/dx (FD)
def _fd_force(model, coords, atype, cell, direction) -> float:
    ep = energy(model, coords + H_FD * direction, atype, cell)
    em = energy(model, coords - H_FD * direction, atype, cell)
    return -(ep - em) / (2 * H_FD)


def check_forces_fd(model, coords, atype, cell, atoms, n_dirs: int, seed: int = 0):
    force = run(model, coords, atype, cell)["force"]
    fmax = np.abs(force).max()
    assert fmax > 1e-2, "forces too small for a meaningful finite-difference test"
    for i in atoms:
        for a in range(3):
            d = np.zeros_like(coords)
            d[i, a] = 1.0
            fd = _fd_force(model, coords, atype, cell, d)
            assert abs(fd - force[i, a]) <= RTOL_FD * fmax, (
                f"atom {i} comp {a}: force {force[i, a]:.12g} vs -dE/dx {fd:.12g}"
            )
    rng = np.random.default_rng(seed)
    for _ in range(n_dirs):  # random collective displacements test every force at once
        d = rng.normal(size=coords.shape)
        d /= np.linalg.norm(d)
        fd = _fd_force(model, coords, atype, cell, d)
        assert abs(fd - (force * d).sum()) <= RTOL_FD * fmax * np.sqrt(coords.size)


@pytest.mark.parametrize("kind", ["pbc", "open"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_force_is_minus_energy_gradient(variant, kind):
    coords, atype, cell = system(kind)
    check_forces_fd(get_model(variant), coords, atype, cell, atoms=[0, 7, 13], n_dirs=3)


def test_force_every_component_pbc():
    """All 3N components, periodic triclinic box, smooth concat model with attention."""
    coords, atype, cell = periodic_system()
    check_forces_fd(get_model("concat-smooth-a2"), coords, atype, cell, atoms=range(len(coords)), n_dirs=0)


# ------------------------------------------- virial = -dE/d(strain) (FD)
def _strained(coords, cell, eps):
    m = np.eye(3) + eps  # x' = (I + eps) x for positions and lattice vectors (rows)
    return coords @ m.T, None if cell is None else cell @ m.T


def check_virial_fd(model, coords, atype, cell):
    out = run(model, coords, atype, cell)
    vir = out["virial"][0].reshape(3, 3)
    scale = np.abs(vir).max()
    fd = np.zeros((3, 3))
    for a, b in itertools.product(range(3), repeat=2):
        eps = np.zeros((3, 3))
        eps[a, b] = H_FD
        xp, cp = _strained(coords, cell, eps)
        xm, cm = _strained(coords, cell, -eps)
        ep, em = energy(model, xp, atype, cp), energy(model, xm, atype, cm)
        fd[a, b] = -(ep - em) / (2 * H_FD)
    assert_close(vir, fd, RTOL_FD, scale, "virial vs -dE/d(strain)")
    # a rotation-invariant energy has a symmetric total virial
    assert_close(vir, vir.T, RTOL_INV, scale, "virial symmetry")
    return out


@pytest.mark.parametrize(
    "variant,kind",
    [("concat-smooth-a2", "pbc"), ("concat-plain-a2", "pbc"), ("v2-a2", "pbc"), ("strip-plain-a0", "pbc"),
     ("concat-smooth-a2", "open"), ("v2-a0", "open")],
)
def test_virial_is_strain_derivative(variant, kind):
    coords, atype, cell = system(kind)
    check_virial_fd(get_model(variant), coords, atype, cell)


@pytest.mark.parametrize("kind", ["pbc", "open"])
@pytest.mark.parametrize("variant", MAIN + ["concat-plain-a0"])
def test_sum_rules(variant, kind):
    coords, atype, cell = system(kind)
    out = run(get_model(variant), coords, atype, cell)
    e = out["energy"][0]
    assert abs(out["atom_energy"].sum() - e) <= 1e-12 * abs(e)
    assert_close(out["atom_virial"].sum(0), out["virial"][0], 1e-12, what="sum of atom virials")
    fscale = max(1.0, np.abs(out["force"]).max())
    assert np.abs(out["force"].sum(0)).max() <= 1e-12 * fscale, "net force must vanish"
    assert all(np.isfinite(v).all() for v in out.values())


def test_atom_virial_convention():
    """atom_virial[k] = sum over edges with src == k of -g (x) vec, row = gradient component."""
    coords, atype, cell = periodic_system()
    model = get_model("concat-smooth-a2")
    g = graph_of(coords, atype, cell)
    out = model.evaluate(g)
    ev = g.edge_vec.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model.atom_energy(g.atype, g.n_node, g.edge_index, ev, g.edge_mask).sum(), ev)
    grad, vec = grad.numpy(), g.edge_vec.numpy()
    src, mask = g.src.numpy(), g.edge_mask.numpy()
    expected = np.zeros((g.n_nodes, 3, 3))
    for e in np.nonzero(mask)[0]:
        expected[src[e]] += -np.outer(grad[e], vec[e])
    assert_close(out["atom_virial"].numpy().reshape(-1, 3, 3), expected, 1e-12, what="atom virial")
    # per-atom virials are not symmetric in general: the orientation of the 3x3 matters
    av = expected
    assert np.abs(av - av.transpose(0, 2, 1)).max() > 1e-6


# ----------------------------------------------------------- invariance
def _orthogonal(seed: int, reflect: bool) -> np.ndarray:
    q = _rotation(seed)
    if (np.linalg.det(q) < 0) != reflect:
        q[:, 0] = -q[:, 0]
    return q


@pytest.mark.parametrize("reflect", [False, True])
@pytest.mark.parametrize("kind", ["pbc", "open"])
@pytest.mark.parametrize("variant", MAIN + ["strip-plain-a2"])
def test_rotation_invariance(variant, kind, reflect):
    coords, atype, cell = system(kind)
    model = get_model(variant)
    rot = _orthogonal(5, reflect)
    ref = run(model, coords, atype, cell)
    out = run(model, coords @ rot.T, atype, None if cell is None else cell @ rot.T)
    assert_close(out["energy"], ref["energy"], RTOL_INV, what="energy")
    assert_close(out["atom_energy"], ref["atom_energy"], RTOL_INV, np.abs(ref["energy"]).max(), "atom energy")
    assert_close(out["force"], ref["force"] @ rot.T, RTOL_INV, what="force")
    v_ref = ref["virial"].reshape(3, 3)
    assert_close(out["virial"].reshape(3, 3), rot @ v_ref @ rot.T, RTOL_INV, what="virial")
    av_ref = ref["atom_virial"].reshape(-1, 3, 3)
    assert_close(out["atom_virial"].reshape(-1, 3, 3), rot @ av_ref @ rot.T, RTOL_INV, np.abs(av_ref).max(),
                 "atom virial")


@pytest.mark.parametrize("kind", ["pbc", "open"])
@pytest.mark.parametrize("variant", MAIN)
def test_translation_invariance(variant, kind):
    coords, atype, cell = system(kind)
    model = get_model(variant)
    ref = run(model, coords, atype, cell)
    out = run(model, coords + np.array([13.7, -5.3, 2.9]), atype, cell)
    for key in ("energy", "atom_energy", "force", "virial", "atom_virial"):
        assert_close(out[key], ref[key], RTOL_INV, max(np.abs(ref[key]).max(), 1.0), key)


@pytest.mark.parametrize("variant", MAIN)
def test_lattice_image_invariance(variant):
    """Moving atoms by lattice vectors changes nothing (periodic images are equivalent)."""
    coords, atype, cell = periodic_system()
    model = get_model(variant)
    shift = np.random.default_rng(3).integers(-2, 3, (len(coords), 3)) @ cell
    ref = run(model, coords, atype, cell)
    out = run(model, coords + shift, atype, cell)
    for key in ("energy", "atom_energy", "force", "virial", "atom_virial"):
        assert_close(out[key], ref[key], RTOL_INV, max(np.abs(ref[key]).max(), 1.0), key)


@pytest.mark.parametrize("kind", ["pbc", "open"])
@pytest.mark.parametrize("variant", MAIN)
def test_permutation_invariance(variant, kind):
    coords, atype, cell = system(kind)
    model = get_model(variant)
    perm = np.random.default_rng(4).permutation(len(coords))
    ref = run(model, coords, atype, cell)
    out = run(model, coords[perm], atype[perm], cell)
    assert_close(out["energy"], ref["energy"], RTOL_INV, what="energy")
    assert_close(out["virial"], ref["virial"], RTOL_INV, what="virial")
    for key in ("atom_energy", "force", "atom_virial"):
        assert_close(out[key], ref[key][perm], RTOL_INV, max(np.abs(ref[key]).max(), 1.0), key)


# ------------------------------------------------------ smoothness at rcut
# A small cluster and one probe atom on the +x side; only the pair (probe, atom 0)
# can come within rcut, all other probe distances stay beyond it.
CLUSTER = np.array([[0.0, 0.0, 0.0], [-1.0, 0.3, 0.1], [-0.5, -1.1, 0.4], [-1.3, 0.9, -0.8], [-1.9, -0.4, 0.9]])
CLUSTER_TYPES = np.array([0, 1, 1, 0, 1, 0])  # last = probe
PROBE_YZ = np.array([0.05, -0.03])


def _probe_coords(d: float) -> np.ndarray:
    """Cluster + probe whose distance to atom 0 is exactly d (Å)."""
    x = np.sqrt(d * d - (PROBE_YZ**2).sum())
    return np.vstack([CLUSTER, [[x, *PROBE_YZ]]])


def _scan_rcut(model, half_width=1e-4, n=11):
    ds = RCUT + np.linspace(-half_width, half_width, n)
    outs = [run(model, _probe_coords(d), CLUSTER_TYPES, None) for d in ds]
    e = np.array([o["energy"][0] for o in outs])
    f = np.array([o["force"] for o in outs])
    return ds, e, f


def jump_at_rcut(model, delta=1e-9):
    """|E(rcut - delta) - E(rcut + delta)| and the same for forces."""
    lo = run(model, _probe_coords(RCUT - delta), CLUSTER_TYPES, None)
    hi = run(model, _probe_coords(RCUT + delta), CLUSTER_TYPES, None)
    return abs(lo["energy"][0] - hi["energy"][0]), np.abs(lo["force"] - hi["force"]).max()


@pytest.mark.parametrize(
    "variant", ["concat-smooth-a2", "v2-a2", "concat-smooth-a0", "v2-a0", "concat-plain-a0", "strip-plain-a0"]
)
def test_smooth_across_rcut(variant):
    """Energy and forces are continuous when a pair crosses rcut (davg = 0 statistics).

    smooth_type_embedding=True is smooth with attention; smooth=False is smooth
    only without attention (attn_layer 0), see the next test.
    """
    model = get_model(variant, set_davg_zero=True)
    ds, e, f = _scan_rcut(model)
    step = ds[1] - ds[0]
    fscale = max(np.abs(f).max(), 1e-3)
    assert fscale > 1e-2, "the cluster must feel forces"
    assert np.abs(np.diff(e)).max() <= fscale * step, f"energy steps {np.abs(np.diff(e)).max():.3e}"
    assert np.abs(np.diff(f, axis=0)).max() <= 10 * fscale * step, "force steps"
    # C2 switch: the probe-pair force vanishes at rcut, beyond it the probe is free
    assert np.abs(f[-1][-1]).max() == 0.0
    de, df = jump_at_rcut(model)
    # carry-all: with smooth attention a neighbor at rcut keeps the logit -shift, i.e.
    # adds exp(-shift - max logit) to its center's softmax denominators until the edge
    # leaves (the other logits are ~ -shift * (1 - sw_m sw_n)), so a residual step of
    # ~1e-8..1e-7 (relative) is inherent to the carry-all semantics; the dense
    # semantics keeps that term as a padded slot (next test). 4 orders below the
    # davg != 0 step (xfail test below).
    assert de < 1e-6 * fscale and df < 1e-6 * fscale, (de, df)


@pytest.mark.parametrize("variant", ["concat-smooth-a2", "v2-a2"])
def test_dense_semantics_exactly_continuous_at_rcut(variant):
    """With semantics="dense" the leaving neighbor becomes a padded slot that adds the
    same exp(-shift) to the softmax: no step at all at rcut (davg = 0, deg < sel)."""
    m = get_model(variant, set_davg_zero=True)
    dense = build_model(model_config(variant, set_davg_zero=True, semantics="dense"))
    dense.load_state_dict(m.state_dict())
    de, df = jump_at_rcut(dense)
    assert de <= 1e-13 and df <= 1e-12, (de, df)


@pytest.mark.parametrize("variant", ["concat-plain-a2", "strip-plain-a2"])
def test_plain_attention_is_not_smooth_at_rcut(variant):
    """Documented deepmd-kit behavior: with smooth_type_embedding=False the attention
    weights of a neighbor do not vanish at rcut, so E and F jump when it leaves."""
    de, df = jump_at_rcut(get_model(variant, set_davg_zero=True))
    assert de > 1e-6 and df > 1e-4, (de, df)


@pytest.mark.parametrize("variant", ["concat-smooth-a2", "v2-a2"])
def test_nonzero_davg_carry_all_steps_at_rcut(variant):
    """Documented: with davg != 0 a neighbor at rcut still has R = (0 - davg)/dstd != 0,
    which vanishes with its edge in carry-all semantics (deepmd-kit's graph route alike).
    Models meant for MD should use set_davg_zero=True (the built-in example does)."""
    model = get_model(variant, set_davg_zero=False)
    assert float(model.descriptor.davg.abs().max()) > 0
    de, df = jump_at_rcut(model)
    assert de > 1e-6, de


def test_nonzero_davg_dense_v2_exactly_continuous_at_rcut():
    """Dense semantics keeps the leaving neighbor as a padded slot with the same R and, in
    strip + smooth mode, the same G: no step at all, as deepmd-kit's dense se_atten_v2."""
    m = get_model("v2-a2", set_davg_zero=False)
    dense = build_model(model_config("v2-a2", set_davg_zero=False, semantics="dense"))
    dense.load_state_dict(m.state_dict())
    de, df = jump_at_rcut(dense)
    assert de <= 1e-12 and df <= 1e-11, (de, df)


# ------------------------------------------------------- float32 vs float64
@pytest.mark.parametrize("variant", ["concat-smooth-a2", "v2-a2", "concat-plain-a0"])
def test_float32_matches_float64(variant):
    m64 = get_model(variant)
    cfg = copy.deepcopy(m64.config)
    cfg["descriptor"]["precision"] = "float32"
    cfg["fitting_net"]["precision"] = "float32"
    m32 = build_model(cfg)
    sd = {k: v.to(torch.float32) if v.is_floating_point() else v for k, v in m64.state_dict().items()}
    m32.load_state_dict(sd)
    coords, atype, cell = periodic_system()
    g32 = graph_of(coords, atype, cell, dtype=torch.float32)
    assert g32.edge_vec.dtype == torch.float32
    out32 = m32.evaluate(g32)
    assert all(v.dtype == torch.float32 for k, v in out32.items())
    out32 = {k: v.to(torch.float64).numpy() for k, v in out32.items()}
    ref = run(m64, coords, atype, cell)
    assert_close(out32["energy"], ref["energy"], 1e-5, what="energy")
    assert_close(out32["atom_energy"], ref["atom_energy"], 1e-5, np.abs(ref["atom_energy"]).max(), "atom energy")
    assert_close(out32["force"], ref["force"], 1e-5, what="force")
    assert_close(out32["virial"], ref["virial"], 1e-5, what="virial")


# -------------------------------------------------------------- multi-frame
def concat_graphs(graphs) -> NeighborGraph:
    """Frames of several graphs in one graph (real edges, then 2 padding edges)."""
    atype, n_node, idx, vec = [], [], [], []
    offset = 0
    for g in graphs:
        src, dst, v = g.real_edges()
        atype.append(g.atype)
        n_node.append(g.n_node)
        idx.append(torch.stack([src, dst]) + offset)
        vec.append(v)
        offset += g.n_nodes
    pad = 2
    idx.append(torch.zeros(2, pad, dtype=torch.int64))
    vec.append(torch.zeros(pad, 3, dtype=vec[0].dtype))
    e_real = sum(v.shape[0] for v in vec[:-1])
    mask = torch.cat([torch.ones(e_real, dtype=torch.bool), torch.zeros(pad, dtype=torch.bool)])
    return NeighborGraph(torch.cat(atype), torch.cat(n_node), torch.cat(idx, 1), torch.cat(vec), mask).validate()


@pytest.mark.parametrize("variant", MAIN)
def test_two_frames_same_size(variant):
    """build_graph with (2, n, 3) coords and two different cells == each frame alone."""
    model = get_model(variant)
    coords, atype, cell = periodic_system()
    rng = np.random.default_rng(6)
    coords2 = coords + rng.normal(scale=0.05, size=coords.shape)
    cell2 = cell @ (np.eye(3) + 0.02 * rng.normal(size=(3, 3)))
    both = model.evaluate(build_graph(np.stack([coords, coords2]), atype, np.stack([cell, cell2]), rcut=RCUT))
    n = len(coords)
    for f, (x, c) in enumerate([(coords, cell), (coords2, cell2)]):
        ref = run(model, x, atype, c)
        assert_close(both["energy"][f], ref["energy"][0], 1e-12, what="energy")
        assert_close(both["virial"][f], ref["virial"][0], 1e-12, what="virial")
        for key in ("atom_energy", "force", "atom_virial"):
            assert_close(both[key][f * n:(f + 1) * n], ref[key], 1e-12, max(np.abs(ref[key]).max(), 1.0), key)


@pytest.mark.parametrize("variant", MAIN)
def test_frames_of_different_sizes(variant):
    """A periodic 32-atom frame, a 20-atom cluster and an isolated atom in one graph."""
    model = get_model(variant)
    systems = [periodic_system(), open_system(), (np.zeros((1, 3)), np.array([1]), None)]
    graphs = [graph_of(*s) for s in systems]
    out = model.evaluate(concat_graphs(graphs))
    start = 0
    for f, g in enumerate(graphs):
        ref = model.evaluate(g)
        sl = slice(start, start + g.n_nodes)
        assert_close(out["energy"][f], ref["energy"][0], 1e-12, what="energy")
        assert_close(out["virial"][f], ref["virial"][0], 1e-12, 1.0, "virial")
        for key in ("atom_energy", "force", "atom_virial"):
            assert_close(out[key][sl], ref[key], 1e-12, max(float(ref[key].abs().max()), 1.0), key)
        start += g.n_nodes


# ---------------------------------------------------------------- ghost nodes
def rank_inputs(coords, atype, cell, owned):
    """A dense neighbor list as an MPI rank of an MD engine sees it.

    The rank owns the atoms ``owned`` (wrapped into the box); ghosts are every
    other atom or periodic image within rcut of an owned atom. Returns
    (coord_ext, atype_ext, nlist, mapping -> global atom index).
    """
    inv = np.linalg.inv(cell)
    frac = coords @ inv
    wrapped = (frac - np.floor(frac)) @ cell
    owned = np.asarray(owned)
    n = len(coords)
    ext, owner = [wrapped[owned]], [owned]
    for s in itertools.product((-1, 0, 1), repeat=3):  # cell widths > rcut: one shell of images suffices
        img = wrapped + np.array(s, dtype=float) @ cell
        cand = np.arange(n) if any(s) else np.setdiff1d(np.arange(n), owned)
        d = np.linalg.norm(img[cand][:, None, :] - wrapped[owned][None], axis=-1)
        keep = cand[(d < RCUT).any(1)]
        ext.append(img[keep])
        owner.append(keep)
    coord_ext, owner = np.concatenate(ext), np.concatenate(owner)
    nloc = len(owned)
    d = np.linalg.norm(coord_ext[None, :, :] - coord_ext[:nloc, None, :], axis=-1)
    near = d < RCUT
    near[np.arange(nloc), np.arange(nloc)] = False
    nnei = near.sum(1).max()
    nlist = -np.ones((nloc, nnei + 3), dtype=np.int64)  # extra -1 slots, as a sel-padded list has
    rng = np.random.default_rng(7)
    for i in range(nloc):
        js = rng.permutation(np.nonzero(near[i])[0])  # any order: the builder sorts
        nlist[i, : len(js)] = js
    return coord_ext, atype[owner], nlist, owner


def _fold(x: np.ndarray, owner: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n, *x.shape[1:]))
    np.add.at(out, owner, x)
    return out


@pytest.mark.parametrize("variant", MAIN + ["concat-plain-a0"])
def test_ghost_nodes_single_rank(variant):
    """fold=False (ghosts as extra nodes) == fold=True == build_graph on the periodic system."""
    model = get_model(variant)
    coords, atype, cell = periodic_system()
    n = len(coords)
    coord_ext, atype_ext, nlist, owner = rank_inputs(coords, atype, cell, np.arange(n))
    assert len(coord_ext) > n
    mapping = owner  # owned atoms are 0..n-1 in order here, so global index == local index
    g_ghost = from_dense_nlist(coord_ext, atype_ext, nlist, nloc=n, mapping=mapping, fold=False)
    g_fold = from_dense_nlist(coord_ext, atype_ext, nlist, nloc=n, mapping=mapping, fold=True)
    assert g_ghost.n_node.tolist() == [[len(coord_ext), n]] and g_fold.n_node.tolist() == [[n, n]]
    ref = run(model, coords, atype, cell)
    ghost = {k: v.numpy() for k, v in model.evaluate(g_ghost).items()}
    fold = {k: v.numpy() for k, v in model.evaluate(g_fold).items()}

    for out in (ghost, fold):
        assert_close(out["energy"], ref["energy"], 1e-12, what="energy")
        assert_close(out["virial"], ref["virial"], 1e-12, what="virial")
        assert_close(out["atom_energy"][:n], ref["atom_energy"], 1e-12, np.abs(ref["energy"]).max(), "atom energy")
    assert np.all(ghost["atom_energy"][n:] == 0.0), "ghost atoms own no energy"
    assert np.abs(ghost["force"][n:]).max() > 1e-3, "ghosts carry reaction forces"
    fscale = np.abs(ref["force"]).max()
    assert_close(fold["force"], ref["force"], 1e-12, fscale, "folded graph force")
    assert_close(_fold(ghost["force"], mapping, n), ref["force"], 1e-12, fscale, "ghost forces folded to owners")
    avs = np.abs(ref["atom_virial"]).max()
    assert_close(fold["atom_virial"], ref["atom_virial"], 1e-12, avs, "folded atom virial")
    assert_close(_fold(ghost["atom_virial"], mapping, n), ref["atom_virial"], 1e-12, avs, "ghost atom virial folded")


@pytest.mark.parametrize("variant", ["concat-smooth-a2", "v2-a2"])
def test_ghost_nodes_two_ranks(variant):
    """Domain decomposition: two ranks each own half the atoms; summing their owned
    energies, their virials, and reverse-communicating ghost forces to the owners
    gives the single-process result."""
    model = get_model(variant)
    coords, atype, cell = periodic_system()
    n = len(coords)
    frac_x = (coords @ np.linalg.inv(cell))[:, 0] % 1.0
    halves = [np.nonzero(frac_x < 0.5)[0], np.nonzero(frac_x >= 0.5)[0]]
    assert all(len(h) > 5 for h in halves)
    e_tot, vir, force, avir = 0.0, np.zeros(9), np.zeros((n, 3)), np.zeros((n, 9))
    for owned in halves:
        coord_ext, atype_ext, nlist, owner = rank_inputs(coords, atype, cell, owned)
        g = from_dense_nlist(coord_ext, atype_ext, nlist, nloc=len(owned), fold=False)
        out = {k: v.numpy() for k, v in model.evaluate(g).items()}
        assert np.all(out["atom_energy"][len(owned):] == 0.0)
        e_tot += out["atom_energy"][: len(owned)].sum()
        vir += out["virial"][0]
        force += _fold(out["force"], owner, n)
        avir += _fold(out["atom_virial"], owner, n)
    ref = run(model, coords, atype, cell)
    assert_close(e_tot, ref["energy"][0], 1e-12, what="energy")
    assert_close(vir, ref["virial"][0], 1e-12, what="virial")
    assert_close(force, ref["force"], 1e-12, what="force")
    assert_close(avir, ref["atom_virial"], 1e-12, what="atom virial")


@pytest.mark.parametrize("variant", ["concat-smooth-a2", "concat-plain-a2"])
def test_edges_beyond_rcut_are_ignored(variant):
    """A neighbor list with a 1 Å skin (edges with rcut <= r < rcut + 1) gives identical results."""
    model = get_model(variant)
    coords, atype, cell = periodic_system()
    g_skin = graph_of(coords, atype, cell, rcut=RCUT + 1.0)
    g = graph_of(coords, atype, cell)
    assert g_skin.n_edges > g.n_edges + 100
    out, ref = model.evaluate(g_skin), model.evaluate(g)
    for key in ("energy", "atom_energy", "force", "virial", "atom_virial"):
        assert_close(out[key], ref[key], 1e-12, max(float(ref[key].abs().max()), 1.0), key)


# -------------------------------------------------------------- lone atom
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_isolated_atom(variant):
    """No neighbors: descriptor = [0, tebd], energy = fitting(descriptor) + out_bias, zero force."""
    model = get_model(variant)
    for t in (0, 1):
        g = graph_of(np.array([[1.0, -2.0, 3.0]]), np.array([t]), None)
        assert int(g.edge_mask.sum()) == 0
        out = model.evaluate(g)
        d = model.descriptor
        tebd = d.type_embedding()[t]
        desc0 = torch.cat([torch.zeros(d.ng * d.axis_neuron, dtype=torch.float64), tebd])[None]
        got = d(g.atype, g.src, g.dst, g.edge_vec, g.edge_mask)
        assert torch.equal(got, desc0)
        with torch.no_grad():
            e_expect = model.fitting.net(desc0)[0, 0] + model.fitting.bias_atom_e[t] + model.out_bias[t]
        assert torch.isfinite(out["energy"]).all()
        assert abs(float(out["energy"][0] - e_expect)) <= 1e-12 * max(1.0, abs(float(e_expect)))
        assert float(out["atom_energy"][0]) == float(out["energy"][0])
        for key in ("force", "virial", "atom_virial"):
            assert torch.all(out[key] == 0.0), key
    # two atoms farther apart than rcut: energies add, no forces
    g2 = graph_of(np.array([[0.0, 0.0, 0.0], [RCUT + 0.01, 0.0, 0.0]]), np.array([0, 1]), None)
    e2 = model.evaluate(g2)
    e_single = [float(model.evaluate(graph_of(np.zeros((1, 3)), np.array([t]), None))["energy"][0]) for t in (0, 1)]
    assert abs(float(e2["energy"][0]) - sum(e_single)) <= 1e-12 * abs(sum(e_single))
    assert torch.all(e2["force"] == 0.0)
