"""Patch grids in level-0 pixels at an exact physical resolution. Pure geometry, no I/O."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["PatchGeometry", "grid_coords", "level_boxes", "locality_order", "plan_geometry", "shard_ranges"]


@dataclass(frozen=True, kw_only=True)
class PatchGeometry:
    """Where a patch comes from and how it is resampled.

    Attributes
    ----------
    patch_px, stride_px : output patch size and stride in pixels at ``target_mpp``.
    target_mpp : requested microns per pixel.
    level : pyramid level the pixels are read from (coarsest with MPP <= target).
    level_downsample : level-0 pixels per level pixel ``(x, y)``.
    decode_scale : extra libjpeg DCT downscale (1, 2, 4 or 8) applied while decoding.
    footprint0 : level-0 pixels ``(width, height)`` one patch covers (generally fractional).
    stride0 : level-0 pixels ``(x, y)`` between patch origins (fractional).
    effective_mpp : microns per output pixel actually produced ``(x, y)``.
    """

    patch_px: int
    stride_px: int
    target_mpp: float
    level: int
    level_downsample: tuple[float, float]
    decode_scale: int
    footprint0: tuple[float, float]
    stride0: tuple[float, float]
    effective_mpp: tuple[float, float]

    @property
    def source_px(self) -> tuple[float, float]:
        """Pixels ``(width, height)`` one patch covers in the decoded (level, scale) frame."""
        return (
            self.footprint0[0] / (self.level_downsample[0] * self.decode_scale),
            self.footprint0[1] / (self.level_downsample[1] * self.decode_scale),
        )


def plan_geometry(
    *,
    mpp0: tuple[float, float],
    level: int,
    level_downsample: tuple[float, float],
    target_mpp: float,
    patch_px: int,
    stride_px: int,
    scale_allowed: Callable[[int], bool] = lambda s: s == 1,
) -> PatchGeometry:
    """Geometry for patches of ``patch_px`` at ``target_mpp`` read from ``level``.

    The decode scale is the largest of 8, 4, 2 that ``scale_allowed`` accepts and that still leaves at
    least ``patch_px`` decoded pixels per patch, so the final resampling never enlarges.
    """
    fx, fy = patch_px * target_mpp / mpp0[0], patch_px * target_mpp / mpp0[1]
    sx, sy = stride_px * target_mpp / mpp0[0], stride_px * target_mpp / mpp0[1]
    level_px = min(fx / level_downsample[0], fy / level_downsample[1])
    scale = 1
    for s in (8, 4, 2):
        # 1e-6 absorbs float noise in vendor MPPs so an exact 2x (0.25 -> 0.5) qualifies.
        if level_px / s >= patch_px * (1 - 1e-6) and scale_allowed(s):
            scale = s
            break
    eff = (fx * mpp0[0] / patch_px, fy * mpp0[1] / patch_px)
    return PatchGeometry(
        patch_px=patch_px,
        stride_px=stride_px,
        target_mpp=target_mpp,
        level=level,
        level_downsample=level_downsample,
        decode_scale=scale,
        footprint0=(fx, fy),
        stride0=(sx, sy),
        effective_mpp=eff,
    )


def grid_coords(dimensions_wh: tuple[int, int], footprint0: tuple[float, float], stride0: tuple[float, float]) -> np.ndarray:
    """Origins ``int64 [N, 2]`` (x, y) in level 0 of every patch that fits entirely in the slide.

    Origins are ``floor(i * stride)``, so each patch ``[x, x + footprint)`` ends inside the slide and
    consecutive origins differ by ``floor`` or ``ceil`` of the stride. Row-major order (y, then x).
    """
    counts = []
    for size, foot, step in zip(dimensions_wh, footprint0, stride0, strict=True):
        counts.append(0 if size < foot else math.floor((size - foot) / step + 1e-9) + 1)
    xs = np.floor(np.arange(counts[0]) * stride0[0] + 1e-9).astype(np.int64)
    ys = np.floor(np.arange(counts[1]) * stride0[1] + 1e-9).astype(np.int64)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def locality_order(coords_xy: np.ndarray, block0: float) -> np.ndarray:
    """Permutation sorting patches block by block (row-major blocks of ``block0`` level-0 px, then
    row-major inside a block), so consecutive patches share source tiles."""
    if len(coords_xy) == 0:
        return np.zeros(0, np.int64)
    bx, by = coords_xy[:, 0] // block0, coords_xy[:, 1] // block0
    return np.lexsort((coords_xy[:, 0], coords_xy[:, 1], bx, by))


def shard_ranges(n: int, per_shard: int) -> list[tuple[int, int]]:
    """``[start, stop)`` index ranges of consecutive shards covering ``n`` patches."""
    return [(start, min(start + per_shard, n)) for start in range(0, n, per_shard)]


def level_boxes(coords_xy: np.ndarray, geom: PatchGeometry) -> np.ndarray:
    """Patch boxes ``float64 [N, 4]`` (x0, y0, x1, y1) in the decoded frame (level pixels / scale)."""
    dx = geom.level_downsample[0] * geom.decode_scale
    dy = geom.level_downsample[1] * geom.decode_scale
    x0 = coords_xy[:, 0] / dx
    y0 = coords_xy[:, 1] / dy
    return np.stack([x0, y0, x0 + geom.footprint0[0] / dx, y0 + geom.footprint0[1] / dy], axis=1)
