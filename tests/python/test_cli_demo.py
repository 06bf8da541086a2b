"""The `dpgraph` command line: the README's main job (`dpgraph demo`) and every subcommand."""

from __future__ import annotations

import numpy as np
import pytest

from dpgraph.app.cli import main

SUBCOMMANDS = ["export", "import-deepmd", "eval", "train", "test", "bench", "demo", "info", "plot-lcurve"]


@pytest.mark.parametrize("cmd", SUBCOMMANDS)
def test_every_subcommand_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0
    assert f"usage: dpgraph {cmd}" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["info", "missing.pt2"], "missing.pt2"),
    (["eval", "-m", "missing.pt2", "x.xyz"], "missing.pt2"),
    (["eval", "-m", "model.txt", "x.xyz"], "expected a .pt2 package"),
    (["eval", "-m", "builtin", "missing.xyz"], "missing.xyz does not exist"),
    (["bench", "-m", "model.pt"], "pass -s STRUCTURE"),
    (["train", "missing.json"], "missing.json does not exist"),
    (["export", "missing.json", "-o", "x.pt2"], "missing.json does not exist"),
])
def test_errors_go_to_stderr_with_nonzero_exit(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dpgraph {argv[0]}: error:") and message in err


def test_unknown_subcommand_exits_nonzero():
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


def test_eval_builtin_on_extxyz(tmp_path, capsys):
    ase_io = pytest.importorskip("ase.io")
    from ase.build import bulk

    at = bulk("Cu", "fcc", a=3.62, cubic=True).repeat(2)
    at.symbols[::3] = "Au"
    at.rattle(0.05, seed=1)
    ase_io.write(tmp_path / "in.extxyz", [at, at])
    assert main(["eval", "-m", "builtin", str(tmp_path / "in.extxyz"), "-o", str(tmp_path / "out.extxyz")]) == 0
    text = capsys.readouterr().out
    assert "in.extxyz[1]" in text
    back = ase_io.read(tmp_path / "out.extxyz", ":")
    assert len(back) == 2 and back[0].get_forces().shape == (32, 3)
    assert np.isclose(back[0].get_potential_energy(), back[1].get_potential_energy())

    at.symbols[0] = "Ag"
    ase_io.write(tmp_path / "ag.xyz", at)
    assert main(["eval", "-m", "builtin", str(tmp_path / "ag.xyz")]) == 2
    assert "['Ag'] are not in the model's type_map" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_runs(capsys, tmp_path):
    out, png = tmp_path / "demo.pt2", tmp_path / "demo.png"
    assert main(["demo", "--steps", "20", "-o", str(out), "--plot", str(png)]) == 0
    text = capsys.readouterr().out
    assert "package vs eager: max abs difference" in text
    assert "model vs EMT reference" in text
    assert "LAMMPS: pair_style dpgraph, 256 atoms, NVE 20 steps" in text
    assert "atom-steps/s" in text and "ns/day" in text
    assert out.exists() and png.stat().st_size > 1000


@pytest.mark.slow
def test_eval_and_bench_with_the_compiled_builtin(tmp_path, capsys):
    """The .pt2 (C++ runtime) gives the eager numbers; bench reports a finite ratio against eager."""
    from ase.build import bulk
    from ase.io import write

    from dpgraph.app.benchmark import run_bench
    from dpgraph.builtin import load_builtin
    from dpgraph.export.cache import cached_export

    pt2 = cached_export(load_builtin())  # the demo's package: compiled once per session
    at = bulk("Au", "fcc", a=4.0, cubic=True).repeat(2)
    at.rattle(0.05, seed=2)
    write(tmp_path / "au.xyz", at)
    assert main(["eval", "-m", str(pt2), str(tmp_path / "au.xyz"), "-o", str(tmp_path / "a.npz")]) == 0
    assert main(["eval", "-m", "builtin", str(tmp_path / "au.xyz"), "-o", str(tmp_path / "b.npz")]) == 0
    a, b = np.load(tmp_path / "a.npz"), np.load(tmp_path / "b.npz")
    for k in ("energy_0", "force_0", "virial_0", "atom_energy_0"):
        np.testing.assert_allclose(a[k], b[k], rtol=1e-10, atol=1e-10)
    rows = run_bench("builtin", None, [32], repeat=1, out=lambda *x: None)
    assert rows[0]["atoms"] == 32 and np.isfinite(rows[0]["ratio"]) and rows[0]["package_s"] > 0
