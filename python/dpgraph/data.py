"""Read deepmd-kit npy systems (``type.raw``, ``type_map.raw``, ``set.*/*.npy``).

A system gives coordinates (nf, natoms, 3) Å, boxes (nf, 3, 3) Å (rows are
lattice vectors), atom types (natoms,), and energies (nf,) eV / forces
(nf, natoms, 3) eV/Å / virials (nf, 9) eV where present.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class System:
    coords: np.ndarray
    boxes: np.ndarray | None
    atype: np.ndarray
    type_map: list[str] | None
    energy: np.ndarray | None = None
    force: np.ndarray | None = None
    virial: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return self.coords.shape[0]


def _cat(sets: list[Path], name: str) -> np.ndarray | None:
    files = [s / f"{name}.npy" for s in sets]
    if not all(f.exists() for f in files):
        return None
    return np.concatenate([np.load(f) for f in files], axis=0)


def load_system(path: str | Path) -> System:
    """Load every ``set.*`` of one deepmd-kit system directory."""
    path = Path(path)
    if not (path / "type.raw").exists():
        raise FileNotFoundError(f"{path} is not a deepmd-kit system (no type.raw)")
    atype = np.loadtxt(path / "type.raw", dtype=np.int64, ndmin=1)
    tm = path / "type_map.raw"
    type_map = tm.read_text().split() if tm.exists() else None
    sets = sorted(p for p in path.glob("set.*") if p.is_dir())
    if not sets:
        raise FileNotFoundError(f"{path} has no set.* directories")
    coords = _cat(sets, "coord")
    if coords is None:
        raise FileNotFoundError(f"{path}: coord.npy missing in a set")
    nf, natoms = coords.shape[0], atype.shape[0]
    boxes = _cat(sets, "box")
    energy, force, virial = _cat(sets, "energy"), _cat(sets, "force"), _cat(sets, "virial")
    return System(
        coords=coords.reshape(nf, natoms, 3),
        boxes=None if boxes is None else boxes.reshape(nf, 3, 3),
        atype=atype,
        type_map=type_map,
        energy=None if energy is None else energy.reshape(nf),
        force=None if force is None else force.reshape(nf, natoms, 3),
        virial=None if virial is None else virial.reshape(nf, 9),
    )


def read_ase_frames(path: str | Path, purpose: str) -> list:
    """Every frame of an ASE-readable file (list of ase.Atoms); ``purpose`` names the use in errors."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{purpose} file {path} does not exist")
    try:
        from ase.io import read
    except ImportError:
        raise ValueError(f"{path}: reading {purpose} files needs ASE (pip install ase)") from None
    try:
        return read(str(path), index=":")
    except Exception as err:  # ASE raises many types
        raise ValueError(f"{path}: ASE could not read it ({type(err).__name__}: {err})") from None
