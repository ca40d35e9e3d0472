"""Quality-control preview: thumbnail with tissue contour, pen tint and patch grid."""

from __future__ import annotations

import numpy as np

from pathgan.errors import ShapeError
from pathgan.tissue._color import as_rgb01

__all__ = ["render_preview"]

_CONTOUR_RGB = np.array([0, 200, 0], dtype=np.float32)
_PEN_RGB = np.array([255, 0, 255], dtype=np.float32)
_BOX_RGB = np.array([0, 64, 255], dtype=np.uint8)
_PEN_ALPHA = 0.5


def render_preview(
    rgb: np.ndarray,
    tissue: np.ndarray,
    pen: np.ndarray,
    boxes_xyxy: np.ndarray,
) -> np.ndarray:
    """Draw detection results on a thumbnail.

    Parameters
    ----------
    rgb : (H, W, 3) uint8 RGB (RGBA and grey are accepted and converted).
    tissue : (H, W) bool tissue mask; its boundary is drawn in green.
    pen : (H, W) bool pen mask; tinted magenta at 50 % opacity.
    boxes_xyxy : (N, 4) patch boxes (x0, y0, x1, y1) in thumbnail pixels, x1/y1 exclusive;
        drawn as blue outlines, clipped to the image.

    Returns
    -------
    (H, W, 3) uint8 RGB; the input is not modified.
    """
    arr = np.asarray(rgb)
    tissue = np.asarray(tissue, dtype=bool)
    pen = np.asarray(pen, dtype=bool)
    shape = arr.shape[:2]
    if tissue.shape != shape or pen.shape != shape:
        raise ShapeError(f"masks {tissue.shape}, {pen.shape} must match the image {shape}")
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[-1] == 3:
        # uint8 RGB (a thumbnail): pixels that are neither ink nor contour stay as they are, so only
        # the ink pixels go through the float blend (the same arithmetic as below).
        img = arr.copy()
        if pen.any():
            ink = arr[pen].astype(np.float32) / np.float32(255.0) * np.float32(255.0)
            img[pen] = np.clip(np.rint((1 - _PEN_ALPHA) * ink + _PEN_ALPHA * _PEN_RGB), 0, 255).astype(np.uint8)
        img[_inner_boundary(tissue)] = _CONTOUR_RGB.astype(np.uint8)
    else:
        rgb01, _ = as_rgb01(arr)
        out = rgb01 * np.float32(255.0)
        out[pen] = (1 - _PEN_ALPHA) * out[pen] + _PEN_ALPHA * _PEN_RGB
        out[_inner_boundary(tissue)] = _CONTOUR_RGB
        img = np.clip(np.rint(out), 0, 255).astype(np.uint8)

    boxes = np.rint(np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)).astype(np.int64)
    h, w = shape
    for x0, y0, x1, y1 in boxes:
        # Exclusive (x1, y1) -> last pixel x1 - 1, y1 - 1; boxes off the image are skipped.
        xa, xb = max(x0, 0), min(x1, w)
        ya, yb = max(y0, 0), min(y1, h)
        if xa >= xb or ya >= yb:
            continue
        for y in (y0, y1 - 1):
            if 0 <= y < h:
                img[y, xa:xb] = _BOX_RGB
        for x in (x0, x1 - 1):
            if 0 <= x < w:
                img[ya:yb, x] = _BOX_RGB
    return img


def _inner_boundary(mask: np.ndarray) -> np.ndarray:
    """``skimage.segmentation.find_boundaries(mask, mode="inner")`` of a boolean mask: mask pixels
    with a 4-neighbour outside the mask (the image edge itself is no boundary)."""
    m = np.asarray(mask, dtype=bool)
    outside = np.zeros(m.shape, dtype=bool)
    if m.ndim != 2 or m.size == 0:
        return outside
    off = ~m
    outside[1:] |= off[:-1]
    outside[:-1] |= off[1:]
    outside[:, 1:] |= off[:, :-1]
    outside[:, :-1] |= off[:, 1:]
    return outside & m
