"""Metadata carried inside every ``.pt2`` (AOTInductor's string map).

All values are strings; structured values are JSON. Keys:

===================  =====================================================
``dpgraph.format``   ``"dpgraph"`` (a foreign package lacks it)
``abi_version``      NeighborGraph ABI version, ``"1"``
``model_type``       ``"energy"``
``type_map``         JSON list of type names, index = model type
``ntypes``           number of types
``rcut``             cutoff (Å)
``receptive_field``  how far ghost atoms are needed (Å): rcut for DPA1,
                     n_blocks * rcut for the message-passing ``sezm``
``dtype``            ``"float64"`` or ``"float32"`` (edge_vec and outputs)
``outputs``          JSON list of output names in order
``inputs``           JSON list of input names in order
``torch_version``    torch that compiled the package
``device``           ``"cpu"`` or ``"cuda"``
``cpu_isa``          ISA the CPU code targets (``avx2``, ``avx512``, ...)
``config``           JSON of the full model config
``dpgraph_version``  package version that exported it
``bytes_per_edge_a`` activation bytes per edge of one call (chunk planning)
``bytes_per_edge_b`` extra bytes per edge per unit of mean degree
``dense_first_type`` ``"1"`` when empty dense slots take the type of the
                     frame's first atom (chunks keep such a center first)
===================  =====================================================
"""

from __future__ import annotations

import json

import torch

from ..graph.neighbor_graph import ABI_VERSION
from ..models.energy import OUTPUTS

FORMAT = "dpgraph"
INPUTS = ("atype", "n_node", "edge_index", "edge_vec", "edge_mask")


def build_metadata(model, cpu_isa: str, device: str = "cpu") -> dict[str, str]:
    from .._version import __version__

    return {
        "dpgraph.format": FORMAT,
        "abi_version": str(ABI_VERSION),
        "model_type": "energy",
        "type_map": json.dumps(model.type_map),
        "ntypes": str(model.ntypes),
        "rcut": repr(float(model.rcut)),
        "receptive_field": repr(float(model.receptive_field)),
        "dtype": str(model.dtype).replace("torch.", ""),
        "outputs": json.dumps(list(OUTPUTS)),
        "inputs": json.dumps(list(INPUTS)),
        "torch_version": torch.__version__,
        "device": device,
        "cpu_isa": cpu_isa,
        "config": json.dumps(model.config, sort_keys=True),
        "dpgraph_version": __version__,
        "bytes_per_edge_a": repr(float(model.bytes_per_edge()[0])),
        "bytes_per_edge_b": repr(float(model.bytes_per_edge()[1])),
        "dense_first_type": "1" if model.dense_first_type else "0",
    }
