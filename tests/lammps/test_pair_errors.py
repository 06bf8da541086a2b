"""Every refusal of pair_style dpgraph is a LAMMPS ERROR naming the cause."""

from __future__ import annotations

import json
import zipfile

import pytest

from lmp_util import error_message, run_lammps, water_system, write_data

SCRIPT = """
units {units}
atom_style atomic
boundary p p p
{newton}
read_data data.lmp
pair_style dpgraph {style}
pair_coeff * * {names}
run 0
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("errors")
    coords, atype, cell = water_system(8, seed=1)
    write_data(d / "data.lmp", coords, atype + 1, cell, [15.999, 1.008])
    return d


def refused(tmp_path, data_dir, style, names="O H", units="metal", newton="", nprocs=1) -> str:
    (tmp_path / "data.lmp").write_text((data_dir / "data.lmp").read_text())
    run = run_lammps(tmp_path, SCRIPT.format(style=style, names=names, units=units, newton=newton),
                     nprocs=nprocs, check=False)
    assert run.returncode != 0, run.output[-2000:]
    return error_message(run)


def test_missing_model(tmp_path, data_dir):
    assert "does not exist" in refused(tmp_path, data_dir, str(tmp_path / "nope.pt2"))


def test_corrupt_model(tmp_path, data_dir, model_file):
    bad = tmp_path / "bad.pt2"
    data = bytearray(model_file.read_bytes())
    data[len(data) // 3] ^= 0xFF
    bad.write_bytes(bytes(data))
    assert "fails its CRC-32 check" in refused(tmp_path, data_dir, str(bad))


def test_truncated_model(tmp_path, data_dir, model_file):
    bad = tmp_path / "short.pt2"
    bad.write_bytes(model_file.read_bytes()[:1000])
    assert "truncated" in refused(tmp_path, data_dir, str(bad))


def test_unknown_type_name(tmp_path, data_dir, model_file):
    msg = refused(tmp_path, data_dir, str(model_file), names="O Xe")
    assert "'Xe'" in msg and "not in the model's type map (O H C)" in msg


def test_wrong_number_of_type_names(tmp_path, data_dir, model_file):
    assert "expected pair_coeff * * followed by 2 model type names" in refused(
        tmp_path, data_dir, str(model_file), names="O")


def test_units_lj(tmp_path, data_dir, model_file):
    assert "does not support units lj" in refused(tmp_path, data_dir, str(model_file), units="lj")


def test_newton_off(tmp_path, data_dir, model_file):
    assert "requires newton pair on" in refused(tmp_path, data_dir, str(model_file), newton="newton off")


def edited_copy(src, dst, **changes):
    """The package with metadata values replaced (the plugin reads them before running anything)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            data = zin.read(item)
            if item.filename.endswith("wrapper_metadata.json"):
                data = json.dumps({**json.loads(data), **changes}).encode()
            zout.writestr(item, data)
    return dst


def test_committee_with_different_type_maps(tmp_path, data_dir, model_file):
    other = edited_copy(model_file, tmp_path / "other.pt2", type_map=json.dumps(["O", "H"]))
    assert "different type maps (O H C vs O H)" in refused(tmp_path, data_dir, f"{model_file} {other}")


def test_committee_with_different_cutoffs(tmp_path, data_dir, model_file):
    other = edited_copy(model_file, tmp_path / "other.pt2", rcut="3.5")
    assert "different cutoffs" in refused(tmp_path, data_dir, f"{model_file} {other}")


def test_bad_keyword(tmp_path, data_dir, model_file):
    assert "Illegal pair_style dpgraph keyword" in refused(tmp_path, data_dir, f"{model_file} out_freq")


def test_error_on_two_ranks(tmp_path, data_dir):
    assert "does not exist" in refused(tmp_path, data_dir, str(tmp_path / "nope.pt2"), nprocs=2)
