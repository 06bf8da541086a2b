"""Energy/force/virial loss with deepmd-kit's ``ener`` loss semantics.

Prefactors move linearly in the learning rate from ``start_pref_*`` (at
``start_lr``) to ``limit_pref_*`` (as lr -> 0)::

    pref(lr) = limit_pref + (start_pref - limit_pref) * lr / start_lr

With ``nf`` frames of ``natoms`` atoms (``dE``, ``dF``, ``dW`` = prediction - label)::

    loss = pref_e * mean_f(dE_f^2 / natoms_f)        (eV^2 / atom; deepmd-kit's atom_norm * l2)
         + pref_f * mean(dF^2)                        over all 3 N components (eV/Å)^2
         + pref_v * mean_f(mean_9(dW^2) / natoms_f)   (eV^2 / atom)

Reported metrics (deepmd-kit's lcurve): ``rmse = sqrt(loss)``,
``rmse_e = sqrt(mean_f((dE_f / natoms_f)^2))`` eV/atom, ``rmse_f`` eV/Å,
``rmse_v = sqrt(mean_f(mean_9(dW^2) / natoms_f^2))`` eV/atom. A term whose
labels are missing from the batch is left out.
"""

from __future__ import annotations

import torch

from .batch import Batch


class EnergyForceLoss:
    def __init__(self, start_lr: float, start_pref_e: float = 0.02, limit_pref_e: float = 1.0,
                 start_pref_f: float = 1000.0, limit_pref_f: float = 1.0, start_pref_v: float = 0.0,
                 limit_pref_v: float = 0.0, type: str = "ener", **unused):
        if type != "ener":
            raise ValueError(f"loss.type {type!r} is not supported; use 'ener'")
        if unused:
            raise ValueError(f"loss: unsupported keys {sorted(unused)}")
        self.start_lr = float(start_lr)
        self.pref = {"e": (float(start_pref_e), float(limit_pref_e)), "f": (float(start_pref_f), float(limit_pref_f)),
                     "v": (float(start_pref_v), float(limit_pref_v))}
        if all(s == 0 and lim == 0 for s, lim in self.pref.values()):
            raise ValueError("loss: every prefactor is zero; set start_pref_e/limit_pref_e or the force ones")

    def prefactors(self, lr: float) -> dict[str, float]:
        c = lr / self.start_lr
        return {k: lim + (s - lim) * c for k, (s, lim) in self.pref.items()}

    def uses(self, key: str) -> bool:
        s, lim = self.pref[key]
        return s != 0 or lim != 0

    def __call__(self, pred: dict[str, torch.Tensor], batch: Batch, lr: float) -> tuple[torch.Tensor, dict[str, float]]:
        """(scalar loss with grad, metrics dict of floats: rmse, rmse_e, rmse_f[, rmse_v])."""
        p = self.prefactors(lr)
        n = batch.natoms
        de = pred["energy"] - batch.energy
        loss = p["e"] * (de.square() / n).mean()
        m = {"rmse_e": float((de.detach() / n).square().mean().sqrt())}
        if batch.force is not None and self.uses("f"):
            df2 = (pred["force"] - batch.force).square().mean()
            loss = loss + p["f"] * df2
            m["rmse_f"] = float(df2.detach().sqrt())
        if batch.virial is not None and self.uses("v"):
            dv2 = (pred["virial"] - batch.virial).square().mean(1)
            loss = loss + p["v"] * (dv2 / n).mean()
            m["rmse_v"] = float((dv2.detach() / n.square()).mean().sqrt())
        m["rmse"] = float(loss.detach().clamp_min(0).sqrt())
        return loss, m

    def needs_forces(self) -> bool:
        return self.uses("f") or self.uses("v")
