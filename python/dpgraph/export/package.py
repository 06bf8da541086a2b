"""Load a dpgraph ``.pt2`` in Python, refusing what cannot run here.

The metadata is read from the zip archive and checked *before* the native
loader touches the file, so a foreign, corrupt or mismatched package gets a
clear :class:`PackageError` instead of a crash. Reading and checking are the
C++ runtime's (one implementation for Python, C++ and LAMMPS). Inputs are
validated before every run: AOTInductor itself checks nothing and returns
wrong forces for, e.g., int32 indices.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .. import _core
from ..graph.neighbor_graph import NeighborGraph


class PackageError(ValueError):
    """The file is not a loadable dpgraph package; the message says why and what to do."""


def read_metadata(path: str | Path) -> dict[str, str]:
    """Metadata of a ``.pt2`` read from its archive, without loading code.

    Read by the C++ runtime (``dpgraph._core``), which checks every member's CRC.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model package {path} does not exist")
    try:
        return _core.read_package_metadata(str(path))
    except _core.Error as err:
        raise PackageError(str(err)) from None


def check_metadata(meta: dict[str, str], path, device: str = "cpu", cpu_isa: str | None = None):
    """Raise :class:`PackageError` if the package cannot run in this process.

    The check is the C++ runtime's (``dpgraph::check_metadata``), shared with
    :class:`dpgraph.DeepPot`, the LAMMPS plugin and C++ programs. ``cpu_isa``:
    the instruction set to check against (``"default"``, ``"avx2"``,
    ``"avx512"``; None = this CPU's). Returns the parsed ``dpgraph._core.ModelInfo``.
    """
    try:
        return _core.check_metadata(dict(meta), str(path), str(device), cpu_isa or "")
    except _core.Error as err:
        raise PackageError(str(err)) from None


class Package:
    """A loaded dpgraph model; call it with the five NeighborGraph tensors.

    Attributes: ``metadata`` (dict of str), ``type_map``, ``rcut`` (Å),
    ``receptive_field`` (Å, how far ghost atoms are needed), ``dtype``,
    ``device``, ``outputs`` (names in output order), ``config``.
    """

    def __init__(self, path: str | Path, device: str | None = None):
        self.path = Path(path)
        meta = read_metadata(self.path)
        info = check_metadata(meta, self.path, device or "")
        self.device = torch.device(device or info.device)
        self.metadata = meta
        self.type_map: list[str] = list(info.type_map)
        self.ntypes = len(self.type_map)
        self.rcut = info.rcut
        self.receptive_field = info.receptive_field
        self.dtype = getattr(torch, info.dtype)
        self.outputs: list[str] = list(info.outputs)
        self.config = json.loads(meta.get("config", "{}"))
        try:
            index = self.device.index if self.device.index is not None else -1
            self._loader = torch._C._aoti.AOTIModelPackageLoader(str(self.path), "model", False, 1, index)
        except Exception as err:  # noqa: BLE001 - the native loader raises RuntimeError subclasses
            raise PackageError(f"{self.path} could not be loaded: {err}") from None

    def __call__(self, atype, n_node, edge_index, edge_vec, edge_mask, validate: bool = True):
        graph = NeighborGraph(atype, n_node, edge_index, edge_vec, edge_mask)
        if validate:
            graph.validate(self.ntypes, self.dtype)
            if graph.atype.device != self.device:
                raise ValueError(f"inputs are on {graph.atype.device} but the model runs on {self.device}")
        if graph.n_nodes == 0:  # e.g. an MPI rank that owns no atoms: nothing to run
            return self._empty_outputs(graph)
        tensors = [t.contiguous() for t in graph.as_tuple()]
        return tuple(self._loader.boxed_run(tensors))

    def _empty_outputs(self, graph: NeighborGraph) -> tuple[torch.Tensor, ...]:
        nf = graph.n_frames
        z = dict(dtype=self.dtype, device=self.device)
        return (torch.zeros(nf, **z), torch.zeros(0, **z), torch.zeros(0, 3, **z),
                torch.zeros(nf, 9, **z), torch.zeros(0, 9, **z))

    def evaluate(self, graph: NeighborGraph) -> dict[str, torch.Tensor]:
        """Run on a NeighborGraph (converted to the model dtype); outputs by name."""
        g = graph.to(self.device, dtype=self.dtype)
        return dict(zip(self.outputs, self(*g.as_tuple())))


def load_package(path: str | Path, device: str | None = None) -> Package:
    """Load a ``.pt2`` exported by dpgraph; refuses foreign, corrupt or mismatched files."""
    return Package(path, device)
