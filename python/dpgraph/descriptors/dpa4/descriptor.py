"""deepmd-kit's DPA4 (SeZM) descriptor, graph-native (edge list, carry-all).

Config keys are deepmd-kit's (``DescrptDPA4`` serialization, ``@version``
1.1/1.2). Options outside the supported set raise ``ValueError`` naming the
option and what is supported (see :func:`check_config`).

Forward: NeighborGraph (N nodes, E edges, ``edge_vec = r_src - r_dst`` in Å)
-> (N, channels) invariant descriptor (the l = 0 read-out).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ...ops import segment_sum
from .basis import WignerTables, edge_rotation, wigner_blocks
from .block import InteractionBlock
from .so2 import edge_frame_rows
from .embedding import EnvSeedEmbedding, _TypeTable, geometric_initial_embedding
from .layers import ACTIVATIONS, EquivariantFFN, RadialBasis, RadialMLP, ScalarRMSNorm, c3_envelope

LMAX_SUPPORTED = 6

# option -> required value (anything else is refused)
_FIXED = {
    "edge_cartesian": (False, "False (the SO(2) path)"),
    "node_cartesian": ("none", "'none'"),
    "so2_attn_res": ("none", "'none'"),
    "full_attn_res": ("none", "'none'"),
    "block_attn_res": ("none", "'none'"),
    "inner_clamp_r_inner": (None, "None (no ZBL bridging / inner clamp)"),
    "inner_clamp_r_outer": (None, "None (no ZBL bridging / inner clamp)"),
    "add_chg_spin_ebd": (False, "False (no charge/spin embedding)"),
    "use_spin": (None, "None (no spin)"),
}
_KNOWN = set(_FIXED) | {
    "ntypes", "sel", "rcut", "env_exp", "type_map", "lmax", "n_blocks", "l_schedule", "mmax", "kmax", "m_schedule",
    "channels", "basis_type", "n_radial", "radial_mlp", "edge_norm", "use_env_seed", "random_gamma", "mixing_layers",
    "radial_so2_mode", "radial_so2_rank", "focus_dim", "ffn_neurons", "grid_mlp", "grid_branch", "ffn_blocks",
    "n_atten_head", "sandwich_norm", "s2_activation", "readout_layers", "lebedev_quadrature",
    "activation_function", "glu_activation", "layer_scale", "so2_norm", "mlp_bias", "precision", "extra_node_l",
    "exclude_types", "eps", "trainable", "seed",
    "default_chg_spin", "use_amp", "so2_layers", "so3_readout", "message_node_s2", "message_node_so3",
    "atten_f_mix", "atten_v_proj", "atten_o_proj", "ffn_so3_grid", "n_focus", "node_wise_s2", "node_wise_so3",
}


def _refuse(opt: str, value, supported: str):
    raise ValueError(f"DPA4 option {opt}={value!r} is not supported by dpgraph; supported: {supported}")


def check_config(cfg: dict) -> dict:
    """Validate a deepmd-kit DPA4 descriptor config; return it with derived values filled in."""
    unknown = sorted(set(cfg) - _KNOWN)
    if unknown:
        raise ValueError(f"DPA4 descriptor: unknown option(s) {unknown}; dpgraph knows {sorted(_KNOWN)}")
    c = dict(cfg)
    for opt, (want, text) in _FIXED.items():
        if opt in c and c[opt] != want and not (opt == "node_cartesian" and str(c[opt]) == "none"):
            _refuse(opt, c[opt], text)
    if c.get("exclude_types"):
        _refuse("exclude_types", c["exclude_types"], "[] (use the model-level pair_exclude_types instead)")
    prec = c.get("precision", "float32")
    if prec not in ("float32", "float64"):
        _refuse("precision", prec, "'float32' or 'float64'")
    act = c.get("activation_function", "silu")
    if act not in ACTIVATIONS:
        _refuse("activation_function", act, str(list(ACTIVATIONS)))
    basis = str(c.get("basis_type", "bessel")).lower()
    if basis not in ("bessel", "gaussian"):
        _refuse("basis_type", basis, "'bessel' or 'gaussian'")
    channels = int(c.get("channels", 64))
    n_focus = int(c.get("n_focus", 1))
    focus_dim = int(c.get("focus_dim", 0))
    if n_focus < 1:
        _refuse("n_focus", n_focus, ">= 1")
    if focus_dim < 0:
        _refuse("focus_dim", focus_dim, ">= 0 (0: channels)")
    cf = focus_dim or channels

    # grid op per grid path [node_wise, message_node, ffn]: 'branch' (grid_branch > 0) > 'mlp' > 'glu'
    ffn_so3 = bool(c.get("ffn_so3_grid", False))
    gm, gb = c.get("grid_mlp", False), c.get("grid_branch", 0)
    gm = [bool(x) for x in (gm if isinstance(gm, (list, tuple)) else [gm] * 3)]
    gb = [int(x) for x in (gb if isinstance(gb, (list, tuple)) else [gb] * 3)]
    if len(gm) != 3:
        _refuse("grid_mlp", c.get("grid_mlp"), "a bool or 3 bools [node_wise, message_node, ffn]")
    if len(gb) != 3 or min(gb) < 0:
        _refuse("grid_branch", c.get("grid_branch"), "an int >= 0 or 3 of them [node_wise, message_node, ffn]")
    grid_ops = ["branch" if b > 0 else ("mlp" if m else "glu") for m, b in zip(gm, gb)]
    lmax = int(c.get("lmax", 3))
    n_blocks = int(c.get("n_blocks", 3))
    l_sched = c.get("l_schedule") or [lmax] * n_blocks
    l_sched = [int(x) for x in l_sched]
    if not l_sched:
        _refuse("n_blocks", 0, ">= 1 interaction block")
    if any(b > a for a, b in zip(l_sched, l_sched[1:])):
        _refuse("l_schedule", l_sched, "a non-increasing list")
    lmax = max(l_sched)
    extra = int(c.get("extra_node_l", 0))
    if lmax > LMAX_SUPPORTED or min(l_sched) < 1:
        _refuse("lmax", l_sched, f"degrees 1..{LMAX_SUPPORTED}")
    if extra < 0 or lmax + extra > LMAX_SUPPORTED:
        _refuse("extra_node_l", extra, f">= 0 with lmax + extra_node_l <= {LMAX_SUPPORTED}")
    mmax = c.get("mmax", 1)
    m_sched = c.get("m_schedule") or [min(l, l if mmax is None else int(mmax)) for l in l_sched]
    m_sched = [int(x) for x in m_sched]
    if len(m_sched) != len(l_sched) or any(m < 0 or m > l for m, l in zip(m_sched, l_sched)):
        _refuse("m_schedule", m_sched, f"0 <= m_schedule[i] <= l_schedule[i] = {l_sched}")
    mixing = int(c.get("so2_layers") if c.get("so2_layers") is not None else c.get("mixing_layers", 4))
    if mixing < 1:
        _refuse("mixing_layers", mixing, ">= 1")
    heads = int(c.get("n_atten_head", 1))
    attn_dim = n_focus * cf if c.get("atten_f_mix") else cf
    if heads < 0 or (heads > 0 and attn_dim % heads):
        _refuse("n_atten_head", heads, f"0 or a divisor of the attention width ({attn_dim}: focus_dim, "
                "or n_focus * focus_dim with atten_f_mix)")
    mode = str(c.get("radial_so2_mode", "degree_channel")).lower()
    if mode not in ("none", "degree", "degree_channel"):
        _refuse("radial_so2_mode", mode, "'none', 'degree' or 'degree_channel'")
    s2 = list(c.get("s2_activation") or [False, True])
    leb = c.get("lebedev_quadrature", True)
    leb = [leb, leb] if isinstance(leb, bool) or leb is None else list(leb)
    leb = [True if x is None else bool(x) for x in leb]
    for i, name in enumerate(("SO(2)", "FFN")):
        if s2[i] and not leb[i] and not (i == 1 and ffn_so3):
            _refuse("lebedev_quadrature", c.get("lebedev_quadrature"),
                    f"True where s2_activation is on ({name} grid): the e3nn product grid is not exact")
    message_node = "so3" if c.get("message_node_so3") else ("s2" if c.get("message_node_s2") else None)
    node_wise = "so3" if c.get("node_wise_so3") else ("s2" if c.get("node_wise_s2") else None)
    if (message_node == "s2" or node_wise == "s2") and not leb[0]:
        _refuse("lebedev_quadrature", c.get("lebedev_quadrature"),
                "True for the SO(2) grid where message_node_s2 / node_wise_s2 is on: the e3nn product grid "
                "is not exact")
    sandwich = [bool(x) for x in (c.get("sandwich_norm") or [False, True, True, False])]
    readout = str(c.get("so3_readout", "none")).lower()
    if readout not in ("none", "glu", "mlp"):
        _refuse("so3_readout", c.get("so3_readout"), "'none', 'glu' or 'mlp'")
    kmax = int(c.get("kmax", 1))
    if kmax < 0 or kmax > int(c.get("lmax", 3)):
        _refuse("kmax", kmax, f"0..lmax ({c.get('lmax', 3)})")
    env_exp = [int(x) for x in (c.get("env_exp") or [7, 5])]
    glu = bool(c.get("glu_activation", True))
    ffn_neurons = int(c.get("ffn_neurons", 0))

    def width(glu_on: bool) -> int:
        if ffn_neurons > 0:
            return ffn_neurons
        base = 8.0 * channels / 3.0 if glu_on else 4.0 * channels
        return int(32 * math.ceil(base / 32.0))

    radial_mlp = [channels if int(x) == 0 else int(x) for x in (c.get("radial_mlp") or [0])]
    c.update(
        precision=prec, activation_function=act, basis_type=basis, channels=channels, l_schedule=l_sched,
        m_schedule=m_sched, lmax=lmax, mixing_layers=mixing, n_atten_head=heads, radial_so2_mode=mode,
        radial_so2_rank=int(c.get("radial_so2_rank", 1)), s2_activation=[bool(x) for x in s2],
        sandwich_norm=sandwich, env_exp=env_exp, glu_activation=glu, radial_mlp=radial_mlp,
        block_ffn_neurons=width(True if (s2[1] or ffn_so3) else glu), out_ffn_neurons=width(glu),
        edge_norm=bool(c.get("edge_norm", True)), use_env_seed=bool(c.get("use_env_seed", True)),
        ffn_blocks=int(c.get("ffn_blocks", 1)), readout_layers=int(c.get("readout_layers", 1)),
        eps=float(c.get("eps", 1e-7)), layer_scale=bool(c.get("layer_scale", False)),
        so2_norm=bool(c.get("so2_norm", False)), extra_node_l=extra, mlp_bias=bool(c.get("mlp_bias", False)),
        rcut=float(c.get("rcut", 6.0)), n_radial=int(c.get("n_radial", 16)), so3_readout=readout, kmax=kmax,
        message_node=message_node, message_node_op=grid_ops[1], grid_branches=[max(1, b) for b in gb],
        ffn_grid_op=grid_ops[2], node_wise=node_wise, node_wise_op=grid_ops[0],
        atten_f_mix=bool(c.get("atten_f_mix", False)), atten_v_proj=bool(c.get("atten_v_proj", False)),
        atten_o_proj=bool(c.get("atten_o_proj", False)),
        ffn_so3_grid=grid_ops[2] if ffn_so3 else None, n_focus=n_focus, focus_dim=cf,
    )
    if c["ffn_blocks"] < 1:
        _refuse("ffn_blocks", c["ffn_blocks"], ">= 1")
    if c["readout_layers"] < 1:
        _refuse("readout_layers", c["readout_layers"], ">= 1")
    return c


class DescrptDPA4(nn.Module):
    """deepmd-kit DPA4 descriptor on a NeighborGraph; parameters named as deepmd-kit serializes them."""

    def __init__(self, ntypes: int, type_map=None, **config):
        super().__init__()
        c = check_config({**config, "ntypes": ntypes})
        self.config = c
        self.ntypes = ntypes
        self.type_map = list(type_map) if type_map is not None else None
        self.dtype = dt = torch.float64 if c["precision"] == "float64" else torch.float32
        self.rcut = c["rcut"]
        self.channels = ch = c["channels"]
        self.lmax = c["lmax"]  # message-passing degree
        self.extra_node_l = c["extra_node_l"]
        self.node_lmax = nl = self.lmax + self.extra_node_l  # node-state degree
        self.eps = c["eps"]
        self.env_exp = c["env_exp"]
        self.l_schedule, self.m_schedule = c["l_schedule"], c["m_schedule"]
        self.use_env_seed, self.edge_norm = c["use_env_seed"], c["edge_norm"]
        act = c["activation_function"]
        self.type_embedding = _TypeTable(ntypes, ch, dt)
        if self.use_env_seed:
            embed = min(ch, 128)
            type_dim = min(32, max(8, ch // 4))
            axis = min(4 if embed < 64 else 8, max(1, embed - 1))
            rbf_out = max(32, embed - 2 * type_dim)
            hidden = min(256, max(2 * embed, rbf_out + 2 * type_dim))
            self.env_seed_embedding = EnvSeedEmbedding(ntypes, c["n_radial"], ch, embed, axis, type_dim, hidden, act,
                                                       self.eps, dt, c["mlp_bias"])
            if self.edge_norm:
                self.film_scale_norm = ScalarRMSNorm(ch, self.eps, dt)
                self.film_shift_norm = ScalarRMSNorm(ch, self.eps, dt)
            self.film_scale_strength_log = nn.Parameter(torch.zeros(1, dtype=dt))
            self.film_shift_strength_log = nn.Parameter(torch.zeros(1, dtype=dt))
        self.radial_basis = RadialBasis(self.rcut, c["n_radial"], c["basis_type"], self.env_exp[0], dt)
        self.radial_embedding = RadialMLP([c["n_radial"], *c["radial_mlp"], (nl + 1) * ch], act,
                                          self.edge_norm, 1e-7, dt)
        tables = WignerTables(nl)
        self.register_buffer("w_l1", torch.tensor(tables.l1, dtype=dt), persistent=False)
        for l in range(2, nl + 1):
            self.register_buffer(f"w_couple_{l}", torch.tensor(tables.couple[l], dtype=dt), persistent=False)
        self.blocks = nn.ModuleList(
            [InteractionBlock(l, m, ch, c, dt, node_lmax=l + self.extra_node_l)
             for l, m in zip(self.l_schedule, self.m_schedule)]
        )
        # so3_readout 'glu' / 'mlp': the read-out FFNs see the whole node tensor (degree of the last
        # block) through an SO(3) grid net; 'none': the l = 0 row only
        self.so3_readout = c["so3_readout"]
        ro_l = 0 if self.so3_readout == "none" else self.l_schedule[-1] + self.extra_node_l
        self.readout_dim = (ro_l + 1) ** 2
        grid = None if self.so3_readout == "none" else self.so3_readout
        ro = [EquivariantFFN(ro_l, ch, c["out_ffn_neurons"], False, c["glu_activation"], act, dt, c["mlp_bias"],
                             so3_grid=grid, kmax=min(c["kmax"], ro_l))
              for _ in range(c["readout_layers"])]
        self.readout_pre_layers = nn.ModuleList(ro[:-1])
        self.output_ffn = ro[-1]
        if not config.get("trainable", True):
            for p in self.parameters():
                p.requires_grad_(False)

    @property
    def dim_out(self) -> int:
        return self.channels

    @property
    def receptive_field(self) -> float:
        """(n_blocks + 1) * rcut: the initial embedding already reaches one cutoff out."""
        return (len(self.blocks) + 1) * self.rcut

    def forward(self, atype, src, dst, edge_vec, edge_mask, n_node=None) -> torch.Tensor:
        """(N,), (E,), (E,), (E, 3) Å, (E,) bool -> (N, channels)."""
        n = atype.shape[0]
        dt = self.dtype
        keep = edge_mask.to(dt)[:, None]  # (E, 1)
        ev = edge_vec.to(dt)
        # masked edges become (0, 0, 1): finite geometry and gradients; their weights are 0 below
        ev = torch.where(edge_mask[:, None], ev, torch.tensor([0.0, 0.0, 1.0], dtype=dt).expand_as(ev))
        r = torch.sqrt((ev * ev).sum(-1, keepdim=True) + self.eps * self.eps)  # (E, 1)
        env = c3_envelope(r, self.rcut, self.env_exp[1]) * keep  # (E, 1)
        rbf = self.radial_basis(r) * keep  # (E, n_radial)
        u = ev / torch.sqrt((ev * ev).sum(-1, keepdim=True))
        nl = self.node_lmax
        couple = [getattr(self, f"w_couple_{l}") for l in range(2, nl + 1)]
        rot_d = wigner_blocks(edge_rotation(u), nl, self.w_l1, couple)
        tebd = self.type_embedding(atype)  # (N, C)
        edge_type = (tebd.index_select(0, src) + tebd.index_select(0, dst)) * keep  # (E, C)
        deg = segment_sum((env * env)[:, 0], dst, n)
        inv_sqrt_deg = torch.rsqrt(deg + 0.25)[:, None, None]  # (N, 1, 1)

        rad = self.radial_embedding(rbf).reshape(-1, nl + 1, self.channels) * env[:, :, None]
        x0 = tebd
        if self.use_env_seed:
            film = self.env_seed_embedding(atype, src, dst, ev, rbf, env, inv_sqrt_deg, keep, n)
            sc, sh = film[:, : self.channels], film[:, self.channels:]
            if self.edge_norm:
                sc, sh = self.film_scale_norm(sc), self.film_shift_norm(sh)
            x0 = x0 * (1.0 + torch.exp(self.film_scale_strength_log) * torch.tanh(sc)) + torch.exp(
                self.film_shift_strength_log) * torch.tanh(sh)
        d = (nl + 1) ** 2
        x = torch.cat([x0[:, None, :], x0.new_zeros((n, d - 1, self.channels))], 1)
        if self.use_env_seed:
            x = x + geometric_initial_embedding(rot_d, rad, dst, inv_sqrt_deg, keep, n, nl)
        rad = rad + edge_type[:, None, :]
        frames = {}  # (lmax, mmax) -> edge-frame rotation rows, shared by the blocks that use them
        for blk, l_b, m_b in zip(self.blocks, self.l_schedule, self.m_schedule):
            x = x[:, : (l_b + self.extra_node_l + 1) ** 2]
            if (l_b, m_b) not in frames:
                frames[(l_b, m_b)] = edge_frame_rows(rot_d, l_b, m_b)
            x = blk(x, src, dst, frames[(l_b, m_b)], env, inv_sqrt_deg, rad[:, : l_b + 1], edge_mask)
        y = x[:, : self.readout_dim]
        for layer in self.readout_pre_layers:
            y = y + layer(y)
        return (y + self.output_ffn(y))[:, 0]  # (N, C): the l = 0 row of the last residual sum
