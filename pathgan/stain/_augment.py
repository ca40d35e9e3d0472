"""Stain augmentation in each image's own stain basis (Macenko or Vahadane, rather than the fixed
Ruifrok-Johnston vectors of HED jitter)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, overload

import numpy as np

from pathgan.stain import _numpy_ops as npo
from pathgan.stain._hed import check_sigmas, numpy_rng
from pathgan.stain._inputs import as_numpy_batch, is_tensor
from pathgan.stain._normalisers import Macenko, Vahadane

if TYPE_CHECKING:
    import torch
    from torch import Tensor

__all__ = ["stain_jitter"]


@overload
def stain_jitter(images: np.ndarray, sigma: float, *, shift_sigma: float | None = None,
                 generator: np.random.Generator | int | None = None,
                 method: Macenko | Vahadane | None = None) -> np.ndarray: ...
@overload
def stain_jitter(images: Tensor, sigma: float, *, shift_sigma: float | None = None,
                 generator: torch.Generator | None = None,
                 method: Macenko | Vahadane | None = None) -> Tensor: ...
def stain_jitter(images: Any, sigma: float, *, shift_sigma: float | None = None, generator: Any = None,
                 method: Macenko | Vahadane | None = None) -> Any:
    """Perturb each image's H and E concentrations in its own estimated stain basis.

    With the image's stain matrix ``S`` (``method``, default :class:`Macenko`; the default H&E when an
    image has too little tissue) and non-negative concentrations ``c``, each pixel's optical
    density ``od`` becomes ``od + S (c' - c)`` where ``c' = max(c * (1 + a) + b * m, 0)``, with
    ``a ~ U[-sigma, sigma]``, ``b ~ U[-shift_sigma, shift_sigma]`` per image and stain and ``m`` the
    image's 99th-percentile concentration. The part of ``od`` outside the stain plane is kept, so
    ``sigma = shift_sigma = 0`` returns the input.

    Parameters
    ----------
    images : numpy uint8 ``(H, W, 3)`` / ``(N, H, W, 3)`` or torch ``[3, H, W]`` / ``[N, 3, H, W]``
        (uint8, or float in [0, 1]).
    sigma, shift_sigma : relative strengths (``shift_sigma`` defaults to ``sigma``).
    generator : numpy Generator or int seed for arrays, ``torch.Generator`` for tensors.

    Returns
    -------
    Same type, shape, dtype and device as ``images``.

    Raises
    ------
    StainError : invalid images or a negative sigma.
    """
    shift = check_sigmas(sigma, shift_sigma)
    est = method if method is not None else Macenko()
    if is_tensor(images):
        return _jitter_torch(images, sigma, shift, generator, est)
    return _jitter_numpy(images, sigma, shift, generator, est)


def _jitter_torch(images: Tensor, sigma: float, shift: float, generator: torch.Generator | None,
                  est: Macenko | Vahadane) -> Tensor:
    import torch

    from pathgan.stain import _torch_ops as T

    rgb, like = T.to_rgb255(images, "images")
    stains, c, max_c, _ = est._torch_decompose(rgb)
    device = generator.device if generator is not None else rgb.device
    u = (2.0 * torch.rand(2, rgb.shape[0], 2, generator=generator, device=device) - 1.0).to(rgb.device, rgb.dtype)
    new_c = (c * (1.0 + sigma * u[0])[:, None] + (shift * u[1] * max_c)[:, None]).clamp_min(0.0)
    od = T.optical_density(rgb) + (new_c - c) @ stains.transpose(1, 2)
    return T.from_rgb255(T.od_to_rgb255(od, rgb.shape), like)


def _jitter_numpy(images: np.ndarray, sigma: float, shift: float, generator: Any,
                  est: Macenko | Vahadane) -> np.ndarray:
    batch, single = as_numpy_batch(images, "images")
    u = 2.0 * numpy_rng(generator).random((2, len(batch), 2)) - 1.0
    out = np.empty_like(batch)
    for i, pixels in enumerate(batch.reshape(len(batch), -1, 3)):
        stains, c, (max_c, _) = est._numpy_decompose(pixels)
        new_c = np.maximum(c * (1.0 + sigma * u[0, i])[:, None] + (shift * u[1, i] * max_c)[:, None], 0.0)
        od = npo.optical_density(pixels) + stains.astype(np.float32) @ (new_c.astype(np.float32) - c)
        out[i] = npo.od_to_rgb(od.T).reshape(batch.shape[1:])
    return out[0] if single else out
