"""DeepPot time and peak memory from 192 to 98,304 water atoms, fp64 and fp32, one thread.

The full-size DPA1 of the example config (sel 120, neuron 25-50-100, axis 16,
attn 128 x 2, dotr, smooth, fitting 240 x 3) with descriptor statistics from
water, compiled once per precision (package cache). Each measurement runs in
a fresh worker process: one warm-up evaluation, then the median of the timed
ones; peak memory is the worker's ``ru_maxrss`` (interpreter, torch, model,
graph and evaluation: what a user's process needs).

Printed per size: seconds per evaluation, time per atom relative to 192
atoms (target <= 1.2), peak RSS (target <= 2 GB), bytes per edge of the peak
above the process baseline, achieved GEMM rate (GEMM FLOPs of one evaluation,
counted with torch's FlopCounterMode on the eager model at 192 atoms and
scaled by the edge count, divided by the time) against this machine's fp64 /
fp32 GEMM rate measured in the same run (a 2000^3 matrix product), and the
fp32 / fp64 speed ratio.

    python bench/scaling.py [--sizes 192 1536 12288 98304] [--budget-mb 1024]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import compile_in_child, gemm_rate, run_json, water  # noqa: E402

PRECISIONS = ("float64", "float32")


def example_model(precision: str):
    from dpgraph.samples import example_config
    from dpgraph.graph import build_graph
    from dpgraph.models import build_model, compute_descriptor_stats

    cfg = example_config()
    cfg["descriptor"]["precision"] = cfg["fitting_net"]["precision"] = precision
    model = build_model(cfg)
    c, a, cell = (torch_tensor(x) for x in water(192))
    compute_descriptor_stats(model.descriptor, [build_graph(c, a, cell=cell, rcut=model.rcut)])
    return model


def torch_tensor(x):
    import torch

    return torch.as_tensor(x)


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def gemm_flops_192(precision: str) -> tuple[float, int]:
    """(GEMM FLOPs of one energy+forces evaluation at 192 atoms, its real edge count)."""
    from torch.utils.flop_counter import FlopCounterMode

    from dpgraph.graph import build_graph

    model = example_model(precision)
    for p in model.parameters():
        p.requires_grad_(False)
    c, a, cell = (torch_tensor(x) for x in water(192))
    g = build_graph(c, a, cell=cell, rcut=model.rcut).to(dtype=model.dtype)
    ev = g.edge_vec.clone().requires_grad_(True)
    with FlopCounterMode(display=False) as fc:
        model.atom_energy(g.atype, g.n_node, g.edge_index, ev, g.edge_mask).sum().backward()
    return float(fc.get_total_flops()), int(g.edge_mask.sum())


def worker(package: str, n_atoms: int, repeat: int, budget: int) -> dict:
    import resource

    import torch

    torch.set_num_threads(1)
    import dpgraph

    dpgraph.tune_allocator()
    c, a, cell = water(n_atoms)
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    dp = dpgraph.DeepPot(package, memory_budget=budget)
    args = (c[None], cell.reshape(1, 9), a)
    if repeat > 1:
        dp.eval(*args)  # warm-up (allocator, AOTI first run); skipped for the largest boxes
    dp.reset_timing()
    c0 = time.process_time()
    times = [_timed(lambda: dp.eval(*args)) for _ in range(max(repeat, 1))]
    cpu = (time.process_time() - c0) / max(repeat, 1)
    g, m = dp.timing
    return {"median_s": statistics.median(times), "cpu_s": cpu, "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "base_gb": base_kb / 2**20, "graph_share": g / (g + m)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[192, 1536, 12288, 98304])
    ap.add_argument("--budget-mb", type=float, default=1024.0, help="DeepPot memory_budget")
    ap.add_argument("--repeat", type=int, default=0,
                    help="timed evaluations after a warm-up (default: 5, 2 above 1k atoms; 1 and no warm-up above 50k)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="report process CPU time instead of wall time (one thread on a shared machine)")
    ap.add_argument("--precisions", nargs="+", default=list(PRECISIONS), choices=PRECISIONS)
    ap.add_argument("--worker", nargs=3, metavar=("PACKAGE", "ATOMS", "REPEAT"), help=argparse.SUPPRESS)
    ap.add_argument("--task", help=argparse.SUPPRESS)
    args = ap.parse_args()
    budget = int(args.budget_mb * 2**20)
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), int(args.worker[2]), budget)))
        return
    if args.task:  # small helper jobs in their own process
        kind, prec = args.task.split(":")
        if kind == "compile":
            from dpgraph.export.cache import cached_export

            print(cached_export(example_model(prec)))
        elif kind == "flops":
            print(json.dumps(gemm_flops_192(prec)))
        elif kind == "gemm":
            print(json.dumps(gemm_rate(prec)))
        return

    me = [sys.executable, __file__, "--budget-mb", str(args.budget_mb)]
    clock = "process CPU time" if args.cpu_time else "wall time"
    packages = {p: compile_in_child(me + ["--task", f"compile:{p}"], f"the {p} package") for p in PRECISIONS}
    flops = {p: json.loads(compile_in_child(me + ["--task", f"flops:{p}"], "flop count")) for p in PRECISIONS}
    rate = {p: run_json(me + ["--task", f"gemm:{p}"], 1, 600) for p in PRECISIONS}
    print(f"DPA1 full size (example config), water, DeepPot (C++), 1 thread, {clock}, "
          f"memory budget {args.budget_mb:g} MB; "
          f"GEMM rate of this machine (2000^3, 1 thread): fp64 {rate['float64']:.1f}, fp32 {rate['float32']:.1f} GFLOP/s")
    print(f"{'atoms':>7} {'prec':>7} | {'s/eval':>8} {'us/atom':>8} {'vs 192':>7} | {'peak GB':>7} {'B/edge':>7} | "
          f"{'GEMM GF/s':>9} {'of peak':>7} | {'graph %':>7} | fp32 speedup")
    per_atom_192: dict[str, float] = {}
    res_64: dict[int, float] = {}
    for n in args.sizes:
        repeat = args.repeat or (5 if n < 1_000 else 2 if n < 50_000 else 1)
        for prec in args.precisions:
            r = run_json(me + ["--worker", str(packages[prec]), str(n), str(repeat)], 1, 3600)
            if "error" in r:
                print(f"{n:>7} {prec:>7} | {r['error']}")
                continue
            t = r["cpu_s"] if args.cpu_time else r["median_s"]
            us = 1e6 * t / n
            per_atom_192.setdefault(prec, us)
            f192, e192 = flops[prec]
            edges = e192 * n / 192
            gfs = f192 * n / 192 / t / 1e9
            bpe = (r["peak_gb"] - r["base_gb"]) * 2**30 / edges
            sp = ""
            if prec == "float64":
                res_64[n] = t
            elif n in res_64:
                sp = f"{res_64[n] / t:.2f}x"
            print(f"{n:>7} {prec:>7} | {t:>8.3f} {us:>8.1f} {us / per_atom_192[prec]:>6.2f}x | "
                  f"{r['peak_gb']:>7.2f} {bpe:>7.0f} | {gfs:>9.1f} {gfs / rate[prec]:>6.0%} | "
                  f"{100 * r['graph_share']:>6.1f}% | {sp}", flush=True)
    print("vs 192 = time per atom / time per atom at 192 atoms (target <= 1.2x); peak GB = worker ru_maxrss "
          "(target <= 2 GB); B/edge = (peak - RSS before the model was loaded) / real edges; GEMM GF/s = GEMM FLOPs "
          "(FlopCounterMode, 192 atoms, scaled by atoms) / time")


if __name__ == "__main__":
    main()
