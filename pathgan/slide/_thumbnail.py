"""Low-resolution overview of a slide at a chosen MPP, read block by block in bounded memory."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from pathgan.slide._open import SlideGeometry
from pathgan.slide._protocol import SlideReader
from pathgan.slide._tiles import TiffTileSource, find_tiff_level

__all__ = ["read_thumbnail"]


def read_thumbnail(
    reader: SlideReader, geom: SlideGeometry, target_mpp: float, *, block_px: int = 2048, use_tiles: bool = True
) -> tuple[np.ndarray, tuple[float, float]]:
    """The whole slide as ``uint8 (H, W, 3)`` at about ``target_mpp``.

    Reads the coarsest level that is not coarser than the target (or the coarsest level when all
    are finer), in blocks of at most ``block_px`` output pixels, area-averaging each block (PIL BOX).
    With ``use_tiles`` and a tiled JPEG TIFF level, tiles are decoded directly and, where the level
    is 2x, 4x or 8x finer than the target, by libjpeg's DCT scaling (a gigapixel slide's thumbnail
    then costs ~0.1 s instead of ~0.5 s through openslide).

    Returns
    -------
    (thumbnail, mpp_xy): the image and its exact microns per pixel ``(x, y)``.
    """
    w0, h0 = geom.dimensions
    out_w = max(1, round(w0 * geom.mpp[0] / target_mpp))
    out_h = max(1, round(h0 * geom.mpp[1] / target_mpp))
    levels = range(len(geom.level_dimensions))
    fine_enough = [lv for lv in levels if max(geom.level_mpp(lv)) <= target_mpp]
    level = max(fine_enough, key=lambda lv: geom.level_mpp(lv)[0]) if fine_enough else max(
        levels, key=lambda lv: geom.level_mpp(lv)[0]
    )
    lw, lh = geom.level_dimensions[level]
    dx, dy = geom.downsample(level)
    page = find_tiff_level(reader.path, (lw, lh)) if use_tiles else None
    tiles = TiffTileSource(reader.path, page) if page is not None else None
    scale = 1
    if tiles is not None:
        ratio = target_mpp / max(geom.level_mpp(level))
        # Not 1/8: that keeps only the DC term, and quantised DCs of low-quality tiles shift grey levels.
        scale = next((s for s in (4, 2) if s <= ratio and tiles.supports_scale(s)), 1)
        lw, lh = -(-lw // scale), -(-lh // scale)

    def read(ix0: int, iy0: int, ix1: int, iy1: int) -> np.ndarray:
        if tiles is not None:
            return tiles.read_rect(ix0, iy0, ix1, iy1, scale)
        return reader.read_region((round(ix0 * dx), round(iy0 * dy)), level, (ix1 - ix0, iy1 - iy0))

    fx, fy = lw / out_w, lh / out_h  # (scaled) level pixels per output pixel
    thumb = np.empty((out_h, out_w, 3), np.uint8)
    for oy0 in range(0, out_h, block_px):
        for ox0 in range(0, out_w, block_px):
            ox1, oy1 = min(out_w, ox0 + block_px), min(out_h, oy0 + block_px)
            bx0, by0, bx1, by1 = ox0 * fx, oy0 * fy, ox1 * fx, oy1 * fy
            ix0, iy0 = math.floor(bx0), math.floor(by0)
            ix1, iy1 = min(lw, math.ceil(bx1)), min(lh, math.ceil(by1))
            block = read(ix0, iy0, ix1, iy1)
            img = Image.fromarray(block).resize(
                (ox1 - ox0, oy1 - oy0), Image.Resampling.BOX, box=(bx0 - ix0, by0 - iy0, bx1 - ix0, by1 - iy0)
            )
            thumb[oy0:oy1, ox0:ox1] = np.asarray(img)
    if tiles is not None:
        tiles.close()
    return thumb, (w0 * geom.mpp[0] / out_w, h0 * geom.mpp[1] / out_h)
