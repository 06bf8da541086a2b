"""Neighbor lists: vesin (PyPI ``vesin``) vs dpgraph's cell lists, exactness and one-thread CPU time.

Not a dependency: this bench needs ``pip install vesin`` and says so when it is
missing. Two parts, both in one run unless ``--no-check`` / ``--no-speed``:

1. Exactness, on the geometries of tests/python/test_graph.py (random
   triclinic cells with every pbc pattern, thin and very thin cells, slab and
   wire, clusters without a cell, several frames, one atom in a tiny box, the
   3,000-atom dense box) plus the 192-atom water box: vesin's full list
   (``i`` = center, ``j`` = neighbor, ``D = r_j - r_i + S @ cell``) against
   ``build_graph``'s edges as sets of (frame, dst, src, edge_vec rounded to
   1e-6 Å). Each case prints ``equal``, ``differs`` (edge counts only in one
   of them, with one example), or how the two behave when one refuses the input.
2. Speed, water boxes of 192 / 1,536 / 12,288 / 98,304 atoms (the 192-atom box
   replicated k^3 times), rcut 6 Å, full list, fp64, CPU, one thread
   (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``, vesin ``n_threads=1``):

   - ``vesin``: ``NeighborList.compute(coords, cell, True, "ijD", copy=False)``;
   - ``vesin+graph``: the same call, then its pairs turned into a validated
     NeighborGraph (int64 indices, ``dst = i``, ``src = j``, ``edge_vec = D``,
     sorted by dst with ``assemble_graph``, padded): what dpgraph would get;
   - ``python``: ``dpgraph.graph.build_graph`` (vectorized torch cell list);
   - ``cpp``: ``dpgraph._core.build_graph`` (the C++ runtime's cell list; it
     also validates the graph and copies it to numpy).

   Every (method, size) runs in a fresh worker subprocess; time = median process
   CPU time (``time.process_time``, user + system) of ``--repeats`` calls (2
   when the warm-up took over 2 s) after one warm-up call; a warm-up over
   ``--slow-s`` seconds is the only sample (``n=1``: a cold call, page faults
   included). A method whose time, extrapolated linearly in atoms from
   the previous size, would exceed ``--max-s`` is skipped with a note. Peak =
   the worker's VmHWM (``ru_maxrss`` would include the parent's peak, inherited
   across fork). Ratios are against ``vesin+graph`` of the same
   size, measured in the same run; the edge counts of all methods must agree.

    python bench/neighbor_list.py [--sizes 192 1536 12288 98304] [--repeats 5] [--no-check] [--no-speed]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import rss_kb, run_json, water  # noqa: E402

METHODS = ("vesin", "vesin+graph", "python", "cpp")
RCUT = 6.0


def _vesin():
    try:
        import vesin
    except ImportError:
        raise SystemExit("this bench needs vesin: pip install vesin (it is not a dpgraph dependency)")
    return vesin


# ------------------------------------------------------------ conversion
def vesin_pairs(nl, coords, cell, pbc, copy=False):
    """(dst, src, vec) numpy of vesin's full list; ``cell`` None = open boundaries.

    With ``copy=False`` the arrays are views of vesin's buffers, overwritten by the next call."""
    import numpy as np

    box = np.zeros((3, 3)) if cell is None else np.asarray(cell, dtype=np.float64)
    periodic = [False] * 3 if cell is None else list(pbc) if isinstance(pbc, (list, tuple)) else [bool(pbc)] * 3
    i, j, d = nl.compute(np.asarray(coords, dtype=np.float64), box, periodic, "ijD", copy=copy)
    return i, j, d


