"""Small synthetic pyramidal slides for unit tests: Aperio-style SVS written with tifffile.

Painted tissue: H&E-coloured textured blobs (pink stroma with purple nuclei) on white glass, so
tissue masks, grids and pixel comparisons have a known ground truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile
from PIL import Image


def paint_tissue(width: int, height: int, blobs: list[tuple[float, float, float]], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """RGB image and its boolean tissue truth. ``blobs`` are (cx, cy, r) as fractions of width."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    truth = np.zeros((height, width), bool)
    for cx, cy, r in blobs:
        truth |= (xx - cx * width) ** 2 + (yy - cy * height) ** 2 <= (r * width) ** 2
    img = np.full((height, width, 3), 242, np.uint8)
    img += rng.integers(0, 6, size=img.shape, dtype=np.uint8)
    stroma = np.array([222, 140, 185], np.float32)
    nuclei = np.array([95, 60, 140], np.float32)
    texture = rng.random((height // 4 + 1, width // 4 + 1)).repeat(4, 0).repeat(4, 1)[:height, :width]
    mix = (texture > 0.8).astype(np.float32)[..., None]
    tissue = stroma * (1 - mix) + nuclei * mix + rng.normal(0, 3, size=(height, width, 3))
    img[truth] = np.clip(tissue, 0, 255).astype(np.uint8)[truth]
    return img, truth


def write_svs(
    path: Path,
    level0: np.ndarray,
    *,
    mpp: float | None = 0.25,
    downsamples: tuple[int, ...] = (4,),
    tile: int = 256,
    quality: int = 90,
    photometric: str = "rgb",
) -> Path:
    """Write ``level0`` as an Aperio-like SVS: tiled JPEG level 0, stripped thumbnail, tiled levels.

    ``mpp=None`` leaves the MPP out of the description (a slide openslide reads without MPP).
    """
    h, w = level0.shape[:2]
    mpp_txt = f"|MPP = {mpp}" if mpp is not None else ""
    desc0 = f"Aperio Image Library v12.0.0 \n{w}x{h} [0,0 {w}x{h}] ({tile}x{tile}) JPEG/RGB Q={quality}|AppMag = 40{mpp_txt}"
    opts = dict(photometric=photometric, compression="jpeg", compressionargs={"level": quality}, metadata=None)
    with tifffile.TiffWriter(path, bigtiff=False) as tw:
        tw.write(level0, tile=(tile, tile), description=desc0, **opts)
        thumb = np.asarray(Image.fromarray(level0).reduce(max(1, w // 256)))
        tw.write(thumb, description=f"Aperio Image Library v12.0.0 \n{w}x{h} -> {thumb.shape[1]}x{thumb.shape[0]}",
                 photometric="rgb", compression="jpeg", compressionargs={"level": 90}, metadata=None)
        for ds in downsamples:
            lvl = np.asarray(Image.fromarray(level0).reduce(ds))
            tw.write(lvl, tile=(tile, tile), description=f"Aperio Image Library v12.0.0 \n{w}x{h} -> {lvl.shape[1]}x{lvl.shape[0]}", **opts)
    return path
