"""Training: data loading errors, lr/loss semantics, loss decrease, bit-for-bit resume, CLI.

The data is a tiny synthetic periodic system (12 atoms, 2 types) labelled by an
analytic pair potential ``phi(r) = eps_ab (rc - r)^2 - c_ab`` for r < rc
(energies, forces and virials from autograd), written in deepmd-kit npy format.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dpgraph.app.cli import main
from dpgraph.graph import build_graph
from dpgraph.models import load_model
from dpgraph.train import (EnergyForceLoss, ExpDecayLR, Trainer, error_table, load_systems, predict,
                           read_lcurve)

from conftest import random_system, small_config

RC_PAIR = 3.0
EPS = torch.tensor([[1.0, 0.6], [0.6, 0.3]], dtype=torch.float64)
SHIFT = torch.tensor([[0.4, 0.2], [0.2, 0.1]], dtype=torch.float64)
N_ATOMS, BOX = 12, 5.0


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def pair_labels(coords, atype, cell):
    """Energy (eV), forces (n, 3) and virial (9,) of the analytic pair potential."""
    g = build_graph(coords, atype, cell=cell, rcut=RC_PAIR)
    vec = g.edge_vec.clone().requires_grad_(True)
    src, dst = g.edge_index
    r = vec.norm(dim=1).clamp_min(1e-12)
    ta, tb = g.atype[src], g.atype[dst]
    phi = EPS[ta, tb] * (RC_PAIR - r).square() - SHIFT[ta, tb] * (1 - r / RC_PAIR).square() * 4
    e = 0.5 * torch.where(g.edge_mask, phi, torch.zeros_like(phi)).sum()
    (gr,) = torch.autograd.grad(e, vec)
    gr = torch.where(g.edge_mask[:, None], gr, torch.zeros_like(gr))
    n = coords.shape[0]
    force = torch.zeros(n, 3, dtype=torch.float64).index_add_(0, dst, gr).index_add_(0, src, -gr)
    virial = (-gr[:, :, None] * vec.detach()[:, None, :]).sum(0).reshape(9)
    return float(e.detach()), force.numpy(), virial.numpy()


def write_system(path: Path, nframes: int = 6, seed: int = 0, virial: bool = True, natoms: int = N_ATOMS) -> Path:
    """A deepmd-kit npy system of ``nframes`` random configurations of one composition."""
    coords0, atype, cell = random_system(natoms, BOX, seed=seed, min_dist=1.2)
    gen = torch.Generator().manual_seed(seed + 100)
    rows = {"coord": [], "box": [], "energy": [], "force": [], "virial": []}
    for f in range(nframes):
        c = coords0 + 0.25 * torch.randn(coords0.shape, generator=gen, dtype=torch.float64)
        e, frc, vir = pair_labels(c, atype, cell)
        rows["coord"].append(c.numpy().ravel())
        rows["box"].append(cell.numpy().ravel())
        rows["energy"].append(e)
        rows["force"].append(frc.ravel())
        rows["virial"].append(vir)
    (path / "set.000").mkdir(parents=True)
    np.savetxt(path / "type.raw", atype.numpy(), fmt="%d")
    (path / "type_map.raw").write_text("O\nH\n")
    for k, v in rows.items():
        if k == "virial" and not virial:
            continue
        np.save(path / "set.000" / f"{k}.npy", np.array(v))
    return path


def make_input(tmp: Path, systems, steps=20, **training) -> dict:
    return {
        "model": small_config(),
        "learning_rate": {"type": "exp", "start_lr": 1e-2, "stop_lr": 1e-3, "decay_steps": 5},
        "loss": {"start_pref_e": 0.2, "limit_pref_e": 1, "start_pref_f": 100, "limit_pref_f": 1,
                 "start_pref_v": 0.02, "limit_pref_v": 0.1},
        "training": {
            "training_data": {"systems": [str(s) for s in systems], "batch_size": 2},
            "numb_steps": steps, "seed": 3, "disp_freq": 5, "save_freq": 10,
            "disp_file": str(tmp / "lcurve.out"), "save_ckpt": str(tmp / "ckpt" / "model.ckpt"),
            **training,
        },
    }


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    write_system(root / "sys0", nframes=6, seed=0)
    write_system(root / "sys1", nframes=4, seed=1, natoms=10)  # batches never mix systems
    return root


# ----------------------------------------------------------- semantics
def test_exp_decay_matches_deepmd_formula():
    lr = ExpDecayLR(1000, start_lr=1e-3, stop_lr=1e-5, decay_steps=100)
    rate = math.exp(math.log(1e-2) / 10)
    assert lr(0) == 1e-3 and lr(99) == 1e-3
    assert lr(100) == pytest.approx(1e-3 * rate, rel=1e-12)
    assert lr(1000) == pytest.approx(1e-5, rel=1e-9)
    assert lr(10**6) == 1e-5  # never below stop_lr


def test_prefactors_interpolate_in_lr():
    loss = EnergyForceLoss(1e-3, start_pref_e=0.02, limit_pref_e=1, start_pref_f=1000, limit_pref_f=1)
    assert loss.prefactors(1e-3) == pytest.approx({"e": 0.02, "f": 1000.0, "v": 0.0})
    p = loss.prefactors(5e-4)
    assert p["e"] == pytest.approx(0.51) and p["f"] == pytest.approx(500.5)


def test_labels_are_consistent(data_dir):
    """The synthetic labels themselves: force = -dE/dx by finite difference."""
    (s,) = load_systems(data_dir / "sys0", ["O", "H"])
    c = torch.from_numpy(s.coords[0].copy())
    cell = torch.from_numpy(s.cells[0])
    h = 1e-5
    c[3, 1] += h
    ep = pair_labels(c, torch.from_numpy(s.atype), cell)[0]
    c[3, 1] -= 2 * h
    em = pair_labels(c, torch.from_numpy(s.atype), cell)[0]
    assert -(ep - em) / (2 * h) == pytest.approx(s.force[0, 3, 1], abs=1e-6)


# ----------------------------------------------------------- training
def test_loss_decreases(data_dir, tmp_path):
    doc = make_input(tmp_path, [data_dir], steps=40, disp_freq=10, save_freq=40)
    tr = Trainer(doc, log=quiet)
    before = error_table(predict(tr.model, tr.systems))["all"]
    out = tr.run()
    after = error_table(predict(tr.model, tr.systems))["all"]
    assert out["step"] == 40
    assert after["rmse_f"] < 0.7 * before["rmse_f"], (before, after)
    lc = read_lcurve(tmp_path / "lcurve.out")
    assert list(lc) == ["step", "rmse_val", "rmse_trn", "rmse_e_val", "rmse_e_trn", "rmse_f_val", "rmse_f_trn",
                        "rmse_v_val", "rmse_v_trn", "lr"]
    assert list(lc["step"]) == [10, 20, 30, 40]
    assert np.isnan(lc["rmse_val"]).all()  # no validation set
    # the checkpoint is an ordinary model checkpoint
    model = load_model(out["checkpoint"])
    assert error_table(predict(model, tr.systems))["all"]["rmse_f"] == pytest.approx(after["rmse_f"], rel=1e-12)


def test_resume_reproduces_next_steps(data_dir, tmp_path):
    doc = make_input(tmp_path, [data_dir], steps=6, save_freq=3, validation_fraction=0.25)
    full = Trainer(doc, log=quiet)
    full.run()
    ref = {k: v.clone() for k, v in full.model.state_dict().items()}
    ckpt = tmp_path / "ckpt" / "model.ckpt-3.pt"
    assert ckpt.exists()
    doc["training"]["disp_file"] = str(tmp_path / "lcurve2.out")
    resumed = Trainer(doc, restart=ckpt, log=quiet)
    assert resumed.step == 3
    resumed.run()
    for k, v in resumed.model.state_dict().items():
        assert torch.equal(v, ref[k]), k  # bit for bit
    a, b = read_lcurve(tmp_path / "lcurve.out"), read_lcurve(tmp_path / "lcurve2.out")
    assert b["step"][-1] == 6 and np.array_equal(a["rmse_trn"][-1:], b["rmse_trn"][-1:])
    assert np.isfinite(a["rmse_f_val"]).all()  # validation held out from training data


# ----------------------------------------------------------- bad data
def test_bad_data_errors(data_dir, tmp_path):
    tm = ["O", "H"]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_systems(tmp_path / "nowhere", tm)
    with pytest.raises(ValueError, match=r"element\(s\) \['H'\] are not in the model's type_map"):
        load_systems(data_dir / "sys0", ["O"])
    bad = write_system(tmp_path / "badshape", nframes=3)
    np.save(bad / "set.000" / "force.npy", np.zeros((3, 5)))
    with pytest.raises(ValueError, match="force.npy: shape"):
        load_systems(bad, tm)
    bad = write_system(tmp_path / "badframes", nframes=3)
    np.save(bad / "set.000" / "energy.npy", np.zeros(2))
    with pytest.raises(ValueError, match="2 frames but coord.npy"):
        load_systems(bad, tm)
    miss = write_system(tmp_path / "missing", nframes=3)
    (miss / "set.000" / "energy.npy").unlink()
    with pytest.raises(FileNotFoundError, match="energy.npy is missing"):
        load_systems(miss, tm)
    with pytest.raises(ValueError, match="unsupported keys"):
        Trainer({**make_input(tmp_path, [data_dir]), "training": {"training_data": {"systems": [str(data_dir)]},
                                                                   "numb_step": 3}}, log=quiet)


def test_extxyz(tmp_path):
    ase = pytest.importorskip("ase")
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    coords, atype, cell = random_system(N_ATOMS, BOX, seed=2, min_dist=1.2)
    e, f, v = pair_labels(coords, atype, cell)
    at = ase.Atoms(["O" if t == 0 else "H" for t in atype.tolist()], positions=coords.numpy(), cell=cell.numpy(),
                   pbc=True)
    stress = -v.reshape(3, 3) / at.get_volume()
    at.calc = SinglePointCalculator(at, energy=e, forces=f, stress=stress[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]])
    write(tmp_path / "d.extxyz", [at, at])
    (s,) = load_systems(tmp_path / "d.extxyz", ["H", "O"])
    assert s.n_frames == 2 and list(s.atype[:2]) == [1, 0]
    np.testing.assert_allclose(s.force[1], f, atol=1e-10)
    np.testing.assert_allclose(s.virial[0], v, atol=1e-8)
    with pytest.raises(ValueError, match="not in the model's type_map"):
        load_systems(tmp_path / "d.extxyz", ["O", "C"])


# ----------------------------------------------------------- CLI
def test_cli_train_test_plot(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc = make_input(tmp_path, [data_dir / "sys0"], steps=4, disp_freq=2, save_freq=4)
    doc["training"]["validation_data"] = {"systems": [str(data_dir / "sys1")], "batch_size": 2}
    (tmp_path / "input.json").write_text(json.dumps(doc))
    assert main(["train", "input.json"]) == 0
    assert (tmp_path / "ckpt" / "model.ckpt.pt").exists()
    assert main(["test", "-m", "ckpt/model.ckpt.pt", "-s", str(data_dir), "--plot", "parity.png"]) == 0
    out = capsys.readouterr().out
    assert "force RMSE" in out and "virial RMSE" in out
    assert main(["plot-lcurve", "lcurve.out", "-o", "lc.png"]) == 0
    pytest.importorskip("matplotlib")
    assert (tmp_path / "parity.png").stat().st_size > 0 and (tmp_path / "lc.png").stat().st_size > 0
    assert main(["test", "-m", "ckpt/model.ckpt.pt", "-s", str(tmp_path / "nothing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    # resume through the CLI from a YAML input: continues at step 4
    yaml = pytest.importorskip("yaml")
    doc["training"]["numb_steps"] = 6
    (tmp_path / "input.yaml").write_text(yaml.safe_dump(doc))
    assert main(["train", "input.yaml", "--restart", "ckpt/model.ckpt.pt"]) == 0
    assert "restarted from ckpt/model.ckpt.pt at step 4" in capsys.readouterr().out
    assert list(read_lcurve(tmp_path / "lcurve.out")["step"]) == [2, 4, 6]
    (tmp_path / "bad.yaml").write_text("model: [unclosed")
    assert main(["train", "bad.yaml"]) == 2
    assert "invalid YAML" in capsys.readouterr().err
