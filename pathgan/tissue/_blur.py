"""Sharpness (focus) score of patches: variance of the Laplacian."""

from __future__ import annotations

import numpy as np

__all__ = ["blur_score", "blur_scores"]

# ITU-R BT.601 luma weights, the usual RGB -> grey conversion.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32) / np.float32(255.0)
# Patches are scored in chunks so the float32 intermediates stay cache- and RAM-friendly.
_CHUNK = 32


def blur_scores(patches: np.ndarray) -> np.ndarray:
    """Sharpness of each patch in a batch; higher is sharper.

    The grey image (luma, in [0, 1]) is averaged over 2x2 blocks, which suppresses JPEG and
    sensor noise and quarters the work, then the 4-neighbour Laplacian is taken by array
    slicing and its variance over the valid interior is the score.

    Parameters
    ----------
    patches : (N, H, W, 3) uint8 RGB, or (N, H, W) grey uint8 / float in [0, 1].

    Returns
    -------
    (N,) float32; 0.0 for patches smaller than 6x6 pixels.
    """
    arr = np.asarray(patches)
    if arr.ndim not in (3, 4) or (arr.ndim == 4 and arr.shape[-1] not in (3, 4)):
        raise ValueError(f"expected (N, H, W) or (N, H, W, 3) patches, got shape {arr.shape}")
    n = arr.shape[0]
    out = np.zeros(n, dtype=np.float32)
    h, w = arr.shape[1] // 2 * 2, arr.shape[2] // 2 * 2
    if h < 6 or w < 6:
        return out
    for start in range(0, n, _CHUNK):
        grey = _grey(arr[start : start + _CHUNK, :h, :w])
        small = 0.25 * (
            grey[:, 0::2, 0::2] + grey[:, 1::2, 0::2] + grey[:, 0::2, 1::2] + grey[:, 1::2, 1::2]
        )
        centre = small[:, 1:-1, 1:-1]
        lap = (
            small[:, :-2, 1:-1]
            + small[:, 2:, 1:-1]
            + small[:, 1:-1, :-2]
            + small[:, 1:-1, 2:]
            - 4.0 * centre
        )
        out[start : start + lap.shape[0]] = lap.reshape(lap.shape[0], -1).var(axis=1)
    return out


def blur_score(gray_or_rgb: np.ndarray) -> float:
    """Sharpness of one image; see :func:`blur_scores`.

    Parameters
    ----------
    gray_or_rgb : (H, W) grey (uint8, or float in [0, 1]) or (H, W, 3) uint8 RGB.

    Returns
    -------
    Variance of the Laplacian of the 2x-downsampled grey image in [0, 1] units.
    """
    arr = np.asarray(gray_or_rgb)
    return float(blur_scores(arr[None])[0])


def _grey(batch: np.ndarray) -> np.ndarray:
    if batch.ndim == 4:
        # A matmul over the channel axis is the fastest luma on uint8 input.
        return batch[..., :3].astype(np.float32) @ _LUMA
    if batch.dtype == np.uint8:
        return batch.astype(np.float32) / np.float32(255.0)
    return batch.astype(np.float32)
