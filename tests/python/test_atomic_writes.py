"""Writes that can destroy a user's file are atomic: packages, checkpoints,
`dpgraph eval` results. A failed or interrupted write leaves the previous file byte for byte."""

from __future__ import annotations

import pytest

from dpgraph.atomic_io import atomic_write
from dpgraph.models import build_model, load_model, save_checkpoint

from conftest import small_config


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous")
    with pytest.raises(RuntimeError, match="was not written, the previous file is unchanged"):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"partial")
            raise RuntimeError("interrupted")
    assert target.read_bytes() == b"previous"
    with pytest.raises(OSError, match="holds nothing"):
        with atomic_write(target, check=lambda p: (_ for _ in ()).throw(OSError("holds nothing"))) as tmp:
            tmp.write_bytes(b"bad")
    assert target.read_bytes() == b"previous"
    target.chmod(0o640)
    with atomic_write(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and (target.stat().st_mode & 0o777) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]  # no temporary file left


def test_checkpoint_save_failure_keeps_previous(tmp_path):
    """A save that fails half-way (unpicklable config) used to truncate the previous checkpoint."""
    model = build_model(small_config(attn_layer=0))
    path = tmp_path / "model.pt"
    save_checkpoint(model, path)
    before = path.read_bytes()
    model.config["note"] = lambda: None  # torch.save cannot pickle this
    with pytest.raises(Exception):
        save_checkpoint(model, path)
    assert path.read_bytes() == before
    load_model(path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


@pytest.mark.slow
def test_failed_export_keeps_the_previous_package(tmp_path):
    """export_model compiled into the target and checked it afterwards: a failed check left a
    partial/untrusted file under the old name. Now the old package survives byte for byte."""
    from dpgraph.export import ExportError, export_model

    # the model of test_export.py::test_cli_export_and_info: inductor's caches make the second compile cheap
    model = build_model(small_config(attn_layer=1))
    out = tmp_path / "model.pt2"
    out.write_bytes(b"previous package")
    with pytest.raises(ExportError, match=r"model.pt2 was not written, the previous file is unchanged"):
        export_model(model, out, portable=True, rtol=-1.0)  # no difference is <= -1: the parity check fails
    assert out.read_bytes() == b"previous package"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt2"]
    # (a good export replacing an existing package: test_export.py::test_cli_export_and_info)
