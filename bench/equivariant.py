"""SO(3)-equivariant attention (``sezm``) vs lmax and system size: time and peak memory.

The built-in equivariant example (``example_equivariant_config``: rcut 5 Å,
2 focus streams x 16 channels, 4 heads, 2 blocks) at lmax 0, 1, 2, 3, and as
the reference the built-in DPA1 example (se_atten: rcut 6 Å, sel 120, attn
128 x 2; the model the other benchmarks use), all with random weights, float64,
on liquid-water boxes of 192 / 1,536 / 12,288 atoms (the 192-atom box
replicated k^3 times). One step = coordinates in, energy + forces + virial
out, graph building included:

- ``eager``: Python ``build_graph`` + ``model.evaluate``
- ``cpp``:   ``dpgraph.DeepPot.eval`` (C++ cell list + the compiled ``.pt2``)

Ratios are measured in the same run: ``x DPA1`` against the DPA1 row of the
same size and implementation, ``x l0`` against sezm lmax 0 (same size and
implementation), ``x eager`` the compiled row against the eager row of the same
model and size. Memory ratios use ``grow`` (peak minus the resident size just
before the first step: what the evaluation itself allocates).

Every measurement runs in a fresh worker subprocess (``torch.set_num_threads``
and ``OMP_NUM_THREADS``); time = median of ``--repeats`` steps after one
warm-up step (no warm-up above 5,000 atoms); peak = ``ru_maxrss`` of the
worker. A case whose predicted peak (linear in atoms from the last size that
ran, same model and implementation) exceeds ``--budget-gb`` or whose predicted
time exceeds ``--max-minutes`` is skipped with the prediction printed; a
worker that fails (e.g. killed out of memory) is reported and the bench goes
on. Packages are compiled once (cached, ``$DPGRAPH_CACHE``), in a subprocess.

    python bench/equivariant.py [--sizes 192 1536 12288] [--lmax 0 1 2 3] [--threads 2]
                                [--impls eager cpp] [--repeats N] [--budget-gb 20] [--max-minutes 10]
                                [--no-reference] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bench_common import compile_in_child, mem_available_gb, rss_kb, run_json, water

TUNE_BELOW_ATOMS = 5000  # see bench/attention.py: dpgraph.tune_allocator() fragments near the memory limit
IMPLS = ("eager", "cpp")
NAMES = {"eager": "eager", "cpp": "DeepPot .pt2"}


# ------------------------------------------------------------------ models
def make_model(name: str):
    """``dpa1`` (the built-in DPA1 example) or ``sezm<L>`` (the equivariant example at lmax L)."""
    from dpgraph.samples import example_config, example_equivariant_config, water_box
    from dpgraph.graph import build_graph
    from dpgraph.models import build_model, compute_descriptor_stats

    cfg = example_config() if name == "dpa1" else example_equivariant_config(lmax=int(name[4:]))
    model = build_model(cfg)
    # statistics from one fixed box, so every size runs the same model (and package)
    c0, a0, cell0 = water_box(64, seed=0)
    compute_descriptor_stats(model.descriptor, [build_graph(c0, a0, cell=cell0, rcut=model.rcut)])
    return model


def label(name: str) -> str:
    return "DPA1 (ref)" if name == "dpa1" else f"sezm lmax {name[4:]}"


def package_path(name: str) -> str:
    from dpgraph.export.cache import cached_export

    return str(cached_export(make_model(name)))



# ------------------------------------------------------------------ worker
def worker(n_atoms: int, name: str, impl: str, threads: int, repeats: int, pkg: str) -> dict:
    import resource
    import statistics

    import torch

    torch.set_num_threads(threads)
    import dpgraph
    from dpgraph.graph import build_graph

    coords, atype, cell = water(n_atoms)
    if impl == "cpp":
        from dpgraph.deep_pot import DeepPot

        dp = DeepPot(pkg)
        rcut = dp.get_rcut()
        box = cell.reshape(1, 9)

        def step():
            e, f, v = dp.eval(coords.reshape(1, -1), box, atype)
            return float(e[0, 0])
    else:
        model = make_model(name).eval()
        for p in model.parameters():  # inference: no parameter gradients
            p.requires_grad_(False)
        rcut = model.rcut
        c_t, a_t, cell_t = (torch.from_numpy(x) for x in (coords, atype, cell))

        def step():
            out = model.evaluate(build_graph(c_t, a_t, cell=cell_t, rcut=rcut))
            out["force"].numpy()
            return float(out["energy"][0])

    if n_atoms < TUNE_BELOW_ATOMS:
        dpgraph.tune_allocator()
    warmup = 1 if n_atoms < TUNE_BELOW_ATOMS else 0
    rss0 = rss_kb("VmRSS")  # model / package loaded, inputs ready
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        energy = step()
        times.append(time.perf_counter() - t0)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    g = build_graph(coords, atype, cell=cell, rcut=rcut)
    return {
        "atoms": n_atoms, "model": name, "impl": impl, "threads": threads,
        "edges": int(g.edge_mask.sum()), "time_s": statistics.median(times), "times": times,
        "peak_gb": peak_kb / 2**20, "grow_gb": max(peak_kb - rss0, 0) / 2**20, "base_gb": rss0 / 2**20,
        "energy": energy, "warmup": warmup,
    }


def run_worker(n, name, impl, threads, repeats, pkg, timeout) -> dict:
    cmd = [sys.executable, __file__, "--worker", str(n), name, impl, str(threads), str(repeats), pkg or "-"]
    return run_json(cmd, threads, timeout)


def prepare(name: str) -> str:
    """Compile in a subprocess (compiling must not count in any worker's peak memory)."""
    return compile_in_child([sys.executable, __file__, "--prepare", name], name)



def _ratio(a, b) -> str:
    return f"{a / b:.2f}" if b else "-"


# -------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[192, 1536, 12288])
    ap.add_argument("--lmax", type=int, nargs="+", default=[0, 1, 2, 3], choices=[0, 1, 2, 3])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    ap.add_argument("--repeats", type=int, default=0,
                    help="timed steps per case (default 5 below 1,000 atoms, 3 below 5,000, else 1)")
    ap.add_argument("--budget-gb", type=float, default=20.0,
                    help="skip cases predicted to need more (also capped at 90%% of MemAvailable at start)")
    ap.add_argument("--max-minutes", type=float, default=10.0, help="skip cases predicted to take longer")
    ap.add_argument("--no-reference", action="store_true", help="leave out the DPA1 reference rows")
    ap.add_argument("--json", help="also write all results to this file")
    ap.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    ap.add_argument("--prepare", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        n, name, impl, threads, repeats, pkg = args.worker
        print(json.dumps(worker(int(n), name, impl, int(threads), int(repeats), pkg)))
        return
    if args.prepare:
        print(package_path(args.prepare))
        return
    bad = [n for n in args.sizes if n % 3]
    if bad:
        ap.error(f"sizes must be multiples of 3 (water molecules): {bad}")
    budget = min(args.budget_gb, 0.9 * mem_available_gb())
    names = ([] if args.no_reference else ["dpa1"]) + [f"sezm{l}" for l in sorted(args.lmax)]

    pkgs, notes = {}, []
    if "cpp" in args.impls:
        for name in names:
            t0 = time.perf_counter()
            try:
                pkgs[name] = prepare(name)
            except RuntimeError as err:
                last = [line for line in str(err).splitlines() if line.strip()][-1]
                notes.append(f"{label(name)}: compiling the package failed ({last[-200:]}); DeepPot rows skipped")
                print("note:", notes[-1], flush=True)
                continue
            print(f"package {label(name)}: {pkgs[name]} ({time.perf_counter() - t0:.0f} s incl. compile if not "
                  "cached)", flush=True)

    print(f"\nsezm example (rcut 5, 2 x 16 channels, 4 heads, 2 blocks) vs lmax; reference DPA1 example (rcut 6, "
          f"sel 120, attn 128 x 2); float64, water, {args.threads} threads;\none step = coords -> energy + forces + "
          f"virial, graph included; memory budget {budget:.1f} GB, time limit {args.max_minutes:g} min per case; "
          f"load average {os.getloadavg()[0]:.2f} at start")
    hdr = (f"{'atoms':>6} {'model':>12} {'edges':>9} {'impl':>12} | {'step s':>8} {'x DPA1':>6} {'x l0':>6} "
           f"{'x eager':>7} | {'peak GB':>7} {'grow GB':>7} {'x DPA1':>6} {'x l0':>6} | {'E/atom eV':>12}")
    print(hdr)
    print("-" * len(hdr), flush=True)
    results = []
    last: dict = {}  # (model, impl) -> result of the last size that ran
    for n in args.sizes:
        repeats = args.repeats or (5 if n < 1000 else 3 if n < TUNE_BELOW_ATOMS else 1)
        steps = repeats + (1 if n < TUNE_BELOW_ATOMS else 0)
        row_ref: dict = {}  # (model, impl) -> result at this size
        for name in names:
            for impl in args.impls:
                if impl == "cpp" and name not in pkgs:
                    continue
                lead = f"{n:>6} {label(name):>12}"
                prev = last.get((name, impl))
                if prev is not None:
                    scale = n / prev["atoms"]
                    mem = prev["base_gb"] + prev["grow_gb"] * scale
                    secs = prev["time_s"] * scale * steps + 30.0
                    if mem > budget or secs > 60 * args.max_minutes:
                        why = (f"predicted peak {mem:.0f} GB > budget {budget:.0f} GB" if mem > budget
                               else f"predicted {secs / 60:.0f} min > {args.max_minutes:g} min")
                        why += f" (one step ~{prev['time_s'] * scale:.0f} s, ~{mem:.1f} GB)"
                        notes.append(f"{n} atoms {label(name)} {NAMES[impl]}: skipped, {why}")
                        results.append({"skipped": why, "atoms": n, "model": name, "impl": impl})
                        print(f"{lead} {'':>9} {NAMES[impl]:>12} | skipped: {why}", flush=True)
                        continue
                timeout = 60 * args.max_minutes * 1.5 + 120
                res = run_worker(n, name, impl, args.threads, repeats, pkgs.get(name), timeout)
                res.update({"atoms": n, "model": name, "impl": impl})
                results.append(res)
                if "error" in res:
                    notes.append(f"{n} atoms {label(name)} {NAMES[impl]}: {res['error']}")
                    print(f"{lead} {'':>9} {NAMES[impl]:>12} | FAILED: {res['error']}", flush=True)
                    continue
                last[(name, impl)] = row_ref[(name, impl)] = res
                ref, l0, eager = row_ref.get(("dpa1", impl)), row_ref.get(("sezm0", impl)), row_ref.get((name, "eager"))
                t, g = res["time_s"], res["grow_gb"]
                print(f"{lead} {res['edges']:>9} {NAMES[impl]:>12} | {t:>8.3f} "
                      f"{_ratio(t, ref and ref['time_s']):>6} {_ratio(t, l0 and l0['time_s']):>6} "
                      f"{_ratio(t, eager and eager['time_s']) if impl != 'eager' else '-':>7} | "
                      f"{res['peak_gb']:>7.2f} {g:>7.2f} {_ratio(g, ref and ref['grow_gb']):>6} "
                      f"{_ratio(g, l0 and l0['grow_gb']):>6} | {res['energy'] / n:>12.8f}", flush=True)
                if impl != "eager" and eager:
                    d = abs(res["energy"] - eager["energy"]) / abs(eager["energy"])
                    if d > 1e-9:
                        notes.append(f"{n} atoms {label(name)}: DeepPot energy differs from eager by {d:.2g} (relative)")
    print("\nstep s: median of the timed steps (after one warm-up step below 5,000 atoms). x DPA1 / x l0: ratio to "
          "the DPA1 reference / to sezm lmax 0\n(same size and implementation); x eager: DeepPot .pt2 vs eager of "
          "the same model. peak GB: ru_maxrss of the worker process;\ngrow GB: peak minus resident size before the "
          "first step (the memory ratios use it). E/atom is the same at every size (replicated boxes);\nDeepPot "
          "energies are checked against eager (1e-9 relative).")
    for note in notes:
        print("note:", note)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
