"""The training loop: data, statistics, Adam + exponential decay, validation,
lcurve log, progress bar, checkpoints and bit-for-bit resume.

A training checkpoint is a normal dpgraph checkpoint (``load_model`` and
``dpgraph export``/``test`` read it) with an extra ``training`` entry::

    {"format": "dpgraph-checkpoint", "version": 2, "config": model config,
     "state_dict": model weights and statistics,
     "training": {"step": completed steps, "input": normalized input (JSON),
                  "optimizer": Adam state, "sampler": batch RNG state (JSON),
                  "val_sampler": validation RNG state (JSON) or ""}}

Resuming restores all of it, so the next step is the same, bit for bit, as in
an uninterrupted run (given the same torch build and thread count).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from ..atomic_io import atomic_copy, atomic_write
from ..models import build_model
from ..models.build import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_weights, read_checkpoint
from .batch import BatchSampler
from .config import normalize_input
from .data import LabelledSystem, load_systems
from .lcurve import LCurveWriter, lcurve_columns
from .loss import EnergyForceLoss
from .lr import ExpDecayLR
from .progress import ProgressBar
from .stats import data_statistics


def split_validation(systems: list[LabelledSystem], fraction: float):
    """Hold out the last ``ceil(fraction * nf)`` frames of each system (at least one frame stays)."""
    trn, val = [], []
    for s in systems:
        k = min(math.ceil(fraction * s.n_frames), s.n_frames - 1)
        trn.append(s.subset(np.arange(s.n_frames - k)))
        if k > 0:
            val.append(s.subset(np.arange(s.n_frames - k, s.n_frames)))
    return trn, val


class Trainer:
    """Build everything from a training input dict (see :mod:`dpgraph.train.config`).

    ``restart``: a training checkpoint to continue from (its model, optimizer,
    step and sampler states; the input's ``numb_steps`` etc. still apply).
    ``log``: a callable for one-line messages (default ``print``).
    """

    def __init__(self, doc: dict, restart: str | Path | None = None, log=print, progress_stream=None):
        self.input = normalize_input(doc)
        self.log = log
        self.progress_stream = progress_stream
        tr = self.input["training"]
        ckpt = None
        if restart is not None:
            ckpt = load_training_checkpoint(restart)
            self.model = build_model(ckpt["config"])
            load_weights(self.model, ckpt, restart)
        else:
            self.model = build_model(self.input["model"])
        type_map, rcut, dtype = self.model.type_map, self.model.rcut, self.model.dtype

        t0 = time.perf_counter()
        systems = load_systems(tr["training_data"]["systems"], type_map)
        val_systems: list[LabelledSystem] = []
        vd = tr["validation_data"]
        if vd is not None:
            val_systems = load_systems(vd["systems"], type_map)
        elif tr["validation_fraction"] > 0:
            systems, val_systems = split_validation(systems, float(tr["validation_fraction"]))
        self.systems, self.val_systems = systems, val_systems
        nf = sum(s.n_frames for s in systems)
        self.log(f"training data: {len(systems)} system(s), {nf} frames; validation: "
                 f"{sum(s.n_frames for s in val_systems)} frames ({time.perf_counter() - t0:.1f} s)")

        self.lr = ExpDecayLR(tr["numb_steps"], **self.input["learning_rate"])
        self.loss = EnergyForceLoss(self.lr.start_lr, **self.input["loss"])
        self.with_force = self.loss.uses("f") and any(s.force is not None for s in systems)
        self.with_virial = self.loss.uses("v") and any(s.virial is not None for s in systems)
        seed = int(tr["seed"])
        self.sampler = BatchSampler(systems, tr["training_data"]["batch_size"], rcut, dtype, seed)
        self.val_sampler = (BatchSampler(val_systems, vd["batch_size"] if vd else 1, rcut, dtype, seed + 1)
                            if val_systems else None)
        self.val_nbatch = int(vd["numb_btch"]) if vd else 1
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr.start_lr)
        self.step = 0
        if ckpt is not None:
            t = ckpt["training"]
            self.step = int(t["step"])
            self.optimizer.load_state_dict(t["optimizer"])
            self.sampler.set_state(t["sampler"])
            if self.val_sampler is not None and t.get("val_sampler"):
                self.val_sampler.set_state(t["val_sampler"])
            self.log(f"restarted from {restart} at step {self.step}")
        else:
            t0 = time.perf_counter()
            st = data_statistics(self.model, systems, tr["data_stat_nframes"])
            bias = ", ".join(f"{n} {b:.4f}" for n, b in zip(type_map, st["energy_bias"]))
            self.log(f"data statistics: energy bias per type (eV) {bias} ({time.perf_counter() - t0:.1f} s)")

    # ------------------------------------------------------------------ steps
    def train_step(self) -> dict[str, float]:
        """One optimizer step on a fresh batch; returns the batch metrics (before the update) and lr."""
        lr = self.lr(self.step)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        batch = self.sampler.next()
        self.model.train()
        pred = self.model.evaluate(batch.graph, create_graph=True)
        loss, metrics = self.loss(pred, batch, lr)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        metrics["lr"] = lr
        return metrics

    def validate(self) -> dict[str, float] | None:
        """Metrics on ``numb_btch`` validation batches (root mean of the squared per-batch values)."""
        if self.val_sampler is None:
            return None
        acc: dict[str, float] = {}
        lr = self.lr(self.step)
        for _ in range(self.val_nbatch):
            batch = self.val_sampler.next()
            pred = self.model.evaluate(batch.graph, create_graph=False)
            with torch.no_grad():
                _, m = self.loss({k: v.detach() for k, v in pred.items()}, batch, lr)
            for k, v in m.items():
                acc[k] = acc.get(k, 0.0) + v * v / self.val_nbatch
        return {k: math.sqrt(v) for k, v in acc.items()}

    # ------------------------------------------------------------ checkpoint
    def checkpoint_dict(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": self.model.config,
            "state_dict": self.model.state_dict(),
            "training": {
                "step": self.step, "input": json.dumps(self.input), "optimizer": self.optimizer.state_dict(),
                "sampler": self.sampler.state(),
                "val_sampler": self.val_sampler.state() if self.val_sampler is not None else "",
            },
        }

    def save(self) -> Path:
        """Write ``<save_ckpt>-<step>.pt`` and copy it to ``<save_ckpt>.pt``; keep the newest ``max_ckpt_keep``."""
        tr = self.input["training"]
        base = Path(tr["save_ckpt"])
        base.parent.mkdir(parents=True, exist_ok=True)
        path = base.parent / f"{base.name}-{self.step}.pt"
        with atomic_write(path, check=read_checkpoint, what="checkpoint") as tmp:  # never a half-written file
            torch.save(self.checkpoint_dict(), str(tmp))
        atomic_copy(path, base.parent / f"{base.name}.pt", what="checkpoint")
        old = sorted(base.parent.glob(f"{base.name}-*.pt"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
        for p in old[: -tr["max_ckpt_keep"]]:
            p.unlink()
        return path

    # ------------------------------------------------------------------- run
    def run(self) -> dict:
        """Train to ``numb_steps`` (or ``max_time``); returns a summary dict."""
        tr = self.input["training"]
        total, disp, save_freq = tr["numb_steps"], tr["disp_freq"], tr["save_freq"]
        max_time = tr["max_time"]
        cols = lcurve_columns(self.with_force, self.with_virial)
        writer = LCurveWriter(tr["disp_file"], cols, append=self.step > 0)
        bar = ProgressBar(total, start=self.step, stream=self.progress_stream)
        t0 = time.perf_counter()
        start_step = self.step
        last_val, last_saved = None, None
        stopped_early = False
        try:
            while self.step < total:
                m = self.train_step()
                info = f"loss {m['rmse']:.3e} e {m['rmse_e']:.2e}" + (
                    f" f {m['rmse_f']:.2e}" if "rmse_f" in m else "") + f" lr {m['lr']:.1e}"
                timeout = max_time is not None and time.perf_counter() - t0 > float(max_time)
                if self.step % disp == 0 or self.step == total or timeout:
                    last_val = self.validate()
                    writer.write(self.step, m, last_val, m["lr"])
                    if last_val is not None and "rmse_f" in last_val:
                        info += f" | val f {last_val['rmse_f']:.2e}"
                bar.update(self.step, info, force=self.step % disp == 0)
                if self.step % save_freq == 0 or self.step == total or timeout:
                    last_saved = self.save()
                if timeout:
                    stopped_early = self.step < total
                    break
        finally:
            bar.close()
            writer.close()
        wall = time.perf_counter() - t0
        if last_saved is None or int(last_saved.stem.rsplit("-", 1)[1]) != self.step:
            last_saved = self.save()
        if stopped_early:
            self.log(f"stopped at step {self.step} of {total}: max_time {max_time} s reached")
        self.log(f"trained {self.step - start_step} steps in {wall:.1f} s; checkpoint {last_saved} (copied to "
                 f"{last_saved.parent / (Path(tr['save_ckpt']).name + '.pt')})")
        latest = last_saved.parent / f"{Path(tr['save_ckpt']).name}.pt"
        return {"steps": self.step - start_step, "step": self.step, "wall_s": wall, "validation": last_val,
                "checkpoint": str(latest)}


def load_training_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    ckpt = read_checkpoint(path)
    if "training" not in ckpt:
        raise ValueError(f"{path} has no training state (a model-only checkpoint); it cannot be resumed")
    if int(ckpt.get("version", 1)) < CHECKPOINT_VERSION:
        raise ValueError(f"{path} is a version-{ckpt.get('version', 1)} training checkpoint: its optimizer state "
                         "belongs to dpgraph's older network (a trainable bias_atom_e) and cannot be resumed; "
                         "start a new training")
    return ckpt


def train(doc: dict, restart=None, log=print, progress_stream=None) -> dict:
    """Build a :class:`Trainer` and run it."""
    return Trainer(doc, restart=restart, log=log, progress_stream=progress_stream).run()
