"""Graph-native se_atten / DPA1 descriptor (and the se_atten_v2 preset).

Inputs are NeighborGraph edges; there is no (nloc, sel) padding. Per edge e
(center ``dst``, neighbor ``src``, types ``t_c``, ``t_n``):

1. ``R_e = (env_e - davg[t_c]) / dstd[t_c]`` (E, 4), the normalized environment
   row ``[s, s x/r, s y/r, s z/r]``; zero on masked / excluded edges.
2. ``G_e`` (E, ng): embedding net of ``[s, tebd[t_n], tebd[t_c]]`` ("concat"),
   or ``g(s) * (1 + h(tebd[t_n], tebd[t_c]) * sw)`` ("strip").
3. ``attn_layer`` gated self-attention layers over each center's edges.
4. ``X_c = (1/nnei) sum_e R_e^T G_e`` (4, ng); ``D_c = X_c^T X_c[:, :axis]``
   (ng, axis), flattened, optionally followed by the center's type embedding.

Output: (N, ng * axis_neuron [+ tebd_dim]) in the descriptor's precision.

Semantics (``semantics``): ``"carry-all"`` (default) attends over every
neighbor within rcut; ``"dense"`` reproduces deepmd-kit's sel-padded route
(nearest ``nnei`` neighbors, padded slots in the smooth softmax).
"""

from __future__ import annotations

import numbers
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..nn import EmbeddingNet, TypeEmbedNet, resolve_precision
from ..nn.seeding import init_generator
from ..ops import segment_sum

from .attention import BlockLayout
from .attention_layers import IMPLEMENTATIONS, NeighborGatedAttentionLayer
from .dense_compat import first_node_type, nearest_k_mask, phantom_count
from .env_stats import env_mat_stats
from .env import edge_env_mat, safe_edge_vec, type_pair_table

SEMANTICS = ("carry-all", "dense")


def _refuse(cond: bool, msg: str) -> None:
    if cond:
        raise ValueError(msg)


