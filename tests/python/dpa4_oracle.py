"""deepmd-kit DPA4 models for the parity tests (a test helper; deepmd-kit is the oracle).

:func:`random_dpa4` builds a deepmd-kit DPA4 energy model with deepmd-kit's
own code and randomizes every learnable array (a fresh DPA4 has exactly zero
forces because several output layers start at zero), including the output
statistics.
"""

from __future__ import annotations

import copy

import numpy as np

import deepmd_oracle

_FIXED_SUFFIXES = ("expand_index", "balance_weight", "kernel_compact_index", "kernel_dense_index", "m0_idx",
                   "pos_indices", "neg_indices", "version_tensor")


def small_config(precision: str = "float64", **desc) -> dict:
    """Parity-fixture DPA4 (channels 16, lmax 2, 2 blocks, rcut 4 Å) on deepmd-kit's defaults otherwise."""
    d = {"type": "dpa4", "sel": 60, "rcut": 4.0, "channels": 16, "lmax": 2, "n_blocks": 2, "n_radial": 8,
         "precision": precision, "seed": 1}
    d.update(desc)
    return {"type_map": ["O", "H"], "descriptor": d,
            "fitting_net": {"type": "dpa4_ener", "neuron": [32], "precision": precision, "seed": 2}}


def _perturb(var: dict, rng, skip=()) -> None:
    for key, val in list(var.items()):
        if not isinstance(val, np.ndarray) or not np.issubdtype(val.dtype, np.floating) or val.size == 0:
            continue
        if key.endswith(_FIXED_SUFFIXES) or key.startswith(("wigner_calc.",)) or key in skip:
            continue
        if key.endswith("adam_freqs"):
            var[key] = (val * (1.0 + 0.05 * rng.standard_normal(val.shape))).astype(val.dtype)
            continue
        scale = max(float(np.std(val)), 0.3 / np.sqrt(max(val.shape[0], 1)))
        var[key] = (val + 0.5 * scale * rng.standard_normal(val.shape)).astype(val.dtype)


def random_dpa4(config: dict, seed: int = 0) -> dict:
    """Serialized tree of a randomized deepmd-kit DPA4 energy model."""
    get_model, _, _ = deepmd_oracle._deepmd()
    tree = get_model(copy.deepcopy(config)).serialize()
    rng = np.random.default_rng(seed)
    _perturb(tree["descriptor"]["@variables"], rng)
    for net in tree["fitting"]["nets"]["networks"]:
        _perturb(net["@variables"], rng)
    fv = tree["fitting"]["@variables"]
    fv["bias_atom_e"] = rng.normal(0.0, 1.0, fv["bias_atom_e"].shape).astype(fv["bias_atom_e"].dtype)
    mv = tree["@variables"]
    mv["out_bias"] = rng.normal(-3.0, 1.0, mv["out_bias"].shape).astype(mv["out_bias"].dtype)
    return tree


def compiled_config(precision: str = "float64") -> dict:
    """The DPA4 fixture compiled to .pt2 (python, C++ and LAMMPS tests share it through the compile
    cache): the parity fixture with one interaction block and rcut 3.5 Å, receptive field 7 Å."""
    return small_config(precision, n_blocks=1, rcut=3.5)


def compiled_tree() -> dict:
    return random_dpa4(compiled_config(), seed=5)
