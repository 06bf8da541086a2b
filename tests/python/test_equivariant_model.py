"""Physics of the SO(3)-equivariant attention energy model (descriptor ``sezm``).

* node features of degree l rotate with the Wigner D-matrix (e3nn reference,
  lmax 1..3, every block), and pick up (-1)^l under inversion;
* energy invariant, forces / virials rotate; translation, permutation invariance;
* force = -finite difference, virial = strain derivative (fp64);
* energy and forces continuous when a neighbor crosses rcut;
* a center without real edges and padding edges (anywhere, garbage vectors):
  finite outputs and gradients, padding contributes exactly zero;
* several frames in one graph; MPI-rank graphs with ghosts out to
  n_blocks * rcut that carry their own edges == the periodic single-rank graph;
* float32 vs float64, config errors, receptive field in the metadata,
  statistics, a few training steps; one AOTInductor export (marked slow).

Systems and helpers come from test_physics (rcut 4 Å, 20-32 atoms).
"""

from __future__ import annotations

import copy
import functools
import itertools
import math

import numpy as np
import pytest
import torch

from dpgraph.export.metadata import build_metadata
from dpgraph.graph import NeighborGraph, build_graph
from dpgraph.models import build_model, compute_descriptor_stats

from test_physics import (CLUSTER_TYPES, RCUT, _fold, _probe_coords, assert_close, check_forces_fd,
                          check_virial_fd, concat_graphs, graph_of, open_system, periodic_system, run, system)
from wigner_reference import random_rotation, wigner_d

RTOL_INV = 1e-10


def sezm_config(lmax: int = 2, **extra) -> dict:
    desc = {"type": "sezm", "rcut": RCUT, "rcut_smth": 0.5, "lmax": lmax, "channels": 8, "n_focus": 2,
            "n_heads": 2, "n_blocks": 2, "n_radial": 6, "radial_neuron": 16, "seed": 1, **extra}
    return {"type_map": ["O", "H"], "descriptor": desc, "fitting_net": {"neuron": [16, 16], "seed": 2}}


def _scaled(model):
    """Random non-trivial attention parameters, biases, forces O(1) eV/Å on the periodic system."""
    gen = torch.Generator().manual_seed(5)
    coords, atype, cell = periodic_system()
    g = build_graph(coords, atype, cell, rcut=RCUT, dtype=model.dtype)
    with torch.no_grad():
        for name, p in model.descriptor.named_parameters():
            if name.endswith("z_bias_raw") or name.endswith("path_weight") or name.endswith("degree_weight"):
                p.add_(0.3 * torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype))
        model.out_bias.copy_(torch.tensor([-2.5, -0.75], dtype=model.dtype))
        fmax = float(model.evaluate(g)["force"].abs().max())
        model.fitting.net[-1].w.mul_(1.0 / fmax)
    return model.eval()


@functools.lru_cache(maxsize=None)
def get_model(lmax: int = 2, **extra):
    return _scaled(build_model(sezm_config(lmax, **extra)))


def _features(model, coords, atype, cell):
    g = graph_of(coords, atype, cell)
    with torch.no_grad():
        return model.descriptor.node_features(g.atype, g.src, g.dst, g.edge_vec, g.edge_mask, all_blocks=True)


# ------------------------------------------------------------ equivariance
@pytest.mark.parametrize("lmax", [1, 2, 3])
@pytest.mark.parametrize("kind", ["open", "pbc"])
def test_features_rotate_with_wigner_d(lmax, kind):
    model = get_model(lmax)
    coords, atype, cell = system(kind)
    ref = _features(model, coords, atype, cell)
    assert float(ref[-1][:, 1:].abs().max()) > 1e-2, "degree > 0 features must be populated"
    for seed, reflect in [(1, False), (2, False), (3, True)]:
        rot = random_rotation(seed, reflect)
        d = torch.from_numpy(wigner_d(rot, lmax))
        out = _features(model, coords @ rot.T, atype, None if cell is None else cell @ rot.T)
        for x_ref, x_rot in zip(ref, out):
            want = torch.einsum("ab,nbfc->nafc", d, x_ref)
            err = float((x_rot - want).abs().max()) / float(x_ref.abs().max())
            assert err < 1e-12, (seed, reflect, err)


