"""Fixtures of the LAMMPS tests: compiled models (once per session, cached)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from dpgraph.export.cache import cached_export
from lmp_util import make_equivariant_model, make_model

# Compiled packages go to the repository's build/test-cache (kept between runs, ignored by git),
# never to the user's ~/.cache/dpgraph; DPGRAPH_CACHE overrides.
os.environ.setdefault("DPGRAPH_CACHE", str(Path(__file__).resolve().parents[2] / "build" / "test-cache"))


@pytest.fixture(scope="session")
def model_file(tmp_path_factory) -> Path:
    """The MD model as a .pt2 (O, H, C; rcut 4 Å)."""
    out = tmp_path_factory.mktemp("models") / "md.pt2"
    shutil.copyfile(cached_export(make_model(1)), out)
    return out


@pytest.fixture(scope="session")
def second_model_file(tmp_path_factory) -> Path:
    """A second committee member: same types and cutoff, other weights."""
    out = tmp_path_factory.mktemp("models") / "md2.pt2"
    shutil.copyfile(cached_export(make_model(7)), out)
    return out




@pytest.fixture(scope="session")
def equivariant_model_file(tmp_path_factory) -> Path:
    """A message-passing model as a .pt2 (sezm: O, H; 2 blocks of rcut 3.5 Å, receptive field 7 Å)."""
    out = tmp_path_factory.mktemp("models") / "equivariant.pt2"
    shutil.copyfile(cached_export(make_equivariant_model()), out)
    return out
