"""Write a patch store: create it under a temporary name, fill shards from workers, then rename.

Every function takes paths, never open arrays, so it can run in any Dask worker. A shard is
written by exactly one call, which writes the whole shard, so concurrent tasks never touch the
same file.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import ZstdCodec

from pathgan.store import _schema as S
from pathgan.store._codec import JpegCodec

__all__ = ["create_store", "finalize_store", "partial_stores", "temp_path_for", "write_shard"]

_PARTIAL = ".partial-"


def _array(grp: zarr.Group, name: str) -> zarr.Array:
    node = grp[name]
    assert isinstance(node, zarr.Array), f"{name} is not an array"
    return node


def temp_path_for(final: Path) -> Path:
    """A unique temporary sibling of ``final``; it never looks like a complete store."""
    return final.with_name(f"{final.name}{_PARTIAL}{uuid.uuid4().hex[:8]}")


def partial_stores(final: Path) -> list[Path]:
    """Leftover temporary stores of ``final`` from interrupted runs."""
    return sorted(final.parent.glob(f"{final.name}{_PARTIAL}*"))


def create_store(
    path: Path,
    *,
    coords_xy: np.ndarray,
    tissue_fraction: np.ndarray,
    pen_fraction: np.ndarray,
    patch_px: int,
    patches_per_shard: int,
    codec: str,
    jpeg_quality: int,
    thumbnail: np.ndarray,
    tissue_mask: np.ndarray,
    pen_mask: np.ndarray,
) -> None:
    """Create the group with every array; patches and pixel QC are filled later by :func:`write_shard`."""
    n = len(coords_xy)
    grp = zarr.open_group(path, mode="w", zarr_format=3)
    per = max(1, min(patches_per_shard, max(n, 1)))
    image_codec: dict[str, Any] = (
        {"serializer": JpegCodec(level=jpeg_quality), "compressors": None}
        if codec == "jpeg"
        else {"compressors": ZstdCodec(level=3)}
    )
    grp.create_array(
        S.PATCHES,
        shape=(n, patch_px, patch_px, 3),
        dtype="uint8",
        chunks=(1, patch_px, patch_px, 3),
        shards=(patches_per_shard, patch_px, patch_px, 3),
        fill_value=255,
        **image_codec,
    )
    small: dict[str, Any] = {"compressors": ZstdCodec(level=3)}
    grp.create_array(S.COORDS, data=np.asarray(coords_xy, np.int64).reshape(n, 2), chunks=(per, 2), **small)
    grp.create_array(S.TISSUE_FRACTION, data=np.asarray(tissue_fraction, np.float32), chunks=(per,), **small)
    qc = {
        "qc/pen_fraction": np.asarray(pen_fraction, np.float32),
        "qc/blur": np.full(n, np.nan, np.float32),
        "qc/white_fraction": np.full(n, np.nan, np.float32),
    }
    for name, values in qc.items():
        grp.create_array(name, shape=(n,), dtype="float32", chunks=(patches_per_shard,), fill_value=np.nan, **small)
        if name == "qc/pen_fraction" and n:
            _array(grp, name)[:] = values
    grp.create_array(S.THUMBNAIL, data=np.ascontiguousarray(thumbnail, np.uint8), **small)
    grp.create_array(S.MASK_TISSUE, data=np.asarray(tissue_mask, bool), **small)
    grp.create_array(S.MASK_PEN, data=np.asarray(pen_mask, bool), **small)


def write_shard(path: Path, start: int, patches: np.ndarray, blur: np.ndarray, white_fraction: np.ndarray) -> None:
    """Write patches ``[start, start + len(patches))``: exactly one shard (or the last, partial one)."""
    grp = zarr.open_group(path, mode="r+")
    stop = start + len(patches)
    # write_empty_chunks is a runtime setting: skip zarr's per-chunk "all fill value?" scan.
    with zarr.config.set({"array.write_empty_chunks": True}):
        _array(grp, S.PATCHES)[start:stop] = patches
    _array(grp, "qc/blur")[start:stop] = np.asarray(blur, np.float32)
    _array(grp, "qc/white_fraction")[start:stop] = np.asarray(white_fraction, np.float32)


def finalize_store(path: Path, final: Path, attrs: dict[str, Any], *, overwrite: bool = False) -> None:
    """Stamp the metadata (``complete: true``) and atomically rename ``path`` to ``final``."""
    grp = zarr.open_group(path, mode="r+")
    grp.attrs[S.ATTRS_KEY] = {**attrs, "schema_version": S.SCHEMA_VERSION, "complete": True}
    if final.exists():
        if not overwrite:
            raise FileExistsError(f"{final} appeared while this run was writing it")
        trash = temp_path_for(final)
        os.replace(final, trash)  # move the old store aside first so the final name is never half-written
        os.replace(path, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(path, final)
