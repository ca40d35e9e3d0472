"""Stain normalisation and stain augmentation for H&E images (pure array/tensor code, no file I/O).

* :class:`Macenko`, :class:`Vahadane`, :class:`Reinhard`: ``normaliser = Macenko().fit(target)``,
  then ``normaliser.transform(images)`` on numpy uint8 ``(H, W, 3)`` / ``(N, H, W, 3)`` or torch
  ``[N, 3, H, W]`` (uint8, or float in [0, 1]; same type, dtype and device back). ``params()`` and
  :func:`normaliser_from_params` carry a fitted normaliser as a few JSON numbers.
* :func:`concentrations`: non-negative H and E concentrations for a given stain matrix.
* :func:`hed_jitter` / :func:`adjust_hed` (Tellez et al. 2018) and :func:`stain_jitter` (in each
  image's own stain basis): augmentation, reproducible with a seed or ``torch.Generator``.

Importing this package does not import torch; tensor inputs load the torch kernels on first use.
"""

from __future__ import annotations

from pathgan.stain._augment import stain_jitter
from pathgan.stain._concentrations import concentrations
from pathgan.stain._hed import adjust_hed, hed_jitter
from pathgan.stain._normalisers import (
    METHODS,
    LabEstimate,
    LabReference,
    Macenko,
    Method,
    Normaliser,
    Reinhard,
    StainEstimate,
    StainReference,
    Vahadane,
    make_normaliser,
    normaliser_from_params,
)

__all__ = [
    "METHODS",
    "LabEstimate",
    "LabReference",
    "Macenko",
    "Method",
    "Normaliser",
    "Reinhard",
    "StainEstimate",
    "StainReference",
    "Vahadane",
    "adjust_hed",
    "concentrations",
    "hed_jitter",
    "make_normaliser",
    "normaliser_from_params",
    "stain_jitter",
]
