"""Copying deepmd-kit weights into dpgraph modules: dense layers, networks, layer norms, attention,
type embedding. Shapes, activations and layouts are checked; nothing is filled in."""

from __future__ import annotations

import numpy as np
import torch

from ...nn import resolve_precision
from ...nn.layers import has_skip_widths
from .tree import IDENTITY_ACTIVATIONS, Node, as_array


def effective_resnet(resnet: bool, n_in: int, n_out: int) -> bool:
    """Whether a layer flagged ``resnet`` really adds its input (the widths allow the skip)."""
    return bool(resnet) and has_skip_widths(n_in, n_out)


@torch.no_grad()
def load_layer(layer, node: Node, dtype: torch.dtype) -> None:
    """Copy one deepmd-kit ``Layer`` into a :class:`~dpgraph.nn.DenseLayer`."""
    node.expect("@class", ("Layer", None), "expected a dense layer")
    node.version(2)
    node.ignore("trainable", "bias", "use_timestep")
    prec = node.get("precision")
    if prec is not None and resolve_precision(prec) != dtype:
        raise ValueError(f"{node.sub('precision')} = {prec!r} differs from its network's precision {dtype}")
    act = str(node.get("activation_function", "none")).lower()
    have = str(layer.activation_name or "none").lower()
    if act != have and not (act in IDENTITY_ACTIVATIONS and have in IDENTITY_ACTIVATIONS):
        raise ValueError(f"{node.sub('activation_function')} = {act!r} but dpgraph's layer uses {have!r}")
    var = node.node("@variables")
    w = as_array(var.get("w"), var.sub("w"))
    if tuple(w.shape) != tuple(layer.w.shape):
        raise ValueError(f"{var.sub('w')} has shape {tuple(w.shape)}, expected {tuple(layer.w.shape)}")
    n_in, n_out = w.shape
    if effective_resnet(node.get("resnet", False), n_in, n_out) != effective_resnet(layer.resnet, n_in, n_out):
        raise ValueError(f"{node.sub('resnet')} = {node.get('resnet')} does not match the network layout")
    layer.w.copy_(torch.as_tensor(w, dtype=torch.float64).to(dtype))
    for name in ("b", "idt"):  # dpgraph builds the same parameters as deepmd-kit: no neutral fill-ins
        val = var.get(name)
        mine = getattr(layer, name)
        if val is None:
            if mine is not None:
                raise ValueError(f"{var.sub(name)} is absent but dpgraph's layer ({n_in} -> {n_out}) has one: "
                                 "the network configs differ")
            continue
        if mine is None:
            raise ValueError(f"{var.sub(name)} is set but dpgraph's layer ({n_in} -> {n_out}) has no {name}")
        arr = as_array(val, var.sub(name)).reshape(-1)
        if arr.shape[0] != mine.shape[0]:
            raise ValueError(f"{var.sub(name)} has {arr.shape[0]} entries, expected {mine.shape[0]}")
        mine.copy_(torch.as_tensor(arr, dtype=torch.float64).to(dtype))
    var.done()
    node.done()


def load_network(seq, node: Node, dtype: torch.dtype, classes=("EmbeddingNetwork", "FittingNetwork")) -> None:
    node.expect("@class", classes, f"expected one of {classes}")
    node.version(2)
    node.ignore("in_dim", "out_dim", "neuron", "activation_function", "resnet_dt", "bias", "bias_out", "precision")
    layers = node.req("layers")
    if len(layers) != len(seq):
        raise ValueError(f"{node.sub('layers')} has {len(layers)} layers, expected {len(seq)}")
    for i, (layer, data) in enumerate(zip(seq, layers)):
        load_layer(layer, Node(data, f"{node.sub('layers')}[{i}]"), dtype)
    node.done()


def load_collection(seq, node: Node, dtype: torch.dtype, ntypes: int) -> None:
    """A ``NetworkCollection`` with one shared network (``ndim == 0``)."""
    node.expect("@class", ("NetworkCollection",), "expected a network collection")
    node.version(1)
    node.expect("ndim", (0,), "type-specific networks (ndim > 0) are not supported; DPA1 shares one network")
    node.ignore("ntypes", "network_type")
    nets = node.req("networks")
    if len(nets) != 1:
        raise ValueError(f"{node.sub('networks')} holds {len(nets)} networks, expected 1")
    load_network(seq, Node(nets[0], f"{node.sub('networks')}[0]"), dtype)
    node.done()