def vesin_graph(nl, coords, atype, cell, pbc):
    """A NeighborGraph (float64, default padding) from vesin's full list: one frame."""
    import numpy as np
    import torch

    from dpgraph.graph.builders import assemble_graph
    from dpgraph.graph.neighbor_graph import MIN_PADDING_EDGES

    i, j, d = vesin_pairs(nl, coords, cell, pbc)
    n = len(coords)
    dst = torch.from_numpy(i.astype(np.int64))
    src = torch.from_numpy(j.astype(np.int64))
    vec = torch.from_numpy(np.array(d, dtype=np.float64))  # copy: vesin reuses its buffers
    n_node = torch.tensor([[n, n]], dtype=torch.int64)
    return assemble_graph(torch.as_tensor(np.asarray(atype), dtype=torch.int64), n_node, src, dst, vec,
                          MIN_PADDING_EDGES, torch.float64)


def edge_set(frame_edges, decimals: int = 6) -> set[tuple]:
    """{(frame, dst, src, vx, vy, vz)} from [(dst, src, vec)] per frame, vec rounded to ``decimals`` Å."""
    out = set()
    for f, (dst, src, vec) in enumerate(frame_edges):
        for d, s, v in zip(dst.tolist(), src.tolist(), vec.tolist()):
            out.add((f, d, s, *(round(x, decimals) + 0.0 for x in v)))
    return out


def graph_frames(g):
    """[(dst, src, vec)] per frame of a NeighborGraph, frame-local indices."""
    src, dst, vec = g.real_edges()
    n = g.n_node[:, 0]
    start = n.cumsum(0) - n
    frame = g.frame_of_node()[dst]
    out = []
    for f in range(len(n)):
        m = frame == f
        out.append(((dst[m] - start[f]).numpy(), (src[m] - start[f]).numpy(), vec[m].double().numpy()))
    return out


