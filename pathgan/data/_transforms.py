"""Pure array/tensor operations on patch batches: crops, dihedral transforms, conversion, resize."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["center_offset", "dihedral", "resize", "to_float_nchw", "to_uint8_nhwc"]


def dihedral(patch: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 symmetries of the square: rotate by ``k % 4`` quarter turns, then mirror if ``k >= 4``.

    Parameters
    ----------
    patch : array (H, W, C); a view is returned where possible.
    k : transform number in 0..7 (0 = identity).
    """
    out = np.rot90(patch, k % 4, axes=(0, 1))
    return out[:, ::-1] if k >= 4 else out


def center_offset(patch_px: int, image_px: int) -> int:
    """Top-left offset (pixels) of the centred ``image_px`` crop of a ``patch_px`` patch."""
    return (patch_px - image_px) // 2


def to_float_nchw(batch: np.ndarray) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> contiguous float32 [B, 3, H, W] in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)
    return t.to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)


def to_uint8_nhwc(images: torch.Tensor) -> np.ndarray:
    """float [B, 3, H, W] in [0, 1] (clamped) -> uint8 (B, H, W, 3) on the CPU: the inverse of ``to_float_nchw``."""
    return np.asarray(images.clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy())


def resize(images: torch.Tensor, image_px: int) -> torch.Tensor:
    """Antialiased bilinear resize [B, 3, P, P] -> [B, 3, image_px, image_px] (area-like when shrinking)."""
    if images.shape[-1] == image_px and images.shape[-2] == image_px:
        return images
    out = F.interpolate(images, size=(image_px, image_px), mode="bilinear", antialias=True, align_corners=False)
    return out.clamp_(0.0, 1.0)
