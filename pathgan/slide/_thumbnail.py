"""Low-resolution overview of a slide at a chosen MPP, read block by block in bounded memory."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from PIL import Image

from pathgan._threads import parallel_map
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
    is 2x, 4x or 8x finer than the target, by libjpeg's DCT scaling, on two threads (a gigapixel
    slide's thumbnail then costs ~40 ms instead of ~0.5 s through openslide).

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
            # One row of tiles at a time, its tiles decoded on two threads (simplejpeg releases the
            # GIL): memory holds the block and one row of decoded tiles.
            block = np.empty((iy1 - iy0, ix1 - ix0, 3), np.uint8)
            th = tiles.tile_h // scale
            for ty in range(iy0 // th, (iy1 - 1) // th + 1):
                ry0, ry1 = max(iy0, ty * th), min(iy1, (ty + 1) * th)
                keys = tiles.tiles_in_rect(ix0, ry0, ix1, ry1, scale)
                decoded = dict(zip(keys, parallel_map(lambda key: tiles.decode(key[0], key[1], scale), keys),
                                   strict=True))
                tiles.read_rect(ix0, ry0, ix1, ry1, scale, fetch=_lookup(decoded), out=block[ry0 - iy0 : ry1 - iy0])
            return block
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
            if block.shape[:2] == (oy1 - oy0, ox1 - ox0) and (bx0, by0, bx1, by1) == (ix0, iy0, ix1, iy1):
                thumb[oy0:oy1, ox0:ox1] = block  # one level pixel per output pixel: BOX would copy it
                continue
            img = Image.fromarray(block).resize(
                (ox1 - ox0, oy1 - oy0), Image.Resampling.BOX, box=(bx0 - ix0, by0 - iy0, bx1 - ix0, by1 - iy0)
            )
            thumb[oy0:oy1, ox0:ox1] = np.asarray(img)
    if tiles is not None:
        tiles.close()
    return thumb, (w0 * geom.mpp[0] / out_w, h0 * geom.mpp[1] / out_h)


def _lookup(decoded: dict[tuple[int, int], np.ndarray]) -> Callable[[int, int], np.ndarray]:
    return lambda tx, ty: decoded[(tx, ty)]