# ------------------------------------------------------------ exactness
def check_cases():
    """(name, coords (nf, n, 3) or (n, 3), atype, cell (nf, 3, 3) / (3, 3) / None, pbc, rcut, note)."""
    import numpy as np

    from dpgraph.samples import water_box

    def random_cell(rng, skew):
        lat = np.diag(rng.uniform(3.0, 9.0, 3))
        lat[1, 0], lat[2, 0], lat[2, 1] = rng.uniform(-skew, skew, 3) * lat.diagonal().mean()
        rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        return lat @ rot

    def random_coords(rng, cell, n, lo=-0.3, hi=1.3):
        return rng.uniform(lo, hi, (n, 3)) @ cell

    def widths(cell):
        inv = np.linalg.inv(cell)
        return 1.0 / np.linalg.norm(inv, axis=0)

    cases = []
    # test_random_triclinic_boxes_match_brute_force: same random stream
    rng = np.random.default_rng(1234)
    pbcs = list(itertools.product([True, False], repeat=3))
    for case in range(20):
        rcut = float(rng.uniform(2.5, 5.0))
        skew = 2.5 if case % 3 == 0 else 0.6
        cell = random_cell(rng, skew)
        width = widths(cell).min()
        if width < rcut / 3:
            cell = cell * (rcut / 3 / width) * 1.01
            width = rcut / 3 * 1.01
        n = int(rng.integers(1, 25))
        pbc = pbcs[case % len(pbcs)] if case % 5 else (True, True, True)
        coords = random_coords(rng, cell, n)
        atype = rng.integers(0, 3, n)
        tag = "very thin" if width < rcut else "thin" if width < 2 * rcut else "wide"
        p = "".join("TF"[not b] for b in pbc)
        cases.append((f"triclinic #{case:02d} pbc {p} skew {skew}", coords, atype, cell, pbc, rcut,
                      f"{n} atoms, min width/rcut {width / rcut:.2f} ({tag})"))
    rng = np.random.default_rng(7)
    coords, atype = rng.uniform(-6, 6, (40, 3)), rng.integers(0, 2, 40)
    cases.append(("cluster, no cell", coords, atype, None, True, 4.0, "40 atoms"))
    cases.append(("cluster, cell 3 Å, pbc FFF", coords, atype, np.eye(3) * 3.0, False, 4.0, "cell ignored"))
    rng = np.random.default_rng(3)
    cell = np.array([[6.0, 0, 0], [-2.0, 5.5, 0], [0.5, 0.5, 20.0]])
    coords = random_coords(rng, cell, 30, lo=0.0, hi=1.0)
    for pbc, what in [((True, True, False), "slab"), ((False, True, False), "wire"), ((True, False, True), "slab")]:
        p = "".join("TF"[not b] for b in pbc)
        cases.append((f"{what} pbc {p}", coords, np.zeros(30, int), cell, pbc, 4.5, "30 atoms, skewed"))
    rng = np.random.default_rng(11)
    cells = np.stack([random_cell(rng, 0.5) for _ in range(3)])
    coords = np.stack([random_coords(rng, c, 8) for c in cells])
    cases.append(("3 frames, triclinic", coords, rng.integers(0, 2, (3, 8)), cells, True, 3.5, "8 atoms per frame"))
    cases.append(("1 atom, 1.5 Å cube", np.zeros((1, 3)), [0], np.eye(3) * 1.5, True, 3.2,
                  "rcut = 2.1 widths: own images only"))
    cases.append(("1 atom, no cell", np.ones((1, 3)), [1], None, True, 5.0, "no edges"))
    rng = np.random.default_rng(5)
    cell = np.array([[7.5, 0, 0], [1.5, 7.0, 0], [-1.0, 0.5, 7.2]])
    coords = np.stack([random_coords(rng, cell, 10, 0.0, 1.0) for _ in range(2)])
    cases.append(("dense-nlist box, 2 frames", coords, rng.integers(0, 2, (2, 10)), cell, True, 3.5, "10 atoms"))
    rng = np.random.default_rng(2024)
    cell = np.array([[31.0, 0, 0], [4.0, 30.0, 0], [-3.0, 2.0, 32.0]])
    cell *= (3000 / 0.1 / abs(np.linalg.det(cell))) ** (1 / 3)
    cases.append(("3,000 atoms, 0.1 /Å^3, triclinic", random_coords(rng, cell, 3000, 0.0, 1.0),
                  rng.integers(0, 2, 3000), cell, True, 6.0, "test_large_water_density_system"))
    c, a, cell = (t.numpy() for t in water_box(64, seed=0))
    cases.append(("water 192 atoms", c, a, cell, True, 6.0, "dpgraph.samples.water_box(64)"))
    cases.append(("float32 pair, no cell", np.array([[0.0, 0, 0], [1.2, 0, 0]], dtype=np.float32), [0, 1], None,
                  True, 2.0, "edge_vec dtype"))
    # beyond the tests: rcut 12 widths, atoms many cells away, a pair at exactly rcut
    rng = np.random.default_rng(0)
    cell = np.array([[5.0, 0, 0], [1.0, 4.5, 0], [0.3, 0.2, 0.5]])
    cases.append(("ultra-thin cell, c width 0.5 Å", random_coords(rng, cell, 6, 0.0, 1.0), np.zeros(6, int), cell,
                  True, 6.0, "6 atoms, rcut = 12 widths"))
    cases.append(("atoms far outside the cell", rng.uniform(-5, 6, (15, 3)) * 7.0, np.zeros(15, int),
                  np.eye(3) * 7.0, True, 5.0, "fractional coords in [-5, 6)"))
    cases.append(("pair at exactly rcut", np.array([[0.0, 0, 0], [3.0, 0, 0]]), [0, 0], None, True, 3.0,
                  "|r| = rcut is out for both"))
    # inputs that one of the two refuses
    cases.append(("overlapping atoms", np.array([[0.0, 0, 0], [1.0, 1, 1], [2.0, 0, 0], [1.0, 1, 1 + 1e-8]]),
                  np.zeros(4, int), np.eye(3) * 10, True, 3.0, "1e-8 Å apart"))
    cases.append(("slab, zero c vector, pbc TTF", np.array([[0.0, 0, 0], [1.5, 0, 0.5]]), [0, 0],
                  np.diag([4.0, 4.0, 0.0]), (True, True, False), 3.0, "singular cell"))
    return cases


