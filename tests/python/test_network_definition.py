"""A fresh dpgraph network has deepmd-kit's parameters, and old checkpoints are handled.

deepmd-kit 3.2.0 (pt backend) is the reference: its fitting and descriptor
networks are built from the same config and their parameter layout compared
layer by layer (``idt`` only where a skip connection exists, ``bias_atom_e`` a
fixed buffer). Version-1 dpgraph checkpoints (``idt`` on every ``resnet_dt``
layer, a trainable ``bias_atom_e``) load where that is exact and are refused
with a message otherwise.
"""

from __future__ import annotations

import pytest
import torch

from dpgraph.models import build_model, load_model, save_checkpoint
from dpgraph.models.fitting import EnergyFitting
from dpgraph.train.trainer import load_training_checkpoint

from deepmd_oracle import _deepmd

CONFIG = {
    "type_map": ["O", "H"],
    "descriptor": {"type": "se_atten", "rcut": 4.0, "rcut_smth": 0.5, "sel": 20, "neuron": [4, 8, 16],
                   "axis_neuron": 4, "tebd_dim": 4, "attn": 8, "attn_layer": 1, "resnet_dt": True,
                   "seed": 3},
    "fitting_net": {"neuron": [12, 12, 24], "resnet_dt": True, "seed": 3},
}


def _deepmd_layers(net: dict) -> list[tuple[tuple[int, int], bool, bool]]:
    """(w shape, has b, has idt) of each layer of a serialized deepmd-kit network."""
    out = []
    for layer in net["layers"]:
        var = layer["@variables"]
        out.append((tuple(var["w"].shape), var.get("b") is not None, var.get("idt") is not None))
    return out


def _dpgraph_layers(seq) -> list[tuple[tuple[int, int], bool, bool]]:
    return [(tuple(layer.w.shape), layer.b is not None, layer.idt is not None) for layer in seq]


@pytest.mark.parametrize("resnet_dt", [True, False])
def test_fitting_layers_match_deepmd(resnet_dt):
    _deepmd()
    from deepmd.pt.model.task.ener import EnergyFittingNet

    ref = EnergyFittingNet(2, 20, neuron=[12, 12, 24], resnet_dt=resnet_dt, mixed_types=True).serialize()
    mine = EnergyFitting(2, 20, neuron=[12, 12, 24], resnet_dt=resnet_dt)
    assert _dpgraph_layers(mine.net) == _deepmd_layers(ref["nets"]["networks"][0])
    # 20 -> 12 has no skip, so no idt; 12 -> 12 and 12 -> 24 have one each
    assert [layer.idt is not None for layer in mine.net] == [False, resnet_dt, resnet_dt, False]


def test_descriptor_embedding_layers_match_deepmd():
    _deepmd()
    from deepmd.pt.model.descriptor.dpa1 import DescrptDPA1

    d = CONFIG["descriptor"]
    ref = DescrptDPA1(d["rcut"], d["rcut_smth"], d["sel"], 2, neuron=d["neuron"], axis_neuron=4, tebd_dim=4,
                      attn=8, attn_layer=1, resnet_dt=True).serialize()
    mine = build_model(CONFIG).descriptor
    assert _dpgraph_layers(mine.embeddings) == _deepmd_layers(ref["embeddings"]["networks"][0])


def test_bias_atom_e_is_a_fixed_buffer():
    model = build_model(CONFIG)
    names = {n for n, _ in model.named_parameters()}
    assert "fitting.bias_atom_e" not in names
    assert "fitting.bias_atom_e" in model.state_dict()
    assert not model.fitting.bias_atom_e.requires_grad


def _v1_checkpoint(tmp_path, stray_idt: bool, training: bool = False):
    """A checkpoint as dpgraph version 1 wrote it: idt on the first fitting layer, bias_atom_e a weight."""
    model = build_model(CONFIG)
    path = tmp_path / "model.pt"
    save_checkpoint(model, path)
    ckpt = torch.load(path, weights_only=True)
    ckpt["version"] = 1
    if stray_idt:
        ckpt["state_dict"]["fitting.net.0.idt"] = torch.full((12,), 0.1, dtype=torch.float64)
    if training:
        ckpt["training"] = {"step": 1}
    torch.save(ckpt, path)
    return model, path


def test_version1_checkpoint_without_stray_idt_loads_exactly(tmp_path):
    model, path = _v1_checkpoint(tmp_path, stray_idt=False)
    loaded = load_model(path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


def test_version1_checkpoint_with_stray_idt_is_refused(tmp_path):
    _, path = _v1_checkpoint(tmp_path, stray_idt=True)
    with pytest.raises(ValueError, match=r"version-1 checkpoint.*fitting\.net\.0\.idt.*retrain"):
        load_model(path)


def test_version1_training_checkpoint_cannot_be_resumed(tmp_path):
    _, path = _v1_checkpoint(tmp_path, stray_idt=False, training=True)
    with pytest.raises(ValueError, match="cannot be resumed; start a new training"):
        load_training_checkpoint(path)


def test_newer_checkpoint_is_refused(tmp_path):
    model, path = _v1_checkpoint(tmp_path, stray_idt=False)
    ckpt = torch.load(path, weights_only=True)
    ckpt["version"] = 99
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match="upgrade dpgraph"):
        load_model(path)
