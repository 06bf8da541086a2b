"""Descriptors: per-node features computed from a NeighborGraph."""

import warnings

from .se_atten import SEMANTICS, DescrptSeAtten, DescrptSeAttenV2
from .dpa4 import DescrptDPA4
from .sezm import DescrptSeZM

DESCRIPTORS = {
    "se_atten": DescrptSeAtten,
    "dpa1": DescrptSeAtten,
    "se_atten_v2": DescrptSeAttenV2,
    "sezm": DescrptSeZM,  # SO(3)-equivariant attention (docs/equivariant.md)
    "equivariant": DescrptSeZM,
    "dpa4": DescrptDPA4,  # deepmd-kit's DPA4 / SeZM (descriptors/dpa4)
    "DPA4": DescrptDPA4,
    "SeZM": DescrptDPA4,
}


def build_descriptor(config: dict, ntypes: int, type_map=None):
    """Build a descriptor from a deepmd-kit style ``descriptor`` config section."""
    cfg = dict(config)
    kind = cfg.pop("type", "se_atten")
    if kind not in DESCRIPTORS:
        raise ValueError(f"unknown descriptor type {kind!r}; supported: {sorted(DESCRIPTORS)}")
    if DESCRIPTORS[kind] is DescrptSeZM:
        warnings.warn("descriptor 'sezm' is deprecated in favour of deepmd-kit's DPA4 ('dpa4'), which dpgraph "
                      "imports and builds with deepmd-kit's numbers; see docs/equivariant.md", FutureWarning,
                      stacklevel=2)
    cfg.setdefault("ntypes", ntypes)
    if type_map is not None:
        cfg.setdefault("type_map", type_map)
    try:
        return DESCRIPTORS[kind](**cfg)
    except TypeError as err:  # unknown keyword
        raise ValueError(f"descriptor {kind!r}: {err}") from None


__all__ = ["DESCRIPTORS", "SEMANTICS", "DescrptDPA4", "DescrptSeAtten", "DescrptSeAttenV2", "DescrptSeZM", "build_descriptor"]