def _frames(coords, atype, cell):
    import numpy as np

    coords = np.asarray(coords)
    if coords.ndim == 2:
        return [coords], [np.asarray(atype)], [cell]
    nf = coords.shape[0]
    atype = np.asarray(atype)
    atype = [atype[f] if atype.ndim == 2 else atype for f in range(nf)]
    cell = [None if cell is None else (cell[f] if np.asarray(cell).ndim == 3 else cell) for f in range(nf)]
    return list(coords), atype, cell


def compare_case(coords, atype, cell, pbc, rcut) -> str:
    from dpgraph.graph import build_graph

    vesin = _vesin()
    nl = vesin.NeighborList(cutoff=rcut, full_list=True, n_threads=1)
    try:
        g = build_graph(coords, atype, cell, pbc, rcut=rcut)
        ours, our_err = edge_set(graph_frames(g)), None
    except ValueError as e:
        ours, our_err = None, str(e).split(";")[0]
    try:
        frames = [vesin_pairs(nl, c, ce, pbc, copy=True) for c, _, ce in zip(*_frames(coords, atype, cell))]
        theirs, their_err = edge_set(frames), None
        zero = sum(int((abs(d).sum(1) == 0).sum()) for _, _, d in frames)
    except Exception as e:  # noqa: BLE001 - report whatever vesin raises
        theirs, their_err, zero = None, f"{type(e).__name__}: {e}", 0
    if our_err or their_err:
        what = lambda err, s: f"refuses ({err})" if err else f"{len(s)} edges"  # noqa: E731
        extra = f", {zero} of zero length" if zero else ""
        return f"different behavior: dpgraph {what(our_err, ours)}; vesin {what(their_err, theirs)}{extra}"
    if ours == theirs:
        return f"equal ({len(ours)} edges)"
    only_v, only_d = theirs - ours, ours - theirs
    ex = next(iter(only_v or only_d))
    return (f"differs: {len(ours)} dpgraph vs {len(theirs)} vesin edges; {len(only_v)} only in vesin, "
            f"{len(only_d)} only in dpgraph, e.g. (frame, dst, src, vec) {ex}")


def run_checks() -> None:
    print("exactness: vesin full list vs dpgraph build_graph, edge sets (frame, dst, src, edge_vec to 1e-6 Å)")
    for name, coords, atype, cell, pbc, rcut, note in check_cases():
        print(f"  {name:<36} rcut {rcut:4.2f} | {note:<42} | {compare_case(coords, atype, cell, pbc, rcut)}",
              flush=True)


# ------------------------------------------------------------ speed
def worker(method: str, n_atoms: int, repeats: int, slow_s: float) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(1)
    coords, atype, cell = water(n_atoms)
    coords, cell = np.ascontiguousarray(coords, dtype=np.float64), np.ascontiguousarray(cell, dtype=np.float64)
    atype = atype.astype(np.int64)
    if method.startswith("vesin"):
        nl = _vesin().NeighborList(cutoff=RCUT, full_list=True, n_threads=1)
        if method == "vesin":
            fn = lambda: len(vesin_pairs(nl, coords, cell, True)[0])  # noqa: E731
        else:
            fn = lambda: int(vesin_graph(nl, coords, atype, cell, True).edge_mask.sum())  # noqa: E731
    elif method == "python":
        from dpgraph.graph import build_graph

        ct, at, cellt = (torch.as_tensor(x) for x in (coords, atype, cell))
        fn = lambda: int(build_graph(ct, at, cellt, True, rcut=RCUT).edge_mask.sum())  # noqa: E731
    elif method == "cpp":
        from dpgraph import _core

        fn = lambda: int(_core.build_graph(coords, atype, cell, [True] * 3, RCUT)[4].sum())  # noqa: E731
    else:
        raise SystemExit(f"unknown method {method}")

    def timed():
        t = time.process_time()
        e = fn()
        return time.process_time() - t, e

    first, edges = timed()  # warm-up
    times = [first] if first > slow_s else [timed()[0] for _ in range(repeats if first < 2.0 else min(repeats, 2))]
    return {"cpu_s": statistics.median(times), "n": len(times), "edges": edges,
            "peak_mb": rss_kb("VmHWM") / 1024}


