"""Functions that run inside Dask workers for ``pathgan tile``.

They receive paths, coordinates and plain dicts, never pixels or open handles; each worker opens
slides lazily and keeps a couple of readers in a small cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from pathgan import __version__
from pathgan._faults import fault_point
from pathgan._io import atomic_write_bytes
from pathgan._threads import run_beside
from pathgan.config import TileConfig, to_dict
from pathgan.manifest import SlideEntry
from pathgan.slide import (
    PatchReader,
    SlideGeometry,
    open_slide,
    read_thumbnail,
    scaled_decode_support,
    slide_mpp,
)
from pathgan.stages._status import describe_error
from pathgan.store import (
    WHITE_LEVEL,
    ShardWriter,
    StoreAttrs,
    create_patch_arrays,
    finalize_store,
    temp_path_for,
    write_clam_h5,
    write_slide_arrays,
)
from pathgan.tiling import PatchGeometry, grid_coords, locality_order, plan_geometry, shard_ranges
from pathgan.tissue import (
    blur_scores,
    region_fractions,
    render_preview,
    tissue_and_pen,
    white_fractions,
)

__all__ = [
    "comparable_config",
    "describe_error",
    "extract_shard",
    "finish_slide",
    "guarded",
    "plan_slide",
    "source_fingerprint",
    "write_preview",
]

_HASH_BYTES = 1 << 20
_STAGING = "_staging"  # inside a temporary store: the plan's thumbnail and masks, raw, for the preview task
_PREVIEW_MIN_PX = 768


def source_fingerprint(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of the first MiB: cheap, and changes when a slide is replaced."""
    with open(path, "rb") as fh:
        digest = hashlib.sha256(fh.read(_HASH_BYTES)).hexdigest()
    return {"size_bytes": os.path.getsize(path), "sha256_first_mib": digest}


def comparable_config(cfg: TileConfig, entry: SlideEntry) -> dict[str, Any]:
    """The settings that determine a store's content (the backend and h5 side output do not).

    Without stain normalisation its two fields are left out, so stores written before they
    existed still match.
    """
    d = to_dict(cfg)
    d.pop("backend")
    d.pop("export_h5")
    if cfg.stain_normalize is None:
        d.pop("stain_normalize")
        d.pop("stain_target")
    d["mpp_override"] = entry.mpp_override
    return d


def _write_png(path: Path, rgb: np.ndarray) -> None:
    import imagecodecs

    path.parent.mkdir(parents=True, exist_ok=True)
    # libpng at zlib level 1, run-length strategy, "sub" filter: 4x faster than Pillow's defaults.
    atomic_write_bytes(path, bytes(imagecodecs.png_encode(np.ascontiguousarray(rgb), level=1, strategy=3, filter=16)))


