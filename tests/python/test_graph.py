"""NeighborGraph validation and builders: cell list vs brute force, dense nlist, errors."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from dpgraph.graph import GraphValidationError, build_graph, from_dense_nlist
from dpgraph.graph.builders import perpendicular_widths
from graph_reference import brute_force_edges, edge_set


# ---------------------------------------------------------------- helpers
def random_cell(rng, skew: float) -> np.ndarray:
    """(3, 3) rows = lattice vectors (Å): lengths 3-9 Å, lower-triangular skew, random rotation."""
    lat = np.diag(rng.uniform(3.0, 9.0, 3))
    lat[1, 0], lat[2, 0], lat[2, 1] = rng.uniform(-skew, skew, 3) * lat.diagonal().mean()
    rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return lat @ rot


def random_coords(rng, cell, n, lo=-0.3, hi=1.3) -> np.ndarray:
    """(n, 3) Å, fractional coords in [lo, hi) so that wrapping is exercised."""
    return rng.uniform(lo, hi, (n, 3)) @ cell


def assert_same_graph(g, ref):
    assert edge_set(g) == edge_set(ref)
    assert torch.equal(g.atype, ref.atype)
    assert torch.equal(g.n_node, ref.n_node)
    assert torch.equal(g.dst, ref.dst)  # same edge set and same center-major order
    assert torch.equal(g.src, ref.src)
    assert g.edge_vec.dtype == ref.edge_vec.dtype


def small_graph():
    coords = np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 1.5, 0]])
    return build_graph(coords, [0, 1, 1], None, rcut=3.0)


# ------------------------------------------------------------- validate()
def _replace(g, **kw):
    return dataclasses.replace(g, **{k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in kw.items()})


def test_small_graph_is_valid():
    g = small_graph()
    assert g.n_edges == 6 + 2 and int(g.edge_mask.sum()) == 6
    assert g.dst[:6].tolist() == [0, 0, 1, 1, 2, 2]


def test_validate_wrong_index_dtype():
    g = small_graph()
    with pytest.raises(GraphValidationError, match="edge_index must be int64"):
        _replace(g, edge_index=g.edge_index.to(torch.int32)).validate()


def test_validate_unsorted_dst():
    g = small_graph()
    ei = g.edge_index.clone()
    ei[:, [0, 5]] = ei[:, [5, 0]]
    with pytest.raises(GraphValidationError, match="sorted by dst"):
        _replace(g, edge_index=ei).validate()


def test_validate_missing_padding():
    g = small_graph()
    mask = g.edge_mask.clone()
    mask[-1] = True
    with pytest.raises(GraphValidationError, match="last 2 edges must be masked padding"):
        _replace(g, edge_mask=mask).validate()


def test_validate_too_few_edges():
    g = small_graph()
    with pytest.raises(GraphValidationError, match="at least 2 edges"):
        _replace(g, edge_index=g.edge_index[:, :1], edge_vec=g.edge_vec[:1], edge_mask=g.edge_mask[:1]).validate()


def test_validate_out_of_range_index():
    g = small_graph()
    ei = g.edge_index.clone()
    ei[0, 0] = 3
    with pytest.raises(GraphValidationError, match=r"outside \[0, N\) with N = 3"):
        _replace(g, edge_index=ei).validate()


def test_validate_non_finite_vec():
    g = small_graph()
    vec = g.edge_vec.clone()
    vec[2, 1] = float("nan")
    with pytest.raises(GraphValidationError, match=r"non-finite entries \(edges \[2\]\)"):
        _replace(g, edge_vec=vec).validate()


def test_validate_n_node_sum():
    g = small_graph()
    with pytest.raises(GraphValidationError, match=r"sum\(n_node\[:, 0\]\) = 4 but atype has 3 nodes"):
        _replace(g, n_node=torch.tensor([[4, 3]])).validate()


def test_validate_ntypes():
    g = small_graph()
    g.validate(ntypes=2)
    with pytest.raises(GraphValidationError, match="type index 1 but the model has 1 types"):
        g.validate(ntypes=1)


def test_validate_model_dtype():
    g = small_graph()
    with pytest.raises(GraphValidationError, match="model runs in torch.float32"):
        g.validate(dtype=torch.float32)


# ------------------------------------------------ build_graph vs reference
def test_random_triclinic_boxes_match_brute_force():
    rng = np.random.default_rng(1234)
    thin, very_thin = 0, 0
    pbcs = list(itertools.product([True, False], repeat=3))
    for case in range(20):
        rcut = float(rng.uniform(2.5, 5.0))
        skew = 2.5 if case % 3 == 0 else 0.6  # every third cell strongly skewed
        cell = random_cell(rng, skew)
        width = perpendicular_widths(torch.as_tensor(cell)).min().item()
        if width < rcut / 3:  # keep the brute force affordable
            cell = cell * (rcut / 3 / width) * 1.01
            width = rcut / 3 * 1.01
        thin += width < 2 * rcut
        very_thin += width < rcut
        n = int(rng.integers(1, 25))
        pbc = pbcs[case % len(pbcs)] if case % 5 else True
        coords = random_coords(rng, cell, n)
        atype = rng.integers(0, 3, n)
        g = build_graph(coords, atype, cell, pbc, rcut=rcut)
        ref = brute_force_edges(coords, atype, cell, pbc, rcut)
        assert_same_graph(g, ref)
        r = g.edge_vec[g.edge_mask].norm(dim=1)
        assert bool((r < rcut).all() and (r > 0).all())
    assert thin >= 5 and very_thin >= 2, (thin, very_thin)


def test_open_boundaries_match_brute_force():
    rng = np.random.default_rng(7)
    coords = rng.uniform(-6, 6, (40, 3))
    atype = rng.integers(0, 2, 40)
    g = build_graph(coords, atype, None, rcut=4.0)
    assert_same_graph(g, brute_force_edges(coords, atype, None, True, 4.0))
    # a periodic cell with pbc all False is ignored: same as open boundaries
    g2 = build_graph(coords, atype, np.eye(3) * 3.0, False, rcut=4.0)
    assert_same_graph(g2, g)


def test_slab_and_wire():
    rng = np.random.default_rng(3)
    cell = np.array([[6.0, 0, 0], [-2.0, 5.5, 0], [0.5, 0.5, 20.0]])
    coords = random_coords(rng, cell, 30, lo=0.0, hi=1.0)
    for pbc in [(True, True, False), (False, True, False), (True, False, True)]:
        g = build_graph(coords, np.zeros(30, int), cell, pbc, rcut=4.5)
        assert_same_graph(g, brute_force_edges(coords, np.zeros(30, int), cell, pbc, 4.5))


def test_several_frames():
    rng = np.random.default_rng(11)
    nf, n, rcut = 3, 8, 3.5
    cells = np.stack([random_cell(rng, 0.5) for _ in range(nf)])
    coords = np.stack([random_coords(rng, c, n) for c in cells])
    atype = rng.integers(0, 2, (nf, n))
    g = build_graph(torch.as_tensor(coords), atype, cells.reshape(nf, 9), True, rcut=rcut)
    ref = brute_force_edges(coords, atype, cells, True, rcut)
    assert_same_graph(g, ref)
    assert g.n_node.tolist() == [[n, n]] * nf
    assert g.atype.tolist() == atype.reshape(-1).tolist()
    # each frame alone gives the frame's block of the batched graph
    for f in range(nf):
        gf = build_graph(coords[f], atype[f], cells[f], True, rcut=rcut)
        assert {e[1:] for e in edge_set(g) if e[0] == f} == {e[1:] for e in edge_set(gf)}


def test_single_atom_in_tiny_periodic_box_sees_its_images():
    a = 1.5
    g = build_graph(np.zeros((1, 3)), [0], np.eye(3) * a, True, rcut=3.2)
    # images n*a with |n|^2 * a^2 < rcut^2: |n|^2 in {1, 2, 3, 4}: 6 + 12 + 8 + 6
    assert int(g.edge_mask.sum()) == 32
    assert bool((g.src[g.edge_mask] == 0).all())
    assert_same_graph(g, brute_force_edges(np.zeros((1, 3)), [0], np.eye(3) * a, True, 3.2))


def test_single_atom_open_box_has_only_padding():
    g = build_graph(np.ones((1, 3)), [1], None, rcut=5.0, n_pad=3)
    assert g.n_edges == 3 and not bool(g.edge_mask.any())
    assert g.edge_index.abs().sum() == 0 and g.edge_vec.abs().sum() == 0
    assert g.n_node.tolist() == [[1, 1]]


def test_dtype_and_device_conventions():
    coords = torch.tensor([[0.0, 0, 0], [1.2, 0, 0]], dtype=torch.float32)
    g = build_graph(coords, torch.tensor([0, 1]), None, rcut=2.0)
    assert g.edge_vec.dtype == torch.float32 and g.atype.dtype == torch.int64
    g64 = build_graph(coords, [0, 1], None, rcut=2.0, dtype=torch.float64)
    assert g64.edge_vec.dtype == torch.float64
    assert build_graph(coords.numpy().astype(np.float64), [0, 1], rcut=2.0, cell=None).edge_vec.dtype == torch.float64
    assert g.edge_vec[0].tolist() == pytest.approx([1.2, 0, 0])  # r_src - r_dst for dst = 0


# ------------------------------------------------------------ dense nlist
def _dense_system(rng, nf=2, n=10, rcut=3.5):
    """Local atoms in a box, all 26 image copies as ghosts, brute-force dense nlist."""
    cell = np.array([[7.5, 0, 0], [1.5, 7.0, 0], [-1.0, 0.5, 7.2]])
    shifts = np.array([s for s in itertools.product([0, -1, 1], repeat=3)], dtype=float)  # zero first
    coords = np.stack([random_coords(rng, cell, n, 0.0, 1.0) for _ in range(nf)])
    ext = (coords[:, None] + (shifts @ cell)[None, :, None]).reshape(nf, -1, 3)  # (nf, 27 n, 3)
    mapping = np.tile(np.arange(n), (nf, 27))
    atype = rng.integers(0, 2, (nf, n))
    atype_ext = np.tile(atype, (1, 27))
    r = np.linalg.norm(ext[:, None, :, :] - coords[:, :, None, :], axis=-1)  # (nf, n, nall)
    inside = (r > 0) & (r < rcut)
    nnei = inside.sum(-1).max() + 3
    nlist = -np.ones((nf, n, nnei), dtype=np.int64)
    for f, i in itertools.product(range(nf), range(n)):
        js = rng.permutation(np.nonzero(inside[f, i])[0])  # slot order must not matter
        nlist[f, i, : len(js)] = js
    return cell, coords, atype, ext, atype_ext, nlist, mapping, rcut


def test_from_dense_nlist_fold_matches_build_graph():
    rng = np.random.default_rng(5)
    cell, coords, atype, ext, atype_ext, nlist, mapping, rcut = _dense_system(rng)
    nf, n = atype.shape
    g = from_dense_nlist(ext, atype_ext, nlist, mapping=mapping, fold=True)
    ref = build_graph(coords, atype, cell, True, rcut=rcut)
    assert_same_graph(g, ref)
    assert g.n_node.tolist() == [[n, n]] * nf


def test_from_dense_nlist_ghost_nodes():
    rng = np.random.default_rng(6)
    cell, coords, atype, ext, atype_ext, nlist, mapping, rcut = _dense_system(rng)
    nf, n = atype.shape
    nall = ext.shape[1]
    g = from_dense_nlist(ext, atype_ext, nlist, nloc=n, mapping=mapping, fold=False)
    assert g.n_node.tolist() == [[nall, n]] * nf
    assert g.atype.tolist() == atype_ext.reshape(-1).tolist()
    dst_local = g.dst[g.edge_mask] % nall
    assert bool((dst_local < n).all())  # ghosts have no incoming edges
    # mapping the ghost sources to their owners gives the folded graph
    folded = {(f, d, int(mapping[f, s]), *v) for f, d, s, *v in edge_set(g)}
    assert folded == edge_set(build_graph(coords, atype, cell, True, rcut=rcut))
    # without a mapping ghosts stay as nodes too
    assert edge_set(from_dense_nlist(ext, atype_ext, nlist)) == edge_set(g)


def test_from_dense_nlist_rcut_filter():
    rng = np.random.default_rng(8)
    cell, coords, atype, ext, atype_ext, nlist, mapping, rcut = _dense_system(rng)
    g = from_dense_nlist(ext, atype_ext, nlist, mapping=mapping, rcut=2.5)
    assert_same_graph(g, build_graph(coords, atype, cell, True, rcut=2.5))


# ------------------------------------------------------------------ errors
def test_error_nan_coordinates():
    coords = np.zeros((4, 3)) + np.arange(4)[:, None]
    coords[2, 1] = np.nan
    with pytest.raises(ValueError, match="coordinates of atom 2 .* NaN or inf"):
        build_graph(coords, np.zeros(4, int), None, rcut=3.0)


def test_error_overlapping_atoms():
    coords = np.array([[0.0, 0, 0], [1.0, 1, 1], [2.0, 0, 0], [1.0, 1, 1 + 1e-8]])
    with pytest.raises(ValueError, match="overlapping atoms in frame 0: atoms (1 and 3|3 and 1)"):
        build_graph(coords, np.zeros(4, int), np.eye(3) * 10, True, rcut=3.0)
    # an atom and the periodic image of another one
    coords = np.array([[0.0, 0, 0], [10.0, 0, 0]])
    with pytest.raises(ValueError, match="overlapping atoms"):
        build_graph(coords, [0, 0], np.eye(3) * 10, True, rcut=3.0)


def test_error_singular_cell():
    cell = np.array([[4.0, 0, 0], [0, 4.0, 0], [4.0, 4.0, 0]])
    with pytest.raises(ValueError, match="cell of frame 0 is singular or degenerate"):
        build_graph(np.zeros((1, 3)), [0], cell, True, rcut=3.0)
    with pytest.raises(ValueError, match="singular"):
        build_graph(np.zeros((1, 3)), [0], np.zeros((3, 3)), (True, False, False), rcut=3.0)


def test_error_bad_arguments():
    with pytest.raises(ValueError, match="rcut must be a positive"):
        build_graph(np.zeros((2, 3)), [0, 0], None, rcut=0.0)
    with pytest.raises(ValueError, match=r"atype has shape \(3,\) but coords has 2 atoms"):
        build_graph(np.eye(2, 3), [0, 0, 0], None, rcut=3.0)
    with pytest.raises(ValueError, match="n_pad must be >= 2"):
        build_graph(np.eye(2, 3), [0, 0], None, rcut=3.0, n_pad=1)
    with pytest.raises(ValueError, match="pbc must be a bool or 3 bools"):
        build_graph(np.eye(2, 3), [0, 0], np.eye(3) * 5, (True, False), rcut=3.0)


# ------------------------------------------------------------- large system
def test_large_water_density_system():
    """3000 atoms at 0.1 atoms/Å^3, rcut 6 Å: the cell list runs, and the
    neighbors of 150 sampled centers agree exactly with brute force."""
    rng = np.random.default_rng(2024)
    n, rcut = 3000, 6.0
    cell = np.array([[31.0, 0, 0], [4.0, 30.0, 0], [-3.0, 2.0, 32.0]])
    cell *= (n / 0.1 / abs(np.linalg.det(cell))) ** (1 / 3)
    coords = random_coords(rng, cell, n, 0.0, 1.0)
    atype = rng.integers(0, 2, n)
    g = build_graph(coords, atype, cell, True, rcut=rcut)
    deg = torch.bincount(g.dst[g.edge_mask], minlength=n)
    expected = 0.1 * 4 / 3 * np.pi * rcut**3  # ~90 neighbors
    assert abs(deg.double().mean().item() - expected) < 0.05 * expected
    assert int(g.edge_mask.sum()) % 2 == 0  # every pair is seen from both ends

    centers = torch.as_tensor(rng.choice(n, 150, replace=False))
    ref = brute_force_edges(coords, atype, cell, True, rcut, centers=centers)
    ref_deg = torch.bincount(ref.dst[ref.edge_mask], minlength=n)
    assert torch.equal(deg[centers], ref_deg[centers])
    # same ordering convention: the sampled centers' edges appear in the same order
    sel = g.edge_mask & torch.isin(g.dst, centers)
    assert torch.equal(g.dst[sel], ref.dst[ref.edge_mask])
    assert torch.equal(g.src[sel], ref.src[ref.edge_mask])
    torch.testing.assert_close(g.edge_vec[sel], ref.edge_vec[ref.edge_mask], rtol=0, atol=1e-9)