@pytest.mark.parametrize("reflect", [False, True])
@pytest.mark.parametrize("kind", ["pbc", "open"])
def test_energy_invariant_forces_rotate(kind, reflect):
    coords, atype, cell = system(kind)
    model = get_model(3)
    rot = random_rotation(4, reflect)
    ref = run(model, coords, atype, cell)
    out = run(model, coords @ rot.T, atype, None if cell is None else cell @ rot.T)
    assert_close(out["energy"], ref["energy"], RTOL_INV, what="energy")
    assert_close(out["atom_energy"], ref["atom_energy"], RTOL_INV, np.abs(ref["energy"]).max(), "atom energy")
    assert_close(out["force"], ref["force"] @ rot.T, RTOL_INV, what="force")
    assert_close(out["virial"].reshape(3, 3), rot @ ref["virial"].reshape(3, 3) @ rot.T, RTOL_INV, what="virial")
    av = ref["atom_virial"].reshape(-1, 3, 3)
    assert_close(out["atom_virial"].reshape(-1, 3, 3), rot @ av @ rot.T, RTOL_INV, np.abs(av).max(), "atom virial")


@pytest.mark.parametrize("kind", ["pbc", "open"])
def test_translation_and_permutation_invariance(kind):
    coords, atype, cell = system(kind)
    model = get_model(2)
    ref = run(model, coords, atype, cell)
    moved = run(model, coords + np.array([13.7, -5.3, 2.9]), atype, cell)
    perm = np.random.default_rng(4).permutation(len(coords))
    permuted = run(model, coords[perm], atype[perm], cell)
    for key in ("energy", "atom_energy", "force", "virial", "atom_virial"):
        scale = max(np.abs(ref[key]).max(), 1.0)
        assert_close(moved[key], ref[key], RTOL_INV, scale, key)
        want = ref[key] if key in ("energy", "virial") else ref[key][perm]
        assert_close(permuted[key], want, RTOL_INV, scale, key)


def test_relative_positional_encoding_switches():
    """rpe_qk=False (keys without geometry) stays equivariant; without any relative
    positional encoding no direction enters: degrees l > 0 stay zero (e3x semantics)."""
    coords, atype, cell = open_system()
    model = get_model(2, rpe_qk=False)
    ref = _features(model, coords, atype, cell)[-1]
    rot = random_rotation(6)
    out = _features(model, coords @ rot.T, atype, cell)[-1]
    want = torch.einsum("ab,nbfc->nafc", torch.from_numpy(wigner_d(rot, 2)), ref)
    assert float((out - want).abs().max()) < 1e-12 * float(ref.abs().max())
    assert float(ref[:, 1:].abs().max()) > 1e-2
    blind = get_model(2, rpe_qk=False, rpe_v=False)
    assert float(_features(blind, coords, atype, cell)[-1][:, 1:].abs().max()) == 0.0


# ------------------------------------------------------- derivatives (FD)
@pytest.mark.parametrize("lmax,kind", [(3, "pbc"), (3, "open"), (0, "open")])
def test_force_is_minus_energy_gradient(lmax, kind):
    coords, atype, cell = system(kind)
    check_forces_fd(get_model(lmax), coords, atype, cell, atoms=[0, 7, 13], n_dirs=3)


@pytest.mark.parametrize("kind", ["pbc", "open"])
def test_virial_is_strain_derivative(kind):
    coords, atype, cell = system(kind)
    out = check_virial_fd(get_model(2), coords, atype, cell)
    assert abs(out["atom_virial"].sum(0) - out["virial"][0]).max() <= 1e-12 * np.abs(out["virial"]).max()
    assert np.abs(out["force"].sum(0)).max() <= 1e-12 * max(1.0, np.abs(out["force"]).max())


