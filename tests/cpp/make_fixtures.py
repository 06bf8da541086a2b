"""Write the GoogleTest fixtures: one compiled ``.pt2`` and expected values.

Usage: ``python make_fixtures.py OUTDIR [--portable]`` (``--portable``: an
AVX2 package, e.g. for valgrind, which does not emulate AVX-512). Everything is generated in the test
run: a small fp64 DPA1 model (attention on, 2 layers, descriptor statistics
from a water box) and tests/lammps' message-passing sezm model, each compiled
once (cached by dpgraph.export.cache, shared with tests/lammps), and for
every case its inputs and the eager PyTorch model's outputs, computed on
graphs built by the Python builders (independent of the C++ ones).

Each case is ``OUTDIR/<case>.txt``: one array per line,
``name dtype n v0 v1 ...`` with doubles printed to 17 significant digits.
Refusal fixtures are copies of the package with edited metadata.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

from dpgraph.samples import water_box
from dpgraph.export.cache import cached_export
from dpgraph.graph import build_graph, from_dense_nlist
from dpgraph.models import build_model, compute_descriptor_stats

# the same model as tests/lammps (lmp_util.make_model(1)): one compile serves both suites
CONFIG = {
    "type_map": ["O", "H", "C"],
    "descriptor": {"type": "se_atten", "rcut": 4.0, "rcut_smth": 0.5, "sel": 40, "neuron": [6, 12],
                   "axis_neuron": 4, "tebd_dim": 5, "attn": 8, "attn_layer": 2, "set_davg_zero": True,
                   "seed": 1},
    "fitting_net": {"neuron": [12, 12], "seed": 2},
}
SKIN = 1.0  # Å, the MD neighbor-list skin of the neighbor-list cases


def model_and_package(out: Path, portable: bool = False):
    torch.manual_seed(0)
    model = build_model(CONFIG)
    coords, atype, cell = water_box(64)
    compute_descriptor_stats(model.descriptor, [build_graph(coords, atype, cell=cell, rcut=model.rcut)])
    with torch.no_grad():  # realistic magnitudes: per-type energy shifts
        model.out_bias.copy_(torch.tensor([-93.5, -187.2, -150.0], dtype=torch.float64))
    pkg = cached_export(model, portable=portable)
    shutil.copyfile(pkg, out / "model.pt2")
    return model


def write_case(path: Path, **arrays) -> None:
    lines = []
    for name, a in arrays.items():
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        kind = "f64" if a.dtype.kind == "f" else "i64"
        vals = " ".join(repr(float(v)) if kind == "f64" else str(int(v)) for v in a.ravel())
        lines.append(f"{name} {kind} {a.size} {vals}")
    path.write_text("\n".join(lines) + "\n")


def evaluate(model, graph):
    out = model.evaluate(graph)
    return {k: v.detach() for k, v in out.items()}


def coords_case(model, out: Path, name: str, coords, atype, cell, pbc=True):
    """DeepPot::compute fixture: coords (nf, n, 3), cell (nf, 9) or none."""
    coords = torch.as_tensor(coords, dtype=torch.float64)
    if coords.dim() == 2:
        coords = coords[None]
    nf, n = coords.shape[:2]
    g = build_graph(coords, atype, cell=cell, pbc=pbc, rcut=model.rcut)
    r = evaluate(model, g)
    arrays = dict(coords=coords, atype=torch.as_tensor(atype).reshape(-1)[:n],
                  energy=r["energy"], force=r["force"], virial=r["virial"],
                  atom_energy=r["atom_energy"], atom_virial=r["atom_virial"])
    if cell is not None:
        arrays["cell"] = torch.as_tensor(cell, dtype=torch.float64).reshape(-1, 9).expand(nf, 9)
    write_case(out / f"{name}.txt", **arrays)


def random_atoms(n, cell, seed, min_dist=1.0):
    gen = np.random.default_rng(seed)
    cell = np.asarray(cell, dtype=np.float64)
    inv = np.linalg.inv(cell)
    pts = []
    while len(pts) < n:
        p = gen.random(3) @ cell
        ok = True
        for q in pts:
            d = (p - q) @ inv
            d -= np.round(d)
            if np.linalg.norm(d @ cell) < min_dist:
                ok = False
                break
        if ok:
            pts.append(p)
    return np.array(pts)


def ghost_layout(coords, cell, reach):
    """Owned atoms + periodic images within ``reach`` of the box, LAMMPS style.

    Returns coord_ext (nall, 3), mapping (nall,) owner index.
    """
    widths = abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)
    m = [math.ceil(reach / w) for w in widths]
    frac = coords @ np.linalg.inv(cell)
    frac -= np.floor(frac)
    ext, owner = [frac], [np.arange(len(coords))]
    for s in np.array(np.meshgrid(*[np.arange(-k, k + 1) for k in m], indexing="ij")).reshape(3, -1).T:
        if not s.any():
            continue
        f = frac + s
        lim = reach / widths
        keep = np.all((f >= -lim) & (f < 1 + lim), axis=1)
        ext.append(f[keep])
        owner.append(np.nonzero(keep)[0])
    return np.concatenate(ext) @ cell, np.concatenate(owner)


def full_list(coord_ext, nloc, cutoff):
    """Full neighbor list of the owned atoms over all atoms within ``cutoff`` (CSR)."""
    d = np.linalg.norm(coord_ext[None, :, :] - coord_ext[:nloc, None, :], axis=-1)
    offsets, neigh = [0], []
    for i in range(nloc):
        js = [j for j in np.nonzero((d[i] < cutoff) & (d[i] > 0))[0]]
        neigh += js
        offsets.append(len(neigh))
    return np.array(offsets), np.array(neigh, dtype=np.int64)


def dense(offsets, neigh, nloc):
    width = max(int(np.diff(offsets).max()), 1)
    nl = -np.ones((nloc, width), dtype=np.int64)
    for i in range(nloc):
        row = neigh[offsets[i]:offsets[i + 1]]
        nl[i, :len(row)] = row
    return nl


def nlist_case(model, out: Path):
    """Neighbor-list fixtures: folded and ghosts-as-nodes layouts, plus a cached-topology step."""
    cell = np.array([[9.0, 0.0, 0.0], [1.5, 8.5, 0.0], [-1.0, 0.8, 8.8]])
    coords = random_atoms(48, cell, seed=7)
    atype = np.arange(48) % 3
    nloc = len(coords)
    x_ext, mapping = ghost_layout(coords, cell, model.rcut + SKIN)
    offsets, neigh = full_list(x_ext, nloc, model.rcut + SKIN)
    gen = np.random.default_rng(11)
    disp = (gen.random((nloc, 3)) - 0.5) * 0.4  # < skin / 2 per atom
    x_ext2 = x_ext + disp[mapping]
    t_ext = torch.as_tensor(atype[mapping])
    arrays = dict(x=x_ext, x2=x_ext2, atype=atype[mapping], nlocal=[nloc], ilist=np.arange(nloc),
                  offsets=offsets, neighbors=neigh, mapping=mapping)
    for tag, x in (("", x_ext), ("2", x_ext2)):
        c = torch.as_tensor(x)[None]
        nl = torch.as_tensor(dense(offsets, neigh, nloc))[None]
        folded = evaluate(model, from_dense_nlist(c, t_ext[None], nl, nloc, torch.as_tensor(mapping)[None],
                                                  rcut=model.rcut, fold=True))
        ghosts = evaluate(model, from_dense_nlist(c, t_ext[None], nl, nloc, None, rcut=model.rcut, fold=False))
        for layout, r in (("fold", folded), ("ghost", ghosts)):
            for k in ("energy", "force", "virial", "atom_energy", "atom_virial"):
                arrays[f"{layout}_{k}{tag}"] = r[k]
    write_case(out / "nlist.txt", **arrays)


def equivariant_cases(out: Path) -> None:
    """A message-passing model (sezm, receptive field 2 rcut): the periodic water case, and
    MD-style neighbor lists of two ranks with ghosts out to receptive field + skin as nodes and
    the ghosts within receptive field - rcut + skin of an owned atom as centres (what
    pair_style dpgraph passes). The model is tests/lammps' (lmp_util.make_equivariant_model):
    one compile serves both suites."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lammps"))
    from lmp_util import make_equivariant_model

    model = make_equivariant_model()
    shutil.copyfile(cached_export(model), out / "equivariant.pt2")
    rcut, reach = model.rcut, model.receptive_field
    wc, wt, wcell = water_box(16, seed=4)
    coords_case(model, out, "equivariant_water", wc, wt, wcell)
    coords, atype, cell = wc.numpy(), wt.numpy(), wcell.numpy()
    arrays = {"receptive_field": [reach]}
    frac = (coords @ np.linalg.inv(cell)) % 1.0
    coords = frac @ cell
    halves = [np.nonzero(frac[:, 0] < 0.5)[0], np.nonzero(frac[:, 0] >= 0.5)[0]]
    for r, owned in enumerate(halves):
        # owned atoms first, then every other atom or image within reach + skin of an owned atom
        pos, owner = [coords[owned]], [owned]
        for s in np.array(np.meshgrid(*[np.arange(-2, 3)] * 3, indexing="ij")).reshape(3, -1).T:
            cand = np.arange(len(coords)) if s.any() else np.setdiff1d(np.arange(len(coords)), owned)
            img = coords[cand] + s @ cell
            d = np.linalg.norm(img[:, None] - coords[owned][None], axis=-1).min(1)
            pos.append(img[d < reach + SKIN])
            owner.append(cand[d < reach + SKIN])
        pos, owner = np.concatenate(pos), np.concatenate(owner)
        dist = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
        centres = np.nonzero(dist[:, :len(owned)].min(1) < reach - rcut + SKIN)[0]
        neigh = [np.nonzero((dist[i] < rcut + SKIN) & (np.arange(len(pos)) != i))[0] for i in centres]
        arrays.update({f"x{r}": pos, f"atype{r}": atype[owner], f"nlocal{r}": [len(owned)], f"ilist{r}": centres,
                       f"offsets{r}": np.concatenate([[0], np.cumsum([len(x) for x in neigh])]),
                       f"neighbors{r}": np.concatenate(neigh), f"owner{r}": owner})
    ref = evaluate(model, build_graph(torch.as_tensor(coords), torch.as_tensor(atype), cell=torch.as_tensor(cell),
                                      rcut=rcut))
    for k in ("energy", "force", "virial", "atom_virial"):
        arrays[k] = ref[k]
    write_case(out / "equivariant_ranks.txt", **arrays)


