"""deepmd-kit 3.2.0 vs dpgraph on the same weights: time and peak memory per evaluation.

Full-size DPA1 (sel 120, neuron 25-50-100, axis 16, tebd 8, attn 128 x 2,
dotr, smooth, fitting 240 x 3, float64), randomly initialized by deepmd-kit
itself with descriptor statistics from the data, imported into dpgraph with
:func:`dpgraph.interop.deepmd.from_serialized`. Systems: the first 192-atom
frame of ``data_0`` of deepmd-kit's water example data (``examples/water/data``
in the deepmd-kit repository; found at ``$DPGRAPH_WATER_DATA``, default
``../shared/data/water`` relative to the repository root) and its 2 x 2 x 2
replica (1,536 atoms). One evaluation = energy + forces + virial from coordinates (neighbor
list / graph construction included, as a user of either code pays it).

Backends (:data:`BACKENDS`, one subprocess per measurement):

* ``deepmd dense``: deepmd-kit's fastest Python path, the classic ``pt``
  model scripted with TorchScript as in a frozen ``.pth`` (sel-padded dense
  neighbor list), in eval mode, and ``deepmd dense eager``, the same model
  without TorchScript (less memory: no profiling executor). Ratios are taken
  against the faster of the two at each size and thread count.
* ``deepmd graph``: deepmd-kit's carry-all graph route (``pt_expt``,
  eager). It materializes every neighbor pair; the watchdog kills it at
  ``--graph-budget-gb``.
* ``dpgraph eager``, ``dpgraph .pt2`` (AOTInductor package in Python), with
  ``--semantics dense`` (default: the same numbers as ``deepmd dense``) or
  ``carry-all``.
* ``dpgraph DeepPot`` (the C++ runtime): one entry, measured when
  ``dpgraph.DeepPot`` is importable (an installed build).

Time: median over ``--repeat`` evaluations after one warm-up. Memory: peak
resident set of the worker process (``ru_maxrss``: interpreter, libraries,
model and the evaluations), which is what a user's process needs. Workers
run with ``OMP_NUM_THREADS = torch threads`` and ``OMP_WAIT_POLICY=PASSIVE``;
dpgraph workers call :func:`dpgraph.tune_allocator`.

    python bench/deepmd_vs_dpgraph.py [--sizes 192 1536] [--threads 1 2] [--budget-gb 10]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_common import disable_deepmd_ops  # noqa: E402
# deepmd-kit's water example data (examples/water/data): $DPGRAPH_WATER_DATA, else shared/data/water
# next to the repository checkout
DATA = Path(os.environ.get("DPGRAPH_WATER_DATA") or ROOT.parent / "shared" / "data" / "water") / "data_0"

DEEPMD_CONFIG = {
    "type_map": ["O", "H"],
    "descriptor": {
        "type": "dpa1", "rcut": 6.0, "rcut_smth": 0.5, "sel": 120, "neuron": [25, 50, 100],
        "axis_neuron": 16, "tebd_dim": 8, "attn": 128, "attn_layer": 2, "attn_dotr": True,
        "smooth_type_embedding": True, "tebd_input_mode": "concat", "set_davg_zero": True,
        "precision": "float64", "seed": 1,
    },
    "fitting_net": {"neuron": [240, 240, 240], "resnet_dt": True, "precision": "float64", "seed": 1},
}


# ------------------------------------------------------------------ systems
def water_frame(n_atoms: int):
    """coords (n, 3) Å, atype (n,), cell (3, 3): frame 0 of data_0, replicated a x b x c times to n_atoms."""
    import numpy as np

    coords = np.load(DATA / "set.000" / "coord.npy")[0].reshape(-1, 3)
    cell = np.load(DATA / "set.000" / "box.npy")[0].reshape(3, 3)
    atype = np.loadtxt(DATA / "type.raw", dtype=np.int64)
    k, rem = divmod(n_atoms, coords.shape[0])
    if rem or k < 1:
        raise ValueError(f"{n_atoms} atoms is not a multiple of the {coords.shape[0]}-atom frame")
    reps = min(((a, b, k // (a * b)) for a in range(1, k + 1) for b in range(1, k + 1) if k % (a * b) == 0),
               key=lambda r: (max(r) - min(r), [-x for x in r]))
    shifts = np.array([[i, j, l] for i in range(reps[0]) for j in range(reps[1]) for l in range(reps[2])],
                      float) @ cell
    coords = (coords[None] + shifts[:, None]).reshape(-1, 3)
    return coords, np.tile(atype, k), cell * np.array(reps, float)[:, None]


# ------------------------------------------------------------------ backends
def _deepmd_modules():
    disable_deepmd_ops()
    import logging
    import warnings

    logging.getLogger("deepmd").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    import deepmd.pt.model.model as pt
    import deepmd.pt_expt.model as pt_expt

    return pt, pt_expt


def _read_tree(model_dp):
    from dpgraph.interop.deepmd import read_dp

    return read_dp(model_dp)["model"]


def setup_deepmd_dense(model_dp, coords, atype, cell, jit=True):
    import torch

    pt, _ = _deepmd_modules()
    model = pt.BaseModel.deserialize(_read_tree(model_dp)).eval()  # training mode keeps the force graph
    if jit:
        model = torch.jit.script(model)
    c = torch.tensor(coords.reshape(1, -1))
    a = torch.tensor(atype.reshape(1, -1))
    b = torch.tensor(cell.reshape(1, 9))

    def run():
        out = model(c, a, b)
        return float(out["energy"].reshape(-1)[0]), out["force"]

    return run


def setup_deepmd_graph(model_dp, coords, atype, cell):
    import torch

    _, pt_expt = _deepmd_modules()
    model = pt_expt.BaseModel.deserialize(_read_tree(model_dp)).eval()
    a = torch.tensor(atype.reshape(1, -1))
    b = torch.tensor(cell.reshape(1, 9))

    def run():
        c = torch.tensor(coords.reshape(1, -1), requires_grad=True)
        ret = model.call_common(c, a, b, neighbor_graph_method="dense")
        out = model._translate_eager_call(ret, a)
        return float(out["energy"].reshape(-1)[0]), out["force"]

    return run


def _dpgraph_model(model_dp, semantics):
    from dpgraph.interop.deepmd import from_serialized

    return from_serialized(_read_tree(model_dp), semantics=semantics)


def _dpgraph_runner(evaluate, rcut, coords, atype, cell):
    import torch

    from dpgraph.graph import build_graph

    c, a, b = torch.tensor(coords), torch.tensor(atype), torch.tensor(cell)

    def run():
        out = evaluate(build_graph(c, a, cell=b, rcut=rcut))
        return float(out["energy"][0]), out["force"]

    return run


def setup_dpgraph_eager(model_dp, coords, atype, cell, semantics, package):
    import dpgraph

    dpgraph.tune_allocator()
    model = _dpgraph_model(model_dp, semantics)
    return _dpgraph_runner(model.evaluate, model.rcut, coords, atype, cell)


def setup_dpgraph_pt2(model_dp, coords, atype, cell, semantics, package):
    import dpgraph
    from dpgraph.export import load_package

    dpgraph.tune_allocator()
    pkg = load_package(package)
    return _dpgraph_runner(pkg.evaluate, pkg.rcut, coords, atype, cell)


def setup_dpgraph_deeppot(model_dp, coords, atype, cell, semantics, package):
    import dpgraph

    dpgraph.tune_allocator()
    dp = dpgraph.DeepPot(str(package))
    c, b = coords.reshape(1, -1), cell.reshape(1, 9)

    def run():
        e, f, v = dp.eval(c, b, atype)
        return float(e.reshape(-1)[0]), f

    return run


def _has_deeppot() -> bool:
    code = "import dpgraph, sys; sys.exit(0 if callable(getattr(dpgraph, 'DeepPot', None)) else 1)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, env=_env(1, source=False)).returncode == 0


# name -> (setup function, availability check or None, runs from the source tree). The C++
# DeepPot column is the last entry; it needs an installed build (the compiled dpgraph._core),
# so its worker imports the installed dpgraph instead of ../python.
BACKENDS = {
    "deepmd dense": (setup_deepmd_dense, None, True),
    "deepmd dense eager": (lambda *a: setup_deepmd_dense(*a, jit=False), None, True),
    "deepmd graph": (setup_deepmd_graph, None, True),
    "dpgraph eager": (setup_dpgraph_eager, None, True),
    "dpgraph .pt2": (setup_dpgraph_pt2, None, True),
    "dpgraph DeepPot": (setup_dpgraph_deeppot, _has_deeppot, False),
}
REFERENCES = ("deepmd dense", "deepmd dense eager")  # ratios are taken against the faster of the two


# ------------------------------------------------------------------ worker
def worker(backend: str, n_atoms: int, threads: int, repeat: int, model_dp: str, args) -> dict:
    import torch

    torch.set_num_threads(threads)
    coords, atype, cell = water_frame(n_atoms)
    setup = BACKENDS[backend][0]
    if backend.startswith("dpgraph"):
        kwargs = {"semantics": args.semantics, "package": args.package}
    else:
        kwargs = {}
    run = setup(model_dp, coords, atype, cell, **kwargs)
    energy, _ = run()  # warm-up (JIT profiling, allocator, caches)
    times, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        energy, force = run()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        del force
    return {"backend": backend, "atoms": n_atoms, "threads": threads, "median_s": statistics.median(times),
            "times": times, "energy": energy, "cpu_s": statistics.median(cpu),
            "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def _rss_gb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def _env(threads: int, source: bool = True) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
    if source:
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python"), os.environ.get("PYTHONPATH", "")])
    return env


def run_case(backend, n_atoms, threads, repeat, model_dp, package, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", backend, str(n_atoms), "--threads", str(threads),
           "--repeat", str(repeat), "--model", model_dp, "--package", package, "--semantics", args.semantics]
    env = _env(threads, source=BACKENDS[backend][2])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    killed = {"gb": 0.0}
    budget = args.graph_budget_gb if backend == "deepmd graph" else args.budget_gb

    def watchdog():  # the graph route can take the whole machine: stop it at the budget
        while proc.poll() is None:
            rss = _rss_gb(proc.pid)
            if rss > budget:
                killed["gb"] = rss
                proc.kill()
                return
            time.sleep(0.05)

    threading.Thread(target=watchdog, daemon=True).start()
    try:
        out, err = proc.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return {"error": f"timeout {args.timeout} s"}
    if killed["gb"]:
        return {"error": f"killed above {budget:g} GB resident", "over_budget": True}
    if proc.returncode != 0:
        return {"error": (err.strip().splitlines() or [f"exit {proc.returncode}"])[-1][:120]}
    return json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------ parent
def prepare(workdir: Path, semantics: str) -> tuple[str, str]:
    """Random deepmd-kit model with statistics from the data, written as .dp; compile dpgraph's package."""
    code = f"""
import sys, json, numpy as np, torch
sys.path.insert(0, {str(ROOT / 'bench')!r})
import deepmd_vs_dpgraph as B
B._deepmd_modules()
from deepmd.dpmodel.model.model import get_model
from deepmd.dpmodel.utils.serialization import save_dp_model
from dpgraph.interop.deepmd import from_serialized
from dpgraph.graph import build_graph
from dpgraph.models import compute_descriptor_stats
tree = get_model(json.loads({json.dumps(json.dumps(DEEPMD_CONFIG))})).serialize()
model = from_serialized(tree)
c, a, cell = B.water_frame(192)
davg, dstd = compute_descriptor_stats(model.descriptor, [build_graph(torch.tensor(c), torch.tensor(a), cell=torch.tensor(cell), rcut=6.0)])
var = tree["descriptor"]["@variables"]
var["davg"] = np.broadcast_to(davg.numpy()[:, None], var["davg"].shape).copy()
var["dstd"] = np.broadcast_to(dstd.numpy()[:, None], var["dstd"].shape).copy()
save_dp_model(sys.argv[1], {{"backend": "dpmodel", "model": tree, "model_def_script": {{}}, "@variables": {{}}}})
from dpgraph.export.cache import cached_export
print(cached_export(from_serialized(tree, semantics=sys.argv[2])))
"""
    model_dp = str(workdir / "dpa1_full.dp")
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code, model_dp, semantics], capture_output=True, text=True,
                         env=_env(2), cwd=workdir)
    if res.returncode != 0:
        sys.exit(f"preparing the model failed:\n{res.stderr[-3000:]}")
    package = res.stdout.strip().splitlines()[-1]
    print(f"model: {model_dp}; dpgraph package ({semantics}) {package} "
          f"(prepared in {time.perf_counter() - t0:.0f} s)", flush=True)
    return model_dp, package


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[192, 1536])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=0, help="timed evaluations (default 5 below 1,000 atoms, else 3)")
    ap.add_argument("--budget-gb", type=float, default=10.0, help="kill a worker whose resident set exceeds this")
    ap.add_argument("--graph-budget-gb", type=float, default=6.0,
                    help="the same for deepmd-kit's graph route (it materializes every neighbor pair: > 20 GB at 192 atoms)")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS))
    ap.add_argument("--semantics", choices=["dense", "carry-all"], default="dense",
                    help="dpgraph semantics (dense: the same numbers as deepmd-kit's dense route)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="speedups from process CPU time instead of wall time (one thread on a shared machine)")
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--package", help=argparse.SUPPRESS)
    ap.add_argument("--worker", nargs=2, metavar=("BACKEND", "ATOMS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.threads[0], args.repeat or 1,
                                args.model, args)))
        return

    backends = [b for b in args.backends if BACKENDS[b][1] is None or BACKENDS[b][1]()]
    skipped = [b for b in args.backends if b not in backends]
    with tempfile.TemporaryDirectory(prefix="dpgraph-bench-") as tmp:
        model_dp, package = prepare(Path(tmp), args.semantics)
        print(f"DPA1 sel 120, 25-50-100, axis 16, attn 128 x 2, fitting 240 x 3, float64; water; "
              f"dpgraph semantics {args.semantics}; "
              f"one eval = energy + forces + virial from coordinates; median of timed evals; "
              f"peak RSS = ru_maxrss of the worker; ratios vs the faster deepmd-kit dense variant")
        header = f"{'atoms':>6} {'thr':>3} | {'backend':<18} | {'median s':>9} | {'CPU s':>7} | {'peak GB':>8} | " \
                 f"{'speedup':>8} | {'memory':>7} | energy (eV)"
        print(header)
        print("-" * len(header))
        results = []
        for n in args.sizes:
            repeat = args.repeat or (5 if n < 1000 else 3)
            for t in args.threads:
                rows = []
                for b in backends:
                    if b == "deepmd graph" and n > 200:
                        res = {"error": "not run (pair-materializing route; over budget at 192 atoms)"}
                    else:
                        res = run_case(b, n, t, repeat, model_dp, package, args)
                    res.update(backend=b, atoms=n, threads=t)
                    rows.append(res)
                # reference: the faster deepmd-kit dense variant (TorchScript or eager) of this size/threads
                refs = [r for r in rows if r["backend"] in REFERENCES and "median_s" in r]
                ref = min(refs, key=lambda r: r["cpu_s" if args.cpu_time else "median_s"]) if refs else None
                for res in rows:
                    if ref:
                        res["reference"] = ref["backend"]
                    if "median_s" in res:
                        key = "cpu_s" if args.cpu_time else "median_s"
                        sp = f"{ref[key] / res[key]:.2f}x" if ref else "-"
                        mem = f"{res['peak_gb'] / ref['peak_gb']:.2f}x" if ref else "-"
                        print(f"{n:>6} {t:>3} | {res['backend']:<18} | {res['median_s']:>9.3f} | {res['cpu_s']:>7.3f} | "
                              f"{res['peak_gb']:>8.2f} | {sp:>8} | {mem:>7} | {res['energy']:.6f}", flush=True)
                    else:
                        print(f"{n:>6} {t:>3} | {res['backend']:<18} | {res['error']}", flush=True)
                results += rows
        if skipped:
            print(f"not measured (not available in this environment): {', '.join(skipped)}")
        print("speedup = reference time / backend time; memory = backend peak RSS / reference peak RSS; "
              "reference = the faster of 'deepmd dense' (TorchScript) and 'deepmd dense eager' per size/threads")
        out = os.environ.get("DPGRAPH_BENCH_JSON")
        if out:
            Path(out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
