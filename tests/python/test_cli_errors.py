"""`dpgraph` refuses bad paths and inputs early, naming the problem: output
paths and formats are validated before any model is loaded or structure evaluated."""

from __future__ import annotations

import pytest

from dpgraph.app.cli import main as cli_main
from dpgraph.models import build_model

from conftest import small_config


@pytest.fixture()
def cu_xyz(tmp_path):
    ase_io = pytest.importorskip("ase.io")
    from ase.build import bulk

    at = bulk("Cu", "fcc", a=3.62, cubic=True)
    path = tmp_path / "cu.xyz"
    ase_io.write(path, at)
    return path


def _cli(argv, capsys):
    code = cli_main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_eval_unknown_output_extension(cu_xyz, tmp_path, capsys):
    code, out, err = _cli(["eval", "-m", "builtin", cu_xyz, "-o", tmp_path / "res.foo"], capsys)
    assert code == 2 and "'.foo'" in err and ".extxyz" in err and ".npz" in err and ".traj" in err
    assert "energy" not in out  # refused before any evaluation


def test_eval_bad_output_path_refused_before_evaluating(cu_xyz, tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    code, out, err = _cli(["eval", "-m", "builtin", cu_xyz, "-o", tmp_path / "afile" / "res.npz"], capsys)
    assert code == 2 and "is a file, not a directory" in err and out == ""
    (tmp_path / "res.npz").mkdir()
    code, out, err = _cli(["eval", "-m", "builtin", cu_xyz, "-o", tmp_path / "res.npz"], capsys)
    assert code == 2 and "is a directory" in err and out == ""


def test_eval_zero_atom_structure(tmp_path, capsys):
    ase_io = pytest.importorskip("ase.io")
    from ase import Atoms

    ase_io.write(tmp_path / "empty.extxyz", Atoms(cell=[5, 5, 5], pbc=True))
    code, out, err = _cli(["eval", "-m", "builtin", tmp_path / "empty.extxyz"], capsys)
    assert code == 2 and "has no atoms" in err and "division" not in err


def test_model_directory_named_as_directory(cu_xyz, tmp_path, capsys):
    d = tmp_path / "models.pt2"
    d.mkdir()
    for argv in (["eval", "-m", d, cu_xyz], ["eval", "-m", tmp_path, cu_xyz], ["export", tmp_path, "-o", tmp_path / "x.pt2"]):
        code, _, err = _cli(argv, capsys)
        assert code == 2 and "is a directory" in err and "does not exist" not in err, err


def test_invalid_json_names_the_file(tmp_path, capsys):
    bad = tmp_path / "broken.json"
    bad.write_text('{"model": {"type_map": ["O"],}')
    code, _, err = _cli(["export", bad, "-o", tmp_path / "x.pt2"], capsys)
    assert code == 2 and "broken.json" in err and "invalid JSON" in err
    code, _, err = _cli(["eval", "-m", bad, tmp_path / "nothing.xyz"], capsys)
    assert code == 2 and "broken.json" in err and "invalid JSON" in err


def test_export_to_a_directory_refused_before_compiling(tmp_path, capsys):
    d = tmp_path / "dir.pt2"
    d.mkdir()
    code, out, err = _cli(["export", "example", "-o", d], capsys)
    assert code == 2 and "dir.pt2 is a directory" in err and out == ""
    from dpgraph.export import export_model

    with pytest.raises(IsADirectoryError, match="is a directory"):
        export_model(build_model(small_config(attn_layer=0)), d)


def test_eval_output_is_written_atomically(cu_xyz, tmp_path, capsys):
    res = tmp_path / "res.extxyz"
    code, _, err = _cli(["eval", "-m", "builtin", cu_xyz, "-o", res], capsys)
    assert code == 0, err
    from ase.io import read

    assert read(res, ":")[0].get_forces().shape == (4, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cu.xyz", "res.extxyz"]
