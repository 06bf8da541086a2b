"""deepmd-kit's DPA4 (SeZM) descriptor in dpgraph's graph-native form (docs in descriptor.py)."""

from .descriptor import LMAX_SUPPORTED, DescrptDPA4, check_config

__all__ = ["DescrptDPA4", "LMAX_SUPPORTED", "check_config"]