def edited_package(src: Path, dst: Path, **changes) -> None:
    """Copy of the package with metadata keys changed (None removes a key)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.endswith("wrapper_metadata.json"):
                meta = json.loads(data)
                for k, v in changes.items():
                    if v is None:
                        meta.pop(k, None)
                    else:
                        meta[k] = v
                data = json.dumps(meta).encode()
            zout.writestr(item, data)


def main(out: Path, portable: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    model = model_and_package(out, portable)
    torch.set_num_threads(1)

    coords_case(model, out, "one_atom", [[0.3, 0.2, 0.1]], [0], torch.eye(3, dtype=torch.float64) * 3.5)
    coords_case(model, out, "two_atoms", [[0.0, 0.0, 0.0], [1.1, 0.4, -0.3]], [0, 1], None)
    wc, wt, wcell = water_box(64, seed=3)
    coords_case(model, out, "water192", wc, wt, wcell)
    tric = np.array([[7.5, 0.0, 0.0], [2.0, 7.0, 0.0], [-1.5, 1.0, 6.5]])
    coords_case(model, out, "triclinic", random_atoms(40, tric, seed=5), np.arange(40) % 3, torch.as_tensor(tric))
    thin = np.array([[12.0, 0.0, 0.0], [0.0, 12.0, 0.0], [0.0, 0.0, 3.0]])  # thinner than rcut
    coords_case(model, out, "thin_cell", random_atoms(20, thin, seed=9, min_dist=1.2), np.arange(20) % 2,
                torch.as_tensor(thin))
    cluster = random_atoms(25, np.eye(3) * 6.0, seed=6) + 0.5
    coords_case(model, out, "cluster", cluster, np.arange(25) % 3, None)
    f1, f2 = random_atoms(30, np.eye(3) * 7.0, seed=1), random_atoms(30, np.eye(3) * 7.0, seed=2)
    coords_case(model, out, "two_frames", np.stack([f1, f2]), np.arange(30) % 3, torch.eye(3, dtype=torch.float64) * 7.0)
    nlist_case(model, out)
    equivariant_cases(out)

    pkg = out / "model.pt2"
    edited_package(pkg, out / "wrong_abi.pt2", abi_version="99")
    edited_package(pkg, out / "wrong_torch.pt2", torch_version="1.0.0+cpu")
    edited_package(pkg, out / "not_dpgraph.pt2", **{"dpgraph.format": None})
    edited_package(pkg, out / "wrong_dtype.pt2", dtype="float16")
    edited_package(pkg, out / "cuda_only.pt2", device="cuda")
    data = pkg.read_bytes()
    (out / "truncated.pt2").write_bytes(data[: len(data) // 2])
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF
    (out / "flipped.pt2").write_bytes(bytes(flipped))
    (out / "not_a_zip.pt2").write_text("this is not a model\n")
    with zipfile.ZipFile(out / "foreign.pt2", "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x04N.")
    print(f"fixtures written to {out}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--portable"]
    if len(args) != 1:
        sys.exit("usage: python make_fixtures.py OUTDIR [--portable]")
    main(Path(args[0]), portable="--portable" in sys.argv)
