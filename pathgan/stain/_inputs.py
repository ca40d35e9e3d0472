"""Input checks shared by every stain function: what an image batch may be, and the one error."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from pathgan.errors import StainError

__all__ = ["ALLOWED", "as_numpy_batch", "is_tensor"]

ALLOWED = ("a numpy uint8 array (H, W, 3) or (N, H, W, 3), or a torch tensor [3, H, W] or "
           "[N, 3, H, W] (uint8 0-255, or float in [0, 1])")


def is_tensor(x: object) -> bool:
    """True for a ``torch.Tensor``; never imports torch (a numpy-only caller stays light)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def as_numpy_batch(images: Any, name: str) -> tuple[np.ndarray, bool]:
    """``(N, H, W, 3)`` uint8 view of ``images`` and whether it was a single ``(H, W, 3)`` image.

    Raises
    ------
    StainError : not a uint8 array of that shape, or empty.
    """
    if not isinstance(images, np.ndarray):
        raise StainError(f"{name}: got {type(images).__name__}; expected {ALLOWED}")
    if images.dtype != np.uint8:
        raise StainError(f"{name}: got a numpy array of dtype {images.dtype}; expected uint8 (0-255) "
                         "- convert floats in [0, 1] with (x * 255).round().astype(np.uint8)")
    if images.ndim not in (3, 4) or images.shape[-1] != 3:
        raise StainError(f"{name}: got a numpy array of shape {images.shape}; expected (H, W, 3) or "
                         "(N, H, W, 3) RGB (drop an alpha channel first)")
    if images.size == 0:
        raise StainError(f"{name}: got an empty array of shape {images.shape}; expected at least one pixel")
    single = images.ndim == 3
    return (images[None] if single else images), single
