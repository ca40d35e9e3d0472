"""Colour conversions shared by the tissue, pen and blur detectors."""

from __future__ import annotations

import numpy as np
from skimage.color import rgb2hsv

__all__ = ["as_rgb01", "hsv01"]


def as_rgb01(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Normalise an image to float32 RGB in [0, 1] plus a validity mask.

    Parameters
    ----------
    image : (H, W, 3) or (H, W, 4) RGB(A), or (H, W) grey; uint8 (0-255), uint16
        (0-65535), bool or float (assumed already in [0, 1]).

    Returns
    -------
    rgb : (H, W, 3) float32 in [0, 1]; pixels with alpha == 0 are set to white so that
        every later rule sees them as empty glass.
    valid : (H, W) bool, False where alpha == 0.
    """
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        scaled = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        scaled = arr.astype(np.float32) / 65535.0
    else:
        scaled = np.clip(arr.astype(np.float32), 0.0, 1.0)
    valid = np.ones(arr.shape[:2], dtype=bool)
    if scaled.shape[-1] == 4:
        # Transparent pixels lie outside the scanned area (e.g. tiles at the slide edge).
        valid = scaled[..., 3] > 0
        scaled = scaled[..., :3]
    elif scaled.shape[-1] == 1:
        scaled = np.repeat(scaled, 3, axis=-1)
    rgb = np.where(valid[..., None], scaled, np.float32(1.0)).astype(np.float32, copy=False)
    return rgb, valid


def hsv01(rgb01: np.ndarray) -> np.ndarray:
    """(H, W, 3) float RGB in [0, 1] -> (H, W, 3) float32 HSV, every channel in [0, 1].

    Hue is a fraction of a turn (0.5 = 180 degrees).
    """
    return rgb2hsv(rgb01).astype(np.float32, copy=False)
