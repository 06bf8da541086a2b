"""The ``dpgraph`` command line.

    dpgraph demo [--steps 200] [--repeat 4] [--plot demo.png] [-o demo.pt2]
    dpgraph export MODEL -o model.pt2 [--portable] [--stats SYSTEM ...]
    dpgraph info model.pt2
    dpgraph eval -m MODEL STRUCTURE ... [-o results.extxyz]
    dpgraph bench [-m MODEL] [-s STRUCTURE] [--sizes 108 864 ...]
    dpgraph import-deepmd model.dp|model.pth -o model.pt2|model.pt [--semantics dense] [--portable]
    dpgraph train input.json|input.yaml [--restart model.ckpt.pt]
    dpgraph test -m model.pt -s SYSTEM ... [--plot parity.png]
    dpgraph plot-lcurve lcurve.out -o lcurve.png

MODEL is a JSON config (deepmd-kit's ``model`` section, or a whole input with
a ``model`` key), a dpgraph checkpoint (``.pt``), ``builtin`` for the built-in
trained Cu-Au model, ``example`` for the full-size DPA1 water config (random
weights) or ``example-equivariant`` for the SO(3)-equivariant attention config
(docs/equivariant.md). ``eval`` also takes a compiled ``.pt2``. Errors go to
stderr with exit code 2 (set DPGRAPH_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


def _progress(line: str) -> None:
    """One progress line of long work (compiling), on stderr so that stdout stays the result."""
    print(f"dpgraph: {line}", file=sys.stderr, flush=True)


def _load_model(spec: str):
    from ..samples import example_config, example_equivariant_config
    from ..models import build_model, load_model

    if spec == "example":
        return build_model(example_config())
    if spec == "builtin":
        from ..builtin import load_builtin

        return load_builtin()
    if spec == "example-equivariant":
        return build_model(example_equivariant_config())
    return load_model(spec)


def _stats_from_systems(model, systems: list[str]) -> None:
    import torch

    from ..data import load_system
    from ..graph import build_graph
    from ..models import compute_descriptor_stats, compute_energy_bias

    graphs, counts, energies = [], [], []
    for path in systems:
        sysm = load_system(path)
        if sysm.type_map is not None:
            remap = [model.type_map.index(sysm.type_map[t]) for t in range(len(sysm.type_map))]
            atype = torch.tensor(remap)[torch.as_tensor(sysm.atype)]
        else:
            atype = torch.as_tensor(sysm.atype)
        for f in range(min(sysm.n_frames, 10)):
            cell = None if sysm.boxes is None else torch.as_tensor(sysm.boxes[f])
            graphs.append(build_graph(torch.as_tensor(sysm.coords[f]), atype, cell=cell, rcut=model.rcut))
            if sysm.energy is not None:
                counts.append(torch.bincount(atype, minlength=model.ntypes).tolist())
                energies.append(float(sysm.energy[f]))
    compute_descriptor_stats(model.descriptor, graphs)
    if energies:
        bias = compute_energy_bias(counts, energies)
        model.out_bias.copy_(torch.as_tensor(bias, dtype=model.dtype))


def cmd_export(args) -> int:
    from ..atomic_io import check_output_path
    from ..export import export_model

    if Path(args.output).suffix != ".pt2":
        raise ValueError(f"the package file must end in .pt2, got {args.output}")
    check_output_path(args.output, "package")  # before loading and compiling anything
    model = _load_model(args.model)
    if args.stats:
        _stats_from_systems(model, args.stats)
    t0 = time.perf_counter()
    out = export_model(model, args.output, portable=args.portable, check=not args.no_check, device=args.device,
                       log=_progress)
    print(f"wrote {out} ({time.perf_counter() - t0:.1f} s; parity with eager checked: {not args.no_check})")
    return 0


def cmd_info(args) -> int:
    from ..export import read_metadata

    meta = read_metadata(args.package)
    for key in sorted(meta):
        if key != "config":
            print(f"{key:18s} {meta[key]}")
    print("config", json.dumps(json.loads(meta.get("config", "{}")), indent=1))
    return 0


def cmd_import_deepmd(args) -> int:
    from ..atomic_io import atomic_copy, check_output_path
    from ..interop.deepmd import load_deepmd
    from ..models import save_checkpoint

    out = Path(args.output)
    if out.suffix not in (".pt2", ".pt"):
        raise ValueError(f"output must end in .pt2 (compiled package) or .pt (dpgraph checkpoint), got {out.name}")
    check_output_path(out)  # before reading and compiling anything
    t0 = time.perf_counter()
    model = load_deepmd(args.model, semantics=args.semantics)
    d = model.descriptor
    shape = (f"sel {d.nnei}, attn_layer {d.attn_layer}" if hasattr(d, "attn_layer")
             else f"{len(d.blocks)} blocks, receptive field {d.receptive_field} A")
    print(f"read {args.model}: {model.config['descriptor']['type']}, type_map {model.type_map}, rcut {d.rcut} A, "
          f"{shape}, {str(model.dtype).replace('torch.', '')}, "
          f"semantics {args.semantics} ({time.perf_counter() - t0:.1f} s)")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".pt":
        save_checkpoint(model, out)
        print(f"wrote {out} (dpgraph checkpoint; compile it with `dpgraph export {out} -o model.pt2`)")
        return 0
    from ..export.cache import cached_export

    t0 = time.perf_counter()
    src = cached_export(model, portable=args.portable, device=args.device, log=_progress)  # compiled once, reused
    atomic_copy(src, out, "package")
    print(f"wrote {out} ({time.perf_counter() - t0:.1f} s; parity with eager checked)")
    return 0


def cmd_demo(args) -> int:
    from ..atomic_io import check_output_path
    from .demo import run_demo

    if args.output:
        check_output_path(args.output, "package copy")

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # for pair_style dpgraph inside lmp
    return run_demo(args.output, args.repeat, args.steps, args.temperature, args.timestep, args.plot or None)


def cmd_eval(args) -> int:
    import numpy as np

    from .evaluator import open_model, read_structures, results_format

    if args.output:
        results_format(args.output)  # a bad results path is refused before any evaluation
    model = open_model(args.model)
    structures = [s for path in args.structure for s in read_structures(path)]
    for s in structures:
        if not s.symbols:
            raise ValueError(f"structure {s.name} has no atoms: nothing to evaluate; remove it from the input")
    print(f"model {args.model} ({model.kind}): type_map {model.type_map}, rcut {model.rcut} Å")
    print(f"{'structure':<28} {'atoms':>6} {'energy (eV)':>18} {'eV/atom':>12} {'max |F| eV/Å':>13} {'P (GPa)':>9}")
    results = []
    for s in structures:
        r = model.eval(s)
        n = len(s.symbols)
        pressure = float("nan")
        if s.cell is not None:
            vol = abs(float(np.linalg.det(s.cell)))
            pressure = (r["virial"][0] + r["virial"][4] + r["virial"][8]) / (3 * vol) * 160.21766208
        print(f"{s.name:<28} {n:6d} {r['energy']:18.8f} {r['energy'] / n:12.6f} "
              f"{float((r['force'] ** 2).sum(1).max() ** 0.5) if n else 0.0:13.6f} {pressure:9.4f}")
        results.append((s, r))
    if args.output:
        from .evaluator import write_results

        write_results(results, args.output)
        print(f"wrote {args.output}")
    return 0


def cmd_bench(args) -> int:
    from .benchmark import run_bench
    from .evaluator import read_structures

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    structure = None
    if args.structure:
        structure = read_structures(args.structure)[0]
    elif args.model not in ("builtin",):
        raise ValueError("bench: pass -s STRUCTURE (a periodic structure of the model's elements to replicate); "
                         "only the built-in model has a default structure")
    run_bench(args.model, structure, args.sizes, repeat=args.repeat, reference=not args.no_reference)
    return 0


def cmd_train(args) -> int:
    from ..train import read_input, train

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    doc = read_input(args.input)
    out = train(doc, restart=args.restart)
    val = out["validation"]
    if val and "rmse_f" in val:
        print(f"validation: rmse_e {val['rmse_e']:.3e} eV/atom, rmse_f {val['rmse_f']:.3e} eV/A")
    print(f"export with: dpgraph export {out['checkpoint']} -o model.pt2")
    return 0


def cmd_test(args) -> int:
    from ..models import load_model
    from ..train import error_table, load_systems, parity_plot, predict

    if args.model.endswith(".pt2"):
        from ..export import load_package

        model = load_package(args.model)  # same evaluate/type_map/rcut/dtype interface
    else:
        model = load_model(args.model)
        model.eval()
    systems = load_systems(args.system, model.type_map)
    pred = predict(model, systems, batch_size=args.batch_size)
    table = error_table(pred)
    units = {"e": "eV/atom", "f": "eV/A", "v": "eV/atom"}
    names = {"e": "energy", "f": "force", "v": "virial"}
    for name, row in table.items():
        if name == "all" and len(table) == 2:
            continue
        print(f"{'all systems' if name == 'all' else name}: {row['frames']} frames")
        for k in ("e", "f", "v"):
            if f"rmse_{k}" in row:
                print(f"  {names[k]} RMSE {row[f'rmse_{k}']:.4e} {units[k]}   MAE {row[f'mae_{k}']:.4e} {units[k]}")
    if args.plot:
        if parity_plot(pred, args.plot):
            print(f"wrote {args.plot}")
        else:
            print("parity plot skipped: matplotlib is not installed (pip install matplotlib)")
    return 0


def cmd_plot_lcurve(args) -> int:
    from ..train import plot_lcurve

    if plot_lcurve(args.lcurve, args.output):
        print(f"wrote {args.output}")
        return 0
    print("dpgraph: error: plot-lcurve needs matplotlib (pip install matplotlib)", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dpgraph", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("export", help="compile a model to an AOTInductor .pt2 package")
    p.add_argument("model", help="config .json, checkpoint .pt, 'builtin', 'example' or 'example-equivariant'")
    p.add_argument("-o", "--output", required=True, help="output .pt2 path")
    p.add_argument("--portable", action="store_true", help="target AVX2 so the package runs on any x86-64 CPU")
    p.add_argument("--no-check", action="store_true", help="skip the package-vs-eager parity check")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="device the package runs on (cuda: export on a GPU machine with a CUDA torch)")
    p.add_argument("--stats", nargs="+", metavar="SYSTEM", help="deepmd-kit npy systems for davg/dstd and energy bias")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("info", help="print the metadata of a .pt2 package")
    p.add_argument("package")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser("import-deepmd", help="import a deepmd-kit DPA1/se_atten or DPA4 model (.dp, .pth, .pt, .yaml, pt_expt .pt2)")
    p.add_argument("model", help="deepmd-kit model file: .dp (any backend converts to it), .pth, .pt or .yaml")
    p.add_argument("-o", "--output", required=True, help="output .pt2 (compiled package) or .pt (dpgraph checkpoint)")
    p.add_argument("--semantics", choices=["carry-all", "dense"], default="carry-all",
                   help="carry-all = deepmd-kit's graph route (default); dense = its sel-padded dense route")
    p.add_argument("--portable", action="store_true", help="target AVX2 so the package runs on any x86-64 CPU")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="device the package runs on")
    p.set_defaults(func=cmd_import_deepmd)
    p = sub.add_parser("demo", help="compile the built-in Cu-Au model and run LAMMPS MD with pair_style dpgraph")
    p.add_argument("-o", "--output", default=None, help="also copy the .pt2 here (default: only the cache)")
    p.add_argument("--repeat", type=int, default=4, help="fcc cells per box edge (4 -> 256 atoms)")
    p.add_argument("--steps", type=int, default=200, help="LAMMPS NVE steps (0: no MD)")
    p.add_argument("--temperature", type=float, default=300.0, help="initial temperature (K)")
    p.add_argument("--timestep", type=float, default=2.0, help="MD time step (fs)")
    p.add_argument("--plot", default="demo.png", help="temperature/energy plot PNG ('' for none)")
    p.add_argument("--threads", type=int, default=0, help="threads for torch and the pair style (default: all)")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("eval", help="energy, forces and virial of structures (any ASE format or deepmd npy system)")
    p.add_argument("-m", "--model", required=True, help="compiled .pt2, checkpoint .pt, config .json, or 'builtin'")
    p.add_argument("structure", nargs="+", help="structure files (extxyz, POSCAR, cif, lammps-data, ...) or npy systems")
    p.add_argument("-o", "--output", default=None, help="write results: .extxyz (energy/forces/stress) or .npz")
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("bench", help="time the compiled package vs eager PyTorch on growing systems")
    p.add_argument("-m", "--model", default="builtin", help="checkpoint .pt, config .json, .pt2, or 'builtin'")
    p.add_argument("-s", "--structure", default=None, help="periodic structure to replicate (default: Cu-Au fcc)")
    p.add_argument("--sizes", type=int, nargs="+", default=[108, 864], help="minimum atom counts")
    p.add_argument("--repeat", type=int, default=3, help="timed evaluations per size (median)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--no-reference", action="store_true", help="skip the eager PyTorch reference")
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("train", help="train a model from a deepmd-kit style input (.json or .yaml)")
    p.add_argument("input", help="training input: model, learning_rate, loss, training sections")
    p.add_argument("--restart", default=None, help="continue from a training checkpoint (model.ckpt.pt)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (default: torch's choice)")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("test", help="energy/force/virial errors of a model on labelled data")
    p.add_argument("-m", "--model", required=True, help="dpgraph checkpoint .pt, compiled package .pt2 (or config .json)")
    p.add_argument("-s", "--system", required=True, nargs="+",
                   help="deepmd-kit npy systems, directories of them, or ASE-readable files (extxyz)")
    p.add_argument("--plot", default="parity.png", help="parity plot PNG ('' for none; default parity.png)")
    p.add_argument("--batch-size", type=int, default=1, help="frames evaluated together")
    p.set_defaults(func=cmd_test)
    p = sub.add_parser("plot-lcurve", help="plot an lcurve.out to a PNG")
    p.add_argument("lcurve", help="lcurve.out written by dpgraph train (or deepmd-kit)")
    p.add_argument("-o", "--output", default="lcurve.png")
    p.set_defaults(func=cmd_plot_lcurve)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Exception as err:  # every failure: one line on stderr, exit code 2
        if os.environ.get("DPGRAPH_DEBUG"):
            raise
        print(f"dpgraph {args.cmd}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
