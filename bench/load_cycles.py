"""Resident memory over repeated DeepPot load / evaluate / unload cycles (leak probe).

    python bench/load_cycles.py [--cycles 200] [--package model.pt2]

Default package: the built-in model. Prints the RSS after the first cycle and
its growth per cycle over the first and the last halves of the run: a leak
grows linearly to the end; caches that fill once flatten out.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import rss_kb  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cycles", type=int, default=200)
    p.add_argument("--package", default=None, help="a .pt2 (default: the built-in model, compiled once)")
    args = p.parse_args()
    import dpgraph
    from dpgraph.builtin import load_builtin
    from dpgraph.export.cache import cached_export
    from dpgraph.samples import water_box

    pkg = args.package or str(cached_export(load_builtin(), log=print))
    dp = dpgraph.DeepPot(pkg)
    types = dp.get_type_map()
    coords, atype, cell = (t.numpy() for t in water_box(8, seed=0))
    atype = np.minimum(atype, len(types) - 1)
    rss = []
    for _ in range(args.cycles):
        dp = dpgraph.DeepPot(pkg)
        dp.eval(coords.reshape(1, -1), cell.reshape(1, 9), atype)
        del dp
        gc.collect()
        rss.append(rss_kb("VmRSS") / 1024)
    half = args.cycles // 2
    first = (rss[half - 1] - rss[0]) / max(half - 1, 1) * 1024
    last = (rss[-1] - rss[half]) / max(args.cycles - half - 1, 1) * 1024
    print(f"{pkg}: {args.cycles} load/eval/unload cycles; RSS {rss[0]:.1f} MB after the first, {rss[-1]:.1f} MB "
          f"after the last; growth {first:.1f} kB/cycle in the first half, {last:.1f} kB/cycle in the second")


if __name__ == "__main__":
    main()
