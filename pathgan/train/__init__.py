"""Training: pure losses and regularisers, augmentations, and the generator EMA."""

from __future__ import annotations

from pathgan.train.augment import (
    cutout,
    diff_augment,
    dihedral,
    hed_jitter,
    hed_to_rgb,
    invert_dihedral,
    random_dihedral,
    rgb_to_hed,
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
    "cutout",
    "d_loss",
    "diff_augment",
    "dihedral",
    "g_loss",
    "gradient_penalty",
    "hed_jitter",
    "hed_to_rgb",
    "invert_dihedral",
    "is_finite",
    "orthogonal_regularizer",
    "random_dihedral",
    "rgb_to_hed",
    "translate",
]
