"""ASE calculator on the dpgraph C++ runtime (``pip install dpgraph[ase]``).

Example::

    from ase.build import molecule
    from dpgraph.ase import DPGraphCalculator

    atoms = molecule("H2O")
    atoms.calc = DPGraphCalculator("model.pt2")
    atoms.get_potential_energy(), atoms.get_forces()

Units are ASE's: Å, eV, eV/Å, eV/Å^3. Properties: ``energy`` (=
``free_energy``), ``forces``, ``energies`` (per atom) and, for atoms periodic
in all three directions, ``stress`` = -virial / volume in ASE's Voigt order
(xx yy zz yz xz xy). Mixed boundaries (slabs, wires) pass ``atoms.pbc`` and
the cell through; a cell vector that is zero along a non-periodic direction
is replaced by an orthogonal unit vector (it only spans the open direction).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

try:
    from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
except ImportError as _err:  # optional dependency
    raise ImportError("dpgraph.ase needs ASE: pip install 'dpgraph[ase]' (or pip install ase)") from _err

from .deep_pot import DeepPot

__all__ = ["DPGraphCalculator"]


class DPGraphCalculator(Calculator):
    """ASE calculator for a dpgraph ``.pt2`` model.

    Parameters
    ----------
    model : path of a ``.pt2`` exported by dpgraph, or a :class:`dpgraph.DeepPot`.
    device : "cpu", "cuda", "cuda:K"; default the device the package was compiled for
        (ignored when ``model`` is already a DeepPot).
    type_map : how chemical symbols map to model types. None: the model's own type
        map (its names must be the chemical symbols); a list of symbols: the symbol
        of each model type, in model type order (for models whose type names are not
        chemical symbols); a dict: symbol -> model type index.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(self, model, device: str | None = None, type_map=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(model, DeepPot):
            self.dp = model
        elif isinstance(model, (str, Path)):
            self.dp = DeepPot(model, device=device)
        else:
            raise TypeError(f"model must be the path of a .pt2 file or a dpgraph.DeepPot, got {type(model).__name__}")
        model_types = self.dp.get_type_map()
        ntypes = len(model_types)
        if type_map is None:
            mapping = {name: i for i, name in enumerate(model_types)}
        elif isinstance(type_map, dict):
            mapping = {str(k): int(v) for k, v in type_map.items()}
            bad = {k: v for k, v in mapping.items() if not 0 <= v < ntypes}
            if bad:
                raise ValueError(f"type_map {bad} points outside the model's types [0, {ntypes}) = {model_types}")
        else:
            names = [str(t) for t in type_map]
            if len(names) != ntypes:
                raise ValueError(
                    f"type_map has {len(names)} names but the model has {ntypes} types {model_types}; "
                    "give the chemical symbol of every model type in order"
                )
            mapping = {name: i for i, name in enumerate(names)}
        self.type_map = mapping

    def _types(self, symbols) -> np.ndarray:
        try:
            return np.array([self.type_map[s] for s in symbols], dtype=np.int64)
        except KeyError as err:
            raise ValueError(
                f"chemical symbol {err.args[0]!r} is not a type of this model; the model knows "
                f"{sorted(self.type_map, key=self.type_map.get)}"
            ) from None

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        pbc = np.asarray(atoms.pbc, dtype=bool)
        periodic = bool(pbc.all())
        if "stress" in properties and not periodic:
            raise PropertyNotImplementedError(
                f"stress needs atoms periodic in all three directions (pbc = {pbc.tolist()})"
            )
        types = self._types(atoms.get_chemical_symbols())
        coords = atoms.get_positions().reshape(1, -1)
        if pbc.any():
            cell = np.asarray(atoms.cell.complete(), dtype=np.float64).reshape(1, 9)
            e, f, v, ae, _ = self.dp.eval(coords, cell, types, atomic=True, pbc=pbc.tolist())
        else:
            e, f, v, ae, _ = self.dp.eval(coords, None, types, atomic=True)
        energy = float(e[0, 0])
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["forces"] = f[0].copy()
        self.results["energies"] = ae[0, :, 0].copy()
        if periodic:
            w = v[0].reshape(3, 3)
            w = 0.5 * (w + w.T)
            s = -w / atoms.get_volume()
            self.results["stress"] = np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
