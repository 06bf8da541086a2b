"""Refuse physically absurd geometry before a neighbour graph is built.

A cell typed in nm instead of Å, or one atom in a 0.2 Å periodic cell, asks
for tens of thousands of neighbours per atom: minutes and gigabytes before
anything else fails. The number of neighbours per atom within ``rcut`` is
estimated from the number density, ``rho * 4/3 pi rcut^3``, and refused above
:data:`DEFAULT_MAX_DENSITY` atoms/Å^3 (about 11 times diamond, the densest
solid at ambient pressure, and several times metallic hydrogen at 500 GPa).

The volume is the cell's along periodic directions and the atoms' extent
(at least rcut) along open ones, so slabs, wires and molecules are judged by
the region their atoms fill. ``DPGRAPH_MAX_DENSITY`` (atoms/Å^3, or ``inf``)
overrides the limit; the C++ runtime reads the same variable.
"""

from __future__ import annotations

import math
import os

DEFAULT_MAX_DENSITY = 2.0  # atoms / Å^3
ENV = "DPGRAPH_MAX_DENSITY"
DIAMOND_DENSITY = 0.176  # atoms / Å^3


def max_density() -> float:
    """The density limit (atoms/Å^3): ``$DPGRAPH_MAX_DENSITY`` or the default."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return DEFAULT_MAX_DENSITY
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise ValueError(f"{ENV}={text!r} is not a positive number of atoms per Å^3 (or 'inf' for no limit)")
    return value


def check_density(n_atoms: int, volume: float, rcut: float, frame: int = 0) -> None:
    """Raise ValueError if ``n_atoms`` in ``volume`` Å^3 is absurdly dense for a neighbour graph."""
    if n_atoms < 2 or not volume > 0:
        return
    rho = n_atoms / volume
    limit = max_density()
    if rho <= limit:
        return
    sphere = 4.0 / 3.0 * math.pi * rcut**3
    per_atom = rho * sphere
    edges = per_atom * n_atoms
    raise ValueError(
        f"absurd geometry in frame {frame}: {n_atoms} atoms in {volume:.4g} Å^3 is {rho:.4g} atoms/Å^3, "
        f"about {per_atom:.4g} neighbours per atom within rcut = {rcut:g} Å ({edges:.4g} edges); the densest "
        f"solids have about {DIAMOND_DENSITY} atoms/Å^3 (~{DIAMOND_DENSITY * sphere:.0f} neighbours). Check "
        f"that coordinates and cell are in Å (not nm or bohr) and the cell is not too small. Refused above "
        f"{limit:g} atoms/Å^3; if this geometry is intended, set the environment variable "
        f"{ENV}={math.ceil(rho * 1.01)} (or inf)"
    )


def effective_volume(frac, cell_volume: float, widths, pbc, rcut: float) -> float:
    """Volume (Å^3) the atoms fill: the cell along periodic directions, their extent (>= rcut) along open ones.

    frac : (n, 3) fractional coordinates (for open boundaries with a unit cell: Cartesian);
    cell_volume : |det cell| (1 without a cell); widths : (3,) perpendicular widths (Å) of the cell.
    """
    if frac.shape[0] == 0:
        return 0.0
    scale = 1.0
    for i in range(3):
        if not pbc[i]:
            extent = float(frac[:, i].max() - frac[:, i].min())
            scale *= max(extent, rcut / float(widths[i]))
    return float(cell_volume) * scale
