"""The built-in model: shipped, small, and still as accurate as its card says on fresh EMT data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dpgraph.builtin import BUILTIN_DIR, builtin_card, load_builtin
from dpgraph.builtin.emt_data import TYPE_MAP, frames_to_arrays, sample_frames
from dpgraph.graph import build_graph

pytest.importorskip("ase")


@pytest.fixture(scope="module")
def fresh_frames():
    # a seed no set of scripts/make_builtin_model.py uses: data the model never saw
    return sample_frames(8, 2, seed=2026)


def test_shipped_files_are_small_and_described():
    card = builtin_card()
    size = (BUILTIN_DIR / "cuau.pt").stat().st_size
    assert size < 5e6
    assert card["type_map"] == TYPE_MAP
    assert card["made_by"].startswith("python scripts/make_builtin_model.py")
    assert 0 < card["test_errors"]["rmse_f"] < card["test_bound"]["rmse_f"]
    model = load_builtin()
    assert model.type_map == TYPE_MAP and not model.training


def test_builtin_errors_stay_below_the_recorded_bound(fresh_frames):
    model = load_builtin()
    bound = builtin_card()["test_bound"]
    de, df, dv = [], [], []
    for at in fresh_frames:
        ref = frames_to_arrays([at])
        types = torch.tensor([TYPE_MAP.index(s) for s in at.get_chemical_symbols()])
        g = build_graph(torch.from_numpy(at.positions), types, cell=torch.from_numpy(at.cell.array), rcut=model.rcut)
        out = model.evaluate(g)
        de.append((float(out["energy"][0]) - ref["energy"][0]) / len(at))
        df.append(out["force"].detach().numpy() - ref["force"].reshape(-1, 3))
        dv.append((out["virial"].detach().numpy().reshape(9) - ref["virial"].reshape(9)) / len(at))
    rmse_e = float(np.sqrt(np.mean(np.square(de))))
    rmse_v = float(np.sqrt(np.mean(np.square(dv))))
    assert rmse_v < bound["rmse_v"], f"virial RMSE {rmse_v:.5f} eV/atom above the recorded bound {bound['rmse_v']}"
    rmse_f = float(np.sqrt(np.mean(np.square(np.concatenate(df)))))
    assert rmse_f < bound["rmse_f"], f"force RMSE {rmse_f:.4f} eV/A above the recorded bound {bound['rmse_f']}"
    assert rmse_e < bound["rmse_e"], f"energy RMSE {rmse_e:.5f} eV/atom above the recorded bound {bound['rmse_e']}"
    # and the model is far better than predicting zero forces
    assert rmse_f < 0.5 * float(np.sqrt(np.mean(np.square([frames_to_arrays([a])["force"] for a in fresh_frames]))))


def test_demo_box_matches_the_card_and_emt_pressure():
    """The demo's 256-atom box: the card's figures are reproduced, and the pressure is EMT's within 0.5 GPa."""
    from dpgraph.builtin.emt_data import demo_box, emt_comparison

    card = builtin_card()["demo_box"]
    got = emt_comparison(load_builtin(), demo_box())
    for key, value in card.items():
        assert got[key] == pytest.approx(value, abs=2e-6), key
    assert abs(got["p_model"] - got["p_emt"]) < 0.5, got


def test_emt_data_round_trips_through_the_training_loader(tmp_path, fresh_frames):
    from dpgraph.builtin.emt_data import write_system
    from dpgraph.train import load_systems

    dirs = write_system(fresh_frames, tmp_path)
    systems = load_systems([str(d) for d in dirs], TYPE_MAP)
    assert sum(s.n_frames for s in systems) == len(fresh_frames)
    s = systems[0]
    assert s.virial is not None and s.force.reshape(s.n_frames, -1).shape[1] == 108 * 3
