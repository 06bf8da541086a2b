"""One evaluation interface over every kind of model file (used by ``dpgraph eval`` and ``bench``).

``open_model(spec)``:

- ``*.pt2``: the compiled package, run by the C++ runtime (:class:`dpgraph.DeepPot`);
- ``*.pt`` / ``*.json``: a dpgraph checkpoint or config, run eagerly in PyTorch;
- ``builtin``: the built-in Cu–Au model (eager).

``read_structures(path)`` reads any ASE format (all frames) or a deepmd-kit
npy system. Units: Å, eV, eV/Å; virial (9,) row-major, deepmd-kit sign.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import load_system, read_ase_frames


@dataclass
class Structure:
    name: str
    symbols: list[str]
    coords: np.ndarray  # (n, 3) Å
    cell: np.ndarray | None  # (3, 3) Å, rows are lattice vectors
    pbc: tuple[bool, bool, bool]


class Evaluator:
    """``eval(structure) -> {energy, force, virial, atom_energy}`` for one model file."""

    def __init__(self, spec: str, device: str | None = None):
        self.spec = spec
        path = Path(spec)
        if spec == "builtin":
            from ..builtin import load_builtin

            self._model, self.kind = load_builtin(), "eager PyTorch (built-in model)"
        elif path.is_dir():
            raise IsADirectoryError(f"model {spec} is a directory, not a model file; expected a .pt2 package, "
                                    "a .pt checkpoint, a .json config or 'builtin'")
        elif path.suffix == ".pt2":
            from ..deep_pot import DeepPot

            self._dp, self.kind = DeepPot(path, device), "compiled package, C++ runtime"
            self.type_map, self.rcut = self._dp.get_type_map(), self._dp.get_rcut()
            return
        elif path.suffix in (".pt", ".json"):
            from ..models import load_model

            self._model, self.kind = load_model(path), "eager PyTorch"
            self._model.eval()
        else:
            raise ValueError(f"model {spec!r}: expected a .pt2 package, a .pt checkpoint, a .json config or 'builtin'")
        self._dp = None
        self.type_map, self.rcut = self._model.type_map, float(self._model.rcut)

    def types(self, s: Structure) -> np.ndarray:
        missing = sorted(set(s.symbols) - set(self.type_map))
        if missing:
            raise ValueError(f"{s.name}: elements {missing} are not in the model's type_map {self.type_map}; "
                             "use a model trained on them")
        return np.array([self.type_map.index(x) for x in s.symbols], dtype=np.int64)

    def eval(self, s: Structure) -> dict[str, np.ndarray]:
        types = self.types(s)
        periodic = s.cell is not None and any(s.pbc)
        if self._dp is not None:
            e, f, v, ae, _ = self._dp.eval(s.coords[None], s.cell[None] if periodic else None, types, atomic=True,
                                            pbc=list(s.pbc) if periodic else None)
            return {"energy": float(e[0, 0]), "force": f[0], "virial": v[0], "atom_energy": ae[0, :, 0]}
        from ..graph import build_graph

        dtype = self._model.dtype
        graph = build_graph(torch.tensor(s.coords, dtype=dtype), torch.from_numpy(types),
                            cell=torch.tensor(s.cell, dtype=dtype) if periodic else None,
                            pbc=list(s.pbc), rcut=self.rcut)
        out = self._model.evaluate(graph)
        np_ = lambda k: out[k].detach().to(torch.float64).numpy()  # noqa: E731
        return {"energy": float(np_("energy")[0]), "force": np_("force"), "virial": np_("virial")[0],
                "atom_energy": np_("atom_energy")}


def open_model(spec: str, device: str | None = None) -> Evaluator:
    return Evaluator(spec, device)


def read_structures(path: str | Path) -> list[Structure]:
    """Every frame of an ASE-readable file, or of a deepmd-kit npy system directory."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"structure file {path} does not exist")
    if path.is_dir():
        return _read_npy_system(path)
    frames = read_ase_frames(path, "structure")
    out = []
    for i, at in enumerate(frames):
        pbc = tuple(bool(p) for p in at.pbc)
        cell = np.asarray(at.cell.array, dtype=np.float64) if any(pbc) else None
        out.append(Structure(f"{path.name}[{i}]", at.get_chemical_symbols(),
                             np.asarray(at.positions, dtype=np.float64), cell, pbc))
    return out


def _read_npy_system(path: Path) -> list[Structure]:
    if not (path / "type.raw").exists():
        raise FileNotFoundError(f"{path} is a directory but not a deepmd-kit system (no type.raw)")
    s = load_system(path)
    if s.type_map is None:
        raise ValueError(f"{path}: no type_map.raw, so the element names of the types are unknown")
    symbols = [s.type_map[t] for t in np.asarray(s.atype).tolist()]
    return [Structure(f"{path.name}[{f}]", symbols, np.asarray(s.coords[f], dtype=np.float64).reshape(-1, 3),
                      None if s.boxes is None else np.asarray(s.boxes[f], dtype=np.float64).reshape(3, 3),
                      (s.boxes is not None,) * 3) for f in range(s.n_frames)]


#: output suffix -> format of ``write_results``: formats that keep energies and forces of many frames
RESULT_FORMATS = {".extxyz": "extxyz", ".xyz": "extxyz", ".traj": "traj", ".npz": "npz"}


def results_format(path: str | Path) -> str:
    """Format of a results file from its suffix, after checking that it can be written (before any work)."""
    from ..atomic_io import check_output_path

    path = Path(path)
    fmt = RESULT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        what = f"extension {path.suffix!r}" if path.suffix else "no extension"
        raise ValueError(f"results file {path} has {what}; supported: {', '.join(RESULT_FORMATS)} "
                         "(extxyz/xyz and traj hold energy, forces and stress per frame; npz one array per "
                         "quantity and frame)")
    check_output_path(path, "results file")
    return fmt


def write_results(results: list[tuple[Structure, dict]], path: str | Path) -> None:
    """Write evaluated structures: ``.npz`` (arrays per frame), ``.extxyz``/``.xyz`` or ``.traj``.

    The file is written to a temporary file, read back, and only then renamed
    over ``path``: a failure never leaves a partial file or destroys an old one.
    """
    from ..atomic_io import atomic_write

    path = Path(path)
    fmt = results_format(path)
    if fmt == "npz":
        arrays = {}
        for i, (s, r) in enumerate(results):
            for k, v in r.items():
                arrays[f"{k}_{i}"] = np.asarray(v)

        def check(tmp):
            with np.load(tmp) as z:
                if len(z.files) != len(arrays):
                    raise OSError(f"{tmp} holds {len(z.files)} arrays, expected {len(arrays)}")

        with atomic_write(path, check=check, what="results file") as tmp:
            with open(tmp, "wb") as fh:  # a file object: np.savez would append .npz to a name
                np.savez(fh, **arrays)
        return
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import read, write

    frames = []
    for s, r in results:
        at = Atoms(s.symbols, positions=s.coords, cell=s.cell, pbc=s.pbc if s.cell is not None else False)
        kw = {"energy": r["energy"], "forces": r["force"], "energies": r["atom_energy"]}
        if s.cell is not None:
            kw["stress"] = -np.asarray(r["virial"]).reshape(3, 3) / at.get_volume()
        at.calc = SinglePointCalculator(at, **kw)
        frames.append(at)

    def check(tmp):
        back = read(str(tmp), ":", format=fmt)
        if len(back) != len(frames):
            raise OSError(f"{tmp} holds {len(back)} frames, expected {len(frames)}")

    with atomic_write(path, check=check, what="results file") as tmp:
        write(str(tmp), frames, format=fmt)