# ------------------------------------------------------------- smoothness
def test_smooth_across_rcut():
    """A probe atom leaving rcut of one cluster atom: its force decays smoothly to exactly
    zero at rcut (C2 envelope squared as the attention weight, null mass in the softmax),
    E and F have bounded slopes along the path and no step at rcut."""
    model = get_model(2)
    ds = RCUT + np.linspace(-0.6, 0.1, 36)
    outs = [run(model, _probe_coords(d), CLUSTER_TYPES, None) for d in ds]
    e = np.array([o["energy"][0] for o in outs])
    f = np.array([o["force"] for o in outs])
    step = ds[1] - ds[0]
    fprobe = np.abs(f[:, -1]).max(1)
    fscale = np.abs(f).max()
    assert fprobe[0] > 1e-4, "the probe must feel the cluster inside rcut"
    assert np.all(fprobe[ds >= RCUT] == 0.0), "beyond rcut the probe is free"
    assert np.abs(np.diff(e)).max() <= 2 * fprobe.max() * step
    assert np.abs(np.diff(f, axis=0)).max() <= 0.1 * fscale * step
    lo, hi = (run(model, _probe_coords(RCUT + s * 1e-9), CLUSTER_TYPES, None) for s in (-1, 1))
    assert abs(lo["energy"][0] - hi["energy"][0]) < 1e-13 * fscale
    assert np.abs(lo["force"] - hi["force"]).max() < 1e-12 * fscale


# ------------------------------------------------- empty centers, padding
def test_center_without_edges_and_padding():
    model = get_model(2)
    coords, atype, _ = open_system()
    far = np.vstack([coords, [[60.0, 0.0, 0.0]]])  # an atom with no neighbor at all
    t = np.append(atype, 1)
    g = graph_of(far, t, None)
    out = model.evaluate(g)
    lone = model.evaluate(graph_of(far[-1:], t[-1:], None))
    assert all(torch.isfinite(v).all() for v in out.values())
    assert float(out["force"][-1].abs().max()) == 0.0
    assert float(lone["force"].abs().max()) == 0.0
    assert abs(float(out["atom_energy"][-1] - lone["atom_energy"][0])) < 1e-13
    # masked edges inside the list and at the end, with garbage vectors and endpoints
    src, dst, vec = g.real_edges()
    k = 40
    junk_i = torch.tensor([[3, 20], [20, 5]])
    junk_v = torch.tensor([[0.0, 0.0, 0.0], [1e3, -1e3, 0.5]], dtype=vec.dtype)
    idx = torch.cat([torch.stack([src[:k], dst[:k]]), junk_i, torch.stack([src[k:], dst[k:]]), junk_i.flip(0)], 1)
    ev = torch.cat([vec[:k], junk_v, vec[k:], junk_v.flip(0)])
    mask = torch.cat([torch.ones(k, dtype=torch.bool), torch.zeros(2, dtype=torch.bool),
                      torch.ones(len(src) - k, dtype=torch.bool), torch.zeros(2, dtype=torch.bool)])
    g2 = NeighborGraph(g.atype, g.n_node, idx, ev, mask)
    out2 = model.evaluate(g2)
    for key in out:
        assert torch.equal(out2[key], out[key]), key
    # gradients: finite, exactly zero on padding edges, also through the force (training)
    model.train()
    ev_g = ev.clone().requires_grad_(True)
    pred = model(g2.atype, g2.n_node, g2.edge_index, ev_g, g2.edge_mask, create_graph=True)
    loss = pred[0].square().sum() + pred[2].square().sum()
    grads = torch.autograd.grad(loss, [ev_g, *model.parameters()], allow_unused=True)
    model.eval()
    assert all(gr is None or torch.isfinite(gr).all() for gr in grads)
    assert float(grads[0][~mask].abs().max()) == 0.0


# -------------------------------------------------------------- multi-frame
def test_frames_of_different_sizes():
    model = get_model(2)
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


