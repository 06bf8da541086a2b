"""deepmd-kit's ``dpa4_ener`` fitting: a GLU MLP shared by all types plus ``bias_atom_e``.

Each hidden layer ``h = x @ W + b`` (width 2n) gives ``x' = h[:, :n] * act(h[:, n:])``;
the output layer has no bias. (N, dim_descrpt) -> (N,) eV.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..descriptors.dpa4.layers import ACTIVATIONS, activation


def resolve_neuron(neuron: Sequence[int] | None, dim_descrpt: int) -> list[int]:
    """deepmd-kit's rule: a 0 entry means ``32 * ceil(8 * dim_in / 3 / 32)``."""
    width = int(32 * math.ceil((8.0 * dim_descrpt / 3.0) / 32.0))
    return [width if int(n) == 0 else int(n) for n in (neuron if neuron is not None else [0])]


class DPA4EnergyFitting(nn.Module):
    """(N, dim_descrpt), (N,) types -> (N,) atom energy (eV)."""

    def __init__(self, ntypes: int, dim_descrpt: int, neuron: Sequence[int] | None = None,
                 activation_function: str = "silu", precision: str = "float32", bias_out: bool = False,
                 trainable=True, seed=None, **unsupported):
        super().__init__()
        for key in ("numb_fparam", "numb_aparam", "dim_case_embd"):
            if unsupported.pop(key, 0):
                raise ValueError(f"fitting_net.{key} is not supported for dpa4_ener: the NeighborGraph ABI carries "
                                 "no frame/atom parameters; supported: 0")
        if unsupported.pop("case_film_embd", False):
            raise ValueError("fitting_net.case_film_embd is not supported; supported: False")
        if unsupported.pop("resnet_dt", False):
            raise ValueError("fitting_net.resnet_dt is not supported for dpa4_ener; supported: False")
        for key in ("type", "mixed_types", "rcond", "atom_ener", "type_map", "default_fparam", "tot_ener_zero",
                    "layer_name", "use_aparam_as_mask", "spin", "dim_out", "var_name", "ntypes", "dim_descrpt"):
            unsupported.pop(key, None)
        if unsupported:
            raise ValueError(f"fitting_net (dpa4_ener): unsupported arguments {sorted(unsupported)}")
        if activation_function not in ACTIVATIONS:
            raise ValueError(f"fitting_net.activation_function {activation_function!r} is not supported; "
                             f"supported: {list(ACTIVATIONS)}")
        if precision not in ("float32", "float64"):
            raise ValueError(f"fitting_net.precision {precision!r} is not supported; supported: float32, float64")
        self.dtype = dt = torch.float64 if precision == "float64" else torch.float32
        self.neuron = resolve_neuron(neuron, dim_descrpt)
        self.act = activation(activation_function)
        layers = []
        d = dim_descrpt
        for n in self.neuron:
            lin = nn.Module()
            lin.matrix = nn.Parameter(torch.zeros(d, 2 * n, dtype=dt))
            lin.bias = nn.Parameter(torch.zeros(2 * n, dtype=dt))
            blk = nn.Module()
            blk.linear = lin
            layers.append(blk)
            d = n
        self.hidden_layers = nn.ModuleList(layers)
        self.output_layer = nn.Module()
        self.output_layer.matrix = nn.Parameter(torch.zeros(d, 1, dtype=dt))
        self.output_layer.bias = nn.Parameter(torch.zeros(1, dtype=dt)) if bias_out else None
        self.register_buffer("bias_atom_e", torch.zeros(ntypes, dtype=dt))  # fixed, as deepmd-kit's
        train = trainable if isinstance(trainable, bool) else all(trainable)
        if not train:
            for p in self.parameters():
                p.requires_grad_(False)

    def forward(self, descriptor: torch.Tensor, atype: torch.Tensor) -> torch.Tensor:
        x = descriptor.to(self.dtype)
        for n, blk in zip(self.neuron, self.hidden_layers):
            h = x @ blk.linear.matrix + blk.linear.bias
            x = h[:, :n] * self.act(h[:, n:])
        y = x @ self.output_layer.matrix
        if self.output_layer.bias is not None:
            y = y + self.output_layer.bias
        return y[:, 0] + self.bias_atom_e[atype]
