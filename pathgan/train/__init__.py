"""Training: pure losses and regularisers, augmentations, the generator EMA, the loop and checkpoints."""

from __future__ import annotations

from pathgan.train._checkpoint import load_checkpoint, save_checkpoint
from pathgan.train._load import held_out_dataset, load_generator
from pathgan.train._loop import Trainer, TrainingDivergedError, select_device
from pathgan.train.augment import (
    cutout,
    diff_augment,
    dihedral,
    invert_dihedral,
    random_dihedral,
    translate,
)
from pathgan.train.ema import EMA
from pathgan.train.losses import (
    d_loss,
    g_loss,
    gradient_penalty,
    is_finite,
    orthogonal_regularizer,
)

__all__ = [
    "EMA",
    "Trainer",
    "TrainingDivergedError",
    "cutout",
    "d_loss",
    "diff_augment",
    "dihedral",
    "g_loss",
    "gradient_penalty",
    "held_out_dataset",
    "invert_dihedral",
    "is_finite",
    "load_checkpoint",
    "load_generator",
    "orthogonal_regularizer",
    "random_dihedral",
    "save_checkpoint",
    "select_device",
    "translate",
]
