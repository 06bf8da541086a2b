"""Fused (production) attention vs the pair-materialized oracle: time and peak memory.

Full-size DPA1 (the built-in example config: sel 120, neuron 25-50-100,
attn 128 x 2 layers, dotr, smooth) on liquid-water-density boxes of 192,
1,536 and 12,288 atoms. One evaluation = energy + forces + virial (forward and
one backward), float64, eager PyTorch.

Every measurement runs in its own subprocess; peak memory is the growth of the
process's peak resident set during the evaluation (VmHWM after resetting it
through /proc/self/clear_refs), so it includes everything the evaluation
allocates. The oracle stores every (query edge, key edge) pair of a center:
where its predicted peak exceeds ``--budget-gb`` it is not run and the
prediction (linear in size, from the last size that ran) is printed instead.
The workers call :func:`dpgraph.tune_allocator` (see :mod:`dpgraph.allocator`).

    python bench/attention.py [--sizes 192 1536 12288] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


# the mmap-free heap of dpgraph.tune_allocator fragments near the memory limit
# (12,288 atoms: out of memory with it, 22.5 GB without): large systems run untuned
TUNE_BELOW_ATOMS = 5000


def _rss_peak_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def worker(n_atoms: int, impl: str, threads: int, repeat: int) -> dict:
    import torch

    import dpgraph

    from dpgraph.samples import example_config, water_box
    from dpgraph.graph import build_graph
    from dpgraph.models import build_model, compute_descriptor_stats

    torch.set_num_threads(threads)
    model = build_model(example_config(attention_impl="pairwise" if impl == "pairwise" else "fused"))
    # statistics from one fixed box, so every size runs the same model (and package)
    c0, a0, cell0 = water_box(64, seed=0)
    compute_descriptor_stats(model.descriptor, [build_graph(c0, a0, cell=cell0, rcut=model.rcut)])
    coords, atype, cell = water_box(n_atoms // 3, seed=0)
    graph = build_graph(coords, atype, cell=cell, rcut=model.rcut)
    run = model.evaluate
    if impl == "aoti":
        from dpgraph.export import load_package
        from dpgraph.export.cache import cached_export

        run = load_package(cached_export(model)).evaluate
    deg = torch.bincount(graph.dst[graph.edge_mask], minlength=n_atoms)
    # peak: growth of the resident set over all runs from before the first one (the
    # tuned allocator keeps freed memory, so later runs reuse it); time: best run,
    # the first excluded as warm-up when there are several
    if n_atoms < TUNE_BELOW_ATOMS:  # see dpgraph.allocator: large tensors page-fault anew otherwise
        dpgraph.tune_allocator()
    _reset_peak()
    base = _rss_peak_kb()
    times = []
    for _ in range(repeat + (1 if repeat > 1 else 0)):
        t0 = time.perf_counter()
        out = run(graph)
        times.append(time.perf_counter() - t0)
        energy = float(out["energy"][0])
        del out
    peak = _rss_peak_kb() - base
    times = times[1:] if repeat > 1 else times
    return {
        "atoms": n_atoms,
        "edges": int(graph.edge_mask.sum()),
        "pairs": int((deg * deg).sum()),
        "max_degree": int(deg.max()),
        "impl": impl,
        "time_s": min(times),
        "peak_gb": peak / 2**20,
        "energy": energy,
    }


def run_case(n_atoms: int, impl: str, threads: int, repeat: int) -> dict:
    cmd = [sys.executable, __file__, "--worker", str(n_atoms), impl, "--threads", str(threads), "--repeat", str(repeat)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        return {"atoms": n_atoms, "impl": impl, "error": (res.stderr.strip().splitlines() or ["killed"])[-1]}
    return json.loads(res.stdout.strip().splitlines()[-1])


ORACLE_GB_PER_PAIR = 1.2e-5  # measured at 192 atoms (16.9 GB / 1.38 M pairs), used before any oracle run


def _measure(n, impl, args, repeat, per_edge_gb, edges, pairs=0):
    """Run one case unless its predicted memory exceeds the budget."""
    # fused eager is always attempted: evaluate() chunks large graphs under its memory budget
    predicted = per_edge_gb.get(impl, 0.0) * edges if edges and impl != "fused" else 0.0
    if impl == "pairwise" and impl not in per_edge_gb and pairs:
        predicted = ORACLE_GB_PER_PAIR * pairs
    if predicted > args.budget_gb:
        return {"skipped": predicted}
    res = run_case(n, impl, args.threads, repeat)
    if "error" not in res:
        per_edge_gb[impl] = max(per_edge_gb.get(impl, 0.0), res["peak_gb"] / res["edges"])
    return res


def _cell(res) -> str:
    if "skipped" in res:
        return f"{'skipped':>8} {'~' + format(res['skipped'], '.0f'):>7}"
    if "error" in res:
        return f"{'failed':>8} {'':>7}"
    return f"{res['time_s']:>8.2f} {res['peak_gb']:>7.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[192, 1536, 12288])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget-gb", type=float, default=18.0, help="skip cases predicted to need more")
    ap.add_argument("--no-aoti", action="store_true", help="skip the compiled-package column")
    ap.add_argument("--repeat", type=int, default=0, help="evaluations per case (default: 3 below 2,000 atoms, else 1)")
    ap.add_argument("--worker", nargs=2, metavar=("ATOMS", "IMPL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(int(args.worker[0]), args.worker[1], args.threads, args.repeat or 1)))
        return

    impls = ["fused"] + ([] if args.no_aoti else ["aoti"]) + ["pairwise"]
    names = {"fused": "fused eager", "aoti": "fused AOTI", "pairwise": "pair oracle"}
    print(f"DPA1 sel 120, attn 128 x 2, float64, {args.threads} threads; one eval = energy + forces + virial")
    print(f"{'':>29}" + "".join(f" | {names[i]:>16}" for i in impls) + " |")
    header = f"{'atoms':>6} {'edges':>9} {'pairs':>11}" + "".join(f" | {'s':>8} {'GB':>7}" for _ in impls) + " | oracle/fused: time, memory"
    print(header)
    print("-" * len(header))
    per_edge_gb: dict[str, float] = {}
    edges, prev_n = 0, 1
    for n in args.sizes:
        repeat = args.repeat or (3 if n < 2000 else 1)
        res = {}
        for impl in impls:
            if impl != "fused" and "error" in res["fused"]:  # no size estimate: do not risk the rest
                res[impl] = {"error": "fused failed"}
                continue
            pairs = res.get("fused", {}).get("pairs", 0)
            res[impl] = _measure(n, impl, args, repeat, per_edge_gb, edges and edges * (n / prev_n), pairs)
            if "edges" in res[impl]:
                edges, prev_n = res[impl]["edges"], n
        e = next((r for r in res.values() if "edges" in r), {})
        row = f"{n:>6} {e.get('edges', 0):>9} {e.get('pairs', 0):>11}" + "".join(f" | {_cell(res[i])}" for i in impls)
        f, o = res["fused"], res["pairwise"]
        if "time_s" in f and "time_s" in o:
            row += f" | {o['time_s'] / f['time_s']:.1f}x, {o['peak_gb'] / f['peak_gb']:.1f}x"
        elif "time_s" in f and "skipped" in o:
            row += f" | -, >{o['skipped'] / f['peak_gb']:.0f}x (predicted)"
        print(row, flush=True)
    print("skipped: predicted peak (GB, linear in edges/pairs from the last size that ran) > --budget-gb")
    print(f"allocator: dpgraph.tune_allocator() below {TUNE_BELOW_ATOMS} atoms, glibc defaults above")


if __name__ == "__main__":
    main()
