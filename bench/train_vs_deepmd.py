"""Training quality and speed: ``dpgraph train`` vs deepmd-kit's ``dp --pt train``.

Both trainers get the same input file: the built-in model's config
(``python/dpgraph/builtin/cuau.json``: se_atten, attn 16, neuron 8-16-32,
fitting 32^3 with resnet_dt, rcut 6 Å, fp64), its learning-rate schedule and
loss prefactors, batch size 1, ``--steps`` steps, and the same EMT Cu–Au data
(``dpgraph.builtin.emt_data``): 25 systems x 8 frames for training, 20
validation and 40 held-out test frames (other seeds), 108 atoms each.

Each run is one worker process on one thread (``OMP_NUM_THREADS=1``):

* ``dpgraph``: :class:`dpgraph.train.Trainer` on the input;
* ``deepmd``: ``dp --pt train input.json`` (deepmd-kit's pure-Python PyTorch
  path; its compiled operators are built for another torch and are disabled);
  the checkpoint is then imported into dpgraph (exact to 1e-12, dense
  semantics, i.e. deepmd-kit's own numbers) only to evaluate it;
* ``legacy-idt``, ``legacy-bias``, ``legacy``: ablations of dpgraph's network
  before it followed deepmd-kit's definition: a timestep ``idt`` also on the
  first fitting layer (no skip connection), a trainable ``bias_atom_e``, or both.

s/step is the training wall time (statistics, steps, validation every 100
steps, checkpoints) over the steps; peak RSS is the worker's ``ru_maxrss``
after training; errors are RMSE vs EMT on the 40 test frames (energy and
virial per atom). The table gives mean ± spread (max - min over seeds).

    python bench/train_vs_deepmd.py [--steps 2000] [--seeds 1 2 3] [--attn-layers 1 2]
        [--arms dpgraph deepmd] [--jobs 1] [--workdir /tmp/dpgraph-train-vs-deepmd]

Results are kept in ``WORKDIR/results.json``; runs already there are not redone.
With ``--jobs 2`` two workers run side by side (still one thread each); the
per-step times then include the contention of a shared memory bus.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import disable_deepmd_ops  # noqa: E402

ARMS = ("dpgraph", "deepmd", "legacy-idt", "legacy-bias", "legacy")
SETS = {"train": (25, 8, 11), "valid": (4, 5, 12), "test": (8, 5, 13)}  # configs, snapshots, seed


def make_data(work: Path) -> dict[str, list[str]]:
    """EMT systems for the three sets (written once, reused by every run)."""
    from dpgraph.builtin.emt_data import sample_frames, write_system

    index = work / "data" / "systems.json"
    if index.exists():
        return json.loads(index.read_text())
    systems = {}
    for name, (configs, snaps, seed) in SETS.items():
        t0 = time.perf_counter()
        frames = sample_frames(configs, snaps, seed=seed)
        systems[name] = [str(p) for p in write_system(frames, work / "data" / name)]
        print(f"data {name}: {len(frames)} EMT frames in {len(systems[name])} systems "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
    index.write_text(json.dumps(systems))
    return systems


def make_input(systems: dict, steps: int, seed: int, attn_layer: int) -> dict:
    """One deepmd-kit training input, read unchanged by both trainers."""
    from dpgraph.builtin import builtin_card

    base = builtin_card()["input"]
    model = copy.deepcopy(base["model"])
    model["descriptor"].update(attn_layer=attn_layer, seed=seed)
    model["fitting_net"]["seed"] = seed
    return {
        "model": model,
        "learning_rate": dict(base["learning_rate"]),
        "loss": dict(base["loss"]),
        "training": {
            "training_data": {"systems": systems["train"], "batch_size": 1},
            "validation_data": {"systems": systems["valid"], "batch_size": 1, "numb_btch": 2},
            "numb_steps": steps, "seed": seed, "disp_freq": 100, "save_freq": steps,
            "disp_file": "lcurve.out", "save_ckpt": "model.ckpt",
        },
    }


# ------------------------------------------------------------------ workers
def _legacy(trainer, arm: str) -> None:
    """Turn the fresh model back into dpgraph's version-1 network (ablation only)."""
    import torch

    fit = trainer.model.fitting
    if arm in ("legacy-idt", "legacy"):
        gen = torch.Generator().manual_seed(int(trainer.input["training"]["seed"]))
        for layer in fit.net:
            if layer.idt is None and layer.resnet:  # hidden layers without a skip connection
                idt = torch.empty(layer.n_out, dtype=torch.float64).normal_(0.1, 0.001, generator=gen)
                layer.idt = torch.nn.Parameter(idt.to(layer.w.dtype))
    if arm in ("legacy-bias", "legacy"):
        bias = fit.bias_atom_e.detach().clone()
        del fit._buffers["bias_atom_e"]
        fit.bias_atom_e = torch.nn.Parameter(bias)
    trainer.optimizer = torch.optim.Adam(trainer.model.parameters(), lr=trainer.lr.start_lr)


def _errors(model, systems: list[str]) -> dict:
    from dpgraph.builtin.emt_data import TYPE_MAP
    from dpgraph.train import error_table, load_systems, predict

    model.eval()
    table = error_table(predict(model, load_systems(systems, TYPE_MAP)))["all"]
    return {"rmse_e": table["rmse_e"], "rmse_f": table["rmse_f"], "rmse_v": table.get("rmse_v", float("nan"))}


