"""C++ runtime (dpgraph.DeepPot) vs Python eager vs AOTI-in-Python: time and peak memory.

Full-size DPA1 (the built-in example config: sel 120, neuron 25-50-100, attn
128 x 2, dotr, smooth) on water boxes of 192 / 1,536 / 12,288 atoms, built by
replicating one 192-atom liquid-density box (so the energy per atom is the same
at every size: a free consistency check). One step = coordinates in, energy +
forces + virial out, graph building included:

- ``cpp``:   ``DeepPot.eval(coords, cell, types)`` (C++ cell list + AOTI package from C++)
- ``eager``: ``build_graph`` (Python cell list) + ``model.evaluate``
- ``aoti``:  ``build_graph`` + ``load_package(...).evaluate`` (AOTI package from Python)

``graph`` is the time of the row's graph builder alone (``_core.build_graph``
for cpp, which also validates and copies the graph to numpy; Python
``build_graph`` for the others) and ``share`` its fraction of the step.

Every measurement runs in a fresh worker subprocess (``torch.set_num_threads``
and ``OMP_NUM_THREADS``); time = median of ``--repeats`` steps after one warm-up
step (no warm-up above 5,000 atoms); peak = ``ru_maxrss`` of the worker (the
whole process: torch, model, package, graph), ``grow`` = peak minus the
resident size just before the first (warm-up) step. Ratios are against Python eager of
the same size, dtype, threads and device, measured in the same run. A case whose
predicted peak (linear in atoms from the last size that ran) exceeds
``--budget-gb``, or whose predicted time exceeds ``--max-minutes``, is skipped
with a note; a worker that fails (e.g. killed out of memory) is reported and
the bench goes on. With a CUDA device, cuda rows are added (1 thread; the
package is compiled for cuda; peak = ``torch.cuda.max_memory_allocated``).

    python bench/runtime.py [--sizes 192 1536 12288] [--threads 1 2] [--dtypes float64 float32]
                            [--repeats N] [--quick] [--budget-gb G] [--max-minutes M] [--devices cpu cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from bench_common import compile_in_child, mem_available_gb, rss_kb, run_json, water

TUNE_BELOW_ATOMS = 5000  # see bench/attention.py: dpgraph.tune_allocator() fragments near the memory limit
IMPLS = ("eager", "aoti", "cpp")
NAMES = {"eager": "Python eager", "aoti": "AOTI in Python", "cpp": "C++ DeepPot"}


# ------------------------------------------------------------------ model
def make_model(dtype: str):
    from dpgraph.samples import example_config, water_box
    from dpgraph.graph import build_graph
    from dpgraph.models import build_model, compute_descriptor_stats

    cfg = example_config(precision=dtype)
    cfg["fitting_net"]["precision"] = dtype
    model = build_model(cfg)
    # statistics from one fixed box, so every size runs the same model (and package)
    c0, a0, cell0 = water_box(64, seed=0)
    compute_descriptor_stats(model.descriptor, [build_graph(c0, a0, cell=cell0, rcut=model.rcut)])
    return model


def package_path(dtype: str, device: str) -> str:
    """Compile (once, cached) the example model for ``device``; return the .pt2 path."""
    from dpgraph.export.cache import cache_dir, cached_export, model_key

    model = make_model(dtype)
    if device == "cpu":
        return str(cached_export(model))
    import torch

    from dpgraph.export.exporter import example_graph, export_program
    from dpgraph.export.metadata import build_metadata

    path = cache_dir() / f"{model_key(model, device=device)}.pt2"
    if not path.exists():  # the exporter writes cpu packages only; the same steps for cuda
        graph = example_graph(model, 12, n_frames=2).to(device)
        model = model.to(device)
        ep = export_program(model, graph)
        meta = build_metadata(model, cpu_isa="default", device="cuda")
        tmp = path.with_suffix(f".{os.getpid()}.tmp.pt2")
        path.parent.mkdir(parents=True, exist_ok=True)
        # compile-time autotuning runs the kernels on random inputs: random indices are out of
        # bounds (device-side assert, seen with torch 2.11 on an H100), so tune at run time
        configs = {"aot_inductor.metadata": meta, "triton.autotune_at_compile_time": False}
        torch._inductor.aoti_compile_and_package(ep, package_path=str(tmp), inductor_configs=configs)
        os.replace(tmp, path)
    return str(path)



# ----------------------------------------------------------------- worker
def worker(n_atoms: int, impl: str, dtype: str, threads: int, device: str, repeats: int, pkg: str) -> dict:
    import resource
    import statistics

    import torch

    torch.set_num_threads(threads)
    import dpgraph
    from dpgraph import _core
    from dpgraph.graph import build_graph

    coords, atype, cell = water(n_atoms)
    cuda = device.startswith("cuda")

    def sync():
        if cuda:
            torch.cuda.synchronize()

    if impl == "cpp":
        from dpgraph.deep_pot import DeepPot

        dp = DeepPot(pkg, device=device)
        rcut = dp.get_rcut()
        box, types = cell.reshape(1, 9), atype

        def step():
            e, f, v = dp.eval(coords.reshape(1, -1), box, types)
            return float(e[0, 0])

        def graph_only():
            _core.build_graph(coords, atype, cell, [True], rcut)
    else:
        if impl == "eager":
            model = make_model(dtype).to(device).eval()
            for p in model.parameters():  # inference: no parameter gradients
                p.requires_grad_(False)
            run, rcut = model.evaluate, model.rcut
        else:
            from dpgraph.export import load_package

            package = load_package(pkg, device=device)
            run, rcut = package.evaluate, package.rcut
        fdtype = getattr(torch, dtype)
        c_t, a_t, cell_t = (torch.from_numpy(x).to(device) for x in (coords, atype, cell))

        def graph_only():
            g = build_graph(c_t, a_t, cell=cell_t, rcut=rcut, dtype=fdtype)
            sync()
            return g

        def step():
            out = run(graph_only())
            out["force"].cpu().numpy()
            return float(out["energy"][0])

    if n_atoms < TUNE_BELOW_ATOMS and not cuda:
        dpgraph.tune_allocator()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    warmup = 1 if n_atoms < TUNE_BELOW_ATOMS or cuda else 0
    rss0 = rss_kb("VmRSS")  # model / package loaded, inputs ready
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        energy = step()
        sync()
        times.append(time.perf_counter() - t0)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gpu_peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    g_times = []  # the graph builder alone, after the peak was taken
    for _ in range(max(3, repeats)):
        t0 = time.perf_counter()
        graph_only()
        g_times.append(time.perf_counter() - t0)
    g = build_graph(coords, atype, cell=cell, rcut=rcut)
    return {
        "atoms": n_atoms, "impl": impl, "dtype": dtype, "threads": threads, "device": device,
        "edges": int(g.edge_mask.sum()), "time_s": statistics.median(times), "times": times,
        "graph_s": statistics.median(g_times), "peak_gb": peak_kb / 2**20,
        "grow_gb": max(peak_kb - rss0, 0) / 2**20, "gpu_peak_gb": gpu_peak,
        "energy": energy, "e_per_atom": energy / n_atoms, "warmup": warmup,
    }


def run_worker(args, n, impl, dtype, threads, device, repeats, pkg, timeout) -> dict:
    cmd = [sys.executable, __file__, "--worker", str(n), impl, dtype, str(threads), device, str(repeats), pkg or "-"]
    return run_json(cmd, threads, timeout)


def prepare(dtype: str, device: str) -> str:
    """Compile in a subprocess (compiling must not count in any worker's peak memory)."""
    return compile_in_child([sys.executable, __file__, "--prepare", dtype, device], f"the {dtype} {device} package")


# ------------------------------------------------------------------- main

def _cuda_available() -> bool:
    res = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                         capture_output=True, text=True)
    return res.stdout.strip() == "True"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[192, 1536, 12288])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    ap.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    ap.add_argument("--repeats", type=int, default=0, help="timed steps per case (default 5 below 1,000 atoms, "
                    "3 below 5,000, else 1)")
    ap.add_argument("--quick", action="store_true", help="192 atoms only, 3 repeats")
    ap.add_argument("--budget-gb", type=float, default=None,
                    help="skip cases predicted to need more (default 75%% of MemAvailable at start)")
    ap.add_argument("--max-minutes", type=float, default=10.0, help="skip cases predicted to take longer")
    ap.add_argument("--devices", nargs="+", default=None, help="default: cpu, plus cuda when available")
    ap.add_argument("--json", help="also write all results to this file")
    ap.add_argument("--worker", nargs=7, help=argparse.SUPPRESS)
    ap.add_argument("--prepare", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        n, impl, dtype, threads, device, repeats, pkg = args.worker
        print(json.dumps(worker(int(n), impl, dtype, int(threads), device, int(repeats), pkg)))
        return
    if args.prepare:
        print(package_path(*args.prepare))
        return
    if args.quick:
        args.sizes, args.repeats = [192], args.repeats or 3
    bad = [n for n in args.sizes if n % 3]
    if bad:
        ap.error(f"sizes must be multiples of 3 (water molecules): {bad}")
    budget = args.budget_gb if args.budget_gb is not None else 0.75 * mem_available_gb()
    devices = args.devices or (["cpu", "cuda"] if _cuda_available() else ["cpu"])
    impls = [i for i in IMPLS if i in args.impls]

    pkgs, notes = {}, []
    for device in devices:
        for dtype in args.dtypes:
            if {"aoti", "cpp"} & set(impls):
                t0 = time.perf_counter()
                try:
                    pkgs[dtype, device] = prepare(dtype, device)
                except RuntimeError as err:  # no package: the eager rows still run
                    last = [line for line in str(err).splitlines() if line.strip()][-1]
                    notes.append(f"{dtype} {device}: compiling the package failed ({last[-200:]}); "
                                 "AOTI and C++ rows skipped")
                    print("note:", notes[-1], flush=True)
                    continue
                print(f"package {dtype} {device}: {pkgs[dtype, device]} ({time.perf_counter() - t0:.0f} s incl. "
                      "compile if not cached)", flush=True)

    print(f"\nFull-size DPA1 (sel 120, attn 128 x 2), water boxes; one step = coords -> energy + forces + virial, "
          f"graph included; memory budget {budget:.1f} GB; load average {os.getloadavg()[0]:.2f} at start")
    hdr = (f"{'atoms':>6} {'edges':>9} {'dtype':>7} {'dev':>4} {'thr':>3} {'impl':>14} | {'step s':>8} {'x eager':>7} | "
           f"{'peak GB':>7} {'grow GB':>7} {'x eager':>7} | {'graph s':>8} {'share':>6} | {'E/atom eV':>12}")
    print(hdr)
    print("-" * len(hdr), flush=True)
    results = []
    last: dict = {}  # (impl, dtype, threads, device) -> result of the last size that ran
    for n in args.sizes:
        repeats = args.repeats or (5 if n < 1000 else 3 if n < TUNE_BELOW_ATOMS else 1)
        steps = repeats + (1 if n < TUNE_BELOW_ATOMS else 0)
        for dtype in args.dtypes:
            dt = "fp" + dtype[5:]
            for device in devices:
                for threads in (args.threads if device == "cpu" else [1]):
                    ref = None
                    for impl in impls:
                        if impl != "eager" and (dtype, device) not in pkgs:
                            continue
                        key = (impl, dtype, threads, device)
                        prev = last.get(key)
                        if prev is not None:
                            scale = n / prev["atoms"]
                            mem = prev["peak_gb"] * scale if device == "cpu" else 0.0
                            secs = prev["time_s"] * scale * steps + 30.0
                            if mem > budget or secs > 60 * args.max_minutes:
                                why = (f"predicted peak {mem:.0f} GB > budget {budget:.0f} GB" if mem > budget
                                       else f"predicted {secs / 60:.0f} min > {args.max_minutes:.0f} min")
                                res = {"skipped": why}
                                notes.append(f"{n} atoms {dtype} {device} {threads} thr {NAMES[impl]}: skipped, {why}")
                                results.append({**res, "atoms": n, "impl": impl, "dtype": dtype, "threads": threads,
                                                "device": device})
                                print(f"{n:>6} {'':>9} {dt:>7} {device[:4]:>4} {threads:>3} {NAMES[impl]:>14} | "
                                      f"skipped: {why}", flush=True)
                                continue
                        timeout = 60 * args.max_minutes * 1.5 + 120
                        res = run_worker(args, n, impl, dtype, threads, device, repeats, pkgs.get((dtype, device)),
                                         timeout)
                        res.update({"atoms": n, "impl": impl, "dtype": dtype, "threads": threads, "device": device})
                        results.append(res)
                        if "error" in res:
                            notes.append(f"{n} atoms {dtype} {device} {threads} thr {NAMES[impl]}: {res['error']}")
                            print(f"{n:>6} {'':>9} {dt:>7} {device[:4]:>4} {threads:>3} {NAMES[impl]:>14} | "
                                  f"FAILED: {res['error']}", flush=True)
                            continue
                        last[key] = res
                        if impl == "eager":
                            ref = res
                        peak = res["gpu_peak_gb"] if device != "cpu" else res["peak_gb"]
                        x_t = f"{res['time_s'] / ref['time_s']:.2f}" if ref else "-"
                        ref_peak = (ref["gpu_peak_gb"] if device != "cpu" else ref["peak_gb"]) if ref else None
                        x_m = f"{peak / ref_peak:.2f}" if ref_peak else "-"
                        grow = "-" if device != "cpu" else f"{res['grow_gb']:.2f}"
                        print(f"{n:>6} {res['edges']:>9} {dt:>7} {device[:4]:>4} {threads:>3} "
                              f"{NAMES[impl]:>14} | {res['time_s']:>8.3f} {x_t:>7} | {peak:>7.2f} {grow:>7} "
                              f"{x_m:>7} | {res['graph_s']:>8.4f} {res['graph_s'] / res['time_s']:>6.1%} | "
                              f"{res['e_per_atom']:>12.8f}", flush=True)
                        if ref and impl != "eager":
                            d = abs(res["energy"] - ref["energy"]) / abs(ref["energy"])
                            if d > (1e-9 if dtype == "float64" else 1e-4):
                                notes.append(f"{n} atoms {dtype} {NAMES[impl]}: energy differs from eager by {d:.2g} "
                                             "(relative)")
    print("\nstep s: median of the timed steps (after one warm-up step below 5,000 atoms and on cuda); x eager: ratio to "
          "Python eager in the same group.\npeak GB: ru_maxrss of the worker process (cuda rows: "
          "torch.cuda.max_memory_allocated); grow GB: peak minus resident size\nbefore the first (warm-up) step.\n"
          "graph s: graph builder alone (cpp: _core.build_graph, float64, incl. validation and numpy copies; "
          "else Python build_graph); share: of the row's step time.")
    print("E/atom is the same at every size (replicated boxes); energies of cpp/aoti vs eager are checked "
          "(1e-9 fp64, 1e-4 fp32 relative).")
    for note in notes:
        print("note:", note)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
