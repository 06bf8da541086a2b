"""Export an energy model to one self-describing AOTInductor package (``.pt2``).

Pipeline (docs/design.md, "The export pipeline"): ``make_fx(tracing_mode="symbolic")`` of the
forward *and* its backward (``torch.export`` cannot trace ``autograd.grad``),
then ``torch.export`` with dynamic N (nodes), E (edges) and nf (frames), then
``aoti_compile_and_package`` with the metadata of :mod:`.metadata`. The
package is loaded back and compared with eager on a test graph; a mismatch
fails the export.
"""

from __future__ import annotations

import os
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.export import Dim
from torch.fx.experimental.proxy_tensor import make_fx

from ..atomic_io import atomic_write, check_output_path
from ..graph import NeighborGraph, build_graph
from ..models.energy import EnergyModel
from .metadata import build_metadata
from .package import read_metadata

PORTABLE_ISA = "avx2"
PORTABLE_MARCH = {"avx2": "x86-64-v3"}  # gcc -march of the portable target (AVX2 + FMA)


class ExportError(RuntimeError):
    """The exported package does not reproduce the eager model."""


def example_graph(model: EnergyModel, n_atoms: int = 24, n_frames: int = 1, seed: int = 0) -> NeighborGraph:
    """A small random periodic graph with every type present, for tracing and checks."""
    gen = torch.Generator().manual_seed(seed)
    box = max(2.2 * model.rcut, (n_atoms / 0.08) ** (1 / 3))
    coords = torch.rand(n_frames, n_atoms, 3, generator=gen, dtype=torch.float64) * box
    atype = torch.arange(n_atoms) % model.ntypes
    cell = torch.eye(3, dtype=torch.float64) * box
    g = build_graph(coords, atype, cell=cell, pbc=True, rcut=model.rcut)
    return g.to(dtype=model.dtype)


def _traced(model: EnergyModel, graph: NeighborGraph) -> torch.fx.GraphModule:
    model = model.eval()
    for p in model.parameters():
        p.requires_grad_(False)

    def fn(atype, n_node, edge_index, edge_vec, edge_mask):
        return model(atype, n_node, edge_index, edge_vec, edge_mask)

    return make_fx(fn, tracing_mode="symbolic", _allow_non_fake_inputs=True)(*graph.as_tuple())


def export_program(model: EnergyModel, graph: NeighborGraph | None = None,
                   device: str = "cpu") -> torch.export.ExportedProgram:
    """make_fx + torch.export with dynamic nodes, edges and frames; ``model`` must live on ``device``."""
    graph = (graph or example_graph(model, 12, n_frames=2)).to(device)
    gm = _traced(model, graph)
    n, e, nf = Dim("n_nodes", min=1), Dim("n_edges", min=2), Dim("n_frames", min=1)
    dynamic = ({0: n}, {0: nf}, {1: e}, {0: e}, {0: e})
    return torch.export.export(gm, graph.as_tuple(), dynamic_shapes=dynamic, strict=False)


@contextmanager
def _isa(isa: str | None):
    """Compile for ``isa`` (None: this machine's best): the kernels' vector ISA and, for the portable
    AVX2 target, ``-march=x86-64-v3`` for all generated C++ (the wrapper included: with the default
    ``-march=native`` it carries AVX-512 instructions even when the kernels are AVX2)."""
    import torch._inductor.config as inductor_config

    old, old_march = os.environ.get("ATEN_CPU_CAPABILITY"), inductor_config.cpp.march
    if isa:
        os.environ["ATEN_CPU_CAPABILITY"] = isa
        inductor_config.cpp.march = PORTABLE_MARCH[isa]
    try:
        yield
    finally:
        if isa:
            inductor_config.cpp.march = old_march
            if old is None:
                os.environ.pop("ATEN_CPU_CAPABILITY", None)
            else:
                os.environ["ATEN_CPU_CAPABILITY"] = old


