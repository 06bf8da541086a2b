"""Interoperability with other codes: import models trained elsewhere.

:mod:`dpgraph.interop.deepmd` reads deepmd-kit 3.2.0 standard energy models
(descriptor ``dpa1`` / ``se_atten`` / ``se_atten_v2``, fitting ``ener``).
"""

from .deepmd import from_serialized, load_deepmd, read_dp

__all__ = ["from_serialized", "load_deepmd", "read_dp"]