def plan_slide(entry: SlideEntry, out_dir: str, cfg: TileConfig, stain: dict[str, Any] | None = None) -> dict[str, Any]:
    """Open the slide, find tissue, choose patches and create the temporary store.

    ``stain`` is the fitted stain normalisation of the run (:func:`pathgan.stages.tile.fit_stain_target`),
    recorded in the store attrs. Returns a plain dict (see keys below); raises
    :class:`PathganError` subclasses for bad slides.
    """
    t0 = time.perf_counter()
    reader = open_slide(entry.path, cfg.backend)
    try:
        geom = SlideGeometry(level_dimensions=reader.level_dimensions, mpp=slide_mpp(reader, entry.mpp_override))
        level = geom.source_level(cfg.mpp)
        allowed = scaled_decode_support(entry.path, geom.level_dimensions[level]) if cfg.scaled_decode else None
        pgeom = plan_geometry(
            mpp0=geom.mpp,
            level=level,
            level_downsample=geom.downsample(level),
            target_mpp=cfg.mpp,
            patch_px=cfg.patch_px,
            stride_px=cfg.stride,
            scale_allowed=allowed or (lambda s: s == 1),
        )
        thumb, thumb_mpp = read_thumbnail(reader, geom, cfg.tissue.thumbnail_mpp)
        vendor = reader.properties.get("openslide.vendor", "unknown")
        backend = reader.backend
    finally:
        reader.close()
    # The slide-level arrays (thumbnail, masks, coords, fractions) are written into the store by
    # the preview task, beside the shards, from images staged raw here: every shard waits for
    # this task, and compressing them into Zarr took a fifth of it. The thumbnail is staged on a
    # second thread while the masks are computed.
    final = Path(out_dir) / f"{entry.slide_id}.zarr"
    tmp = temp_path_for(final)
    staging = tmp / _STAGING
    staging.mkdir(parents=True)
    staged = run_beside(np.save, staging / "thumbnail.npy", thumb)
    tissue, pen = tissue_and_pen(thumb, float(np.mean(thumb_mpp)), cfg.tissue)
    coords = grid_coords(geom.dimensions, pgeom.footprint0, pgeom.stride0)
    scale_xy = (thumb_mpp[0] / geom.mpp[0], thumb_mpp[1] / geom.mpp[1])  # level-0 px per thumbnail px
    pen_fraction = run_beside(region_fractions, pen, scale_xy, coords, pgeom.footprint0)
    tissue_frac = region_fractions(tissue, scale_xy, coords, pgeom.footprint0)
    pen_frac = pen_fraction.result()
    keep = (tissue_frac >= cfg.min_tissue_fraction) & (pen_frac <= cfg.max_pen_fraction)
    order = locality_order(coords[keep], block0=8 * max(pgeom.stride0))
    coords, tissue_frac, pen_frac = coords[keep][order], tissue_frac[keep][order], pen_frac[keep][order]

    # Only the arrays the shard tasks write into are created here.
    create_patch_arrays(tmp, n=len(coords), patch_px=cfg.patch_px, patches_per_shard=cfg.patches_per_shard,
                        codec=cfg.codec, jpeg_quality=cfg.jpeg_quality, overwrite=False)
    for name, image in (("tissue", tissue), ("pen", pen)):
        np.save(staging / f"{name}.npy", image)
    staged.result()
    attrs = StoreAttrs(
        slide_id=entry.slide_id,
        label=entry.label,
        split=entry.split,
        source={
            "path": str(entry.path),
            **source_fingerprint(entry.path),
            "vendor": vendor,
            "backend": backend,
            "level_dimensions": [list(d) for d in geom.level_dimensions],
            "mpp": list(geom.mpp),
            "mpp_source": "mpp_override" if entry.mpp_override is not None else "metadata",
        },
        mpp_requested=cfg.mpp,
        mpp_effective=(float(pgeom.effective_mpp[0]), float(pgeom.effective_mpp[1])),
        source_level=level,
        decode_scale=pgeom.decode_scale,
        footprint0=list(pgeom.footprint0),
        patch_px=cfg.patch_px,
        stride_px=cfg.stride,
        n_patches=len(coords),
        n_grid=len(keep),
        thumbnail_mpp=(float(thumb_mpp[0]), float(thumb_mpp[1])),
        config=comparable_config(cfg, entry),
        pathgan_version=__version__,
        stain=stain,
    )
    fault_point("tile.plan")  # the temporary store exists, no shard is written yet
    return {
        "slide_id": entry.slide_id,
        "tmp": str(tmp),
        "final": str(final),
        "path": str(entry.path),
        "backend": cfg.backend,
        "geometry": asdict(pgeom),
        "coords": coords,
        "tissue_fraction": tissue_frac,
        "pen_fraction": pen_frac,
        "shards": shard_ranges(len(coords), cfg.patches_per_shard),
        "attrs": attrs,
        "plan_seconds": time.perf_counter() - t0,
    }


_READERS: OrderedDict[tuple[Any, ...], PatchReader] = OrderedDict()
_MAX_READERS = 2  # bounded: thousands of slides must not accumulate open handles in a worker


def _reader(path: str, backend: str, geom: PatchGeometry) -> PatchReader:
    key = (path, backend, geom)
    reader = _READERS.pop(key, None)
    if reader is None:
        reader = PatchReader(Path(path), backend, geom)  # type: ignore[arg-type]
    _READERS[key] = reader
    while len(_READERS) > _MAX_READERS:
        _, old = _READERS.popitem(last=False)
        old.close()
    return reader


@functools.lru_cache(maxsize=2)
def _normaliser(params_json: str) -> Any:
    """The run's fitted normaliser, rebuilt from its few numbers once per worker and run."""
    from pathgan.stain import normaliser_from_params

    return normaliser_from_params(json.loads(params_json))


# Patches are read, scored and encoded in batches of this many while they are in the CPU cache
# (8 patches of 256 px are 1.5 MB: QC ran 20 % slower on batches of 16).
_BATCH = 8