def worker(arm: str, run_dir: Path, test_systems: list[str]) -> dict:
    import torch

    torch.set_num_threads(1)
    doc = json.loads((run_dir / "input.json").read_text())
    steps = int(doc["training"]["numb_steps"])
    os.chdir(run_dir)
    t0 = time.perf_counter()
    if arm == "deepmd":
        disable_deepmd_ops()
        from deepmd.main import main as dp_main

        dp_main(["--pt", "train", "input.json"])
        wall = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        from dpgraph.interop import load_deepmd

        model = load_deepmd(run_dir / "model.ckpt.pt", semantics="dense")
    else:
        from dpgraph.train import Trainer

        trainer = Trainer(doc, log=lambda *_: None)
        if arm != "dpgraph":
            _legacy(trainer, arm)
        trainer.run()
        wall = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        model = trainer.model
    return {"s_per_step": wall / steps, "peak_rss_gb": rss / 2**20, **_errors(model, test_systems)}


# ------------------------------------------------------------------ driver
def _run_one(key: str, arm: str, run_dir: Path, test: list[str], timeout: float) -> dict:
    cmd = [sys.executable, __file__, "--worker", arm, "--run-dir", str(run_dir), "--test", json.dumps(test)]
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
    with open(run_dir / "worker.log", "w") as log:
        try:
            res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
    if res.returncode != 0:
        tail = (run_dir / "worker.log").read_text().strip().splitlines()[-1:] or [""]
        return {"error": f"exit {res.returncode}: {tail[0][-200:]} (see {run_dir / 'worker.log'})"}
    out = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"{key}: {out['s_per_step']:.3f} s/step, {out['peak_rss_gb']:.2f} GB, E {1e3 * out['rmse_e']:.1f} "
          f"meV/atom, F {out['rmse_f']:.3f} eV/Å, V {1e3 * out['rmse_v']:.1f} meV/atom", flush=True)
    return out


def _cell(values: list[float], scale: float, fmt: str) -> str:
    if not values:
        return "-"
    mean = statistics.fmean(values) * scale
    spread = (max(values) - min(values)) * scale
    return f"{mean:{fmt}} ± {spread:{fmt}}" if len(values) > 1 else f"{mean:{fmt}}"


def table(results: dict, arms, attn_layers, seeds) -> str:
    rows = ["| attn_layer | trainer | seeds | s/step | peak RSS (GB) | test E (meV/atom) | test F (eV/Å) "
            "| test V (meV/atom) |", "|---|---|---|---|---|---|---|---|"]
    for layer in attn_layers:
        for arm in arms:
            got = [results[k] for s in seeds if "error" not in results.get(k := f"a{layer}/{arm}/s{s}", {"error": 1})]
            col = lambda name: [r[name] for r in got]  # noqa: E731
            rows.append(f"| {layer} | {arm} | {len(got)} | {_cell(col('s_per_step'), 1, '.3f')} | "
                        f"{_cell(col('peak_rss_gb'), 1, '.2f')} | {_cell(col('rmse_e'), 1e3, '.1f')} | "
                        f"{_cell(col('rmse_f'), 1, '.3f')} | {_cell(col('rmse_v'), 1e3, '.1f')} |")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--attn-layers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--arms", nargs="+", default=["dpgraph", "deepmd"], choices=ARMS)
    ap.add_argument("--jobs", type=int, default=1, help="workers side by side (one thread each)")
    ap.add_argument("--timeout", type=float, default=7200.0, help="per run (s)")
    ap.add_argument("--workdir", default="/tmp/dpgraph-train-vs-deepmd")
    ap.add_argument("--worker", choices=ARMS, help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", help=argparse.SUPPRESS)
    ap.add_argument("--test", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, Path(args.run_dir), json.loads(args.test))))
        return

    work = Path(args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    systems = make_data(work)
    results_path = work / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    todo = []
    for layer in args.attn_layers:
        for seed in args.seeds:
            for arm in args.arms:
                key = f"a{layer}/{arm}/s{seed}"
                if key in results and "error" not in results[key] and results[key].get("steps") == args.steps:
                    continue
                run_dir = work / f"attn{layer}" / arm / f"seed{seed}"
                run_dir.mkdir(parents=True, exist_ok=True)
                (run_dir / "input.json").write_text(json.dumps(make_input(systems, args.steps, seed, layer), indent=1))
                todo.append((key, arm, run_dir))
    print(f"{len(todo)} runs of {args.steps} steps, {args.jobs} at a time, one thread each", flush=True)

    def go(item):
        key, arm, run_dir = item
        out = _run_one(key, arm, run_dir, systems["test"], args.timeout)
        if "error" in out:
            print(f"{key}: {out['error']}", flush=True)
        results[key] = dict(out, steps=args.steps)
        results_path.write_text(json.dumps(results, indent=1))

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        list(pool.map(go, todo))
    print()
    print(table(results, args.arms, args.attn_layers, args.seeds))
    for layer in args.attn_layers:
        mine = [results.get(f"a{layer}/dpgraph/s{s}", {}) for s in args.seeds]
        ref = [results.get(f"a{layer}/deepmd/s{s}", {}) for s in args.seeds]
        if all("s_per_step" in r for r in mine + ref):
            ratio = statistics.fmean(r["s_per_step"] for r in ref) / statistics.fmean(r["s_per_step"] for r in mine)
            print(f"attn_layer {layer}: dpgraph is {ratio:.2f}x deepmd-kit's speed per step")


if __name__ == "__main__":
    main()
