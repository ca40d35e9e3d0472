"""Open a slide with the requested backend and read its physical resolution."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from pathgan.config import Backend
from pathgan.errors import MissingMPPError, ResolutionError, SlideOpenError
from pathgan.slide._backends import OpenSlideReader, TiffSlideReader
from pathgan.slide._protocol import SlideReader

__all__ = ["MPP_RANGE", "SlideGeometry", "open_slide", "slide_mpp"]

#: Plausible microns per pixel of a level-0 scan; outside it metadata is almost surely wrong.
MPP_RANGE = (0.05, 100.0)

_UNIT_TO_UM = {"centimeter": 1e4, "inch": 25_400.0, "3": 1e4, "2": 25_400.0}


def open_slide(path: str | Path, backend: Backend = "auto") -> SlideReader:
    """Open ``path`` with ``backend``; ``auto`` tries openslide, then tiffslide.

    Raises
    ------
    SlideOpenError
        The file is missing or no backend can read it (the message lists each backend's reason).
    """
    path = Path(path)
    if not path.is_file():
        raise SlideOpenError(f"slide file {path} does not exist")
    choices: list[type[OpenSlideReader] | type[TiffSlideReader]] = {
        "openslide": [OpenSlideReader],
        "tiffslide": [TiffSlideReader],
    }.get(backend, [OpenSlideReader, TiffSlideReader])  # type: ignore[assignment]
    reasons = []
    for cls in choices:
        try:
            return cls(path)
        except SlideOpenError as err:
            reasons.append(str(err))
    raise SlideOpenError(f"cannot read slide {path} ({path.stat().st_size} bytes): " + "; ".join(reasons))


def _positive(value: str | None) -> float | None:
    try:
        out = float(value) if value not in (None, "") else None
    except ValueError:
        return None
    return out if out is not None and math.isfinite(out) and out > 0 else None


def slide_mpp(reader: SlideReader, override: float | None = None) -> tuple[float, float]:
    """Level-0 microns per pixel ``(x, y)``.

    Looked up in this order: ``override`` (the manifest's ``mpp_override``), openslide's
    ``openslide.mpp-x/y``, Aperio's ``aperio.MPP``, then the TIFF resolution tags. Never guessed.

    Raises
    ------
    MissingMPPError
        No source gives a value inside :data:`MPP_RANGE`.
    """
    props = reader.properties
    name = reader.path.name
    if override is not None:
        candidates = [(override, override, "mpp_override")]
    else:
        candidates = []
        mx, my = _positive(props.get("openslide.mpp-x")), _positive(props.get("openslide.mpp-y"))
        if mx and my:
            candidates.append((mx, my, "openslide.mpp-x/y"))
        aperio = _positive(props.get("aperio.MPP"))
        if aperio:
            candidates.append((aperio, aperio, "aperio.MPP"))
        unit = _UNIT_TO_UM.get(props.get("tiff.ResolutionUnit", "").lower())
        rx, ry = _positive(props.get("tiff.XResolution")), _positive(props.get("tiff.YResolution"))
        if unit and rx and ry:
            candidates.append((unit / rx, unit / ry, "tiff resolution tags"))
    lo, hi = MPP_RANGE
    for mx, my, source in candidates:
        if lo <= mx <= hi and lo <= my <= hi:
            return (float(mx), float(my))
        if source == "mpp_override":
            raise MissingMPPError(
                f"slide '{name}': mpp_override={mx} is outside the plausible range {lo}-{hi} um/px"
            )
    found = ", ".join(f"{s}={x:g}x{y:g}" for x, y, s in candidates) or "no MPP, aperio.MPP or resolution tags"
    raise MissingMPPError(
        f"slide '{name}' has no usable microns-per-pixel in its metadata ({found}); "
        "pathgan never guesses it: add an mpp_override column value for this slide in the manifest "
        "(e.g. 0.25 for a 40x scan, 0.5 for 20x)"
    )


@dataclass(frozen=True, kw_only=True)
class SlideGeometry:
    """Physical layout of a slide's pyramid.

    ``level_mpp[i]`` is ``(x, y)`` microns per pixel of level ``i``, derived from level 0's MPP and
    the exact size ratio of the levels (vendors round their stated downsamples).
    """

    level_dimensions: tuple[tuple[int, int], ...]
    mpp: tuple[float, float]

    @property
    def dimensions(self) -> tuple[int, int]:
        return self.level_dimensions[0]

    def downsample(self, level: int) -> tuple[float, float]:
        """Level-0 pixels per level-``level`` pixel along ``(x, y)``."""
        (w0, h0), (w, h) = self.level_dimensions[0], self.level_dimensions[level]
        return (w0 / w, h0 / h)

    def level_mpp(self, level: int) -> tuple[float, float]:
        dx, dy = self.downsample(level)
        return (self.mpp[0] * dx, self.mpp[1] * dy)

    def source_level(self, target_mpp: float, tolerance: float = 0.02) -> int:
        """Coarsest level whose MPP is still <= ``target_mpp`` (times ``1 + tolerance``).

        Raises
        ------
        ResolutionError
            Even level 0 is coarser than the target: pathgan does not invent detail by upsampling.
        """
        ok = [i for i in range(len(self.level_dimensions)) if max(self.level_mpp(i)) <= target_mpp * (1 + tolerance)]
        if not ok:
            raise ResolutionError(
                f"target {target_mpp} um/px is finer than level 0 of the slide "
                f"({self.mpp[0]:.4g} um/px); choose mpp >= {self.mpp[0]:.4g}"
            )
        return max(ok, key=lambda i: self.level_mpp(i)[0])