def export_model(model: EnergyModel, path: str | Path, portable: bool = False, check: bool = True,
                 check_graphs: list[NeighborGraph] | None = None, rtol: float | None = None,
                 device: str = "cpu", log=None) -> Path:
    """Compile ``model`` to ``path`` (``.pt2``), atomically; return the path (see :func:`_export_model`).

    ``log``: a callable given one line per stage (what runs and how long it usually takes);
    None is silent.

    The package is compiled and checked in a temporary file next to ``path`` and renamed over it
    only if that succeeds: a failed check or an interrupted export leaves an existing package as it
    was. An output path that cannot be written is refused before compiling.
    """
    path = Path(path)
    if path.suffix != ".pt2":
        raise ValueError(f"the package file must end in .pt2, got {path.name}")
    check_output_path(path, "package")
    with atomic_write(path, check=read_metadata, what="package") as tmp:
        _export_model(model, tmp, portable, check, check_graphs, rtol, device, log)
    return path


def _export_model(
    model: EnergyModel,
    path: str | Path,
    portable: bool = False,
    check: bool = True,
    check_graphs: list[NeighborGraph] | None = None,
    rtol: float | None = None,
    device: str = "cpu",
    log=None,
) -> Path:
    """Compile ``model`` to ``path`` (``.pt2``); return the path.

    device : "cpu" or "cuda" (the package runs on that device only; CUDA needs
        a CUDA build of torch and a GPU at export time)
    portable : target AVX2 instead of the build machine's best ISA (CPU)
    check : load the package and compare it with eager on ``check_graphs``
        (default: two random graphs of different sizes); raise
        :class:`ExportError` on mismatch
    """
    path = Path(path)
    if path.suffix != ".pt2":
        raise ValueError(f"the package file must end in .pt2, got {path.name}")
    device = _check_device(device)
    path.parent.mkdir(parents=True, exist_ok=True)
    isa = PORTABLE_ISA if portable else torch.backends.cpu.get_cpu_capability().lower()
    home = next(model.parameters()).device
    log = log or (lambda _line: None)
    t0 = time.perf_counter()
    log(f"compiling {type(model.descriptor).__name__} for {device}: torch.export, then AOTInductor's C++ build "
        "(usually 40-130 s on a CPU, up to 8 min for DPA4; compiled once, then cached)")
    model = model.to(device)
    try:
        with warnings.catch_warnings():  # torch-internal deprecation chatter of the export stack
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            ep = export_program(model, device=device)
    finally:
        model.to(home)
    meta = build_metadata(model, cpu_isa=isa, device=device)
    with _isa(PORTABLE_ISA if portable else None), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        out = torch._inductor.aoti_compile_and_package(
            ep, package_path=str(path), inductor_configs={"aot_inductor.metadata": meta}
        )
    log(f"compiled in {time.perf_counter() - t0:.0f} s" + ("; checking the package against eager" if check else ""))
    if check:
        check_package(model, out, check_graphs, rtol)
    return Path(out)


def _check_device(device: str) -> str:
    """``"cpu"`` or ``"cuda"``; refuse CUDA where this torch cannot compile for it."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"export device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            "exporting for cuda needs a CUDA build of torch and a visible GPU "
            f"(this torch is {torch.__version__}, torch.cuda.is_available() is False); export on the GPU machine"
        )
    return device


def check_package(model: EnergyModel, path, graphs=None, rtol: float | None = None) -> float:
    """Compare the package with eager; return the largest relative difference."""
    from .package import load_package

    pkg = load_package(path)
    graphs = graphs or [example_graph(model, 7, seed=1), example_graph(model, 40, n_frames=2, seed=2)]
    model = model.to("cpu")  # eager reference on the CPU; the package returns its device's tensors
    tol = rtol if rtol is not None else (1e-10 if model.dtype == torch.float64 else 1e-4)
    worst = 0.0
    for g in graphs:
        g = g.to(dtype=model.dtype)
        ref = model.evaluate(g)
        got = {k: v.cpu() for k, v in pkg.evaluate(g).items()}
        for name, r in ref.items():
            scale = max(float(r.abs().max()), 1e-8) if r.numel() else 1.0
            diff = float((got[name] - r).abs().max()) / scale if r.numel() else 0.0
            worst = max(worst, diff)
            if not diff <= tol:
                raise ExportError(
                    f"exported package disagrees with the eager model on {name}: relative difference "
                    f"{diff:.3g} > {tol:g} ({g.n_nodes} nodes, {g.n_edges} edges). The package at {path} "
                    "is not trustworthy; please report this with the model config."
                )
    return worst
