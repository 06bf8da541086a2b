"""Energy models."""

from .build import build_model, load_model, save_checkpoint
from .energy import OUTPUTS, EnergyModel
from .fitting import EnergyFitting
from .stats import compute_descriptor_stats, compute_energy_bias

__all__ = [
    "OUTPUTS",
    "EnergyModel",
    "EnergyFitting",
    "build_model",
    "load_model",
    "save_checkpoint",
    "compute_descriptor_stats",
    "compute_energy_bias",
]
