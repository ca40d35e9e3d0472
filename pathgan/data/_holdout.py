"""Spatial hold-out inside slides: a checkerboard of squares, some to train on, the others to test on.

With only a few slides, holding out whole slides leaves nothing to learn from; holding out random
patches lets overlapping neighbours of a test patch into training. Cutting every slide into squares
coloured like a checkerboard keeps both honest: a patch is used only when it lies wholly inside one
square, so no pixel of a "test" square is ever seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

import numpy as np

from pathgan.errors import ConfigError

__all__ = ["HoldoutPart", "SpatialHoldout", "checkerboard_regions", "level0_mpp"]

HoldoutPart = Literal["train", "test"]

_PART_CODE = {"train": 0, "test": 1}


@dataclass(frozen=True, kw_only=True)
class SpatialHoldout:
    """Keep only the patches wholly inside the ``part`` squares of a checkerboard of ``block_um``.

    Square ``(i, j) = (floor(x0 / block), floor(y0 / block))`` in level-0 pixels is a ``test`` square
    when ``i + j`` is odd, a ``train`` square otherwise; the square side is ``block_um`` microns, so
    the same squares cover the same tissue at any patch resolution.
    """

    block_um: float
    part: HoldoutPart

    def __post_init__(self) -> None:
        if not float(self.block_um) > 0:
            raise ConfigError(f"holdout block_um={self.block_um!r} is not allowed; expected > 0 microns")
        if self.part not in get_args(HoldoutPart):
            raise ConfigError(f"holdout part={self.part!r} is not allowed; expected one of {get_args(HoldoutPart)}")

    @property
    def code(self) -> int:
        """The region code :func:`checkerboard_regions` gives this part's patches."""
        return _PART_CODE[self.part]


def checkerboard_regions(coords: np.ndarray, footprint0: Any, block0: Any) -> np.ndarray:
    """Region of each patch: 0 (wholly in a train square), 1 (wholly in a test square), -1 (straddles).

    Parameters
    ----------
    coords : int [N, 2] level-0 (x, y) top-left corners of the patches.
    footprint0 : patch side in level-0 pixels, one number or (width, height).
    block0 : square side in level-0 pixels, one number or (x, y).

    Returns
    -------
    int64 [N] with values in {-1, 0, 1}.
    """
    xy0 = np.asarray(coords, np.float64).reshape(-1, 2)
    foot = np.broadcast_to(np.asarray(footprint0, np.float64), (2,))
    block = np.broadcast_to(np.asarray(block0, np.float64), (2,))
    if np.any(block <= 0) or np.any(foot <= 0):
        raise ConfigError(f"checkerboard needs positive sizes, got footprint {foot.tolist()} and block {block.tolist()}")
    first = np.floor(xy0 / block).astype(np.int64)
    # The last pixel a patch covers is x0 + footprint - 1 (half-open pixel intervals).
    last = np.floor((xy0 + foot - 1e-6) / block).astype(np.int64)
    region = (first.sum(axis=1) % 2).astype(np.int64)
    region[~np.all(first == last, axis=1)] = -1
    return region


def level0_mpp(attrs: dict[str, Any]) -> tuple[float, float]:
    """(x, y) microns per level-0 pixel of a store, from its patch size, MPP and level-0 footprint."""
    patch_px = float(attrs["patch_px"])
    mpp = np.broadcast_to(np.asarray(attrs["mpp_effective"], np.float64), (2,))
    foot = np.broadcast_to(np.asarray(attrs["footprint0"], np.float64), (2,))
    x, y = mpp * patch_px / foot
    return float(x), float(y)
