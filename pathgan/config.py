"""Frozen, keyword-only configuration dataclasses.

Defaults live here and only here; YAML files in ``configs/`` are their serialisation.
Every dataclass validates itself in ``__post_init__`` and raises :class:`ConfigError`
naming the field, the value received and what is allowed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

from pathgan.errors import ConfigError

__all__ = ["Backend", "Codec", "TileConfig", "TissueConfig", "from_dict", "to_dict"]

Backend = Literal["auto", "openslide", "tiffslide"]
Codec = Literal["jpeg", "zstd"]


def _check(cond: bool, name: str, value: object, allowed: str) -> None:
    if not cond:
        raise ConfigError(f"{name}={value!r} is not allowed; expected {allowed}")


@dataclass(frozen=True, kw_only=True)
class TissueConfig:
    """How tissue, pen ink and blur are detected on the slide thumbnail.

    Attributes
    ----------
    thumbnail_mpp : microns per pixel of the analysis thumbnail (8-16 um/px is typical).
    min_saturation : lower bound on the Otsu threshold of HSV saturation in [0, 1]; it keeps an
        empty glass slide from being split into "tissue" and "background" by noise.
    min_area_um2 : tissue pieces smaller than this area are dropped.
    max_hole_um2 : holes inside tissue smaller than this area are filled.
    detect_pen : find red, green, blue and black ink and exclude it from tissue.
    """

    thumbnail_mpp: float = 8.0
    min_saturation: float = 0.07
    min_area_um2: float = 20_000.0
    max_hole_um2: float = 10_000.0
    detect_pen: bool = True

    def __post_init__(self) -> None:
        _check(1.0 <= self.thumbnail_mpp <= 64.0, "thumbnail_mpp", self.thumbnail_mpp, "1-64 um/px")
        _check(0.0 <= self.min_saturation < 1.0, "min_saturation", self.min_saturation, "[0, 1)")
        _check(self.min_area_um2 >= 0, "min_area_um2", self.min_area_um2, ">= 0")
        _check(self.max_hole_um2 >= 0, "max_hole_um2", self.max_hole_um2, ">= 0")


@dataclass(frozen=True, kw_only=True)
class TileConfig:
    """What ``pathgan tile`` cuts and how it stores it.

    Attributes
    ----------
    mpp : target microns per pixel of the stored patches.
    patch_px : patch width and height in pixels at ``mpp``.
    stride_px : distance between patch origins in pixels at ``mpp`` (``patch_px`` = no overlap).
    min_tissue_fraction : a patch is kept when at least this fraction of it is tissue.
    max_pen_fraction : a patch is dropped when more than this fraction of it is pen ink.
    backend : slide reading library; ``auto`` prefers openslide and falls back to tiffslide.
    codec : ``jpeg`` (lossy, quality ``jpeg_quality``) or ``zstd`` (lossless).
    patches_per_shard : patches per Zarr shard (one patch per inner chunk).
    scaled_decode : let libjpeg decode source tiles at 1/2, 1/4 or 1/8 scale when the
        target resolution is that much coarser (its DCT scaling is a proper low-pass).
    export_h5 : also write CLAM-compatible ``<slide_id>.h5`` coordinate files.
    """

    mpp: float = 0.5
    patch_px: int = 256
    stride_px: int | None = None
    min_tissue_fraction: float = 0.5
    max_pen_fraction: float = 0.05
    backend: Backend = "auto"
    codec: Codec = "jpeg"
    jpeg_quality: int = 90
    patches_per_shard: int = 256
    scaled_decode: bool = True
    export_h5: bool = False
    tissue: TissueConfig = field(default_factory=TissueConfig)

    def __post_init__(self) -> None:
        _check(0.05 <= self.mpp <= 64.0, "mpp", self.mpp, "0.05-64 um/px")
        _check(16 <= self.patch_px <= 4096, "patch_px", self.patch_px, "16-4096")
        if self.stride_px is not None:
            _check(1 <= self.stride_px <= 4 * self.patch_px, "stride_px", self.stride_px, f"1-{4 * self.patch_px}")
        _check(0.0 <= self.min_tissue_fraction <= 1.0, "min_tissue_fraction", self.min_tissue_fraction, "[0, 1]")
        _check(0.0 <= self.max_pen_fraction <= 1.0, "max_pen_fraction", self.max_pen_fraction, "[0, 1]")
        _check(self.backend in get_args(Backend), "backend", self.backend, str(get_args(Backend)))
        _check(self.codec in get_args(Codec), "codec", self.codec, str(get_args(Codec)))
        _check(1 <= self.jpeg_quality <= 100, "jpeg_quality", self.jpeg_quality, "1-100")
        _check(1 <= self.patches_per_shard <= 4096, "patches_per_shard", self.patches_per_shard, "1-4096")
        if not isinstance(self.tissue, TissueConfig):
            raise ConfigError(f"tissue must be a TissueConfig, got {type(self.tissue).__name__}")

    @property
    def stride(self) -> int:
        """Stride in target pixels (``stride_px`` or, when unset, ``patch_px``)."""
        return self.patch_px if self.stride_px is None else self.stride_px


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain, JSON-serialisable dict of a config dataclass (nested ones included)."""
    return dataclasses.asdict(cfg)


_T = TypeVar("_T")


def from_dict(cls: type[_T], data: dict[str, Any]) -> _T:
    """Build ``cls`` from a dict, rejecting unknown keys by name."""
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s) {unknown}; allowed: {sorted(names)}")
    kwargs = dict(data)
    if cls is TileConfig and isinstance(kwargs.get("tissue"), dict):
        kwargs["tissue"] = from_dict(TissueConfig, kwargs["tissue"])
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{cls.__name__}: {err}") from err
