"""Training of dpgraph energy models (deepmd-kit style inputs; see ``config``).

Modules: ``data`` (labelled systems), ``batch`` (frames -> one NeighborGraph),
``loss`` (energy/force/virial with start/limit prefactors), ``lr``
(exponential decay), ``stats`` (descriptor and energy-bias statistics),
``lcurve`` (log), ``progress`` (progress bar), ``trainer`` (loop, checkpoint,
resume), ``evaluate`` (``dpgraph test`` errors and plots).
"""

from .batch import Batch, BatchSampler, make_batch
from .config import normalize_input, read_input
from .data import LabelledSystem, load_systems
from .evaluate import error_table, parity_plot, plot_lcurve, predict
from .lcurve import read_lcurve
from .loss import EnergyForceLoss
from .lr import ExpDecayLR
from .trainer import Trainer, train

__all__ = ["Batch", "BatchSampler", "make_batch", "normalize_input", "read_input", "LabelledSystem",
           "load_systems", "error_table", "parity_plot", "plot_lcurve", "predict", "read_lcurve",
           "EnergyForceLoss", "ExpDecayLR", "Trainer", "train"]
