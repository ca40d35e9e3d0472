"""Per-image tissue measurements to label latents with: nuclei density, haematoxylin level.

Both use colour deconvolution (Ruifrok & Johnston, ``skimage.color.rgb2hed``) and ignore glass:
pixels whose three channels all exceed ``WHITE_LEVEL`` (215, PathologyGAN's background rule, the
one the patch stores use) count neither as nuclei nor in the denominator.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from skimage.color import rgb2hed

from pathgan.errors import ConfigError, ShapeError
from pathgan.store import WHITE_LEVEL

__all__ = ["NUCLEI_H_THRESHOLD", "mean_haematoxylin", "nuclei_density"]

#: Haematoxylin level (``rgb2hed`` channel 0: optical density over ln(1e6)) above which a pixel
#: counts as nucleus. Fixed, not per-image Otsu: Otsu would split every image into two classes and
#: give each roughly the same fraction. Chosen on the real tiles in ../shared/data/tiles, on the
#: non-background pixels (fraction of pixels above the threshold, categories without pen marks;
#: green ink deconvolves into haematoxylin and is left out):
#:
#: ====================  =====  =====  =====  =====
#: threshold             0.04   0.05   0.07   0.10
#: ====================  =====  =====  =====  =====
#: very-low (1 tile)     0.000  0.000  0.000  0.000
#: low (2 tiles)         0.151  0.105  0.055  0.020
#: medium (4 tiles)      0.262  0.179  0.073  0.017
#: high (2 tiles)        0.402  0.312  0.163  0.031
#: CRC LYM               0.960  0.935  0.864  0.739
#: CRC TUM               0.538  0.416  0.208  0.044
#: CRC STR               0.275  0.197  0.102  0.037
#: CRC ADI               0.084  0.048  0.019  0.003
#: CRC BACK              0.000  0.000  0.000  0.000
#: ====================  =====  =====  =====  =====
#:
#: 0.05 keeps the categories in order with the widest gaps (at 0.10 "low" overtakes "medium"), and
#: on the high-nuclei tile it outlines the nuclei themselves (0.07 marks only their cores; 0.04
#: spills into purple cytoplasm). Nuclear pixels of lymphocytes sit at a median H of 0.155, eosin-
#: only stroma and debris below 0.02 (90th percentile 0.011-0.015).
NUCLEI_H_THRESHOLD = 0.05


def _images(images: Any) -> np.ndarray:
    if hasattr(images, "detach"):
        images = images.detach().cpu()
    arr = np.asarray(images)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.dtype != np.uint8:
        raise ShapeError(
            f"images must be uint8 RGB [N, H, W, 3]; received {arr.dtype} {list(arr.shape)}"
            " (drop an alpha channel with images[..., :3]; wrap one image as images[None])"
        )
    return arr


def _haematoxylin(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(h, tissue)``: H optical density ``[H, W]`` float64 and the non-background mask ``[H, W]``."""
    tissue = ~np.all(image > WHITE_LEVEL, axis=-1)
    return rgb2hed(image)[..., 0], tissue


def nuclei_density(images: Any, *, threshold: float = NUCLEI_H_THRESHOLD) -> np.ndarray:
    """Fraction of tissue pixels that are haematoxylin-dense (nuclei), per image.

    Parameters
    ----------
    images : uint8 RGB ``[N, H, W, 3]``.
    threshold : haematoxylin level (``rgb2hed`` units) counted as nucleus; see
        :data:`NUCLEI_H_THRESHOLD` for how the default was chosen.

    Returns
    -------
    float32 ``[N]`` in ``[0, 1]``; 0.0 for an image with no tissue pixel.

    Raises
    ------
    ShapeError
        ``images`` is not uint8 ``[N, H, W, 3]``.
    ConfigError
        ``threshold`` is not positive.
    """
    arr = _images(images)
    if not threshold > 0:
        raise ConfigError(f"threshold must be a positive haematoxylin level; received {threshold!r}")
    out = np.zeros(len(arr), np.float32)
    for i, image in enumerate(arr):  # one image at a time: rgb2hed makes float64 copies
        h, tissue = _haematoxylin(image)
        n = int(tissue.sum())
        if n:
            out[i] = np.count_nonzero((h > threshold) & tissue) / n
    return out


def mean_haematoxylin(images: Any) -> np.ndarray:
    """Mean haematoxylin optical density (``rgb2hed`` units) over tissue pixels, per image.

    Returns
    -------
    float32 ``[N]``; 0.0 for an image with no tissue pixel.

    Raises
    ------
    ShapeError
        ``images`` is not uint8 ``[N, H, W, 3]``.
    """
    arr = _images(images)
    out = np.zeros(len(arr), np.float32)
    for i, image in enumerate(arr):
        h, tissue = _haematoxylin(image)
        if tissue.any():
            out[i] = h[tissue].mean()
    return out
