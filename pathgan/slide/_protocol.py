"""The one interface every slide backend implements."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["SlideReader"]


@runtime_checkable
class SlideReader(Protocol):
    """Read-only access to a pyramidal whole-slide image.

    Coordinates are level-0 pixels ``(x, y)``; sizes are ``(width, height)``; arrays are
    ``(H, W, 3)`` uint8 RGB with transparent or missing areas painted white.
    """

    path: Path
    backend: str

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        """``(width, height)`` of every level, level 0 first."""
        ...

    @property
    def properties(self) -> dict[str, str]:
        """Vendor metadata as strings (openslide's property names where they exist)."""
        ...

    def read_region(self, location_xy: tuple[int, int], level: int, size_wh: tuple[int, int]) -> np.ndarray:
        """Pixels of ``size_wh`` at ``level`` whose top-left is ``location_xy`` in level-0 pixels."""
        ...

    def close(self) -> None:
        """Release the file handle."""
        ...