# -------------------------------------------------------------- ghost nodes
def rank_nodes(coords, cell, owned, reach: float):
    """The atoms an MPI rank of an MD engine holds: the owned atoms (wrapped into
    the box) first, then every other atom or periodic image within ``reach`` of an
    owned atom (ghosts). Returns their positions and global owner indices."""
    inv = np.linalg.inv(cell)
    wrapped = ((coords @ inv) % 1.0) @ cell
    owned = np.asarray(owned)
    n = len(coords)
    widths = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    shell = int(np.ceil(reach / widths.min())) + 1
    pos, owner = [wrapped[owned]], [owned]
    for s in itertools.product(range(-shell, shell + 1), repeat=3):
        cand = np.arange(n) if any(s) else np.setdiff1d(np.arange(n), owned)
        img = wrapped[cand] + np.array(s, dtype=float) @ cell
        d = np.linalg.norm(img[:, None, :] - wrapped[owned][None], axis=-1).min(1)
        pos.append(img[d < reach])
        owner.append(cand[d < reach])
    return np.concatenate(pos), np.concatenate(owner)


def rank_graph(coords, atype, cell, owned, reach: float, rcut: float = RCUT):
    """The graph an MPI rank of an MD engine passes to a message-passing model.

    Nodes: rank_nodes (owned first, then ghosts out to ``reach``). Edges: every
    pair of nodes closer than ``rcut``, ghost centers included. Returns the
    graph and the global owner index of every node.
    """
    pos, owner = rank_nodes(coords, cell, owned, reach)
    dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    near = dist < rcut
    np.fill_diagonal(near, False)
    dst, src = np.nonzero(near)  # sorted by dst
    pad = 2
    idx = np.concatenate([np.stack([src, dst]), np.zeros((2, pad), dtype=np.int64)], 1)
    vec = np.concatenate([pos[src] - pos[dst], np.zeros((pad, 3))])
    mask = np.concatenate([np.ones(len(src), dtype=bool), np.zeros(pad, dtype=bool)])
    g = NeighborGraph(torch.as_tensor(atype[owner]), torch.tensor([[len(pos), len(owned)]]),
                      torch.as_tensor(idx), torch.as_tensor(vec), torch.as_tensor(mask))
    return g.validate(), owner


def test_ghost_nodes_two_ranks():
    """Two ranks, each with ghosts (and their edges) out to n_blocks * rcut: summed owned
    energies, virials and folded forces == the periodic single-rank graph. With ghosts
    only out to rcut (a local model's layout) the energies are wrong."""
    model = get_model(2)
    assert model.receptive_field == 2 * RCUT
    coords, atype, cell = periodic_system()
    n = len(coords)
    frac_x = (coords @ np.linalg.inv(cell))[:, 0] % 1.0
    halves = [np.nonzero(frac_x < 0.5)[0], np.nonzero(frac_x >= 0.5)[0]]
    e_tot, vir, force, avir = 0.0, np.zeros(9), np.zeros((n, 3)), np.zeros((n, 9))
    for owned in halves:
        g, owner = rank_graph(coords, atype, cell, owned, model.receptive_field)
        nown = len(owned)
        assert g.n_nodes > 3 * n and bool((g.dst[g.edge_mask] >= nown).any()), "ghosts carry edges"
        out = {k: v.numpy() for k, v in model.evaluate(g).items()}
        assert np.all(out["atom_energy"][nown:] == 0.0)
        e_tot += out["atom_energy"][:nown].sum()
        vir += out["virial"][0]
        force += _fold(out["force"], owner, n)
        avir += _fold(out["atom_virial"], owner, n)
    ref = run(model, coords, atype, cell)
    assert_close(e_tot, ref["energy"][0], 1e-12, what="energy")
    assert_close(vir, ref["virial"][0], 1e-12, what="virial")
    assert_close(force, ref["force"], 1e-12, what="force")
    assert_close(avir, ref["atom_virial"], 1e-12, what="atom virial")
    g_short, _ = rank_graph(coords, atype, cell, halves[0], RCUT)
    short = model.evaluate(g_short)["atom_energy"][: len(halves[0])].numpy()
    assert np.abs(short - ref["atom_energy"][halves[0]]).max() > 1e-6


# ------------------------------------------------------------- precision
def test_float32_matches_float64():
    m64 = get_model(2)
    cfg = copy.deepcopy(m64.config)
    cfg["descriptor"]["precision"] = cfg["fitting_net"]["precision"] = "float32"
    m32 = build_model(cfg)
    m32.load_state_dict({k: v.to(torch.float32) if v.is_floating_point() else v for k, v in m64.state_dict().items()})
    coords, atype, cell = periodic_system()
    out = m32.evaluate(graph_of(coords, atype, cell, dtype=torch.float32))
    assert all(v.dtype == torch.float32 for v in out.values())
    ref = run(m64, coords, atype, cell)
    for key in ("energy", "force", "virial"):
        assert_close(out[key].double().numpy(), ref[key], 1e-5, what=key)


