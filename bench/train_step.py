"""One training step (energy + force loss, backward to the weights) vs one inference evaluation.

Full-size DPA1 (sel 120, 25-50-100, axis 16, attn 128 x 2, dotr, smooth,
fitting 240 x 3, fp64), randomly initialized by deepmd-kit and imported into
dpgraph with the same weights, one 192-atom water frame as a batch of one,
one thread. A training step is forward, forces with ``create_graph=True``,
``loss = E^2 + sum(F^2)`` and its backward to every weight (the optimizer
update is negligible and left out), for:

* dpgraph eager (the path ``dpgraph train`` runs);
* deepmd-kit's ``pt`` model in training mode (the path ``dp --pt train`` runs);
* dpgraph with ``attn_layer 0`` (the same config without attention), to show
  what the attention costs in training.

Each case runs in its own worker process: two warm-up steps, then the median
of ``--repeat`` steps in process CPU time (one thread: the wall time of an
idle machine, and robust on a shared one); peak RSS is the worker's
``ru_maxrss``.

    python bench/train_step.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import deepmd_vs_dpgraph as B  # noqa: E402
from bench_common import run_json  # noqa: E402


def _tree(attn_layer: int):
    B._deepmd_modules()
    from deepmd.dpmodel.model.model import get_model

    cfg = copy.deepcopy(B.DEEPMD_CONFIG)
    cfg["descriptor"]["attn_layer"] = attn_layer
    return get_model(cfg).serialize()


def _frame():
    import torch

    c, a, cell = B.water_frame(192)
    return torch.tensor(c), torch.tensor(a), torch.tensor(cell)


def step_dpgraph(attn_layer: int, mode: str):
    import torch

    from dpgraph.graph import build_graph
    from dpgraph.interop.deepmd import from_serialized

    model = from_serialized(_tree(attn_layer))
    c, a, cell = _frame()
    g = build_graph(c, a, cell=cell, rcut=model.rcut)
    if mode == "infer":
        return lambda: model.evaluate(g)

    def run():
        model.zero_grad(set_to_none=True)
        e, _, f, _, _ = model(*g.as_tuple(), create_graph=True)
        (e.pow(2).sum() + f.pow(2).sum()).backward()

    return run


def step_deepmd(attn_layer: int, mode: str):
    import torch

    pt, _ = B._deepmd_modules()
    model = pt.BaseModel.deserialize(_tree(attn_layer))
    c, a, cell = _frame()
    coord, atype, box = c.reshape(1, -1), a.reshape(1, -1), cell.reshape(1, 9)
    if mode == "infer":
        model.eval()
        return lambda: model(coord, atype, box)
    model.train()  # forces with create_graph, as in dp --pt train

    def run():
        model.zero_grad(set_to_none=True)
        out = model(coord, atype, box)
        (out["energy"].pow(2).sum() + out["force"].pow(2).sum()).backward()

    return run


CASES = {
    "dpgraph train step": (step_dpgraph, 2, "train"),
    "deepmd-kit pt train step": (step_deepmd, 2, "train"),
    "dpgraph inference eval": (step_dpgraph, 2, "infer"),
    "deepmd-kit pt inference eval": (step_deepmd, 2, "infer"),
    "dpgraph train step, attn_layer 0": (step_dpgraph, 0, "train"),
}


def worker(case: str, repeat: int) -> dict:
    import torch

    torch.set_num_threads(1)
    fn, layers, mode = CASES[case]
    run = fn(layers, mode)
    run()
    run()
    times, cpu = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        run()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return {"wall_s": statistics.median(times), "median_s": statistics.median(cpu), "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.repeat)))
        return
    rows = {}
    print("full-size DPA1, fp64, one 192-atom water frame, one thread; step = forward + forces (create_graph) + "
          "backward of E^2 + |F|^2 to the weights")
    print(f"{'case':<34} | {'CPU s':>9} | {'wall s':>9} | {'peak GB':>8}")
    for case in CASES:
        r = run_json([sys.executable, __file__, "--worker", case, "--repeat", str(args.repeat)], 1, 3600)
        rows[case] = r
        if "error" in r:
            print(f"{case:<34} | {r['error']}")
        else:
            print(f"{case:<34} | {r['median_s']:>9.3f} | {r['wall_s']:>9.3f} | {r['peak_gb']:>8.2f}", flush=True)
    t = {k: v.get("median_s") for k, v in rows.items()}
    if all(t.values()):
        print(f"dpgraph train step / dpgraph inference eval: {t['dpgraph train step'] / t['dpgraph inference eval']:.2f}x")
        print(f"deepmd-kit train step / dpgraph train step (speedup): "
              f"{t['deepmd-kit pt train step'] / t['dpgraph train step']:.2f}x")
        print(f"dpgraph train step attn 2 / attn 0: "
              f"{t['dpgraph train step'] / t['dpgraph train step, attn_layer 0']:.2f}x")


if __name__ == "__main__":
    main()
