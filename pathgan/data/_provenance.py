"""What a dataset is made of: a content fingerprint for checkpoints and a summary for logs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pathgan.data._dataset import PatchDataset
from pathgan.data._filters import PatchFilter
from pathgan.store import PatchStore, read_store_attrs

__all__ = ["data_fingerprint", "describe"]


def _store_record(attrs: dict[str, Any]) -> dict[str, Any]:
    source = attrs.get("source") or {}
    return {
        "slide_id": attrs.get("slide_id"),
        "source_sha256_first_mib": source.get("sha256_first_mib") if isinstance(source, dict) else None,
        "source_size_bytes": source.get("size_bytes") if isinstance(source, dict) else None,
        "n_patches": attrs.get("n_patches"),
        "patch_px": attrs.get("patch_px"),
        "mpp_requested": attrs.get("mpp_requested"),
        "schema_version": attrs.get("schema_version"),
        "config": attrs.get("config"),
    }


def data_fingerprint(
    stores: PatchDataset | Sequence[PatchStore | str | Path], *, filters: PatchFilter | None = None
) -> str:
    """Hex sha256 identifying the training data, for checkpoint provenance.

    Hashes, per store, the slide id, the source file's size and sha256 of its first MiB, the
    patch count, patch size, MPP, schema version and tiling config (from the store attrs), plus
    the filter settings. Store paths and list order do not matter (moving stores keeps the hash).

    Parameters
    ----------
    stores : a :class:`PatchDataset` (its stores, filters, ``image_px`` and ``resize_mode`` are
        hashed) or store paths / open stores.
    filters : filter settings for a list of stores (ignored for a dataset); default none.
    """
    settings: dict[str, Any]
    if isinstance(stores, PatchDataset):
        records = [_store_record(info.attrs) for info in stores.stores]
        settings = {"filters": dataclasses.asdict(stores.filters), "image_px": stores.image_px,
                    "resize_mode": stores.resize_mode}
    else:
        records = [_store_record(s.attrs if isinstance(s, PatchStore) else read_store_attrs(Path(s)))
                   for s in stores]
        settings = {"filters": dataclasses.asdict(filters) if filters is not None else None}
    canon = [json.dumps(r, sort_keys=True, separators=(",", ":"), default=str) for r in records]
    payload = json.dumps({"stores": sorted(canon), "settings": settings}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def describe(dataset: PatchDataset) -> dict[str, Any]:
    """JSON-serialisable summary of ``dataset``.

    Returns
    -------
    ``n_patches`` (kept, total), ``image_px``, ``resize_mode``, ``mpp`` (of the returned images;
    one value, since the dataset refuses mixed MPP with a ConfigError at construction),
    ``patch_px`` (sorted distinct store values), ``filters``, ``fingerprint`` and per store
    ``path``, ``slide_id``, ``patch_px``, ``mpp``, ``n_patches`` (stored) and ``n_kept``.
    """
    return {
        "n_patches": len(dataset),
        "image_px": dataset.image_px,
        "resize_mode": dataset.resize_mode,
        "mpp": dataset.stores[0].image_mpp,
        "patch_px": sorted({s.patch_px for s in dataset.stores}),
        "filters": dataclasses.asdict(dataset.filters),
        "fingerprint": data_fingerprint(dataset),
        "stores": [
            {"path": str(s.path), "slide_id": s.slide_id, "patch_px": s.patch_px, "mpp": s.mpp,
             "n_patches": s.n_patches, "n_kept": s.n_kept}
            for s in dataset.stores
        ],
    }
