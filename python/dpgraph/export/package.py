"""Load a dpgraph ``.pt2`` in Python, refusing what cannot run here.

The metadata is read from the zip archive *before* the native loader touches
the file, so a foreign, corrupt or mismatched package gets a clear
:class:`PackageError` instead of a crash. Inputs are validated before every
run: AOTInductor itself checks nothing and returns wrong forces for, e.g.,
int32 indices.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import torch

from ..graph.neighbor_graph import ABI_VERSION, NeighborGraph
from .metadata import FORMAT

_ISA_RANK = {"default": 0, "avx2": 1, "avx512": 2}


class PackageError(ValueError):
    """The file is not a loadable dpgraph package; the message says why and what to do."""


def read_metadata(path: str | Path) -> dict[str, str]:
    """Metadata of a ``.pt2`` read from its archive, without loading code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model package {path} does not exist")
    if not zipfile.is_zipfile(path):
        raise PackageError(
            f"{path} is not a .pt2 package (not a zip archive): the file is corrupt, truncated or of "
            "another format; export it again with `dpgraph export`"
        )
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith("wrapper_metadata.json")]
            if not names:
                raise PackageError(
                    f"{path} is not an AOTInductor package (no compiled model inside); "
                    "export it with `dpgraph export`"
                )
            meta = json.loads(zf.read(names[0]))
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError, json.JSONDecodeError, EOFError) as err:
        raise PackageError(f"{path} is corrupt ({err}); export it again with `dpgraph export`") from None
    if bad is not None:
        raise PackageError(f"{path} is corrupt (member {bad} fails its checksum); export it again")
    return {str(k): str(v) for k, v in meta.items()}


def check_metadata(meta: dict[str, str], path, device: str = "cpu") -> None:
    """Raise :class:`PackageError` if the package cannot run in this process."""
    if meta.get("dpgraph.format") != FORMAT:
        raise PackageError(
            f"{path} is an AOTInductor package but not a dpgraph model (no dpgraph metadata); "
            "export the model with `dpgraph export`"
        )
    abi = meta.get("abi_version")
    if abi != str(ABI_VERSION):
        raise PackageError(
            f"{path} uses NeighborGraph ABI version {abi} but this dpgraph reads version {ABI_VERSION}; "
            "re-export the model with this dpgraph version"
        )
    built = meta.get("torch_version")
    if built != torch.__version__:
        raise PackageError(
            f"{path} was compiled with torch {built} but this process runs torch {torch.__version__}; "
            "AOTInductor packages only load in the torch that built them. Re-export the model here "
            "(dpgraph export ...) or install the matching torch"
        )
    if meta.get("dtype") not in ("float32", "float64"):
        raise PackageError(f"{path} has unsupported dtype {meta.get('dtype')!r}")
    pkg_dev = meta.get("device", "cpu")
    if pkg_dev != device.split(":")[0]:
        raise PackageError(
            f"{path} was compiled for {pkg_dev} but {device} was requested; export for {device} "
            "(dpgraph export --device ...)"
        )
    if pkg_dev == "cpu":
        have = torch.backends.cpu.get_cpu_capability().lower()
        need = meta.get("cpu_isa", "default").lower()
        if need not in _ISA_RANK:
            raise PackageError(f"{path} targets an unknown CPU instruction set {need!r}; export it again")
        if _ISA_RANK.get(need, 0) > _ISA_RANK.get(have, 0):
            raise PackageError(
                f"{path} contains {need.upper()} code but this CPU supports only {have.upper()}; "
                "export a portable package (dpgraph export --portable) or export on this machine"
            )
    elif not torch.cuda.is_available():
        raise PackageError(f"{path} needs CUDA but no CUDA device is available; export for cpu instead")


class Package:
    """A loaded dpgraph model; call it with the five NeighborGraph tensors.

    Attributes: ``metadata`` (dict of str), ``type_map``, ``rcut`` (Å),
    ``receptive_field`` (Å, how far ghost atoms are needed), ``dtype``,
    ``device``, ``outputs`` (names in output order), ``config``.
    """

    def __init__(self, path: str | Path, device: str | None = None):
        self.path = Path(path)
        meta = read_metadata(self.path)
        self.device = torch.device(device or meta.get("device", "cpu"))
        check_metadata(meta, self.path, str(self.device))
        self.metadata = meta
        self.type_map: list[str] = json.loads(meta["type_map"])
        self.ntypes = len(self.type_map)
        self.rcut = float(meta["rcut"])
        self.receptive_field = float(meta.get("receptive_field", meta["rcut"]))
        self.dtype = getattr(torch, meta["dtype"])
        self.outputs: list[str] = json.loads(meta["outputs"])
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
