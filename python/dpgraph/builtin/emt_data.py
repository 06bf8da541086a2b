"""Labelled Cu–Au alloy frames from ASE's EMT calculator (the built-in model's data).

EMT (effective-medium theory, ``ase.calculators.emt``) is a real, cheap
many-body reference potential for fcc metals that ships with ASE, so the data
of the built-in model can be regenerated anywhere without network or DFT.

A configuration is a 3×3×3 fcc supercell (108 atoms) with a random Au
fraction x ~ U(0, 1) on random sites, the Vegard lattice constant
``a = (1 - x)·3.61 + x·4.08`` Å scaled by U(0.97, 1.03) and a random
symmetric strain of up to ±2 %. Each configuration is run with Langevin MD
(2 fs, friction 0.02 /fs) at a temperature drawn from ``temperatures``, and
snapshots are taken every ``stride`` steps after ``equilibrate`` steps.

Units: Å, eV, eV/Å; ``virial = -stress · volume`` (eV, deepmd-kit's sign).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

TYPE_MAP = ["Cu", "Au"]
A_CU, A_AU = 3.61, 4.08  # EMT-relaxed fcc lattice constants are close to these (Å)


def _require_ase():
    try:
        import ase  # noqa: F401
    except ImportError:
        raise ImportError("the built-in model's reference data needs ASE: pip install ase") from None


def random_alloy(rng: np.random.Generator, repeat: int = 3, x_au: float | None = None, strain: float = 0.02):
    """One random fcc Cu–Au supercell (ase.Atoms, 4·repeat³ atoms, periodic)."""
    _require_ase()
    from ase.build import bulk

    x = rng.uniform(0.0, 1.0) if x_au is None else float(x_au)
    a = ((1 - x) * A_CU + x * A_AU) * rng.uniform(0.97, 1.03)
    atoms = bulk("Cu", "fcc", a=a, cubic=True).repeat((repeat, repeat, repeat))
    n = len(atoms)
    symbols = np.array(["Cu"] * n, dtype=object)
    symbols[rng.permutation(n)[: int(round(x * n))]] = "Au"
    atoms.set_chemical_symbols(symbols.tolist())
    eps = rng.uniform(-strain, strain, (3, 3))
    eps = 0.5 * (eps + eps.T)
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    return atoms


def sample_frames(n_configs: int, snapshots: int, seed: int, temperatures=(300.0, 600.0, 900.0, 1200.0),
                  stride: int = 20, equilibrate: int = 40, repeat: int = 3) -> list:
    """``n_configs · snapshots`` labelled frames (ase.Atoms with a single-point EMT result)."""
    _require_ase()
    from ase import units
    from ase.calculators.emt import EMT
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_configs):
        atoms = random_alloy(rng, repeat)
        atoms.calc = EMT()
        temp = float(rng.choice(temperatures))
        with warnings.catch_warnings():  # ASE >= 3.28 deprecations (fixcm=True default, MaxwellBoltzmann...);
            warnings.simplefilter("ignore", FutureWarning)  # kept: the same calls regenerate the same data
            warnings.simplefilter("ignore", DeprecationWarning)
            MaxwellBoltzmannDistribution(atoms, temperature_K=temp, rng=rng)
            dyn = Langevin(atoms, 2.0 * units.fs, temperature_K=temp, friction=0.02 / units.fs, rng=rng)
        dyn.run(equilibrate)
        for _ in range(snapshots):
            dyn.run(stride)
            snap = atoms.copy()
            snap.calc = SinglePointCalculator(snap, energy=atoms.get_potential_energy(),
                                              forces=atoms.get_forces(), stress=atoms.get_stress(voigt=False))
            frames.append(snap)
    return frames


def frames_to_arrays(frames) -> dict[str, np.ndarray]:
    """Stack frames of equal composition order into deepmd-kit arrays (coord, box, energy, force, virial)."""
    coord = np.stack([f.positions for f in frames])
    box = np.stack([f.cell.array for f in frames])
    energy = np.array([f.get_potential_energy() for f in frames])
    force = np.stack([f.get_forces() for f in frames])
    virial = np.stack([-f.get_stress(voigt=False) * f.get_volume() for f in frames])
    nf = len(frames)
    return {"coord": coord.reshape(nf, -1), "box": box.reshape(nf, 9), "energy": energy,
            "force": force.reshape(nf, -1), "virial": virial.reshape(nf, 9)}


def write_system(frames, path: str | Path) -> list[Path]:
    """Write frames as deepmd-kit npy systems, one per distinct species order.

    Returns the system directories (``path/sys_000``, ...).
    """
    path = Path(path)
    groups: dict[tuple, list] = {}
    for f in frames:
        groups.setdefault(tuple(f.get_chemical_symbols()), []).append(f)
    out = []
    for i, (symbols, group) in enumerate(groups.items()):
        d = path / f"sys_{i:03d}"
        (d / "set.000").mkdir(parents=True, exist_ok=True)
        (d / "type_map.raw").write_text("\n".join(TYPE_MAP) + "\n")
        (d / "type.raw").write_text("\n".join(str(TYPE_MAP.index(s)) for s in symbols) + "\n")
        for key, arr in frames_to_arrays(group).items():
            np.save(d / "set.000" / f"{key}.npy", arr)
        out.append(d)
    return out


EV_PER_A3_IN_GPA = 160.21766208


def demo_box(repeat: int = 4, seed: int = 1):
    """The box ``dpgraph demo`` runs: 4 x 4 x 4 fcc cells (256 atoms) of Cu50Au50, unstrained."""
    return random_alloy(np.random.default_rng(seed), repeat=repeat, x_au=0.5, strain=0.0)


def emt_comparison(model, atoms) -> dict[str, float]:
    """A model (eager :class:`~dpgraph.models.EnergyModel`) against EMT on one periodic box.

    Returns ``de`` (eV/atom, model - EMT), ``force_rmse`` (eV/Å) and the
    pressures ``p_model`` / ``p_emt`` (GPa, ``P = tr(virial) / (3 V)``, positive
    under compression).
    """
    _require_ase()
    import torch
    from ase.calculators.emt import EMT

    from ..graph import build_graph

    types = torch.tensor([model.type_map.index(s) for s in atoms.get_chemical_symbols()])
    g = build_graph(torch.tensor(atoms.positions, dtype=model.dtype), types,
                    cell=torch.tensor(atoms.cell.array, dtype=model.dtype), rcut=model.rcut)
    out = model.evaluate(g)
    ref = atoms.copy()
    ref.calc = EMT()
    n, volume = len(atoms), atoms.get_volume()
    p_model = float(out["virial"].detach().reshape(3, 3).trace()) / (3 * volume) * EV_PER_A3_IN_GPA
    p_emt = -float(np.trace(ref.get_stress(voigt=False))) / 3 * EV_PER_A3_IN_GPA
    return {
        "de": (float(out["energy"][0]) - ref.get_potential_energy()) / n,
        "force_rmse": float(np.sqrt(np.mean((out["force"].detach().numpy() - ref.get_forces()) ** 2))),
        "p_model": p_model, "p_emt": p_emt,
    }
