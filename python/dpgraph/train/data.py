"""Training data: labelled frames from deepmd-kit npy systems or ASE-readable files.

A :class:`LabelledSystem` holds frames that share one atom count and one type
list (a deepmd-kit "system"):

=========  ======================  ==========================================
 field      shape                   units / meaning
=========  ======================  ==========================================
 coords     (nf, natoms, 3)         Å
 cells      (nf, 3, 3) or None      Å, rows are lattice vectors; None = open
 pbc        3 bools                 periodicity along each lattice vector
 atype      (natoms,) int64         index into the *model's* type map
 energy     (nf,)                   eV
 force      (nf, natoms, 3) / None  eV/Å
 virial     (nf, 9) / None          eV (deepmd-kit sign: ``-dE/dstrain``)
=========  ======================  ==========================================

Sources: a deepmd-kit npy directory (``type.raw``, ``type_map.raw``,
``set.*/coord.npy, box.npy, energy.npy, force.npy[, virial.npy]``), a directory
holding several such systems (searched recursively), or any file ASE can read
(extxyz, ...). Every problem is a ``ValueError``/``FileNotFoundError`` that
names the file and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import load_system, read_ase_frames


@dataclass
class LabelledSystem:
    name: str
    coords: np.ndarray
    cells: np.ndarray | None
    atype: np.ndarray
    energy: np.ndarray
    force: np.ndarray | None = None
    virial: np.ndarray | None = None
    pbc: tuple = (True, True, True)

    @property
    def n_frames(self) -> int:
        return int(self.coords.shape[0])

    @property
    def natoms(self) -> int:
        return int(self.atype.shape[0])

    def subset(self, idx) -> "LabelledSystem":
        """Frames ``idx`` (array of frame indices) as a new system."""
        idx = np.asarray(idx, dtype=np.int64)
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return LabelledSystem(self.name, self.coords[idx], pick(self.cells), self.atype, self.energy[idx],
                              pick(self.force), pick(self.virial), self.pbc)


# ------------------------------------------------------------ type mapping
def map_types(names: list[str], type_map: list[str], where: str) -> np.ndarray:
    """(len(names),) model type index of each element name; unknown elements are an error."""
    unknown = sorted({n for n in names if n not in type_map})
    if unknown:
        raise ValueError(f"{where}: element(s) {unknown} are not in the model's type_map {type_map}; "
                         "add them to model.type_map")
    return np.array([type_map.index(n) for n in names], dtype=np.int64)


# ------------------------------------------------------------ deepmd npy
def _check_npy_shapes(path: Path, natoms: int) -> None:
    """Shape checks per ``set.*`` before loading, so errors name the file."""
    sets = sorted(p for p in path.glob("set.*") if p.is_dir())
    if not sets:
        raise FileNotFoundError(f"{path} has no set.* directories")
    per_frame = {"coord": 3 * natoms, "box": 9, "energy": 1, "force": 3 * natoms, "virial": 9}
    for s in sets:
        for req in ("coord", "energy"):
            if not (s / f"{req}.npy").exists():
                raise FileNotFoundError(f"{s / (req + '.npy')} is missing (needed for training)")
        nf = None
        for name, width in per_frame.items():
            f = s / f"{name}.npy"
            if not f.exists():
                continue
            a = np.load(f, mmap_mode="r")
            rows = a.shape[0] if a.ndim >= 1 else 1
            size = int(np.prod(a.shape))
            if a.ndim == 0 or size != rows * width:
                raise ValueError(f"{f}: shape {a.shape} does not hold {width} values per frame "
                                 f"({natoms} atoms in type.raw)")
            if nf is None:
                nf = rows
            elif rows != nf:
                raise ValueError(f"{f}: {rows} frames but coord.npy of {s} has {nf}")
    have = {n: [(s / f"{n}.npy").exists() for s in sets] for n in ("box", "force", "virial")}
    for n, flags in have.items():
        if any(flags) and not all(flags):
            raise FileNotFoundError(f"{path}: {n}.npy is present in some set.* directories but not all")


def load_npy_system(path: str | Path, type_map: list[str]) -> LabelledSystem:
    """One deepmd-kit npy system, types mapped to ``type_map``."""
    path = Path(path)
    if not (path / "type.raw").exists():
        raise FileNotFoundError(f"{path} is not a deepmd-kit system (no type.raw)")
    atype = np.loadtxt(path / "type.raw", dtype=np.int64, ndmin=1)
    _check_npy_shapes(path, atype.shape[0])
    s = load_system(path)
    if s.type_map is not None:
        if atype.size and (atype.min() < 0 or atype.max() >= len(s.type_map)):
            raise ValueError(f"{path}/type.raw has types outside [0, {len(s.type_map)}) of type_map.raw")
        model_t = map_types(list(s.type_map), type_map, f"{path}/type_map.raw")[atype] if atype.size else atype
    else:
        if atype.size and (atype.min() < 0 or atype.max() >= len(type_map)):
            raise ValueError(f"{path}/type.raw has types outside [0, {len(type_map)}) and there is no "
                             "type_map.raw to map them by name")
        model_t = atype
    f64 = lambda a: None if a is None else a.astype(np.float64)  # noqa: E731
    return LabelledSystem(str(path), f64(s.coords), f64(s.boxes), model_t, f64(s.energy), f64(s.force), f64(s.virial))


# ------------------------------------------------------------ ASE formats
def load_ase_file(path: str | Path, type_map: list[str]) -> list[LabelledSystem]:
    """Frames of any ASE-readable file, grouped into systems by their element sequence.

    Energies, forces and stresses are taken from the attached calculator
    (extxyz ``energy=``/``forces``/``stress``); the virial is
    ``-stress * volume`` in deepmd-kit's 9-component order.
    """
    path = Path(path)
    frames = read_ase_frames(path, "data")
    groups: dict[tuple, list] = {}
    for i, at in enumerate(frames):
        groups.setdefault(tuple(at.get_chemical_symbols()), []).append((i, at))
    out = []
    for k, (syms, items) in enumerate(groups.items()):
        atype = map_types(list(syms), type_map, str(path))
        coords, cells, energy, force, virial, pbcs = [], [], [], [], [], set()
        has_virial = True
        for i, at in items:
            try:
                e = at.get_potential_energy()
            except Exception:
                raise ValueError(f"{path}: frame {i} has no energy") from None
            coords.append(at.get_positions())
            cells.append(np.asarray(at.get_cell()) if at.pbc.any() else None)
            pbcs.add(tuple(bool(p) for p in at.pbc))
            energy.append(e)
            try:
                force.append(at.get_forces())
            except Exception:
                force.append(None)
            try:
                st = at.get_stress(voigt=False)
                virial.append((-st * at.get_volume()).reshape(9))
            except Exception:
                has_virial = False
        if any(c is None for c in cells) and not all(c is None for c in cells):
            raise ValueError(f"{path}: frames with the same elements mix periodic and open boundaries")
        if len(pbcs) > 1:
            raise ValueError(f"{path}: frames with the same elements have different pbc flags {sorted(pbcs)}")
        if any(f is None for f in force) and not all(f is None for f in force):
            raise ValueError(f"{path}: some frames have forces and some do not")
        out.append(LabelledSystem(
            f"{path}[{k}]", np.array(coords, dtype=np.float64),
            None if cells[0] is None else np.array(cells, dtype=np.float64), atype,
            np.array(energy, dtype=np.float64),
            None if force[0] is None else np.array(force, dtype=np.float64),
            np.array(virial, dtype=np.float64) if has_virial and virial else None, pbcs.pop()))
    return out


# ------------------------------------------------------------ entry point
def find_systems(path: str | Path) -> list[Path]:
    """deepmd-kit system directories at or under ``path`` (directories holding ``type.raw``)."""
    path = Path(path)
    if (path / "type.raw").exists():
        return [path]
    return sorted(p.parent for p in path.rglob("type.raw"))


def load_systems(paths, type_map: list[str]) -> list[LabelledSystem]:
    """Load every system named by ``paths`` (str or list): npy dirs, parent dirs, or ASE files."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[LabelledSystem] = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"data path {p} does not exist")
        if p.is_dir():
            found = find_systems(p)
            if not found:
                raise FileNotFoundError(f"{p}: no deepmd-kit system (directory with type.raw) found")
            out.extend(load_npy_system(s, type_map) for s in found)
        else:
            out.extend(load_ase_file(p, type_map))
    for s in out:
        if s.n_frames == 0:
            raise ValueError(f"{s.name}: no frames")
        if not np.isfinite(s.coords).all() or not np.isfinite(s.energy).all():
            raise ValueError(f"{s.name}: coordinates or energies contain NaN/inf")
    return out
