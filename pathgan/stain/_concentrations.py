"""Stain concentrations of images for a given stain matrix (colour deconvolution, non-negative)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

import numpy as np

from pathgan.errors import StainError
from pathgan.stain import _numpy_ops as npo
from pathgan.stain._inputs import as_numpy_batch, is_tensor

if TYPE_CHECKING:
    from torch import Tensor

__all__ = ["concentrations"]


def _matrices(stain_matrix: Any, n: int) -> np.ndarray:
    m = np.asarray(stain_matrix.detach().cpu() if is_tensor(stain_matrix) else stain_matrix, dtype=np.float64)
    if m.shape not in ((3, 2), (n, 3, 2)) or not np.isfinite(m).all() or (m < 0).any():
        raise StainError(f"stain_matrix: got shape {m.shape}; expected finite non-negative (3, 2) or "
                         f"({n}, 3, 2) (rows R, G, B; columns H, E)")
    if (np.linalg.norm(m, axis=-2) == 0).any():
        raise StainError("stain_matrix: a stain column is all zero; each column must be a stain direction")
    return np.array(np.broadcast_to(m, (n, 3, 2)))


@overload
def concentrations(images: np.ndarray, stain_matrix: Any) -> np.ndarray: ...
@overload
def concentrations(images: Tensor, stain_matrix: Any) -> Tensor: ...
def concentrations(images: Any, stain_matrix: Any) -> Any:
    """Non-negative H and E concentrations of every pixel (least squares in optical density).

    Parameters
    ----------
    images : numpy uint8 ``(H, W, 3)`` / ``(N, H, W, 3)``, or torch ``[3, H, W]`` / ``[N, 3, H, W]``
        (uint8, or float in [0, 1]).
    stain_matrix : ``(3, 2)`` for all images or ``(N, 3, 2)``, e.g. from ``Macenko().stain_matrix``.

    Returns
    -------
    numpy ``(H, W, 2)`` / ``(N, H, W, 2)`` float32, or torch ``[2, H, W]`` / ``[N, 2, H, W]`` on the
    input's device; channel 0 is H, 1 is E, in natural optical-density units.

    Raises
    ------
    StainError : invalid images or stain matrix.
    """
    if is_tensor(images):
        return _concentrations_torch(images, stain_matrix)
    batch, single = as_numpy_batch(images, "images")
    stains = _matrices(stain_matrix, len(batch))
    pixels = batch.reshape(len(batch), -1, 3)
    out = np.stack([npo.nnls2(npo.optical_density(p), s).T for p, s in zip(pixels, stains, strict=True)])
    out = out.reshape(*batch.shape[:3], 2)
    return out[0] if single else out


def _concentrations_torch(images: Tensor, stain_matrix: Any) -> Tensor:
    import torch

    from pathgan.stain import _torch_ops as T

    rgb, like = T.to_rgb255(images, "images")
    n, _, h, w = rgb.shape
    stains = torch.as_tensor(_matrices(stain_matrix, n), dtype=rgb.dtype, device=rgb.device)
    c = T.nnls2(T.optical_density(rgb), stains).reshape(n, h, w, 2).permute(0, 3, 1, 2)
    return c[0] if like["single"] else c
