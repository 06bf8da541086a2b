"""LAMMPS MD speed with pair_style dpgraph: atom-steps/s, ns/day, graph-building share.

The full-size example DPA1 (sel 120, neuron 25-50-100, attn 128 x 2, fp64)
compiled to a `.pt2` (cached), NVE water at 0.5 fs on 1 and 2 MPI ranks
(one torch thread per rank), 192 / 1,536 / 12,288 / 98,304 atoms; peak memory
is the largest resident set of an ``lmp`` rank. For each size the
reference measured in the same run is one `dpgraph.DeepPot` evaluation of
the same box in Python with as many threads as ranks: the ratio shows what
LAMMPS integration (neighbor lists, ghosts, communication) costs on top of
the model.

    python bench/lammps.py [--sizes 192 1536] [--ranks 1 2] [--steps 10]

The share of the pair time spent assembling graphs (node selection,
coordinates, NeighborGraph) comes from the pair style's own timer.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path



def model_file() -> Path:
    from dpgraph.samples import example_config, water_box
    from dpgraph.export.cache import cached_export
    from dpgraph.graph import build_graph
    from dpgraph.models import build_model, compute_descriptor_stats

    model = build_model(example_config())
    c0, a0, cell0 = water_box(64, seed=0)
    compute_descriptor_stats(model.descriptor, [build_graph(c0, a0, cell=cell0, rcut=model.rcut)])
    return cached_export(model)


def deeppot_seconds(path, n_molecules: int, threads: int) -> float:
    """Median DeepPot eval time in a fresh process (threads = ranks)."""
    code = f"""
import time, torch, numpy as np
torch.set_num_threads({threads})
import dpgraph
dpgraph.tune_allocator()  # as the pair style does inside lmp
from dpgraph import DeepPot
from dpgraph.samples import water_box
c, a, cell = water_box({n_molecules}, seed=1)
dp = DeepPot({str(path)!r})
args = (c.numpy()[None], cell.numpy().reshape(1, 9), a.numpy())
dp.eval(*args)
ts = []
for _ in range(3):
    t = time.perf_counter(); dp.eval(*args); ts.append(time.perf_counter() - t)
print(sorted(ts)[1])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def lammps_run(path, n_molecules: int, ranks: int, steps: int) -> dict:
    from dpgraph.samples import water_box
    from dpgraph.app.lammps_md import run_md

    c, a, cell = water_box(n_molecules, seed=1)
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with tempfile.TemporaryDirectory() as d:
        res = run_md(path, c.numpy(), a.numpy(), cell.numpy(), ["O", "H"], Path(d), steps=steps,
                     thermo_every=steps, nprocs=ranks, threads=1)
    share = re.search(r"graph assembly [\d.e+-]+ s \(([\d.]+)% of pair\)", res.log)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # largest finished child (an lmp rank)
    return {"atom_steps": res.atom_steps_per_s, "ns_day": res.ns_per_day,
            "graph_share": float(share.group(1)) if share else float("nan"),
            "peak_gb": peak / 2**20 if peak > before else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[192, 1536], help="atoms (multiples of 3)")
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=10)
    args = ap.parse_args()
    path = model_file()
    print(f"model: {path}")
    print(f"{'atoms':>7} {'ranks':>5} {'atom-steps/s':>13} {'ns/day':>9} {'graph %':>8} "
          f"{'DeepPot eval s':>15} {'LAMMPS step / DeepPot eval':>27} {'lmp peak GB':>12}")
    for n in args.sizes:
        mol = n // 3
        steps = max(2, args.steps * 192 // n)
        for r in args.ranks:
            try:
                ref = deeppot_seconds(path, mol, r)
                res = lammps_run(path, mol, r, steps)
            except (subprocess.CalledProcessError, RuntimeError) as err:
                print(f"{n:>7} {r:>5}  failed: {str(err).splitlines()[-1][:100]}")
                continue
            step_s = n / res["atom_steps"]
            print(f"{n:>7} {r:>5} {res['atom_steps']:>13.1f} {res['ns_day']:>9.4f} {res['graph_share']:>7.1f}% "
                  f"{ref:>15.3f} {step_s / ref:>27.2f} {res['peak_gb']:>12.2f}")


if __name__ == "__main__":
    main()