# ---------------------------------------------------------- config, plumbing
def test_config_errors():
    for bad, msg in [({"lmax": 4}, "lmax"), ({"channels": 6, "n_heads": 4}, "divisible"),
                     ({"rcut_smth": 5.0}, "rcut_smth"), ({"n_blocks": 0}, "n_blocks"), ({"sel": 10}, "sel")]:
        with pytest.raises(ValueError, match=msg):
            build_model(sezm_config(**bad))


def test_pair_exclude_types():
    """Model-level pair_exclude_types: those pairs are no neighbors (== masking their edges)."""
    cfg = sezm_config(2)
    excl = build_model({**cfg, "pair_exclude_types": [[0, 1]]})
    base = build_model(cfg)
    g = graph_of(*open_system())
    keep = g.edge_mask & (g.atype[g.src] == g.atype[g.dst])
    out = excl.evaluate(g)
    ref = base.evaluate(NeighborGraph(g.atype, g.n_node, g.edge_index, g.edge_vec, keep))
    for key in out:
        assert_close(out[key].numpy(), ref[key].numpy(), 1e-12, max(float(ref[key].abs().max()), 1.0), key)


def test_receptive_field_metadata_and_stats():
    model = build_model(sezm_config(n_blocks=3))
    d = model.descriptor
    assert d.receptive_field == model.receptive_field == 3 * RCUT and d.dim_out == 16
    meta = build_metadata(model, cpu_isa="avx2")
    assert float(meta["receptive_field"]) == 3 * RCUT and float(meta["rcut"]) == RCUT
    before = {k: v.clone() for k, v in model.state_dict().items()}
    davg, dstd = compute_descriptor_stats(d, [graph_of(*periodic_system())])
    assert davg.shape == (2, 0) and dstd.shape == (2, 0)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    se = build_model({"type_map": ["O", "H"], "descriptor": {"type": "se_atten", "rcut": 4.0, "rcut_smth": 0.5,
                                                             "sel": 20}, "fitting_net": {"neuron": [8]}})
    assert float(build_metadata(se, cpu_isa="avx2")["receptive_field"]) == 4.0


def test_example_config_and_cli_loader():
    from dpgraph.app.cli import _load_model
    from dpgraph.samples import example_equivariant_config

    model = _load_model("example-equivariant")
    assert model.config == example_equivariant_config()
    assert model.descriptor.receptive_field == model.descriptor.n_blocks * model.rcut
    coords, atype, cell = periodic_system()
    out = model.evaluate(build_graph(coords, atype, cell, rcut=model.rcut))
    assert all(torch.isfinite(v).all() for v in out.values())


def test_training_steps(tmp_path):
    """The project's trainer (forces through create_graph=True) trains the model."""
    from dpgraph.train import Trainer, error_table, predict
    from test_train import make_input, write_system

    write_system(tmp_path / "sys0", nframes=4, seed=0)
    doc = make_input(tmp_path, [tmp_path / "sys0"], steps=40, disp_freq=20, save_freq=40)
    doc["model"] = sezm_config(1)
    tr = Trainer(doc, log=lambda *_: None)
    before = error_table(predict(tr.model, tr.systems))["all"]["rmse_f"]
    tr.run()
    after = error_table(predict(tr.model, tr.systems))["all"]["rmse_f"]
    assert math.isfinite(after) and after < 0.5 * before, (before, after)


