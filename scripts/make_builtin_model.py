"""Regenerate dpgraph's built-in model (python/dpgraph/builtin/cuau.pt + cuau.json).

    python scripts/make_builtin_model.py [--workdir /tmp/builtin] [--max-time 1750] [--threads 1]

1. Reference data from ASE's EMT (python/dpgraph/builtin/emt_data.py): Cu–Au
   fcc alloys, 108 atoms, random composition/strain, Langevin MD snapshots at
   300–1200 K. Training, validation and test sets use different seeds.
2. Trains the config in ``BUILTIN_INPUT`` with ``dpgraph.train``.
3. Evaluates the test set and writes the model-only checkpoint and a model
   card (how it was made, the measured errors, and ``test_bound``: the force
   RMSE bound that tests/python/test_builtin.py checks on fresh held-out data).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import torch

import dpgraph
from dpgraph.builtin import BUILTIN_DIR
from dpgraph.builtin.emt_data import TYPE_MAP, demo_box, emt_comparison, sample_frames, write_system
from dpgraph.models import load_model, save_checkpoint
from dpgraph.train import error_table, load_systems, predict, train

SETS = {"train": (60, 8, 1), "valid": (4, 5, 2), "test": (8, 5, 3)}  # configs, snapshots each, seed

BUILTIN_INPUT = {
    "model": {
        "type_map": TYPE_MAP,
        "descriptor": {
            "type": "se_atten", "rcut": 6.0, "rcut_smth": 2.0, "sel": 100,
            "neuron": [8, 16, 32], "axis_neuron": 4, "tebd_dim": 8,
            "attn": 16, "attn_layer": 1, "attn_dotr": True, "smooth_type_embedding": True,
            "set_davg_zero": True, "precision": "float64", "seed": 1,
        },
        "fitting_net": {"neuron": [32, 32, 32], "resnet_dt": True, "precision": "float64", "seed": 1},
    },
    "learning_rate": {"type": "exp", "start_lr": 2e-3, "stop_lr": 3e-5, "decay_steps": 200},
    "loss": {"type": "ener", "start_pref_e": 0.02, "limit_pref_e": 1, "start_pref_f": 1000, "limit_pref_f": 1,
             "start_pref_v": 0.02, "limit_pref_v": 1},
    "training": {"training_data": {"systems": [], "batch_size": 1},
                 "validation_data": {"systems": [], "batch_size": 1, "numb_btch": 2},
                 "numb_steps": 8000, "seed": 1, "disp_freq": 100, "save_freq": 1000},
}


def make_data(workdir: Path) -> dict[str, list[str]]:
    systems = {}
    for name, (configs, snaps, seed) in SETS.items():
        t0 = time.perf_counter()
        frames = sample_frames(configs, snaps, seed=seed)
        systems[name] = [str(p) for p in write_system(frames, workdir / name)]
        print(f"{name}: {len(frames)} EMT frames in {time.perf_counter() - t0:.1f} s")
    return systems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default="/tmp/dpgraph-builtin")
    ap.add_argument("--max-time", type=float, default=1750.0, help="training wall-time bound (s; the budget is 30 min)")
    ap.add_argument("--steps", type=int, default=BUILTIN_INPUT["training"]["numb_steps"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(BUILTIN_DIR), help="where cuau.pt and cuau.json go")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.workdir)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    systems = make_data(work)
    doc = json.loads(json.dumps(BUILTIN_INPUT))
    doc["training"]["training_data"]["systems"] = systems["train"]
    doc["training"]["validation_data"]["systems"] = systems["valid"]
    doc["training"].update(numb_steps=args.steps, max_time=args.max_time, disp_file=str(work / "lcurve.out"),
                           save_ckpt=str(work / "model.ckpt"))
    result = train(doc)
    model = load_model(result["checkpoint"])
    model.eval()
    table = error_table(predict(model, load_systems(systems["test"], TYPE_MAP)))["all"]
    # the demo's box (dpgraph demo: 256 atoms, Cu50Au50, unstrained, atoms at rest)
    demo = emt_comparison(model, demo_box())
    out = Path(args.out)
    save_checkpoint(model, out / "cuau.pt")
    card = {
        "name": "cuau", "type_map": TYPE_MAP,
        "description": "DPA1 (se_atten, 1 attention layer) for fcc Cu-Au alloys, trained on ASE EMT",
        "reference": "ase.calculators.emt.EMT (ASE effective-medium theory), see dpgraph/builtin/emt_data.py",
        "data": {name: {"configs": c, "snapshots": s, "seed": seed, "frames": c * s, "atoms_per_frame": 108}
                 for name, (c, s, seed) in SETS.items()},
        "training": {"steps": result["step"], "wall_s": round(result["wall_s"], 1), "threads": args.threads,
                     "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
                     "dpgraph": dpgraph.__version__},
        "input": BUILTIN_INPUT,
        "test_errors": {k: round(float(v), 6) for k, v in table.items() if k.startswith(("rmse", "mae"))},
        "units": {"rmse_e": "eV/atom", "rmse_f": "eV/A", "rmse_v": "eV/atom", "demo_box": "eV/atom, eV/A, GPa"},
        "demo_box": {k: round(float(v), 6) for k, v in demo.items()},
        # fresh held-out frames (another seed) must stay under this; 1.3x the measured test RMSE
        "test_bound": {"rmse_f": round(1.3 * float(table["rmse_f"]), 4), "rmse_e": round(1.3 * float(table["rmse_e"]), 5),
                       "rmse_v": round(1.3 * float(table["rmse_v"]), 5)},
        "made_by": "python scripts/make_builtin_model.py",
    }
    (out / "cuau.json").write_text(json.dumps(card, indent=1) + "\n")
    size = (out / "cuau.pt").stat().st_size
    print(f"wrote {out / 'cuau.pt'} ({size / 1e3:.0f} kB) and cuau.json; test errors {card['test_errors']}; "
          f"demo box pressure {demo['p_model']:.2f} GPa vs EMT {demo['p_emt']:.2f} GPa")


if __name__ == "__main__":
    main()
