"""Fused (production) attention vs the pair-materialized oracle: time and peak memory.

Full-size DPA1 (the built-in example config: sel 120, neuron 25-50-100,
attn 128 x 2 layers, dotr, smooth) on liquid-water-density boxes of 192,
1,536 and 12,288 atoms. One evaluation = energy + forces + virial (forward and
one backward), float64, eager PyTorch.

Every measurement runs in its own subprocess; peak memory is the growth of the
process's peak resident set during the evaluation (VmHWM after resetting it
through /proc/self/clear_refs), so it includes everything the evaluation
allocates. The oracle stores every (query edge, key edge) pair of a center:
where its predicted peak exceeds ``--oracle-budget-gb`` it is not run and the
prediction (linear in the pair count, fitted on the sizes that ran) is
printed instead.

    python bench/attention.py [--sizes 192 1536 12288] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


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

    from dpgraph.examples import example_config, water_box
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
    times = []
    peak = 0
    energy = None
    for _ in range(repeat):
        _reset_peak()
        base = _rss_peak_kb()
        t0 = time.perf_counter()
        out = run(graph)
        times.append(time.perf_counter() - t0)
        peak = max(peak, _rss_peak_kb() - base)
        energy = float(out["energy"][0])
        del out
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[192, 1536, 12288])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--oracle-budget-gb", type=float, default=12.0)
    ap.add_argument("--repeat", type=int, default=0, help="evaluations per case (default: 3 below 2,000 atoms, else 1)")
    ap.add_argument("--worker", nargs=2, metavar=("ATOMS", "IMPL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(int(args.worker[0]), args.worker[1], args.threads, args.repeat or 1)))
        return

    print(f"DPA1 sel 120, attn 128 x 2, float64, {args.threads} threads; one eval = energy + forces + virial")
    header = f"{'atoms':>6} {'edges':>9} {'pairs':>11} | {'fused s':>8} {'fused GB':>8} | {'oracle s':>9} {'oracle GB':>9} | {'time x':>7} {'mem x':>7} | {'|dE|/E':>8}"
    print(header)
    print("-" * len(header))
    gb_per_pair = None
    for n in args.sizes:
        repeat = args.repeat or (3 if n < 2000 else 1)
        fused = run_case(n, "fused", args.threads, repeat)
        if "error" in fused:
            print(f"{n:>6} fused failed: {fused['error']}")
            continue
        predicted = gb_per_pair * fused["pairs"] if gb_per_pair else None
        if predicted is not None and predicted > args.oracle_budget_gb:
            oracle = None
        else:
            oracle = run_case(n, "pairwise", args.threads, repeat)
        row = f"{n:>6} {fused['edges']:>9} {fused['pairs']:>11} | {fused['time_s']:>8.2f} {fused['peak_gb']:>8.2f} | "
        if oracle is None:
            row += f"{'skipped':>9} {'~' + format(predicted, '.0f'):>9} | {'-':>7} {'>' + format(predicted / fused['peak_gb'], '.0f'):>7} | {'-':>8}"
        elif "error" in oracle:
            row += f"{'failed':>9} {'':>9} | {'-':>7} {'-':>7} | {oracle['error'][:40]}"
        else:
            gb_per_pair = oracle["peak_gb"] / oracle["pairs"]
            de = abs(oracle["energy"] - fused["energy"]) / abs(oracle["energy"])
            row += (
                f"{oracle['time_s']:>9.2f} {oracle['peak_gb']:>9.2f} | {oracle['time_s'] / fused['time_s']:>7.2f} "
                f"{oracle['peak_gb'] / max(fused['peak_gb'], 1e-9):>7.2f} | {de:>8.1e}"
            )
        print(row, flush=True)
    print("time x, mem x: oracle / fused (higher = fused better); skipped: predicted oracle GB > budget")


if __name__ == "__main__":
    main()
