"""HED jitter (Tellez et al. 2018): per-image scale and shift of the haematoxylin, eosin and DAB
concentrations of the Ruifrok-Johnston colour deconvolution, on numpy uint8 images or torch tensors.

The torch implementation lives in :mod:`pathgan.stain._hed_torch`; these entry points dispatch on
the input type, so numpy callers never import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

import numpy as np

from pathgan.errors import StainError
from pathgan.stain._inputs import as_numpy_batch, is_tensor

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["HED_FROM_RGB", "RGB_FROM_HED", "adjust_hed", "check_sigmas", "hed_jitter", "numpy_rng"]

# Ruifrok & Johnston (2001) stain vectors, rows = optical density of H, E, DAB in R, G, B, as
# published and used by skimage.color (rgb_from_hed); inverted once in float64.
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
# uint8 -> optical density -ln(max(v / 255, 1e-6)), the torch kernel's convention, as a table.
_OD_LUT = (-np.log(np.maximum(np.arange(256) / 255.0, 1e-6))).astype(np.float32)


def check_sigmas(sigma: float, shift_sigma: float | None) -> float:
    """Validate the jitter strengths; returns ``shift_sigma`` (``sigma`` when None)."""
    shift = sigma if shift_sigma is None else shift_sigma
    if not (sigma >= 0 and shift >= 0):
        raise StainError(f"sigma and shift_sigma must be >= 0, got sigma={sigma}, shift_sigma={shift_sigma}")
    return float(shift)


def numpy_rng(generator: Any) -> np.random.Generator:
    """``np.random.Generator`` from a Generator, an int seed or None (fresh entropy)."""
    if isinstance(generator, np.random.Generator):
        return generator
    if generator is None or isinstance(generator, int | np.integer):
        return np.random.default_rng(generator)
    raise StainError(f"generator for numpy images must be a numpy Generator, an int seed or None, "
                     f"got {type(generator).__name__}")


def _adjust_numpy(images: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    batch, single = as_numpy_batch(images, "images")
    n = len(batch)
    scale = np.broadcast_to(np.asarray(scale, np.float32), (n, 3))[:, None, None, :]
    shift = np.broadcast_to(np.asarray(shift, np.float32), (n, 3))[:, None, None, :]
    stains = _OD_LUT[batch] @ HED_FROM_RGB.astype(np.float32)  # [N, H, W, 3]
    od = (stains * scale + shift) @ RGB_FROM_HED.astype(np.float32)
    out = np.clip(np.rint(255.0 * np.exp(-od)), 0, 255).astype(np.uint8)
    return out[0] if single else out


@overload
def adjust_hed(images: np.ndarray, scale: Any, shift: Any) -> np.ndarray: ...
@overload
def adjust_hed(images: Tensor, scale: Any, shift: Any) -> Tensor: ...
def adjust_hed(images: Any, scale: Any, shift: Any) -> Any:
    """Each image's H, E, DAB concentrations ``s`` become ``s * scale + shift`` (deterministic core of
    :func:`hed_jitter`).

    Parameters
    ----------
    images : numpy uint8 ``(H, W, 3)`` / ``(N, H, W, 3)``, or torch ``[N, 3, H, W]`` (float in
        [0, 1] or uint8).
    scale, shift : ``(N, 3)`` or ``(3,)`` per image and stain (H, E, DAB); ``shift`` in natural
        optical-density units (a fully stained pixel is about 1).

    Returns
    -------
    Same type, shape and dtype as ``images``; ``scale = 1, shift = 0`` returns them unchanged.
    """
    if is_tensor(images):
        from pathgan.stain._hed_torch import adjust_hed as adjust_torch

        return adjust_torch(images, scale, shift)
    return _adjust_numpy(images, scale, shift)


@overload
def hed_jitter(images: np.ndarray, sigma: float, *, shift_sigma: float | None = None,
               generator: np.random.Generator | int | None = None) -> np.ndarray: ...
@overload
def hed_jitter(images: Tensor, sigma: float, *, shift_sigma: float | None = None,
               generator: torch.Generator | None = None) -> Tensor: ...
def hed_jitter(images: Any, sigma: float, *, shift_sigma: float | None = None, generator: Any = None) -> Any:
    """Random stain augmentation in H&E-DAB space (Tellez et al. 2018, "HED jitter").

    Each image's concentrations ``s`` become ``s * (1 + a) + b``, ``a ~ U[-sigma, sigma]`` and
    ``b ~ U[-shift_sigma, shift_sigma]`` (``shift_sigma`` defaults to ``sigma``), drawn per image and
    stain. ``sigma = 0`` (and ``shift_sigma = 0``) returns the input.

    Parameters
    ----------
    images : numpy uint8 ``(H, W, 3)`` / ``(N, H, W, 3)``, or torch ``[N, 3, H, W]`` (float in
        [0, 1] or uint8).
    sigma, shift_sigma : jitter strengths (0.05 is "light").
    generator : numpy: a ``np.random.Generator`` or an int seed; torch: a ``torch.Generator``.
        The same seed gives the same output.

    Raises
    ------
    StainError (a ValueError) : invalid images or a negative sigma.
    """
    if is_tensor(images):
        from pathgan.stain._hed_torch import hed_jitter as jitter_torch

        return jitter_torch(images, sigma, shift_sigma=shift_sigma, generator=generator)
    shift = check_sigmas(sigma, shift_sigma)
    batch, _ = as_numpy_batch(images, "images")
    u = 2.0 * numpy_rng(generator).random((2, len(batch), 3)) - 1.0
    return _adjust_numpy(images, 1.0 + sigma * u[0], shift * u[1])
