"""Energy fitting net: per-node descriptor -> per-node energy (eV).

deepmd-kit's ``ener`` fitting for mixed-type descriptors: one
:class:`~dpgraph.nn.FittingNet` shared by all types (the type information
enters through the descriptor) plus a fixed (untrained) per-type energy bias ``bias_atom_e``, a buffer as
in deepmd-kit.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..nn import FittingNet, resolve_precision
from ..nn.seeding import init_generator


class EnergyFitting(nn.Module):
    """(N, dim_descrpt), (N,) types -> (N,) atom energy."""

    def __init__(
        self,
        ntypes: int,
        dim_descrpt: int,
        neuron: Sequence[int] = (120, 120, 120),
        resnet_dt: bool = True,
        activation_function: str = "tanh",
        precision: str = "default",
        trainable: bool | Sequence[bool] = True,
        seed: int | None = None,
        numb_fparam: int = 0,
        numb_aparam: int = 0,
        dim_case_embd: int = 0,
        rcond: float | None = None,
        atom_ener: Sequence | None = None,
        **unsupported,
    ):
        super().__init__()
        for name, val in (("numb_fparam", numb_fparam), ("numb_aparam", numb_aparam), ("dim_case_embd", dim_case_embd)):
            if val:
                raise ValueError(
                    f"fitting_net.{name}={val} is not supported: NeighborGraph ABI v1 carries no frame or "
                    "atom parameters; set it to 0"
                )
        if atom_ener:
            raise ValueError("fitting_net.atom_ener is not supported; remove it")
        unsupported.pop("type", None)
        unsupported.pop("mixed_types", None)
        if unsupported:
            raise ValueError(f"fitting_net: unsupported arguments {sorted(unsupported)}")
        self.ntypes = ntypes
        self.dim_descrpt = dim_descrpt
        self.rcond = rcond
        self.dtype = resolve_precision(precision)
        gen = init_generator(seed)
        self.net = FittingNet(dim_descrpt, 1, neuron, activation_function, resnet_dt=resnet_dt, dtype=self.dtype,
                              generator=gen)
        # a fixed per-type energy (eV), as deepmd-kit's buffer: set by import, never trained
        self.register_buffer("bias_atom_e", torch.zeros(ntypes, dtype=self.dtype))
        train = trainable if isinstance(trainable, bool) else all(trainable)
        if not train:
            for p in self.parameters():
                p.requires_grad_(False)

    def forward(self, descriptor: torch.Tensor, atype: torch.Tensor) -> torch.Tensor:
        out = self.net(descriptor.to(self.dtype))[:, 0]
        return out + self.bias_atom_e[atype]
