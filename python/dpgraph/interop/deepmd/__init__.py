"""Import deepmd-kit 3.2.0 standard energy models (DPA1 / se_atten / se_atten_v2).

One module per job: ``tree`` (walking the serialized tree), ``config`` (flags ->
dpgraph config), ``weights`` (copying weights), ``dpa1`` (the model family),
``files`` (file readers); DPA4 has its own importer, :mod:`dpgraph.interop.dpa4`.

Entry points:

* :func:`from_serialized` turns deepmd-kit's serialized model tree (what
  ``model.serialize()`` returns in every deepmd-kit backend, the ``model``
  entry of a ``.dp`` file) into a dpgraph :class:`~dpgraph.models.EnergyModel`:
  a dpgraph config is built from the tree's flags (so the model saves, reloads
  and exports like any other) and every weight is copied in.
* :func:`load_deepmd` reads a file: ``.dp`` (HDF5, see :func:`read_dp`),
  ``.yaml``/``.yml`` (deepmd-kit's text form of the same tree), or a PyTorch
  ``.pth`` (frozen TorchScript) / ``.pt`` (training checkpoint). The last two
  need deepmd-kit itself (``pip install deepmd-kit==3.2.0``) and are converted
  in a child process (see :func:`serialize_torch_file`).

What is read: descriptor ``dpa1``/``se_atten``/``se_atten_v2`` with every flag
(attention layers, smooth, dotr, normalize, temperature, scaling factor,
concat/strip, type_one_side, exclude_types, env_protection, set_davg_zero,
LayerNorm options, type-embedding bias, concat_output_tebd, activation,
precision) and ``davg``/``dstd``; fitting ``ener`` (weights, ``bias_atom_e``);
model ``type_map``, ``out_bias``, ``atom_exclude_types``,
``pair_exclude_types``. ``out_std`` does not enter an energy model's
prediction (deepmd-kit adds only ``out_bias``) and is only shape-checked.

Refused, with a :class:`ValueError` that names the field: other model types
(ZBL, linear, spin, DPA2/3/4, ...), compressed descriptors, ``lmax != 1``
moment bases, ``use_exp_switch``, ``use_econf_tebd``, ``attn_mask``,
multi-head attention, statistics that differ between neighbor slots, frame or
atom parameters, case embeddings, per-type (non-mixed) fitting nets,
``atom_ener``, 16-bit precisions, activations dpgraph lacks (``silu``,
``silut``), and any field this importer does not know (a newer deepmd-kit may
have added meaning to it).

Semantics (``semantics=``):

* ``"carry-all"`` (default) equals deepmd-kit's graph route
  (``call_graph`` / ``forward_common_lower_graph``, the ``pt_expt`` default):
  every neighbor inside ``rcut`` counts, ``sel`` is only a normalization.
* ``"dense"`` equals deepmd-kit's dense route (the ``pt``/``dpmodel``
  ``call`` on a sel-padded neighbor list, what ``.pth`` models and LAMMPS run):
  the nearest ``sum(sel)`` neighbors are kept, each empty slot adds
  ``exp(-20)`` to the smooth attention's softmax denominator, and with a
  nonzero ``davg`` (``set_davg_zero: false``) each empty slot also
  contributes a constant row ``(0 - davg)/dstd`` to the descriptor, embedded
  with the type of the frame's first atom (see "set_davg_zero" below).

set_davg_zero (measured against deepmd-kit 3.2.0 itself): deepmd-kit's
``EnvMat`` subtracts ``davg`` *after* zeroing the environment rows of empty
neighbor slots and nothing re-masks them, so on the dense route every empty
slot of a center of type ``t`` feeds ``R = (0 - davg[t]) / dstd[t]`` through
the embedding net (with the type embedding of extended atom 0, i.e. the
frame's first atom), through each attention layer as a fully masked query
(``G <- LayerNorm(G + out_proj(0))``) and into ``X = G^T R``. The graph route
leaves these rows out. Because the descriptor is quadratic in ``X``, the
constant rows change forces as well as energies. Measured with a random
full-size DPA1 (sel 120, ``davg`` from the data, ``s``-component 0.058 / 0.055
for O / H) on a 192-atom frame of deepmd-kit's water example data: dense minus
graph energy -2.54 eV (-13 meV/atom), forces differ by up to 0.023 eV/A (30 %
of the largest force of that model); moving an H atom to the front of the
frame changes the dense energy by -17.5 meV (the graph route is invariant).
Continuity at ``rcut`` (smooth attention, small random model, 1e-7 A steps):
with concat type embedding the dense energy jumps (2.6e-4 eV) when a neighbor
whose type differs from the first atom's crosses ``rcut`` and is continuous
otherwise, strip is continuous, and the graph route jumps at every crossing
(2e-4 eV), since a neighbor at ``rcut`` still carries ``-davg/dstd``.
dpgraph's ``"dense"`` semantics reproduces all of it (192 atoms: 1.7e-13 eV,
4e-16 eV/A). With ``set_davg_zero: true`` (``davg = 0``)
the rows vanish; dense and graph then differ only by the ``exp(-20)`` softmax
terms and the ``sel`` truncation.
"""

from __future__ import annotations

from .config import DESCRIPTOR_TYPES
from .dpa1 import from_serialized
from .files import load_deepmd, read_dp, serialize_torch_file

__all__ = ["DESCRIPTOR_TYPES", "from_serialized", "load_deepmd", "read_dp", "serialize_torch_file"]
