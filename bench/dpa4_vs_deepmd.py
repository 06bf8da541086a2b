"""deepmd-kit DPA4 vs dpgraph on the same weights: time and peak memory per evaluation.

    python bench/dpa4_vs_deepmd.py [--atoms 192 1536] [--precision float64 float32] [--threads 1]

The model is deepmd-kit's DPA4 at its argument defaults (channels 64, lmax 3,
mmax 1, 3 blocks, rcut 6 Å, 4 mixing layers, one attention head, S2-grid FFN;
2.7 M parameters) with a ``dpa4_ener`` fitting, weights randomized (a fresh
DPA4 has zero forces), written as a ``.dp`` and imported with
``dpgraph.interop.deepmd.load_deepmd``. Backends, one worker process each
(peak RSS = the worker's ``ru_maxrss``, interpreter and libraries included):

* ``deepmd pt_expt``: deepmd-kit 3.2.0's pt_expt model, graph route
  (``neighbor_graph_method="dense"``), energy + forces + virials;
* ``dpgraph DeepPot``: the compiled ``.pt2`` through the C++ runtime
  (compiled once, in a separate process, not counted);
* ``dpgraph eager``: the same dpgraph model in eager PyTorch.

Every worker (deepmd-kit's included) calls :func:`dpgraph.tune_allocator`
first, as the other benches' dpgraph workers do.

Each worker evaluates once to warm up, then ``--repeat`` times; the figure is
the mean. Ratios are printed against deepmd-kit from the same run.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import compile_in_child, run_json, water  # noqa: E402

DEEPMD_DESCRIPTOR = {"type": "dpa4", "sel": 120, "rcut": 6.0, "seed": 1}


def _deepmd():
    import os
    import pathlib
    import tempfile

    import deepmd.env

    deepmd.env.SHARED_LIB_DIR = pathlib.Path(tempfile.mkdtemp(prefix="deepmd-no-ops-"))
    os.environ.setdefault("DP_INFER_BATCH_SIZE", "1")
    import logging

    logging.getLogger("deepmd").setLevel(logging.ERROR)
    from deepmd.dpmodel.model.model import get_model
    from deepmd.dpmodel.utils.serialization import save_dp_model
    import deepmd.pt_expt.model as pt_expt_model

    return get_model, save_dp_model, pt_expt_model


def prepare(workdir: Path, precision: str) -> tuple[str, str]:
    """Write the randomized deepmd-kit model (.dp) and its compiled dpgraph package; returns both paths."""
    import numpy as np

    get_model, save_dp_model, _ = _deepmd()
    dp_path = workdir / f"dpa4_{precision}.dp"
    if not dp_path.exists():
        cfg = {"type_map": ["O", "H"], "descriptor": {**DEEPMD_DESCRIPTOR, "precision": precision},
               "fitting_net": {"type": "dpa4_ener", "precision": precision, "seed": 2}}
        tree = get_model(cfg).serialize()
        rng = np.random.default_rng(0)
        for var in [tree["descriptor"]["@variables"], tree["fitting"]["nets"]["networks"][0]["@variables"]]:
            for k, v in var.items():
                if (isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.floating) and v.size
                        and not k.endswith(("balance_weight", "version_tensor", "adam_freqs"))
                        and not k.startswith("wigner_calc.")):
                    s = max(float(np.std(v)), 0.3 / np.sqrt(max(v.shape[0], 1)))
                    var[k] = (v + 0.3 * s * rng.standard_normal(v.shape)).astype(v.dtype)
        save_dp_model(str(dp_path), {"model": tree, "backend": "dpmodel", "software": "deepmd-kit"})
    from dpgraph.export.cache import cached_export
    from dpgraph.interop.deepmd import load_deepmd

    return str(dp_path), str(cached_export(load_deepmd(dp_path), check=False))


def worker(backend: str, n_atoms: int, repeat: int, dp_path: str, pt2: str) -> dict:
    import numpy as np
    import torch

    import dpgraph

    dpgraph.tune_allocator()  # every worker, deepmd-kit's too: large tensors from the heap (see dpgraph.allocator)

    coords, atype, cell = water(n_atoms)
    if backend == "deepmd":
        _, _, pe = _deepmd()
        from dpgraph.interop.deepmd import read_dp

        model = pe.BaseModel.deserialize(read_dp(dp_path)["model"]).eval()
        tb = torch.tensor(cell.reshape(1, 9), dtype=torch.float64)
        ta = torch.tensor(atype[None])

        def run():
            tc = torch.tensor(coords.reshape(1, -1), dtype=torch.float64, requires_grad=True)
            ret = model.call_common(tc, ta, tb, do_atomic_virial=False, neighbor_graph_method="dense")
            out = model._translate_eager_call(ret, ta, do_atomic_virial=False)
            return float(out["energy"].sum())
    elif backend == "deeppot":
        dp = dpgraph.DeepPot(pt2)
        c, b = coords.reshape(1, -1), cell.reshape(1, 9)

        def run():
            return float(np.sum(dp.eval(c, b, atype)[0]))
    else:
        from dpgraph.graph import build_graph
        from dpgraph.interop.deepmd import load_deepmd

        model = load_deepmd(dp_path)

        def run():
            g = build_graph(torch.as_tensor(coords), torch.as_tensor(atype), cell=torch.as_tensor(cell),
                            rcut=model.rcut)
            return float(model.evaluate(g.to(dtype=model.dtype))["energy"].sum())
    e0 = run()
    t0 = time.perf_counter()
    for _ in range(repeat):
        run()
    return {"s": (time.perf_counter() - t0) / repeat, "energy": e0,
            "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--atoms", type=int, nargs="+", default=[192])
    p.add_argument("--precision", nargs="+", default=["float64"], choices=["float64", "float32"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--workdir", default=str(Path.home() / ".cache" / "dpgraph" / "bench_dpa4"))
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--worker", nargs=4, metavar=("BACKEND", "ATOMS", "DP", "PT2"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        b, n, dp_path, pt2 = args.worker
        print(json.dumps(worker(b, int(n), args.repeat, dp_path, pt2)))
        return
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    names = {"deepmd": "deepmd-kit pt_expt (graph)", "deeppot": "dpgraph DeepPot (.pt2, C++)",
             "eager": "dpgraph eager"}
    print(f"DPA4 at deepmd-kit defaults, water, {args.threads} thread(s), mean of {args.repeat} evaluations "
          "(energy + forces + virial); peak = worker ru_maxrss")
    for prec in args.precision:
        code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import dpa4_vs_deepmd as b; "
                f"from pathlib import Path; print(*b.prepare(Path({str(workdir)!r}), {prec!r}))")
        dp_path, pt2 = compile_in_child([sys.executable, "-c", code], f"DPA4 {prec}").split()
        for n in args.atoms:
            res = {}
            for b in ("deepmd", "deeppot", "eager"):
                cmd = [sys.executable, __file__, "--repeat", str(args.repeat), "--worker", b, str(n), dp_path, pt2]
                res[b] = run_json(cmd, args.threads, args.timeout)
            ref = res["deepmd"]
            for b, r in res.items():
                if "error" in r:
                    print(f"{prec} {n:6d} atoms  {names[b]:30s} {r['error']}")
                    continue
                ratio = ""
                if "error" not in ref and b != "deepmd":
                    ratio = (f"  {ref['s'] / r['s']:6.1f}x faster, {r['peak_gb'] / ref['peak_gb']:.2f}x memory, "
                             f"dE/E {abs(r['energy'] - ref['energy']) / abs(ref['energy']):.1e}")
                print(f"{prec} {n:6d} atoms  {names[b]:30s} {r['s']:8.3f} s  {r['peak_gb']:6.2f} GB{ratio}")


if __name__ == "__main__":
    main()
