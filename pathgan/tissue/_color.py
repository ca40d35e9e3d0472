"""Colour conversions shared by the tissue, pen and blur detectors."""

from __future__ import annotations

from typing import Any

import numpy as np

from pathgan._threads import parallel_map
from pathgan.errors import ShapeError

__all__ = ["HSVImage", "as_rgb01", "hsv01", "hsv_valid"]


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
        raise ShapeError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {arr.shape}")
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

    Hue is a fraction of a turn (0.5 = 180 degrees). Same definition as
    ``skimage.color.rgb2hsv`` (tested against it) but in float32 and in place, 5x faster on a
    gigapixel slide's thumbnail.
    """
    rgb = np.asarray(rgb01, dtype=np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    v = rgb.max(axis=-1)
    delta = v - rgb.min(axis=-1)
    out = np.empty(rgb.shape, np.float32)
    np.divide(delta, v, out=out[..., 1], where=v > 0)
    out[..., 1][v <= 0] = 0.0
    safe = np.where(delta > 0, delta, np.float32(1.0))
    hue = np.where(v == r, (g - b) / safe, np.where(v == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    hue = (hue / 6.0) % 1.0
    hue[delta <= 0] = 0.0
    out[..., 0] = hue
    out[..., 2] = v
    return out


def hsv_valid(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """HSV in [0, 1] (float32, (H, W, 3)) and the validity mask of any image :func:`as_rgb01` takes.

    uint8 RGB(A), the usual thumbnail, goes through Pillow's C conversion (10x faster than
    float HSV; hue is quantised to 1/256 of a turn, 1.4 degrees, finer than any rule uses).
    """
    arr = np.asarray(image)
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[-1] in (3, 4):
        from PIL import Image

        valid = arr[..., 3] > 0 if arr.shape[-1] == 4 else np.ones(arr.shape[:2], dtype=bool)
        rgb = np.ascontiguousarray(arr[..., :3])
        if not valid.all():
            rgb[~valid] = 255
        hsv = np.asarray(Image.fromarray(rgb).convert("HSV"), dtype=np.float32) * np.float32(1 / 255)
        return hsv, valid
    rgb01, valid = as_rgb01(arr)
    return hsv01(rgb01), valid


# uint8 HSV -> float, exactly as hsv_valid scales it.
_U8_TO_UNIT = np.float32(1 / 255)
UNIT_LEVELS = np.arange(256, dtype=np.float32) * _U8_TO_UNIT  # the 256 values a uint8 channel takes


class HSVImage:
    """An image in HSV for the tissue and pen rules, built once per thumbnail.

    uint8 RGB(A), the usual thumbnail, is converted by Pillow and kept as three uint8 planes:
    float channels are made on demand with the exact values :func:`hsv_valid` gives, and
    per-channel colour rules are evaluated through 256-entry lookup tables (Pillow ``point``),
    which gives the same masks as comparing the float channels at a fraction of the cost. Any
    other input goes through the float conversion of :func:`hsv_valid`.

    Attributes
    ----------
    valid : (H, W) bool, False where alpha == 0.
    all_valid : every pixel is valid (no alpha, or alpha > 0 everywhere).
    planes : the uint8 ``(h, s, v)`` planes, or None for non-uint8 input.
    """

    def __init__(self, image: np.ndarray) -> None:
        from PIL import Image

        arr = np.asarray(image)
        self.planes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._bands: tuple[Any, ...] = ()
        self._hsv: np.ndarray | None = None
        if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[-1] in (3, 4):
            valid = arr[..., 3] > 0 if arr.shape[-1] == 4 else np.ones(arr.shape[:2], dtype=bool)
            rgb = np.ascontiguousarray(arr[..., :3])
            if not valid.all():
                rgb[~valid] = 255
            self.planes = _hsv_planes(rgb)
            self._bands = tuple(Image.fromarray(p) for p in self.planes)
        else:
            self._hsv, valid = hsv_valid(arr)
        self.valid = valid
        self.all_valid = bool(valid.all())
        self.shape: tuple[int, int] = valid.shape  # type: ignore[assignment]

    def channel(self, index: int) -> np.ndarray:
        """Channel ``index`` (0 hue, 1 saturation, 2 value) as float32 in [0, 1]."""
        if self.planes is not None:
            out = self.planes[index].astype(np.float32)
            out *= _U8_TO_UNIT
            return out
        assert self._hsv is not None
        return self._hsv[..., index]

    def lut(self, index: int, table: np.ndarray) -> np.ndarray:
        """``table[plane]`` for a uint8 ``table`` of 256 entries (uint8 input only)."""
        return np.asarray(self._bands[index].point(table.astype(np.uint8).tolist()))

    def level_counts(self, index: int) -> np.ndarray:
        """Pixel count of each of the 256 levels of channel ``index`` (uint8 input only)."""
        return np.asarray(self._bands[index].histogram(), dtype=np.int64)

    @property
    def hsv(self) -> np.ndarray:
        """(H, W, 3) float32 HSV in [0, 1] (what :func:`hsv_valid` returns)."""
        if self._hsv is None:
            self._hsv = np.stack([self.channel(i) for i in range(3)], axis=-1)
        return self._hsv


def _hsv_planes(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pillow's uint8 HSV of ``rgb`` as three planes; a large image is converted in two halves on
    two threads (the conversion is per pixel and releases the GIL)."""
    from PIL import Image

    def convert(part: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(band) for band in Image.fromarray(part).convert("HSV").split()]

    h = rgb.shape[0]
    if rgb.shape[0] * rgb.shape[1] < 1 << 20 or h < 2:
        planes = convert(rgb)
    else:
        top, bottom = parallel_map(convert, [rgb[: h // 2], rgb[h // 2 :]])
        planes = [np.concatenate([a, b]) for a, b in zip(top, bottom, strict=True)]
    return planes[0], planes[1], planes[2]
