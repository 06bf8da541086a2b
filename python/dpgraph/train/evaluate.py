"""``dpgraph test``: energy / force / virial errors of a model on labelled data.

Per system and over all systems (frames pooled):

* ``rmse_e``, ``mae_e``: energy error per atom, eV/atom (``(E - E_ref) / natoms``)
* ``rmse_f``, ``mae_f``: force component error, eV/Å
* ``rmse_v``, ``mae_v``: virial component error per atom, eV/atom (when labels exist)
"""

from __future__ import annotations

import numpy as np

from .batch import iterate_frames
from .data import LabelledSystem


def predict(model, systems: list[LabelledSystem], batch_size: int = 1):
    """Per system: dict of predicted and reference arrays (energy (nf,), force (nf*natoms, 3), virial (nf, 9))."""
    out = {s.name: {"natoms": s.natoms, "e": [], "e_ref": [], "f": [], "f_ref": [], "v": [], "v_ref": []}
           for s in systems}
    for s, b in iterate_frames(systems, batch_size, model.rcut, model.dtype):
        p = model.evaluate(b.graph)
        rec = out[s.name]
        rec["e"].append(p["energy"].detach().double().numpy())
        rec["e_ref"].append(b.energy.double().numpy())
        if b.force is not None:
            rec["f"].append(p["force"].detach().double().numpy())
            rec["f_ref"].append(b.force.double().numpy())
        if b.virial is not None:
            rec["v"].append(p["virial"].detach().double().numpy())
            rec["v_ref"].append(b.virial.double().numpy())
    for rec in out.values():
        for k in ("e", "e_ref", "f", "f_ref", "v", "v_ref"):
            rec[k] = np.concatenate(rec[k]) if rec[k] else None
    return out


def error_table(pred: dict) -> dict[str, dict[str, float]]:
    """RMSE/MAE per system and ``"all"`` (see module docstring)."""
    def stats(d: dict, prefix: str, x):
        if x is not None and x.size:
            d[f"rmse_{prefix}"] = float(np.sqrt(np.mean(x ** 2)))
            d[f"mae_{prefix}"] = float(np.mean(np.abs(x)))

    table, pool = {}, {"e": [], "f": [], "v": []}
    nframes = 0
    for name, r in pred.items():
        de = (r["e"] - r["e_ref"]) / r["natoms"]
        df = None if r["f"] is None else (r["f"] - r["f_ref"]).ravel()
        dv = None if r["v"] is None else ((r["v"] - r["v_ref"]) / r["natoms"]).ravel()
        row = {"frames": int(de.size)}
        stats(row, "e", de)
        stats(row, "f", df)
        stats(row, "v", dv)
        table[name] = row
        nframes += de.size
        for k, x in (("e", de), ("f", df), ("v", dv)):
            if x is not None:
                pool[k].append(x)
    row = {"frames": nframes}
    for k, xs in pool.items():
        stats(row, k, np.concatenate(xs) if xs else None)
    table["all"] = row
    return table


def parity_plot(pred: dict, path: str) -> bool:
    """Energy-per-atom and force parity plots in one PNG; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    have_f = any(r["f"] is not None for r in pred.values())
    fig, axes = plt.subplots(1, 2 if have_f else 1, figsize=(10 if have_f else 5, 4.5), squeeze=False)
    e = np.concatenate([r["e"] / r["natoms"] for r in pred.values()])
    e_ref = np.concatenate([r["e_ref"] / r["natoms"] for r in pred.values()])
    panels = [(axes[0, 0], e_ref, e, "energy (eV/atom)")]
    if have_f:
        f = np.concatenate([r["f"].ravel() for r in pred.values() if r["f"] is not None])
        f_ref = np.concatenate([r["f_ref"].ravel() for r in pred.values() if r["f"] is not None])
        panels.append((axes[0, 1], f_ref, f, "force component (eV/Å)"))
    for ax, ref, val, label in panels:
        ax.scatter(ref, val, s=2, alpha=0.4)
        lo, hi = float(min(ref.min(), val.min())), float(max(ref.max(), val.max()))
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        rmse = float(np.sqrt(np.mean((val - ref) ** 2)))
        ax.set_xlabel(f"reference {label}")
        ax.set_ylabel(f"model {label}")
        ax.set_title(f"RMSE {rmse:.3g}")
        ax.ticklabel_format(useOffset=False)
        ax.locator_params(nbins=5)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def plot_lcurve(lcurve_path: str, out: str) -> bool:
    """Log-scale learning curves (rmse_e, rmse_f, lr) of an lcurve.out; False without matplotlib."""
    from .lcurve import read_lcurve

    cols = read_lcurve(lcurve_path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    keys = [k for k in ("rmse_e", "rmse_f", "rmse_v") if f"{k}_trn" in cols]
    fig, axes = plt.subplots(1, len(keys) + 1, figsize=(4.5 * (len(keys) + 1), 4), squeeze=False)
    step = cols["step"]
    for ax, k in zip(axes[0], keys):
        for split, style in (("trn", "-"), ("val", "-")):
            y = cols.get(f"{k}_{split}")
            if y is not None and np.isfinite(y).any():
                ax.loglog(step, y, style, label=split, alpha=0.5 if split == "trn" else 1.0)
        unit = "eV/Å" if k == "rmse_f" else "eV/atom"
        ax.set_title(f"{k} ({unit})")
        ax.set_xlabel("step")
        ax.legend()
    ax = axes[0, -1]
    ax.semilogy(step, cols["lr"])
    ax.set_title("learning rate")
    ax.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return True
