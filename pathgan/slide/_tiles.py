"""Decode a TIFF pyramid level tile by tile, each compressed tile at most once per request.

openslide and tiffslide decode every tile a ``read_region`` touches, again for every patch that
touches it. For tiling that repeats most of the work (a 256-px patch at 20x from a 40x slide
overlaps four to nine 256-px tiles, each shared with neighbours). This module reads the raw tile
bytes and decodes them itself, with libjpeg-turbo's DCT-domain scaling when the output is coarser.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import imagecodecs
import numpy as np
import simplejpeg
import tifffile

from pathgan.errors import SlideOpenError

__all__ = ["TiffTileSource", "find_tiff_level", "scaled_decode_support"]

_JPEG = 7
_PHOTOMETRIC_RGB = 2
_PHOTOMETRIC_YCBCR = 6


def find_tiff_level(path: Path, size_wh: tuple[int, int]) -> int | None:
    """Index of the tiled TIFF page whose image is ``size_wh``, or None (not a TIFF, not tiled)."""
    try:
        with tifffile.TiffFile(path) as tf:
            for index, page in enumerate(tf.pages):
                page = cast(Any, page)
                if (
                    getattr(page, "is_tiled", False)
                    and (page.imagewidth, page.imagelength) == tuple(size_wh)
                    and page.samplesperpixel in (3, 4)
                    and page.planarconfig == 1
                    and page.bitspersample == 8
                ):
                    return index
    except Exception:  # not a TIFF at all, or unreadable: callers fall back to read_region
        return None
    return None


def scaled_decode_support(path: Path, size_wh: tuple[int, int]) -> Callable[[int], bool]:
    """Predicate telling which decode scales the raw-tile path offers for the level of ``size_wh``
    (only 1 when the level is not a tiled JPEG TIFF page)."""
    page = find_tiff_level(Path(path), size_wh)
    if page is None:
        return lambda s: s == 1
    src = TiffTileSource(Path(path), page)
    supported = {s for s in (1, 2, 4, 8) if src.supports_scale(s)}
    src.close()
    return supported.__contains__


class TiffTileSource:
    """Raw tiles of one tiled TIFF page, decoded on demand at scale 1, 1/2, 1/4 or 1/8.

    Parameters
    ----------
    path : the TIFF/SVS file.
    page_index : index of the page (from :func:`find_tiff_level`).
    """

    def __init__(self, path: Path, page_index: int) -> None:
        self.path = Path(path)
        with tifffile.TiffFile(self.path) as tf:
            page: Any = tf.pages[page_index]
            self.width, self.height = int(page.imagewidth), int(page.imagelength)
            self.tile_w, self.tile_h = int(page.tilewidth), int(page.tilelength)
            self.compression = int(page.compression)
            self.photometric = int(page.photometric)
            self.samples = int(page.samplesperpixel)
            self._offsets = np.asarray(page.dataoffsets, dtype=np.int64)
            self._counts = np.asarray(page.databytecounts, dtype=np.int64)
            self._tables: bytes | None = page.jpegtables
            # Keep the page's generic decoder for every non-JPEG codec (JPEG 2000, LZW, ...).
            self._decode = page.decode
            self._jpegtables_arg = page.jpegtables
        self.tiles_x = -(-self.width // self.tile_w)
        self.tiles_y = -(-self.height // self.tile_h)
        self._fd = os.open(self.path, os.O_RDONLY)
        self._scaled_prefix: bytes | None = None
        self.tiles_decoded = 0

    def supports_scale(self, scale: int) -> bool:
        """libjpeg can scale a JPEG tile by 1/2, 1/4, 1/8 (TIFF tile sizes are multiples of 16)."""
        if scale == 1:
            return True
        return (
            self.compression == _JPEG
            and self.photometric in (_PHOTOMETRIC_RGB, _PHOTOMETRIC_YCBCR)
            and scale in (2, 4, 8)
            and self.tile_w % scale == 0
            and self.tile_h % scale == 0
        )

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()

    def tiles_in_rect(self, x0: int, y0: int, x1: int, y1: int, scale: int = 1) -> list[tuple[int, int]]:
        """``(tx, ty)`` of the tiles overlapping ``[x0, x1) x [y0, y1)`` in the ``1/scale`` frame."""
        tw, th = self.tile_w // scale, self.tile_h // scale
        return [(tx, ty) for ty in range(y0 // th, (y1 - 1) // th + 1) for tx in range(x0 // tw, (x1 - 1) // tw + 1)]

    def read_rect(self, x0: int, y0: int, x1: int, y1: int, scale: int = 1,
                  fetch: Callable[[int, int], np.ndarray] | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """Pixels ``[y0:y1, x0:x1]`` of the level decoded at ``1/scale`` (coordinates in that frame).

        Each overlapped tile is obtained once, from ``fetch(tx, ty)`` when given (a caller's cache)
        or decoded here. ``out`` (``(y1 - y0, x1 - x0, 3)`` uint8) receives the pixels when given.
        """
        tw, th = self.tile_w // scale, self.tile_h // scale
        if out is None:
            out = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
        for tx, ty in self.tiles_in_rect(x0, y0, x1, y1, scale):
            tile = fetch(tx, ty) if fetch is not None else self.decode(tx, ty, scale)
            cx0, cy0 = max(x0, tx * tw), max(y0, ty * th)
            cx1, cy1 = min(x1, (tx + 1) * tw), min(y1, (ty + 1) * th)
            out[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] = tile[cy0 - ty * th : cy1 - ty * th, cx0 - tx * tw : cx1 - tx * tw]
        return out

    def _raw(self, index: int) -> bytes:
        count = int(self._counts[index])
        return os.pread(self._fd, count, int(self._offsets[index])) if count else b""

    def decode(self, tx: int, ty: int, scale: int = 1) -> np.ndarray:
        """Tile at column ``tx``, row ``ty`` as ``(tile_h/scale, tile_w/scale, 3)`` uint8 RGB.

        A tile that is absent from the file (byte count 0) is returned as white glass.
        """
        index = ty * self.tiles_x + tx
        data = self._raw(index)
        shape = (self.tile_h // scale, self.tile_w // scale, 3)
        self.tiles_decoded += 1
        if not data:
            return np.full(shape, 255, np.uint8)
        if self.compression == _JPEG and self.photometric in (_PHOTOMETRIC_RGB, _PHOTOMETRIC_YCBCR):
            return self._decode_jpeg(data, scale)
        arr, _, _ = self._decode(data, index, jpegtables=self._jpegtables_arg)
        arr = np.asarray(arr).reshape(self.tile_h, self.tile_w, self.samples)[..., :3]
        return np.ascontiguousarray(arr)

    def _decode_jpeg(self, data: bytes, scale: int) -> np.ndarray:
        # The JPEG colour space must come from the TIFF photometric tag: classic Aperio tiles are
        # RGB-coded with no Adobe marker, and decoders that guess read them as YCbCr (wrong colours).
        if scale == 1:
            cs = "RGB" if self.photometric == _PHOTOMETRIC_RGB else "YCBCR"
            return imagecodecs.jpeg8_decode(data, tables=self._tables, colorspace=cs, outcolorspace="RGB")
        if self._scaled_prefix is None:
            # SOI, an Adobe marker stating the colour transform, then the shared tables (SOI ... EOI
            # in abbreviated-format TIFF JPEG) without their own SOI and EOI.
            marker = _ADOBE_RGB if self.photometric == _PHOTOMETRIC_RGB else _ADOBE_YCBCR
            self._scaled_prefix = b"\xff\xd8" + marker + (self._tables[2:-2] if self._tables else b"")
        return _scaled_decode(self._scaled_prefix, data, scale, (self.tile_h // scale, self.tile_w // scale))


def _adobe_marker(transform: int) -> bytes:
    """APP14 'Adobe' segment; transform 0 = components are RGB, 1 = YCbCr (libjpeg obeys it)."""
    return b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00" + bytes([transform])


_ADOBE_RGB = _adobe_marker(0)
_ADOBE_YCBCR = _adobe_marker(1)


def _scaled_decode(prefix: bytes, data: bytes, scale: int, shape_hw: tuple[int, int]) -> np.ndarray:
    """libjpeg-turbo DCT-scaled decode (1/2, 1/4, 1/8) through simplejpeg.

    imagecodecs exposes no scaling; simplejpeg does, with less per-call overhead than Pillow
    (290 vs 370 us per 256-px tile here). ``prefix`` (SOI, an Adobe marker, the TIFF's JPEG
    tables) replaces the tile's own SOI: the marker states the colour transform, so the decoder
    never has to guess it. ``shape_hw`` is the expected output size (the TIFF tile size / scale).
    """
    arr = simplejpeg.decode_jpeg(b"".join((prefix, memoryview(data)[2:])), colorspace="RGB",
                                 min_height=shape_hw[0], min_width=shape_hw[1])
    if arr.shape[:2] != shape_hw:
        raise SlideOpenError(f"libjpeg scaled decode gave {arr.shape[:2]}, expected {shape_hw} (1/{scale} scale)")
    return arr
