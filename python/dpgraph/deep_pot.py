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


class DeepPot:
    """A ``.pt2`` model evaluated by the C++ runtime.

    Parameters
    ----------
    model_file : path of a ``.pt2`` exported by dpgraph.
    device : "cpu", "cuda", "cuda:K"; default the device the package was compiled for.
    """

    def __init__(self, model_file: str | Path, device: str | None = None):
        path = Path(model_file)
        if path.is_dir():
            raise IsADirectoryError(f"model file {path} is a directory; give the path of a .pt2 package")
        if not path.is_file():
            raise FileNotFoundError(f"model file {path} does not exist")
        self._dp = _core.DeepPot(str(path), device or "")
        self.model_file = str(path)

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
        coords : (nf, natoms*3), (nf, natoms, 3) or (natoms, 3), Å
        cells : (nf, 9), (nf, 3, 3), (9,) or None for open boundaries; rows are lattice vectors, Å
        atom_types : (natoms,) or (nf, natoms) model type indices (see ``get_type_map``)
        atomic : also return per-atom energies and virials
        pbc : periodicity along each lattice vector, a bool or 3 bools (dpgraph
            extension; default: periodic in all three directions when cells are given)

        Returns
        -------
        energy (nf, 1), force (nf, natoms, 3), virial (nf, 9)
        [, atom_energy (nf, natoms, 1), atom_virial (nf, natoms, 9)]
        """
        if fparam is not None or aparam is not None:
            raise ValueError("this model takes no frame or atomic parameters (fparam/aparam)")
        if kwargs.get("mixed_type"):
            kwargs.pop("mixed_type")
        if kwargs:
            raise TypeError(f"unexpected arguments {sorted(kwargs)}")
        types = _numpy(atom_types, np.int64)
        natoms = types.shape[-1]
        coords = _numpy(coords, np.float64)
        if coords.size % (3 * max(natoms, 1)) != 0 or (natoms == 0 and coords.size):
            raise ValueError(
                f"coords has {coords.size} values, not a multiple of 3 * natoms = {3 * natoms} "
                "(natoms from atom_types); pass (nframes, natoms * 3) or (nframes, natoms, 3)"
            )
        nf = coords.size // (3 * natoms) if natoms else (coords.shape[0] if coords.ndim > 1 else 1)
        coords = coords.reshape(nf, natoms, 3)
        if types.ndim == 2 and types.shape[0] != nf:
            raise ValueError(f"atom_types has {types.shape[0]} frames but coords has {nf}")
        box = None
        if cells is not None:
            box = _numpy(cells, np.float64)
            if box.size != 9 * nf:
                raise ValueError(f"cells must be (nframes, 9) or (nframes, 3, 3) with nframes = {nf}, got shape {box.shape}")
            box = box.reshape(nf, 3, 3)
        if pbc is None:
            pbc = [box is not None]
        else:
            pbc = [bool(p) for p in np.atleast_1d(_numpy(pbc, bool))]
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
