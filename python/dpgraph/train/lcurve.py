"""``lcurve.out``: deepmd-kit's learning-curve log, and reading it back.

Columns (one header line starting with ``#``)::

    step rmse_val rmse_trn rmse_e_val rmse_e_trn rmse_f_val rmse_f_trn [rmse_v_val rmse_v_trn] lr

``rmse_e``/``rmse_v`` are per atom (eV/atom), ``rmse_f`` in eV/Å, ``rmse`` the
square root of the weighted loss. ``_val`` columns hold ``nan`` when there is
no validation set. The virial columns appear only when the virial is trained.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def lcurve_columns(with_force: bool = True, with_virial: bool = False) -> list[str]:
    keys = ["rmse", "rmse_e"] + (["rmse_f"] if with_force else []) + (["rmse_v"] if with_virial else [])
    return ["step"] + [f"{k}_{s}" for k in keys for s in ("val", "trn")] + ["lr"]


class LCurveWriter:
    def __init__(self, path: str | Path, columns: list[str], append: bool = False):
        self.columns = columns
        self.path = Path(path)
        self.fh = open(self.path, "a" if append else "w")
        if not append or self.path.stat().st_size == 0:
            self.fh.write("#" + "".join(f"{c:>12s}" if i else f"{c:>7s}" for i, c in enumerate(columns)) + "\n")
            self.fh.flush()

    def write(self, step: int, trn: dict, val: dict | None, lr: float) -> None:
        vals = [f"{step:8d}"]
        for c in self.columns[1:-1]:
            key, split = c.rsplit("_", 1)
            src = trn if split == "trn" else (val or {})
            vals.append(f"{src.get(key, float('nan')):12.3e}")
        vals.append(f"{lr:12.1e}")
        self.fh.write("".join(vals) + "\n")
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def read_lcurve(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of an lcurve.out (dpgraph's or deepmd-kit's) by header name."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    lines = path.read_text().splitlines()
    if not lines or not lines[0].startswith("#"):
        raise ValueError(f"{path}: not an lcurve file (no '#' header line)")
    names = lines[0].lstrip("#").split()
    data = np.loadtxt(path, comments="#", ndmin=2)
    if data.size == 0:
        raise ValueError(f"{path}: no data rows yet")
    if data.shape[1] != len(names):
        raise ValueError(f"{path}: header has {len(names)} columns but rows have {data.shape[1]}")
    return {n: data[:, i] for i, n in enumerate(names)}
