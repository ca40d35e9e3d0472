"""HED colour deconvolution and HED jitter on torch tensors (moved here from ``pathgan.train.augment``).

Images are ``[N, 3, H, W]``: float RGB in [0, 1] (the training pipeline's convention) or uint8
0-255. Randomness comes only from the ``torch.Generator`` passed in (drawn on that generator's
device), one draw per image and stain, so a seeded run is reproducible.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from pathgan.errors import StainError
from pathgan.stain._hed import HED_FROM_RGB, RGB_FROM_HED, check_sigmas

__all__ = ["adjust_hed", "hed_jitter", "hed_to_rgb", "rgb_to_hed"]

_RGB_FROM_HED = torch.tensor(RGB_FROM_HED, dtype=torch.float64)
_HED_FROM_RGB = torch.tensor(HED_FROM_RGB, dtype=torch.float64)
# Pixels are floored at 1e-6 before the log (black would be infinite density); skimage divides
# the density by -ln(1e-6) so that this darkest value maps to 1.
_FLOOR = 1e-6
_OD_SCALE = -math.log(_FLOOR)


def _check_images(x: Tensor, name: str) -> None:
    if x.ndim != 4 or x.shape[1] != 3:
        raise StainError(f"{name} needs RGB images [N, 3, H, W], got shape {list(x.shape)}")
    if not (x.is_floating_point() or x.dtype == torch.uint8):
        raise StainError(f"{name} needs float RGB in [0, 1] or uint8 0-255, got dtype {x.dtype}")


def _mix(x: Tensor, matrix: Tensor) -> Tensor:
    """Per-pixel row vector times ``matrix``: ``out[n, s] = sum_c x[n, c] * matrix[c, s]``."""
    return torch.einsum("nchw,cs->nshw", x, matrix.to(x.device, x.dtype))


def _optical_density(x: Tensor) -> Tensor:
    return -torch.log(x.clamp_min(_FLOOR))


def _as_unit(x: Tensor, name: str) -> Tensor:
    """float32/float64 RGB in [0, 1] (uint8 is divided by 255; logs are poor in half precision)."""
    _check_images(x, name)
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    return x if x.dtype == torch.float64 else x.float()


def _like(rgb: Tensor, x: Tensor) -> Tensor:
    rgb = rgb.clamp(0.0, 1.0)
    return (rgb * 255.0).round().to(torch.uint8) if x.dtype == torch.uint8 else rgb.to(x.dtype)


def rgb_to_hed(x: Tensor) -> Tensor:
    """RGB ``[N, 3, H, W]`` in [0, 1] -> stain concentrations ``[N, 3, H, W]`` (H, E, DAB).

    Same convention and values as ``skimage.color.rgb2hed`` (density normalised by
    ``-ln(1e-6)``, negative concentrations clipped to 0), computed in float32 or better.
    """
    _check_images(x, "rgb_to_hed")
    work = x if x.dtype == torch.float64 else x.float()
    return _mix(_optical_density(work) / _OD_SCALE, _HED_FROM_RGB).clamp_min(0.0).to(x.dtype)


def hed_to_rgb(hed: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_hed` (as ``skimage.color.hed2rgb``), clipped to [0, 1]."""
    _check_images(hed, "hed_to_rgb")
    work = hed if hed.dtype == torch.float64 else hed.float()
    return torch.exp(-_mix(work * _OD_SCALE, _RGB_FROM_HED)).clamp(0.0, 1.0).to(hed.dtype)


def adjust_hed(x: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    """Each image's H, E, DAB concentrations ``s`` become ``s * scale + shift``.

    Parameters
    ----------
    x : ``[N, 3, H, W]`` RGB, float in [0, 1] or uint8.
    scale, shift : ``[N, 3]`` (or ``[3]``) per image and stain; ``shift`` in natural optical-density
        units (a fully stained pixel is about 1). Negative concentrations are not clipped, so
        ``scale = 1, shift = 0`` returns the input (up to the 1e-6 floor).

    Returns
    -------
    ``[N, 3, H, W]``, dtype of ``x``, clipped to [0, 1] (or 0-255).
    """
    work = _as_unit(x, "adjust_hed")
    stains = _mix(_optical_density(work), _HED_FROM_RGB)  # [N, 3, H, W]
    scale = torch.as_tensor(scale, dtype=work.dtype, device=work.device).expand(x.shape[0], 3)
    shift = torch.as_tensor(shift, dtype=work.dtype, device=work.device).expand(x.shape[0], 3)
    stains = stains * scale[:, :, None, None] + shift[:, :, None, None]
    return _like(torch.exp(-_mix(stains, _RGB_FROM_HED)), x)


def hed_jitter(x: Tensor, sigma: float, *, shift_sigma: float | None = None,
               generator: torch.Generator | None = None) -> Tensor:
    """Random stain augmentation in H&E-DAB space (Tellez et al. 2018, "HED jitter").

    Each image's stain concentrations ``s`` become ``s * (1 + a) + b`` with ``a ~ U[-sigma, sigma]``
    and ``b ~ U[-shift_sigma, shift_sigma]`` (``shift_sigma`` defaults to ``sigma``) drawn per image
    and per stain; see :func:`adjust_hed`. ``sigma = 0`` returns the input.

    Parameters
    ----------
    x : ``[N, 3, H, W]`` RGB images, float in [0, 1] or uint8.
    sigma : jitter strength (0.05 is "light"; 0 = identity).
    generator : source of ``a`` and ``b``.

    Returns
    -------
    ``[N, 3, H, W]``, same dtype as ``x``.

    Raises
    ------
    StainError (a ValueError) : ``x`` is not ``[N, 3, H, W]`` or a sigma is negative.
    """
    _check_images(x, "hed_jitter")
    shift_sigma = check_sigmas(sigma, shift_sigma)
    n = x.shape[0]
    device = generator.device if generator is not None else x.device
    u = torch.rand(2, n, 3, generator=generator, device=device).to(x.device, torch.float64)
    u = 2.0 * u - 1.0
    return adjust_hed(x, 1.0 + sigma * u[0], shift_sigma * u[1])