@torch.no_grad()
def load_layer_norm(ln, node: Node, eps: float, dtype: torch.dtype) -> None:
    node.expect("@class", ("LayerNorm", None), "expected a LayerNorm")
    node.version(1)
    node.ignore("trainable", "precision")
    if node.has("eps") and float(node.get("eps")) != eps:
        raise ValueError(f"{node.sub('eps')} = {node.get('eps')} differs from the descriptor's ln_eps {eps}")
    var = node.node("@variables")
    for name, mine in (("w", ln.weight), ("b", ln.bias)):
        val = var.get(name)
        arr = np.ones(mine.shape[0]) if val is None and name == "w" else (
            np.zeros(mine.shape[0]) if val is None else as_array(val, var.sub(name)))
        if arr.shape != tuple(mine.shape):
            raise ValueError(f"{var.sub(name)} has shape {arr.shape}, expected {tuple(mine.shape)}")
        mine.copy_(torch.as_tensor(arr, dtype=torch.float64).to(dtype))
    var.done()
    node.done()


def load_attention(desc, node: Node, cfg: dict, dtype: torch.dtype) -> None:
    node.expect("@class", ("NeighborGatedAttention", None), "expected the attention block")
    node.version(1)
    node.expect("layer_num", (cfg["attn_layer"],), "must equal the descriptor's attn_layer")
    node.expect("do_mask", (False, None), "attention masks are not supported")
    node.ignore("nnei", "embed_dim", "hidden_dim", "dotr", "scaling_factor", "normalize", "temperature",
                "trainable_ln", "ln_eps", "precision", "smooth", "trainable", "seed")
    layers = node.req("attention_layers")
    if len(layers) != len(desc.attention_layers):
        raise ValueError(f"{node.sub('attention_layers')} has {len(layers)} layers, expected {len(desc.attention_layers)}")
    smooth = desc.smooth
    for i, (mine, data) in enumerate(zip(desc.attention_layers, layers)):
        lay = Node(data, f"{node.sub('attention_layers')}[{i}]")
        lay.ignore("@class", "@version", "nnei", "embed_dim", "hidden_dim", "dotr", "do_mask", "scaling_factor",
                   "normalize", "temperature", "trainable_ln", "ln_eps", "precision", "smooth", "trainable", "seed")
        gal = lay.node("attention_layer")
        gal.ignore("@class", "@version", "nnei", "embed_dim", "hidden_dim", "precision", "trainable", "seed")
        gal.expect("num_heads", (1, None), "DPA1 attention is single-head")
        gal.expect("do_mask", (False, None), "attention masks are not supported")
        gal.expect("bias", (True, None), "dpgraph's attention projections carry biases")
        for key, want in (("dotr", cfg["attn_dotr"]), ("normalize", cfg["normalize"]), ("smooth", smooth),
                          ("scaling_factor", cfg["scaling_factor"]), ("temperature", cfg["temperature"])):
            if gal.has(key) and gal.get(key) != want:
                raise ValueError(f"{gal.sub(key)} = {gal.get(key)!r} differs from the descriptor's {want!r}; "
                                 "per-layer attention flags are not supported")
        load_layer(mine.attention_layer.in_proj, gal.node("in_proj"), dtype)
        load_layer(mine.attention_layer.out_proj, gal.node("out_proj"), dtype)
        gal.done()
        load_layer_norm(mine.attn_layer_norm, lay.node("attn_layer_norm"), cfg["ln_eps"], dtype)
        lay.done()
    node.done()


@torch.no_grad()
def load_type_embedding(desc, node: Node, cfg: dict, dtype: torch.dtype) -> None:
    node.expect("@class", ("TypeEmbedNet", None), "expected the type embedding")
    node.version(2)
    node.expect("padding", (True, None), "DPA1 type embeddings carry a zero padding row")
    node.expect("use_econf_tebd", (False, None), "electronic-configuration type embeddings are not supported")
    node.expect("neuron", ([cfg["tebd_dim"]], None), "the type embedding must be one linear layer of tebd_dim")
    node.ignore("ntypes", "resnet_dt", "precision", "activation_function", "trainable", "use_tebd_bias",
                "type_map", "seed")
    load_network(desc.type_embedding.embedding_net, node.node("embedding"), dtype)
    node.done()


def slot_uniform(arr: np.ndarray, path: str, ntypes: int) -> np.ndarray:
    """(ntypes, nnei, 4) per-slot statistics -> (ntypes, 4); refuse slot-dependent ones."""
    a = np.asarray(arr, dtype=np.float64)
    if a.ndim == 2:
        a = a[:, None, :]
    if a.ndim != 3 or a.shape[0] != ntypes or a.shape[2] != 4:
        raise ValueError(f"{path} has shape {a.shape}, expected ({ntypes}, nnei, 4)")
    if not np.array_equal(a, np.broadcast_to(a[:, :1, :], a.shape)):
        raise ValueError(
            f"{path} differs between neighbor slots; deepmd-kit computes one value per type and "
            "component (slot-uniform), and dpgraph's graph form (like deepmd-kit's graph route) "
            "has no neighbor slots"
        )
    return a[:, 0, :]
