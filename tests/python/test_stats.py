"""Data statistics (descriptor davg/dstd, per-type energy bias) and the npy data loader.

The descriptor statistics are checked against an independent numpy
implementation of deepmd-kit's se_a convention (stats.py docstring): per center
type, over ``max(deg, nnei)`` slots per center (missing slots count as zeros),

    davg = [mean(s), 0, 0, 0]
    dstd = [std(s), std(a), std(a), std(a)]     (s: env column 0, a: columns 1-3 pooled)

with standard deviations below 1e-2 raised to 1e-2 and davg = 0, dstd = 0.1
for a type that never appears as a center.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from dpgraph.data import load_system
from dpgraph.samples import water_box
from dpgraph.graph import build_graph, from_dense_nlist
from dpgraph.models import build_model, compute_descriptor_stats, compute_energy_bias

RCUT, RCUT_SMTH = 4.0, 0.5
# deepmd-kit's water example data (examples/water/data of the deepmd-kit repository: data_0..data_3,
# deepmd npy format): $DPGRAPH_WATER_DATA, else shared/data/water next to the repository checkout
WATER_ROOT = Path(os.environ.get("DPGRAPH_WATER_DATA")
                  or Path(__file__).resolve().parents[2].parent / "shared" / "data" / "water")
WATER_DATA = WATER_ROOT / "data_0"


def make_descriptor(sel=30, ntypes=2, **kw):
    type_map = ["O", "H", "C"][:ntypes]
    desc = {"type": "se_atten", "rcut": RCUT, "rcut_smth": RCUT_SMTH, "sel": sel, "neuron": [4, 8],
            "axis_neuron": 2, "attn": 8, "attn_layer": 0, "seed": 1, **kw}
    return build_model({"type_map": type_map, "descriptor": desc, "fitting_net": {"neuron": [8], "seed": 2}}).descriptor


# ------------------------------------------------------------- numpy reference
def _switch(r):
    u = (np.clip(r, RCUT_SMTH, RCUT) - RCUT_SMTH) / (RCUT - RCUT_SMTH)
    return u**3 * (-6 * u**2 + 15 * u - 10) + 1


def numpy_env_rows(coords, cell):
    """Brute force over periodic images: per center i, the (deg_i, 4) raw env rows."""
    coords, cell = np.asarray(coords, float), np.asarray(cell, float)
    n = len(coords)
    shifts = np.array(list(itertools.product(range(-2, 3), repeat=3)), dtype=float) @ cell
    rows = []
    for i in range(n):
        vec = (coords[None, :, :] + shifts[:, None, :] - coords[i]).reshape(-1, 3)
        r = np.linalg.norm(vec, axis=1)
        keep = (r < RCUT) & (r > 1e-8)
        vec, r = vec[keep], r[keep]
        sw = _switch(r)
        rows.append(np.concatenate([(sw / r)[:, None], vec * (sw / r**2)[:, None]], axis=1))
    return rows


def numpy_stats(env_rows, atype, ntypes, nnei, davg_zero=False):
    davg = np.zeros((ntypes, 4))
    dstd = np.full((ntypes, 4), 0.1)
    for t in range(ntypes):
        centers = [rows for rows, a in zip(env_rows, atype) if a == t]
        if not centers:
            continue
        n = sum(max(len(rows), nnei) for rows in centers)  # zero-padded slots count
        allrows = np.concatenate(centers)
        s, a = allrows[:, 0], allrows[:, 1:].reshape(-1)
        mean_s = s.sum() / n
        std_s = np.sqrt(max((s**2).sum() / n - mean_s**2, 0.0))
        na = 3 * n
        std_a = np.sqrt(max((a**2).sum() / na - (a.sum() / na) ** 2, 0.0))
        davg[t, 0] = 0.0 if davg_zero else mean_s
        dstd[t] = [std_s, std_a, std_a, std_a]
    dstd[np.abs(dstd) < 1e-2] = 1e-2
    return davg, dstd


@pytest.fixture(scope="module")
def water():
    coords, atype, cell = water_box(16, seed=0)  # 48 atoms, 7.8 Å cube: several images within rcut
    return coords.numpy(), atype.numpy(), cell.numpy()


# --------------------------------------------------------------- descriptor stats
@pytest.mark.parametrize("sel", [30, 10, 60])
def test_descriptor_stats_match_numpy(water, sel):
    coords, atype, cell = water
    rows = numpy_env_rows(coords, cell)
    deg = np.array([len(r) for r in rows])
    if sel == 30:  # both branches of max(deg, nnei) are exercised
        assert deg.min() < sel < deg.max()
    desc = make_descriptor(sel=sel)
    g = build_graph(coords, atype, cell, rcut=RCUT)
    assert int(g.edge_mask.sum()) == deg.sum()
    davg, dstd = compute_descriptor_stats(desc, [g])
    ref_avg, ref_std = numpy_stats(rows, atype, 2, sel)
    np.testing.assert_allclose(davg.numpy(), ref_avg, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dstd.numpy(), ref_std, rtol=1e-12, atol=1e-15)
    # stored on the descriptor, in its dtype
    assert torch.equal(desc.davg, davg) and torch.equal(desc.dstd, dstd)
    assert (davg[:, 1:] == 0).all() and (davg[:, 0] > 0).all()
    assert (dstd > 0.01).all()


def test_set_davg_zero(water):
    coords, atype, cell = water
    g = build_graph(coords, atype, cell, rcut=RCUT)
    davg0, dstd0 = compute_descriptor_stats(make_descriptor(set_davg_zero=True), [g])
    davg, dstd = compute_descriptor_stats(make_descriptor(set_davg_zero=False), [g])
    assert torch.all(davg0 == 0.0)
    assert torch.all(davg[:, 0] != 0.0)
    # dstd is the plain standard deviation either way
    assert torch.equal(dstd0, dstd)
    ref_avg, ref_std = numpy_stats(numpy_env_rows(coords, cell), atype, 2, 30, davg_zero=True)
    np.testing.assert_allclose(dstd0.numpy(), ref_std, rtol=1e-12)


def test_stats_accumulate_over_graphs_and_frames(water):
    """Two graphs in a list == one two-frame graph == numpy over both frames."""
    coords, atype, cell = water
    coords2 = coords + np.random.default_rng(1).normal(scale=0.1, size=coords.shape)
    g1 = build_graph(coords, atype, cell, rcut=RCUT)
    g2 = build_graph(coords2, atype, cell, rcut=RCUT)
    g12 = build_graph(np.stack([coords, coords2]), atype, cell, rcut=RCUT)
    a_list, s_list = compute_descriptor_stats(make_descriptor(), [g1, g2])
    a_one, s_one = compute_descriptor_stats(make_descriptor(), iter([g12]))  # any iterable
    torch.testing.assert_close(a_list, a_one, rtol=1e-13, atol=0)
    torch.testing.assert_close(s_list, s_one, rtol=1e-13, atol=0)
    rows = numpy_env_rows(coords, cell) + numpy_env_rows(coords2, cell)
    ref_avg, ref_std = numpy_stats(rows, np.concatenate([atype, atype]), 2, 30)
    np.testing.assert_allclose(a_list.numpy(), ref_avg, rtol=1e-12)
    np.testing.assert_allclose(s_list.numpy(), ref_std, rtol=1e-12)


def test_stats_missing_type_and_std_protection():
    """Type 2 never appears: davg 0, dstd 0.1. A symmetric dimer: std(s) = 0 is raised to 1e-2."""
    coords = np.array([[0.0, 0.0, 0.0], [1.7, 0.0, 0.0]])
    g = build_graph(coords, [0, 0], None, rcut=RCUT)
    desc = make_descriptor(sel=1, ntypes=3)
    davg, dstd = compute_descriptor_stats(desc, [g])
    s = _switch(1.7) / 1.7
    sx = _switch(1.7) / 1.7  # x / r^2 * sw with x = +-1.7
    assert davg[0, 0].item() == pytest.approx(s, rel=1e-13)
    assert dstd[0, 0].item() == 1e-2  # std(s) = 0 -> protection
    # a-values: (+sx, 0, 0) and (-sx, 0, 0): mean 0, mean square sx^2 / 3
    assert dstd[0, 1].item() == pytest.approx(sx / np.sqrt(3.0), rel=1e-13)
    assert torch.all(davg[1:] == 0.0)
    assert torch.all(dstd[1:] == 0.1)  # type 1 never appears as a center either
    assert desc.davg.dtype == torch.float64


def test_stats_in_float32_descriptor(water):
    """A float32 descriptor stores float32 statistics equal to the fp64 ones (rounded)."""
    coords, atype, cell = water
    g = build_graph(coords, atype, cell, rcut=RCUT)
    a64, s64 = compute_descriptor_stats(make_descriptor(), [g])
    a32, s32 = compute_descriptor_stats(make_descriptor(precision="float32"), [g.to(dtype=torch.float32)])
    assert a32.dtype == torch.float32 and s32.dtype == torch.float32
    torch.testing.assert_close(a32.double(), a64, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(s32.double(), s64, rtol=1e-5, atol=1e-7)


def _ghost_graphs():
    """An open cluster: 8 owned atoms with neighbor lists, 12 ghosts without (fold=False)."""
    rng = np.random.default_rng(3)
    pts = []
    while len(pts) < 20:
        p = rng.uniform(0, 5.5, 3)
        if all(np.linalg.norm(p - q) > 1.0 for q in pts):
            pts.append(p)
    coords = np.array(pts)
    atype = np.arange(20) % 2
    nloc = 8
    d = np.linalg.norm(coords[:nloc, None] - coords[None], axis=-1)
    nlist = -np.ones((nloc, 19), dtype=np.int64)
    for i in range(nloc):
        js = np.nonzero((d[i] < RCUT) & (np.arange(20) != i))[0]
        nlist[i, : len(js)] = js
    ghost = from_dense_nlist(coords, atype, nlist, nloc=nloc, fold=False)
    return coords, atype, nloc, ghost


def test_stats_ignore_ghost_nodes():
    coords, atype, nloc, ghost = _ghost_graphs()
    davg, dstd = compute_descriptor_stats(make_descriptor(sel=10), [ghost])
    d = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    rows = []
    for i in range(nloc):
        js = np.nonzero((d[i] < RCUT) & (np.arange(len(coords)) != i))[0]
        vec = coords[js] - coords[i]
        r = np.linalg.norm(vec, axis=1)
        sw = _switch(r)
        rows.append(np.concatenate([(sw / r)[:, None], vec * (sw / r**2)[:, None]], axis=1))
    ref_avg, ref_std = numpy_stats(rows, atype[:nloc], 2, 10)
    np.testing.assert_allclose(davg.numpy(), ref_avg, rtol=1e-12)
    np.testing.assert_allclose(dstd.numpy(), ref_std, rtol=1e-12)


# ------------------------------------------------------------------ energy bias
def test_energy_bias_recovers_per_type_energies():
    e_type = np.array([-93.75, -13.5, -155.125])  # eV per atom of type O, H, C
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 12, size=(25, 3))
    counts[0] = [5, 0, 0]  # include single-type frames
    counts[1] = [0, 7, 0]
    energies = counts @ e_type
    bias = compute_energy_bias(counts, energies)
    assert bias.shape == (3,)
    np.testing.assert_allclose(bias, e_type, rtol=1e-12)
    # lists work as well as arrays; noisy energies give the least-squares fit
    noisy = energies + rng.normal(scale=0.01, size=energies.shape)
    bias_n = compute_energy_bias(counts.tolist(), noisy.tolist())
    np.testing.assert_allclose(bias_n, np.linalg.lstsq(counts.astype(float), noisy, rcond=None)[0], rtol=1e-12)
    np.testing.assert_allclose(bias_n, e_type, atol=0.01)


def test_energy_bias_from_frame_compositions():
    """Frames of different compositions (water, water + H2, smaller clusters): exact recovery."""
    e_o, e_h = -187.5, -0.25
    frames = [(16, 32), (16, 34), (10, 20), (3, 10)]  # (n_O, n_H)
    counts = np.array(frames)
    energies = counts @ np.array([e_o, e_h])
    np.testing.assert_allclose(compute_energy_bias(counts, energies), [e_o, e_h], rtol=1e-12)


def test_energy_bias_shape_errors():
    with pytest.raises(ValueError, match="type_counts"):
        compute_energy_bias([[1, 2], [3, 4]], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="type_counts"):
        compute_energy_bias([1, 2, 3], [1.0, 2.0, 3.0])


# ------------------------------------------------------------------ data loader
@pytest.mark.skipif(not WATER_DATA.is_dir(),
                    reason=f"deepmd-kit's water example data not found at {WATER_DATA}: set DPGRAPH_WATER_DATA "
                           "to a copy of deepmd-kit's examples/water/data (the directory holding data_0..data_3)")
def test_load_water_system():
    s = load_system(WATER_DATA)
    assert s.type_map == ["O", "H"]
    nf, natoms = s.coords.shape[:2]
    assert nf >= 1 and natoms == len(s.atype)
    assert s.coords.shape == (nf, natoms, 3)
    assert s.boxes.shape == (nf, 3, 3)
    assert s.energy.shape == (nf,)
    assert s.force.shape == (nf, natoms, 3)
    assert s.n_frames == nf
    assert set(np.unique(s.atype).tolist()) <= {0, 1}
    assert np.count_nonzero(s.atype == 1) == 2 * np.count_nonzero(s.atype == 0)  # water
    assert np.isfinite(s.coords).all() and np.isfinite(s.energy).all()
    assert (np.abs(np.linalg.det(s.boxes)) > 1.0).all()
    # a frame turns into a valid graph, and its statistics are finite and positive
    g = build_graph(s.coords[0], s.atype, s.boxes[0], rcut=RCUT)
    davg, dstd = compute_descriptor_stats(make_descriptor(), [g])
    assert torch.isfinite(davg).all() and (dstd > 0).all()


def _write_system(root: Path, nsets: int, nf: int, natoms: int, with_virial: bool):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    atype = np.arange(natoms) % 2
    (root / "type.raw").write_text("\n".join(map(str, atype)) + "\n")
    (root / "type_map.raw").write_text("O\nH\n")
    data = {}
    for k in range(nsets):
        d = root / f"set.{k:03d}"
        d.mkdir()
        arrays = {
            "coord": rng.normal(size=(nf, natoms * 3)),
            "box": np.tile((np.eye(3) * (10 + k)).reshape(1, 9), (nf, 1)),
            "energy": rng.normal(size=(nf,)),
            "force": rng.normal(size=(nf, natoms * 3)),
        }
        if with_virial:
            arrays["virial"] = rng.normal(size=(nf, 9))
        for name, a in arrays.items():
            np.save(d / f"{name}.npy", a)
            data.setdefault(name, []).append(a)
    return atype, {k: np.concatenate(v) for k, v in data.items()}


def test_load_system_concatenates_sets(tmp_path):
    atype, data = _write_system(tmp_path / "sys", nsets=2, nf=3, natoms=5, with_virial=True)
    s = load_system(tmp_path / "sys")
    assert s.n_frames == 6 and s.type_map == ["O", "H"]
    np.testing.assert_array_equal(s.atype, atype)
    np.testing.assert_array_equal(s.coords, data["coord"].reshape(6, 5, 3))
    np.testing.assert_array_equal(s.boxes, data["box"].reshape(6, 3, 3))
    np.testing.assert_array_equal(s.energy, data["energy"])
    np.testing.assert_array_equal(s.force, data["force"].reshape(6, 5, 3))
    np.testing.assert_array_equal(s.virial, data["virial"])


def test_load_system_optional_labels_and_errors(tmp_path):
    _write_system(tmp_path / "sys", nsets=1, nf=2, natoms=4, with_virial=False)
    s = load_system(str(tmp_path / "sys"))
    assert s.virial is None and s.energy.shape == (2,)
    with pytest.raises(FileNotFoundError, match="type.raw"):
        load_system(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "type.raw").write_text("0\n")
    with pytest.raises(FileNotFoundError, match="set"):
        load_system(tmp_path / "empty")
