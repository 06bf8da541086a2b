"""deepmd-kit DPA4 vs dpgraph on the same weights: time and peak memory per evaluation.

    python bench/dpa4_vs_deepmd.py [--atoms 192 1536] [--precision float64 float32] [--threads 1]
                                   [--backends deepmd deepmd-tuned deepmd-pt2 deeppot eager sezm]

The model is deepmd-kit's DPA4 at its argument defaults (channels 64, lmax 3,
mmax 1, 3 blocks, rcut 6 Å, 4 mixing layers, one attention head, S2-grid FFN;
2.7 M parameters) with a ``dpa4_ener`` fitting, weights randomized (a fresh
DPA4 has zero forces), written as a ``.dp`` and imported with
``dpgraph.interop.deepmd.load_deepmd``. Backends, one worker process each
(peak RSS = the worker's ``ru_maxrss``, interpreter and libraries included):

* ``deepmd``: deepmd-kit 3.2.0's pt_expt model, graph route
  (``neighbor_graph_method="dense"``), energy + forces + virials, glibc's
  allocator as a deepmd-kit user gets it;
* ``deepmd-tuned``: the same with :func:`dpgraph.tune_allocator` called first
  (large tensors kept in the heap: deepmd-kit's time depends mostly on page faults);
* ``deepmd-pt2``: deepmd-kit's own AOTInductor ``.pt2`` (``deserialize_to_file``,
  nlist lower) through ``deepmd.infer.DeepPot`` (compiled once, not counted);
* ``deeppot``: dpgraph's compiled ``.pt2`` through the C++ runtime ``dpgraph.DeepPot``
  (compiled once, in a separate process, not counted; the runtime tunes the allocator);
* ``eager``: the same dpgraph model in eager PyTorch;
* ``sezm``: dpgraph's own SO(3) attention model (``sezm``) at a comparable size
  (lmax 3, 64 channels, 4 heads, 3 blocks, rcut 6 Å), its ``.pt2`` through ``DeepPot``.

Each worker evaluates once to warm up, then ``--repeat`` times; the figure is
the mean. Ratios are printed against ``deepmd`` from the same run. For dpgraph,
GFLOP/s is the arithmetic of its SO(2) linears alone (forward and input
gradient, the dominant GEMMs; three real products per complex one) over the
whole evaluation time, to compare with the GEMM rate printed first; kB/edge is
the worker's peak RSS per edge within the cutoff.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_common import compile_in_child, disable_deepmd_ops, gemm_rate, run_json, water  # noqa: E402

DEEPMD_DESCRIPTOR = {"type": "dpa4", "sel": 120, "rcut": 6.0, "seed": 1}


def _deepmd():
    import os

    disable_deepmd_ops()
    os.environ.setdefault("DP_INFER_BATCH_SIZE", "1")
    import logging

    logging.getLogger("deepmd").setLevel(logging.ERROR)
    from deepmd.dpmodel.model.model import get_model
    from deepmd.dpmodel.utils.serialization import save_dp_model
    import deepmd.pt_expt.model as pt_expt_model

    return get_model, save_dp_model, pt_expt_model


SEZM = {"type": "sezm", "rcut": 6.0, "rcut_smth": 0.5, "lmax": 3, "channels": 64, "n_focus": 1, "n_heads": 4,
        "n_blocks": 3, "n_radial": 16, "radial_neuron": 64, "seed": 1}


def prepare(workdir: Path, precision: str, backends: list[str]) -> tuple[str, str, str, str]:
    """Write the randomized deepmd-kit model (.dp) and the compiled packages the backends need:
    returns (dp, dpgraph .pt2, deepmd-kit .pt2, sezm .pt2) paths ("-" where not needed)."""
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

    pt2 = str(cached_export(load_deepmd(dp_path), check=False)) if "deeppot" in backends else "-"
    dm_pt2, sezm = "-", "-"
    if "deepmd-pt2" in backends:
        dm_pt2 = str(workdir / f"dpa4_{precision}.deepmd.pt2")
        if not Path(dm_pt2).exists():
            from deepmd.pt_expt.utils.serialization import deserialize_to_file

            from dpgraph.interop.deepmd import read_dp

            try:
                deserialize_to_file(dm_pt2[:-4] + ".part.pt2", read_dp(dp_path))
                Path(dm_pt2[:-4] + ".part.pt2").rename(dm_pt2)
            except Exception as err:  # reported as that backend's result, the others still run
                print(f"deepmd-kit .pt2 export failed: {type(err).__name__}: {str(err)[:300]}", file=sys.stderr)
                dm_pt2 = "-"
    if "sezm" in backends:
        from dpgraph.models import build_model
        from dpgraph.samples import example_equivariant_config

        cfg = example_equivariant_config(**SEZM, precision=precision)
        cfg["fitting_net"]["precision"] = precision
        sezm = str(cached_export(build_model(cfg), check=False))
    return str(dp_path), pt2, dm_pt2, sezm


def so2_gflop(edges: int) -> float:
    """Forward + input-gradient FLOPs (GFLOP) of the SO(2) linears at the defaults: per layer
    E x 256 x 256 (m = 0) and 3 E x 192 x 192 (m = 1, three real products), 12 layers, x 2."""
    return 2 * 2 * 12 * edges * (256 * 256 + 3 * 192 * 192) / 1e9


def count_edges(n_atoms: int) -> int:
    """Edges of the water box within the DPA4 cutoff."""
    import torch

    from dpgraph.graph import build_graph

    coords, atype, cell = water(n_atoms)
    g = build_graph(torch.as_tensor(coords), torch.as_tensor(atype), cell=torch.as_tensor(cell),
                    rcut=DEEPMD_DESCRIPTOR["rcut"])
    return int(g.edge_mask.sum())


def worker(backend: str, n_atoms: int, repeat: int, dp_path: str, pt2: str) -> dict:
    import numpy as np
    import torch

    import os

    if backend == "deepmd":
        os.environ["DPGRAPH_TUNE_MALLOC"] = "0"  # `import dpgraph` (the water box, read_dp) would tune it
    import dpgraph

    if backend != "deepmd":
        dpgraph.tune_allocator()  # dpgraph's default (its runtime tunes at model load); deepmd-tuned too

    coords, atype, cell = water(n_atoms)
    if backend in ("deepmd", "deepmd-tuned"):
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
    elif backend == "deepmd-pt2":
        if pt2 == "-":
            raise RuntimeError("deepmd-kit's .pt2 export failed (see the compile log)")
        _deepmd()
        from deepmd.infer import DeepPot as DeepmdPot

        dmp = DeepmdPot(pt2)
        c, b = coords.reshape(1, -1), cell.reshape(1, 9)

        def run():
            return float(np.sum(dmp.eval(c, b, atype)[0]))
    elif backend in ("deeppot", "sezm"):
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


BACKENDS = {"deepmd": "deepmd-kit pt_expt (graph)", "deepmd-tuned": "deepmd-kit pt_expt, tuned malloc",
            "deepmd-pt2": "deepmd-kit .pt2 (DeepPot)", "deeppot": "dpgraph DeepPot (.pt2, C++)",
            "eager": "dpgraph eager", "sezm": "dpgraph sezm (.pt2, C++)"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--atoms", type=int, nargs="+", default=[192])
    p.add_argument("--precision", nargs="+", default=["float64"], choices=["float64", "float32"])
    p.add_argument("--backends", nargs="+", default=["deepmd", "deepmd-tuned", "deeppot", "eager", "sezm"],
                   choices=list(BACKENDS))
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
    ref_name = "deepmd" if "deepmd" in args.backends else args.backends[0]
    print(f"DPA4 at deepmd-kit defaults, water, {args.threads} thread(s), mean of {args.repeat} evaluations "
          f"(energy + forces + virial); peak = worker ru_maxrss; ratios against {BACKENDS[ref_name]}")
    for prec in args.precision:
        print(f"{prec}: GEMM rate of one core on E x 256 x 256: {gemm_rate(prec, 16384, 256, 256):.0f} GFLOP/s")
        code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import dpa4_vs_deepmd as b; "
                f"from pathlib import Path; print(*b.prepare(Path({str(workdir)!r}), {prec!r}, {args.backends!r}))")
        dp_path, pt2, dm_pt2, sezm = compile_in_child([sys.executable, "-c", code], f"DPA4 {prec}").split()
        package = {"deeppot": pt2, "deepmd-pt2": dm_pt2, "sezm": sezm}
        for n in args.atoms:
            res = {}
            for b in args.backends:
                cmd = [sys.executable, __file__, "--repeat", str(args.repeat), "--worker", b, str(n), dp_path,
                       package.get(b, "-")]
                res[b] = run_json(cmd, args.threads, args.timeout)
            edges = count_edges(n)
            ref = res[ref_name]
            for b, r in res.items():
                if "error" in r:
                    print(f"{prec} {n:6d} atoms  {BACKENDS[b]:34s} {r['error']}")
                    continue
                extra = ""
                if b in ("deeppot", "eager"):
                    extra += f"  {so2_gflop(edges) / r['s']:5.1f} GFLOP/s, {r['peak_gb'] * 2**30 / edges / 1e3:.0f} kB/edge"
                if "error" not in ref and b != ref_name:
                    extra += f"  {ref['s'] / r['s']:5.2f}x faster, {r['peak_gb'] / ref['peak_gb']:.2f}x memory"
                    if b != "sezm":
                        extra += f", dE/E {abs(r['energy'] - ref['energy']) / abs(ref['energy']):.1e}"
                print(f"{prec} {n:6d} atoms  {BACKENDS[b]:34s} {r['s']:8.3f} s  {r['peak_gb']:6.2f} GB{extra}",
                      flush=True)


if __name__ == "__main__":
    main()
