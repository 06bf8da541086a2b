"""SO(3)-equivariant attention descriptor ("sezm"): message passing on the NeighborGraph.

Architecture (docs/equivariant.md has the full page)::

    x^0_i[l=0] = tebd[type_i]  (F, C);   x^0_i[l>0] = 0          (N, K, F, C)
    per edge:  r, env(r), Y(r_hat), rad = silu(Linear(Bessel(r)))
    for b in 1..n_blocks:                       (every node, owned and ghost)
        x = x + EquivariantAttention_b(x, edges)
        x = x + GatedFeedForward_b(x)
    descriptor_i = x_i[l=0] flattened           (N, F * C), invariant

``K = (lmax + 1)**2``. Messages flow ``src -> dst``; after ``n_blocks`` blocks a
node's descriptor depends on atoms up to ``n_blocks * rcut`` away (the
``receptive_field``, in the package metadata: an MD engine must provide ghost
atoms, with their edges, that far).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import resolve_precision
from ..nn.equivariant_attention import EquivariantAttention
from ..nn.gate import GatedFeedForward
from ..nn.seeding import init_generator
from ..nn.so3 import ChannelLinear
from ..ops.spherical import LMAX_SUPPORTED, n_sph
from .env import type_pair_table
from .sezm_geometry import BesselBasis, edge_geometry


def _refuse(cond: bool, msg: str) -> None:
    if cond:
        raise ValueError(msg)


def _positive_int(name: str, value) -> int:
    _refuse(isinstance(value, bool) or not isinstance(value, int) or value < 1,
            f"{name} must be a positive integer, got {value!r}")
    return int(value)


class DescrptSeZM(nn.Module):
    """Equivariant attention descriptor; outputs per-node invariant features.

    Parameters (config keys of ``{"type": "sezm", ...}``)
    ----------
    rcut : cutoff radius (Å); rcut_smth : the envelope is 1 below it (Å)
    lmax : highest spherical-harmonic degree of the features, 0..3
    channels : C, channels per (l, m) and focus stream; n_focus : F streams
    n_heads : attention heads (divides channels); n_blocks : interaction blocks
    n_radial : Bessel functions; radial_neuron : width of the radial embedding
    ffn_channels : hidden channels of the gated feed-forward (default 2 C)
    rpe_qk, rpe_v : relative positional encodings of keys / values
    attn_eps : epsilon added to the attention null mass
    precision, trainable, seed : as in deepmd-kit
    """

    def __init__(
        self,
        rcut: float,
        ntypes: int,
        rcut_smth: float = 0.5,
        lmax: int = 2,
        channels: int = 16,
        n_focus: int = 1,
        n_heads: int = 2,
        n_blocks: int = 2,
        n_radial: int = 8,
        radial_neuron: int = 32,
        ffn_channels: int | None = None,
        rpe_qk: bool = True,
        rpe_v: bool = True,
        attn_eps: float = 1e-6,
        precision: str = "default",
        trainable: bool = True,
        seed: int | Sequence[int] | None = None,
        type_map: Sequence[str] | None = None,
        pair_exclude_types: Sequence[Sequence[int]] = (),
    ):
        super().__init__()
        _refuse(not float(rcut) > float(rcut_smth) >= 0.0,
                f"need 0 <= rcut_smth < rcut, got rcut_smth={rcut_smth}, rcut={rcut}")
        _refuse(isinstance(lmax, bool) or not isinstance(lmax, int) or not 0 <= lmax <= LMAX_SUPPORTED,
                f"lmax must be an integer in [0, {LMAX_SUPPORTED}], got {lmax!r}")
        for name, val in (("ntypes", ntypes), ("channels", channels), ("n_focus", n_focus), ("n_heads", n_heads),
                          ("n_blocks", n_blocks), ("n_radial", n_radial), ("radial_neuron", radial_neuron)):
            _positive_int(name, val)
        _refuse(channels % n_heads != 0, f"channels ({channels}) must be divisible by n_heads ({n_heads})")
        ffn_channels = 2 * channels if ffn_channels is None else _positive_int("ffn_channels", ffn_channels)
        _refuse(not attn_eps > 0.0, f"attn_eps must be > 0, got {attn_eps}")
        if type_map is not None:
            _refuse(len(type_map) != ntypes, f"type_map has {len(type_map)} names but ntypes={ntypes}")
        self.rcut, self.rcut_smth = float(rcut), float(rcut_smth)
        self.ntypes, self.lmax, self.channels, self.n_focus = ntypes, lmax, channels, n_focus
        self.n_heads, self.n_blocks = n_heads, n_blocks
        self.type_map = list(type_map) if type_map is not None else None
        self.dtype = dt = resolve_precision(precision)
        gen = init_generator(seed)
        args = dict(dtype=dt, generator=gen)

        tebd = torch.empty(ntypes, n_focus, channels, dtype=torch.float64).normal_(0.0, 1.0, generator=gen)
        self.type_embedding = nn.Parameter(tebd.to(dt))
        self.basis = BesselBasis(self.rcut, n_radial, dt)
        self.radial_embed = ChannelLinear(n_radial, radial_neuron, **args)
        self.attention = nn.ModuleList(
            EquivariantAttention(lmax, channels, n_focus, n_heads, radial_neuron, rpe_qk, rpe_v, attn_eps, **args)
            for _ in range(n_blocks)
        )
        self.feed_forward = nn.ModuleList(
            GatedFeedForward(lmax, channels, ffn_channels, n_focus, **args) for _ in range(n_blocks)
        )
        pexcl = type_pair_table(ntypes, pair_exclude_types)
        # derived from the model config, so not part of the state dict
        self.register_buffer("pair_exclude_table", pexcl, persistent=False)
        self.has_pair_exclude = bool(pexcl.any())
        if not trainable:
            for p in self.parameters():
                p.requires_grad_(False)

    # ----------------------------------------------------------------- shapes
    @property
    def dim_out(self) -> int:
        return self.n_focus * self.channels

    @property
    def receptive_field(self) -> float:
        """How far (Å) the energy of an atom reaches: ``n_blocks * rcut``."""
        return self.n_blocks * self.rcut

    @torch.no_grad()
    def compute_input_stats(self, graphs) -> tuple[torch.Tensor, torch.Tensor]:
        """No input statistics: the radial basis is not normalized by data. Returns two (ntypes, 0) tensors."""
        empty = torch.zeros(self.ntypes, 0, dtype=torch.float64)
        return empty, empty.clone()

    # ---------------------------------------------------------------- forward
    def node_features(self, atype, src, dst, edge_vec, edge_mask, all_blocks: bool = False):
        """Equivariant node features ``(N, (lmax+1)**2, F, C)`` after the last block
        (``all_blocks``: a list with the input and every block's output)."""
        n = atype.shape[0]
        ev = edge_vec.to(self.dtype)
        mask = edge_mask
        if self.has_pair_exclude:
            mask = mask & ~self.pair_exclude_table[atype[dst] * self.ntypes + atype[src]]
        r, env, ysh = edge_geometry(ev, mask, self.rcut, self.rcut_smth, self.lmax)
        rad = F.silu(self.radial_embed(self.basis(r)))  # (E, radial_neuron)
        x0 = self.type_embedding.index_select(0, atype)[:, None]  # (N, 1, F, C)
        x = torch.cat([x0, x0.new_zeros(n, n_sph(self.lmax) - 1, self.n_focus, self.channels)], dim=1)
        out = [x]
        for attn, ffn in zip(self.attention, self.feed_forward):
            x = x + attn(x, src, dst, ysh, rad, env, mask)
            x = x + ffn(x)
            out.append(x)
        return out if all_blocks else x

    def forward(self, atype, src, dst, edge_vec, edge_mask, n_node=None) -> torch.Tensor:
        """(N,), (E,), (E,), (E, 3) Å, (E,) [, (nf, 2) unused] -> (N, F * C) invariant features."""
        x = self.node_features(atype, src, dst, edge_vec, edge_mask)
        return x[:, 0].reshape(x.shape[0], self.dim_out)