def extract_shard(path: str, backend: str, geometry: dict[str, Any], tmp: str, start: int, coords: np.ndarray,
                  stain: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read, score and write the patches of one shard; returns counts for the progress bar.

    With ``stain`` (the run's fitted normaliser as numbers) each patch is normalised before it is
    encoded; blur and white scores describe the slide's own pixels, so they are taken before.
    """
    geom = PatchGeometry(**{k: tuple(v) if isinstance(v, list) else v for k, v in geometry.items()})  # type: ignore[arg-type]
    reader = _reader(path, backend, geom)
    decoded_before = reader.tiles_decoded
    n = len(coords)
    blur, white = np.zeros(n, np.float32), np.zeros(n, np.float32)
    writer = ShardWriter(Path(tmp), start, n)
    normaliser = _normaliser(json.dumps(stain["params"], sort_keys=True)) if stain is not None else None
    for first, patches in reader.iter_read(coords, _BATCH):
        blur[first : first + len(patches)] = blur_scores(patches)
        white[first : first + len(patches)] = white_fractions(patches, WHITE_LEVEL)
        writer.add(normaliser.transform(patches) if normaliser is not None else patches)
    writer.finish(blur, white)
    return {"n": n, "tiles_decoded": reader.tiles_decoded - decoded_before}


def write_preview(plan: dict[str, Any], patches_per_shard: int) -> None:
    """Write the slide-level arrays of the temporary store (coords, fractions, thumbnail, masks)
    from what the plan staged, then draw the thumbnail with tissue contour, pen ink and the kept
    grid as ``previews/<slide_id>.png``.

    A task of its own, run beside the shard tasks rather than before or after them.
    """
    staging = Path(plan["tmp"]) / _STAGING
    thumb, tissue, pen = (np.load(staging / f"{name}.npy") for name in ("thumbnail", "tissue", "pen"))
    write_slide_arrays(Path(plan["tmp"]), coords_xy=plan["coords"], tissue_fraction=plan["tissue_fraction"],
                       pen_fraction=plan["pen_fraction"], patches_per_shard=patches_per_shard, thumbnail=thumb,
                       tissue_mask=tissue, pen_mask=pen)
    shutil.rmtree(staging)
    attrs = plan["attrs"]
    scale_xy = np.array([m / m0 for m, m0 in zip(attrs.thumbnail_mpp or (), attrs.source["mpp"], strict=True)])
    coords = plan["coords"]
    # Small slides give tiny thumbnails: enlarge the preview (nearest) so the grid stays legible.
    up = max(1, -(-_PREVIEW_MIN_PX // max(thumb.shape[:2])))
    boxes = np.concatenate([coords, coords + np.asarray(attrs.footprint0)], axis=1) / np.tile(scale_xy, 2) * up
    big = [np.repeat(np.repeat(a, up, axis=0), up, axis=1) if up > 1 else a for a in (thumb, tissue, pen)]
    out = Path(plan["final"]).parent
    _write_png(out / "previews" / f"{plan['slide_id']}.png", render_preview(big[0], big[1], big[2], boxes))


def finish_slide(plan: dict[str, Any], tiles_decoded: int, cfg: TileConfig, overwrite: bool) -> None:
    """Stamp the attrs, rename the store into place, write the optional CLAM h5."""
    attrs = plan["attrs"].replace(tiles_decoded=int(tiles_decoded))
    final = Path(plan["final"])
    finalize_store(Path(plan["tmp"]), final, attrs, overwrite=overwrite)
    if cfg.export_h5:
        g = plan["geometry"]
        level_dims = tuple(tuple(d) for d in attrs.source["level_dimensions"])
        ds = tuple(g["level_downsample"])
        write_clam_h5(
            final.parent / "h5" / f"{plan['slide_id']}.h5",
            coords_xy=plan["coords"],
            patch_level=g["level"],
            patch_size_level_px=round(g["footprint0"][0] / ds[0]),
            level_downsample=ds,  # type: ignore[arg-type]
            level_dimensions=level_dims,  # type: ignore[arg-type]
            slide_id=plan["slide_id"],
            target_mpp=cfg.mpp,
            patch_px=cfg.patch_px,
        )


def guarded(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn`` and return ``{"error": message}`` instead of raising.

    A bad slide is an expected outcome, not a task failure: returning it keeps Dask from logging a
    traceback per slide and lets the driver record the message. Worker deaths still surface as
    Dask exceptions and are recorded the same way by the driver.
    """
    try:
        return fn(*args)
    except Exception as err:
        return {"error": describe_error(err)}
