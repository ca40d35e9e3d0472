"""Cut many patches from one slide level, decoding each source tile once.

Given the patches of one task (one Zarr shard), the reader counts how many patches need each
source tile, decodes a tile when the first patch needs it and frees it after the last one, so
memory holds about one row band of tiles and no tile is decoded twice within a task.
Non-TIFF slides (or levels tifffile cannot map) fall back to a few large ``read_region`` calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from pathgan.config import Backend
from pathgan.errors import ConfigError
from pathgan.slide._open import open_slide
from pathgan.slide._tiles import TiffTileSource, find_tiff_level
from pathgan.tiling import PatchGeometry, level_boxes

__all__ = ["PatchReader"]

_RESAMPLE = Image.Resampling.LANCZOS


class PatchReader:
    """Reads patches of a fixed :class:`PatchGeometry` from one slide.

    Parameters
    ----------
    path : slide file.
    backend : slide backend for the fallback path and level sizes.
    geom : the patch geometry (level, decode scale, footprint).
    use_tiles : decode raw TIFF tiles (fast path); False forces ``read_region`` blocks.
    """

    def __init__(self, path: Path, backend: Backend, geom: PatchGeometry, *, use_tiles: bool = True) -> None:
        self.geom = geom
        self._slide = open_slide(path, backend)
        self.level_wh = self._slide.level_dimensions[geom.level]
        page = find_tiff_level(Path(path), self.level_wh) if use_tiles else None
        self._tiles = TiffTileSource(Path(path), page) if page is not None else None
        if self._tiles is not None and not self._tiles.supports_scale(geom.decode_scale):
            raise ConfigError(f"decode scale {geom.decode_scale} not supported by {path}")
        if self._tiles is None and geom.decode_scale != 1:
            raise ConfigError("decode scale > 1 needs the TIFF tile path")

    @property
    def tiles_decoded(self) -> int:
        return self._tiles.tiles_decoded if self._tiles is not None else 0

    @property
    def uses_tiles(self) -> bool:
        return self._tiles is not None

    def close(self) -> None:
        if self._tiles is not None:
            self._tiles.close()
        self._slide.close()

    def read(self, coords_xy: np.ndarray) -> np.ndarray:
        """Patches ``uint8 [N, patch_px, patch_px, 3]`` whose level-0 origins are ``coords_xy``."""
        for _, patches in self.iter_read(coords_xy, max(1, len(coords_xy))):
            return patches  # one batch: all of them
        p = self.geom.patch_px
        return np.empty((0, p, p, 3), np.uint8)

    def iter_read(self, coords_xy: np.ndarray, batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, patches)`` for consecutive batches of at most ``batch_size`` of the patches
        at ``coords_xy``; source tiles are still decoded once over all batches.

        Small batches let a caller score and encode patches while they are still in the CPU
        cache (5 % faster per patch than reading a whole shard first) and keep memory to a batch.
        """
        n = len(coords_xy)
        if n == 0:
            return
        p = self.geom.patch_px
        boxes = level_boxes(np.asarray(coords_xy, np.int64), self.geom)
        if self._tiles is None:
            out = np.empty((n, p, p, 3), np.uint8)
            self._read_blocks(boxes, out)
            for start in range(0, n, batch_size):
                yield start, out[start : start + batch_size]
            return
        fill = self._tiled_filler(boxes)
        for start in range(0, n, batch_size):
            out = np.empty((min(batch_size, n - start), p, p, 3), np.uint8)
            for k in range(len(out)):
                fill(start + k, out[k])
            yield start, out

    # -- fast path: raw TIFF tiles -------------------------------------------------------------
    def _tiled_filler(self, boxes: np.ndarray) -> Callable[[int, np.ndarray], None]:
        """A function that writes patch ``i`` into ``out`` (``i`` in order), decoding each source
        tile when the first patch needs it and dropping it after the last."""
        src = self._tiles
        assert src is not None
        s = self.geom.decode_scale
        lw, lh = math.ceil(self.level_wh[0] / s), math.ceil(self.level_wh[1] / s)
        spans = [_pixel_span(b, lw, lh) for b in boxes]
        refs: dict[tuple[int, int], int] = {}
        for span in spans:
            for key in src.tiles_in_rect(*span, s):
                refs[key] = refs.get(key, 0) + 1
        cache: dict[tuple[int, int], np.ndarray] = {}

        def fetch(tx: int, ty: int) -> np.ndarray:
            # Decode on first use, drop after the last patch that needs the tile.
            tile = cache.get((tx, ty))
            if tile is None:
                tile = cache[(tx, ty)] = src.decode(tx, ty, s)
            refs[(tx, ty)] -= 1
            if refs[(tx, ty)] == 0:
                del cache[(tx, ty)]
            return tile

        p = self.geom.patch_px

        def fill(i: int, out: np.ndarray) -> None:
            box, span = boxes[i], spans[i]
            if _is_exact(box, span, p):
                src.read_rect(*span, s, fetch=fetch, out=out)  # tiles straight into the patch
            else:
                out[...] = _resample(src.read_rect(*span, s, fetch=fetch), box, span[0], span[1], p)

        return fill

    # -- fallback: a few large read_region calls ----------------------------------------------
    def _read_blocks(self, boxes: np.ndarray, out: np.ndarray, max_block_px: int = 4096) -> None:
        lw, lh = self.level_wh
        dx, dy = self.geom.level_downsample
        spans = [_pixel_span(b, lw, lh) for b in boxes]
        order = sorted(range(len(boxes)), key=lambda i: (spans[i][1], spans[i][0]))
        i = 0
        while i < len(order):
            # Greedily grow a block of patches in reading order while its bounding box stays small.
            x0, y0, x1, y1 = spans[order[i]]
            j = i + 1
            while j < len(order):
                a0, b0, a1, b1 = spans[order[j]]
                nx0, ny0, nx1, ny1 = min(x0, a0), min(y0, b0), max(x1, a1), max(y1, b1)
                if nx1 - nx0 > max_block_px or ny1 - ny0 > max_block_px:
                    break
                x0, y0, x1, y1 = nx0, ny0, nx1, ny1
                j += 1
            block = self._slide.read_region(
                (round(x0 * dx), round(y0 * dy)), self.geom.level, (x1 - x0, y1 - y0)
            )
            for k in order[i:j]:
                ix0, iy0, ix1, iy1 = spans[k]
                canvas = block[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
                out[k] = _resample(canvas, boxes[k], ix0, iy0, self.geom.patch_px)
            i = j


def _pixel_span(box: np.ndarray, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer pixel rectangle covering a fractional box, clipped to the level."""
    x0, y0 = max(0, math.floor(box[0] + 1e-6)), max(0, math.floor(box[1] + 1e-6))
    x1, y1 = min(width, math.ceil(box[2] - 1e-6)), min(height, math.ceil(box[3] - 1e-6))
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def _is_exact(box: np.ndarray, span: tuple[int, int, int, int], patch_px: int) -> bool:
    """The pixel ``span`` is exactly the patch: integer footprint of ``patch_px``, no resampling."""
    x0, y0, x1, y1 = span
    return (
        x1 - x0 == patch_px
        and y1 - y0 == patch_px
        and abs(box[0] - x0) < 1e-6
        and abs(box[1] - y0) < 1e-6
        and abs(box[2] - x1) < 1e-6
    )


def _resample(canvas: np.ndarray, box: np.ndarray, ix0: int, iy0: int, patch_px: int) -> np.ndarray:
    """Resample the fractional ``box`` of ``canvas`` (whose origin is ``ix0, iy0``) to ``patch_px``."""
    bx0, by0, bx1, by1 = box[0] - ix0, box[1] - iy0, box[2] - ix0, box[3] - iy0
    h, w = canvas.shape[:2]
    if (w, h) == (patch_px, patch_px) and abs(bx0) < 1e-6 and abs(by0) < 1e-6 and abs(bx1 - w) < 1e-6:
        return canvas  # exact integer footprint: no resampling, bit-exact decoded pixels
    img = Image.fromarray(np.ascontiguousarray(canvas))
    # reducing_gap=1: first an integer box reduction (area averaging, what libjpeg's DCT scaling
    # also does), then LANCZOS for the fractional rest. 10x faster than LANCZOS all the way for
    # 2x and more; the two differ by ~1 grey level on H&E.
    return np.asarray(img.resize((patch_px, patch_px), _RESAMPLE, box=(bx0, by0, bx1, by1), reducing_gap=1.0))
