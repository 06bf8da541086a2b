"""AOTInductor export: package == eager, metadata, refusals, CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest
import torch

from dpgraph.app.cli import main as cli_main
from dpgraph.export import PackageError, load_package, read_metadata
from dpgraph.export.cache import cached_export
from dpgraph.graph import NeighborGraph, build_graph
from dpgraph.graph.neighbor_graph import GraphValidationError

from conftest import make_model, random_system, small_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["float64", "float32"])
def exported(request):
    coords, atype, cell = random_system(30, 7.0, seed=5)
    cfg = small_config(precision=request.param)
    cfg["fitting_net"]["precision"] = request.param
    model = make_model(cfg, coords, atype, cell, scale_out=20.0)
    path = cached_export(model)
    return model, load_package(path), path


def _system(n: int, seed: int):
    if n == 1:
        return torch.zeros(1, 3, dtype=torch.float64), torch.zeros(1, dtype=torch.int64), None
    box = (n / 0.1) ** (1 / 3)
    coords, atype, cell = random_system(n, box, seed=seed, min_dist=0.9) if n <= 64 else _lattice(n, box, seed)
    return coords, atype, cell


def _lattice(n, box, seed):
    gen = torch.Generator().manual_seed(seed)
    side = round(n ** (1 / 3))
    grid = torch.stack(torch.meshgrid(*[torch.arange(side, dtype=torch.float64)] * 3, indexing="ij"), -1).reshape(-1, 3)
    spacing = box / side
    coords = (grid + 0.5) * spacing + (torch.rand(grid.shape, generator=gen, dtype=torch.float64) - 0.5) * 0.4
    return coords, torch.arange(coords.shape[0]) % 2, torch.eye(3, dtype=torch.float64) * box


@pytest.mark.parametrize("n_atoms", [1, 2, 64, 512])
def test_package_equals_eager(exported, n_atoms):
    model, pkg, _ = exported
    coords, atype, cell = _system(n_atoms, seed=n_atoms)
    graph = build_graph(coords, atype, cell=cell, rcut=model.rcut).to(dtype=model.dtype)
    ref, got = model.evaluate(graph), pkg.evaluate(graph)
    tol = 1e-10 if model.dtype == torch.float64 else 2e-5
    for key in ref:
        assert got[key].dtype == model.dtype
        assert got[key].shape == ref[key].shape
        scale = float(ref[key].abs().max().clamp(min=1e-6))
        assert float((got[key] - ref[key]).abs().max()) / scale < tol, key


def test_empty_graph(exported):
    """A graph without nodes (an MPI rank that owns no atoms) gives zero outputs."""
    model, pkg, _ = exported
    g = NeighborGraph(
        torch.zeros(0, dtype=torch.int64), torch.zeros(1, 2, dtype=torch.int64),
        torch.zeros(2, 2, dtype=torch.int64), torch.zeros(2, 3, dtype=model.dtype), torch.zeros(2, dtype=torch.bool),
    )
    out = pkg.evaluate(g)
    assert out["energy"].shape == (1,) and float(out["energy"][0]) == 0.0
    assert out["force"].shape == (0, 3) and out["virial"].shape == (1, 9)
    ref = model.evaluate(g)
    assert float(ref["energy"][0]) == 0.0 and ref["atom_virial"].shape == (0, 9)


def test_multi_frame_package(exported):
    model, pkg, _ = exported
    c1, a1, cell = random_system(20, 6.0, seed=1)
    c2, _, _ = random_system(20, 6.0, seed=2)
    graph = build_graph(torch.stack([c1, c2]), a1, cell=cell, rcut=model.rcut).to(dtype=model.dtype)
    ref, got = model.evaluate(graph), pkg.evaluate(graph)
    assert got["energy"].shape == (2,)
    assert torch.allclose(got["energy"], ref["energy"], rtol=1e-5 if model.dtype == torch.float32 else 1e-12)


def test_metadata(exported):
    model, pkg, path = exported
    meta = read_metadata(path)
    assert meta["dpgraph.format"] == "dpgraph"
    assert meta["abi_version"] == "1"
    assert json.loads(meta["type_map"]) == ["O", "H"]
    assert float(meta["rcut"]) == 4.0
    assert meta["dtype"] == str(model.dtype).replace("torch.", "")
    assert json.loads(meta["outputs"]) == ["energy", "atom_energy", "force", "virial", "atom_virial"]
    assert meta["torch_version"] == torch.__version__
    assert json.loads(meta["config"]) == model.config
    assert pkg.type_map == ["O", "H"] and pkg.rcut == 4.0


def test_input_validation(exported):
    model, pkg, _ = exported
    coords, atype, cell = random_system(10, 5.0, seed=4)
    g = build_graph(coords, atype, cell=cell, rcut=model.rcut).to(dtype=model.dtype)
    with pytest.raises(GraphValidationError, match="int64"):
        pkg(g.atype, g.n_node, g.edge_index.to(torch.int32), g.edge_vec, g.edge_mask)
    other = torch.float64 if model.dtype == torch.float32 else torch.float32
    with pytest.raises(GraphValidationError, match="model runs in"):
        pkg(g.atype, g.n_node, g.edge_index, g.edge_vec.to(other), g.edge_mask)
    with pytest.raises(GraphValidationError, match="2 types"):
        pkg(g.atype + 5, g.n_node, g.edge_index, g.edge_vec, g.edge_mask)


def _rewrite_metadata(src, dst, **changes):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("metadata.json"):
                meta = json.loads(data)
                meta.update(changes)
                data = json.dumps(meta).encode()
            zout.writestr(item, data)


def test_refusals(exported, tmp_path):
    _, _, path = exported
    with pytest.raises(FileNotFoundError):
        load_package(tmp_path / "missing.pt2")
    junk = tmp_path / "junk.pt2"
    junk.write_bytes(b"not a package at all")
    with pytest.raises(PackageError, match="not a zip archive"):
        load_package(junk)
    truncated = tmp_path / "truncated.pt2"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(PackageError):
        load_package(truncated)
    foreign = tmp_path / "foreign.pt2"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(PackageError, match="not an AOTInductor package"):
        load_package(foreign)
    cases = {
        "abi": ({"abi_version": "2"}, "ABI version 2"),
        "torch": ({"torch_version": "2.0.0"}, "compiled with torch 2.0.0"),
        "format": ({"dpgraph.format": "other"}, "not a dpgraph model"),
        "dtype": ({"dtype": "float16"}, "unsupported dtype"),
    }
    for name, (change, msg) in cases.items():
        bad = tmp_path / f"{name}.pt2"
        _rewrite_metadata(path, bad, **change)
        with pytest.raises(PackageError, match=msg):
            load_package(bad)


def test_corrupt_member(exported, tmp_path):
    _, _, path = exported
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(".so"))
    # flip bytes inside the stored shared library: the CRC check must catch it
    off = info.header_offset + 30 + len(info.filename) + len(info.extra) + 1000
    data[off : off + 8] = b"\xff" * 8
    bad = tmp_path / "flipped.pt2"
    bad.write_bytes(bytes(data))
    with pytest.raises(PackageError, match="corrupt"):
        load_package(bad)


def _avx512_instructions(package: Path) -> int:
    """Number of EVEX-encoded (AVX-512) instructions in the package's compiled code: in 64-bit mode an
    instruction whose first byte is 0x62 is EVEX (a --portable package of torch's default build flags
    had 390, on ymm registers, none on zmm)."""
    if shutil.which("objdump") is None:
        pytest.skip("objdump (binutils) is not installed")
    count = 0
    with zipfile.ZipFile(package) as z, tempfile.TemporaryDirectory() as tmp:
        for name in z.namelist():
            if name.endswith(".so"):
                asm = subprocess.run(["objdump", "-d", z.extract(name, tmp)], capture_output=True, text=True,
                                     check=True).stdout
                count += sum(1 for line in asm.splitlines()
                             if len(f := line.split("\t")) >= 3 and f[1].strip().startswith("62 "))
    return count


def test_cli_export_and_info(tmp_path, capsys):
    cfg = small_config(attn_layer=1)
    cfg_path = tmp_path / "model.json"
    cfg_path.write_text(json.dumps({"model": cfg}))
    out = tmp_path / "model.pt2"
    out.write_bytes(b"an older package")  # replaced (atomically: tmp file, check, rename)
    assert cli_main(["export", str(cfg_path), "-o", str(out), "--portable"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "model.pt2"]
    meta = read_metadata(out)
    assert meta["cpu_isa"] == "avx2"
    assert not _avx512_instructions(out), "a --portable package must run on an AVX2-only CPU"
    pkg = load_package(out)
    assert pkg.config == cfg
    assert cli_main(["info", str(out)]) == 0
    assert "abi_version" in capsys.readouterr().out
    assert cli_main(["export", str(tmp_path / "nope.json"), "-o", str(out)]) == 2


def test_checkpoint_roundtrip(tmp_path):
    """save_checkpoint -> load_model gives the same numbers; a foreign file is refused."""
    from dpgraph.models import load_model, save_checkpoint

    coords, atype, cell = random_system(12, 5.0, seed=9)
    model = make_model(small_config(attn_layer=1), coords, atype, cell, scale_out=5.0)
    path = tmp_path / "model.pt"
    save_checkpoint(model, path)
    again = load_model(path)
    g = build_graph(coords, atype, cell=cell, rcut=model.rcut)
    assert torch.equal(model.evaluate(g)["force"], again.evaluate(g)["force"])
    bad = tmp_path / "bad.pt"
    torch.save({"hello": 1}, bad)
    with pytest.raises(ValueError, match="not a dpgraph checkpoint"):
        load_model(bad)
