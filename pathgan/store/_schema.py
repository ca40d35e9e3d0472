"""The one definition of the patch-store layout (schema version 1).

::

    <slide_id>.zarr/                      Zarr v3 group; attrs["pathgan"] = store metadata
      patches          uint8  [N, P, P, 3]  one patch per inner chunk, S patches per shard
      coords           int64  [N, 2]        level-0 (x, y) of each patch's top-left corner
      tissue_fraction  float32 [N]          from the tissue mask (integral image)
      qc/pen_fraction  float32 [N]          from the pen-ink mask
      qc/blur          float32 [N]          sharpness (variance of Laplacian), higher = sharper
      qc/white_fraction float32 [N]         pixels with all channels > 215 (PathologyGAN's rule)
      thumbnail        uint8  [h, w, 3]     at attrs thumbnail_mpp
      masks/tissue     bool   [h, w]
      masks/pen        bool   [h, w]
      latents/<run_id> float32 [N, w_dim]   one latent per patch, row-aligned with coords, written by
                                            ``pathgan encode``; attrs: "pathgan" (checkpoint_sha256,
                                            encoder_sha256, refine_steps, ...), "complete", "rows_done"
      labels           int16  [N]           synthetic stores only (``pathgan export-synthetic``): class
                                            index into attrs class_names; attrs synthetic: true

Latents live in their own subgroup and never touch the root attributes, so adding them leaves the
store complete and readable by :func:`~pathgan.store.read_store_attrs`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from pathgan.errors import SchemaMismatchError, StoreError

SCHEMA_VERSION = 1
ATTRS_KEY = "pathgan"
PATCHES = "patches"
COORDS = "coords"
TISSUE_FRACTION = "tissue_fraction"
QC_ARRAYS = ("qc/pen_fraction", "qc/blur", "qc/white_fraction")
THUMBNAIL = "thumbnail"
MASK_TISSUE = "masks/tissue"
MASK_PEN = "masks/pen"
LATENTS = "latents"
LABELS = "labels"
WHITE_LEVEL = 215

#: Attributes every complete store carries (checked by the reader and by resume).
REQUIRED_ATTRS = (
    "schema_version",
    "complete",
    "slide_id",
    "source",
    "mpp_requested",
    "mpp_effective",
    "source_level",
    "patch_px",
    "stride_px",
    "n_patches",
    "config",
    "pathgan_version",
)

__all__ = [
    "ATTRS_KEY",
    "COORDS",
    "LABELS",
    "LATENTS",
    "MASK_PEN",
    "MASK_TISSUE",
    "PATCHES",
    "QC_ARRAYS",
    "REQUIRED_ATTRS",
    "SCHEMA_VERSION",
    "THUMBNAIL",
    "TISSUE_FRACTION",
    "WHITE_LEVEL",
    "StoreAttrs",
]


def _fail(where: str, key: str, found: Any, allowed: str) -> StoreError:
    return StoreError(f"{where}: store attribute {key!r} is {found!r}; allowed: {allowed}")


def _positive(where: str, key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
        raise _fail(where, key, v, "a finite number > 0")
    return float(v)


def _count(where: str, key: str, v: Any, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise _fail(where, key, v, f"an integer >= {minimum}")
    return int(v)


def _text(where: str, key: str, v: Any, *, optional: bool = False) -> str | None:
    if v is None and optional:
        return None
    if not isinstance(v, str) or not v:
        raise _fail(where, key, v, "a non-empty string" + (" or null" if optional else ""))
    return v


def _mapping(where: str, key: str, v: Any, *, optional: bool = False) -> dict[str, Any] | None:
    if v is None and optional:
        return None
    if not isinstance(v, dict):
        raise _fail(where, key, v, "a mapping" + (" or null" if optional else ""))
    return dict(v)


def _pair(where: str, key: str, v: Any) -> tuple[float, float]:
    if isinstance(v, list | tuple) and len(v) == 2:
        return (_positive(where, key, v[0]), _positive(where, key, v[1]))
    raise _fail(where, key, v, "two numbers > 0 [x, y]")


@dataclass(frozen=True, kw_only=True)
class StoreAttrs:
    """The root attributes of a patch store (``attrs["pathgan"]``): written by ``tile``, ``translate``
    and ``export-synthetic``, validated on write (:func:`~pathgan.store.finalize_store`) and on read
    (:func:`~pathgan.store.read_store_attrs`), with the schema version checked only here.

    Required: what a reader needs to use the patches at the right physical size and to know where
    they came from. Optional: what one writer adds (tiling geometry, a stain target, a translation's
    provenance, a synthetic store's classes). Keys this version does not know are kept in ``extra``
    and written back unchanged, so an older pathgan never drops a newer one's facts.
    """

    # In the order ``pathgan tile`` has always written them (the store's zarr.json stays byte-identical).
    slide_id: str
    label: str | None = None
    split: str | None = None
    source: dict[str, Any]
    mpp_requested: float
    mpp_effective: tuple[float, float]
    source_level: int | None  # None: not read from a slide (synthetic stores)
    decode_scale: int | None = None
    footprint0: Any = None
    patch_px: int
    stride_px: int
    n_patches: int
    n_grid: int | None = None
    thumbnail_mpp: tuple[float, float] | None = None
    config: dict[str, Any]
    pathgan_version: str
    stain: dict[str, Any] | None = None
    tiles_decoded: int | None = None
    translation: dict[str, Any] | None = None
    synthetic: bool = False
    class_names: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Any, where: str = "store") -> StoreAttrs:
        """Validate ``raw`` (``attrs["pathgan"]`` as read or about to be written).

        Raises
        ------
        StoreError : a required attribute is missing, or one has the wrong type or range
            (the message names ``where``, the attribute, what was found and what is allowed).
        SchemaMismatchError : ``schema_version`` is present and not :data:`SCHEMA_VERSION`.
        """
        if not isinstance(raw, dict):
            raise StoreError(f"{where}: store attributes are {type(raw).__name__}, expected a mapping")
        d = dict(raw)
        version = d.pop("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise SchemaMismatchError(f"{where} has schema version {version}; this pathgan reads version {SCHEMA_VERSION}")
        d.pop("complete", None)
        required = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING]
        missing = [k for k in required if k not in d]
        if missing:
            raise StoreError(f"{where}: store attributes lack {missing}")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        extra = {k: v for k, v in d.items() if k not in known}
        if d.get("class_names") is not None and not (isinstance(d["class_names"], list | tuple)
                                                      and all(isinstance(c, str) for c in d["class_names"])):
            raise _fail(where, "class_names", d["class_names"], "a list of strings")
        thumb = d.get("thumbnail_mpp")
        optional_int = {k: d.get(k) for k in ("decode_scale", "n_grid", "tiles_decoded")}
        for k, v in optional_int.items():
            if v is not None:
                _count(where, k, v, 0)
        if not isinstance(d.get("synthetic", False), bool):
            raise _fail(where, "synthetic", d["synthetic"], "true or false")
        return cls(
            slide_id=str(_text(where, "slide_id", d["slide_id"])),
            source=_mapping(where, "source", d["source"]) or {},
            mpp_requested=_positive(where, "mpp_requested", d["mpp_requested"]),
            mpp_effective=_pair(where, "mpp_effective", d["mpp_effective"]),
            source_level=None if d["source_level"] is None else _count(where, "source_level", d["source_level"], 0),
            patch_px=_count(where, "patch_px", d["patch_px"], 1),
            stride_px=_count(where, "stride_px", d["stride_px"], 1),
            n_patches=_count(where, "n_patches", d["n_patches"], 0),
            config=_mapping(where, "config", d["config"]) or {},
            pathgan_version=str(_text(where, "pathgan_version", d["pathgan_version"])),
            label=_text(where, "label", d.get("label"), optional=True),
            split=_text(where, "split", d.get("split"), optional=True),
            decode_scale=optional_int["decode_scale"],
            footprint0=d.get("footprint0"),
            n_grid=optional_int["n_grid"],
            thumbnail_mpp=None if thumb is None else _pair(where, "thumbnail_mpp", thumb),
            tiles_decoded=optional_int["tiles_decoded"],
            stain=_mapping(where, "stain", d.get("stain"), optional=True),
            translation=_mapping(where, "translation", d.get("translation"), optional=True),
            synthetic=bool(d.get("synthetic", False)),
            class_names=None if d.get("class_names") is None else tuple(d["class_names"]),
            extra=extra,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of ``attrs["pathgan"]`` without ``schema_version`` and ``complete`` (which
        :func:`~pathgan.store.finalize_store` stamps last). Optional fields appear only when set,
        except ``label`` and ``split``, which tiled stores have always carried, null or not."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            v = getattr(self, f.name)
            if f.name not in ("label", "split") and f.default is not dataclasses.MISSING and v == f.default:
                continue
            out[f.name] = list(v) if isinstance(v, tuple) else v
        out.update(self.extra)
        return out

    def replace(self, **changes: Any) -> StoreAttrs:
        return dataclasses.replace(self, **changes)
