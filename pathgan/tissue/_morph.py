"""Binary morphology on thumbnail masks: the same results as ``scipy.ndimage``, several times faster.

scipy's binary erosion visits every structuring-element offset per pixel in a scalar loop, and
``binary_fill_holes`` iterates a dilation until nothing changes; on a gigapixel slide's 3-Mpixel
thumbnail those took ~0.3 s of the plan. Here an erosion is a handful of whole-array ANDs of
shifted views: each row of the (symmetric, convex) structure is a horizontal segment, eroded
once by doubling, then the rows are combined with vertical shifts. Results are identical to
scipy's, border handling included (checked against scipy in tests/unit/test_tissue.py).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["close", "dilate", "erode", "fill_holes", "open_", "open_2x2", "row_half_widths"]

_CROSS = ndi.generate_binary_structure(2, 1)


def row_half_widths(structure: np.ndarray) -> list[int] | None:
    """Half-widths ``w[r]`` of a structure made of centred horizontal segments, one per row, in a
    square of odd side, symmetric top to bottom (``skimage.morphology.disk``, a cross, a square);
    None for any other structure."""
    s = np.asarray(structure, dtype=bool)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] % 2 == 0:
        return None
    c = s.shape[0] // 2
    widths = []
    for row in s:
        n = int(row.sum())
        if n == 0 or n % 2 == 0 or not row[c - n // 2 : c + n // 2 + 1].all():
            return None
        widths.append(n // 2)
    if widths != widths[::-1]:
        return None
    return widths


def _shifted(a: np.ndarray, dy: int, dx: int, fill: bool) -> np.ndarray:
    """``out[y, x] = a[y + dy, x + dx]``, ``fill`` outside ``a``."""
    h, w = a.shape
    out = np.full((h, w), fill, dtype=bool)
    ys, yd = (slice(dy, h), slice(0, h - dy)) if dy >= 0 else (slice(0, h + dy), slice(-dy, h))
    xs, xd = (slice(dx, w), slice(0, w - dx)) if dx >= 0 else (slice(0, w + dx), slice(-dx, w))
    if h - abs(dy) > 0 and w - abs(dx) > 0:
        out[yd, xd] = a[ys, xs]
    return out


def _segment(a: np.ndarray, half: int, fill: bool, combine: np.ufunc) -> np.ndarray:
    """``combine`` over ``a[y, x + d]`` for ``|d| <= half`` (``fill`` outside)."""
    if half == 0:
        return a.copy()
    h, w = a.shape
    padded = np.full((h, w + 2 * half), fill, dtype=bool)
    padded[:, half : half + w] = a
    # run[k][:, x] combines padded[:, x : x + k]; grow k by doubling up to the segment length.
    length = 2 * half + 1
    run, k = padded, 1
    while 2 * k <= length:
        run = combine(run[:, : run.shape[1] - k], run[:, k:])
        k *= 2
    if k < length:
        rest = length - k
        run = combine(run[:, : run.shape[1] - rest], run[:, rest:])
    return np.ascontiguousarray(run[:, :w])


def _by_rows(a: np.ndarray, widths: list[int], fill: bool, combine: np.ufunc) -> np.ndarray:
    c = len(widths) // 2
    segments: dict[int, np.ndarray] = {}
    out: np.ndarray | None = None
    for r, half in enumerate(widths):
        seg = segments.get(half)
        if seg is None:
            seg = segments[half] = _segment(a, half, fill, combine)
        part = _shifted(seg, r - c, 0, fill) if r != c else seg
        out = part.copy() if out is None else combine(out, part, out=out)
    assert out is not None
    return out


def erode(mask: np.ndarray, structure: np.ndarray, border_value: int = 0) -> np.ndarray:
    """``scipy.ndimage.binary_erosion(mask, structure, border_value=border_value)``."""
    m = np.asarray(mask, dtype=bool)
    widths = row_half_widths(structure)
    if widths is None or m.ndim != 2:
        return ndi.binary_erosion(m, structure=structure, border_value=border_value)
    return _by_rows(m, widths, bool(border_value), np.logical_and)


def dilate(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_dilation(mask, structure)`` (nothing outside the image)."""
    m = np.asarray(mask, dtype=bool)
    widths = row_half_widths(structure)
    if widths is None or m.ndim != 2:
        return ndi.binary_dilation(m, structure=structure)
    return _by_rows(m, widths, False, np.logical_or)


def open_(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_opening(mask, structure)``."""
    return dilate(erode(mask, structure), structure)


def close(mask: np.ndarray, structure: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_closing(mask, structure, border_value=0)``: outside counts as False,
    so the erosion also clears pixels within the structure's reach of the border."""
    return erode(dilate(mask, structure), structure, border_value=0)


def open_2x2(mask: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_opening(mask, structure=np.ones((2, 2), bool))``: the union of the
    2x2 blocks that lie entirely in ``mask``."""
    m = np.asarray(mask, dtype=bool)
    h, w = m.shape
    out = np.zeros((h, w), dtype=bool)
    if h < 2 or w < 2:
        return out
    block = m[:-1, :-1] & m[1:, :-1] & m[:-1, 1:] & m[1:, 1:]  # block[y, x]: 2x2 at top-left (y, x)
    out[:-1, :-1] |= block
    out[1:, :-1] |= block
    out[:-1, 1:] |= block
    out[1:, 1:] |= block
    return out


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.binary_fill_holes(mask)``: background not 4-connected to the border
    becomes foreground. One labelling instead of scipy's dilation to convergence."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2 or m.size == 0:
        return ndi.binary_fill_holes(m)
    labels, n = ndi.label(~m, structure=_CROSS)
    if n == 0:
        return m.copy()
    outside = np.zeros(n + 1, dtype=bool)
    for edge in (labels[0], labels[-1], labels[:, 0], labels[:, -1]):
        outside[edge] = True
    outside[0] = True  # label 0 is the foreground itself
    return ~outside[labels] | m