def run_speed(sizes, repeats: int, slow_s: float, max_s: float) -> None:
    import vesin

    print(f"\nspeed: water, rcut {RCUT:g} Å, full list, fp64, CPU, 1 thread; median process CPU s "
          f"(n = timed calls); vesin {vesin.__version__}")
    cols = " | ".join(f"{m:>22}" for m in METHODS)
    print(f"{'atoms':>7} {'edges':>10} | {cols} | {'python/v+g':>10} {'cpp/v+g':>8} {'v+g/vesin':>9}")
    last: dict[str, tuple[int, float]] = {}
    me = [sys.executable, __file__]
    for n in sizes:
        res: dict[str, dict] = {}
        for m in METHODS:
            if m in last and last[m][1] * n / last[m][0] > max_s:
                res[m] = {"error": f"skip: ~{last[m][1] * n / last[m][0]:.0f} s > --max-s"}
                continue
            r = run_json(me + ["--worker", m, str(n), str(repeats), str(slow_s)], 1, 20 * max_s)
            res[m] = r
            if "error" not in r:
                last[m] = (n, r["cpu_s"])
        ok = {m: r for m, r in res.items() if "error" not in r}
        edges = {r["edges"] for r in ok.values()}
        e = f"{edges.pop():>10}" if len(edges) == 1 else f"{'MISMATCH':>10}"
        cells = []
        for m in METHODS:
            r = res[m]
            cells.append(f"{r['error'][:22]:>22}" if "error" in r else
                         f"{r['cpu_s']:>8.4f} s n={r['n']} {r['peak_mb']:>5.0f}MB")
        ref = ok.get("vesin+graph", {}).get("cpu_s")
        ratio = lambda m, base: f"{ok[m]['cpu_s'] / base:.1f}x" if base and m in ok else "-"  # noqa: E731
        print(f"{n:>7} {e} | {' | '.join(cells)} | {ratio('python', ref):>10} {ratio('cpp', ref):>8} "
              f"{ratio('vesin+graph', ok.get('vesin', {}).get('cpu_s')):>9}", flush=True)
        if len(edges) > 1:
            print("        edge counts: " + ", ".join(f"{m} {r['edges']}" for m, r in ok.items()))
    print("python/v+g, cpp/v+g = CPU time of the dpgraph builder / vesin + conversion to a NeighborGraph "
          "(> 1: vesin faster); MB = worker peak RSS (torch included)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[192, 1536, 12288, 98304])
    ap.add_argument("--repeats", type=int, default=5, help="timed calls after the warm-up call")
    ap.add_argument("--slow-s", type=float, default=30.0, help="a warm-up call longer than this is the only sample")
    ap.add_argument("--max-s", type=float, default=60.0, help="skip a method whose predicted time exceeds this")
    ap.add_argument("--no-check", action="store_true", help="skip the exactness part")
    ap.add_argument("--no-speed", action="store_true", help="skip the speed part")
    ap.add_argument("--worker", nargs=4, metavar=("METHOD", "ATOMS", "REPEATS", "SLOW_S"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        m, n, r, s = args.worker
        print(json.dumps(worker(m, int(n), int(r), float(s))))
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    _vesin()
    if not args.no_check:
        run_checks()
    if not args.no_speed:
        run_speed(args.sizes, args.repeats, args.slow_s, args.max_s)


if __name__ == "__main__":
    main()
