"""Installation guards: the build's torch version check and the package ISA check."""

from __future__ import annotations

import importlib

import pytest
import torch

import dpgraph
from dpgraph.export.package import PackageError, check_metadata


def test_build_info_matches_runtime_torch():
    info = pytest.importorskip("dpgraph._build_info", reason="running from a source tree without a build")
    assert info.TORCH_VERSION == torch.__version__
    core = importlib.import_module("dpgraph._core")
    assert core.TORCH_VERSION == torch.__version__
    assert core.ABI_VERSION == dpgraph.ABI_VERSION


def test_import_refuses_other_torch(monkeypatch):
    pytest.importorskip("dpgraph._build_info", reason="running from a source tree without a build")
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    with pytest.raises(ImportError, match="built against torch"):
        dpgraph._check_torch()


def _meta(**changes):
    meta = {
        "dpgraph.format": "dpgraph", "abi_version": str(dpgraph.ABI_VERSION), "torch_version": torch.__version__,
        "dtype": "float64", "device": "cpu", "cpu_isa": "avx2", "type_map": '["O", "H"]',
        "outputs": '["energy"]', "rcut": "6.0",
    }
    meta.update(changes)
    return meta


def test_isa_refusal():
    with pytest.raises(PackageError, match="--portable"):
        check_metadata(_meta(cpu_isa="avx512"), "m.pt2", cpu_isa="default")
    info = check_metadata(_meta(cpu_isa="avx2"), "m.pt2", cpu_isa="avx512")
    assert (info.type_map, info.rcut, info.dtype) == (["O", "H"], 6.0, "float64")


def test_device_refusal():
    with pytest.raises(PackageError, match="compiled for cpu"):
        check_metadata(_meta(), "m.pt2", device="cuda")
    if not torch.cuda.is_available():
        with pytest.raises(PackageError, match="needs CUDA"):
            check_metadata(_meta(device="cuda"), "m.pt2", device="cuda")
    with pytest.raises(PackageError, match="unknown device"):
        check_metadata(_meta(), "m.pt2", device="tpu")


def test_malformed_metadata_is_refused():
    with pytest.raises(PackageError, match="malformed type_map"):
        check_metadata(_meta(type_map="[O, H"), "m.pt2")
    with pytest.raises(PackageError, match="malformed 'rcut'"):
        check_metadata(_meta(rcut="six"), "m.pt2")
    with pytest.raises(PackageError, match="no 'rcut'"):
        check_metadata({k: v for k, v in _meta().items() if k != "rcut"}, "m.pt2")