# ------------------------------------------------------------------ export
@pytest.mark.slow
def test_export_package_equals_eager():
    """One AOTInductor compile of a tiny model; the .pt2 matches eager on a periodic
    graph, a multi-frame graph and an MPI-rank graph with ghosts (same 5-tensor ABI)."""
    from dpgraph.export import load_package, read_metadata
    from dpgraph.export.cache import cached_export

    model = _scaled(build_model(sezm_config(2, channels=4, n_focus=2, n_heads=2, radial_neuron=8)))
    path = cached_export(model)
    meta = read_metadata(path)
    assert float(meta["receptive_field"]) == 2 * RCUT and meta["dtype"] == "float64"
    pkg = load_package(path)
    assert pkg.receptive_field == 2 * RCUT
    coords, atype, cell = periodic_system()
    owned = np.arange(0, len(coords), 2)
    graphs = [graph_of(coords, atype, cell),
              concat_graphs([graph_of(*periodic_system()), graph_of(*open_system())]),
              rank_graph(coords, atype, cell, owned, model.receptive_field)[0]]
    for g in graphs:
        ref, got = model.evaluate(g), pkg.evaluate(g)
        for key in ref:
            scale = float(ref[key].abs().max().clamp(min=1e-6))
            assert float((got[key] - ref[key]).abs().max()) / scale < 1e-10, key
    # the C++ runtime (DeepPot, the LAMMPS code path) runs it unchanged on a single-process graph
    from dpgraph import DeepPot

    e, f, v = DeepPot(path).eval(coords[None], cell.reshape(1, 9), atype)
    ref = run(model, coords, atype, cell)
    assert_close(e.ravel(), ref["energy"], 1e-10, what="C++ energy")
    assert_close(f[0], ref["force"], 1e-10, what="C++ force")
    assert_close(v[0], ref["virial"][0], 1e-10, what="C++ virial")

    # ... and on MD-style neighbor lists of two ranks (the C++ NeighborListGraph, what pair_style
    # dpgraph passes): ghosts out to the receptive field + skin as extra nodes, owned atoms and
    # the ghosts within receptive_field - rcut + skin of them as centres, pairs out to rcut +
    # skin (the runtime drops those beyond rcut); the summed owned energies, the virials and the
    # folded forces and atom virials are the periodic system's
    dp, skin, n = DeepPot(path), 0.5, len(coords)
    frac_x = (coords @ np.linalg.inv(cell))[:, 0] % 1.0
    e_tot, vir, force, avir = 0.0, np.zeros(9), np.zeros((n, 3)), np.zeros((n, 9))
    for owned in (np.nonzero(frac_x < 0.5)[0], np.nonzero(frac_x >= 0.5)[0]):
        pos, owner = rank_nodes(coords, cell, owned, model.receptive_field + skin)
        nown = len(owned)
        dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        reach = dist[:, :nown].min(1)
        centres = np.nonzero(reach < model.receptive_field - RCUT + skin)[0]
        assert nown < len(centres) < len(pos)
        neighbors = [np.nonzero((dist[i] < RCUT + skin) & (np.arange(len(pos)) != i))[0] for i in centres]
        offsets = np.concatenate([[0], np.cumsum([len(x) for x in neighbors])])
        out = dp.eval_nlist(pos, atype[owner], nown, centres, offsets, np.concatenate(neighbors),
                            ghosts_as_nodes=True)
        en, fo, vi, ae, av = (np.asarray(x) for x in out)
        assert_close(ae[:nown].sum(), en.sum(), 1e-12, what="owned energies")
        e_tot += float(en.sum())
        vir += vi.reshape(9)
        force += _fold(fo.reshape(-1, 3), owner, n)
        avir += _fold(av.reshape(-1, 9), owner, n)
    assert_close(e_tot, ref["energy"][0], 1e-10, what="C++ ranks: energy")
    assert_close(vir, ref["virial"][0], 1e-10, what="C++ ranks: virial")
    assert_close(force, ref["force"], 1e-10, what="C++ ranks: force")
    assert_close(avir, ref["atom_virial"], 1e-10, what="C++ ranks: atom virial")


def test_sezm_is_deprecated_in_favour_of_dpa4():
    """Building a sezm model warns and points at DPA4 (docs/equivariant.md gives the reasons)."""
    from dpgraph.models import build_model
    from dpgraph.samples import example_equivariant_config

    with pytest.warns(FutureWarning, match="deprecated in favour of deepmd-kit's DPA4"):
        build_model(example_equivariant_config())
