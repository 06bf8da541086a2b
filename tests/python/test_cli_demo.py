"""The README's main job: `dpgraph demo` exports the built-in model and evaluates water."""

from __future__ import annotations

import pytest

from dpgraph.cli import main

pytestmark = pytest.mark.slow


def test_demo_runs(capsys, tmp_path):
    out = tmp_path / "demo.pt2"
    assert main(["demo", "--molecules", "8", "-o", str(out), "--steps", "10"]) == 0
    text = capsys.readouterr().out
    assert "package vs eager: max abs difference" in text
    assert "LAMMPS: pair_style dpgraph, 24 atoms, NVE 10 steps" in text
    assert "atom-steps/s" in text
    assert "energy" in text and out.exists()
