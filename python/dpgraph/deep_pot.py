"""``dpgraph.DeepPot``: the C++ runtime behind deepmd-kit's ``DeepPot.eval`` call shapes.

This is the same code path LAMMPS uses (libdpgraph: graph built in C++ on the
model's device, AOTInductor package run from C++). Numpy in, numpy out;
torch tensors are accepted (copied to the CPU).

Example::

    dp = DeepPot("model.pt2")
    e, f, v = dp.eval(coords, cells, atom_types)             # (nf,1) (nf,n,3) (nf,9)
    e, f, v, ae, av = dp.eval(coords, cells, atom_types, atomic=True)

Units: Å, eV, eV/Å. Virials are row-major 3x3 flattened to 9
(xx xy xz yx yy yz zx zy zz) with the LAMMPS sign (positive when repulsive);
the per-atom virial puts each edge's virial on its neighbor (src) atom, as
deepmd-kit does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import _core

Error = _core.Error  # a ValueError subclass raised by the C++ runtime


def _numpy(x, dtype) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor
        x = x.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(x), dtype=dtype)


def _array(x, name: str) -> np.ndarray:
    """``x`` as an ndarray (torch tensors copied to the CPU), refusing ragged and non-numeric input."""
    if hasattr(x, "detach"):  # torch.Tensor
        x = x.detach().cpu().numpy()
    try:
        a = np.asarray(x)
    except ValueError as err:  # ragged nested sequences
        raise ValueError(f"{name} is not a rectangular array ({err})") from None
    if a.dtype == object or a.dtype.kind in "USVMm":
        raise TypeError(f"{name} must be numeric, got an array of {a.dtype} ({type(x).__name__})")
    return a


def _coordinates(x, name: str) -> np.ndarray:
    """Real-valued float64 array; complex and bool refused (complex would lose its imaginary part)."""
    a = _array(x, name)
    if a.dtype.kind == "c":
        raise TypeError(f"{name} must be real, got complex values")
    if a.dtype.kind == "b":
        raise TypeError(f"{name} must be numbers in Å, got booleans")
    return np.ascontiguousarray(a, dtype=np.float64)


def _atom_types(x, type_map: list[str]) -> np.ndarray:
    """int64 type indices in [0, ntypes); floats only if integral (0.9 is refused, never truncated)."""
    a = _array(x, "atom_types")
    if a.dtype.kind == "b":
        raise TypeError("atom_types must be integer type indices, got booleans")
    if a.dtype.kind == "c":
        raise TypeError("atom_types must be integer type indices, got complex values")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            k = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"atom_types must be integer type indices; atom_types{list(k)} = {float(a[k])} is not "
                             "an integer (pass an integer array, e.g. np.asarray(types, dtype=int))")
    if a.ndim not in (1, 2):
        raise ValueError(f"atom_types must be (natoms,) or (nframes, natoms), got shape {a.shape}")
    t = np.ascontiguousarray(a, dtype=np.int64)
    out = (t < 0) | (t >= len(type_map))
    if out.any():
        k = tuple(int(i) for i in np.argwhere(out)[0])
        raise ValueError(f"atom_types{list(k)}: type index {int(t[k])} is outside the model's types "
                         f"[0, {len(type_map)}) = {', '.join(type_map)}")
    return t


def _pbc_flags(pbc) -> list[bool]:
    """One bool or three (numpy bools and the integers 0/1 too); strings such as "no" are refused."""
    if hasattr(pbc, "detach"):  # torch.Tensor
        pbc = pbc.detach().cpu().numpy()
    a = np.asarray(pbc, dtype=object)
    flags = a.ravel().tolist()
    ok = a.ndim <= 1 and len(flags) in (1, 3) and all(
        isinstance(p, (bool, np.bool_)) or (isinstance(p, (int, np.integer)) and p in (0, 1)) for p in flags)
    if not ok:
        raise TypeError(f"pbc must be a bool or 3 bools (one per lattice vector), got {pbc!r}")
    return [bool(p) for p in flags]


def _frames(coords, cells, atom_types, type_map: list[str]):
    """Validate deepmd-kit call shapes; returns coords (nf, n, 3), box (nf, 3, 3) or None, types, nf, n.

    Accepted: coords (nf, n*3), (nf, n, 3), (n, 3) or (n*3,) with n = atom_types.shape[-1];
    cells (nf, 9), (nf, 3, 3), and (9,) or (3, 3) for one frame; nothing else is reshaped.
    """
    types = _atom_types(atom_types, type_map)
    n = types.shape[-1]
    x = _coordinates(coords, "coords")
    shapes = f"(nframes, {n}, 3), (nframes, {3 * n}), ({n}, 3) or ({3 * n},)"
    if x.ndim == 3 and x.shape[1:] == (n, 3):
        nf = x.shape[0]
    elif x.ndim == 2 and x.shape[1] == 3 * n and (n > 0 or x.shape[0] > 0):
        nf = x.shape[0]
    elif x.ndim == 2 and x.shape == (n, 3):
        nf = 1
    elif x.ndim == 1 and x.shape[0] == 3 * n:
        nf = 1
    else:
        raise ValueError(f"coords has shape {x.shape} but atom_types has {n} atoms (shape {types.shape}); "
                         f"coords must be {shapes}")
    if types.ndim == 2 and types.shape[0] != nf:
        raise ValueError(f"atom_types has {types.shape[0]} frames (shape {types.shape}) but coords has {nf} "
                         f"(shape {x.shape})")
    x = x.reshape(nf, n, 3)
    box = None
    if cells is not None:
        b = _coordinates(cells, "cells")
        if b.shape in ((nf, 9), (nf, 3, 3)) or (nf == 1 and b.shape in ((9,), (3, 3))):
            box = b.reshape(nf, 3, 3)
        else:
            one = " (9,), (3, 3)," if nf == 1 else ""
            raise ValueError(f"cells has shape {b.shape} but coords has {nf} frame(s); cells must be{one} "
                             f"({nf}, 9) or ({nf}, 3, 3)")
        if not np.isfinite(box).all():
            raise ValueError("cells has NaN or inf entries")
    return x, box, types, nf, n


class DeepPot:
    """A ``.pt2`` model evaluated by the C++ runtime.

    Parameters
    ----------
    model_file : path of a ``.pt2`` exported by dpgraph.
    device : "cpu", "cuda", "cuda:K"; default the device the package was compiled for.
    memory_budget : bytes of model activations per call (default 1 GiB). A
        local model (DPA1) evaluates larger systems in chunks of centers that
        fit it, with the same numbers; ``None`` or 0 = always one call.

    Thread safety: an instance may be shared between threads; its calls are
    serialized (each releases the GIL while it runs). For parallel
    evaluation, use one instance per thread.
    """

    def __init__(self, model_file: str | Path, device: str | None = None, memory_budget: int | None = 1 << 30):
        path = Path(model_file)
        if path.is_dir():
            raise IsADirectoryError(f"model file {path} is a directory; give the path of a .pt2 package")
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist")
        if memory_budget is not None and (isinstance(memory_budget, bool) or not isinstance(memory_budget, int)):
            raise TypeError(f"memory_budget must be an int number of bytes or None, got {memory_budget!r}")
        self._dp = _core.DeepPot(str(path), device or "", int(memory_budget or 0))
        self.model_file = str(path)

    @property
    def timing(self) -> tuple[float, float]:
        """(graph building, model) wall seconds accumulated since load or :meth:`reset_timing`."""
        return tuple(self._dp.timing)

    def reset_timing(self) -> None:
        self._dp.reset_timing()

    @property
    def memory_budget(self) -> int:
        """Bytes of model activations per call; 0 = one call whatever the size."""
        return int(self._dp.memory_budget)

    @memory_budget.setter
    def memory_budget(self, nbytes: int | None) -> None:
        self._dp.memory_budget = int(nbytes or 0)

    # ----------------------------------------------------------- model info
    def get_type_map(self) -> list[str]:
        return list(self._dp.type_map)

    def get_rcut(self) -> float:
        return float(self._dp.rcut)

    def get_ntypes(self) -> int:
        return int(self._dp.ntypes)

    def get_dim_fparam(self) -> int:
        return 0

    def get_dim_aparam(self) -> int:
        return 0

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self._dp.metadata)

    @property
    def device(self) -> str:
        return self._dp.device

    # ----------------------------------------------------------- evaluation
    def eval(self, coords, cells, atom_types, atomic: bool = False, fparam=None, aparam=None, pbc=None, **kwargs):
        """Energy, forces and virial of one or more frames.

        Parameters
        ----------
        coords : (nf, natoms*3), (nf, natoms, 3), or for one frame (natoms, 3) or (natoms*3,); Å
        cells : (nf, 9), (nf, 3, 3), for one frame also (9,) or (3, 3); None for open
            boundaries; rows are lattice vectors, Å
        atom_types : (natoms,) or (nf, natoms) integer model type indices (see
            ``get_type_map``); floats only if integral (0.9 is refused, not truncated)
        atomic : also return per-atom energies and virials
        pbc : periodicity along each lattice vector, a bool or 3 bools (0/1 too; strings
            such as "no" are refused) (dpgraph extension; default: periodic in all three
            directions when cells are given)

        Any other shape or dtype (complex, boolean or string coordinates, a frame count
        that coords, cells and atom_types do not agree on) raises ValueError/TypeError
        naming the argument: nothing is reshaped to fit.

        Returns
        -------
        energy (nf, 1), force (nf, natoms, 3), virial (nf, 9)
        [, atom_energy (nf, natoms, 1), atom_virial (nf, natoms, 9)]
        """
        if fparam is not None or aparam is not None:
            raise ValueError("this model takes no frame or atomic parameters (fparam/aparam)")
        kwargs.pop("mixed_type", None)  # deepmd-kit's flag for per-frame atom_types: (nf, natoms) is accepted anyway
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        if not isinstance(atomic, (bool, np.bool_)):
            raise TypeError(f"atomic must be True or False, got {atomic!r}")
        coords, box, types, nf, natoms = _frames(coords, cells, atom_types, self.get_type_map())
        if pbc is None:
            pbc = [box is not None]
        else:
            pbc = _pbc_flags(pbc)
            if box is None and any(pbc):
                raise ValueError("periodic boundaries (pbc) need cells")
        e, f, v, ae, av = self._dp.compute(coords, box, types, pbc)
        out = (e.reshape(nf, 1), f, v)
        if atomic:
            out += (ae.reshape(nf, natoms, 1), av)
        return out

    def eval_nlist(self, x, atype, nlocal: int, ilist, offsets, neighbors, mapping=None,
                   ghosts_as_nodes: bool = False, ago: int = 0):
        """Evaluate from an MD-style neighbor list (what the LAMMPS plugin does).

        x : (nall, 3) owned + ghost coordinates (Å); atype : (nall,) model types;
        ilist : (inum,) centers; neighbors of ilist[k] are ``neighbors[offsets[k]:offsets[k+1]]``;
        mapping : (nall,) owner of each atom, needed to fold ghosts; ago > 0 reuses the topology.
        Returns per-node energy (1,), force (nodes, 3), virial (1, 9), atom_energy (nodes,), atom_virial (nodes, 9).
        """
        i32 = np.int32
        return self._dp.compute_nlist(
            _numpy(x, np.float64).reshape(-1, 3), _numpy(atype, i32), int(nlocal), _numpy(ilist, i32),
            _numpy(offsets, i32), _numpy(neighbors, i32), None if mapping is None else _numpy(mapping, i32),
            bool(ghosts_as_nodes), int(ago),
        )
