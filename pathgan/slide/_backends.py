"""Thin adapters from openslide-python and tiffslide to :class:`SlideReader`.

This package is the only place in pathgan that imports openslide or tiffslide.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pathgan.errors import SlideOpenError

__all__ = ["OpenSlideReader", "TiffSlideReader"]


def _rgba_to_rgb(rgba: np.ndarray) -> np.ndarray:
    """Drop alpha; fully transparent pixels (outside the scanned area) become white glass."""
    rgb = np.ascontiguousarray(rgba[..., :3])
    if rgba.shape[-1] == 4:
        rgb[rgba[..., 3] == 0] = 255
    return rgb


class OpenSlideReader:
    """openslide-python backend (needs the ``openslide-bin`` wheel for the C library)."""

    backend = "openslide"

    def __init__(self, path: Path) -> None:
        import openslide

        self.path = Path(path)
        try:
            self._slide: Any = openslide.OpenSlide(str(self.path))
        except (openslide.OpenSlideError, OSError) as err:
            raise SlideOpenError(f"openslide cannot open {self.path}: {err}") from err

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple(tuple(map(int, d)) for d in self._slide.level_dimensions)  # type: ignore[misc]

    @property
    def properties(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in self._slide.properties.items()}

    def read_region(self, location_xy: tuple[int, int], level: int, size_wh: tuple[int, int]) -> np.ndarray:
        import openslide

        try:
            img = self._slide.read_region(tuple(map(int, location_xy)), int(level), tuple(map(int, size_wh)))
        except openslide.OpenSlideError as err:
            raise SlideOpenError(f"openslide failed reading {self.path} at {location_xy}: {err}") from err
        return _rgba_to_rgb(np.asarray(img))

    def close(self) -> None:
        self._slide.close()


class TiffSlideReader:
    """tiffslide backend (pure Python over tifffile; imagecodecs decodes JPEG 2000)."""

    backend = "tiffslide"

    def __init__(self, path: Path) -> None:
        import tiffslide

        self.path = Path(path)
        try:
            self._slide: Any = tiffslide.TiffSlide(str(self.path))
            # tifffile accepts a valid header over garbage and finds no pages: fail now, not later.
            if not self._slide.level_dimensions or min(self._slide.level_dimensions[0]) < 1:
                raise SlideOpenError("no image levels found")
        except Exception as err:  # tifffile raises several unrelated types for garbage input
            raise SlideOpenError(f"tiffslide cannot open {self.path}: {err}") from err

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        return tuple(tuple(map(int, d)) for d in self._slide.level_dimensions)  # type: ignore[misc]

    @property
    def properties(self) -> dict[str, str]:
        out = {}
        for key, value in self._slide.properties.items():
            if value is None:
                continue
            # tiffslide mirrors openslide's names under its own prefix; expose both spellings.
            out[str(key)] = str(value)
            if str(key).startswith("tiffslide."):
                out.setdefault("openslide." + str(key)[len("tiffslide."):], str(value))
        return out

    def read_region(self, location_xy: tuple[int, int], level: int, size_wh: tuple[int, int]) -> np.ndarray:
        try:
            arr = self._slide.read_region(
                tuple(map(int, location_xy)), int(level), tuple(map(int, size_wh)), as_array=True
            )
        except Exception as err:
            raise SlideOpenError(f"tiffslide failed reading {self.path} at {location_xy}: {err}") from err
        return _rgba_to_rgb(np.asarray(arr))

    def close(self) -> None:
        self._slide.close()