class DescrptSeAtten(nn.Module):
    """se_atten / DPA1 descriptor; arguments as deepmd-kit's ``DescrptDPA1``.

    Extra dpgraph arguments: ``semantics`` ("carry-all" | "dense") and
    ``attention_impl`` ("fused" production path | "pairwise" test oracle).
    ``pair_exclude_types`` is deepmd-kit's *model-level* pair exclusion (set by
    ``build_model`` from the model config): those pairs are dropped from the
    neighbor list (after the dense route's nearest-``sel`` truncation, as
    deepmd-kit does), so in dense semantics their slots count as padding; the
    descriptor's own ``exclude_types`` keeps them as zeroed neighbors.
    """

    def __init__(
        self,
        rcut: float,
        rcut_smth: float,
        sel: Sequence[int] | int,
        ntypes: int,
        neuron: Sequence[int] = (25, 50, 100),
        axis_neuron: int = 8,
        tebd_dim: int = 8,
        tebd_input_mode: str = "concat",
        resnet_dt: bool = False,
        trainable: bool = True,
        type_one_side: bool = False,
        attn: int = 128,
        attn_layer: int = 2,
        attn_dotr: bool = True,
        attn_mask: bool = False,
        exclude_types: Sequence[Sequence[int]] = (),
        env_protection: float = 0.0,
        set_davg_zero: bool = False,
        activation_function: str = "tanh",
        precision: str = "default",
        scaling_factor: float = 1.0,
        normalize: bool = True,
        temperature: float | None = None,
        trainable_ln: bool = True,
        ln_eps: float | None = 1e-5,
        smooth_type_embedding: bool = True,
        concat_output_tebd: bool = True,
        spin=None,
        stripped_type_embedding: bool | None = None,
        use_econf_tebd: bool = False,
        use_tebd_bias: bool = False,
        type_map: Sequence[str] | None = None,
        seed: int | Sequence[int] | None = None,
        semantics: str = "carry-all",
        attention_impl: str = "fused",
        pair_exclude_types: Sequence[Sequence[int]] = (),
    ):
        super().__init__()
        _refuse(attn_mask, "attn_mask=True is not supported (deepmd-kit implements only False); set attn_mask to False")
        _refuse(spin is not None, "spin is not supported by se_atten (deepmd-kit neither); remove the 'spin' argument")
        _refuse(
            use_econf_tebd,
            "use_econf_tebd=True is not supported: dpgraph has no electronic-configuration table; "
            "set use_econf_tebd to False",
        )
        _refuse(not rcut > rcut_smth >= 0.0, f"need 0 <= rcut_smth < rcut, got rcut_smth={rcut_smth}, rcut={rcut}")
        _refuse(ntypes < 1, f"ntypes must be >= 1, got {ntypes}")
        _refuse(attn_layer < 0, f"attn_layer must be >= 0, got {attn_layer}")
        _refuse(semantics not in SEMANTICS, f"semantics must be one of {SEMANTICS}, got {semantics!r}")
        _refuse(attention_impl not in IMPLEMENTATIONS, f"attention_impl must be one of {IMPLEMENTATIONS}")
        if stripped_type_embedding is not None:  # deprecated deepmd-kit alias
            tebd_input_mode = "strip" if stripped_type_embedding else "concat"
        _refuse(
            tebd_input_mode not in ("concat", "strip"),
            f"tebd_input_mode must be 'concat' or 'strip', got {tebd_input_mode!r}",
        )
        if type_map is not None:
            _refuse(len(type_map) != ntypes, f"type_map has {len(type_map)} names but ntypes={ntypes}")
        for pair in [*exclude_types, *pair_exclude_types]:
            _refuse(
                len(pair) != 2 or not all(isinstance(t, numbers.Integral) and not isinstance(t, bool) and 0 <= t < ntypes for t in pair),
                f"exclude_types entry {pair!r} must be a pair of integer type indices in [0, {ntypes})",
            )
        sel_list = [sel] if isinstance(sel, int) else list(sel)
        _refuse(
            not sel_list or any(int(s) < 0 for s in sel_list) or sum(int(s) for s in sel_list) <= 0,
            f"sel must be a positive int or a list of non-negative ints with a positive sum, got {sel!r}",
        )
        _refuse(not neuron or any(int(n) < 1 for n in neuron), f"neuron must be a non-empty list of positive widths, got {neuron!r}")
        _refuse(axis_neuron < 1, f"axis_neuron must be >= 1, got {axis_neuron}")
        _refuse(tebd_dim < 1, f"tebd_dim must be >= 1, got {tebd_dim}")
        _refuse(attn_layer > 0 and attn < 1, f"attn (attention width) must be >= 1 when attn_layer > 0, got {attn}")

        self.rcut, self.rcut_smth = float(rcut), float(rcut_smth)
        self.sel = [int(sel)] if isinstance(sel, int) else [int(s) for s in sel]
        self.nnei = sum(self.sel)
        self.ntypes = ntypes
        self.neuron = list(neuron)
        self.ng = self.neuron[-1]
        self.axis_neuron = axis_neuron
        _refuse(axis_neuron > self.ng, f"axis_neuron={axis_neuron} exceeds the last embedding width {self.ng}")
        self.tebd_dim = tebd_dim
        self.tebd_input_mode = tebd_input_mode
        self.type_one_side = type_one_side
        self.attn_layer = attn_layer
        self.smooth = smooth_type_embedding
        self.concat_output_tebd = concat_output_tebd
        self.env_protection = float(env_protection)
        self.set_davg_zero = set_davg_zero
        self.semantics = semantics
        self.attention_impl = attention_impl
        self.type_map = list(type_map) if type_map is not None else None
        self.dtype = resolve_precision(precision)

        gen = init_generator(seed)
        dt = self.dtype
        self.type_embedding = TypeEmbedNet(ntypes, tebd_dim, use_tebd_bias=use_tebd_bias, dtype=dt, generator=gen)
        tebd_in = tebd_dim if type_one_side else 2 * tebd_dim
        embd_in = 1 + tebd_in if tebd_input_mode == "concat" else 1
        self.embeddings = EmbeddingNet(embd_in, self.neuron, activation_function, resnet_dt=resnet_dt, dtype=dt,
                                       generator=gen)
        self.embeddings_strip = (
            EmbeddingNet(tebd_in, self.neuron, activation_function, resnet_dt=resnet_dt, dtype=dt,
                         generator=gen)
            if tebd_input_mode == "strip"
            else None
        )
        eps = 1e-5 if ln_eps is None else float(ln_eps)
        self.attention_layers = nn.ModuleList(
            NeighborGatedAttentionLayer(
                self.ng, attn, attn_dotr, self.smooth, normalize, scaling_factor, temperature,
                trainable_ln, eps, dt, gen,
            )
            for _ in range(attn_layer)
        )
        self.register_buffer("davg", torch.zeros(ntypes, 4, dtype=dt))
        self.register_buffer("dstd", torch.ones(ntypes, 4, dtype=dt))
        excl = type_pair_table(ntypes, exclude_types)
        self.register_buffer("exclude_table", excl)
        self.has_exclude = bool(excl.any())
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
        return self.ng * self.axis_neuron + (self.tebd_dim if self.concat_output_tebd else 0)

    def bytes_per_edge(self) -> tuple[float, float]:
        """(a, b): forward + backward on E edges of degree D keep about ``E * (a + b * D)`` bytes.

        ``a`` counts the per-edge activations autograd saves (embedding net,
        q/k/v, attention output, LayerNorm, the (E, 4, ng) moment) and ``b``
        the (C, D, D) attention blocks (logits, weights, gate), each doubled
        for the backward's transients.
        """
        item = torch.finfo(self.dtype).bits // 8
        ng, attn, layers = self.ng, self.attention_layers[0].attention_layer.hidden_dim if self.attn_layer else 0, self.attn_layer
        per_edge = 2 * sum(self.neuron) + 2 * self.tebd_dim + 1 + 4 * ng + layers * (13 * attn + 4 * ng)
        return 2.0 * item * per_edge, 2.0 * item * 5 * layers

    # ---------------------------------------------------------------- forward
    def edge_masks(self, atype, src, dst, edge_vec, edge_mask) -> tuple[torch.Tensor, torch.Tensor]:
        """(E,) bool masks: edges kept by the cutoff (and dense truncation), and
        of those the ones that survive ``exclude_types``."""
        n = atype.shape[0]
        r = torch.linalg.vector_norm(safe_edge_vec(edge_vec, edge_mask), dim=-1)
        kept = edge_mask & (r < self.rcut)
        if self.semantics == "dense":
            kept = nearest_k_mask(r, dst, kept, n, self.nnei)
        if self.has_pair_exclude or self.has_exclude:
            pair = atype[dst] * self.ntypes + atype[src]
        if self.has_pair_exclude:
            kept = kept & ~self.pair_exclude_table[pair]
        mask = kept
        if self.has_exclude:
            mask = kept & ~self.exclude_table[pair]
        return kept, mask

    def edge_mask_effective(self, atype, src, dst, edge_vec, edge_mask) -> torch.Tensor:
        """(E,) bool: real edges inside rcut that survive exclusion (and dense truncation)."""
        return self.edge_masks(atype, src, dst, edge_vec, edge_mask)[1]

    def forward(self, atype, src, dst, edge_vec, edge_mask, n_node=None) -> torch.Tensor:
        """(N,), (E,), (E,), (E, 3), (E,) [, (nf, 2)] -> descriptor (N, dim_out).

        ``n_node`` is only used by the dense semantics (type of a frame's first atom).
        The production path (``attention_impl="fused"``) pads each center's
        edges into a block once and works on (C, D) blocks to the end; the
        oracle (``"pairwise"``) stays in the edge layout.
        """
        n = atype.shape[0]
        ev = edge_vec.to(self.dtype)
        kept, mask = self.edge_masks(atype, src, dst, ev, edge_mask)
        tebd = self.type_embedding()  # (ntypes + 1, tebd_dim)
        if self.attention_impl == "fused":
            xyz = self._moment_blocks(atype, src, dst, ev, mask, tebd)
        else:
            xyz = self._moment_edges(atype, src, dst, ev, mask, tebd)
        if self.semantics == "dense":  # empty slots carry (0 - davg)/dstd
            xyz = xyz + self.padded_slot_terms(atype, n_node, phantom_count(dst, kept, n, self.nnei))
        xyz = xyz / self.nnei
        d = torch.matmul(xyz.transpose(1, 2), xyz[:, :, : self.axis_neuron]).reshape(n, -1)
        if self.concat_output_tebd:
            d = torch.cat([d, tebd[atype]], dim=-1)
        return d

    def compute_input_stats(self, graphs) -> tuple[torch.Tensor, torch.Tensor]:
        """Set ``davg``/``dstd`` (ntypes, 4) from NeighborGraphs (``env_stats.env_mat_stats``); returns them."""
        return env_mat_stats(self, graphs)

    def padded_slot_terms(self, atype, n_node, n_slots) -> torch.Tensor:
        """(N, 4, ng) contribution of each center's empty slots to ``sum_e R_e^T G_e`` (dense semantics).

        An empty slot of a center of type t has ``R = (0 - davg[t]) / dstd[t]``
        (nonzero unless ``davg`` is 0), the embedding of that ``s`` with the type
        of the frame's first atom, and passes each attention layer as a masked
        query: ``G <- LayerNorm(G + out_proj(0))``. ``n_slots`` (N,) counts the
        empty slots (excluded neighbors are not among them: deepmd-kit zeroes
        their R).
        """
        rr = -self.davg[atype] / self.dstd[atype]  # (N, 4)
        t0 = first_node_type(atype, n_node)
        gg = self._edge_embedding(rr[:, :1], torch.zeros_like(rr[:, 0]), atype, t0, self.type_embedding())
        for layer in self.attention_layers:
            bias = layer.attention_layer.out_proj(gg.new_zeros(gg.shape[0], layer.attention_layer.hidden_dim))
            gg = layer.attn_layer_norm(gg + bias)
        return n_slots.to(gg.dtype)[:, None, None] * rr[:, :, None] * gg[:, None, :]

    def _env(self, ev, mask, tc):
        """(M, 3) vectors, (M,) mask, (M,) center types -> normalized R (M, 4), switch (M,), rhat (M, 3)."""
        env, sw = edge_env_mat(ev, mask, self.rcut, self.rcut_smth, self.env_protection)
        rr = torch.where(mask[:, None], (env - self.davg[tc]) / self.dstd[tc], torch.zeros_like(env))
        xyz = torch.where(mask[:, None], rr[:, 1:4], torch.ones_like(rr[:, 1:4]))
        rhat = torch.where(mask[:, None], F.normalize(xyz, dim=-1), torch.zeros_like(xyz))
        return rr, sw, rhat

    def _moment_blocks(self, atype, src, dst, ev, mask, tebd) -> torch.Tensor:
        """Production path: sum_e R_e^T G_e of every node (N, 4, ng), on padded center blocks."""
        n = atype.shape[0]
        lay = BlockLayout(dst, mask, n)
        c, d = lay.n_blocks, lay.D
        ok = lay.key_ok.reshape(-1)
        tc = atype.index_select(0, lay.centers)[:, None].expand(c, d).reshape(-1)
        tn = lay.pad(atype.index_select(0, src)[:, None]).reshape(-1)
        rr, sw, rhat = self._env(lay.pad(ev).reshape(-1, 3), ok, tc)  # (C*D, ·)
        gg = self._edge_embedding(rr[:, :1], sw, tc, tn, tebd)  # (C*D, ng)
        if self.attn_layer > 0:
            n_phantom = None
            if self.semantics == "dense":
                n_phantom = phantom_count(dst, mask, n, self.nnei).index_select(0, lay.centers)
            sw_b, rhat_b = sw.reshape(c, d), rhat.reshape(c, d, 3)
            for layer in self.attention_layers:
                gg = layer(gg, sw_b, rhat_b, lay.key_ok, n_phantom)
        xyz_c = torch.bmm(rr.reshape(c, d, 4).transpose(1, 2), gg.reshape(c, d, self.ng))  # (C, 4, ng)
        return xyz_c.new_zeros((n, 4, self.ng)).index_copy(0, lay.centers, xyz_c)

    def _moment_edges(self, atype, src, dst, ev, mask, tebd) -> torch.Tensor:
        """Oracle path: the same (N, 4, ng) in the edge layout, pair-materialized attention."""
        n = atype.shape[0]
        tc, tn = atype[dst], atype[src]
        rr, sw, rhat = self._env(ev, mask, tc)
        gg = self._edge_embedding(rr[:, :1], sw, tc, tn, tebd)
        if self.attn_layer > 0:
            n_phantom = phantom_count(dst, mask, n, self.nnei) if self.semantics == "dense" else None
            for layer in self.attention_layers:
                gg = layer.forward_pairwise(gg, sw, rhat, dst, mask, n, n_phantom)
        xyz = segment_sum((rr[:, :, None] * gg[:, None, :]).reshape(-1, 4 * self.ng), dst, n)
        return xyz.view(n, 4, self.ng)

    def _edge_embedding(self, ss, sw, tc, tn, tebd) -> torch.Tensor:
        """(E, 1) normalized s -> G (E, ng)."""
        if self.tebd_input_mode == "concat":
            parts = [ss, tebd[tn]] if self.type_one_side else [ss, tebd[tn], tebd[tc]]
            return self.embeddings(torch.cat(parts, dim=-1))
        gg_s = self.embeddings(ss)
        nt1 = self.ntypes + 1
        if self.type_one_side:
            gg_t = self.embeddings_strip(tebd)[tn]
        else:
            nei = tebd[None, :, :].expand(nt1, nt1, -1)
            cen = tebd[:, None, :].expand(nt1, nt1, -1)
            table = self.embeddings_strip(torch.cat([nei, cen], dim=-1).reshape(nt1 * nt1, -1))
            gg_t = table[tc * nt1 + tn]
        if self.smooth:
            gg_t = gg_t * sw[:, None]
        return gg_s * gg_t + gg_s


class DescrptSeAttenV2(DescrptSeAtten):
    """se_atten_v2: the ``tebd_input_mode="strip"``, ``smooth_type_embedding=True`` preset."""

    def __init__(self, *args, tebd_input_mode: str = "strip", smooth_type_embedding: bool = True, **kwargs):
        _refuse(
            tebd_input_mode != "strip" or not smooth_type_embedding,
            "se_atten_v2 is the strip + smooth preset of se_atten; use descriptor type 'se_atten' "
            "to choose tebd_input_mode / smooth_type_embedding freely",
        )
        _refuse(
            kwargs.pop("stripped_type_embedding", None) is False,
            "se_atten_v2 is the strip preset: stripped_type_embedding=False (concat) contradicts it; "
            "use descriptor type 'se_atten' for concat",
        )
        super().__init__(*args, tebd_input_mode="strip", smooth_type_embedding=True, **kwargs)
